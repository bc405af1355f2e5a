//! Credentials: user and group ids, group lists, capability sets, and `prctl`,
//! whose arguments mean something different for every option.
//!
//! prctl is one composite kind printed at exit: what an option reads or returns
//! (`PR_GET_NAME`'s string, `PR_GET_PDEATHSIG`'s signal) is only there once the call is done.

use super::flags::{self, Xlat};
use super::strings::{self, ptr};
use super::Ctx;
use crate::mem;
use std::fmt::Write;

/// A uid or gid: `-1` for "unchanged", as strace prints it.
pub fn id(out: &mut String, v: u64) {
    let v = v as u32;
    if v == u32::MAX {
        out.push_str("-1");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A `uid_t *` the kernel fills: `[1000]`.
pub fn id_out(ctx: &mut Ctx, out: &mut String, addr: u64) {
    match mem::read_u32(ctx.pid, addr) {
        Some(v) => {
            out.push('[');
            id(out, u64::from(v));
            out.push(']');
        }
        None => ptr(out, addr),
    }
}

/// A `gid_t[n]` list: `[0, 27]`, at most `-s` entries.
pub fn gid_list(ctx: &mut Ctx, out: &mut String, addr: u64, n: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let shown = n.min(ctx.max_str as u64).min(65536) as usize;
    let mut b = vec![0u8; shown * 4];
    if mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    out.push('[');
    for (i, c) in b.chunks_exact(4).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        id(out, u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])));
    }
    if (shown as u64) < n {
        out.push_str(", ...");
    }
    out.push(']');
}

const CAP_VERSIONS: Xlat = &[
    (0x19980330, "_LINUX_CAPABILITY_VERSION_1"),
    (0x20071026, "_LINUX_CAPABILITY_VERSION_2"),
    (0x20080522, "_LINUX_CAPABILITY_VERSION_3"),
];

pub const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// One capability number: `CAP_SYS_ADMIN`.
pub fn cap(out: &mut String, v: u64) {
    match CAPS.get(v as usize) {
        Some(n) => out.push_str(n),
        None => {
            let _ = write!(out, "{v:#x} /* CAP_??? */");
        }
    }
}

/// A capability set: `1<<CAP_CHOWN|1<<CAP_KILL`, `0` when empty.
fn cap_set(out: &mut String, set: u64) {
    if set == 0 {
        out.push('0');
        return;
    }
    let mut first = true;
    let mut rest = set;
    for (i, name) in CAPS.iter().enumerate() {
        if set & (1 << i) != 0 {
            if !first {
                out.push('|');
            }
            let _ = write!(out, "1<<{name}");
            first = false;
            rest &= !(1 << i);
        }
    }
    if rest != 0 {
        if !first {
            out.push('|');
        }
        let _ = write!(out, "{rest:#x}");
    }
}

/// `struct __user_cap_header_struct`: `{version=_LINUX_CAPABILITY_VERSION_3, pid=0}`.
pub fn cap_header(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let (Some(version), Some(pid)) = (
        mem::read_u32(ctx.pid, addr),
        mem::read_u32(ctx.pid, addr + 4),
    ) else {
        ptr(out, addr);
        return;
    };
    out.push_str("{version=");
    flags::xval(
        out,
        u64::from(version),
        CAP_VERSIONS,
        "_LINUX_CAPABILITY_VERSION_???",
    );
    let _ = write!(out, ", pid={}}}", pid as i32);
}

