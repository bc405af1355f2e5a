//! One HTTP/2 server connection, sans I/O: wire bytes in, requests out; responses
//! in, wire bytes out.
//!
//! The one idea: every stream's life is the RFC 9113 §5.1 diagram, and that
//! diagram is [`next`], one match; everything else here either feeds it events
//! or schedules DATA. A response is a list of [`Segment`]s (bytes in memory or a
//! range of an open file) written as DATA frames by [`Connection::pump`] only as
//! far as the peer's windows and a per-call byte budget allow, so a large file is
//! read a frame at a time with `pread` and never sits in memory; the caller pumps
//! again when the socket has taken what was written (its backpressure) and after
//! every input (a WINDOW_UPDATE may have opened a window).
//!
//! Errors are the RFC's: a connection error writes GOAWAY and closes, a stream
//! error writes RST_STREAM and forgets the stream. Budgets answer the known
//! abuses with GOAWAY ENHANCE_YOUR_CALM: streams reset in a burst (rapid reset),
//! header blocks of too many bytes or CONTINUATION frames, SETTINGS and PING
//! floods. The decoded header list is bounded by the HPACK decoder.

use super::frame::{self, flags, setting, ErrorCode, FrameHeader, Kind};
use super::hpack::{HeaderDecoder, HeaderEncoder, HeaderList};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Header lists and body queues a connection keeps for reuse, and how large a
/// kept list may be (its text and offsets, in bytes).
const SPARES: usize = 16;
const SPARE_LIST_BYTES: usize = 2048;
/// Streams a client may have open at once (our SETTINGS_MAX_CONCURRENT_STREAMS).
pub const MAX_STREAMS: u32 = 128;
/// The decoded header list a request may carry (SETTINGS_MAX_HEADER_LIST_SIZE).
pub const MAX_HEADER_LIST: usize = 16 * 1024;
/// The encoded header block, all its CONTINUATION frames together.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// CONTINUATION frames in one header block (empty ones cost nothing in bytes).
pub const MAX_CONTINUATIONS: u32 = 32;
/// Resets of streams the client had opened, per [`BUDGET_WINDOW`].
pub const MAX_RESETS: u32 = 200;
/// SETTINGS and PING frames, per [`BUDGET_WINDOW`].
pub const MAX_CONTROL: u32 = 1000;
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Streams we reset, remembered so that frames the client sent before it
/// heard of the reset are ignored (§5.1, "closed") rather than answered.
const REMEMBERED_RESETS: usize = 32;
/// The connection-level receive window we keep open: request bodies are read and
/// dropped, so the window is handed back as soon as it is used.
const RECV_WINDOW: i64 = frame::DEFAULT_WINDOW;

/// The stream states of RFC 9113 §5.1 that a server without push meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Open,
    HalfClosedLocal,
    HalfClosedRemote,
    Closed,
}

/// What happens to a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    RecvHeaders { end_stream: bool },
    RecvData { end_stream: bool },
    SendHeaders { end_stream: bool },
    SendData { end_stream: bool },
    Reset,
}

/// The §5.1 diagram. An error is the stream error the event is answered with.
pub fn next(state: State, event: Event) -> Result<State, ErrorCode> {
    use Event::*;
    use State::*;
    match (state, event) {
        (_, Reset) => Ok(Closed),
        (Idle, RecvHeaders { end_stream: false }) => Ok(Open),
        (Idle, RecvHeaders { end_stream: true }) => Ok(HalfClosedRemote),
        (Idle, _) => Err(ErrorCode::Protocol),
        // A second HEADERS (trailers) must end the stream.
        (Open | HalfClosedLocal, RecvHeaders { end_stream: false }) => Err(ErrorCode::Protocol),
        (Open, RecvHeaders { end_stream: true } | RecvData { end_stream: true }) => {
            Ok(HalfClosedRemote)
        }
        (Open, RecvData { end_stream: false }) => Ok(Open),
        (Open, SendHeaders { end_stream: true } | SendData { end_stream: true }) => {
            Ok(HalfClosedLocal)
        }
        (Open, SendHeaders { end_stream: false } | SendData { end_stream: false }) => Ok(Open),
        (HalfClosedLocal, RecvHeaders { end_stream: true } | RecvData { end_stream: true }) => {
            Ok(Closed)
        }
        (HalfClosedLocal, RecvData { end_stream: false }) => Ok(HalfClosedLocal),
        (HalfClosedLocal, SendHeaders { .. } | SendData { .. }) => Err(ErrorCode::Internal),
        (HalfClosedRemote | Closed, RecvHeaders { .. } | RecvData { .. }) => {
            Err(ErrorCode::StreamClosed)
        }
        (HalfClosedRemote, SendHeaders { end_stream: true } | SendData { end_stream: true }) => {
            Ok(Closed)
        }
        (HalfClosedRemote, SendHeaders { end_stream: false } | SendData { end_stream: false }) => {
            Ok(HalfClosedRemote)
        }
        (Closed, SendHeaders { .. } | SendData { .. }) => Err(ErrorCode::Internal),
    }
}

/// A piece of a response body.
#[derive(Debug)]
pub enum Segment {
    Bytes(Bytes),
    File { file: Arc<File>, pos: u64, end: u64 },
}

impl Segment {
    fn is_empty(&self) -> bool {
        match self {
            Segment::Bytes(b) => b.is_empty(),
            Segment::File { pos, end, .. } => pos >= end,
        }
    }
}

