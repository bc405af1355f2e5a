//! The single-threaded event loop that `select`, `poll` and `epoll` share.
//!
//! The one idea (Redis's `ae.c`): the loop owns the connection table, the protocol and
//! every policy (limits, deadlines, draining); a backend ([`Poller`]) only registers
//! descriptors and reports which are ready. All backends are level-triggered, so the
//! loop may read once per wakeup (fair to the other connections) and simply be told
//! again if more is waiting. `EPOLLERR`/`EPOLLHUP` (and their poll twins) are reported
//! as readable *and* writable so the handler that next touches the socket sees the
//! error.
//!
//! Connections live in a slab (slots reused, no holes left behind) and are named by a
//! [`ConnId`] that is never reused; the readiness token is the id, mapped to its slot,
//! so an event or an action for a client that left can never reach a newcomer that
//! took its slot.

use super::accept_group::{AcceptGroup, Member};
use super::{next_conn_id, IoError, Limits, Stats, DRAIN_GRACE, TICK};
use crate::net::{self, Listener, OutQueue};
use crate::proto::{Action, ConnId, Outbox, Protocol, Target};
use crate::signals::Shutdown;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a descriptor is watched for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
    /// Wake only one of the loops sharing this (listening) descriptor
    /// (`EPOLLEXCLUSIVE`); backends without the notion ignore it.
    pub exclusive: bool,
}

impl Interest {
    pub const READ: Interest = Interest {
        read: true,
        write: false,
        exclusive: false,
    };
}

/// One ready descriptor, as a backend reports it.
#[derive(Clone, Copy, Debug)]
pub struct Fired {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// The peer is gone in both directions (or the socket has an error).
    pub hangup: bool,
}

