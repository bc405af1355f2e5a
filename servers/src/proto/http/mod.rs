//! HTTP/1.0 and 1.1 static file serving as a [`Protocol`]: request heads in, response
//! heads, HTML error pages and `sendfile` actions out.
//!
//! The one idea: every complete request in the input is answered in order, its whole
//! response queued into the [`Outbox`] at once (head bytes, then the file inline or as
//! a [`crate::proto::Action::SendFile`]), so pipelining needs no per-connection queue
//! of our own and the model's ordering guarantee keeps responses in request order.
//! After a streamed file `data` returns early, leaving the rest of a pipeline for the
//! model to offer again (every `io` model re-offers unconsumed input while it makes
//! progress and once a queued file is out), so one connection holds one file open. A
//! connection is in one of three phases: waiting for a head (the header timeout is
//! armed once, when its first byte arrives, so trickling bytes cannot extend it), idle
//! between requests (the keep-alive timeout), or closing (input is discarded).
//!
//! Pieces: `request` frames and parses heads, `path` turns a target into a relative
//! path or a refusal, `fs` opens it beneath the root, `mime` and `date` format headers.
//! Directories serve their `index.html` and are otherwise a 403: no listings, so a
//! directory's contents are only public file by file.

mod cache;
mod date;
mod fs;
mod mime;
mod path;
mod request;

pub use date::{format_clf_date, format_http_date, parse_http_date};
pub use mime::content_type;
pub use path::{parse_target, percent_decode, Target};
pub use request::{
    parse_head, parse_range, Head, Method, Parsed, RangeSpec, MAX_HEAD, MAX_HEADERS, MAX_URI,
};

use crate::log::{AccessLog, Combined};
use crate::proto::{ConnId, Outbox, Protocol};
use bytes::Bytes;
use cache::{Cached, FileCache};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The statuses this server produces itself (routes may return any code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    PartialContent,
    MovedPermanently,
    NotModified,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    RangeNotSatisfiable,
    UriTooLong,
    HeaderFieldsTooLarge,
    InternalServerError,
    NotImplemented,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
        }
    }

    /// After these the connection cannot be trusted to be in sync (or should not be
    /// kept), so it closes.
    fn closes(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::RequestTimeout
                | Status::UriTooLong
                | Status::HeaderFieldsTooLarge
                | Status::InternalServerError
                | Status::ServiceUnavailable
        )
    }
}

