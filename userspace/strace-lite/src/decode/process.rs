//! Processes and signals: wait statuses, signal sets, `siginfo_t`, clone flags, errno.
//!
//! These are also used outside syscall lines: the tracer prints `--- SIGCHLD {...} ---`
//! and `+++ killed by SIGKILL +++` with the same names.

use super::flags::{self, signal, CLONE_FLAGS};
use super::strings::ptr;
use super::Ctx;
use crate::mem;
use std::fmt::Write;

/// `[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]`, as strace prints a wait status.
pub fn wait_status(out: &mut String, s: i32) {
    out.push_str("[{");
    if libc::WIFEXITED(s) {
        let _ = write!(
            out,
            "WIFEXITED(s) && WEXITSTATUS(s) == {}",
            libc::WEXITSTATUS(s)
        );
    } else if libc::WIFSIGNALED(s) {
        out.push_str("WIFSIGNALED(s) && WTERMSIG(s) == ");
        signal(out, libc::WTERMSIG(s) as u64);
        if libc::WCOREDUMP(s) {
            out.push_str(" && WCOREDUMP(s)");
        }
    } else if libc::WIFSTOPPED(s) {
        out.push_str("WIFSTOPPED(s) && WSTOPSIG(s) == ");
        signal(out, libc::WSTOPSIG(s) as u64);
    } else if libc::WIFCONTINUED(s) {
        out.push_str("WIFCONTINUED(s)");
    } else {
        let _ = write!(out, "{s:#x}");
    }
    out.push_str("}]");
}

fn short_sig(out: &mut String, sig: u32) {
    match sig {
        1..=31 => out.push_str(&flags::SIGNALS[sig as usize][3..]),
        32 => out.push_str("RTMIN"),
        _ => {
            let _ = write!(out, "RT_{}", sig - 32);
        }
    }
}

/// A kernel signal set (64 bits): `[INT TERM]`, or `~[...]` when most bits are set.
pub fn sigset(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let Some(mut set) = mem::read_u64(ctx.pid, addr) else {
        ptr(out, addr);
        return;
    };
    if set.count_ones() > 32 {
        out.push('~');
        set = !set;
    }
    out.push('[');
    let mut first = true;
    for sig in 1..=64u32 {
        if set & (1u64 << (sig - 1)) != 0 {
            if !first {
                out.push(' ');
            }
            short_sig(out, sig);
            first = false;
        }
    }
    out.push(']');
}

pub const SA_FLAGS: flags::Xlat = &[
    (0x04000000, "SA_RESTORER"),
    (0x08000000, "SA_ONSTACK"),
    (0x10000000, "SA_RESTART"),
    (0x20000000, "SA_INTERRUPT"),
    (0x40000000, "SA_NODEFER"),
    (0x80000000, "SA_RESETHAND"),
    (0x00000004, "SA_SIGINFO"),
    (0x00000001, "SA_NOCLDSTOP"),
    (0x00000002, "SA_NOCLDWAIT"),
];

