//! What a key holds: one of Redis's five types, and the number formats Redis replies
//! with.
//!
//! The one idea: a large aggregate keeps its members in an insertion-ordered hash
//! table (`IndexMap`/`IndexSet`) whose entries have positions, as the keyspace's own
//! table does. A position gives O(1) random picks (HRANDFIELD, SPOP, ZRANDMEMBER) and
//! a scan cursor that walks positions downwards: a removal moves the last entry into
//! the hole (`swap_remove`), which was either visited already or lands below the
//! cursor, so a member present throughout a scan is never missed. A small hash, set of
//! integers or sorted set is held compact instead, as Redis 7.0 holds it
//! ([`super::hash`], [`super::set`], [`super::zset`]), and is scanned whole in one
//! call. Lists are a `VecDeque` (both ends O(1), LINDEX O(1)); large sorted sets add a
//! skip list with spans for rank and range.

use super::zset::ZSet;
use std::collections::VecDeque;

pub use super::hash::Hash;
pub use super::set::Set;
pub type List = VecDeque<Box<[u8]>>;

/// A key's value. Aggregates are boxed so a string key costs no more than before.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Vec<u8>),
    Hash(Box<Hash>),
    List(Box<List>),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
}

/// A value's type, as TYPE names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Hash,
    List,
    Set,
    ZSet,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }

    /// The type named by SCAN's TYPE option (Redis's names, any case).
    pub fn from_name(s: &[u8]) -> Option<Kind> {
        [Kind::Str, Kind::Hash, Kind::List, Kind::Set, Kind::ZSet]
            .into_iter()
            .find(|k| s.eq_ignore_ascii_case(k.name().as_bytes()))
    }
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::Str,
            Value::Hash(_) => Kind::Hash,
            Value::List(_) => Kind::List,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
        }
    }

    /// OBJECT ENCODING, in Redis 7.0's names. A hash, set or sorted set names its
    /// current form (see [`super::hash`], [`super::set`], [`super::zset`]). A string is named as Redis would hold those bytes: `int` for
    /// a canonical 64-bit integer, `embstr` up to 44 bytes, else `raw`. Lists are
    /// Redis 7.0's `quicklist` (a chain of blocks there, one ring buffer here: both
    /// O(1) at the ends).
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => str_encoding(s, None),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::List(_) => "quicklist",
            Value::ZSet(z) => z.encoding(),
        }
    }

    /// MEMORY USAGE's estimate of the bytes the value holds: its headers, plus, for an
    /// aggregate, its length times the mean size of up to `samples` members (0: all),
    /// as Redis's `objectComputeSize` samples.
    pub fn mem_usage(&self, samples: usize) -> usize {
        fn sampled(len: usize, samples: usize, sizes: impl Iterator<Item = usize>) -> usize {
            let take = if samples == 0 { len } else { samples.min(len) };
            if take == 0 {
                return 0;
            }
            let sum: usize = sizes.take(take).sum();
            sum.saturating_mul(len) / take
        }
        const HEADER: usize = 16;
        match self {
            Value::Str(v) => HEADER + v.capacity(),
            Value::Hash(h) => match &**h {
                Hash::Pack(p) => HEADER + 24 + p.bytes(),
                Hash::Table(t) => {
                    let per = t.iter().map(|(f, v)| f.len() + v.capacity() + 56);
                    HEADER + 64 + sampled(t.len(), samples, per)
                }
            },
            Value::List(l) => {
                let per = l.iter().map(|e| e.len() + 32);
                HEADER + 48 + sampled(l.len(), samples, per)
            }
            Value::Set(s) => match &**s {
                Set::Ints(v) => HEADER + 24 + v.capacity() * 8,
                Set::Table(t) => {
                    let per = t.iter().map(|m| m.len() + 40);
                    HEADER + 64 + sampled(t.len(), samples, per)
                }
            },
            Value::ZSet(z) => {
                let per = z.iter().map(|(m, _)| m.len());
                let extra = if z.is_packed() { 24 } else { SKIP_MEMBER };
                HEADER + 48 + sampled(z.len(), samples, per.map(|n| n + extra))
            }
        }
    }

    pub fn empty(kind: Kind) -> Value {
        match kind {
            Kind::Str => Value::Str(Vec::new()),
            Kind::Hash => Value::Hash(Box::default()),
            Kind::List => Value::List(Box::default()),
            Kind::Set => Value::Set(Box::default()),
            Kind::ZSet => Value::ZSet(Box::default()),
        }
    }
}

/// A skip-list member's bookkeeping beyond its bytes: a node with a few links and its
/// member table entry.
const SKIP_MEMBER: usize = 128;

/// How a string was written, where Redis 7.0's encoding of it follows from the
/// command that made it rather than from its bytes (kept by the keyspace per key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrForm {
    /// Changed in place — APPEND to an existing string, SETRANGE, SETBIT (Redis's
    /// `dbUnshareStringValue`): `raw`, whatever the bytes, until a write replaces it.
    Raw,
    /// Made from a formatted number (INCRBYFLOAT's `createStringObject`): `embstr` up
    /// to 44 bytes, else `raw`, never `int`.
    Formatted,
}

