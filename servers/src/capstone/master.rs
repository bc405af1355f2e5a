//! The master process, in the manner of nginx's `ngx_process_cycle.c`: binds the
//! listening sockets, forks the workers, restarts the ones that die, and owns the
//! signals.
//!
//! The one idea: the master blocks every signal it handles and sleeps in
//! `sigsuspend`, which atomically unblocks them and waits; the handlers only set
//! flags, and the loop acts on the flags when `sigsuspend` returns. Nothing
//! async-signal-unsafe ever runs in a handler, no signal is lost between a check
//! and the sleep, and the master never starts a thread, so `fork` stays safe.

use super::config::Config;
use super::logging;
use super::sink::CounterSink;
use super::sockets::{log_listening, Sockets};
use super::status::Board;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Counter slots on the board: enough for two generations (old draining, new
/// serving) of the largest allowed configuration.
pub const BOARD_SLOTS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        source: nix::Error,
    },
    #[error(transparent)]
    Sockets(#[from] super::sockets::SocketsError),
    #[error(transparent)]
    Board(#[from] super::status::BoardError),
    #[error("the counter board has no room for {0} more event loops")]
    BoardFull(usize),
}

fn sys(call: &'static str) -> impl FnOnce(nix::Error) -> MasterError {
    move |source| MasterError::Sys { call, source }
}

/// What a worker process runs: everything it needs, inherited through the fork.
pub struct WorkerCtx<'a> {
    pub config: &'a Config,
    /// The worker's own copies of the listening sockets (the master's, inherited):
    /// owned, so a stopping worker can close them and let the port go.
    pub sockets: Sockets,
    /// The worker's place in its generation: its loops are
    /// `place * workers .. (place + 1) * workers` of the whole server.
    pub place: usize,
    pub board: &'static Board,
    pub slots: &'a [usize],
    pub generation: u64,
}

/// The body of a worker process; returns its exit code.
pub type WorkerBody = fn(WorkerCtx) -> i32;

/// How to re-read the configuration on SIGHUP.
pub struct Reload {
    pub path: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub root: Option<PathBuf>,
    /// `--tls-self-signed`: the directory of the generated CA and certificate.
    pub tls_self_signed: Option<PathBuf>,
}

impl Reload {
    pub fn load(&self) -> Result<Config, super::config::ConfigError> {
        let mut cfg = match &self.path {
            Some(p) => Config::load_tls(p, self.tls_self_signed.is_some())?,
            None => Config::default(),
        };
        cfg.override_with(self.listen, self.root.clone());
        if let Some(dir) = &self.tls_self_signed {
            super::config::self_signed(&mut cfg, dir)?;
        }
        if cfg.root.is_none() {
            cfg.root = Some(super::bundled::root()?);
        }
        Ok(cfg)
    }
}

static GOT_CHILD: AtomicBool = AtomicBool::new(false);
static GOT_TERM: AtomicBool = AtomicBool::new(false);
static GOT_QUIT: AtomicBool = AtomicBool::new(false);
static GOT_HUP: AtomicBool = AtomicBool::new(false);
static GOT_USR1: AtomicBool = AtomicBool::new(false);
/// Set with GOT_HUP when the SIGHUP carried [`FORCE_RELOAD`].
static GOT_FORCE: AtomicBool = AtomicBool::new(false);

/// The value `capstone -s force-reload` queues with SIGHUP (`sigqueue(3)`): a reload
/// that may close every current listener. A plain `kill -HUP` never carries it.
pub const FORCE_RELOAD: usize = 0x5359_4e46;

extern "C" fn on_signal_info(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    if sig == libc::SIGHUP && !info.is_null() {
        // SAFETY: the kernel passes an SA_SIGINFO handler a valid siginfo_t; si_code is
        // in every siginfo, and si_value is defined when si_code is SI_QUEUE.
        let forced = unsafe {
            (*info).si_code == libc::SI_QUEUE
                && (*info).si_value().sival_ptr as usize == FORCE_RELOAD
        };
        // Stored before GOT_HUP, which the loop reads first.
        GOT_FORCE.store(forced, Ordering::SeqCst);
    }
    on_signal(sig);
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    let flag = match sig {
        libc::SIGCHLD => &GOT_CHILD,
        libc::SIGTERM | libc::SIGINT => &GOT_TERM,
        libc::SIGQUIT => &GOT_QUIT,
        libc::SIGHUP => &GOT_HUP,
        libc::SIGUSR1 => &GOT_USR1,
        _ => return, // SIGALRM: the tick only wakes sigsuspend
    };
    flag.store(true, Ordering::SeqCst);
}

