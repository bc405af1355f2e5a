//! The capstone's error log: `tracing` events into a rotating file (or standard
//! error), written directly by the master and through a writer thread by workers.
//!
//! The one idea: the master must stay single-threaded so `fork` is safe, and it is
//! not an event loop, so it writes its few lines itself. A worker, right after the
//! fork, moves the file behind a [`LogWriter`] thread so its event loops only ever
//! queue a line, never wait on the disk.

use crate::rotate::{LogWriter, RotateError, RotatePolicy, RotatingFile};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

enum Sink {
    Stderr,
    Direct(RotatingFile),
    Queued(LogWriter),
    /// Between states (never seen by a writer: swaps happen under the lock).
    Empty,
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);

/// Error-log lines lost to failed writes, across every file this process opened.
static LOST: OnceLock<Arc<AtomicU64>> = OnceLock::new();

fn lost_counter() -> Arc<AtomicU64> {
    LOST.get_or_init(|| Arc::new(AtomicU64::new(0))).clone()
}

/// Error-log lines that a write failed to put on disk (a full disk), so far in
/// this process (a forked worker starts from its master's count).
pub fn write_errors() -> u64 {
    LOST.get().map_or(0, |c| c.load(Ordering::Relaxed))
}

/// Error-log lines a worker may have queued before the writer catches up.
const QUEUE_LINES: usize = 4096;

fn with_sink<R>(f: impl FnOnce(&mut Sink) -> R) -> R {
    // A poisoned lock only means a writer panicked mid-line; the sink itself is intact.
    let mut guard = SINK.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

/// Installs the global subscriber writing to the error log. `RUST_LOG` filters
/// (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ErrorLog)
        .with_ansi(false)
        .try_init();
}

/// Sends the error log to `path` (rotating per `policy`), or to standard error.
pub fn open(path: Option<&Path>, policy: RotatePolicy) -> Result<(), RotateError> {
    let next = match path {
        Some(p) => Sink::Direct(RotatingFile::open(p, policy)?.with_lost_counter(lost_counter())),
        None => Sink::Stderr,
    };
    with_sink(|s| *s = next);
    Ok(())
}

/// In a freshly forked worker: moves the file behind a writer thread.
pub fn start_writer_thread() -> std::io::Result<()> {
    with_sink(|s| {
        if let Sink::Direct(_) = s {
            let Sink::Direct(mut file) = std::mem::replace(s, Sink::Empty) else {
                unreachable!("matched Direct just above")
            };
            // The inherited directory descriptor shares its flock with the master;
            // a fresh one makes rotation exclusive between processes again.
            if let Err(e) = file.detach() {
                eprintln!("error log: {e}");
            }
            match LogWriter::spawn(file, QUEUE_LINES) {
                Ok(w) => *s = Sink::Queued(w),
                Err(e) => {
                    *s = Sink::Stderr;
                    return Err(e);
                }
            }
        }
        Ok(())
    })
}

/// Reopens the error log file (SIGUSR1).
pub fn reopen() {
    with_sink(|s| match s {
        Sink::Direct(f) => {
            if let Err(e) = f.reopen() {
                eprintln!("error log: {e}");
            }
        }
        Sink::Queued(w) => w.reopen(),
        Sink::Stderr | Sink::Empty => {}
    });
}

/// Writes out everything queued (at most `limit` waiting).
pub fn flush(limit: Duration) {
    with_sink(|s| match s {
        Sink::Direct(f) => {
            let _ = f.flush();
        }
        Sink::Queued(w) => w.flush(limit),
        Sink::Stderr | Sink::Empty => {}
    });
}

/// Error-log lines dropped because the writer thread's queue was full.
pub fn dropped() -> u64 {
    with_sink(|s| match s {
        Sink::Queued(w) => w.dropped(),
        _ => 0,
    })
}

/// The `MakeWriter` handed to `tracing`: one buffer per event, delivered whole.
pub struct ErrorLog;

impl<'a> MakeWriter<'a> for ErrorLog {
    type Writer = EventBuf;

    fn make_writer(&'a self) -> EventBuf {
        EventBuf(Vec::with_capacity(256))
    }
}

/// One formatted event; handed to the sink when `tracing` drops it.
pub struct EventBuf(Vec<u8>);

impl Write for EventBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuf {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.0);
        with_sink(|s| match s {
            Sink::Stderr | Sink::Empty => {
                let _ = std::io::stderr().write_all(&line);
            }
            Sink::Direct(f) => {
                let _ = f.write_line(&line).and_then(|_| f.flush());
            }
            Sink::Queued(w) => {
                w.line(line);
            }
        });
    }
}
