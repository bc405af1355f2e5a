//! Sockets shared by every model: listeners and the one write path.
//!
//! The one idea: every byte a server sends goes through [`OutQueue`], a per-connection
//! queue of in-memory chunks and file ranges that is only ever advanced by what the
//! kernel reports as written. Short writes, `EINTR` and `EAGAIN` therefore cannot drop,
//! reorder or duplicate a byte, whichever model drives the socket.

mod listener;
mod outq;

pub use listener::{accept, ListenOptions, Listener};
pub use outq::{Flush, OutQueue};

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A failed socket call, naming the call and the address it was made for.
#[derive(Debug, thiserror::Error)]
#[error("{call} {addr}: {source}")]
pub struct NetError {
    pub call: &'static str,
    pub addr: String,
    #[source]
    pub source: io::Error,
}

impl NetError {
    pub fn new(call: &'static str, addr: impl std::fmt::Display, source: io::Error) -> Self {
        Self {
            call,
            addr: addr.to_string(),
            source,
        }
    }
}

/// Turns a libc `-1` return into the thread's `errno`.
pub(crate) fn cvt(res: libc::c_int) -> io::Result<libc::c_int> {
    if res == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// Turns a libc `-1` return (of a `ssize_t` call) into the thread's `errno`.
pub(crate) fn cvt_size(res: libc::ssize_t) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res as usize)
    }
}

/// Reads what the socket has (at most `buf.len()` bytes), retrying on `EINTR`.
/// `Ok(0)` is end of stream; `EAGAIN` comes back as [`io::ErrorKind::WouldBlock`].
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable slice of exactly `buf.len()` bytes and `fd`
        // is borrowed, so it stays open for the duration of the call.
        let res = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_size(res) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// [`read`] for a socket: `recv(2)` goes straight to the socket layer, where `read(2)`
/// first passes through the file layer's checks and notification hooks (measured:
/// about 1% of a small keep-alive request's CPU time).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable slice of exactly `buf.len()` bytes and `fd`
        // is borrowed, so it stays open for the duration of the call.
        let res = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match cvt_size(res) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Best effort, for a refusal line on a socket about to be closed: one non-blocking
/// send, whatever the outcome.
pub fn send_once(fd: BorrowedFd<'_>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // SAFETY: `data` is a live slice of `data.len()` bytes; `fd` is borrowed and open.
    let _ = unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
}

/// Shuts down the sending side so the peer sees end of stream once everything queued
/// has left, even if another descriptor still refers to the socket.
pub fn shutdown_write(fd: BorrowedFd<'_>) {
    // SAFETY: plain syscall on a borrowed, open descriptor; failure (ENOTCONN after a
    // reset) only means there is nothing left to shut down.
    let _ = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (a server holding
/// 10,000 connections needs more than the usual 1,024) and returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit struct with cur <= max.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// Creates a non-blocking, close-on-exec eventfd: a counter a thread (or a signal
/// handler) bumps to wake a loop that watches it for readability.
pub fn eventfd() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscall with constant flags.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter (wakes whoever polls it). Async-signal-safe.
pub fn eventfd_bump(fd: libc::c_int) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64; an eventfd at its maximum count returns
    // EAGAIN, which is fine: it is readable already.
    let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd's counter to zero so it stops being readable.
pub fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut val: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; EAGAIN (already zero) is fine.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut val as *mut u64).cast(), 8) };
}
