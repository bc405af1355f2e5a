//! The forward proxy's protocol: the first request head a client sends decides where
//! its connection goes, and nothing after it is parsed.
//!
//! The one idea: a proxy only needs HTTP for one decision. `CONNECT host:port` opens a
//! tunnel; an absolute-form request (`GET http://host/path`) is rewritten to origin form
//! with `Connection: close` and sent to `host`, and from then on both directions are
//! plain byte streams (the relay splices them). So this module is a pure function from
//! a buffered head to a [`Route`] or a refusal, plus the [`Policy`] that says which
//! destinations are allowed.

use std::net::IpAddr;

/// A request head may be at most this long; past it the client gets a 431.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

/// Where a client's connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `CONNECT host:port`: answer 200, then relay bytes both ways.
    Tunnel {
        host: String,
        port: u16,
        /// Bytes of the client's input that made up the head.
        head_len: usize,
    },
    /// An absolute-form request: send `head` upstream, then relay both ways.
    Forward {
        host: String,
        port: u16,
        /// The request rewritten to origin form, to send first.
        head: Vec<u8>,
        head_len: usize,
    },
}

/// A request the proxy refuses, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: String,
}

impl Refusal {
    fn new(status: u16, why: impl Into<String>) -> Self {
        Self {
            status,
            why: why.into(),
        }
    }
}

/// Parses the head buffered so far. `Ok(None)`: not complete yet.
pub fn parse(buf: &[u8]) -> Result<Option<Route>, Refusal> {
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
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(Refusal::new(400, "malformed request line"));
    };
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)
            .ok_or_else(|| Refusal::new(400, format!("bad CONNECT target {target:?}")))?;
        return Ok(Some(Route::Tunnel {
            host,
            port,
            head_len,
        }));
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

    let mut head = Vec::with_capacity(head_len + 32);
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(if req.version == Some(0) {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let mut has_host = false;
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name) {
            continue;
        }
        has_host |= h.name.eq_ignore_ascii_case("host");
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    if !has_host {
        head.extend_from_slice(b"Host: ");
        head.extend_from_slice(authority.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Some(Route::Forward {
        host,
        port,
        head,
        head_len,
    }))
}

/// Headers that describe one hop and must not be passed on (RFC 9110 §7.6.1).
fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
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
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            connect_ports: vec![443],
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

impl Policy {
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
            Route::Forward { host, port, .. } => (host, port),
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

/// The reply a refused or failed request gets before its connection closes.
pub fn error_response(status: u16, why: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
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
        "HTTP/1.1 {status} {reason}\r\nServer: sysnet-proxy\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a tunnel's client hears once the upstream connection is up.
pub const TUNNEL_ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_is_a_tunnel() {
        let r = parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nxx")
            .unwrap()
            .unwrap();
        assert_eq!(
            r,
            Route::Tunnel {
                host: "example.com".into(),
                port: 443,
                head_len: 59
            }
        );
    }

    #[test]
    fn absolute_form_is_rewritten_to_origin_form() {
        let r = parse(
            b"GET http://Example.com:8080/a/b?c=1 HTTP/1.1\r\nHost: example.com:8080\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        let Route::Forward {
            host, port, head, ..
        } = r
        else {
            panic!("not a forward: {r:?}");
        };
        assert_eq!((host.as_str(), port), ("example.com", 8080));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /a/b?c=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn missing_host_header_is_added_and_path_defaults_to_root() {
        let Some(Route::Forward { head, port, .. }) =
            parse(b"GET http://127.0.0.1 HTTP/1.0\r\n\r\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(port, 80);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
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
        let Some(Route::Tunnel { host, port, .. }) =
            parse(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n").unwrap()
        else {
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
            head_len: 0,
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
        };
        let f = |host: &str| Route::Forward {
            host: host.into(),
            port: 80,
            head: vec![],
            head_len: 0,
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