/// Redis's encoding of a string: `tryObjectEncoding` for its bytes unless `form`
/// says how it was made.
pub fn str_encoding(s: &[u8], form: Option<StrForm>) -> &'static str {
    match form {
        Some(StrForm::Raw) => "raw",
        Some(StrForm::Formatted) if s.len() <= 44 => "embstr",
        Some(StrForm::Formatted) => "raw",
        // `parse_i64` takes only the canonical spelling (no `+`, no leading zeros).
        None if s.len() <= 20 && crate::proto::resp::parse_i64(s).is_some() => "int",
        None if s.len() <= 44 => "embstr",
        None => "raw",
    }
}

/// The encoding thresholds (CONFIG `hash-max-listpack-entries` and the like), with
/// Redis 7.0's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encodings {
    pub hash_entries: usize,
    pub hash_value: usize,
    pub set_intset: usize,
    pub zset_entries: usize,
    pub zset_value: usize,
}

impl Default for Encodings {
    fn default() -> Self {
        Self {
            hash_entries: 128,
            hash_value: 64,
            set_intset: 512,
            zset_entries: 128,
            zset_value: 64,
        }
    }
}

/// One step of a positional scan over `len` entries (see the module comment): visits
/// about `count` positions below `cursor` (0 starts at the end) and returns the cursor
/// to continue from, 0 when done.
pub fn scan_positions(len: usize, cursor: u64, count: usize, visit: &mut dyn FnMut(usize)) -> u64 {
    let len = len as u64;
    let mut pos = if cursor == 0 { len } else { cursor.min(len) };
    let mut n = 0;
    while pos > 0 && n < count.max(1) {
        pos -= 1;
        visit(pos as usize);
        n += 1;
    }
    pos
}

/// Redis's `getDoubleFromObject` (`strtod`) for scores: a decimal of any length or
/// `inf`/`-inf`; NaN, blanks and empty strings are refused.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() {
        return None;
    }
    let t = std::str::from_utf8(s).ok()?;
    if t.ends_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let v: f64 = t.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// Redis's `%.17g`, as it replies with a score (RESP2), `inf`/`-inf` spelled out.
pub fn fmt_score(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        // -0 too, as Redis shows a score held in its compact encoding.
        return "0".into();
    }
    const P: i32 = 17;
    // Scientific form with P significant digits gives the decimal exponent after rounding.
    let sci = format!("{:.*e}", (P - 1) as usize, d);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..P).contains(&exp) {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (P - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{d:.decimals$}")).to_owned()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// INCRBYFLOAT's and HINCRBYFLOAT's result format: Redis prints a long double with 17
/// decimals and drops trailing zeros; kvd computes in f64, so it prints the shortest
/// decimal that reads back as the same f64 (which is what that long double shows for
/// every sum of short decimals), never `-0`, and never in exponent form.
pub fn fmt_incr_float(d: f64) -> String {
    if d == 0.0 {
        return "0".into();
    }
    let s = format!("{d}");
    match s.split_once('.') {
        Some((_, frac)) if frac.len() > 17 => {
            let r = format!("{d:.17}");
            match trim_zeros(&r) {
                "-0" | "0" => "0".into(),
                t => t.to_owned(),
            }
        }
        _ => s,
    }
}

/// The long-double parser INCRBYFLOAT uses (`string2ld`) accepts what `parse_f64`
/// does; an infinite increment is refused by each command in its own words.
pub fn parse_incr_float(s: &[u8]) -> Option<f64> {
    parse_f64(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_format_as_percent_17g() {
        assert_eq!(fmt_score(1.0), "1");
        assert_eq!(fmt_score(1.1), "1.1000000000000001");
        assert_eq!(fmt_score(-2.5), "-2.5");
        assert_eq!(fmt_score(0.1), "0.10000000000000001");
        assert_eq!(fmt_score(1e17), "1e+17");
        assert_eq!(fmt_score(1.5e-5), "1.5e-05");
        assert_eq!(fmt_score(123456789.0), "123456789");
        assert_eq!(fmt_score(f64::INFINITY), "inf");
        assert_eq!(fmt_score(f64::NEG_INFINITY), "-inf");
        assert_eq!(fmt_score(0.0001), "0.0001");
        assert_eq!(fmt_score(1e16), "10000000000000000");
    }

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        // DBL_MAX written out in full, as Redis's tests send it.
        let dblmax = format!("{:.17}", f64::MAX);
        assert_eq!(parse_f64(dblmax.as_bytes()), Some(f64::MAX));
        for bad in [&b""[..], b"nan", b"NaN", b" 1", b"1 ", b"abc", b"1.5x"] {
            assert_eq!(parse_f64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn incr_float_format() {
        assert_eq!(fmt_incr_float(10.5 + 0.1), "10.6");
        assert_eq!(fmt_incr_float(-0.0), "0");
        assert_eq!(fmt_incr_float(1500.0), "1500");
        assert_eq!(fmt_incr_float(5.0e3), "5000");
        assert_eq!(fmt_incr_float(1e-20), "0");
    }
}
