//! The proxy's event loop: pairs of sockets joined by `splice(2)` through pipes.
//!
//! The one idea: once a route is decided, a proxy moves bytes it never looks at, so
//! bulk bytes should never enter user space. Each direction of a pair owns a pipe;
//! `splice` moves bytes from the source socket into the pipe and from the pipe into
//! the destination socket, both non-blocking. A direction reads while its pipe has
//! room and writes while it holds bytes, so a slow receiver throttles its sender
//! through the pipe and the socket buffers (bounded memory). Small exchanges (a
//! request, a short response) cost fewer syscalls as one `read` and one `send`
//! through a buffer, so a direction starts that way and switches to splicing for
//! good the first time a read fills the whole buffer (HAProxy's "splice-auto" idea).
//! A read of 0 on one side becomes `shutdown(SHUT_WR)` on the other once the pipe is
//! drained: a half-close is passed on, never turned into a reset.
//!
//! A forwarded HTTP request (not a tunnel) is one exchange at a time on the pair: its
//! head, rewritten by `proto::proxy`, and its body go up, the body bounded by its
//! [`Frame`] (a `Content-Length` body is spliced only up to its length, a chunked one
//! is scanned as it is copied), so no byte of the client's next request is ever sent
//! with it; the response head is read and rewritten the same way and its body framed
//! down. Then the pair goes back to reading the client's next head, keeping the
//! upstream connection for it when the response allows, or closes lingering (our side
//! shut, the client's last bytes drained for a bounded time) so the client reads the
//! answer instead of a reset.
//!
//! Each loop is single-threaded over `epoll` (level-triggered, via the socket core's
//! [`Epoll`] backend); `--workers N` runs N loops, each with its own `SO_REUSEPORT`
//! listener. Name resolution (`getaddrinfo` blocks) runs on a small pool of resolver
//! threads that hand results back through an eventfd.

use super::epoll::Epoll;
use super::event_loop::{Fired, Interest, Poller};
use crate::log::{AccessLog, Combined};
use crate::net::{self, Listener};
use crate::proto::proxy::framing::Frame;
use crate::proto::proxy::{self, Policy, Refusal, Route};
use crate::signals::Shutdown;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// What a relay does with a new client.
#[derive(Debug, Clone)]
pub enum Mode {
    /// An HTTP forward proxy: the first request head decides the destination.
    Forward(Policy),
    /// A TCP forwarder: every client goes to these addresses (tried in order).
    Upstream(Vec<SocketAddr>),
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub mode: Mode,
    /// A pair with no bytes moving for this long is closed.
    pub idle_timeout: Duration,
    /// Resolving and connecting to the upstream may take this long (then 504).
    pub connect_timeout: Duration,
    /// Clients beyond this many are refused.
    pub max_clients: usize,
    /// Where a line per request goes (forward mode), in the Combined Log Format.
    pub access_log: Option<AccessLog>,
}

/// Counters for one loop; read with [`RelayStats::snapshot`].
#[derive(Debug, Default)]
pub struct RelayStats {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub refused: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        #[source]
        source: io::Error,
    },
}

fn sys(call: &'static str) -> impl FnOnce(io::Error) -> RelayError {
    move |source| RelayError::Sys { call, source }
}

const TOKEN_SHUTDOWN: u64 = u64::MAX;
const TOKEN_RESOLVER: u64 = u64::MAX - 1;
const TOKEN_LISTENER0: u64 = u64::MAX - 2;
/// The size asked of each pipe; the kernel may give less (pipe-max-size).
const PIPE_SIZE: libc::c_int = 1 << 20;
/// Pipes kept for reuse: a new pair costs no pipe2() while the pool lasts.
const PIPE_POOL: usize = 256;
const TICK: Duration = Duration::from_millis(250);
/// How long the listeners are left unwatched after an accept error.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Pipes' worth of bytes one direction may move per wakeup before the loop serves
/// the others (see [`splice_dir`]).
const SPLICE_BUDGET: usize = 4;
/// A read that fills this much switches a direction from copying to splicing.
const COPY_BUF: usize = 64 * 1024;
/// After its last response (or a refusal) a client may still be sending: its bytes
/// are read and dropped for this long after our half-close, so that closing with
/// unread input (which sends a reset) cannot destroy the answer before the client
/// reads it (nginx's lingering close).
const LINGER: Duration = Duration::from_secs(5);
/// An upstream connection kept for a client's next request is not reused after this
/// long idle: an origin may have closed it meanwhile (nginx's keepalive_timeout).
const UPSTREAM_IDLE: Duration = Duration::from_secs(4);

