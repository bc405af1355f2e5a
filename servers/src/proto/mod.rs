//! Protocols as state machines: bytes in, [`Action`]s out, no I/O inside.
//!
//! This is the seam of the whole crate. A concurrency model (`crate::io`) owns the
//! sockets, the readiness and the buffers; a protocol only ever sees the bytes a
//! connection sent and answers with what to send, to whom, which file to stream and
//! when to close. That is how every model runs every protocol without a copy per
//! model, and how the capstone reuses httpd's HTTP.
//!
//! The contract a model keeps for every connection:
//! 1. [`Protocol::open`] once, first;
//! 2. [`Protocol::data`] with every byte not yet consumed (the model keeps the
//!    unconsumed tail and offers it again with what arrives next), [`Protocol::eof`]
//!    when the peer half-closes, [`Protocol::timeout`] when a deadline passes;
//! 3. [`Protocol::closed`] once, last, whatever the reason (a close asked for by the
//!    protocol, the peer, an error, an overflowing outbound queue, shutdown).
//!
//! Output queued for one connection leaves in the order it was queued, bytes and
//! files interleaved, whichever thread or call queued it.
//!
//! A protocol that must reach another server (the capstone's reverse proxy) asks
//! its event loop for an outbound connection with [`Outbox::connect`], which
//! names the new connection at once; the loop makes the socket, gets its state from
//! [`Protocol::outbound`] and reports the connect's end through
//! [`Protocol::connected`] (or [`Protocol::connect_failed`] when there is no
//! connection to speak of). From then on it is a connection like any other, under
//! the same contract. Which client it serves is the protocol's business: the loop
//! knows connections, not pairs. [`Outbox::pause`] lets one connection's progress
//! hold back reading from another, the backpressure a pair needs.

pub mod chat;
pub mod echo;
pub mod http;
pub mod http2;
pub mod proxy;
pub mod resp;
pub mod tls;

use bytes::Bytes;
use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A connection's identity for the life of the process: never reused, so an id held
/// after its client left can never reach a newer client in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Who receives a [`Action::Send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    One(ConnId),
    /// Every open connection.
    All,
    /// Every open connection but one (a chat line goes to everyone but its sender).
    AllBut(ConnId),
}

/// What a protocol asks its model to do.
#[derive(Debug)]
pub enum Action {
    Send {
        to: Target,
        data: Bytes,
    },
    /// Stream `len` bytes of `file` from `offset` (with `sendfile(2)` where the model can).
    SendFile {
        to: ConnId,
        /// Shared, so a protocol may keep the descriptor open across requests (an
        /// open-file cache); reads use explicit offsets, never the file position.
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
    /// Close once everything queued before it has been written. Nothing more is read.
    Close {
        id: ConnId,
    },
    /// Arm (`Some`) or disarm (`None`) the connection's deadline: if that long passes
    /// with no bytes written to the peer, [`Protocol::timeout`] is called. Reads do not
    /// push it back (a client trickling one byte a second still times out); writes do
    /// (a large download in progress is not idle).
    Deadline {
        id: ConnId,
        after: Option<Duration>,
    },
    /// Open a TCP connection to `to`, known from now on as `id` (see
    /// [`Outbox::connect`] and [`Protocol::outbound`]). Only the event loops make
    /// outbound connections; the threaded models ignore this and `Pause`.
    Connect {
        id: ConnId,
        to: SocketAddr,
    },
    /// Stop (`true`) or resume (`false`) reading from a connection. Input already
    /// held is offered again on resuming.
    Pause {
        id: ConnId,
        paused: bool,
    },
    /// Move the next `len` bytes `from` sends (`u64::MAX`: until its end of stream)
    /// to `to` unchanged, socket to pipe to socket with `splice(2)`, never through
    /// the protocol: input `from` holds unconsumed goes first, after whatever is
    /// already queued for `to`. Reading `from` is then bounded by the pipe alone
    /// ([`Action::Pause`] does not apply); the protocol queues nothing more for
    /// `to` until the transfer ends. It ends with [`Protocol::spliced`] once every
    /// byte is written (`Ok`), or at once with an error when it cannot start (the
    /// bytes are then offered to [`Protocol::data`] as usual); an end of stream
    /// first is [`Protocol::eof`] of `from` once the bytes before it are written; a
    /// read or write error closes the connection it happened on. Event loops only.
    Splice {
        from: ConnId,
        to: ConnId,
        len: u64,
    },
}

/// The list of actions one call produced, applied by the model in order.
#[derive(Debug, Default)]
pub struct Outbox {
    actions: Vec<Action>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn send(&mut self, to: ConnId, data: impl Into<Bytes>) {
        self.actions.push(Action::Send {
            to: Target::One(to),
            data: data.into(),
        });
    }

