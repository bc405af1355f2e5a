//! Whole-system interfaces: mount and friends, seccomp, bpf, perf_event_open,
//! io_uring, fanotify, and the ioctl requests whose argument strace decodes
//! (terminals, FIONREAD-style integers, block-device sizes).

use super::flags::{self, Xlat};
use super::strings::ptr;
use super::Ctx;
use crate::mem;
use std::fmt::Write;

const MS_FLAGS: Xlat = &[
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (16, "MS_SYNCHRONOUS"),
    (32, "MS_REMOUNT"),
    (64, "MS_MANDLOCK"),
    (128, "MS_DIRSYNC"),
    (256, "MS_NOSYMFOLLOW"),
    (1024, "MS_NOATIME"),
    (2048, "MS_NODIRATIME"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (32768, "MS_SILENT"),
    (1 << 16, "MS_POSIXACL"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 21, "MS_RELATIME"),
    (1 << 22, "MS_KERNMOUNT"),
    (1 << 23, "MS_I_VERSION"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
    (1 << 30, "MS_ACTIVE"),
    (1 << 31, "MS_NOUSER"),
];

/// mount's flags; the old magic number in the high half prints as `MS_MGC_VAL`.
pub fn mount_flags(out: &mut String, v: u64) {
    let v = v & 0xffff_ffff;
    let mut rest = v;
    if v & 0xffff_0000 == 0xc0ed_0000 {
        out.push_str("MS_MGC_VAL");
        rest &= 0xffff;
        if rest == 0 {
            return;
        }
        out.push('|');
    }
    flags::flags(out, rest, MS_FLAGS, "0");
}

pub const UMOUNT_FLAGS: Xlat = &[
    (1, "MNT_FORCE"),
    (2, "MNT_DETACH"),
    (4, "MNT_EXPIRE"),
    (8, "UMOUNT_NOFOLLOW"),
];

const SECCOMP_OPS: Xlat = &[
    (0, "SECCOMP_SET_MODE_STRICT"),
    (1, "SECCOMP_SET_MODE_FILTER"),
    (2, "SECCOMP_GET_ACTION_AVAIL"),
    (3, "SECCOMP_GET_NOTIF_SIZES"),
];
const SECCOMP_FILTER_FLAGS: Xlat = &[
    (1, "SECCOMP_FILTER_FLAG_TSYNC"),
    (2, "SECCOMP_FILTER_FLAG_LOG"),
    (4, "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
    (8, "SECCOMP_FILTER_FLAG_NEW_LISTENER"),
    (16, "SECCOMP_FILTER_FLAG_TSYNC_ESRCH"),
];
const SECCOMP_RET: Xlat = &[
    (0x8000_0000, "SECCOMP_RET_KILL_PROCESS"),
    (0, "SECCOMP_RET_KILL_THREAD"),
    (0x0003_0000, "SECCOMP_RET_TRAP"),
    (0x0005_0000, "SECCOMP_RET_ERRNO"),
    (0x7fc0_0000, "SECCOMP_RET_USER_NOTIF"),
    (0x7ff0_0000, "SECCOMP_RET_TRACE"),
    (0x7ffc_0000, "SECCOMP_RET_LOG"),
    (0x7fff_0000, "SECCOMP_RET_ALLOW"),
];

/// seccomp's three arguments, by operation.
pub fn seccomp(ctx: &mut Ctx, out: &mut String, a: &[u64; 6]) {
    flags::xval(out, a[0], SECCOMP_OPS, "SECCOMP_SET_MODE_???");
    out.push_str(", ");
    match a[0] {
        1 => {
            flags::flags(out, a[1], SECCOMP_FILTER_FLAGS, "0");
            out.push_str(", ");
            let (Some(len), Some(filter)) = (
                mem::read_u32(ctx.pid, a[2]),
                mem::read_u64(ctx.pid, a[2] + 8),
            ) else {
                ptr(out, a[2]);
                return;
            };
            let _ = write!(out, "{{len={}, filter=", len as u16);
            ptr(out, filter);
            out.push('}');
        }
        2 => {
            let _ = write!(out, "{}, ", a[1] as u32);
            match mem::read_u32(ctx.pid, a[2]) {
                Some(act) => {
                    out.push('[');
                    flags::xval(out, u64::from(act), SECCOMP_RET, "SECCOMP_RET_???");
                    out.push(']');
                }
                None => ptr(out, a[2]),
            }
        }
        _ => {
            let _ = write!(out, "{}, ", a[1] as u32);
            ptr(out, a[2]);
        }
    }
}

pub const BPF_CMDS: Xlat = &[
    (0, "BPF_MAP_CREATE"),
    (1, "BPF_MAP_LOOKUP_ELEM"),
    (2, "BPF_MAP_UPDATE_ELEM"),
    (3, "BPF_MAP_DELETE_ELEM"),
    (4, "BPF_MAP_GET_NEXT_KEY"),
    (5, "BPF_PROG_LOAD"),
    (6, "BPF_OBJ_PIN"),
    (7, "BPF_OBJ_GET"),
    (8, "BPF_PROG_ATTACH"),
    (9, "BPF_PROG_DETACH"),
    (10, "BPF_PROG_TEST_RUN"),
    (11, "BPF_PROG_GET_NEXT_ID"),
    (12, "BPF_MAP_GET_NEXT_ID"),
    (13, "BPF_PROG_GET_FD_BY_ID"),
    (14, "BPF_MAP_GET_FD_BY_ID"),
    (15, "BPF_OBJ_GET_INFO_BY_FD"),
    (16, "BPF_PROG_QUERY"),
    (17, "BPF_RAW_TRACEPOINT_OPEN"),
    (18, "BPF_BTF_LOAD"),
    (19, "BPF_BTF_GET_FD_BY_ID"),
    (20, "BPF_TASK_FD_QUERY"),
    (21, "BPF_MAP_LOOKUP_AND_DELETE_ELEM"),
    (22, "BPF_MAP_FREEZE"),
    (23, "BPF_BTF_GET_NEXT_ID"),
    (24, "BPF_MAP_LOOKUP_BATCH"),
    (25, "BPF_MAP_LOOKUP_AND_DELETE_BATCH"),
    (26, "BPF_MAP_UPDATE_BATCH"),
    (27, "BPF_MAP_DELETE_BATCH"),
    (28, "BPF_LINK_CREATE"),
    (29, "BPF_LINK_UPDATE"),
    (30, "BPF_LINK_GET_FD_BY_ID"),
    (31, "BPF_LINK_GET_NEXT_ID"),
    (32, "BPF_ENABLE_STATS"),
    (33, "BPF_ITER_CREATE"),
    (34, "BPF_LINK_DETACH"),
    (35, "BPF_PROG_BIND_MAP"),
];

const PERF_TYPES: Xlat = &[
    (0, "PERF_TYPE_HARDWARE"),
    (1, "PERF_TYPE_SOFTWARE"),
    (2, "PERF_TYPE_TRACEPOINT"),
    (3, "PERF_TYPE_HW_CACHE"),
    (4, "PERF_TYPE_RAW"),
    (5, "PERF_TYPE_BREAKPOINT"),
];
const PERF_SW: Xlat = &[
    (0, "PERF_COUNT_SW_CPU_CLOCK"),
    (1, "PERF_COUNT_SW_TASK_CLOCK"),
    (2, "PERF_COUNT_SW_PAGE_FAULTS"),
    (3, "PERF_COUNT_SW_CONTEXT_SWITCHES"),
    (4, "PERF_COUNT_SW_CPU_MIGRATIONS"),
    (5, "PERF_COUNT_SW_PAGE_FAULTS_MIN"),
    (6, "PERF_COUNT_SW_PAGE_FAULTS_MAJ"),
    (7, "PERF_COUNT_SW_ALIGNMENT_FAULTS"),
    (8, "PERF_COUNT_SW_EMULATION_FAULTS"),
    (9, "PERF_COUNT_SW_DUMMY"),
    (10, "PERF_COUNT_SW_BPF_OUTPUT"),
    (11, "PERF_COUNT_SW_CGROUP_SWITCHES"),
];
const PERF_HW: Xlat = &[
    (0, "PERF_COUNT_HW_CPU_CYCLES"),
    (1, "PERF_COUNT_HW_INSTRUCTIONS"),
    (2, "PERF_COUNT_HW_CACHE_REFERENCES"),
    (3, "PERF_COUNT_HW_CACHE_MISSES"),
    (4, "PERF_COUNT_HW_BRANCH_INSTRUCTIONS"),
    (5, "PERF_COUNT_HW_BRANCH_MISSES"),
    (6, "PERF_COUNT_HW_BUS_CYCLES"),
    (7, "PERF_COUNT_HW_STALLED_CYCLES_FRONTEND"),
    (8, "PERF_COUNT_HW_STALLED_CYCLES_BACKEND"),
    (9, "PERF_COUNT_HW_REF_CPU_CYCLES"),
];
pub const PERF_FLAGS: Xlat = &[
    (1, "PERF_FLAG_FD_NO_GROUP"),
    (2, "PERF_FLAG_FD_OUTPUT"),
    (4, "PERF_FLAG_PID_CGROUP"),
    (8, "PERF_FLAG_FD_CLOEXEC"),
];

const PERF_SAMPLE: Xlat = &[
    (0x1, "PERF_SAMPLE_IP"),
    (0x2, "PERF_SAMPLE_TID"),
    (0x4, "PERF_SAMPLE_TIME"),
    (0x8, "PERF_SAMPLE_ADDR"),
    (0x10, "PERF_SAMPLE_READ"),
    (0x20, "PERF_SAMPLE_CALLCHAIN"),
    (0x40, "PERF_SAMPLE_ID"),
    (0x80, "PERF_SAMPLE_CPU"),
    (0x100, "PERF_SAMPLE_PERIOD"),
    (0x200, "PERF_SAMPLE_STREAM_ID"),
    (0x400, "PERF_SAMPLE_RAW"),
    (0x800, "PERF_SAMPLE_BRANCH_STACK"),
    (0x1000, "PERF_SAMPLE_REGS_USER"),
    (0x2000, "PERF_SAMPLE_STACK_USER"),
    (0x4000, "PERF_SAMPLE_WEIGHT"),
    (0x8000, "PERF_SAMPLE_DATA_SRC"),
    (0x10000, "PERF_SAMPLE_IDENTIFIER"),
    (0x20000, "PERF_SAMPLE_TRANSACTION"),
    (0x40000, "PERF_SAMPLE_REGS_INTR"),
    (0x80000, "PERF_SAMPLE_PHYS_ADDR"),
    (0x100000, "PERF_SAMPLE_AUX"),
    (0x200000, "PERF_SAMPLE_CGROUP"),
    (0x400000, "PERF_SAMPLE_DATA_PAGE_SIZE"),
    (0x800000, "PERF_SAMPLE_CODE_PAGE_SIZE"),
    (0x1000000, "PERF_SAMPLE_WEIGHT_STRUCT"),
];
const PERF_READ_FORMAT: Xlat = &[
    (0x1, "PERF_FORMAT_TOTAL_TIME_ENABLED"),
    (0x2, "PERF_FORMAT_TOTAL_TIME_RUNNING"),
    (0x4, "PERF_FORMAT_ID"),
    (0x8, "PERF_FORMAT_GROUP"),
    (0x10, "PERF_FORMAT_LOST"),
];
/// The one-bit fields before `precise_ip`, shown when set.
const PERF_BITS: [&str; 15] = [
    "disabled",
    "inherit",
    "pinned",
    "exclusive",
    "exclude_user",
    "exclude_kernel",
    "exclude_hv",
    "exclude_idle",
    "mmap",
    "comm",
    "freq",
    "inherit_stat",
    "enable_on_exec",
    "task",
    "watermark",
];
const PRECISE_IP: [&str; 4] = [
    "arbitrary skid",
    "constant skid",
    "requested to have 0 skid",
    "must have 0 skid",
];

/// `struct perf_event_attr`, abbreviated as strace does: type, size, config, the
/// sampling fields and the set bits up to `precise_ip`, then `...`.
pub fn perf_attr(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 48];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(x)
    };
    let (tw, config) = (w(0), w(1));
    let (ty, size) = (tw & 0xffff_ffff, tw >> 32);
    out.push_str("{type=");
    flags::xval(out, ty, PERF_TYPES, "PERF_TYPE_???");
    out.push_str(", size=");
    match size {
        64 | 72 | 80 | 96 | 104 | 112 | 120 | 128 | 136 => {
            let ver = [64, 72, 80, 96, 104, 112, 120, 128, 136]
                .iter()
                .position(|&s| s == size)
                .unwrap_or(0);
            let _ = write!(out, "PERF_ATTR_SIZE_VER{ver}");
        }
        _ => {
            let _ = write!(out, "{size}");
        }
    }
    out.push_str(", config=");
    match ty {
        0 => flags::xval(out, config, PERF_HW, "PERF_COUNT_HW_???"),
        1 => flags::xval(out, config, PERF_SW, "PERF_COUNT_SW_???"),
        _ => {
            let _ = write!(out, "{config:#x}");
        }
    }
    let bits = w(5);
    let freq = bits & (1 << 10) != 0;
    let _ = write!(
        out,
        ", {}={}, sample_type=",
        if freq { "sample_freq" } else { "sample_period" },
        w(2)
    );
    flags::flags(out, w(3), PERF_SAMPLE, "0");
    out.push_str(", read_format=");
    flags::flags(out, w(4), PERF_READ_FORMAT, "0");
    for (i, name) in PERF_BITS.iter().enumerate() {
        if bits & (1 << i) != 0 {
            let _ = write!(out, ", {name}=1");
        }
    }
    let precise = ((bits >> 15) & 3) as usize;
    let _ = write!(
        out,
        ", precise_ip={precise} /* {} */, ...}}",
        PRECISE_IP[precise]
    );
}

const IORING_SETUP_FLAGS: Xlat = &[
    (1, "IORING_SETUP_IOPOLL"),
    (2, "IORING_SETUP_SQPOLL"),
    (4, "IORING_SETUP_SQ_AFF"),
    (8, "IORING_SETUP_CQSIZE"),
    (16, "IORING_SETUP_CLAMP"),
    (32, "IORING_SETUP_ATTACH_WQ"),
    (64, "IORING_SETUP_R_DISABLED"),
    (128, "IORING_SETUP_SUBMIT_ALL"),
    (256, "IORING_SETUP_COOP_TASKRUN"),
    (512, "IORING_SETUP_TASKRUN_FLAG"),
    (1024, "IORING_SETUP_SQE128"),
    (2048, "IORING_SETUP_CQE32"),
    (4096, "IORING_SETUP_SINGLE_ISSUER"),
    (8192, "IORING_SETUP_DEFER_TASKRUN"),
];

const IORING_FEATURES: Xlat = &[
    (1, "IORING_FEAT_SINGLE_MMAP"),
    (2, "IORING_FEAT_NODROP"),
    (4, "IORING_FEAT_SUBMIT_STABLE"),
    (8, "IORING_FEAT_RW_CUR_POS"),
    (16, "IORING_FEAT_CUR_PERSONALITY"),
    (32, "IORING_FEAT_FAST_POLL"),
    (64, "IORING_FEAT_POLL_32BITS"),
    (128, "IORING_FEAT_SQPOLL_NONFIXED"),
    (256, "IORING_FEAT_EXT_ARG"),
    (512, "IORING_FEAT_NATIVE_WORKERS"),
    (1024, "IORING_FEAT_RSRC_TAGS"),
    (2048, "IORING_FEAT_CQE_SKIP"),
    (4096, "IORING_FEAT_LINKED_FILE"),
];

/// io_uring_setup's `struct io_uring_params`, printed at exit: what the caller asked
/// (flags, SQ thread CPU and idle), then on success what the kernel filled in (ring
/// sizes, features, the offsets of the ring fields).
pub fn io_uring_params(ctx: &mut Ctx, out: &mut String, addr: u64, ok: bool) {
    let mut b = [0u8; 120];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let u = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    out.push_str("{flags=");
    flags::flags(out, u64::from(u(8)), IORING_SETUP_FLAGS, "0");
    let _ = write!(out, ", sq_thread_cpu={}, sq_thread_idle={}", u(12), u(16));
    if u(8) & 32 != 0 {
        let _ = write!(out, ", wq_fd={}", u(24) as i32);
    }
    if ok {
        let _ = write!(out, ", sq_entries={}, cq_entries={}, features=", u(0), u(4));
        flags::flags(out, u64::from(u(20)), IORING_FEATURES, "0");
        let _ = write!(
            out,
            ", sq_off={{head={}, tail={}, ring_mask={}, ring_entries={}, flags={}, dropped={}, array={}}}",
            u(40), u(44), u(48), u(52), u(56), u(60), u(64)
        );
        let _ = write!(
            out,
            ", cq_off={{head={}, tail={}, ring_mask={}, ring_entries={}, overflow={}, cqes={}, flags={}}}",
            u(80), u(84), u(88), u(92), u(96), u(100), u(104)
        );
    }
    out.push('}');
}

pub const IORING_ENTER_FLAGS: Xlat = &[
    (1, "IORING_ENTER_GETEVENTS"),
    (2, "IORING_ENTER_SQ_WAKEUP"),
    (4, "IORING_ENTER_SQ_WAIT"),
    (8, "IORING_ENTER_EXT_ARG"),
    (16, "IORING_ENTER_REGISTERED_RING"),
];

pub const IORING_REGISTER_OPS: Xlat = &[
    (0, "IORING_REGISTER_BUFFERS"),
    (1, "IORING_UNREGISTER_BUFFERS"),
    (2, "IORING_REGISTER_FILES"),
    (3, "IORING_UNREGISTER_FILES"),
    (4, "IORING_REGISTER_EVENTFD"),
    (5, "IORING_UNREGISTER_EVENTFD"),
    (6, "IORING_REGISTER_FILES_UPDATE"),
    (7, "IORING_REGISTER_EVENTFD_ASYNC"),
    (8, "IORING_REGISTER_PROBE"),
    (9, "IORING_REGISTER_PERSONALITY"),
    (10, "IORING_UNREGISTER_PERSONALITY"),
    (11, "IORING_REGISTER_RESTRICTIONS"),
    (12, "IORING_REGISTER_ENABLE_RINGS"),
    (13, "IORING_REGISTER_FILES2"),
    (14, "IORING_REGISTER_FILES_UPDATE2"),
    (15, "IORING_REGISTER_BUFFERS2"),
    (16, "IORING_REGISTER_BUFFERS_UPDATE"),
    (17, "IORING_REGISTER_IOWQ_AFF"),
    (18, "IORING_UNREGISTER_IOWQ_AFF"),
    (19, "IORING_REGISTER_IOWQ_MAX_WORKERS"),
    (20, "IORING_REGISTER_RING_FDS"),
    (21, "IORING_UNREGISTER_RING_FDS"),
    (22, "IORING_REGISTER_PBUF_RING"),
    (23, "IORING_UNREGISTER_PBUF_RING"),
    (24, "IORING_REGISTER_SYNC_CANCEL"),
    (25, "IORING_REGISTER_FILE_ALLOC_RANGE"),
];

pub const FAN_INIT_FLAGS: Xlat = &[
    (0x0000_0008, "FAN_CLASS_PRE_CONTENT"),
    (0x0000_0004, "FAN_CLASS_CONTENT"),
    (0x0000_0001, "FAN_CLOEXEC"),
    (0x0000_0002, "FAN_NONBLOCK"),
    (0x0000_0010, "FAN_UNLIMITED_QUEUE"),
    (0x0000_0020, "FAN_UNLIMITED_MARKS"),
    (0x0000_0040, "FAN_ENABLE_AUDIT"),
    (0x0000_0080, "FAN_REPORT_PIDFD"),
    (0x0000_0100, "FAN_REPORT_TID"),
    (0x0000_0200, "FAN_REPORT_FID"),
    (0x0000_0400, "FAN_REPORT_DIR_FID"),
    (0x0000_0800, "FAN_REPORT_NAME"),
    (0x0000_1000, "FAN_REPORT_TARGET_FID"),
];

/// fanotify_init's flags: the class (a field; 0 is `FAN_CLASS_NOTIF`) then the bits.
pub fn fan_init_flags(out: &mut String, v: u64) {
    if v & 0xc == 0 {
        out.push_str("FAN_CLASS_NOTIF");
        if v != 0 {
            out.push('|');
            flags::flags(out, v, FAN_INIT_FLAGS, "");
        }
    } else {
        flags::flags(out, v, FAN_INIT_FLAGS, "0");
    }
}

pub const FAN_MARK_FLAGS: Xlat = &[
    (0x1, "FAN_MARK_ADD"),
    (0x2, "FAN_MARK_REMOVE"),
    (0x4, "FAN_MARK_DONT_FOLLOW"),
    (0x8, "FAN_MARK_ONLYDIR"),
    (0x10, "FAN_MARK_MOUNT"),
    (0x20, "FAN_MARK_IGNORED_MASK"),
    (0x40, "FAN_MARK_IGNORED_SURV_MODIFY"),
    (0x80, "FAN_MARK_FLUSH"),
    (0x100, "FAN_MARK_FILESYSTEM"),
    (0x200, "FAN_MARK_EVICTABLE"),
    (0x400, "FAN_MARK_IGNORE"),
];

pub const FAN_EVENTS: Xlat = &[
    (0x1, "FAN_ACCESS"),
    (0x2, "FAN_MODIFY"),
    (0x4, "FAN_ATTRIB"),
    (0x8, "FAN_CLOSE_WRITE"),
    (0x10, "FAN_CLOSE_NOWRITE"),
    (0x20, "FAN_OPEN"),
    (0x40, "FAN_MOVED_FROM"),
    (0x80, "FAN_MOVED_TO"),
    (0x100, "FAN_CREATE"),
    (0x200, "FAN_DELETE"),
    (0x400, "FAN_DELETE_SELF"),
    (0x800, "FAN_MOVE_SELF"),
    (0x1000, "FAN_OPEN_EXEC"),
    (0x4000, "FAN_Q_OVERFLOW"),
    (0x8000, "FAN_FS_ERROR"),
    (0x10000, "FAN_OPEN_PERM"),
    (0x20000, "FAN_ACCESS_PERM"),
    (0x40000, "FAN_OPEN_EXEC_PERM"),
    (0x0800_0000, "FAN_RENAME"),
    (0x4000_0000, "FAN_ONDIR"),
    (0x0800_0000_0000_0000, "FAN_EVENT_ON_CHILD"),
];

pub const IOCTLS: Xlat = &[
    (0x5401, "TCGETS"),
    (0x5402, "TCSETS"),
    (0x5403, "TCSETSW"),
    (0x5404, "TCSETSF"),
    (0x5405, "TCGETA"),
    (0x5406, "TCSETA"),
    (0x5407, "TCSETAW"),
    (0x5408, "TCSETAF"),
    (0x5409, "TCSBRK"),
    (0x540a, "TCXONC"),
    (0x540b, "TCFLSH"),
    (0x540c, "TIOCEXCL"),
    (0x540d, "TIOCNXCL"),
    (0x540e, "TIOCSCTTY"),
    (0x540f, "TIOCGPGRP"),
    (0x5410, "TIOCSPGRP"),
    (0x5411, "TIOCOUTQ"),
    (0x5412, "TIOCSTI"),
    (0x5413, "TIOCGWINSZ"),
    (0x5414, "TIOCSWINSZ"),
    (0x5415, "TIOCMGET"),
    (0x5416, "TIOCMBIS"),
    (0x5417, "TIOCMBIC"),
    (0x5418, "TIOCMSET"),
    (0x541b, "FIONREAD"),
    (0x541c, "TIOCLINUX"),
    (0x541d, "TIOCCONS"),
    (0x5420, "TIOCPKT"),
    (0x5421, "FIONBIO"),
    (0x5422, "TIOCNOTTY"),
    (0x5423, "TIOCSETD"),
    (0x5424, "TIOCGETD"),
    (0x5429, "TIOCGSID"),
    (0x80045430, "TIOCGPTN"),
    (0x40045431, "TIOCSPTLCK"),
    (0x5441, "TIOCSERGETLSR"),
    (0x5450, "FIONCLEX"),
    (0x5451, "FIOCLEX"),
    (0x5452, "FIOASYNC"),
    (0x5460, "FIOQSIZE"),
    (0x8901, "FIOSETOWN"),
    (0x8902, "SIOCSPGRP"),
    (0x8903, "FIOGETOWN"),
    (0x8904, "SIOCGPGRP"),
    (0x8905, "SIOCATMARK"),
    (0x8912, "SIOCGIFCONF"),
    (0x8913, "SIOCGIFFLAGS"),
    (0x8914, "SIOCSIFFLAGS"),
    (0x8915, "SIOCGIFADDR"),
    (0x8921, "SIOCGIFMTU"),
    (0x8927, "SIOCGIFHWADDR"),
    (0x8933, "SIOCGIFINDEX"),
    (0x8910, "SIOCGIFNAME"),
    (0x1260, "BLKGETSIZE"),
    (0x1268, "BLKSSZGET"),
    (0x125d, "BLKROSET"),
    (0x125e, "BLKROGET"),
    (0x125f, "BLKRRPART"),
    (0x1261, "BLKFLSBUF"),
    (0x80081272, "BLKGETSIZE64"),
    (0x127b, "BLKPBSZGET"),
    (0x40086602, "FS_IOC_SETFLAGS"),
    (0x80086601, "FS_IOC_GETFLAGS"),
    (0x40049409, "BTRFS_IOC_CLONE or FICLONE"),
    (0xc020660b, "FS_IOC_FIEMAP"),
];

/// How an ioctl request's argument prints.
fn ioctl_arg_kind(req: u64) -> IoctlArg {
    match req {
        0x5401 | 0x5405 => IoctlArg::Termios,
        0x5402..=0x5404 | 0x5406..=0x5408 => IoctlArg::Termios,
        0x5413 | 0x5414 => IoctlArg::Winsize,
        0x540f | 0x5410 | 0x541b | 0x5421 | 0x5452 | 0x80045430 | 0x40045431 | 0x5411 | 0x5429
        | 0x5424 | 0x5423 | 0x1268 | 0x127b | 0x125e | 0x125d | 0x8905 => IoctlArg::Int,
        0x80081272 | 0x1260 => IoctlArg::U64,
        // The argument is a descriptor or number passed by value.
        0x40049409 | 0x5409 | 0x540a | 0x540b | 0x540e => IoctlArg::Value,
        0x5450 | 0x5451 | 0x5422 | 0x540c | 0x540d | 0x125f | 0x1261 => IoctlArg::None,
        _ => IoctlArg::Raw,
    }
}

enum IoctlArg {
    None,
    Value,
    Int,
    U64,
    Winsize,
    Termios,
    Raw,
}

/// Whether the request's argument is read at exit (the kernel fills it).
fn ioctl_reads(req: u64) -> bool {
    matches!(
        req,
        0x5401
            | 0x5405
            | 0x5413
            | 0x540f
            | 0x541b
            | 0x80045430
            | 0x5411
            | 0x5429
            | 0x5424
            | 0x1268
            | 0x127b
            | 0x125e
            | 0x8905
            | 0x80081272
            | 0x1260
    )
}

/// ioctl's third argument, by request; false when the request takes none.
pub fn ioctl_arg(ctx: &mut Ctx, out: &mut String, req: u64, v: u64, failed: bool) -> bool {
    let req = req & 0xffff_ffff;
    if failed && ioctl_reads(req) {
        ptr(out, v);
        return true;
    }
    match ioctl_arg_kind(req) {
        IoctlArg::None => return false,
        IoctlArg::Value => {
            let _ = write!(out, "{}", v as i32);
        }
        IoctlArg::Int => match mem::read_u32(ctx.pid, v) {
            Some(x) => {
                let _ = write!(out, "[{}]", x as i32);
            }
            None => ptr(out, v),
        },
        IoctlArg::U64 => match mem::read_u64(ctx.pid, v) {
            Some(x) => {
                let _ = write!(out, "[{x}]");
            }
            None => ptr(out, v),
        },
        IoctlArg::Winsize => {
            let mut b = [0u8; 8];
            if mem::read(ctx.pid, v, &mut b) < 8 {
                ptr(out, v);
            } else {
                let h = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
                let _ = write!(
                    out,
                    "{{ws_row={}, ws_col={}, ws_xpixel={}, ws_ypixel={}}}",
                    h(0),
                    h(2),
                    h(4),
                    h(6)
                );
            }
        }
        IoctlArg::Termios => termios(ctx, out, v),
        IoctlArg::Raw => ptr(out, v),
    }
    true
}

const IFLAG: Xlat = &[
    (0o1, "IGNBRK"),
    (0o2, "BRKINT"),
    (0o4, "IGNPAR"),
    (0o10, "PARMRK"),
    (0o20, "INPCK"),
    (0o40, "ISTRIP"),
    (0o100, "INLCR"),
    (0o200, "IGNCR"),
    (0o400, "ICRNL"),
    (0o1000, "IUCLC"),
    (0o2000, "IXON"),
    (0o4000, "IXANY"),
    (0o10000, "IXOFF"),
    (0o20000, "IMAXBEL"),
    (0o40000, "IUTF8"),
];
const OFLAG: Xlat = &[
    (0o1, "OPOST"),
    (0o2, "OLCUC"),
    (0o4, "ONLCR"),
    (0o10, "OCRNL"),
    (0o20, "ONOCR"),
    (0o40, "ONLRET"),
    (0o100, "OFILL"),
    (0o200, "OFDEL"),
];
const CFLAG: Xlat = &[
    (0o100, "CSTOPB"),
    (0o200, "CREAD"),
    (0o400, "PARENB"),
    (0o1000, "PARODD"),
    (0o2000, "HUPCL"),
    (0o4000, "CLOCAL"),
    (0o10000000000, "CMSPAR"),
    (0o20000000000, "CRTSCTS"),
];
const LFLAG: Xlat = &[
    (0o1, "ISIG"),
    (0o2, "ICANON"),
    (0o4, "XCASE"),
    (0o10, "ECHO"),
    (0o20, "ECHOE"),
    (0o40, "ECHOK"),
    (0o100, "ECHONL"),
    (0o200, "NOFLSH"),
    (0o100000, "IEXTEN"),
    (0o1000, "ECHOCTL"),
    (0o2000, "ECHOPRT"),
    (0o4000, "ECHOKE"),
    (0o10000, "FLUSHO"),
    (0o40000, "PENDIN"),
    (0o400, "TOSTOP"),
    (0o200000, "EXTPROC"),
];
const BAUDS: [&str; 16] = [
    "B0", "B50", "B75", "B110", "B134", "B150", "B200", "B300", "B600", "B1200", "B1800", "B2400",
    "B4800", "B9600", "B19200", "B38400",
];
const BAUDS_EXT: [&str; 16] = [
    "BOTHER", "B57600", "B115200", "B230400", "B460800", "B500000", "B576000", "B921600",
    "B1000000", "B1152000", "B1500000", "B2000000", "B2500000", "B3000000", "B3500000", "B4000000",
];

/// `struct termios`, abbreviated as strace does: the four flag words, then `...`.
fn termios(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 16];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let u = |i: usize| u64::from(u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let (i, o, c, l) = (u(0), u(4), u(8), u(12));
    out.push_str("{c_iflag=");
    flags::flags(out, i, IFLAG, "0");
    out.push_str(", c_oflag=");
    // The delay fields first (NL0|CR0|TAB0|BS0|VT0|FF0), then the flags.
    let fields: [(u64, u32, &[&str]); 6] = [
        (0o400, 8, &["NL0", "NL1"]),
        (0o3000, 9, &["CR0", "CR1", "CR2", "CR3"]),
        (0o14000, 11, &["TAB0", "TAB1", "TAB2", "TAB3"]),
        (0o20000, 13, &["BS0", "BS1"]),
        (0o40000, 14, &["VT0", "VT1"]),
        (0o100000, 15, &["FF0", "FF1"]),
    ];
    for (k, (mask, shift, names)) in fields.iter().enumerate() {
        if k > 0 {
            out.push('|');
        }
        out.push_str(names[((o & mask) >> shift) as usize]);
    }
    let orest = o & 0o377;
    if orest != 0 {
        out.push('|');
        flags::flags(out, orest, OFLAG, "");
    }
    out.push_str(", c_cflag=");
    let baud = c & 0o10017;
    if baud & 0o10000 != 0 {
        out.push_str(BAUDS_EXT[(baud & 0o17) as usize]);
    } else {
        out.push_str(BAUDS[baud as usize]);
    }
    out.push_str(["|CS5", "|CS6", "|CS7", "|CS8"][((c & 0o60) >> 4) as usize]);
    let crest = c & !0o10077 & !(0o10017 << 16);
    if crest != 0 {
        out.push('|');
        flags::flags(out, crest, CFLAG, "");
    }
    out.push_str(", c_lflag=");
    flags::flags(out, l, LFLAG, "0");
    out.push_str(", ...}");
}

/// A `struct mmsghdr[n]`: each msghdr (data cut by its own `msg_len` at exit) and
/// its `msg_len`.
pub fn mmsghdrs(ctx: &mut Ctx, out: &mut String, addr: u64, n: u64, received: bool) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let shown = n.min(ctx.max_str as u64).min(1024);
    out.push('[');
    for k in 0..shown {
        let entry = addr + 64 * k;
        let Some(len) = mem::read_u32(ctx.pid, entry + 56) else {
            break;
        };
        if k > 0 {
            out.push_str(", ");
        }
        out.push_str("{msg_hdr=");
        super::msghdr(
            ctx,
            out,
            entry,
            if received { u64::from(len) } else { u64::MAX },
        );
        let _ = write!(out, ", msg_len={len}}}");
    }
    if shown < n {
        out.push_str(", ...");
    }
    out.push(']');
}

