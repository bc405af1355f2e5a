//! RESP: the request parser (multibulk and inline) and the reply encoders, RESP2's and
//! the types RESP3 adds.
//!
//! The one idea: never parse a frame that is not wholly buffered. [`parse`] first walks
//! the frame's headers (the `*N` count and each `$len`), checking every length against
//! [`Limits`] before anything is trusted, and only when the last byte of the frame is in
//! the buffer does it report the argument positions. An incomplete frame costs nothing
//! but that walk, and it reports how many bytes it needs at least, so a caller holding a
//! large half-received value can skip re-walking until that many have arrived.
//! Arguments are byte ranges into the caller's buffer (or, for inline commands with
//! quotes, into a scratch buffer), so parsing allocates nothing per command.

use memchr::memchr;
use std::ops::Range;

/// Longest inline command line, and longest `*N` / `$N` header line, as in Redis.
pub const INLINE_MAX: usize = 64 * 1024;

/// How much one client may make the server hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest `$len` accepted.
    pub max_bulk: usize,
    /// Largest `*count` accepted.
    pub max_args: usize,
    /// Largest whole frame (headers included) a client may ask the server to buffer.
    pub max_query: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk: 32 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_query: 64 * 1024 * 1024,
        }
    }
}

/// A malformed request. The message is Redis's own wording after `-ERR Protocol error: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Where a parsed command's arguments live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Ranges index the input buffer.
    Input,
    /// Ranges index the scratch buffer (an inline command whose quotes were unescaped).
    Scratch,
}

/// The outcome of one [`parse`] call.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole frame of `len` bytes; `args` holds its arguments (possibly none, for an
    /// empty line or `*0`, which Redis ignores).
    Command { len: usize, source: Source },
    /// The frame is incomplete; it needs at least `need` bytes in total.
    Incomplete { need: usize },
}

/// Parses the first frame of `input`. On [`Parsed::Command`], `args` holds its
/// arguments' ranges (cleared first), indexing `input` or `scratch` as `source` says.
pub fn parse(
    input: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
    scratch: &mut Vec<u8>,
) -> Result<Parsed, ProtocolError> {
    args.clear();
    match input.first() {
        None => Ok(Parsed::Incomplete { need: 1 }),
        Some(b'*') => parse_multibulk(input, limits, args),
        Some(_) => parse_inline(input, args, scratch),
    }
}

/// Finds the end of a header line starting at `from`: the index of its `\r`.
/// `Ok(None)` when the line is not complete yet.
fn header_line(input: &[u8], from: usize, too_big: &str) -> Result<Option<usize>, ProtocolError> {
    let window = &input[from..];
    match memchr(b'\r', window) {
        Some(cr) if cr > INLINE_MAX => Err(ProtocolError::new(too_big)),
        Some(cr) => {
            if from + cr + 1 >= input.len() {
                Ok(None)
            } else {
                Ok(Some(from + cr))
            }
        }
        None if window.len() > INLINE_MAX => Err(ProtocolError::new(too_big)),
        None => Ok(None),
    }
}

/// Redis's `string2ll`: an optional `-`, digits, no leading zero, no `+`, no blanks,
/// and it must fit an `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits[0] == b'0' {
        return if digits.len() == 1 && !neg {
            Some(0)
        } else {
            None
        };
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v <= i64::MAX as u64 + 1 {
            Some((v as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(v).ok()
    }
}

fn parse_multibulk(
    input: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Parsed, ProtocolError> {
    let Some(cr) = header_line(input, 1, "too big mbulk count string")? else {
        return Ok(Parsed::Incomplete {
            need: input.len() + 1,
        });
    };
    if input[cr + 1] != b'\n' {
        return Err(ProtocolError::new("invalid multibulk length"));
    }
    let count =
        parse_i64(&input[1..cr]).ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
    let mut pos = cr + 2;
    if count <= 0 {
        return Ok(Parsed::Command {
            len: pos,
            source: Source::Input,
        });
    }
    if count as u64 > limits.max_args as u64 {
        return Err(ProtocolError::new("invalid multibulk length"));
    }
    // Each argument takes at least 4 bytes ("$0\r\n\r\n" is 6): a lower bound for `need`.
    let count = count as usize;
    let mut declared = pos;
    for i in 0..count {
        if pos >= input.len() {
            return Ok(Parsed::Incomplete {
                need: pos + (count - i) * 6,
            });
        }
        if input[pos] != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                char::from(input[pos])
            )));
        }
        let Some(cr) = header_line(input, pos + 1, "too big bulk count string")? else {
            return Ok(Parsed::Incomplete {
                need: input.len() + 1 + (count - i - 1) * 6,
            });
        };
        if input[cr + 1] != b'\n' {
            return Err(ProtocolError::new("invalid bulk length"));
        }
        let len = match parse_i64(&input[pos + 1..cr]) {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk as u64 => n as usize,
            _ => return Err(ProtocolError::new("invalid bulk length")),
        };
        let start = cr + 2;
        let end = start + len;
        declared = end + 2 + (count - i - 1) * 6;
        if declared > limits.max_query {
            return Err(ProtocolError::new("query buffer limit exceeded"));
        }
        if end + 2 > input.len() {
            return Ok(Parsed::Incomplete { need: declared });
        }
        if &input[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::new("expected CRLF after bulk data"));
        }
        args.push(start..end);
        pos = end + 2;
    }
    debug_assert!(declared >= pos);
    Ok(Parsed::Command {
        len: pos,
        source: Source::Input,
    })
}

