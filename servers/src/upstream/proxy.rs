//! The capstone as a reverse proxy: a protocol layer over the static site that
//! sends the requests under a `[[location]]` prefix to an upstream pool.
//!
//! The one idea: the layer owns two kinds of connection in one event loop. A
//! client connection is served by the inner protocol (the static site) until a
//! request head under a location arrives; that request becomes an *exchange*: the
//! layer asks the loop for an outbound connection ([`Outbox::connect`]) or takes
//! an idle one from the server's pool, sends the rewritten head, and from then on
//! moves bytes between the pair, each body bounded by its [`Frame`] so no byte of
//! a next message is ever passed as part of this one. The pairing lives here
//! (`exchanges` by client, `owners` by upstream connection), never in the loop,
//! which only knows connections. Backpressure both ways is a window: at most
//! [`WINDOW`] bytes are queued towards a peer that has not drained them; past it
//! the layer pauses reading the other side ([`Outbox::pause`]) until
//! [`Protocol::drained`] says the queue is empty, so a slow client throttles its
//! upstream and a big upload is streamed, never buffered.
//!
//! The rest of a body of known length that did not come with its head, and both
//! directions of a tunnel, are not copied at all when the client is plaintext: the
//! layer hands them to the loop ([`Outbox::splice`]), which moves them socket →
//! pipe → socket and calls [`Protocol::spliced`] when done; the pipe bounds what is
//! read ahead of a slow peer, as the window does for copies. TLS clients, chunked
//! bodies and sockets the kernel will not splice take the copy path.
//!
//! Failures before any byte of the response (refused, reset, connect or read
//! timeout) are counted against the server (passive health, see
//! [`super::Balancer`]) and an idempotent request without a body is tried on the
//! next server, up to the pool's `tries`; when none is left the client gets a 502
//! (a 504 after a timeout). A failure after the response head went out can only
//! cut the client's connection.
//!
//! A GET whose `Connection` names `Upgrade` passes the `Upgrade` on; a 101 turns
//! the exchange into a tunnel: both bodies become "until close" (spliced, or
//! copied under the same windows), and the exchange ends when either side closes.
//!
//! Behind TLS ([`crate::proto::tls::Tls`] wraps this layer): a client whose
//! handshake finished is opened with [`TlsAware::open_tls`], and its requests go
//! up with `X-Forwarded-Proto: https`; the upstream connections are plaintext,
//! the adapter's outbound ones.
//!
//! Active health checks are connections of a third kind, *probes*: on each tick
//! a pool with a [`super::HealthCheck`] gets a `GET` of its path sent to every
//! server whose interval has passed, and the status line of the answer (2xx or
//! 3xx passes; anything else, a timeout or a refused connect fails) goes to the
//! balancer ([`Balancer::checked`]).

use super::shared::ServerTable;
use super::{location_for, Balancer, Health, Location, Upstream};
use crate::proto::http::{parse_head, BodyFraming, Head, Method, Parsed};
use crate::proto::proxy::framing::Frame;
use crate::proto::proxy::{self, parse_response};
use crate::proto::tls::{PeerIdentity, TlsAware};
use crate::proto::{ConnId, Outbox, Protocol};
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The maps keyed by connection: a fast hash, as the ids are the loop's own
/// counter, not chosen by a peer.
type Fast = foldhash::fast::RandomState;

/// Bytes queued towards one side of an exchange before the other side is paused.
pub const WINDOW: usize = 256 * 1024;
/// An idle upstream connection is closed after this long unused.
const UPSTREAM_IDLE: Duration = Duration::from_secs(30);
/// Bytes of a health check's answer read for its status line.
const PROBE_READ: usize = 1024;

/// A request the proxy answered, as the access log takes it.
pub struct Record<'a> {
    pub peer: SocketAddr,
    /// The request line.
    pub line: &'a [u8],
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub code: u16,
    /// Body bytes sent to the client.
    pub body: u64,
    /// The client came through a TLS handshake.
    pub https: bool,
    /// The servers the request was sent to, in order, and how long each took
    /// (from sending the head, connect included, to the response's last byte or
    /// the failure): nginx's `$upstream_addr` and `$upstream_response_time`.
    pub tried: &'a [(SocketAddr, Duration)],
}

/// What the reverse proxy needs of the protocol it wraps.
pub trait Origin: Protocol {
    /// Whether the next input of `conn` starts a request head (not a body being
    /// skipped, not a closing connection).
    fn at_head(&self, conn: &Self::Conn) -> bool;
    /// The site a `Host` picks (its index in the configuration's sites; 0 with none).
    fn site_of(&self, host: Option<&[u8]>) -> usize;
    /// Counts and logs (access log) a request the proxy answered.
    fn record(&mut self, r: &Record<'_>);
    /// Answer one whole request per `data` call, so that every head, including one
    /// pipelined after a request body, comes back here to be routed.
    fn one_request_per_call(&mut self);
}

/// Where requests go: the pools, and each site's locations.
#[derive(Debug)]
pub struct Routes {
    pub upstreams: Vec<Upstream>,
    /// Indexed as the sites are (one entry without `[[site]]` blocks).
    pub locations: Vec<Vec<Location>>,
    /// How long a client connection may stay idle between requests.
    pub keepalive_timeout: Duration,
}

impl Routes {
    /// Whether any request at all goes to an upstream.
    pub fn any(&self) -> bool {
        self.locations.iter().any(|l| !l.is_empty())
    }
}

/// Per-connection state: a client (the inner protocol's state beside it), or an
/// upstream connection (its pairing is in the layer).
pub enum ProxyConn<C> {
    Client {
        inner: C,
        peer: SocketAddr,
        id: ConnId,
        /// Came through a TLS handshake.
        https: bool,
    },
    Upstream(ConnId),
    /// An active health check's connection.
    Probe,
}

/// A health check in flight: the server it asks, and the answer so far.
#[derive(Debug)]
struct Probe {
    upstream: usize,
    server: usize,
    started: Instant,
    got: Vec<u8>,
}

/// An upstream connection: its pool and server, and the client it serves (none
/// while it waits in the idle pool).
#[derive(Debug)]
struct Owner {
    upstream: usize,
    server: usize,
    client: Option<ConnId>,
    connected: bool,
}

/// Why an upstream attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Refused, reset, closed early, or a malformed response.
    Error,
    Timeout,
}