/// The signals the master (and, inherited, each worker) keeps blocked.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGALRM,
    ] {
        set.add(s);
    }
    set
}

struct Worker {
    slots: Vec<usize>,
    generation: u64,
    /// Position inside its generation, so a replacement takes the same place.
    place: usize,
    started: Instant,
    /// Told to stop (reload or shutdown): not replaced when it exits.
    retiring: bool,
}

/// Crash-loop protection for one place: restart at once after a worker that ran a
/// while, back off (doubling, up to 5 s) after one that died young.
#[derive(Default, Clone, Copy)]
struct Backoff {
    delay: Duration,
    due: Option<Instant>,
}

const YOUNG: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(100);

/// The master's state between two wake-ups.
struct Master {
    config: Config,
    reload: Reload,
    body: WorkerBody,
    board: &'static Board,
    /// `None` once a graceful stop has let them go.
    sockets: Option<Sockets>,
    workers: HashMap<Pid, Worker>,
    backoff: Vec<Backoff>,
    generation: u64,
    /// Set by a graceful stop: when the last worker must be gone.
    stopping: Option<Instant>,
    sink: CounterSink,
    /// The master's own error-log write failures already on the board.
    log_write_errors: u64,
    /// The service manager (`$NOTIFY_SOCKET`); only the master speaks to it.
    notifier: crate::sd::Notifier,
}

/// The master: runs until a stop signal; returns the process exit code.
pub fn run(config: Config, reload: Reload, body: WorkerBody) -> Result<i32, MasterError> {
    // Taken (and removed from the environment) before the first fork: workers inherit
    // neither the variable nor the duty.
    let notifier = crate::sd::Notifier::from_env();
    let handled = handled_signals();
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None).map_err(sys("sigprocmask"))?;
    let action = signal::SigAction::new(
        SigHandler::SigAction(on_signal_info),
        signal::SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    for s in handled.iter() {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe { signal::sigaction(s, &action) }.map_err(sys("sigaction"))?;
    }
    set_tick(TICK)?;
    raise_nofile();

    // Never unmapped: workers and the status pages hold it for the process's life.
    let board: &'static Board = Box::leak(Box::new(Board::new(BOARD_SLOTS)?));
    let sockets = Sockets::bind(&config)?;
    log_listening(&config, &sockets);
    config.tls.log();
    board.set_generation(1);
    let mut m = Master {
        backoff: vec![Backoff::default(); config.processes],
        config,
        reload,
        body,
        board,
        sockets: Some(sockets),
        workers: HashMap::new(),
        generation: 1,
        stopping: None,
        sink: CounterSink::open(),
        log_write_errors: 0,
        notifier,
    };
    for place in 0..m.config.processes {
        m.spawn(place)?;
    }
    // The sockets listen and the workers are forked: a connection made from now on is
    // queued and served.
    m.notifier.ready(&m.summary());
    tracing::info!(
        pid = std::process::id(),
        processes = m.config.processes,
        threads = m.config.workers,
        accept = ?m.config.accept,
        "master started"
    );

    let mut last_push = Instant::now();
    let mut history = super::status::Sampler::default();
    loop {
        let pending = [&GOT_CHILD, &GOT_TERM, &GOT_QUIT, &GOT_HUP, &GOT_USR1]
            .iter()
            .any(|f| f.load(Ordering::SeqCst));
        if !pending {
            // Atomically unblock and wait: a signal that arrived since the check is
            // pending, so it ends this wait at once. The tick (SIGALRM) bounds it.
            let _ = SigSet::empty().suspend();
        }
        if GOT_CHILD.swap(false, Ordering::SeqCst) {
            m.reap();
        }
        if GOT_QUIT.swap(false, Ordering::SeqCst) {
            tracing::info!("SIGQUIT: stopping now");
            m.notifier.stopping("SIGQUIT: stopping now");
            signal_all(&m.workers, Signal::SIGQUIT);
            // As on SIGTERM: the port goes once the workers close their copies.
            m.sockets = None;
            return Ok(m.finish(Duration::from_secs(2)));
        }
        if GOT_TERM.swap(false, Ordering::SeqCst) && m.stopping.is_none() {
            m.begin_stop();
        }
        if let Some(deadline) = m.stopping {
            if m.workers.is_empty() {
                tracing::info!("all workers done, master exits");
                return Ok(m.finish(Duration::ZERO));
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    left = m.workers.len(),
                    "drain deadline passed, killing workers"
                );
                signal_all(&m.workers, Signal::SIGKILL);
                return Ok(m.finish(Duration::from_secs(2)));
            }
        }
        if GOT_HUP.swap(false, Ordering::SeqCst) && m.stopping.is_none() {
            let forced = GOT_FORCE.swap(false, Ordering::SeqCst);
            m.notifier.reloading("SIGHUP: reloading the configuration");
            let outcome = if m.reload(forced) {
                m.summary()
            } else {
                format!("reload refused (see the error log); {}", m.summary())
            };
            m.notifier.ready(&outcome);
        }
        if GOT_USR1.swap(false, Ordering::SeqCst) {
            logging::reopen();
            tracing::info!("SIGUSR1: logs reopened");
            signal_all(&m.workers, Signal::SIGUSR1);
        }
        if m.stopping.is_none() {
            m.respawn_due();
        }
        history.tick(m.board);
        if last_push.elapsed() >= Duration::from_secs(1) {
            last_push = Instant::now();
            m.count_log_write_errors();
            m.sink.push(&m.board.totals());
        }
    }
}

