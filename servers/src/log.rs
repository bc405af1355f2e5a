//! The access log: one line per request, written by a thread of its own.
//!
//! The one idea: a request path must never wait on a disk. Workers hand finished lines
//! to [`AccessLog::line`], which only tries to put them into a bounded channel; when the
//! channel is full the line is counted as dropped instead (a slow disk costs log lines,
//! never latency or memory). The writer thread batches lines in a buffer and writes it
//! out when it fills, at least once a second, on [`AccessLog::reopen`] (log rotation:
//! the target reopens its path) and at shutdown.
//!
//! Lines are in the Combined Log Format; [`escape`] turns every byte a client chose
//! into printable ASCII first, so a request cannot forge or split log lines.

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a line may wait in the writer's buffer.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Write the buffer out early once it holds this much.
const BUFFER: usize = 64 * 1024;
/// While requests keep coming, how long the writer sleeps between taking the lines
/// queued meanwhile: short beside [`FLUSH_EVERY`], and a channel of N lines then
/// holds N / NAP lines per second (16,384 lines: 800,000 a second).
const NAP: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("spawn access log thread: {0}")]
    Spawn(io::Error),
}

/// Where the writer thread puts log bytes.
pub trait LogTarget: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// Reopen the underlying file (after it was renamed by a log rotator).
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An already open file; it cannot be reopened, having no path.
impl LogTarget for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(self, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Write::flush(self)
    }
}

/// A file opened in append mode by path, reopened by the same name on request.
///
/// The name is resolved from a descriptor of its directory opened with the file, so
/// a reopen after `chroot` still reaches the file outside the jail (a path would be
/// looked up inside it).
#[derive(Debug)]
pub struct AppendFile {
    path: PathBuf,
    dir: OwnedFd,
    name: OsString,
    file: File,
}

impl AppendFile {
    pub fn open(path: &Path) -> Result<AppendFile, LogError> {
        let err = |source| LogError::Open {
            path: path.to_path_buf(),
            source,
        };
        let name = path
            .file_name()
            .ok_or_else(|| err(io::Error::from(io::ErrorKind::InvalidInput)))?
            .to_os_string();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = nix::fcntl::open(
            parent,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| LogError::Open {
            path: parent.to_path_buf(),
            source: e.into(),
        })?;
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        let dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dir) };
        let file = open_append(&dir, &name).map_err(err)?;
        Ok(AppendFile {
            path: path.to_path_buf(),
            dir,
            name,
            file,
        })
    }
}

fn open_append(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

impl LogTarget for AppendFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(&mut self.file, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Write::flush(&mut self.file)
    }
    fn reopen(&mut self) -> io::Result<()> {
        // Keep writing to the old file if the name cannot be opened (say the
        // directory is not writable by the user the server dropped to): losing the
        // rotation beats losing the log.
        self.file = open_append(&self.dir, &self.name).map_err(|source| {
            io::Error::other(
                LogError::Open {
                    path: self.path.clone(),
                    source,
                }
                .to_string(),
            )
        })?;
        Ok(())
    }
}

enum Msg {
    Line(String),
    /// Wakes the thread to act on a flag (reopen) without a line.
    Wake,
    Shutdown,
}

struct Shared {
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
    reopen: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A cheap, cloneable handle to the access log's writer thread.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Flushes and joins the writer thread when dropped.
#[must_use = "dropping the guard stops the access log"]
pub struct AccessLogGuard {
    log: AccessLog,
}

impl Drop for AccessLogGuard {
    fn drop(&mut self) {
        self.log.shutdown();
    }
}

impl AccessLog {
    /// Starts the writer thread over `target`, with room for `capacity` lines in flight.
    pub fn start(
        target: Box<dyn LogTarget>,
        capacity: usize,
    ) -> Result<(AccessLog, AccessLogGuard), LogError> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let shared = Arc::new(Shared {
            tx,
            dropped: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let for_thread = Arc::downgrade(&shared);
        let handle = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer(target, rx, for_thread))
            .map_err(LogError::Spawn)?;
        if let Ok(mut slot) = shared.thread.lock() {
            *slot = Some(handle);
        }
        let log = AccessLog { shared };
        Ok((log.clone(), AccessLogGuard { log }))
    }

    /// Queues one line (without its newline). Never blocks: when the writer is behind
    /// by `capacity` lines, the line is counted in [`AccessLog::dropped`] instead.
    pub fn line(&self, line: String) {
        match self.shared.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines lost to a full channel (or sent after shutdown).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to flush and reopen its target (log rotation).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        let _ = self.shared.tx.try_send(Msg::Wake);
    }

