//! The syscall table: a row per syscall with its classes, argument kinds and return kind.
//!
//! Names and numbers come from the `syscalls` crate; argument counts from `nargs`.
//! A syscall without a row of its own prints its raw arguments (decimal when small,
//! hex otherwise). The table is built once into a `Vec` indexed by number, so the
//! tracer's hot path is one bounds-checked index.

use crate::decode::Arg::{self, *};
use crate::nargs::NARGS;
use syscalls::Sysno;

/// strace's syscall classes, as bits.
pub mod class {
    pub const FILE: u8 = 1;
    pub const NETWORK: u8 = 2;
    pub const PROCESS: u8 = 4;
    pub const SIGNAL: u8 = 8;
    pub const MEMORY: u8 = 16;
    pub const DESC: u8 = 32;

    pub const NAMES: &[(&str, u8)] = &[
        ("%file", FILE),
        ("file", FILE),
        ("%network", NETWORK),
        ("%net", NETWORK),
        ("network", NETWORK),
        ("%process", PROCESS),
        ("process", PROCESS),
        ("%signal", SIGNAL),
        ("signal", SIGNAL),
        ("%memory", MEMORY),
        ("memory", MEMORY),
        ("%desc", DESC),
        ("desc", DESC),
    ];
}

/// How the return value prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Int,
    /// Addresses: mmap, brk.
    Hex,
    /// umask's old mask.
    Oct,
    /// Never returns (exit, exit_group, execve on success prints 0 anyway).
    NoReturn,
    /// fcntl: `0x1 (flags FD_CLOEXEC)` for the F_GET* commands.
    Fcntl,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub name: &'static str,
    pub class: u8,
    /// `None`: no decoder, print `nargs` raw arguments.
    pub args: Option<&'static [Arg]>,
    pub nargs: u8,
    pub ret: Ret,
    /// Index of the first argument printed at exit (`args.len()` if none).
    pub split: u8,
}

impl Row {
    /// Whether this call gets a decoder of its own (for the README list and tests).
    pub fn decoded(&self) -> bool {
        self.args.is_some()
    }
}

