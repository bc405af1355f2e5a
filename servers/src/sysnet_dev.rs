//! Export a server's counters to the kernel device `/dev/sysnet`.
//!
//! The device holds sums and a server holds running totals, so [`DeviceSink`] remembers the
//! totals it last pushed and writes only the signed difference, as `PREFIX.name +delta` or
//! `PREFIX.name -delta` lines in a single `write(2)` that the device applies whole or not at
//! all. Deltas, never absolute values, so several processes may feed the same names (the
//! capstone's workers do) and the device holds their sum. A write the device refuses with
//! `EINVAL` (a gauge that would go below 0 because an operator reset the table meanwhile) is
//! retried a line at a time, so only the refused lines are lost, and each is logged.
//!
//! The device is optional: when it is absent (or not writable) at start-up the server
//! carries on without it and says so once in the log. Open it before dropping privileges
//! (the node is 0644, root-writable) and keep the sink for the life of the process.
//!
//! [`Exporter`] pushes from a thread once per interval and once more when it is finished;
//! [`Counted`] wraps any [`Protocol`] to count connections and bytes for a server that
//! keeps no counters of its own.

use crate::proto::{Action, ConnId, Outbox, Protocol};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The device node, unless `$SYSNET_DEVICE` names another path.
pub const DEFAULT_DEVICE: &str = "/dev/sysnet";
/// The device's limits (see `kmod/sysnet.rs`): a longer name or write is refused.
pub const MAX_NAME: usize = 48;
pub const MAX_WRITE: usize = 4096;

static ABSENT_LOGGED: AtomicBool = AtomicBool::new(false);

/// A writable handle on the counters device and the totals last written to it.
#[derive(Debug)]
pub struct DeviceSink {
    file: File,
    path: PathBuf,
    prefix: String,
    /// Totals as of the last successful push, by full name. Bounded by the set of names the
    /// server passes, which is fixed in its code.
    pushed: HashMap<String, u64>,
}

impl DeviceSink {
    /// Opens `$SYSNET_DEVICE` or [`DEFAULT_DEVICE`] for writing. `None` when it is absent
    /// or cannot be opened, or when `prefix` is not a valid counter name; logged once per
    /// process.
    pub fn open(prefix: &str) -> Option<DeviceSink> {
        let path = std::env::var_os("SYSNET_DEVICE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DEVICE));
        Self::open_at(&path, prefix)
    }

    /// [`DeviceSink::open`] with an explicit path.
    pub fn open_at(path: &Path, prefix: &str) -> Option<DeviceSink> {
        if !valid_name(prefix) || prefix.len() >= MAX_NAME {
            tracing::warn!(
                prefix,
                "counters device: invalid prefix, counters not exported"
            );
            return None;
        }
        match OpenOptions::new().write(true).open(path) {
            Ok(file) => {
                tracing::info!(path = %path.display(), prefix, "counters device: exporting");
                Some(DeviceSink {
                    file,
                    path: path.to_path_buf(),
                    prefix: prefix.to_owned(),
                    pushed: HashMap::new(),
                })
            }
            Err(error) => {
                if !ABSENT_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!(path = %path.display(), %error,
                        "counters device: cannot open for writing, counters not exported");
                }
                None
            }
        }
    }