impl Master {
    fn spawn(&mut self, place: usize) -> Result<(), MasterError> {
        if self.sockets.is_none() {
            return Ok(()); // stopping: nothing new starts
        }
        spawn(
            &self.config,
            &mut self.sockets,
            self.board,
            self.generation,
            place,
            self.body,
            &mut self.workers,
        )
    }

    /// Graceful stop: workers stop accepting and drain; the master waits for them.
    fn begin_stop(&mut self) {
        tracing::info!(
            drain_secs = self.config.timeouts.drain.as_secs(),
            "graceful stop"
        );
        for w in self.workers.values_mut() {
            w.retiring = true;
        }
        self.notifier.stopping(&format!(
            "draining {} workers (at most {} s)",
            self.workers.len(),
            self.config.timeouts.drain.as_secs()
        ));
        signal_all(&self.workers, Signal::SIGTERM);
        // The master's copies of the sockets go now: once every worker has drained
        // its accept queue and closed its own, the port is released.
        self.sockets = None;
        self.stopping = Some(Instant::now() + self.config.timeouts.drain + Duration::from_secs(2));
    }

    /// Waits up to `limit` for the workers, then sends the last counters and
    /// flushes the log. Returns the exit code.
    fn finish(&mut self, limit: Duration) -> i32 {
        wait_all(self.board, &mut self.workers, limit);
        self.count_log_write_errors();
        self.sink.push(&self.board.totals());
        logging::flush(Duration::from_secs(1));
        0
    }

    /// Moves the master's new error-log write failures onto the board.
    fn count_log_write_errors(&mut self) {
        let now = logging::write_errors();
        self.board.add_retired(
            super::status::Counter::LogWriteErrors,
            now.saturating_sub(self.log_write_errors),
        );
        self.log_write_errors = now;
    }

    /// The one-line `STATUS=` summary: generation, workers and addresses.
    fn summary(&self) -> String {
        let addrs = match &self.sockets {
            Some(s) => s
                .local_addrs()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            None => String::new(),
        };
        format!(
            "generation {}: {} processes x {} threads serving {}",
            self.generation, self.config.processes, self.config.workers, addrs
        )
    }

