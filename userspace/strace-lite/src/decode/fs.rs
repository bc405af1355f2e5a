//! File-system structures: `struct stat`, `struct timespec`, `struct rlimit`.
//!
//! strace's default (abbreviated) notation is kept: a stat shows the file type and
//! permissions and the size (or the device number for device files), then `...`.

use super::strings::ptr;
use super::Ctx;
use crate::mem;
use std::fmt::Write;

const S_IFMT: u32 = 0o170000;
const FILE_TYPES: &[(u32, &str)] = &[
    (0o140000, "S_IFSOCK"),
    (0o120000, "S_IFLNK"),
    (0o100000, "S_IFREG"),
    (0o060000, "S_IFBLK"),
    (0o040000, "S_IFDIR"),
    (0o020000, "S_IFCHR"),
    (0o010000, "S_IFIFO"),
];

/// x86_64 `struct stat`: st_mode at 24, st_rdev at 40, st_size at 48.
pub fn stat(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 56];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let mode = u32::from_ne_bytes([b[24], b[25], b[26], b[27]]);
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[40..48]);
    let rdev = u64::from_ne_bytes(w);
    w.copy_from_slice(&b[48..56]);
    let size = i64::from_ne_bytes(w);
    out.push_str("{st_mode=");
    let ty = mode & S_IFMT;
    match FILE_TYPES.iter().find(|&&(t, _)| t == ty) {
        Some(&(_, name)) => out.push_str(name),
        None => {
            let _ = write!(out, "{ty:#o}");
        }
    }
    for (bit, name) in [
        (0o4000, "S_ISUID"),
        (0o2000, "S_ISGID"),
        (0o1000, "S_ISVTX"),
    ] {
        if mode & bit != 0 {
            out.push('|');
            out.push_str(name);
        }
    }
    let perm = mode & 0o777;
    if perm == 0 {
        out.push_str("|000");
    } else {
        let _ = write!(out, "|0{perm:o}");
    }
    if ty == 0o020000 || ty == 0o060000 {
        let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
        let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
        let _ = write!(out, ", st_rdev=makedev({major:#x}, {minor:#x}), ...}}");
    } else {
        let _ = write!(out, ", st_size={size}, ...}}");
    }
}

/// A permission mode as C prints it with `%#03o`: `0644`, `000`.
pub fn mode(out: &mut String, m: u64) {
    if m == 0 {
        out.push_str("000");
    } else {
        let _ = write!(out, "0{m:o}");
    }
}

/// `{tv_sec=1, tv_nsec=500000000}`.
pub fn timespec(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let (Some(sec), Some(nsec)) = (
        mem::read_u64(ctx.pid, addr),
        mem::read_u64(ctx.pid, addr + 8),
    ) else {
        ptr(out, addr);
        return;
    };
    let _ = write!(out, "{{tv_sec={}, tv_nsec={}}}", sec as i64, nsec as i64);
}

pub const RLIMITS: super::flags::Xlat = &[
    (0, "RLIMIT_CPU"),
    (1, "RLIMIT_FSIZE"),
    (2, "RLIMIT_DATA"),
    (3, "RLIMIT_STACK"),
    (4, "RLIMIT_CORE"),
    (5, "RLIMIT_RSS"),
    (6, "RLIMIT_NPROC"),
    (7, "RLIMIT_NOFILE"),
    (8, "RLIMIT_MEMLOCK"),
    (9, "RLIMIT_AS"),
    (10, "RLIMIT_LOCKS"),
    (11, "RLIMIT_SIGPENDING"),
    (12, "RLIMIT_MSGQUEUE"),
    (13, "RLIMIT_NICE"),
    (14, "RLIMIT_RTPRIO"),
    (15, "RLIMIT_RTTIME"),
];

fn rlim_value(out: &mut String, v: u64) {
    if v == u64::MAX {
        out.push_str("RLIM64_INFINITY");
    } else if v > 0 && v % 1024 == 0 {
        let _ = write!(out, "{}*1024", v / 1024);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `{rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}`.
pub fn rlimit(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let (Some(cur), Some(max)) = (
        mem::read_u64(ctx.pid, addr),
        mem::read_u64(ctx.pid, addr + 8),
    ) else {
        ptr(out, addr);
        return;
    };
    out.push_str("{rlim_cur=");
    rlim_value(out, cur);
    out.push_str(", rlim_max=");
    rlim_value(out, max);
    out.push('}');
}

/// getdents64's buffer as strace abbreviates it: `0x55d0... /* 4 entries */`.
pub fn dirents(ctx: &mut Ctx, out: &mut String, addr: u64, len: u64) {
    ptr(out, addr);
    let want = (len as usize).min(1 << 16);
    let mut scratch = std::mem::take(&mut ctx.scratch);
    scratch.clear();
    scratch.resize(want, 0);
    let got = mem::read(ctx.pid, addr, &mut scratch);
    let mut n = 0;
    let mut off = 0usize;
    // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
    while off + 19 <= got {
        let reclen = u16::from_ne_bytes([scratch[off + 16], scratch[off + 17]]) as usize;
        if reclen == 0 {
            break;
        }
        n += 1;
        off += reclen;
    }
    ctx.scratch = scratch;
    let _ = write!(out, " /* {n} entries */");
}
