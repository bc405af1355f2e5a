//! System V IPC (shm, sem, msg): keys, flags with their permission bits, commands,
//! semaphore operations and message buffers.

use super::flags::{self, Xlat};
use super::strings::{self, ptr};
use super::Ctx;
use crate::mem;
use std::fmt::Write;

/// `IPC_PRIVATE` or the key in hex.
pub fn key(out: &mut String, v: u64) {
    let v = v as u32;
    if v == 0 {
        out.push_str("IPC_PRIVATE");
    } else {
        let _ = write!(out, "{v:#x}");
    }
}

const GET_FLAGS: Xlat = &[
    (0o1000, "IPC_CREAT"),
    (0o2000, "IPC_EXCL"),
    (0o4000, "SHM_HUGETLB"),
    (0o10000, "SHM_NORESERVE"),
];

/// shmget/semget/msgget flags: `IPC_CREAT|IPC_EXCL|0600`, `000` for none.
pub fn get_flags(out: &mut String, v: u64) {
    let v = v & 0xffff_ffff;
    let bits = v & !0o777;
    if bits != 0 {
        flags::flags(out, bits, GET_FLAGS, "");
        out.push('|');
    }
    super::fs::mode(out, v & 0o777);
}

pub const SHMAT_FLAGS: Xlat = &[
    (0o10000, "SHM_RDONLY"),
    (0o20000, "SHM_RND"),
    (0o40000, "SHM_REMAP"),
    (0o100000, "SHM_EXEC"),
];

pub const SHMCTL_CMDS: Xlat = &[
    (0, "IPC_RMID"),
    (1, "IPC_SET"),
    (2, "IPC_STAT"),
    (3, "IPC_INFO"),
    (11, "SHM_LOCK"),
    (12, "SHM_UNLOCK"),
    (13, "SHM_STAT"),
    (14, "SHM_INFO"),
    (15, "SHM_STAT_ANY"),
];

pub const SEMCTL_CMDS: Xlat = &[
    (0, "IPC_RMID"),
    (1, "IPC_SET"),
    (2, "IPC_STAT"),
    (3, "IPC_INFO"),
    (11, "GETPID"),
    (12, "GETVAL"),
    (13, "GETALL"),
    (14, "GETNCNT"),
    (15, "GETZCNT"),
    (16, "SETVAL"),
    (17, "SETALL"),
    (18, "SEM_STAT"),
    (19, "SEM_INFO"),
    (20, "SEM_STAT_ANY"),
];

pub const MSGCTL_CMDS: Xlat = &[
    (0, "IPC_RMID"),
    (1, "IPC_SET"),
    (2, "IPC_STAT"),
    (3, "IPC_INFO"),
    (11, "MSG_STAT"),
    (12, "MSG_INFO"),
    (13, "MSG_STAT_ANY"),
];

/// An IPC command, with `IPC_64` (0x100) shown if the caller set it.
pub fn cmd(out: &mut String, v: u64, table: Xlat, unknown: &str) {
    let v = v as u32 as u64;
    if v & 0x100 != 0 {
        out.push_str("IPC_64|");
    }
    flags::xval(out, v & !0x100, table, unknown);
}

const SEM_FLAGS: Xlat = &[(0o4000, "IPC_NOWAIT"), (0x1000, "SEM_UNDO")];

/// `[{sem_num=0, sem_op=1, sem_flg=IPC_NOWAIT}, ...]`.
pub fn sembufs(ctx: &mut Ctx, out: &mut String, addr: u64, n: u64) {
    let shown = n.min(ctx.max_str as u64).min(4096) as usize;
    let mut b = vec![0u8; shown * 6];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    out.push('[');
    for (i, c) in b.chunks_exact(6).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let num = u16::from_ne_bytes([c[0], c[1]]);
        let op = i16::from_ne_bytes([c[2], c[3]]);
        let fl = u16::from_ne_bytes([c[4], c[5]]);
        let _ = write!(out, "{{sem_num={num}, sem_op={op}, sem_flg=");
        flags::flags(out, u64::from(fl), SEM_FLAGS, "0");
        out.push('}');
    }
    if (shown as u64) < n {
        out.push_str(", ...");
    }
    out.push(']');
}

pub const MSG_FLAGS: Xlat = &[
    (0o10000, "MSG_NOERROR"),
    (0o20000, "MSG_EXCEPT"),
    (0o40000, "MSG_COPY"),
    (0o4000, "IPC_NOWAIT"),
];

/// `{mtype=1, mtext="hello\0"}`: the type, then `size` bytes of text.
pub fn msgbuf(ctx: &mut Ctx, out: &mut String, addr: u64, size: u64) {
    let Some(mtype) = mem::read_u64(ctx.pid, addr) else {
        ptr(out, addr);
        return;
    };
    let _ = write!(out, "{{mtype={}, mtext=", mtype as i64);
    strings::buffer(ctx, out, addr + 8, size);
    out.push('}');
}
