//! TLS as a protocol adapter: `Tls<P>` runs any [`Protocol`] inside TLS (rustls).
//!
//! The one idea: encryption is just another byte transformation, so it sits between
//! the model and the inner protocol without either knowing. Ciphertext from the model
//! goes into the connection's rustls session; the plaintext that comes out is fed to
//! the inner protocol; whatever the inner protocol sends is encrypted per recipient
//! and handed back to the model as ordinary bytes. Because a broadcast must be
//! encrypted once per recipient, the adapter keeps every session in `self` (not in the
//! per-connection state) and expands `Target::All` itself.
//!
//! The inner protocol only hears of a connection once its handshake has completed:
//! a client that never finishes the handshake (plaintext, garbage, a stall past the
//! handshake deadline) is logged and dropped without the inner protocol, or any other
//! client, ever seeing it.

//!
//! Files cannot go out with `sendfile(2)` through a cipher, and reading a whole file
//! into the session would hold all of it in memory. A file the inner protocol sends
//! is streamed instead: read with `pread` a chunk at a time into the session, at most
//! [`STREAM_WINDOW`] bytes ahead of what the socket has taken; the model's
//! [`Protocol::drained`] call (the connection's queue is empty) asks for the next
//! window. Whatever the inner protocol queues for that connection meanwhile waits
//! behind the file, in order, and its further input waits until the file is out.
//!
//! A server with plaintext and TLS listeners runs one adapter for both: connections
//! accepted on a listener marked plaintext ([`Tls::plaintext_listeners`]) go straight
//! to the inner protocol, with no session at all.

use super::{Action, ConnId, Outbox, Protocol, Target};
use bytes::{BufMut, Bytes, BytesMut};
use rustls::{ServerConfig, ServerConnection};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::BufRead;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Plaintext a connection may hold that the inner protocol has not consumed yet.
const MAX_PLAINTEXT: usize = 64 * 1024;
/// How far a streamed file runs ahead of the socket: encrypted bytes queued per
/// connection, which is also the memory a download costs besides the read buffer.
pub const STREAM_WINDOW: usize = 128 * 1024;
/// One `pread` of a streamed file: four full TLS records (16 KiB each), so a
/// window takes two reads and the session never holds more than four records.
const FILE_CHUNK: usize = 64 * 1024;
/// The plaintext of one full TLS record: what the inner protocol sends to one
/// connection in one call is gathered up to this much before it is encrypted, so a
/// response head and its small body (or an HTTP/2 batch of frames) make one record,
/// one encryption, instead of one per piece.
const RECORD: usize = 16 * 1024;
/// A window's ciphertext: the plaintext plus each record's header and tag (22
/// bytes per 16 KiB record under TLS 1.3, 29 under 1.2), rounded up.
const STREAM_BUF: usize = STREAM_WINDOW + STREAM_WINDOW / 256;

/// Who is at the other end, as the handshake established it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The common name of the client certificate, when mutual TLS verified one.
    pub common_name: Option<String>,
    /// The application protocol ALPN settled on, if the client offered any.
    pub alpn: Option<Vec<u8>>,
}

/// An inner protocol that wants to know who completed a handshake (chat names a
/// client after its certificate). Protocols that do not care keep the default.
pub trait TlsAware: Protocol {
    fn open_tls(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        identity: &PeerIdentity,
        out: &mut Outbox,
    ) -> Self::Conn {
        let _ = identity;
        self.open(id, peer, out)
    }
}

/// Output the inner protocol queued behind a file still being streamed.
enum Pending {
    Bytes(Bytes),
    File { file: Arc<File>, pos: u64, end: u64 },
    Close,
}

struct Session {
    tls: ServerConnection,
    peer: SocketAddr,
    /// The inner protocol has been told of this connection.
    open: bool,
    /// In order: a file being streamed first, then what was queued after it.
    pending: VecDeque<Pending>,
    /// The ciphertext of a streamed file, window after window in one allocation:
    /// each window is split off and queued, and once the socket has taken it (the
    /// model calls `drained`) the next window reclaims the same memory. Without
    /// it every window is a fresh set of buffers, and freeing them makes the
    /// allocator hand the pages back to the kernel (an `madvise` and 32 page
    /// faults per window). Empty (no allocation) when nothing streams.
    stream_buf: BytesMut,
}

