//! poll, ppoll, select and pselect6: the sets go in at entry, and what the kernel
//! marked ready comes back in the return value's comment, as strace prints it:
//! `= 1 ([{fd=3, revents=POLLIN}])`, `= 2 (in [3], out [4], left {...})`.

use super::flags::{self, Xlat};
use super::strings::ptr;
use super::Ctx;
use crate::mem;
use std::fmt::Write;

pub const POLL_EVENTS: Xlat = &[
    (0x1, "POLLIN"),
    (0x2, "POLLPRI"),
    (0x4, "POLLOUT"),
    (0x8, "POLLERR"),
    (0x10, "POLLHUP"),
    (0x20, "POLLNVAL"),
    (0x40, "POLLRDNORM"),
    (0x80, "POLLRDBAND"),
    (0x100, "POLLWRNORM"),
    (0x200, "POLLWRBAND"),
    (0x400, "POLLMSG"),
    (0x1000, "POLLREMOVE"),
    (0x2000, "POLLRDHUP"),
];

/// Largest set read: 64 Ki descriptors (8 KiB of bits).
const MAX_FDS: u64 = 1 << 16;

/// One `struct pollfd`: fd, events, revents.
type PollFd = (i32, u16, u16);

/// Reads `struct pollfd[n]`, at most `-s` entries; true if more were left unread.
fn pollfds(ctx: &mut Ctx, addr: u64, n: u64) -> Option<(Vec<PollFd>, bool)> {
    let shown = n.min(ctx.max_str as u64).min(4096) as usize;
    let mut b = vec![0u8; shown * 8];
    if mem::read(ctx.pid, addr, &mut b) < b.len() {
        return None;
    }
    let v = b
        .chunks_exact(8)
        .map(|c| {
            (
                i32::from_ne_bytes([c[0], c[1], c[2], c[3]]),
                u16::from_ne_bytes([c[4], c[5]]),
                u16::from_ne_bytes([c[6], c[7]]),
            )
        })
        .collect();
    Some((v, (shown as u64) < n))
}

/// poll's array at entry: `[{fd=3, events=POLLIN}, {fd=-1}]`.
pub fn pollfd_in(ctx: &mut Ctx, out: &mut String, addr: u64, n: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let Some((fds, more)) = pollfds(ctx, addr, n) else {
        ptr(out, addr);
        return;
    };
    out.push('[');
    for (i, &(fd, ev, _)) in fds.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{{fd={fd}");
        if fd >= 0 {
            out.push_str(", events=");
            flags::flags(out, u64::from(ev), POLL_EVENTS, "0");
        }
        out.push('}');
    }
    if more {
        out.push_str(", ...");
    }
    out.push(']');
}

/// The descriptors set in an `fd_set` of `nfds` bits: `[0 3]`.
fn fdset(ctx: &mut Ctx, out: &mut String, addr: u64, nfds: u64) -> bool {
    let nfds = nfds.min(MAX_FDS);
    let bytes = (nfds.div_ceil(64) * 8) as usize;
    let mut b = vec![0u8; bytes];
    if bytes > 0 && mem::read(ctx.pid, addr, &mut b) < bytes {
        return false;
    }
    out.push('[');
    let mut first = true;
    for fd in 0..nfds {
        if b[(fd / 8) as usize] & (1 << (fd % 8)) != 0 {
            if !first {
                out.push(' ');
            }
            let _ = write!(out, "{fd}");
            first = false;
        }
    }
    out.push(']');
    true
}

/// An fd_set argument at entry.
pub fn fdset_in(ctx: &mut Ctx, out: &mut String, addr: u64, nfds: u64) {
    if addr == 0 {
        out.push_str("NULL");
    } else if !fdset(ctx, out, addr, nfds as i32 as i64 as u64) {
        ptr(out, addr);
    }
}

/// pselect6's sixth argument: `{sigmask=[USR1], sigsetsize=8}`.
pub fn pselect_sigmask(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let (Some(set), Some(size)) = (
        mem::read_u64(ctx.pid, addr),
        mem::read_u64(ctx.pid, addr + 8),
    ) else {
        ptr(out, addr);
        return;
    };
    out.push_str("{sigmask=");
    super::process::sigset(ctx, out, set);
    let _ = write!(out, ", sigsetsize={size}}}");
}

/// `{tv_sec=0, tv_usec=500}` (select's timeout).
pub fn timeval(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let (Some(sec), Some(usec)) = (
        mem::read_u64(ctx.pid, addr),
        mem::read_u64(ctx.pid, addr + 8),
    ) else {
        ptr(out, addr);
        return;
    };
    let _ = write!(out, "{{tv_sec={}, tv_usec={}}}", sec as i64, usec as i64);
}

/// Which call's result comment to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Poll,
    Ppoll,
    Select,
    Pselect6,
}

/// The comment after a successful result: ` (Timeout)`, ` ([{fd=3, revents=POLLIN}])`.
pub fn result(ctx: &mut Ctx, out: &mut String, which: Which, a: &[u64; 6], rval: i64) {
    if rval == 0 {
        out.push_str(" (Timeout)");
        return;
    }
    let mut parts = String::new();
    match which {
        Which::Poll | Which::Ppoll => {
            let Some((fds, _)) = pollfds(ctx, a[0], a[1]) else {
                return;
            };
            parts.push('[');
            let mut n = 0;
            for &(fd, _, rev) in &fds {
                if rev == 0 {
                    continue;
                }
                if n > 0 {
                    parts.push_str(", ");
                }
                let _ = write!(parts, "{{fd={fd}, revents=");
                flags::flags(&mut parts, u64::from(rev), POLL_EVENTS, "0");
                parts.push('}');
                n += 1;
            }
            parts.push(']');
        }
        Which::Select | Which::Pselect6 => {
            for (name, i) in [("in", 1), ("out", 2), ("except", 3)] {
                if a[i] == 0 {
                    continue;
                }
                let mark = parts.len();
                if !parts.is_empty() {
                    parts.push_str(", ");
                }
                parts.push_str(name);
                parts.push(' ');
                let body = parts.len();
                if !fdset(ctx, &mut parts, a[i], a[0] as i32 as i64 as u64)
                    || &parts[body..] == "[]"
                {
                    parts.truncate(mark);
                }
            }
        }
    }
    let tmo = match which {
        Which::Poll => 0,
        Which::Ppoll => a[2],
        Which::Select | Which::Pselect6 => a[4],
    };
    if tmo != 0 {
        if !parts.is_empty() {
            parts.push_str(", ");
        }
        parts.push_str("left ");
        if which == Which::Select {
            timeval(ctx, &mut parts, tmo);
        } else {
            super::fs::timespec(ctx, &mut parts, tmo);
        }
    }
    if !parts.is_empty() {
        out.push_str(" (");
        out.push_str(&parts);
        out.push(')');
    }
}
