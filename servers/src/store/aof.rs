//! The append-only file: every write command, in RESP form, appended in the order it was
//! applied; replayed at start; compacted in the background.
//!
//! The one idea, as in Redis's `aof.c`: a command is acknowledged only after the bytes
//! describing it have been handed to the kernel (`write`), and, under `always`, made
//! durable (`fdatasync`) — so the caller feeds commands with [`Aof::feed`] while it runs
//! a loop iteration (every client's batch) and calls [`Aof::flush`] once, *before*
//! sending any of that iteration's replies. Under
//! `everysec` a thread of its own runs `fdatasync` once a second, so the event loop never
//! waits on the disk; under `no` the kernel decides. A write that fails half-way is
//! undone with `ftruncate`, so the file never holds half a command we did not intend.
//!
//! Reading the file back, a command cut off at the very end (a crash mid-write) is cut
//! away with a warning; anything malformed *before* the end stops the start with its
//! byte offset, for `kvd --check-aof FILE --fix` to repair.
//!
//! Compaction ([`Aof::start_rewrite`]) forks: the child writes the keyspace it inherited
//! (a copy-on-write snapshot) to a temporary file, while the parent keeps serving and
//! keeps a copy of every command fed since the fork. When the child has finished, the
//! parent appends that copy, fsyncs, renames the file over the log and fsyncs the
//! directory, and the log carries on in the new file.

use crate::proto::resp::{self, Parsed};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The log's file name inside the data directory.
pub const FILE_NAME: &str = "appendonly.aof";

/// A rewrite that has kept more than this many bytes of concurrent commands is given up
/// (the child is killed): memory stays bounded even if the child is stuck.
const REWRITE_BUF_MAX: usize = 256 * 1024 * 1024;

/// When the log is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncPolicy {
    /// Before every reply that acknowledges a write.
    Always,
    /// Once a second, off the event loop.
    Everysec,
    /// When the kernel decides.
    No,
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Everysec => "everysec",
            FsyncPolicy::No => "no",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AofError {
    #[error("{call} {path}: {source}")]
    Io {
        call: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: bad file format at byte offset {offset}: {reason} \
         (make a backup, then run: kvd --check-aof {path} --fix)"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path} is in use by another process (flock): {source}")]
    Locked {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("fork for the log rewrite: {0}")]
    Fork(nix::Error),
    #[error("a log rewrite is already in progress")]
    RewriteInProgress,
}

fn io_err<'a>(call: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AofError + 'a {
    move |source| AofError::Io {
        call,
        path: path.to_owned(),
        source,
    }
}

/// Makes a rename or a create durable: fsync the directory holding the entry.
pub fn fsync_dir(dir: &Path) -> Result<(), AofError> {
    let d = File::open(dir).map_err(io_err("open", dir))?;
    d.sync_all().map_err(io_err("fsync", dir))
}

/// What the `everysec` thread shares with the event loop.
struct SyncShared {
    file: Mutex<Arc<File>>,
    dirty: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
    /// The last fsync error, for INFO and the log.
    error: Mutex<Option<String>>,
}