/// Runs one relay loop on the calling thread until `shutdown`.
pub fn run(
    listeners: Vec<Listener>,
    config: &RelayConfig,
    stats: &RelayStats,
    shutdown: &Shutdown,
) -> Result<(), RelayError> {
    let mut poller = Epoll::new().map_err(sys("epoll_create1"))?;
    for (i, l) in listeners.iter().enumerate() {
        // Accepted sockets inherit it: a relayed response split in two segments must
        // not wait for the client's delayed ACK (Nagle).
        set_nodelay(l.as_raw_fd());
        poller
            .add(l.as_raw_fd(), TOKEN_LISTENER0 - i as u64, Interest::READ)
            .map_err(sys("epoll_ctl"))?;
    }
    poller
        .add(shutdown.fd().as_raw_fd(), TOKEN_SHUTDOWN, Interest::READ)
        .map_err(sys("epoll_ctl"))?;
    let resolver = Resolver::start(2).map_err(sys("eventfd"))?;
    poller
        .add(resolver.wake.as_raw_fd(), TOKEN_RESOLVER, Interest::READ)
        .map_err(sys("epoll_ctl"))?;

    let mut relay = Relay {
        poller,
        config,
        stats,
        pairs: Vec::new(),
        free: Vec::new(),
        freed_now: Vec::new(),
        pipes: Vec::new(),
        resolver,
        buf: vec![0; COPY_BUF],
        clock: (0, String::new()),
    };
    let mut fired = Vec::new();
    let mut last_scan = Instant::now();
    // After an accept error (EMFILE, ENFILE, ENOBUFS) the listeners stay readable: watching
    // them would spin. They are left out of the poller for ACCEPT_PAUSE, as the event loop does.
    let mut accept_paused_until: Option<Instant> = None;
    let mut last_accept_warning: Option<Instant> = None;
    while !shutdown.is_set() {
        let mut timeout = TICK;
        if let Some(until) = accept_paused_until {
            let now = Instant::now();
            if now >= until {
                for (i, l) in listeners.iter().enumerate() {
                    relay
                        .poller
                        .add(l.as_raw_fd(), TOKEN_LISTENER0 - i as u64, Interest::READ)
                        .map_err(sys("epoll_ctl"))?;
                }
                accept_paused_until = None;
            } else {
                timeout = timeout.min(until - now);
            }
        }
        relay
            .poller
            .wait(timeout, &mut fired)
            .map_err(sys("epoll_wait"))?;
        for ev in &fired {
            match ev.token {
                TOKEN_SHUTDOWN => {}
                TOKEN_RESOLVER => relay.resolved(),
                t if t > TOKEN_LISTENER0 - listeners.len() as u64 && t <= TOKEN_LISTENER0 => {
                    if accept_paused_until.is_some() {
                        continue; // fired in this batch before the pause began
                    }
                    let l = &listeners[(TOKEN_LISTENER0 - t) as usize];
                    if let Err(e) = relay.accept(l) {
                        let now = Instant::now();
                        if last_accept_warning
                            .map_or(true, |t| now.duration_since(t) >= Duration::from_secs(1))
                        {
                            tracing::warn!(error = %e, pause_ms = ACCEPT_PAUSE.as_millis() as u64,
                                "accept failed; accepting paused");
                            last_accept_warning = Some(now);
                        }
                        for l in &listeners {
                            relay
                                .poller
                                .delete(l.as_raw_fd())
                                .map_err(sys("epoll_ctl"))?;
                        }
                        accept_paused_until = Some(now + ACCEPT_PAUSE);
                    }
                }
                t => relay.event(t, ev),
            }
        }
        // Slots freed during this batch become reusable only now, so a stale event
        // later in the same batch can never reach a newer pair in the same slot.
        relay.free.append(&mut relay.freed_now);
        if last_scan.elapsed() >= TICK {
            last_scan = Instant::now();
            relay.scan_timeouts();
        }
    }
    let open: Vec<usize> = (0..relay.pairs.len())
        .filter(|i| relay.pairs[*i].is_some())
        .collect();
    for slot in open {
        relay.close(slot, "shutdown");
    }
    Ok(())
}

/// One direction of a pair: source socket → pipe → destination socket.
#[derive(Default)]
struct Dir {
    /// Bytes to write before anything spliced (a rewritten request head, a
    /// `200 Connection established`, a leftover of the client's first read).
    prefix: Vec<u8>,
    prefix_off: usize,
    pipe: Option<Pipe>,
    in_pipe: usize,
    /// The pipe refused more (`EAGAIN` while holding bytes): stop reading the source
    /// until the pipe is empty again. See [`splice_dir`].
    pipe_full: bool,
    src_eof: bool,
    dst_shut: bool,
    /// Do not read the source at all yet (the route is not decided).
    hold: bool,
    /// Bulk mode: bytes go through the pipe (see [`pump_dir`]).
    splicing: bool,
    /// Where the current message ends; a tunnel's bytes run until end of stream.
    frame: Frame,
    /// Bytes read past the end of the message (the start of the next request).
    overflow: Vec<u8>,
    /// Pass on only the data of a chunked body (see [`Frame::take_decoded`]).
    dechunk: bool,
}

pub(crate) struct Pipe {
    pub(crate) r: OwnedFd,
    pub(crate) w: OwnedFd,
    pub(crate) cap: usize,
}

impl Dir {
    fn wants_read(&self) -> bool {
        let room = if self.splicing {
            !self.pipe_full && self.pipe.as_ref().is_some_and(|p| self.in_pipe < p.cap)
        } else {
            self.prefix_off >= self.prefix.len()
        };
        !self.hold && !self.src_eof && room && !self.frame.is_done()
    }
    fn wants_write(&self) -> bool {
        self.prefix_off < self.prefix.len() || self.in_pipe > 0
    }
    fn done(&self) -> bool {
        self.src_eof && !self.wants_write()
    }
}

enum Stage {
    /// Reading the request head (forward mode).
    Head(Vec<u8>),
    /// Waiting for the resolver.
    Resolving { host: String, port: u16 },
    /// A non-blocking connect is under way; `rest` are addresses still to try.
    Connecting { rest: VecDeque<SocketAddr> },
    /// Bytes flow.
    Relaying,
    /// Writing an error response to the client, then closing.
    Refusing,
    /// Our side is shut; the client's last bytes are drained until it closes or the
    /// deadline passes (see [`LINGER`]).
    Lingering { until: Instant },
}

/// One request/response exchange of a forwarded (not tunnelled) request.
struct Exchange {
    /// Client bytes read past the current request: the start of the next one.
    inbox: Vec<u8>,
    keep_alive: bool,
    head_method: bool,
    minor: u8,
    /// The response head read so far; `None` once it is parsed and passed on.
    response: Option<Vec<u8>>,
    /// Something of the response has reached the client (a 1xx, or more).
    answered: bool,
    /// The upstream connection may serve the client's next request to the same
    /// origin (a framed response, no `close`, nothing after it).
    reusable: bool,
    /// Sent on a kept upstream connection, with no body: the head and destination
    /// to send it again with if that connection turns out closed.
    retry: Option<(Vec<u8>, String, u16)>,
}

/// An upstream connection kept between two requests of one client: its descriptor
/// (registered with no interest), the `host:port` it reaches, and since when.
struct IdleUpstream {
    fd: OwnedFd,
    dest: String,
    since: Instant,
}

/// What the access log needs of a request, until its status is known.
struct LogEntry {
    line: Vec<u8>,
    referer: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
    status: u16,
    /// Bytes the client was sent that were not heads.
    head_bytes: u64,
    sent: u64,
}

