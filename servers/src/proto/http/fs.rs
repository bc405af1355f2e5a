//! Opening a file strictly below the document root.
//!
//! The kernel does the containment check: `openat2(2)` relative to a descriptor of the
//! root with `RESOLVE_BENEATH` fails with `EXDEV` for any `..` or symlink (absolute, or
//! relative and climbing) that would leave it, atomically with the open, so a symlink
//! swapped in between a check and the open cannot win. Where `openat2` is missing
//! (kernels before 5.6) the path is resolved with `realpath` and its containment in the
//! real root is checked before opening, as darkhttpd and static-web-server do.
//! Consequence worth knowing: a symlink inside the root pointing by absolute path to
//! another place inside the root is refused too; relative symlinks work.

use super::Status;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once `openat2` reports `ENOSYS`, so the fallback is taken directly afterwards.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The document root: an open directory descriptor (which survives a later `chroot`)
/// and its canonical path (for the fallback).
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let canonical = std::fs::canonicalize(path)?;
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&canonical)?;
        Ok(Root {
            fd: OwnedFd::from(dir),
            path: canonical,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After `chroot(root)`, the fallback must resolve against `/`.
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    /// Opens `rel` (normalised, no leading slash; empty = the root) read-only and
    /// stats it. Errors are already the status to answer with.
    pub fn open_file(&self, rel: &[u8]) -> Result<(File, Metadata), Status> {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let file = if NO_OPENAT2.load(Ordering::Relaxed) {
            self.open_fallback(rel)?
        } else {
            match self.open_beneath(rel) {
                Err(Errno::ENOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    self.open_fallback(rel)?
                }
                Err(e) => return Err(errno_status(e)),
                Ok(f) => f,
            }
        };
        let meta = file.metadata().map_err(|e| io_status(&e))?;
        Ok((file, meta))
    }

    fn open_beneath(&self, rel: &[u8]) -> Result<File, Errno> {
        // O_NONBLOCK so that a FIFO planted in the root cannot block the event loop in
        // open(2); regular files ignore the flag. O_NOCTTY for device nodes.
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = nix::fcntl::openat2(self.fd.as_raw_fd(), OsStr::from_bytes(rel), how)?;
        // SAFETY: `openat2` just returned this descriptor and nothing else owns it, so
        // the File takes sole ownership and closes it once.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn open_fallback(&self, rel: &[u8]) -> Result<File, Status> {
        let real = std::fs::canonicalize(self.path.join(OsStr::from_bytes(rel)))
            .map_err(|e| io_status(&e))?;
        if !real.starts_with(&self.path) {
            return Err(Status::Forbidden);
        }
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
            .open(&real)
            .map_err(|e| io_status(&e))
    }
}

fn io_status(e: &io::Error) -> Status {
    match e.raw_os_error() {
        Some(n) => errno_status(Errno::from_raw(n)),
        None => Status::InternalServerError,
    }
}

fn errno_status(e: Errno) -> Status {
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG => Status::NotFound,
        // EXDEV: the path would leave the root; ELOOP: a symlink loop or a refused
        // magic link; EACCES/EPERM: not readable by this user.
        Errno::EACCES | Errno::EPERM | Errno::EXDEV | Errno::ELOOP => Status::Forbidden,
        _ => {
            tracing::warn!(error = %e, "openat2 failed");
            Status::InternalServerError
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn contains_symlinks_and_dotdot() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        symlink("../a.txt", root.join("sub/rel-in")).unwrap();
        symlink(outside.path().join("secret"), root.join("abs-out")).unwrap();
        symlink("../../../../../../../../etc/passwd", root.join("rel-out")).unwrap();
        symlink(outside.path(), root.join("dir-out")).unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();

        let r = Root::open(root).unwrap();
        let (_, m) = r.open_file(b"a.txt").unwrap();
        assert_eq!(m.len(), 5);
        assert!(r.open_file(b"").unwrap().1.is_dir());
        assert_eq!(r.open_file(b"sub/rel-in").unwrap().1.len(), 5);
        assert_eq!(r.open_file(b"missing").unwrap_err(), Status::NotFound);
        assert_eq!(r.open_file(b"a.txt/x").unwrap_err(), Status::NotFound);
        for bad in [
            &b"abs-out"[..],
            b"rel-out",
            b"dir-out/secret",
            b"magic",
            b"..",
            b"sub/../../x",
        ] {
            assert_eq!(
                r.open_file(bad).unwrap_err(),
                Status::Forbidden,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }

        // The fallback resolver must agree on every case.
        for (rel, ok) in [
            (&b"a.txt"[..], true),
            (b"sub/rel-in", true),
            (b"abs-out", false),
            (b"rel-out", false),
            (b"dir-out/secret", false),
        ] {
            assert_eq!(
                r.open_fallback(rel).is_ok(),
                ok,
                "{}",
                String::from_utf8_lossy(rel)
            );
        }
    }
}
