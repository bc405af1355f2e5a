//! The request head: framing, limits, and the few headers a static server acts on.
//!
//! Framing comes first and is ours: a head is complete at its first empty line, and
//! until one arrives only two cheap checks run (the request line against the URI
//! limit, the buffer against the head limit), so a client trickling bytes costs a
//! `memchr` per arrival, never a full parse. Only a complete head goes to `httparse`,
//! into a fixed array of 100 header slots, so nothing here allocates per header.

use super::Status;
use std::mem::MaybeUninit;

/// A URI longer than this is a 414.
pub const MAX_URI: usize = 8 * 1024;
/// A head longer than this is a 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// More header lines than this is a 431.
pub const MAX_HEADERS: usize = 100;
/// A request body a static server reads only to throw away (on GET and HEAD, so the
/// connection stays in step) may be at most this long: a longer one is a 413.
pub const MAX_BODY: u64 = 1024 * 1024;
/// How many lines of one list-valued header (`If-Match`, `If-None-Match`) are kept.
const MAX_LIST_LINES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method<'a> {
    Get,
    Head,
    Other(&'a str),
}

/// A parsed head, borrowing from the input.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: Method<'a>,
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The request line as sent (for the access log).
    pub line: &'a [u8],
    pub host: Option<&'a [u8]>,
    pub keep_alive: bool,
    /// The request announces a body (`Content-Length` > 0 or a chunked one).
    pub has_body: bool,
    /// How the body is framed (validated: one length, or chunked last and once).
    pub body: BodyFraming,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_match: FieldLines<'a>,
    pub if_none_match: FieldLines<'a>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub accept_encoding: FieldLines<'a>,
    pub authorization: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
}

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// The lines of a header that may be repeated as a list (RFC 9110 §5.3), without
/// allocating: the first few are kept, the rest ignored.
#[derive(Clone, Copy, Debug, Default)]
pub struct FieldLines<'a> {
    lines: [&'a [u8]; MAX_LIST_LINES],
    n: usize,
}

impl<'a> FieldLines<'a> {
    pub(super) fn push(&mut self, v: &'a [u8]) {
        if let Some(slot) = self.lines.get_mut(self.n) {
            *slot = v;
            self.n += 1;
        }
    }

    pub fn is_present(&self) -> bool {
        self.n > 0
    }

    /// Every comma-separated member of every line, trimmed, empty ones skipped.
    pub fn members(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.lines[..self.n]
            .iter()
            .flat_map(|l| l.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|m| !m.is_empty())
    }
}