struct Pair {
    client: OwnedFd,
    client_addr: SocketAddr,
    upstream: Option<OwnedFd>,
    up: Dir,
    down: Dir,
    stage: Stage,
    /// The route, for a tunnel's 200 once connected.
    tunnel: bool,
    /// Destination, for logs and the access check on resolved addresses.
    dest: String,
    started: Instant,
    last_active: Instant,
    client_interest: Interest,
    upstream_interest: Interest,
    /// A forwarded request in progress; `None` for a tunnel or a TCP forward.
    http: Option<Exchange>,
    log: Option<LogEntry>,
    idle_upstream: Option<IdleUpstream>,
}

struct Relay<'a> {
    poller: Epoll,
    config: &'a RelayConfig,
    stats: &'a RelayStats,
    pairs: Vec<Option<Pair>>,
    free: Vec<usize>,
    freed_now: Vec<usize>,
    pipes: Vec<Pipe>,
    resolver: Resolver,
    /// Where copy-mode bytes pass through (see [`pump_dir`]).
    buf: Vec<u8>,
    /// The second the access log's time was last formatted, and that time.
    clock: (i64, String),
}

/// Which directions of a pair an event can move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dirs {
    /// Client → upstream.
    up: bool,
    /// Upstream → client.
    down: bool,
}

impl Dirs {
    const BOTH: Self = Self {
        up: true,
        down: true,
    };

    /// A direction moves only when its source is readable or its destination
    /// writable. Pumping the other one too would cost a `read` or `splice` that
    /// can only say `EAGAIN`, once per wakeup: during a one-way bulk transfer that
    /// is one wasted syscall per chunk on the idle direction. An error or hangup
    /// concerns both.
    fn fired(on_upstream: bool, ev: &Fired) -> Self {
        if ev.hangup {
            return Self::BOTH;
        }
        if on_upstream {
            Self {
                up: ev.writable,
                down: ev.readable,
            }
        } else {
            Self {
                up: ev.readable,
                down: ev.writable,
            }
        }
    }
}

fn token(slot: usize, upstream: bool) -> u64 {
    ((slot as u64) << 1) | u64::from(upstream)
}