/// A request whose header block is complete: its decoded list, checked, and
/// where in it the pseudo-header fields are (they come first).
#[derive(Debug)]
pub struct Request {
    pub stream: u32,
    list: HeaderList,
    method: usize,
    /// The `:path`'s field (the `:authority`'s for CONNECT).
    path: usize,
    authority: Option<usize>,
    /// The first regular field.
    fields_at: usize,
    /// A regular field's value holds a control byte other than HTAB (which an
    /// HTTP/1 head may not carry either).
    controls: bool,
}

impl Request {
    fn at(&self, i: usize) -> &[u8] {
        self.list.get(i).map_or(&[][..], |(_, v)| v)
    }

    pub fn method(&self) -> &[u8] {
        self.at(self.method)
    }

    pub fn path(&self) -> &[u8] {
        self.at(self.path)
    }

    pub fn authority(&self) -> Option<&[u8]> {
        self.authority.map(|i| self.at(i))
    }

    /// Whether a regular field's value holds a control byte other than HTAB
    /// (NUL, CR and LF make the request malformed and never get this far).
    pub fn has_controls(&self) -> bool {
        self.controls
    }

    /// Regular fields, names lowercase, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.list.iter().skip(self.fields_at)
    }
}

/// What the caller must answer.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    /// The header list was over [`MAX_HEADER_LIST`]: answer 431.
    TooLarge(u32),
}

struct Response {
    /// Shared with the caller's kept copy where it is a kept block.
    block: Bytes,
    headers_sent: bool,
    body: VecDeque<Segment>,
}

struct Stream {
    state: State,
    send_window: i64,
    response: Option<Response>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's 24-byte preface.
    Preface,
    /// Waiting for the client's first frame, which must be SETTINGS.
    FirstSettings,
    Open,
    /// A connection error was sent: nothing more is read or written.
    Closed,
}

/// A header block being gathered from HEADERS and CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    /// The HEADERS frame named the stream as its own dependency.
    bad_priority: bool,
    bytes: Vec<u8>,
    continuations: u32,
}

/// A count of events per window of time.
struct Budget {
    since: Instant,
    used: u32,
    max: u32,
}

impl Budget {
    fn new(max: u32) -> Budget {
        Budget {
            since: Instant::now(),
            used: 0,
            max,
        }
    }

    /// Counts one; false once the window's allowance is spent.
    fn spend(&mut self) -> bool {
        if self.since.elapsed() >= BUDGET_WINDOW {
            self.since = Instant::now();
            self.used = 0;
        }
        self.used += 1;
        self.used <= self.max
    }
}

pub struct Connection {
    phase: Phase,
    streams: BTreeMap<u32, Stream>,
    /// The highest stream the client opened (all below it are closed or open).
    last_stream: u32,
    decoder: HeaderDecoder,
    encoder: HeaderEncoder,
    /// A table size update owed to the peer's decoder at the next header block.
    table_update: Option<usize>,
    block: Option<Block>,
    send_window: i64,
    recv_window: i64,
    /// The peer's SETTINGS.
    initial_window: i64,
    max_frame: usize,
    /// GOAWAY sent (a drain) or received: no new streams; close when none is left.
    going_away: bool,
    resets: Budget,
    control: Budget,
    /// Since when a response has waited on a closed window.
    stalled_since: Option<Instant>,
    reset_by_us: VecDeque<u32>,
    incoming: Vec<Incoming>,
    /// Header lists of answered requests, to decode the next ones into.
    spare: Vec<HeaderList>,
    /// Body queues of finished responses, for the next ones.
    spare_bodies: Vec<VecDeque<Segment>>,
    /// The streams [`Connection::pump`] visits, in a buffer kept between calls.
    pumped: Vec<u32>,
    /// How many bytes the last output taken held.
    last_out: usize,
    out: Vec<u8>,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// A connection whose server preface (our SETTINGS) is already queued.
    pub fn new() -> Connection {
        let mut out = Vec::with_capacity(64);
        frame::write_settings(
            &mut out,
            &[
                (setting::MAX_CONCURRENT_STREAMS, MAX_STREAMS),
                (setting::MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST as u32),
            ],
        );
        Connection {
            phase: Phase::Preface,
            streams: BTreeMap::new(),
            last_stream: 0,
            decoder: HeaderDecoder::new(MAX_HEADER_LIST),
            encoder: HeaderEncoder::default(),
            table_update: None,
            block: None,
            send_window: frame::DEFAULT_WINDOW,
            recv_window: RECV_WINDOW,
            initial_window: frame::DEFAULT_WINDOW,
            max_frame: frame::DEFAULT_MAX_FRAME as usize,
            going_away: false,
            resets: Budget::new(MAX_RESETS),
            control: Budget::new(MAX_CONTROL),
            stalled_since: None,
            reset_by_us: VecDeque::new(),
            incoming: Vec::new(),
            spare: Vec::new(),
            spare_bodies: Vec::new(),
            pumped: Vec::new(),
            last_out: 0,
            out,
        }
    }

    /// Wire bytes to send, taken out. (The next [`Connection::pump`] that has
    /// answers to write reserves as much at once, so a batch of answers is not
    /// grown to size again; an idle connection holds no buffer.)
    pub fn take_output(&mut self) -> Vec<u8> {
        self.last_out = self.out.len();
        std::mem::take(&mut self.out)
    }

    /// An empty queue for a response body (one a finished response left, if
    /// there is one).
    pub fn body(&mut self) -> VecDeque<Segment> {
        self.spare_bodies.pop().unwrap_or_default()
    }