struct Syncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start(file: Arc<File>, path: PathBuf) -> io::Result<Self> {
        let shared = Arc::new(SyncShared {
            file: Mutex::new(file),
            dirty: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            error: Mutex::new(None),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("aof-fsync".into())
            .spawn(move || loop {
                {
                    let stop = s.stop.lock().unwrap_or_else(|p| p.into_inner());
                    let (stop, _) = s
                        .wake
                        .wait_timeout(stop, Duration::from_secs(1))
                        .unwrap_or_else(|p| p.into_inner());
                    if *stop {
                        return;
                    }
                }
                if s.dirty.swap(false, Ordering::AcqRel) {
                    let f = s.file.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let r = f.sync_data();
                    let mut e = s.error.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(()) => *e = None,
                        Err(err) => {
                            tracing::warn!(path = %path.display(), error = %err, "fdatasync of the append-only file failed");
                            *e = Some(err.to_string());
                            s.dirty.store(true, Ordering::Release);
                        }
                    }
                }
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Rewrite {
    pid: nix::unistd::Pid,
    temp: PathBuf,
    /// Every command fed since the fork: what the child's snapshot lacks.
    buf: Vec<u8>,
    started: Instant,
    /// Held until the child is done (see `start_rewrite`).
    _pin: Box<dyn std::any::Any + Send>,
}

/// The outcome of a finished background rewrite, for INFO and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteStatus {
    Ok,
    Err,
}

/// An open log, appending.
pub struct Aof {
    path: PathBuf,
    dir: PathBuf,
    file: Arc<File>,
    /// The file's length as far as we know: everything up to here was written whole.
    size: u64,
    /// Size at start or after the last rewrite (INFO's `aof_base_size`).
    base_size: u64,
    /// Fed and not yet written.
    buf: Vec<u8>,
    policy: FsyncPolicy,
    last_write_error: Option<String>,
    syncer: Option<Syncer>,
    rewrite: Option<Rewrite>,
    pub last_rewrite_status: Option<RewriteStatus>,
    pub last_rewrite_secs: Option<u64>,
    /// When a failed write was last logged, and how many failures went unlogged
    /// since: a write retried on every tick is logged once a second at most.
    last_error_log: Option<Instant>,
    errors_unlogged: u64,
    /// Set by [`Aof::close`]: the final sync is done, `Drop` does not repeat it.
    closed: bool,
}

fn open_append(path: &Path) -> Result<File, AofError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
        .map_err(io_err("open", path))
}

/// Takes an exclusive lock on the log, so a second server on the same directory stops
/// instead of interleaving its appends (or cutting back a tail that is being written).
fn lock(file: &File, path: &Path) -> Result<(), AofError> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this `File` owns and keeps open; no memory involved.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(AofError::Locked {
            path: path.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl Aof {
    /// Opens (creating if needed) `dir/appendonly.aof` for appending, locked against
    /// other processes. Replay it with [`load`] after opening, then call
    /// [`Aof::refresh_size`].
    pub fn open(dir: &Path, policy: FsyncPolicy) -> Result<Self, AofError> {
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let file = open_append(&path)?;
        lock(&file, &path)?;
        remove_stale_temps(dir);
        if !existed {
            fsync_dir(dir)?;
        }
        let size = file.metadata().map_err(io_err("fstat", &path))?.len();
        let file = Arc::new(file);
        let syncer = match policy {
            FsyncPolicy::Everysec => Some(
                Syncer::start(file.clone(), path.clone())
                    .map_err(io_err("spawn fsync thread for", &path))?,
            ),
            _ => None,
        };
        Ok(Self {
            path,
            dir: dir.to_owned(),
            file,
            size,
            base_size: size,
            buf: Vec::with_capacity(64 * 1024),
            policy,
            last_write_error: None,
            syncer,
            rewrite: None,
            last_rewrite_status: None,
            last_rewrite_secs: None,
            last_error_log: None,
            errors_unlogged: 0,
            closed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file's length (after [`load`] cut a torn tail away).
    pub fn refresh_size(&mut self) -> Result<(), AofError> {
        self.size = self
            .file
            .metadata()
            .map_err(io_err("fstat", &self.path))?
            .len();
        self.base_size = self.size;
        Ok(())
    }

    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Bytes written to the file so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn base_size(&self) -> u64 {
        self.base_size
    }

    /// The error that stops write commands (a failed write, or a failed background
    /// fsync), if any.
    pub fn write_error(&self) -> Option<String> {
        if let Some(e) = &self.last_write_error {
            return Some(e.clone());
        }
        let s = self.syncer.as_ref()?;
        let e = s.shared.error.lock().unwrap_or_else(|p| p.into_inner());
        e.clone()
    }

    pub fn rewrite_in_progress(&self) -> bool {
        self.rewrite.is_some()
    }

    /// The background rewrite's process, while one runs.
    pub fn rewrite_pid(&self) -> Option<i32> {
        self.rewrite.as_ref().map(|r| r.pid.as_raw())
    }

    /// Whether bytes were fed that [`Aof::flush`] has not written yet.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Queues one command's bytes (RESP). Nothing reaches the file before [`Aof::flush`].
    pub fn feed(&mut self, cmd: &[u8]) {
        self.buf.extend_from_slice(cmd);
        if let Some(rw) = &mut self.rewrite {
            rw.buf.extend_from_slice(cmd);
        }
    }

    /// Writes what was fed, and under `always` fsyncs it. Acknowledge the batch only
    /// when this returns `Ok`. On error the unwritten bytes stay queued for the next
    /// call (see [`Aof::write_error`]).
    pub fn flush(&mut self) -> Result<(), AofError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut written = 0usize;
        let mut failure = None;
        while written < self.buf.len() {
            match (&*self.file).write(&self.buf[written..]) {
                Ok(0) => {
                    failure = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            if written > 0 {
                // Undo the partial command so the file ends on a boundary; if even that
                // fails, keep what was written and write the rest later.
                match self.file.set_len(self.size) {
                    Ok(()) => written = 0,
                    Err(te) => {
                        tracing::warn!(path = %self.path.display(), error = %te, "ftruncate after a short write failed; keeping the partial write");
                        self.size += written as u64;
                        self.buf.drain(..written);
                    }
                }
            }
            if self
                .last_error_log
                .map_or(true, |t| t.elapsed() >= Duration::from_secs(1))
            {
                tracing::warn!(
                    path = %self.path.display(),
                    error = %e,
                    written,
                    failures_since_last_report = self.errors_unlogged,
                    "write to the append-only file failed (retried; reported once a second at most)"
                );
                self.last_error_log = Some(Instant::now());
                self.errors_unlogged = 0;
            } else {
                self.errors_unlogged += 1;
            }
            self.last_write_error = Some(e.to_string());
            return Err(AofError::Io {
                call: "write",
                path: self.path.clone(),
                source: e,
            });
        }
        self.size += written as u64;
        self.buf.clear();
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf.shrink_to(64 * 1024);
        }
        if self.last_write_error.take().is_some() {
            tracing::info!(path = %self.path.display(), "append-only file writes recovered");
            self.last_error_log = None;
            self.errors_unlogged = 0;
        }
        match self.policy {
            FsyncPolicy::Always => self
                .file
                .sync_data()
                .map_err(io_err("fdatasync", &self.path))?,
            FsyncPolicy::Everysec => {
                if let Some(s) = &self.syncer {
                    s.shared.dirty.store(true, Ordering::Release);
                }
            }
            FsyncPolicy::No => {}
        }
        Ok(())
    }

    /// Forks a child that writes the snapshot `write_snapshot` produces (called in the
    /// child, on the child's copy-on-write view of memory) to a temporary file. Poll
    /// [`Aof::poll_rewrite`] regularly to finish it. `pin` is kept until the child has
    /// exited: whatever the snapshot needs to stay valid on disk meanwhile.
    pub fn start_rewrite(
        &mut self,
        write_snapshot: &dyn Fn(&mut dyn Write) -> io::Result<()>,
        pin: Box<dyn std::any::Any + Send>,
    ) -> Result<(), AofError> {
        if self.rewrite.is_some() {
            return Err(AofError::RewriteInProgress);
        }
        let _ = self.flush();
        let temp = self
            .dir
            .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
        let log_fd = {
            use std::os::fd::AsRawFd;
            self.file.as_raw_fd()
        };
        let parent = std::process::id();
        // SAFETY: the child only opens and writes one file through std (the allocator it
        // uses is fork-safe: glibc resets its locks in the child), touches no lock another
        // thread could hold (no logging), and leaves with `_exit`, never returning into
        // the event loop or running destructors that would flush shared state.
        match unsafe { nix::unistd::fork() }.map_err(AofError::Fork)? {
            nix::unistd::ForkResult::Child => {
                // SAFETY: plain syscalls on the child's own descriptor table and
                // process: close the log (its descriptor carries the lock: a child
                // still exiting must not refuse a restarted server the directory;
                // close only, never unlock, which would unlock the parent's too) and
                // every inherited socket (the listening socket above all, so a
                // restarted server can bind while this child finishes) but keep other
                // files (an on-disk engine reads its snapshot through them), and die
                // with the parent rather than outlive it, also when the parent died
                // before the request was made (then our parent is no longer it).
                unsafe {
                    libc::close(log_fd);
                    for fd in 3..inherited_fd_bound() {
                        let mut st: libc::stat = std::mem::zeroed();
                        if libc::fstat(fd, &mut st) == 0
                            && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
                        {
                            libc::close(fd);
                        }
                    }
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() as u32 != parent {
                        libc::_exit(3);
                    }
                }
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    match write_child(&temp, write_snapshot) {
                        Ok(()) => 0,
                        Err(_) => 1,
                    }
                }))
                .unwrap_or(2);
                // SAFETY: `_exit` ends the child at once, as a forked child must.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                tracing::info!(
                    pid = child.as_raw(),
                    "background append-only file rewrite started"
                );
                self.rewrite = Some(Rewrite {
                    pid: child,
                    temp,
                    buf: Vec::new(),
                    started: Instant::now(),
                    _pin: pin,
                });
                Ok(())
            }
        }
    }

    /// Finishes a background rewrite whose child has exited. Returns the outcome when
    /// one ended in this call.
    pub fn poll_rewrite(&mut self) -> Option<RewriteStatus> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let rw = self.rewrite.as_ref()?;
        if rw.buf.len() > REWRITE_BUF_MAX {
            tracing::warn!(
                pid = rw.pid.as_raw(),
                "log rewrite gave up: too many writes arrived meanwhile"
            );
            let _ = nix::sys::signal::kill(rw.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(rw.pid, None);
            return Some(self.rewrite_failed());
        }
        let status = match waitpid(rw.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "waitpid on the log rewrite child failed");
                return Some(self.rewrite_failed());
            }
        };
        if !matches!(status, WaitStatus::Exited(_, 0)) {
            tracing::warn!(status = ?status, "log rewrite child failed");
            return Some(self.rewrite_failed());
        }
        match self.finish_rewrite() {
            Ok(()) => Some(RewriteStatus::Ok),
            Err(e) => {
                tracing::warn!(error = %e, "finishing the log rewrite failed");
                Some(self.rewrite_failed())
            }
        }
    }

    fn rewrite_failed(&mut self) -> RewriteStatus {
        if let Some(rw) = self.rewrite.take() {
            let _ = std::fs::remove_file(&rw.temp);
        }
        self.last_rewrite_status = Some(RewriteStatus::Err);
        RewriteStatus::Err
    }

    fn finish_rewrite(&mut self) -> Result<(), AofError> {
        let Some(rw) = self.rewrite.as_ref() else {
            return Ok(());
        };
        let temp = rw.temp.clone();
        let new = open_append(&temp)?;
        lock(&new, &temp)?;
        (&new).write_all(&rw.buf).map_err(io_err("write", &temp))?;
        new.sync_all().map_err(io_err("fsync", &temp))?;
        std::fs::rename(&temp, &self.path).map_err(io_err("rename", &temp))?;
        fsync_dir(&self.dir)?;
        let size = new.metadata().map_err(io_err("fstat", &temp))?.len();
        let rw = self.rewrite.take();
        let file = Arc::new(new);
        if let Some(s) = &self.syncer {
            *s.shared.file.lock().unwrap_or_else(|p| p.into_inner()) = file.clone();
        }
        let old_size = self.size;
        self.file = file;
        self.size = size;
        self.base_size = size;
        // Everything queued and unwritten is in the new file already: it was either in
        // the child's snapshot or fed after the fork.
        self.buf.clear();
        self.last_write_error = None;
        let secs = rw.map(|r| r.started.elapsed().as_secs()).unwrap_or(0);
        self.last_rewrite_secs = Some(secs);
        self.last_rewrite_status = Some(RewriteStatus::Ok);
        tracing::info!(
            old_size,
            new_size = size,
            secs,
            "background append-only file rewrite finished"
        );
        Ok(())
    }

    /// Flushes and fsyncs whatever is pending: a clean shutdown loses nothing.
    pub fn sync(&mut self) -> Result<(), AofError> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(io_err("fdatasync", &self.path))
    }
}

