//! SORT and SORT_RO, as Redis 7.0's `sortCommandGeneric` runs them.
//!
//! The one idea: the elements of a list, set or sorted set are copied into a vector,
//! each with its weight — the element read as a number, the element itself (ALPHA),
//! or the string or hash field a BY pattern names for it — and the vector is sorted
//! stably (glibc's `qsort` is a merge sort: equal weights keep the order the elements
//! were loaded in). LIMIT picks a window, and each GET pattern turns an element into
//! the value it names (`#`: the element). With STORE the window becomes a list under
//! the destination (an empty result deletes it) and the command is logged as sent, as
//! Redis propagates it: a replay sorts the same data again. So that it sorts it the
//! same way, a stored sort loads a set's members in byte order and a sorted set's in
//! rank order (never a table's history-dependent order), and a set sorted with
//! `BY nosort` and STORE is sorted ALPHA, as Redis forces it to be.
//!
//! Work is bounded by the data: LIMIT is clamped to the collection's length before
//! anything is allocated, and a reply may not hold more entries than the larger of
//! the window and the server's argument limit (GET patterns multiply the window).

use super::{int_arg, tri, Ctx, ERR_SYNTAX};
use crate::kv::keyspace::{Keyspace, WRONGTYPE};
use crate::kv::value::{Kind, List, Value};
use crate::proto::resp::{self, Args};
use std::cmp::Ordering;

const ERR_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// SORT's options, as parsed from `args[2..]`.
pub(crate) struct Opts<'a> {
    desc: bool,
    alpha: bool,
    /// LIMIT's offset and count, as given (`0 -1` when absent).
    limit: (i64, i64),
    by: Option<&'a [u8]>,
    /// A BY pattern without `*` (`BY nosort`): no sorting, no weights.
    dontsort: bool,
    gets: Vec<&'a [u8]>,
    /// The position of STORE's destination in the arguments (the last STORE wins).
    pub store: Option<usize>,
}