    /// Requests that arrived since the last call.
    pub fn take_incoming(&mut self) -> Vec<Incoming> {
        std::mem::take(&mut self.incoming)
    }

    /// Requests that arrived since the last call, moved into `into` (emptied
    /// first), which keeps its allocation for the next call.
    pub fn take_incoming_into(&mut self, into: &mut Vec<Incoming>) {
        into.clear();
        std::mem::swap(into, &mut self.incoming);
    }

    /// An answered request's buffers, for a later request to use (a few, and
    /// small ones only: what a connection keeps is bounded however large the
    /// header lists it was sent).
    pub fn recycle(&mut self, r: Request) {
        if self.spare.len() < SPARES && r.list.capacity() <= SPARE_LIST_BYTES {
            self.spare.push(r.list);
        }
    }

    /// The connection is over (an error was answered with GOAWAY, or it went
    /// away gracefully and its last stream is done): close once flushed.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Closed || (self.going_away && self.streams.is_empty())
    }

    /// No stream open and no header block half-way: closing now loses nothing.
    pub fn idle(&self) -> bool {
        self.streams.is_empty() && self.block.is_none()
    }

    /// How long a response has been held back by a window the peer keeps shut.
    pub fn stalled_for(&self) -> Option<Duration> {
        self.stalled_since.map(|t| t.elapsed())
    }

    /// A graceful end (RFC 9113 §6.8): GOAWAY NO_ERROR naming the last stream
    /// taken; those finish, newer ones are refused.
    pub fn go_away(&mut self) {
        if self.phase == Phase::Closed || self.going_away {
            return;
        }
        self.going_away = true;
        frame::write_goaway(&mut self.out, self.last_stream, ErrorCode::NoError);
    }

    /// A connection error: GOAWAY with `code`, then nothing more.
    pub fn error(&mut self, code: ErrorCode) {
        if self.phase == Phase::Closed {
            return;
        }
        tracing::debug!(
            ?code,
            last_stream = self.last_stream,
            "h2: connection error"
        );
        frame::write_goaway(&mut self.out, self.last_stream, code);
        self.phase = Phase::Closed;
        self.streams.clear();
    }

    fn reset(&mut self, stream: u32, code: ErrorCode) {
        tracing::debug!(stream, ?code, "h2: stream error");
        frame::write_rst(&mut self.out, stream, code);
        self.streams.remove(&stream);
        self.remember_reset(stream);
    }

    fn remember_reset(&mut self, stream: u32) {
        if self.reset_by_us.len() == REMEMBERED_RESETS {
            self.reset_by_us.pop_front();
        }
        self.reset_by_us.push_back(stream);
    }

    /// Takes in what the client sent; returns how many bytes were consumed (the
    /// rest is an incomplete frame).
    pub fn receive(&mut self, input: &[u8]) -> usize {
        let mut pos = 0;
        if self.phase == Phase::Preface {
            let n = input.len().min(frame::PREFACE.len());
            if input[..n] != frame::PREFACE[..n] {
                self.error(ErrorCode::Protocol);
                return input.len();
            }
            if n < frame::PREFACE.len() {
                return 0;
            }
            pos = n;
            self.phase = Phase::FirstSettings;
        }
        while self.phase != Phase::Closed {
            let Some(h) = FrameHeader::parse(&input[pos..]) else {
                break;
            };
            if h.len > frame::DEFAULT_MAX_FRAME {
                // We never raise SETTINGS_MAX_FRAME_SIZE (§4.2).
                self.error(ErrorCode::FrameSize);
                break;
            }
            let end = pos + frame::HEADER_LEN + h.len as usize;
            if input.len() < end {
                break;
            }
            let payload = &input[pos + frame::HEADER_LEN..end];
            pos = end;
            self.frame(h, payload);
        }
        if self.phase == Phase::Closed {
            return input.len();
        }
        pos
    }

    fn frame(&mut self, h: FrameHeader, p: &[u8]) {
        if self.phase == Phase::FirstSettings {
            if h.kind != Kind::Settings || h.has(flags::ACK) {
                return self.error(ErrorCode::Protocol);
            }
            self.phase = Phase::Open;
        }
        if let Some(b) = &self.block {
            // §6.10: a header block is contiguous.
            if h.kind != Kind::Continuation || h.stream != b.stream {
                return self.error(ErrorCode::Protocol);
            }
        }
        match h.kind {
            Kind::Data => self.data(h, p),
            Kind::Headers => self.headers(h, p),
            Kind::Continuation => self.continuation(h, p),
            Kind::Priority => self.priority(h, p),
            Kind::RstStream => self.rst_stream(h, p),
            Kind::Settings => self.settings(h, p),
            Kind::Ping => self.ping(h, p),
            Kind::GoAway => {
                if h.stream != 0 {
                    return self.error(ErrorCode::Protocol);
                }
                self.going_away = true;
            }
            Kind::WindowUpdate => self.window_update(h, p),
            // A client cannot push (§8.4).
            Kind::PushPromise => self.error(ErrorCode::Protocol),
            Kind::Unknown(_) => {}
        }
    }

    /// A frame for a stream that is not in the table: idle (above the last one
    /// opened) or closed.
    fn is_idle(&self, stream: u32) -> bool {
        stream > self.last_stream
    }

    fn data(&mut self, h: FrameHeader, p: &[u8]) {
        if h.stream == 0 {
            return self.error(ErrorCode::Protocol);
        }
        // The whole frame, padding included, counts against the windows (§6.9.1).
        let len = i64::from(h.len);
        self.recv_window -= len;
        if self.recv_window < 0 {
            return self.error(ErrorCode::FlowControl);
        }
        if self.recv_window <= RECV_WINDOW / 2 {
            frame::write_window_update(&mut self.out, 0, (RECV_WINDOW - self.recv_window) as u32);
            self.recv_window = RECV_WINDOW;
        }
        if frame::unpad(&h, p).is_none() {
            return self.error(ErrorCode::Protocol);
        }
        let end_stream = h.has(flags::END_STREAM);
        let Some(s) = self.streams.get_mut(&h.stream) else {
            if self.is_idle(h.stream) {
                return self.error(ErrorCode::Protocol);
            }
            if self.reset_by_us.contains(&h.stream) {
                return;
            }
            return self.reset(h.stream, ErrorCode::StreamClosed);
        };
        match next(s.state, Event::RecvData { end_stream }) {
            Ok(state) => {
                s.state = state;
                if !end_stream && len > 0 {
                    // The body is dropped: the stream's window goes back at once.
                    frame::write_window_update(&mut self.out, h.stream, h.len);
                }
                if state == State::Closed {
                    self.streams.remove(&h.stream);
                }
            }
            Err(code) => self.reset(h.stream, code),
        }
    }

    fn headers(&mut self, h: FrameHeader, p: &[u8]) {
        if h.stream == 0 || h.stream % 2 == 0 {
            return self.error(ErrorCode::Protocol);
        }
        let Some(mut frag) = frame::unpad(&h, p) else {
            return self.error(ErrorCode::Protocol);
        };
        let mut bad_priority = false;
        if h.has(flags::PRIORITY) {
            let Some(dep) = frag.get(..4) else {
                return self.error(ErrorCode::FrameSize);
            };
            let dep = u32::from_be_bytes([dep[0], dep[1], dep[2], dep[3]]) & 0x7fff_ffff;
            bad_priority = dep == h.stream;
            frag = frag.get(5..).unwrap_or(&[]);
            if p.len() < 5 {
                return self.error(ErrorCode::FrameSize);
            }
        }
        let block = Block {
            stream: h.stream,
            end_stream: h.has(flags::END_STREAM),
            bad_priority,
            bytes: Vec::new(),
            continuations: 0,
        };
        if h.has(flags::END_HEADERS) {
            // The common case, a block in one frame, is decoded where it lies.
            self.header_block(block, frag);
        } else {
            self.block = Some(Block {
                bytes: frag.to_vec(),
                ..block
            });
        }
    }

    fn continuation(&mut self, h: FrameHeader, p: &[u8]) {
        let Some(b) = self.block.as_mut() else {
            return self.error(ErrorCode::Protocol);
        };
        b.continuations += 1;
        if b.bytes.len() + p.len() > MAX_HEADER_BLOCK || b.continuations > MAX_CONTINUATIONS {
            tracing::info!(stream = h.stream, "h2: header block too long, closing");
            return self.error(ErrorCode::EnhanceYourCalm);
        }
        b.bytes.extend_from_slice(p);
        if h.has(flags::END_HEADERS) {
            if let Some(mut b) = self.block.take() {
                let bytes = std::mem::take(&mut b.bytes);
                self.header_block(b, &bytes);
            }
        }
    }

    /// `b`'s whole block is `bytes`.
    fn header_block(&mut self, b: Block, bytes: &[u8]) {
        if bytes.len() > MAX_HEADER_BLOCK {
            return self.error(ErrorCode::EnhanceYourCalm);
        }
        // Decoded whatever becomes of the stream: the table must stay in step.
        let mut list = self.spare.pop().unwrap_or_default();
        list.clear();
        let fits = match self.decoder.decode_into(bytes, &mut list) {
            Ok(fits) => fits,
            Err(_) => return self.error(ErrorCode::Compression),
        };
        if let Some(s) = self.streams.get_mut(&b.stream) {
            // Trailers: checked against the state, otherwise ignored.
            match next(
                s.state,
                Event::RecvHeaders {
                    end_stream: b.end_stream,
                },
            ) {
                Ok(State::Closed) => {
                    self.streams.remove(&b.stream);
                }
                Ok(state) => s.state = state,
                Err(code) => self.reset(b.stream, code),
            }
            return;
        }
        if !self.is_idle(b.stream) {
            if self.reset_by_us.contains(&b.stream) {
                // Trailers of a body we stopped: already decoded, ignored.
                return;
            }
            return self.error(ErrorCode::StreamClosed);
        }
        self.last_stream = b.stream;
        if self.going_away {
            return self.reset(b.stream, ErrorCode::RefusedStream);
        }
        if b.bad_priority {
            return self.reset(b.stream, ErrorCode::Protocol);
        }
        if self.streams.len() >= MAX_STREAMS as usize {
            return self.reset(b.stream, ErrorCode::RefusedStream);
        }
        let request = if !fits {
            Incoming::TooLarge(b.stream)
        } else {
            match request(b.stream, list) {
                Some(r) => Incoming::Request(r),
                None => return self.reset(b.stream, ErrorCode::Protocol),
            }
        };
        let state = if b.end_stream {
            State::HalfClosedRemote
        } else {
            State::Open
        };
        self.streams.insert(
            b.stream,
            Stream {
                state,
                send_window: self.initial_window,
                response: None,
            },
        );
        self.incoming.push(request);
    }

    fn priority(&mut self, h: FrameHeader, p: &[u8]) {
        if h.stream == 0 {
            return self.error(ErrorCode::Protocol);
        }
        if p.len() != 5 {
            return self.reset(h.stream, ErrorCode::FrameSize);
        }
        let dep = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
        if dep == h.stream {
            self.reset(h.stream, ErrorCode::Protocol);
        }
    }

    fn rst_stream(&mut self, h: FrameHeader, p: &[u8]) {
        if h.stream == 0 {
            return self.error(ErrorCode::Protocol);
        }
        if p.len() != 4 {
            return self.error(ErrorCode::FrameSize);
        }
        if self.is_idle(h.stream) {
            return self.error(ErrorCode::Protocol);
        }
        self.streams.remove(&h.stream);
        // CVE-2023-44487: streams opened and reset at once cost the server work
        // the client never waits for. Every reset counts, also of a stream just
        // answered: whether the answer beat the reset is up to scheduling.
        if !self.resets.spend() {
            tracing::info!(resets = MAX_RESETS, "h2: too many streams reset, closing");
            self.error(ErrorCode::EnhanceYourCalm);
        }
    }

    fn settings(&mut self, h: FrameHeader, p: &[u8]) {
        if h.stream != 0 {
            return self.error(ErrorCode::Protocol);
        }
        if h.has(flags::ACK) {
            if !p.is_empty() {
                self.error(ErrorCode::FrameSize);
            }
            return;
        }
        if p.len() % 6 != 0 {
            return self.error(ErrorCode::FrameSize);
        }
        if !self.control.spend() {
            return self.error(ErrorCode::EnhanceYourCalm);
        }
        for s in p.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                setting::HEADER_TABLE_SIZE => {
                    let size = (v as usize).min(super::hpack::TABLE_SIZE);
                    self.encoder.set_max_table_size(size);
                    self.table_update = Some(size);
                }
                setting::ENABLE_PUSH if v > 1 => return self.error(ErrorCode::Protocol),
                setting::INITIAL_WINDOW_SIZE => {
                    let v = i64::from(v);
                    if v > frame::MAX_WINDOW {
                        return self.error(ErrorCode::FlowControl);
                    }
                    let delta = v - self.initial_window;
                    self.initial_window = v;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        if s.send_window > frame::MAX_WINDOW {
                            return self.error(ErrorCode::FlowControl);
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME..=frame::MAX_MAX_FRAME).contains(&v) {
                        return self.error(ErrorCode::Protocol);
                    }
                    self.max_frame = v as usize;
                }
                // MAX_CONCURRENT_STREAMS limits pushes, which we never make;
                // MAX_HEADER_LIST_SIZE is advisory; unknown ones are ignored.
                _ => {}
            }
        }
        frame::write_frame(&mut self.out, Kind::Settings, flags::ACK, 0, &[]);
    }

    fn ping(&mut self, h: FrameHeader, p: &[u8]) {
        if h.stream != 0 {
            return self.error(ErrorCode::Protocol);
        }
        if p.len() != 8 {
            return self.error(ErrorCode::FrameSize);
        }
        if h.has(flags::ACK) {
            return;
        }
        if !self.control.spend() {
            tracing::info!("h2: PING flood, closing");
            return self.error(ErrorCode::EnhanceYourCalm);
        }
        frame::write_frame(&mut self.out, Kind::Ping, flags::ACK, 0, p);
    }

    fn window_update(&mut self, h: FrameHeader, p: &[u8]) {
        if p.len() != 4 {
            return self.error(ErrorCode::FrameSize);
        }
        let inc = i64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff);
        if h.stream == 0 {
            if inc == 0 {
                return self.error(ErrorCode::Protocol);
            }
            self.send_window += inc;
            if self.send_window > frame::MAX_WINDOW {
                self.error(ErrorCode::FlowControl);
            }
            return;
        }
        let Some(s) = self.streams.get_mut(&h.stream) else {
            if self.is_idle(h.stream) {
                self.error(ErrorCode::Protocol);
            }
            // A closed stream: the update may have crossed our END_STREAM.
            return;
        };
        if inc == 0 {
            return self.reset(h.stream, ErrorCode::Protocol);
        }
        s.send_window += inc;
        if s.send_window > frame::MAX_WINDOW {
            self.reset(h.stream, ErrorCode::FlowControl);
        }
    }

    /// Queues the answer to `stream` (dropped if the stream was reset meanwhile).
    /// `fields` start with `:status`.
    pub fn respond<'a>(
        &mut self,
        stream: u32,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        body: VecDeque<Segment>,
    ) {
        if !self.streams.contains_key(&stream) {
            return;
        }
        let mut block = self.block_start();
        let fields: Vec<_> = fields.into_iter().collect();
        // The static table where it names every field (a block any connection
        // could be sent, see `encode_static`), else the encoder and its table.
        if !super::hpack::encode_static(fields.iter().copied(), &mut block) {
            block.extend(self.encoder.encode(fields));
        }
        self.queue(stream, Bytes::from(block), body);
    }

    /// Queues the answer to `stream` as a header block made by
    /// [`super::hpack::encode_static`] (so one made once may serve many streams,
    /// on any connection).
    pub fn respond_static(&mut self, stream: u32, block: &Bytes, body: VecDeque<Segment>) {
        if !self.streams.contains_key(&stream) {
            return;
        }
        let block = if self.table_update.is_some() {
            let mut out = self.block_start();
            out.extend_from_slice(block);
            Bytes::from(out)
        } else {
            block.clone()
        };
        self.queue(stream, block, body);
    }

    /// A new header block, opening with the table size update owed, if any.
    fn block_start(&mut self) -> Vec<u8> {
        let mut block = Vec::with_capacity(160);
        if let Some(size) = self.table_update.take() {
            // §4.2 of RFC 7541: the change is announced at the start of a block.
            let n = loona_hpack::encoder::encode_integer(size, 5);
            block.extend_from_slice(&n);
            if let Some(b) = block.first_mut() {
                *b |= 0x20;
            }
        }
        block
    }

    fn queue(&mut self, stream: u32, block: Bytes, mut body: VecDeque<Segment>) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        body.retain(|s| !s.is_empty());
        s.response = Some(Response {
            block,
            headers_sent: false,
            body,
        });
    }

    /// Writes response HEADERS and as much DATA as the windows allow, at most
    /// about `budget` bytes of it, reading files through `buf`.
    pub fn pump(&mut self, buf: &mut Vec<u8>, budget: usize) {
        if self.phase == Phase::Closed {
            return;
        }
        let chunk = self.max_frame.min(32 * 1024);
        if buf.len() < chunk {
            buf.resize(chunk, 0);
        }
        let mut budget = budget as i64;
        let mut stalled = false;
        let mut ids = std::mem::take(&mut self.pumped);
        ids.clear();
        ids.extend(
            self.streams
                .iter()
                .filter(|(_, s)| s.response.is_some())
                .map(|(id, _)| *id),
        );
        if !ids.is_empty() {
            self.out.reserve(self.last_out.min(64 * 1024));
        }
        for &id in &ids {
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            let Some(r) = s.response.as_mut() else {
                continue;
            };
            if !r.headers_sent {
                let end_stream = r.body.is_empty();
                frame::write_header_block(&mut self.out, id, &r.block, end_stream, self.max_frame);
                r.headers_sent = true;
                r.block = Bytes::new();
                match next(s.state, Event::SendHeaders { end_stream }) {
                    Ok(state) => s.state = state,
                    Err(code) => {
                        self.reset(id, code);
                        continue;
                    }
                }
                if end_stream {
                    self.finish(id);
                    continue;
                }
            }
            let mut done = false;
            while budget > 0 {
                let allowed = self.send_window.min(s.send_window).min(chunk as i64);
                if allowed <= 0 {
                    stalled = true;
                    break;
                }
                let allowed = allowed.min(budget) as usize;
                let Some(front) = r.body.front_mut() else {
                    break;
                };
                let n = match front {
                    Segment::Bytes(b) => {
                        let n = b.len().min(allowed);
                        let part = b.split_to(n);
                        let last = b.is_empty() && r.body.len() == 1;
                        data_frame(&mut self.out, id, &part, last);
                        n
                    }
                    Segment::File { file, pos, end } => {
                        let want = ((*end - *pos).min(allowed as u64)) as usize;
                        let n = match file.read_at(&mut buf[..want], *pos) {
                            Ok(0) => 0,
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => {
                                tracing::warn!(error = %e, "pread of a file to send");
                                0
                            }
                        };
                        if n == 0 {
                            // The file shrank or failed: the client must not take
                            // what it got for the whole body.
                            break;
                        }
                        *pos += n as u64;
                        let last = *pos >= *end && r.body.len() == 1;
                        data_frame(&mut self.out, id, &buf[..n], last);
                        n
                    }
                };
                if r.body.front().is_some_and(Segment::is_empty) {
                    r.body.pop_front();
                }
                self.send_window -= n as i64;
                s.send_window -= n as i64;
                budget -= (n + frame::HEADER_LEN) as i64;
                if r.body.is_empty() {
                    done = true;
                    break;
                }
            }
            if done {
                match next(s.state, Event::SendData { end_stream: true }) {
                    Ok(state) => s.state = state,
                    Err(code) => {
                        self.reset(id, code);
                        continue;
                    }
                }
                self.finish(id);
            } else if !r.body.is_empty() && budget > 0 && !stalled {
                // Not stalled, budget left, body left: the file read came up short.
                self.reset(id, ErrorCode::Internal);
            }
        }
        let waiting = self
            .streams
            .values()
            .any(|s| s.response.as_ref().is_some_and(|r| !r.body.is_empty()));
        if stalled && waiting {
            self.stalled_since.get_or_insert_with(Instant::now);
        } else {
            self.stalled_since = None;
        }
        self.pumped = ids;
    }

    /// Our side of `id` is done: forget it once the client's side is done too.
    /// A body the client is still sending is read and dropped to its end (its
    /// window handed back frame by frame) rather than cut short with RST_STREAM
    /// NO_ERROR, which §8.1 allows but some clients report as an error.
    fn finish(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            if let Some(mut r) = s.response.take() {
                if self.spare_bodies.len() < SPARES {
                    r.body.clear();
                    self.spare_bodies.push(r.body);
                }
            }
            if s.state == State::Closed {
                self.streams.remove(&id);
            }
        }
    }

    /// Whether some response still has bytes to send.
    pub fn has_pending(&self) -> bool {
        self.streams.values().any(|s| s.response.is_some())
    }
}

