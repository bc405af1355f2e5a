//! Argument decoders: one `Arg` kind per way of printing a syscall argument.
//!
//! A syscall's row in `table` lists its arguments' kinds. Kinds the kernel fills in
//! (`BufOut`, `StatOut`, ...) are printed at syscall exit, everything before the first
//! of them at entry — strace's split that makes `read(3, ` appear while the call blocks.
//! Kinds that are both in and out (`LenInOut`) capture their entry value in a
//! per-thread slot so the exit can print `[128 => 16]`.

pub mod creds;
pub mod fds;
pub mod flags;
pub mod fs;
pub mod ipc;
pub mod memory;
pub mod net;
pub mod poll;
pub mod process;
pub mod sched;
pub mod strings;
pub mod sys;

use std::fmt::Write;
use strings::ptr;

/// What a decoder needs: whose memory to read, the `-s` limit, a reusable buffer.
pub struct Ctx {
    pub pid: i32,
    pub max_str: usize,
    pub scratch: Vec<u8>,
    /// strace's `-v`: print structures whole.
    pub verbose: bool,
    /// `-y` (1) / `-yy` (2): what each descriptor refers to, after its number.
    pub fd_paths: u8,
    /// `-X`: names, numbers, or both.
    pub xlat: Xlat,
    /// `-y` texts kept while valid (see `fdinfo::FdCache`); None when not every
    /// call is seen.
    pub fd_cache: Option<crate::fdinfo::FdCache>,
}

impl Ctx {
    /// A descriptor: its number, and with `-y` what it refers to.
    pub fn fd(&mut self, out: &mut String, fd: i64) {
        int(out, fd);
        if self.fd_paths == 0 {
            return;
        }
        match &mut self.fd_cache {
            Some(c) => c.describe(out, self.pid, fd, self.fd_paths),
            None => {
                crate::fdinfo::describe(out, self.pid, fd, self.fd_paths);
            }
        }
    }
}