fn decoder(s: Sysno) -> Option<(&'static [Arg], Ret)> {
    use Sysno as S;
    Some(match s {
        S::read => (&[Fd, BufOut, Uint], Ret::Int),
        S::write => (&[Fd, BufIn(2), Uint], Ret::Int),
        S::pread64 => (&[Fd, BufOut, Uint, Long], Ret::Int),
        S::pwrite64 => (&[Fd, BufIn(2), Uint, Long], Ret::Int),
        S::readv => (&[Fd, IovOut(2), Uint], Ret::Int),
        S::writev => (&[Fd, IovIn(2), Uint], Ret::Int),
        S::open => (&[Path, OpenFlags, OpenMode(1)], Ret::Int),
        S::openat => (&[DirFd, Path, OpenFlags, OpenMode(2)], Ret::Int),
        S::creat => (&[Path, Mode], Ret::Int),
        S::close => (&[Fd], Ret::Int),
        S::stat | S::lstat => (&[Path, StatOut], Ret::Int),
        S::fstat => (&[Fd, StatOut], Ret::Int),
        S::newfstatat => (&[DirFd, Path, StatOut, AtFlags], Ret::Int),
        S::lseek => (&[Fd, Long, Whence], Ret::Int),
        S::mmap => (&[Ptr, Uint, Prot, MmapFlags, Fd, Hex], Ret::Hex),
        S::mprotect => (&[Ptr, Uint, Prot], Ret::Int),
        S::munmap => (&[Ptr, Uint], Ret::Int),
        S::brk => (&[Ptr], Ret::Hex),
        S::rt_sigaction => (&[Signal, SigactionIn, SigactionOut, Uint], Ret::Int),
        S::rt_sigprocmask => (&[SigHow, SigsetIn, SigsetOut, Uint], Ret::Int),
        S::access => (&[Path, AccessMode], Ret::Int),
        S::faccessat => (&[DirFd, Path, AccessMode], Ret::Int),
        S::faccessat2 => (&[DirFd, Path, AccessMode, AtFlags], Ret::Int),
        S::pipe => (&[FdPairOut], Ret::Int),
        S::pipe2 => (&[FdPairOut, FdFlags], Ret::Int),
        S::dup => (&[Fd], Ret::Int),
        S::dup2 => (&[Fd, Fd], Ret::Int),
        S::dup3 => (&[Fd, Fd, FdFlags], Ret::Int),
        S::nanosleep => (&[TimespecIn, Ptr], Ret::Int),
        S::getpid | S::getppid | S::gettid | S::getuid | S::geteuid | S::getgid | S::getegid => {
            (&[], Ret::Int)
        }
        S::sendfile => (&[Fd, Fd, OffInOut, Uint], Ret::Int),
        S::socket => (&[SockDomain, SockType, SockProto(0)], Ret::Int),
        S::socketpair => (&[SockDomain, SockType, SockProto(0), FdPairOut], Ret::Int),
        S::connect | S::bind => (&[Fd, SockaddrIn(2), Uint], Ret::Int),
        S::accept => (&[Fd, SockaddrOut(2), LenInOut], Ret::Int),
        S::accept4 => (&[Fd, SockaddrOut(2), LenInOut, SockFlags], Ret::Int),
        S::sendto => (
            &[Fd, BufIn(2), Uint, MsgFlags, SockaddrIn(5), Uint],
            Ret::Int,
        ),
        S::recvfrom => (
            &[Fd, BufOut, Uint, MsgFlags, SockaddrOut(5), LenInOut],
            Ret::Int,
        ),
        S::shutdown => (&[Fd, Shutdown], Ret::Int),
        S::listen => (&[Fd, Int], Ret::Int),
        S::getsockname | S::getpeername => (&[Fd, SockaddrOut(2), LenInOut], Ret::Int),
        S::setsockopt => (&[Fd, SockLevel, SockOpt(1), SockOptVal(4), Uint], Ret::Int),
        S::clone => (&[CloneArgs], Ret::Int),
        S::clone3 => (&[Clone3Args, Uint], Ret::Int),
        S::fork | S::vfork => (&[], Ret::Int),
        S::execve => (&[Path, Argv, Envp], Ret::Int),
        S::execveat => (&[DirFd, Path, Argv, Envp, AtFlags], Ret::Int),
        S::exit | S::exit_group => (&[Int], Ret::NoReturn),
        S::wait4 => (&[Int, WaitStatusOut, WaitOptions, Ptr], Ret::Int),
        S::kill => (&[Int, Signal], Ret::Int),
        S::tkill => (&[Int, Signal], Ret::Int),
        S::tgkill => (&[Int, Int, Signal], Ret::Int),
        S::fcntl => (&[Fd, FcntlCmd, FcntlArg(1)], Ret::Fcntl),
        S::chdir | S::rmdir | S::unlink => (&[Path], Ret::Int),
        S::fchdir => (&[Fd], Ret::Int),
        S::rename | S::symlink | S::link => (&[Path, Path], Ret::Int),
        S::renameat => (&[DirFd, Path, DirFd, Path], Ret::Int),
        S::renameat2 => (&[DirFd, Path, DirFd, Path, Hex], Ret::Int),
        S::mkdir | S::chmod => (&[Path, Mode], Ret::Int),
        S::mkdirat | S::fchmodat => (&[DirFd, Path, Mode], Ret::Int),
        S::fchmod => (&[Fd, Mode], Ret::Int),
        S::unlinkat => (&[DirFd, Path, AtFlags], Ret::Int),
        S::readlink => (&[Path, BufOut, Uint], Ret::Int),
        S::readlinkat => (&[DirFd, Path, BufOut, Uint], Ret::Int),
        S::getcwd => (&[CStrOut, Uint], Ret::Int),
        S::truncate => (&[Path, Long], Ret::Int),
        S::ftruncate => (&[Fd, Long], Ret::Int),
        S::umask => (&[Mode], Ret::Oct),
        S::epoll_create => (&[Int], Ret::Int),
        S::epoll_create1 => (&[EpollCreateFlags], Ret::Int),
        S::epoll_ctl => (&[Fd, EpollOp, Fd, EpollEventIn], Ret::Int),
        S::epoll_wait => (&[Fd, EpollEventsOut, Int, Int], Ret::Int),
        S::epoll_pwait => (&[Fd, EpollEventsOut, Int, Int, SigsetIn, Uint], Ret::Int),
        S::arch_prctl => (&[ArchPrctl, Ptr], Ret::Int),
        S::set_tid_address => (&[Ptr], Ret::Int),
        S::set_robust_list => (&[Ptr, Uint], Ret::Int),
        S::rseq => (&[Ptr, Hex, Hex, Hex], Ret::Int),
        S::prlimit64 => (&[Int, Rlimit, RlimitIn, RlimitOut], Ret::Int),
        S::getrandom => (&[RandomOut, Uint, GrndFlags], Ret::Int),
        S::fadvise64 => (&[Fd, Long, Long, Fadvise], Ret::Int),
        S::futex => (
            &[Ptr, FutexOp, Int, FutexTail(3), FutexTail(4), FutexTail(5)],
            Ret::Int,
        ),
        S::getdents64 => (&[Fd, DirentsOut, Uint], Ret::Int),
        S::statfs => (&[Path, Ptr], Ret::Int),
        S::fstatfs => (&[Fd, Ptr], Ret::Int),
        S::statx => (&[DirFd, Path, AtFlags, Hex, Ptr], Ret::Int),
        S::getxattr | S::lgetxattr => (&[Path, CStr, Ptr, Uint], Ret::Int),
        S::fgetxattr => (&[Fd, CStr, Ptr, Uint], Ret::Int),
        S::ioctl => (&[Fd, IoctlCmd, Ptr], Ret::Int),
        S::madvise => (&[Ptr, Uint, Madvise], Ret::Int),
        S::mremap => (&[Ptr, Uint, Uint, Hex, Ptr], Ret::Hex),
        S::clock_nanosleep => (&[ClockId, Hex, TimespecIn, Ptr], Ret::Int),
        S::clock_gettime => (&[ClockId, Ptr], Ret::Int),
        S::getsockopt => (&[Fd, SockLevel, SockOpt(1), Ptr, Ptr], Ret::Int),
        S::sendmsg => (&[Fd, MsghdrIn, MsgFlags], Ret::Int),
        S::recvmsg => (&[Fd, MsghdrOut, MsgFlags], Ret::Int),
        S::sched_yield | S::pause | S::setsid | S::getpgrp => (&[], Ret::Int),
        S::setpgid => (&[Int, Int], Ret::Int),
        S::alarm => (&[Uint], Ret::Int),
        S::chroot => (&[Path], Ret::Int),
        S::eventfd2 => (&[Uint, FdFlags], Ret::Int),
        S::close_range => (&[Fd, Fd, Hex], Ret::Int),
        _ => return None,
    })
}

