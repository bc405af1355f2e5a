//! Scheduling, waiting and signal stacks: policies, `struct sched_param`, CPU sets,
//! `siginfo_t` as waitid and rt_sigtimedwait return it, `stack_t`.

use super::flags::{self, Xlat};
use super::strings::{ptr, words};
use super::Ctx;
use crate::mem;
use std::fmt::Write;

pub const POLICIES: Xlat = &[
    (0, "SCHED_OTHER"),
    (1, "SCHED_FIFO"),
    (2, "SCHED_RR"),
    (3, "SCHED_BATCH"),
    (4, "SCHED_ISO"),
    (5, "SCHED_IDLE"),
    (6, "SCHED_DEADLINE"),
];

/// A policy, with `SCHED_RESET_ON_FORK` as a flag beside it.
pub fn policy(out: &mut String, v: u64) {
    let v = v as u32 as u64;
    flags::xval(out, v & !0x4000_0000, POLICIES, "SCHED_???");
    if v & 0x4000_0000 != 0 {
        out.push_str("|SCHED_RESET_ON_FORK");
    }
}

/// `struct sched_param`: `[0]` (its one field, the priority).
pub fn param(ctx: &mut Ctx, out: &mut String, addr: u64) {
    match mem::read_u32(ctx.pid, addr) {
        Some(p) => {
            let _ = write!(out, "[{}]", p as i32);
        }
        None => ptr(out, addr),
    }
}

/// A CPU set of `len` bytes: `[0 2 3]`.
pub fn cpu_set(ctx: &mut Ctx, out: &mut String, addr: u64, len: u64) {
    let len = (len as usize).min(8192);
    let mut b = vec![0u8; len];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < len {
        ptr(out, addr);
        return;
    }
    out.push('[');
    let mut first = true;
    for (i, byte) in b.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                if !first {
                    out.push(' ');
                }
                let _ = write!(out, "{}", i * 8 + bit);
                first = false;
            }
        }
    }
    out.push(']');
}

pub const ID_TYPES: Xlat = &[(0, "P_ALL"), (1, "P_PID"), (2, "P_PGID"), (3, "P_PIDFD")];

/// A `siginfo_t` in the tracee's memory (waitid, rt_sigtimedwait): read as bytes and
/// printed like the tracer's own `--- SIG... {...} ---` lines. An empty siginfo
/// (waitid with WNOHANG and nothing to report) prints `{}`.
pub fn siginfo_at(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 128];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let fields = super::process::SigFields::from_bytes(&b);
    if fields.signo == 0 {
        out.push_str("{}");
        return;
    }
    super::process::siginfo_fields(out, &fields);
}

const SS_FLAGS: Xlat = &[
    (1, "SS_ONSTACK"),
    (2, "SS_DISABLE"),
    (0x8000_0000, "SS_AUTODISARM"),
];

/// `stack_t`: `{ss_sp=0x..., ss_flags=0, ss_size=65536}`.
pub fn stack(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 24];
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    if mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[0..8]);
    let sp = u64::from_ne_bytes(x);
    let fl = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    x.copy_from_slice(&b[16..24]);
    let size = u64::from_ne_bytes(x);
    out.push_str("{ss_sp=");
    ptr(out, sp);
    out.push_str(", ss_flags=");
    flags::flags(out, u64::from(fl), SS_FLAGS, "0");
    let _ = write!(out, ", ss_size={size}}}");
}

pub const RUSAGE_WHO: Xlat = &[
    (0, "RUSAGE_SELF"),
    (-1i64 as u64, "RUSAGE_CHILDREN"),
    (1, "RUSAGE_THREAD"),
];

/// `struct rusage`, abbreviated: the user and system times, then `...`.
pub fn rusage(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let Some(w) = words::<4>(ctx, out, addr) else {
        return;
    };
    let _ = write!(
        out,
        "{{ru_utime={{tv_sec={}, tv_usec={}}}, ru_stime={{tv_sec={}, tv_usec={}}}, ...}}",
        w[0], w[1], w[2], w[3]
    );
}

/// `struct tms`: `{tms_utime=1, tms_stime=0, tms_cutime=0, tms_cstime=0}`.
pub fn tms(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let Some(w) = words::<4>(ctx, out, addr) else {
        return;
    };
    let _ = write!(
        out,
        "{{tms_utime={}, tms_stime={}, tms_cutime={}, tms_cstime={}}}",
        w[0], w[1], w[2], w[3]
    );
}

const SCHED_ATTR_FLAGS: Xlat = &[
    (0x1, "SCHED_FLAG_RESET_ON_FORK"),
    (0x2, "SCHED_FLAG_RECLAIM"),
    (0x4, "SCHED_FLAG_DL_OVERRUN"),
    (0x8, "SCHED_FLAG_KEEP_POLICY"),
    (0x10, "SCHED_FLAG_KEEP_PARAMS"),
    (0x20, "SCHED_FLAG_UTIL_CLAMP_MIN"),
    (0x40, "SCHED_FLAG_UTIL_CLAMP_MAX"),
];

/// `struct sched_attr`: every field its `size` covers (48 bytes, or 56 with the
/// utilisation clamps).
pub fn sched_attr(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 56];
    let Some(size) = mem::read_u32(ctx.pid, addr) else {
        ptr(out, addr);
        return;
    };
    let want = if size >= 56 { 56 } else { 48 };
    if mem::read(ctx.pid, addr, &mut b[..want]) < want {
        ptr(out, addr);
        return;
    }
    let u = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(x)
    };
    let _ = write!(out, "{{size={size}, sched_policy=");
    policy(out, u64::from(u(4)));
    out.push_str(", sched_flags=");
    flags::flags(out, w(8), SCHED_ATTR_FLAGS, "0");
    let _ = write!(
        out,
        ", sched_nice={}, sched_priority={}, sched_runtime={}, sched_deadline={}, sched_period={}",
        u(16) as i32,
        u(20),
        w(24),
        w(32),
        w(40)
    );
    if want == 56 {
        let _ = write!(out, ", sched_util_min={}, sched_util_max={}", u(48), u(52));
    }
    out.push('}');
}

pub const MEMBARRIER_CMDS: Xlat = &[
    (0, "MEMBARRIER_CMD_QUERY"),
    (1, "MEMBARRIER_CMD_GLOBAL"),
    (2, "MEMBARRIER_CMD_GLOBAL_EXPEDITED"),
    (4, "MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED"),
    (8, "MEMBARRIER_CMD_PRIVATE_EXPEDITED"),
    (16, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED"),
    (32, "MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE"),
    (64, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE"),
    (128, "MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ"),
    (256, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ"),
];
