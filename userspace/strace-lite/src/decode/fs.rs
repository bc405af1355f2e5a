//! File-system structures: `struct stat`, `struct statx`, `struct statfs`,
//! `struct timespec`, `struct rlimit`.
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
    if ctx.verbose {
        return stat_whole(ctx, out, addr);
    }
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
    file_mode_styled(ctx.xlat, out, mode);
    if mode & S_IFMT == 0o020000 || mode & S_IFMT == 0o060000 {
        let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
        let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
        match ctx.xlat {
            super::Xlat::Abbrev => {
                let _ = write!(out, ", st_rdev={}, ...}}", makedev(major, minor));
            }
            super::Xlat::Raw => {
                let _ = write!(out, ", st_rdev={rdev:#x}, ...}}");
            }
            super::Xlat::Verbose => {
                let _ = write!(
                    out,
                    ", st_rdev={rdev:#x} /* {} */, ...}}",
                    makedev(major, minor)
                );
            }
        }
    } else {
        let _ = write!(out, ", st_size={size}, ...}}");
    }
}

/// `-v`: every field of `struct statx` the mask says is filled, as strace prints it.
fn statx_whole(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 160];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    let mask = u32_at(0);
    out.push_str("{stx_mask=");
    super::flags::flags(out, u64::from(mask), STATX_MASK, "0");
    let _ = write!(out, ", stx_blksize={}, stx_attributes=", u32_at(4));
    super::flags::flags(out, u64_at(8), STATX_ATTRS, "0");
    let _ = write!(
        out,
        ", stx_nlink={}, stx_uid={}, stx_gid={}, stx_mode=",
        u32_at(16),
        u32_at(20),
        u32_at(24)
    );
    file_mode_styled(ctx.xlat, out, u32::from(u16::from_ne_bytes([b[28], b[29]])));
    let _ = write!(
        out,
        ", stx_ino={}, stx_size={}, stx_blocks={}, stx_attributes_mask=",
        u64_at(32),
        u64_at(40),
        u64_at(48)
    );
    super::flags::flags(out, u64_at(56), STATX_ATTRS, "0");
    const STATX_BTIME: u32 = 0x800;
    const STATX_MNT_ID: u32 = 0x1000;
    for (name, at) in [
        ("stx_atime", 64),
        ("stx_btime", 80),
        ("stx_ctime", 96),
        ("stx_mtime", 112),
    ] {
        if name == "stx_btime" && mask & STATX_BTIME == 0 {
            continue;
        }
        let (secs, nsec) = (u64_at(at) as i64, u64::from(u32_at(at + 8)));
        let _ = write!(out, ", {name}={{tv_sec={secs}, tv_nsec={nsec}}}");
        stamp_comment(out, secs, nsec);
    }
    let _ = write!(
        out,
        ", stx_rdev_major={}, stx_rdev_minor={}, stx_dev_major={}, stx_dev_minor={}",
        u32_at(128),
        u32_at(132),
        u32_at(136),
        u32_at(140)
    );
    if mask & STATX_MNT_ID != 0 {
        let _ = write!(out, ", stx_mnt_id={:#x}", u64_at(144));
    }
    out.push('}');
}

/// `makedev(0x8, 0)`: strace prints a zero as `0`, anything else in hex.
fn makedev(major: u64, minor: u64) -> String {
    let h = |v: u64| {
        if v == 0 {
            "0".to_string()
        } else {
            format!("{v:#x}")
        }
    };
    format!("makedev({}, {})", h(major), h(minor))
}

