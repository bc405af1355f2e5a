//! The seccomp-bpf program that makes the tracee stop only at traced syscalls.
//!
//! Untraced calls return `SECCOMP_RET_ALLOW` inside the kernel and never reach the
//! tracer; traced ones return `SECCOMP_RET_TRACE`, a `PTRACE_EVENT_SECCOMP` stop.
//! Consecutive numbers become one range test, and every test jumps only a couple of
//! instructions forward, so the 8-bit jump offsets of classic BPF never overflow.

use crate::filter::TraceSet;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const X32_BIT: u32 = 0x4000_0000;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JGT_K: u16 = 0x25;
const RET_K: u16 = 0x06;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Builds the filter program for `set`.
pub fn program(set: &TraceSet) -> Vec<libc::sock_filter> {
    let allow = libc::SECCOMP_RET_ALLOW;
    let trace = libc::SECCOMP_RET_TRACE;
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut p = vec![
        stmt(LD_W_ABS, 4),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, allow),
        stmt(LD_W_ABS, 0),
        // x32 calls are not decoded: let them run.
        jump(JGE_K, X32_BIT, 0, 1),
        stmt(RET_K, allow),
    ];
    let nrs: Vec<u64> = set.numbers().collect();
    let mut i = 0;
    while i < nrs.len() {
        let start = nrs[i];
        let mut end = start;
        while i + 1 < nrs.len() && nrs[i + 1] == end + 1 {
            i += 1;
            end += 1;
        }
        if start == end {
            p.push(jump(JEQ_K, start as u32, 0, 1));
        } else {
            p.push(jump(JGE_K, start as u32, 0, 2));
            p.push(jump(JGT_K, end as u32, 1, 0));
        }
        p.push(stmt(RET_K, trace));
        i += 1;
    }
    p.push(stmt(RET_K, allow));
    p
}

/// Installs `prog` in the calling process. Runs in the forked child before execve,
/// so it uses only raw syscalls and reports failure as an errno.
pub fn install(prog: &[libc::sock_filter]) -> Result<(), i32> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments only; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(errno());
    }
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(errno());
    }
    Ok(())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;

    #[test]
    fn ranges_compress() {
        let t = Table::new();
        let set = TraceSet::parse("trace=read,write,open,openat", &t).unwrap();
        let p = program(&set);
        // header (6) + range 0..=2 (3) + single 257 (2) + final allow (1)
        assert_eq!(p.len(), 12);
        let big = TraceSet::parse("trace=%desc,%file", &t).unwrap();
        assert!(program(&big).len() < 4096);
    }
}
