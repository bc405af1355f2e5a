//! The protocol each capstone loop runs: httpd's `Http`, plus the one rule a
//! graceful stop needs that a plain static server does not.
//!
//! The one idea: a draining loop closes every connection the protocol calls idle.
//! For a keep-alive connection between requests, that is right. For a connection
//! accepted a moment ago, whose request is still on its way, closing it would
//! reset a request the server had already taken on, which is exactly what a
//! reload or a graceful stop must not do. Such a connection counts as busy
//! until its first bytes arrive or `FRESH_GRACE` passes.
//!
//! It also keeps the loop's slot of the shared counter board current: after every
//! batch of input (before any answer to it can leave) and at the end of every
//! round, so a worker killed outright has already counted every request it
//! answered. That costs a few relaxed stores into memory the loop alone writes.

use super::status::{Board, Counter};
use crate::io::Stats;
use crate::proto::http::{Http, HttpStats};
use crate::proto::{ConnId, Outbox, Protocol};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a connection that has sent nothing yet is left alone by a drain.
const FRESH_GRACE: Duration = Duration::from_secs(1);

pub struct Site {
    http: Http,
    tally: Option<Tally>,
}

/// One loop's counters and its slot of the board, which this loop alone writes.
pub struct Tally {
    pub board: &'static Board,
    pub slot: usize,
    pub stats: Arc<Stats>,
    pub http: Arc<HttpStats>,
}

impl Tally {
    /// Copies the loop's counters into its slot: relaxed loads and stores, no
    /// syscall, no shared cache line with another loop.
    pub fn publish(&self) {
        let s = self.stats.snapshot();
        let h = self.http.snapshot();
        let b = self.board.slot(self.slot);
        b.set(Counter::Accepted, s.accepted);
        b.set(Counter::Active, s.active);
        b.set(Counter::Refused, s.refused);
        b.set(Counter::Closed, s.closed);
        b.set(Counter::BytesIn, s.bytes_in);
        b.set(Counter::BytesOut, s.bytes_out);
        b.set(Counter::Timeouts, s.timeouts);
        b.set(Counter::Errors, s.errors);
        b.set(Counter::Requests, h.requests);
        b.set(Counter::Responses2xx, h.responses_2xx);
        b.set(Counter::Responses3xx, h.responses_3xx);
        b.set(Counter::Responses4xx, h.responses_4xx);
        b.set(Counter::Responses5xx, h.responses_5xx);
    }

    /// Requests answered so far (before and after a call into HTTP: the
    /// difference is what that call answered).
    #[inline]
    fn requests(&self) -> u64 {
        self.http.requests.load(Ordering::Relaxed)
    }

    /// Adds the requests answered since `before` to `conn`'s protocol and transport.
    #[inline]
    fn count(&self, conn: &SiteConn, before: u64) {
        let n = self.requests().wrapping_sub(before);
        if n > 0 {
            self.board
                .slot(self.slot)
                .count_requests(conn.proto, conn.tls, n);
        }
    }
}

pub struct SiteConn {
    http: <Http as Protocol>::Conn,
    /// Set until the first bytes arrive.
    fresh_since: Option<Instant>,
    /// The `proto` label of its requests (see [`super::metrics`]).
    proto: usize,
    /// Whether it came through a TLS listener.
    tls: bool,
}

impl Site {
    pub fn new(http: Http) -> Site {
        Site { http, tally: None }
    }

    /// A site that keeps `tally`'s board slot current.
    pub fn with_tally(http: Http, tally: Tally) -> Site {
        Site {
            http,
            tally: Some(tally),
        }
    }
}

impl Protocol for Site {
    type Conn = SiteConn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> SiteConn {
        SiteConn {
            http: self.http.open(id, peer, out),
            fresh_since: Some(Instant::now()),
            proto: super::metrics::HTTP11,
            tls: false,
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut SiteConn, input: &[u8], out: &mut Outbox) -> usize {
        if conn.fresh_since.take().is_some() {
            conn.proto = super::metrics::proto_of(input);
        }
        let timer = self.tally.as_ref().and_then(Tally::start);
        let before = self.tally.as_ref().map_or(0, Tally::requests);
        let used = self.http.data(id, &mut conn.http, input, out);
        // Counted before the answer is written: a kill -9 can no longer lose it.
        if let Some(t) = &self.tally {
            t.count(conn, before);
            t.observe(conn.proto, timer);
            t.publish();
        }
        used
    }

    fn eof(&mut self, id: ConnId, conn: &mut SiteConn, out: &mut Outbox) {
        let before = self.tally.as_ref().map_or(0, Tally::requests);
        self.http.eof(id, &mut conn.http, out);
        if let Some(t) = &self.tally {
            t.count(conn, before);
        }
    }

    fn timeout(&mut self, id: ConnId, conn: &mut SiteConn, out: &mut Outbox) {
        let before = self.tally.as_ref().map_or(0, Tally::requests);
        self.http.timeout(id, &mut conn.http, out);
        if let Some(t) = &self.tally {
            t.count(conn, before);
        }
    }

    const WANTS_DRAINED: bool = Http::WANTS_DRAINED;

    fn draining(&mut self, id: ConnId, conn: &mut SiteConn, out: &mut Outbox) {
        self.http.draining(id, &mut conn.http, out)
    }

    fn drained(&mut self, id: ConnId, conn: &mut SiteConn, out: &mut Outbox) {
        // A request pipelined behind a streamed file is answered here.
        let before = self.tally.as_ref().map_or(0, Tally::requests);
        self.http.drained(id, &mut conn.http, out);
        if let Some(t) = &self.tally {
            t.count(conn, before);
        }
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

    fn before_wait(&mut self, out: &mut Outbox) {
        self.http.before_wait(out);
        if let Some(t) = &self.tally {
            t.publish();
        }
    }

    fn idle(&self, conn: &SiteConn) -> bool {
        match conn.fresh_since {
            Some(t) => t.elapsed() >= FRESH_GRACE,
            None => self.http.idle(&conn.http),
        }
    }
}

impl crate::upstream::proxy::Origin for Site {
    fn at_head(&self, conn: &SiteConn) -> bool {
        self.http.at_head(&conn.http)
    }

    fn site_of(&self, host: Option<&[u8]>) -> usize {
        self.http.site_of(host)
    }

    fn record(&mut self, r: &crate::upstream::proxy::Record<'_>) {
        self.http.account_for(
            r.peer,
            r.line,
            (r.referer, r.user_agent),
            r.code,
            r.body,
            r.tried,
        );
        // Proxied requests are HTTP/1 (h2 is not offered where locations exist).
        if let Some(t) = &self.tally {
            let proto = super::metrics::proto_of(r.line);
            t.board.slot(t.slot).count_requests(proto, r.https, 1);
        }
    }

    fn one_request_per_call(&mut self) {
        self.http.one_request_per_call();
    }
}

impl crate::proto::tls::TlsAware for Site {
    fn open_tls(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        identity: &crate::proto::tls::PeerIdentity,
        out: &mut Outbox,
    ) -> SiteConn {
        SiteConn {
            http: self.http.open_tls(id, peer, identity, out),
            fresh_since: Some(Instant::now()),
            proto: super::metrics::HTTP11,
            tls: true,
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