impl Relay<'_> {
    /// Takes up to 256 waiting connections; an error (out of descriptors, say) is the
    /// caller's to act on.
    fn accept(&mut self, listener: &Listener) -> Result<(), net::NetError> {
        for _ in 0..256 {
            let (fd, addr) = match listener.accept()? {
                Some(c) => c,
                None => return Ok(()),
            };
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            let active = self.stats.active.load(Ordering::Relaxed) as usize;
            if active >= self.config.max_clients {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                if matches!(self.config.mode, Mode::Forward(_)) {
                    let r = proxy::error_response(503, "too many clients");
                    net::send_once(fd.as_fd(), &r);
                }
                continue;
            }
            self.open(fd, addr);
        }
        Ok(())
    }

    fn open(&mut self, client: OwnedFd, client_addr: SocketAddr) {
        let now = Instant::now();
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.pairs.push(None);
                self.pairs.len() - 1
            }
        };
        let (stage, dest, hold) = match &self.config.mode {
            Mode::Forward(_) => (Stage::Head(Vec::new()), String::new(), true),
            Mode::Upstream(addrs) => (
                Stage::Connecting {
                    rest: addrs.iter().copied().collect(),
                },
                addrs.first().map(|a| a.to_string()).unwrap_or_default(),
                true,
            ),
        };
        let interest = Interest {
            read: matches!(stage, Stage::Head(_)),
            ..Interest::default()
        };
        if let Err(e) = self
            .poller
            .add(client.as_raw_fd(), token(slot, false), interest)
        {
            tracing::warn!(error = %e, "epoll_ctl add failed, dropping client");
            self.free.push(slot);
            return;
        }
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        self.pairs[slot] = Some(Pair {
            client,
            client_addr,
            upstream: None,
            up: Dir {
                hold,
                ..Dir::default()
            },
            down: Dir {
                hold: true,
                ..Dir::default()
            },
            stage,
            tunnel: true,
            dest,
            started: now,
            last_active: now,
            client_interest: interest,
            upstream_interest: Interest::default(),
            http: None,
            log: None,
            idle_upstream: None,
        });
        if matches!(self.config.mode, Mode::Upstream(_)) {
            self.connect_next(slot);
        }
    }

    fn event(&mut self, tok: u64, ev: &Fired) {
        let slot = (tok >> 1) as usize;
        let on_upstream = tok & 1 == 1;
        let Some(pair) = self.pairs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match pair.stage {
            Stage::Head(_) if !on_upstream => self.read_head(slot),
            // A kept upstream connection has no interest: only an error or a hangup
            // reports it, and it is then of no more use.
            Stage::Head(_) => self.drop_idle_upstream(slot),
            Stage::Connecting { .. } if on_upstream && ev.writable => self.connected(slot),
            Stage::Relaying => self.pump(slot, Dirs::fired(on_upstream, ev)),
            Stage::Refusing => self.pump_refusal(slot),
            Stage::Lingering { .. } if !on_upstream => self.linger_read(slot),
            _ => {
                if ev.hangup && !on_upstream {
                    self.close(slot, "client left before the upstream answered");
                }
            }
        }
    }

    fn read_head(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let Stage::Head(buf) = &mut pair.stage else {
            return;
        };
        let mut chunk = [0u8; 8192];
        match net::read(pair.client.as_fd(), &mut chunk) {
            Ok(0) => return self.close(slot, "client closed before a request"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => return self.close(slot, "client read error"),
        }
        pair.last_active = Instant::now();
        self.take_request(slot);
    }

    /// Acts on the request head buffered in `Stage::Head`, if it is complete: every
    /// request of a connection passes here, the first and each one after a response.
    fn take_request(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let Stage::Head(buf) = &mut pair.stage else {
            return;
        };
        let Mode::Forward(policy) = &self.config.mode else {
            return;
        };
        let req = match proxy::parse(buf) {
            Ok(None) => return,
            Ok(Some(req)) => req,
            Err(r) => return self.refuse(slot, r),
        };
        pair.log = Some(LogEntry {
            line: req.line.clone(),
            referer: req.referer.clone(),
            user_agent: req.user_agent.clone(),
            status: 0,
            head_bytes: 0,
            sent: 0,
        });
        if let Err(r) = policy.check(&req) {
            return self.refuse(slot, r);
        }
        let leftover = buf.get(req.head_len..).unwrap_or_default().to_vec();
        let (host, port) = match req.route {
            Route::Tunnel { host, port } => {
                pair.tunnel = true;
                pair.http = None;
                pair.idle_upstream = None;
                pair.up.prefix = leftover;
                (host, port)
            }
            Route::Forward(f) => {
                pair.tunnel = false;
                let dest = format!("{}:{}", f.host, f.port);
                let idle = pair.idle_upstream.take();
                let reuse = idle.filter(|i| {
                    i.dest == dest && i.since.elapsed() < UPSTREAM_IDLE && still_open(i.fd.as_fd())
                });
                // One not reused is dropped here: closing it leaves the epoll set.
                let mut body = f.body;
                let k = match body.take(&leftover) {
                    Ok(k) => k,
                    Err(e) => return self.refuse(slot, Refusal::new(400, e.to_string())),
                };
                let mut prefix = f.head;
                prefix.extend_from_slice(&leftover[..k]);
                pair.up.prefix = prefix;
                pair.up.prefix_off = 0;
                pair.up.frame = body;
                pair.http = Some(Exchange {
                    inbox: leftover[k..].to_vec(),
                    keep_alive: f.keep_alive,
                    head_method: f.head_method,
                    minor: f.minor,
                    response: Some(Vec::new()),
                    answered: false,
                    reusable: false,
                    retry: None,
                });
                if let Some(i) = reuse {
                    if let (Some(http), Frame::Done) = (pair.http.as_mut(), &pair.up.frame) {
                        http.retry = Some((pair.up.prefix.clone(), f.host, f.port));
                    }
                    pair.upstream = Some(i.fd);
                    pair.upstream_interest = Interest::default();
                    pair.dest = dest;
                    pair.up.hold = false;
                    pair.down.hold = false;
                    pair.stage = Stage::Relaying;
                    pair.started = Instant::now();
                    return self.pump_http(slot);
                }
                (f.host, f.port)
            }
        };
        self.start_upstream(slot, host, port);
    }

    /// Resolves `host` and connects to it for the pair's current request.
    fn start_upstream(&mut self, slot: usize, host: String, port: u16) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        pair.dest = format!("{host}:{port}");
        pair.stage = Stage::Resolving {
            host: host.clone(),
            port,
        };
        pair.started = Instant::now();
        self.set_interest(slot);
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.resolved_one(slot, &host, Ok(vec![SocketAddr::new(ip, port)]));
        } else {
            self.resolver.ask(slot, host, port);
        }
    }

    /// A kept upstream connection ended before answering (its origin closed it while
    /// idle): a request without a body is sent again on a new connection, once.
    fn retry_fresh(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let Some(http) = pair.http.as_mut() else {
            return;
        };
        let Some((head, host, port)) = http.retry.take() else {
            return;
        };
        if let Some(up) = pair.upstream.take() {
            let _ = self.poller.delete(up.as_raw_fd());
        }
        pair.upstream_interest = Interest::default();
        http.response = Some(Vec::new());
        pair.up.prefix = head;
        pair.up.prefix_off = 0;
        pair.up.hold = true;
        pair.down.hold = true;
        tracing::debug!(client = %pair.client_addr, dest = %pair.dest, "kept upstream connection was closed; retrying on a new one");
        self.start_upstream(slot, host, port);
    }

    fn resolved(&mut self) {
        net::eventfd_drain(self.resolver.wake.as_fd());
        let answers: Vec<Answer> = match self.resolver.done.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(poisoned) => poisoned.into_inner().drain(..).collect(),
        };
        for a in answers {
            // The slot may have closed (and been reused) while the name was
            // resolving: act only if it still waits for this very name.
            let waiting = matches!(
                self.pairs.get(a.slot).and_then(Option::as_ref).map(|p| &p.stage),
                Some(Stage::Resolving { host, port }) if *host == a.host && *port == a.port
            );
            if waiting {
                self.resolved_one(a.slot, &a.host, a.result);
            }
        }
    }

    fn resolved_one(&mut self, slot: usize, host: &str, result: io::Result<Vec<SocketAddr>>) {
        let addrs = match result {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => {
                return self.refuse(slot, upstream_refusal(502, format!("{host}: no address")))
            }
            Err(e) => {
                return self.refuse(
                    slot,
                    upstream_refusal(502, format!("cannot resolve {host}: {e}")),
                )
            }
        };
        if let Mode::Forward(policy) = &self.config.mode {
            for a in &addrs {
                if let Err(r) = policy.check_addr(host, a.ip()) {
                    return self.refuse(slot, r);
                }
            }
        }
        if let Some(pair) = self.pairs[slot].as_mut() {
            pair.stage = Stage::Connecting { rest: addrs.into() };
        }
        self.connect_next(slot);
    }

    /// Starts a non-blocking connect to the next address, or gives up with 502.
    fn connect_next(&mut self, slot: usize) {
        loop {
            let Some(pair) = self.pairs[slot].as_mut() else {
                return;
            };
            let Stage::Connecting { rest } = &mut pair.stage else {
                return;
            };
            let Some(addr) = rest.pop_front() else {
                self.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                let dest = pair.dest.clone();
                return self.refuse(
                    slot,
                    upstream_refusal(502, format!("cannot connect to {dest}")),
                );
            };
            if let Some(old) = pair.upstream.take() {
                let _ = self.poller.delete(old.as_raw_fd());
            }
            match connect_nonblocking(addr) {
                Ok(fd) => {
                    let interest = Interest {
                        write: true,
                        ..Interest::default()
                    };
                    if self
                        .poller
                        .add(fd.as_raw_fd(), token(slot, true), interest)
                        .is_err()
                    {
                        continue;
                    }
                    pair.upstream = Some(fd);
                    pair.upstream_interest = interest;
                    pair.dest = addr.to_string();
                    return;
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "connect failed");
                }
            }
        }
    }

    fn connected(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let Some(up) = pair.upstream.as_ref() else {
            return;
        };
        if let Err(e) = socket_error(up.as_fd()) {
            tracing::debug!(dest = %pair.dest, error = %e, "connect failed");
            return self.connect_next(slot);
        }
        // A kept-alive client's pair still has the pipes of its last exchange.
        if pair.up.pipe.is_none() || pair.down.pipe.is_none() {
            let (p1, p2) = match (self.take_pipe(), self.take_pipe()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return self.refuse(slot, upstream_refusal(502, "out of pipes".into())),
            };
            let Some(pair) = self.pairs[slot].as_mut() else {
                return;
            };
            pair.up.pipe = Some(p1);
            pair.down.pipe = Some(p2);
        }
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        if pair.tunnel && matches!(self.config.mode, Mode::Forward(_)) {
            pair.down.prefix = proxy::TUNNEL_ESTABLISHED.to_vec();
            if let Some(log) = pair.log.as_mut() {
                log.status = 200;
                log.head_bytes = proxy::TUNNEL_ESTABLISHED.len() as u64;
            }
        }
        pair.up.hold = false;
        pair.down.hold = false;
        pair.stage = Stage::Relaying;
        pair.last_active = Instant::now();
        tracing::debug!(client = %pair.client_addr, dest = %pair.dest, "relaying");
        self.pump(slot, Dirs::BOTH);
    }

    /// Moves whatever can move in the directions `dirs`, then updates interest.
    fn pump(&mut self, slot: usize, dirs: Dirs) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        if pair.http.is_some() {
            return self.pump_http(slot);
        }
        let Some(upstream) = pair.upstream.as_ref() else {
            return;
        };
        let client = pair.client.as_fd();
        let upstream = upstream.as_fd();
        let a = if dirs.up {
            pump_dir(&mut pair.up, client, upstream, &mut self.buf)
        } else {
            Ok(0)
        };
        let b = if dirs.down {
            pump_dir(&mut pair.down, upstream, client, &mut self.buf)
        } else {
            Ok(0)
        };
        let (moved_up, moved_down) = match (a, b) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) => {
                let why = io_why(&e);
                return self.close(slot, why);
            }
        };
        if moved_up + moved_down > 0 {
            pair.last_active = Instant::now();
            if let Some(log) = pair.log.as_mut() {
                log.sent += moved_down as u64;
            }
            self.stats
                .bytes_up
                .fetch_add(moved_up as u64, Ordering::Relaxed);
            self.stats
                .bytes_down
                .fetch_add(moved_down as u64, Ordering::Relaxed);
        }
        if pair.up.done() && pair.down.done() {
            return self.close(slot, "done");
        }
        self.set_interest(slot);
    }

    fn set_interest(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let relaying = matches!(pair.stage, Stage::Relaying);
        let client = Interest {
            read: matches!(pair.stage, Stage::Head(_) | Stage::Lingering { .. })
                || (relaying && pair.up.wants_read()),
            write: (relaying || matches!(pair.stage, Stage::Refusing)) && pair.down.wants_write(),
            exclusive: false,
        };
        if client != pair.client_interest {
            pair.client_interest = client;
            let _ = self
                .poller
                .modify(pair.client.as_raw_fd(), token(slot, false), client);
        }
        if let Some(up) = pair.upstream.as_ref() {
            // While a response head is awaited, its bytes are read by `pump_http`.
            let awaiting_head = pair
                .http
                .as_ref()
                .is_some_and(|h| h.response.is_some() && pair.down.prefix.is_empty());
            let upstream = Interest {
                read: relaying && (pair.down.wants_read() || awaiting_head),
                write: relaying && pair.up.wants_write(),
                exclusive: false,
            };
            if relaying && upstream != pair.upstream_interest {
                pair.upstream_interest = upstream;
                let _ = self
                    .poller
                    .modify(up.as_raw_fd(), token(slot, true), upstream);
            }
        }
    }

    /// A forwarded request: the request head and body go up, framed; the response
    /// head is read, rewritten and passed down, then its body, framed; at the end of
    /// the response the client's next request is taken, or the connection closes.
    fn pump_http(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let (Some(upstream), Some(http)) = (pair.upstream.as_ref(), pair.http.as_mut()) else {
            return;
        };
        let client = pair.client.as_fd();
        let upstream = upstream.as_fd();
        let mut moved = 0;
        let mut moved_down = 0;
        match pump_dir(&mut pair.up, client, upstream, &mut self.buf) {
            Ok(n) => moved += n,
            Err(_) if http.retry.is_some() && !http.answered => return self.retry_fresh(slot),
            Err(e) => {
                let why = io_why(&e);
                return self.close(slot, why);
            }
        }
        if !pair.up.overflow.is_empty() {
            http.inbox.append(&mut pair.up.overflow);
        }
        // The response head, and any 1xx before it.
        while let Some(head) = http.response.as_mut() {
            match write_prefix(&mut pair.down, client) {
                Ok(n) => moved_down += n,
                Err(_) => return self.close(slot, "client gone"),
            }
            if !pair.down.prefix.is_empty() {
                break;
            }
            let parsed =
                match proxy::parse_response(head, http.head_method, http.keep_alive, http.minor) {
                    Ok(Some(r)) => r,
                    Ok(None) => match net::read(upstream, &mut self.buf) {
                        Ok(0) if head.is_empty() && !http.answered && http.retry.is_some() => {
                            self.retry_fresh(slot);
                            return;
                        }
                        Err(e)
                            if e.kind() != io::ErrorKind::WouldBlock
                                && head.is_empty()
                                && !http.answered
                                && http.retry.is_some() =>
                        {
                            self.retry_fresh(slot);
                            return;
                        }
                        Ok(0) if !http.answered => {
                            return self.refuse(
                                slot,
                                upstream_refusal(
                                    502,
                                    "the upstream closed without a response".into(),
                                ),
                            )
                        }
                        Ok(0) => return self.close(slot, "upstream closed after a 1xx"),
                        Ok(n) => {
                            head.extend_from_slice(&self.buf[..n]);
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) if !http.answered => {
                            return self.refuse(
                                slot,
                                upstream_refusal(502, "the upstream reset the connection".into()),
                            )
                        }
                        Err(_) => return self.close(slot, "upstream read error"),
                    },
                    Err(r) if !http.answered => return self.refuse(slot, r),
                    Err(_) => return self.close(slot, "bad response after a 1xx"),
                };
            let rest = head.split_off(parsed.head_len);
            http.answered = true;
            if let Some(log) = pair.log.as_mut() {
                log.status = parsed.status;
                log.head_bytes += parsed.head.len() as u64;
            }
            pair.down.prefix = parsed.head;
            pair.down.prefix_off = 0;
            if parsed.interim {
                *head = rest;
                continue;
            }
            let mut body = parsed.body;
            // Bytes past the body are not this response's: the upstream connection
            // closes after it, and they are dropped.
            let taken = if parsed.dechunk {
                body.take_decoded(&rest, &mut pair.down.prefix)
            } else {
                body.take(&rest)
                    .inspect(|k| pair.down.prefix.extend_from_slice(&rest[..*k]))
            };
            let Ok(k) = taken else {
                return self.close(slot, "malformed chunked response");
            };
            pair.down.frame = body;
            pair.down.dechunk = parsed.dechunk;
            http.reusable = parsed.reusable && k == rest.len();
            http.keep_alive = parsed.keep_alive;
            http.response = None;
        }
        if http.response.is_none() {
            match pump_dir(&mut pair.down, upstream, client, &mut self.buf) {
                Ok(n) => moved_down += n,
                Err(e) => {
                    let why = io_why(&e);
                    return self.close(slot, why);
                }
            }
            if !pair.down.overflow.is_empty() {
                // The upstream sent more than its response: not to be trusted again.
                http.reusable = false;
                pair.down.overflow.clear();
            }
        }
        if moved + moved_down > 0 {
            pair.last_active = Instant::now();
            self.stats
                .bytes_up
                .fetch_add(moved as u64, Ordering::Relaxed);
            self.stats
                .bytes_down
                .fetch_add(moved_down as u64, Ordering::Relaxed);
            if let Some(log) = pair.log.as_mut() {
                log.sent += moved_down as u64;
            }
        }
        let finished = http.response.is_none()
            && !pair.down.wants_write()
            && (pair.down.frame.is_done() || pair.down.src_eof);
        if finished {
            return self.finish_exchange(slot);
        }
        self.set_interest(slot);
    }

    /// The response is out: the client's next request is read from the same
    /// connection, or the connection closes.
    fn finish_exchange(&mut self, slot: usize) {
        self.write_log(slot);
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        let Some(http) = pair.http.take() else {
            return self.linger(slot);
        };
        let request_sent = pair.up.frame.is_done() && !pair.up.wants_write();
        let stays = http.keep_alive && request_sent && !pair.down.src_eof;
        if let Some(up) = pair.upstream.take() {
            if stays && http.reusable {
                // Kept for the next request, watched for nothing meanwhile.
                let _ = self
                    .poller
                    .modify(up.as_raw_fd(), token(slot, true), Interest::default());
                pair.idle_upstream = Some(IdleUpstream {
                    fd: up,
                    dest: pair.dest.clone(),
                    since: Instant::now(),
                });
            } else {
                let _ = self.poller.delete(up.as_raw_fd());
            }
        }
        pair.upstream_interest = Interest::default();
        if !stays {
            return self.linger(slot);
        }
        pair.up = Dir {
            pipe: pair.up.pipe.take(),
            hold: true,
            ..Dir::default()
        };
        pair.down = Dir {
            pipe: pair.down.pipe.take(),
            hold: true,
            ..Dir::default()
        };
        pair.stage = Stage::Head(http.inbox);
        pair.last_active = Instant::now();
        self.set_interest(slot);
        self.take_request(slot);
    }

    fn drop_idle_upstream(&mut self, slot: usize) {
        if let Some(i) = self
            .pairs
            .get_mut(slot)
            .and_then(Option::as_mut)
            .and_then(|p| p.idle_upstream.take())
        {
            let _ = self.poller.delete(i.fd.as_raw_fd());
        }
    }

    /// Half-closes towards the client, then drains what it still sends until it
    /// closes too or [`LINGER`] passes.
    fn linger(&mut self, slot: usize) {
        self.drop_idle_upstream(slot);
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        if let Some(up) = pair.upstream.take() {
            let _ = self.poller.delete(up.as_raw_fd());
        }
        if !pair.down.dst_shut {
            net::shutdown_write(pair.client.as_fd());
        }
        pair.stage = Stage::Lingering {
            until: Instant::now() + LINGER,
        };
        self.set_interest(slot);
        self.linger_read(slot);
    }

    fn linger_read(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        // A bounded amount per wakeup, so one client cannot hold the loop.
        for _ in 0..16 {
            match net::read(pair.client.as_fd(), &mut self.buf) {
                Ok(0) => return self.close(slot, "closed"),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.close(slot, "client read error"),
            }
        }
    }

    /// Writes the access log line of the pair's current request, once.
    fn write_log(&mut self, slot: usize) {
        let Some(pair) = self.pairs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Some(entry) = pair.log.take() else {
            return;
        };
        let Some(log) = &self.config.access_log else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if self.clock.0 != now || self.clock.1.is_empty() {
            self.clock = (now, proxy::clf_time(now));
        }
        log.line(
            Combined {
                host: pair.client_addr.ip(),
                time: &self.clock.1,
                request: &entry.line,
                status: entry.status,
                bytes: entry.sent.saturating_sub(entry.head_bytes),
                referer: entry.referer.as_deref(),
                user_agent: entry.user_agent.as_deref(),
            }
            .format(),
        );
    }

    /// Answers the client with an error status, then closes.
    fn refuse(&mut self, slot: usize, r: Refusal) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        tracing::info!(client = %pair.client_addr, dest = %pair.dest, status = r.status, why = %r.why, "refused");
        if let Some(up) = pair.upstream.take() {
            let _ = self.poller.delete(up.as_raw_fd());
        }
        if matches!(self.config.mode, Mode::Upstream(_)) {
            return self.close(slot, "upstream unreachable");
        }
        let response = r.response();
        if let Some(log) = pair.log.as_mut() {
            log.status = r.status;
            log.head_bytes = 0;
            log.sent = response.len() as u64;
        } else {
            // Refused before a request line could be read.
            pair.log = Some(LogEntry {
                line: Vec::new(),
                referer: None,
                user_agent: None,
                status: r.status,
                head_bytes: 0,
                sent: response.len() as u64,
            });
        }
        self.write_log(slot);
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        // The pipes are kept (empty ones go back to the pool on close).
        for d in [&mut pair.up, &mut pair.down] {
            if d.in_pipe > 0 {
                d.pipe = None;
            }
        }
        pair.down = Dir {
            prefix: response,
            pipe: pair.down.pipe.take(),
            ..Dir::default()
        };
        pair.http = None;
        pair.stage = Stage::Refusing;
        self.pump_refusal(slot);
    }

    fn pump_refusal(&mut self, slot: usize) {
        let Some(pair) = self.pairs[slot].as_mut() else {
            return;
        };
        match write_prefix(&mut pair.down, pair.client.as_fd()) {
            Ok(_) if !pair.down.wants_write() => self.linger(slot),
            Ok(_) => self.set_interest(slot),
            Err(_) => self.close(slot, "client gone"),
        }
    }

    fn scan_timeouts(&mut self) {
        let now = Instant::now();
        for slot in 0..self.pairs.len() {
            let Some(pair) = self.pairs[slot].as_ref() else {
                continue;
            };
            let waiting_upstream = matches!(
                pair.stage,
                Stage::Resolving { .. } | Stage::Connecting { .. }
            );
            if waiting_upstream && now.duration_since(pair.started) > self.config.connect_timeout {
                self.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                let dest = pair.dest.clone();
                self.refuse(
                    slot,
                    upstream_refusal(504, format!("{dest} did not answer in time")),
                );
            } else if let Stage::Lingering { until } = pair.stage {
                if now >= until {
                    self.close(slot, "lingering close timed out");
                }
            } else if now.duration_since(pair.last_active) > self.config.idle_timeout {
                self.close(slot, "idle timeout");
            }
        }
    }

    fn close(&mut self, slot: usize, why: &'static str) {
        self.write_log(slot);
        let Some(pair) = self.pairs.get_mut(slot).and_then(Option::take) else {
            return;
        };
        tracing::debug!(client = %pair.client_addr, dest = %pair.dest, why, "closed");
        let _ = self.poller.delete(pair.client.as_raw_fd());
        if let Some(up) = &pair.upstream {
            let _ = self.poller.delete(up.as_raw_fd());
        }
        for dir in [pair.up, pair.down] {
            if let Some(p) = dir.pipe {
                // A pipe still holding bytes would leak them into the next pair.
                if dir.in_pipe == 0 && self.pipes.len() < PIPE_POOL {
                    self.pipes.push(p);
                }
            }
        }
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
        self.freed_now.push(slot);
    }

    fn take_pipe(&mut self) -> io::Result<Pipe> {
        match self.pipes.pop() {
            Some(p) => Ok(p),
            None => new_pipe(),
        }
    }
}