/// Per-connection state: the inner protocol's (at once on a plaintext listener,
/// once the handshake is done on a TLS one), and the plaintext it has not
/// consumed yet.
pub struct TlsConn<C> {
    inner: Option<C>,
    plain: Vec<u8>,
    /// Accepted on a plaintext listener: no session, the inner protocol sees the wire.
    passthrough: bool,
    /// An outbound connection the inner protocol asked for (a reverse proxy's
    /// upstream): plaintext too, but what the inner protocol does on it may reach
    /// TLS clients, so its output goes through [`Tls::apply_inner`].
    outbound: bool,
}

pub struct Tls<P> {
    config: Arc<ServerConfig>,
    inner: P,
    sessions: HashMap<ConnId, Session>,
    /// Connections on plaintext listeners, for broadcasts.
    plain_conns: HashSet<ConnId>,
    /// Listener numbers (as the model counts them) that are plaintext.
    plaintext_listeners: Vec<usize>,
    handshake_timeout: Duration,
    /// Log each completed handshake at info (a chat server's few clients) or only
    /// at debug (a web server's many).
    log_handshakes: bool,
    /// What the inner protocol asked for, before encryption.
    scratch: Outbox,
    /// The read buffer of streamed files, shared by every connection of the loop.
    file_buf: Vec<u8>,
    /// Plaintext gathered for one connection within one [`Tls::apply_inner`], not
    /// yet encrypted (at most [`RECORD`] bytes).
    staged: Vec<u8>,
    staged_for: Option<ConnId>,
}

impl<P: TlsAware> Tls<P> {
    pub fn new(config: Arc<ServerConfig>, inner: P, handshake_timeout: Duration) -> Self {
        Self {
            config,
            inner,
            sessions: HashMap::new(),
            plain_conns: HashSet::new(),
            plaintext_listeners: Vec::new(),
            handshake_timeout,
            log_handshakes: true,
            scratch: Outbox::new(),
            file_buf: Vec::new(),
            staged: Vec::new(),
            staged_for: None,
        }
    }

    /// Connections accepted on these listeners (numbered as the model numbers
    /// them) are plaintext: handed to the inner protocol as they are.
    pub fn plaintext_listeners(mut self, listeners: Vec<usize>) -> Self {
        self.plaintext_listeners = listeners;
        self
    }