impl Aof {
    /// The final sync at shutdown: writes and fsyncs what is pending. An error means
    /// acknowledged writes may be missing from the log, and the server must not report
    /// a clean exit.
    pub fn close(&mut self) -> Result<(), AofError> {
        self.closed = true;
        self.sync()
    }
}

impl Drop for Aof {
    fn drop(&mut self) {
        if !self.closed {
            if let Err(e) = self.sync() {
                tracing::error!(error = %e, "final sync of the append-only file failed");
            }
        }
        if let Some(rw) = self.rewrite.take() {
            let _ = nix::sys::signal::kill(rw.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(rw.pid, None);
            let _ = std::fs::remove_file(&rw.temp);
        }
    }
}

/// One past the highest descriptor number open, from `/proc/self/fd` (the descriptor
/// limit may be a million; walking it would take a while).
fn inherited_fd_bound() -> i32 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
                .max()
                .unwrap_or(1024)
                + 1
        })
        .unwrap_or(1024)
}

/// Removes temporary files a rewrite left behind when its server died.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("temp-rewriteaof-bg-") && name.ends_with(".aof") {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(path = %e.path().display(), "removed a stale rewrite file")
                }
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a stale rewrite file")
                }
            }
        }
    }
}

fn write_child(
    temp: &Path,
    write_snapshot: &dyn Fn(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o644)
        .open(temp)?;
    let mut w = io::BufWriter::with_capacity(1024 * 1024, f);
    write_snapshot(&mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
}

/// What reading a log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub commands: u64,
    /// Bytes of complete commands.
    pub valid_len: u64,
    pub file_len: u64,
    /// Set when the file ends inside a command: the bytes from here are a torn tail.
    pub torn_at: Option<u64>,
}