fn io_why(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "peer reset",
        io::ErrorKind::UnexpectedEof => "peer closed inside a message",
        io::ErrorKind::InvalidData => "malformed chunked body",
        _ => "splice error",
    }
}

fn upstream_refusal(status: u16, why: String) -> Refusal {
    Refusal::new(status, why)
}

/// One direction: prefix first, then the bytes themselves. A direction starts by
/// copying through `buf` (read + send: the fewest syscalls for the small exchanges of
/// request/response traffic) and switches to splicing through its pipe for good once
/// one read fills the whole buffer, the sign of a bulk transfer.
/// Returns the bytes delivered to the destination.
fn pump_dir(
    d: &mut Dir,
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut moved = write_prefix(d, dst)?;
    if d.prefix_off < d.prefix.len() {
        return Ok(moved);
    }
    if !d.splicing && !d.src_eof && !d.frame.is_done() && !d.hold {
        let limit = d.frame.read_limit(buf.len());
        match net::read(src, &mut buf[..limit]) {
            Ok(0) => d.src_eof = true,
            Ok(n) if d.dechunk => {
                let mut data = Vec::new();
                let k = d
                    .frame
                    .take_decoded(&buf[..n], &mut data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                d.overflow.extend_from_slice(&buf[k..n]);
                let sent = send_some(dst, &data)?;
                moved += sent;
                if sent < data.len() {
                    data.drain(..sent);
                    d.prefix = data;
                    d.prefix_off = 0;
                    return Ok(moved);
                }
            }
            Ok(n) => {
                let k = d
                    .frame
                    .take(&buf[..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                d.overflow.extend_from_slice(&buf[k..n]);
                let sent = send_some(dst, &buf[..k])?;
                moved += sent;
                if sent < k {
                    d.prefix = buf[sent..k].to_vec();
                    d.prefix_off = 0;
                    return Ok(moved);
                }
                d.splicing = n == buf.len() && d.frame.spliceable();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    if d.splicing {
        moved += splice_dir(d, src, dst)?;
    }
    if d.src_eof && !matches!(d.frame, Frame::UntilEof | Frame::Done) {
        // The sender ended in the middle of a message of known length.
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    if d.src_eof && !d.wants_write() && !d.dst_shut {
        d.dst_shut = true;
        net::shutdown_write(dst);
    }
    Ok(moved)
}

/// Socket → pipe → socket until nothing moves or a budget of [`SPLICE_BUDGET`] pipes
/// has passed: a steady stream would otherwise hold the loop for as long as it flows,
/// and the other pairs of this loop would wait (level-triggered, the pair is simply
/// reported again on the next wait).
///
/// A pipe fills by buffers, not bytes: a socket's bytes arrive as pieces of pages, so
/// the pipe can run out of buffers well before `cap` bytes, and splicing into it then
/// fails with `EAGAIN` exactly as an empty socket does. Reading on would spin while the
/// destination is slow (the source stays readable, level-triggered), so, as HAProxy's
/// `raw_sock_to_pipe` does, `EAGAIN` with bytes still in the pipe counts as "full":
/// the source is not read again until the destination has emptied the pipe.
fn splice_dir(d: &mut Dir, src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<usize> {
    let Some(pipe) = d.pipe.as_ref() else {
        return Ok(0);
    };
    let mut moved = 0;
    let budget = pipe.cap.saturating_mul(SPLICE_BUDGET);
    while moved < budget {
        let mut progress = false;
        let want = d.frame.read_limit(pipe.cap - d.in_pipe);
        if !d.src_eof && !d.pipe_full && want > 0 {
            match splice(src, pipe.w.as_fd(), want) {
                Ok(0) => d.src_eof = true,
                Ok(n) => {
                    d.in_pipe += n;
                    // A spliceable frame counts bytes and never refuses them.
                    let _ = d.frame.skip(n);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => d.pipe_full = d.in_pipe > 0,
                Err(e) => return Err(e),
            }
        }
        if d.in_pipe > 0 {
            match splice(pipe.r.as_fd(), dst, d.in_pipe) {
                Ok(n) => {
                    d.in_pipe -= n;
                    d.pipe_full &= d.in_pipe > 0;
                    moved += n;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if !progress {
            break;
        }
    }
    Ok(moved)
}

/// One non-blocking send of as much of `data` as the socket takes.
fn send_some(dst: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe the live slice `data`; `dst` is
        // borrowed and open for the call.
        let n = unsafe {
            libc::send(
                dst.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}

fn write_prefix(d: &mut Dir, dst: BorrowedFd<'_>) -> io::Result<usize> {
    let mut moved = 0;
    while d.prefix_off < d.prefix.len() {
        let n = send_some(dst, &d.prefix[d.prefix_off..])?;
        if n == 0 {
            return Ok(moved);
        }
        d.prefix_off += n;
        moved += n;
    }
    if !d.prefix.is_empty() {
        d.prefix = Vec::new();
        d.prefix_off = 0;
    }
    Ok(moved)
}

pub(crate) fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are borrowed and open; null offsets mean "use and
        // advance the descriptors' own positions", which sockets and pipes require.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

pub(crate) fn new_pipe() -> io::Result<Pipe> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    net::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by no one else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A bigger pipe moves more per splice; the kernel caps it at pipe-max-size for
    // unprivileged users, and the default (64 KiB) is fine if it refuses.
    // SAFETY: fcntl on an open pipe descriptor with integer arguments.
    let _ = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    // SAFETY: as above.
    let cap = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
    let cap = if cap > 0 { cap as usize } else { 64 * 1024 };
    Ok(Pipe { r, w, cap })
}

pub(crate) fn connect_nonblocking(addr: SocketAddr) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) with constant arguments.
    let raw = net::cvt(unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `raw` is a fresh descriptor that nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_nodelay(fd.as_raw_fd());
    let sa = nix::sys::socket::SockaddrStorage::from(addr);
    use nix::sys::socket::SockaddrLike;
    // SAFETY: `sa` is a valid sockaddr of `sa.len()` bytes for this address family.
    let res = unsafe { libc::connect(fd.as_raw_fd(), sa.as_ptr(), sa.len()) };
    if res == 0 {
        return Ok(fd);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(fd)
    } else {
        Err(e)
    }
}

/// Whether a kept connection can still carry a request: not closed by its peer,
/// and with nothing unasked-for waiting to be read.
fn still_open(fd: BorrowedFd<'_>) -> bool {
    let mut b = 0u8;
    // SAFETY: one byte of live memory, a borrowed open socket; MSG_PEEK leaves the
    // byte (if any) in the socket.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            (&mut b as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// Best effort: without it only latency suffers, so a failure is not an error.
fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call and its size is passed; `fd` is an open socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

pub(crate) fn socket_error(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live and sized for SO_ERROR's int result.
    net::cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if err == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(err))
    }
}

struct Answer {
    slot: usize,
    host: String,
    port: u16,
    result: io::Result<Vec<SocketAddr>>,
}

/// `getaddrinfo` on a few threads, so a slow name server never stalls the loop.
struct Resolver {
    ask: mpsc::Sender<(usize, String, u16)>,
    done: Arc<Mutex<Vec<Answer>>>,
    wake: OwnedFd,
}

impl Resolver {
    fn start(threads: usize) -> io::Result<Self> {
        let wake = net::eventfd()?;
        let (ask, jobs) = mpsc::channel::<(usize, String, u16)>();
        let jobs = Arc::new(Mutex::new(jobs));
        let done = Arc::new(Mutex::new(Vec::new()));
        for i in 0..threads {
            let jobs = Arc::clone(&jobs);
            let done = Arc::clone(&done);
            let wake_fd = wake.try_clone()?;
            std::thread::Builder::new()
                .name(format!("resolver-{i}"))
                .spawn(move || loop {
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    // The sender is gone: the loop has ended.
                    let Ok((slot, host, port)) = job else { return };
                    let result = (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|it| it.collect::<Vec<_>>());
                    if let Ok(mut q) = done.lock() {
                        q.push(Answer {
                            slot,
                            host,
                            port,
                            result,
                        });
                    }
                    net::eventfd_bump(wake_fd.as_raw_fd());
                })?;
        }
        Ok(Self { ask, done, wake })
    }

    fn ask(&self, slot: usize, host: String, port: u16) {
        // The workers live as long as the receiver; a send error means they are gone,
        // and the pair then times out with a 504.
        let _ = self.ask.send((slot, host, port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(readable: bool, writable: bool, hangup: bool) -> Fired {
        Fired {
            token: 0,
            readable,
            writable,
            hangup,
        }
    }

    #[test]
    fn an_event_pumps_only_the_directions_it_can_move() {
        let up_only = Dirs {
            up: true,
            down: false,
        };
        let down_only = Dirs {
            up: false,
            down: true,
        };
        // The upstream has bytes, or room: the download, or the upload.
        assert_eq!(Dirs::fired(true, &ev(true, false, false)), down_only);
        assert_eq!(Dirs::fired(true, &ev(false, true, false)), up_only);
        // The client has bytes, or room: the upload, or the download.
        assert_eq!(Dirs::fired(false, &ev(true, false, false)), up_only);
        assert_eq!(Dirs::fired(false, &ev(false, true, false)), down_only);
        assert_eq!(Dirs::fired(false, &ev(true, true, false)), Dirs::BOTH);
        // A hangup or error must reach both, whatever else is set.
        assert_eq!(Dirs::fired(true, &ev(false, false, true)), Dirs::BOTH);
        assert_eq!(Dirs::fired(false, &ev(true, false, true)), Dirs::BOTH);
    }
}