/// `-v`: every field of `struct stat`, times with their local date as strace shows them.
fn stat_whole(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 120];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let u64_at = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let dev = |d: u64| {
        let major = ((d >> 32) & 0xffff_f000) | ((d >> 8) & 0xfff);
        let minor = ((d >> 12) & 0xffff_ff00) | (d & 0xff);
        makedev(major, minor)
    };
    let mode = u32_at(24);
    let _ = write!(
        out,
        "{{st_dev={}, st_ino={}, st_mode=",
        dev(u64_at(0)),
        u64_at(8)
    );
    file_mode_styled(ctx.xlat, out, mode);
    let _ = write!(
        out,
        ", st_nlink={}, st_uid={}, st_gid={}, st_blksize={}, st_blocks={}, ",
        u64_at(16),
        u32_at(28),
        u32_at(32),
        u64_at(56) as i64,
        u64_at(64) as i64
    );
    if mode & S_IFMT == 0o020000 || mode & S_IFMT == 0o060000 {
        let _ = write!(out, "st_rdev={}", dev(u64_at(40)));
    } else {
        let _ = write!(out, "st_size={}", u64_at(48) as i64);
    }
    for (name, at) in [("st_atime", 72), ("st_mtime", 88), ("st_ctime", 104)] {
        let (secs, nsec) = (u64_at(at) as i64, u64_at(at + 8));
        let _ = write!(out, ", {name}={secs}");
        stamp_comment(out, secs, nsec);
        let _ = write!(out, ", {name}_nsec={nsec}");
    }
    out.push('}');
}

/// ` /* 2026-12-07T16:07:58.474787697+0000 */`: a time in local time, as strace's
/// comment after a timestamp.
fn stamp_comment(out: &mut String, secs: i64, nsec: u64) {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills from `t`; both are live locals.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return;
    }
    let off = tm.tm_gmtoff;
    let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
    // Whole seconds print without a fraction.
    let frac = if nsec == 0 {
        String::new()
    } else {
        format!(".{nsec:09}")
    };
    let _ = write!(
        out,
        " /* {:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{sign}{:02}{:02} */",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off / 3600,
        off % 3600 / 60
    );
}

/// `file_mode` in the `-X` style: `0100644`, or `0100644 /* S_IFREG|0644 */`.
fn file_mode_styled(style: super::Xlat, out: &mut String, mode: u32) {
    match style {
        super::Xlat::Abbrev => file_mode(out, mode),
        super::Xlat::Raw => {
            let _ = write!(out, "0{mode:o}");
        }
        super::Xlat::Verbose => {
            let _ = write!(out, "0{mode:o} /* ");
            file_mode(out, mode);
            out.push_str(" */");
        }
    }
}

/// A file type and permissions: `S_IFREG|S_ISUID|0755`.
pub fn file_mode(out: &mut String, mode: u32) {
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
}

pub const STATX_MASK: super::flags::Xlat = &[
    (0xfff, "STATX_ALL"),
    (0x7ff, "STATX_BASIC_STATS"),
    (0x1, "STATX_TYPE"),
    (0x2, "STATX_MODE"),
    (0x4, "STATX_NLINK"),
    (0x8, "STATX_UID"),
    (0x10, "STATX_GID"),
    (0x20, "STATX_ATIME"),
    (0x40, "STATX_MTIME"),
    (0x80, "STATX_CTIME"),
    (0x100, "STATX_INO"),
    (0x200, "STATX_SIZE"),
    (0x400, "STATX_BLOCKS"),
    (0x800, "STATX_BTIME"),
    (0x1000, "STATX_MNT_ID"),
    (0x2000, "STATX_DIOALIGN"),
];

const STATX_ATTRS: super::flags::Xlat = &[
    (0x4, "STATX_ATTR_COMPRESSED"),
    (0x10, "STATX_ATTR_IMMUTABLE"),
    (0x20, "STATX_ATTR_APPEND"),
    (0x40, "STATX_ATTR_NODUMP"),
    (0x800, "STATX_ATTR_ENCRYPTED"),
    (0x1000, "STATX_ATTR_AUTOMOUNT"),
    (0x2000, "STATX_ATTR_MOUNT_ROOT"),
    (0x100000, "STATX_ATTR_VERITY"),
    (0x200000, "STATX_ATTR_DAX"),
];

/// statx's flags: the sync type (a field, always named) then the AT_* bits.
pub fn statx_flags(out: &mut String, v: u64) {
    let sync = v & 0x6000;
    out.push_str(match sync {
        0 => "AT_STATX_SYNC_AS_STAT",
        0x2000 => "AT_STATX_FORCE_SYNC",
        0x4000 => "AT_STATX_DONT_SYNC",
        _ => "AT_STATX_FORCE_SYNC|AT_STATX_DONT_SYNC",
    });
    let rest = v & !0x6000;
    if rest != 0 {
        out.push('|');
        super::flags::flags(out, rest, super::flags::AT_FLAGS, "");
    }
}

