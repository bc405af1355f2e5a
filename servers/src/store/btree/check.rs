//! The integrity walk behind `check` and `stats`.
//!
//! The one idea: read every page reachable from the committed meta straight from disk
//! (never from the cache, so a damaged page on disk cannot hide behind a good copy in
//! memory), mark each page number in a bitmap, and demand that every page below the
//! high-water mark is claimed exactly once: meta, tree, overflow, freelist, or free.

use super::page::{self, Page, ValRef, OVERFLOW_DATA, PAGE_SIZE};
use super::{Meta, MetaFault, Result, Shared};

/// What a walk found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub txn: u64,
    pub entries: u64,
    /// Page number of the root (0 for an empty tree).
    pub root: u64,
    /// Levels from root to leaf (0 for an empty tree).
    pub height: u32,
    /// Pages below the high-water mark, meta pages included.
    pub pages: u64,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    pub overflow_pages: u64,
    pub freelist_pages: u64,
    pub free_pages: u64,
    /// Bytes used in branch and leaf pages over their total size.
    pub fill: f64,
    pub file_bytes: u64,
    /// Meta pages rejected when the file was opened; the walk covers the other one.
    pub meta_faults: Vec<MetaFault>,
}

struct Walk<'a> {
    sh: &'a Shared,
    meta: &'a Meta,
    strict: bool,
    seen: Vec<bool>,
    stats: Stats,
    used: u64,
}

impl Walk<'_> {
    fn claim(&mut self, pgno: u64, what: &str) -> Result<()> {
        let slot = self.seen.get_mut(pgno as usize);
        match slot {
            Some(s) if !*s => {
                *s = true;
                Ok(())
            }
            Some(_) => Err(self
                .sh
                .corrupt(pgno, format!("page claimed twice (again as {what})"))),
            None => Err(self.sh.corrupt(
                pgno,
                format!(
                    "{what} page beyond the high-water mark {}",
                    self.meta.npages
                ),
            )),
        }
    }

    /// Verify the subtree at `pgno` holds keys in `[lo, hi)`; returns its entry count.
    fn tree(&mut self, pgno: u64, level: u32, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Result<u64> {
        self.claim(pgno, "tree")?;
        let buf = self.sh.read_raw(pgno, self.meta.npages)?;
        let p = Page::parse(pgno, buf).map_err(|r| self.sh.corrupt(pgno, r))?;
        let at_bottom = level == self.meta.depth;
        if p.is_leaf() != at_bottom {
            return Err(self.sh.corrupt(
                pgno,
                format!(
                    "{} at level {level} of {}: tree unbalanced",
                    if p.is_leaf() { "leaf" } else { "branch" },
                    self.meta.depth
                ),
            ));
        }
        self.used += p.used() as u64;
        if self.strict && p.n == 0 && (level > 1 || !p.is_leaf()) {
            return Err(self.sh.corrupt(pgno, "empty node"));
        }
        for i in 0..p.n {
            let k = p.key(i);
            if i > 0 && p.key(i - 1) >= k {
                return Err(self
                    .sh
                    .corrupt(pgno, format!("keys out of order at slot {i}")));
            }
            if lo.is_some_and(|l| k < l) || hi.is_some_and(|h| k >= h) {
                return Err(self.sh.corrupt(
                    pgno,
                    format!("key at slot {i} outside the range its parent gives"),
                ));
            }
        }
        if p.is_leaf() {
            self.stats.leaf_pages += 1;
            for i in 0..p.n {
                if let ValRef::Overflow { pgno: head, len } = p.val(i) {
                    self.overflow(pgno, head, len)?;
                }
            }
            return Ok(p.n as u64);
        }
        self.stats.branch_pages += 1;
        let mut count = 0;
        for c in 0..p.nchildren() {
            let clo = if c == 0 { lo } else { Some(p.key(c - 1)) };
            let chi = if c < p.n { Some(p.key(c)) } else { hi };
            count += self.tree(p.child(c), level + 1, clo, chi)?;
        }
        Ok(count)
    }

    fn overflow(&mut self, leaf: u64, head: u64, len: u32) -> Result<()> {
        let want = (len as usize).div_ceil(OVERFLOW_DATA);
        let mut pgno = head;
        let mut total = 0usize;
        for i in 0..want {
            self.claim(pgno, "overflow")?;
            let buf = self.sh.read_raw(pgno, self.meta.npages)?;
            let (next, data) =
                page::parse_overflow(pgno, &buf).map_err(|r| self.sh.corrupt(pgno, r))?;
            total += data.len();
            self.stats.overflow_pages += 1;
            if (i + 1 == want) != (next == 0) {
                return Err(self.sh.corrupt(
                    pgno,
                    format!("overflow chain of leaf page {leaf} has the wrong length"),
                ));
            }
            pgno = next;
        }
        if total != len as usize {
            return Err(self.sh.corrupt(
                leaf,
                format!("overflow value holds {total} bytes, leaf says {len}"),
            ));
        }
        Ok(())
    }
}

/// Walk the committed state `meta`. `strict` adds the checks that only `check` needs.
pub(crate) fn walk(sh: &Shared, meta: &Meta, strict: bool) -> Result<Stats> {
    let mut w = Walk {
        sh,
        meta,
        strict,
        seen: vec![false; meta.npages as usize],
        stats: Stats::default(),
        used: 0,
    };
    w.seen[0] = true;
    w.seen[1] = true;
    let entries = if meta.root != 0 {
        w.tree(meta.root, 1, None, None)?
    } else {
        0
    };
    if entries != meta.entries {
        return Err(sh.corrupt(
            meta.root,
            format!("tree holds {entries} entries, meta says {}", meta.entries),
        ));
    }
    let mut pgno = meta.freelist;
    let mut listed = 0u64;
    while pgno != 0 {
        w.claim(pgno, "freelist")?;
        let buf = sh.read_raw(pgno, meta.npages)?;
        let (next, list) = page::parse_freelist(pgno, &buf).map_err(|r| sh.corrupt(pgno, r))?;
        w.stats.freelist_pages += 1;
        for p in list {
            w.claim(p, "free")?;
            listed += 1;
        }
        pgno = next;
    }
    if listed != meta.nfree {
        return Err(sh.corrupt(
            meta.txn % 2,
            format!(
                "meta counts {} free pages, freelist lists {listed}",
                meta.nfree
            ),
        ));
    }
    if strict {
        if let Some(lost) = w.seen.iter().position(|s| !s) {
            return Err(sh.corrupt(lost as u64, "page neither reachable nor free (leaked)"));
        }
    }
    let tree_pages = w.stats.branch_pages + w.stats.leaf_pages;
    w.stats.txn = meta.txn;
    w.stats.entries = entries;
    w.stats.height = meta.depth;
    w.stats.root = meta.root;
    w.stats.pages = meta.npages;
    w.stats.free_pages = listed;
    w.stats.fill = if tree_pages == 0 {
        0.0
    } else {
        w.used as f64 / (tree_pages as f64 * PAGE_SIZE as f64)
    };
    w.stats.file_bytes = sh.file.metadata().map(|m| m.len()).unwrap_or(0);
    w.stats.meta_faults = sh.meta_faults.clone();
    Ok(w.stats)
}
