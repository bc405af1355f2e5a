//! A worker process: a set of event-loop threads, each an epoll `Reactor` running
//! its own `Http` (which keeps that loop's slot of the shared board current, see
//! [`Tally`]), plus the process's main thread, which takes the signals and
//! publishes the process-wide log counters.
//!
//! The one idea: the event loops never see a signal. Every handled signal stays
//! blocked in all threads (the mask comes from the master and is set before any
//! thread starts), and the main thread collects them with `sigtimedwait`, then
//! tells the loops what to do through their control handles. Between signals,
//! the same wait's timeout paces the counter publishing.

use super::config::{AcceptMode, Config};
use super::logging;
use super::master::{handled_signals, MasterError, WorkerCtx};
use super::redirect::Front;
use super::site::{Site, Tally};
use super::sockets::{log_listening, Sockets};
use super::status::{Board, Counter};
use crate::io::accept_group::AcceptGroup;
use crate::io::epoll::Reactor;
use crate::io::event_loop::LoopHandle;
use crate::io::{Limits, Stats};
use crate::log::AccessLog;
use crate::net::Listener;
use crate::proto::http::{
    Http, HttpConfig, HttpStats, RouteRequest, RouteResponse, SiteRules, SiteTable,
};
use crate::proto::tls::Tls;
use crate::proto::Protocol;
use crate::rotate::{RotatePolicy, RotatingFile};
use crate::upstream::proxy::ReverseProxy;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the log counters reach the board (and a finished drain is noticed).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Access-log lines that may wait for the writer thread before lines are dropped.
const ACCESS_QUEUE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rotate(#[from] crate::rotate::RotateError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error(transparent)]
    Http(#[from] crate::proto::http::HttpError),
    #[error(transparent)]
    Privileges(#[from] crate::privs::PrivError),
    #[error(transparent)]
    Bundled(#[from] super::bundled::BundledError),
}

/// A forked worker (the master relays signals) or the whole server in one process.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Worker,
    Single,
}

/// The master's entry into a forked worker; returns the exit code.
pub fn run(ctx: WorkerCtx) -> i32 {
    match serve(
        ctx.config,
        ctx.sockets,
        ctx.place,
        ctx.board,
        ctx.slots,
        Mode::Worker,
        None,
    ) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            2
        }
    }
}

/// `processes = 0`: bind and serve in this very process, no master, no fork.
pub fn run_single(config: Config) -> Result<i32, MasterError> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled_signals()), None).map_err(
        |source| MasterError::Sys {
            call: "sigprocmask",
            source,
        },
    )?;
    super::master::raise_nofile();
    let board: &'static Board = Box::leak(Box::new(Board::new(config.workers)?));
    let slots = board
        .claim(config.workers, 1)
        .ok_or(MasterError::BoardFull(config.workers))?;
    board.assign(&slots, std::process::id());
    board.set_generation(1);
    let sockets = Sockets::bind(&config)?;
    log_listening(&config, &sockets);
    config.tls.log();
    // Taken before the writer thread starts: it edits the environment.
    let notifier = crate::sd::Notifier::from_env();
    if let Err(e) = logging::start_writer_thread() {
        tracing::error!(error = %e, "error log writer thread");
    }
    // The sockets listen: a connection from now on is served (sd_notify(3)).
    let addrs: Vec<String> = sockets
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    notifier.ready(&format!("single process serving {}", addrs.join(" ")));
    match serve(
        &config,
        sockets,
        0,
        board,
        &slots,
        Mode::Single,
        Some(&notifier),
    ) {
        Ok(()) => Ok(0),
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            logging::flush(Duration::from_secs(1));
            Ok(1)
        }
    }
}

/// One event loop as the main thread sees it.
struct Loop {
    thread: JoinHandle<()>,
    control: LoopHandle,
    stats: Arc<Stats>,
    http: Arc<HttpStats>,
    slot: usize,
}