    /// SIGHUP: a new configuration and new workers (true), or a refusal and nothing
    /// changed (false).
    fn reload(&mut self, forced: bool) -> bool {
        let next = match self.reload.load() {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "reload refused, keeping the running configuration");
                return false;
            }
        };
        if next.processes == 0 {
            tracing::error!("reload refused: processes = 0 needs a restart, not a reload");
            return false;
        }
        // A reload that keeps no current address would leave every client of the
        // running server refused: most likely a damaged file. Moving to wholly new
        // addresses is asked for explicitly (`capstone -s force-reload`), or done in two
        // reloads (add the new, then drop the old), or by a restart.
        if !next.listen.iter().any(|a| self.config.listen.contains(a)) {
            if !forced {
                tracing::error!(
                    current = ?self.config.listen,
                    next = ?next.listen,
                    "reload refused: the new configuration would close every current listener \
                     (capstone -s force-reload does it; or add the new addresses first and drop \
                     the old ones in a second reload)"
                );
                return false;
            }
            tracing::warn!(
                current = ?self.config.listen,
                next = ?next.listen,
                "forced reload: every current listener closes"
            );
        }
        let free = (0..self.board.capacity())
            .filter(|&i| self.board.slot(i).pid() == 0)
            .count();
        if free < next.total_loops() {
            tracing::error!(
                needed = next.total_loops(),
                free,
                "reload refused: counter board full (old workers still draining)"
            );
            return false;
        }
        let Some(current) = &self.sockets else {
            return false;
        };
        let bound = match current.rebind(&next) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "reload refused, keeping the running configuration");
                return false;
            }
        };
        if next.log != self.config.log {
            // New workers inherit the master's error log: switch it before forking.
            let policy = crate::rotate::RotatePolicy {
                max_size: next.log.rotate_size,
                daily: next.log.rotate_daily,
                keep: next.log.keep,
            };
            if let Err(e) = logging::open(next.log.error.as_deref(), policy) {
                tracing::error!(error = %e, "reload refused, keeping the running configuration");
                return false;
            }
        }
        self.generation += 1;
        self.board.set_generation(self.generation);
        self.sockets = Some(bound);
        self.config = next;
        self.backoff = vec![Backoff::default(); self.config.processes];
        // Old workers stop accepting first; what arrives meanwhile waits in the
        // kernel's queue for the new ones, so no connection meets two configurations.
        for (pid, w) in self.workers.iter_mut() {
            w.retiring = true;
            let _ = signal::kill(*pid, Signal::SIGTERM);
        }
        for place in 0..self.config.processes {
            if let Err(e) = self.spawn(place) {
                tracing::error!(error = %e, place, "starting a worker failed; retrying");
                self.backoff[place].due = Some(Instant::now() + FIRST_BACKOFF);
            }
        }
        tracing::info!(
            generation = self.generation,
            processes = self.config.processes,
            "configuration reloaded"
        );
        self.config.tls.log();
        true
    }

    /// Starts the replacements whose backoff has run out.
    fn respawn_due(&mut self) {
        let now = Instant::now();
        for place in 0..self.backoff.len() {
            if !self.backoff[place].due.is_some_and(|due| due <= now) {
                continue;
            }
            self.backoff[place].due = None;
            self.board.count_restart();
            if let Err(e) = self.spawn(place) {
                tracing::error!(error = %e, place, "restarting a worker failed");
                let b = &mut self.backoff[place];
                b.delay = (b.delay * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                b.due = Some(now + b.delay);
            }
        }
    }

    /// Collects every exited worker; schedules a replacement for the ones that
    /// were not told to stop.
    fn reap(&mut self) {
        loop {
            let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, format!("exit code {code}")),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, format!("killed by {sig:?}")),
                Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => return,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "waitpid");
                    return;
                }
            };
            let Some(w) = self.workers.remove(&pid) else {
                continue;
            };
            self.board.retire(&w.slots);
            if w.retiring || self.stopping.is_some() || w.generation != self.generation {
                tracing::info!(pid = pid.as_raw(), %how, "worker finished");
                continue;
            }
            let Some(b) = self.backoff.get_mut(w.place) else {
                continue;
            };
            b.delay = if w.started.elapsed() < YOUNG {
                (b.delay * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF)
            } else {
                Duration::ZERO
            };
            tracing::error!(pid = pid.as_raw(), %how, restart_in_ms = b.delay.as_millis() as u64, "worker died");
            b.due = Some(Instant::now() + b.delay);
        }
    }
}