/// One request in flight between a client and an upstream connection.
#[derive(Debug)]
struct Exchange {
    up: ConnId,
    upstream: usize,
    server: usize,
    client_ip: IpAddr,
    /// The client asked for this protocol (`Upgrade`, passed on): a 101 turns
    /// the exchange into a tunnel.
    upgrade: Option<Vec<u8>>,
    peer: SocketAddr,
    /// The client came through a TLS handshake.
    https: bool,
    /// The request line, `Referer` and `User-Agent`, for the access log.
    line: Vec<u8>,
    referer: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
    /// When the head went to the current server.
    sent: Instant,
    /// The response's status once known, and the body bytes sent to the client.
    code: u16,
    body_bytes: u64,
    /// The rewritten head, kept to be sent again to another server.
    head: Bytes,
    /// The request may be tried again elsewhere (idempotent, no body).
    retryable: bool,
    tried: Vec<usize>,
    /// Each finished attempt's server and how long it took (see [`Record::tried`]).
    attempts: Vec<(SocketAddr, Duration)>,
    /// The current attempt's server, until it is in `attempts`.
    trying: Option<SocketAddr>,
    /// The upstream connection came from the idle pool: an error on it before any
    /// response byte is the pool's staleness, not the server's health.
    reused: bool,
    /// What of the request body is still to come from the client.
    req: Frame,
    head_method: bool,
    client_keep: bool,
    client_minor: u8,
    client_eof: bool,
    /// The response body still to come, once its head went to the client.
    resp: Option<Frame>,
    dechunk: bool,
    resp_keep: bool,
    reusable: bool,
    /// Bytes queued towards the client / the upstream and not yet drained.
    down_pending: usize,
    up_pending: usize,
    up_paused: bool,
    client_paused: bool,
    /// The response body's rest is being spliced to the client: its length.
    splicing_down: Option<u64>,
    /// The request body's rest (or a tunnel's client side) is being spliced up.
    splicing_up: bool,
    /// The loop could not splice for this exchange: copy.
    no_splice: bool,
}

/// The reverse-proxy layer over an [`Origin`].
pub struct ReverseProxy<P: Origin> {
    inner: P,
    routes: Arc<Routes>,
    balancers: Vec<Balancer>,
    /// Idle connections, by pool and server, most recently used last.
    idle: Vec<Vec<VecDeque<ConnId>>>,
    exchanges: HashMap<ConnId, Exchange, Fast>,
    owners: HashMap<ConnId, Owner, Fast>,
    /// Clients kept alive after a proxied response and silent since: their
    /// keep-alive timeout closes them quietly (the inner protocol would answer it
    /// as a request that never came).
    kept: HashSet<ConnId, Fast>,
    /// Health checks in flight, and per pool and server when the next is due
    /// (`None` while one is in flight).
    probes: HashMap<ConnId, Probe>,
    next_check: Vec<Vec<Option<Instant>>>,
    /// The server began a graceful stop: no more health checks.
    stopping: bool,
}

impl Exchange {
    /// Whether bodies may be spliced between the two sockets: the client's bytes
    /// are its socket's (no TLS) and the loop has not refused.
    fn can_splice(&self) -> bool {
        !self.https && !self.no_splice && !self.dechunk
    }

    fn record(&self, code: u16) -> Record<'_> {
        Record {
            peer: self.peer,
            line: &self.line,
            referer: self.referer.as_deref(),
            user_agent: self.user_agent.as_deref(),
            code,
            body: self.body_bytes,
            https: self.https,
            tried: &self.attempts,
        }
    }

    /// The current attempt ended (answered, failed, or the client left).
    fn attempt_ended(&mut self) {
        if let Some(addr) = self.trying.take() {
            self.attempts.push((addr, self.sent.elapsed()));
        }
    }
}

impl<P: Origin> ReverseProxy<P> {
    pub fn new(mut inner: P, routes: Arc<Routes>) -> Self {
        inner.one_request_per_call();
        let balancers = routes.upstreams.iter().map(Balancer::new).collect();
        let idle = routes
            .upstreams
            .iter()
            .map(|u| vec![VecDeque::new(); u.servers.len()])
            .collect();
        let now = Instant::now();
        let next_check = routes
            .upstreams
            .iter()
            .map(|u| vec![Some(now); u.servers.len()])
            .collect();
        ReverseProxy {
            inner,
            routes,
            balancers,
            idle,
            exchanges: HashMap::default(),
            owners: HashMap::default(),
            kept: HashSet::default(),
            probes: HashMap::new(),
            next_check,
            stopping: false,
        }
    }

