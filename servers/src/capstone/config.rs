//! The capstone's configuration: a TOML file, validated whole before anything starts.
//!
//! The one idea: every field is read as a `toml::Spanned` value, so a value that
//! parses but makes no sense (a port of 70000, a missing root) is reported with the
//! line it sits on, exactly like a syntax error. A config either loads completely or
//! not at all, which is what lets a reload (SIGHUP) refuse a bad file and keep serving
//! with the old one.

use crate::proto::http::{
    valid_field_name, valid_field_value, AccessRule, Cidr, Coding, Features, HeaderRule, Htpasswd,
    PathMatch, Redirect, SiteRules,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

mod upstream;

/// The address the embedded default listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Each cached file holds a descriptor and up to 16 KiB: bound both.
const MAX_FILE_CACHE: u64 = 65_536;
const MAX_WORKERS: u64 = 256;
const MAX_PROCESSES: u64 = 64;
const MAX_CLIENTS: u64 = 1_000_000;
const MAX_TIMEOUT_SECS: u64 = 3600;
const MAX_KEEP: u64 = 1000;
/// Each site keeps its own open-file cache in every loop: bound how many.
const MAX_SITES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("open({path}): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that names no listener: an empty or truncated file would otherwise
    /// be a valid configuration of defaults, and a reload would serve it.
    #[error("{path}: no `listen`")]
    NoListen { path: PathBuf },
    #[error(transparent)]
    Bundled(#[from] super::bundled::BundledError),
    /// `--tls-self-signed` could not make or load its certificate.
    #[error("--tls-self-signed: {0}")]
    SelfSigned(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{path}:{line}: {key}: {msg}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        msg: String,
    },
}

/// Timeouts, all in whole seconds in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a client may take to send a request's head.
    pub header: Duration,
    /// How long a keep-alive connection may sit with nothing to do.
    pub idle: Duration,
    /// How long a graceful stop (SIGTERM, or old workers after a reload) waits for
    /// in-flight requests before closing what is left.
    pub drain: Duration,
}

/// How connections reach the event loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptMode {
    /// One socket per address. A process's first loop takes new connections until it
    /// is saturated; then every loop does, with `EPOLLEXCLUSIVE` (see
    /// [`crate::io::accept_group`]).
    Fill,
    /// One socket per address, shared by every loop with `EPOLLEXCLUSIVE`.
    Shared,
    /// One `SO_REUSEPORT` socket per address per loop; the kernel spreads connections.
    ReusePort,
}

/// Where and how the logs are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// The access log (Combined Log Format); `None` = off.
    pub access: Option<PathBuf>,
    /// The error log; `None` = standard error.
    pub error: Option<PathBuf>,
    /// Rotate a file before it would grow past this many bytes; `None` = never by size.
    pub rotate_size: Option<u64>,
    /// Rotate at the first write of each new day (UTC).
    pub rotate_daily: bool,
    /// How many rotated files to keep (`access.log.1` … `access.log.N`).
    pub keep: usize,
}

/// A complete, validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// The document root; `None` = the site bundled in the binary (see
    /// [`super::bundled`]), which the start and each reload resolve to a directory.
    pub root: Option<PathBuf>,
    pub max_clients: usize,
    /// Event-loop threads per worker process (already resolved: never 0).
    pub workers: usize,
    /// Worker processes under a master; 0 = one process, no master, no fork.
    pub processes: usize,
    pub accept: AcceptMode,
    pub user: Option<String>,
    pub chroot: Option<PathBuf>,
    /// Where the status page is served (`PATH` as HTML, `PATH.json` as JSON); `None` = off.
    pub status_path: Option<String>,
    /// Where the Prometheus metrics are served (same access rules as any path); `None` = off.
    pub metrics_path: Option<String>,
    /// Opened files each event loop keeps for the rest of the current second; 0 = off.
    pub file_cache: usize,
    pub timeouts: Timeouts,
    pub log: LogConfig,
    /// Where the master writes its pid; `None` = the default in the state
    /// directory (see [`super::pidfile`]).
    pub pid_file: Option<PathBuf>,
    /// HTTPS: which listeners speak TLS, and the certificate they present.
    pub tls: TlsSettings,
    /// HTTP/2: `h2` by ALPN on TLS listeners, `h2c` with prior knowledge on
    /// plaintext ones.
    pub http2: bool,

    // Static-serving features (precompressed, compress*, autoindex).
    pub http: Features,
    /// The top-level site's index files, tried in order.
    pub index: Vec<String>,
    /// The top-level site's rules (and what every `[[site]]` inherits).
    pub rules: SiteRules,
    /// `[[site]]` blocks, chosen by `Host`; empty: one site, `root`.
    pub sites: Vec<SiteConfig>,
    /// Which of `sites` answers a `Host` no site names.
    pub default_site: usize,
    /// `[[upstream]]` pools, in file order.
    pub upstreams: Vec<crate::upstream::Upstream>,
    /// The top-level `[[location]]` blocks (and what every `[[site]]` inherits).
    pub locations: Vec<crate::upstream::Location>,
}

/// One `[[site]]`: the names it answers, its root and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteConfig {
    /// Lower-case; a wildcard is kept as `*.example.test`.
    pub names: Vec<String>,
    pub root: PathBuf,
    pub index: Vec<String>,
    pub rules: SiteRules,
    /// `[[site.access]]`; `None`: the top-level `[[access]]` blocks.
    pub access: Option<Vec<AccessRule>>,
    /// `[[site.location]]` blocks, then the top-level ones it does not override.
    pub locations: Vec<crate::upstream::Location>,
}

impl Default for Config {
    /// The embedded default: 127.0.0.1:8080, the bundled site, one worker process
    /// with one loop per CPU, errors to standard error, no access log.
    fn default() -> Self {
        Config {
            // The literal is a valid socket address; the unit test `default_is_valid` proves it.
            listen: vec![DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a socket address")],
            root: None,
            max_clients: 10_000,
            workers: default_workers(),
            processes: 1,
            accept: AcceptMode::Fill,
            user: None,
            chroot: None,
            status_path: Some("/status".into()),
            metrics_path: Some("/metrics".into()),
            file_cache: 256,
            timeouts: Timeouts {
                header: Duration::from_secs(10),
                idle: Duration::from_secs(60),
                drain: Duration::from_secs(10),
            },
            log: LogConfig {
                access: None,
                error: None,
                rotate_size: None,
                rotate_daily: false,
                keep: 5,
            },
            pid_file: None,
            tls: TlsSettings::default(),
            http2: true,
            http: Features::default(),
            index: vec!["index.html".into()],
            rules: SiteRules::default(),
            sites: Vec::new(),
            default_site: 0,
            upstreams: Vec::new(),
            locations: Vec::new(),
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<Vec<Spanned<RawListen>>>>,
    root: Option<Spanned<String>>,
    max_clients: Option<Spanned<i64>>,
    workers: Option<Spanned<i64>>,
    processes: Option<Spanned<i64>>,
    accept: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    chroot: Option<Spanned<String>>,
    status_path: Option<Spanned<String>>,
    metrics_path: Option<Spanned<String>>,
    file_cache: Option<Spanned<i64>>,
    pid_file: Option<Spanned<String>>,
    timeouts: Option<RawTimeouts>,
    log: Option<RawLog>,
    tls: Option<Spanned<RawTls>>,
    http2: Option<Spanned<bool>>,

    // Static-serving features.
    precompressed: Option<Spanned<bool>>,
    compress: Option<Spanned<Vec<Spanned<String>>>>,
    compress_min_size: Option<Spanned<Size>>,
    compress_max_size: Option<Spanned<Size>>,
    compress_cache: Option<Spanned<Size>>,
    autoindex: Option<Spanned<bool>>,
    access: Option<Vec<RawAccess>>,

    // The top-level site's rules, inherited by each `[[site]]`.
    index: Option<Spanned<Names>>,
    error_pages: Option<BTreeMap<String, Spanned<String>>>,
    headers: Option<Vec<RawHeaders>>,
    redirects: Option<Vec<RawRedirect>>,
    fallback: Option<Spanned<String>>,
    hsts: Option<Spanned<String>>,
    site: Option<Vec<Spanned<RawSite>>>,
    upstream: Option<Vec<Spanned<upstream::RawUpstream>>>,
    location: Option<Vec<Spanned<upstream::RawLocation>>>,
}

/// One `[[site]]` block.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    server_names: Option<Vec<Spanned<String>>>,
    default: Option<Spanned<bool>>,
    root: Option<Spanned<String>>,
    index: Option<Spanned<Names>>,
    error_pages: Option<BTreeMap<String, Spanned<String>>>,
    headers: Option<Vec<RawHeaders>>,
    redirects: Option<Vec<RawRedirect>>,
    fallback: Option<Spanned<String>>,
    hsts: Option<Spanned<String>>,
    access: Option<Vec<RawAccess>>,
    location: Option<Vec<Spanned<upstream::RawLocation>>>,
    /// `tls = { cert = "…", key = "…" }`: served to clients that ask for one of
    /// the site's names (SNI).
    tls: Option<Spanned<RawTls>>,
}

/// A file name or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

/// One `[[headers]]` / `[[site.headers]]` block.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaders {
    prefix: Option<Spanned<String>>,
    extension: Option<Spanned<String>>,
    set: Spanned<BTreeMap<String, Spanned<String>>>,
}

/// One redirect: `path` (exact) or `prefix`, to `to`, with `code` (301 by default).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirect {
    path: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    to: Spanned<String>,
    code: Option<Spanned<i64>>,
}

