//! HTTP→HTTPS redirects: the protocol a loop runs when some of its listeners
//! speak HTTPS, so that a plaintext listener marked `https_redirect = true` answers
//! every request with a `301` to the same path over HTTPS instead of serving it.
//!
//! The one idea: which listener a connection came in on decides, once, at
//! [`Protocol::open_on`]; a redirect connection never reaches the site. It reads
//! one request head (bounded, with the header deadline), answers `301` with
//! `Location: https://HOST[:PORT]/TARGET` and closes. Everything else is the site,
//! call for call.

use super::site::{Site, SiteConn};
use crate::proto::tls::TlsAware;
use crate::proto::{ConnId, Outbox, Protocol};
use crate::upstream::proxy::Origin;
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

/// A request head longer than this is answered 431 and closed.
const MAX_HEAD: usize = 16 * 1024;

pub struct Front {
    site: Site,
    /// Listener numbers (as the model counts them) whose requests are redirected.
    redirect: Vec<usize>,
    /// The HTTPS port the redirects name (omitted from the URL when 443).
    https_port: u16,
    header_timeout: Duration,
}

pub enum FrontConn {
    Site(SiteConn),
    Redirect,
}

impl Front {
    pub fn new(
        site: Site,
        redirect: Vec<usize>,
        https_port: u16,
        header_timeout: Duration,
    ) -> Self {
        Front {
            site,
            redirect,
            https_port,
            header_timeout,
        }
    }
}

/// The `Location` for a request with `host` (its Host header) and `target`.
/// `None`: the host is not a plain name, IPv4 or bracketed IPv6 address.
pub fn location(host: &str, target: &str, https_port: u16) -> Option<String> {
    // Host without its port: a bracketed IPv6 literal keeps its brackets.
    let name = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        let inner = &rest[..end];
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        &host[..end + 2]
    } else {
        let n = host.split(':').next().unwrap_or("");
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return None;
        }
        n
    };
    // Only origin-form targets are kept; anything else (`*`, absolute-form) is `/`.
    let target = if target.starts_with('/') { target } else { "/" };
    Some(if https_port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{https_port}{target}")
    })
}

fn answer(status: &str, location: Option<&str>) -> Bytes {
    let mut head = format!("HTTP/1.1 {status}\r\nServer: capstone\r\n");
    if let Some(l) = location {
        head.push_str("Location: ");
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    Bytes::from(head)
}

impl Protocol for Front {
    type Conn = FrontConn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> FrontConn {
        FrontConn::Site(self.site.open(id, peer, out))
    }

    fn open_on(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        listener: usize,
        out: &mut Outbox,
    ) -> FrontConn {
        if self.redirect.contains(&listener) {
            out.deadline(id, Some(self.header_timeout));
            FrontConn::Redirect
        } else {
            FrontConn::Site(self.site.open_on(id, peer, listener, out))
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut FrontConn, input: &[u8], out: &mut Outbox) -> usize {
        let FrontConn::Site(c) = conn else {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let reply = match req.parse(input) {
                Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return 0,
                Ok(httparse::Status::Partial) => {
                    answer("431 Request Header Fields Too Large", None)
                }
                Err(_) => answer("400 Bad Request", None),
                Ok(httparse::Status::Complete(_)) => {
                    let host = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("host"))
                        .and_then(|h| std::str::from_utf8(h.value).ok());
                    match host
                        .and_then(|h| location(h.trim(), req.path.unwrap_or("/"), self.https_port))
                    {
                        Some(l) => answer("301 Moved Permanently", Some(&l)),
                        None => answer("400 Bad Request", None),
                    }
                }
            };
            out.send(id, reply);
            out.close(id);
            return input.len();
        };
        self.site.data(id, c, input, out)
    }

    fn eof(&mut self, id: ConnId, conn: &mut FrontConn, out: &mut Outbox) {
        match conn {
            FrontConn::Site(c) => self.site.eof(id, c, out),
            FrontConn::Redirect => out.close(id),
        }
    }

    fn timeout(&mut self, id: ConnId, conn: &mut FrontConn, out: &mut Outbox) {
        match conn {
            FrontConn::Site(c) => self.site.timeout(id, c, out),
            FrontConn::Redirect => out.close(id),
        }
    }

    const WANTS_DRAINED: bool = Site::WANTS_DRAINED;

    fn draining(&mut self, id: ConnId, conn: &mut FrontConn, out: &mut Outbox) {
        if let FrontConn::Site(c) = conn {
            self.site.draining(id, c, out);
        }
    }

    fn drained(&mut self, id: ConnId, conn: &mut FrontConn, out: &mut Outbox) {
        if let FrontConn::Site(c) = conn {
            self.site.drained(id, c, out);
        }
    }

    fn closed(&mut self, id: ConnId, conn: FrontConn, out: &mut Outbox) {
        if let FrontConn::Site(c) = conn {
            self.site.closed(id, c, out);
        }
    }

    fn refusal(&mut self) -> Bytes {
        self.site.refusal()
    }

    fn tick(&mut self, out: &mut Outbox) {
        self.site.tick(out);
    }

    fn before_wait(&mut self, out: &mut Outbox) {
        self.site.before_wait(out);
    }

    fn idle(&self, conn: &FrontConn) -> bool {
        match conn {
            FrontConn::Site(c) => self.site.idle(c),
            FrontConn::Redirect => true,
        }
    }
}

/// The reverse proxy over this front: redirecting connections never reach it.
impl Origin for Front {
    fn at_head(&self, conn: &FrontConn) -> bool {
        match conn {
            FrontConn::Site(c) => self.site.at_head(c),
            FrontConn::Redirect => false,
        }
    }

    fn site_of(&self, host: Option<&[u8]>) -> usize {
        self.site.site_of(host)
    }

    fn record(&mut self, r: &crate::upstream::proxy::Record<'_>) {
        self.site.record(r);
    }

    fn one_request_per_call(&mut self) {
        self.site.one_request_per_call();
    }
}

impl TlsAware for Front {
    fn open_tls(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        identity: &crate::proto::tls::PeerIdentity,
        out: &mut Outbox,
    ) -> FrontConn {
        FrontConn::Site(self.site.open_tls(id, peer, identity, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_keep_the_host_and_target_and_refuse_odd_hosts() {
        assert_eq!(
            location("example.org:8080", "/a/b?c=d", 8443).as_deref(),
            Some("https://example.org:8443/a/b?c=d")
        );
        assert_eq!(
            location("example.org", "/", 443).as_deref(),
            Some("https://example.org/")
        );
        assert_eq!(
            location("[::1]:80", "/x", 8443).as_deref(),
            Some("https://[::1]:8443/x")
        );
        assert_eq!(
            location("127.0.0.1", "*", 8443).as_deref(),
            Some("https://127.0.0.1:8443/")
        );
        for bad in ["", "a b", "evil.org/path", "x@y", "[::1", "[zz]"] {
            assert_eq!(location(bad, "/", 443), None, "{bad:?}");
        }
    }
}