fn parse_inline(
    input: &[u8],
    args: &mut Vec<Range<usize>>,
    scratch: &mut Vec<u8>,
) -> Result<Parsed, ProtocolError> {
    let Some(nl) = memchr(b'\n', &input[..input.len().min(INLINE_MAX + 1)]) else {
        if input.len() > INLINE_MAX {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(Parsed::Incomplete {
            need: input.len() + 1,
        });
    };
    let mut line_end = nl;
    if line_end > 0 && input[line_end - 1] == b'\r' {
        line_end -= 1;
    }
    let line = &input[..line_end];
    let len = nl + 1;
    if !line.iter().any(|&c| c == b'"' || c == b'\'') {
        // The common case (`PING`, `GET k`): plain words, ranges into the input.
        let mut i = 0;
        while i < line.len() {
            while i < line.len() && is_space(line[i]) {
                i += 1;
            }
            let start = i;
            while i < line.len() && !is_space(line[i]) {
                i += 1;
            }
            if i > start {
                args.push(start..i);
            }
        }
        return Ok(Parsed::Command {
            len,
            source: Source::Input,
        });
    }
    split_quoted(line, args, scratch)?;
    Ok(Parsed::Command {
        len,
        source: Source::Scratch,
    })
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Redis's `sdssplitargs`: words, `"double quotes"` with `\n \r \t \b \a \\ \" \xHH`
/// escapes, `'single quotes'` with `\'`; a closing quote must be followed by a blank.
fn split_quoted(
    line: &[u8],
    args: &mut Vec<Range<usize>>,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let unbalanced = || ProtocolError::new("unbalanced quotes in request");
    out.clear();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(());
        }
        let start = out.len();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= line.len() {
                    return Err(unbalanced());
                }
                let c = line[i];
                if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        out.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    out.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return Err(unbalanced());
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                }
                i += 1;
            } else if insq {
                if i >= line.len() {
                    return Err(unbalanced());
                }
                let c = line[i];
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    out.push(b'\'');
                    i += 2;
                    continue;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return Err(unbalanced());
                    }
                    i += 1;
                    break;
                }
                out.push(c);
                i += 1;
            } else {
                if i >= line.len() {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => out.push(c),
                }
                i += 1;
            }
        }
        args.push(start..out.len());
    }
}

/// A parsed command's arguments: ranges into one buffer, read without copying.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    src: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    pub fn new(src: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Self { src, ranges }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`; empty when out of range (callers check arity first).
    pub fn get(&self, i: usize) -> &'a [u8] {
        self.ranges
            .get(i)
            .and_then(|r| self.src.get(r.clone()))
            .unwrap_or(&[])
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Re-encodes the arguments as a RESP command (for the log).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'*');
        push_int(out, self.len() as i64);
        out.extend_from_slice(b"\r\n");
        for a in self.iter() {
            encode_bulk(out, a);
        }
    }
}