/// Lifts the open-file soft limit to the hard limit: each connection is a
/// descriptor, and 10,000 clients must not hit the usual 1,024.
pub fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, "setrlimit(RLIMIT_NOFILE)");
            }
        }
    }
}

fn set_tick(every: Duration) -> Result<(), MasterError> {
    let tv = libc::timeval {
        tv_sec: every.as_secs() as libc::time_t,
        tv_usec: every.subsec_micros() as libc::suseconds_t,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: setitimer reads the struct we pass and writes nothing (old = null).
    let rc = unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(MasterError::Sys {
            call: "setitimer",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Forks a worker. `sockets` is `Some` (the caller checks); in the child it is
/// taken, so the worker owns the copies it inherited.
fn spawn(
    config: &Config,
    sockets: &mut Option<Sockets>,
    board: &'static Board,
    generation: u64,
    place: usize,
    body: WorkerBody,
    workers: &mut HashMap<Pid, Worker>,
) -> Result<(), MasterError> {
    let slots = board
        .claim(config.workers, generation)
        .ok_or(MasterError::BoardFull(config.workers))?;
    // SAFETY: the master is single-threaded (it never spawns a thread), so the child
    // starts with every lock free and may run arbitrary code.
    match unsafe { fork() } {
        Err(e) => {
            board.retire(&slots);
            Err(MasterError::Sys {
                call: "fork",
                source: e,
            })
        }
        Ok(ForkResult::Child) => {
            let code = match sockets.take() {
                Some(sockets) => {
                    worker_main(config, sockets, place, board, &slots, generation, body)
                }
                None => 1,
            };
            logging::flush(Duration::from_secs(2));
            // SAFETY: _exit ends this process without running the parent's atexit
            // handlers or unwinding into the master's stack frames.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            board.assign(&slots, child.as_raw() as u32);
            tracing::info!(pid = child.as_raw(), generation, place, "worker started");
            workers.insert(
                child,
                Worker {
                    slots,
                    generation,
                    place,
                    started: Instant::now(),
                    retiring: false,
                },
            );
            Ok(())
        }
    }
}

fn worker_main(
    config: &Config,
    sockets: Sockets,
    place: usize,
    board: &'static Board,
    slots: &[usize],
    generation: u64,
    body: WorkerBody,
) -> i32 {
    // The master's handlers only set the master's flags: restore the defaults. The
    // signals stay blocked; the worker takes them with sigwait on a thread of its own.
    for s in handled_signals().iter() {
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { signal::signal(s, SigHandler::SigDfl) };
    }
    // If the master is killed outright, the workers stop too instead of lingering.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a plain signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    if nix::unistd::getppid().as_raw() == 1 {
        return 1;
    }
    // The master records the pid too, after fork returns there; whichever runs
    // first, the status page never shows this worker's slots as unowned.
    board.assign(slots, std::process::id());
    if let Err(e) = logging::start_writer_thread() {
        tracing::error!(error = %e, "error log writer thread");
    }
    let ctx = WorkerCtx {
        config,
        sockets,
        place,
        board,
        slots,
        generation,
    };
    body(ctx)
}

fn signal_all(workers: &HashMap<Pid, Worker>, sig: Signal) {
    for pid in workers.keys() {
        let _ = signal::kill(*pid, sig);
    }
}

/// Reaps until every worker is gone or `limit` passes (then kills the rest).
fn wait_all(board: &Board, workers: &mut HashMap<Pid, Worker>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !workers.is_empty() {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => {
                if let Some(w) = workers.remove(&pid) {
                    board.retire(&w.slots);
                }
            }
            Ok(_) => {
                if Instant::now() >= deadline {
                    signal_all(workers, Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
}