/// How one argument prints. Indices (`u8`) name another argument of the same call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Signed decimal (32-bit, as C's `int`).
    Int,
    /// Signed decimal (64-bit: offsets, lengths that may be negative).
    Long,
    Uint,
    /// `0x...`, `0` for zero.
    Hex,
    /// `NULL` or `0x...`.
    Ptr,
    Fd,
    /// A directory fd: `AT_FDCWD` for -100.
    DirFd,
    Path,
    CStr,
    /// Data the tracee gives: `len` is argument `.0`.
    BufIn(u8),
    /// Data the kernel returns: as many bytes as the return value, at exit.
    BufOut,
    /// getrandom's bytes, hex-escaped like strace.
    RandomOut,
    /// A NUL-terminated string the kernel returns (getcwd).
    CStrOut,
    OpenFlags,
    /// Printed only when the open flags (argument `.0`) include O_CREAT or O_TMPFILE.
    OpenMode(u8),
    Mode,
    AccessMode,
    AtFlags,
    Prot,
    MmapFlags,
    Whence,
    SockDomain,
    SockType,
    /// `SOCK_CLOEXEC|SOCK_NONBLOCK` (accept4).
    SockFlags,
    /// Protocol, interpreted by the domain in argument `.0`.
    SockProto(u8),
    /// A sockaddr the tracee gives; its length is argument `.0`.
    SockaddrIn(u8),
    /// A sockaddr the kernel fills; its length pointer is argument `.0`.
    SockaddrOut(u8),
    /// A `socklen_t *` read at entry and exit: `[128 => 16]`.
    LenInOut,
    MsgFlags,
    SockLevel,
    /// Option name, interpreted by the level in argument `.0`.
    SockOpt(u8),
    /// Option value; its length is argument `.0`.
    SockOptVal(u8),
    Shutdown,
    FcntlCmd,
    /// fcntl's third argument, interpreted by the command in argument `.0`.
    FcntlArg(u8),
    FdFlags,
    Argv,
    Envp,
    Signal,
    SigHow,
    SigsetIn,
    SigsetOut,
    SigactionIn,
    SigactionOut,
    /// clone(2)'s five arguments as strace names them (the row has this one kind).
    CloneArgs,
    Clone3Args,
    WaitStatusOut,
    WaitOptions,
    EpollOp,
    EpollCreateFlags,
    EpollEventIn,
    /// epoll_wait's events, as many as the return value.
    EpollEventsOut,
    StatOut,
    /// An `off_t *` read at entry and exit (sendfile): `[0] => [1234]`.
    OffInOut,
    /// `int[2]` filled by the kernel (pipe, socketpair).
    FdPairOut,
    ArchPrctl,
    Fadvise,
    Rlimit,
    RlimitIn,
    RlimitOut,
    TimespecIn,
    IovIn(u8),
    IovOut(u8),
    FutexOp,
    /// futex's timeout, uaddr2 and val3: shown only for the ops that use them (`.0` = 3, 4, 5).
    FutexTail(u8),
    GrndFlags,
    IoctlCmd,
    Madvise,
    /// getdents64's buffer: the number of entries the kernel returned.
    DirentsOut,
    /// sendmsg's `struct msghdr` (its iovecs' data, all of it sent).
    MsghdrIn,
    /// recvmsg's `struct msghdr` at exit (as many data bytes as were received).
    MsghdrOut,
    ClockId,
    MlockFlags,
    MlockallFlags,
    MsyncFlags,
    MremapFlags,
    /// mremap's new address: shown only with MREMAP_FIXED or MREMAP_DONTUNMAP in `.0`.
    MremapNew(u8),
    /// mincore's page vector; the range's length is argument `.0`.
    MincoreVec(u8),
    StatxFlags,
    StatxMask,
    StatxOut,
    StatfsOut,
    /// `struct pollfd[n]`, `n` is argument `.0`.
    PollFds(u8),
    /// An `fd_set` of argument `.0` bits.
    FdSet(u8),
    PselectSigmask,
    TimevalIn,
    /// A uid or gid (`-1` for "unchanged").
    Id,
    IdOut,
    /// A gid list of argument `.0` entries.
    GidListIn(u8),
    /// getgroups' list: as many entries as the return value.
    GidListOut,
    CapHeader,
    /// Capability data; the header (its version) is argument `.0`.
    CapDataIn(u8),
    CapDataOut(u8),
    /// prctl's five arguments, by option (the row has this one kind).
    Prctl,
    /// getsockopt's value at exit; its length pointer is argument `.0`.
    SockOptValOut(u8),
    EfdFlags,
    TfdFlags,
    TfdSetFlags,
    SfdFlags,
    InotifyInitFlags,
    InotifyMask,
    MfdFlags,
    SpliceFlags,
    CloseRangeFlags,
    PidfdFlags,
    ItimerspecIn,
    ItimerspecOut,
    /// An `loff_t *` shown with its value at entry: `[2]`.
    OffIn,
    /// openat2's `struct open_how`; its size is argument `.0`.
    OpenHow(u8),
    SchedPolicy,
    SchedParamIn,
    SchedParamOut,
    /// A CPU set given by the tracee; its size is argument `.0`.
    CpuSetIn(u8),
    /// sched_getaffinity's set: as many bytes as the return value.
    CpuSetOut,
    TimespecOut,
    IdType,
    SiginfoOut,
    StackIn,
    StackOut,
    IpcKey,
    IpcGetFlags,
    ShmatFlags,
    ShmctlCmd,
    SemctlCmd,
    MsgctlCmd,
    /// semop's operations; their count is argument `.0`.
    Sembufs(u8),
    IpcMsgFlags,
    /// msgsnd's buffer; the text's size is argument `.0`.
    MsgbufIn(u8),
    /// msgrcv's buffer at exit; the text's size is argument `.0`.
    MsgbufOut(u8),
    MountFlags,
    UmountFlags,
    /// seccomp's three arguments, by operation (the row has this one kind).
    Seccomp,
    BpfCmd,
    PerfAttr,
    PerfFlags,
    IoUringParams,
    IoringEnterFlags,
    IoringRegisterOp,
    FanInitFlags,
    FanMarkFlags,
    FanEvents,
    /// ioctl's third argument, by the request in argument `.0`, at exit.
    IoctlArg(u8),
    /// sendmmsg's vector, at exit (the kernel fills each msg_len); count in `.0`.
    MmsgIn(u8),
    /// recvmmsg's vector at exit: as many entries as the return value.
    MmsgOut,
    AccessAtFlags,
    UtsnameOut,
    SysinfoOut,
    /// rt_sigreturn's mask, read from the signal frame (the row has this one kind).
    Sigreturn,
    /// utimensat's `struct timespec[2]`, or NULL.
    Timespec2,
    FlockOp,
    XattrFlags,
    RwfFlags,
    PrioWhich,
    ItimerWhich,
    ItimervalIn,
    ItimervalOut,
    /// mknod's mode; the device number (argument `.0`) follows for device files.
    MknodMode(u8),
    /// An `int *` / `unsigned *` the kernel fills: `[0]`.
    IntOut,
    /// personality's argument: `0xffffffff` (a query) or the flags.
    Personality,
    RenameFlags,
    TimevalOut,
    /// unshare's and setns's namespace flags (CLONE_NEW*).
    NsFlags,
    SyncFileRangeFlags,
    RusageWho,
    SchedAttrIn,
    /// sched_getattr's attributes, at exit.
    SchedAttrOut,
    MembarrierCmd,
    TimerFlags,
    /// A `siginfo_t` the tracee gives (rt_sigqueueinfo), or NULL.
    SiginfoIn,
    /// A `struct rusage` the kernel fills (getrusage, wait4), or NULL.
    RusageOut,
    TmsOut,
}

impl Arg {
    /// Whether this argument is printed at syscall exit.
    pub fn at_exit(self) -> bool {
        matches!(
            self,
            Arg::BufOut
                | Arg::RandomOut
                | Arg::CStrOut
                | Arg::SockaddrOut(_)
                | Arg::LenInOut
                | Arg::SigsetOut
                | Arg::SigactionOut
                | Arg::WaitStatusOut
                | Arg::EpollEventsOut
                | Arg::StatOut
                | Arg::OffInOut
                | Arg::FdPairOut
                | Arg::RlimitOut
                | Arg::IovOut(_)
                | Arg::DirentsOut
                | Arg::MsghdrOut
                | Arg::MincoreVec(_)
                | Arg::StatxOut
                | Arg::StatfsOut
                | Arg::IdOut
                | Arg::GidListOut
                | Arg::CapDataOut(_)
                | Arg::Prctl
                | Arg::SockOptValOut(_)
                | Arg::ItimerspecOut
                | Arg::SchedParamOut
                | Arg::CpuSetOut
                | Arg::TimespecOut
                | Arg::SiginfoOut
                | Arg::StackOut
                | Arg::MsgbufOut(_)
                | Arg::IoctlArg(_)
                | Arg::MmsgIn(_)
                | Arg::MmsgOut
                | Arg::UtsnameOut
                | Arg::SysinfoOut
                | Arg::Clone3Args
                | Arg::ItimervalOut
                | Arg::IntOut
                | Arg::TimevalOut
                | Arg::IoUringParams
                | Arg::RusageOut
                | Arg::TmsOut
                | Arg::SchedAttrOut
        )
    }

    /// Whether a value must be captured at entry for the exit to print.
    pub fn captures(self) -> bool {
        matches!(self, Arg::LenInOut | Arg::OffInOut)
    }
}