/// The rule fields a `[[site]]` and the top level share.
struct RawRules<'a> {
    index: &'a Option<Spanned<Names>>,
    error_pages: &'a Option<BTreeMap<String, Spanned<String>>>,
    headers: &'a Option<Vec<RawHeaders>>,
    redirects: &'a Option<Vec<RawRedirect>>,
    fallback: &'a Option<Spanned<String>>,
    hsts: &'a Option<Spanned<String>>,
}

/// Whether `p` is an absolute URL path a rule may name.
fn url_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains(['?', '#', ' ', '\\'])
        && !p.split('/').any(|seg| seg == "..")
        && p.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// Header names the server sets itself: a rule may not replace them.
const MANAGED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "content-range",
    "date",
    "strict-transport-security",
];

/// Index files, error pages, header rules, redirects, fallback and HSTS, on top of
/// `index`/`rules` (what the top level set); files are checked below `root` when
/// given.
fn parse_rules(
    src: &Source,
    raw: RawRules,
    index: &mut Vec<String>,
    rules: &mut SiteRules,
    root: Option<&Path>,
) -> Result<(), ConfigError> {
    // An error page or the fallback: an absolute file path, and a file below `root`.
    let file_below_root = |span: std::ops::Range<usize>, key: &str, p: &str, example: &str| {
        if !url_path(p) || p.ends_with('/') {
            return src.err(
                span,
                key,
                format!("{p:?} must be an absolute file path like \"{example}\""),
            );
        }
        if !root.map_or(true, |r| r.join(p.trim_start_matches('/')).is_file()) {
            return src.err(span, key, format!("{p:?} is not a file below the root"));
        }
        Ok(())
    };
    if let Some(v) = raw.index {
        let names = match v.get_ref() {
            Names::One(n) => vec![n.clone()],
            Names::Many(l) => l.clone(),
        };
        if names.is_empty()
            || names
                .iter()
                .any(|n| n.is_empty() || n.contains('/') || n == "." || n == "..")
        {
            return src.err(v.span(), "index", "must be file names like \"index.html\"");
        }
        *index = names;
    }
    if let Some(pages) = raw.error_pages {
        rules.error_pages.clear();
        for (code, page) in pages {
            let n: u16 = match code.parse() {
                Ok(n) if (400..=599).contains(&n) => n,
                _ => {
                    return src.err(
                        page.span(),
                        "error_pages",
                        format!("{code:?} is not an error status (400 to 599)"),
                    )
                }
            };
            let p = page.get_ref();
            file_below_root(page.span(), "error_pages", p, "/404.html")?;
            rules.error_pages.push((n, p.clone()));
        }
    }
    if let Some(list) = raw.headers {
        rules.headers.clear();
        for h in list {
            let when = match (&h.prefix, &h.extension) {
                (Some(p), None) => {
                    if !url_path(p.get_ref()) {
                        return src.err(
                            p.span(),
                            "headers.prefix",
                            format!(
                                "{:?} must be an absolute path like \"/assets/\"",
                                p.get_ref()
                            ),
                        );
                    }
                    PathMatch::Prefix(p.get_ref().clone())
                }
                (None, Some(e)) => {
                    let ext = e.get_ref().trim_start_matches('.');
                    if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return src.err(
                            e.span(),
                            "headers.extension",
                            format!("{:?} is not a file extension like \"css\"", e.get_ref()),
                        );
                    }
                    PathMatch::Extension(ext.to_ascii_lowercase())
                }
                _ => {
                    return src.err(
                        h.set.span(),
                        "headers",
                        "needs exactly one of prefix or extension",
                    )
                }
            };
            if h.set.get_ref().is_empty() {
                return src.err(h.set.span(), "headers.set", "sets no header");
            }
            let mut set = Vec::new();
            for (name, value) in h.set.get_ref() {
                if !valid_field_name(name) {
                    return src.err(
                        value.span(),
                        "headers.set",
                        format!("{name:?} is not a header name"),
                    );
                }
                if MANAGED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    return src.err(
                        value.span(),
                        "headers.set",
                        format!("{name} is set by the server (use hsts for HSTS)"),
                    );
                }
                if !valid_field_value(value.get_ref()) {
                    return src.err(
                        value.span(),
                        "headers.set",
                        format!("the value of {name} is not a valid header value"),
                    );
                }
                set.push((name.clone(), value.get_ref().clone()));
            }
            rules.headers.push(HeaderRule { when, set });
        }
    }
    if let Some(list) = raw.redirects {
        rules.redirects.clear();
        for r in list {
            let (from, prefix) = match (&r.path, &r.prefix) {
                (Some(p), None) => (p, false),
                (None, Some(p)) => (p, true),
                _ => {
                    return src.err(
                        r.to.span(),
                        "redirects",
                        "needs exactly one of path or prefix",
                    )
                }
            };
            let key = if prefix {
                "redirects.prefix"
            } else {
                "redirects.path"
            };
            if !url_path(from.get_ref()) {
                return src.err(
                    from.span(),
                    key,
                    format!(
                        "{:?} must be an absolute path like \"/old/\"",
                        from.get_ref()
                    ),
                );
            }
            if rules
                .redirects
                .iter()
                .any(|o| o.prefix == prefix && &o.from == from.get_ref())
            {
                return src.err(
                    from.span(),
                    key,
                    format!("{:?} is listed twice", from.get_ref()),
                );
            }
            let to = r.to.get_ref();
            if to.is_empty() || to.contains(' ') || !valid_field_value(to) {
                return src.err(
                    r.to.span(),
                    "redirects.to",
                    format!("{to:?} is not a URL or path"),
                );
            }
            let code = match &r.code {
                None => 301,
                Some(c) => match *c.get_ref() {
                    n @ (301 | 302 | 307 | 308) => n as u16,
                    n => {
                        return src.err(
                            c.span(),
                            "redirects.code",
                            format!("{n} is not 301, 302, 307 or 308"),
                        )
                    }
                },
            };
            rules.redirects.push(Redirect {
                from: from.get_ref().clone(),
                prefix,
                to: to.clone(),
                code,
            });
        }
    }
    if let Some(v) = raw.fallback {
        let p = v.get_ref();
        file_below_root(v.span(), "fallback", p, "/index.html")?;
        rules.fallback = Some(p.clone());
    }
    if let Some(v) = raw.hsts {
        let t = v.get_ref();
        // RFC 6797 §6.1: directives separated by `;`, `max-age` required.
        let max_age = t.split(';').map(str::trim).any(|d| {
            d.split_once('=').is_some_and(|(k, n)| {
                k.trim().eq_ignore_ascii_case("max-age")
                    && !n.trim().trim_matches('"').is_empty()
                    && n.trim()
                        .trim_matches('"')
                        .bytes()
                        .all(|b| b.is_ascii_digit())
            })
        });
        if t.is_empty() {
            rules.hsts = None;
        } else if !valid_field_value(t) || !max_age {
            return src.err(
                v.span(),
                "hsts",
                format!("{t:?} is not a Strict-Transport-Security value like \"max-age=31536000; includeSubDomains\""),
            );
        } else {
            rules.hsts = Some(t.clone());
        }
    }
    Ok(())
}

/// A `server_names` entry, lower-cased: a host name, an IP literal, or `*.` and a
/// name.
fn server_name(name: &str) -> Result<String, String> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_suffix('.').unwrap_or(&n).to_string();
    let host = n.strip_prefix("*.").unwrap_or(&n);
    if host.contains('*') {
        return Err(format!(
            "{name:?}: a wildcard is only a leading \"*.\" (like \"*.example.test\")"
        ));
    }
    let ipv6 = host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    let plain = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if host.contains(':') && !ipv6 {
        return Err(format!(
            "{name:?}: leave the port out (names match any port)"
        ));
    }
    if !(plain || (ipv6 && host == n)) || n.len() > 253 {
        return Err(format!("{name:?} is not a host name"));
    }
    Ok(n)
}