    /// Whether each completed handshake is logged at info (the default) or debug.
    pub fn log_handshakes(mut self, yes: bool) -> Self {
        self.log_handshakes = yes;
        self
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Moves whatever rustls has to say on `id` (handshake records, alerts,
    /// encrypted data) into `out`.
    fn flush_tls(&mut self, id: ConnId, out: &mut Outbox) {
        if let Some(s) = self.sessions.get_mut(&id) {
            flush_session(id, s, out);
        }
    }

    /// Encrypts and applies what the inner protocol queued in `scratch`.
    fn apply_inner(&mut self, out: &mut Outbox) {
        let mut actions = std::mem::take(&mut self.scratch);
        for action in actions.drain() {
            // Bytes and small files for one session gather into one record; anything
            // else first lets out what was gathered, so the order holds.
            let action = match action {
                Action::Send {
                    to: Target::One(id),
                    data,
                } if self.can_stage(id, data.len()) => {
                    self.stage(id, out);
                    self.staged.extend_from_slice(&data);
                    continue;
                }
                Action::SendFile {
                    to,
                    file,
                    offset,
                    len,
                } if len > 0 && self.can_stage(to, len.min(RECORD as u64 + 1) as usize) => {
                    self.stage(to, out);
                    self.stage_file(to, &file, offset, len as usize, out);
                    continue;
                }
                other => other,
            };
            self.flush_staged(out);
            match action {
                Action::Send { to, data } => self.encrypt_to(to, data, out),
                Action::SendFile {
                    to,
                    file,
                    offset,
                    len,
                } => {
                    if let Some(s) = self.sessions.get_mut(&to) {
                        let end = offset.saturating_add(len);
                        s.pending.push_back(Pending::File {
                            file,
                            pos: offset,
                            end,
                        });
                        self.pump(to, out);
                    } else if self.plain_conns.contains(&to) {
                        out.send_file(to, file, offset, len);
                    }
                }
                Action::Close { id } => match self.sessions.get_mut(&id) {
                    Some(s) if !s.pending.is_empty() => s.pending.push_back(Pending::Close),
                    Some(s) => {
                        s.tls.send_close_notify();
                        flush_session(id, s, out);
                        out.close(id);
                    }
                    None => out.close(id),
                },
                Action::Deadline { id, after } => out.deadline(id, after),
                Action::Connect { id, to } => {
                    // Plaintext, and known as such now: what the inner protocol
                    // sends it next (a request head) passes in this very call.
                    self.plain_conns.insert(id);
                    out.push(Action::Connect { id, to });
                }
                // A splice's ends are plaintext connections (the proxy splices
                // only to clients without a session).
                a @ (Action::Pause { .. } | Action::Splice { .. }) => out.push(a),
            }
        }
        self.flush_staged(out);
        // Give the allocation back for the next call.
        self.scratch = actions;
    }

    /// Whether `len` more bytes for `id` can join the record being gathered: `id` is
    /// an open session with nothing streaming, and the record stays within
    /// [`RECORD`] (counting what is gathered for `id` already).
    fn can_stage(&self, id: ConnId, len: usize) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        let held = if self.staged_for == Some(id) {
            self.staged.len()
        } else {
            0
        };
        s.open && s.pending.is_empty() && held + len <= RECORD
    }

    /// Makes the record being gathered one for `id` (letting out another's first).
    fn stage(&mut self, id: ConnId, out: &mut Outbox) {
        if self.staged_for != Some(id) {
            self.flush_staged(out);
            self.staged_for = Some(id);
        }
    }

    /// Reads `len` bytes of `file` at `offset` into the record being gathered; when
    /// the file cannot give them all, the connection is closed instead.
    fn stage_file(&mut self, id: ConnId, file: &File, offset: u64, len: usize, out: &mut Outbox) {
        let start = self.staged.len();
        self.staged.resize(start + len, 0);
        let mut done = 0;
        while done < len {
            // Positional reads: the descriptor may be shared (an open-file cache),
            // its offset is not ours.
            match std::os::unix::fs::FileExt::read_at(
                file,
                &mut self.staged[start + done..start + len],
                offset + done as u64,
            ) {
                Ok(0) => {
                    self.staged.truncate(start);
                    self.flush_staged(out);
                    if let Some(s) = self.sessions.get_mut(&id) {
                        // Shorter than the response promised: the client must not
                        // take what it got for the whole file.
                        fail(id, s, out, "tls: file shrank while being sent, closing");
                    }
                    return;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(conn = %id, error = %e, "pread of a file to send");
                    self.staged.truncate(start);
                    self.flush_staged(out);
                    if let Some(s) = self.sessions.get_mut(&id) {
                        fail(id, s, out, "tls: file read failed, closing");
                    }
                    return;
                }
            }
        }
    }

    /// Encrypts what was gathered, as one record, and queues it.
    fn flush_staged(&mut self, out: &mut Outbox) {
        let Some(id) = self.staged_for.take() else {
            return;
        };
        if self.staged.is_empty() {
            return;
        }
        if let Some(s) = self.sessions.get_mut(&id) {
            if let Err(e) = s.tls.writer().write_all(&self.staged) {
                tracing::warn!(conn = %id, error = %e, "tls: cannot encrypt, closing");
                out.close(id);
            } else {
                flush_session(id, s, out);
            }
        }
        self.staged.clear();
        // A large gathering does not keep its memory: the next one starts small.
        if self.staged.capacity() > 2 * RECORD {
            self.staged = Vec::new();
        }
    }

    fn encrypt_to(&mut self, to: Target, data: Bytes, out: &mut Outbox) {
        let send_one = |id: ConnId, s: &mut Session, out: &mut Outbox| {
            if !s.open {
                return;
            }
            if !s.pending.is_empty() {
                // Behind a file still streaming: records must leave in order.
                s.pending.push_back(Pending::Bytes(data.clone()));
                return;
            }
            if let Err(e) = s.tls.writer().write_all(&data) {
                tracing::warn!(conn = %id, error = %e, "tls: cannot encrypt, closing");
                out.close(id);
                return;
            }
            flush_session(id, s, out);
        };
        match to {
            Target::One(id) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    send_one(id, s, out);
                } else if self.plain_conns.contains(&id) {
                    out.send(id, data);
                }
            }
            Target::All | Target::AllBut(_) => {
                let skip = match to {
                    Target::AllBut(x) => Some(x),
                    _ => None,
                };
                for (id, s) in self.sessions.iter_mut() {
                    if Some(*id) != skip {
                        send_one(*id, s, out);
                    }
                }
                for id in &self.plain_conns {
                    if Some(*id) != skip {
                        out.send(*id, data.clone());
                    }
                }
            }
        }
    }

    /// Encrypts up to [`STREAM_WINDOW`] bytes of what waits behind a streamed file
    /// (the file itself first). Called when the file is queued and each time the
    /// model reports the connection's queue empty.
    fn pump(&mut self, id: ConnId, out: &mut Outbox) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if self.file_buf.len() < FILE_CHUNK {
            self.file_buf.resize(FILE_CHUNK, 0);
        }
        // The windows before this one are out (or this is the first): unique
        // again, the buffer is reused in place.
        s.stream_buf.reserve(STREAM_BUF);
        let mut budget = STREAM_WINDOW;
        while budget > 0 {
            let Some(front) = s.pending.front_mut() else {
                // Streaming is over: the last windows keep the memory alive only
                // until the socket has taken them.
                s.stream_buf = BytesMut::new();
                return;
            };
            match front {
                Pending::Bytes(b) => {
                    if s.tls.writer().write_all(b).is_err() {
                        return fail(id, s, out, "tls: cannot encrypt, closing");
                    }
                    budget = budget.saturating_sub(b.len());
                    s.pending.pop_front();
                }
                Pending::File { file, pos, end } => {
                    let want = (*end - *pos).min(FILE_CHUNK as u64) as usize;
                    if want == 0 {
                        s.pending.pop_front();
                        continue;
                    }
                    // Positional reads: the descriptor may be shared (an open-file
                    // cache), its offset is not ours.
                    let n = match std::os::unix::fs::FileExt::read_at(
                        &**file,
                        &mut self.file_buf[..want],
                        *pos,
                    ) {
                        Ok(0) => {
                            // Shorter than the response promised: the client must
                            // not take what it got for the whole file.
                            return fail(id, s, out, "tls: file shrank while being sent, closing");
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::warn!(conn = %id, error = %e, "pread of a file to send");
                            return fail(id, s, out, "tls: file read failed, closing");
                        }
                    };
                    if s.tls.writer().write_all(&self.file_buf[..n]).is_err() {
                        return fail(id, s, out, "tls: cannot encrypt, closing");
                    }
                    *pos += n as u64;
                    budget = budget.saturating_sub(n);
                    if *pos >= *end {
                        s.pending.pop_front();
                    }
                }
                Pending::Close => {
                    s.pending.clear();
                    s.stream_buf = BytesMut::new();
                    s.tls.send_close_notify();
                    flush_session(id, s, out);
                    out.close(id);
                    return;
                }
            }
            flush_stream(id, s, out);
        }
    }

    /// The handshake finished: tell the inner protocol, with the identity it proved.
    fn open_inner(&mut self, id: ConnId, conn: &mut TlsConn<P::Conn>, out: &mut Outbox) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.open = true;
        let peer = s.peer;
        let identity = PeerIdentity {
            common_name: s
                .tls
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| crate::tls::common_name(cert.as_ref())),
            alpn: s.tls.alpn_protocol().map(<[u8]>::to_vec),
        };
        if self.log_handshakes {
            tracing::info!(conn = %id, %peer, cn = ?identity.common_name, "tls: handshake complete");
        } else {
            tracing::debug!(conn = %id, %peer, version = ?s.tls.protocol_version(), "tls: handshake complete");
        }
        out.deadline(id, None);
        conn.inner = Some(self.inner.open_tls(id, peer, &identity, &mut self.scratch));
        self.apply_inner(out);
    }

    /// Feeds the plaintext held for `id` to the inner protocol, unless a streamed
    /// file is still going out (its input waits: a pipelined request's answer must
    /// queue behind the file anyway, and so memory stays bounded).
    fn feed_inner(&mut self, id: ConnId, conn: &mut TlsConn<P::Conn>, out: &mut Outbox) {
        let streaming = self
            .sessions
            .get(&id)
            .is_some_and(|s| !s.pending.is_empty());
        if streaming || conn.plain.is_empty() {
            return;
        }
        // As a model does: offer the input until the protocol stops consuming (one
        // that answers a request per call leaves the next one for another call).
        while let Some(inner) = conn.inner.as_mut() {
            let used = self.inner.data(id, inner, &conn.plain, &mut self.scratch);
            conn.plain.drain(..used.min(conn.plain.len()));
            self.apply_inner(out);
            let streaming = self
                .sessions
                .get(&id)
                .is_some_and(|s| !s.pending.is_empty());
            if used == 0 || conn.plain.is_empty() || streaming || !self.sessions.contains_key(&id) {
                break;
            }
        }
    }

    /// Runs an inner protocol call for an outbound connection, whose output may be
    /// for TLS clients (a response on its way to one).
    fn outbound_call(&mut self, out: &mut Outbox, call: impl FnOnce(&mut P, &mut Outbox)) {
        call(&mut self.inner, &mut self.scratch);
        self.apply_inner(out);
    }
}