/// Class lists after strace's syscallent: TF (%file), TN, TP, TS, TM, TD.
/// Returns (syscall number, class bits) for every named syscall this architecture has.
fn classes() -> Vec<(usize, u8)> {
    use class::*;
    let mut v = Vec::new();
    const FILE_CALLS: &[&str] = &[
        "open",
        "openat",
        "openat2",
        "creat",
        "stat",
        "lstat",
        "newfstatat",
        "statx",
        "statfs",
        "access",
        "faccessat",
        "faccessat2",
        "chdir",
        "chroot",
        "chmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "lchown",
        "fchownat",
        "link",
        "linkat",
        "unlink",
        "unlinkat",
        "symlink",
        "symlinkat",
        "readlink",
        "readlinkat",
        "rename",
        "renameat",
        "renameat2",
        "mkdir",
        "mkdirat",
        "rmdir",
        "mknod",
        "mknodat",
        "truncate",
        "utime",
        "utimes",
        "utimensat",
        "futimesat",
        "mount",
        "umount2",
        "pivot_root",
        "swapon",
        "swapoff",
        "acct",
        "getxattr",
        "lgetxattr",
        "setxattr",
        "lsetxattr",
        "listxattr",
        "llistxattr",
        "removexattr",
        "lremovexattr",
        "inotify_add_watch",
        "fanotify_mark",
        "name_to_handle_at",
        "uselib",
        "quotactl",
        "execve",
        "execveat",
        "getcwd",
        "open_tree",
        "move_mount",
        "mount_setattr",
        "setxattrat",
        "getxattrat",
        "listxattrat",
        "removexattrat",
    ];
    const NET_CALLS: &[&str] = &[
        "socket",
        "socketpair",
        "connect",
        "accept",
        "accept4",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "sendmmsg",
        "recvmmsg",
        "shutdown",
        "bind",
        "listen",
        "getsockname",
        "getpeername",
        "setsockopt",
        "getsockopt",
        "sendfile",
    ];
    const PROCESS_CALLS: &[&str] = &[
        "clone",
        "clone3",
        "fork",
        "vfork",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "wait4",
        "waitid",
        "kill",
        "tkill",
        "tgkill",
        "rt_sigqueueinfo",
        "rt_tgsigqueueinfo",
        "pidfd_send_signal",
        "unshare",
        "arch_prctl",
        "pidfd_open",
    ];
    const SIGNAL_CALLS: &[&str] = &[
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "rt_sigpending",
        "rt_sigtimedwait",
        "rt_sigqueueinfo",
        "rt_tgsigqueueinfo",
        "rt_sigsuspend",
        "sigaltstack",
        "kill",
        "tkill",
        "tgkill",
        "pause",
        "signalfd",
        "signalfd4",
        "pidfd_send_signal",
    ];
    const MEMORY_CALLS: &[&str] = &[
        "mmap",
        "mprotect",
        "munmap",
        "brk",
        "mremap",
        "msync",
        "mincore",
        "madvise",
        "shmat",
        "shmdt",
        "mlock",
        "munlock",
        "mlockall",
        "munlockall",
        "mbind",
        "set_mempolicy",
        "get_mempolicy",
        "remap_file_pages",
        "migrate_pages",
        "move_pages",
        "mlock2",
        "pkey_mprotect",
        "process_madvise",
        "map_shadow_stack",
        "mseal",
        "set_mempolicy_home_node",
    ];
    const DESC_CALLS: &[&str] = &[
        "read",
        "write",
        "open",
        "close",
        "fstat",
        "poll",
        "lseek",
        "mmap",
        "ioctl",
        "pread64",
        "pwrite64",
        "readv",
        "writev",
        "pipe",
        "select",
        "dup",
        "dup2",
        "sendfile",
        "fcntl",
        "flock",
        "fsync",
        "fdatasync",
        "ftruncate",
        "getdents",
        "fchdir",
        "creat",
        "fchmod",
        "fchown",
        "fstatfs",
        "readahead",
        "fsetxattr",
        "fgetxattr",
        "flistxattr",
        "fremovexattr",
        "epoll_create",
        "getdents64",
        "fadvise64",
        "epoll_wait",
        "epoll_ctl",
        "inotify_init",
        "inotify_add_watch",
        "inotify_rm_watch",
        "openat",
        "mkdirat",
        "mknodat",
        "fchownat",
        "futimesat",
        "newfstatat",
        "unlinkat",
        "renameat",
        "linkat",
        "symlinkat",
        "readlinkat",
        "fchmodat",
        "faccessat",
        "pselect6",
        "ppoll",
        "splice",
        "tee",
        "sync_file_range",
        "vmsplice",
        "utimensat",
        "epoll_pwait",
        "signalfd",
        "timerfd_create",
        "eventfd",
        "fallocate",
        "timerfd_settime",
        "timerfd_gettime",
        "signalfd4",
        "eventfd2",
        "epoll_create1",
        "dup3",
        "pipe2",
        "inotify_init1",
        "preadv",
        "pwritev",
        "perf_event_open",
        "fanotify_init",
        "fanotify_mark",
        "name_to_handle_at",
        "open_by_handle_at",
        "syncfs",
        "setns",
        "finit_module",
        "renameat2",
        "memfd_create",
        "bpf",
        "execveat",
        "userfaultfd",
        "copy_file_range",
        "preadv2",
        "pwritev2",
        "statx",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "pidfd_open",
        "pidfd_getfd",
        "openat2",
        "faccessat2",
        "epoll_pwait2",
        "close_range",
        "mount_setattr",
        "fchmodat2",
        "socket",
        "socketpair",
        "connect",
        "accept",
        "accept4",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "sendmmsg",
        "recvmmsg",
        "shutdown",
        "bind",
        "listen",
        "getsockname",
        "getpeername",
        "setsockopt",
        "getsockopt",
        "memfd_secret",
    ];
    for (list, bit) in [
        (FILE_CALLS, FILE),
        (NET_CALLS, NETWORK),
        (PROCESS_CALLS, PROCESS),
        (SIGNAL_CALLS, SIGNAL),
        (MEMORY_CALLS, MEMORY),
        (DESC_CALLS, DESC),
    ] {
        for name in list {
            // Names newer than the `syscalls` crate's table are skipped.
            if let Ok(s) = name.parse::<Sysno>() {
                v.push((s.id() as usize, bit));
            } else {
                debug_assert!(NEWER_CALLS.contains(name), "{name} is not a syscall");
            }
        }
    }
    v
}