/// One `[[access]]` block: what applies below a path prefix.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    prefix: Spanned<String>,
    allow: Option<Vec<Spanned<String>>>,
    deny: Option<Vec<Spanned<String>>>,
    auth_file: Option<Spanned<String>>,
    realm: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    header: Option<Spanned<i64>>,
    idle: Option<Spanned<i64>>,
    drain: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    dir: Option<Spanned<String>>,
    access: Option<Spanned<String>>,
    error: Option<Spanned<String>>,
    rotate_size: Option<Spanned<Size>>,
    rotate_daily: Option<Spanned<bool>>,
    keep: Option<Spanned<i64>>,
}

/// A byte count: an integer, or a string with a K/M/G suffix ("10M").
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(i64),
    Text(String),
}

/// Line and key context for one file being validated.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        msg: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: self.line_of(span.start),
            key: key.to_string(),
            msg: msg.into(),
        })
    }

    /// The key a parse error points at: the text before `=` on the error's line, so
    /// "invalid type" errors name their key even though toml's message does not.
    fn key_at(&self, offset: usize) -> String {
        let start = self.text[..offset.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next().unwrap_or("");
        match line.split_once('=') {
            Some((k, _)) => k.trim().to_string(),
            None => line.trim().to_string(),
        }
    }
}

fn int_in(src: &Source, v: &Spanned<i64>, key: &str, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    let n = *v.get_ref();
    if n < lo as i64 || n > hi as i64 {
        return src.err(v.span(), key, format!("{n} is out of range {lo}..={hi}"));
    }
    Ok(n as u64)
}

fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn size_of(src: &Source, v: &Spanned<Size>, key: &str) -> Result<u64, ConfigError> {
    let n = match v.get_ref() {
        Size::Bytes(n) => u64::try_from(*n).ok(),
        Size::Text(t) => parse_size(t),
    };
    match n {
        Some(n) => Ok(n),
        None => src.err(v.span(), key, "must be a byte count like 1048576 or \"1M\""),
    }
}

