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
//! connection is in one of four phases: waiting for a head (the header timeout is
//! armed once, when its first byte arrives, so trickling bytes cannot extend it),
//! skipping the body of a GET or HEAD already answered (the same timeout), idle
//! between requests (the keep-alive timeout), or closing (input is discarded).
//!
//! Conditionals follow RFC 9110 §13.2.2 against a strong ETag formatted once per
//! cached file; several ranges become one `multipart/byteranges` answer whose parts
//! are slices of the cached bytes or `sendfile` actions.
//!
//! Pieces: `request` frames and parses heads (and ranges), `body` skips request
//! bodies, `path` turns a target into a relative path or a refusal, `fs` opens it
//! beneath the root, `cache` keeps it open for a second, `mime` and `date` format
//! headers.
//! Directories serve their `index.html`; without one they are a 403, or, with
//! [`Features::autoindex`], a listing (`listing`), so by default a directory's
//! contents are only public file by file.
//!
//! A file may have several representations (`encoding`): precompressed siblings
//! (`FILE.br`, `FILE.zst`, `FILE.gz`, with [`Features::precompressed`]) and bodies
//! compressed on the fly and kept in memory ([`Features::compress`]); `Accept-Encoding`
//! picks one, and from then on it is answered like any file, with its own ETag.
//!
//! The capstone's virtual hosts (`sites`): each site is a whole [`HttpConfig`] with
//! its own root and file cache; a request's `Host` picks one before anything else,
//! and its [`SiteRules`] add redirects, header rules, error pages, a fallback and,
//! on TLS connections only, `Strict-Transport-Security`.

mod access;
mod body;
mod cache;
mod date;
mod encoding;
mod fs;
mod h2;
mod listing;
mod mime;
mod path;
mod request;
mod sites;

pub use access::{AccessError, AccessRule, Cidr, Htpasswd};
pub use date::{format_clf_date, format_http_date, format_iso_date, parse_http_date};
pub use encoding::Coding;
pub use mime::content_type;
pub use path::{parse_target, percent_decode, Target};
pub use request::{
    parse_head, parse_range, parse_ranges, BodyFraming, FieldLines, Head, Method, Parsed,
    RangeSpec, Ranges, MAX_BODY, MAX_HEAD, MAX_HEADERS, MAX_RANGES, MAX_URI,
};
pub use sites::{
    valid_field_name, valid_field_value, HeaderRule, PathMatch, Redirect, SiteRules, SiteTable,
};

use crate::log::{AccessLog, Combined};
use crate::proto::{ConnId, Outbox, Protocol};
use body::{Chunked, Discard};
use bytes::Bytes;
use cache::{Cached, FileCache};
use encoding::{Accept, CompressCache};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The statuses this server produces itself (routes may return any code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    PartialContent,
    MovedPermanently,
    NotModified,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PreconditionFailed,
    PayloadTooLarge,
    RangeNotSatisfiable,
    UriTooLong,
    HeaderFieldsTooLarge,
    InternalServerError,
    NotImplemented,
    ServiceUnavailable,
    HttpVersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PreconditionFailed => 412,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::HttpVersionNotSupported => 505,
        }
    }

    /// After these the connection cannot be trusted to be in sync (or should not be
    /// kept), so it closes.
    fn closes(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::RequestTimeout
                | Status::PayloadTooLarge
                | Status::UriTooLong
                | Status::HeaderFieldsTooLarge
                | Status::InternalServerError
                | Status::ServiceUnavailable
                | Status::HttpVersionNotSupported
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
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
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

/// Optional static-serving features, all off by default (as in nginx, where
/// `gzip_static`, `gzip`, `autoindex`, `allow`/`deny` and `auth_basic` are off until
/// configured).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// Serve `FILE.br`, `FILE.zst` or `FILE.gz` in place of `FILE` when the request's
    /// `Accept-Encoding` prefers that coding (nginx's `gzip_static`).
    pub precompressed: bool,
    /// Codings to compress text-like files with on the fly (empty: none).
    pub compress: Vec<Coding>,
    /// Files smaller than this go out as they are.
    pub compress_min_size: u64,
    /// Files larger than this (or than the cache budget) go out as they are: they
    /// would be compressed on the event loop.
    pub compress_max_size: u64,
    /// Bytes of compressed bodies kept in memory, shared by every loop.
    pub compress_cache: u64,
    /// List a directory that has no index file.
    pub autoindex: bool,
    /// Address lists and Basic authentication by path prefix (see `access`).
    pub access: Vec<AccessRule>,
}