/// `struct utsname`: `{sysname="Linux", nodename="vm", ...}`.
pub fn utsname(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 130];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let field = |f: &[u8]| {
        let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
        f[..end].to_vec()
    };
    out.push_str("{sysname=");
    super::strings::quote(out, &field(&b[..65]));
    out.push_str(", nodename=");
    super::strings::quote(out, &field(&b[65..130]));
    out.push_str(", ...}");
}

/// `struct sysinfo`, every field (they change from call to call).
pub fn sysinfo(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut b = [0u8; 112];
    if addr == 0 || mem::read(ctx.pid, addr, &mut b) < b.len() {
        ptr(out, addr);
        return;
    }
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(x)
    };
    let _ = write!(
        out,
        "{{uptime={}, loads=[{}, {}, {}], totalram={}, freeram={}, sharedram={}, bufferram={}, \
         totalswap={}, freeswap={}, procs={}, totalhigh={}, freehigh={}, mem_unit={}}}",
        w(0) as i64,
        w(8),
        w(16),
        w(24),
        w(32),
        w(40),
        w(48),
        w(56),
        w(64),
        w(72),
        u16::from_ne_bytes([b[80], b[81]]),
        w(88),
        w(96),
        u32::from_ne_bytes([b[104], b[105], b[106], b[107]])
    );
}

/// rt_sigreturn's argument: the signal mask the frame on the stack restores,
/// `{mask=[]}`. The frame's `ucontext` starts at the stack pointer; its
/// `uc_sigmask` follows flags, link, stack_t and the 256-byte sigcontext.
pub fn sigreturn(ctx: &mut Ctx, out: &mut String) {
    match crate::ptrace::stack_pointer(ctx.pid) {
        Ok(sp) => {
            out.push_str("{mask=");
            super::process::sigset(ctx, out, sp + 296);
            out.push('}');
        }
        Err(_) => out.push_str("{mask=?}"),
    }
}