// A head lives on the stack for the one call that answers it; boxing it would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed<'a> {
    /// Need more bytes.
    Partial,
    /// A head of `len` bytes (leading empty lines included).
    Complete { head: Head<'a>, len: usize },
    /// Answer with `status` and close. `line` is the request line, as far as it came.
    Reject { status: Status, line: &'a [u8] },
}

/// Where the head ends: the index just past the first empty line, if there is one.
fn head_end(buf: &[u8]) -> Option<usize> {
    for nl in memchr::memchr_iter(b'\n', buf) {
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
    }
    None
}

/// The first line (without its CR LF) and whether its LF has arrived.
fn first_line(buf: &[u8]) -> (&[u8], bool) {
    let nl = memchr::memchr(b'\n', buf);
    let line = &buf[..nl.unwrap_or(buf.len())];
    (line.strip_suffix(b"\r").unwrap_or(line), nl.is_some())
}

/// The URI of a request line: between the first and the last space.
fn uri_len(line: &[u8]) -> usize {
    match (memchr::memchr(b' ', line), memchr::memrchr(b' ', line)) {
        (Some(a), Some(b)) if b > a => b - a - 1,
        _ => 0,
    }
}

/// Frames and parses one request head at the start of `input`. Never panics, never
/// allocates.
pub fn parse_head(input: &[u8]) -> Parsed<'_> {
    // RFC 9112 §2.2: ignore empty lines before a request line.
    let lead = input
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let buf = &input[lead..];
    let (line, line_complete) = first_line(buf);
    // A request line still open past the URI limit plus room for a method and a
    // version can only hold an over-long URI (or garbage; 414 is fair either way).
    let long_uri = line.len() > MAX_URI && uri_len(line) > MAX_URI;
    if (line_complete && long_uri) || (!line_complete && buf.len() > MAX_URI + 64) {
        return Parsed::Reject {
            status: Status::UriTooLong,
            line: &line[..line.len().min(256)],
        };
    }
    // The common case: the buffer holds one whole head and ends with its empty line.
    // A head then certainly ends within it, and httparse, which stops at the first
    // empty line exactly where `head_end` would, finds where: the head is scanned once.
    let whole = buf.len() <= MAX_HEAD && (buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n"));
    let end = if whole {
        buf.len()
    } else {
        let Some(end) = head_end(buf) else {
            if buf.len() > MAX_HEAD {
                return Parsed::Reject {
                    status: Status::HeaderFieldsTooLarge,
                    line,
                };
            }
            return Parsed::Partial;
        };
        if end > MAX_HEAD {
            return Parsed::Reject {
                status: Status::HeaderFieldsTooLarge,
                line,
            };
        }
        end
    };
    // Left uninitialised: httparse fills only the slots the head uses, and clearing
    // all 100 for a request of two or three headers was a large share of its cost.
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(&buf[..end], &mut headers);
    let status = match parsed {
        Ok(httparse::Status::Complete(_)) => None,
        Ok(httparse::Status::Partial) => Some(Status::BadRequest),
        Err(httparse::Error::TooManyHeaders) => Some(Status::HeaderFieldsTooLarge),
        // A well-formed version (`HTTP/` DIGIT `.` DIGIT) that we do not speak on this
        // connection (2 and up, also 1.2 and up as lighttpd answers): 505 rather than a
        // syntax error (RFC 9110 §15.6.6), as nginx and lighttpd answer `HTTP/9.9`.
        Err(httparse::Error::Version)
            if version_of(line)
                .is_some_and(|(major, minor)| major >= 2 || (major == 1 && minor >= 2)) =>
        {
            Some(Status::HttpVersionNotSupported)
        }
        Err(_) => Some(Status::BadRequest),
    };
    if let Some(status) = status {
        return Parsed::Reject { status, line };
    }
    // Where httparse found the empty line (`end` itself when `head_end` found it).
    let end = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        _ => end,
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Reject {
            status: Status::BadRequest,
            line,
        };
    };
    match interpret(method, target, minor, line, req.headers) {
        Ok(head) => Parsed::Complete {
            head,
            len: lead + end,
        },
        Err(status) => Parsed::Reject { status, line },
    }
}

/// The (major, minor) version of a request line ending in a well-formed `HTTP/D.D`.
fn version_of(line: &[u8]) -> Option<(u8, u8)> {
    let sp = memchr::memrchr(b' ', line)?;
    match &line[sp + 1..] {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some((major - b'0', minor - b'0'))
        }
        _ => None,
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2), with a host that is not
/// empty (an `http` URI has none, RFC 9110 §4.2.1) and a name without empty labels
/// (`..`, a leading dot), as nginx and lighttpd require.
fn valid_host(v: &[u8]) -> bool {
    let (host_ok, rest) = if let Some(inner) = v.strip_prefix(b"[") {
        let Some(close) = memchr::memchr(b']', inner) else {
            return false;
        };
        let lit = &inner[..close];
        let ok = !lit.is_empty()
            && lit
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            && lit.contains(&b':');
        (ok, &inner[close + 1..])
    } else {
        let end = memchr::memchr(b':', v).unwrap_or(v.len());
        let name = &v[..end];
        let ok = !name.is_empty()
            && !name.starts_with(b".")
            && !name.windows(2).any(|w| w == b"..")
            && name.iter().all(|&b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'.'
                            | b'_'
                            | b'~'
                            | b'%'
                            | b'!'
                            | b'$'
                            | b'&'
                            | b'\''
                            | b'('
                            | b')'
                            | b'*'
                            | b'+'
                            | b','
                            | b';'
                            | b'='
                    )
            });
        (ok, &v[end..])
    };
    let port_ok = match rest {
        [] => true,
        [b':', port @ ..] => port.len() <= 5 && port.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    host_ok && port_ok
}