/// The kernel's `struct sigaction` (handler, flags, restorer, mask).
pub fn sigaction(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let mut b = [0u8; 32];
    if mem::read(ctx.pid, addr, &mut b) < 32 {
        ptr(out, addr);
        return;
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    let (handler, sa_flags, restorer) = (word(0), word(1), word(2));
    out.push_str("{sa_handler=");
    match handler {
        0 => out.push_str("SIG_DFL"),
        1 => out.push_str("SIG_IGN"),
        h => {
            let _ = write!(out, "{h:#x}");
        }
    }
    out.push_str(", sa_mask=");
    sigset(ctx, out, addr + 24);
    out.push_str(", sa_flags=");
    flags::flags(out, sa_flags, SA_FLAGS, "0");
    if sa_flags & 0x04000000 != 0 {
        let _ = write!(out, ", sa_restorer={restorer:#x}");
    }
    out.push('}');
}

/// clone(2)'s arguments on x86_64: flags, stack, parent_tid, child_tid, tls.
pub fn clone_args(out: &mut String, a: &[u64; 6]) {
    let fl = a[0];
    out.push_str("child_stack=");
    ptr(out, a[1]);
    out.push_str(", flags=");
    clone_flags(out, fl);
    if fl & 0x00100000 != 0 {
        out.push_str(", parent_tid=");
        ptr(out, a[2]);
    }
    if fl & 0x00080000 != 0 {
        let _ = write!(out, ", tls={:#x}", a[4]);
    }
    if fl & (0x01000000 | 0x00200000) != 0 {
        out.push_str(", child_tidptr=");
        ptr(out, a[3]);
    }
}

/// Clone flags with the exit signal in the low byte, as `CLONE_VM|...|SIGCHLD`.
pub fn clone_flags(out: &mut String, v: u64) {
    let sig = v & 0xff;
    let rest = v & !0xff;
    flags::flags(out, rest, CLONE_FLAGS, "");
    if sig != 0 {
        if rest != 0 {
            out.push('|');
        }
        signal(out, sig);
    } else if rest == 0 {
        out.push('0');
    }
}

/// clone3's `struct clone_args` and size, printed at exit as strace does:
/// `{flags=..., child_tid=..., exit_signal=SIGCHLD, stack=..., stack_size=..., tls=...}
/// => {parent_tid=[1234]}, 88`; the part after `=>` is what the kernel wrote back.
pub fn clone3_args(ctx: &mut Ctx, out: &mut String, a: &[u64; 6], ok: bool) {
    let addr = a[0];
    let mut b = [0u8; 88];
    let got = mem::read(ctx.pid, addr, &mut b);
    if addr == 0 || got < 64 {
        ptr(out, addr);
        let _ = write!(out, ", {}", a[1]);
        return;
    }
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(x)
    };
    let fl = w(0);
    out.push_str("{flags=");
    flags::flags(out, fl, CLONE_FLAGS, "0");
    if fl & 0x1000 != 0 {
        out.push_str(", pidfd=");
        ptr(out, w(1));
    }
    if fl & (0x0100_0000 | 0x0020_0000) != 0 {
        out.push_str(", child_tid=");
        ptr(out, w(2));
    }
    if fl & 0x0010_0000 != 0 {
        out.push_str(", parent_tid=");
        ptr(out, w(3));
    }
    out.push_str(", exit_signal=");
    signal(out, w(4));
    out.push_str(", stack=");
    ptr(out, w(5));
    out.push_str(", stack_size=");
    super::hex(out, w(6));
    if fl & 0x0008_0000 != 0 {
        out.push_str(", tls=");
        ptr(out, w(7));
    }
    if got >= 80 && (w(8) != 0 || w(9) != 0) {
        out.push_str(", set_tid=");
        ptr(out, w(8));
        let _ = write!(out, ", set_tid_size={}", w(9));
    }
    out.push('}');
    if ok && fl & (0x1000 | 0x0010_0000) != 0 {
        out.push_str(" => {");
        if fl & 0x1000 != 0 {
            match mem::read_u32(ctx.pid, w(1)) {
                Some(fd) => {
                    let _ = write!(out, "pidfd=[{}]", fd as i32);
                }
                None => ptr(out, w(1)),
            }
            if fl & 0x0010_0000 != 0 {
                out.push_str(", ");
            }
        }
        if fl & 0x0010_0000 != 0 {
            match mem::read_u32(ctx.pid, w(3)) {
                Some(tid) => {
                    let _ = write!(out, "parent_tid=[{}]", tid as i32);
                }
                None => ptr(out, w(3)),
            }
        }
        out.push('}');
    }
    let _ = write!(out, ", {}", a[1]);
}

const SI_CODES: flags::Xlat = &[
    (0, "SI_USER"),
    (0x80, "SI_KERNEL"),
    (-1i64 as u64, "SI_QUEUE"),
    (-2i64 as u64, "SI_TIMER"),
    (-3i64 as u64, "SI_MESGQ"),
    (-4i64 as u64, "SI_ASYNCIO"),
    (-5i64 as u64, "SI_SIGIO"),
    (-6i64 as u64, "SI_TKILL"),
];
const CLD_CODES: flags::Xlat = &[
    (1, "CLD_EXITED"),
    (2, "CLD_KILLED"),
    (3, "CLD_DUMPED"),
    (4, "CLD_TRAPPED"),
    (5, "CLD_STOPPED"),
    (6, "CLD_CONTINUED"),
];
const SEGV_CODES: flags::Xlat = &[
    (1, "SEGV_MAPERR"),
    (2, "SEGV_ACCERR"),
    (3, "SEGV_BNDERR"),
    (4, "SEGV_PKUERR"),
];
const BUS_CODES: flags::Xlat = &[(1, "BUS_ADRALN"), (2, "BUS_ADRERR"), (3, "BUS_OBJERR")];
const ILL_CODES: flags::Xlat = &[
    (1, "ILL_ILLOPC"),
    (2, "ILL_ILLOPN"),
    (3, "ILL_ILLADR"),
    (4, "ILL_ILLTRP"),
    (5, "ILL_PRVOPC"),
];
const FPE_CODES: flags::Xlat = &[
    (1, "FPE_INTDIV"),
    (2, "FPE_INTOVF"),
    (3, "FPE_FLTDIV"),
    (4, "FPE_FLTOVF"),
];