/// Captures the entry value of an in/out argument (see `Arg::captures`).
pub fn capture(ctx: &mut Ctx, kind: Arg, v: u64) -> u64 {
    match kind {
        Arg::LenInOut => crate::mem::read_u32(ctx.pid, v).map_or(u64::MAX, u64::from),
        Arg::OffInOut => crate::mem::read_u64(ctx.pid, v).unwrap_or(u64::MAX),
        _ => 0,
    }
}

/// Whether a raw return value is an error (`-4095..-1`).
pub fn is_error(ret: i64) -> bool {
    (-4095..0).contains(&ret)
}

/// Appends argument `i` of kind `kind`. `ret` is the return value at exit (None at
/// entry); `saved` holds captured entry values. Returns false if nothing was printed
/// (an optional argument that is absent), so the caller can drop the separator.
pub fn arg(
    ctx: &mut Ctx,
    out: &mut String,
    kind: Arg,
    i: usize,
    a: &[u64; 6],
    ret: Option<i64>,
    saved: u64,
) -> bool {
    if ctx.xlat == Xlat::Abbrev {
        return arg_abbrev(ctx, out, kind, i, a, ret, saved);
    }
    let Some(decimal) = symbolic(kind) else {
        return arg_abbrev(ctx, out, kind, i, a, ret, saved);
    };
    if kind == Arg::DirFd && a[i] as i32 != libc::AT_FDCWD {
        return arg_abbrev(ctx, out, kind, i, a, ret, saved);
    }
    if kind == Arg::SockType && a[i] & !0xf != 0 {
        // strace styles the type and the flags apart: `0x1 /* SOCK_STREAM */|0x80000 /* SOCK_CLOEXEC */`.
        let (ty, fl) = (a[i] & 0xf, a[i] & !0xf);
        let mut names = String::new();
        flags::sock_type(&mut names, ty);
        styled(ctx.xlat, out, &format!("{ty:#x}"), &names);
        out.push('|');
        names.clear();
        flags::flags(&mut names, fl, flags::SOCK_FLAGS, "0");
        styled(ctx.xlat, out, &format!("{fl:#x}"), &names);
        return true;
    }
    let mark = out.len();
    if !arg_abbrev(ctx, out, kind, i, a, ret, saved) {
        return false;
    }
    let names = out.split_off(mark);
    let v = a[i];
    let raw = if decimal {
        format!("{}", v as i32)
    } else if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    };
    styled(ctx.xlat, out, &raw, &names);
    true
}

/// `raw`, or `raw /* names */` in the verbose style (when the names say more).
fn styled(style: Xlat, out: &mut String, raw: &str, names: &str) {
    out.push_str(raw);
    if style == Xlat::Verbose && names != raw {
        out.push_str(" /* ");
        out.push_str(names);
        out.push_str(" */");
    }
}

/// `-X`: how constants and flags print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Xlat {
    /// Names (`O_RDONLY|O_CLOEXEC`), strace's default.
    #[default]
    Abbrev,
    /// Numbers only (`0x80000`).
    Raw,
    /// Both (`0x80000 /* O_RDONLY|O_CLOEXEC */`).
    Verbose,
}

/// The kinds that print a number as names, and whether their number is decimal
/// (a signal, a descriptor) rather than hex.
fn symbolic(kind: Arg) -> Option<bool> {
    Some(match kind {
        Arg::Signal | Arg::DirFd => true,
        Arg::OpenFlags
        | Arg::AccessMode
        | Arg::AtFlags
        | Arg::AccessAtFlags
        | Arg::Prot
        | Arg::MmapFlags
        | Arg::Whence
        | Arg::SockDomain
        | Arg::SockType
        | Arg::SockFlags
        | Arg::SockProto(_)
        | Arg::MsgFlags
        | Arg::SockLevel
        | Arg::SockOpt(_)
        | Arg::Shutdown
        | Arg::FcntlCmd
        | Arg::FdFlags
        | Arg::SigHow
        | Arg::WaitOptions
        | Arg::EpollOp
        | Arg::EpollCreateFlags
        | Arg::ClockId
        | Arg::MlockFlags
        | Arg::MlockallFlags
        | Arg::MsyncFlags
        | Arg::MremapFlags
        | Arg::GrndFlags
        | Arg::Madvise
        | Arg::Fadvise
        | Arg::StatxFlags
        | Arg::StatxMask
        | Arg::EfdFlags
        | Arg::TfdFlags
        | Arg::TfdSetFlags
        | Arg::SfdFlags
        | Arg::InotifyInitFlags
        | Arg::InotifyMask
        | Arg::MfdFlags
        | Arg::SpliceFlags
        | Arg::CloseRangeFlags
        | Arg::PidfdFlags
        | Arg::RenameFlags
        | Arg::FlockOp
        | Arg::XattrFlags
        | Arg::RwfFlags
        | Arg::PrioWhich
        | Arg::ItimerWhich
        | Arg::RusageWho
        | Arg::TimerFlags
        | Arg::NsFlags
        | Arg::IdType
        | Arg::SchedPolicy
        | Arg::MountFlags
        | Arg::UmountFlags
        | Arg::IpcGetFlags
        | Arg::ShmatFlags
        | Arg::IpcMsgFlags
        | Arg::SyncFileRangeFlags
        | Arg::MembarrierCmd
        | Arg::ArchPrctl
        | Arg::FutexOp
        | Arg::Rlimit => false,
        _ => return None,
    })
}