fn data_frame(out: &mut Vec<u8>, stream: u32, data: &[u8], last: bool) {
    let f = if last { flags::END_STREAM } else { 0 };
    frame::write_frame(out, Kind::Data, f, stream, data);
}

/// Connection-specific fields that HTTP/2 forbids (§8.2.2).
const CONNECTION_FIELDS: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// The bytes a field name may hold: a token's (RFC 9110 §5.6.2), lower case only
/// (RFC 9113 §8.2.1).
const NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// A value byte that makes a request malformed (§8.2.1: NUL, CR, LF).
const FORBIDDEN: u8 = 1;
/// A control byte other than HTAB (DEL included).
const CONTROL: u8 = 2;
/// A byte a pseudo-header field may not hold: space, control or DEL (§8.3.1).
const NOT_IN_PSEUDO: u8 = 4;

/// What each byte of a value is, so one pass over a value checks it all.
const VALUE_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if matches!(c, 0 | b'\r' | b'\n') {
            t[b] |= FORBIDDEN;
        }
        if (c < b' ' && c != b'\t') || c == 0x7f {
            t[b] |= CONTROL;
        }
        if c <= b' ' || c == 0x7f {
            t[b] |= NOT_IN_PSEUDO;
        }
        b += 1;
    }
    t
};