fn serve(
    config: &Config,
    sockets: Sockets,
    place: usize,
    board: &'static Board,
    slots: &[usize],
    mode: Mode,
    // The service manager, in single-process mode (a master speaks to it otherwise).
    notifier: Option<&crate::sd::Notifier>,
) -> Result<(), WorkerError> {
    let policy = RotatePolicy {
        max_size: config.log.rotate_size,
        daily: config.log.rotate_daily,
        keep: config.log.keep,
    };
    // Opened before the chroot: the file and its directory (for rotation) stay
    // reachable through descriptors afterwards.
    let mut access_lost = None;
    let access = match &config.log.access {
        Some(path) => {
            let file = RotatingFile::open(path, policy)?;
            access_lost = Some(file.lost_lines());
            Some(AccessLog::start(Box::new(file), ACCESS_QUEUE)?)
        }
        None => None,
    };
    // A forked worker inherits its master's count, which the master reports itself.
    let error_log_base = match mode {
        Mode::Worker => logging::write_errors(),
        Mode::Single => 0,
    };
    let lost_lines = move || {
        access_lost
            .as_ref()
            .map_or(0, |c| c.load(Ordering::Relaxed))
            + logging::write_errors().saturating_sub(error_log_base)
    };
    let served = served(config, board, access.as_ref().map(|(a, _)| a.clone()))?;
    drop_privileges(config)?;

    let limits = Limits {
        max_clients: config.max_clients,
        ..Limits::default()
    };
    // HTTPS: one adapter per loop serves both kinds of listener; connections on
    // the plaintext ones go straight to HTTP. The certificate was read (and checked)
    // with the configuration, before any privilege was dropped.
    let tls = tls_setup(config, &sockets);
    let routes = Arc::new(config.routes());
    let group = AcceptGroup::new();
    let mut loops = Vec::with_capacity(slots.len());
    for (index, &slot) in slots.iter().enumerate() {
        let own = sockets.for_loop(place * config.workers + index)?;
        let stats = Arc::new(Stats::default());
        let http_stats = Arc::new(HttpStats::default());
        let tally = Tally {
            board,
            slot,
            stats: stats.clone(),
            http: http_stats.clone(),
        };
        let http = Site::with_tally(served.http(http_stats.clone()), tally);
        let thread = match &tls {
            Some(t) => {
                let front = Front::new(
                    http,
                    t.redirect.clone(),
                    t.https_port,
                    config.timeouts.header,
                );
                if routes.any() {
                    let proxy = ReverseProxy::new(front, routes.clone()).share_counters(
                        board.upstreams(),
                        board.generation(),
                        slot,
                    );
                    let proto = Tls::new(t.server.clone(), proxy, config.timeouts.header)
                        .plaintext_listeners(t.plain.clone())
                        .log_handshakes(false);
                    start_loop(own, proto, config, &limits, &group, &stats, index)?
                } else {
                    let proto = Tls::new(t.server.clone(), front, config.timeouts.header)
                        .plaintext_listeners(t.plain.clone())
                        .log_handshakes(false);
                    start_loop(own, proto, config, &limits, &group, &stats, index)?
                }
            }
            None if routes.any() => {
                let proto = ReverseProxy::new(http, routes.clone()).share_counters(
                    board.upstreams(),
                    board.generation(),
                    slot,
                );
                start_loop(own, proto, config, &limits, &group, &stats, index)?
            }
            None => start_loop(own, http, config, &limits, &group, &stats, index)?,
        };
        let (thread, control) = thread;
        loops.push(Loop {
            thread,
            control,
            stats,
            http: http_stats,
            slot,
        });
    }
    tracing::info!(
        pid = std::process::id(),
        loops = loops.len(),
        "worker serving"
    );

    // Until a stop: this process's copies of the listening sockets (the loops hold
    // copies of their own).
    let mut sockets = Some(sockets);
    let set = handled_signals();
    let mut draining = false;
    // Without a master, this process keeps the status page's history.
    let mut history = (mode == Mode::Single).then(super::status::Sampler::default);
    loop {
        match wait_signal(&set, PUBLISH_EVERY) {
            // In a worker SIGINT is the terminal's Ctrl-C reaching the whole process
            // group: the master answers it with SIGTERM, so the worker ignores it.
            Some(Signal::SIGINT) if mode == Mode::Worker => {}
            Some(Signal::SIGTERM) | Some(Signal::SIGINT) if !draining => {
                draining = true;
                tracing::info!(drain_secs = config.timeouts.drain.as_secs(), "draining");
                if let Some(n) = notifier {
                    n.stopping(&format!(
                        "draining (at most {} s)",
                        config.timeouts.drain.as_secs()
                    ));
                }
                let mut waited = Duration::ZERO;
                if let Some(s) = &sockets {
                    let ours = s.of_loops(place * config.workers, config.workers);
                    waited = wait_accept_queue_empty(&ours, ACCEPT_QUEUE_WAIT);
                }
                for l in &loops {
                    l.control
                        .drain(config.timeouts.drain.saturating_sub(waited));
                }
                // Each loop takes the queue once more and closes its copies; ours go
                // now. On a stop the master has let its copies go too, so the port is
                // free once every worker is here: newcomers are refused at once and
                // a new server may bind while the responses in flight finish. On a
                // reload the master keeps the sockets for the next generation.
                sockets = None;
            }
            Some(Signal::SIGQUIT) => {
                if let Some(n) = notifier {
                    n.stopping("SIGQUIT: stopping now");
                }
                for l in &loops {
                    l.control.stop();
                }
                sockets = None;
            }
            Some(Signal::SIGUSR1) => {
                if let Some((a, _)) = &access {
                    a.reopen();
                }
                logging::reopen();
            }
            Some(Signal::SIGHUP) if mode == Mode::Single => {
                tracing::error!("reload refused: processes = 0 has no master; restart instead");
            }
            _ => {}
        }
        publish(&loops, board, access.as_ref().map(|(a, _)| a), lost_lines());
        if let Some(h) = &mut history {
            h.tick(board);
        }
        if loops.iter().all(|l| l.thread.is_finished()) {
            break;
        }
    }
    for l in loops {
        // A loop that panicked was reported by the panic hook; its counters still count.
        let _ = l.thread.join();
        Tally {
            board,
            slot: l.slot,
            stats: l.stats,
            http: l.http,
        }
        .publish();
    }
    if let Some((a, guard)) = access {
        board
            .slot(slots[0])
            .set(Counter::LogDropped, a.dropped() + logging::dropped());
        drop(guard);
    }
    logging::flush(Duration::from_secs(2));
    // After the last flushes: what they failed to write counts too.
    board
        .slot(slots[0])
        .set(Counter::LogWriteErrors, lost_lines());
    Ok(())
}