/// Checks a request's `Transfer-Encoding` codings (all its lines, in order): only
/// `chunked`, once and last, is something this server can frame (RFC 9112 §6.1, §6.3).
fn transfer_codings(headers: &[httparse::Header<'_>]) -> Result<bool, Status> {
    let (mut any, mut chunked, mut other, mut last_chunked) = (false, 0, false, false);
    for h in headers {
        if !h.name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        any = true;
        for coding in h.value.split(|&b| b == b',') {
            let name = coding
                .split(|&b| b == b';')
                .next()
                .unwrap_or(b"")
                .trim_ascii();
            if name.is_empty() {
                continue;
            }
            last_chunked = name.eq_ignore_ascii_case(b"chunked");
            if last_chunked {
                chunked += 1;
            } else {
                other = true;
            }
        }
    }
    if !any {
        return Ok(false);
    }
    if !last_chunked || chunked > 1 {
        // The body's end cannot be found: the connection cannot be kept in step.
        return Err(Status::BadRequest);
    }
    if other {
        // `gzip, chunked`: framed, but in a coding we do not decode.
        return Err(Status::NotImplemented);
    }
    Ok(true)
}

fn interpret<'a>(
    method: &'a str,
    target: &'a str,
    minor: u8,
    line: &'a [u8],
    headers: &[httparse::Header<'a>],
) -> Result<Head<'a>, Status> {
    let mut head = Head::new(method, target, minor, line);
    let mut framing = Framing::default();
    for h in headers {
        head.field(h.name.as_bytes(), h.value, &mut framing)?;
    }
    head.finish(framing, || transfer_codings(headers))?;
    Ok(head)
}

/// What a head's fields say about its framing, gathered field by field.
#[derive(Default)]
pub(super) struct Framing {
    content_length: Option<u64>,
    /// A `Transfer-Encoding` field was seen.
    codings: bool,
    close: bool,
}