/// Class-list entries the `syscalls` crate may not know yet.
const NEWER_CALLS: &[&str] = &[
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "mseal",
];

/// The table for this architecture, indexed by syscall number.
pub struct Table {
    rows: Vec<Row>,
    unknown: Row,
}

impl Table {
    pub fn new() -> Table {
        let size = NARGS
            .len()
            .max(Sysno::table_size() + Sysno::first().id() as usize);
        let unknown = Row {
            name: "syscall",
            class: 0,
            args: None,
            nargs: 6,
            ret: Ret::Int,
            split: 6,
        };
        let mut rows = vec![unknown.clone(); size];
        for s in Sysno::iter() {
            let nr = s.id() as usize;
            let nargs = NARGS.get(nr).copied().filter(|&n| n != 255).unwrap_or(6);
            let (args, ret) = match decoder(s) {
                Some((a, r)) => (Some(a), r),
                None => (None, Ret::Int),
            };
            let split = args
                .map(|a| a.iter().position(|k| k.at_exit()).unwrap_or(a.len()))
                .unwrap_or(nargs as usize) as u8;
            rows[nr] = Row {
                name: s.name(),
                class: 0,
                args,
                nargs: args.map_or(nargs, |a| a.len() as u8),
                ret,
                split,
            };
        }
        for (nr, bit) in classes() {
            if let Some(r) = rows.get_mut(nr) {
                r.class |= bit;
            }
        }
        Table { rows, unknown }
    }