/// What the loops of a server with HTTPS listeners need to tell them apart.
struct TlsSetup {
    server: Arc<rustls::ServerConfig>,
    /// Listener numbers (in the order `Sockets::for_loop` hands them to a loop)
    /// of the plaintext listeners, and of those among them that redirect.
    plain: Vec<usize>,
    redirect: Vec<usize>,
    /// The bound port of the first HTTPS listener, which redirects name.
    https_port: u16,
}

fn tls_setup(config: &Config, sockets: &Sockets) -> Option<TlsSetup> {
    let cert = config.tls.certificate.as_ref()?;
    if config.tls.listeners.is_empty() {
        return None;
    }
    let numbered = || config.listen.iter().enumerate();
    let plain = numbered()
        .filter(|(_, a)| !config.tls.is_tls(a))
        .map(|(i, _)| i)
        .collect();
    let redirect = numbered()
        .filter(|(_, a)| config.tls.redirect.contains(a))
        .map(|(i, _)| i)
        .collect();
    let https_port = config
        .listen
        .iter()
        .zip(sockets.local_addrs())
        .find(|(a, _)| config.tls.is_tls(a))
        .map_or(443, |(_, bound)| bound.port());
    let mut server = cert.server.clone();
    // The reverse proxy routes HTTP/1 heads: with [[location]] blocks, ALPN offers
    // HTTP/1.1 alone (as h2c is off), so no HTTP/2 stream reaches a proxied prefix.
    if !config.http2 || config.routes().any() {
        let mut http1 = (*server).clone();
        http1.alpn_protocols = crate::tls::https::ALPN_HTTP1
            .iter()
            .map(|p| p.to_vec())
            .collect();
        server = Arc::new(http1);
    }
    Some(TlsSetup {
        server,
        plain,
        redirect,
        https_port,
    })
}