    /// Keeps the per-server counters of `table` (the status page's upstream
    /// rows) for the configuration `generation`, in the rows of board slot `slot`
    /// (this loop's own).
    pub fn share_counters(
        mut self,
        table: &'static ServerTable,
        generation: u64,
        slot: usize,
    ) -> Self {
        for (u, up) in self.routes.upstreams.iter().enumerate() {
            for (i, server) in up.servers.iter().enumerate() {
                match table.claim(&up.name, server.addr, (u, i), (generation, slot)) {
                    Some(row) => self.balancers[u].share(i, row),
                    None => tracing::warn!(
                        upstream = %up.name,
                        server = %server.addr,
                        "the upstream counter table is full: this server is not counted"
                    ),
                }
            }
        }
        self
    }

    /// Starts the health checks that are due.
    fn check_health(&mut self, out: &mut Outbox) {
        if self.stopping {
            return;
        }
        let now = Instant::now();
        let routes = self.routes.clone();
        for (u, up) in routes.upstreams.iter().enumerate() {
            let Some(h) = &up.health else {
                continue;
            };
            for (i, server) in up.servers.iter().enumerate() {
                match self.next_check[u][i] {
                    Some(t) if now >= t => {}
                    _ => continue,
                }
                self.next_check[u][i] = None;
                let id = out.connect(server.addr);
                out.deadline(id, Some(h.timeout));
                out.send(
                    id,
                    format!(
                        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: capstone-health-check\r\nConnection: close\r\n\r\n",
                        h.path, server.addr
                    ),
                );
                self.probes.insert(
                    id,
                    Probe {
                        upstream: u,
                        server: i,
                        started: now,
                        got: Vec::new(),
                    },
                );
            }
        }
    }

    /// A health check ended, passed (`ok`) or not: the balancer hears of it, and
    /// the next one is due an interval after this one began.
    fn probe_done(&mut self, id: ConnId, ok: bool, out: &mut Outbox) {
        let Some(p) = self.probes.remove(&id) else {
            return;
        };
        out.close(id);
        let up = &self.routes.upstreams[p.upstream];
        let interval = up
            .health
            .as_ref()
            .map_or(Duration::from_secs(5), |h| h.interval);
        self.next_check[p.upstream][p.server] = Some(p.started + interval);
        let addr = up.servers[p.server].addr;
        match self.balancers[p.upstream].checked(p.server, ok) {
            Some(Health::Down) => tracing::warn!(
                upstream = %up.name,
                server = %addr,
                "upstream server marked down: its health check fails"
            ),
            Some(Health::Up) => tracing::warn!(
                upstream = %up.name,
                server = %addr,
                "upstream server up again: its health check passes"
            ),
            None => {}
        }
    }

    /// A health check's answer: its status line decides.
    fn probe_data(&mut self, id: ConnId, input: &[u8], out: &mut Outbox) -> usize {
        let Some(p) = self.probes.get_mut(&id) else {
            out.close(id);
            return input.len();
        };
        let room = PROBE_READ.saturating_sub(p.got.len());
        p.got.extend_from_slice(&input[..input.len().min(room)]);
        let verdict = match p.got.iter().position(|&b| b == b'\n') {
            Some(end) => Some(status_passes(&p.got[..end])),
            None if p.got.len() >= PROBE_READ => Some(false),
            None => None,
        };
        if let Some(ok) = verdict {
            self.probe_done(id, ok, out);
        }
        input.len()
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// A request head under a location arrived: answer it from the upstream.
    fn start(
        &mut self,
        client: ConnId,
        (peer, https): (SocketAddr, bool),
        raw: &[u8],
        (head, len): (Head<'_>, usize),
        upstream: usize,
        out: &mut Outbox,
    ) -> usize {
        let tunnel = matches!(head.method, Method::Get) && !head.has_body;
        let (head_bytes, upgrade) = match rewrite_request(&raw[..len], peer.ip(), tunnel, https) {
            Some(h) => h,
            None => {
                out.send(client, answer(400, false).0);
                out.close(client);
                return raw.len();
            }
        };
        let method = match head.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Other(m) => m,
        };
        let idempotent = matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        );
        let req = match head.body {
            BodyFraming::None => Frame::Done,
            BodyFraming::Length(n) => Frame::length(n),
            BodyFraming::Chunked => Frame::chunked(),
        };
        let ex = Exchange {
            up: ConnId(0),
            upstream,
            server: 0,
            client_ip: peer.ip(),
            upgrade,
            peer,
            https,
            line: head.line.to_vec(),
            referer: head.referer.map(<[u8]>::to_vec),
            user_agent: head.user_agent.map(<[u8]>::to_vec),
            sent: Instant::now(),
            code: 0,
            body_bytes: 0,
            head: Bytes::from(head_bytes),
            retryable: idempotent && req.is_done(),
            tried: Vec::new(),
            attempts: Vec::new(),
            trying: None,
            reused: false,
            req,
            head_method: matches!(head.method, Method::Head),
            client_keep: head.keep_alive,
            client_minor: head.minor,
            client_eof: false,
            resp: None,
            dechunk: false,
            resp_keep: false,
            reusable: false,
            down_pending: 0,
            up_pending: 0,
            up_paused: false,
            client_paused: false,
            splicing_down: None,
            splicing_up: false,
            no_splice: false,
        };
        // The exchange's timeouts are the upstream's; the client's comes back after.
        out.deadline(client, None);
        self.exchanges.insert(client, ex);
        self.dispatch(client, Failure::Error, out);
        len
    }