    pub fn send_to(&mut self, to: Target, data: impl Into<Bytes>) {
        self.actions.push(Action::Send {
            to,
            data: data.into(),
        });
    }

    pub fn send_file(&mut self, to: ConnId, file: impl Into<Arc<File>>, offset: u64, len: u64) {
        self.actions.push(Action::SendFile {
            to,
            file: file.into(),
            offset,
            len,
        });
    }

    pub fn close(&mut self, id: ConnId) {
        self.actions.push(Action::Close { id });
    }

    pub fn deadline(&mut self, id: ConnId, after: Option<Duration>) {
        self.actions.push(Action::Deadline { id, after });
    }

    /// Asks the model for an outbound TCP connection to `to` and returns the id it
    /// will have. The model makes the socket, starts the connect and calls
    /// [`Protocol::outbound`] for its state; from then on it is a connection like
    /// any other (bytes sent to it wait until the connect completes), with
    /// [`Protocol::connected`] once the connect finishes. A protocol pairs it with
    /// the client that needed it in its own state: the model knows nothing of pairs.
    pub fn connect(&mut self, to: SocketAddr) -> ConnId {
        let id = crate::io::next_conn_id();
        self.actions.push(Action::Connect { id, to });
        id
    }

    /// Queues an action as it is (a wrapping protocol passing on its inner one's).
    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// Stops or resumes reading from `id`: the backpressure of one connection on
    /// another (a proxy stops reading its upstream while the client is slow).
    pub fn pause(&mut self, id: ConnId, paused: bool) {
        self.actions.push(Action::Pause { id, paused });
    }