    pub fn get(&self, nr: u64) -> &Row {
        self.rows.get(nr as usize).unwrap_or(&self.unknown)
    }

    /// Number → name for every syscall this architecture has.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Row)> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.name != "syscall")
            .map(|(i, r)| (i as u64, r))
    }

    pub fn lookup(&self, name: &str) -> Option<u64> {
        self.iter().find(|(_, r)| r.name == name).map(|(nr, _)| nr)
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_consistent() {
        let t = Table::new();
        let openat = t.get(t.lookup("openat").unwrap());
        assert_eq!(openat.class, class::FILE | class::DESC);
        assert_eq!(openat.split, 4);
        let read = t.get(0);
        assert_eq!(read.name, "read");
        assert_eq!(read.split, 1);
        assert_eq!(t.get(t.lookup("accept4").unwrap()).split, 1);
        // A decoder never claims more arguments than the kernel passes, except
        // clone's composite which covers all five.
        for (nr, row) in t.iter() {
            if let Some(a) = row.args {
                let n = NARGS[nr as usize];
                assert!(
                    a.len() <= n as usize || row.name == "clone",
                    "{} has {} > {n}",
                    row.name,
                    a.len()
                );
            }
        }
        assert_eq!(t.get(9999).name, "syscall");
        let class_of = |n: &str| t.get(t.lookup(n).unwrap()).class;
        assert_eq!(class_of("sendfile"), class::NETWORK | class::DESC);
        assert_eq!(class_of("kill"), class::SIGNAL | class::PROCESS);
        assert_eq!(class_of("mmap"), class::MEMORY | class::DESC);
        assert_eq!(class_of("execve"), class::FILE | class::PROCESS);
        assert_eq!(class_of("getpid"), 0);
    }
}