/// The capability data: one 32-bit triple for version 1, two for versions 2 and 3.
pub fn cap_data(ctx: &mut Ctx, out: &mut String, hdr: u64, addr: u64) {
    let version = mem::read_u32(ctx.pid, hdr).unwrap_or(0);
    let words = match version {
        0x19980330 => 1,
        0x20071026 | 0x20080522 => 2,
        _ => 0,
    };
    let mut b = [0u8; 24];
    if addr == 0 || words == 0 || mem::read(ctx.pid, addr, &mut b[..12 * words]) < 12 * words {
        ptr(out, addr);
        return;
    }
    let u = |i: usize| u64::from(u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let field = |k: usize| {
        let lo = u(4 * k);
        if words == 2 {
            lo | u(12 + 4 * k) << 32
        } else {
            lo
        }
    };
    out.push_str("{effective=");
    cap_set(out, field(0));
    out.push_str(", permitted=");
    cap_set(out, field(1));
    out.push_str(", inheritable=");
    cap_set(out, field(2));
    out.push('}');
}

const PR_OPTIONS: Xlat = &[
    (1, "PR_SET_PDEATHSIG"),
    (2, "PR_GET_PDEATHSIG"),
    (3, "PR_GET_DUMPABLE"),
    (4, "PR_SET_DUMPABLE"),
    (5, "PR_GET_UNALIGN"),
    (6, "PR_SET_UNALIGN"),
    (7, "PR_GET_KEEPCAPS"),
    (8, "PR_SET_KEEPCAPS"),
    (9, "PR_GET_FPEMU"),
    (10, "PR_SET_FPEMU"),
    (11, "PR_GET_FPEXC"),
    (12, "PR_SET_FPEXC"),
    (13, "PR_GET_TIMING"),
    (14, "PR_SET_TIMING"),
    (15, "PR_SET_NAME"),
    (16, "PR_GET_NAME"),
    (19, "PR_GET_ENDIAN"),
    (20, "PR_SET_ENDIAN"),
    (21, "PR_GET_SECCOMP"),
    (22, "PR_SET_SECCOMP"),
    (23, "PR_CAPBSET_READ"),
    (24, "PR_CAPBSET_DROP"),
    (25, "PR_GET_TSC"),
    (26, "PR_SET_TSC"),
    (27, "PR_GET_SECUREBITS"),
    (28, "PR_SET_SECUREBITS"),
    (29, "PR_SET_TIMERSLACK"),
    (30, "PR_GET_TIMERSLACK"),
    (31, "PR_TASK_PERF_EVENTS_DISABLE"),
    (32, "PR_TASK_PERF_EVENTS_ENABLE"),
    (33, "PR_MCE_KILL"),
    (34, "PR_MCE_KILL_GET"),
    (35, "PR_SET_MM"),
    (36, "PR_SET_CHILD_SUBREAPER"),
    (37, "PR_GET_CHILD_SUBREAPER"),
    (38, "PR_SET_NO_NEW_PRIVS"),
    (39, "PR_GET_NO_NEW_PRIVS"),
    (40, "PR_GET_TID_ADDRESS"),
    (41, "PR_SET_THP_DISABLE"),
    (42, "PR_GET_THP_DISABLE"),
    (43, "PR_MPX_ENABLE_MANAGEMENT"),
    (44, "PR_MPX_DISABLE_MANAGEMENT"),
    (45, "PR_SET_FP_MODE"),
    (46, "PR_GET_FP_MODE"),
    (47, "PR_CAP_AMBIENT"),
    (50, "PR_SVE_SET_VL"),
    (51, "PR_SVE_GET_VL"),
    (52, "PR_GET_SPECULATION_CTRL"),
    (53, "PR_SET_SPECULATION_CTRL"),
    (54, "PR_PAC_RESET_KEYS"),
    (55, "PR_SET_TAGGED_ADDR_CTRL"),
    (56, "PR_GET_TAGGED_ADDR_CTRL"),
    (57, "PR_SET_IO_FLUSHER"),
    (58, "PR_GET_IO_FLUSHER"),
    (59, "PR_SET_SYSCALL_USER_DISPATCH"),
    (60, "PR_PAC_SET_ENABLED_KEYS"),
    (61, "PR_PAC_GET_ENABLED_KEYS"),
    (62, "PR_SCHED_CORE"),
    (0x59616d61, "PR_SET_PTRACER"),
    (0x53564d41, "PR_SET_VMA"),
];

pub const SUID_DUMP: Xlat = &[
    (0, "SUID_DUMP_DISABLE"),
    (1, "SUID_DUMP_USER"),
    (2, "SUID_DUMP_ROOT"),
];

const SECCOMP_MODES: Xlat = &[
    (0, "SECCOMP_MODE_DISABLED"),
    (1, "SECCOMP_MODE_STRICT"),
    (2, "SECCOMP_MODE_FILTER"),
];

/// All of prctl's arguments, by option.
pub fn prctl(ctx: &mut Ctx, out: &mut String, a: &[u64; 6], failed: bool) {
    let opt = a[0] as u32 as u64;
    flags::xval(out, opt, PR_OPTIONS, "PR_???");
    let rest = |out: &mut String, from: usize| {
        for &v in &a[from..5] {
            out.push_str(", ");
            super::hex(out, v);
        }
    };
    match opt {
        // Options with no argument.
        3 | 7 | 13 | 21 | 27 | 30 | 31 | 32 | 34 | 42 | 46 | 58 => {}
        1 => {
            out.push_str(", ");
            flags::signal(out, a[1]);
        }
        2 | 37 => {
            out.push_str(", ");
            match mem::read_u32(ctx.pid, a[1]) {
                Some(v) if !failed => {
                    out.push('[');
                    if opt == 2 {
                        flags::signal(out, u64::from(v));
                    } else {
                        let _ = write!(out, "{}", v as i32);
                    }
                    out.push(']');
                }
                _ => ptr(out, a[1]),
            }
        }
        4 => {
            out.push_str(", ");
            flags::xval(out, a[1], SUID_DUMP, "SUID_DUMP_???");
        }
        8 | 14 | 29 | 36 | 41 => {
            let _ = write!(out, ", {}", a[1]);
        }
        15 => {
            out.push_str(", ");
            strings::cstring(ctx, out, a[1]);
        }
        16 => {
            out.push_str(", ");
            if failed {
                ptr(out, a[1]);
            } else {
                strings::cstring(ctx, out, a[1]);
            }
        }
        22 => {
            out.push_str(", ");
            flags::xval(out, a[1], SECCOMP_MODES, "SECCOMP_MODE_???");
            if a[1] == 2 {
                out.push_str(", ");
                ptr(out, a[2]);
            }
        }
        23 | 24 => {
            out.push_str(", ");
            cap(out, a[1]);
        }
        38 | 39 => {
            for &v in &a[1..5] {
                let _ = write!(out, ", {v}");
            }
        }
        _ => rest(out, 1),
    }
}

/// `1 (SUID_DUMP_USER)` for PR_GET_DUMPABLE.
pub fn prctl_result(out: &mut String, a: &[u64; 6], rval: i64) {
    if a[0] == 3 {
        if let Some(n) = flags::lookup(rval as u64, SUID_DUMP) {
            let _ = write!(out, " ({n})");
        }
    }
}