/// How long a single logged argument may be when reading a log.
const LOAD_LIMITS: resp::Limits = resp::Limits {
    max_bulk: 512 * 1024 * 1024,
    max_args: 16 * 1024 * 1024,
    max_query: 1024 * 1024 * 1024,
};

/// Reads every complete command of the log at `path`, calling `apply(offset, args)`
/// for each (an `Err` from it is corruption at that offset). A torn tail is reported,
/// not applied and not removed (see [`load`] and [`check`]).
pub fn scan(
    path: &Path,
    apply: &mut dyn FnMut(u64, resp::Args<'_>) -> Result<(), String>,
) -> Result<LoadReport, AofError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LoadReport::default()),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let file_len = file.metadata().map_err(io_err("fstat", path))?.len();
    let show_progress = file_len > 32 * 1024 * 1024;
    let started = Instant::now();
    let mut last_progress = started;
    let mut buf: Vec<u8> = Vec::with_capacity(4 * 1024 * 1024);
    let mut pos = 0usize; // start of unparsed bytes in buf
    let mut base = 0u64; // file offset of buf[0]
    let mut ranges = Vec::new();
    let mut scratch = Vec::new();
    let mut need = 0usize;
    let mut eof = false;
    let mut report = LoadReport {
        file_len,
        ..LoadReport::default()
    };
    loop {
        // Refill when the pending frame is not wholly here.
        if !eof && buf.len() - pos < need.max(1) {
            if pos > 0 {
                buf.drain(..pos);
                base += pos as u64;
                pos = 0;
            }
            let want = need.max(4 * 1024 * 1024);
            let old = buf.len();
            buf.resize(old + want, 0);
            let n = loop {
                match file.read(&mut buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err("read", path)(e)),
                }
            };
            buf.truncate(old + n);
            if n == 0 {
                eof = true;
            }
            if show_progress && last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                let done = base + buf.len() as u64;
                tracing::info!(
                    loaded_bytes = done,
                    total_bytes = file_len,
                    percent = done * 100 / file_len.max(1),
                    commands = report.commands,
                    "loading the append-only file"
                );
            }
            continue;
        }
        let offset = base + pos as u64;
        if pos == buf.len() {
            break;
        }
        let input = &buf[pos..];
        if input[0] != b'*' {
            return Err(AofError::Corrupt {
                path: path.to_owned(),
                offset,
                reason: format!("expected '*', got byte 0x{:02x}", input[0]),
            });
        }
        match resp::parse(input, &LOAD_LIMITS, &mut ranges, &mut scratch) {
            Ok(Parsed::Command { len, .. }) => {
                need = 0;
                if ranges.is_empty() {
                    return Err(AofError::Corrupt {
                        path: path.to_owned(),
                        offset,
                        reason: "empty command".into(),
                    });
                }
                apply(offset, resp::Args::new(input, &ranges)).map_err(|reason| {
                    AofError::Corrupt {
                        path: path.to_owned(),
                        offset,
                        reason,
                    }
                })?;
                report.commands += 1;
                pos += len;
                report.valid_len = base + pos as u64;
            }
            Ok(Parsed::Incomplete { need: n }) => {
                if eof {
                    // Torn, or a corrupted length that points past the end? A real torn
                    // tail has no complete command after it.
                    if let Some(later) = complete_command_after(input) {
                        return Err(AofError::Corrupt {
                            path: path.to_owned(),
                            offset,
                            reason: format!(
                                "a command claims more bytes than remain, yet a complete command follows at offset {}",
                                offset + later as u64
                            ),
                        });
                    }
                    report.torn_at = Some(offset);
                    break;
                }
                need = n;
            }
            Err(e) => {
                return Err(AofError::Corrupt {
                    path: path.to_owned(),
                    offset,
                    reason: e.0,
                })
            }
        }
    }
    if show_progress {
        tracing::info!(
            commands = report.commands,
            bytes = report.valid_len,
            secs = started.elapsed().as_secs_f64(),
            "append-only file loaded"
        );
    }
    Ok(report)
}