/// Starts one event loop on its own thread.
fn start_loop<P: Protocol + Send + 'static>(
    own: Vec<Listener>,
    proto: P,
    config: &Config,
    limits: &Limits,
    group: &Arc<AcceptGroup>,
    stats: &Arc<Stats>,
    index: usize,
) -> Result<(JoinHandle<()>, LoopHandle), WorkerError>
where
    P::Conn: Send,
{
    // EPOLLEXCLUSIVE: a connection wakes one loop of those sharing its socket.
    let reactor = Reactor::new(own, proto, limits.clone(), stats.clone())?;
    let mut reactor = match config.accept {
        AcceptMode::Fill => reactor.accept_group(group),
        AcceptMode::Shared | AcceptMode::ReusePort => reactor.exclusive_accept(true),
    };
    let control = reactor.handle();
    let thread = std::thread::Builder::new()
        .name(format!("loop-{index}"))
        .spawn(move || {
            if let Err(e) = reactor.run(None) {
                tracing::error!(error = %e, loop_index = index, "event loop failed");
            }
        })
        .map_err(|source| WorkerError::Sys {
            call: "pthread_create",
            source,
        })?;
    Ok((thread, control))
}

/// What every loop of this process serves: one site, or the `[[site]]` table.
enum Served {
    One(Arc<HttpConfig>),
    Sites(Arc<SiteTable>),
}

impl Served {
    fn http(&self, stats: Arc<HttpStats>) -> Http {
        match self {
            Served::One(cfg) => Http::with_stats(cfg.clone(), stats),
            Served::Sites(table) => Http::with_sites(table.clone(), stats),
        }
    }
}

/// The HTTP configurations every loop of this process shares, built from the
/// configuration (so a reload, which starts new workers, applies a changed one).
fn served(
    config: &Config,
    board: &'static Board,
    access: Option<AccessLog>,
) -> Result<Served, WorkerError> {
    let mut sites: Vec<(Vec<String>, Arc<HttpConfig>)> = Vec::with_capacity(config.sites.len());
    for s in &config.sites {
        let mut h = http_config(config, board, access.clone(), &s.root, &s.index, &s.rules)?;
        if let Some(rules) = &s.access {
            h.features.access = rules.clone();
        }
        // One budget of compressed bodies for the whole server.
        if let Some((_, first)) = sites.first() {
            h.share_compressed(first);
        }
        sites.push((s.names.clone(), Arc::new(h)));
    }
    if let Some(table) = SiteTable::new(sites, config.default_site) {
        return Ok(Served::Sites(Arc::new(table)));
    }
    // No [[site]]: the top-level root, or the bundled site (a loaded configuration
    // has it unpacked already).
    let root = match &config.root {
        Some(r) => r.clone(),
        None => super::bundled::root()?,
    };
    let h = http_config(config, board, access, &root, &config.index, &config.rules)?;
    Ok(Served::One(Arc::new(h)))
}

/// The HTTP configuration of one site, status routes included.
fn http_config(
    config: &Config,
    board: &'static Board,
    access: Option<AccessLog>,
    configured: &std::path::Path,
    index: &[String],
    rules: &SiteRules,
) -> Result<HttpConfig, WorkerError> {
    // Opened before any chroot: the root stays reachable through its descriptor.
    let root = match &config.chroot {
        Some(jail) => jail.join(configured.strip_prefix("/").unwrap_or(configured)),
        None => configured.to_path_buf(),
    };
    let mut h = HttpConfig::new(&root)?;
    if let Some((first, more)) = index.split_first() {
        h.index = first.clone();
        h.index_more = more.to_vec();
    }
    h.site = rules.clone();
    h.header_timeout = config.timeouts.header;
    h.idle_timeout = config.timeouts.idle;
    h.file_cache = config.file_cache;
    // The reverse proxy routes HTTP/1 heads; an HTTP/2 stream would reach the static
    // core whatever its path, so with [[location]] blocks h2c is off.
    h.http2 = config.http2 && !config.routes().any();
    h.features = config.http.clone();
    h.server_name = "capstone".into();
    h.access_log = access;
    h.log_upstream = config.routes().any();
    if config.chroot.as_deref() == Some(root.as_path()) {
        h.chrooted();
    }
    if let Some(path) = &config.status_path {
        let json_path = format!("{path}.json");
        let page_json = json_path.clone();
        h.route(path.clone(), move |r: &RouteRequest<'_>| {
            let json = r
                .query
                .is_some_and(|q| q.split('&').any(|kv| kv == "format=json"));
            status_page(board, json, &page_json)
        });
        h.route(json_path, move |_: &RouteRequest<'_>| {
            status_page(board, true, "")
        });
    }
    super::metrics::enable_timing(config.metrics_path.is_some());
    if let Some(path) = &config.metrics_path {
        h.route(path.clone(), move |_: &RouteRequest<'_>| RouteResponse {
            status: 200,
            content_type: super::metrics::CONTENT_TYPE.into(),
            body: super::metrics::render(board).into(),
        });
    }
    Ok(h)
}