/// Drops a streaming connection: what is pending can no longer be sent whole.
fn fail(id: ConnId, s: &mut Session, out: &mut Outbox, why: &'static str) {
    tracing::warn!(conn = %id, peer = %s.peer, "{why}");
    s.pending.clear();
    out.close(id);
}

/// [`flush_session`] for a streamed file: the records go into the session's
/// reused window buffer.
fn flush_stream(id: ConnId, s: &mut Session, out: &mut Outbox) {
    let mut w = (&mut s.stream_buf).writer();
    while s.tls.wants_write() {
        match s.tls.write_tls(&mut w) {
            Ok(0) => break,
            Ok(_) => {}
            // Writing into memory cannot fail; stop rather than spin if it ever does.
            Err(_) => break,
        }
    }
    let data = s.stream_buf.split().freeze();
    if !data.is_empty() {
        out.send(id, data);
    }
}

fn flush_session(id: ConnId, s: &mut Session, out: &mut Outbox) {
    if !s.tls.wants_write() {
        return;
    }
    let mut buf = Vec::new();
    while s.tls.wants_write() {
        match s.tls.write_tls(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            // Writing into a Vec cannot fail; stop rather than spin if it ever does.
            Err(_) => break,
        }
    }
    if !buf.is_empty() {
        out.send(id, buf);
    }
}

