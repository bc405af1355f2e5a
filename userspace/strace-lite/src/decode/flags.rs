//! Flag and constant names as data: one table per argument kind, printed by two
//! functions (`flags` for OR-ed bits, `constant` for an enumeration).
//!
//! Tables are in the order strace prints them; composite values (`O_SYNC` is
//! `__O_SYNC|O_DSYNC`) come before their parts so they match first.

use std::fmt::Write;

pub type Xlat = &'static [(u64, &'static str)];

/// Appends `v` as `A|B|0x40`; `zero` is printed when `v` is 0 (strace's `0` or a name).
pub fn flags(out: &mut String, v: u64, table: Xlat, zero: &str) {
    if v == 0 {
        out.push_str(zero);
        return;
    }
    let mut rest = v;
    let mut first = true;
    for &(bits, name) in table {
        if bits != 0 && rest & bits == bits {
            if !first {
                out.push('|');
            }
            out.push_str(name);
            rest &= !bits;
            first = false;
        }
    }
    if rest != 0 {
        if !first {
            out.push('|');
        }
        let _ = write!(out, "{rest:#x}");
    }
}

/// Appends the name of `v` in `table`, or `v` itself in `fallback` form.
pub fn constant(out: &mut String, v: u64, table: Xlat, hex_fallback: bool) {
    match lookup(v, table) {
        Some(name) => out.push_str(name),
        None if hex_fallback => {
            let _ = write!(out, "{v:#x}");
        }
        None => {
            let _ = write!(out, "{}", v as i64 as i32);
        }
    }
}

pub fn lookup(v: u64, table: Xlat) -> Option<&'static str> {
    table.iter().find(|&&(k, _)| k == v).map(|&(_, n)| n)
}

pub const OPEN_ACCESS: Xlat = &[
    (0, "O_RDONLY"),
    (1, "O_WRONLY"),
    (2, "O_RDWR"),
    (3, "O_ACCMODE"),
];

pub const OPEN_FLAGS: Xlat = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o4010000, "O_SYNC"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o20200000, "O_TMPFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o20000, "FASYNC"),
    (0o10000000, "O_PATH"),
];

/// `O_RDONLY|O_CLOEXEC`: the access mode is a 2-bit field, not a flag.
pub fn open_flags(out: &mut String, v: u64) {
    let acc = v & 3;
    let rest = v & !3;
    out.push_str(lookup(acc, OPEN_ACCESS).unwrap_or("O_ACCMODE"));
    if rest != 0 {
        out.push('|');
        flags(out, rest, OPEN_FLAGS, "");
    }
}

pub const ACCESS_MODES: Xlat = &[(4, "R_OK"), (2, "W_OK"), (1, "X_OK")];

pub const AT_FLAGS: Xlat = &[
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_REMOVEDIR"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x800, "AT_NO_AUTOMOUNT"),
    (0x1000, "AT_EMPTY_PATH"),
    (0x2000, "AT_STATX_FORCE_SYNC"),
    (0x4000, "AT_STATX_DONT_SYNC"),
    (0x8000, "AT_RECURSIVE"),
];

pub const PROT: Xlat = &[
    (1, "PROT_READ"),
    (2, "PROT_WRITE"),
    (4, "PROT_EXEC"),
    (0x10, "PROT_SEM"),
    (0x01000000, "PROT_GROWSDOWN"),
    (0x02000000, "PROT_GROWSUP"),
];

pub const MAP_TYPE: Xlat = &[
    (1, "MAP_SHARED"),
    (2, "MAP_PRIVATE"),
    (3, "MAP_SHARED_VALIDATE"),
];

pub const MAP_FLAGS: Xlat = &[
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x40, "MAP_32BIT"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
    (0x4000000, "MAP_UNINITIALIZED"),
];

pub fn mmap_flags(out: &mut String, v: u64) {
    let ty = v & 0xf;
    let rest = v & !0xf;
    match lookup(ty, MAP_TYPE) {
        Some(n) => out.push_str(n),
        None => {
            let _ = write!(out, "{ty:#x}");
        }
    }
    if rest != 0 {
        out.push('|');
        flags(out, rest, MAP_FLAGS, "");
    }
}

pub const WHENCE: Xlat = &[
    (0, "SEEK_SET"),
    (1, "SEEK_CUR"),
    (2, "SEEK_END"),
    (3, "SEEK_DATA"),
    (4, "SEEK_HOLE"),
];

pub const AF: Xlat = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (10, "AF_INET6"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (38, "AF_ALG"),
    (40, "AF_VSOCK"),
];

pub const SOCK_TYPE: Xlat = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (6, "SOCK_DCCP"),
    (10, "SOCK_PACKET"),
];