    /// Writes out every queued line, flushes and stops the writer thread. Idempotent;
    /// lines sent afterwards are counted as dropped.
    pub fn shutdown(&self) {
        let handle = match self.shared.thread.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        if let Some(handle) = handle {
            // A blocking send: the thread is draining, so this waits at most for the
            // lines ahead of it.
            let _ = self.shared.tx.send(Msg::Shutdown);
            if handle.join().is_err() {
                tracing::error!("access log thread panicked");
            }
        }
    }
}

fn writer(
    mut target: Box<dyn LogTarget>,
    rx: mpsc::Receiver<Msg>,
    shared: std::sync::Weak<Shared>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(BUFFER);
    let mut last_flush = Instant::now();
    let write_out = |buf: &mut Vec<u8>, target: &mut Box<dyn LogTarget>| {
        if !buf.is_empty() {
            if let Err(e) = target.write_all(buf) {
                tracing::error!(error = %e, bytes = buf.len(), "access log write failed");
            }
            buf.clear();
        }
        if let Err(e) = target.flush() {
            tracing::error!(error = %e, "access log flush failed");
        }
    };
    // While lines keep coming the thread naps and then takes everything queued, rather
    // than sleeping on the channel: a receiver blocked in `recv` makes every `line()`
    // a futex wake and, under load, a switch to this thread per request. Idle, it
    // sleeps on the channel again, so an idle server has no timer ticking.
    enum Take {
        /// Nothing came last time: sleep on the channel.
        Block,
        /// Lines came: nap, then take what queued meanwhile.
        Nap,
        /// The buffer filled before the channel emptied: go on at once.
        Now,
    }
    let mut take = Take::Block;
    let try_recv = |rx: &mpsc::Receiver<Msg>| {
        rx.try_recv().map_err(|e| match e {
            TryRecvError::Empty => RecvTimeoutError::Timeout,
            TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
        })
    };
    loop {
        let msg = match take {
            Take::Block => rx.recv_timeout(FLUSH_EVERY.saturating_sub(last_flush.elapsed())),
            Take::Nap => {
                std::thread::sleep(NAP);
                try_recv(&rx)
            }
            Take::Now => try_recv(&rx),
        };
        let mut stop = false;
        let mut lines = false;
        let mut next = Some(msg);
        while let Some(msg) = next.take() {
            match msg {
                Ok(Msg::Line(line)) => {
                    buf.extend_from_slice(line.as_bytes());
                    buf.push(b'\n');
                    lines = true;
                }
                Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            if !stop && buf.len() < BUFFER {
                next = rx.try_recv().ok().map(Ok);
            }
        }
        take = if buf.len() >= BUFFER {
            Take::Now
        } else if lines {
            Take::Nap
        } else {
            Take::Block
        };
        let reopen = shared
            .upgrade()
            .is_some_and(|s| s.reopen.swap(false, Ordering::AcqRel));
        if stop || reopen || buf.len() >= BUFFER || last_flush.elapsed() >= FLUSH_EVERY {
            write_out(&mut buf, &mut target);
            last_flush = Instant::now();
        }
        if reopen {
            match target.reopen() {
                Ok(()) => tracing::info!("access log reopened"),
                Err(e) => tracing::error!(error = %e, "access log reopen failed"),
            }
        }
        if stop {
            // Whatever raced in behind the shutdown message still gets written.
            while let Ok(Msg::Line(line)) = rx.try_recv() {
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
            }
            write_out(&mut buf, &mut target);
            return;
        }
    }
}

/// Client-chosen bytes made safe for a log line: printable ASCII stays, `"` and `\`
/// and everything else become `\xHH` (as nginx does), so no request can end a quoted
/// field or a line.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// One Combined Log Format line:
/// `host - - [time] "request" status bytes "referer" "user-agent"`.
pub struct Combined<'a> {
    pub host: std::net::IpAddr,
    /// Already formatted, without brackets (`10/Oct/2000:13:55:36 +0000`).
    pub time: &'a str,
    pub request: &'a [u8],
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
}

impl Combined<'_> {
    pub fn format(&self) -> String {
        let field = |v: Option<&[u8]>| v.map_or_else(|| "-".to_string(), escape);
        let request = if self.request.is_empty() {
            "-".to_string()
        } else {
            escape(self.request)
        };
        format!(
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"",
            self.host,
            self.time,
            request,
            self.status,
            self.bytes,
            field(self.referer),
            field(self.user_agent)
        )
    }
}

