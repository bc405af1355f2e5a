//! Log files that rotate themselves by size and by day, keep N old copies, and
//! reopen on demand for an external logrotate; plus the writer thread that keeps
//! disk writes off the event loops.
//!
//! The one idea: several worker processes append to the same file, so rotation
//! is decided on the file as it is on disk, not on what this process wrote. With a
//! size limit, every batch is written under an exclusive `flock` on the log's
//! directory: the writer first follows a rotation another process made (the path
//! no longer names the file it holds open: it reopens), then `fstat`s the open
//! file, rotates if the batch would take it past the limit, and only then appends.
//! No check-then-write of one process can interleave with another's, so a file
//! never outgrows the limit by more than one batch, however many processes write.
//! All names are resolved from a directory descriptor opened at start, so rotation
//! keeps working after the workers `chroot`.
//!
//! Lines that never reach the disk (a full disk, an I/O error) are counted in
//! [`RotatingFile::lost_lines`], so a status page can show what the log is missing.

use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{call}({path}): {source}")]
    Io {
        call: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("log path {0} has no file name")]
    NoFileName(PathBuf),
}

fn io(call: &'static str, path: &Path, e: impl Into<std::io::Error>) -> RotateError {
    RotateError::Io {
        call,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// When to rotate and how much history to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotatePolicy {
    /// Rotate before a line would take the file past this many bytes.
    pub max_size: Option<u64>,
    /// Rotate at the first line of a new UTC day.
    pub daily: bool,
    /// Rotated copies kept: `name.1` (newest) … `name.N`.
    pub keep: usize,
}

fn day_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// An append-only log file that rotates itself.
pub struct RotatingFile {
    path: PathBuf,
    dir: OwnedFd,
    name: OsString,
    policy: RotatePolicy,
    file: File,
    /// The file's size on disk at the last look, plus what this process appended
    /// since: an estimate that only decides when a batch is complete; the limit is
    /// checked against `fstat` when the batch is written.
    size: u64,
    /// The UTC day the open file belongs to.
    day: u64,
    pending: Vec<u8>,
    /// Lines lost to failed writes.
    lost: Arc<AtomicU64>,
}

/// Bytes buffered before a write is forced, so a busy log costs one `write(2)` per
/// batch rather than per line.
const PENDING_MAX: usize = 64 * 1024;

impl RotatingFile {
    pub fn open(path: &Path, policy: RotatePolicy) -> Result<RotatingFile, RotateError> {
        let name = path
            .file_name()
            .ok_or_else(|| RotateError::NoFileName(path.to_path_buf()))?
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
        .map_err(|e| io("open", parent, e))?;
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        let dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dir) };
        let (file, size, day) = open_append(&dir, &name, path)?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            dir,
            name,
            policy,
            file,
            size,
            day,
            pending: Vec::new(),
            lost: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Counts lost lines into `counter` (shared with other files, or read by a
    /// status page) instead of a counter of its own.
    pub fn with_lost_counter(mut self, counter: Arc<AtomicU64>) -> RotatingFile {
        self.lost = counter;
        self
    }

    /// The count of lines that failed to reach the file, live.
    pub fn lost_lines(&self) -> Arc<AtomicU64> {
        self.lost.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (with its newline), rotating first if it would not fit.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), RotateError> {
        self.write_line_at(line, SystemTime::now())
    }

    /// [`Self::write_line`] with the clock given, for the day rule. The line is
    /// kept whatever happens (a failed rotation leaves it for the current file); an
    /// error reports the first thing that failed.
    pub fn write_line_at(&mut self, line: &[u8], now: SystemTime) -> Result<(), RotateError> {
        let today = day_of(now);
        let used = self.size + self.pending.len() as u64;
        let new_day = self.policy.daily && today > self.day && used > 0;
        // The batch so far fills the file (as far as this process knows): write it,
        // so this line starts the next batch and the on-disk check can place it.
        let batch_full = !self.pending.is_empty()
            && self
                .policy
                .max_size
                .is_some_and(|max| used + line.len() as u64 > max);
        let mut result = Ok(());
        if new_day {
            result = self
                .flush()
                .and_then(|()| self.rotate(today, line.len() as u64));
        } else if batch_full {
            result = self.flush();
        }
        self.pending.extend_from_slice(line);
        if self.pending.len() >= PENDING_MAX {
            let flushed = self.flush();
            result = result.and(flushed);
        }
        result
    }

    /// Writes what is buffered; with a size limit, under the directory lock and
    /// after rotating if the file on disk cannot take the batch. Lines that fail to
    /// reach the file are counted in [`Self::lost_lines`] and dropped.
    pub fn flush(&mut self) -> Result<(), RotateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let res = match self.policy.max_size {
            Some(max) => self.append_within(max),
            None => {
                // O_APPEND makes each write land whole at the end, whoever else appends.
                let res = self.file.write_all(&self.pending);
                self.size += self.pending.len() as u64;
                res.map_err(|e| io("write", &self.path, e))
            }
        };
        if res.is_err() {
            let lines = self.pending.iter().filter(|&&b| b == b'\n').count().max(1);
            self.lost.fetch_add(lines as u64, Ordering::Relaxed);
        }
        self.pending.clear();
        res
    }

    /// Appends the batch under the directory lock, rotating first if the file as
    /// it is on disk (`fstat`) plus the batch would pass `max`.
    fn append_within(&mut self, max: u64) -> Result<(), RotateError> {
        let _lock = DirLock::take(self.dir.as_raw_fd(), &self.path)?;
        self.follow()?;
        let mut on_disk = fstat(self.file.as_raw_fd())
            .map_err(|e| io("fstat", &self.path, e))?
            .st_size as u64;
        if on_disk > 0 && on_disk + self.pending.len() as u64 > max {
            self.shift()?;
            on_disk = self.size;
        }
        let res = self.file.write_all(&self.pending);
        self.size = on_disk + self.pending.len() as u64;
        res.map_err(|e| io("write", &self.path, e))
    }

    /// Takes a directory descriptor of its own. After `fork` the inherited one
    /// shares its `flock` with the parent, which would let both rotate at once.
    pub fn detach(&mut self) -> Result<(), RotateError> {
        let fd = openat(
            Some(self.dir.as_raw_fd()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io("open", &self.path, e))?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        self.dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(())
    }

    /// Closes and reopens the path (after an external tool renamed the file).
    pub fn reopen(&mut self) -> Result<(), RotateError> {
        self.flush()?;
        let (file, size, day) = open_append(&self.dir, &self.name, &self.path)?;
        self.file = file;
        self.size = size;
        self.day = day;
        Ok(())
    }

    /// Shifts `name` → `name.1` → … → `name.N` under the directory lock, unless
    /// another process already did and the file it left can still take `incoming`.
    fn rotate(&mut self, today: u64, incoming: u64) -> Result<(), RotateError> {
        let _lock = DirLock::take(self.dir.as_raw_fd(), &self.path)?;
        if self.follow()? {
            let fits = match self.policy.max_size {
                Some(max) => self.size == 0 || self.size + incoming <= max,
                None => true,
            };
            if fits {
                self.day = today;
                return Ok(());
            }
        }
        self.shift()?;
        self.day = today;
        Ok(())
    }

    /// With the directory lock held: if the path no longer names the open file
    /// (another process rotated it), opens what the path names now. Returns whether
    /// it did.
    fn follow(&mut self) -> Result<bool, RotateError> {
        let ours = fstat(self.file.as_raw_fd()).map_err(|e| io("fstat", &self.path, e))?;
        let on_disk = fstatat(
            Some(self.dir.as_raw_fd()),
            self.name.as_os_str(),
            AtFlags::empty(),
        );
        let rotated_elsewhere = match on_disk {
            Ok(st) => st.st_ino != ours.st_ino || st.st_dev != ours.st_dev,
            Err(_) => true,
        };
        if rotated_elsewhere {
            let (file, size, _) = open_append(&self.dir, &self.name, &self.path)?;
            self.file = file;
            self.size = size;
        }
        Ok(rotated_elsewhere)
    }

    /// With the directory lock held: renames the numbered chain and the file, and
    /// opens a fresh one.
    fn shift(&mut self) -> Result<(), RotateError> {
        let keep = self.policy.keep.max(1);
        for i in (1..keep).rev() {
            // A gap in the numbering is normal (fewer rotations than `keep` so far).
            let _ = renameat(
                Some(self.dir.as_raw_fd()),
                numbered(&self.name, i).as_os_str(),
                Some(self.dir.as_raw_fd()),
                numbered(&self.name, i + 1).as_os_str(),
            );
        }
        renameat(
            Some(self.dir.as_raw_fd()),
            self.name.as_os_str(),
            Some(self.dir.as_raw_fd()),
            numbered(&self.name, 1).as_os_str(),
        )
        .map_err(|e| io("rename", &self.path, e))?;
        let (file, size, _) = open_append(&self.dir, &self.name, &self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

/// The access log's writer thread hands over batches of whole lines; each line is
/// placed on its own so rotation still happens exactly at the size limit.
impl crate::log::LogTarget for RotatingFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // Every line is offered even after a failure: each one either reaches the
        // file or is counted as lost, none vanishes with the rest of the batch.
        let mut first = Ok(());
        for line in buf.split_inclusive(|&b| b == b'\n') {
            let res = self.write_line(line);
            if first.is_ok() {
                first = res;
            }
        }
        first.map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        RotatingFile::flush(self).map_err(std::io::Error::other)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        RotatingFile::reopen(self).map_err(std::io::Error::other)
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn numbered(name: &OsString, i: usize) -> OsString {
    let mut n = name.clone();
    n.push(format!(".{i}"));
    n
}

fn open_append(
    dir: &OwnedFd,
    name: &OsString,
    path: &Path,
) -> Result<(File, u64, u64), RotateError> {
    let fd = openat(
        Some(dir.as_raw_fd()),
        name.as_os_str(),
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| io("open", path, e))?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let meta = file.metadata().map_err(|e| io("fstat", path, e))?;
    // An existing file belongs to the day it was last written, so a server started
    // the morning after still rotates yesterday's lines away.
    let day = meta
        .modified()
        .map_or_else(|_| day_of(SystemTime::now()), day_of);
    Ok((file, meta.len(), day))
}

/// An exclusive `flock` on the log directory, released on drop.
struct DirLock(RawFd);

impl DirLock {
    /// `dir` must stay open while the lock lives (the `RotatingFile` holding both
    /// keeps it: the lock is always a local of one of its methods).
    fn take(dir: RawFd, path: &Path) -> Result<DirLock, RotateError> {
        // SAFETY: flock on a descriptor we own; it only takes an advisory lock.
        let rc = unsafe { libc::flock(dir, libc::LOCK_EX) };
        if rc != 0 {
            return Err(io("flock", path, std::io::Error::last_os_error()));
        }
        Ok(DirLock(dir))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // SAFETY: unlocking the lock taken in `take` on the same descriptor.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

enum Msg {
    Line(Vec<u8>),
    Reopen,
    Flush(SyncSender<()>),
}

/// A writer thread behind a bounded queue: `line` never blocks, and a line that
/// finds the queue full is counted in `dropped` instead of stalling the caller.
pub struct LogWriter {
    tx: Option<SyncSender<Msg>>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the thread. Buffered lines reach the file at least once a second.
    pub fn spawn(file: RotatingFile, capacity: usize) -> std::io::Result<LogWriter> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_loop(file, rx))?;
        Ok(LogWriter {
            tx: Some(tx),
            dropped,
            thread: Some(thread),
        })
    }

    /// Queues one line; returns false (and counts it) if the queue is full.
    pub fn line(&self, bytes: Vec<u8>) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(Msg::Line(bytes)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the thread to reopen the file (waits for room in the queue: called from
    /// a signal thread, never from an event loop).
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Reopen);
        }
    }

    /// Waits until everything queued so far is written, at most `limit`.
    pub fn flush(&self, limit: Duration) {
        if let Some(tx) = &self.tx {
            let (done_tx, done_rx) = mpsc::sync_channel(1);
            if tx.send(Msg::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv_timeout(limit);
            }
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn writer_loop(mut file: RotatingFile, rx: Receiver<Msg>) {
    let report = |e: RotateError| eprintln!("log writer: {e}");
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Msg::Line(l)) => {
                if let Err(e) = file.write_line(&l) {
                    report(e);
                }
                // Take whatever else is already queued before paying for a write.
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        Msg::Line(l) => {
                            if let Err(e) = file.write_line(&l) {
                                report(e);
                            }
                        }
                        Msg::Reopen => {
                            if let Err(e) = file.reopen() {
                                report(e);
                            }
                        }
                        Msg::Flush(done) => {
                            if let Err(e) = file.flush() {
                                report(e);
                            }
                            let _ = done.send(());
                        }
                    }
                }
                if let Err(e) = file.flush() {
                    report(e);
                }
            }
            Ok(Msg::Reopen) => {
                if let Err(e) = file.reopen() {
                    report(e);
                }
            }
            Ok(Msg::Flush(done)) => {
                if let Err(e) = file.flush() {
                    report(e);
                }
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = file.flush() {
                    report(e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Err(e) = file.flush() {
        report(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_at_the_size_limit_and_keeps_n() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("access.log");
        let policy = RotatePolicy {
            max_size: Some(100),
            daily: false,
            keep: 3,
        };
        let mut f = RotatingFile::open(&path, policy).unwrap();
        let line = b"0123456789012345678\n"; // 20 bytes: five fill a file exactly
        for _ in 0..40 {
            f.write_line(line).unwrap();
        }
        f.flush().unwrap();
        assert_eq!(
            listing(tmp.path()),
            ["access.log", "access.log.1", "access.log.2", "access.log.3"]
        );
        for name in ["access.log.1", "access.log.2", "access.log.3"] {
            assert_eq!(
                std::fs::metadata(tmp.path().join(name)).unwrap().len(),
                100,
                "{name}"
            );
        }
        // 40 lines = 8 full files: the current one is full too, nothing was lost in
        // the kept ones.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100);
    }

    #[test]
    fn rotates_on_a_new_day() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("error.log");
        let policy = RotatePolicy {
            max_size: None,
            daily: true,
            keep: 2,
        };
        let mut f = RotatingFile::open(&path, policy).unwrap();
        let now = SystemTime::now();
        f.write_line_at(b"today\n", now).unwrap();
        f.write_line_at(b"today again\n", now).unwrap();
        f.write_line_at(b"tomorrow\n", now + Duration::from_secs(86_400))
            .unwrap();
        f.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("error.log.1")).unwrap(),
            "today\ntoday again\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "tomorrow\n");
    }

    #[test]
    fn second_writer_sees_rotation_and_places_its_line_by_the_size_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.log");
        let policy = RotatePolicy {
            max_size: Some(10),
            daily: false,
            keep: 5,
        };
        let mut a = RotatingFile::open(&path, policy).unwrap();
        let mut b = RotatingFile::open(&path, policy).unwrap();
        a.write_line(b"aaaaaaaa\n").unwrap();
        a.flush().unwrap();
        a.write_line(b"AAAAAAAA\n").unwrap(); // rotates: a.log.1 = first line
        a.flush().unwrap();
        // b's estimate still says empty, but the write looks first: the path names
        // a's new file, which is full, so b rotates instead of overfilling either.
        b.write_line(b"bbbbbbbb\n").unwrap();
        b.flush().unwrap();
        b.write_line(b"BBBBBBBB\n").unwrap();
        b.flush().unwrap();
        assert_eq!(
            listing(tmp.path()),
            ["a.log", "a.log.1", "a.log.2", "a.log.3"]
        );
        for (name, want) in [
            ("a.log", "BBBBBBBB\n"),
            ("a.log.1", "bbbbbbbb\n"),
            ("a.log.2", "AAAAAAAA\n"),
            ("a.log.3", "aaaaaaaa\n"),
        ] {
            assert_eq!(
                std::fs::read_to_string(tmp.path().join(name)).unwrap(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn interleaved_writers_never_pass_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.log");
        let policy = RotatePolicy {
            max_size: Some(100),
            daily: false,
            keep: 100,
        };
        let mut writers: Vec<RotatingFile> = (0..3)
            .map(|_| RotatingFile::open(&path, policy).unwrap())
            .collect();
        for i in 0..60 {
            let w = &mut writers[i % 3];
            w.write_line(b"0123456789abcdefghi\n").unwrap();
            if i % 2 == 0 {
                w.flush().unwrap();
            }
        }
        for w in &mut writers {
            w.flush().unwrap();
        }
        let mut total = 0;
        for name in listing(tmp.path()) {
            let len = std::fs::metadata(tmp.path().join(&name)).unwrap().len();
            assert!(len <= 100, "{name} is {len} bytes");
            total += len;
        }
        assert_eq!(total, 60 * 20, "every line landed somewhere");
    }

    #[test]
    fn lines_a_full_disk_refuses_are_counted() {
        let policy = RotatePolicy {
            max_size: None,
            daily: false,
            keep: 1,
        };
        let mut f = RotatingFile::open(Path::new("/dev/full"), policy).unwrap();
        let lost = f.lost_lines();
        for _ in 0..3 {
            let _ = f.write_line(b"x\n");
        }
        assert!(f.flush().is_err());
        assert_eq!(lost.load(Ordering::Relaxed), 3);
        // Through the writer-thread interface: the whole batch is offered and counted.
        let _ = crate::log::LogTarget::write_all(&mut f, b"a\nb\n");
        let _ = crate::log::LogTarget::flush(&mut f);
        assert_eq!(lost.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn reopen_follows_an_external_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.log");
        let policy = RotatePolicy {
            max_size: None,
            daily: false,
            keep: 1,
        };
        let mut f = RotatingFile::open(&path, policy).unwrap();
        f.write_line(b"one\n").unwrap();
        f.flush().unwrap();
        std::fs::rename(&path, tmp.path().join("x.log.old")).unwrap();
        f.reopen().unwrap();
        f.write_line(b"two\n").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("x.log.old")).unwrap(),
            "one\n"
        );
    }

    #[test]
    fn writer_thread_counts_what_it_cannot_queue() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("w.log");
        let policy = RotatePolicy {
            max_size: None,
            daily: false,
            keep: 1,
        };
        let w = LogWriter::spawn(RotatingFile::open(&path, policy).unwrap(), 4).unwrap();
        let mut sent = 0u64;
        for i in 0..10_000 {
            if w.line(format!("line {i}\n").into_bytes()) {
                sent += 1;
            }
        }
        w.flush(Duration::from_secs(5));
        let lines = std::fs::read_to_string(&path).unwrap().lines().count() as u64;
        assert_eq!(lines, sent);
        assert_eq!(sent + w.dropped(), 10_000);
    }
}