    /// Sends the exchange's head to the next server of its pool; with none left,
    /// answers as the `last` failure calls for.
    fn dispatch(&mut self, client: ConnId, last: Failure, out: &mut Outbox) {
        let routes = self.routes.clone();
        let Some(ex) = self.exchanges.get_mut(&client) else {
            return;
        };
        let pool = &routes.upstreams[ex.upstream];
        let now = Instant::now();
        let Some(server) = self.balancers[ex.upstream].pick(ex.client_ip, &ex.tried, now) else {
            self.give_up(client, last, out);
            return;
        };
        ex.tried.push(server);
        ex.server = server;
        ex.sent = now;
        ex.trying = Some(pool.servers[server].addr);
        self.balancers[ex.upstream].started(server);
        let reused = self.idle[ex.upstream][server].pop_back();
        let up = match reused {
            Some(up) => {
                out.pause(up, false);
                out.deadline(up, Some(pool.read_timeout));
                up
            }
            None => {
                let up = out.connect(pool.servers[server].addr);
                out.deadline(up, Some(pool.connect_timeout));
                up
            }
        };
        self.owners.insert(
            up,
            Owner {
                upstream: ex.upstream,
                server,
                client: Some(client),
                connected: reused.is_some(),
            },
        );
        ex.up = up;
        ex.reused = reused.is_some();
        ex.up_pending = ex.head.len();
        out.send(up, ex.head.clone());
    }

    /// The exchange's current attempt failed: try the next server or answer.
    fn failed(&mut self, client: ConnId, why: Failure, out: &mut Outbox) {
        let Some(ex) = self.exchanges.get_mut(&client) else {
            return;
        };
        let now = Instant::now();
        ex.attempt_ended();
        let b = &mut self.balancers[ex.upstream];
        b.finished(ex.server);
        let stale = ex.reused && why == Failure::Error && ex.resp.is_none();
        if !stale && b.failed(ex.server, now) {
            tracing::warn!(
                upstream = %self.routes.upstreams[ex.upstream].name,
                server = %self.routes.upstreams[ex.upstream].servers[ex.server].addr,
                "upstream server taken out after repeated failures"
            );
        }
        let up = ex.up;
        self.owners.remove(&up);
        out.close(up);
        if ex.resp.is_some() {
            // Part of the response is out: the client can only be cut off.
            if let Some(ex) = self.exchanges.remove(&client) {
                self.inner.record(&ex.record(ex.code));
            }
            out.close(client);
            return;
        }
        if stale {
            // A kept connection the server had closed: not a try, not a failure.
            ex.tried.pop();
        }
        let tries = self.routes.upstreams[ex.upstream].tries;
        let again = ex.retryable && (stale || ex.tried.len() < tries);
        if again {
            self.dispatch(client, why, out);
        } else {
            self.give_up(client, why, out);
        }
    }

    /// No server is left for the exchange: 502, or 504 after a timeout.
    fn give_up(&mut self, client: ConnId, why: Failure, out: &mut Outbox) {
        let Some(ex) = self.exchanges.remove(&client) else {
            return;
        };
        let code = if why == Failure::Timeout { 504 } else { 502 };
        // A request whose body is still arriving leaves the connection out of step.
        let keep = ex.client_keep && ex.req.is_done() && !ex.client_eof;
        let (page, body) = answer(code, keep);
        self.inner.record(&Record {
            body,
            ..ex.record(code)
        });
        out.send(client, page);
        if keep {
            self.resume_client(client, &ex, out);
        } else {
            out.close(client);
        }
    }

    /// The response is complete: the upstream connection goes back to its pool (or
    /// closes), the client goes on with its next request (or closes).
    fn finish(&mut self, client: ConnId, leftover: bool, out: &mut Outbox) {
        let Some(mut ex) = self.exchanges.remove(&client) else {
            return;
        };
        ex.attempt_ended();
        self.balancers[ex.upstream].finished(ex.server);
        if ex.code != 101 {
            self.balancers[ex.upstream].responded(ex.server, ex.sent.elapsed());
        }
        self.inner.record(&ex.record(ex.code));
        let keep = self.routes.upstreams[ex.upstream].keepalive;
        let pool = &mut self.idle[ex.upstream][ex.server];
        if ex.reusable && !leftover && ex.req.is_done() && pool.len() < keep {
            if let Some(o) = self.owners.get_mut(&ex.up) {
                o.client = None;
            }
            pool.push_back(ex.up);
            out.deadline(ex.up, Some(UPSTREAM_IDLE));
            if ex.up_paused {
                out.pause(ex.up, false);
            }
        } else {
            self.owners.remove(&ex.up);
            out.close(ex.up);
        }
        if ex.resp_keep && !ex.client_eof && ex.req.is_done() {
            self.resume_client(client, &ex, out);
        } else {
            out.close(client);
        }
    }

    fn resume_client(&mut self, client: ConnId, ex: &Exchange, out: &mut Outbox) {
        self.kept.insert(client);
        out.deadline(client, Some(self.routes.keepalive_timeout));
        if ex.client_paused {
            out.pause(client, false);
        }
    }