/// `[[access]]` (or `[[site.access]]`) blocks.
fn parse_access(
    src: &Source,
    list: &Option<Vec<RawAccess>>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<AccessRule>, ConfigError> {
    let mut rules: Vec<AccessRule> = Vec::new();
    for a in list.iter().flatten() {
        let prefix = a.prefix.get_ref();
        if !prefix.starts_with('/') || prefix.contains(['?', '#', ' ']) {
            return src.err(
                a.prefix.span(),
                "access.prefix",
                format!("{prefix:?} must be an absolute path like \"/admin/\""),
            );
        }
        if rules.iter().any(|r| &r.prefix == prefix) {
            return src.err(
                a.prefix.span(),
                "access.prefix",
                format!("{prefix:?} is listed twice"),
            );
        }
        let mut rule = AccessRule::new(prefix.clone());
        for (list, key, into) in [
            (&a.allow, "access.allow", &mut rule.allow),
            (&a.deny, "access.deny", &mut rule.deny),
        ] {
            for c in list.iter().flatten() {
                match c.get_ref().parse::<Cidr>() {
                    Ok(c) => into.push(c),
                    Err(e) => return src.err(c.span(), key, e.to_string()),
                }
            }
        }
        let realm = match &a.realm {
            Some(r) => {
                let t = r.get_ref();
                if t.is_empty()
                    || !t
                        .bytes()
                        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
                {
                    return src.err(
                        r.span(),
                        "access.realm",
                        "must be printable ASCII without quotes or backslashes",
                    );
                }
                t.clone()
            }
            None => "restricted".to_string(),
        };
        if let Some(file) = &a.auth_file {
            match Htpasswd::load(&resolve(file.get_ref())) {
                Ok(users) => rule.auth = Some((std::sync::Arc::new(users), realm)),
                Err(e) => return src.err(file.span(), "access.auth_file", e.to_string()),
            }
        } else if a.realm.is_some() {
            return src.err(0..0, "access.realm", "is only used with auth_file");
        }
        if rule.allow.is_empty() && rule.deny.is_empty() && rule.auth.is_none() {
            return src.err(a.prefix.span(), "access", "needs allow, deny or auth_file");
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// `[[access]]`, `precompressed`, `compress`, `compress_*` and `autoindex`.
fn parse_features(
    src: &Source,
    raw: &RawConfig,
    f: &mut Features,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(), ConfigError> {
    f.access = parse_access(src, &raw.access, resolve)?;
    if let Some(v) = &raw.precompressed {
        f.precompressed = *v.get_ref();
    }
    if let Some(v) = &raw.autoindex {
        f.autoindex = *v.get_ref();
    }
    if let Some(list) = &raw.compress {
        f.compress.clear();
        for c in list.get_ref() {
            match Coding::from_token(c.get_ref()) {
                Some(coding) if !f.compress.contains(&coding) => f.compress.push(coding),
                Some(_) => {
                    return src.err(
                        c.span(),
                        "compress",
                        format!("{:?} is listed twice", c.get_ref()),
                    )
                }
                None => {
                    return src.err(
                        c.span(),
                        "compress",
                        format!("{:?} is not \"br\", \"zstd\" or \"gzip\"", c.get_ref()),
                    )
                }
            }
        }
    }
    if let Some(v) = &raw.compress_min_size {
        f.compress_min_size = size_of(src, v, "compress_min_size")?;
    }
    if let Some(v) = &raw.compress_max_size {
        f.compress_max_size = size_of(src, v, "compress_max_size")?;
    }
    if let Some(v) = &raw.compress_cache {
        f.compress_cache = size_of(src, v, "compress_cache")?;
        if f.compress_cache > MAX_COMPRESS_CACHE {
            return src.err(
                v.span(),
                "compress_cache",
                format!(
                    "{} bytes is above the {MAX_COMPRESS_CACHE}-byte maximum",
                    f.compress_cache
                ),
            );
        }
    }
    Ok(())
}

/// 4 GiB of compressed bodies in memory is far beyond any sensible site.
const MAX_COMPRESS_CACHE: u64 = 4 << 30;

impl Config {
    /// Reads and validates `path`. Relative paths inside the file are taken from the
    /// file's own directory, so a config works whatever the current directory is.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_tls(path, false)
    }

    /// [`Config::load`]; with `cert_later`, TLS listeners need no `[tls]` table
    /// (`--tls-self-signed` supplies the certificate).
    pub fn load_tls(path: &Path, cert_later: bool) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::parse_tls(&text, path, base, cert_later)
    }

    /// Validates `text` as if read from `path`, resolving relative paths against `base`.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        Config::parse_tls(text, path, base, false)
    }

    fn parse_tls(
        text: &str,
        path: &Path,
        base: &Path,
        cert_later: bool,
    ) -> Result<Config, ConfigError> {
        let src = Source { path, text };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                // One line, whatever toml's message looks like.
                let mut msg = e.message().trim().replace('\n', "; ");
                if msg.contains(BAD_LISTEN_ENTRY) {
                    msg = LISTEN_FORMS.to_string();
                } else if msg.contains(upstream::BAD_SERVER_ENTRY) {
                    msg = upstream::SERVER_FORMS.to_string();
                }
                // "unknown field `x`" names its key; other errors get the line's key.
                let key = msg
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_string)
                    .unwrap_or_else(|| src.key_at(at));
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: src.line_of(at),
                    key,
                    msg,
                });
            }
        };
        let resolve = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let mut cfg = Config::default();

        if let Some(listen) = &raw.listen {
            if listen.get_ref().is_empty() {
                return src.err(listen.span(), "listen", "needs at least one address");
            }
            let mut addrs = Vec::new();
            for a in listen.get_ref() {
                let text = a.get_ref().addr();
                let addr: SocketAddr = match text.parse() {
                    Ok(addr) => addr,
                    Err(_) => {
                        return src.err(
                            a.span(),
                            "listen",
                            format!("{text:?} is not an address:port (like \"127.0.0.1:8080\" or \"[::1]:8080\")"),
                        )
                    }
                };
                if addrs.contains(&addr) {
                    return src.err(a.span(), "listen", format!("{addr} is listed twice"));
                }
                addrs.push(addr);
            }
            cfg.listen = addrs;
        }
        if let Some(v) = &raw.max_clients {
            cfg.max_clients = int_in(&src, v, "max_clients", 1, MAX_CLIENTS)? as usize;
        }
        if let Some(v) = &raw.file_cache {
            cfg.file_cache = int_in(&src, v, "file_cache", 0, MAX_FILE_CACHE)? as usize;
        }
        if let Some(v) = &raw.http2 {
            cfg.http2 = *v.get_ref();
        }
        if let Some(v) = &raw.workers {
            let n = int_in(&src, v, "workers", 0, MAX_WORKERS)? as usize;
            cfg.workers = if n == 0 { default_workers() } else { n };
        }
        if let Some(v) = &raw.processes {
            cfg.processes = int_in(&src, v, "processes", 0, MAX_PROCESSES)? as usize;
        }
        if let Some(v) = &raw.accept {
            cfg.accept = match v.get_ref().as_str() {
                "fill" => AcceptMode::Fill,
                "shared" => AcceptMode::Shared,
                "reuseport" => AcceptMode::ReusePort,
                other => {
                    return src.err(
                        v.span(),
                        "accept",
                        format!("{other:?} is not \"fill\", \"shared\" or \"reuseport\""),
                    )
                }
            };
        }
        if let Some(v) = &raw.user {
            let name = v.get_ref();
            match nix::unistd::User::from_name(name) {
                Ok(Some(_)) => cfg.user = Some(name.clone()),
                Ok(None) => return src.err(v.span(), "user", format!("no such user {name:?}")),
                Err(e) => return src.err(v.span(), "user", format!("getpwnam({name:?}): {e}")),
            }
        }
        if let Some(v) = &raw.chroot {
            let dir = resolve(v.get_ref());
            if !dir.is_dir() {
                return src.err(
                    v.span(),
                    "chroot",
                    format!("{} is not a directory", dir.display()),
                );
            }
            cfg.chroot = Some(dir);
        }
        if let (Some(v), Some(_)) = (&raw.root, &raw.site) {
            return src.err(
                v.span(),
                "root",
                "with [[site]] blocks each site has its own root",
            );
        }
        if let Some(v) = &raw.root {
            let root = resolve(v.get_ref());
            // Under a chroot the root is a path inside it, as the workers will see it.
            let seen = match &cfg.chroot {
                Some(jail) => jail.join(root.strip_prefix("/").unwrap_or(&root)),
                None => root.clone(),
            };
            if !seen.is_dir() {
                return src.err(
                    v.span(),
                    "root",
                    format!("{} is not a directory", seen.display()),
                );
            }
            cfg.root = Some(root);
        } else if cfg.chroot.is_some() && raw.site.is_none() {
            return src.err(
                0..0,
                "root",
                "must be set when chroot is (as a path inside the chroot)",
            );
        }
        if let Some(v) = &raw.status_path {
            let p = v.get_ref();
            if p.is_empty() {
                cfg.status_path = None;
            } else if !p.starts_with('/') || p.ends_with('/') || p.contains(['?', '#', ' ']) {
                return src.err(
                    v.span(),
                    "status_path",
                    format!("{p:?} must be an absolute path like \"/status\""),
                );
            } else {
                cfg.status_path = Some(p.clone());
            }
        }
        if let Some(v) = &raw.metrics_path {
            let p = v.get_ref();
            if p.is_empty() {
                cfg.metrics_path = None;
            } else if !p.starts_with('/') || p.ends_with('/') || p.contains(['?', '#', ' ']) {
                return src.err(
                    v.span(),
                    "metrics_path",
                    format!("{p:?} must be an absolute path like \"/metrics\""),
                );
            } else {
                cfg.metrics_path = Some(p.clone());
            }
        }
        if let Some(v) = &raw.pid_file {
            let p = v.get_ref();
            if p.is_empty() || p.ends_with('/') {
                return src.err(v.span(), "pid_file", format!("{p:?} is not a file name"));
            }
            let full = resolve(p);
            match full.parent() {
                Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => {
                    return src.err(
                        v.span(),
                        "pid_file",
                        format!("{} is not a directory", parent.display()),
                    )
                }
                _ => cfg.pid_file = Some(full),
            }
        }
        if let Some(t) = &raw.timeouts {
            if let Some(v) = &t.header {
                cfg.timeouts.header =
                    Duration::from_secs(int_in(&src, v, "timeouts.header", 1, MAX_TIMEOUT_SECS)?);
            }
            if let Some(v) = &t.idle {
                cfg.timeouts.idle =
                    Duration::from_secs(int_in(&src, v, "timeouts.idle", 1, MAX_TIMEOUT_SECS)?);
            }
            if let Some(v) = &t.drain {
                cfg.timeouts.drain =
                    Duration::from_secs(int_in(&src, v, "timeouts.drain", 0, MAX_TIMEOUT_SECS)?);
            }
        }
        if let Some(l) = &raw.log {
            let dir = match &l.dir {
                Some(d) => {
                    let dir = resolve(d.get_ref());
                    if !dir.is_dir() {
                        return src.err(
                            d.span(),
                            "log.dir",
                            format!("{} is not a directory", dir.display()),
                        );
                    }
                    Some(dir)
                }
                None => None,
            };
            let file = |v: &Spanned<String>, key: &str| -> Result<Option<PathBuf>, ConfigError> {
                let name = v.get_ref();
                if name == "off" {
                    return Ok(None);
                }
                if name.is_empty() || name.ends_with('/') {
                    return src.err(
                        v.span(),
                        key,
                        format!("{name:?} is not a file name (or \"off\")"),
                    );
                }
                let p = PathBuf::from(name);
                let full = if p.is_absolute() {
                    p
                } else {
                    match &dir {
                        Some(d) => d.join(p),
                        None => resolve(name),
                    }
                };
                match full.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => src.err(
                        v.span(),
                        key,
                        format!("{} is not a directory", parent.display()),
                    ),
                    _ => Ok(Some(full)),
                }
            };
            cfg.log.access = match &l.access {
                Some(v) => file(v, "log.access")?,
                None => dir.as_ref().map(|d| d.join("access.log")),
            };
            cfg.log.error = match &l.error {
                Some(v) => file(v, "log.error")?,
                None => dir.as_ref().map(|d| d.join("error.log")),
            };
            if let Some(v) = &l.rotate_size {
                let n = match v.get_ref() {
                    Size::Bytes(n) if *n >= 0 => Some(*n as u64),
                    Size::Text(t) => parse_size(t),
                    Size::Bytes(_) => None,
                };
                cfg.log.rotate_size = match n {
                    Some(0) => None,
                    Some(n) if n < 1024 => {
                        return src.err(
                            v.span(),
                            "log.rotate_size",
                            format!("{n} bytes is below the 1024-byte minimum"),
                        )
                    }
                    Some(n) => Some(n),
                    None => {
                        return src.err(
                            v.span(),
                            "log.rotate_size",
                            "must be a byte count like 10485760 or \"10M\"",
                        )
                    }
                };
            }
            if let Some(v) = &l.rotate_daily {
                cfg.log.rotate_daily = *v.get_ref();
            }
            if let Some(v) = &l.keep {
                cfg.log.keep = int_in(&src, v, "log.keep", 1, MAX_KEEP)? as usize;
            }
        }
        cfg.tls = tls_settings(&src, &raw, &cfg.listen, &resolve, cert_later)?;
        parse_features(&src, &raw, &mut cfg.http, &resolve)?;
        let in_jail = |root: &Path| match &cfg.chroot {
            Some(jail) => jail.join(root.strip_prefix("/").unwrap_or(root)),
            None => root.to_path_buf(),
        };
        let top_root = cfg.root.as_deref().map(in_jail);
        parse_rules(
            &src,
            RawRules {
                index: &raw.index,
                error_pages: &raw.error_pages,
                headers: &raw.headers,
                redirects: &raw.redirects,
                fallback: &raw.fallback,
                hsts: &raw.hsts,
            },
            &mut cfg.index,
            &mut cfg.rules,
            // With sites, each checks what it inherits below its own root; the
            // bundled site has no error pages or fallback of its own.
            match (&raw.site, &top_root) {
                (Some(_), _) => None,
                (None, Some(r)) => Some(r.as_path()),
                (None, None) => Some(Path::new("/nonexistent")),
            },
        )?;
        cfg.upstreams = upstream::parse_upstreams(&src, &raw.upstream)?;
        cfg.locations = upstream::parse_locations(&src, "location", &raw.location, &cfg.upstreams)?;
        let mut default_at = None;
        for site in raw.site.iter().flatten() {
            if cfg.sites.len() == MAX_SITES {
                return src.err(
                    site.span(),
                    "site",
                    format!("more than {MAX_SITES} sites (each keeps its own file cache per loop)"),
                );
            }
            let s = site.get_ref();
            let mut names = Vec::new();
            for n in s.server_names.iter().flatten() {
                let name = match server_name(n.get_ref()) {
                    Ok(name) => name,
                    Err(msg) => return src.err(n.span(), "site.server_names", msg),
                };
                if cfg.sites.iter().any(|o| o.names.contains(&name)) || names.contains(&name) {
                    return src.err(
                        n.span(),
                        "site.server_names",
                        format!("{name:?} is named by another site"),
                    );
                }
                names.push(name);
            }
            if let Some(d) = &s.default {
                if *d.get_ref() {
                    if default_at.is_some() {
                        return src.err(
                            d.span(),
                            "site.default",
                            "another site is already the default",
                        );
                    }
                    default_at = Some(cfg.sites.len());
                }
            }
            let Some(r) = &s.root else {
                return src.err(site.span(), "site", "needs a root");
            };
            let root = resolve(r.get_ref());
            let seen = in_jail(&root);
            if !seen.is_dir() {
                return src.err(
                    r.span(),
                    "site.root",
                    format!("{} is not a directory", seen.display()),
                );
            }
            let mut index = cfg.index.clone();
            let mut rules = cfg.rules.clone();
            // Inherited paths must exist below this site's root too.
            for (_, p) in &rules.error_pages {
                if !seen.join(p.trim_start_matches('/')).is_file() {
                    return src.err(
                        site.span(),
                        "site.error_pages",
                        format!("{p:?} (from the top level) is not a file below this root"),
                    );
                }
            }
            if let Some(p) = &rules.fallback {
                if !seen.join(p.trim_start_matches('/')).is_file() {
                    return src.err(
                        site.span(),
                        "site.fallback",
                        format!("{p:?} (from the top level) is not a file below this root"),
                    );
                }
            }
            parse_rules(
                &src,
                RawRules {
                    index: &s.index,
                    error_pages: &s.error_pages,
                    headers: &s.headers,
                    redirects: &s.redirects,
                    fallback: &s.fallback,
                    hsts: &s.hsts,
                },
                &mut index,
                &mut rules,
                Some(&seen),
            )?;
            let access = match &s.access {
                Some(_) => Some(parse_access(&src, &s.access, &resolve)?),
                None => None,
            };
            let mut locations =
                upstream::parse_locations(&src, "site.location", &s.location, &cfg.upstreams)?;
            for l in &cfg.locations {
                if !locations.iter().any(|o| o.prefix == l.prefix) {
                    locations.push(l.clone());
                }
            }
            if let Some(t) = &s.tls {
                site_certificate(&src, t, &names, &mut cfg.tls, &resolve)?;
            }
            cfg.sites.push(SiteConfig {
                names,
                root,
                index,
                rules,
                access,
                locations,
            });
        }
        cfg.default_site = default_at.unwrap_or(0);
        if let Some((_, site)) = raw
            .site
            .iter()
            .flatten()
            .enumerate()
            .find(|(i, _)| *i != cfg.default_site && cfg.sites[*i].names.is_empty())
        {
            return src.err(
                site.span(),
                "site",
                "is never chosen: give it server_names or default = true",
            );
        }
        if !cfg.tls.sites.is_empty() {
            cfg.tls.build()?;
        }
        // Checked last, so a file with other mistakes reports those first. Without
        // this, an empty or truncated file is a valid set of defaults.
        if raw.listen.is_none() {
            return Err(ConfigError::NoListen {
                path: path.to_path_buf(),
            });
        }
        Ok(cfg)
    }

    /// Applies the command line's `--listen`/`--root` on top of the file.
    pub fn override_with(&mut self, listen: Option<SocketAddr>, root: Option<PathBuf>) {
        if let Some(addr) = listen {
            self.listen = vec![addr];
            // One plain listener: the TLS roles of the file's listeners go with them.
            self.tls.listeners.clear();
            self.tls.redirect.clear();
        }
        if let Some(root) = root {
            // One root from the command line: it replaces the file's sites (and
            // their certificates).
            self.root = Some(root);
            self.sites.clear();
            if !self.tls.sites.is_empty() {
                self.tls.sites.clear();
                // Built from certificates already loaded; should it fail, the
                // server keeps offering the sites' certificates, which is harmless.
                let _ = self.tls.build();
            }
        }
    }

    /// Event-loop threads across all processes: how many counter slots one
    /// generation of workers needs.
    pub fn total_loops(&self) -> usize {
        self.workers * self.processes.max(1)
    }
}

