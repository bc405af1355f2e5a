//! What `threads` and `pool` share: the hub every connection thread delivers through,
//! the per-connection loop, and the acceptor loop.
//!
//! The one idea: a thread never writes to another thread's socket. The protocol sits
//! behind one `Mutex` in the [`Hub`]; applying its actions only appends to the target
//! connections' own queues (each behind its own small lock) and bumps their eventfd.
//! Each connection thread then flushes its own queue with non-blocking writes, so a
//! client that stops reading stalls nobody: its queue grows until `out_limit` and it
//! is disconnected. Actions are applied while the protocol lock is held, so every
//! connection receives output in the order the protocol produced it.

use super::{next_conn_id, IoError, Limits, Stats, TICK};
use crate::net::{self, Listener, OutQueue};
use crate::proto::{Action, ConnId, Outbox, Protocol, Target};
use crate::signals::Shutdown;
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Reads at most this much per wakeup on a connection thread.
const READ_CHUNK: usize = 16 * 1024;

/// Locks, recovering the data if a thread panicked while holding the lock: the
/// state is plain data that stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One connection's mailbox: what other threads queued for it.
struct Peer {
    wake: OwnedFd,
    out: Mutex<Mailbox>,
}

#[derive(Default)]
struct Mailbox {
    queue: OutQueue,
    /// In-memory bytes queued and not yet written (mailbox + the owner's own queue).
    pending: usize,
    close: bool,
    /// Over `out_limit`: the owner disconnects at its next wakeup.
    kill: bool,
    /// A deadline change for the owner to take (`Some(None)` disarms).
    deadline: Option<Option<Duration>>,
}

impl Peer {
    fn push(&self, data: Bytes, limits: &Limits) {
        let mut m = lock(&self.out);
        if m.kill || m.close || data.is_empty() {
            return;
        }
        // Wake the owner only when its mailbox goes from empty to not: it takes the
        // whole mailbox at each wakeup, so one bump covers everything queued until
        // then (a 500-client broadcast would otherwise be 499 wakeups per line).
        let was_empty = m.queue.is_empty();
        m.pending += data.len();
        m.queue.push_bytes(data);
        if m.pending > limits.out_limit {
            m.kill = true;
            m.queue.clear();
        }
        let wake = was_empty || m.kill;
        drop(m);
        if wake {
            net::eventfd_bump(self.wake.as_raw_fd());
        }
    }

    fn update(&self, f: impl FnOnce(&mut Mailbox)) {
        f(&mut lock(&self.out));
        net::eventfd_bump(self.wake.as_raw_fd());
    }
}

struct Shared<P> {
    proto: P,
    peers: HashMap<ConnId, Arc<Peer>>,
    outbox: Outbox,
}