impl<'a> Head<'a> {
    /// A head of a request line and no fields yet.
    #[inline]
    pub(super) fn new(method: &'a str, target: &'a str, minor: u8, line: &'a [u8]) -> Head<'a> {
        Head {
            method: match method {
                "GET" => Method::Get,
                "HEAD" => Method::Head,
                other => Method::Other(other),
            },
            target,
            minor,
            line,
            host: None,
            keep_alive: minor >= 1,
            has_body: false,
            body: BodyFraming::None,
            if_modified_since: None,
            if_unmodified_since: None,
            if_match: FieldLines::default(),
            if_none_match: FieldLines::default(),
            range: None,
            if_range: None,
            accept_encoding: FieldLines::default(),
            authorization: None,
            referer: None,
            user_agent: None,
        }
    }

    /// Takes in one field: `name` a token (in any case), `value` without the
    /// whitespace around it.
    // Inlined into the HTTP/1 parser's loop, where a call per field showed.
    #[inline(always)]
    pub(super) fn field(
        &mut self,
        name: &[u8],
        value: &'a [u8],
        framing: &mut Framing,
    ) -> Result<(), Status> {
        // `n` is lower case, letters and `-`: OR-ing 0x20 into a byte of a field name
        // (a token, as httparse checked) lowers a letter and matches nothing else.
        let is = |n: &str| {
            name.len() == n.len() && name.iter().zip(n.bytes()).all(|(&a, b)| a | 0x20 == b)
        };
        if is("host") {
            // RFC 9112 §3.2: more than one Host is a 400.
            if self.host.replace(value).is_some() || !valid_host(value.trim_ascii()) {
                return Err(Status::BadRequest);
            }
        } else if is("connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    framing.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && self.minor == 0 {
                    self.keep_alive = true;
                }
            }
        } else if is("content-length") {
            let v = value.trim_ascii();
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(Status::BadRequest);
            }
            let n = v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            // Two lengths, even equal ones, are refused (RFC 9110 §8.6 allows it; both
            // nginx and lighttpd do): a smuggling attempt is their usual reason.
            if framing.content_length.replace(n).is_some() {
                return Err(Status::BadRequest);
            }
        } else if is("transfer-encoding") {
            framing.codings = true;
        } else if is("if-modified-since") {
            self.if_modified_since = Some(value);
        } else if is("if-unmodified-since") {
            self.if_unmodified_since = Some(value);
        } else if is("if-match") {
            self.if_match.push(value);
        } else if is("if-none-match") {
            self.if_none_match.push(value);
        } else if is("range") {
            self.range = Some(value);
        } else if is("if-range") {
            self.if_range = Some(value);
        } else if is("accept-encoding") {
            self.accept_encoding.push(value);
        } else if is("authorization") {
            self.authorization = Some(value);
        } else if is("referer") {
            self.referer = Some(value);
        } else if is("user-agent") {
            self.user_agent = Some(value);
        }
        Ok(())
    }

    /// Checks what only the whole head shows and settles its framing;
    /// `codings` checks the `Transfer-Encoding` fields, if there were any, and
    /// says whether they end in `chunked`.
    #[inline]
    pub(super) fn finish(
        &mut self,
        framing: Framing,
        codings: impl FnOnce() -> Result<bool, Status>,
    ) -> Result<(), Status> {
        // Connection: close wins over a 1.0 keep-alive listed alongside it.
        if framing.close {
            self.keep_alive = false;
        }
        if self.minor >= 1 && self.host.is_none() {
            return Err(Status::BadRequest);
        }
        let chunked = framing.codings && codings()?;
        // RFC 9112 §6.1: a 1.0 message with Transfer-Encoding has faulty framing, and
        // §6.3: one with both a length and codings may be a smuggling attempt.
        if chunked && (self.minor == 0 || framing.content_length.is_some()) {
            return Err(Status::BadRequest);
        }
        self.body = match framing.content_length {
            _ if chunked => BodyFraming::Chunked,
            Some(n) if n > 0 => BodyFraming::Length(n),
            _ => BodyFraming::None,
        };
        self.has_body = self.body != BodyFraming::None;
        Ok(())
    }
}

/// A single byte range resolved against a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable `Range`: send the whole file (also for multiple ranges, which RFC 9110
    /// lets a server ignore).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`; anything else is ignored (the whole file).
pub fn parse_range(value: &[u8], len: u64) -> RangeSpec {
    let Some(spec) = value.trim_ascii().strip_prefix(b"bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(&b',') {
        return RangeSpec::Whole;
    }
    range_member(spec, len)
}

/// One `a-b`, `a-` or `-n` of a range list.
fn range_member(spec: &[u8], len: u64) -> RangeSpec {
    let Some(dash) = memchr::memchr(b'-', spec) else {
        return RangeSpec::Whole;
    };
    let num = |s: &[u8]| -> Option<u64> {
        let s = s.trim_ascii();
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // A position past any file is still a position: it saturates, so `0-` with
        // twenty nines is the whole file as a 206 and a start that large is a 416.
        Some(s.iter().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        }))
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.trim_ascii().is_empty() {
        // Suffix: the last n bytes.
        return match num(last) {
            None => RangeSpec::Whole,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        };
    }
    let Some(start) = num(first) else {
        return RangeSpec::Whole;
    };
    let end = if last.trim_ascii().is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(e) if e >= start => e,
            _ => return RangeSpec::Whole,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Part {
        start,
        end: end.min(len - 1),
    }
}

/// At most this many ranges in one `Range`; more and the whole file is sent.
pub const MAX_RANGES: usize = 16;

/// Byte ranges resolved against a file, coalesced, in request order (RFC 9110 §14.3).
// On the stack for one answer, so parsing a Range never allocates.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// Send the whole file: no usable `Range` (bad syntax, another unit, too many
    /// ranges, or ranges asking for more bytes in all than the file has).
    Whole,
    /// `n` ranges, each `(start, end)` inclusive, in `parts[..n]`.
    Parts {
        parts: [(u64, u64); MAX_RANGES],
        n: usize,
    },
    /// None is satisfiable: 416.
    Unsatisfiable,
}