/// The position, after the first byte, of a complete well-formed command in `tail`.
fn complete_command_after(tail: &[u8]) -> Option<usize> {
    let mut ranges = Vec::new();
    let mut scratch = Vec::new();
    let mut from = 1;
    while let Some(i) = memchr::memmem::find(&tail[from..], b"\r\n*") {
        let at = from + i + 2;
        if let Ok(Parsed::Command { .. }) =
            resp::parse(&tail[at..], &LOAD_LIMITS, &mut ranges, &mut scratch)
        {
            if !ranges.is_empty() {
                return Some(at);
            }
        }
        from = at;
    }
    None
}

/// Replays the log for start-up: like [`scan`], then a torn tail is cut away (with a
/// warning) so appending resumes on a command boundary.
pub fn load(
    path: &Path,
    apply: &mut dyn FnMut(u64, resp::Args<'_>) -> Result<(), String>,
) -> Result<LoadReport, AofError> {
    let report = scan(path, apply)?;
    if let Some(at) = report.torn_at {
        tracing::warn!(
            path = %path.display(),
            offset = at,
            removed_bytes = report.file_len - at,
            "the append-only file ends in a partial command (a crash mid-write?); cutting it back to the last complete command"
        );
        truncate(path, at)?;
    }
    Ok(report)
}

/// Cuts the log at `path` back to `len` bytes, durably.
pub fn truncate(path: &Path, len: u64) -> Result<(), AofError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    f.set_len(len).map_err(io_err("ftruncate", path))?;
    f.sync_all().map_err(io_err("fsync", path))
}

