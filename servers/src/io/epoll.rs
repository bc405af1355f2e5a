//! The `epoll(7)` backend and [`Reactor`], the event loop over it.
//!
//! Level-triggered, on purpose: the loop reads at most one chunk per connection per
//! wakeup (fairness), stops reading a connection under backpressure by dropping
//! `EPOLLIN` from its interest, and relies on being told again while data remains.
//! Edge-triggered would force reading every socket to `EAGAIN` on each event or
//! tracking "maybe more" by hand, which is where lost-wakeup bugs live; the price of
//! level-triggering, an `epoll_ctl` when interest changes, is paid only on those
//! changes. Listeners shared by several reactors are registered with `EPOLLEXCLUSIVE`
//! (see [`EventLoop::exclusive_accept`]) so one connection wakes one thread.

use super::event_loop::{EventLoop, Fired, Interest, Poller};
use crate::net::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The epoll event loop: own it on one thread; run several (each with its own
/// `SO_REUSEPORT` listener, or clones of one listener with exclusive accept) for more.
pub type Reactor<P> = EventLoop<P, Epoll>;

/// Drains or stops a running [`Reactor`] from another thread.
pub type ReactorHandle = super::event_loop::LoopHandle;

/// The most events taken from the kernel per `epoll_wait`.
const MAX_EVENTS: usize = 1024;

pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

fn mask(i: Interest) -> u32 {
    let mut m = 0u32;
    if i.read {
        m |= libc::EPOLLIN as u32;
    }
    if i.write {
        m |= libc::EPOLLOUT as u32;
    }
    if i.exclusive {
        m |= libc::EPOLLEXCLUSIVE as u32;
    }
    m
}

impl Epoll {
    fn ctl(
        &mut self,
        op: libc::c_int,
        fd: RawFd,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: mask(interest),
            u64: token,
        };
        // SAFETY: `ev` is a live epoll_event for the duration of the call; the kernel
        // copies it. Both descriptors are open (ours owned, `fd` owned by the loop).
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }
}

impl Poller for Epoll {
    const NAME: &'static str = "epoll";
    const WAIT_CALL: &'static str = "epoll_wait";

    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall with a constant flag.
        let raw = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `raw` was just returned by epoll_create1 and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self {
            fd,
            events: Vec::with_capacity(MAX_EVENTS),
        })
    }

    fn add(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, Interest::default())
    }

    fn wait(&mut self, timeout: Duration, fired: &mut Vec<Fired>) -> io::Result<()> {
        fired.clear();
        let ms = super::wait_ms(timeout);
        // SAFETY: the buffer has capacity MAX_EVENTS and the kernel writes at most
        // that many entries; `set_len` below covers only what it reported.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                ms,
            )
        };
        let n = match cvt(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        // SAFETY: epoll_wait initialised the first `n` (<= capacity) entries.
        unsafe { self.events.set_len(n) };
        let err = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        for ev in self.events.drain(..) {
            let bits = ev.events;
            let hangup = bits & err != 0;
            fired.push(Fired {
                token: ev.u64,
                readable: bits & libc::EPOLLIN as u32 != 0 || hangup,
                writable: bits & libc::EPOLLOUT as u32 != 0 || hangup,
                hangup,
            });
        }
        Ok(())
    }
}