// ---- HTTPS: TLS listeners and the `[tls]` table ------------------------------

/// HTTPS settings: which listeners speak TLS (`{ addr = "…", tls = true }` in
/// `listen`) and the `[tls]` certificate they all present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Listeners that speak TLS, a subset of [`Config::listen`].
    pub listeners: Vec<SocketAddr>,
    /// The `[tls]` certificate, loaded and checked; `Some` whenever `listeners` is
    /// not empty.
    pub certificate: Option<Certificate>,
    /// Plaintext listeners that answer every request with a redirect to HTTPS
    /// (`{ addr = "…", https_redirect = true }`).
    pub redirect: Vec<SocketAddr>,
    /// `[[site]]` certificates (`tls = { … }` in a site), chosen by SNI.
    pub sites: Vec<SiteCertificate>,
}

/// A `[[site]]`'s own certificate, for the site's names.
#[derive(Clone, Debug)]
pub struct SiteCertificate {
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub loaded: crate::tls::https::Loaded,
}

impl PartialEq for SiteCertificate {
    /// As [`Certificate`]: each load is new.
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
            && self.cert == other.cert
            && self.key == other.key
            && std::sync::Arc::ptr_eq(&self.loaded.key, &other.loaded.key)
    }
}

impl Eq for SiteCertificate {}

impl TlsSettings {
    /// Whether connections on `addr` speak TLS.
    pub fn is_tls(&self, addr: &SocketAddr) -> bool {
        self.listeners.contains(addr)
    }
}

/// The certificate chain and key of `[tls]`, read and checked when the file is
/// loaded (so before any privilege is dropped, and again on every reload), and the
/// TLS server configuration built from them.
#[derive(Clone, Debug)]
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The chain and signing key, for [`TlsSettings::build`].
    pub certified: std::sync::Arc<rustls::sign::CertifiedKey>,
    /// What every TLS listener serves: this certificate, and the sites' by SNI.
    pub server: std::sync::Arc<rustls::ServerConfig>,
    /// The leaf's subject and the seconds it has left, for the start-up log.
    pub subject: String,
    pub expires_in: u64,
    /// Less than 14 days of validity left: served, with a warning.
    pub warnings: Vec<String>,
}

impl PartialEq for Certificate {
    /// Two loads of the same files are different configurations: a reload re-reads
    /// the certificate, and a renewed one must reach the new workers.
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert
            && self.key == other.key
            && std::sync::Arc::ptr_eq(&self.server, &other.server)
    }
}

impl Eq for Certificate {}

/// The TLS address `--tls-self-signed` adds when the configuration has none.
pub const DEFAULT_TLS_LISTEN: &str = "127.0.0.1:8443";

impl TlsSettings {
    /// Logs the certificates in use, and a warning for each near expiry.
    pub fn log(&self) {
        let Some(c) = &self.certificate else { return };
        tracing::info!(
            cert = %c.cert.display(),
            subject = %c.subject,
            days_left = c.expires_in / 86_400,
            listeners = ?self.listeners,
            "tls: certificate loaded"
        );
        for w in &c.warnings {
            tracing::warn!("tls: {w}");
        }
        for s in &self.sites {
            tracing::info!(
                cert = %s.cert.display(),
                subject = %s.loaded.subject,
                days_left = s.loaded.expires_in / 86_400,
                names = ?s.names,
                "tls: site certificate loaded"
            );
            for w in &s.loaded.warnings {
                tracing::warn!("tls: {w}");
            }
        }
    }

    /// What `--check-config` prints as warnings: each certificate's (near expiry,
    /// a site name its certificate does not cover).
    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        let default = self.certificate.iter().flat_map(|c| &c.warnings);
        default.chain(self.sites.iter().flat_map(|s| &s.loaded.warnings))
    }

    /// Rebuilds the server configuration from the default certificate and the
    /// sites' (a no-op without a default certificate).
    fn build(&mut self) -> Result<(), crate::tls::TlsError> {
        let Some(c) = self.certificate.as_mut() else {
            return Ok(());
        };
        let sites: Vec<_> = self
            .sites
            .iter()
            .map(|s| (s.names.clone(), s.loaded.key.clone()))
            .collect();
        c.server = crate::tls::https::server_config(&c.certified, &sites)?;
        Ok(())
    }
}