/// `struct statx`, abbreviated as strace does: mask, attributes, mode, size.
pub fn statx(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if ctx.verbose {
        return statx_whole(ctx, out, addr);
    }
    let mut b = [0u8; 48];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    out.push_str("{stx_mask=");
    super::flags::flags(out, u64::from(u32_at(0)), STATX_MASK, "0");
    out.push_str(", stx_attributes=");
    super::flags::flags(out, u64_at(8), STATX_ATTRS, "0");
    out.push_str(", stx_mode=");
    file_mode_styled(ctx.xlat, out, u32::from(u16::from_ne_bytes([b[28], b[29]])));
    let _ = write!(out, ", stx_size={}, ...}}", u64_at(40));
}

const FS_MAGIC: super::flags::Xlat = &[
    (0xef53, "EXT2_SUPER_MAGIC"),
    (0x01021994, "TMPFS_MAGIC"),
    (0x9fa0, "PROC_SUPER_MAGIC"),
    (0x62656572, "SYSFS_MAGIC"),
    (0x794c7630, "OVERLAYFS_SUPER_MAGIC"),
    (0x9123683e, "BTRFS_SUPER_MAGIC"),
    (0x58465342, "XFS_SUPER_MAGIC"),
    (0x63677270, "CGROUP2_SUPER_MAGIC"),
    (0x27e0eb, "CGROUP_SUPER_MAGIC"),
    (0x1cd1, "DEVPTS_SUPER_MAGIC"),
    (0x6969, "NFS_SUPER_MAGIC"),
    (0x65735546, "FUSE_SUPER_MAGIC"),
    (0x73717368, "SQUASHFS_MAGIC"),
    (0x01021997, "V9FS_MAGIC"),
    (0x858458f6, "RAMFS_MAGIC"),
    (0x4d44, "MSDOS_SUPER_MAGIC"),
    (0x2011bab0, "EXFAT_SUPER_MAGIC"),
    (0x64626720, "DEBUGFS_MAGIC"),
    (0x73636673, "SECURITYFS_MAGIC"),
    (0x6e736673, "NSFS_MAGIC"),
    (0xcafe4a11, "BPF_FS_MAGIC"),
    (0x50495045, "PIPEFS_MAGIC"),
    (0x534f434b, "SOCKFS_MAGIC"),
    (0x42494e4d, "BINFMTFS_MAGIC"),
    (0x74726163, "TRACEFS_MAGIC"),
    (0xf2f52010, "F2FS_SUPER_MAGIC"),
    (0x3153464a, "JFS_SUPER_MAGIC"),
    (0x52654973, "REISERFS_SUPER_MAGIC"),
    (0xff534d42, "CIFS_SUPER_MAGIC"),
    (0x9660, "ISOFS_SUPER_MAGIC"),
    (0x1373, "DEVFS_SUPER_MAGIC"),
    (0x2fc12fc1, "ZFS_SUPER_MAGIC"),
];

const STATFS_FLAGS: super::flags::Xlat = &[
    (0x1, "ST_RDONLY"),
    (0x2, "ST_NOSUID"),
    (0x4, "ST_NODEV"),
    (0x8, "ST_NOEXEC"),
    (0x10, "ST_SYNCHRONOUS"),
    (0x20, "ST_VALID"),
    (0x40, "ST_MANDLOCK"),
    (0x80, "ST_WRITE"),
    (0x100, "ST_APPEND"),
    (0x200, "ST_IMMUTABLE"),
    (0x400, "ST_NOATIME"),
    (0x800, "ST_NODIRATIME"),
    (0x1000, "ST_RELATIME"),
    (0x2000, "ST_NOSYMFOLLOW"),
];

/// x86_64 `struct statfs`: eleven 8-byte fields, f_fsid two ints at 56.
pub fn statfs(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 88];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(x)
    };
    out.push_str("{f_type=");
    match super::flags::lookup(w(0), FS_MAGIC) {
        Some(n) => out.push_str(n),
        None => super::hex(out, w(0)),
    }
    let _ = write!(
        out,
        ", f_bsize={}, f_blocks={}, f_bfree={}, f_bavail={}, f_files={}, f_ffree={}, f_fsid={{val=[",
        w(1), w(2), w(3), w(4), w(5), w(6)
    );
    let fsid = w(7);
    super::hex(out, fsid & 0xffff_ffff);
    out.push_str(", ");
    super::hex(out, fsid >> 32);
    let _ = write!(out, "]}}, f_namelen={}, f_frsize={}, f_flags=", w(8), w(9));
    super::flags::flags(out, w(10), STATFS_FLAGS, "0");
    out.push('}');
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