    /// Moves the next `len` bytes from `from` to `to` in the kernel (see [`Action::Splice`]).
    pub fn splice(&mut self, from: ConnId, to: ConnId, len: u64) {
        self.actions.push(Action::Splice { from, to, len });
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Takes the queued actions out in order, leaving the outbox empty (and its
    /// allocation in place for the next call).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }
}

/// A protocol: shared state in `self`, per-connection state in `Self::Conn`.
///
/// Threaded models share one protocol behind a `Mutex`; event loops own theirs; the
/// capstone builds one per worker thread. Keep `self` to what truly must be shared.
pub trait Protocol {
    type Conn;

    /// A client connected; queue any greeting into `out`.
    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> Self::Conn;

    /// [`Protocol::open`] for a connection accepted on the model's listener number
    /// `listener` (counted in the order the model was given its listeners). A
    /// protocol that serves its listeners differently (TLS on some, plaintext on
    /// others) overrides this; models call it in place of `open`.
    fn open_on(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        listener: usize,
        out: &mut Outbox,
    ) -> Self::Conn {
        let _ = listener;
        self.open(id, peer, out)
    }

    /// Bytes arrived. `input` holds everything received and not yet consumed; return
    /// how many bytes from its start are consumed. The model caps how much it keeps
    /// unconsumed (see `io::Limits`), so a protocol must consume or reject what it
    /// cannot use rather than wait for ever.
    fn data(&mut self, id: ConnId, conn: &mut Self::Conn, input: &[u8], out: &mut Outbox) -> usize;

    /// The peer shut down its sending side. Queued output still goes out. By default
    /// the connection closes once it is flushed.
    fn eof(&mut self, id: ConnId, _conn: &mut Self::Conn, out: &mut Outbox) {
        out.close(id);
    }

    /// The deadline set with [`Outbox::deadline`] passed. By default: close.
    fn timeout(&mut self, id: ConnId, _conn: &mut Self::Conn, out: &mut Outbox) {
        out.close(id);
    }

    /// Everything queued for the connection has been written to its socket. A
    /// protocol that produces a long output in bounded steps (a file encrypted a
    /// window at a time) queues the next step here, which is its backpressure: a
    /// client that reads slowly is given the next step later. The default does
    /// nothing.
    #[inline]
    fn drained(&mut self, _id: ConnId, _conn: &mut Self::Conn, _out: &mut Outbox) {}

    /// Whether [`Protocol::drained`] does anything: models skip the call (and, in
    /// the threaded ones, the lock it takes) for protocols that keep the default.
    const WANTS_DRAINED: bool = false;

    /// The server began a graceful stop (its event loop drains): a protocol that
    /// can tell its peer so (HTTP/2's GOAWAY) does it here. The connection is
    /// closed once [`Protocol::idle`] says so, or when the drain deadline passes.
    /// The default does nothing.
    fn draining(&mut self, _id: ConnId, _conn: &mut Self::Conn, _out: &mut Outbox) {}

    /// The connection is gone. The last call for `id`; actions for other connections
    /// (a "left the chat" line) are still applied.
    fn closed(&mut self, id: ConnId, conn: Self::Conn, out: &mut Outbox);

    /// The bytes a client refused for being over the model's client limit receives
    /// before it is closed (chat: `server full`, HTTP: a 503, RESP: `-ERR max clients`).
    fn refusal(&mut self) -> Bytes {
        Bytes::new()
    }

    /// Called by every model at least every 250 ms (threaded models: from one place,
    /// under the protocol's lock), for periodic work such as expiring keys. Actions
    /// queued here are applied like any other.
    fn tick(&mut self, _out: &mut Outbox) {}

    /// Called after each round of calls above: the event loops once per loop
    /// iteration, after serving every ready connection (and again if flushing fed a
    /// connection more input), before waiting for readiness again; the threaded
    /// models after each call, under the protocol's lock. Output queued by the calls
    /// before it may already be written (an event loop answers each connection as
    /// soon as it has read it), so a protocol that must not answer before this work
    /// holds its answers itself. Work that costs less done once for many connections
    /// goes here, as in Redis's `beforeSleep`: kvd writes every log record of the
    /// iteration with one `write(2)` (and one fsync under `always`), and only then
    /// releases the replies it held back. Actions queued here are applied like any
    /// other. The default does nothing and, the loops being generic over the
    /// protocol, costs nothing.
    #[inline]
    fn before_wait(&mut self, _out: &mut Outbox) {}

    /// The bytes a client waiting for a free worker (`--io pool`) receives once, when
    /// it is queued; `position` counts from 1. Empty (the default) sends nothing.
    fn queued(&mut self, _position: usize) -> Bytes {
        Bytes::new()
    }

    /// The state of the outbound connection `id` asked for with
    /// [`Outbox::connect`], once its socket exists and its connect is under way.
    /// `None` (the default, for protocols that never connect) refuses it: the
    /// socket is closed and [`Protocol::connect_failed`] is called.
    fn outbound(&mut self, id: ConnId, to: SocketAddr, out: &mut Outbox) -> Option<Self::Conn> {
        let _ = (id, to, out);
        None
    }

    /// The outbound connection `id` was never made (no socket, an immediate error,
    /// a model that cannot connect, or [`Protocol::outbound`] said no). Nothing else
    /// is called for `id`.
    fn connect_failed(&mut self, _id: ConnId, _error: std::io::Error, _out: &mut Outbox) {}

    /// The connect of outbound connection `id` finished: `Ok` once established,
    /// else why it failed, and [`Protocol::closed`] follows.
    fn connected(
        &mut self,
        _id: ConnId,
        _conn: &mut Self::Conn,
        _result: std::io::Result<()>,
        _out: &mut Outbox,
    ) {
    }

    /// The transfer [`Action::Splice`] started from `id` ended: `Ok` with all its
    /// bytes written to its destination, or why it could not start (nothing moved;
    /// the bytes come to [`Protocol::data`] instead).
    fn spliced(
        &mut self,
        _id: ConnId,
        _conn: &mut Self::Conn,
        _result: std::io::Result<()>,
        _out: &mut Outbox,
    ) {
    }

    /// Whether a connection with no unconsumed input and nothing queued to send can be
    /// closed now without losing work; a draining server closes such connections at
    /// once (an idle HTTP keep-alive) and waits for the others.
    fn idle(&self, _conn: &Self::Conn) -> bool {
        true
    }
}