pub const SOCK_FLAGS: Xlat = &[(0o2000000, "SOCK_CLOEXEC"), (0o4000, "SOCK_NONBLOCK")];

pub fn sock_type(out: &mut String, v: u64) {
    constant(out, v & 0xf, SOCK_TYPE, false);
    let rest = v & !0xf;
    if rest != 0 {
        out.push('|');
        flags(out, rest, SOCK_FLAGS, "");
    }
}

pub const IPPROTO: Xlat = &[
    (0, "IPPROTO_IP"),
    (1, "IPPROTO_ICMP"),
    (6, "IPPROTO_TCP"),
    (17, "IPPROTO_UDP"),
    (41, "IPPROTO_IPV6"),
    (58, "IPPROTO_ICMPV6"),
    (132, "IPPROTO_SCTP"),
    (255, "IPPROTO_RAW"),
];

pub const MSG_FLAGS: Xlat = &[
    (0x1, "MSG_OOB"),
    (0x2, "MSG_PEEK"),
    (0x4, "MSG_DONTROUTE"),
    (0x8, "MSG_CTRUNC"),
    (0x20, "MSG_TRUNC"),
    (0x40, "MSG_DONTWAIT"),
    (0x80, "MSG_EOR"),
    (0x100, "MSG_WAITALL"),
    (0x4000, "MSG_NOSIGNAL"),
    (0x8000, "MSG_MORE"),
    (0x10000, "MSG_WAITFORONE"),
    (0x40000000, "MSG_CMSG_CLOEXEC"),
];

pub const SOL: Xlat = &[
    (1, "SOL_SOCKET"),
    (0, "SOL_IP"),
    (6, "SOL_TCP"),
    (17, "SOL_UDP"),
    (41, "SOL_IPV6"),
];

pub const SO: Xlat = &[
    (1, "SO_DEBUG"),
    (2, "SO_REUSEADDR"),
    (3, "SO_TYPE"),
    (4, "SO_ERROR"),
    (5, "SO_DONTROUTE"),
    (6, "SO_BROADCAST"),
    (7, "SO_SNDBUF"),
    (8, "SO_RCVBUF"),
    (9, "SO_KEEPALIVE"),
    (13, "SO_LINGER"),
    (15, "SO_REUSEPORT"),
    (20, "SO_RCVTIMEO_OLD"),
    (21, "SO_SNDTIMEO_OLD"),
];

pub const TCP_OPTS: Xlat = &[
    (1, "TCP_NODELAY"),
    (3, "TCP_CORK"),
    (4, "TCP_KEEPIDLE"),
    (9, "TCP_DEFER_ACCEPT"),
];

pub const IPV6_OPTS: Xlat = &[(26, "IPV6_V6ONLY")];

pub const SHUT: Xlat = &[(0, "SHUT_RD"), (1, "SHUT_WR"), (2, "SHUT_RDWR")];

pub const FCNTL_CMD: Xlat = &[
    (0, "F_DUPFD"),
    (1, "F_GETFD"),
    (2, "F_SETFD"),
    (3, "F_GETFL"),
    (4, "F_SETFL"),
    (5, "F_GETLK"),
    (6, "F_SETLK"),
    (7, "F_SETLKW"),
    (8, "F_SETOWN"),
    (9, "F_GETOWN"),
    (1024, "F_SETLEASE"),
    (1025, "F_GETLEASE"),
    (1030, "F_DUPFD_CLOEXEC"),
    (1031, "F_SETPIPE_SZ"),
    (1032, "F_GETPIPE_SZ"),
    (1033, "F_ADD_SEALS"),
    (1034, "F_GET_SEALS"),
];

pub const FD_FLAGS: Xlat = &[(1, "FD_CLOEXEC")];

pub const EPOLL_CTL: Xlat = &[
    (1, "EPOLL_CTL_ADD"),
    (2, "EPOLL_CTL_DEL"),
    (3, "EPOLL_CTL_MOD"),
];

pub const EPOLL_EVENTS: Xlat = &[
    (0x1, "EPOLLIN"),
    (0x2, "EPOLLPRI"),
    (0x4, "EPOLLOUT"),
    (0x8, "EPOLLERR"),
    (0x10, "EPOLLHUP"),
    (0x20, "EPOLLNVAL"),
    (0x40, "EPOLLRDNORM"),
    (0x80, "EPOLLRDBAND"),
    (0x100, "EPOLLWRNORM"),
    (0x200, "EPOLLWRBAND"),
    (0x400, "EPOLLMSG"),
    (0x2000, "EPOLLRDHUP"),
    (0x10000000, "EPOLLEXCLUSIVE"),
    (0x20000000, "EPOLLWAKEUP"),
    (0x40000000, "EPOLLONESHOT"),
    (0x80000000, "EPOLLET"),
];