/// The fields of a `siginfo_t` that strace prints; which are meaningful depends on
/// the signal and code.
pub struct SigFields {
    pub signo: i32,
    pub code: i32,
    pub pid: i32,
    pub uid: u32,
    pub status: i32,
    pub utime: i64,
    pub stime: i64,
    pub addr: u64,
    /// The `sigval` of a queued or timer signal (offset 24).
    pub value: u64,
}

impl SigFields {
    /// Reads the fields from a `siginfo_t`'s 128 bytes (x86_64 layout).
    pub fn from_bytes(b: &[u8; 128]) -> SigFields {
        let i32_at = |i: usize| i32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let i64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            i64::from_ne_bytes(x)
        };
        SigFields {
            signo: i32_at(0),
            code: i32_at(8),
            pid: i32_at(16),
            uid: i32_at(20) as u32,
            status: i32_at(24),
            utime: i64_at(32),
            stime: i64_at(40),
            addr: i64_at(16) as u64,
            value: i64_at(24) as u64,
        }
    }
}

/// `{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=12, ...}` for a stopped signal.
pub fn siginfo(out: &mut String, si: &libc::siginfo_t) {
    let mut b = [0u8; 128];
    let n = std::mem::size_of::<libc::siginfo_t>().min(b.len());
    // SAFETY: siginfo_t is plain integer data that PTRACE_GETSIGINFO filled whole;
    // `n` bytes are in bounds of both the source and `b`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (si as *const libc::siginfo_t).cast::<u8>(),
            b.as_mut_ptr(),
            n,
        )
    };
    siginfo_fields(out, &SigFields::from_bytes(&b));
}

/// Prints decoded siginfo fields in strace's notation.
pub fn siginfo_fields(out: &mut String, f: &SigFields) {
    let (signo, code) = (f.signo, f.code);
    out.push_str("{si_signo=");
    signal(out, signo as u64);
    out.push_str(", si_code=");
    let kernel_code = code > 0 && code != 0x80;
    let table = match signo {
        libc::SIGCHLD if kernel_code => CLD_CODES,
        libc::SIGSEGV if kernel_code => SEGV_CODES,
        libc::SIGBUS if kernel_code => BUS_CODES,
        libc::SIGILL if kernel_code => ILL_CODES,
        libc::SIGFPE if kernel_code => FPE_CODES,
        _ => SI_CODES,
    };
    flags::constant(out, code as i64 as u64, table, false);
    if code == -2 {
        // SI_TIMER: the timer's id and overrun where a sender would be.
        let _ = write!(
            out,
            ", si_timerid={}, si_overrun={}, si_int={}, si_ptr=",
            f.pid, f.uid as i32, f.value as i32
        );
        ptr(out, f.value);
    } else if code <= 0 || code == 0x80 && signo != libc::SIGSEGV {
        if code != 0x80 {
            let _ = write!(out, ", si_pid={}, si_uid={}", f.pid, f.uid);
        }
        if code == -1 || code == -3 {
            // SI_QUEUE, SI_MESGQ: the value sent with the signal.
            let _ = write!(out, ", si_int={}, si_ptr=", f.value as i32);
            ptr(out, f.value);
        }
    } else if signo == libc::SIGCHLD {
        let _ = write!(out, ", si_pid={}, si_uid={}, si_status=", f.pid, f.uid);
        if code == 1 {
            let _ = write!(out, "{}", f.status);
        } else {
            signal(out, f.status as u64);
        }
        // Clock ticks, with the seconds they stand for when not zero (USER_HZ is 100).
        for (name, t) in [("si_utime", f.utime), ("si_stime", f.stime)] {
            let _ = write!(out, ", {name}={t}");
            if t != 0 {
                let _ = write!(out, " /* {}.{:02} s */", t / 100, t % 100);
            }
        }
    } else if matches!(
        signo,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
    ) {
        out.push_str(", si_addr=");
        ptr(out, f.addr);
    }
    out.push('}');
}