fn status_page(board: &Board, json: bool, json_path: &str) -> RouteResponse {
    RouteResponse {
        status: 200,
        content_type: if json {
            "application/json".into()
        } else {
            "text/html; charset=utf-8".into()
        },
        body: board.render(json, json_path).into(),
    }
}

/// chroot, then setgroups → setgid → setuid (nginx's order, after the sockets are
/// inherited and the files opened). Only as root; otherwise a warning.
fn drop_privileges(config: &Config) -> Result<(), WorkerError> {
    if config.user.is_none() && config.chroot.is_none() {
        if nix::unistd::geteuid().is_root() {
            tracing::warn!(
                "workers run as root: set `user` (and `chroot`) in the config to drop privileges"
            );
        }
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        tracing::warn!("user/chroot are ignored: the server is not running as root");
        return Ok(());
    }
    // Looked up before the chroot, while /etc/passwd is still visible.
    let account = config
        .user
        .as_deref()
        .map(crate::privs::lookup)
        .transpose()?;
    if let Some(dir) = &config.chroot {
        crate::privs::chroot(dir)?;
    }
    if let Some(a) = &account {
        crate::privs::drop_to(a)?;
    }
    Ok(())
}

/// How long a graceful stop waits for the loops to empty the accept queue.
const ACCEPT_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Waits (up to `limit`) until no listening socket has a connection waiting to be
/// accepted, while the loops go on accepting. A loop that stops listening leaves
/// its socket's queue alone, and whatever is still queued when the last copy of
/// the socket closes is reset; so a graceful stop first lets every connection
/// made before the signal reach a loop that will serve it. Returns the time spent.
fn wait_accept_queue_empty(listeners: &[&Listener], limit: Duration) -> Duration {
    use std::os::fd::AsRawFd;
    let start = Instant::now();
    loop {
        let mut fds: Vec<libc::pollfd> = listeners
            .iter()
            .map(|l| libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs; timeout 0
        // only samples readiness (it never competes with the loops for a wakeup).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        // 0: nothing waiting; < 0: poll failed, so there is nothing to wait for.
        if n <= 0 || start.elapsed() >= limit {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `sigtimedwait`: the next pending signal of `set`, or `None` after `limit`.
fn wait_signal(set: &SigSet, limit: Duration) -> Option<Signal> {
    let ts = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` is a valid sigset_t for the call's duration, `info` may be null,
    // and `ts` is a valid timespec on our stack.
    let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    if sig < 0 {
        return None; // EAGAIN (timeout) or EINTR
    }
    Signal::try_from(sig).ok()
}

/// The process-wide log counters, in the first loop's slot. Each loop keeps its
/// own slot current itself (see [`Tally`]).
fn publish(loops: &[Loop], board: &Board, access: Option<&AccessLog>, lost_lines: u64) {
    if let Some(first) = loops.first() {
        let dropped = access.map_or(0, |a| a.dropped()) + logging::dropped();
        let slot = board.slot(first.slot);
        slot.set(Counter::LogDropped, dropped);
        slot.set(Counter::LogWriteErrors, lost_lines);
    }
}
