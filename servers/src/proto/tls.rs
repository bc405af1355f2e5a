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

use super::{Action, ConnId, Outbox, Protocol, Target};
use bytes::Bytes;
use rustls::{ServerConfig, ServerConnection};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Plaintext a connection may hold that the inner protocol has not consumed yet.
const MAX_PLAINTEXT: usize = 64 * 1024;

/// Who is at the other end, as the handshake established it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The common name of the client certificate, when mutual TLS verified one.
    pub common_name: Option<String>,
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

struct Session {
    tls: ServerConnection,
    peer: SocketAddr,
    /// The inner protocol has been told of this connection.
    open: bool,
}

/// Per-connection state: the inner protocol's, once the handshake is done, and
/// the plaintext it has not consumed yet.
pub struct TlsConn<C> {
    inner: Option<C>,
    plain: Vec<u8>,
}

pub struct Tls<P> {
    config: Arc<ServerConfig>,
    inner: P,
    sessions: HashMap<ConnId, Session>,
    handshake_timeout: Duration,
    /// What the inner protocol asked for, before encryption.
    scratch: Outbox,
}

impl<P: TlsAware> Tls<P> {
    pub fn new(config: Arc<ServerConfig>, inner: P, handshake_timeout: Duration) -> Self {
        Self {
            config,
            inner,
            sessions: HashMap::new(),
            handshake_timeout,
            scratch: Outbox::new(),
        }
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
            match action {
                Action::Send { to, data } => self.encrypt_to(to, &data, out),
                Action::SendFile {
                    to,
                    file,
                    offset,
                    len,
                } => {
                    // A file must pass through the cipher, so no sendfile here: read it
                    // in bounded chunks. Chat never sends files; this keeps the adapter
                    // honest for protocols that do.
                    self.encrypt_file(to, file, offset, len, out);
                }
                Action::Close { id } => {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.tls.send_close_notify();
                        flush_session(id, s, out);
                    }
                    out.close(id);
                }
                Action::Deadline { id, after } => out.deadline(id, after),
            }
        }
        // Give the allocation back for the next call.
        self.scratch = actions;
    }

    fn encrypt_to(&mut self, to: Target, data: &Bytes, out: &mut Outbox) {
        let mut send_one = |id: ConnId, s: &mut Session| {
            if !s.open {
                return;
            }
            if let Err(e) = s.tls.writer().write_all(data) {
                tracing::warn!(conn = %id, error = %e, "tls: cannot encrypt, closing");
                out.close(id);
                return;
            }
            flush_session(id, s, out);
        };
        match to {
            Target::One(id) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    send_one(id, s);
                }
            }
            Target::All => {
                for (id, s) in self.sessions.iter_mut() {
                    send_one(*id, s);
                }
            }
            Target::AllBut(skip) => {
                for (id, s) in self.sessions.iter_mut().filter(|(id, _)| **id != skip) {
                    send_one(*id, s);
                }
            }
        }
    }

    fn encrypt_file(
        &mut self,
        to: ConnId,
        file: std::sync::Arc<std::fs::File>,
        offset: u64,
        len: u64,
        out: &mut Outbox,
    ) {
        use std::os::unix::fs::FileExt;
        let Some(s) = self.sessions.get_mut(&to) else {
            return;
        };
        let mut buf = vec![0u8; 16 * 1024];
        let mut pos = offset;
        let end = offset.saturating_add(len);
        while pos < end {
            let want = buf
                .len()
                .min(usize::try_from(end - pos).unwrap_or(usize::MAX));
            // Positional reads: the descriptor may be shared, its offset is not ours.
            match file.read_at(&mut buf[..want], pos) {
                Ok(0) => break,
                Ok(n) => {
                    if s.tls.writer().write_all(&buf[..n]).is_err() {
                        break;
                    }
                    flush_session(to, s, out);
                    pos += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(conn = %to, error = %e, "tls: read of a file to send failed, closing");
                    out.close(to);
                    return;
                }
            }
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
        };
        tracing::info!(conn = %id, %peer, cn = ?identity.common_name, "tls: handshake complete");
        out.deadline(id, None);
        conn.inner = Some(self.inner.open_tls(id, peer, &identity, &mut self.scratch));
        self.apply_inner(out);
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
            Ok(tls) => {
                self.sessions.insert(
                    id,
                    Session {
                        tls,
                        peer,
                        open: false,
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
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut Self::Conn, input: &[u8], out: &mut Outbox) -> usize {
        let mut rest = input;
        loop {
            let Some(s) = self.sessions.get_mut(&id) else {
                return input.len();
            };
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
            let mut chunk = [0u8; 16 * 1024];
            let mut peer_closed = false;
            loop {
                match s.tls.reader().read(&mut chunk) {
                    // Only a close_notify reads as 0: the peer ended the session cleanly.
                    Ok(0) => {
                        peer_closed = true;
                        break;
                    }
                    Ok(n) => conn.plain.extend_from_slice(&chunk[..n]),
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
            if let Some(inner) = conn.inner.as_mut() {
                if !conn.plain.is_empty() {
                    let used = self.inner.data(id, inner, &conn.plain, &mut self.scratch);
                    conn.plain.drain(..used.min(conn.plain.len()));
                    self.apply_inner(out);
                }
            }
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

    fn eof(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
        match conn.inner.as_mut() {
            Some(inner) => {
                self.inner.eof(id, inner, &mut self.scratch);
                self.apply_inner(out);
            }
            None => out.close(id),
        }
    }

    fn timeout(&mut self, id: ConnId, conn: &mut Self::Conn, out: &mut Outbox) {
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