fn arg_abbrev(
    ctx: &mut Ctx,
    out: &mut String,
    kind: Arg,
    i: usize,
    a: &[u64; 6],
    ret: Option<i64>,
    saved: u64,
) -> bool {
    let v = a[i];
    let failed = ret.is_some_and(is_error);
    match kind {
        Arg::Int => int(out, i64::from(v as i32)),
        Arg::Long => int(out, v as i64),
        Arg::Uint => uint(out, v),
        Arg::Hex => hex(out, v),
        Arg::Ptr => ptr(out, v),
        Arg::Fd => ctx.fd(out, i64::from(v as i32)),
        Arg::DirFd => {
            if v as i32 == libc::AT_FDCWD {
                out.push_str("AT_FDCWD");
                crate::fdinfo::describe_cwd(out, ctx.pid, ctx.fd_paths);
            } else {
                ctx.fd(out, i64::from(v as i32));
            }
        }
        Arg::Path => strings::path(ctx, out, v),
        Arg::CStr => strings::cstring(ctx, out, v),
        Arg::BufIn(len) => strings::buffer(ctx, out, v, a[len as usize]),
        Arg::BufOut | Arg::RandomOut | Arg::CStrOut => match ret {
            Some(r) if !failed => match kind {
                Arg::CStrOut => strings::path(ctx, out, v),
                Arg::RandomOut => random(ctx, out, v, r as u64),
                _ => strings::buffer(ctx, out, v, r as u64),
            },
            _ => ptr(out, v),
        },
        Arg::OpenFlags => flags::open_flags(out, v),
        Arg::OpenMode(fl) => {
            if a[fl as usize] & (0o100 | 0o20000000) == 0 {
                return false;
            }
            fs::mode(out, v);
        }
        Arg::Mode => fs::mode(out, v),
        Arg::AccessMode => flags::flags(out, v, flags::ACCESS_MODES, "F_OK"),
        Arg::AtFlags => flags::flags(out, v, flags::AT_FLAGS, "0"),
        Arg::Prot => flags::flags(out, v, flags::PROT, "PROT_NONE"),
        Arg::MmapFlags => memory::mmap_flags(out, v),
        Arg::Whence => flags::constant(out, v, flags::WHENCE, false),
        Arg::SockDomain => flags::constant(out, v, flags::AF, false),
        Arg::SockType => flags::sock_type(out, v),
        Arg::SockFlags => flags::flags(out, v, flags::SOCK_FLAGS, "0"),
        Arg::SockProto(d) => net::protocol(out, a[d as usize], v),
        Arg::SockaddrIn(len) => net::sockaddr(ctx, out, v, a[len as usize]),
        Arg::SockaddrOut(lenp) => {
            let len = crate::mem::read_u32(ctx.pid, a[lenp as usize]).unwrap_or(0);
            if failed || v == 0 {
                ptr(out, v);
            } else {
                net::sockaddr(ctx, out, v, len as u64);
            }
        }
        Arg::LenInOut => {
            if v == 0 {
                out.push_str("NULL");
            } else {
                let now = crate::mem::read_u32(ctx.pid, v).map_or(u64::MAX, u64::from);
                if saved == u64::MAX {
                    ptr(out, v);
                } else if failed || now == saved || now == u64::MAX {
                    let _ = write!(out, "[{saved}]");
                } else {
                    let _ = write!(out, "[{saved} => {now}]");
                }
            }
        }
        Arg::MsgFlags => flags::flags(out, v, flags::MSG_FLAGS, "0"),
        Arg::SockLevel => net::level(out, v),
        Arg::SockOpt(level) => net::sockopt_name(out, a[level as usize], v),
        Arg::SockOptVal(len) => net::sockopt_value(ctx, out, a[1], a[2], v, a[len as usize]),
        Arg::SockOptValOut(lenp) => match crate::mem::read_u32(ctx.pid, a[lenp as usize]) {
            Some(len) if !failed => net::sockopt_value(ctx, out, a[1], a[2], v, u64::from(len)),
            _ => ptr(out, v),
        },
        Arg::Shutdown => flags::constant(out, v, flags::SHUT, false),
        Arg::FcntlCmd => flags::constant(out, v, flags::FCNTL_CMD, false),
        Arg::FcntlArg(cmd) => match a[cmd as usize] {
            1 | 3 | 9 | 1025 | 1032 | 1034 => return false,
            2 => flags::flags(out, v, flags::FD_FLAGS, "0"),
            4 => flags::open_flags(out, v),
            0 | 1030 | 8 | 1024 | 1031 | 1033 => {
                let _ = write!(out, "{}", v as i32);
            }
            _ => ptr(out, v),
        },
        Arg::FdFlags => flags::flags(out, v, flags::OPEN_FLAGS, "0"),
        Arg::Argv => strings::argv(ctx, out, v),
        Arg::Envp => strings::envp(ctx, out, v),
        Arg::Signal => flags::signal(out, v),
        Arg::SigHow => flags::constant(out, v, flags::SIGPROCMASK_HOW, false),
        Arg::SigsetIn => process::sigset(ctx, out, v),
        Arg::SigsetOut => {
            if failed {
                ptr(out, v)
            } else {
                process::sigset(ctx, out, v)
            }
        }
        Arg::SigactionIn => process::sigaction(ctx, out, v),
        Arg::SigactionOut => {
            if failed {
                ptr(out, v)
            } else {
                process::sigaction(ctx, out, v)
            }
        }
        Arg::CloneArgs => process::clone_args(out, a),
        Arg::Clone3Args => process::clone3_args(ctx, out, a, ret.is_some() && !failed),
        Arg::WaitStatusOut => match crate::mem::read_u32(ctx.pid, v) {
            Some(s) if !failed && v != 0 && ret != Some(0) => process::wait_status(out, s as i32),
            _ => ptr(out, v),
        },
        Arg::WaitOptions => flags::flags(out, v, flags::WAIT_OPTIONS, "0"),
        Arg::EpollOp => flags::constant(out, v, flags::EPOLL_CTL, false),
        Arg::EpollCreateFlags => flags::flags(out, v, flags::EPOLL_CREATE, "0"),
        Arg::EpollEventIn => epoll_events(ctx, out, v, 1, false),
        Arg::EpollEventsOut => match ret {
            Some(r) if !failed => epoll_events(ctx, out, v, r as u64, true),
            _ => ptr(out, v),
        },
        Arg::StatOut => {
            if failed {
                ptr(out, v)
            } else {
                fs::stat(ctx, out, v)
            }
        }
        Arg::OffInOut => {
            if v == 0 {
                out.push_str("NULL");
            } else {
                let now = crate::mem::read_u64(ctx.pid, v);
                let _ = write!(out, "[{}]", saved as i64);
                if let (Some(n), false) = (now, failed) {
                    let _ = write!(out, " => [{}]", n as i64);
                }
            }
        }
        Arg::FdPairOut => {
            let mut b = [0u8; 8];
            if failed || crate::mem::read(ctx.pid, v, &mut b) < 8 {
                ptr(out, v);
            } else {
                let x = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                let y = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
                out.push('[');
                ctx.fd(out, i64::from(x));
                out.push_str(", ");
                ctx.fd(out, i64::from(y));
                out.push(']');
            }
        }
        Arg::ArchPrctl => match flags::lookup(v, flags::ARCH_PRCTL) {
            Some(n) => out.push_str(n),
            None => {
                let _ = write!(out, "{v:#x} /* ARCH_??? */");
            }
        },
        Arg::Fadvise => flags::constant(out, v, flags::FADVISE, false),
        Arg::Rlimit => flags::constant(out, v, fs::RLIMITS, false),
        Arg::RlimitIn => fs::rlimit(ctx, out, v),
        Arg::RlimitOut => {
            if failed {
                ptr(out, v)
            } else {
                fs::rlimit(ctx, out, v)
            }
        }
        Arg::TimespecIn => {
            if v == 0 {
                out.push_str("NULL");
            } else {
                fs::timespec(ctx, out, v)
            }
        }
        Arg::IovIn(cnt) => iovec(ctx, out, v, a[cnt as usize], u64::MAX),
        Arg::IovOut(cnt) => match ret {
            Some(r) if !failed => iovec(ctx, out, v, a[cnt as usize], r as u64),
            _ => ptr(out, v),
        },
        Arg::FutexOp => futex_op(out, v),
        Arg::FutexTail(which) => {
            let op = a[1] & 0x7f;
            let used = match which {
                3 => matches!(op, 0 | 6 | 9 | 11 | 13),
                4 => matches!(op, 3 | 4 | 5 | 12),
                _ => matches!(op, 4 | 5 | 9 | 10 | 12),
            };
            if !used {
                return false;
            }
            match (which, op) {
                (3, _) => {
                    if v == 0 {
                        out.push_str("NULL")
                    } else {
                        fs::timespec(ctx, out, v)
                    }
                }
                (4, 3 | 4) => {
                    let _ = write!(out, "{}", a[3] as i32);
                    out.push_str(", ");
                    ptr(out, v);
                }
                (4, _) => ptr(out, v),
                (_, 9 | 10) if v as u32 == u32::MAX => out.push_str("FUTEX_BITSET_MATCH_ANY"),
                _ => {
                    let _ = write!(out, "{}", v as i32);
                }
            }
        }
        Arg::GrndFlags => flags::flags(out, v, GRND_FLAGS, "0"),
        Arg::IoctlCmd => flags::constant(out, v & 0xffff_ffff, sys::IOCTLS, true),
        Arg::DirentsOut => match ret {
            Some(r) if !failed => fs::dirents(ctx, out, v, r as u64),
            _ => ptr(out, v),
        },
        Arg::MsghdrIn => msghdr(ctx, out, v, u64::MAX),
        Arg::MsghdrOut => match ret {
            Some(r) if !failed => msghdr(ctx, out, v, r as u64),
            _ => ptr(out, v),
        },
        Arg::Madvise => flags::xval(out, v, memory::MADVISE, "MADV_???"),
        Arg::ClockId => flags::constant(out, v, CLOCKS, false),
        Arg::MlockFlags => flags::flags(out, v, memory::MLOCK2_FLAGS, "0"),
        Arg::MlockallFlags => flags::flags(out, v, memory::MLOCKALL_FLAGS, "0"),
        Arg::MsyncFlags => flags::flags(out, v, memory::MSYNC_FLAGS, "0"),
        Arg::MremapFlags => flags::flags(out, v, memory::MREMAP_FLAGS, "0"),
        Arg::MremapNew(fl) => {
            if a[fl as usize] & 6 == 0 {
                return false;
            }
            ptr(out, v);
        }
        Arg::MincoreVec(len) => {
            if failed {
                ptr(out, v)
            } else {
                memory::mincore_vec(ctx, out, v, a[len as usize])
            }
        }
        Arg::StatxFlags => fs::statx_flags(out, v),
        Arg::StatxMask => flags::flags(out, v & 0xffff_ffff, fs::STATX_MASK, "0"),
        Arg::StatxOut => {
            if failed {
                ptr(out, v)
            } else {
                fs::statx(ctx, out, v)
            }
        }
        Arg::StatfsOut => {
            if failed {
                ptr(out, v)
            } else {
                fs::statfs(ctx, out, v)
            }
        }
        Arg::PollFds(n) => poll::pollfd_in(ctx, out, v, a[n as usize]),
        Arg::FdSet(n) => poll::fdset_in(ctx, out, v, a[n as usize]),
        Arg::PselectSigmask => poll::pselect_sigmask(ctx, out, v),
        Arg::TimevalIn => poll::timeval(ctx, out, v),
        Arg::Id => creds::id(out, v),
        Arg::IdOut => {
            if failed {
                ptr(out, v)
            } else {
                creds::id_out(ctx, out, v)
            }
        }
        Arg::GidListIn(n) => creds::gid_list(ctx, out, v, a[n as usize] as i32 as i64 as u64),
        Arg::GidListOut => match ret {
            // With size 0 the kernel only counts the groups: nothing was written.
            Some(_) if !failed && a[0] == 0 && v != 0 => out.push_str("[]"),
            Some(r) if !failed => creds::gid_list(ctx, out, v, r as u64),
            _ => ptr(out, v),
        },
        Arg::CapHeader => creds::cap_header(ctx, out, v),
        Arg::CapDataIn(h) => creds::cap_data(ctx, out, a[h as usize], v),
        Arg::CapDataOut(h) => {
            if failed {
                ptr(out, v)
            } else {
                creds::cap_data(ctx, out, a[h as usize], v)
            }
        }
        Arg::Prctl => creds::prctl(ctx, out, a, failed),
        Arg::EfdFlags => flags::flags(out, v, fds::EFD_FLAGS, "0"),
        Arg::TfdFlags => flags::flags(out, v, fds::TFD_FLAGS, "0"),
        Arg::TfdSetFlags => flags::flags(out, v, fds::TFD_SET_FLAGS, "0"),
        Arg::SfdFlags => flags::flags(out, v, fds::SFD_FLAGS, "0"),
        Arg::InotifyInitFlags => flags::flags(out, v, fds::IN_INIT_FLAGS, "0"),
        Arg::InotifyMask => flags::flags(out, v & 0xffff_ffff, fds::IN_MASK, "0"),
        Arg::MfdFlags => flags::flags(out, v, fds::MFD_FLAGS, "0"),
        Arg::SpliceFlags => flags::flags(out, v, fds::SPLICE_FLAGS, "0"),
        Arg::CloseRangeFlags => flags::flags(out, v, fds::CLOSE_RANGE_FLAGS, "0"),
        Arg::PidfdFlags => flags::flags(out, v, fds::PIDFD_FLAGS, "0"),
        Arg::ItimerspecIn => fds::itimerspec(ctx, out, v),
        Arg::ItimerspecOut | Arg::TimespecOut | Arg::SchedParamOut | Arg::StackOut if failed => {
            ptr(out, v)
        }
        Arg::ItimerspecOut => fds::itimerspec(ctx, out, v),
        Arg::TimespecOut => {
            if v == 0 {
                out.push_str("NULL")
            } else {
                fs::timespec(ctx, out, v)
            }
        }
        Arg::OffIn => fds::offset(ctx, out, v),
        Arg::OpenHow(size) => fds::open_how(ctx, out, v, a[size as usize]),
        Arg::SchedPolicy => sched::policy(out, v),
        Arg::SchedParamIn | Arg::SchedParamOut => sched::param(ctx, out, v),
        Arg::CpuSetIn(size) => sched::cpu_set(ctx, out, v, a[size as usize]),
        Arg::CpuSetOut => match ret {
            Some(r) if !failed => sched::cpu_set(ctx, out, v, r as u64),
            _ => ptr(out, v),
        },
        Arg::IdType => flags::xval(out, v, sched::ID_TYPES, "P_???"),
        Arg::SiginfoOut => {
            if failed {
                ptr(out, v)
            } else {
                sched::siginfo_at(ctx, out, v)
            }
        }
        Arg::StackIn | Arg::StackOut => sched::stack(ctx, out, v),
        Arg::IpcKey => ipc::key(out, v),
        Arg::IpcGetFlags => ipc::get_flags(out, v),
        Arg::ShmatFlags => flags::flags(out, v, ipc::SHMAT_FLAGS, "0"),
        Arg::ShmctlCmd => ipc::cmd(out, v, ipc::SHMCTL_CMDS, "SHM_???"),
        Arg::SemctlCmd => ipc::cmd(out, v, ipc::SEMCTL_CMDS, "SEM_???"),
        Arg::MsgctlCmd => ipc::cmd(out, v, ipc::MSGCTL_CMDS, "MSG_???"),
        Arg::Sembufs(n) => ipc::sembufs(ctx, out, v, a[n as usize]),
        Arg::IpcMsgFlags => flags::flags(out, v, ipc::MSG_FLAGS, "0"),
        Arg::MsgbufIn(size) => ipc::msgbuf(ctx, out, v, a[size as usize]),
        Arg::MsgbufOut(size) => {
            if failed {
                ptr(out, v)
            } else {
                ipc::msgbuf(ctx, out, v, a[size as usize])
            }
        }
        Arg::MountFlags => sys::mount_flags(out, v),
        Arg::UmountFlags => flags::flags(out, v, sys::UMOUNT_FLAGS, "0"),
        Arg::Seccomp => sys::seccomp(ctx, out, a),
        Arg::BpfCmd => flags::xval(out, v, sys::BPF_CMDS, "BPF_???"),
        Arg::PerfAttr => sys::perf_attr(ctx, out, v),
        Arg::PerfFlags => flags::flags(out, v, sys::PERF_FLAGS, "0"),
        Arg::IoUringParams => sys::io_uring_params(ctx, out, v, !failed),
        Arg::IoringEnterFlags => flags::flags(out, v, sys::IORING_ENTER_FLAGS, "0"),
        Arg::IoringRegisterOp => {
            flags::xval(out, v, sys::IORING_REGISTER_OPS, "IORING_REGISTER_???")
        }
        Arg::FanInitFlags => sys::fan_init_flags(out, v),
        Arg::FanMarkFlags => flags::flags(out, v, sys::FAN_MARK_FLAGS, "0"),
        Arg::FanEvents => flags::flags(out, v, sys::FAN_EVENTS, "0"),
        Arg::IoctlArg(req) => return sys::ioctl_arg(ctx, out, a[req as usize], v, failed),
        Arg::AccessAtFlags => flags::flags(out, v, flags::ACCESS_AT_FLAGS, "0"),
        Arg::UtsnameOut | Arg::SysinfoOut if failed => ptr(out, v),
        Arg::UtsnameOut => sys::utsname(ctx, out, v),
        Arg::SysinfoOut => sys::sysinfo(ctx, out, v),
        Arg::Sigreturn => sys::sigreturn(ctx, out),
        Arg::Timespec2 => {
            if v == 0 {
                out.push_str("NULL");
            } else {
                out.push('[');
                fs::timespec(ctx, out, v);
                out.push_str(", ");
                fs::timespec(ctx, out, v + 16);
                out.push(']');
            }
        }
        Arg::TimevalOut => {
            if failed {
                ptr(out, v)
            } else {
                poll::timeval(ctx, out, v)
            }
        }
        Arg::SchedAttrIn => sched::sched_attr(ctx, out, v),
        Arg::SchedAttrOut => {
            if failed {
                ptr(out, v)
            } else {
                sched::sched_attr(ctx, out, v)
            }
        }
        Arg::MembarrierCmd => flags::xval(out, v, sched::MEMBARRIER_CMDS, "MEMBARRIER_CMD_???"),
        Arg::SiginfoIn => sched::siginfo_at(ctx, out, v),
        Arg::TimerFlags => flags::flags(out, v, &[(1, "TIMER_ABSTIME")], "0"),
        Arg::RusageWho => flags::xval(out, v as i32 as i64 as u64, sched::RUSAGE_WHO, "RUSAGE_???"),
        Arg::RusageOut | Arg::TmsOut if failed && v != 0 => ptr(out, v),
        Arg::RusageOut => sched::rusage(ctx, out, v),
        Arg::TmsOut => sched::tms(ctx, out, v),
        Arg::NsFlags => flags::flags(out, v, flags::CLONE_FLAGS, "0"),
        Arg::SyncFileRangeFlags => flags::flags(out, v, fds::SYNC_FILE_RANGE_FLAGS, "0"),
        Arg::RenameFlags => flags::flags(out, v, fds::RENAME_FLAGS, "0"),
        Arg::FlockOp => flags::flags(out, v, fds::FLOCK_OPS, "0"),
        Arg::XattrFlags => flags::flags(out, v, fds::XATTR_FLAGS, "0"),
        Arg::RwfFlags => flags::flags(out, v, fds::RWF_FLAGS, "0"),
        Arg::PrioWhich => flags::xval(out, v, fds::PRIO_WHICH, "PRIO_???"),
        Arg::ItimerWhich => flags::xval(out, v, fds::ITIMER_WHICH, "ITIMER_???"),
        Arg::ItimervalIn => fds::itimerval(ctx, out, v),
        Arg::ItimervalOut | Arg::IntOut if failed => ptr(out, v),
        Arg::ItimervalOut => fds::itimerval(ctx, out, v),
        Arg::IntOut => match crate::mem::read_u32(ctx.pid, v) {
            Some(x) if v != 0 => {
                let _ = write!(out, "[{}]", x as i32);
            }
            _ => ptr(out, v),
        },
        Arg::MknodMode(dev) => fds::mknod_mode(out, v, a[dev as usize]),
        Arg::Personality => {
            if v as u32 == u32::MAX {
                hex(out, v & 0xffff_ffff)
            } else {
                fds::personality(out, v)
            }
        }
        Arg::MmsgIn(n) => sys::mmsghdrs(ctx, out, v, a[n as usize], false),
        Arg::MmsgOut => match ret {
            Some(r) if !failed => sys::mmsghdrs(ctx, out, v, r as u64, true),
            _ => ptr(out, v),
        },
    }
    true
}