const DT_TYPES: super::flags::Xlat = &[
    (0, "DT_UNKNOWN"),
    (1, "DT_FIFO"),
    (2, "DT_CHR"),
    (4, "DT_DIR"),
    (6, "DT_BLK"),
    (8, "DT_REG"),
    (10, "DT_LNK"),
    (12, "DT_SOCK"),
    (14, "DT_WHT"),
];

/// getdents64's buffer: `0x55d0... /* 4 entries */`, or with `-v` every entry,
/// `[{d_ino=2, d_off=..., d_reclen=24, d_type=DT_DIR, d_name="."}, ...]`.
pub fn dirents(ctx: &mut Ctx, out: &mut String, addr: u64, len: u64) {
    let want = (len as usize).min(1 << 16);
    let mut scratch = std::mem::take(&mut ctx.scratch);
    scratch.clear();
    scratch.resize(want, 0);
    let got = mem::read(ctx.pid, addr, &mut scratch);
    let mut n = 0;
    let mut off = 0usize;
    let mut entries = String::new();
    // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
    while off + 19 <= got {
        let e = &scratch[off..];
        let reclen = u16::from_ne_bytes([e[16], e[17]]) as usize;
        if reclen == 0 {
            break;
        }
        if ctx.verbose {
            let mut w = [0u8; 8];
            w.copy_from_slice(&e[0..8]);
            let ino = u64::from_ne_bytes(w);
            w.copy_from_slice(&e[8..16]);
            let d_off = i64::from_ne_bytes(w);
            let name_end = e[19..reclen.min(e.len())]
                .iter()
                .position(|&c| c == 0)
                .map_or(reclen.min(e.len()), |p| 19 + p);
            if n > 0 {
                entries.push_str(", ");
            }
            let _ = write!(
                entries,
                "{{d_ino={ino}, d_off={d_off}, d_reclen={reclen}, d_type="
            );
            super::flags::xval(&mut entries, u64::from(e[18]), DT_TYPES, "DT_???");
            entries.push_str(", d_name=");
            super::strings::quote(&mut entries, &e[19..name_end]);
            entries.push('}');
        }
        n += 1;
        off += reclen;
    }
    ctx.scratch = scratch;
    if ctx.verbose {
        out.push('[');
        out.push_str(&entries);
        out.push(']');
    } else {
        ptr(out, addr);
        let _ = write!(out, " /* {n} entries */");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirents_abbreviated_and_verbose() {
        // Two records: "." (a directory) and "a" (a regular file), 24 bytes each.
        let mut buf = Vec::new();
        for (ino, off, ty, name) in [(2u64, 10i64, 4u8, "."), (12, 20, 8, "a")] {
            buf.extend(ino.to_ne_bytes());
            buf.extend(off.to_ne_bytes());
            buf.extend(24u16.to_ne_bytes());
            buf.push(ty);
            let mut n = name.as_bytes().to_vec();
            n.resize(5, 0);
            buf.extend(n);
        }
        let mut ctx = Ctx {
            pid: std::process::id() as i32,
            max_str: 32,
            scratch: Vec::new(),
            verbose: false,
            fd_paths: 0,
            xlat: Default::default(),
            fd_cache: None,
        };
        let addr = buf.as_ptr() as u64;
        let mut out = String::new();
        dirents(&mut ctx, &mut out, addr, buf.len() as u64);
        assert!(out.ends_with(" /* 2 entries */"), "{out}");
        ctx.verbose = true;
        out.clear();
        dirents(&mut ctx, &mut out, addr, buf.len() as u64);
        assert_eq!(
            out,
            r#"[{d_ino=2, d_off=10, d_reclen=24, d_type=DT_DIR, d_name="."}, {d_ino=12, d_off=20, d_reclen=24, d_type=DT_REG, d_name="a"}]"#
        );
    }
}