    /// Client bytes while its request is being answered: the request body.
    fn client_body(&mut self, client: ConnId, input: &[u8], out: &mut Outbox) -> usize {
        let Some(ex) = self.exchanges.get_mut(&client) else {
            return 0;
        };
        if ex.req.is_done() {
            // A pipelined next request waits for this response.
            if !ex.client_paused {
                ex.client_paused = true;
                out.pause(client, true);
            }
            return 0;
        }
        let n = match ex.req.take(input) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(conn = %client, error = %e, "request body rejected");
                ex.req = Frame::Done;
                ex.client_eof = true;
                let up = ex.up;
                if ex.resp.is_none() {
                    self.exchanges.remove(&client);
                    self.owners.remove(&up);
                    out.close(up);
                    out.send(client, answer(400, false).0);
                }
                out.close(client);
                return input.len();
            }
        };
        if n > 0 {
            out.send(ex.up, Bytes::copy_from_slice(&input[..n]));
            ex.up_pending += n;
        }
        if let Frame::Length(left) = ex.req {
            if n == input.len() && ex.can_splice() && !ex.splicing_up {
                // The rest of a body of known length goes up in the kernel.
                ex.splicing_up = true;
                if ex.client_paused {
                    ex.client_paused = false;
                    out.pause(client, false);
                }
                out.splice(client, ex.up, left);
                return n;
            }
        }
        if (ex.up_pending > WINDOW || ex.req.is_done()) && !ex.client_paused {
            ex.client_paused = true;
            out.pause(client, true);
        }
        n
    }

    /// Upstream bytes: the response head, then its body.
    fn upstream_data(&mut self, up: ConnId, input: &[u8], out: &mut Outbox) -> usize {
        let Some(owner) = self.owners.get(&up) else {
            out.close(up);
            return input.len();
        };
        let Some(client) = owner.client else {
            // Bytes nobody asked for on an idle connection: it cannot be reused.
            self.drop_idle(up, out);
            return input.len();
        };
        let Some(ex) = self.exchanges.get_mut(&client) else {
            return input.len();
        };
        let pool = &self.routes.upstreams[ex.upstream];
        out.deadline(up, Some(pool.read_timeout));
        let mut used = 0;
        if let (None, Some(u)) = (&ex.resp, &ex.upgrade) {
            match switching_head(input, u) {
                Err(()) => return 0,
                Ok(None) => {}
                Ok(Some((head, len))) => {
                    // A tunnel: bytes both ways until either side closes.
                    ex.down_pending += head.len();
                    out.send(client, head);
                    ex.code = 101;
                    ex.resp = Some(Frame::UntilEof);
                    ex.req = Frame::UntilEof;
                    ex.retryable = false;
                    if ex.client_paused {
                        ex.client_paused = false;
                        out.pause(client, false);
                    }
                    used = len;
                }
            }
        }
        if ex.resp.is_none() {
            match parse_response(input, ex.head_method, ex.client_keep, ex.client_minor) {
                Ok(None) => return 0,
                Err(refusal) => {
                    tracing::warn!(upstream = %pool.name, server = %pool.servers[ex.server].addr, why = %refusal.why, "bad response from upstream");
                    self.failed(client, Failure::Error, out);
                    return input.len();
                }
                Ok(Some(r)) => {
                    ex.down_pending += r.head.len();
                    out.send(client, r.head);
                    if r.interim {
                        return r.head_len;
                    }
                    ex.resp = Some(r.body);
                    ex.code = r.status;
                    ex.dechunk = r.dechunk;
                    ex.resp_keep = r.keep_alive;
                    ex.reusable = r.reusable;
                    used = r.head_len;
                }
            }
        }
        let Some(frame) = ex.resp.as_mut() else {
            return used;
        };
        let rest = &input[used..];
        let (n, data) = if ex.dechunk {
            let mut data = Vec::new();
            match frame.take_decoded(rest, &mut data) {
                Ok(n) => (n, Bytes::from(data)),
                Err(_) => (usize::MAX, Bytes::new()),
            }
        } else {
            match frame.take(rest) {
                Ok(n) => (n, Bytes::copy_from_slice(&rest[..n])),
                Err(_) => (usize::MAX, Bytes::new()),
            }
        };
        if n == usize::MAX {
            // A broken chunked body: the client cannot be told where it ends.
            self.failed(client, Failure::Error, out);
            return input.len();
        }
        if !data.is_empty() {
            ex.down_pending += data.len();
            ex.body_bytes += data.len() as u64;
            out.send(client, data);
        }
        used += n;
        if frame.is_done() {
            let leftover = used < input.len();
            self.finish(client, leftover, out);
            return input.len();
        }
        // The rest of a body of known length (or a tunnel's bytes) needs no look:
        // the kernel moves it, when nothing is to be done to it on the way (no TLS
        // towards the client).
        let rest = match frame {
            Frame::Length(n) => Some(*n),
            Frame::UntilEof if ex.code == 101 => Some(u64::MAX),
            _ => None,
        };
        if let Some(len) = rest.filter(|_| ex.can_splice() && ex.splicing_down.is_none()) {
            ex.splicing_down = Some(len);
            if ex.up_paused {
                ex.up_paused = false;
                out.pause(up, false);
            }
            out.splice(up, client, len);
            if ex.code == 101 && !ex.splicing_up {
                ex.splicing_up = true;
                out.splice(client, up, u64::MAX);
            }
            return used;
        }
        if ex.down_pending > WINDOW && !ex.up_paused {
            ex.up_paused = true;
            out.pause(up, true);
        }
        used
    }

    /// A splice from `id` ended.
    fn spliced_from(&mut self, id: ConnId, client: ConnId, ok: bool, out: &mut Outbox) {
        let Some(ex) = self.exchanges.get_mut(&client) else {
            return;
        };
        if id == client {
            ex.splicing_up = false;
            if !ok {
                ex.no_splice = true;
                return;
            }
            // The request body is up: a pipelined next request waits.
            ex.req = Frame::Done;
            if !ex.client_paused {
                ex.client_paused = true;
                out.pause(client, true);
            }
            return;
        }
        let Some(len) = ex.splicing_down.take() else {
            return;
        };
        if !ok {
            ex.no_splice = true;
            return;
        }
        ex.body_bytes += len;
        ex.resp = Some(Frame::Done);
        self.finish(client, false, out);
    }

    fn drop_idle(&mut self, up: ConnId, out: &mut Outbox) {
        if let Some(o) = self.owners.remove(&up) {
            self.idle[o.upstream][o.server].retain(|&c| c != up);
        }
        out.close(up);
    }

    /// The location a complete request head at the start of `input` falls under.
    fn route(&self, parsed: &Parsed<'_>) -> Option<usize> {
        let Parsed::Complete { head, .. } = parsed else {
            return None;
        };
        let site = self.inner.site_of(head.host);
        let locations = self.routes.locations.get(site)?;
        let path = head.target.split(['?', '#']).next().unwrap_or("");
        location_for(locations, path).map(|l| l.upstream)
    }
}