/// strace's `%#lx`: `0` for zero, `0x1f` otherwise.
pub fn hex(out: &mut String, v: u64) {
    if v == 0 {
        out.push('0');
    } else {
        hex_prefixed(out, v);
    }
}

/// Decimal digits of `v`, without going through `core::fmt` (this runs at every stop).
pub fn uint(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
}

/// Signed decimal.
pub fn int(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    uint(out, v.unsigned_abs());
}

/// `0x` and lowercase hex digits, without `core::fmt`.
pub fn hex_prefixed(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 18];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    at -= 2;
    buf[at] = b'0';
    buf[at + 1] = b'x';
    // Only ASCII was written.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
}

/// A value with no decoder: small numbers in decimal, addresses and masks in hex.
pub fn raw(out: &mut String, v: u64) {
    let s = v as i64;
    if (-4096..=0xffff).contains(&s) {
        int(out, s);
    } else {
        hex_prefixed(out, v);
    }
}

fn random(ctx: &mut Ctx, out: &mut String, addr: u64, len: u64) {
    let want = (len as usize).min(ctx.max_str);
    let mut scratch = std::mem::take(&mut ctx.scratch);
    scratch.clear();
    scratch.resize(want, 0);
    if crate::mem::read(ctx.pid, addr, &mut scratch) < want {
        ptr(out, addr);
    } else {
        out.push('"');
        for b in &scratch {
            let _ = write!(out, "\\x{b:02x}");
        }
        out.push('"');
        if len as usize > want {
            out.push_str("...");
        }
    }
    ctx.scratch = scratch;
}

