//! The protocol each capstone loop runs: httpd's `Http`, plus the one rule a
//! graceful stop needs that a plain static server does not.
//!
//! The one idea: a draining loop closes every connection the protocol calls idle.
//! For a keep-alive connection between requests, that is right. For a connection
//! accepted a moment ago, whose request is still on its way, closing it would
//! reset a request the server had already taken on, which is exactly what a
//! reload or a graceful stop must not do. Such a connection counts as busy
//! until its first bytes arrive or `FRESH_GRACE` passes.

use crate::proto::http::Http;
use crate::proto::{ConnId, Outbox, Protocol};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a connection that has sent nothing yet is left alone by a drain.
const FRESH_GRACE: Duration = Duration::from_secs(1);

pub struct Site {
    http: Http,
}

pub struct SiteConn {
    http: <Http as Protocol>::Conn,
    /// Set until the first bytes arrive.
    fresh_since: Option<Instant>,
}

impl Site {
    pub fn new(http: Http) -> Site {
        Site { http }
    }
}

impl Protocol for Site {
    type Conn = SiteConn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> SiteConn {
        SiteConn {
            http: self.http.open(id, peer, out),
            fresh_since: Some(Instant::now()),
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut SiteConn, input: &[u8], out: &mut Outbox) -> usize {
        conn.fresh_since = None;
        self.http.data(id, &mut conn.http, input, out)
    }

    fn eof(&mut self, id: ConnId, conn: &mut SiteConn, out: &mut Outbox) {
        self.http.eof(id, &mut conn.http, out)
    }

    fn timeout(&mut self, id: ConnId, conn: &mut SiteConn, out: &mut Outbox) {
        self.http.timeout(id, &mut conn.http, out)
    }

    fn closed(&mut self, id: ConnId, conn: SiteConn, out: &mut Outbox) {
        self.http.closed(id, conn.http, out)
    }

    fn refusal(&mut self) -> Bytes {
        self.http.refusal()
    }

    fn tick(&mut self, out: &mut Outbox) {
        self.http.tick(out)
    }

    fn idle(&self, conn: &SiteConn) -> bool {
        match conn.fresh_since {
            Some(t) => t.elapsed() >= FRESH_GRACE,
            None => self.http.idle(&conn.http),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::HttpConfig;
    use std::sync::Arc;

    #[test]
    fn fresh_connection_is_not_idle_until_it_speaks() {
        let cfg = HttpConfig::new(env!("CARGO_MANIFEST_DIR")).unwrap();
        let mut site = Site::new(Http::new(Arc::new(cfg)));
        let mut out = Outbox::new();
        let id = ConnId(1);
        let mut c = site.open(id, "127.0.0.1:1".parse().unwrap(), &mut out);
        assert!(!site.idle(&c), "a just-accepted connection was called idle");
        let req = b"GET /Cargo.toml HTTP/1.1\r\nHost: x\r\n\r\n";
        let used = site.data(id, &mut c, req, &mut out);
        assert_eq!(used, req.len());
        assert!(!out.is_empty());
        // Answered, between requests: a keep-alive a drain may close.
        assert!(site.idle(&c));
        c.fresh_since = Some(Instant::now() - FRESH_GRACE);
        assert!(site.idle(&c), "a silent connection past the grace is idle");
    }
}