/// `--tls-self-signed`: makes (once) a private CA and a server certificate for
/// localhost in `dir`, and serves it where the configuration names no
/// certificate; a configuration with no TLS listener gets [`DEFAULT_TLS_LISTEN`].
/// Returns the CA certificate's path, for `curl --cacert` and browsers.
pub fn self_signed(cfg: &mut Config, dir: &Path) -> Result<PathBuf, ConfigError> {
    let fail = |e: &dyn std::fmt::Display| ConfigError::SelfSigned(e.to_string());
    let dd = crate::tls::DataDir::named(dir, "sysnet capstone");
    dd.server_identity().map_err(|e| fail(&e))?;
    if cfg.tls.certificate.is_none() {
        let (cert, key) = (dd.server_cert(), dd.server_key());
        let checked = match crate::tls::https::load_key(&cert, &key) {
            Ok(c) if c.warnings.is_empty() => c,
            // Expired, about to, or damaged: made anew (the CA too, so trust it again).
            _ => {
                dd.renew().map_err(|e| fail(&e))?;
                tracing::warn!(ca = %dd.ca_cert().display(), "tls: made a new self-signed CA and certificate");
                crate::tls::https::load_key(&cert, &key).map_err(|e| fail(&e))?
            }
        };
        cfg.tls.certificate = Some(Certificate {
            cert,
            key,
            server: crate::tls::https::server_config(&checked.key, &[]).map_err(|e| fail(&e))?,
            certified: checked.key,
            subject: checked.subject,
            expires_in: checked.expires_in,
            warnings: checked.warnings,
        });
        if !cfg.tls.sites.is_empty() {
            cfg.tls.build().map_err(|e| fail(&e))?;
        }
    }
    if cfg.tls.listeners.is_empty() {
        let addr: SocketAddr = DEFAULT_TLS_LISTEN
            .parse()
            .expect("DEFAULT_TLS_LISTEN is a socket address");
        if !cfg.listen.contains(&addr) {
            cfg.listen.push(addr);
        }
        cfg.tls.listeners.push(addr);
    }
    Ok(dd.ca_cert())
}