/// Parses the options in Redis's order and words: the first bad one answers.
/// `readonly` (SORT_RO) knows no STORE, which is then a syntax error.
pub(crate) fn parse(args: Args<'_>, readonly: bool) -> Result<Opts<'_>, &'static str> {
    let mut o = Opts {
        desc: false,
        alpha: false,
        limit: (0, -1),
        by: None,
        dontsort: false,
        gets: Vec::new(),
        store: None,
    };
    let n = args.len();
    let mut j = 2;
    while j < n {
        let left = n - j - 1;
        let a = args.get(j);
        if a.eq_ignore_ascii_case(b"asc") {
            o.desc = false;
        } else if a.eq_ignore_ascii_case(b"desc") {
            o.desc = true;
        } else if a.eq_ignore_ascii_case(b"alpha") {
            o.alpha = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            let start = int_arg(args.get(j + 1))?;
            let count = int_arg(args.get(j + 2))?;
            o.limit = (start, count);
            j += 2;
        } else if !readonly && a.eq_ignore_ascii_case(b"store") && left >= 1 {
            o.store = Some(j + 1);
            j += 1;
        } else if a.eq_ignore_ascii_case(b"by") && left >= 1 {
            let p = args.get(j + 1);
            o.by = Some(p);
            // Once a constant pattern is seen nothing is sorted, whatever follows.
            if !c_str(p).contains(&b'*') {
                o.dontsort = true;
            }
            j += 1;
        } else if a.eq_ignore_ascii_case(b"get") && left >= 1 {
            o.gets.push(args.get(j + 1));
            j += 1;
        } else {
            return Err(ERR_SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// Where a logged (or sent) SORT stores its result: the argument position of the
/// destination, the only key SORT writes (for WATCH, notifications and blocked
/// clients; Redis's `sortGetKeys`).
pub(crate) fn store_at(args: Args<'_>) -> Option<usize> {
    parse(args, false).ok().and_then(|o| o.store)
}

/// The bytes C code sees of `s`: up to its first NUL (Redis reads patterns with
/// `strchr` and `strstr`).
fn c_str(s: &[u8]) -> &[u8] {
    &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*`
/// is replaced by the element and the key read — a string, or, when `->field`
/// follows the `*`, that field of a hash. Anything else (no `*`, a missing key, the
/// wrong type, a missing field) is `None`. `buf` holds the key built.
fn by_pattern<R>(
    ks: &mut Keyspace,
    pat: &[u8],
    elem: &[u8],
    buf: &mut Vec<u8>,
    f: impl FnOnce(Option<&[u8]>) -> R,
) -> R {
    let c = c_str(pat);
    if c == b"#" {
        return f(Some(elem));
    }
    let Some(star) = c.iter().position(|&b| b == b'*') else {
        return f(None);
    };
    // `->` after the `*`, with at least one byte of field name after it.
    let arrow = c[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|i| star + 1 + i)
        .filter(|&a| a + 2 < c.len());
    let (key_end, field) = match arrow {
        Some(a) => (a, Some(&pat[a + 2..])),
        None => (pat.len(), None),
    };
    buf.clear();
    buf.extend_from_slice(&pat[..star]);
    buf.extend_from_slice(elem);
    buf.extend_from_slice(&pat[star + 1..key_end]);
    match (ks.get(buf), field) {
        (Some(Value::Str(s)), None) => f(Some(s)),
        (Some(Value::Hash(h)), Some(field)) => f(h.get(field)),
        _ => f(None),
    }
}

/// A weight read as Redis 7.0 reads it, with `strtod`: leading white space, then a
/// decimal or hexadecimal number, `inf` or `infinity`, that must run to the end of
/// the string (or to a NUL). `None` when it does not, or when `strtod` would report a
/// range error (a finite number too large, or too small to be a normal double) or
/// give NaN. An empty string reads as 0, as `strtod` converts nothing there and stops
/// on the terminating NUL.
pub(crate) fn parse_weight(s: &[u8]) -> Option<f64> {
    let s = c_str(s);
    if s.is_empty() {
        return Some(0.0);
    }
    let t = {
        let ws = s
            .iter()
            .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
            .count();
        &s[ws..]
    };
    let (neg, body) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(sign * f64::INFINITY);
    }
    let (v, nonzero) = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        parse_hex(&body[2..])?
    } else {
        parse_dec(body)?
    };
    // ERANGE: overflow to infinity, or a non-zero number read as zero or subnormal.
    if v.is_infinite() || (nonzero && (v == 0.0 || !v.is_normal())) {
        return None;
    }
    Some(sign * v)
}

/// `digits [. digits] [e [sign] digits]`, at least one digit before the exponent,
/// and nothing after: the value and whether any digit was non-zero.
fn parse_dec(b: &[u8]) -> Option<(f64, bool)> {
    let mut i = 0;
    let mut digits = 0;
    let mut nonzero = false;
    while i < b.len() && b[i].is_ascii_digit() {
        nonzero |= b[i] != b'0';
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            nonzero |= b[i] != b'0';
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] | 0x20) == b'e' {
        let mut k = i + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        let exp_digits = b[k..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return None;
        }
        i = k + exp_digits;
    }
    if i != b.len() {
        return None;
    }
    let v: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
    Some((v, nonzero))
}

/// The part after `0x`: `hexdigits [. hexdigits] [p [sign] digits]`, at least one
/// hex digit, nothing after. Up to 15 significant digits are exact; later ones only
/// count as a sticky bit, which is enough for any weight written by hand. The flag is
/// whether a range error is possible: a hexadecimal subnormal that is exact (say
/// `0x1p-1074`) is no error for `strtod`.
fn parse_hex(b: &[u8]) -> Option<(f64, bool)> {
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut digits = 0;
    let mut i = 0;
    let mut frac = false;
    let mut sticky = false;
    while i < b.len() {
        let c = b[i];
        if c == b'.' && !frac {
            frac = true;
            i += 1;
            continue;
        }
        let Some(d) = (c as char).to_digit(16) else {
            break;
        };
        digits += 1;
        if mant >> 56 == 0 {
            mant = mant << 4 | u64::from(d);
            if frac {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !frac {
                exp += 4;
            }
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] | 0x20) == b'p' {
        let mut k = i + 1;
        let neg = k < b.len() && b[k] == b'-';
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        let n = b[k..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let e: i64 = std::str::from_utf8(&b[k..k + n])
            .ok()?
            .parse()
            .unwrap_or(i64::MAX / 4)
            .min(1 << 20);
        exp = exp.saturating_add(if neg { -e } else { e });
        i = k + n;
    }
    if i != b.len() {
        return None;
    }
    if mant == 0 && !sticky {
        return Some((0.0, false));
    }
    let m = (mant | u64::from(sticky)) as f64;
    let e = exp.clamp(-2400, 2400) as i32;
    // Two steps, so 2^e itself never overflows or underflows on the way.
    let v = m * 2f64.powi(e / 2) * 2f64.powi(e - e / 2);
    // Exact when no bit falls below 2^-1074, the last bit a subnormal has.
    let exact = !sticky && i64::from(mant.trailing_zeros()) + i64::from(e) >= -1074;
    Some((v, !exact))
}

/// An element with what it is sorted by.
struct Item {
    elem: Box<[u8]>,
    score: f64,
    cmp: Option<Box<[u8]>>,
}

impl Item {
    fn new(elem: &[u8]) -> Item {
        Item {
            elem: elem.into(),
            score: 0.0,
            cmp: None,
        }
    }
}

/// Redis's `sortCompare`: numbers, ties broken by the elements' bytes; ALPHA by the
/// element or, with BY, by the weight (a missing weight first); DESC reverses it all.
fn compare(a: &Item, b: &Item, alpha: bool, by: bool, desc: bool) -> Ordering {
    let c = if !alpha {
        match a.score.partial_cmp(&b.score) {
            Some(Ordering::Equal) | None => a.elem.cmp(&b.elem),
            Some(o) => o,
        }
    } else if by {
        match (&a.cmp, &b.cmp) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(y),
        }
    } else {
        a.elem.cmp(&b.elem)
    };
    if desc {
        c.reverse()
    } else {
        c
    }
}

/// LIMIT against `len` elements, as Redis clamps it: the inclusive window
/// `start..=end` (empty when `end < start`).
fn window(limit: (i64, i64), len: usize) -> (i64, i64) {
    let len = len as i64;
    let start = limit.0.clamp(0, len);
    let count = limit.1.clamp(-1, len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    let start = if start >= len {
        end = len - 2;
        len - 1
    } else {
        start
    };
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// Loads the elements of `key` (a list, set or sorted set; missing: none) and the
/// window to answer from them. Without sorting (`BY nosort`), a list or sorted set
/// loads only the window, in its own order (reversed by DESC), and the window is
/// then the whole vector.
fn load(ks: &mut Keyspace, key: &[u8], o: &Opts<'_>) -> (Vec<Item>, i64, i64) {
    let len = match ks.peek(key) {
        Some(Value::List(l)) => l.len(),
        Some(Value::Set(s)) => s.len(),
        Some(Value::ZSet(z)) => z.len(),
        _ => 0,
    };
    let (start, end) = window(o.limit, len);
    let take = (end - start + 1).max(0) as usize;
    let stored = o.store.is_some();
    let mut items = Vec::new();
    match ks.peek(key) {
        Some(Value::List(l)) if o.dontsort && take > 0 => {
            items.reserve(take);
            let s = start as usize;
            if o.desc {
                items.extend(l.iter().rev().skip(s).take(take).map(|e| Item::new(e)));
            } else {
                items.extend(l.iter().skip(s).take(take).map(|e| Item::new(e)));
            }
            return (items, 0, end - start);
        }
        // An empty window: nothing to load.
        Some(Value::List(_)) if o.dontsort => {}
        Some(Value::List(l)) => items.extend(l.iter().map(|e| Item::new(e))),
        Some(Value::Set(s)) => {
            items.reserve(s.len());
            items.extend(s.iter().map(|m| Item::new(m.as_ref())));
            if stored {
                items.sort_by(|a, b| a.elem.cmp(&b.elem));
            }
        }
        Some(Value::ZSet(z)) if o.dontsort => {
            if take > 0 {
                items.reserve(take);
                let rank = if o.desc {
                    len - 1 - start as usize
                } else {
                    start as usize
                };
                items.extend(z.walk(rank, o.desc, take).map(|(_, m)| Item::new(m)));
            }
            return (items, 0, end - start);
        }
        Some(Value::ZSet(z)) => {
            items.reserve(z.len());
            items.extend(z.walk(0, false, z.len()).map(|(_, m)| Item::new(m)));
        }
        _ => {}
    }
    (items, start, end)
}

pub(crate) fn sort(ctx: &mut Ctx<'_>, args: Args<'_>) {
    sort_generic(ctx, args, false)
}

pub(crate) fn sort_ro(ctx: &mut Ctx<'_>, args: Args<'_>) {
    sort_generic(ctx, args, true)
}

fn sort_generic(ctx: &mut Ctx<'_>, args: Args<'_>, readonly: bool) {
    let mut o = tri!(ctx, parse(args, readonly));
    let key = args.get(1);
    let kind = ctx.ks.get(key).map(Value::kind);
    if matches!(kind, Some(Kind::Str | Kind::Hash)) {
        return ctx.err(WRONGTYPE);
    }
    // Redis converts a packed sorted set to its skip list for good before sorting
    // (`zsetConvert`), SORT_RO included: OBJECT ENCODING shows it.
    if let Some(Value::ZSet(z)) = ctx.ks.get_mut(key) {
        z.convert();
    }
    // A set's own order is no order: stored, it is sorted (ALPHA), so the result
    // does not depend on how the set happens to be laid out.
    if o.dontsort && kind == Some(Kind::Set) && o.store.is_some() {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let (mut items, start, end) = load(ctx.ks, key, &o);
    let mut buf = Vec::new();
    let mut bad_weight = false;
    if !o.dontsort {
        for it in &mut items {
            let Item { elem, score, cmp } = it;
            let mut weigh = |w: Option<&[u8]>| -> Option<bool> {
                let w = w?;
                if o.alpha {
                    if o.by.is_some() {
                        *cmp = Some(w.into());
                    }
                    Some(true)
                } else {
                    match parse_weight(w) {
                        Some(v) => *score = v,
                        None => return Some(false),
                    }
                    Some(true)
                }
            };
            let ok = match o.by {
                Some(p) => by_pattern(ctx.ks, p, elem, &mut buf, weigh),
                None => weigh(Some(&elem[..])),
            };
            if ok == Some(false) {
                bad_weight = true;
            }
        }
        if !bad_weight {
            let (alpha, by, desc) = (o.alpha, o.by.is_some(), o.desc);
            items.sort_by(|a, b| compare(a, b, alpha, by, desc));
        }
    }
    if bad_weight {
        return ctx.err(ERR_NOT_DOUBLE);
    }
    let window: &[Item] = if end >= start {
        items.get(start as usize..=end as usize).unwrap_or_default()
    } else {
        &[]
    };
    let per = o.gets.len().max(1);
    let total = window.len().saturating_mul(per);
    let cap = window.len().max(ctx.server.limits.max_args);
    if total > cap {
        return ctx.err(&format!(
            "ERR SORT would answer {total} entries, over this server's limit of {cap} (proto-max-multibulk-len)"
        ));
    }
    let Some(at) = o.store else {
        resp::encode_array_len(ctx.out, total);
        for it in window {
            if o.gets.is_empty() {
                resp::encode_bulk(ctx.out, &it.elem);
            }
            for p in &o.gets {
                let out = &mut *ctx.out;
                let resp3 = ctx.resp3;
                by_pattern(ctx.ks, p, &it.elem, &mut buf, |v| match v {
                    Some(v) => resp::encode_bulk(out, v),
                    None => resp::encode_null(out, resp3),
                });
            }
        }
        return;
    };
    let dst = args.get(at);
    if total == 0 {
        if ctx.ks.del(dst) {
            ctx.ks.log(&[&b"DEL"[..], dst]);
        }
        return ctx.int(0);
    }
    tri!(ctx, ctx.ks.holds(Kind::List));
    let mut list = List::with_capacity(total);
    for it in window {
        if o.gets.is_empty() {
            list.push_back(it.elem.clone());
        }
        for p in &o.gets {
            let v = by_pattern(ctx.ks, p, &it.elem, &mut buf, |v| {
                Box::<[u8]>::from(v.unwrap_or_default())
            });
            list.push_back(v);
        }
    }
    ctx.ks.set(dst, Value::List(Box::new(list)));
    ctx.ks.log_args(args);
    ctx.int(total as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_read_as_strtod_reads_them() {
        for (s, want) in [
            ("1", 1.0),
            ("-2.5", -2.5),
            ("", 0.0),
            ("  3", 3.0),
            ("\t+.5", 0.5),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            ("5.", 5.0),
            ("0x10", 16.0),
            ("0X1p4", 16.0),
            ("-0x.8", -0.5),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("0e-999", 0.0),
            ("7\0junk", 7.0),
            ("0x1p-1074", 5e-324),
            ("0x1p-1022", f64::MIN_POSITIVE),
        ] {
            assert_eq!(parse_weight(s.as_bytes()), Some(want), "{s:?}");
        }
        for s in [
            "abc",
            "1 ",
            " ",
            "-",
            "+",
            ".",
            "1e",
            "1e+",
            "0x",
            "0xg",
            "nan",
            "-nan",
            "inf1",
            "1e400",
            "-1e400",
            "1e-400",
            "1e-310",
            "4.9406564584124654e-324",
            "0x3p-1075",
            "1.5.2",
            "0x1p",
            "12a",
        ] {
            assert_eq!(parse_weight(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn limit_clamps_as_redis_does() {
        assert_eq!(window((0, -1), 5), (0, 4));
        assert_eq!(window((1, 2), 5), (1, 2));
        assert_eq!(window((-3, 2), 5), (0, 1));
        assert_eq!(window((3, 10), 5), (3, 4));
        assert_eq!(window((5, 1), 5), (4, 3));
        assert_eq!(window((0, 0), 5), (0, -1));
        assert_eq!(window((0, -1), 0), (-1, -2));
        assert_eq!(window((i64::MAX, i64::MAX), 5), (4, 3));
        assert_eq!(window((1, i64::MAX), 5), (1, 4));
    }

    #[test]
    fn the_destination_is_found_past_options_with_arguments() {
        let cases: &[(&[&str], Option<usize>)] = &[
            (&["SORT", "k"], None),
            (&["SORT", "k", "STORE", "d"], Some(3)),
            (&["SORT", "k", "GET", "store", "STORE", "d"], Some(5)),
            (
                &["SORT", "k", "STORE", "a", "LIMIT", "0", "1", "STORE", "b"],
                Some(8),
            ),
            (&["SORT", "k", "BY", "store"], None),
            (&["SORT", "k", "STORE"], None),
            (&["SORT", "k", "FOO", "STORE", "d"], None),
        ];
        for (a, want) in cases {
            let mut src = Vec::new();
            let mut ranges = Vec::new();
            for s in *a {
                let at = src.len();
                src.extend_from_slice(s.as_bytes());
                ranges.push(at..src.len());
            }
            assert_eq!(store_at(Args::new(&src, &ranges)), *want, "{a:?}");
        }
    }
}