impl<P: TlsAware> Protocol for Tls<P> {
    type Conn = TlsConn<P::Conn>;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> Self::Conn {
        match ServerConnection::new(Arc::clone(&self.config)) {
            Ok(mut tls) => {
                // Every write is flushed into the model's queue right after, and the
                // file streaming bounds itself, so rustls need not bound it again.
                tls.set_buffer_limit(None);
                self.sessions.insert(
                    id,
                    Session {
                        tls,
                        peer,
                        open: false,
                        pending: VecDeque::new(),
                        stream_buf: BytesMut::new(),
                    },
                );
                out.deadline(id, Some(self.handshake_timeout));
            }
            Err(e) => {
                tracing::error!(conn = %id, %peer, error = %e, "tls: cannot start a session");
                out.close(id);
            }
        }
        TlsConn {
            inner: None,
            plain: Vec::new(),
            passthrough: false,
            outbound: false,
        }
    }

    fn open_on(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        listener: usize,
        out: &mut Outbox,
    ) -> Self::Conn {
        if !self.plaintext_listeners.contains(&listener) {
            return self.open(id, peer, out);
        }
        self.plain_conns.insert(id);
        TlsConn {
            inner: Some(self.inner.open_on(id, peer, listener, out)),
            plain: Vec::new(),
            passthrough: true,
            outbound: false,
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut Self::Conn, input: &[u8], out: &mut Outbox) -> usize {
        if conn.outbound {
            let Some(inner) = conn.inner.as_mut() else {
                return input.len();
            };
            let used = self.inner.data(id, inner, input, &mut self.scratch);
            self.apply_inner(out);
            return used;
        }
        if conn.passthrough {
            return match conn.inner.as_mut() {
                Some(inner) => self.inner.data(id, inner, input, out),
                None => input.len(),
            };
        }
        let mut rest = input;
        loop {
            let Some(s) = self.sessions.get_mut(&id) else {
                return input.len();
            };
            if conn.plain.len() >= MAX_PLAINTEXT {
                // Held while a file streams out: take no more until it is fed.
                break;
            }
            // rustls takes at most a record buffer at a time; loop until all is in.
            let took = match s.tls.read_tls(&mut rest) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(conn = %id, peer = %s.peer, error = %e, "tls: read_tls failed, dropping client");
                    out.close(id);
                    return input.len();
                }
            };
            if let Err(e) = s.tls.process_new_packets() {
                let phase = if s.open { "session" } else { "handshake" };
                tracing::warn!(conn = %id, peer = %s.peer, phase, error = %e, "tls: bad records, dropping client");
                // Send the alert rustls queued, then close.
                flush_session(id, s, out);
                out.close(id);
                return input.len();
            }
            let mut peer_closed = false;
            loop {
                // Straight from rustls's buffers into `plain`: one copy.
                let mut reader = s.tls.reader();
                match reader.fill_buf() {
                    // Only a close_notify reads as empty: the peer ended the session cleanly.
                    Ok([]) => {
                        peer_closed = true;
                        break;
                    }
                    Ok(chunk) => {
                        let n = chunk.len();
                        conn.plain.extend_from_slice(chunk);
                        reader.consume(n);
                    }
                    Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!(conn = %id, error = %e, "tls: reading plaintext failed");
                        out.close(id);
                        return input.len();
                    }
                }
            }
            let handshaking = s.tls.is_handshaking();
            let open = s.open;
            self.flush_tls(id, out);
            if !open && !handshaking {
                self.open_inner(id, conn, out);
            }
            self.feed_inner(id, conn, out);
            if conn.plain.len() > MAX_PLAINTEXT {
                tracing::warn!(conn = %id, "tls: client sent more than the protocol consumed, closing");
                out.close(id);
                return input.len();
            }
            if peer_closed {
                self.eof(id, conn, out);
                return input.len();
            }
            if took == 0 || rest.is_empty() {
                break;
            }
        }
        input.len() - rest.len()
    }

    /// Streamed files go out a window per call.
    const WANTS_DRAINED: bool = true;

    fn drained(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        if conn.outbound {
            if let Some(inner) = conn.inner.as_mut() {
                self.outbound_call(out, |p, o| p.drained(id, inner, o));
            }
            return;
        }
        if conn.passthrough {
            if let Some(inner) = conn.inner.as_mut() {
                self.inner.drained(id, inner, out);
            }
            return;
        }
        let streaming = self
            .sessions
            .get(&id)
            .is_some_and(|s| !s.pending.is_empty());
        if !streaming {
            // An inner protocol that paces its own output (HTTP/2 DATA) goes on.
            if P::WANTS_DRAINED {
                if let Some(inner) = conn.inner.as_mut() {
                    self.inner.drained(id, inner, &mut self.scratch);
                    self.apply_inner(out);
                }
            }
            // Plaintext held while the inner protocol paused the connection (a
            // request pipelined behind a proxied one): the model holds no input to
            // offer again on resuming, so it is offered here, once the answer is out.
            self.feed_inner(id, conn, out);
            return;
        }
        self.pump(id, out);
        // The file is out: the input that waited behind it may hold requests.
        self.feed_inner(id, conn, out);
    }

    fn draining(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        let Some(inner) = conn.inner.as_mut() else {
            return;
        };
        if conn.passthrough {
            return self.inner.draining(id, inner, out);
        }
        self.inner.draining(id, inner, &mut self.scratch);
        self.apply_inner(out);
    }

    fn eof(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        if conn.outbound {
            if let Some(inner) = conn.inner.as_mut() {
                self.outbound_call(out, |p, o| p.eof(id, inner, o));
            }
            return;
        }
        if conn.passthrough {
            if let Some(inner) = conn.inner.as_mut() {
                self.inner.eof(id, inner, out);
            }
            return;
        }
        match conn.inner.as_mut() {
            Some(inner) => {
                self.inner.eof(id, inner, &mut self.scratch);
                self.apply_inner(out);
            }
            None => out.close(id),
        }
    }

    fn timeout(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        if conn.outbound {
            if let Some(inner) = conn.inner.as_mut() {
                self.outbound_call(out, |p, o| p.timeout(id, inner, o));
            }
            return;
        }
        if conn.passthrough {
            if let Some(inner) = conn.inner.as_mut() {
                self.inner.timeout(id, inner, out);
            }
            return;
        }
        match conn.inner.as_mut() {
            Some(inner) => {
                self.inner.timeout(id, inner, &mut self.scratch);
                self.apply_inner(out);
            }
            None => {
                let peer = self.sessions.get(&id).map(|s| s.peer);
                tracing::warn!(conn = %id, peer = ?peer, "tls: handshake timed out, dropping client");
                out.close(id);
            }
        }
    }

    fn closed(&mut self, id: ConnId, conn: Self::Conn, out: &mut Outbox) {
        if conn.outbound {
            self.plain_conns.remove(&id);
            if let Some(inner) = conn.inner {
                self.outbound_call(out, |p, o| p.closed(id, inner, o));
            }
            return;
        }
        if conn.passthrough {
            self.plain_conns.remove(&id);
            if let Some(inner) = conn.inner {
                self.inner.closed(id, inner, out);
            }
            return;
        }
        self.sessions.remove(&id);
        if let Some(inner) = conn.inner {
            self.inner.closed(id, inner, &mut self.scratch);
            self.apply_inner(out);
        }
    }

    fn tick(&mut self, out: &mut Outbox) {
        self.inner.tick(&mut self.scratch);
        self.apply_inner(out);
    }

    /// Outbound connections (a reverse proxy's upstreams) are plaintext: the inner
    /// protocol's own, with no session.
    fn outbound(&mut self, id: ConnId, to: SocketAddr, out: &mut Outbox) -> Option<Self::Conn> {
        let inner = self.inner.outbound(id, to, &mut self.scratch);
        self.apply_inner(out);
        let Some(inner) = inner else {
            self.plain_conns.remove(&id);
            return None;
        };
        // Asked for from a plaintext client the Connect did not pass through here.
        self.plain_conns.insert(id);
        Some(TlsConn {
            inner: Some(inner),
            plain: Vec::new(),
            passthrough: true,
            outbound: true,
        })
    }

    fn connect_failed(&mut self, id: ConnId, error: std::io::Error, out: &mut Outbox) {
        self.plain_conns.remove(&id);
        self.outbound_call(out, |p, o| p.connect_failed(id, error, o));
    }

    fn connected(
        &mut self,
        id: ConnId,
        conn: &mut Self::Conn,
        result: std::io::Result<()>,
        out: &mut Outbox,
    ) {
        if let Some(inner) = conn.inner.as_mut() {
            self.outbound_call(out, |p, o| p.connected(id, inner, result, o));
        }
    }

    fn spliced(
        &mut self,
        id: ConnId,
        conn: &mut Self::Conn,
        result: std::io::Result<()>,
        out: &mut Outbox,
    ) {
        if let Some(inner) = conn.inner.as_mut() {
            self.outbound_call(out, |p, o| p.spliced(id, inner, result, o));
        }
    }

    fn before_wait(&mut self, out: &mut Outbox) {
        self.inner.before_wait(&mut self.scratch);
        if !self.scratch.is_empty() {
            self.apply_inner(out);
        }
    }

    /// A refused client gets no bytes: plaintext would be garbage to a TLS client,
    /// and a handshake just to say "full" costs more than it tells.
    fn refusal(&mut self) -> Bytes {
        Bytes::new()
    }

    fn idle(&self, conn: &Self::Conn) -> bool {
        match &conn.inner {
            // A handshake under way is work the client started.
            None => false,
            Some(inner) => conn.plain.is_empty() && self.inner.idle(inner),
        }
    }
}

impl TlsAware for super::chat::Chat {
    /// A client that proved a certificate is named after its common name.
    fn open_tls(
        &mut self,
        id: ConnId,
        _peer: SocketAddr,
        identity: &PeerIdentity,
        out: &mut Outbox,
    ) -> Self::Conn {
        self.join(id, identity.common_name.as_deref(), out)
    }
}

impl TlsAware for super::echo::Echo {}
