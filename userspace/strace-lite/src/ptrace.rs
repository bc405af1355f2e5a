//! Thin wrappers over the ptrace requests the tracer uses.
//!
//! Each wrapper is one `libc::ptrace` call; the tracer handles `ESRCH` (the tracee
//! died between two calls) as the normal race it is, so these return `io::Result`.

use std::io;

pub const OPTIONS: libc::c_int = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_TRACEEXEC;
pub const FOLLOW: libc::c_int =
    libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK | libc::PTRACE_O_TRACECLONE;

pub const SYSCALL_INFO_ENTRY: u8 = 1;
pub const SYSCALL_INFO_EXIT: u8 = 2;
pub const SYSCALL_INFO_SECCOMP: u8 = 3;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn request(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: every caller passes either integers or a pointer to a live, correctly
    // sized buffer of its own as `data`, as the request requires.
    check(unsafe { libc::ptrace(req, pid, addr, data) })
}

pub fn seize(pid: i32, options: libc::c_int) -> io::Result<()> {
    request(libc::PTRACE_SEIZE, pid, 0, options as usize).map(drop)
}

pub fn interrupt(pid: i32) -> io::Result<()> {
    request(libc::PTRACE_INTERRUPT, pid, 0, 0).map(drop)
}

pub fn syscall(pid: i32, sig: i32) -> io::Result<()> {
    request(libc::PTRACE_SYSCALL, pid, 0, sig as usize).map(drop)
}

pub fn cont(pid: i32, sig: i32) -> io::Result<()> {
    request(libc::PTRACE_CONT, pid, 0, sig as usize).map(drop)
}

pub fn listen(pid: i32) -> io::Result<()> {
    request(libc::PTRACE_LISTEN, pid, 0, 0).map(drop)
}

pub fn detach(pid: i32, sig: i32) -> io::Result<()> {
    request(libc::PTRACE_DETACH, pid, 0, sig as usize).map(drop)
}

pub fn event_msg(pid: i32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    request(
        libc::PTRACE_GETEVENTMSG,
        pid,
        0,
        &mut msg as *mut libc::c_ulong as usize,
    )?;
    Ok(msg as u64)
}

pub fn siginfo(pid: i32) -> io::Result<libc::siginfo_t> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    request(
        libc::PTRACE_GETSIGINFO,
        pid,
        0,
        &mut si as *mut libc::siginfo_t as usize,
    )?;
    Ok(si)
}

/// What `PTRACE_GET_SYSCALL_INFO` says about the current stop.
#[derive(Clone, Copy, Debug)]
pub enum SyscallInfo {
    Entry { nr: u64, args: [u64; 6] },
    Exit { rval: i64 },
    Other,
}

pub fn syscall_info(pid: i32) -> io::Result<SyscallInfo> {
    // SAFETY: plain data; all-zero is valid.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::ptrace_syscall_info>();
    request(
        libc::PTRACE_GET_SYSCALL_INFO,
        pid,
        size,
        &mut info as *mut _ as usize,
    )?;
    // SAFETY: `op` says which union member the kernel filled.
    Ok(unsafe {
        match info.op {
            SYSCALL_INFO_ENTRY => SyscallInfo::Entry {
                nr: info.u.entry.nr,
                args: info.u.entry.args,
            },
            SYSCALL_INFO_SECCOMP => SyscallInfo::Entry {
                nr: info.u.seccomp.nr,
                args: info.u.seccomp.args,
            },
            SYSCALL_INFO_EXIT => SyscallInfo::Exit {
                rval: info.u.exit.sval,
            },
            _ => SyscallInfo::Other,
        }
    })
}

/// The syscall number of a tracee stopped at syscall exit (x86_64 `orig_rax`), for
/// an exit whose entry we never saw (attached mid-call).
pub fn orig_syscall_nr(pid: i32) -> io::Result<u64> {
    peek_user(pid, 15 * 8)
}

/// The stack pointer (x86_64 `rsp`) of a stopped tracee: rt_sigreturn's signal frame.
pub fn stack_pointer(pid: i32) -> io::Result<u64> {
    peek_user(pid, 19 * 8)
}

/// One word of the tracee's `struct user_regs_struct`, at byte offset `off`.
fn peek_user(pid: i32, off: usize) -> io::Result<u64> {
    // SAFETY: PEEKUSER returns the word; -1 is ambiguous so errno is cleared first.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: integer arguments only.
    let v = unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, pid, off, 0) };
    if v == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(0) {
            return Err(e);
        }
    }
    Ok(v as u64)
}

/// x86_64 `struct user_regs_struct` offsets of the registers strace-lite rewrites.
pub const RAX: usize = 10 * 8;
pub const ORIG_RAX: usize = 15 * 8;
const RIP: usize = 16 * 8;

/// The instruction pointer of a stopped tracee (`-i`).
pub fn instruction_pointer(pid: i32) -> io::Result<u64> {
    peek_user(pid, RIP)
}

/// Writes one word of the tracee's registers: the syscall number at entry (fault
/// injection rewrites it to -1 so the kernel skips the call), the result at exit.
pub fn poke_user(pid: i32, off: usize, value: u64) -> io::Result<()> {
    request(libc::PTRACE_POKEUSER, pid, off, value as usize).map(drop)
}