/// The request head as the upstream gets it: HTTP/1.1, hop-by-hop fields
/// removed (RFC 9110 §7.6.1), `X-Forwarded-For`, `X-Forwarded-Proto` and
/// `Forwarded` (RFC 7239) extended with this hop; with `tunnel`, an `Upgrade` the
/// client's `Connection` names is passed on (and returned). `None`: a head that
/// does not parse.
fn rewrite_request(
    raw: &[u8],
    client: IpAddr,
    tunnel: bool,
    https: bool,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let scheme = if https { "https" } else { "http" };
    let mut headers = [httparse::EMPTY_HEADER; crate::proto::http::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let lead = raw
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    match req.parse(&raw[lead..]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let (method, path) = (req.method?, req.path?);
    let listed = proxy::connection_tokens(req.headers);
    let mut xff: Vec<&[u8]> = Vec::new();
    let mut fwd: Vec<&[u8]> = Vec::new();
    let mut host: Option<&[u8]> = None;
    let upgrade = if tunnel && listed.iter().any(|t| t == "upgrade") {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
            .map(|h| h.value.to_vec())
    } else {
        None
    };
    let mut out = Vec::with_capacity(raw.len() + 128);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            xff.push(h.value);
        } else if name.eq_ignore_ascii_case("forwarded") {
            fwd.push(h.value);
        } else if name.eq_ignore_ascii_case("x-forwarded-proto")
            || proxy::is_hop_by_hop(name, &listed)
        {
        } else {
            if name.eq_ignore_ascii_case("host") {
                host = Some(h.value);
            }
            push_field(&mut out, name.as_bytes(), h.value);
        }
    }
    let ip = client.to_string();
    let mut v = xff.join(&b", "[..]);
    if !v.is_empty() {
        v.extend_from_slice(b", ");
    }
    v.extend_from_slice(ip.as_bytes());
    push_field(&mut out, b"X-Forwarded-For", &v);
    push_field(&mut out, b"X-Forwarded-Proto", scheme.as_bytes());
    let mut v = fwd.join(&b", "[..]);
    if !v.is_empty() {
        v.extend_from_slice(b", ");
    }
    let node = match client {
        IpAddr::V4(_) => ip,
        IpAddr::V6(_) => format!("\"[{ip}]\""),
    };
    v.extend_from_slice(format!("for={node};proto={scheme}").as_bytes());
    if let Some(h) = host.filter(|h| h.iter().all(|&b| b.is_ascii_graphic() && b != b'"')) {
        v.extend_from_slice(b";host=\"");
        v.extend_from_slice(h);
        v.push(b'"');
    }
    push_field(&mut out, b"Forwarded", &v);
    if let Some(u) = &upgrade {
        push_field(&mut out, b"Upgrade", u);
        push_field(&mut out, b"Connection", b"upgrade");
    }
    out.extend_from_slice(b"\r\n");
    Some((out, upgrade))
}

/// A `101 Switching Protocols` head at the start of `buf`, rewritten for the
/// client, and its length; `Ok(None)` for another status, `Err(())` while partial.
fn switching_head(buf: &[u8], upgrade: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; crate::proto::http::MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(()),
        Err(_) => return Ok(None),
    };
    if res.code != Some(101) {
        return Ok(None);
    }
    let listed = proxy::connection_tokens(res.headers);
    let mut head = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    for h in res.headers.iter() {
        if !proxy::is_hop_by_hop(h.name, &listed) {
            push_field(&mut head, h.name.as_bytes(), h.value);
        }
    }
    let upgrade = res
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .map_or(upgrade, |h| h.value);
    push_field(&mut head, b"Upgrade", upgrade);
    push_field(&mut head, b"Connection", b"upgrade");
    head.extend_from_slice(b"\r\n");
    Ok(Some((head, len)))
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether a health check's status line (`HTTP/1.1 204 No Content`) passes: 2xx or 3xx.
fn status_passes(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    version.starts_with(b"HTTP/1.")
        && code.len() == 3
        && matches!(code[0], b'2' | b'3')
        && code.iter().all(u8::is_ascii_digit)
}

/// The proxy's own answer when the upstream gave none, and its body's length.
fn answer(code: u16, keep: bool) -> (Bytes, u64) {
    let reason = crate::proto::http::reason(code);
    let body = format!("{code} {reason}\n");
    let len = body.len() as u64;
    let page = Bytes::from(format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if keep { "" } else { "Connection: close\r\n" },
    ));
    (page, len)
}

impl<P: Origin> Protocol for ReverseProxy<P> {
    type Conn = ProxyConn<P::Conn>;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> Self::Conn {
        ProxyConn::Client {
            inner: self.inner.open(id, peer, out),
            peer,
            id,
            https: false,
        }
    }

