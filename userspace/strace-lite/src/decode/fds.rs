//! Descriptors that stand for kernel objects: eventfd, timerfd, signalfd, inotify,
//! memfd, pidfd; data moved between descriptors (splice, tee, copy_file_range); and
//! openat2's `struct open_how`.

use super::flags::{self, Xlat};
use super::strings::{ptr, words};
use super::Ctx;
use crate::mem;
use std::fmt::Write;

pub const EFD_FLAGS: Xlat = &[
    (0o2000000, "EFD_CLOEXEC"),
    (0o4000, "EFD_NONBLOCK"),
    (1, "EFD_SEMAPHORE"),
];
pub const TFD_FLAGS: Xlat = &[(0o2000000, "TFD_CLOEXEC"), (0o4000, "TFD_NONBLOCK")];
pub const TFD_SET_FLAGS: Xlat = &[(1, "TFD_TIMER_ABSTIME"), (2, "TFD_TIMER_CANCEL_ON_SET")];
pub const SFD_FLAGS: Xlat = &[(0o2000000, "SFD_CLOEXEC"), (0o4000, "SFD_NONBLOCK")];
pub const IN_INIT_FLAGS: Xlat = &[(0o4000, "IN_NONBLOCK"), (0o2000000, "IN_CLOEXEC")];
pub const IN_MASK: Xlat = &[
    (0x1, "IN_ACCESS"),
    (0x2, "IN_MODIFY"),
    (0x4, "IN_ATTRIB"),
    (0x8, "IN_CLOSE_WRITE"),
    (0x10, "IN_CLOSE_NOWRITE"),
    (0x20, "IN_OPEN"),
    (0x40, "IN_MOVED_FROM"),
    (0x80, "IN_MOVED_TO"),
    (0x100, "IN_CREATE"),
    (0x200, "IN_DELETE"),
    (0x400, "IN_DELETE_SELF"),
    (0x800, "IN_MOVE_SELF"),
    (0x2000, "IN_UNMOUNT"),
    (0x4000, "IN_Q_OVERFLOW"),
    (0x8000, "IN_IGNORED"),
    (0x1000000, "IN_ONLYDIR"),
    (0x2000000, "IN_DONT_FOLLOW"),
    (0x4000000, "IN_EXCL_UNLINK"),
    (0x10000000, "IN_MASK_CREATE"),
    (0x20000000, "IN_MASK_ADD"),
    (0x40000000, "IN_ISDIR"),
    (0x80000000, "IN_ONESHOT"),
];
pub const MFD_FLAGS: Xlat = &[
    (1, "MFD_CLOEXEC"),
    (2, "MFD_ALLOW_SEALING"),
    (4, "MFD_HUGETLB"),
    (8, "MFD_NOEXEC_SEAL"),
    (0x10, "MFD_EXEC"),
];
pub const SPLICE_FLAGS: Xlat = &[
    (1, "SPLICE_F_MOVE"),
    (2, "SPLICE_F_NONBLOCK"),
    (4, "SPLICE_F_MORE"),
    (8, "SPLICE_F_GIFT"),
];
pub const CLOSE_RANGE_FLAGS: Xlat = &[(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")];
pub const PIDFD_FLAGS: Xlat = &[(0o4000, "PIDFD_NONBLOCK")];
const RESOLVE_FLAGS: Xlat = &[
    (0x1, "RESOLVE_NO_XDEV"),
    (0x2, "RESOLVE_NO_MAGICLINKS"),
    (0x4, "RESOLVE_NO_SYMLINKS"),
    (0x8, "RESOLVE_BENEATH"),
    (0x10, "RESOLVE_IN_ROOT"),
    (0x20, "RESOLVE_CACHED"),
];

/// `{it_interval={tv_sec=1, tv_nsec=0}, it_value={tv_sec=5, tv_nsec=500}}`.
pub fn itimerspec(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let Some(w) = words::<4>(ctx, out, addr) else {
        return;
    };
    let _ = write!(
        out,
        "{{it_interval={{tv_sec={}, tv_nsec={}}}, it_value={{tv_sec={}, tv_nsec={}}}}}",
        w[0], w[1], w[2], w[3]
    );
}

/// An `loff_t *` read at entry: `[2]`, or `NULL`.
pub fn offset(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    match mem::read_u64(ctx.pid, addr) {
        Some(v) => {
            let _ = write!(out, "[{}]", v as i64);
        }
        None => ptr(out, addr),
    }
}

/// openat2's `struct open_how` (flags, mode, resolve); the mode only when it matters.
pub fn open_how(ctx: &mut Ctx, out: &mut String, addr: u64, size: u64) {
    let mut b = [0u8; 24];
    if size < 24 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(x)
    };
    let (fl, mode, resolve) = (w(0), w(1), w(2));
    out.push_str("{flags=");
    flags::open_flags(out, fl);
    if fl & (0o100 | 0o20000000) != 0 || mode != 0 {
        out.push_str(", mode=");
        super::fs::mode(out, mode);
    }
    out.push_str(", resolve=");
    flags::flags(out, resolve, RESOLVE_FLAGS, "0");
    out.push('}');
}

pub const SYNC_FILE_RANGE_FLAGS: Xlat = &[
    (1, "SYNC_FILE_RANGE_WAIT_BEFORE"),
    (2, "SYNC_FILE_RANGE_WRITE"),
    (4, "SYNC_FILE_RANGE_WAIT_AFTER"),
];

pub const RENAME_FLAGS: Xlat = &[
    (1, "RENAME_NOREPLACE"),
    (2, "RENAME_EXCHANGE"),
    (4, "RENAME_WHITEOUT"),
];

pub const FLOCK_OPS: Xlat = &[
    (1, "LOCK_SH"),
    (2, "LOCK_EX"),
    (4, "LOCK_NB"),
    (8, "LOCK_UN"),
    (32, "LOCK_MAND"),
    (64, "LOCK_READ"),
    (128, "LOCK_WRITE"),
];
pub const XATTR_FLAGS: Xlat = &[(1, "XATTR_CREATE"), (2, "XATTR_REPLACE")];
pub const RWF_FLAGS: Xlat = &[
    (1, "RWF_HIPRI"),
    (2, "RWF_DSYNC"),
    (4, "RWF_SYNC"),
    (8, "RWF_NOWAIT"),
    (16, "RWF_APPEND"),
];
pub const PRIO_WHICH: Xlat = &[(0, "PRIO_PROCESS"), (1, "PRIO_PGRP"), (2, "PRIO_USER")];
pub const ITIMER_WHICH: Xlat = &[
    (0, "ITIMER_REAL"),
    (1, "ITIMER_VIRTUAL"),
    (2, "ITIMER_PROF"),
];

/// `struct itimerval`: `{it_interval={tv_sec=0, tv_usec=0}, it_value={...}}`.
pub fn itimerval(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let Some(w) = words::<4>(ctx, out, addr) else {
        return;
    };
    let _ = write!(
        out,
        "{{it_interval={{tv_sec={}, tv_usec={}}}, it_value={{tv_sec={}, tv_usec={}}}}}",
        w[0], w[1], w[2], w[3]
    );
}

/// mknod's mode (file type and permissions) and, for devices, the device number.
pub fn mknod_mode(out: &mut String, mode: u64, dev: u64) {
    super::fs::file_mode(out, mode as u32);
    let ty = mode as u32 & 0o170000;
    if ty == 0o020000 || ty == 0o060000 {
        let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
        let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
        let _ = write!(out, ", makedev({major:#x}, {minor:#x})");
    }
}

const PERSONALITY_FLAGS: Xlat = &[
    (0x0020000, "UNAME26"),
    (0x0040000, "ADDR_NO_RANDOMIZE"),
    (0x0080000, "FDPIC_FUNCPTRS"),
    (0x0100000, "MMAP_PAGE_ZERO"),
    (0x0200000, "ADDR_COMPAT_LAYOUT"),
    (0x0400000, "READ_IMPLIES_EXEC"),
    (0x0800000, "ADDR_LIMIT_32BIT"),
    (0x1000000, "SHORT_INODE"),
    (0x2000000, "WHOLE_SECONDS"),
    (0x4000000, "STICKY_TIMEOUTS"),
    (0x8000000, "ADDR_LIMIT_3GB"),
];

/// A personality: `PER_LINUX|ADDR_NO_RANDOMIZE` (the low byte is the execution domain).
pub fn personality(out: &mut String, v: u64) {
    let v = v & 0xffff_ffff;
    let domain = v & 0xff;
    if domain == 0 {
        out.push_str("PER_LINUX");
    } else {
        let _ = write!(out, "{domain:#x}");
    }
    let rest = v & !0xff;
    if rest != 0 {
        out.push('|');
        flags::flags(out, rest, PERSONALITY_FLAGS, "");
    }
}
