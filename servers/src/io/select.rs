//! The `select(2)` backend and [`SelectLoop`]: the oldest interface, kept for what it
//! teaches. An `fd_set` is a fixed bitmap of `FD_SETSIZE` (1024) bits, so a
//! descriptor at or above it cannot be watched; [`Select::add`] refuses it with
//! `EINVAL` (the loop turns that into a clear error and refuses the client) instead of
//! writing past the bitmap as `FD_SET` would.

use super::event_loop::{EventLoop, Fired, Interest, Poller};
use crate::net::cvt;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub type SelectLoop<P> = EventLoop<P, Select>;

#[derive(Default)]
pub struct Select {
    /// Descriptor -> (token, interest), ordered so the highest descriptor is last.
    fds: BTreeMap<RawFd, (u64, Interest)>,
}

/// `EINVAL` for a descriptor the bitmap cannot hold; the loop recognises it and says
/// why in its own error.
fn in_range(fd: RawFd) -> io::Result<()> {
    if fd < 0 || fd as usize >= libc::FD_SETSIZE {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

impl Poller for Select {
    const NAME: &'static str = "select";
    const WAIT_CALL: &'static str = "select";

    fn new() -> io::Result<Self> {
        Ok(Self::default())
    }

    fn add(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        in_range(fd)?;
        self.fds.insert(fd, (token, interest));
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        match self.fds.get_mut(&fd) {
            Some(e) => {
                *e = (token, interest);
                Ok(())
            }
            None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        self.fds
            .remove(&fd)
            .map(|_| ())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn wait(&mut self, timeout: Duration, fired: &mut Vec<Fired>) -> io::Result<()> {
        fired.clear();
        // SAFETY: an all-zero fd_set is the empty set (what FD_ZERO produces).
        let mut rset: libc::fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut wset: libc::fd_set = unsafe { std::mem::zeroed() };
        let mut max = -1;
        for (&fd, &(_, i)) in &self.fds {
            // Every stored descriptor passed `in_range` in `add`, so FD_SET stays
            // inside the bitmap.
            if i.read {
                // SAFETY: 0 <= fd < FD_SETSIZE (checked in `add`); `rset` is live.
                unsafe { libc::FD_SET(fd, &mut rset) };
                max = max.max(fd);
            }
            if i.write {
                // SAFETY: as above, for `wset`.
                unsafe { libc::FD_SET(fd, &mut wset) };
                max = max.max(fd);
            }
        }
        let mut tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: both sets and `tv` are live and writable; `max + 1` bounds the scan.
        let n =
            unsafe { libc::select(max + 1, &mut rset, &mut wset, std::ptr::null_mut(), &mut tv) };
        match cvt(n) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for (&fd, &(token, _)) in &self.fds {
            // SAFETY: fd < FD_SETSIZE as above; the sets are live.
            let (r, w) = unsafe { (libc::FD_ISSET(fd, &rset), libc::FD_ISSET(fd, &wset)) };
            if r || w {
                fired.push(Fired {
                    token,
                    readable: r,
                    writable: w,
                    hangup: false,
                });
            }
        }
        Ok(())
    }
}