impl Default for Features {
    fn default() -> Features {
        Features {
            precompressed: false,
            compress: Vec::new(),
            compress_min_size: 1024,
            compress_max_size: 1 << 20,
            compress_cache: 32 << 20,
            autoindex: false,
            access: Vec::new(),
        }
    }
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
    /// Files a directory serves when it has no `index`, tried in order.
    pub index_more: Vec<String>,
    /// Error pages, header rules, redirects, fallback and HSTS (capstone sites).
    pub site: SiteRules,
    /// Exact normalised paths answered by a function instead of a file (GET and HEAD
    /// only), checked before the file lookup.
    pub routes: Vec<(String, RouteHandler)>,
    pub access_log: Option<AccessLog>,
    /// Access log lines end with the upstream fields (see [`crate::log::push_upstream`]):
    /// a server that proxies some requests logs them for every request.
    pub log_upstream: bool,
    /// Files (or ranges) up to this size are read into the response head's buffer and
    /// leave in one write, one packet, as lighttpd does; larger ones are streamed with
    /// `sendfile(2)` and never held in memory. Keep it far below the model's
    /// `Limits::out_limit`, which counts these bytes as queued memory.
    pub inline_max: u64,
    /// How many opened files each worker keeps for the rest of the current second
    /// (see `cache`); 0 opens every request's file afresh.
    pub file_cache: usize,
    /// Compression, listings and access control.
    pub features: Features,
    /// Speak HTTP/2 too: `h2` when TLS's ALPN picks it, `h2c` on a plaintext
    /// connection that opens with the HTTP/2 preface.
    pub http2: bool,
    dir: fs::Root,
    /// Shared by every site of a server (see [`HttpConfig::share_compressed`]).
    compressed: Arc<OnceLock<CompressCache>>,
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
            .field("features", &self.features)
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
            index_more: Vec::new(),
            site: SiteRules::default(),
            routes: Vec::new(),
            access_log: None,
            log_upstream: false,
            inline_max: 16 * 1024,
            file_cache: 256,
            features: Features::default(),
            http2: true,
            dir,
            compressed: Arc::default(),
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

    /// The compressed bodies, made with the budget of the first request that needs it.
    fn compressed(&self) -> &CompressCache {
        self.compressed
            .get_or_init(|| CompressCache::new(self.features.compress_cache))
    }

    /// Keeps compressed bodies in `other`'s cache, so several sites share one byte
    /// budget (entries are told apart by ETag, which names the file's inode).
    pub fn share_compressed(&mut self, other: &HttpConfig) {
        self.compressed = Arc::clone(&other.compressed);
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
        let now = wall_secs();
        if now != self.secs {
            self.secs = now;
            self.http = format_http_date(now);
            self.clf = format_clf_date(now);
        }
    }
}

/// The wall-clock second, read from the coarse clock: a `Date` needs the second
/// only, and this read (done for every request) costs no timer access; it lags the
/// precise clock by at most a scheduler tick.
fn wall_secs() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
        return ts.tv_sec;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The HTTP protocol: one per worker thread, cheap to build from a shared config.
pub struct Http {
    cfg: Arc<HttpConfig>,
    stats: Arc<HttpStats>,
    clock: Clock,
    cache: FileCache,
    /// The request just answered queued a `SendFile`.
    streamed: bool,
    /// Credentials already hashed, and their verdicts.
    verified: access::Verified,
    /// Numbers the `multipart/byteranges` boundaries (seeded from the clock, so two
    /// workers or runs do not repeat each other's).
    boundary: u64,
    /// Virtual hosts: the site each request is served by (`None`: one site, `cfg`).
    table: Option<Arc<SiteTable>>,
    /// The other sites' state while `current` is in `cfg`, `cache` and `verified`.
    parked: Vec<Option<Parked>>,
    current: usize,
    /// HTTP/2: the read buffer of files sent as DATA, the core's answer, and the
    /// request line the access log is given.
    h2_buf: Vec<u8>,
    h2_scratch: Outbox,
    h2_line: Vec<u8>,
    h2_memo: h2::Memo,
    /// Return after each whole request (head and body), so a layer above sees every
    /// head (see [`Http::one_request_per_call`]).
    stepwise: bool,
}

/// A site's per-loop state while another site is being served.
struct Parked {
    cfg: Arc<HttpConfig>,
    cache: FileCache,
    verified: access::Verified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A head is (or may be) arriving; the header timeout is armed.
    Head,
    /// The request is answered but its body (a GET's or HEAD's) is still arriving,
    /// to be thrown away; the header timeout is armed.
    Body(Discard),
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
    /// The connection came over TLS (HSTS is only ever sent then).
    tls: bool,
    /// No byte has arrived yet: the HTTP/2 preface may still come.
    fresh: bool,
    /// An HTTP/2 connection.
    h2: Option<Box<h2::H2>>,
}

/// What the response head and the log need to know of a request.
struct Req<'a> {
    line: &'a [u8],
    referer: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    minor: u8,
    head_only: bool,
    keep: bool,
    /// Over TLS: the site's HSTS header goes out.
    tls: bool,
    /// The site's header lines for this path (sent on answers below 400).
    site_headers: String,
}

