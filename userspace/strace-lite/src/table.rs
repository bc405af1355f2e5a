//! The syscall table: a row per syscall with its classes, argument kinds and return kind.
//!
//! Names and numbers come from the `syscalls` crate; argument counts from `nargs`.
//! A syscall without a row of its own prints its raw arguments (decimal when small,
//! hex otherwise). The table is built once into a `Vec` indexed by number, so the
//! tracer's hot path is one bounds-checked index.

use crate::decode::Arg::{self, *};
use crate::nargs::NARGS;
use syscalls::Sysno;

/// strace's syscall classes, as bits (strace's `TD`, `TF`, ... flags of `syscallent.h`).
pub mod class {
    pub const FILE: u32 = 1;
    pub const NETWORK: u32 = 1 << 1;
    pub const PROCESS: u32 = 1 << 2;
    pub const SIGNAL: u32 = 1 << 3;
    pub const MEMORY: u32 = 1 << 4;
    pub const DESC: u32 = 1 << 5;
    pub const IPC: u32 = 1 << 6;
    pub const CREDS: u32 = 1 << 7;
    pub const CLOCK: u32 = 1 << 8;
    pub const PURE: u32 = 1 << 9;
    /// `%stat`: stat(2) on a path.
    pub const STAT: u32 = 1 << 10;
    pub const LSTAT: u32 = 1 << 11;
    pub const FSTAT: u32 = 1 << 12;
    /// `%%stat`: every stat-like call.
    pub const STAT_LIKE: u32 = 1 << 13;
    pub const STATFS: u32 = 1 << 14;
    pub const FSTATFS: u32 = 1 << 15;
    /// `%%statfs`: every statfs-like call.
    pub const STATFS_LIKE: u32 = 1 << 16;