/// The verdict of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Valid {
        commands: u64,
        len: u64,
    },
    /// The file is bad from `offset` on (a torn tail or corruption).
    Bad {
        offset: u64,
        file_len: u64,
        reason: String,
        fixed: bool,
    },
}

/// `kvd --check-aof FILE [--fix]`: validates every command with `validate`; with `fix`,
/// truncates the file at the first bad command (everything after it is lost, as with
/// Redis's `redis-check-aof --fix`).
pub fn check(
    path: &Path,
    fix: bool,
    validate: &mut dyn FnMut(resp::Args<'_>) -> Result<(), String>,
) -> Result<CheckOutcome, AofError> {
    if !path.exists() {
        return Err(AofError::Io {
            call: "open",
            path: path.to_owned(),
            source: io::Error::from(io::ErrorKind::NotFound),
        });
    }
    let file_len = std::fs::metadata(path).map_err(io_err("stat", path))?.len();
    let (offset, reason) = match scan(path, &mut |_, args| validate(args)) {
        Ok(r) => match r.torn_at {
            None => {
                return Ok(CheckOutcome::Valid {
                    commands: r.commands,
                    len: r.valid_len,
                })
            }
            Some(at) => (at, "the file ends in a partial command".to_owned()),
        },
        Err(AofError::Corrupt { offset, reason, .. }) => (offset, reason),
        Err(e) => return Err(e),
    };
    if fix {
        truncate(path, offset)?;
    }
    Ok(CheckOutcome::Bad {
        offset,
        file_len,
        reason,
        fixed: fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        resp::encode_command(&mut v, args);
        v
    }

    fn collect(path: &Path) -> Result<(Vec<Vec<String>>, LoadReport), AofError> {
        let mut got = Vec::new();
        let r = load(path, &mut |_, a| {
            got.push(
                a.iter()
                    .map(|x| String::from_utf8_lossy(x).into_owned())
                    .collect(),
            );
            Ok(())
        })?;
        Ok((got, r))
    }

    #[test]
    fn feed_flush_load() {
        let d = tempfile::tempdir().unwrap();
        for policy in [FsyncPolicy::Always, FsyncPolicy::Everysec, FsyncPolicy::No] {
            std::fs::remove_file(d.path().join(FILE_NAME)).ok();
            let mut a = Aof::open(d.path(), policy).unwrap();
            a.feed(&cmd(&["SET", "k", "v"]));
            a.feed(&cmd(&["DEL", "k"]));
            a.flush().unwrap();
            assert_eq!(
                a.size(),
                (cmd(&["SET", "k", "v"]).len() + cmd(&["DEL", "k"]).len()) as u64
            );
            drop(a);
            let (got, r) = collect(&d.path().join(FILE_NAME)).unwrap();
            assert_eq!(got, vec![vec!["SET", "k", "v"], vec!["DEL", "k"]]);
            assert_eq!(r.torn_at, None);
        }
    }

    #[test]
    fn torn_tail_is_cut_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        let mut bytes = cmd(&["SET", "a", "1"]);
        let good = bytes.len() as u64;
        let second = cmd(&["SET", "b", "2"]);
        bytes.extend_from_slice(&second[..second.len() - 3]);
        std::fs::write(&p, &bytes).unwrap();
        let (got, r) = collect(&p).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(r.torn_at, Some(good));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), good);
    }

    #[test]
    fn corruption_in_the_middle_names_the_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        let mut bytes = cmd(&["SET", "a", "1"]);
        let bad_at = bytes.len();
        bytes.extend_from_slice(&cmd(&["SET", "b", "2"]));
        bytes.extend_from_slice(&cmd(&["SET", "c", "3"]));
        bytes[bad_at + 1] = b'x';
        std::fs::write(&p, &bytes).unwrap();
        match collect(&p) {
            Err(AofError::Corrupt { offset, .. }) => assert_eq!(offset, bad_at as u64),
            other => panic!("{other:?}"),
        }
        // A length pointing past the end, with good commands after it, is corruption
        // too, not a torn tail.
        let mut bytes = cmd(&["SET", "a", "1"]);
        bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$9999\r\nb\r\n$1\r\n2\r\n");
        bytes.extend_from_slice(&cmd(&["SET", "c", "3"]));
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(collect(&p), Err(AofError::Corrupt { .. })));
        match check(&p, true, &mut |_| Ok(())).unwrap() {
            CheckOutcome::Bad { offset, fixed, .. } => {
                assert_eq!(offset, bad_at as u64);
                assert!(fixed);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            check(&p, false, &mut |_| Ok(())).unwrap(),
            CheckOutcome::Valid {
                commands: 1,
                len: bad_at as u64
            }
        );
    }

    #[test]
    fn rewrite_keeps_concurrent_writes() {
        let d = tempfile::tempdir().unwrap();
        let mut a = Aof::open(d.path(), FsyncPolicy::Everysec).unwrap();
        for i in 0..100 {
            a.feed(&cmd(&["SET", "k", &i.to_string()]));
        }
        a.flush().unwrap();
        let before = a.size();
        a.start_rewrite(&|w| w.write_all(&cmd(&["SET", "k", "99"])), Box::new(()))
            .unwrap();
        a.feed(&cmd(&["SET", "j", "after"]));
        a.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = a.poll_rewrite() {
                break s;
            }
            assert!(Instant::now() < deadline, "rewrite did not finish");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status, RewriteStatus::Ok);
        a.feed(&cmd(&["SET", "z", "1"]));
        a.flush().unwrap();
        assert!(a.size() < before);
        drop(a);
        let (got, _) = collect(&d.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            got,
            vec![
                vec!["SET", "k", "99"],
                vec!["SET", "j", "after"],
                vec!["SET", "z", "1"]
            ]
        );
    }
}