/// Appends `*N\r\n$len\r\narg\r\n...`: the form requests travel in, and the AOF's.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    push_int(out, args.len() as i64);
    out.extend_from_slice(b"\r\n");
    for a in args {
        encode_bulk(out, a.as_ref());
    }
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Reply encoders, appending to one buffer that leaves as a single send per batch.
pub fn encode_bulk(out: &mut Vec<u8>, v: &[u8]) {
    out.reserve(v.len() + 16);
    out.push(b'$');
    push_int(out, v.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
}

pub fn encode_simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `-MSG\r\n`; CR and LF inside the message become spaces so a reply stays one line.
pub fn encode_error(out: &mut Vec<u8>, msg: &str) {
    out.push(b'-');
    out.extend(
        msg.bytes()
            .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.extend_from_slice(b"\r\n");
}

pub fn encode_int(out: &mut Vec<u8>, v: i64) {
    match v {
        0 => out.extend_from_slice(b":0\r\n"),
        1 => out.extend_from_slice(b":1\r\n"),
        _ => {
            out.push(b':');
            push_int(out, v);
            out.extend_from_slice(b"\r\n");
        }
    }
}

pub fn encode_array_len(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

pub const OK: &[u8] = b"+OK\r\n";
pub const NULL_BULK: &[u8] = b"$-1\r\n";
pub const NULL_ARRAY: &[u8] = b"*-1\r\n";
/// RESP3's one null, for both of RESP2's.
pub const NULL3: &[u8] = b"_\r\n";

// RESP3 (`HELLO 3`): the reply types RESP2 lacks. Each encoder takes the client's
// protocol and, for a RESP2 client, writes what Redis writes to one: a map is an
// array of twice the pairs, a set an array, a double a bulk string, a push an array,
// a verbatim string a bulk string, and both nulls keep their RESP2 forms.

fn aggregate_len(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// A map of `n` pairs (`%n`), or `*2n` in RESP2.
pub fn encode_map_len(out: &mut Vec<u8>, n: usize, resp3: bool) {
    if resp3 {
        aggregate_len(out, b'%', n)
    } else {
        encode_array_len(out, 2 * n)
    }
}

/// A set of `n` elements (`~n`), or `*n` in RESP2.
pub fn encode_set_len(out: &mut Vec<u8>, n: usize, resp3: bool) {
    aggregate_len(out, if resp3 { b'~' } else { b'*' }, n)
}

/// An out-of-band push of `n` elements (`>n`: Pub/Sub), or `*n` in RESP2.
pub fn encode_push_len(out: &mut Vec<u8>, n: usize, resp3: bool) {
    aggregate_len(out, if resp3 { b'>' } else { b'*' }, n)
}

/// A double already formatted as Redis formats it (`%.17g`, `inf`, `-inf`): `,text`,
/// or a bulk string in RESP2.
pub fn encode_double_text(out: &mut Vec<u8>, text: &[u8], resp3: bool) {
    if resp3 {
        out.push(b',');
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        encode_bulk(out, text)
    }
}

/// A null bulk string: `_` in RESP3.
pub fn encode_null(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { NULL3 } else { NULL_BULK })
}

/// A null array: `_` in RESP3.
pub fn encode_null_array(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { NULL3 } else { NULL_ARRAY })
}

/// Plain text (INFO, CLIENT LIST): a verbatim string `=len\r\ntxt:...` in RESP3.
pub fn encode_verbatim(out: &mut Vec<u8>, text: &[u8], resp3: bool) {
    if !resp3 {
        return encode_bulk(out, text);
    }
    out.reserve(text.len() + 20);
    out.push(b'=');
    push_int(out, text.len() as i64 + 4);
    out.extend_from_slice(b"\r\ntxt:");
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<Parsed, ProtocolError> {
        let mut a = Vec::new();
        let mut s = Vec::new();
        parse(input, &Limits::default(), &mut a, &mut s)
    }

    fn words(input: &[u8]) -> Vec<Vec<u8>> {
        let mut a = Vec::new();
        let mut s = Vec::new();
        match parse(input, &Limits::default(), &mut a, &mut s).unwrap() {
            Parsed::Command { source, .. } => {
                let src = if source == Source::Input {
                    input
                } else {
                    &s[..]
                };
                a.iter().map(|r| src[r.clone()].to_vec()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multibulk_whole_and_partial() {
        let f = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(words(f), vec![b"GET".to_vec(), b"k".to_vec()]);
        for cut in 0..f.len() {
            assert!(
                matches!(one(&f[..cut]).unwrap(), Parsed::Incomplete { need } if need > cut),
                "cut {cut}"
            );
        }
        assert_eq!(
            one(f).unwrap(),
            Parsed::Command {
                len: f.len(),
                source: Source::Input
            }
        );
    }

    #[test]
    fn need_is_a_lower_bound_for_big_bulk() {
        let mut f = b"*1\r\n$100000\r\n".to_vec();
        f.extend_from_slice(&[b'x'; 10]);
        match one(&f).unwrap() {
            Parsed::Incomplete { need } => assert_eq!(need, 13 + 100000 + 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn protocol_errors_in_redis_words() {
        let e = |b: &[u8]| one(b).unwrap_err().to_string();
        assert_eq!(e(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(e(b"*2\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(e(b"*2\r\n:3\r\n"), "Protocol error: expected '$', got ':'");
        assert_eq!(
            e(b"*2000000\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            e(b"*1\r\n$99999999999\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"*1\r\n$99999999999999999999999\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"set \"a b\"c\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            e(&[b'a'; INLINE_MAX + 10]),
            "Protocol error: too big inline request"
        );
        let mut big = b"*".to_vec();
        big.extend_from_slice(&[b'1'; INLINE_MAX + 10]);
        assert_eq!(e(&big), "Protocol error: too big mbulk count string");
    }

    #[test]
    fn query_limit_rejects_before_buffering() {
        let lim = Limits {
            max_bulk: 1000,
            max_args: 100,
            max_query: 2000,
        };
        let mut a = Vec::new();
        let mut s = Vec::new();
        let r = parse(b"*3\r\n$1000\r\n", &lim, &mut a, &mut s);
        assert!(r.is_ok());
        let mut f = b"*3\r\n$1000\r\n".to_vec();
        f.extend_from_slice(&[b'x'; 1000]);
        f.extend_from_slice(b"\r\n$1000\r\n");
        let r = parse(&f, &lim, &mut a, &mut s);
        assert_eq!(
            r.unwrap_err().to_string(),
            "Protocol error: query buffer limit exceeded"
        );
    }

    #[test]
    fn inline_words_and_quotes() {
        assert_eq!(words(b"PING\r\n"), vec![b"PING".to_vec()]);
        assert_eq!(
            words(b"  set  k   v\n"),
            vec![b"set".to_vec(), b"k".to_vec(), b"v".to_vec()]
        );
        assert_eq!(
            words(b"set \"a b\\x41\\n\" 'it\\'s'\r\n"),
            vec![b"set".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()]
        );
        assert!(words(b"\r\n").is_empty());
        assert!(matches!(one(b"PIN").unwrap(), Parsed::Incomplete { .. }));
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        assert_eq!(
            one(b"*0\r\n").unwrap(),
            Parsed::Command {
                len: 4,
                source: Source::Input
            }
        );
        assert_eq!(
            one(b"*-1\r\n").unwrap(),
            Parsed::Command {
                len: 5,
                source: Source::Input
            }
        );
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"01", b"-0", b"+1", b" 1", b"1 ", b"1a"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn encoders() {
        let mut o = Vec::new();
        encode_command(&mut o, &[&b"SET"[..], b"k", b""]);
        assert_eq!(o, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        o.clear();
        encode_error(&mut o, "ERR a\r\nb");
        encode_int(&mut o, -5);
        assert_eq!(o, b"-ERR a  b\r\n:-5\r\n");
    }

    #[test]
    fn resp3_types_and_their_resp2_forms() {
        let both = |f: &dyn Fn(&mut Vec<u8>, bool)| {
            let (mut two, mut three) = (Vec::new(), Vec::new());
            f(&mut two, false);
            f(&mut three, true);
            (
                String::from_utf8(two).unwrap(),
                String::from_utf8(three).unwrap(),
            )
        };
        assert_eq!(
            both(&|o, p| encode_map_len(o, 2, p)),
            ("*4\r\n".into(), "%2\r\n".into())
        );
        assert_eq!(
            both(&|o, p| encode_set_len(o, 3, p)),
            ("*3\r\n".into(), "~3\r\n".into())
        );
        assert_eq!(
            both(&|o, p| encode_push_len(o, 3, p)),
            ("*3\r\n".into(), ">3\r\n".into())
        );
        assert_eq!(
            both(&|o, p| encode_double_text(o, b"-inf", p)),
            ("$4\r\n-inf\r\n".into(), ",-inf\r\n".into())
        );
        assert_eq!(
            both(&|o, p| encode_null(o, p)),
            ("$-1\r\n".into(), "_\r\n".into())
        );
        assert_eq!(
            both(&|o, p| encode_null_array(o, p)),
            ("*-1\r\n".into(), "_\r\n".into())
        );
        assert_eq!(
            both(&|o, p| encode_verbatim(o, b"a=1", p)),
            ("$3\r\na=1\r\n".into(), "=7\r\ntxt:a=1\r\n".into())
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut a = Vec::new();
            let mut s = Vec::new();
            let lim = Limits { max_bulk: 64, max_args: 8, max_query: 256 };
            let mut rest = &data[..];
            while let Ok(Parsed::Command { len, .. }) = parse(rest, &lim, &mut a, &mut s) {
                proptest::prop_assert!(len > 0 && len <= rest.len());
                rest = &rest[len..];
            }
        }

        #[test]
        fn encode_then_parse_round_trips(args in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 1..6)) {
            let mut buf = Vec::new();
            encode_command(&mut buf, &args);
            let mut a = Vec::new();
            let mut s = Vec::new();
            let r = parse(&buf, &Limits::default(), &mut a, &mut s).unwrap();
            proptest::prop_assert_eq!(r, Parsed::Command { len: buf.len(), source: Source::Input });
            let got: Vec<Vec<u8>> = a.iter().map(|r| buf[r.clone()].to_vec()).collect();
            proptest::prop_assert_eq!(got, args);
        }
    }
}
