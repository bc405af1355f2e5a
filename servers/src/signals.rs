//! Clean stop on SIGINT/SIGTERM: the handler only sets a flag and bumps an eventfd.
//!
//! The one idea: the eventfd is never read, so once a stop is requested it stays
//! readable for ever, and every event loop and thread that watches it (one
//! descriptor, any number of loops) wakes and sees the flag, however late it looks.

use crate::net;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

/// Whether a stop was requested by a signal (set from the handler).
static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// The eventfd the handler bumps (-1 until installed).
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);
/// Guards against installing the handlers twice.
static INSTALLED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("eventfd: {0}")]
    EventFd(#[source] io::Error),
    #[error("sigaction({signal}): {source}")]
    Sigaction {
        signal: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("signal handlers are already installed; clone the first Shutdown instead")]
    AlreadyInstalled,
}

#[derive(Debug)]
struct Inner {
    requested: AtomicBool,
    fd: OwnedFd,
    /// Whether this instance is the one wired to SIGINT/SIGTERM.
    signals: bool,
}

/// A stop request shared by every loop of the process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Shutdown {
    /// A stop request not tied to any signal (tests, embedding): only
    /// [`Shutdown::trigger`] sets it.
    pub fn new() -> Result<Self, SignalError> {
        let fd = net::eventfd().map_err(SignalError::EventFd)?;
        Ok(Self {
            inner: Arc::new(Inner {
                requested: AtomicBool::new(false),
                fd,
                signals: false,
            }),
        })
    }

    /// Installs the SIGINT and SIGTERM handlers (once per process) and ignores SIGPIPE
    /// (a write to a closed peer must be an `EPIPE` error, not the end of the server).
    pub fn install() -> Result<Self, SignalError> {
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Err(SignalError::AlreadyInstalled);
        }
        let fd = net::eventfd().map_err(SignalError::EventFd)?;
        SIGNAL_FD.store(fd.as_raw_fd(), Ordering::SeqCst);
        let this = Self {
            inner: Arc::new(Inner {
                requested: AtomicBool::new(false),
                fd,
                signals: true,
            }),
        };
        // The descriptor lives as long as the process: the handler may fire at any
        // time, so the Inner holding it must never be dropped.
        std::mem::forget(this.clone());
        set_handler(
            libc::SIGINT,
            "SIGINT",
            on_signal as *const () as libc::sighandler_t,
        )?;
        set_handler(
            libc::SIGTERM,
            "SIGTERM",
            on_signal as *const () as libc::sighandler_t,
        )?;
        set_handler(libc::SIGPIPE, "SIGPIPE", libc::SIG_IGN)?;
        Ok(this)
    }

    /// Whether a stop was requested (by a signal or [`Shutdown::trigger`]).
    pub fn is_set(&self) -> bool {
        self.inner.requested.load(Ordering::Acquire)
            || (self.inner.signals && SIGNALLED.load(Ordering::Acquire))
    }

    /// Requests a stop, as a signal would.
    pub fn trigger(&self) {
        self.inner.requested.store(true, Ordering::Release);
        net::eventfd_bump(self.inner.fd.as_raw_fd());
    }

    /// The descriptor to watch for readability: readable for ever once a stop is
    /// requested. Do not read it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

extern "C" fn on_signal(_sig: libc::c_int) {
    // Async-signal-safe only: atomics and write(2).
    SIGNALLED.store(true, Ordering::Release);
    let fd = SIGNAL_FD.load(Ordering::Acquire);
    if fd >= 0 {
        net::eventfd_bump(fd);
    }
}

fn set_handler(
    sig: libc::c_int,
    name: &'static str,
    handler: libc::sighandler_t,
) -> Result<(), SignalError> {
    // SAFETY: an all-zero sigaction is a valid value of that plain C struct.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa.sa_mask` is a live sigset_t owned by `sa`.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: `sa` is fully initialised; the handler only touches atomics and write(2),
    // which are async-signal-safe.
    let res = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    net::cvt(res)
        .map(|_| ())
        .map_err(|source| SignalError::Sigaction {
            signal: name,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: BorrowedFd<'_>) -> bool {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, count 1, no wait.
        unsafe { libc::poll(&mut p, 1, 0) };
        p.revents & libc::POLLIN != 0
    }

    #[test]
    fn trigger_sets_the_flag_and_stays_readable() {
        let s = Shutdown::new().unwrap();
        let c = s.clone();
        assert!(!s.is_set());
        assert!(!readable(s.fd()));
        c.trigger();
        assert!(s.is_set());
        assert!(readable(s.fd()));
        assert!(readable(s.fd()), "still readable: nobody drains it");
    }
}