    /// The device path this sink writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the change of each counter since the last push (a counter seen for the first
    /// time is written even at 0, so it shows up). Everything goes in one `write(2)` when it
    /// fits the device's 4 KiB limit (about 55 counters), otherwise in as few writes as fit,
    /// each split at a line. On error nothing is marked as pushed, so the next push sends
    /// the difference again.
    pub fn push(&mut self, counters: &[(&str, u64)]) -> io::Result<()> {
        let mut lines: Vec<(String, u64, String)> = Vec::with_capacity(counters.len());
        for &(name, total) in counters {
            let full = format!("{}.{}", self.prefix, name);
            if !valid_name(&full) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("counter name {full:?}: want 1-{MAX_NAME} of [a-z0-9_.]"),
                ));
            }
            let line = match self.pushed.get(&full) {
                Some(&last) if last == total => continue,
                Some(&last) if total < last => format!("{full} -{}\n", last - total),
                Some(&last) => format!("{full} +{}\n", total - last),
                None => format!("{full} +{total}\n"),
            };
            lines.push((full, total, line));
        }
        let mut chunk = String::new();
        let mut done = 0;
        for (i, (_, _, line)) in lines.iter().enumerate() {
            if !chunk.is_empty() && chunk.len() + line.len() > MAX_WRITE {
                self.write_chunk(&chunk)?;
                self.mark(&lines[done..i]);
                done = i;
                chunk.clear();
            }
            chunk.push_str(line);
        }
        if !chunk.is_empty() {
            self.write_chunk(&chunk)?;
            self.mark(&lines[done..]);
        }
        Ok(())
    }

    /// Writes `chunk` whole; when the device refuses it with `EINVAL`, writes its lines one
    /// by one and drops (with a warning) only those refused again.
    fn write_chunk(&mut self, chunk: &str) -> io::Result<()> {
        match self.write_once(chunk) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                for line in chunk.split_inclusive('\n') {
                    match self.write_once(line) {
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            tracing::warn!(path = %self.path.display(), line = line.trim_end(),
                                "counters device: update refused (EINVAL), dropped");
                        }
                        other => other.map_err(|e| self.context(e))?,
                    }
                }
                Ok(())
            }
            other => other.map_err(|e| self.context(e)),
        }
    }

    /// One `write(2)`; the error keeps its errno (see [`DeviceSink::context`]).
    fn write_once(&mut self, chunk: &str) -> io::Result<()> {
        let n = self.file.write(chunk.as_bytes())?;
        if n != chunk.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write ({n} of {} bytes)", chunk.len()),
            ));
        }
        Ok(())
    }

    fn context(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("write {}: {e}", self.path.display()))
    }

    fn mark(&mut self, written: &[(String, u64, String)]) {
        for (full, total, _) in written {
            self.pushed.insert(full.clone(), *total);
        }
    }
}

/// Where an [`Exporter`] gets the current totals.
pub type ReadCounters = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Pushes `read()`'s totals to a [`DeviceSink`] every interval from its own thread, and a
/// last time on [`Exporter::finish`] (or drop), so the device ends with the final totals.
pub struct Exporter {
    shared: Arc<ExporterShared>,
    thread: Option<JoinHandle<()>>,
}

struct ExporterShared {
    sink: Mutex<DeviceSink>,
    read: ReadCounters,
    stop: AtomicBool,
}

impl ExporterShared {
    fn push(&self) {
        let totals = (self.read)();
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = sink.push(&totals) {
            tracing::warn!(%error, "counters device: push failed");
        }
    }
}