/// `struct epoll_event` is packed on x86_64: 4 bytes of events, 8 of data.
fn epoll_events(ctx: &mut Ctx, out: &mut String, addr: u64, n: u64, array: bool) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    if array {
        out.push('[');
    }
    let shown = n.min(ctx.max_str as u64);
    for k in 0..shown {
        let mut b = [0u8; 12];
        if crate::mem::read(ctx.pid, addr + 12 * k, &mut b) < 12 {
            if k == 0 && !array {
                ptr(out, addr);
                return;
            }
            break;
        }
        if k > 0 {
            out.push_str(", ");
        }
        let ev = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let mut d = [0u8; 8];
        d.copy_from_slice(&b[4..12]);
        let data = u64::from_ne_bytes(d);
        out.push_str("{events=");
        flags::flags(out, ev as u64, flags::EPOLL_EVENTS, "0");
        let _ = write!(out, ", data={{u32={}, u64={}}}}}", data as u32, data);
    }
    if shown < n {
        out.push_str(", ...");
    }
    if array {
        out.push(']');
    }
}

/// `[{iov_base="...", iov_len=5}, ...]`; at exit only `budget` bytes are shown in all.
fn iovec(ctx: &mut Ctx, out: &mut String, addr: u64, cnt: u64, mut budget: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    out.push('[');
    let shown = cnt.min(ctx.max_str as u64).min(1024);
    for k in 0..shown {
        let (Some(base), Some(len)) = (
            crate::mem::read_u64(ctx.pid, addr + 16 * k),
            crate::mem::read_u64(ctx.pid, addr + 16 * k + 8),
        ) else {
            break;
        };
        if k > 0 {
            out.push_str(", ");
        }
        out.push_str("{iov_base=");
        let data = len.min(budget);
        strings::buffer(ctx, out, base, data);
        budget -= data;
        let _ = write!(out, ", iov_len={len}}}");
    }
    if shown < cnt {
        out.push_str(", ...");
    }
    out.push(']');
}