/// A readiness backend: the five calls `select`, `poll` and `epoll` each implement.
pub trait Poller: Sized {
    /// The backend's name and its wait call, for error messages.
    const NAME: &'static str;
    const WAIT_CALL: &'static str;
    fn new() -> io::Result<Self>;
    fn add(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;
    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;
    fn delete(&mut self, fd: RawFd) -> io::Result<()>;
    /// Waits up to `timeout`; fills `fired` (cleared first). `EINTR` is no events.
    fn wait(&mut self, timeout: Duration, fired: &mut Vec<Fired>) -> io::Result<()>;
}

const TOKEN_SHUTDOWN: u64 = u64::MAX;
const TOKEN_CONTROL: u64 = u64::MAX - 1;
/// Listener `i` has token `TOKEN_LISTENER0 - i`; connection ids count up from 1.
const TOKEN_LISTENER0: u64 = u64::MAX - 2;
/// Reads at most this much per readiness event.
const READ_CHUNK: usize = 64 * 1024;
/// Reads at most this much from an outbound connection (haproxy's buffer size):
/// its bytes are mostly a response head followed by a body the protocol may
/// splice, and whatever a read takes of that body is copied through user space.
const OUTBOUND_READ: usize = 16 * 1024;
/// Accepts at most this many connections per readiness event of one listener.
const ACCEPT_BATCH: usize = 256;
/// A drain takes what waits in the accept queue in at most this many batches.
const DRAIN_ACCEPT_ROUNDS: usize = 64;
/// A connection whose idle input buffer grew past this gives the memory back.
const KEEP_INPUT_CAPACITY: usize = 4 * 1024;
/// Idle pipes a loop keeps for its next splices.
const PIPE_POOL: usize = 16;
/// Pipes' worth of bytes one splice moves per wakeup before the loop serves the
/// other connections.
const SPLICE_BUDGET: usize = 4;

/// A transfer a connection is the source of ([`Action::Splice`]): its socket's
/// bytes go into `pipe` and from there into `to`'s socket, so a slow `to` leaves
/// them in the pipe and the source is not read while the pipe is full (bounded
/// memory, whatever the source sends).
struct Splice {
    to: ConnId,
    /// Bytes still to read from the source; `u64::MAX`: until its end of stream.
    left: u64,
    pipe: super::relay::Pipe,
    in_pipe: usize,
    /// The pipe refused more (`EAGAIN` holding bytes; it fills by buffers, not
    /// bytes): the source waits until it is empty (as the relay's `splice_dir`).
    pipe_full: bool,
    eof: bool,
    /// A byte moved: an error now is the connection's, not "cannot splice".
    moved: bool,
}

impl Splice {
    fn wants_read(&self) -> bool {
        !self.eof && !self.pipe_full && self.left > 0 && self.in_pipe < self.pipe.cap
    }
}

/// `splice(2)` between two descriptors the loop owns.
fn splice_fds(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both are descriptors of this loop's connections or pipes, open for the
    // whole call: the loop is single-threaded and closes nothing during it.
    let (from, to) = unsafe { (BorrowedFd::borrow_raw(from), BorrowedFd::borrow_raw(to)) };
    super::relay::splice(from, to, len)
}

const REQ_NONE: u8 = 0;
const REQ_DRAIN: u8 = 1;
const REQ_STOP: u8 = 2;

#[derive(Debug)]
struct Control {
    wake: OwnedFd,
    request: AtomicU8,
    grace_ms: AtomicU64,
}

/// Controls a running loop from any thread.
#[derive(Clone, Debug)]
pub struct LoopHandle {
    inner: Arc<Control>,
}

impl LoopHandle {
    /// Take what waits in the accept queue, then stop accepting and close this
    /// loop's listening sockets; close idle connections at once; keep serving the
    /// others until they finish or `grace` passes, then close them and return from
    /// `run`.
    pub fn drain(&self, grace: Duration) {
        self.inner.grace_ms.store(
            grace.as_millis().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        let _ = self.inner.request.compare_exchange(
            REQ_NONE,
            REQ_DRAIN,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        net::eventfd_bump(self.inner.wake.as_raw_fd());
    }

    /// Close every connection now and return from `run`.
    pub fn stop(&self) {
        self.inner.request.store(REQ_STOP, Ordering::Release);
        net::eventfd_bump(self.inner.wake.as_raw_fd());
    }

    /// Interrupts the loop's wait so it looks at shared state again.
    pub(crate) fn wake(&self) {
        net::eventfd_bump(self.inner.wake.as_raw_fd());
    }

    /// A handle belonging to no loop (its wakes go nowhere).
    #[cfg(test)]
    pub(crate) fn unattached() -> LoopHandle {
        LoopHandle {
            inner: Arc::new(Control {
                wake: net::eventfd().expect("eventfd"),
                request: AtomicU8::new(REQ_NONE),
                grace_ms: AtomicU64::new(0),
            }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Running,
    Draining(Instant),
    Done,
}

struct Conn<C> {
    id: ConnId,
    fd: OwnedFd,
    peer: SocketAddr,
    /// `None` only between accept and `open` returning, and after `closed`.
    state: Option<C>,
    input: Vec<u8>,
    out: OutQueue,
    interest: Interest,
    read_closed: bool,
    /// The protocol asked to close once the queue is flushed.
    closing: bool,
    /// On the reap list; nothing more is done with it.
    doomed: bool,
    dirty: bool,
    deadline_after: Option<Duration>,
    deadline_at: Option<Instant>,
    /// When this connection's entry in the loop's `deadlines` comes up (the earliest
    /// of its entries still there), if it has one.
    heap_at: Option<Instant>,
    /// Made by the loop for the protocol ([`Action::Connect`]), not accepted.
    outbound: bool,
    /// Its connect is under way: nothing is read or written until it finishes.
    connecting: bool,
    /// The protocol stopped reading from it ([`Action::Pause`]).
    paused: bool,
    /// Held input is to be offered again (reading resumed).
    refeed: bool,
    /// The transfer this connection is the source of.
    splice: Option<Box<Splice>>,
    /// The connection whose transfer writes into this one.
    sink_of: Option<ConnId>,
    /// That transfer holds bytes for this socket.
    sink_waiting: bool,
}

/// A single-threaded event loop over backend `B`, serving protocol `P`.
pub struct EventLoop<P: Protocol, B: Poller> {
    poller: B,
    proto: P,
    limits: Limits,
    stats: Arc<Stats>,
    listeners: Vec<Listener>,
    listening: bool,
    exclusive_accept: bool,
    /// Shares the listeners with the other loops of an [`AcceptGroup`].
    group: Option<Member>,
    accept_paused_until: Option<Instant>,
    slots: Vec<Option<Conn<P::Conn>>>,
    free: Vec<usize>,
    /// Looked up on every event and every send: a fast hash, as the ids are our own
    /// counter, not chosen by a peer.
    ids: HashMap<u64, usize, foldhash::fast::RandomState>,
    outbox: Outbox,
    actions: Vec<Action>,
    scratch: Vec<u8>,
    fired: Vec<Fired>,
    dirty: Vec<(usize, ConnId)>,
    doomed: Vec<(usize, ConnId)>,
    control: Arc<Control>,
    /// How long a drain started by the `Shutdown` given to `run` lets busy
    /// connections finish.
    shutdown_grace: Duration,
    mode: Mode,
    now: Instant,
    /// The protocol was called since the flag was last cleared (see `finish_round`).
    called_in_settle: bool,
    /// Deadlines as [`Action::Deadline`] armed them, earliest first, so the loop
    /// wakes for them rather than on the next tick (a blocked client's 10 ms timeout
    /// answers after 10 ms, not up to a tick later). A connection has one entry that
    /// counts (its `heap_at`): a deadline moved later (every answer moves it) adds
    /// nothing, and its entry, when it comes up, is put back at the new time; only a
    /// deadline moved earlier adds an entry. An entry whose connection left, or that
    /// an earlier one replaced, is dropped when it comes up. Rebuilt from the table
    /// when stale entries outnumber the connections, so it stays bounded.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Idle pipes for the next splices.
    pipes: Vec<super::relay::Pipe>,
}

impl<P: Protocol, B: Poller> EventLoop<P, B> {
    /// A loop owning `listeners` and `proto`; nothing runs until [`EventLoop::run`].
    pub fn new(
        listeners: Vec<Listener>,
        proto: P,
        limits: Limits,
        stats: Arc<Stats>,
    ) -> Result<Self, IoError> {
        let poller = B::new().map_err(|e| IoError::sys(B::NAME, e))?;
        let wake = net::eventfd().map_err(|e| IoError::sys("eventfd", e))?;
        Ok(Self {
            poller,
            proto,
            limits,
            stats,
            listeners,
            listening: false,
            exclusive_accept: false,
            group: None,
            accept_paused_until: None,
            slots: Vec::new(),
            free: Vec::new(),
            ids: HashMap::default(),
            outbox: Outbox::new(),
            actions: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            fired: Vec::with_capacity(1024),
            dirty: Vec::new(),
            doomed: Vec::new(),
            control: Arc::new(Control {
                wake,
                request: AtomicU8::new(REQ_NONE),
                grace_ms: AtomicU64::new(DRAIN_GRACE.as_millis() as u64),
            }),
            shutdown_grace: DRAIN_GRACE,
            mode: Mode::Running,
            now: Instant::now(),
            called_in_settle: false,
            deadlines: BinaryHeap::new(),
            pipes: Vec::new(),
        })
    }

    /// Register the listeners with `EPOLLEXCLUSIVE`, for several loops (threads)
    /// sharing one listening socket: a connection wakes one loop, not all of them.
    pub fn exclusive_accept(mut self, yes: bool) -> Self {
        self.exclusive_accept = yes;
        self
    }

    /// Joins `group`: the first loop to join always accepts, the others only while
    /// it is saturated (see [`AcceptGroup`]). Implies [`EventLoop::exclusive_accept`].
    pub fn accept_group(mut self, group: &Arc<AcceptGroup>) -> Self {
        self.exclusive_accept = true;
        self.group = Some(group.join(self.handle()));
        self
    }

    /// How long the drain that a stop through `run`'s [`Shutdown`] starts lets busy
    /// connections finish ([`DRAIN_GRACE`] unless set); zero closes them at once.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// A handle to drain or stop this loop from another thread.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            inner: self.control.clone(),
        }
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    pub fn protocol(&self) -> &P {
        &self.proto
    }

    /// Open connections right now.
    pub fn connections(&self) -> usize {
        self.ids.len()
    }

    /// Slots in the connection table (open plus free for reuse).
    pub fn table_size(&self) -> usize {
        self.slots.len()
    }

    /// Serves until drained or stopped (through [`LoopHandle`]) or until `shutdown`
    /// is set, which drains with the [`EventLoop::shutdown_grace`].
    pub fn run(&mut self, shutdown: Option<&Shutdown>) -> Result<(), IoError> {
        self.mode = Mode::Running;
        self.listen(self.wants_listening())?;
        let wake_fd = self.control.wake.as_raw_fd();
        self.poller
            .add(wake_fd, TOKEN_CONTROL, Interest::READ)
            .map_err(|e| IoError::sys(B::NAME, e))?;
        let mut watching_shutdown = false;
        if let Some(s) = shutdown {
            self.poller
                .add(s.fd().as_raw_fd(), TOKEN_SHUTDOWN, Interest::READ)
                .map_err(|e| IoError::sys(B::NAME, e))?;
            watching_shutdown = true;
        }
        let mut next_tick = Instant::now() + TICK;
        let res = loop {
            if let Some(s) = shutdown {
                if watching_shutdown && s.is_set() {
                    // Stays readable for ever: stop watching it or we would spin.
                    let _ = self.poller.delete(s.fd().as_raw_fd());
                    watching_shutdown = false;
                    tracing::info!(connections = self.ids.len(), "stop requested; draining");
                    self.begin_drain(self.shutdown_grace);
                }
            }
            self.take_control_request();
            self.check_drain();
            if self.mode == Mode::Done {
                break Ok(());
            }
            self.sync_listening();
            let before = Instant::now();
            let wake = match self.deadlines.peek() {
                Some(Reverse((at, _))) => next_tick.min(*at),
                None => next_tick,
            };
            let timeout = wake.saturating_duration_since(before);
            let mut fired = std::mem::take(&mut self.fired);
            if let Err(e) = self.poller.wait(timeout, &mut fired) {
                self.fired = fired;
                break Err(IoError::sys(B::WAIT_CALL, e));
            }
            self.now = Instant::now();
            if let Some(m) = self.group.as_mut() {
                m.waited(self.now.saturating_duration_since(before));
            }
            for f in fired.iter() {
                self.dispatch(*f);
            }
            self.fired = fired;
            self.finish_round();
            if self.now >= next_tick {
                next_tick = self.now + TICK;
                self.on_tick();
                self.finish_round();
            } else if self
                .deadlines
                .peek()
                .is_some_and(|Reverse((at, _))| *at <= self.now)
            {
                self.expire_armed();
                self.finish_round();
            }
        };
        // Whatever is left (stop, error) is closed now; each gets its `closed` call.
        let all: Vec<(usize, ConnId)> = self
            .ids
            .iter()
            .map(|(&id, &slot)| (slot, ConnId(id)))
            .collect();
        for (slot, id) in all {
            self.doom(slot, id, "loop stopped");
        }
        self.finish_round();
        self.listen(false)?;
        let _ = self.poller.delete(wake_fd);
        if watching_shutdown {
            if let Some(s) = shutdown {
                let _ = self.poller.delete(s.fd().as_raw_fd());
            }
        }
        res
    }

    /// Whether the listeners should be watched now: while running, not paused after an
    /// accept error, and admitted by the accept group (if any).
    fn wants_listening(&self) -> bool {
        self.mode == Mode::Running
            && self.accept_paused_until.is_none()
            && self.group.as_ref().map_or(true, Member::admits)
    }

    fn sync_listening(&mut self) {
        let want = self.wants_listening();
        if !want && self.listening && self.mode == Mode::Running {
            // A follower leaving the group's listeners: a connection the kernel
            // announced to it alone (its wakeup consumed, the event not yet harvested)
            // would otherwise wait for the next arrival. One round takes it.
            for i in 0..self.listeners.len() {
                let _ = self.on_accept(i);
            }
        }
        if want != self.listening {
            if let Err(e) = self.listen(want) {
                tracing::error!(error = %e, "watching the listeners failed; retrying in 100 ms");
                self.accept_paused_until = Some(self.now + Duration::from_millis(100));
            }
        }
    }

    fn listen(&mut self, on: bool) -> Result<(), IoError> {
        if on == self.listening {
            return Ok(());
        }
        for (i, l) in self.listeners.iter().enumerate() {
            let fd = l.as_raw_fd();
            if on {
                let interest = Interest {
                    exclusive: self.exclusive_accept,
                    ..Interest::READ
                };
                self.poller
                    .add(fd, TOKEN_LISTENER0 - i as u64, interest)
                    .map_err(|e| match e.raw_os_error() {
                        Some(libc::EINVAL) if B::NAME == "select" => IoError::FdSetSize {
                            fd,
                            limit: libc::FD_SETSIZE,
                        },
                        _ => IoError::sys(B::NAME, e),
                    })?;
            } else {
                let _ = self.poller.delete(fd);
            }
        }
        self.listening = on;
        Ok(())
    }

    fn take_control_request(&mut self) {
        match self.control.request.swap(REQ_NONE, Ordering::AcqRel) {
            REQ_DRAIN => {
                let grace = Duration::from_millis(self.control.grace_ms.load(Ordering::Relaxed));
                self.begin_drain(grace);
            }
            REQ_STOP => self.mode = Mode::Done,
            _ => {}
        }
    }

    fn begin_drain(&mut self, grace: Duration) {
        if self.mode != Mode::Running {
            return;
        }
        if self.listening {
            // Connections the kernel completed before the stop wait in the accept
            // queue; when the last copy of the socket closes they are reset. They
            // were made before the stop, so they are served like the rest. Bounded:
            // the queue holds at most the backlog, and `admit` refuses past
            // `max_clients`.
            for i in 0..self.listeners.len() {
                for _ in 0..DRAIN_ACCEPT_ROUNDS {
                    if self.on_accept(i) < ACCEPT_BATCH {
                        break;
                    }
                }
            }
        }
        let _ = self.listen(false);
        // Our copies of the listening sockets go now, not when the loop ends: once
        // every holder has closed its copy the kernel refuses newcomers at once
        // (rather than queueing them for nobody and resetting them at the end) and a
        // replacement server may bind the port while this one finishes its
        // responses. A holder that stays (a master keeping the sockets for the next
        // generation) keeps the socket open for the others.
        self.listeners.clear();
        self.accept_paused_until = None;
        self.mode = Mode::Draining(Instant::now() + grace);
        // Peers that can be told a stop is coming are told first.
        for c in self.slots.iter_mut().flatten() {
            if let Some(state) = c.state.as_mut() {
                self.proto.draining(c.id, state, &mut self.outbox);
            }
        }
        self.apply();
        self.close_idle();
        self.finish_round();
    }

    fn check_drain(&mut self) {
        let Mode::Draining(deadline) = self.mode else {
            return;
        };
        self.close_idle();
        self.finish_round();
        if self.ids.is_empty() {
            self.mode = Mode::Done;
        } else if Instant::now() >= deadline {
            tracing::warn!(
                connections = self.ids.len(),
                "drain deadline passed; closing the rest"
            );
            self.mode = Mode::Done;
        }
    }

    fn close_idle(&mut self) {
        for slot in 0..self.slots.len() {
            let Some(c) = self.slots[slot].as_ref() else {
                continue;
            };
            let idle = c.input.is_empty()
                && c.out.is_empty()
                && !c.doomed
                && c.state.as_ref().is_some_and(|s| self.proto.idle(s));
            if idle {
                let id = c.id;
                self.doom(slot, id, "draining");
            }
        }
    }

    fn dispatch(&mut self, f: Fired) {
        match f.token {
            TOKEN_SHUTDOWN => {} // looked at at the top of the loop
            TOKEN_CONTROL => net::eventfd_drain(self.control.wake.as_fd()),
            t if t > TOKEN_LISTENER0 - self.listeners.len() as u64 => {
                let i = (TOKEN_LISTENER0 - t) as usize;
                let _ = self.on_accept(i);
            }
            id => {
                let Some(&slot) = self.ids.get(&id) else {
                    return; // closed earlier in this batch
                };
                let id = ConnId(id);
                let Some(c) = self.slots[slot].as_mut() else {
                    return;
                };
                if c.doomed {
                    return;
                }
                if c.connecting {
                    if f.writable || f.hangup {
                        self.on_connected(slot, id);
                    }
                    return;
                }
                if f.hangup
                    && c.out.is_empty()
                    && (c.read_closed || !c.interest.read)
                    && c.splice.is_none()
                    && !c.sink_waiting
                {
                    // Both directions are gone and nothing is left to say.
                    self.doom(slot, id, "hangup");
                    return;
                }
                if c.splice.is_some() {
                    if f.readable || f.hangup {
                        self.pump(slot, id);
                    }
                    let stuck = self.slots[slot].as_ref().is_some_and(|c| {
                        c.id == id && c.splice.as_ref().is_some_and(|s| !s.wants_read())
                    });
                    if f.hangup && stuck {
                        // Reported on every wait whatever the interest: gone, with a
                        // full pipe the destination is slow to take.
                        self.doom(slot, id, "hangup during a splice");
                        return;
                    }
                } else if f.readable && c.interest.read {
                    self.on_readable(slot, id);
                }
                // Answer at once, as nginx and lighttpd do, rather than after the whole
                // batch: the client starts on this response while the loop reads the
                // next request. Writing everything at the end of the batch leaves a
                // request/response client and the server waiting on each other in
                // turn (measured: 25% fewer keep-alive requests per second).
                self.flush_one(slot, id);
            }
        }
    }

    /// Accepts up to [`ACCEPT_BATCH`] connections; returns how many it took.
    fn on_accept(&mut self, i: usize) -> usize {
        if !self.listening {
            return 0;
        }
        for n in 0..ACCEPT_BATCH {
            let res = match self.listeners.get(i) {
                Some(l) => l.accept(),
                None => return n,
            };
            match res {
                Ok(Some((fd, peer))) => self.admit(fd, peer, i),
                Ok(None) => return n,
                Err(e) => {
                    Stats::add(&self.stats.errors, 1);
                    // Out of descriptors: the listener stays readable, so pause
                    // accepting instead of spinning until connections close.
                    tracing::error!(error = %e, "accept failed; pausing accepts for 100 ms");
                    let _ = self.listen(false);
                    self.accept_paused_until = Some(self.now + Duration::from_millis(100));
                    return n;
                }
            }
        }
        ACCEPT_BATCH
    }

    fn admit(&mut self, fd: OwnedFd, peer: SocketAddr, listener: usize) {
        Stats::add(&self.stats.accepted, 1);
        if self.ids.len() >= self.limits.max_clients {
            Stats::add(&self.stats.refused, 1);
            tracing::warn!(%peer, max_clients = self.limits.max_clients, "client refused: server full");
            let msg = self.proto.refusal();
            net::send_once(fd.as_fd(), &msg);
            return;
        }
        let id = next_conn_id();
        if let Err(e) = self.poller.add(fd.as_raw_fd(), id.0, Interest::READ) {
            Stats::add(&self.stats.refused, 1);
            Stats::add(&self.stats.errors, 1);
            if B::NAME == "select" && e.raw_os_error() == Some(libc::EINVAL) {
                tracing::error!(
                    %peer,
                    fd = fd.as_raw_fd(),
                    limit = libc::FD_SETSIZE,
                    "client refused: select cannot watch a descriptor at or above FD_SETSIZE; use --io poll or --io epoll"
                );
            } else {
                tracing::error!(%peer, error = %e, backend = B::NAME, "client refused: cannot watch its socket");
            }
            let msg = self.proto.refusal();
            net::send_once(fd.as_fd(), &msg);
            return;
        }
        let conn = Conn {
            id,
            fd,
            peer,
            state: None,
            input: Vec::new(),
            out: OutQueue::new(),
            interest: Interest::READ,
            read_closed: false,
            closing: false,
            doomed: false,
            dirty: false,
            deadline_after: None,
            deadline_at: None,
            heap_at: None,
            outbound: false,
            connecting: false,
            paused: false,
            refeed: false,
            splice: None,
            sink_of: None,
            sink_waiting: false,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(conn);
                s
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        };
        self.ids.insert(id.0, slot);
        Stats::add(&self.stats.active, 1);
        tracing::debug!(conn = %id, %peer, "connected");
        let state = self.proto.open_on(id, peer, listener, &mut self.outbox);
        if let Some(c) = self.slots[slot].as_mut() {
            c.state = Some(state);
        }
        self.apply();
        self.mark_dirty(slot, id);
    }

    fn on_readable(&mut self, slot: usize, id: ConnId) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        let max = if c.outbound {
            OUTBOUND_READ
        } else {
            READ_CHUNK
        };
        match net::recv(c.fd.as_fd(), &mut self.scratch[..max]) {
            Ok(0) => {
                c.read_closed = true;
                if let Some(state) = c.state.as_mut() {
                    self.proto.eof(id, state, &mut self.outbox);
                }
                self.apply();
            }
            Ok(n) => {
                Stats::add(&self.stats.bytes_in, n as u64);
                self.feed(slot, id, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!(conn = %id, error = %e, "read failed");
                self.doom(slot, id, "read error");
            }
        }
    }

    /// Hands the connection's unconsumed input plus `fresh` new bytes (at the start of
    /// the scratch buffer) to the protocol, and keeps what it did not consume.
    fn feed(&mut self, slot: usize, id: ConnId, fresh: usize) {
        let scratch = std::mem::take(&mut self.scratch);
        let Some(c) = self.slots[slot].as_mut() else {
            self.scratch = scratch;
            return;
        };
        let mut input = std::mem::take(&mut c.input);
        // Fast path: nothing was left over, so the protocol reads the scratch buffer
        // directly and only an unconsumed tail is copied.
        let direct = input.is_empty();
        if !direct {
            input.extend_from_slice(&scratch[..fresh]);
        }
        let buf: &[u8] = if direct { &scratch[..fresh] } else { &input };
        let used = self.run_protocol(slot, id, buf);
        let rest = if direct {
            let mut v = Vec::new();
            v.extend_from_slice(&buf[used..]);
            v
        } else {
            input.drain(..used);
            if input.is_empty() && input.capacity() > KEEP_INPUT_CAPACITY {
                Vec::new()
            } else {
                input
            }
        };
        self.scratch = scratch;
        let over = rest.len() >= self.limits.max_input;
        if let Some(c) = self.slots[slot].as_mut() {
            if c.id == id {
                c.input = rest;
            }
        }
        if over {
            tracing::warn!(conn = %id, max_input = self.limits.max_input, "unconsumed input over the limit; closing");
            Stats::add(&self.stats.errors, 1);
            self.doom(slot, id, "input over limit");
        }
    }

    /// Offers `buf` to the protocol until it stops consuming, the connection is to
    /// close, or its own output is over the backpressure mark. Returns bytes consumed.
    fn run_protocol(&mut self, slot: usize, id: ConnId, buf: &[u8]) -> usize {
        let mut used = 0;
        while used < buf.len() {
            let Some(c) = self.slots[slot].as_mut() else {
                break;
            };
            if c.id != id
                || c.closing
                || c.doomed
                || c.paused
                || c.splice.is_some()
                || over_high(&c.out, &self.limits)
            {
                break;
            }
            let Some(state) = c.state.as_mut() else {
                break;
            };
            self.called_in_settle = true;
            let n = self.proto.data(id, state, &buf[used..], &mut self.outbox);
            let n = n.min(buf.len() - used);
            self.apply();
            if n == 0 {
                break;
            }
            used += n;
        }
        used
    }

    fn on_tick(&mut self) {
        // Accepts resume (or a follower starts or stops accepting) at the top of
        // the next iteration.
        if self.accept_paused_until.is_some_and(|t| self.now >= t) {
            self.accept_paused_until = None;
        }
        if let Some(m) = self.group.as_mut() {
            m.tick(self.now);
        }
        self.proto.tick(&mut self.outbox);
        self.apply();
        for slot in 0..self.slots.len() {
            self.expire(slot);
        }
        // Whatever came due is answered; entries left for it are stale.
        self.expire_armed();
    }

    /// Fires the armed deadlines that are due (see `deadlines`).
    fn expire_armed(&mut self) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > self.now {
                break;
            }
            self.deadlines.pop();
            let Some(&slot) = self.ids.get(&id) else {
                continue;
            };
            let Some(c) = self.slots[slot].as_mut() else {
                continue;
            };
            if c.heap_at != Some(at) {
                continue;
            }
            c.heap_at = None;
            match c.deadline_at {
                Some(due) if due <= self.now => self.expire(slot),
                // Moved later since: follow it.
                Some(due) => {
                    c.heap_at = Some(due);
                    self.deadlines.push(Reverse((due, id)));
                }
                None => {}
            }
        }
    }

    /// Keeps one entry per connection whose deadline is armed.
    fn rebuild_deadlines(&mut self) {
        let mut live = Vec::with_capacity(self.ids.len());
        for c in self.slots.iter_mut().flatten() {
            c.heap_at = c.deadline_at;
            if let Some(at) = c.deadline_at {
                live.push(Reverse((at, c.id.0)));
            }
        }
        self.deadlines = BinaryHeap::from(live);
    }

    /// Calls the protocol's `timeout` for the connection in `slot` if its deadline
    /// has passed.
    fn expire(&mut self, slot: usize) {
        let now = self.now;
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        if c.doomed || !c.deadline_at.is_some_and(|at| at <= now) {
            return;
        }
        // One-shot: the protocol re-arms if it wants another.
        c.deadline_at = None;
        c.deadline_after = None;
        let id = c.id;
        // Writes push the deadline back, so output still queued now is output the
        // peer has not taken for the whole period: a client that stopped reading.
        let stalled = !c.out.is_empty();
        Stats::add(&self.stats.timeouts, 1);
        if let Some(state) = c.state.as_mut() {
            self.proto.timeout(id, state, &mut self.outbox);
        }
        self.apply();
        if let Some(c) = self.slots[slot].as_mut() {
            if stalled && c.id == id && c.closing {
                // A close that waits for the flush would wait for ever.
                c.out.clear();
                self.doom(slot, id, "timed out with output pending");
                return;
            }
        }
        self.mark_dirty(slot, id);
    }

    /// Applies the outbox's actions in order (and those the protocol queues
    /// meanwhile, when a connect calls it).
    fn apply(&mut self) {
        while !self.outbox.is_empty() {
            self.apply_once();
        }
    }

    fn apply_once(&mut self) {
        let mut acts = std::mem::take(&mut self.actions);
        acts.extend(self.outbox.drain());
        for a in acts.drain(..) {
            match a {
                Action::Send { to, data } => match to {
                    Target::One(id) => {
                        if let Some(&slot) = self.ids.get(&id.0) {
                            self.push(slot, data);
                        }
                    }
                    Target::All | Target::AllBut(_) => {
                        let skip = match to {
                            Target::AllBut(x) => Some(x),
                            _ => None,
                        };
                        for slot in 0..self.slots.len() {
                            if let Some(c) = self.slots[slot].as_ref() {
                                if Some(c.id) != skip {
                                    self.push(slot, data.clone());
                                }
                            }
                        }
                    }
                },
                Action::SendFile {
                    to,
                    file,
                    offset,
                    len,
                } => {
                    if let Some(&slot) = self.ids.get(&to.0) {
                        if let Some(c) = self.slots[slot].as_mut() {
                            if !c.closing && !c.doomed {
                                c.out.push_file(file, offset, len);
                                self.mark_dirty(slot, to);
                            }
                        }
                    }
                }
                Action::Close { id } => {
                    if let Some(&slot) = self.ids.get(&id.0) {
                        if let Some(c) = self.slots[slot].as_mut() {
                            c.closing = true;
                            self.mark_dirty(slot, id);
                        }
                    }
                }
                Action::Deadline { id, after } => {
                    if let Some(&slot) = self.ids.get(&id.0) {
                        if let Some(c) = self.slots[slot].as_mut() {
                            c.deadline_after = after;
                            c.deadline_at = after.map(|d| Instant::now() + d);
                            if let Some(at) = c.deadline_at {
                                // An entry that comes up sooner follows the deadline
                                // when it does (see `expire_armed`).
                                if c.heap_at.map_or(true, |h| at < h) {
                                    c.heap_at = Some(at);
                                    self.deadlines.push(Reverse((at, id.0)));
                                }
                            }
                        }
                    }
                    if self.deadlines.len() > 2 * self.ids.len() + 1024 {
                        self.rebuild_deadlines();
                    }
                }
                Action::Connect { id, to } => self.connect(id, to),
                Action::Splice { from, to, len } => self.start_splice(from, to, len),
                Action::Pause { id, paused } => {
                    if let Some(&slot) = self.ids.get(&id.0) {
                        if let Some(c) = self.slots[slot].as_mut() {
                            c.refeed |= c.paused && !paused;
                            c.paused = paused;
                            self.mark_dirty(slot, id);
                        }
                    }
                }
            }
        }
        self.actions = acts;
    }

    /// Starts an outbound connection for the protocol; it joins the table as a
    /// connection waiting for its connect to finish (writable, or an error).
    fn connect(&mut self, id: ConnId, to: SocketAddr) {
        let fd = match super::relay::connect_nonblocking(to) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(conn = %id, %to, error = %e, "connect failed");
                self.proto.connect_failed(id, e, &mut self.outbox);
                return;
            }
        };
        let interest = Interest {
            read: false,
            write: true,
            exclusive: false,
        };
        if let Err(e) = self.poller.add(fd.as_raw_fd(), id.0, interest) {
            self.proto.connect_failed(id, e, &mut self.outbox);
            return;
        }
        let Some(state) = self.proto.outbound(id, to, &mut self.outbox) else {
            let _ = self.poller.delete(fd.as_raw_fd());
            let e = io::Error::new(io::ErrorKind::Unsupported, "outbound connection refused");
            self.proto.connect_failed(id, e, &mut self.outbox);
            return;
        };
        let conn = Conn {
            id,
            fd,
            peer: to,
            state: Some(state),
            input: Vec::new(),
            out: OutQueue::new(),
            interest,
            read_closed: false,
            closing: false,
            doomed: false,
            dirty: false,
            deadline_after: None,
            deadline_at: None,
            heap_at: None,
            outbound: true,
            connecting: true,
            paused: false,
            refeed: false,
            splice: None,
            sink_of: None,
            sink_waiting: false,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(conn);
                s
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        };
        self.ids.insert(id.0, slot);
        tracing::debug!(conn = %id, %to, "connecting");
    }