impl<'a> Req<'a> {
    fn of(head: &Head<'a>) -> Req<'a> {
        Req {
            line: head.line,
            referer: head.referer,
            user_agent: head.user_agent,
            minor: head.minor,
            head_only: head.method == Method::Head,
            // A GET's or HEAD's body is read and dropped; for another method the 405
            // or 501 goes out at once and the connection closes rather than read it.
            keep: head.keep_alive
                && (!head.has_body || matches!(head.method, Method::Get | Method::Head)),
            tls: false,
            site_headers: String::new(),
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
            tls: false,
            site_headers: String::new(),
        }
    }
}

/// A request whose whole answer may be made once and reused for the rest of the
/// second (see `cache`): a `GET` of the whole file, kept alive, over cleartext (no
/// HSTS header), with no conditional or range header and no site header lines.
/// Told apart by HTTP version (1.0's answer says `Connection: keep-alive`) and by
/// transport (over TLS it may carry `Strict-Transport-Security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Form {
    minor: u8,
    tls: bool,
}

impl Form {
    fn of(head: &Head<'_>, req: &Req<'_>) -> Option<Form> {
        let plain = head.method == Method::Get
            && req.keep
            && req.site_headers.is_empty()
            && head.range.is_none()
            && head.if_modified_since.is_none()
            && head.if_unmodified_since.is_none()
            && !head.if_match.is_present()
            && !head.if_none_match.is_present();
        plain.then_some(Form {
            minor: head.minor,
            tls: req.tls,
        })
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
            verified: access::Verified::default(),
            boundary: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            table: None,
            parked: Vec::new(),
            current: 0,
            h2_buf: Vec::new(),
            h2_scratch: Outbox::new(),
            h2_line: Vec::new(),
            h2_memo: h2::Memo::default(),
            stepwise: false,
        }
    }

    /// From now on `data` returns after each whole request, body included, leaving
    /// pipelined ones to the next call: a layer that routes requests (the reverse
    /// proxy) then sees every head, including one that follows a request body.
    pub fn one_request_per_call(&mut self) {
        self.stepwise = true;
    }

    /// An instance serving several sites, each request by its `Host`.
    pub fn with_sites(table: Arc<SiteTable>, stats: Arc<HttpStats>) -> Http {
        // A table always holds its default site (see `SiteTable::new`).
        let first = Arc::clone(&table.sites[table.default]);
        let mut http = Http::with_stats(first, stats);
        http.current = table.default;
        http.parked = table
            .sites
            .iter()
            .enumerate()
            .map(|(i, cfg)| {
                (i != table.default).then(|| Parked {
                    cache: FileCache::new(cfg.file_cache),
                    cfg: Arc::clone(cfg),
                    verified: access::Verified::default(),
                })
            })
            .collect();
        http.table = Some(table);
        http
    }

    /// Makes site `i` the one `cfg`, `cache` and `verified` belong to.
    fn enter(&mut self, i: usize) {
        if i == self.current {
            return;
        }
        let Some(next) = self.parked.get_mut(i).and_then(Option::take) else {
            return;
        };
        let prev = Parked {
            cfg: std::mem::replace(&mut self.cfg, next.cfg),
            cache: std::mem::replace(&mut self.cache, next.cache),
            verified: std::mem::replace(&mut self.verified, next.verified),
        };
        self.parked[self.current] = Some(prev);
        self.current = i;
    }

    /// Whether the next input of `conn` starts a request head (not a body being
    /// skipped, not a closing connection): where a layer above may take a request.
    pub fn at_head(&self, conn: &HttpConn) -> bool {
        matches!(conn.phase, Phase::Head | Phase::Idle)
    }

    /// The index of the site a `Host` picks (0 with one site).
    pub fn site_of(&self, host: Option<&[u8]>) -> usize {
        self.table.as_ref().map_or(0, |t| t.pick(host))
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
        // Room for every header of a file answer, ETag included, in one allocation.
        let mut h = String::with_capacity(384);
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
        if req.tls {
            if let Some(v) = &self.cfg.site.hsts {
                let _ = write!(h, "Strict-Transport-Security: {v}\r\n");
            }
        }
        if code < 400 {
            h.push_str(&req.site_headers);
        }
        h
    }

    /// Counts and logs a request a layer above answered (a proxied one), by its
    /// request line, `Referer` and `User-Agent`.
    pub fn account_for(
        &mut self,
        peer: SocketAddr,
        line: &[u8],
        (referer, user_agent): (Option<&[u8]>, Option<&[u8]>),
        code: u16,
        body: u64,
        tried: &[(SocketAddr, Duration)],
    ) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let req = Req {
            referer,
            user_agent,
            ..Req::unparsed(line)
        };
        self.account_tried(peer, &req, code, body, tried);
    }

    /// Counts and logs one answered request.
    fn account(&mut self, peer: SocketAddr, req: &Req<'_>, code: u16, body: u64) {
        self.account_tried(peer, req, code, body, &[]);
    }

    /// [`Http::account`] for a request answered from the upstream servers `tried`.
    fn account_tried(
        &mut self,
        peer: SocketAddr,
        req: &Req<'_>,
        code: u16,
        body: u64,
        tried: &[(SocketAddr, Duration)],
    ) {
        self.stats.response(code, body);
        if let Some(log) = &self.cfg.access_log {
            self.clock.tick();
            let mut line = Combined {
                host: peer.ip(),
                time: &self.clock.clf,
                request: req.line,
                status: code,
                bytes: body,
                referer: req.referer,
                user_agent: req.user_agent,
            }
            .format();
            if self.cfg.log_upstream {
                crate::log::push_upstream(&mut line, tried);
            }
            log.line(line);
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
        let custom = self.error_page(code);
        let (ctype, body) = match &custom {
            Some((ctype, body)) => (*ctype, &body[..]),
            None => ("text/html; charset=utf-8", &[][..]),
        };
        let builtin;
        let body = if custom.is_some() {
            body
        } else {
            builtin = html_page(code);
            builtin.as_bytes()
        };
        let mut h = self.head(code, req, Some(ctype), Some(body.len() as u64));
        h.push_str(extra);
        h.push_str("\r\n");
        let mut bytes = h.into_bytes();
        let sent = if req.head_only {
            0
        } else {
            bytes.extend_from_slice(body);
            body.len() as u64
        };
        out.send(id, bytes);
        self.account(peer, req, code, sent);
        req.keep
    }

    /// The site's own page for an error status: its content type and bytes, read
    /// afresh (errors are rare; a page larger than [`MAX_ERROR_PAGE`] or one that
    /// cannot be read leaves the built-in page).
    fn error_page(&self, code: u16) -> Option<(&'static str, Vec<u8>)> {
        if code < 400 {
            return None;
        }
        let path = self.cfg.site.error_page(code)?;
        let rel = path.trim_start_matches('/').as_bytes();
        let (file, meta) = self.cfg.dir.open_file(rel).ok()?;
        if !meta.is_file() || meta.len() > MAX_ERROR_PAGE {
            return None;
        }
        let mut buf = vec![0u8; meta.len() as usize];
        file.read_exact_at(&mut buf, 0).ok()?;
        Some((content_type(rel), buf))
    }

    /// A redirect configured for the site (`code` is 301, 302, 307 or 308).
    fn redirect(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        req: &mut Req<'_>,
        code: u16,
        location: &str,
        out: &mut Outbox,
    ) -> bool {
        let body = html_page(code);
        let mut h = self.head(
            code,
            req,
            Some("text/html; charset=utf-8"),
            Some(body.len() as u64),
        );
        let _ = write!(h, "Location: {location}\r\n\r\n");
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
    fn serve(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        tls: bool,
        head: &Head<'_>,
        out: &mut Outbox,
    ) -> bool {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(table) = &self.table {
            let i = table.pick(head.host);
            self.enter(i);
        }
        let mut req = Req::of(head);
        req.tls = tls;
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
        let rules = &self.cfg.site;
        if !rules.redirects.is_empty() || !rules.headers.is_empty() {
            let mut path = target.absolute();
            if target.trailing_slash && !target.rel.is_empty() {
                path.push('/');
            }
            if let Some((code, to)) = rules.redirect_for(&path, target.query) {
                return self.redirect(id, peer, &mut req, code, &to, out);
            }
            req.site_headers = rules.header_lines(&path);
        }
        if !self.cfg.features.access.is_empty() {
            if let Some((status, extra)) = self.refuse(head, peer, &target) {
                return self.page(id, peer, &mut req, status, &extra, out);
            }
        }
        if !self.cfg.routes.is_empty() {
            // Compared with the route's path as it is: the path of a file request
            // (the common case) is not made into a string at all.
            let is_route =
                |p: &str| p.strip_prefix('/').map(str::as_bytes) == Some(&target.rel[..]);
            let cfg = Arc::clone(&self.cfg);
            if let Some((_, handler)) = cfg.routes.iter().find(|(p, _)| is_route(p)) {
                let path = target.absolute();
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
        let key: Cow<'_, [u8]> = if target.trailing_slash {
            let mut k = target.rel.into_owned();
            k.push(b'/');
            Cow::Owned(k)
        } else {
            target.rel
        };
        let form = Form::of(head, &req);
        if let Some(slot) = self.cache.get(&key, now) {
            let rep = Http::representation(&self.cfg, head, &slot.entry);
            let reply = form.and_then(|f| slot.reply(&rep, f));
            if let Some(bytes) = reply {
                // The common case: an answer made earlier this second, sent as it is.
                let sent = rep.len;
                out.send(id, bytes);
                self.account(peer, &req, 200, sent);
                return req.keep;
            }
            if let (Some(f), Some(body)) = (form, &rep.body) {
                // Made once a second per file and request form, then reused.
                let mut h = self.file_head(200, &req, &rep, 0, rep.len);
                h.push_str("\r\n");
                let mut whole = h.into_bytes();
                whole.extend_from_slice(body);
                let whole = Bytes::from(whole);
                self.cache.keep_reply(&key, &rep, f, whole.clone());
                out.send(id, whole);
                self.account(peer, &req, 200, rep.len);
                return req.keep;
            }
            return self.send_file(id, peer, head, &mut req, &rep, out);
        }
        // Not cached (at most once a second per path): the path itself, without the
        // key's slash.
        let path = key[..key.len() - usize::from(target.trailing_slash)].to_vec();
        let cfg = Arc::clone(&self.cfg);
        // try_files: a path that names nothing is the fallback file, if one is set.
        let fallback = |status| match &cfg.site.fallback {
            Some(f) if status == Status::NotFound => {
                let rel = f.trim_start_matches('/').as_bytes().to_vec();
                match cfg.dir.open_file(&rel) {
                    Ok((file, meta)) if meta.is_file() => Ok((file, meta, rel)),
                    _ => Err(status),
                }
            }
            _ => Err(status),
        };
        let (file, meta, rel) = match cfg.dir.open_file(&path) {
            Err(status) => match fallback(status) {
                Ok(found) => found,
                Err(status) => return self.page(id, peer, &mut req, status, "", out),
            },
            // "/file.txt/" names a directory that is not there (ENOTDIR), as nginx says.
            Ok((_, meta)) if meta.is_file() && target.trailing_slash => {
                match fallback(Status::NotFound) {
                    Ok(found) => found,
                    Err(status) => return self.page(id, peer, &mut req, status, "", out),
                }
            }
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
                let mut dir = path;
                if !dir.is_empty() {
                    dir.push(b'/');
                }
                let mut found = Err(Status::NotFound);
                for name in std::iter::once(&cfg.index).chain(&cfg.index_more) {
                    let mut index = dir.clone();
                    index.extend_from_slice(name.as_bytes());
                    found = match cfg.dir.open_file(&index) {
                        Ok((file, meta)) if meta.is_file() => Ok((file, meta, index)),
                        Ok(_) | Err(Status::NotFound) => continue,
                        Err(status) => Err(status),
                    };
                    break;
                }
                match found {
                    Ok(found) => found,
                    Err(Status::NotFound) if cfg.features.autoindex => {
                        let dir = dir.strip_suffix(b"/").unwrap_or(&dir);
                        let dir = Target {
                            rel: Cow::Borrowed(dir),
                            trailing_slash: true,
                            raw_path: target.raw_path,
                            query: target.query,
                        };
                        return self.listing(id, peer, &mut req, &dir, out);
                    }
                    // No index and no listing.
                    Err(Status::NotFound) => {
                        return self.page(id, peer, &mut req, Status::Forbidden, "", out)
                    }
                    Err(status) => return self.page(id, peer, &mut req, status, "", out),
                }
            }
            // FIFOs, sockets, devices.
            Ok(_) => return self.page(id, peer, &mut req, Status::Forbidden, "", out),
        };
        let ctype = content_type(&rel);
        let mut entry = self.load(file, &meta, &rel, ctype, None);
        if cfg.features.precompressed {
            for coding in Coding::ALL {
                let mut sib = rel.clone();
                sib.extend_from_slice(coding.suffix().as_bytes());
                if let Ok((f, m)) = cfg.dir.open_file(&sib) {
                    if m.is_file() {
                        let s = self.load(f, &m, &sib, ctype, Some(coding));
                        entry.siblings.push(Arc::new(s));
                    }
                }
            }
        }
        let f = &cfg.features;
        entry.compress = !f.compress.is_empty()
            && encoding::compressible(ctype)
            && (f.compress_min_size..=f.compress_max_size.min(f.compress_cache))
                .contains(&entry.len);
        entry.vary = entry.compress || !entry.siblings.is_empty();
        let entry = Arc::new(entry);
        self.cache.insert(key.into_owned(), Arc::clone(&entry), now);
        let rep = Http::representation(&self.cfg, head, &entry);
        self.send_file(id, peer, head, &mut req, &rep, out)
    }

    /// The 403 or 401 (with its header) that the access rule for `target` gives
    /// this request, if any.
    fn refuse(
        &mut self,
        head: &Head<'_>,
        peer: SocketAddr,
        target: &Target<'_>,
    ) -> Option<(Status, String)> {
        let mut path = target.absolute();
        if target.trailing_slash && !target.rel.is_empty() {
            path.push('/');
        }
        let cfg = Arc::clone(&self.cfg);
        let (i, rule) = access::rule_for(&cfg.features.access, &path)?;
        if !rule.admits(peer.ip()) {
            return Some((Status::Forbidden, String::new()));
        }
        let (users, realm) = rule.auth.as_ref()?;
        self.clock.tick();
        if self
            .verified
            .check(i, users, head.authorization, self.clock.secs)
        {
            return None;
        }
        Some((
            Status::Unauthorized,
            format!("WWW-Authenticate: Basic realm=\"{realm}\", charset=\"UTF-8\"\r\n"),
        ))
    }

    /// A cache entry for an open file (`rel` as the file cache and compression know it).
    fn load(
        &self,
        file: std::fs::File,
        meta: &std::fs::Metadata,
        rel: &[u8],
        content_type: &'static str,
        coding: Option<Coding>,
    ) -> Cached {
        let len = meta.len();
        // A small file is read whole now, so every answer from this entry is of one
        // version of it; a file that fails or shrinks under the read is kept without
        // its bytes and the send path meets the same error.
        let body = (len <= self.cfg.inline_max)
            .then(|| {
                // `len` is at most `inline_max`, so the buffer is bounded.
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, 0)
                    .ok()
                    .map(|()| Bytes::from(buf))
            })
            .flatten();
        Cached {
            file: Arc::new(file),
            len,
            etag: cache::etag(meta),
            mtime: meta.mtime(),
            last_modified: format_http_date(meta.mtime()),
            content_type,
            body,
            rel: rel.into(),
            coding,
            vary: coding.is_some(),
            siblings: Vec::new(),
            compress: false,
        }
    }

    /// The representation of `plain` this request gets: a precompressed sibling, a
    /// body compressed now (or earlier, from the shared cache), or the file itself.
    fn representation(cfg: &HttpConfig, head: &Head<'_>, plain: &Arc<Cached>) -> Arc<Cached> {
        if !plain.vary {
            return Arc::clone(plain);
        }
        // Siblings first: at equal q, a file already compressed beats compressing one.
        let on_the_fly = Coding::ALL.into_iter().filter(|c| {
            plain.compress
                && cfg.features.compress.contains(c)
                && !plain.siblings.iter().any(|s| s.coding == Some(*c))
        });
        let offered = plain
            .siblings
            .iter()
            .filter_map(|s| s.coding)
            .chain(on_the_fly);
        let Some(coding) = Accept::parse(&head.accept_encoding).choose(offered) else {
            return Arc::clone(plain);
        };
        if let Some(s) = plain.siblings.iter().find(|s| s.coding == Some(coding)) {
            return Arc::clone(s);
        }
        let cache = cfg.compressed();
        if let Some(hit) = cache.get(&plain.rel, &plain.etag, coding) {
            return hit;
        }
        // `compress` was only set for a length within the per-file limit, so this
        // read and the compression below are bounded.
        let read;
        let data: &[u8] = match &plain.body {
            Some(b) => b,
            None => {
                let mut buf = vec![0u8; plain.len as usize];
                if let Err(e) = plain.file.read_exact_at(&mut buf, 0) {
                    tracing::debug!(error = %e, "read for compression failed; sending as is");
                    return Arc::clone(plain);
                }
                read = buf;
                &read
            }
        };
        match encoding::compress(coding, data) {
            Ok(z) => {
                let size = z.len() as u64;
                let entry = Arc::new(encoding::in_memory(plain, coding, z));
                cache.insert(&plain.rel, &plain.etag, coding, Arc::clone(&entry), size);
                entry
            }
            Err(e) => {
                tracing::warn!(error = %e, coding = coding.token(), "compression failed");
                Arc::clone(plain)
            }
        }
    }

    /// A directory's listing (HTML, or JSON with `?format=json`), made afresh.
    fn listing(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        req: &mut Req<'_>,
        target: &Target<'_>,
        out: &mut Outbox,
    ) -> bool {
        let rel = &target.rel[..];
        let cfg = Arc::clone(&self.cfg);
        let dir = match cfg.dir.open_file(rel) {
            Ok((d, m)) if m.is_dir() => d,
            Ok(_) => return self.page(id, peer, req, Status::NotFound, "", out),
            Err(status) => return self.page(id, peer, req, status, "", out),
        };
        let json = target
            .query
            .is_some_and(|q| q.split('&').any(|kv| kv == "format=json"));
        let shown = percent_decode(target.raw_path.as_bytes()).unwrap_or_default();
        let (ctype, body) = match listing::render(&cfg.dir, dir, rel, &shown, json) {
            Ok(r) => r,
            Err(status) => return self.page(id, peer, req, status, "", out),
        };
        let mut h = self.head(200, req, Some(ctype), Some(body.len() as u64));
        h.push_str("Cache-Control: no-cache\r\n\r\n");
        let sent = if req.head_only {
            0
        } else {
            h.push_str(&body);
            body.len() as u64
        };
        out.send(id, h.into_bytes());
        self.account(peer, req, 200, sent);
        req.keep
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
        let date = |v: Option<&[u8]>| {
            v.and_then(|v| std::str::from_utf8(v).ok())
                .and_then(parse_http_date)
        };
        // RFC 9110 §13.2.2: If-Match, else If-Unmodified-Since (412); then
        // If-None-Match, else If-Modified-Since (304); then If-Range decides on Range.
        let precondition = if head.if_match.is_present() {
            etag_listed(&head.if_match, &f.etag, true)
        } else {
            date(head.if_unmodified_since).map_or(true, |t| f.mtime <= t)
        };
        if !precondition {
            return self.page(id, peer, req, Status::PreconditionFailed, "", out);
        }
        let not_modified = if head.if_none_match.is_present() {
            etag_listed(&head.if_none_match, &f.etag, false)
        } else {
            date(head.if_modified_since).is_some_and(|t| f.mtime <= t)
        };
        if not_modified {
            let mut h = self.head(304, req, None, None);
            let _ = write!(
                h,
                "Last-Modified: {}\r\nETag: {}\r\n",
                f.last_modified, f.etag
            );
            if f.vary {
                h.push_str("Vary: Accept-Encoding\r\n");
            }
            h.push_str("\r\n");
            out.send(id, h.into_bytes());
            self.account(peer, req, 304, 0);
            return req.keep;
        }
        // If-Range (§13.1.5): an ETag compared strongly, or exactly our date; otherwise
        // the representation may have changed, so the whole file.
        let range_ok = head.if_range.map_or(true, |v| {
            let v = v.trim_ascii();
            if v.starts_with(b"\"") || v.starts_with(b"W/") {
                v == f.etag.as_bytes()
            } else {
                v == f.last_modified.as_bytes() || date(Some(v)) == Some(f.mtime)
            }
        });
        let ranges = match head.range {
            Some(r) if range_ok => parse_ranges(r, len),
            _ => Ranges::Whole,
        };
        let (code, offset, count) = match (&ranges, ranges.parts()) {
            (Ranges::Unsatisfiable, _) => {
                let extra = format!("Content-Range: bytes */{len}\r\n");
                return self.page(id, peer, req, Status::RangeNotSatisfiable, &extra, out);
            }
            (_, [(start, end)]) => (206, *start, end - start + 1),
            (_, []) => (200, 0, len),
            // A coded representation's parts would each need to say they are slices
            // of coded bytes, which multipart cannot: the whole of it (§14.2 allows
            // ignoring Range).
            (_, _) if f.coding.is_some() => (200, 0, len),
            (_, parts) => return self.send_parts(id, peer, req, f, parts, out),
        };
        let mut h = self.file_head(code, req, f, offset, count);
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

    /// The head of a 200 or 206 answer of `count` bytes of `f` from `offset`, but for
    /// its blank line.
    fn file_head(
        &mut self,
        code: u16,
        req: &Req<'_>,
        f: &Cached,
        offset: u64,
        count: u64,
    ) -> String {
        let mut h = self.head(code, req, Some(f.content_type), Some(count));
        let _ = write!(
            h,
            "Last-Modified: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n",
            f.last_modified, f.etag
        );
        if f.vary {
            h.push_str("Vary: Accept-Encoding\r\n");
        }
        if let Some(c) = f.coding {
            let _ = write!(h, "Content-Encoding: {}\r\n", c.token());
        }
        if code == 206 {
            let _ = write!(
                h,
                "Content-Range: bytes {}-{}/{}\r\n",
                offset,
                offset + count - 1,
                f.len
            );
        }
        h
    }

    /// A `206 multipart/byteranges` answer (RFC 9110 §14.6): each part's small head
    /// queued as bytes and its data as a slice of the cached body or a `sendfile` of
    /// the open file, so the file is never copied into memory.
    fn send_parts(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        req: &mut Req<'_>,
        f: &Cached,
        parts: &[(u64, u64)],
        out: &mut Outbox,
    ) -> bool {
        self.boundary = self.boundary.wrapping_add(1);
        let boundary = format!("{:016x}", self.boundary);
        let part_head = |&(start, end): &(u64, u64)| {
            format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {start}-{end}/{}\r\n\r\n",
                f.content_type, f.len
            )
        };
        let closing = format!("\r\n--{boundary}--\r\n");
        let total: u64 = parts
            .iter()
            .map(|p| part_head(p).len() as u64 + (p.1 - p.0 + 1))
            .sum::<u64>()
            + closing.len() as u64;
        let ctype = format!("multipart/byteranges; boundary={boundary}");
        let mut h = self.head(206, req, Some(&ctype), Some(total));
        let _ = write!(
            h,
            "Last-Modified: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n",
            f.last_modified, f.etag
        );
        if f.vary {
            h.push_str("Vary: Accept-Encoding\r\n");
        }
        h.push_str("\r\n");
        let mut buf = h.into_bytes();
        if req.head_only {
            out.send(id, buf);
            self.account(peer, req, 206, 0);
            return req.keep;
        }
        for p in parts {
            buf.extend_from_slice(part_head(p).as_bytes());
            match &f.body {
                // The ranges were resolved against `len`, the body's length.
                Some(body) => buf.extend_from_slice(&body[p.0 as usize..=p.1 as usize]),
                None => {
                    out.send(id, std::mem::take(&mut buf));
                    out.send_file(id, Arc::clone(&f.file), p.0, p.1 - p.0 + 1);
                    self.streamed = true;
                }
            }
        }
        buf.extend_from_slice(closing.as_bytes());
        out.send(id, buf);
        self.account(peer, req, 206, total);
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
        req.tls = conn.tls;
        if let Some(t) = &self.table {
            let i = t.default;
            self.enter(i);
        }
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

/// Whether a list of entity tags (or `*`) holds `etag`: by strong comparison (both
/// strong, same tag) for If-Match and If-Range, weak (`W/` ignored) for If-None-Match
/// (RFC 9110 §8.8.3.2).
fn etag_listed(list: &FieldLines<'_>, etag: &str, strong: bool) -> bool {
    list.members().any(|m| {
        if m == b"*" {
            return true;
        }
        match m.strip_prefix(b"W/") {
            Some(_) if strong => false,
            Some(tag) => tag == etag.as_bytes(),
            None => m == etag.as_bytes(),
        }
    })
}

impl Protocol for Http {
    type Conn = HttpConn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> HttpConn {
        out.deadline(id, Some(self.cfg.header_timeout));
        HttpConn {
            peer,
            phase: Phase::Head,
            tls: false,
            fresh: true,
            h2: None,
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut HttpConn, input: &[u8], out: &mut Outbox) -> usize {
        if conn.h2.is_some() {
            return self.h2_data(id, conn, input, out);
        }
        if conn.fresh && self.cfg.http2 {
            // h2c with prior knowledge (RFC 9113 §3.3): the preface, on its own.
            let preface = crate::proto::http2::PREFACE;
            let n = input.len().min(preface.len());
            if input[..n] == preface[..n] {
                if n < preface.len() {
                    return 0;
                }
                self.h2_start(id, conn, out);
                return self.h2_data(id, conn, input, out);
            }
        }
        conn.fresh = false;
        let mut consumed = 0;
        let mut answered = false;
        while conn.phase != Phase::Closing && consumed < input.len() {
            if self.stepwise && consumed > 0 && conn.phase == Phase::Idle {
                break;
            }
            if let Phase::Body(mut rest) = conn.phase {
                match rest.skip(&input[consumed..], MAX_BODY) {
                    Ok((n, done)) => {
                        consumed += n;
                        conn.phase = if done { Phase::Idle } else { Phase::Body(rest) };
                        // The idle time starts once the body is in.
                        answered |= done;
                    }
                    Err(status) => {
                        // Its answer is already out: all that is left is to stop.
                        tracing::debug!(
                            status = status.code(),
                            "request body rejected after its answer"
                        );
                        self.close(id, conn, out);
                    }
                }
                continue;
            }
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
                    let mut rest = None;
                    if head.has_body && matches!(head.method, Method::Get | Method::Head) {
                        // Read (and drop) what is here of the body before answering, so
                        // a body that is too large or badly framed from its first bytes
                        // gets its 413 or 400 instead of the answer.
                        let step = match head.body {
                            BodyFraming::Length(n) if n > MAX_BODY => Err(Status::PayloadTooLarge),
                            BodyFraming::Length(n) => Ok(Discard::Length(n)),
                            _ => Ok(Discard::Chunked(Chunked::default())),
                        }
                        .and_then(|mut d| {
                            let (n, done) = d.skip(&input[consumed..], MAX_BODY)?;
                            Ok((n, (!done).then_some(d)))
                        });
                        match step {
                            Ok((n, left)) => {
                                consumed += n;
                                rest = left;
                            }
                            Err(status) => {
                                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                                self.reject(id, conn, status, head.line, out);
                                continue;
                            }
                        }
                    }
                    if self.serve(id, conn.peer, conn.tls, &head, out) {
                        conn.phase = rest.map_or(Phase::Idle, Phase::Body);
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
            let after = match conn.phase {
                Phase::Body(_) => self.cfg.header_timeout,
                _ => self.cfg.idle_timeout,
            };
            out.deadline(id, Some(after));
        }
        consumed
    }

    fn timeout(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        if conn.h2.is_some() {
            return self.h2_timeout(id, conn, out);
        }
        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        match conn.phase {
            Phase::Head => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                self.reject(id, conn, Status::RequestTimeout, b"", out);
            }
            Phase::Idle | Phase::Body(_) | Phase::Closing => {
                conn.phase = Phase::Closing;
                out.close(id);
            }
        }
    }

    fn closed(&mut self, _id: ConnId, _conn: HttpConn, _out: &mut Outbox) {}

    /// HTTP/2 says GOAWAY: the streams it took finish, no new one is taken.
    fn draining(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        if conn.h2.is_some() {
            self.h2_draining(id, conn, out);
        }
    }

    /// HTTP/2 sends its DATA as the socket takes it.
    const WANTS_DRAINED: bool = true;

    fn drained(&mut self, id: ConnId, conn: &mut HttpConn, out: &mut Outbox) {
        if conn.h2.as_mut().is_some_and(|h| h.drained()) {
            self.h2_flush(id, conn, out);
        }
    }

    fn tick(&mut self, _out: &mut Outbox) {
        self.clock.tick();
        self.cache.expire(self.clock.secs);
        for p in self.parked.iter_mut().flatten() {
            p.cache.expire(self.clock.secs);
        }
    }

    /// Only a kept-alive connection between requests is idle: a fresh one has a
    /// request on its way, and a drain that closed it would reset a request the
    /// server had already accepted.
    fn idle(&self, conn: &HttpConn) -> bool {
        if let Some(idle) = Http::h2_idle(conn) {
            return idle;
        }
        matches!(conn.phase, Phase::Idle | Phase::Closing)
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

impl crate::proto::tls::TlsAware for Http {
    /// A connection over TLS: its answers carry the site's HSTS header.
    fn open_tls(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        identity: &crate::proto::tls::PeerIdentity,
        out: &mut Outbox,
    ) -> HttpConn {
        let mut conn = self.open(id, peer, out);
        conn.tls = true;
        if self.cfg.http2 && identity.alpn.as_deref() == Some(b"h2") {
            self.h2_start(id, &mut conn, out);
        }
        conn
    }
}

/// Error pages are read whole for each answer: bound them.
const MAX_ERROR_PAGE: u64 = 256 * 1024;

#[cfg(test)]
mod tests;