const GRND_FLAGS: flags::Xlat = &[
    (1, "GRND_NONBLOCK"),
    (2, "GRND_RANDOM"),
    (4, "GRND_INSECURE"),
];

/// x86_64 `struct msghdr`: name@0, namelen@8, iov@16, iovlen@24, control@32,
/// controllen@40, flags@48.
pub(crate) fn msghdr(ctx: &mut Ctx, out: &mut String, addr: u64, budget: u64) {
    let mut b = [0u8; 56];
    if addr == 0 || crate::mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    let namelen = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let msg_flags = i32::from_ne_bytes([b[48], b[49], b[50], b[51]]);
    out.push_str("{msg_name=");
    net::sockaddr(ctx, out, word(0), u64::from(namelen));
    let _ = write!(out, ", msg_namelen={namelen}, msg_iov=");
    iovec(ctx, out, word(16), word(24), budget);
    let _ = write!(out, ", msg_iovlen={}", word(24));
    if word(40) != 0 {
        out.push_str(", msg_control=");
        ptr(out, word(32));
    }
    let _ = write!(out, ", msg_controllen={}, msg_flags=", word(40));
    flags::flags(out, msg_flags as u32 as u64, flags::MSG_FLAGS, "0");
    out.push('}');
}

const CLOCKS: flags::Xlat = &[
    (0, "CLOCK_REALTIME"),
    (1, "CLOCK_MONOTONIC"),
    (2, "CLOCK_PROCESS_CPUTIME_ID"),
    (3, "CLOCK_THREAD_CPUTIME_ID"),
    (4, "CLOCK_MONOTONIC_RAW"),
    (5, "CLOCK_REALTIME_COARSE"),
    (6, "CLOCK_MONOTONIC_COARSE"),
    (7, "CLOCK_BOOTTIME"),
];

