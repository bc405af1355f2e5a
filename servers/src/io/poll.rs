//! The `poll(2)` backend and [`PollLoop`]: no descriptor limit, but the kernel walks
//! the whole array on every call, so cost grows with connections, not activity.
//!
//! The array is kept dense: a descriptor's slot is found through a map, and deleting
//! moves the last entry into the hole.

use super::event_loop::{EventLoop, Fired, Interest, Poller};
use crate::net::cvt;
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub type PollLoop<P> = EventLoop<P, Poll>;

#[derive(Default)]
pub struct Poll {
    fds: Vec<libc::pollfd>,
    tokens: Vec<u64>,
    index: HashMap<RawFd, usize>,
}

fn events(i: Interest) -> libc::c_short {
    let mut e = 0;
    if i.read {
        e |= libc::POLLIN;
    }
    if i.write {
        e |= libc::POLLOUT;
    }
    e
}

impl Poller for Poll {
    const NAME: &'static str = "poll";
    const WAIT_CALL: &'static str = "poll";

    fn new() -> io::Result<Self> {
        Ok(Self::default())
    }

    fn add(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if self.index.contains_key(&fd) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.index.insert(fd, self.fds.len());
        self.fds.push(libc::pollfd {
            fd,
            events: events(interest),
            revents: 0,
        });
        self.tokens.push(token);
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let i = *self
            .index
            .get(&fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.fds[i].events = events(interest);
        self.tokens[i] = token;
        Ok(())
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self
            .index
            .remove(&fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.index.insert(moved.fd, i);
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration, fired: &mut Vec<Fired>) -> io::Result<()> {
        fired.clear();
        let ms = super::wait_ms(timeout);
        // SAFETY: `fds` is a live array of exactly `fds.len()` pollfds.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        match cvt(n) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let err = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
        for (p, &token) in self.fds.iter().zip(&self.tokens) {
            let r = p.revents;
            if r == 0 {
                continue;
            }
            let hangup = r & err != 0;
            fired.push(Fired {
                token,
                readable: r & libc::POLLIN != 0 || hangup,
                writable: r & libc::POLLOUT != 0 || hangup,
                hangup,
            });
        }
        Ok(())
    }
}