impl<P> Shared<P> {
    fn apply(&mut self, limits: &Limits) {
        for a in self.outbox.drain() {
            match a {
                Action::Send { to, data } => match to {
                    Target::One(id) => {
                        if let Some(p) = self.peers.get(&id) {
                            p.push(data, limits);
                        }
                    }
                    Target::All => {
                        for p in self.peers.values() {
                            p.push(data.clone(), limits);
                        }
                    }
                    Target::AllBut(skip) => {
                        for (id, p) in &self.peers {
                            if *id != skip {
                                p.push(data.clone(), limits);
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
                    if let Some(p) = self.peers.get(&to) {
                        p.update(|m| {
                            if !m.close && !m.kill {
                                m.queue.push_file(file, offset, len)
                            }
                        });
                    }
                }
                Action::Close { id } => {
                    if let Some(p) = self.peers.get(&id) {
                        p.update(|m| m.close = true);
                    }
                }
                Action::Deadline { id, after } => {
                    if let Some(p) = self.peers.get(&id) {
                        p.update(|m| m.deadline = Some(after));
                    }
                }
                // Outbound connections are the event loops' alone (see `Action::Connect`).
                Action::Connect { .. } | Action::Pause { .. } | Action::Splice { .. } => {}
            }
        }
    }
}

/// The protocol and the mailboxes of every connection, shared by all threads.
pub(crate) struct Hub<P> {
    shared: Mutex<Shared<P>>,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<Stats>,
    pub(crate) shutdown: Shutdown,
    /// How long busy connections may go on after a stop.
    drain_grace: Duration,
    /// When they must be done: fixed by the first thread that sees the stop.
    drain_deadline: OnceLock<Instant>,
}

impl<P: Protocol> Hub<P> {
    pub(crate) fn new(
        proto: P,
        limits: Limits,
        stats: Arc<Stats>,
        shutdown: Shutdown,
        drain_grace: Duration,
    ) -> Self {
        Self {
            drain_grace,
            drain_deadline: OnceLock::new(),
            shared: Mutex::new(Shared {
                proto,
                peers: HashMap::new(),
                outbox: Outbox::new(),
            }),
            limits,
            stats,
            shutdown,
        }
    }

    /// Runs `f` on the protocol under the lock, then its end-of-round hook, and
    /// applies what they queued.
    fn with<R>(&self, f: impl FnOnce(&mut P, &mut Outbox) -> R) -> R {
        let mut g = lock(&self.shared);
        let s = &mut *g;
        let r = f(&mut s.proto, &mut s.outbox);
        s.proto.before_wait(&mut s.outbox);
        s.apply(&self.limits);
        r
    }

    pub(crate) fn tick(&self) {
        self.with(|p, out| p.tick(out));
    }

    pub(crate) fn refusal(&self) -> Bytes {
        self.with(|p, _| p.refusal())
    }

    pub(crate) fn queued(&self, position: usize) -> Bytes {
        self.with(|p, _| p.queued(position))
    }

    /// Serves one connection on the calling thread until it closes or the server stops.
    pub(crate) fn serve_conn(&self, fd: OwnedFd, peer_addr: SocketAddr) {
        let id = next_conn_id();
        let wake = match net::eventfd() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(conn = %id, error = %e, "eventfd failed; dropping the client");
                Stats::add(&self.stats.errors, 1);
                return;
            }
        };
        let me = Arc::new(Peer {
            wake,
            out: Mutex::new(Mailbox::default()),
        });
        tracing::debug!(conn = %id, peer = %peer_addr, "connected");
        let mut state = {
            let mut g = lock(&self.shared);
            g.peers.insert(id, me.clone());
            let s = &mut *g;
            let st = s.proto.open(id, peer_addr, &mut s.outbox);
            s.proto.before_wait(&mut s.outbox);
            s.apply(&self.limits);
            st
        };
        let why = self.conn_loop(id, fd.as_fd(), &me, &mut state);
        tracing::debug!(conn = %id, peer = %peer_addr, reason = why, "disconnected");
        drop(fd);
        let mut g = lock(&self.shared);
        g.peers.remove(&id);
        let s = &mut *g;
        s.proto.closed(id, state, &mut s.outbox);
        s.proto.before_wait(&mut s.outbox);
        s.apply(&self.limits);
        Stats::add(&self.stats.closed, 1);
    }

    fn conn_loop(
        &self,
        id: ConnId,
        fd: BorrowedFd<'_>,
        me: &Peer,
        state: &mut P::Conn,
    ) -> &'static str {
        let limits = &self.limits;
        let mut own = OutQueue::new();
        let mut input: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut read_closed = false;
        let mut closing = false;
        let mut deadline_after: Option<Duration> = None;
        let mut deadline_at: Option<Instant> = None;
        loop {
            {
                let mut m = lock(&me.out);
                if m.kill {
                    tracing::warn!(
                        conn = %id,
                        out_limit = limits.out_limit,
                        "slow reader: outbound queue over the limit; disconnecting"
                    );
                    Stats::add(&self.stats.errors, 1);
                    return "slow reader";
                }
                own.append(&mut m.queue);
                closing |= m.close;
                if let Some(d) = m.deadline.take() {
                    deadline_after = d;
                    deadline_at = d.map(|d| Instant::now() + d);
                }
            }
            let was_high = over_high(&own, limits);
            let mut emptied = false;
            if !own.is_empty() {
                let before = own.mem_bytes();
                match own.flush(fd) {
                    Ok(f) => {
                        emptied = own.is_empty();
                        lock(&me.out).pending -= before - own.mem_bytes();
                        if f.written > 0 {
                            Stats::add(&self.stats.bytes_out, f.written as u64);
                            if let Some(d) = deadline_after {
                                deadline_at = Some(Instant::now() + d);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(conn = %id, error = %e, "write failed");
                        return "write error";
                    }
                }
            }
            if closing && own.is_empty() {
                net::shutdown_write(fd);
                return "closed by protocol";
            }
            if P::WANTS_DRAINED && emptied && !closing {
                // The protocol may have the next step of a long output to queue.
                self.with(|p, out| p.drained(id, state, out));
                let more = {
                    let m = lock(&me.out);
                    !m.queue.is_empty() || m.close
                };
                if more {
                    continue;
                }
            }
            // A stop drains: an idle connection closes now, a busy one once it is
            // idle or the drain deadline passes.
            let deadline = self.shutdown.is_set().then(|| {
                *self
                    .drain_deadline
                    .get_or_init(|| Instant::now() + self.drain_grace)
            });
            if let Some(end) = deadline {
                if Instant::now() >= end {
                    return "drain deadline passed";
                }
                if input.is_empty() && own.is_empty() && self.with(|p, _| p.idle(state)) {
                    return "server stopping";
                }
            }
            if was_high && !over_high(&own, limits) && !input.is_empty() {
                // Backpressure lifted: the held-back input may hold whole requests.
                if self.feed(id, me, state, &mut input) {
                    closing = true;
                }
                continue;
            }
            let want_read = !read_closed
                && !closing
                && !over_high(&own, limits)
                && input.len() < limits.max_input;
            let timeout = [deadline_at, deadline]
                .into_iter()
                .flatten()
                .map(|at| at.saturating_duration_since(Instant::now()))
                .fold(TICK * 4, Duration::min);
            let mut fds = [
                libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: (if want_read { libc::POLLIN } else { 0 })
                        | (if own.is_empty() { 0 } else { libc::POLLOUT }),
                    revents: 0,
                },
                libc::pollfd {
                    fd: me.wake.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.shutdown.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Once stopping, the shutdown eventfd is readable for ever: leave it out.
            let nfds = if deadline.is_some() { 2 } else { 3 };
            // SAFETY: `fds` is a live array of 3 pollfds whose descriptors stay open
            // (borrowed socket, our eventfd, the shutdown eventfd) during the call,
            // and `nfds` is at most 3.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), nfds, super::wait_ms(timeout)) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(conn = %id, error = %e, "poll failed");
                Stats::add(&self.stats.errors, 1);
                return "poll error";
            }
            if fds[1].revents != 0 {
                net::eventfd_drain(me.wake.as_fd());
            }
            let r = fds[0].revents;
            let hangup = r & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
            if hangup && own.is_empty() && (read_closed || !want_read) {
                return "hangup";
            }
            if want_read && (r & libc::POLLIN != 0 || hangup) {
                match net::read(fd, &mut buf) {
                    Ok(0) => {
                        read_closed = true;
                        self.with(|p, out| p.eof(id, state, out));
                    }
                    Ok(n) => {
                        Stats::add(&self.stats.bytes_in, n as u64);
                        input.extend_from_slice(&buf[..n]);
                        if self.feed(id, me, state, &mut input) {
                            closing = true;
                        }
                        if input.len() >= limits.max_input {
                            tracing::warn!(conn = %id, max_input = limits.max_input, "unconsumed input over the limit; closing");
                            Stats::add(&self.stats.errors, 1);
                            return "input over limit";
                        }
                        if input.is_empty() && input.capacity() > 4 * READ_CHUNK {
                            input = Vec::new();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::debug!(conn = %id, error = %e, "read failed");
                        return "read error";
                    }
                }
            }
            if deadline_at.is_some_and(|at| at <= Instant::now()) {
                deadline_at = None;
                deadline_after = None;
                Stats::add(&self.stats.timeouts, 1);
                self.with(|p, out| p.timeout(id, state, out));
            }
        }
    }

    /// Offers the input to the protocol until it stops consuming, asks to close, or
    /// this connection's output passes the backpressure mark. Returns whether a close
    /// was asked for.
    fn feed(&self, id: ConnId, me: &Peer, state: &mut P::Conn, input: &mut Vec<u8>) -> bool {
        let mut used = 0;
        let mut closing = false;
        while used < input.len() {
            let n = self.with(|p, out| p.data(id, state, &input[used..], out));
            let n = n.min(input.len() - used);
            used += n;
            let m = lock(&me.out);
            closing = m.close;
            if n == 0 || closing || m.pending > self.limits.out_high || m.kill {
                break;
            }
        }
        input.drain(..used);
        closing
    }
}

fn over_high(out: &OutQueue, limits: &Limits) -> bool {
    out.mem_bytes() > limits.out_high || out.file_bytes() > 0
}

/// The acceptor both threaded models run on the main thread: waits on the listeners
/// and the shutdown descriptor, hands each new connection to `admit`, and ticks the
/// protocol every [`TICK`]. Returns when a stop is requested.
pub(crate) fn accept_loop<P: Protocol>(
    listeners: &[Listener],
    hub: &Hub<P>,
    mut admit: impl FnMut(OwnedFd, SocketAddr),
    mut every_tick: impl FnMut(),
) -> Result<(), IoError> {
    let mut fds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    fds.push(libc::pollfd {
        fd: hub.shutdown.fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let mut next_tick = Instant::now() + TICK;
    let mut paused_until: Option<Instant> = None;
    loop {
        if hub.shutdown.is_set() {
            return Ok(());
        }
        let now = Instant::now();
        if paused_until.is_some_and(|t| now >= t) {
            paused_until = None;
        }
        let timeout = next_tick.saturating_duration_since(now);
        let nfds = if paused_until.is_some() {
            &mut fds[listeners.len()..]
        } else {
            &mut fds[..]
        };
        // SAFETY: `nfds` is a live slice of pollfds over open descriptors (the
        // listeners and the shutdown eventfd outlive this loop).
        let n = unsafe {
            libc::poll(
                nfds.as_mut_ptr(),
                nfds.len() as libc::nfds_t,
                super::wait_ms(timeout),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(IoError::sys("poll", e));
            }
        }
        if paused_until.is_none() {
            for (i, l) in listeners.iter().enumerate() {
                if fds[i].revents == 0 {
                    continue;
                }
                fds[i].revents = 0;
                loop {
                    match l.accept() {
                        Ok(Some((fd, peer))) => {
                            Stats::add(&hub.stats.accepted, 1);
                            admit(fd, peer);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            Stats::add(&hub.stats.errors, 1);
                            tracing::error!(error = %e, "accept failed; pausing accepts for 100 ms");
                            paused_until = Some(Instant::now() + Duration::from_millis(100));
                            break;
                        }
                    }
                }
            }
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            hub.tick();
            every_tick();
        }
    }
}

/// Refuses a client over the limit: the protocol's refusal bytes, then close.
pub(crate) fn refuse<P: Protocol>(hub: &Hub<P>, fd: OwnedFd, peer: SocketAddr, why: &'static str) {
    Stats::add(&hub.stats.refused, 1);
    tracing::warn!(%peer, reason = why, "client refused");
    let msg = hub.refusal();
    net::send_once(fd.as_fd(), &msg);
}