/// `ENOENT (No such file or directory)`, as strace prints a failure.
pub fn errno(out: &mut String, e: i64) {
    let name = errno_name(e as i32);
    match (name, e) {
        (Some(n), _) => {
            out.push_str(n);
            out.push_str(" (");
            out.push_str(&strerror(e as i32));
            out.push(')');
        }
        (None, 512) => out.push_str("ERESTARTSYS (To be restarted if SA_RESTART is set)"),
        (None, 513) => out.push_str("ERESTARTNOINTR (To be restarted)"),
        (None, 514) => out.push_str("ERESTARTNOHAND (To be restarted if no handler)"),
        (None, 515) => out.push_str("ENOIOCTLCMD (No ioctl command)"),
        (None, 516) => out.push_str("ERESTART_RESTARTBLOCK (Interrupted by signal)"),
        (None, 517) => out.push_str("EPROBE_DEFER (Requested probe deferral)"),
        (None, _) => {
            let _ = write!(out, "errno {e} (Unknown error {e})");
        }
    }
}

pub fn strerror(e: i32) -> String {
    let mut buf = [0u8; 128];
    // SAFETY: the XSI/GNU strerror_r in libc writes at most `buf.len()` bytes into
    // `buf` (NUL-terminated) for the `__xpg_strerror_r` variant that libc exports.
    let rc = unsafe { libc::strerror_r(e, buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return format!("Unknown error {e}");
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub fn errno_name(e: i32) -> Option<&'static str> {
    ERRNO_NAMES.iter().find(|&&(n, _)| n == e).map(|&(_, s)| s)
}

const ERRNO_NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (15, "ENOTBLK"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (27, "EFBIG"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (32, "EPIPE"),
    (33, "EDOM"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (37, "ENOLCK"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (40, "ELOOP"),
    (42, "ENOMSG"),
    (43, "EIDRM"),
    (61, "ENODATA"),
    (62, "ETIME"),
    (71, "EPROTO"),
    (74, "EBADMSG"),
    (75, "EOVERFLOW"),
    (84, "EILSEQ"),
    (88, "ENOTSOCK"),
    (89, "EDESTADDRREQ"),
    (90, "EMSGSIZE"),
    (91, "EPROTOTYPE"),
    (92, "ENOPROTOOPT"),
    (93, "EPROTONOSUPPORT"),
    (94, "ESOCKTNOSUPPORT"),
    (95, "EOPNOTSUPP"),
    (96, "EPFNOSUPPORT"),
    (97, "EAFNOSUPPORT"),
    (98, "EADDRINUSE"),
    (99, "EADDRNOTAVAIL"),
    (100, "ENETDOWN"),
    (101, "ENETUNREACH"),
    (102, "ENETRESET"),
    (103, "ECONNABORTED"),
    (104, "ECONNRESET"),
    (105, "ENOBUFS"),
    (106, "EISCONN"),
    (107, "ENOTCONN"),
    (108, "ESHUTDOWN"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (112, "EHOSTDOWN"),
    (113, "EHOSTUNREACH"),
    (114, "EALREADY"),
    (115, "EINPROGRESS"),
    (116, "ESTALE"),
    (122, "EDQUOT"),
    (125, "ECANCELED"),
    (130, "EOWNERDEAD"),
    (131, "ENOTRECOVERABLE"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_and_errnos() {
        let ws = |s: i32| {
            let mut o = String::new();
            wait_status(&mut o, s);
            o
        };
        assert_eq!(ws(3 << 8), "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]");
        assert_eq!(ws(9), "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]");
        assert_eq!(
            ws(11 | 0x80),
            "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGSEGV && WCOREDUMP(s)}]"
        );
        let mut o = String::new();
        errno(&mut o, 2);
        assert_eq!(o, "ENOENT (No such file or directory)");
        o.clear();
        errno(&mut o, 512);
        assert_eq!(o, "ERESTARTSYS (To be restarted if SA_RESTART is set)");
        o.clear();
        clone_flags(&mut o, 0x01200000 | 17);
        assert_eq!(o, "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD");
    }

    #[test]
    fn sigsets_from_own_memory() {
        let mut ctx = Ctx {
            pid: std::process::id() as i32,
            max_str: 32,
            scratch: Vec::new(),
            verbose: false,
            fd_paths: 0,
            xlat: Default::default(),
            fd_cache: None,
        };
        let show = |ctx: &mut Ctx, set: u64| {
            let mut o = String::new();
            sigset(ctx, &mut o, &set as *const u64 as u64);
            o
        };
        assert_eq!(show(&mut ctx, 0), "[]");
        assert_eq!(show(&mut ctx, 1 << 16), "[CHLD]");
        assert_eq!(show(&mut ctx, !((1 << 8) | (1 << 18))), "~[KILL STOP]");
    }
}
