//! The forward proxy's protocol: each request head a client sends is parsed, checked
//! and rewritten; the relay moves the bytes.
//!
//! The one idea: a proxy passes messages on, not connections. `CONNECT host:port`
//! turns the client's connection into a tunnel (plain bytes from then on). Any other
//! request must be in absolute form (`GET http://host/path`); it is rewritten to
//! origin form without the fields that describe only the client's hop (RFC 9110
//! §7.6.1), its body framing is decided once here ([`framing::Frame`]), and ambiguous
//! framing (two lengths, a length with chunking) is refused before a byte goes
//! upstream, since a proxy and an origin that read one message two ways are how
//! requests get smuggled. The response head goes through [`parse_response`] the same
//! way. So this module is pure functions from buffered heads to decisions, plus the
//! [`Policy`] that says which destinations (and which users) are allowed.

pub mod framing;

use framing::Frame;
use std::net::IpAddr;

/// A request head may be at most this long; past it the client gets a 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// A response head may be at most this long; past it the client gets a 502.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 256;
/// What this proxy calls itself in `Via` (RFC 9110 §7.6.3).
pub const VIA: &str = "1.1 sysnet-proxy";
/// The methods a proxy answering OPTIONS itself lists; TRACE is never forwarded.
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, CONNECT";

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub route: Route,
    /// Bytes of the client's input that made up the head.
    pub head_len: usize,
    /// The request line as received, for the access log.
    pub line: Vec<u8>,
    pub referer: Option<Vec<u8>>,
    pub user_agent: Option<Vec<u8>>,
    /// The `Proxy-Authorization` value: checked by the [`Policy`], never forwarded.
    pub credentials: Option<Vec<u8>>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `CONNECT host:port`: answer 200, then relay bytes both ways.
    Tunnel { host: String, port: u16 },
    /// An absolute-form request, to be sent to `host` rewritten.
    Forward(Forward),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub host: String,
    pub port: u16,
    /// The request head rewritten to origin form, to send first.
    pub head: Vec<u8>,
    /// How the request body that follows the head is delimited.
    pub body: Frame,
    /// The client asked to keep its connection open after the response.
    pub keep_alive: bool,
    /// A HEAD request: its response has no body whatever its fields say.
    pub head_method: bool,
    /// The client's HTTP/1.x minor version.
    pub minor: u8,
}

/// A request the proxy answers itself (a refusal, or OPTIONS with `Max-Forwards: 0`),
/// after which the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: String,
    /// Extra header lines for the answer, each ending in CRLF.
    pub headers: String,
}

impl Refusal {
    pub fn new(status: u16, why: impl Into<String>) -> Self {
        Self {
            status,
            why: why.into(),
            headers: String::new(),
        }
    }

    fn with_header(mut self, line: String) -> Self {
        self.headers.push_str(&line);
        self.headers.push_str("\r\n");
        self
    }

    /// The bytes the client is sent.
    pub fn response(&self) -> Vec<u8> {
        if self.status == 200 {
            return format!(
                "HTTP/1.1 200 OK\r\nServer: sysnet-proxy\r\n{}Content-Length: 0\r\nConnection: close\r\n\r\n",
                self.headers
            )
            .into_bytes();
        }
        error_response_with(self.status, &self.why, &self.headers)
    }
}

/// The fields named by `Connection` (and, from old clients, `Proxy-Connection`),
/// lower-cased.
pub(crate) fn connection_tokens(headers: &[httparse::Header<'_>]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| {
            h.name.eq_ignore_ascii_case("connection")
                || h.name.eq_ignore_ascii_case("proxy-connection")
        })
        .flat_map(|h| h.value.split(|b| *b == b','))
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Fields that describe one hop and are never passed on (RFC 9110 §7.6.1), plus
/// those the proxy writes itself. Fields a message's framing depends on stay even
/// if `Connection` names them: dropping them would change where the message ends.
pub(crate) fn is_hop_by_hop(name: &str, listed: &[String]) -> bool {
    const ALWAYS: [&str; 9] = [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "max-forwards",
    ];
    const KEPT: [&str; 3] = ["content-length", "transfer-encoding", "host"];
    ALWAYS.iter().any(|h| name.eq_ignore_ascii_case(h))
        || (listed.iter().any(|t| name.eq_ignore_ascii_case(t))
            && !KEPT.iter().any(|h| name.eq_ignore_ascii_case(h)))
}

