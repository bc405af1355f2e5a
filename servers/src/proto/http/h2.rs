//! HTTP/2 connections of the [`Http`] protocol: the frames are `proto::http2`'s,
//! the answers are the same core's as HTTP/1's.
//!
//! The one idea: an HTTP/2 request is turned into the request head HTTP/1 would
//! have parsed (its pseudo-header fields become the request line and `Host`, its
//! fields the header lines), built straight from the fields with the same checks
//! and the same field-by-field reading as HTTP/1's parser (no HTTP/1 text is
//! written or parsed), and answered by [`Http::serve`], the one place that turns a request
//! into a status, headers and a body. What `serve` queues (a head, then bytes
//! and file ranges) becomes the stream's header fields and body segments, the
//! hop-by-hop fields dropped. So sites, conditionals, ranges, encodings, error
//! pages, counters and the access log (whose line says `HTTP/2.0`) are shared,
//! and a fix to any of them serves both protocols. Files are never sent with
//! `sendfile` here: the connection reads them a DATA frame at a time.
//!
//! The common answer, a cached small file, is one buffer the core remakes once a
//! second (head and body together) and hands out again and again; its header
//! block, encoded with the static table alone and so the same on every
//! connection, is kept beside it in a [`Memo`], so such a request costs no head
//! parsing and no HPACK encoding.

use super::request::{Framing, MAX_HEADERS, MAX_URI};
use super::{Head, Http, HttpConn, Req, Status};
use crate::proto::http2::{hpack, Connection, ErrorCode, Incoming, Request, Segment};
use crate::proto::{Action, ConnId, Outbox};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// Bytes of DATA written per call before the socket must take them (the same
/// bound as a file streamed over TLS).
const PUMP_BUDGET: usize = crate::proto::tls::STREAM_WINDOW;

/// Fields of an HTTP/1 answer that mean nothing in HTTP/2 (RFC 9113 §8.2.2).
const HOP_BY_HOP: &[&[u8]] = &[b"connection", b"keep-alive", b"transfer-encoding"];

pub(super) struct H2 {
    conn: Connection,
    /// Bytes queued since the model last reported the socket drained: DATA
    /// is written only up to [`PUMP_BUDGET`] ahead of the socket, however many
    /// frames (a WINDOW_UPDATE each) the client sends meanwhile.
    unsent: usize,
    /// The requests of one input, in a buffer kept for the next.
    batch: Vec<Incoming>,
}

impl std::fmt::Debug for H2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2")
            .field("idle", &self.conn.idle())
            .finish()
    }
}

impl H2 {
    /// The socket took everything queued; whether some response still has
    /// bytes to send.
    pub(super) fn drained(&mut self) -> bool {
        self.unsent = 0;
        self.conn.has_pending()
    }
}

impl Http {
    /// Makes `conn` an HTTP/2 connection and queues the server preface.
    pub(super) fn h2_start(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        let mut h = Box::new(H2 {
            conn: Connection::new(),
            unsent: 0,
            batch: Vec::new(),
        });
        out.send(id, h.conn.take_output());
        out.deadline(id, Some(self.cfg.idle_timeout));
        conn.h2 = Some(h);
    }

    pub(super) fn h2_data(
        &mut self,
        id: ConnId,
        conn: &mut HttpConn,
        input: &[u8],
        out: &mut Outbox,
    ) -> usize {
        let (peer, tls) = (conn.peer, conn.tls);
        let Some(h) = conn.h2.as_mut() else {
            return input.len();
        };
        let used = h.conn.receive(input);
        let mut batch = std::mem::take(&mut h.batch);
        h.conn.take_incoming_into(&mut batch);
        for incoming in batch.drain(..) {
            self.h2_answer(peer, tls, &mut h.conn, incoming);
        }
        h.batch = batch;
        if h.conn
            .stalled_for()
            .is_some_and(|t| t >= self.cfg.idle_timeout)
        {
            // A client that keeps its window shut while still talking.
            tracing::debug!(conn = %id, "h2: window closed too long, closing");
            h.conn.error(ErrorCode::NoError);
        }
        self.h2_flush(id, conn, out);
        used
    }

    /// Writes what the windows allow and sends it; closes a finished connection.
    pub(super) fn h2_flush(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        let Some(h) = conn.h2.as_mut() else {
            return;
        };
        h.conn
            .pump(&mut self.h2_buf, PUMP_BUDGET.saturating_sub(h.unsent));
        let bytes = h.conn.take_output();
        if !bytes.is_empty() {
            h.unsent += bytes.len();
            out.send(id, bytes);
        }
        if h.conn.finished() {
            out.close(id);
        }
        // Writes push it back (a download is not idle); a client that reads
        // nothing or keeps its window shut is let go after it.
        out.deadline(id, Some(self.cfg.idle_timeout));
    }