const FUTEX_OPS: flags::Xlat = &[
    (0, "FUTEX_WAIT"),
    (1, "FUTEX_WAKE"),
    (2, "FUTEX_FD"),
    (3, "FUTEX_REQUEUE"),
    (4, "FUTEX_CMP_REQUEUE"),
    (5, "FUTEX_WAKE_OP"),
    (6, "FUTEX_LOCK_PI"),
    (7, "FUTEX_UNLOCK_PI"),
    (8, "FUTEX_TRYLOCK_PI"),
    (9, "FUTEX_WAIT_BITSET"),
    (10, "FUTEX_WAKE_BITSET"),
    (11, "FUTEX_WAIT_REQUEUE_PI"),
    (12, "FUTEX_CMP_REQUEUE_PI"),
    (13, "FUTEX_LOCK_PI2"),
];

fn futex_op(out: &mut String, v: u64) {
    flags::constant(out, v & 0x7f, FUTEX_OPS, false);
    if v & 128 != 0 {
        out.push_str("_PRIVATE");
    }
    if v & 256 != 0 {
        out.push_str("|FUTEX_CLOCK_REALTIME");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msghdr_from_own_memory() {
        let mut ctx = Ctx {
            pid: std::process::id() as i32,
            max_str: 32,
            scratch: Vec::new(),
            verbose: false,
            fd_paths: 0,
            xlat: Default::default(),
            fd_cache: None,
        };
        let data = *b"ping\n";
        let iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &iov as *const libc::iovec as *mut libc::iovec;
        m.msg_iovlen = 1;
        let mut out = String::new();
        msghdr(
            &mut ctx,
            &mut out,
            &m as *const libc::msghdr as u64,
            u64::MAX,
        );
        assert_eq!(
            out,
            r#"{msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="ping\n", iov_len=5}], msg_iovlen=1, msg_controllen=0, msg_flags=0}"#
        );
        // At recvmsg's exit only the received bytes are shown.
        out.clear();
        msghdr(&mut ctx, &mut out, &m as *const libc::msghdr as u64, 2);
        assert!(out.contains(r#"iov_base="pi", iov_len=5"#), "{out}");
    }
}