/// The body framing a message's fields declare (RFC 9112 §6.3), or why it is
/// ambiguous.
fn body_framing(headers: &[httparse::Header<'_>], minor: u8) -> Result<Frame, &'static str> {
    let mut length: Option<u64> = None;
    let mut codings: Vec<String> = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            for v in h.value.split(|b| *b == b',') {
                let v = v.trim_ascii();
                if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                    return Err("invalid Content-Length");
                }
                let n: u64 = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("invalid Content-Length")?;
                if length.is_some_and(|l| l != n) {
                    return Err("differing Content-Length values");
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings.extend(
                h.value
                    .split(|b| *b == b',')
                    .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty()),
            );
        }
    }
    if codings.is_empty() {
        return Ok(length.map_or(Frame::Done, Frame::length));
    }
    if length.is_some() {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if minor == 0 {
        return Err("Transfer-Encoding in an HTTP/1.0 message");
    }
    if codings.last().map(String::as_str) != Some("chunked")
        || codings.iter().filter(|c| *c == "chunked").count() > 1
    {
        return Err("Transfer-Encoding that does not end in a single chunked");
    }
    Ok(Frame::chunked())
}

fn push_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// Parses the request head buffered so far. `Ok(None)`: not complete yet.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(Refusal::new(431, "request head too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(431, "too many header lines"))
        }
        Err(e) => return Err(Refusal::new(400, format!("malformed request: {e}"))),
    };
    if head_len > MAX_HEAD {
        return Err(Refusal::new(431, "request head too large"));
    }
    // httparse filled every field of a complete request.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::new(400, "malformed request line"));
    };
    let find = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.to_vec())
    };
    let line = format!("{method} {target} HTTP/1.{minor}").into_bytes();
    let credentials = find("proxy-authorization");
    let (referer, user_agent) = (find("referer"), find("user-agent"));
    let request = |route| Request {
        route,
        head_len,
        line: line.clone(),
        referer: referer.clone(),
        user_agent: user_agent.clone(),
        credentials: credentials.clone(),
    };
    if req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count()
        > 1
    {
        return Err(Refusal::new(400, "more than one Host field"));
    }
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)
            .ok_or_else(|| Refusal::new(400, format!("bad CONNECT target {target:?}")))?;
        return Ok(Some(request(Route::Tunnel { host, port })));
    }
    if method == "TRACE" {
        // A TRACE answered by the origin would echo the client's fields, this
        // proxy's credentials included, to whatever script made the request.
        return Err(
            Refusal::new(405, "TRACE is not forwarded").with_header(format!("Allow: {ALLOW}"))
        );
    }
    let rest = if let Some(r) = strip_prefix_ci(target, "http://") {
        r
    } else if strip_prefix_ci(target, "https://").is_some() {
        return Err(Refusal::new(
            400,
            "https:// URLs go through CONNECT (curl -p, or an https proxy client)",
        ));
    } else {
        return Err(Refusal::new(
            400,
            "a proxy request needs an absolute URL (http://host/path) or CONNECT",
        ));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // Credentials in the URL are not forwarded anywhere.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = split_authority(authority, Some(80))
        .ok_or_else(|| Refusal::new(400, format!("bad host in {target:?}")))?;
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let body = body_framing(req.headers, minor).map_err(|why| Refusal::new(400, why))?;

    let mut max_forwards = None;
    if method == "OPTIONS" {
        if let Some(v) = find("max-forwards") {
            let n: u32 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| Refusal::new(400, "invalid Max-Forwards"))?;
            if n == 0 {
                // RFC 9110 §7.6.2: the last recipient answers itself.
                let mut answer = Refusal::new(200, "Max-Forwards reached 0")
                    .with_header(format!("Allow: {ALLOW}"));
                answer.headers.push_str(&format!("Via: {VIA}\r\n"));
                return Err(answer);
            }
            max_forwards = Some(n - 1);
        }
    }

    let listed = connection_tokens(req.headers);
    let keep_alive = if minor == 0 {
        listed.iter().any(|t| t == "keep-alive")
    } else {
        !listed.iter().any(|t| t == "close")
    };
    let mut head = Vec::with_capacity(head_len + 64);
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(path.as_bytes());
    // An intermediary sends its own version (RFC 9110 §2.5); a chunked answer for
    // an HTTP/1.0 client is decoded on the way back.
    head.extend_from_slice(b" HTTP/1.1\r\n");
    // The target's authority, not the client's Host, names the origin (RFC 9112 §3.2.2).
    push_header(&mut head, b"Host", authority.as_bytes());
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name, &listed) || h.name.eq_ignore_ascii_case("host") {
            continue;
        }
        push_header(&mut head, h.name.as_bytes(), h.value);
    }
    if let Some(n) = max_forwards {
        push_header(&mut head, b"Max-Forwards", n.to_string().as_bytes());
    }
    push_header(&mut head, b"Via", VIA.as_bytes());
    // A client that stays may send its next request to the same origin, over the
    // same upstream connection; one that leaves lets the origin know.
    head.extend_from_slice(if keep_alive {
        b"\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    Ok(Some(request(Route::Forward(Forward {
        host,
        port,
        head,
        body,
        keep_alive,
        head_method: method == "HEAD",
        minor,
    }))))
}