pub const EPOLL_CREATE: Xlat = &[(0o2000000, "EPOLL_CLOEXEC")];

pub const CLONE_FLAGS: Xlat = &[
    (0x00000100, "CLONE_VM"),
    (0x00000200, "CLONE_FS"),
    (0x00000400, "CLONE_FILES"),
    (0x00000800, "CLONE_SIGHAND"),
    (0x00001000, "CLONE_PIDFD"),
    (0x00002000, "CLONE_PTRACE"),
    (0x00004000, "CLONE_VFORK"),
    (0x00008000, "CLONE_PARENT"),
    (0x00010000, "CLONE_THREAD"),
    (0x00020000, "CLONE_NEWNS"),
    (0x00040000, "CLONE_SYSVSEM"),
    (0x00080000, "CLONE_SETTLS"),
    (0x00100000, "CLONE_PARENT_SETTID"),
    (0x00200000, "CLONE_CHILD_CLEARTID"),
    (0x00400000, "CLONE_DETACHED"),
    (0x00800000, "CLONE_UNTRACED"),
    (0x01000000, "CLONE_CHILD_SETTID"),
    (0x02000000, "CLONE_NEWCGROUP"),
    (0x04000000, "CLONE_NEWUTS"),
    (0x08000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
];

pub const WAIT_OPTIONS: Xlat = &[
    (1, "WNOHANG"),
    (2, "WSTOPPED"),
    (4, "WEXITED"),
    (8, "WCONTINUED"),
    (0x01000000, "WNOWAIT"),
    (0x20000000, "__WNOTHREAD"),
    (0x40000000, "__WALL"),
    (0x80000000, "__WCLONE"),
];

pub const SIGPROCMASK_HOW: Xlat = &[(0, "SIG_BLOCK"), (1, "SIG_UNBLOCK"), (2, "SIG_SETMASK")];

pub const ARCH_PRCTL: Xlat = &[
    (0x1001, "ARCH_SET_GS"),
    (0x1002, "ARCH_SET_FS"),
    (0x1003, "ARCH_GET_FS"),
    (0x1004, "ARCH_GET_GS"),
    (0x1011, "ARCH_GET_CPUID"),
    (0x1012, "ARCH_SET_CPUID"),
    (0x3001, "ARCH_CET_STATUS"),
    (0x5001, "ARCH_SHSTK_ENABLE"),
];

pub const FADVISE: Xlat = &[
    (0, "POSIX_FADV_NORMAL"),
    (1, "POSIX_FADV_RANDOM"),
    (2, "POSIX_FADV_SEQUENTIAL"),
    (3, "POSIX_FADV_WILLNEED"),
    (4, "POSIX_FADV_DONTNEED"),
    (5, "POSIX_FADV_NOREUSE"),
];

pub const SIGNALS: [&str; 32] = [
    "0",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// `SIGTERM`, `SIGRT_3`, or the number.
pub fn signal(out: &mut String, sig: u64) {
    match sig {
        1..=31 => out.push_str(SIGNALS[sig as usize]),
        32..=64 => {
            let _ = if sig == 32 {
                write!(out, "SIGRTMIN")
            } else {
                write!(out, "SIGRT_{}", sig - 32)
            };
        }
        _ => {
            let _ = write!(out, "{}", sig as i64 as i32);
        }
    }
}

pub fn signal_name(sig: i32) -> String {
    let mut s = String::new();
    signal(&mut s, sig as u64);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fun: fn(&mut String, u64), v: u64) -> String {
        let mut s = String::new();
        fun(&mut s, v);
        s
    }

    #[test]
    fn open_flags_as_strace() {
        assert_eq!(f(open_flags, 0o2000000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(f(open_flags, 0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(f(open_flags, 0o4010002), "O_RDWR|O_SYNC");
        assert_eq!(
            f(open_flags, 0o2200000 | 0o4000 | 0o100000),
            "O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_CLOEXEC|O_DIRECTORY"
        );
        assert_eq!(f(open_flags, 0o22200002), "O_RDWR|O_CLOEXEC|O_TMPFILE");
    }

    #[test]
    fn mmap_and_unknown_bits() {
        assert_eq!(f(mmap_flags, 0x22), "MAP_PRIVATE|MAP_ANONYMOUS");
        assert_eq!(f(mmap_flags, 0x812), "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE");
        let mut s = String::new();
        flags(&mut s, 0x3 | 0x1000_0000_0000, PROT, "PROT_NONE");
        assert_eq!(s, "PROT_READ|PROT_WRITE|0x100000000000");
        assert_eq!(
            f(sock_type, 0o2000001 | 0o4000),
            "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK"
        );
        assert_eq!(f(signal, 34), "SIGRT_2");
    }
}