    /// An outbound connect finished: the protocol hears how, and on success what
    /// it queued meanwhile goes out.
    fn on_connected(&mut self, slot: usize, id: ConnId) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        c.connecting = false;
        let res = super::relay::socket_error(c.fd.as_fd());
        let failed = res.is_err();
        if let Some(state) = c.state.as_mut() {
            self.called_in_settle = true;
            self.proto.connected(id, state, res, &mut self.outbox);
        }
        self.apply();
        if failed {
            self.doom(slot, id, "connect failed");
        } else {
            self.mark_dirty(slot, id);
        }
    }

    /// Starts an [`Action::Splice`]: held input first (queued for `to`), then
    /// the socket's bytes through a pipe from the pool.
    fn start_splice(&mut self, from: ConnId, to: ConnId, len: u64) {
        let (Some(&fs), Some(&ts)) = (self.ids.get(&from.0), self.ids.get(&to.0)) else {
            return self.splice_refused(from, "a connection of the splice is gone");
        };
        let open = |c: &Conn<P::Conn>| !c.doomed && !c.closing;
        let source = self.slots[fs]
            .as_ref()
            .is_some_and(|c| open(c) && c.splice.is_none());
        let sink = self.slots[ts]
            .as_ref()
            .is_some_and(|c| open(c) && c.sink_of.is_none());
        if fs == ts || !source || !sink {
            return self.splice_refused(from, "a connection of the splice is busy or closing");
        }
        let pipe = match self.pipes.pop() {
            Some(p) => p,
            None => match super::relay::new_pipe() {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(conn = %from, error = %e, "pipe2 failed: not splicing");
                    return self.splice_refused(from, "pipe2 failed");
                }
            },
        };
        let Some(c) = self.slots[fs].as_mut() else {
            return;
        };
        let held = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(c.input.len());
        let first: Vec<u8> = c.input.drain(..held).collect();
        let left = if len == u64::MAX {
            len
        } else {
            len - held as u64
        };
        c.splice = Some(Box::new(Splice {
            to,
            left,
            pipe,
            in_pipe: 0,
            pipe_full: false,
            eof: false,
            moved: false,
        }));
        if !first.is_empty() {
            self.push(ts, Bytes::from(first));
        }
        if let Some(d) = self.slots[ts].as_mut() {
            d.sink_of = Some(from);
        }
        // The first pump runs once what is queued for `to` (the response head) is
        // flushed, so the bytes can go straight through without waiting on the poller.
        self.mark_dirty(ts, to);
    }

    fn splice_refused(&mut self, from: ConnId, why: &'static str) {
        let Some(&slot) = self.ids.get(&from.0) else {
            return;
        };
        if let Some(state) = self.slots[slot].as_mut().and_then(|c| c.state.as_mut()) {
            let e = io::Error::new(io::ErrorKind::Unsupported, why);
            self.called_in_settle = true;
            self.proto.spliced(from, state, Err(e), &mut self.outbox);
        }
        self.mark_dirty(slot, from);
    }

    /// `to` no longer receives a splice's bytes.
    fn unsink(&mut self, to: ConnId) {
        if let Some(&slot) = self.ids.get(&to.0) {
            if let Some(d) = self.slots[slot].as_mut() {
                d.sink_of = None;
                d.sink_waiting = false;
            }
            self.update_interest(slot, to);
        }
    }

    /// An empty pipe goes back to the pool; one still holding bytes is closed.
    fn recycle(&mut self, sp: Splice) {
        if sp.in_pipe == 0 && self.pipes.len() < PIPE_POOL {
            self.pipes.push(sp.pipe);
        }
    }

    /// Moves what it can of the splice whose source is `slot`: source to pipe
    /// while the pipe has room, pipe to destination once everything queued before
    /// for the destination is written. Ends the transfer when its bytes are all
    /// written, or at the source's end of stream.
    fn pump(&mut self, slot: usize, id: ConnId) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        if c.id != id || c.doomed {
            return;
        }
        let Some(mut sp) = c.splice.take() else {
            return;
        };
        let src = c.fd.as_raw_fd();
        let dst = self.ids.get(&sp.to.0).and_then(|&ts| {
            let d = self.slots[ts].as_ref()?;
            (d.id == sp.to && !d.doomed)
                .then(|| (ts, d.fd.as_raw_fd(), d.out.is_empty() && !d.connecting))
        });
        let Some((ts, dst_fd, dst_free)) = dst else {
            // The destination is gone: its end closes this side too.
            self.update_interest(slot, id);
            return;
        };
        let (mut read, mut written) = (0usize, 0usize);
        let mut failed: Option<(bool, io::Error)> = None;
        let budget = sp.pipe.cap.saturating_mul(SPLICE_BUDGET);
        loop {
            let mut progress = false;
            if sp.wants_read() {
                let room = sp.pipe.cap - sp.in_pipe;
                let want = usize::try_from(sp.left).map_or(room, |l| l.min(room));
                match splice_fds(src, sp.pipe.w.as_raw_fd(), want) {
                    Ok(0) => sp.eof = true,
                    Ok(n) => {
                        sp.in_pipe += n;
                        if sp.left != u64::MAX {
                            sp.left -= n as u64;
                        }
                        sp.moved = true;
                        read += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        sp.pipe_full = sp.in_pipe > 0;
                    }
                    Err(e) => {
                        failed = Some((true, e));
                        break;
                    }
                }
            }
            if sp.in_pipe > 0 && dst_free {
                match splice_fds(sp.pipe.r.as_raw_fd(), dst_fd, sp.in_pipe) {
                    Ok(n) => {
                        sp.in_pipe -= n;
                        sp.pipe_full &= sp.in_pipe > 0;
                        written += n;
                        progress |= n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        failed = Some((false, e));
                        break;
                    }
                }
            }
            if !progress || written >= budget {
                break;
            }
        }
        let now = self.now;
        Stats::add(&self.stats.bytes_in, read as u64);
        if read > 0 || written > 0 {
            if let Some(c) = self.slots[slot].as_mut() {
                // The transfer is moving (a slow destination holds the source back
                // through the pipe): the source's silence deadline moves on.
                if let Some(d) = c.deadline_after {
                    c.deadline_at = Some(now + d);
                }
            }
        }
        if written > 0 {
            Stats::add(&self.stats.bytes_out, written as u64);
            if let Some(d) = self.slots[ts].as_mut() {
                if let Some(after) = d.deadline_after {
                    d.deadline_at = Some(now + after);
                }
            }
        }
        match failed {
            Some((true, e)) if !sp.moved && e.raw_os_error() == Some(libc::EINVAL) => {
                // This source cannot be spliced: the protocol copies instead.
                self.unsink(sp.to);
                self.recycle(*sp);
                if let Some(state) = self.slots[slot].as_mut().and_then(|c| c.state.as_mut()) {
                    self.called_in_settle = true;
                    self.proto.spliced(id, state, Err(e), &mut self.outbox);
                }
                self.apply();
                self.update_interest(slot, id);
                return;
            }
            Some((at_source, e)) => {
                tracing::debug!(conn = %id, error = %e, at_source, "splice failed");
                if let Some(c) = self.slots[slot].as_mut() {
                    c.splice = Some(sp);
                }
                if at_source {
                    self.doom(slot, id, "read error");
                } else {
                    let to = self.slots[ts].as_ref().map(|d| d.id);
                    if let Some(to) = to {
                        self.doom(ts, to, "write error");
                    }
                }
                return;
            }
            None => {}
        }
        if sp.in_pipe == 0 && (sp.left == 0 || sp.eof) {
            let to = sp.to;
            let eof = sp.eof;
            self.unsink(to);
            self.recycle(*sp);
            let Some(c) = self.slots[slot].as_mut() else {
                return;
            };
            if eof {
                c.read_closed = true;
            }
            if let Some(state) = c.state.as_mut() {
                self.called_in_settle = true;
                if eof {
                    self.proto.eof(id, state, &mut self.outbox);
                } else {
                    self.proto.spliced(id, state, Ok(()), &mut self.outbox);
                }
            }
            self.apply();
            self.mark_dirty(slot, id);
            return;
        }
        let waiting = sp.in_pipe > 0;
        if let Some(c) = self.slots[slot].as_mut() {
            c.splice = Some(sp);
        }
        if let Some(d) = self.slots[ts].as_mut() {
            d.sink_waiting = waiting;
        }
        self.update_interest(slot, id);
        let to = self.slots[ts].as_ref().map(|d| d.id);
        if let Some(to) = to {
            self.update_interest(ts, to);
        }
    }

    fn push(&mut self, slot: usize, data: Bytes) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        if c.closing || c.doomed {
            return;
        }
        c.out.push_bytes(data);
        let id = c.id;
        if c.out.mem_bytes() > self.limits.out_limit {
            tracing::warn!(
                conn = %id,
                peer = %c.peer,
                queued = c.out.mem_bytes(),
                out_limit = self.limits.out_limit,
                "slow reader: outbound queue over the limit; disconnecting"
            );
            c.out.clear();
            Stats::add(&self.stats.errors, 1);
            self.doom(slot, id, "slow reader");
            return;
        }
        self.mark_dirty(slot, id);
    }

    fn mark_dirty(&mut self, slot: usize, id: ConnId) {
        if let Some(c) = self.slots[slot].as_mut() {
            if c.id == id && !c.dirty && !c.doomed {
                c.dirty = true;
                self.dirty.push((slot, id));
            }
        }
    }

    fn doom(&mut self, slot: usize, id: ConnId, why: &'static str) {
        if let Some(c) = self.slots[slot].as_mut() {
            if c.id == id && !c.doomed {
                c.doomed = true;
                tracing::debug!(conn = %id, reason = why, "closing");
                self.doomed.push((slot, id));
            }
        }
    }

    /// Ends a round of protocol calls: [`Protocol::before_wait`] first, then the
    /// flush. Flushing may call the protocol again (input held back under
    /// backpressure is fed once it lifts; a reaped connection gets `closed`), so the
    /// hook then runs again: a protocol that holds output until the hook (kvd's
    /// replies wait for their log write) never leaves it waiting for the next wakeup.
    fn finish_round(&mut self) {
        loop {
            self.proto.before_wait(&mut self.outbox);
            self.apply();
            self.called_in_settle = false;
            self.settle();
            if !self.called_in_settle {
                break;
            }
        }
    }

    /// Flushes touched connections and reaps doomed ones until nothing is pending
    /// (closing one may queue a farewell for others).
    fn settle(&mut self) {
        loop {
            if let Some((slot, id)) = self.dirty.pop() {
                // Already flushed since it was marked (a connection is answered as soon
                // as it is read): nothing left to do for it.
                if self.slots[slot]
                    .as_ref()
                    .is_some_and(|c| c.id == id && c.dirty)
                {
                    self.flush_one(slot, id);
                }
            } else if let Some((slot, id)) = self.doomed.pop() {
                self.reap(slot, id);
            } else {
                break;
            }
        }
    }

    fn flush_one(&mut self, slot: usize, id: ConnId) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        if c.id != id {
            return;
        }
        c.dirty = false;
        if c.doomed || c.connecting {
            return;
        }
        let was_high = over_high(&c.out, &self.limits);
        let mut emptied = false;
        if !c.out.is_empty() {
            match c.out.flush(c.fd.as_fd()) {
                Ok(f) => {
                    emptied = c.out.is_empty();
                    if f.written > 0 {
                        Stats::add(&self.stats.bytes_out, f.written as u64);
                        if let Some(d) = c.deadline_after {
                            c.deadline_at = Some(self.now + d);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(conn = %id, error = %e, "write failed");
                    self.doom(slot, id, "write error");
                    return;
                }
            }
        }
        if c.closing && c.out.is_empty() {
            net::shutdown_write(c.fd.as_fd());
            self.doom(slot, id, "closed by protocol");
            return;
        }
        if P::WANTS_DRAINED && emptied {
            if let Some(state) = c.state.as_mut() {
                self.called_in_settle = true;
                self.proto.drained(id, state, &mut self.outbox);
                // What it queued marks the connection dirty again: the settle loop
                // flushes it next.
                self.apply();
            }
        }
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        if c.id != id || c.doomed {
            return;
        }
        if c.sink_of.is_some() && c.out.is_empty() {
            // What was queued before the spliced bytes is out: they may follow.
            if let Some(src) = c.sink_of {
                if let Some(&s) = self.ids.get(&src.0) {
                    self.pump(s, src);
                }
            }
        }
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        if c.id != id || c.doomed {
            return;
        }
        let refeed = std::mem::take(&mut c.refeed) && !c.paused;
        if (refeed || (was_high && !over_high(&c.out, &self.limits))) && !c.input.is_empty() {
            // Backpressure lifted (or reading resumed): what was held back may hold
            // whole requests that no new readiness event will announce.
            self.feed(slot, id, 0);
        }
        self.update_interest(slot, id);
    }

    fn update_interest(&mut self, slot: usize, id: ConnId) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        if c.id != id || c.doomed {
            return;
        }
        let read = match &c.splice {
            // The pipe bounds what is read, not the protocol.
            Some(sp) => sp.wants_read() && !c.read_closed && !c.closing,
            None => {
                !c.read_closed
                    && !c.closing
                    && !c.paused
                    && !over_high(&c.out, &self.limits)
                    && c.input.len() < self.limits.max_input
            }
        };
        let want = Interest {
            read,
            write: !c.out.is_empty() || c.sink_waiting,
            exclusive: false,
        };
        if want != c.interest {
            match self.poller.modify(c.fd.as_raw_fd(), id.0, want) {
                Ok(()) => c.interest = want,
                Err(e) => {
                    tracing::error!(conn = %id, error = %e, backend = B::NAME, "changing interest failed");
                    self.doom(slot, id, "poller error");
                }
            }
        }
    }

    fn reap(&mut self, slot: usize, id: ConnId) {
        match self.slots[slot].as_ref() {
            Some(c) if c.id == id => {}
            _ => return,
        }
        let Some(mut c) = self.slots[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.ids.remove(&id.0);
        let _ = self.poller.delete(c.fd.as_raw_fd());
        if let Some(sp) = c.splice.take() {
            self.unsink(sp.to);
            self.recycle(*sp);
        }
        if let Some(src) = c.sink_of.take() {
            // Nowhere to deliver the rest: the transfer ends (the protocol hears of
            // this connection's end and closes the other).
            if let Some(&s) = self.ids.get(&src.0) {
                if let Some(sc) = self.slots[s].as_mut() {
                    if sc.splice.as_ref().is_some_and(|sp| sp.to == id) {
                        sc.splice = None;
                        self.update_interest(s, src);
                    }
                }
            }
        }
        if !c.outbound {
            Stats::sub(&self.stats.active, 1);
            Stats::add(&self.stats.closed, 1);
        }
        tracing::debug!(conn = %id, peer = %c.peer, "disconnected");
        if let Some(state) = c.state.take() {
            self.called_in_settle = true;
            self.proto.closed(id, state, &mut self.outbox);
        }
        drop(c);
        self.apply();
    }
}

fn over_high(out: &OutQueue, limits: &Limits) -> bool {
    out.mem_bytes() > limits.out_high || out.file_bytes() > 0
}