/// A parsed response head, rewritten for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub head: Vec<u8>,
    /// Bytes of the upstream's input that made up the head.
    pub head_len: usize,
    pub status: u16,
    /// A 1xx: passed on, and another head follows.
    pub interim: bool,
    pub body: Frame,
    /// The client's connection stays open after this response.
    pub keep_alive: bool,
    /// A chunked body for an HTTP/1.0 client: pass on only its data, then close.
    pub dechunk: bool,
    /// The upstream connection may carry another request after this response.
    pub reusable: bool,
}

/// Parses the response head buffered so far, for a request that was a HEAD or not
/// and whose client wants its connection kept or not. `Ok(None)`: not complete yet.
/// A refusal is a 502 for the client.
pub fn parse_response(
    buf: &[u8],
    head_method: bool,
    client_keep_alive: bool,
    client_minor: u8,
) -> Result<Option<Response>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err(Refusal::new(
                    502,
                    "the upstream's response head is too large",
                ));
            }
            return Ok(None);
        }
        Err(e) => {
            return Err(Refusal::new(
                502,
                format!("malformed response from the upstream: {e}"),
            ))
        }
    };
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Err(Refusal::new(502, "malformed status line from the upstream"));
    };
    if status == 101 {
        return Err(Refusal::new(502, "the upstream switched protocols unasked"));
    }
    let interim = (100..200).contains(&status);
    let no_body = interim || head_method || status == 204 || status == 304;
    let body = if no_body {
        Frame::Done
    } else {
        match body_framing(res.headers, minor) {
            Ok(f) => f,
            Err("Transfer-Encoding in an HTTP/1.0 message")
            | Err("Transfer-Encoding that does not end in a single chunked") => Frame::UntilEof,
            Err(why) => return Err(Refusal::new(502, format!("upstream response: {why}"))),
        }
    };
    let has_length = res
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("content-length"));
    let body = match body {
        // Neither length nor chunking: the body ends when the upstream closes.
        Frame::Done if !no_body && !has_length => Frame::UntilEof,
        f => f,
    };
    let dechunk = client_minor == 0 && matches!(body, Frame::Chunked(_));
    let reusable = minor == 1 && !interim && body != Frame::UntilEof && !listed_close(res.headers);
    let keep_alive = client_keep_alive && body != Frame::UntilEof && !dechunk;
    let listed = connection_tokens(res.headers);
    let mut head = Vec::with_capacity(head_len + 64);
    head.extend_from_slice(format!("HTTP/1.1 {status} ").as_bytes());
    head.extend_from_slice(res.reason.unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for h in res.headers.iter() {
        if is_hop_by_hop(h.name, &listed)
            || (dechunk && h.name.eq_ignore_ascii_case("transfer-encoding"))
        {
            continue;
        }
        push_header(&mut head, h.name.as_bytes(), h.value);
    }
    push_header(&mut head, b"Via", VIA.as_bytes());
    if !interim {
        if !keep_alive {
            head.extend_from_slice(b"Connection: close\r\n");
        } else if client_minor == 0 {
            head.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");
    Ok(Some(Response {
        head,
        head_len,
        status,
        interim,
        body,
        keep_alive,
        dechunk,
        reusable,
    }))
}

fn listed_close(headers: &[httparse::Header<'_>]) -> bool {
    connection_tokens(headers).iter().any(|t| t == "close")
}

/// `10/Oct/2000:13:55:36 +0000` for a Unix time: the access log's time, in UTC.
pub fn clf_time(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `user:password` pairs, as the token a client sends after `Basic `.
pub fn basic_token(user_password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in user_password.as_bytes().chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Parses an `--auth` file: one `user:password` per line; `#` starts a comment.
pub fn parse_auth_file(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.contains(':') || line.starts_with(':') {
            return Err(format!("line {}: expected user:password", i + 1));
        }
        tokens.push(basic_token(line));
    }
    if tokens.is_empty() {
        return Err("no user:password line".into());
    }
    Ok(tokens)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `host:port`, `[v6]:port`, or (with a default port) just `host`.
fn split_authority(s: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match &rest[end + 1..] {
            "" => (host, default_port?),
            p => (host, p.strip_prefix(':')?.parse().ok()?),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (s, default_port?),
        }
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    (ok && port != 0).then(|| (host.to_ascii_lowercase(), port))
}

/// A host or network in an allow- or deny-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `example.com` matches it exactly; `.example.com` matches it and every subdomain.
    Host(String),
    /// `10.0.0.0/8`, `::1/128`, or a bare address.
    Net { addr: IpAddr, prefix: u8 },
}

impl std::str::FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        if let Ok(addr) = a.parse::<IpAddr>() {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match p {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("bad prefix length in {s:?} (0 to {max})"))?,
                None => max,
            };
            return Ok(Rule::Net { addr, prefix });
        }
        if p.is_some() {
            return Err(format!("{s:?}: a /prefix needs an IP address"));
        }
        let host = s.trim_end_matches('.').to_ascii_lowercase();
        let valid = !host.trim_start_matches('.').is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
        if !valid {
            return Err(format!(
                "{s:?} is neither a host name nor an address/prefix"
            ));
        }
        Ok(Rule::Host(host))
    }
}

impl Rule {
    fn matches_host(&self, host: &str) -> bool {
        match self {
            Rule::Host(h) => match h.strip_prefix('.') {
                Some(domain) => host == domain || host.ends_with(h.as_str()),
                None => host == h,
            },
            Rule::Net { .. } => host.parse::<IpAddr>().is_ok_and(|ip| self.matches_ip(ip)),
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        let Rule::Net { addr, prefix } = self else {
            return false;
        };
        match (addr, ip.to_canonical()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// Which destinations clients may reach.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Ports a CONNECT tunnel may go to (443 by default, as browsers expect).
    pub connect_ports: Vec<u16>,
    /// When not empty, only these destinations are allowed.
    pub allow: Vec<Rule>,
    /// Never these (checked first).
    pub deny: Vec<Rule>,
    /// When not empty, a request needs `Proxy-Authorization: Basic` with one of these
    /// tokens (see [`basic_token`]).
    pub auth: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            connect_ports: vec![443],
            allow: Vec::new(),
            deny: Vec::new(),
            auth: Vec::new(),
        }
    }
}

impl Policy {
    /// Checks the client's credentials (RFC 9110 §11.7.2), then the route by name.
    pub fn check(&self, req: &Request) -> Result<(), Refusal> {
        if !self.auth.is_empty() {
            let token = req.credentials.as_deref().and_then(|v| {
                let v = std::str::from_utf8(v).ok()?.trim();
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then(|| token.trim())
            });
            let ok = token.is_some_and(|t| {
                // Every entry is compared, all of each, so timing does not say which
                // prefix matched.
                self.auth.iter().fold(false, |hit, a| {
                    hit | constant_time_eq(a.as_bytes(), t.as_bytes())
                })
            });
            if !ok {
                return Err(Refusal::new(407, "proxy authentication required")
                    .with_header("Proxy-Authenticate: Basic realm=\"sysnet-proxy\"".into()));
            }
        }
        self.check_route(&req.route)
    }

    /// Checks a route by name, before resolving it.
    pub fn check_route(&self, route: &Route) -> Result<(), Refusal> {
        let (host, port) = match route {
            Route::Tunnel { host, port, .. } => {
                if !self.connect_ports.contains(port) {
                    return Err(Refusal::new(
                        403,
                        format!("CONNECT to port {port} is not allowed"),
                    ));
                }
                (host, port)
            }
            Route::Forward(Forward { host, port, .. }) => (host, port),
        };
        if self.deny.iter().any(|r| r.matches_host(host)) {
            return Err(Refusal::new(403, format!("{host}:{port} is denied")));
        }
        // Allow-lists of networks are checked again on the resolved address.
        let by_name = self.allow.iter().any(|r| r.matches_host(host));
        let has_nets = self.allow.iter().any(|r| matches!(r, Rule::Net { .. }));
        if !self.allow.is_empty() && !by_name && !has_nets {
            return Err(Refusal::new(403, format!("{host}:{port} is not allowed")));
        }
        Ok(())
    }

    /// Checks the address a name resolved to, so a name cannot smuggle a client
    /// into a denied network.
    pub fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        if self.deny.iter().any(|r| r.matches_ip(ip)) {
            return Err(Refusal::new(403, format!("{host} ({ip}) is denied")));
        }
        if !self.allow.is_empty()
            && !self
                .allow
                .iter()
                .any(|r| r.matches_host(host) || r.matches_ip(ip))
        {
            return Err(Refusal::new(403, format!("{host} ({ip}) is not allowed")));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The reply a refused or failed request gets before its connection closes.
pub fn error_response(status: u16, why: &str) -> Vec<u8> {
    error_response_with(status, why, "")
}

fn error_response_with(status: u16, why: &str, headers: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        503 => "Service Unavailable",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let why = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!doctype html><title>{status} {reason}</title><h1>{status} {reason}</h1><p>{why}</p>\n"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nServer: sysnet-proxy\r\n{headers}Content-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a tunnel's client hears once the upstream connection is up.
pub const TUNNEL_ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(buf: &[u8]) -> Forward {
        match parse(buf).unwrap().unwrap().route {
            Route::Forward(f) => f,
            r => panic!("not a forward: {r:?}"),
        }
    }

    fn head(f: &Forward) -> String {
        String::from_utf8(f.head.clone()).unwrap()
    }

    #[test]
    fn connect_is_a_tunnel() {
        let r = parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nxx")
            .unwrap()
            .unwrap();
        assert_eq!(
            r.route,
            Route::Tunnel {
                host: "example.com".into(),
                port: 443,
            }
        );
        assert_eq!(r.head_len, 59);
    }

    #[test]
    fn absolute_form_is_rewritten_to_origin_form() {
        let f = forward(
            b"GET http://Example.com:8080/a/b?c=1 HTTP/1.1\r\nHost: other\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!((f.host.as_str(), f.port), ("example.com", 8080));
        assert_eq!(
            head(&f),
            "GET /a/b?c=1 HTTP/1.1\r\nHost: Example.com:8080\r\nAccept: */*\r\nVia: 1.1 sysnet-proxy\r\n\r\n"
        );
        assert!(f.keep_alive);
        assert_eq!(f.body, Frame::Done);
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_dropped() {
        let f = forward(
            b"GET http://a/ HTTP/1.1\r\nConnection: X-Hop, close\r\nX-Hop: secret\r\nKeep-Alive: 5\r\n\
              TE: trailers\r\nTrailer: X\r\nUpgrade: websocket\r\nProxy-Authorization: Basic eA==\r\n\
              Connection: Content-Length\r\nContent-Length: 2\r\nX-End: 1\r\n\r\nab",
        );
        assert_eq!(
            head(&f),
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-End: 1\r\nVia: 1.1 sysnet-proxy\r\nConnection: close\r\n\r\n"
        );
        assert!(!f.keep_alive);
        assert_eq!(f.body, Frame::Length(2));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for bad in [
            &b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n"[..],
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 5, 0\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            let r = parse(bad).unwrap_err();
            assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
        }
        let f =
            forward(b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(f.body, Frame::Length(5));
        let f = forward(b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert_eq!(f.body, Frame::chunked());
    }

    #[test]
    fn missing_host_header_is_added_and_path_defaults_to_root() {
        let f = forward(b"GET http://127.0.0.1 HTTP/1.0\r\n\r\n");
        assert_eq!(f.port, 80);
        assert!(!f.keep_alive);
        assert_eq!(
            head(&f),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nVia: 1.1 sysnet-proxy\r\nConnection: close\r\n\r\n"
        );
        assert!(forward(b"GET http://a/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn trace_is_refused_and_options_honours_max_forwards() {
        let r = parse(b"TRACE http://a/ HTTP/1.1\r\nMax-Forwards: 3\r\n\r\n").unwrap_err();
        assert_eq!(r.status, 405);
        assert!(r.headers.contains("Allow: "));
        let r = parse(b"OPTIONS http://a/ HTTP/1.1\r\nMax-Forwards: 0\r\n\r\n").unwrap_err();
        assert_eq!(r.status, 200);
        assert!(String::from_utf8(r.response())
            .unwrap()
            .starts_with("HTTP/1.1 200 OK\r\n"));
        let f = forward(b"OPTIONS http://a/ HTTP/1.1\r\nMax-Forwards: 3\r\n\r\n");
        assert!(head(&f).contains("\r\nMax-Forwards: 2\r\n"), "{}", head(&f));
    }

    #[test]
    fn responses_lose_hop_by_hop_fields_and_gain_via() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nabc",
            false,
            true,
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(r.head).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nVia: 1.1 sysnet-proxy\r\n\r\n"
        );
        assert_eq!(r.body, Frame::Length(3));
        assert!(r.keep_alive);
        // No length: ends at close, so the client's connection closes too.
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\n", false, true, 1)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, Frame::UntilEof);
        assert!(!r.keep_alive);
        assert!(String::from_utf8(r.head)
            .unwrap()
            .ends_with("Connection: close\r\n\r\n"));
        // HEAD, 204 and 304 have no body whatever they say.
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            true,
            true,
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, Frame::Done);
        assert!(String::from_utf8(r.head)
            .unwrap()
            .ends_with("Connection: keep-alive\r\n\r\n"));
        let r = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", false, true, 1)
            .unwrap()
            .unwrap();
        assert!(r.interim);
        // Chunks for an HTTP/1.0 client are decoded, and the end is the close.
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            true,
            0,
        )
        .unwrap()
        .unwrap();
        assert!(r.dechunk && !r.keep_alive);
        assert_eq!(
            String::from_utf8(r.head).unwrap(),
            "HTTP/1.1 200 OK\r\nVia: 1.1 sysnet-proxy\r\nConnection: close\r\n\r\n"
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert_eq!(parse_response(bad, false, true, 1).unwrap_err().status, 502);
        }
    }

    #[test]
    fn basic_auth_tokens_and_the_407() {
        assert_eq!(basic_token("alice:secret"), "YWxpY2U6c2VjcmV0");
        assert_eq!(basic_token("a:b"), "YTpi");
        assert_eq!(basic_token("ab:c"), "YWI6Yw==");
        let p = Policy {
            auth: parse_auth_file("# users\nalice:secret\n").unwrap(),
            ..Policy::default()
        };
        let req = |cred: &str| {
            parse(format!("GET http://a/ HTTP/1.1\r\n{cred}\r\n").as_bytes())
                .unwrap()
                .unwrap()
        };
        assert!(p
            .check(&req("Proxy-Authorization: basic YWxpY2U6c2VjcmV0\r\n"))
            .is_ok());
        let r = p
            .check(&req("Proxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\n"))
            .unwrap_err();
        assert_eq!(r.status, 407);
        assert!(r.headers.starts_with("Proxy-Authenticate: Basic realm="));
        assert_eq!(p.check(&req("X: y\r\n")).unwrap_err().status, 407);
        assert!(parse_auth_file("nocolon\n").is_err());
    }

    #[test]
    fn clf_time_is_utc() {
        assert_eq!(clf_time(971_185_336), "10/Oct/2000:13:42:16 +0000");
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn bad_requests_are_refused_with_their_status() {
        assert_eq!(parse(b"GET /x HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(
            parse(b"GET https://a/ HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(b"CONNECT nohost HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(b"CONNECT a:0 HTTP/1.1\r\n\r\n").unwrap_err().status,
            400
        );
        assert_eq!(parse(b"\x00\x01\x02\r\n\r\n").unwrap_err().status, 400);
        let big = vec![b'a'; MAX_HEAD + 1];
        assert!(matches!(parse(&big).unwrap_err().status, 400 | 431));
        let mut long = b"GET http://a/ HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(parse(&long).unwrap_err().status, 431);
        assert_eq!(
            parse(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n").unwrap(),
            None
        );
    }

    #[test]
    fn ipv6_authorities() {
        let r = parse(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let Route::Tunnel { host, port } = r.route else {
            panic!()
        };
        assert_eq!((host.as_str(), port), ("::1", 443));
    }

    #[test]
    fn policy_defaults_allow_connect_to_443_only() {
        let p = Policy::default();
        let t = |port| Route::Tunnel {
            host: "a".into(),
            port,
        };
        assert!(p.check_route(&t(443)).is_ok());
        assert_eq!(p.check_route(&t(22)).unwrap_err().status, 403);
    }

    #[test]
    fn deny_and_allow_lists_by_name_and_network() {
        let p = Policy {
            connect_ports: vec![443],
            allow: vec![
                "127.0.0.0/8".parse().unwrap(),
                ".example.com".parse().unwrap(),
            ],
            deny: vec![
                "bad.example.com".parse().unwrap(),
                "127.0.0.2".parse().unwrap(),
            ],
            auth: Vec::new(),
        };
        let f = |host: &str| {
            Route::Forward(Forward {
                host: host.into(),
                port: 80,
                head: vec![],
                body: Frame::Done,
                keep_alive: false,
                head_method: false,
                minor: 1,
            })
        };
        assert!(p.check_route(&f("www.example.com")).is_ok());
        assert!(p.check_route(&f("example.com")).is_ok());
        assert_eq!(
            p.check_route(&f("bad.example.com")).unwrap_err().status,
            403
        );
        assert!(p
            .check_addr("localhost", "127.0.0.1".parse().unwrap())
            .is_ok());
        assert!(p.check_addr("x", "127.0.0.2".parse().unwrap()).is_err());
        assert!(p.check_addr("x", "10.1.1.1".parse().unwrap()).is_err());
        assert!(p
            .check_addr("x", "::ffff:127.0.0.1".parse().unwrap())
            .is_ok());
        assert!("10.0.0.0/33".parse::<Rule>().is_err());
        assert!("a b".parse::<Rule>().is_err());
    }
}