    pub(super) fn h2_timeout(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = conn.h2.as_mut() {
            h.conn.go_away();
            out.send(id, h.conn.take_output());
        }
        out.close(id);
    }

    pub(super) fn h2_draining(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        if let Some(h) = conn.h2.as_mut() {
            h.conn.go_away();
        }
        self.h2_flush(id, conn, out);
    }

    pub(super) fn h2_idle(conn: &HttpConn) -> Option<bool> {
        conn.h2.as_ref().map(|h| h.conn.idle())
    }

    /// Answers one request through the core and queues the answer on its stream.
    fn h2_answer(&mut self, peer: SocketAddr, tls: bool, conn: &mut Connection, inc: Incoming) {
        let mut scratch = std::mem::take(&mut self.h2_scratch);
        let stream = match inc {
            Incoming::TooLarge(stream) => {
                self.h2_reject(peer, tls, b"", Status::HeaderFieldsTooLarge, &mut scratch);
                stream
            }
            Incoming::Request(r) => {
                self.h2_serve(peer, tls, &r, &mut scratch);
                let stream = r.stream;
                conn.recycle(r);
                stream
            }
        };
        {
            let mut actions = scratch.drain();
            match (actions.next(), actions.next()) {
                // One buffer, head and body: perhaps one the core keeps and hands out again.
                (Some(Action::Send { data: reply, .. }), None) if !reply.is_empty() => {
                    if let Some(e) = self.h2_memo.find(&reply) {
                        let mut body = conn.body();
                        body.push_back(Segment::Bytes(reply.slice(e.body_at..)));
                        conn.respond_static(stream, &e.block, body);
                    } else {
                        let (fields, body_at) = head_fields(&reply);
                        let pairs = || fields.iter().map(|(n, v)| (&n[..], &v[..]));
                        let body = VecDeque::from([Segment::Bytes(reply.slice(body_at..))]);
                        let mut block = Vec::new();
                        if self.h2_memo.admit(&reply) && hpack::encode_static(pairs(), &mut block) {
                            let block = Bytes::from(block);
                            conn.respond_static(stream, &block, body);
                            self.h2_memo.keep(reply, block, body_at);
                        } else {
                            conn.respond(stream, pairs(), body);
                        }
                    }
                }
                (first, second) => {
                    let (fields, body) = answer_of(first.into_iter().chain(second).chain(actions));
                    conn.respond(stream, fields.iter().map(|(n, v)| (&n[..], &v[..])), body);
                }
            }
        }
        self.h2_scratch = scratch;
    }

    fn h2_serve(&mut self, peer: SocketAddr, tls: bool, r: &Request, out: &mut Outbox) {
        // The request line the access log shows, in a buffer kept for the next.
        let mut line = std::mem::take(&mut self.h2_line);
        line.clear();
        line.extend_from_slice(r.method());
        line.push(b' ');
        line.extend_from_slice(r.path());
        line.extend_from_slice(b" HTTP/2.0");
        match head_of(r, &line) {
            Ok(head) => {
                self.serve(ConnId(0), peer, tls, &head, out);
            }
            Err(status) => self.h2_reject(peer, tls, &line, status, out),
        }
        self.h2_line = line;
    }

    fn h2_reject(
        &mut self,
        peer: SocketAddr,
        tls: bool,
        line: &[u8],
        status: Status,
        out: &mut Outbox,
    ) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &self.table {
            let i = t.default;
            self.enter(i);
        }
        let mut req = Req::unparsed(line);
        req.tls = tls;
        self.page(ConnId(0), peer, &mut req, status, "", out);
    }
}

/// The head HTTP/1 would have parsed from the same request, checked as
/// [`super::parse_head`] checks one (what it refuses, this refuses with the same
/// status), built from the fields as they are. The connection checked what
/// HTTP/2 itself requires: names lower-case tokens, no connection-specific
/// field, no CR, LF or NUL in a value, no space or control byte in a
/// pseudo-header field.
fn head_of<'a>(r: &'a Request, line: &'a [u8]) -> Result<Head<'a>, Status> {
    let method = std::str::from_utf8(r.method()).map_err(|_| Status::BadRequest)?;
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(Status::BadRequest);
    }
    if r.path().len() > MAX_URI {
        return Err(Status::UriTooLong);
    }
    let target = std::str::from_utf8(r.path()).map_err(|_| Status::BadRequest)?;
    // What the HTTP/1 parser refuses before looking at any field's meaning.
    let authority = r.authority();
    let skipped = |n: &[u8]| n == b"host" && authority.is_some();
    if r.has_controls() {
        return Err(Status::BadRequest);
    }
    let lines = usize::from(authority.is_some()) + r.fields().filter(|(n, _)| !skipped(n)).count();
    if lines > MAX_HEADERS {
        return Err(Status::HeaderFieldsTooLarge);
    }
    let mut head = Head::new(method, target, 1, line);
    let mut framing = Framing::default();
    if let Some(a) = authority {
        // §8.3.1: `:authority` wins over `Host`.
        head.field(b"host", a, &mut framing)?;
    }
    for (n, v) in r.fields() {
        if !skipped(n) {
            head.field(n, trim_whitespace(v), &mut framing)?;
        }
    }
    // Transfer-Encoding was refused by the connection (§8.2.2).
    head.finish(framing, || Err(Status::BadRequest))?;
    Ok(head)
}