    /// `-e trace=` names of the classes; the bare words are strace's older spelling.
    pub const NAMES: &[(&str, u32)] = &[
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
        ("%ipc", IPC),
        ("ipc", IPC),
        ("%creds", CREDS),
        ("%clock", CLOCK),
        ("%pure", PURE),
        ("%stat", STAT),
        ("%lstat", LSTAT),
        ("%fstat", FSTAT),
        ("%%stat", STAT_LIKE),
        ("%statfs", STATFS),
        ("%fstatfs", FSTATFS),
        ("%%statfs", STATFS_LIKE),
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
    /// poll's ready descriptors: `1 ([{fd=3, revents=POLLIN}])`.
    Poll,
    /// ppoll: the ready descriptors and the time left.
    Ppoll,
    /// select: `2 (in [3], out [4], left {tv_sec=0, tv_usec=10})`.
    Select,
    Pselect6,
    /// prctl: `1 (SUID_DUMP_USER)` for PR_GET_DUMPABLE.
    Prctl,
    /// A signal number: `12 (SIGUSR2)` (rt_sigtimedwait).
    Signal,
    /// A scheduling policy: `0 (SCHED_OTHER)`.
    SchedPolicy,
    /// personality's previous value: `0 (PER_LINUX)`.
    Personality,
    /// Seconds since the epoch, with the local time: `1796653045 (2026-12-07T14:17:25+0000)`.
    Time,
    /// membarrier: MEMBARRIER_CMD_QUERY's answer is the set of supported commands.
    Membarrier,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub name: &'static str,
    pub class: u32,
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
        S::faccessat2 => (&[DirFd, Path, AccessMode, AccessAtFlags], Ret::Int),
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
        S::clone3 => (&[Clone3Args], Ret::Int),
        S::fork | S::vfork => (&[], Ret::Int),
        S::execve => (&[Path, Argv, Envp], Ret::Int),
        S::execveat => (&[DirFd, Path, Argv, Envp, AtFlags], Ret::Int),
        S::exit | S::exit_group => (&[Int], Ret::NoReturn),
        S::wait4 => (&[Int, WaitStatusOut, WaitOptions, RusageOut], Ret::Int),
        S::sched_getattr => (&[Int, SchedAttrOut, Uint, Uint], Ret::Int),
        S::sched_setattr => (&[Int, SchedAttrIn, Uint], Ret::Int),
        S::membarrier => (&[MembarrierCmd, Hex], Ret::Membarrier),
        S::getrusage => (&[RusageWho, RusageOut], Ret::Int),
        S::times => (&[TmsOut], Ret::Int),
        S::kill => (&[Int, Signal], Ret::Int),
        S::tkill => (&[Int, Signal], Ret::Int),
        S::tgkill => (&[Int, Int, Signal], Ret::Int),
        S::fcntl => (&[Fd, FcntlCmd, FcntlArg(1)], Ret::Fcntl),
        S::chdir | S::rmdir | S::unlink => (&[Path], Ret::Int),
        S::fchdir => (&[Fd], Ret::Int),
        S::rename | S::symlink | S::link => (&[Path, Path], Ret::Int),
        S::renameat => (&[DirFd, Path, DirFd, Path], Ret::Int),
        S::renameat2 => (&[DirFd, Path, DirFd, Path, RenameFlags], Ret::Int),
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
        S::statfs => (&[Path, StatfsOut], Ret::Int),
        S::fstatfs => (&[Fd, StatfsOut], Ret::Int),
        S::statx => (&[DirFd, Path, StatxFlags, StatxMask, StatxOut], Ret::Int),
        S::getxattr | S::lgetxattr => (&[Path, CStr, Ptr, Uint], Ret::Int),
        S::fgetxattr => (&[Fd, CStr, Ptr, Uint], Ret::Int),
        S::ioctl => (&[Fd, IoctlCmd, IoctlArg(1)], Ret::Int),
        S::madvise => (&[Ptr, Uint, Madvise], Ret::Int),
        S::mremap => (&[Ptr, Uint, Uint, MremapFlags, MremapNew(3)], Ret::Hex),
        S::mlock | S::munlock => (&[Ptr, Uint], Ret::Int),
        S::mlock2 => (&[Ptr, Uint, MlockFlags], Ret::Int),
        S::mlockall => (&[MlockallFlags], Ret::Int),
        S::munlockall => (&[], Ret::Int),
        S::msync => (&[Ptr, Uint, MsyncFlags], Ret::Int),
        S::mincore => (&[Ptr, Uint, MincoreVec(1)], Ret::Int),
        S::poll => (&[PollFds(1), Uint, Int], Ret::Poll),
        S::ppoll => (&[PollFds(1), Uint, TimespecIn, SigsetIn, Uint], Ret::Ppoll),
        S::select => (&[Int, FdSet(0), FdSet(0), FdSet(0), TimevalIn], Ret::Select),
        S::pselect6 => (
            &[
                Int,
                FdSet(0),
                FdSet(0),
                FdSet(0),
                TimespecIn,
                PselectSigmask,
            ],
            Ret::Pselect6,
        ),
        S::setuid | S::setgid | S::setfsuid | S::setfsgid => (&[Id], Ret::Int),
        S::setreuid | S::setregid => (&[Id, Id], Ret::Int),
        S::setresuid | S::setresgid => (&[Id, Id, Id], Ret::Int),
        S::getresuid | S::getresgid => (&[IdOut, IdOut, IdOut], Ret::Int),
        S::setgroups => (&[Int, GidListIn(0)], Ret::Int),
        S::getgroups => (&[Int, GidListOut], Ret::Int),
        S::capget => (&[CapHeader, CapDataOut(0)], Ret::Int),
        S::capset => (&[CapHeader, CapDataIn(0)], Ret::Int),
        S::prctl => (&[Prctl], Ret::Prctl),
        S::clock_nanosleep => (&[ClockId, Hex, TimespecIn, Ptr], Ret::Int),
        S::clock_gettime => (&[ClockId, Ptr], Ret::Int),
        S::getsockopt => (
            &[Fd, SockLevel, SockOpt(1), SockOptValOut(4), LenInOut],
            Ret::Int,
        ),
        S::sendmsg => (&[Fd, MsghdrIn, MsgFlags], Ret::Int),
        S::recvmsg => (&[Fd, MsghdrOut, MsgFlags], Ret::Int),
        S::sched_yield | S::pause | S::setsid | S::getpgrp => (&[], Ret::Int),
        S::setpgid => (&[Int, Int], Ret::Int),
        S::alarm => (&[Uint], Ret::Int),
        S::chroot => (&[Path], Ret::Int),
        S::eventfd2 => (&[Uint, EfdFlags], Ret::Int),
        S::eventfd => (&[Uint], Ret::Int),
        S::close_range => (&[Uint, Uint, CloseRangeFlags], Ret::Int),
        S::timerfd_create => (&[ClockId, TfdFlags], Ret::Int),
        S::timerfd_settime => (&[Fd, TfdSetFlags, ItimerspecIn, ItimerspecOut], Ret::Int),
        S::timerfd_gettime => (&[Fd, ItimerspecOut], Ret::Int),
        S::signalfd4 => (&[Fd, SigsetIn, Uint, SfdFlags], Ret::Int),
        S::signalfd => (&[Fd, SigsetIn, Uint], Ret::Int),
        S::inotify_init => (&[], Ret::Int),
        S::inotify_init1 => (&[InotifyInitFlags], Ret::Int),
        S::inotify_add_watch => (&[Fd, Path, InotifyMask], Ret::Int),
        S::inotify_rm_watch => (&[Fd, Int], Ret::Int),
        S::memfd_create => (&[CStr, MfdFlags], Ret::Int),
        S::splice => (&[Fd, OffIn, Fd, OffIn, Uint, SpliceFlags], Ret::Int),
        S::tee => (&[Fd, Fd, Uint, SpliceFlags], Ret::Int),
        S::vmsplice => (&[Fd, IovIn(2), Uint, SpliceFlags], Ret::Int),
        S::copy_file_range => (&[Fd, OffIn, Fd, OffIn, Uint, Hex], Ret::Int),
        S::openat2 => (&[DirFd, Path, OpenHow(3), Uint], Ret::Int),
        S::pidfd_open => (&[Int, PidfdFlags], Ret::Int),
        S::pidfd_send_signal => (&[Fd, Signal, SiginfoIn, Hex], Ret::Int),
        S::pidfd_getfd => (&[Fd, Int, Hex], Ret::Int),
        S::rt_sigtimedwait => (&[SigsetIn, SiginfoOut, TimespecIn, Uint], Ret::Signal),
        S::sigaltstack => (&[StackIn, StackOut], Ret::Int),
        S::sched_getscheduler => (&[Int], Ret::SchedPolicy),
        S::sched_setscheduler => (&[Int, SchedPolicy, SchedParamIn], Ret::Int),
        S::sched_getparam => (&[Int, SchedParamOut], Ret::Int),
        S::sched_setparam => (&[Int, SchedParamIn], Ret::Int),
        S::sched_get_priority_max | S::sched_get_priority_min => (&[SchedPolicy], Ret::Int),
        S::sched_setaffinity => (&[Int, Uint, CpuSetIn(1)], Ret::Int),
        S::sched_getaffinity => (&[Int, Uint, CpuSetOut], Ret::Int),
        S::sched_rr_get_interval => (&[Int, TimespecOut], Ret::Int),
        S::waitid => (&[IdType, Int, SiginfoOut, WaitOptions, Ptr], Ret::Int),
        S::shmget => (&[IpcKey, Uint, IpcGetFlags], Ret::Int),
        S::shmat => (&[Int, Ptr, ShmatFlags], Ret::Hex),
        S::shmdt => (&[Ptr], Ret::Int),
        S::shmctl => (&[Int, ShmctlCmd, Ptr], Ret::Int),
        S::semget => (&[IpcKey, Int, IpcGetFlags], Ret::Int),
        S::semop => (&[Int, Sembufs(2), Uint], Ret::Int),
        S::semtimedop => (&[Int, Sembufs(2), Uint, TimespecIn], Ret::Int),
        S::semctl => (&[Int, Int, SemctlCmd, Ptr], Ret::Int),
        S::msgget => (&[IpcKey, IpcGetFlags], Ret::Int),
        S::msgsnd => (&[Int, MsgbufIn(2), Uint, IpcMsgFlags], Ret::Int),
        S::msgrcv => (&[Int, MsgbufOut(2), Uint, Long, IpcMsgFlags], Ret::Int),
        S::msgctl => (&[Int, MsgctlCmd, Ptr], Ret::Int),
        S::mount => (&[Path, Path, CStr, MountFlags, CStr], Ret::Int),
        S::umount2 => (&[Path, UmountFlags], Ret::Int),
        S::pivot_root => (&[Path, Path], Ret::Int),
        S::seccomp => (&[Seccomp], Ret::Int),
        S::bpf => (&[BpfCmd, Ptr, Uint], Ret::Int),
        S::perf_event_open => (&[PerfAttr, Int, Int, Int, PerfFlags], Ret::Int),
        S::io_uring_setup => (&[Uint, IoUringParams], Ret::Int),
        S::io_uring_enter => (&[Fd, Uint, Uint, IoringEnterFlags, Ptr, Uint], Ret::Int),
        S::io_uring_register => (&[Fd, IoringRegisterOp, Ptr, Uint], Ret::Int),
        S::fanotify_init => (&[FanInitFlags, OpenFlags], Ret::Int),
        S::fanotify_mark => (&[Fd, FanMarkFlags, FanEvents, DirFd, Path], Ret::Int),
        S::epoll_pwait2 => (
            &[Fd, EpollEventsOut, Int, TimespecIn, SigsetIn, Uint],
            Ret::Int,
        ),
        S::uname => (&[UtsnameOut], Ret::Int),
        S::getrlimit => (&[Rlimit, RlimitOut], Ret::Int),
        S::setrlimit => (&[Rlimit, RlimitIn], Ret::Int),
        S::gettimeofday => (&[TimevalOut, Ptr], Ret::Int),
        S::settimeofday => (&[TimevalIn, Ptr], Ret::Int),
        S::clock_getres => (&[ClockId, TimespecOut], Ret::Int),
        S::clock_settime => (&[ClockId, TimespecIn], Ret::Int),
        S::time => (&[Ptr], Ret::Time),
        S::utimes => (&[Path, Ptr], Ret::Int),
        S::futimesat => (&[DirFd, Path, Ptr], Ret::Int),
        S::unshare => (&[NsFlags], Ret::Int),
        S::setns => (&[Fd, NsFlags], Ret::Int),
        S::sync_file_range => (&[Fd, Long, Long, SyncFileRangeFlags], Ret::Int),
        S::timer_delete | S::timer_getoverrun => (&[Int], Ret::Int),
        S::timer_create => (&[ClockId, Ptr, IntOut], Ret::Int),
        S::timer_settime => (&[Int, TimerFlags, ItimerspecIn, ItimerspecOut], Ret::Int),
        S::timer_gettime => (&[Int, ItimerspecOut], Ret::Int),
        S::sethostname | S::setdomainname => (&[BufIn(1), Uint], Ret::Int),
        S::pkey_alloc => (&[Hex, Hex], Ret::Int),
        S::pkey_mprotect => (&[Ptr, Uint, Prot, Int], Ret::Int),
        S::fchmodat2 => (&[DirFd, Path, Mode, AtFlags], Ret::Int),
        S::pkey_free => (&[Int], Ret::Int),
        S::vhangup => (&[], Ret::Int),
        S::acct | S::swapoff => (&[Path], Ret::Int),
        S::mq_unlink => (&[CStr], Ret::Int),
        S::mq_open => (&[CStr, OpenFlags, OpenMode(1), Ptr], Ret::Int),
        S::fchown => (&[Fd, Id, Id], Ret::Int),
        S::chown | S::lchown => (&[Path, Id, Id], Ret::Int),
        S::fchownat => (&[DirFd, Path, Id, Id, AtFlags], Ret::Int),
        S::flock => (&[Fd, FlockOp], Ret::Int),
        S::fsync | S::fdatasync | S::syncfs => (&[Fd], Ret::Int),
        S::sync => (&[], Ret::Int),
        S::linkat => (&[DirFd, Path, DirFd, Path, AtFlags], Ret::Int),
        S::symlinkat => (&[Path, DirFd, Path], Ret::Int),
        S::mknodat => (&[DirFd, Path, MknodMode(3)], Ret::Int),
        S::mknod => (&[Path, MknodMode(2)], Ret::Int),
        S::setxattr | S::lsetxattr => (&[Path, CStr, BufIn(3), Uint, XattrFlags], Ret::Int),
        S::fsetxattr => (&[Fd, CStr, BufIn(3), Uint, XattrFlags], Ret::Int),
        S::listxattr | S::llistxattr => (&[Path, BufOut, Uint], Ret::Int),
        S::flistxattr => (&[Fd, BufOut, Uint], Ret::Int),
        S::removexattr | S::lremovexattr => (&[Path, CStr], Ret::Int),
        S::fremovexattr => (&[Fd, CStr], Ret::Int),
        S::pwritev => (&[Fd, IovIn(2), Uint, Long], Ret::Int),
        S::preadv => (&[Fd, IovOut(2), Uint, Long], Ret::Int),
        S::pwritev2 => (&[Fd, IovIn(2), Uint, Long, RwfFlags], Ret::Int),
        S::preadv2 => (&[Fd, IovOut(2), Uint, Long, RwfFlags], Ret::Int),
        S::getpriority => (&[PrioWhich, Int], Ret::Int),
        S::setpriority => (&[PrioWhich, Int, Int], Ret::Int),
        S::setitimer => (&[ItimerWhich, ItimervalIn, ItimervalOut], Ret::Int),
        S::getitimer => (&[ItimerWhich, ItimervalOut], Ret::Int),
        S::rt_sigpending => (&[SigsetOut, Uint], Ret::Int),
        S::rt_sigsuspend => (&[SigsetIn, Uint], Ret::Int),
        S::rt_sigqueueinfo => (&[Int, Signal, SiginfoIn], Ret::Int),
        S::rt_tgsigqueueinfo => (&[Int, Int, Signal, SiginfoIn], Ret::Int),
        S::getcpu => (&[IntOut, IntOut, Ptr], Ret::Int),
        S::personality => (&[Personality], Ret::Personality),
        S::getpgid | S::getsid => (&[Int], Ret::Int),
        S::fallocate => (&[Fd, Int, Long, Long], Ret::Int),
        S::readahead => (&[Fd, Long, Uint], Ret::Int),
        S::sysinfo => (&[SysinfoOut], Ret::Int),
        S::rt_sigreturn => (&[Sigreturn], Ret::Int),
        S::utimensat => (&[DirFd, Path, Timespec2, AtFlags], Ret::Int),
        S::sendmmsg => (&[Fd, MmsgIn(2), Uint, MsgFlags], Ret::Int),
        S::recvmmsg => (&[Fd, MmsgOut, Uint, MsgFlags, TimespecIn], Ret::Int),
        _ => return None,
    })
}