    fn open_on(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        listener: usize,
        out: &mut Outbox,
    ) -> Self::Conn {
        ProxyConn::Client {
            inner: self.inner.open_on(id, peer, listener, out),
            peer,
            id,
            https: false,
        }
    }

    fn outbound(&mut self, id: ConnId, _to: SocketAddr, _out: &mut Outbox) -> Option<Self::Conn> {
        if self.probes.contains_key(&id) {
            return Some(ProxyConn::Probe);
        }
        self.owners
            .contains_key(&id)
            .then_some(ProxyConn::Upstream(id))
    }

    fn connect_failed(&mut self, id: ConnId, error: std::io::Error, out: &mut Outbox) {
        tracing::debug!(conn = %id, error = %error, "upstream connect failed");
        if self.probes.contains_key(&id) {
            return self.probe_done(id, false, out);
        }
        if let Some(client) = self.owners.get(&id).and_then(|o| o.client) {
            self.failed(client, Failure::Error, out);
        }
    }

    fn spliced(
        &mut self,
        id: ConnId,
        conn: &mut Self::Conn,
        result: std::io::Result<()>,
        out: &mut Outbox,
    ) {
        if let Err(e) = &result {
            tracing::debug!(conn = %id, error = %e, "not spliced: copying");
        }
        let client = match conn {
            ProxyConn::Upstream(_) => self.owners.get(&id).and_then(|o| o.client),
            ProxyConn::Client { .. } => Some(id),
            ProxyConn::Probe => None,
        };
        if let Some(client) = client {
            self.spliced_from(id, client, result.is_ok(), out);
        }
    }