impl Exporter {
    pub fn start(sink: DeviceSink, every: Duration, read: ReadCounters) -> io::Result<Exporter> {
        let shared = Arc::new(ExporterShared {
            sink: Mutex::new(sink),
            read,
            stop: AtomicBool::new(false),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sysnet-export".into())
            .spawn(move || {
                while !worker.stop.load(Ordering::Acquire) {
                    worker.push();
                    std::thread::park_timeout(every);
                }
            })?;
        Ok(Exporter {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops the thread and pushes the final totals.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::warn!("counters device: export thread panicked");
            }
            self.shared.push();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// For a server with no counters of its own: opens the device for `prefix` and exports a
/// fresh [`ConnCounters`] every second (feed it by serving `Counted::new(proto, counters)`;
/// call [`Exporter::finish`] after serving for the last push). `None` when the device is
/// absent, so the server runs unwrapped.
pub fn export_connections(prefix: &str) -> Option<(Arc<ConnCounters>, Exporter)> {
    let sink = DeviceSink::open(prefix)?;
    let counters = Arc::new(ConnCounters::default());
    let read = counters.clone();
    match Exporter::start(
        sink,
        Duration::from_secs(1),
        Box::new(move || read.totals()),
    ) {
        Ok(exporter) => Some((counters, exporter)),
        Err(error) => {
            tracing::warn!(%error, "counters device: cannot start the export thread");
            None
        }
    }
}

/// Connection and byte counts kept by [`Counted`].
#[derive(Debug, Default)]
pub struct ConnCounters {
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Bytes queued for sending (a broadcast counts once, files by their length).
    pub bytes_out: AtomicU64,
}

impl ConnCounters {
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("connections_total", g(&self.connections_total)),
            ("connections_active", g(&self.connections_active)),
            ("bytes_in", g(&self.bytes_in)),
            ("bytes_out", g(&self.bytes_out)),
        ]
    }
}

/// A protocol that counts what passes through it into [`ConnCounters`] and otherwise
/// behaves exactly as the protocol it wraps.
pub struct Counted<P> {
    inner: P,
    counters: Arc<ConnCounters>,
}

impl<P> Counted<P> {
    pub fn new(inner: P, counters: Arc<ConnCounters>) -> Self {
        Counted { inner, counters }
    }

    /// Counts the bytes of the actions queued after the first `mark` ones. The outbox has
    /// no borrowing iterator, so its actions are taken out and put back in the same order.
    fn count_out(&self, out: &mut Outbox, mark: usize) {
        if out.len() <= mark {
            return;
        }
        let actions: Vec<Action> = out.drain().collect();
        let mut bytes = 0u64;
        for action in actions.iter().skip(mark) {
            bytes += match action {
                Action::Send { data, .. } => data.len() as u64,
                Action::SendFile { len, .. } => *len,
                _ => 0,
            };
        }
        for action in actions {
            match action {
                Action::Send { to, data } => out.send_to(to, data),
                Action::SendFile {
                    to,
                    file,
                    offset,
                    len,
                } => out.send_file(to, file, offset, len),
                Action::Close { id } => out.close(id),
                Action::Deadline { id, after } => out.deadline(id, after),
                a @ (Action::Connect { .. } | Action::Pause { .. } | Action::Splice { .. }) => {
                    out.push(a)
                }
            }
        }
        self.counters.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl<P: Protocol> Protocol for Counted<P> {
    type Conn = P::Conn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> P::Conn {
        self.counters
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        let mark = out.len();
        let conn = self.inner.open(id, peer, out);
        self.count_out(out, mark);
        conn
    }

    fn data(&mut self, id: ConnId, conn: &mut P::Conn, input: &[u8], out: &mut Outbox) -> usize {
        let mark = out.len();
        let used = self.inner.data(id, conn, input, out);
        self.counters
            .bytes_in
            .fetch_add(used.min(input.len()) as u64, Ordering::Relaxed);
        self.count_out(out, mark);
        used
    }

    fn eof(&mut self, id: ConnId, conn: &mut P::Conn, out: &mut Outbox) {
        let mark = out.len();
        self.inner.eof(id, conn, out);
        self.count_out(out, mark);
    }

    fn timeout(&mut self, id: ConnId, conn: &mut P::Conn, out: &mut Outbox) {
        let mark = out.len();
        self.inner.timeout(id, conn, out);
        self.count_out(out, mark);
    }

    fn closed(&mut self, id: ConnId, conn: P::Conn, out: &mut Outbox) {
        self.counters
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
        let mark = out.len();
        self.inner.closed(id, conn, out);
        self.count_out(out, mark);
    }

    fn refusal(&mut self) -> Bytes {
        self.inner.refusal()
    }

    fn tick(&mut self, out: &mut Outbox) {
        let mark = out.len();
        self.inner.tick(out);
        self.count_out(out, mark);
    }

    fn before_wait(&mut self, out: &mut Outbox) {
        let mark = out.len();
        self.inner.before_wait(out);
        self.count_out(out, mark);
    }

    fn queued(&mut self, position: usize) -> Bytes {
        self.inner.queued(position)
    }

    fn idle(&self, conn: &P::Conn) -> bool {
        self.inner.idle(conn)
    }
}

/// The device's name rule: 1 to 48 of `[a-z0-9_.]`.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sink_on_file() -> (tempfile::TempDir, PathBuf, DeviceSink) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sysnet");
        File::create(&path).expect("create");
        let sink = DeviceSink::open_at(&path, "echo").expect("open");
        (dir, path, sink)
    }

    #[test]
    fn first_push_writes_every_counter_then_only_changes() {
        let (_dir, path, mut sink) = sink_on_file();
        sink.push(&[("requests_total", 3), ("bytes_out", 0)])
            .expect("push");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "echo.requests_total +3\necho.bytes_out +0\n"
        );
        sink.push(&[("requests_total", 10), ("bytes_out", 0)])
            .expect("push");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "echo.requests_total +3\necho.bytes_out +0\necho.requests_total +7\n"
        );
        // Nothing changed: nothing written.
        sink.push(&[("requests_total", 10), ("bytes_out", 0)])
            .expect("push");
        assert_eq!(
            std::fs::read_to_string(&path)
                .expect("read")
                .lines()
                .count(),
            3
        );
    }

    /// Sums `name ±N` lines the way the device applies them.
    fn device_sum(text: &str) -> i128 {
        text.lines()
            .map(|l| {
                let d = l.rsplit(' ').next().expect("delta");
                let (sign, digits) = match d.as_bytes()[0] {
                    b'-' => (-1, &d[1..]),
                    b'+' => (1, &d[1..]),
                    _ => (1, d),
                };
                sign * digits.parse::<i128>().expect("digits")
            })
            .sum()
    }

    #[test]
    fn a_gauge_going_down_sends_a_negative_delta() {
        let (_dir, path, mut sink) = sink_on_file();
        sink.push(&[("connections_active", 7)]).expect("push");
        sink.push(&[("connections_active", 5)]).expect("push");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "echo.connections_active +7\necho.connections_active -2\n"
        );
        assert_eq!(device_sum(&text), 5);
    }

