//! Memory-management arguments: mmap's flags (type, flags, huge-page size), madvise's
//! advice, the mlock family, msync, mremap and mincore's page vector.
//!
//! mmap's flags are three fields in one word, printed as strace does: the mapping type
//! (`MAP_PRIVATE`, or `MAP_FILE` for 0), the flag bits, then the huge-page size field
//! as `21<<MAP_HUGE_SHIFT` whenever its bits are set.

use super::flags::{self, Xlat};
use super::strings::ptr;
use super::Ctx;
use std::fmt::Write;

const MAP_TYPE_MASK: u64 = 0xf;
const MAP_HUGE_SHIFT: u32 = 26;
const MAP_HUGE_MASK: u64 = 0x3f << MAP_HUGE_SHIFT;

/// The type field (0 is `MAP_FILE`, strace's spelling of "no type").
const MAP_TYPES: Xlat = &[
    (0, "MAP_FILE"),
    (1, "MAP_SHARED"),
    (2, "MAP_PRIVATE"),
    (3, "MAP_SHARED_VALIDATE"),
];

/// The flag bits, in strace's order (x86_64 values).
const MAP_FLAGS: Xlat = &[
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x40, "MAP_32BIT"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
];

pub fn mmap_flags(out: &mut String, v: u64) {
    let v = v & 0xffff_ffff;
    flags::xval(out, v & MAP_TYPE_MASK, MAP_TYPES, "MAP_???");
    let huge = v & MAP_HUGE_MASK;
    let rest = v & !MAP_TYPE_MASK & !MAP_HUGE_MASK;
    if rest != 0 {
        out.push('|');
        flags::flags(out, rest, MAP_FLAGS, "");
    }
    if huge != 0 {
        let _ = write!(out, "|{}<<MAP_HUGE_SHIFT", huge >> MAP_HUGE_SHIFT);
    }
}

pub const MADVISE: Xlat = &[
    (0, "MADV_NORMAL"),
    (1, "MADV_RANDOM"),
    (2, "MADV_SEQUENTIAL"),
    (3, "MADV_WILLNEED"),
    (4, "MADV_DONTNEED"),
    (8, "MADV_FREE"),
    (9, "MADV_REMOVE"),
    (10, "MADV_DONTFORK"),
    (11, "MADV_DOFORK"),
    (12, "MADV_MERGEABLE"),
    (13, "MADV_UNMERGEABLE"),
    (14, "MADV_HUGEPAGE"),
    (15, "MADV_NOHUGEPAGE"),
    (16, "MADV_DONTDUMP"),
    (17, "MADV_DODUMP"),
    (18, "MADV_WIPEONFORK"),
    (19, "MADV_KEEPONFORK"),
    (20, "MADV_COLD"),
    (21, "MADV_PAGEOUT"),
    (22, "MADV_POPULATE_READ"),
    (23, "MADV_POPULATE_WRITE"),
    (24, "MADV_DONTNEED_LOCKED"),
    (25, "MADV_COLLAPSE"),
    (100, "MADV_HWPOISON"),
    (101, "MADV_SOFT_OFFLINE"),
];

pub const MLOCK2_FLAGS: Xlat = &[(1, "MLOCK_ONFAULT")];
pub const MLOCKALL_FLAGS: Xlat = &[(1, "MCL_CURRENT"), (2, "MCL_FUTURE"), (4, "MCL_ONFAULT")];
pub const MSYNC_FLAGS: Xlat = &[(1, "MS_ASYNC"), (2, "MS_INVALIDATE"), (4, "MS_SYNC")];
pub const MREMAP_FLAGS: Xlat = &[
    (1, "MREMAP_MAYMOVE"),
    (2, "MREMAP_FIXED"),
    (4, "MREMAP_DONTUNMAP"),
];

/// mincore's vector: one `0`/`1` per page of the range, cut at `-s` entries.
pub fn mincore_vec(ctx: &mut Ctx, out: &mut String, addr: u64, len: u64) {
    let pages = len.div_ceil(4096);
    let shown = pages.min(ctx.max_str as u64).min(1 << 16) as usize;
    let mut scratch = std::mem::take(&mut ctx.scratch);
    scratch.clear();
    scratch.resize(shown, 0);
    if addr == 0 || crate::mem::read(ctx.pid, addr, &mut scratch) < shown {
        ptr(out, addr);
    } else {
        out.push('[');
        for (i, b) in scratch.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push(if b & 1 != 0 { '1' } else { '0' });
        }
        if (shown as u64) < pages {
            out.push_str(", ...");
        }
        out.push(']');
    }
    ctx.scratch = scratch;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmap_fields() {
        let f = |v: u64| {
            let mut s = String::new();
            mmap_flags(&mut s, v);
            s
        };
        assert_eq!(f(0x22), "MAP_PRIVATE|MAP_ANONYMOUS");
        assert_eq!(f(0x812), "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE");
        assert_eq!(
            f(0x40022 | (21 << 26)),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT"
        );
        assert_eq!(f(0x4000_0000), "MAP_FILE|16<<MAP_HUGE_SHIFT");
        assert_eq!(f(0x12011), "MAP_SHARED|MAP_FIXED|MAP_NONBLOCK|MAP_LOCKED");
        assert_eq!(f(0x5), "0x5 /* MAP_??? */");
    }
}