impl Ranges {
    pub fn parts(&self) -> &[(u64, u64)] {
        match self {
            Ranges::Parts { parts, n } => &parts[..*n],
            _ => &[],
        }
    }
}

/// `bytes=` followed by up to [`MAX_RANGES`] comma-separated `a-b`, `a-`, `-n`.
/// Unsatisfiable members are dropped; overlapping or adjacent ones are merged into
/// the first of them, so no byte is sent twice. Never allocates.
pub fn parse_ranges(value: &[u8], len: u64) -> Ranges {
    let Some(spec) = value.trim_ascii().strip_prefix(b"bytes=") else {
        return Ranges::Whole;
    };
    let mut parts = [(0u64, 0u64); MAX_RANGES];
    let mut n = 0;
    let mut asked = 0u64;
    let mut count = 0;
    for member in spec.split(|&b| b == b',') {
        if member.trim_ascii().is_empty() {
            // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return Ranges::Whole;
        }
        let (start, end) = match range_member(member, len) {
            RangeSpec::Whole => return Ranges::Whole,
            RangeSpec::Unsatisfiable => continue,
            RangeSpec::Part { start, end } => (start, end),
        };
        asked = asked.saturating_add(end - start + 1);
        parts[n] = (start, end);
        n += 1;
    }
    if count == 0 {
        return Ranges::Whole;
    }
    if n == 0 {
        return Ranges::Unsatisfiable;
    }
    if asked > len {
        // Overlaps asking for more than the file: the file once (RFC 9110 §14.2).
        return Ranges::Whole;
    }
    // Merge until nothing touches anything else (n <= 16: the quadratic scan, redone
    // after a range grows, is cheap).
    let mut i = 0;
    while i < n {
        let (mut j, mut grew) = (i + 1, false);
        while j < n {
            let (a, b) = (parts[i], parts[j]);
            if a.0 <= b.1.saturating_add(1) && b.0 <= a.1.saturating_add(1) {
                parts[i] = (a.0.min(b.0), a.1.max(b.1));
                parts.copy_within(j + 1..n, j);
                n -= 1;
                grew = true;
            } else {
                j += 1;
            }
        }
        // A grown range may now touch one before it.
        i = if grew { 0 } else { i + 1 };
    }
    Ranges::Parts { parts, n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8]) -> (Head<'_>, usize) {
        match parse_head(input) {
            Parsed::Complete { head, len } => (head, len),
            other => panic!("{other:?}"),
        }
    }

    fn rejected(input: &[u8]) -> Status {
        match parse_head(input) {
            Parsed::Reject { status, .. } => status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_heads() {
        let (h, len) = complete(b"GET /a HTTP/1.0\r\n\r\nGET /b");
        assert_eq!(len, 19);
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.target, "/a");
        assert_eq!(h.minor, 0);
        assert!(!h.keep_alive);
        assert_eq!(h.line, b"GET /a HTTP/1.0");

        let (h, _) = complete(b"HEAD / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n");
        assert_eq!(h.method, Method::Head);
        assert!(h.keep_alive);
        assert_eq!(h.user_agent, Some(&b"t"[..]));

        let (h, len) = complete(b"\r\n\r\nGET / HTTP/1.0\nConnection: Keep-Alive\n\n");
        assert_eq!(len, 43);
        assert!(h.keep_alive);

        let (h, _) = complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) =
            complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(h.method, Method::Other("POST"));
        assert!(h.has_body);
    }

    /// A head that ends the buffer (httparse finds its end) parses exactly as one
    /// followed by more bytes (`head_end` finds it first).
    #[test]
    fn a_head_ending_the_buffer_parses_as_one_followed_by_more() {
        let outcome = |input: &[u8]| match parse_head(input) {
            Parsed::Complete { head, len } => format!("{len} {} {}", head.target, head.minor),
            Parsed::Reject { status, line } => format!("{status:?} {line:?}"),
            Parsed::Partial => "partial".to_string(),
        };
        for head in [
            &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /a HTTP/1.0\n\n",
            b"GET /a HTTP/1.0\nX: y\n\r\n",
            b"\r\nGET /a HTTP/1.0\r\nX: y\r\n\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.0\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.0\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.0\r\nX: a\r\n \r\n\r\n",
        ] {
            let mut more = head.to_vec();
            more.extend_from_slice(b"GET /next");
            assert_eq!(
                outcome(head),
                outcome(&more),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        let many: String = (0..101).map(|i| format!("X{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.0\r\n{many}\r\n");
        assert_eq!(rejected(head.as_bytes()), Status::HeaderFieldsTooLarge);
        assert_eq!(
            rejected(format!("{head}GET").as_bytes()),
            Status::HeaderFieldsTooLarge
        );
    }

    #[test]
    fn partial_until_the_empty_line() {
        for p in [
            &b""[..],
            b"G",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
            b"\r\n\r\n",
        ] {
            assert!(matches!(parse_head(p), Parsed::Partial), "{p:?}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / FOO/1.0\r\n\r\n",
            b"GET  / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.0\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.0\r\nX: a\x00b\r\n\r\n",
            b"GET /\x00 HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.0\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ] {
            assert_eq!(
                rejected(bad),
                Status::BadRequest,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn framing_versions_and_hosts() {
        use BodyFraming::*;
        let framing = |te: &str| {
            let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{te}\r\n");
            match parse_head(req.as_bytes()) {
                Parsed::Complete { head, .. } => Ok(head.body),
                Parsed::Reject { status, .. } => Err(status),
                Parsed::Partial => panic!("partial"),
            }
        };
        assert_eq!(framing(""), Ok(None));
        assert_eq!(framing("Content-Length: 0\r\n"), Ok(None));
        assert_eq!(framing("Content-Length: 7\r\n"), Ok(Length(7)));
        assert_eq!(framing("Transfer-Encoding: chunked\r\n"), Ok(Chunked));
        assert_eq!(framing("Transfer-Encoding: CHUNKED\r\n"), Ok(Chunked));
        for bad in [
            "Transfer-Encoding: xchunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            "Content-Length: 1\r\nContent-Length: 2\r\n",
            "Content-Length: 2\r\nContent-Length: 2\r\n",
        ] {
            assert_eq!(framing(bad), Err(Status::BadRequest), "{bad}");
        }
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n"),
            Err(Status::NotImplemented)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            Err(Status::NotImplemented)
        );
        assert_eq!(
            rejected(b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status::BadRequest
        );

        for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/2.1"] {
            let req = format!("GET / {v}\r\nHost: x\r\n\r\n");
            assert_eq!(rejected(req.as_bytes()), Status::HttpVersionNotSupported);
        }
        assert_eq!(rejected(b"GET / HTTP/22.0\r\n\r\n"), Status::BadRequest);
        assert_eq!(
            rejected(b"GET / HTTP/9.9\r\n\r\n"),
            Status::HttpVersionNotSupported
        );
        assert_eq!(
            rejected(b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            rejected(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n"),
            Status::HttpVersionNotSupported
        );

        for good in [
            "x",
            "t.",
            "a.example:8080",
            "127.0.0.1",
            "[::1]",
            "[::1]:80",
            "a-b_c~d",
            "h:",
        ] {
            let req = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert!(
                matches!(parse_head(req.as_bytes()), Parsed::Complete { .. }),
                "{good}"
            );
        }
        for bad in [
            "bad host/x",
            "a/b",
            "a:b",
            "a:1:2",
            "[::1",
            "[zz]",
            "a@b",
            "a:123456",
            "",
            "..",
            "a..b",
            ".a",
            ":80",
            "[::1]x",
        ] {
            let req = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(rejected(req.as_bytes()), Status::BadRequest, "{bad}");
        }
    }

    #[test]
    fn several_ranges() {
        let r = |v: &str, len| parse_ranges(v.as_bytes(), len);
        let parts = |v: &str| r(v, 100).parts().to_vec();
        assert_eq!(parts("bytes=0-0,2-3"), [(0, 0), (2, 3)]);
        assert_eq!(parts("bytes=0-1,2-3"), [(0, 3)], "adjacent");
        assert_eq!(parts("bytes=5-9,0-6"), [(0, 9)], "overlapping");
        assert_eq!(
            parts("bytes=50-59,0-0,58-70"),
            [(50, 70), (0, 0)],
            "request order"
        );
        assert_eq!(parts("bytes=0-0, ,-1"), [(0, 0), (99, 99)]);
        assert_eq!(
            parts("bytes=200-300,0-0"),
            [(0, 0)],
            "unsatisfiable dropped"
        );
        assert_eq!(r("bytes=200-300,400-", 100), Ranges::Unsatisfiable);
        assert_eq!(r("bytes=0-0,x", 100), Ranges::Whole, "bad syntax anywhere");
        assert_eq!(
            r("bytes=0-60,40-99", 100),
            Ranges::Whole,
            "asks more than the file"
        );
        let many = (0..MAX_RANGES)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect::<Vec<_>>();
        assert_eq!(
            parts(&format!("bytes={}", many.join(","))).len(),
            MAX_RANGES
        );
        let too_many = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect::<Vec<_>>();
        assert_eq!(
            r(&format!("bytes={}", too_many.join(",")), 100),
            Ranges::Whole
        );
        assert_eq!(r("bytes=", 100), Ranges::Whole);
    }

    #[test]
    fn limits() {
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat(b'a').take(MAX_URI));
        assert!(
            matches!(parse_head(&long), Parsed::Partial),
            "the version may follow"
        );
        long.extend(std::iter::repeat(b'a').take(100));
        assert_eq!(rejected(&long), Status::UriTooLong, "unterminated");
        long.extend_from_slice(b" HTTP/1.0\r\n\r\n");
        assert_eq!(rejected(&long), Status::UriTooLong, "terminated");

        let mut ok = b"GET /".to_vec();
        ok.extend(std::iter::repeat(b'a').take(MAX_URI - 1));
        ok.extend_from_slice(b" HTTP/1.0\r\n\r\n");
        assert!(matches!(parse_head(&ok), Parsed::Complete { .. }));

        let mut big = b"GET / HTTP/1.0\r\n".to_vec();
        while big.len() <= MAX_HEAD {
            big.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        assert_eq!(rejected(&big), Status::HeaderFieldsTooLarge, "unterminated");
        big.extend_from_slice(b"\r\n");
        assert_eq!(rejected(&big), Status::HeaderFieldsTooLarge, "terminated");

        let mut many = b"GET / HTTP/1.0\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(rejected(&many), Status::HeaderFieldsTooLarge);

        let mut hundred = b"GET / HTTP/1.0\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            hundred.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        hundred.extend_from_slice(b"\r\n");
        assert!(matches!(parse_head(&hundred), Parsed::Complete { .. }));
    }

    #[test]
    fn ranges() {
        use RangeSpec::*;
        let r = |v: &str| parse_range(v.as_bytes(), 100);
        assert_eq!(r("bytes=0-9"), Part { start: 0, end: 9 });
        assert_eq!(r("bytes=90-"), Part { start: 90, end: 99 });
        assert_eq!(r("bytes=90-1000"), Part { start: 90, end: 99 });
        assert_eq!(r("bytes=-10"), Part { start: 90, end: 99 });
        assert_eq!(r("bytes=-1000"), Part { start: 0, end: 99 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=5-1"), Whole);
        assert_eq!(r("bytes=0-1,5-6"), Whole);
        assert_eq!(r("items=0-1"), Whole);
        assert_eq!(r("bytes=x-1"), Whole);
        assert_eq!(r("bytes=99999999999999999999-"), Unsatisfiable);
        assert_eq!(
            r("bytes=0-99999999999999999999"),
            Part { start: 0, end: 99 }
        );
        assert_eq!(r("bytes=-99999999999999999999"), Part { start: 0, end: 99 });
        assert_eq!(parse_range(b"bytes=0-", 0), Unsatisfiable);
    }
}