/// A request from its decoded fields, or `None` if malformed (§8.1.1, §8.3).
fn request(stream: u32, list: HeaderList) -> Option<Request> {
    let mut method = None;
    let mut scheme = None;
    let mut path = None;
    let mut authority = None;
    let mut fields_at = None;
    let mut controls = false;
    for (i, (name, value)) in list.iter().enumerate() {
        // Values are short: one table lookup a byte, no early exit.
        let class = value.iter().fold(0, |c, &b| c | VALUE_BYTE[b as usize]);
        if class & FORBIDDEN != 0 {
            return None;
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if fields_at.is_some() {
                return None;
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"path" => &mut path,
                b"authority" => &mut authority,
                _ => return None,
            };
            if slot.is_some() || class & NOT_IN_PSEUDO != 0 {
                return None;
            }
            *slot = Some(i);
            continue;
        }
        fields_at.get_or_insert(i);
        controls |= class & CONTROL != 0;
        if name.is_empty() || !name.iter().all(|&b| NAME_BYTE[b as usize]) {
            return None;
        }
        if CONNECTION_FIELDS.contains(&name) || (name == b"te" && value != b"trailers") {
            return None;
        }
    }
    let method = method?;
    let path = if list.get(method).is_some_and(|(_, m)| m == b"CONNECT") {
        authority?
    } else {
        scheme?;
        path.filter(|&p| list.get(p).is_some_and(|(_, v)| !v.is_empty()))?
    };
    Some(Request {
        stream,
        fields_at: fields_at.unwrap_or(list.len()),
        list,
        method,
        path,
        authority,
        controls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preface_and_settings() -> Vec<u8> {
        let mut b = frame::PREFACE.to_vec();
        frame::write_settings(&mut b, &[]);
        b
    }

    fn frames(mut b: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some(h) = FrameHeader::parse(b) {
            let end = 9 + h.len as usize;
            v.push((h, b[9..end].to_vec()));
            b = &b[end..];
        }
        v
    }

    fn goaway_code(out: &[u8]) -> Option<u32> {
        frames(out)
            .into_iter()
            .find(|(h, _)| h.kind == Kind::GoAway)
            .map(|(_, p)| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
    }

    fn get(stream: u32, enc: &mut HeaderEncoder) -> Vec<u8> {
        let block = enc.encode([
            (&b":method"[..], &b"GET"[..]),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b":authority", b"x"),
        ]);
        let mut b = Vec::new();
        frame::write_header_block(&mut b, stream, &block, true, 16384);
        b
    }

    #[test]
    fn the_state_table_follows_the_diagram() {
        use Event::*;
        use State::*;
        assert_eq!(
            next(Idle, RecvHeaders { end_stream: true }),
            Ok(HalfClosedRemote)
        );
        assert_eq!(
            next(HalfClosedRemote, SendData { end_stream: true }),
            Ok(Closed)
        );
        assert_eq!(
            next(HalfClosedRemote, RecvData { end_stream: false }),
            Err(ErrorCode::StreamClosed)
        );
        assert_eq!(
            next(Open, SendHeaders { end_stream: true }),
            Ok(HalfClosedLocal)
        );
        assert_eq!(
            next(HalfClosedLocal, RecvData { end_stream: true }),
            Ok(Closed)
        );
        assert_eq!(
            next(Idle, RecvData { end_stream: false }),
            Err(ErrorCode::Protocol)
        );
        assert_eq!(next(Open, Reset), Ok(Closed));
    }

    #[test]
    fn a_request_comes_out_and_its_answer_goes_in() {
        let mut c = Connection::new();
        let mut enc = HeaderEncoder::default();
        let mut input = preface_and_settings();
        input.extend(get(1, &mut enc));
        assert_eq!(c.receive(&input), input.len());
        let reqs = c.take_incoming();
        let [Incoming::Request(r)] = &reqs[..] else {
            panic!("{reqs:?}")
        };
        assert_eq!(
            (r.stream, r.method(), r.path()),
            (1, &b"GET"[..], &b"/"[..])
        );
        let body = VecDeque::from([Segment::Bytes(Bytes::from_static(b"hello"))]);
        c.respond(1, [(&b":status"[..], &b"200"[..])], body);
        c.pump(&mut Vec::new(), 1 << 20);
        let out = frames(&c.take_output());
        let kinds: Vec<_> = out.iter().map(|(h, _)| (h.kind, h.flags)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Settings, 0),
                (Kind::Settings, flags::ACK),
                (Kind::Headers, flags::END_HEADERS),
                (Kind::Data, flags::END_STREAM)
            ]
        );
        assert_eq!(out[3].1, b"hello");
        assert!(c.idle());
    }

    #[test]
    fn data_waits_for_the_window() {
        let mut c = Connection::new();
        let mut enc = HeaderEncoder::default();
        let mut input = frame::PREFACE.to_vec();
        frame::write_settings(&mut input, &[(setting::INITIAL_WINDOW_SIZE, 3)]);
        input.extend(get(1, &mut enc));
        c.receive(&input);
        c.take_incoming();
        let body = VecDeque::from([Segment::Bytes(Bytes::from_static(b"hello"))]);
        c.respond(1, [(&b":status"[..], &b"200"[..])], body);
        c.pump(&mut Vec::new(), 1 << 20);
        let out = frames(&c.take_output());
        assert_eq!(out.last().unwrap().1, b"hel");
        assert!(c.stalled_for().is_some());
        let mut wu = Vec::new();
        frame::write_window_update(&mut wu, 1, 10);
        c.receive(&wu);
        c.pump(&mut Vec::new(), 1 << 20);
        let out = frames(&c.take_output());
        assert_eq!(out.last().unwrap().1, b"lo");
        assert!(out.last().unwrap().0.has(flags::END_STREAM));
        assert!(c.stalled_for().is_none());
    }

    #[test]
    fn errors_get_the_codes_the_rfc_names() {
        let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), ErrorCode::Protocol),
            (
                {
                    let mut b = frame::PREFACE.to_vec();
                    frame::write_frame(&mut b, Kind::Ping, 0, 0, &[0; 8]);
                    b
                },
                ErrorCode::Protocol,
            ),
            (
                {
                    let mut b = frame::PREFACE.to_vec();
                    frame::write_settings(&mut b, &[(setting::ENABLE_PUSH, 2)]);
                    b
                },
                ErrorCode::Protocol,
            ),
            (
                {
                    let mut b = frame::PREFACE.to_vec();
                    frame::write_settings(&mut b, &[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]);
                    b
                },
                ErrorCode::FlowControl,
            ),
            (
                {
                    let mut b = preface_and_settings();
                    frame::write_window_update(&mut b, 0, 0x7fff_ffff);
                    b
                },
                ErrorCode::FlowControl,
            ),
            (
                {
                    let mut b = preface_and_settings();
                    frame::write_frame(&mut b, Kind::Data, 0, 0, b"x");
                    b
                },
                ErrorCode::Protocol,
            ),
        ];
        for (input, code) in cases {
            let mut c = Connection::new();
            c.receive(&input);
            assert_eq!(
                goaway_code(&c.take_output()),
                Some(code as u32),
                "{input:?}"
            );
            assert!(c.finished());
        }
    }

    #[test]
    fn field_names_are_lower_case_tokens() {
        let tokens = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz";
        for b in 0..=255u8 {
            assert_eq!(NAME_BYTE[b as usize], tokens.contains(&b), "{b:#x}");
        }
        let req = |name: &[u8], value: &[u8]| {
            let mut list = HeaderList::default();
            list.push(b":method", b"GET");
            list.push(b":scheme", b"http");
            list.push(b":path", b"/");
            list.push(name, value);
            request(1, list)
        };
        let r = req(b"x-ok", b"a\tb").unwrap();
        assert!(!r.has_controls());
        assert!(req(b"x-ok", b"a\x01b").unwrap().has_controls());
        assert!(req(b"x-ok", b"a\x7f").unwrap().has_controls());
        let r = req(b"x-ok", b"a b").unwrap();
        assert_eq!(
            (r.method(), r.path(), r.authority()),
            (&b"GET"[..], &b"/"[..], None)
        );
        assert_eq!(
            r.fields().collect::<Vec<_>>(),
            [(&b"x-ok"[..], &b"a b"[..])]
        );
        assert!(req(b"X-Upper", b"v").is_none());
        assert!(req(b"x-sp ace", b"v").is_none());
        for bad in [&b"a\rb"[..], b"a\nb", b"a\0b"] {
            assert!(req(b"x-ok", bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn only_a_few_small_header_lists_are_kept_for_reuse() {
        let mut c = Connection::new();
        let list = |value: &[u8]| {
            let mut l = HeaderList::default();
            l.push(b":method", b"GET");
            l.push(b":scheme", b"http");
            l.push(b":path", b"/");
            l.push(b"x-v", value);
            request(1, l).unwrap()
        };
        c.recycle(list(&[b'v'; 4096]));
        assert!(c.spare.is_empty());
        for _ in 0..SPARES + 4 {
            c.recycle(list(b"v"));
        }
        assert_eq!(c.spare.len(), SPARES);
    }

    #[test]
    fn rapid_reset_meets_its_budget() {
        let mut c = Connection::new();
        let mut enc = HeaderEncoder::default();
        let mut input = preface_and_settings();
        for i in 0..=MAX_RESETS {
            let id = 2 * i + 1;
            input.extend(get(id, &mut enc));
            frame::write_rst(&mut input, id, ErrorCode::Cancel);
        }
        c.receive(&input);
        assert_eq!(
            goaway_code(&c.take_output()),
            Some(ErrorCode::EnhanceYourCalm as u32)
        );
    }
}