    fn connected(
        &mut self,
        id: ConnId,
        _conn: &mut Self::Conn,
        result: std::io::Result<()>,
        out: &mut Outbox,
    ) {
        if self.probes.contains_key(&id) {
            if result.is_err() {
                self.probe_done(id, false, out);
            }
            return;
        }
        let Some(o) = self.owners.get_mut(&id) else {
            return;
        };
        match result {
            Ok(()) => {
                o.connected = true;
                out.deadline(id, Some(self.routes.upstreams[o.upstream].read_timeout));
            }
            Err(e) => {
                tracing::debug!(conn = %id, error = %e, "upstream connect failed");
                if let Some(client) = o.client {
                    self.failed(client, Failure::Error, out);
                }
            }
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut Self::Conn, input: &[u8], out: &mut Outbox) -> usize {
        match conn {
            ProxyConn::Upstream(_) => self.upstream_data(id, input, out),
            ProxyConn::Probe => self.probe_data(id, input, out),
            ProxyConn::Client {
                inner, peer, https, ..
            } => {
                self.kept.remove(&id);
                if self.exchanges.contains_key(&id) {
                    return self.client_body(id, input, out);
                }
                if !self.inner.at_head(inner) {
                    return self.inner.data(id, inner, input, out);
                }
                // Parsed once, for the route and the request alike.
                let parsed = parse_head(input);
                match (self.route(&parsed), parsed) {
                    (Some(upstream), Parsed::Complete { head, len }) => {
                        let from = (*peer, *https);
                        self.start(id, from, input, (head, len), upstream, out)
                    }
                    (_, parsed) => {
                        // One request at a time, so the next one is routed too.
                        let end = match parsed {
                            Parsed::Complete { head, len } if !head.has_body => len,
                            _ => input.len(),
                        };
                        self.inner.data(id, inner, &input[..end], out)
                    }
                }
            }
        }
    }

    fn eof(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        match conn {
            ProxyConn::Probe => {
                self.probe_done(id, false, out);
                out.close(id);
            }
            ProxyConn::Upstream(_) => {
                let client = self.owners.get(&id).and_then(|o| o.client);
                match client.and_then(|c| self.exchanges.get(&c).map(|ex| (c, ex))) {
                    Some((c, ex)) if ex.resp == Some(Frame::UntilEof) => self.finish(c, false, out),
                    Some((c, _)) => self.failed(c, Failure::Error, out),
                    None => self.drop_idle(id, out),
                }
                out.close(id);
            }
            ProxyConn::Client { inner, .. } => match self.exchanges.get_mut(&id) {
                Some(ex) if ex.req.is_done() => ex.client_eof = true,
                Some(_) => out.close(id),
                None => self.inner.eof(id, inner, out),
            },
        }
    }

    fn timeout(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        match conn {
            ProxyConn::Probe => {
                self.probe_done(id, false, out);
                out.close(id);
            }
            ProxyConn::Upstream(_) => {
                let client = self.owners.get(&id).and_then(|o| o.client);
                match client.and_then(|c| self.exchanges.get(&c).map(|ex| (c, ex))) {
                    // The client stopped reading (or, mid-splice, either side
                    // stalled with the response under way): not the server's failure.
                    Some((c, ex)) if ex.up_paused || ex.splicing_down.is_some() => {
                        self.owners.remove(&id);
                        if let Some(mut ex) = self.exchanges.remove(&c) {
                            ex.attempt_ended();
                            self.balancers[ex.upstream].finished(ex.server);
                            self.inner.record(&ex.record(ex.code));
                        }
                        out.close(id);
                        out.close(c);
                    }
                    Some((c, _)) => self.failed(c, Failure::Timeout, out),
                    None => self.drop_idle(id, out),
                }
            }
            ProxyConn::Client { inner, .. } => {
                if self.kept.remove(&id) {
                    out.close(id);
                } else if !self.exchanges.contains_key(&id) {
                    self.inner.timeout(id, inner, out);
                }
            }
        }
    }

    const WANTS_DRAINED: bool = true;

    fn drained(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        match conn {
            ProxyConn::Probe => {}
            ProxyConn::Upstream(_) => {
                let Some(client) = self.owners.get(&id).and_then(|o| o.client) else {
                    return;
                };
                if let Some(ex) = self.exchanges.get_mut(&client) {
                    ex.up_pending = 0;
                    if ex.client_paused && !ex.req.is_done() {
                        ex.client_paused = false;
                        out.pause(client, false);
                    }
                }
            }
            ProxyConn::Client { inner, .. } => {
                if let Some(ex) = self.exchanges.get_mut(&id) {
                    ex.down_pending = 0;
                    if ex.up_paused {
                        ex.up_paused = false;
                        out.pause(ex.up, false);
                    }
                } else if P::WANTS_DRAINED {
                    self.inner.drained(id, inner, out);
                }
            }
        }
    }

    fn closed(&mut self, id: ConnId, conn: Self::Conn, out: &mut Outbox) {
        match conn {
            ProxyConn::Probe => self.probe_done(id, false, out),
            ProxyConn::Upstream(_) => {
                let Some(o) = self.owners.get(&id) else {
                    return;
                };
                match o.client {
                    Some(client) => self.failed(client, Failure::Error, out),
                    None => self.drop_idle(id, out),
                }
            }
            ProxyConn::Client { inner, .. } => {
                self.kept.remove(&id);
                if let Some(mut ex) = self.exchanges.remove(&id) {
                    ex.attempt_ended();
                    self.balancers[ex.upstream].finished(ex.server);
                    // The client left first: nginx's 499.
                    let code = if ex.code == 0 { 499 } else { ex.code };
                    self.inner.record(&ex.record(code));
                    self.owners.remove(&ex.up);
                    out.close(ex.up);
                }
                self.inner.closed(id, inner, out);
            }
        }
    }

    fn refusal(&mut self) -> Bytes {
        self.inner.refusal()
    }

    fn tick(&mut self, out: &mut Outbox) {
        self.inner.tick(out);
        self.check_health(out);
    }

    fn draining(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        // A stopping loop starts no more health checks.
        self.stopping = true;
        if let ProxyConn::Client { inner, .. } = conn {
            self.inner.draining(id, inner, out);
        }
    }

    fn before_wait(&mut self, out: &mut Outbox) {
        self.inner.before_wait(out);
    }

    fn idle(&self, conn: &Self::Conn) -> bool {
        match conn {
            // Only a pooled connection: one serving a request is busy.
            ProxyConn::Upstream(id) => self.owners.get(id).map_or(true, |o| o.client.is_none()),
            ProxyConn::Probe => true,
            ProxyConn::Client { inner, id, .. } => {
                !self.exchanges.contains_key(id) && self.inner.idle(inner)
            }
        }
    }
}

impl<P: Origin + TlsAware> TlsAware for ReverseProxy<P> {
    fn open_tls(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        identity: &PeerIdentity,
        out: &mut Outbox,
    ) -> Self::Conn {
        ProxyConn::Client {
            inner: self.inner.open_tls(id, peer, identity, out),
            peer,
            id,
            https: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_checks_pass_on_2xx_and_3xx_only() {
        assert!(status_passes(b"HTTP/1.1 200 OK\r"));
        assert!(status_passes(b"HTTP/1.0 302 Found"));
        assert!(!status_passes(b"HTTP/1.1 500 Internal Server Error\r"));
        assert!(!status_passes(b"HTTP/1.1 404 Not Found"));
        assert!(!status_passes(b"SSH-2.0-OpenSSH"));
        assert!(!status_passes(b"HTTP/1.1 2000"));
    }

    #[test]
    fn the_upstream_head_drops_hop_by_hop_fields_and_adds_this_hop() {
        let raw = b"GET /api/x?y=1 HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, X-Hop\r\n\
            X-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
            Proxy-Authorization: Basic eA==\r\nX-Forwarded-For: 192.0.2.1\r\n\
            X-Forwarded-Proto: https\r\nForwarded: for=192.0.2.1\r\nAccept: */*\r\n\r\n";
        let (got, upgrade) =
            rewrite_request(raw, "127.0.0.1".parse().unwrap(), true, false).unwrap();
        assert_eq!(upgrade, None, "Connection does not name Upgrade");
        let text = String::from_utf8(got).unwrap();
        assert_eq!(
            text,
            "GET /api/x?y=1 HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\n\
             X-Forwarded-For: 192.0.2.1, 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\
             Forwarded: for=192.0.2.1, for=127.0.0.1;proto=http;host=\"app.test\"\r\n\r\n"
        );
        let (v6, _) = rewrite_request(
            b"GET / HTTP/1.0\r\n\r\n",
            "::1".parse().unwrap(),
            false,
            false,
        )
        .unwrap();
        assert!(String::from_utf8(v6)
            .unwrap()
            .ends_with("X-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\nForwarded: for=\"[::1]\";proto=http\r\n\r\n"));
        let (tls, _) = rewrite_request(
            b"GET / HTTP/1.1\r\n\r\n",
            "192.0.2.9".parse().unwrap(),
            false,
            true,
        )
        .unwrap();
        assert!(String::from_utf8(tls)
            .unwrap()
            .ends_with("X-Forwarded-Proto: https\r\nForwarded: for=192.0.2.9;proto=https\r\n\r\n"));
    }
}