/// The reason phrase for a status code.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Methods that exist but that a static server does not allow (405); any other method
/// is unknown to it (501). Both answers carry `Allow: GET, HEAD`.
const KNOWN_METHODS: &[&str] = &[
    "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("open document root {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a dynamic route sees of its request.
#[derive(Debug)]
pub struct RouteRequest<'a> {
    /// `GET` or `HEAD` (the body of a `HEAD` answer is dropped by the server).
    pub method: &'a str,
    /// The normalised path, as matched.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub peer: SocketAddr,
}

/// A dynamic route's answer.
#[derive(Debug, Clone)]
pub struct RouteResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

pub type RouteHandler = Arc<dyn Fn(&RouteRequest<'_>) -> RouteResponse + Send + Sync>;

/// The server's configuration, shared by every [`Http`] instance (one per worker).
pub struct HttpConfig {
    /// The document root as given (see [`HttpConfig::root_path`] for the resolved one).
    pub root: PathBuf,
    /// How long a request head may take to arrive, from its first byte (or from the
    /// connection's start): then 408 and close.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// The `Server` header.
    pub server_name: String,
    /// The file a directory serves.
    pub index: String,
    /// Exact normalised paths answered by a function instead of a file (GET and HEAD
    /// only), checked before the file lookup.
    pub routes: Vec<(String, RouteHandler)>,
    pub access_log: Option<AccessLog>,
    /// Files (or ranges) up to this size are read into the response head's buffer and
    /// leave in one write, one packet, as lighttpd does; larger ones are streamed with
    /// `sendfile(2)` and never held in memory. Keep it far below the model's
    /// `Limits::out_limit`, which counts these bytes as queued memory.
    pub inline_max: u64,
    /// How many opened files each worker keeps for the rest of the current second
    /// (see `cache`); 0 opens every request's file afresh.
    pub file_cache: usize,
    dir: fs::Root,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("root", &self.root)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("server_name", &self.server_name)
            .field("index", &self.index)
            .field(
                "routes",
                &self.routes.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("access_log", &self.access_log.is_some())
            .field("inline_max", &self.inline_max)
            .field("file_cache", &self.file_cache)
            .finish()
    }
}

impl HttpConfig {
    /// Opens the document root (a descriptor kept for the life of the config, so it
    /// keeps working after a `chroot`) with default timeouts: 10 s for a head, 30 s idle.
    pub fn new(root: impl AsRef<Path>) -> Result<HttpConfig, HttpError> {
        let root = root.as_ref();
        let dir = fs::Root::open(root).map_err(|source| HttpError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        Ok(HttpConfig {
            root: root.to_path_buf(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            server_name: "httpd".into(),
            index: "index.html".into(),
            routes: Vec::new(),
            access_log: None,
            inline_max: 16 * 1024,
            file_cache: 256,
            dir,
        })
    }

    /// The canonical root path the fallback resolver checks containment against.
    pub fn root_path(&self) -> &Path {
        self.dir.path()
    }

    /// Tells the config that the process is now chrooted into the root, so that paths
    /// (only used where `openat2` is missing) resolve against `/`.
    pub fn chrooted(&mut self) {
        self.dir.set_path(PathBuf::from("/"));
    }

    /// Adds a dynamic route for an exact path.
    pub fn route(
        &mut self,
        path: impl Into<String>,
        handler: impl Fn(&RouteRequest<'_>) -> RouteResponse + Send + Sync + 'static,
    ) {
        self.routes.push((path.into(), Arc::new(handler)));
    }
}

/// Counters of one [`Http`] instance (relaxed atomics: read them for display, sum
/// them across workers with [`HttpStats::snapshot`]).
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_3xx: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    /// Body bytes queued (files and pages; heads not counted).
    pub bytes_out: AtomicU64,
    /// Header and keep-alive timeouts that fired.
    pub timeouts: AtomicU64,
}

/// A plain copy of [`HttpStats`], summable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HttpCounts {
    pub requests: u64,
    pub responses_2xx: u64,
    pub responses_3xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    pub bytes_out: u64,
    pub timeouts: u64,
}

impl std::ops::AddAssign for HttpCounts {
    fn add_assign(&mut self, o: HttpCounts) {
        self.requests += o.requests;
        self.responses_2xx += o.responses_2xx;
        self.responses_3xx += o.responses_3xx;
        self.responses_4xx += o.responses_4xx;
        self.responses_5xx += o.responses_5xx;
        self.bytes_out += o.bytes_out;
        self.timeouts += o.timeouts;
    }
}

impl HttpStats {
    pub fn snapshot(&self) -> HttpCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpCounts {
            requests: r(&self.requests),
            responses_2xx: r(&self.responses_2xx),
            responses_3xx: r(&self.responses_3xx),
            responses_4xx: r(&self.responses_4xx),
            responses_5xx: r(&self.responses_5xx),
            bytes_out: r(&self.bytes_out),
            timeouts: r(&self.timeouts),
        }
    }

    fn response(&self, code: u16, body: u64) {
        let c = match code {
            200..=299 => &self.responses_2xx,
            300..=399 => &self.responses_3xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(body, Ordering::Relaxed);
    }
}

/// `Date` and the log's time, formatted once per second.
struct Clock {
    secs: i64,
    http: String,
    clf: String,
}

impl Clock {
    fn new() -> Clock {
        let mut c = Clock {
            secs: i64::MIN,
            http: String::new(),
            clf: String::new(),
        };
        c.tick();
        c
    }

    fn tick(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if now != self.secs {
            self.secs = now;
            self.http = format_http_date(now);
            self.clf = format_clf_date(now);
        }
    }
}

/// The HTTP protocol: one per worker thread, cheap to build from a shared config.
pub struct Http {
    cfg: Arc<HttpConfig>,
    stats: Arc<HttpStats>,
    clock: Clock,
    cache: FileCache,
    /// The request just answered queued a `SendFile`.
    streamed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A head is (or may be) arriving; the header timeout is armed.
    Head,
    /// Between requests on a kept-alive connection; the idle timeout is armed.
    Idle,
    /// A closing answer is queued; input is discarded.
    Closing,
}

/// Per-connection state.
#[derive(Debug)]
pub struct HttpConn {
    peer: SocketAddr,
    phase: Phase,
}

/// What the response head and the log need to know of a request.
struct Req<'a> {
    line: &'a [u8],
    referer: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    minor: u8,
    head_only: bool,
    keep: bool,
}

impl<'a> Req<'a> {
    fn of(head: &Head<'a>) -> Req<'a> {
        Req {
            line: head.line,
            referer: head.referer,
            user_agent: head.user_agent,
            minor: head.minor,
            head_only: head.method == Method::Head,
            keep: head.keep_alive && !head.has_body,
        }
    }

    fn unparsed(line: &'a [u8]) -> Req<'a> {
        Req {
            line,
            referer: None,
            user_agent: None,
            minor: 1,
            head_only: false,
            keep: false,
        }
    }
}

fn html_page(code: u16) -> String {
    let r = reason(code);
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {r}</title></head>\
         <body><h1>{code} {r}</h1></body></html>\n"
    )
}

impl Http {
    pub fn new(cfg: Arc<HttpConfig>) -> Http {
        Http::with_stats(cfg, Arc::default())
    }

    /// An instance counting into existing counters.
    pub fn with_stats(cfg: Arc<HttpConfig>, stats: Arc<HttpStats>) -> Http {
        Http {
            cache: FileCache::new(cfg.file_cache),
            cfg,
            stats,
            clock: Clock::new(),
            streamed: false,
        }
    }

    pub fn stats(&self) -> &Arc<HttpStats> {
        &self.stats
    }

    pub fn config(&self) -> &Arc<HttpConfig> {
        &self.cfg
    }

    /// The status line and common headers, through `Connection`; the caller adds its
    /// own headers and the blank line.
    fn head(
        &mut self,
        code: u16,
        req: &Req<'_>,
        content_type: Option<&str>,
        len: Option<u64>,
    ) -> String {
        self.clock.tick();
        let mut h = String::with_capacity(256);
        // `write!` into a String cannot fail.
        let _ = write!(
            h,
            "HTTP/1.1 {code} {}\r\nServer: {}\r\nDate: {}\r\n",
            reason(code),
            self.cfg.server_name,
            self.clock.http
        );
        if let Some(t) = content_type {
            let _ = write!(h, "Content-Type: {t}\r\n");
        }
        if let Some(n) = len {
            let _ = write!(h, "Content-Length: {n}\r\n");
        }
        if !req.keep {
            h.push_str("Connection: close\r\n");
        } else if req.minor == 0 {
            h.push_str("Connection: keep-alive\r\n");
        }
        h
    }

    /// Counts and logs one answered request.
    fn account(&mut self, peer: SocketAddr, req: &Req<'_>, code: u16, body: u64) {
        self.stats.response(code, body);
        if let Some(log) = &self.cfg.access_log {
            self.clock.tick();
            log.line(
                Combined {
                    host: peer.ip(),
                    time: &self.clock.clf,
                    request: req.line,
                    status: code,
                    bytes: body,
                    referer: req.referer,
                    user_agent: req.user_agent,
                }
                .format(),
            );
        }
    }

    /// A status with its small HTML page (and any extra header lines, each ending in
    /// CRLF). Returns whether the connection stays open.
    fn page(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        req: &mut Req<'_>,
        status: Status,
        extra: &str,
        out: &mut Outbox,
    ) -> bool {
        if status.closes() {
            req.keep = false;
        }
        let code = status.code();
        let body = html_page(code);
        let mut h = self.head(
            code,
            req,
            Some("text/html; charset=utf-8"),
            Some(body.len() as u64),
        );
        h.push_str(extra);
        h.push_str("\r\n");
        let sent = if req.head_only {
            0
        } else {
            h.push_str(&body);
            body.len() as u64
        };
        out.send(id, h.into_bytes());
        self.account(peer, req, code, sent);
        req.keep
    }

    /// Answers one complete request; returns whether the connection stays open.
    fn serve(&mut self, id: ConnId, peer: SocketAddr, head: &Head<'_>, out: &mut Outbox) -> bool {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = Req::of(head);
        let method = match head.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Other(m) => {
                let status = if KNOWN_METHODS.contains(&m) {
                    Status::MethodNotAllowed
                } else {
                    Status::NotImplemented
                };
                return self.page(id, peer, &mut req, status, "Allow: GET, HEAD\r\n", out);
            }
        };
        let target = match parse_target(head.target) {
            Ok(t) => t,
            Err(status) => return self.page(id, peer, &mut req, status, "", out),
        };
        if !self.cfg.routes.is_empty() {
            let path = target.absolute();
            let cfg = Arc::clone(&self.cfg);
            if let Some((_, handler)) = cfg.routes.iter().find(|(p, _)| *p == path) {
                let resp = handler(&RouteRequest {
                    method,
                    path: &path,
                    query: target.query,
                    peer,
                });
                return self.route_reply(id, peer, &mut req, resp, out);
            }
        }
        self.clock.tick();
        let now = self.clock.secs;
        // "/dir" and "/dir/" answer differently (a redirect, the index), so the
        // trailing slash is part of the key.
        let mut key = target.rel;
        if target.trailing_slash {
            key.push(b'/');
        }
        if let Some(hit) = self.cache.get(&key, now) {
            return self.send_file(id, peer, head, &mut req, &hit, out);
        }
        // Not cached (at most once a second per path): the path itself, without the
        // key's slash.
        let path = key[..key.len() - usize::from(target.trailing_slash)].to_vec();
        let cfg = Arc::clone(&self.cfg);
        let (file, meta, rel) = match cfg.dir.open_file(&path) {
            Err(status) => return self.page(id, peer, &mut req, status, "", out),
            Ok((file, meta)) if meta.is_file() => (file, meta, path),
            Ok((_, meta)) if meta.is_dir() => {
                if !target.trailing_slash {
                    // Relative links in the index need the slash: redirect, as nginx does.
                    let mut location = format!("Location: {}/", target.raw_path);
                    if let Some(q) = target.query {
                        location.push('?');
                        location.push_str(q);
                    }
                    location.push_str("\r\n");
                    return self.page(id, peer, &mut req, Status::MovedPermanently, &location, out);
                }
                let mut index = path;
                if !index.is_empty() {
                    index.push(b'/');
                }
                index.extend_from_slice(cfg.index.as_bytes());
                match cfg.dir.open_file(&index) {
                    Ok((file, meta)) if meta.is_file() => (file, meta, index),
                    // No index: no listing either.
                    Ok(_) | Err(Status::NotFound) => {
                        return self.page(id, peer, &mut req, Status::Forbidden, "", out)
                    }
                    Err(status) => return self.page(id, peer, &mut req, status, "", out),
                }
            }
            // FIFOs, sockets, devices.
            Ok(_) => return self.page(id, peer, &mut req, Status::Forbidden, "", out),
        };
        let len = meta.len();
        // A small file is read whole now, so every answer from this entry is of one
        // version of it; a file that fails or shrinks under the read is kept without
        // its bytes and the send path meets the same error.
        let body = (len <= cfg.inline_max)
            .then(|| {
                // `len` is at most `inline_max`, so the buffer is bounded.
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, 0)
                    .ok()
                    .map(|()| Bytes::from(buf))
            })
            .flatten();
        let entry = Arc::new(Cached {
            file: Arc::new(file),
            len,
            mtime: meta.mtime(),
            last_modified: format_http_date(meta.mtime()),
            content_type: content_type(&rel),
            body,
        });
        self.cache.insert(key, Arc::clone(&entry), now);
        self.send_file(id, peer, head, &mut req, &entry, out)
    }

    fn send_file(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        head: &Head<'_>,
        req: &mut Req<'_>,
        f: &Cached,
        out: &mut Outbox,
    ) -> bool {
        let len = f.len;
        let since = head
            .if_modified_since
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(parse_http_date);
        if since.is_some_and(|t| f.mtime <= t) {
            let mut h = self.head(304, req, None, None);
            let _ = write!(h, "Last-Modified: {}\r\n\r\n", f.last_modified);
            out.send(id, h.into_bytes());
            self.account(peer, req, 304, 0);
            return req.keep;
        }
        // If-Range with anything but our exact Last-Modified (we send no ETags): the
        // representation may have changed, so the whole file.
        let range_ok = head
            .if_range
            .map_or(true, |v| v.trim_ascii() == f.last_modified.as_bytes());
        let spec = match head.range {
            Some(r) if range_ok => parse_range(r, len),
            _ => RangeSpec::Whole,
        };
        let (code, offset, count) = match spec {
            RangeSpec::Whole => (200, 0, len),
            RangeSpec::Part { start, end } => (206, start, end - start + 1),
            RangeSpec::Unsatisfiable => {
                let extra = format!("Content-Range: bytes */{len}\r\n");
                return self.page(id, peer, req, Status::RangeNotSatisfiable, &extra, out);
            }
        };
        let mut h = self.head(code, req, Some(f.content_type), Some(count));
        let _ = write!(
            h,
            "Last-Modified: {}\r\nAccept-Ranges: bytes\r\n",
            f.last_modified
        );
        if code == 206 {
            let _ = write!(
                h,
                "Content-Range: bytes {}-{}/{len}\r\n",
                offset,
                offset + count - 1
            );
        }
        h.push_str("\r\n");
        let mut buf = h.into_bytes();
        let sent = if req.head_only || count == 0 {
            out.send(id, buf);
            0
        } else if let Some(body) = &f.body {
            // Ranges were checked against `len`, which is the body's length.
            let part = body.slice(offset as usize..(offset + count) as usize);
            out.send(id, buf);
            out.send(id, part);
            count
        } else if count <= self.cfg.inline_max {
            // `count` is at most `inline_max`, so the cast and the buffer are bounded.
            let start = buf.len();
            buf.resize(start + count as usize, 0);
            if let Err(e) = f.file.read_exact_at(&mut buf[start..], offset) {
                // A file that shrank or failed under us: let the model's sendfile hit
                // the same error and drop the connection, as for a large file.
                tracing::debug!(error = %e, "inline read failed; falling back to sendfile");
                buf.truncate(start);
                out.send(id, buf);
                out.send_file(id, Arc::clone(&f.file), offset, count);
            } else {
                out.send(id, buf);
            }
            count
        } else {
            out.send(id, buf);
            out.send_file(id, Arc::clone(&f.file), offset, count);
            self.streamed = true;
            count
        };
        self.account(peer, req, code, sent);
        req.keep
    }

    fn route_reply(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        req: &mut Req<'_>,
        resp: RouteResponse,
        out: &mut Outbox,
    ) -> bool {
        let code = if (100..=599).contains(&resp.status) {
            resp.status
        } else {
            500
        };
        let ctype: String = resp
            .content_type
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let mut h = self.head(code, req, Some(&ctype), Some(resp.body.len() as u64));
        h.push_str("Cache-Control: no-store\r\n\r\n");
        out.send(id, h.into_bytes());
        let sent = if req.head_only || resp.body.is_empty() {
            0
        } else {
            let n = resp.body.len() as u64;
            out.send(id, resp.body);
            n
        };
        self.account(peer, req, code, sent);
        req.keep
    }

    fn reject(
        &mut self,
        id: ConnId,
        conn: &mut HttpConn,
        status: Status,
        line: &[u8],
        out: &mut Outbox,
    ) {
        let mut req = Req::unparsed(line);
        self.page(id, conn.peer, &mut req, status, "", out);
        self.close(id, conn, out);
    }

    fn close(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        conn.phase = Phase::Closing;
        out.close(id);
        // A client that does not read its last answer is let go after the idle time.
        out.deadline(id, Some(self.cfg.idle_timeout));
    }
}

impl Protocol for Http {
    type Conn = HttpConn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> HttpConn {
        out.deadline(id, Some(self.cfg.header_timeout));
        HttpConn {
            peer,
            phase: Phase::Head,
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut HttpConn, input: &[u8], out: &mut Outbox) -> usize {
        let mut consumed = 0;
        let mut answered = false;
        while conn.phase != Phase::Closing && consumed < input.len() {
            match parse_head(&input[consumed..]) {
                Parsed::Partial => {
                    if conn.phase == Phase::Idle {
                        // The next head has started: from now on it has the header
                        // timeout to complete, however slowly its bytes trickle in.
                        conn.phase = Phase::Head;
                        out.deadline(id, Some(self.cfg.header_timeout));
                    }
                    return consumed;
                }
                Parsed::Reject { status, line } => {
                    self.stats.requests.fetch_add(1, Ordering::Relaxed);
                    self.reject(id, conn, status, line, out);
                }
                Parsed::Complete { head, len } => {
                    consumed += len;
                    self.streamed = false;
                    if self.serve(id, conn.peer, &head, out) {
                        conn.phase = Phase::Idle;
                        answered = true;
                        if self.streamed {
                            // One streamed file at a time: the model offers the rest
                            // of a pipeline again once the file is out, so a burst of
                            // pipelined requests cannot hold a descriptor each.
                            break;
                        }
                    } else {
                        self.close(id, conn, out);
                    }
                }
            }
        }
        if conn.phase == Phase::Closing {
            return input.len();
        }
        if answered {
            out.deadline(id, Some(self.cfg.idle_timeout));
        }
        consumed
    }

    fn timeout(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        match conn.phase {
            Phase::Head => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                self.reject(id, conn, Status::RequestTimeout, b"", out);
            }
            Phase::Idle | Phase::Closing => {
                conn.phase = Phase::Closing;
                out.close(id);
            }
        }
    }

    fn closed(&mut self, _id: ConnId, _conn: HttpConn, _out: &mut Outbox) {}

    fn tick(&mut self, _out: &mut Outbox) {
        self.clock.tick();
        self.cache.expire(self.clock.secs);
    }

    /// Only a kept-alive connection between requests is idle: a fresh one has a
    /// request on its way, and a drain that closed it would reset a request the
    /// server had already accepted.
    fn idle(&self, conn: &HttpConn) -> bool {
        conn.phase != Phase::Head
    }

    fn refusal(&mut self) -> Bytes {
        let req = Req::unparsed(b"");
        let body = html_page(503);
        let mut h = self.head(
            503,
            &req,
            Some("text/html; charset=utf-8"),
            Some(body.len() as u64),
        );
        h.push_str("Retry-After: 1\r\n\r\n");
        h.push_str(&body);
        self.stats.response(503, body.len() as u64);
        Bytes::from(h.into_bytes())
    }
}

#[cfg(test)]
mod tests;