/// strace's class flags, spelled as in its `syscallent.h`, so the rows below can be
/// checked against strace's own table by eye.
mod ent {
    use super::class::*;
    pub const TD: u32 = DESC;
    pub const TF: u32 = FILE;
    pub const TI: u32 = IPC;
    pub const TN: u32 = NETWORK;
    pub const TP: u32 = PROCESS;
    pub const TS: u32 = SIGNAL;
    pub const TM: u32 = MEMORY;
    pub const TC: u32 = CREDS;
    pub const TCL: u32 = CLOCK;
    pub const PU: u32 = PURE;
    pub const TST: u32 = STAT;
    pub const TLST: u32 = LSTAT;
    pub const TFST: u32 = FSTAT;
    pub const TSTA: u32 = STAT_LIKE;
    pub const TSF: u32 = STATFS;
    pub const TFSF: u32 = FSTATFS;
    pub const TSFA: u32 = STATFS_LIKE;
}

/// The classes of every x86_64 syscall the `syscalls` crate names, from strace 6.x's
/// `linux/x86_64/syscallent.h` and `syscallent-common.h` (a test checks that every
/// name has its entry).
#[rustfmt::skip]
const CLASSES: &[(&str, u32)] = {
    use ent::*;
    &[
    ("read", TD),
    ("write", TD),
    ("open", TD | TF),
    ("close", TD),
    ("stat", TF | TST | TSTA),
    ("fstat", TD | TFST | TSTA),
    ("lstat", TF | TLST | TSTA),
    ("poll", TD),
    ("lseek", TD),
    ("mmap", TD | TM),
    ("mprotect", TM),
    ("munmap", TM),
    ("brk", TM),
    ("rt_sigaction", TS),
    ("rt_sigprocmask", TS),
    ("rt_sigreturn", TS),
    ("ioctl", TD),
    ("pread64", TD),
    ("pwrite64", TD),
    ("readv", TD),
    ("writev", TD),
    ("access", TF),
    ("pipe", TD),
    ("select", TD),
    ("sched_yield", 0),
    ("mremap", TM),
    ("msync", TM),
    ("mincore", TM),
    ("madvise", TM),
    ("shmget", TI),
    ("shmat", TI | TM),
    ("shmctl", TI),
    ("dup", TD),
    ("dup2", TD),
    ("pause", TS),
    ("nanosleep", 0),
    ("getitimer", 0),
    ("alarm", 0),
    ("setitimer", 0),
    ("getpid", PU),
    ("sendfile", TD | TN),
    ("socket", TN),
    ("connect", TN),
    ("accept", TN),
    ("sendto", TN),
    ("recvfrom", TN),
    ("sendmsg", TN),
    ("recvmsg", TN),
    ("shutdown", TN),
    ("bind", TN),
    ("listen", TN),
    ("getsockname", TN),
    ("getpeername", TN),
    ("socketpair", TN),
    ("setsockopt", TN),
    ("getsockopt", TN),
    ("clone", TP),
    ("fork", TP),
    ("vfork", TP),
    ("execve", TF | TP),
    ("exit", TP),
    ("wait4", TP),
    ("kill", TS | TP),
    ("uname", 0),
    ("semget", TI),
    ("semop", TI),
    ("semctl", TI),
    ("shmdt", TI | TM),
    ("msgget", TI),
    ("msgsnd", TI),
    ("msgrcv", TI),
    ("msgctl", TI),
    ("fcntl", TD),
    ("flock", TD),
    ("fsync", TD),
    ("fdatasync", TD),
    ("truncate", TF),
    ("ftruncate", TD),
    ("getdents", TD),
    ("getcwd", TF),
    ("chdir", TF),
    ("fchdir", TD),
    ("rename", TF),
    ("mkdir", TF),
    ("rmdir", TF),
    ("creat", TD | TF),
    ("link", TF),
    ("unlink", TF),
    ("symlink", TF),
    ("readlink", TF),
    ("chmod", TF),
    ("fchmod", TD),
    ("chown", TF),
    ("fchown", TD),
    ("lchown", TF),
    ("umask", 0),
    ("gettimeofday", TCL),
    ("getrlimit", 0),
    ("getrusage", 0),
    ("sysinfo", 0),
    ("times", 0),
    ("ptrace", 0),
    ("getuid", TC | PU),
    ("syslog", 0),
    ("getgid", TC | PU),
    ("setuid", TC),
    ("setgid", TC),
    ("geteuid", TC | PU),
    ("getegid", TC | PU),
    ("setpgid", 0),
    ("getppid", PU),
    ("getpgrp", PU),
    ("setsid", 0),
    ("setreuid", TC),
    ("setregid", TC),
    ("getgroups", TC),
    ("setgroups", TC),
    ("setresuid", TC),
    ("getresuid", TC),
    ("setresgid", TC),
    ("getresgid", TC),
    ("getpgid", 0),
    ("setfsuid", TC),
    ("setfsgid", TC),
    ("getsid", 0),
    ("capget", TC),
    ("capset", TC),
    ("rt_sigpending", TS),
    ("rt_sigtimedwait", TS),
    ("rt_sigqueueinfo", TS | TP),
    ("rt_sigsuspend", TS),
    ("sigaltstack", TS),
    ("utime", TF),
    ("mknod", TF),
    ("uselib", TF),
    ("personality", 0),
    ("ustat", TSFA),
    ("statfs", TF | TSF | TSFA),
    ("fstatfs", TD | TFSF | TSFA),
    ("sysfs", 0),
    ("getpriority", 0),
    ("setpriority", 0),
    ("sched_setparam", 0),
    ("sched_getparam", 0),
    ("sched_setscheduler", 0),
    ("sched_getscheduler", 0),
    ("sched_get_priority_max", 0),
    ("sched_get_priority_min", 0),
    ("sched_rr_get_interval", 0),
    ("mlock", TM),
    ("munlock", TM),
    ("mlockall", TM),
    ("munlockall", TM),
    ("vhangup", 0),
    ("modify_ldt", 0),
    ("pivot_root", TF),
    ("_sysctl", 0),
    ("prctl", TC),
    ("arch_prctl", 0),
    ("adjtimex", TCL),
    ("setrlimit", 0),
    ("chroot", TF),
    ("sync", 0),
    ("acct", TF),
    ("settimeofday", TCL),
    ("mount", TF),
    ("umount2", TF),
    ("swapon", TF),
    ("swapoff", TF),
    ("reboot", 0),
    ("sethostname", 0),
    ("setdomainname", 0),
    ("iopl", 0),
    ("ioperm", 0),
    ("create_module", 0),
    ("init_module", 0),
    ("delete_module", 0),
    ("get_kernel_syms", 0),
    ("query_module", 0),
    ("quotactl", TF),
    ("nfsservctl", 0),
    ("getpmsg", TN),
    ("putpmsg", TN),
    ("afs_syscall", 0),
    ("tuxcall", 0),
    ("security", 0),
    ("gettid", PU),
    ("readahead", TD),
    ("setxattr", TF),
    ("lsetxattr", TF),
    ("fsetxattr", TD),
    ("getxattr", TF),
    ("lgetxattr", TF),
    ("fgetxattr", TD),
    ("listxattr", TF),
    ("llistxattr", TF),
    ("flistxattr", TD),
    ("removexattr", TF),
    ("lremovexattr", TF),
    ("fremovexattr", TD),
    ("tkill", TS | TP),
    ("time", TCL),
    ("futex", 0),
    ("sched_setaffinity", 0),
    ("sched_getaffinity", 0),
    ("set_thread_area", 0),
    ("io_setup", TM),
    ("io_destroy", TM),
    ("io_getevents", 0),
    ("io_submit", 0),
    ("io_cancel", 0),
    ("get_thread_area", 0),
    ("lookup_dcookie", 0),
    ("epoll_create", TD),
    ("epoll_ctl_old", 0),
    ("epoll_wait_old", 0),
    ("remap_file_pages", TM),
    ("getdents64", TD),
    ("set_tid_address", 0),
    ("restart_syscall", 0),
    ("semtimedop", TI),
    ("fadvise64", TD),
    ("timer_create", 0),
    ("timer_settime", 0),
    ("timer_gettime", 0),
    ("timer_getoverrun", 0),
    ("timer_delete", 0),
    ("clock_settime", TCL),
    ("clock_gettime", TCL),
    ("clock_getres", TCL),
    ("clock_nanosleep", 0),
    ("exit_group", TP),
    ("epoll_wait", TD),
    ("epoll_ctl", TD),
    ("tgkill", TS | TP),
    ("utimes", TF),
    ("vserver", 0),
    ("mbind", TM),
    ("set_mempolicy", TM),
    ("get_mempolicy", TM),
    ("mq_open", TD),
    ("mq_unlink", 0),
    ("mq_timedsend", TD),
    ("mq_timedreceive", TD),
    ("mq_notify", TD),
    ("mq_getsetattr", TD),
    ("kexec_load", 0),
    ("waitid", TP),
    ("add_key", 0),
    ("request_key", 0),
    ("keyctl", 0),
    ("ioprio_set", 0),
    ("ioprio_get", 0),
    ("inotify_init", TD),
    ("inotify_add_watch", TD | TF),
    ("inotify_rm_watch", TD),
    ("migrate_pages", TM),
    ("openat", TD | TF),
    ("mkdirat", TD | TF),
    ("mknodat", TD | TF),
    ("fchownat", TD | TF),
    ("futimesat", TD | TF),
    ("newfstatat", TD | TF | TFST | TSTA),
    ("unlinkat", TD | TF),
    ("renameat", TD | TF),
    ("linkat", TD | TF),
    ("symlinkat", TD | TF),
    ("readlinkat", TD | TF),
    ("fchmodat", TD | TF),
    ("faccessat", TD | TF),
    ("pselect6", TD),
    ("ppoll", TD),
    ("unshare", 0),
    ("set_robust_list", 0),
    ("get_robust_list", 0),
    ("splice", TD),
    ("tee", TD),
    ("sync_file_range", TD),
    ("vmsplice", TD),
    ("move_pages", TM),
    ("utimensat", TD | TF),
    ("epoll_pwait", TD),
    ("signalfd", TD | TS),
    ("timerfd_create", TD),
    ("eventfd", TD),
    ("fallocate", TD),
    ("timerfd_settime", TD),
    ("timerfd_gettime", TD),
    ("accept4", TN),
    ("signalfd4", TD | TS),
    ("eventfd2", TD),
    ("epoll_create1", TD),
    ("dup3", TD),
    ("pipe2", TD),
    ("inotify_init1", TD),
    ("preadv", TD),
    ("pwritev", TD),
    ("rt_tgsigqueueinfo", TP | TS),
    ("perf_event_open", TD),
    ("recvmmsg", TN),
    ("fanotify_init", TD),
    ("fanotify_mark", TD | TF),
    ("prlimit64", 0),
    ("name_to_handle_at", TD | TF),
    ("open_by_handle_at", TD),
    ("clock_adjtime", TCL),
    ("syncfs", TD),
    ("sendmmsg", TN),
    ("setns", TD),
    ("getcpu", 0),
    ("process_vm_readv", 0),
    ("process_vm_writev", 0),
    ("kcmp", 0),
    ("finit_module", TD),
    ("sched_setattr", 0),
    ("sched_getattr", 0),
    ("renameat2", TD | TF),
    ("seccomp", 0),
    ("getrandom", 0),
    ("memfd_create", TD),
    ("kexec_file_load", TD),
    ("bpf", TD),
    ("execveat", TD | TF | TP),
    ("userfaultfd", TD),
    ("membarrier", 0),
    ("mlock2", TM),
    ("copy_file_range", TD),
    ("preadv2", TD),
    ("pwritev2", TD),
    ("pkey_mprotect", TM),
    ("pkey_alloc", 0),
    ("pkey_free", 0),
    ("statx", TD | TF | TFST | TSTA),
    ("io_pgetevents", 0),
    ("rseq", 0),
    ("pidfd_send_signal", TD | TS | TP),
    ("io_uring_setup", TD),
    ("io_uring_enter", TD | TS),
    ("io_uring_register", TD | TM),
    ("open_tree", TD | TF),
    ("move_mount", TD | TF),
    ("fsopen", TD),
    ("fsconfig", TD | TF),
    ("fsmount", TD),
    ("fspick", TD | TF),
    ("pidfd_open", TD),
    ("clone3", TP),
    ("close_range", 0),
    ("openat2", TD | TF),
    ("pidfd_getfd", TD),
    ("faccessat2", TD | TF),
    ("process_madvise", TD),
    ("epoll_pwait2", TD),
    ("mount_setattr", TD | TF),
    ("quotactl_fd", TD),
    ("landlock_create_ruleset", TD),
    ("landlock_add_rule", TD),
    ("landlock_restrict_self", TD),
    ("memfd_secret", TD),
    ("process_mrelease", TD),
    ("futex_waitv", 0),
    ("set_mempolicy_home_node", TM),
    ("cachestat", TD),
    ("fchmodat2", TD | TF),
    ("map_shadow_stack", TM),
    ("futex_wake", 0),
    ("futex_wait", 0),
    ("futex_requeue", 0),
    ("statmount", 0),
    ("listmount", 0),
    ("lsm_get_self_attr", 0),
    ("lsm_set_self_attr", 0),
    ("lsm_list_modules", 0),
    ]
};

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
        for &(name, bits) in CLASSES {
            if let Ok(s) = name.parse::<Sysno>() {
                if let Some(r) = rows.get_mut(s.id() as usize) {
                    r.class = bits;
                }
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
                    a.len() <= n as usize || row.name == "clone" || row.name == "rt_sigreturn",
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
        assert_eq!(class_of("getpid"), class::PURE);
        assert_eq!(class_of("socket"), class::NETWORK);
        assert_eq!(class_of("shmat"), class::IPC | class::MEMORY);
        assert_eq!(
            class_of("newfstatat"),
            class::DESC | class::FILE | class::FSTAT | class::STAT_LIKE
        );
        assert_eq!(class_of("close_range"), 0);
    }

    #[test]
    fn every_named_syscall_has_its_classes() {
        let named: std::collections::BTreeSet<&str> = CLASSES.iter().map(|&(n, _)| n).collect();
        assert_eq!(named.len(), CLASSES.len(), "a name appears twice");
        for s in Sysno::iter() {
            assert!(named.contains(s.name()), "{} has no class entry", s.name());
        }
        for &(n, _) in CLASSES {
            assert!(n.parse::<Sysno>().is_ok(), "{n} is not a syscall");
        }
    }
}