/// A field name byte (RFC 9110 §5.6.2 `tchar`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `v` without the spaces and tabs around it, as an HTTP/1 head's field value.
fn trim_whitespace(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t');
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(s), Some(e)) => &v[s..=e],
        _ => &[],
    }
}

/// Header fields as name and value bytes.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The header fields (`:status` first) of the HTTP/1 head at the start of `data`,
/// and where the body after it starts.
fn head_fields(data: &[u8]) -> (Fields, usize) {
    let mut fields = Vec::with_capacity(12);
    let end = memchr::memmem::find(data, b"\r\n\r\n").unwrap_or(data.len());
    let mut lines = data[..end].split(|&b| b == b'\n');
    let status = lines.next().and_then(|l| l.get(9..12)).unwrap_or(b"500");
    fields.push((b":status".to_vec(), status.to_vec()));
    for l in lines {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = l[..colon].to_ascii_lowercase();
        if HOP_BY_HOP.contains(&&name[..]) {
            continue;
        }
        fields.push((name, l[colon + 1..].trim_ascii().to_vec()));
    }
    (fields, (end + 4).min(data.len()))
}

/// The header fields (`:status` first) and body of what the core queued.
fn answer_of(queued: impl Iterator<Item = Action>) -> (Fields, VecDeque<Segment>) {
    let mut fields = Vec::new();
    let mut body = VecDeque::new();
    let mut head_done = false;
    for action in queued {
        match action {
            Action::Send { data, .. } if !head_done => {
                head_done = true;
                let body_at;
                (fields, body_at) = head_fields(&data);
                body.push_back(Segment::Bytes(data.slice(body_at..)));
            }
            Action::Send { data, .. } => body.push_back(Segment::Bytes(data)),
            Action::SendFile {
                file, offset, len, ..
            } => body.push_back(Segment::File {
                file,
                pos: offset,
                end: offset + len,
            }),
            // The static core never opens or pauses connections (the reverse proxy,
            // which does, serves HTTP/1 only).
            Action::Close { .. }
            | Action::Deadline { .. }
            | Action::Connect { .. }
            | Action::Pause { .. }
            | Action::Splice { .. } => {}
        }
    }
    (fields, body)
}

/// Answers kept whole by the core, each with its header block: found by the
/// buffer itself (a kept clone holds the allocation, so an equal address and
/// length is the same immutable bytes). A buffer is kept on its second answer,
/// so the one-off buffers of other answers (error pages, 304s) never crowd out
/// the cached files'.
#[derive(Default)]
pub(super) struct Memo {
    entries: Vec<MemoEntry>,
    next: usize,
    /// The last buffer seen once.
    candidate: Option<Bytes>,
}

struct MemoEntry {
    reply: Bytes,
    block: Bytes,
    body_at: usize,
}

/// Answers kept per event loop: a site's hot files, each remade once a second.
const MEMO_ENTRIES: usize = 16;

fn same(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

impl Memo {
    fn find(&self, reply: &Bytes) -> Option<&MemoEntry> {
        self.entries.iter().find(|e| same(&e.reply, reply))
    }

    /// Whether `reply` was seen before (and is worth keeping); else it becomes
    /// the candidate.
    fn admit(&mut self, reply: &Bytes) -> bool {
        if self.candidate.as_ref().is_some_and(|c| same(c, reply)) {
            self.candidate = None;
            return true;
        }
        self.candidate = Some(reply.clone());
        false
    }

    fn keep(&mut self, reply: Bytes, block: Bytes, body_at: usize) {
        let e = MemoEntry {
            reply,
            block,
            body_at,
        };
        if self.entries.len() < MEMO_ENTRIES {
            self.entries.push(e);
        } else {
            self.entries[self.next] = e;
            self.next = (self.next + 1) % MEMO_ENTRIES;
        }
    }
}