    #[test]
    fn invalid_names_are_refused_before_writing() {
        let (_dir, path, mut sink) = sink_on_file();
        let err = sink
            .push(&[("ok", 1), ("Bad Name", 1)])
            .expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
        let long = "x".repeat(MAX_NAME);
        assert!(sink.push(&[(long.as_str(), 1)]).is_err());
        assert!(DeviceSink::open_at(&path, "Echo").is_none());
    }

    #[test]
    fn absent_device_gives_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(DeviceSink::open_at(&dir.path().join("missing"), "echo").is_none());
    }

    #[test]
    fn many_counters_split_at_lines_within_the_write_limit() {
        let (_dir, path, mut sink) = sink_on_file();
        let names: Vec<String> = (0..120)
            .map(|i| format!("counter_with_a_long_name_{i:03}"))
            .collect();
        let counters: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), u64::MAX)).collect();
        sink.push(&counters).expect("push");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 120);
        assert!(text
            .lines()
            .all(|l| l.ends_with(&format!(" +{}", u64::MAX))));
    }

    /// Sends every byte back, then a greeting-free close on EOF.
    struct Mirror;
    impl Protocol for Mirror {
        type Conn = ();
        fn open(&mut self, id: ConnId, _peer: SocketAddr, out: &mut Outbox) {
            out.send(id, &b"hi\n"[..]);
        }
        fn data(&mut self, id: ConnId, _conn: &mut (), input: &[u8], out: &mut Outbox) -> usize {
            out.send(id, Bytes::copy_from_slice(input));
            out.deadline(id, Some(Duration::from_secs(1)));
            input.len()
        }
        fn closed(&mut self, _id: ConnId, _conn: (), _out: &mut Outbox) {}
        fn tick(&mut self, out: &mut Outbox) {
            out.send_to(crate::proto::Target::All, &b"tick\n"[..]);
        }
        fn queued(&mut self, position: usize) -> Bytes {
            Bytes::from(format!("wait {position}\n"))
        }
        fn idle(&self, _conn: &()) -> bool {
            false
        }
    }

    #[test]
    fn counted_passes_on_the_optional_calls() {
        let counters = Arc::new(ConnCounters::default());
        let mut proto = Counted::new(Mirror, counters.clone());
        let mut out = Outbox::new();
        proto.tick(&mut out);
        assert_eq!(out.len(), 1, "tick reached the inner protocol");
        assert_eq!(counters.totals()[3], ("bytes_out", 5));
        assert_eq!(&proto.queued(3)[..], b"wait 3\n");
        assert!(!proto.idle(&()), "idle is the inner protocol's answer");
    }

    #[test]
    fn counted_counts_and_keeps_the_actions_in_order() {
        let counters = Arc::new(ConnCounters::default());
        let mut proto = Counted::new(Mirror, counters.clone());
        let id = ConnId(1);
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let mut out = Outbox::new();
        proto.open(id, peer, &mut out);
        assert_eq!(proto.data(id, &mut (), b"hello", &mut out), 5);
        proto.eof(id, &mut (), &mut out);
        let kinds: Vec<String> = out
            .drain()
            .map(|a| match a {
                Action::Send { data, .. } => format!("send {}", String::from_utf8_lossy(&data)),
                Action::Deadline { .. } => "deadline".into(),
                Action::Close { .. } => "close".into(),
                Action::SendFile { .. } => "file".into(),
                Action::Connect { .. } | Action::Pause { .. } | Action::Splice { .. } => {
                    "other".into()
                }
            })
            .collect();
        assert_eq!(kinds, ["send hi\n", "send hello", "deadline", "close"]);
        proto.closed(id, (), &mut out);
        let totals = counters.totals();
        assert_eq!(
            totals,
            vec![
                ("connections_total", 1),
                ("connections_active", 0),
                ("bytes_in", 5),
                ("bytes_out", 8)
            ]
        );
    }

    #[test]
    fn exporter_pushes_periodically_and_the_final_totals_on_finish() {
        let (_dir, path, sink) = sink_on_file();
        let value = Arc::new(AtomicU64::new(1));
        let v = value.clone();
        let exporter = Exporter::start(
            sink,
            Duration::from_millis(20),
            Box::new(move || vec![("requests_total", v.load(Ordering::Relaxed))]),
        )
        .expect("start");
        std::thread::sleep(Duration::from_millis(100));
        assert!(std::fs::read_to_string(&path)
            .expect("read")
            .contains("echo.requests_total +1\n"));
        value.store(42, Ordering::Relaxed);
        exporter.finish();
        let sum = device_sum(&std::fs::read_to_string(&path).expect("read"));
        assert_eq!(sum, 42);
    }

    /// A FIFO shows the write boundaries: each push must arrive as one write.
    #[test]
    fn each_push_is_one_write_on_a_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let reader_path = path.clone();
        let reader = std::thread::spawn(move || {
            let mut f = File::open(&reader_path).expect("open fifo for reading");
            let mut reads = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = f.read(&mut buf).expect("read fifo");
                if n == 0 {
                    break;
                }
                reads.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            reads
        });
        let mut sink = DeviceSink::open_at(&path, "echo").expect("open fifo for writing");
        sink.push(&[("a", 1), ("b", 2), ("c", 3)]).expect("push");
        // Let the reader drain the first write so the second cannot coalesce with it.
        std::thread::sleep(std::time::Duration::from_millis(200));
        sink.push(&[("a", 2), ("b", 2), ("c", 4)]).expect("push");
        drop(sink);
        let reads = reader.join().expect("reader thread");
        assert_eq!(
            reads,
            vec![
                "echo.a +1\necho.b +2\necho.c +3\n".to_string(),
                "echo.a +1\necho.c +1\n".to_string()
            ]
        );
    }
}
