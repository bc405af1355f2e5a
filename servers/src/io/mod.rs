//! Concurrency models, one file each: they own sockets and readiness, and drive any
//! [`crate::proto::Protocol`].
//!
//! The one idea: a model never knows what the bytes mean. It reads, hands the bytes to
//! the protocol, applies the [`crate::proto::Action`]s that come back through the one
//! write path ([`crate::net::OutQueue`]), and enforces the same [`Limits`] everywhere.
//! `select`, `poll` and `epoll` are one event loop ([`event_loop`]) over three small
//! readiness backends; `threads` and `pool` share one blocking-free per-connection
//! loop ([`threaded`]).

pub mod accept_group;
pub mod epoll;
pub mod event_loop;
pub mod poll;
pub mod pool;
pub mod relay;
pub mod select;
pub mod threaded;
pub mod threads;

use crate::net::NetError;
use crate::proto::{ConnId, Protocol};
use crate::signals::Shutdown;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A timeout in whole milliseconds for `poll`/`epoll_wait`, rounded *up*: rounding
/// down turns the last sub-millisecond stretch before a deadline into a burst of
/// zero-timeout waits (a busy loop) instead of one short sleep.
pub(crate) fn wait_ms(timeout: Duration) -> libc::c_int {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// How often every model calls [`Protocol::tick`] and scans deadlines.
pub const TICK: Duration = Duration::from_millis(250);
/// How long a signal-triggered stop lets busy connections finish, unless
/// [`Options::drain_grace`] says otherwise.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The concurrency model, chosen with `--io`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One thread per client.
    Threads,
    /// A fixed pool of worker threads fed by a bounded queue.
    Pool,
    /// One thread, `select(2)` (descriptors below FD_SETSIZE only).
    Select,
    /// One thread, `poll(2)`.
    Poll,
    /// One thread, `epoll(7)`.
    Epoll,
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Model::Threads => "threads",
            Model::Pool => "pool",
            Model::Select => "select",
            Model::Poll => "poll",
            Model::Epoll => "epoll",
        })
    }
}

/// Per-connection bounds every model enforces, so one client cannot take memory or
/// stall the others.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Clients served at once; the next gets [`Protocol::refusal`] and is closed.
    pub max_clients: usize,
    /// Unconsumed input kept for one connection; past it the connection is closed
    /// (a protocol is expected to consume or reject long before).
    pub max_input: usize,
    /// Backpressure: a connection whose own outbound queue holds more than this is
    /// not read until it drains (an echo client that sends but never reads).
    pub out_high: usize,
    /// A connection whose outbound queue exceeds this (in memory) is a slow reader:
    /// it is disconnected and logged, and nobody else waits for it.
    pub out_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_clients: 16_384,
            max_input: 64 * 1024,
            out_high: 256 * 1024,
            out_limit: 1024 * 1024,
        }
    }
}

/// Everything [`serve`] needs besides the listeners and the protocol.
#[derive(Clone, Debug)]
pub struct Options {
    pub model: Model,
    /// Worker threads (`pool` only).
    pub workers: usize,
    /// Connections that may wait for a worker (`pool` only).
    pub queue_len: usize,
    pub limits: Limits,
    /// How long a stop lets busy connections finish (idle ones close at once).
    pub drain_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            model: Model::Epoll,
            workers: 16,
            queue_len: 64,
            limits: Limits::default(),
            drain_grace: DRAIN_GRACE,
        }
    }
}

/// A model failed as a whole (a connection's own failure only closes it).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("select: listening descriptor {fd} is not below FD_SETSIZE ({limit}); use --io poll or --io epoll")]
    FdSetSize { fd: i32, limit: usize },
    #[error("spawning a thread: {0}")]
    Spawn(#[source] io::Error),
}

impl IoError {
    pub(crate) fn sys(call: &'static str, source: io::Error) -> Self {
        IoError::Sys { call, source }
    }
}

/// Counters of one loop (or one threaded model): plain relaxed atomics, one instance
/// per loop, so the hot path never takes a shared lock.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub refused: AtomicU64,
    pub closed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub timeouts: AtomicU64,
    pub errors: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub accepted: u64,
    pub active: u64,
    pub refused: u64,
    pub closed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub timeouts: u64,
    pub errors: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            accepted: g(&self.accepted),
            active: g(&self.active),
            refused: g(&self.refused),
            closed: g(&self.closed),
            bytes_in: g(&self.bytes_in),
            bytes_out: g(&self.bytes_out),
            timeouts: g(&self.timeouts),
            errors: g(&self.errors),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

impl std::ops::AddAssign for StatsSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.accepted += o.accepted;
        self.active += o.active;
        self.refused += o.refused;
        self.closed += o.closed;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.timeouts += o.timeouts;
        self.errors += o.errors;
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id, unique for the life of the process across every loop.
pub fn next_conn_id() -> ConnId {
    ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed))
}

/// Serves `proto` on `listeners` with the chosen model until `shutdown` is set, then
/// drains (busy connections get [`Options::drain_grace`] to finish) and returns.
pub fn serve<P>(
    listeners: Vec<crate::net::Listener>,
    proto: P,
    opts: &Options,
    shutdown: &Shutdown,
) -> Result<(), IoError>
where
    P: Protocol + Send + 'static,
    P::Conn: Send,
{
    if let Err(e) = crate::net::raise_fd_limit() {
        tracing::warn!(error = %e, "setrlimit(RLIMIT_NOFILE) failed; keeping the current limit");
    }
    let stats = Arc::new(Stats::default());
    tracing::info!(model = %opts.model, "serving");
    let res = match opts.model {
        Model::Epoll => epoll::Reactor::new(listeners, proto, opts.limits.clone(), stats.clone())?
            .shutdown_grace(opts.drain_grace)
            .run(Some(shutdown)),
        Model::Poll => poll::PollLoop::new(listeners, proto, opts.limits.clone(), stats.clone())?
            .shutdown_grace(opts.drain_grace)
            .run(Some(shutdown)),
        Model::Select => {
            select::SelectLoop::new(listeners, proto, opts.limits.clone(), stats.clone())?
                .shutdown_grace(opts.drain_grace)
                .run(Some(shutdown))
        }
        Model::Threads => threads::serve(listeners, proto, opts, stats.clone(), shutdown),
        Model::Pool => pool::serve(listeners, proto, opts, stats.clone(), shutdown),
    };
    let s = stats.snapshot();
    tracing::info!(
        accepted = s.accepted,
        refused = s.refused,
        closed = s.closed,
        bytes_in = s.bytes_in,
        bytes_out = s.bytes_out,
        errors = s.errors,
        "stopped"
    );
    res
}

#[cfg(test)]
mod tests;