/// One `listen` entry: `"ADDR:PORT"` or `{ addr = "ADDR:PORT", tls = true }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawListen {
    Addr(String),
    Table(RawListenTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListenTable {
    addr: String,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    https_redirect: bool,
}

/// What toml says of a `listen` entry that is neither form.
const BAD_LISTEN_ENTRY: &str = "untagged enum RawListen";
const LISTEN_FORMS: &str = "each entry is \"ADDR:PORT\" or { addr = \"ADDR:PORT\", tls = true }";

impl RawListen {
    fn addr(&self) -> &str {
        match self {
            RawListen::Addr(a) => a,
            RawListen::Table(t) => &t.addr,
        }
    }
    fn tls(&self) -> bool {
        matches!(self, RawListen::Table(t) if t.tls)
    }
    fn https_redirect(&self) -> bool {
        matches!(self, RawListen::Table(t) if t.https_redirect)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}

fn tls_settings(
    src: &Source,
    raw: &RawConfig,
    listen: &[SocketAddr],
    resolve: &dyn Fn(&str) -> PathBuf,
    cert_later: bool,
) -> Result<TlsSettings, ConfigError> {
    let mut out = TlsSettings::default();
    let mut first_tls = None;
    let mut first_redirect = None;
    if let Some(entries) = &raw.listen {
        // `listen` was validated entry by entry, so the addresses line up.
        for (entry, addr) in entries.get_ref().iter().zip(listen) {
            if entry.get_ref().tls() && entry.get_ref().https_redirect() {
                return src.err(
                    entry.span(),
                    "listen",
                    "https_redirect is for plaintext listeners, not tls = true ones",
                );
            }
            if entry.get_ref().tls() {
                first_tls.get_or_insert(entry.span());
                out.listeners.push(*addr);
            }
            if entry.get_ref().https_redirect() {
                first_redirect.get_or_insert(entry.span());
                out.redirect.push(*addr);
            }
        }
    }
    if let (Some(span), None) = (first_redirect.clone(), &first_tls) {
        if !cert_later {
            return src.err(
                span,
                "listen",
                "https_redirect needs a listener with tls = true to redirect to",
            );
        }
    }
    let Some(t) = &raw.tls else {
        if let Some(span) = first_tls.filter(|_| !cert_later) {
            return src.err(
                span,
                "listen",
                "tls = true needs a [tls] table with cert and key",
            );
        }
        return Ok(out);
    };
    if first_tls.is_none() {
        return src.err(
            t.span(),
            "tls",
            "no listener has tls = true (write { addr = \"ADDR:PORT\", tls = true } in listen)",
        );
    }
    let (cert, key, loaded) = load_pair(src, t, "tls", resolve)?;
    out.certificate = Some(Certificate {
        cert,
        key,
        server: crate::tls::https::server_config(&loaded.key, &[])?,
        certified: loaded.key,
        subject: loaded.subject,
        expires_in: loaded.expires_in,
        warnings: loaded.warnings,
    });
    Ok(out)
}

/// Reads and checks the `cert` and `key` of `t` (`[tls]`, or a site's `tls`,
/// named `key` in errors).
fn load_pair(
    src: &Source,
    t: &Spanned<RawTls>,
    table: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(PathBuf, PathBuf, crate::tls::https::Loaded), ConfigError> {
    let t_ref = t.get_ref();
    let (Some(cert), Some(key)) = (&t_ref.cert, &t_ref.key) else {
        return src.err(t.span(), table, "needs both cert and key (PEM files)");
    };
    let cert_path = resolve(cert.get_ref());
    let key_path = resolve(key.get_ref());
    match crate::tls::https::load_key(&cert_path, &key_path) {
        Ok(loaded) => Ok((cert_path, key_path, loaded)),
        Err(e) => {
            use crate::tls::https::CertError;
            let on_key = matches!(e, CertError::KeyMismatch { .. } | CertError::Key { .. })
                || matches!(&e, CertError::Load(crate::tls::TlsError::Io { path, .. }
                    | crate::tls::TlsError::Pem { path, .. }) if *path == key_path);
            let (span, name) = if on_key {
                (key.span(), format!("{table}.key"))
            } else {
                (cert.span(), format!("{table}.cert"))
            };
            src.err(span, &name, e.to_string())
        }
    }
}

/// A `[[site]]`'s `tls = { cert = "…", key = "…" }`, served to clients that ask
/// for one of `names`; a certificate that does not cover a name is served with a
/// warning (clients asking for that name will refuse it).
fn site_certificate(
    src: &Source,
    t: &Spanned<RawTls>,
    names: &[String],
    tls: &mut TlsSettings,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(), ConfigError> {
    if tls.listeners.is_empty() {
        return src.err(
            t.span(),
            "site.tls",
            "no listener has tls = true (write { addr = \"ADDR:PORT\", tls = true } in listen)",
        );
    }
    if names.is_empty() {
        return src.err(
            t.span(),
            "site.tls",
            "is chosen by the name a client asks for (SNI): the site needs server_names",
        );
    }
    let (cert, key, mut loaded) = load_pair(src, t, "site.tls", resolve)?;
    for n in names {
        if !loaded.covers(n) {
            loaded.warnings.push(format!(
                "{}: no subjectAltName covers the site name {n:?}; clients asking for it will refuse the certificate",
                cert.display()
            ));
        }
    }
    tls.sites.push(SiteCertificate {
        names: names.to_vec(),
        cert,
        key,
        loaded,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            Path::new("test.toml"),
            Path::new(env!("CARGO_MANIFEST_DIR")),
        )
    }

    pub(super) fn err(text: &str) -> (usize, String, String) {
        match parse(text) {
            Err(ConfigError::Invalid { line, key, msg, .. }) => (line, key, msg),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn static_features_and_access_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(
            &users,
            format!("alice:{}\n", bcrypt::hash("pw", 4).unwrap()),
        )
        .unwrap();
        let c = parse(&format!(
            "listen = [\"127.0.0.1:8080\"]\nprecompressed = true\nautoindex = true\n\
             compress = [\"br\", \"gzip\"]\ncompress_min_size = 512\ncompress_cache = \"8M\"\n\
             [[access]]\nprefix = \"/admin/\"\nallow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"all\"]\n\
             auth_file = {:?}\nrealm = \"Admins\"\n",
            users.to_str().unwrap()
        ))
        .unwrap();
        assert!(c.http.precompressed && c.http.autoindex);
        assert_eq!(c.http.compress, [Coding::Br, Coding::Gzip]);
        assert_eq!(c.http.compress_min_size, 512);
        assert_eq!(c.http.compress_cache, 8 << 20);
        let rule = &c.http.access[0];
        assert_eq!(rule.prefix, "/admin/");
        assert_eq!(rule.allow.len(), 2);
        assert_eq!(rule.deny, [Cidr::All]);
        assert_eq!(rule.auth.as_ref().unwrap().1, "Admins");
        assert!(!Config::default().http.precompressed, "off by default");

        let l = "listen = [\"127.0.0.1:8080\"]\n";
        for (text, line, key) in [
            (format!("{l}compress = [\"deflate\"]"), 2, "compress"),
            (format!("{l}compress = [\"br\", \"br\"]"), 2, "compress"),
            (
                format!("{l}compress_min_size = \"lots\""),
                2,
                "compress_min_size",
            ),
            (
                format!("{l}\n[[access]]\nprefix = \"admin\"\ndeny = [\"all\"]"),
                4,
                "access.prefix",
            ),
            (
                format!("{l}[[access]]\nprefix = \"/a/\"\ndeny = [\"10.0.0.0/33\"]"),
                4,
                "access.deny",
            ),
            (
                format!("{l}[[access]]\nprefix = \"/a/\"\nauth_file = \"/nonexistent\""),
                4,
                "access.auth_file",
            ),
            (format!("{l}[[access]]\nprefix = \"/a/\""), 3, "access"),
        ] {
            let (got_line, got_key, msg) = err(&text);
            assert_eq!((got_line, got_key.as_str()), (line, key), "{text}: {msg}");
        }
    }

    #[test]
    fn default_is_valid() {
        let c = Config::default();
        assert_eq!(
            c.listen,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.root, None, "the default serves the bundled site");
        assert!(c.workers >= 1);
        assert_eq!(parse("listen = [\"127.0.0.1:8080\"]").unwrap(), c);
    }

    #[test]
    fn a_file_without_listen_is_refused() {
        for text in [
            "",
            "# only a comment\n",
            "\n\n",
            "workers = 2\n[log]\nkeep = 2\n",
        ] {
            match parse(text) {
                Err(e @ ConfigError::NoListen { .. }) => {
                    assert_eq!(e.to_string(), "test.toml: no `listen`")
                }
                other => panic!("{text:?}: expected no `listen`, got {other:?}"),
            }
        }
    }

    #[test]
    fn pid_file_resolves_from_the_file_and_checks_its_directory() {
        let c = parse("listen = [\"127.0.0.1:1\"]\npid_file = \"src/c.pid\"").unwrap();
        assert_eq!(
            c.pid_file,
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/c.pid"))
        );
        let (line, key, _) = err("listen = [\"127.0.0.1:1\"]\npid_file = \"/no/such/x.pid\"");
        assert_eq!((line, key.as_str()), (2, "pid_file"));
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
listen = ["127.0.0.1:9000", "[::1]:9001"]
root = "www"
max_clients = 500
file_cache = 64
workers = 3
processes = 2
status_path = "/server-status"
[timeouts]
header = 5
idle = 30
drain = 2
[log]
dir = "src"
access = "a.log"
rotate_size = "64K"
rotate_daily = true
keep = 3
"#,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(
            c.root,
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("www"))
        );
        assert_eq!((c.max_clients, c.workers, c.processes), (500, 3, 2));
        assert_eq!(c.file_cache, 64);
        assert_eq!(c.status_path.as_deref(), Some("/server-status"));
        assert_eq!(c.timeouts.drain, Duration::from_secs(2));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert_eq!(c.log.access, Some(src.join("a.log")));
        assert_eq!(c.log.error, Some(src.join("error.log")));
        assert_eq!(c.log.rotate_size, Some(64 * 1024));
        assert!(c.log.rotate_daily);
        assert_eq!(c.log.keep, 3);
        assert_eq!(c.total_loops(), 6);
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("capstone.example.toml");
        let c = Config::load(&path).unwrap();
        assert!(!c.listen.is_empty());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let (line, key, msg) = err("workers = 2\n\nlisten_on = [\"127.0.0.1:1\"]\n");
        assert_eq!((line, key.as_str()), (3, "listen_on"));
        assert!(msg.contains("unknown field"), "{msg}");
        let (line, key, _) = err("[timeouts]\nheader = 1\nslow = 3\n");
        assert_eq!((line, key.as_str()), (3, "slow"));
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let (line, key, msg) = err("root = \"www\"\nworkers = \"many\"\n");
        assert_eq!((line, key.as_str()), (2, "workers"));
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn syntax_error_has_line() {
        let (line, _, _) = err("workers = 2\nprocesses = \n");
        assert_eq!(line, 2);
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("\nlisten = [\"localhost:80\"]", 2, "listen"),
            ("listen = []", 1, "listen"),
            ("listen = [\"127.0.0.1:1\", \"127.0.0.1:1\"]", 1, "listen"),
            ("\n\nroot = \"/no/such/dir\"", 3, "root"),
            ("max_clients = 0", 1, "max_clients"),
            ("file_cache = -1", 1, "file_cache"),
            ("file_cache = 100000", 1, "file_cache"),
            ("workers = -1", 1, "workers"),
            ("processes = 1000", 1, "processes"),
            ("accept = \"round-robin\"", 1, "accept"),
            ("user = \"no-such-user-zz\"", 1, "user"),
            ("chroot = \"/no/such\"", 1, "chroot"),
            ("status_path = \"status\"", 1, "status_path"),
            ("[timeouts]\nheader = 0", 2, "timeouts.header"),
            ("[timeouts]\nidle = 99999", 2, "timeouts.idle"),
            ("[log]\ndir = \"/no/such\"", 2, "log.dir"),
            ("[log]\nrotate_size = \"ten\"", 2, "log.rotate_size"),
            ("[log]\nrotate_size = 10", 2, "log.rotate_size"),
            ("[log]\nkeep = 0", 2, "log.keep"),
            ("[log]\naccess = \"/no/such/dir/a.log\"", 2, "log.access"),
        ];
        for (text, want_line, want_key) in cases {
            let (line, key, msg) = err(text);
            assert_eq!(
                (line, key.as_str()),
                (*want_line, *want_key),
                "{text:?}: {msg}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999999G"), None);
    }

    #[test]
    fn accept_modes() {
        assert_eq!(Config::default().accept, AcceptMode::Fill);
        let accept = |v: &str| parse(&format!("listen = [\"127.0.0.1:1\"]\naccept = \"{v}\""));
        assert_eq!(accept("fill").unwrap().accept, AcceptMode::Fill);
        assert_eq!(accept("reuseport").unwrap().accept, AcceptMode::ReusePort);
        assert_eq!(accept("shared").unwrap().accept, AcceptMode::Shared);
    }

    #[test]
    fn off_and_zero() {
        let c = parse(
            "listen = [\"127.0.0.1:1\"]\nstatus_path = \"\"\n[log]\ndir = \"src\"\naccess = \"off\"\nrotate_size = 0",
        )
        .unwrap();
        assert_eq!(c.status_path, None);
        assert_eq!(c.log.access, None);
        assert_eq!(c.log.rotate_size, None);
        let c = parse("listen = [\"127.0.0.1:1\"]\nworkers = 0").unwrap();
        assert!(c.workers >= 1);
    }

    #[test]
    fn tls_listeners_and_their_certificate() {
        // A listener marked tls needs [tls]; the error points at the entry.
        let (line, key, msg) =
            err("listen = [\n\"127.0.0.1:1\",\n{ addr = \"127.0.0.1:2\", tls = true },\n]");
        assert_eq!((line, key.as_str()), (3, "listen"), "{msg}");
        assert!(msg.contains("[tls]"), "{msg}");
        // [tls] with no TLS listener is a mistake too.
        let (line, key, _) = err("listen = [\"127.0.0.1:1\"]\n[tls]\ncert = \"c\"\nkey = \"k\"");
        assert_eq!((line, key.as_str()), (2, "tls"));
        // A missing file is named, at the cert line.
        let (line, key, msg) = err(
            "listen = [{ addr = \"127.0.0.1:2\", tls = true }]\n[tls]\ncert = \"/no/such.pem\"\nkey = \"/no/such.key\"",
        );
        assert_eq!((line, key.as_str()), (3, "tls.cert"), "{msg}");
        assert!(msg.contains("/no/such.pem"), "{msg}");
        // A redirect needs somewhere to go, and is for plaintext listeners.
        let (line, key, msg) = err("listen = [{ addr = \"127.0.0.1:2\", https_redirect = true }]");
        assert_eq!((line, key.as_str()), (1, "listen"));
        assert!(msg.contains("tls = true"), "{msg}");
        let (_, _, msg) =
            err("listen = [{ addr = \"127.0.0.1:2\", tls = true, https_redirect = true }]");
        assert!(msg.contains("plaintext"), "{msg}");
        // Neither form: one line that shows both.
        let (line, key, msg) = err("listen = [{ adr = \"127.0.0.1:2\" }]");
        assert_eq!((line, key.as_str()), (1, "listen"));
        assert_eq!(msg, LISTEN_FORMS);
    }

    #[test]
    fn a_generated_certificate_serves_tls_listeners() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = crate::tls::DataDir::named(tmp.path(), "test");
        dd.server_identity().unwrap();
        let text = format!(
            "listen = [\"127.0.0.1:1\", {{ addr = \"127.0.0.1:2\", tls = true }}]\n[tls]\ncert = {:?}\nkey = {:?}\n",
            dd.server_cert(),
            dd.server_key()
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.tls.listeners, vec!["127.0.0.1:2".parse().unwrap()]);
        assert!(c.tls.is_tls(&"127.0.0.1:2".parse().unwrap()));
        assert!(!c.tls.is_tls(&"127.0.0.1:1".parse().unwrap()));
        assert_eq!(c.tls.certificate.as_ref().unwrap().subject, "test server");
    }

    #[test]
    fn site_certificates_need_tls_listeners_and_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = crate::tls::DataDir::named(tmp.path(), "test");
        dd.server_identity().unwrap();
        let (c, k) = (dd.server_cert(), dd.server_key());
        let site = |names: &str| {
            format!("[[site]]\n{names}root = \"src\"\ntls = {{ cert = {c:?}, key = {k:?} }}\n")
        };
        let (_, key, msg) = err(&format!(
            "listen = [\"127.0.0.1:1\"]\n{}",
            site("server_names = [\"a.test\"]\n")
        ));
        assert_eq!(key, "site.tls");
        assert!(msg.contains("tls = true"), "{msg}");
        let with_tls = format!(
            "listen = [{{ addr = \"127.0.0.1:2\", tls = true }}]\n[tls]\ncert = {c:?}\nkey = {k:?}\n"
        );
        let (_, key, msg) = err(&(with_tls.clone() + &site("")));
        assert_eq!(key, "site.tls");
        assert!(msg.contains("server_names"), "{msg}");
        // Served by SNI; a name the certificate does not cover is a warning.
        let cfg =
            parse(&(with_tls + &site("server_names = [\"a.test\", \"localhost\"]\n"))).unwrap();
        assert_eq!(cfg.tls.sites.len(), 1);
        assert_eq!(cfg.tls.sites[0].names, ["a.test", "localhost"]);
        let w: Vec<_> = cfg.tls.warnings().collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("\"a.test\""), "{w:?}");
    }

    const SITES: &str = "listen = [\"127.0.0.1:1\"]\nindex = [\"index.htm\", \"index.html\"]\n\
        hsts = \"max-age=60\"\n\
        [[site]]\nserver_names = [\"Example.TEST\", \"*.example.test\"]\nroot = \"src\"\n\
        error_pages = { 404 = \"/lib.rs\", 503 = \"/lib.rs\" }\n\
        [[site.headers]]\nextension = \".CSS\"\nset = { \"Cache-Control\" = \"max-age=1\" }\n\
        [[site.redirects]]\nprefix = \"/old/\"\nto = \"/new/\"\ncode = 308\n\
        [[site]]\nserver_names = [\"other.test\"]\nroot = \"tests\"\ndefault = true\n\
        index = \"home.html\"\nhsts = \"\"\n";

    #[test]
    fn sites_parse_with_inherited_rules() {
        let c = parse(SITES).unwrap();
        assert_eq!(c.sites.len(), 2);
        assert_eq!(c.default_site, 1);
        let (a, b) = (&c.sites[0], &c.sites[1]);
        assert_eq!(a.names, ["example.test", "*.example.test"]);
        assert_eq!(a.index, ["index.htm", "index.html"]);
        assert_eq!(a.rules.hsts.as_deref(), Some("max-age=60"));
        assert_eq!(
            a.rules.error_pages,
            [(404, "/lib.rs".to_string()), (503, "/lib.rs".to_string())]
        );
        assert_eq!(
            a.rules.headers[0].when,
            PathMatch::Extension("css".to_string())
        );
        assert_eq!(
            a.rules.redirect_for("/old/x", None),
            Some((308, "/new/x".into()))
        );
        assert_eq!(b.index, ["home.html"]);
        assert_eq!(b.rules.hsts, None, "an empty hsts turns it off");
        assert!(b.rules.redirects.is_empty());
        // No [[site]]: none, and the top-level root as before.
        let c = parse("listen = [\"127.0.0.1:1\"]\nroot = \"src\"\n").unwrap();
        assert!(c.sites.is_empty());
        assert_eq!(c.index, ["index.html"]);
    }

    #[test]
    fn site_mistakes_name_their_line() {
        let base =
            "listen = [\"127.0.0.1:1\"]\n[[site]]\nserver_names = [\"a.test\"]\nroot = \"src\"\n";
        for (extra, line, key, part) in [
            ("[[site]]\nserver_names = [\"A.test.\"]\nroot = \"src\"\n", 6, "site.server_names", "another site"),
            ("[[site]]\nserver_names = [\"*\"]\nroot = \"src\"\n", 6, "site.server_names", "wildcard"),
            ("[[site]]\nserver_names = [\"a*.test\"]\nroot = \"src\"\n", 6, "site.server_names", "wildcard"),
            ("[[site]]\nserver_names = [\"b.test:80\"]\nroot = \"src\"\n", 6, "site.server_names", "port"),
            ("[[site]]\nserver_names = [\"b.test\"]\n", 5, "site", "needs a root"),
            ("[[site]]\nserver_names = [\"b.test\"]\nroot = \"nope\"\n", 7, "site.root", "not a directory"),
            ("[[site]]\nroot = \"src\"\n", 5, "site", "never chosen"),
            ("default = true\n[[site]]\nserver_names = [\"b.test\"]\nroot = \"src\"\ndefault = true\n", 9, "site.default", "already"),
            ("index = \"../x\"\n", 5, "index", "file names"),
            ("error_pages = { 200 = \"/lib.rs\" }\n", 5, "error_pages", "not an error status"),
            ("error_pages = { 404 = \"lib.rs\" }\n", 5, "error_pages", "absolute"),
            ("fallback = \"/nope.html\"\n", 5, "fallback", "not a file"),
            ("hsts = \"max-age=x\"\n", 5, "hsts", "Strict-Transport-Security"),
            ("[[site.headers]]\nset = { A = \"b\" }\n", 6, "headers", "exactly one"),
            ("[[site.headers]]\nprefix = \"/\"\nset = { \"Content-Length\" = \"1\" }\n", 7, "headers.set", "set by the server"),
            ("[[site.headers]]\nprefix = \"/\"\nset = { A = \"b\\r\\nC: d\" }\n", 7, "headers.set", "not a valid header value"),
            ("[[site.headers]]\nextension = \"c/ss\"\nset = { A = \"b\" }\n", 6, "headers.extension", "extension"),
            ("[[site.redirects]]\nprefix = \"/a/\"\nto = \"/b/\"\n[[site.redirects]]\nprefix = \"/a/\"\nto = \"/c/\"\n", 9, "redirects.prefix", "twice"),
            ("[[site.redirects]]\npath = \"/a\"\nprefix = \"/a/\"\nto = \"/b\"\n", 8, "redirects", "exactly one"),
            ("[[site.redirects]]\npath = \"/a\"\nto = \"/b c\"\n", 7, "redirects.to", "not a URL"),
            ("[[site.redirects]]\npath = \"/../a\"\nto = \"/b\"\n", 6, "redirects.path", "absolute"),
        ] {
            let (l, k, msg) = err(&format!("{base}{extra}"));
            assert_eq!((l, k.as_str()), (line, key), "{extra}: {msg}");
            assert!(msg.contains(part), "{extra}: {msg}");
        }
        // A top-level root beside [[site]] blocks is ambiguous.
        let (l, k, _) = err(&format!("root = \"src\"\n{base}"));
        assert_eq!((l, k.as_str()), (1, "root"));
    }

    #[test]
    fn site_access_replaces_the_top_level_and_root_on_the_command_line_wins() {
        let text =
            "listen = [\"127.0.0.1:1\"]\n[[access]]\nprefix = \"/a/\"\ndeny = [\"10.0.0.0/8\"]\n\
            [[site]]\nserver_names = [\"a.test\"]\nroot = \"src\"\n\
            [[site]]\nserver_names = [\"b.test\"]\nroot = \"src\"\n\
            [[site.access]]\nprefix = \"/b/\"\nallow = [\"127.0.0.1\"]\n";
        let mut c = parse(text).unwrap();
        assert_eq!(c.http.access.len(), 1);
        assert_eq!(c.sites[0].access, None);
        let b = c.sites[1].access.as_ref().unwrap();
        assert_eq!((b.len(), b[0].prefix.as_str()), (1, "/b/"));
        let (line, key, _) = err(&text.replace("allow = [\"127.0.0.1\"]", "allow = [\"x\"]"));
        assert_eq!((line, key.as_str()), (13, "access.allow"));
        c.override_with(None, Some(PathBuf::from("/srv")));
        assert!(c.sites.is_empty());
        assert_eq!(c.root.as_deref(), Some(Path::new("/srv")));
    }
}