/// Appends nginx's `$upstream_addr` and `$upstream_response_time` to a log line,
/// each quoted: the servers a proxied request was tried on, in order and joined by
/// `", "`, and how long each took in seconds to the millisecond
/// (` "10.0.0.1:80, 10.0.0.2:80" "0.002, 0.013"`); ` "-" "-"` when `tried` is
/// empty (the request was not proxied).
pub fn push_upstream(line: &mut String, tried: &[(std::net::SocketAddr, std::time::Duration)]) {
    use std::fmt::Write;
    if tried.is_empty() {
        line.push_str(" \"-\" \"-\"");
        return;
    }
    line.push_str(" \"");
    for (i, (addr, _)) in tried.iter().enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        let _ = write!(line, "{addr}");
    }
    line.push_str("\" \"");
    for (i, (_, took)) in tried.iter().enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        let ms = took.as_millis();
        let _ = write!(line, "{}.{:03}", ms / 1000, ms % 1000);
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Receiver;

    /// A target that records what it was given, and can be made slow.
    struct Probe {
        tx: mpsc::Sender<String>,
        gate: Arc<Mutex<()>>,
    }

    impl LogTarget for Probe {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            let _open = self.gate.lock();
            let _ = self.tx.send(String::from_utf8_lossy(buf).into_owned());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn reopen(&mut self) -> io::Result<()> {
            let _ = self.tx.send("<reopen>\n".into());
            Ok(())
        }
    }

    fn probe(gate: Arc<Mutex<()>>) -> (Box<Probe>, Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        (Box::new(Probe { tx, gate }), rx)
    }

    #[test]
    fn escapes_client_bytes() {
        assert_eq!(escape(b"GET / HTTP/1.1"), "GET / HTTP/1.1");
        assert_eq!(
            escape(b"a\"b\\c\nd\re\x00\xff"),
            "a\\x22b\\x5Cc\\x0Ad\\x0De\\x00\\xFF"
        );
    }

    #[test]
    fn combined_format() {
        let line = Combined {
            host: "127.0.0.1".parse().unwrap(),
            time: "10/Oct/2000:13:55:36 +0000",
            request: b"GET /a\"b HTTP/1.0",
            status: 200,
            bytes: 2326,
            referer: None,
            user_agent: Some(b"curl/8\n"),
        }
        .format();
        assert_eq!(
            line,
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a\\x22b HTTP/1.0\" 200 2326 \"-\" \"curl/8\\x0A\""
        );
    }

    #[test]
    fn upstream_fields_as_nginx_lists_them() {
        let mut line = String::from("x");
        push_upstream(&mut line, &[]);
        assert_eq!(line, "x \"-\" \"-\"");
        let mut line = String::from("x");
        push_upstream(
            &mut line,
            &[
                ("10.0.0.1:80".parse().unwrap(), Duration::from_micros(2_400)),
                ("[::1]:8080".parse().unwrap(), Duration::from_millis(61_013)),
            ],
        );
        assert_eq!(line, "x \"10.0.0.1:80, [::1]:8080\" \"0.002, 61.013\"");
    }

    #[test]
    fn flushes_within_a_second_and_on_shutdown() {
        let (target, rx) = probe(Arc::default());
        let (log, guard) = AccessLog::start(target, 16).unwrap();
        log.line("one".into());
        let got = rx.recv_timeout(Duration::from_millis(1500)).unwrap();
        assert_eq!(got, "one\n");
        log.line("two".into());
        log.line("three".into());
        drop(guard);
        let rest: String = rx.try_iter().collect();
        assert_eq!(rest, "two\nthree\n");
        log.line("late".into());
        assert_eq!(log.dropped(), 1);
    }

    #[test]
    fn full_channel_drops_instead_of_blocking() {
        let gate = Arc::new(Mutex::new(()));
        let (target, rx) = probe(gate.clone());
        let (log, guard) = AccessLog::start(target, 4).unwrap();
        // Hold the writer inside a write (a stuck disk), then overfill the channel.
        let closed = gate.lock().unwrap();
        log.line("first".into());
        log.reopen();
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        for i in 0..100 {
            log.line(format!("l{i}"));
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "line() blocked"
        );
        assert!(log.dropped() >= 90, "dropped {}", log.dropped());
        drop(closed);
        guard.log.shutdown();
        let all: String = rx.try_iter().collect();
        let written = all.lines().filter(|l| *l != "<reopen>").count() as u64;
        assert_eq!(written + log.dropped(), 101);
    }

    #[test]
    fn reopen_reaches_the_target_and_files_append() {
        let (target, rx) = probe(Arc::default());
        let (log, guard) = AccessLog::start(target, 16).unwrap();
        log.line("before".into());
        log.reopen();
        let mut seen = Vec::new();
        while let Ok(s) = rx.recv_timeout(Duration::from_millis(1500)) {
            seen.push(s);
            if seen.iter().any(|s| s == "<reopen>\n") {
                break;
            }
        }
        assert_eq!(seen, ["before\n", "<reopen>\n"]);
        drop(guard);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let (log, guard) =
            AccessLog::start(Box::new(AppendFile::open(&path).unwrap()), 16).unwrap();
        log.line("a".into());
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        log.reopen();
        std::thread::sleep(Duration::from_millis(100));
        log.line("b".into());
        drop(guard);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("access.log.1")).unwrap(),
            "a\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
    }
}
