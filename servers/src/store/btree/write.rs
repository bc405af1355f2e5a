//! The write batch: copy-on-write edits of the tree, then the two-fsync commit.
//!
//! The one idea: every page the batch touches is first copied to a page number the
//! committed state does not use (`make_dirty`), so nothing reachable from the last
//! meta page changes until the new meta page is written; see the design note in
//! the parent module for the crash reasoning.

use super::node::{separator, Branch, Leaf, Node};
use super::page::{
    self, Page, ValRef, FREELIST_CAP, MAX_INLINE_CELL, MAX_KEY, MAX_VALUE, OVERFLOW_DATA,
    PAGE_SIZE, UNDERFULL,
};
use super::{lock, Error, FreeState, Meta, Result, Shared};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// An atomic batch of puts and deletes; nothing is visible or durable until
/// [`WriteBatch::commit`] returns. Dropping it without committing discards it.
pub struct WriteBatch<'a> {
    shared: &'a Shared,
    free: MutexGuard<'a, FreeState>,
    /// The state being built; `meta.txn` is still the base batch's id until commit.
    meta: Meta,
    txn: u64,
    dirty: HashMap<u64, Node>,
    dirty_raw: HashMap<u64, Box<[u8]>>,
    /// Pages allocated by this batch (never committed, so freeing them reuses them at once).
    fresh: HashSet<u64>,
    /// Committed pages this batch stopped using.
    freed: Vec<u64>,
    /// This batch's copy of the reusable pages.
    ready: Vec<u64>,
}

/// What an edited child tells its parent: it split (separator, new right sibling), or it
/// fell under a quarter full.
#[derive(Default)]
struct Outcome {
    split: Option<(Vec<u8>, u64)>,
    underfull: bool,
    /// A leaf grew past a page; its parent first tries to spill entries into a sibling.
    overfull: bool,
}

impl<'a> WriteBatch<'a> {
    pub(crate) fn begin(shared: &'a Shared) -> Result<WriteBatch<'a>> {
        let mut free = lock(&shared.writer);
        let meta = {
            let st = lock(&shared.state);
            // Pages freed by batch T were reachable from snapshot T-1: reusable once the
            // oldest open snapshot is at least T.
            let oldest = st.readers.keys().next().copied().unwrap_or(u64::MAX);
            let pending = std::mem::take(&mut free.pending);
            for (t, pages) in pending {
                if t <= oldest {
                    free.ready.extend(pages);
                } else {
                    free.pending.push((t, pages));
                }
            }
            st.meta
        };
        let ready = free.ready.clone();
        Ok(WriteBatch {
            shared,
            free,
            meta,
            txn: meta.txn + 1,
            dirty: HashMap::new(),
            dirty_raw: HashMap::new(),
            fresh: HashSet::new(),
            freed: Vec::new(),
            ready,
        })
    }

    /// Insert or replace `key`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() > MAX_KEY {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: MAX_KEY,
            });
        }
        if value.len() > MAX_VALUE {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: MAX_VALUE,
            });
        }
        let val = if 6 + key.len() + value.len() > MAX_INLINE_CELL {
            let (pgno, len) = self.write_overflow(value);
            ValRef::Overflow { pgno, len }
        } else {
            ValRef::Inline(value)
        };
        if self.meta.root == 0 {
            let root = self.alloc();
            self.dirty.insert(root, Node::Leaf(Leaf::default()));
            self.meta.root = root;
            self.meta.depth = 1;
        }
        let root = self.make_dirty(self.meta.root)?;
        self.meta.root = root;
        let mut out = self.insert_rec(root, key, val)?;
        if out.overfull {
            out.split = self.split_now(root)?;
        }
        self.grow_root(out)
    }

    /// Remove `key`; returns whether it was present.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool> {
        if self.meta.root == 0 || !self.contains(key)? {
            return Ok(false);
        }
        let root = self.make_dirty(self.meta.root)?;
        self.meta.root = root;
        let out = self.delete_rec(root, key)?;
        self.meta.entries = self.meta.entries.saturating_sub(1);
        self.grow_root(Outcome {
            split: out.split,
            ..Outcome::default()
        })?;
        // Shrink the root while it is an empty leaf or a branch with a single child.
        loop {
            let root = self.meta.root;
            match self.node(root)? {
                Node::Leaf(l) if l.is_empty() => {
                    self.free(root);
                    self.meta.root = 0;
                    self.meta.depth = 0;
                }
                Node::Branch(b) if b.nkeys() == 0 => {
                    let child = b.children[0];
                    self.free(root);
                    self.meta.root = self.make_dirty(child)?;
                    self.meta.depth -= 1;
                    continue;
                }
                _ => {}
            }
            return Ok(true);
        }
    }

    /// Number of entries the batch would leave.
    pub fn len(&self) -> u64 {
        self.meta.entries
    }

    pub fn is_empty(&self) -> bool {
        self.meta.entries == 0
    }

    fn grow_root(&mut self, out: Outcome) -> Result<()> {
        if let Some((sep, right)) = out.split {
            let new_root = self.alloc();
            let br = Branch::root(self.meta.root, &sep, right);
            self.dirty.insert(new_root, Node::Branch(br));
            self.meta.root = new_root;
            self.meta.depth += 1;
        }
        Ok(())
    }

    fn alloc(&mut self) -> u64 {
        let pgno = match self.ready.pop() {
            Some(p) => p,
            None => {
                self.meta.npages += 1;
                self.meta.npages - 1
            }
        };
        self.fresh.insert(pgno);
        pgno
    }

    fn free(&mut self, pgno: u64) {
        if self.fresh.remove(&pgno) {
            self.dirty.remove(&pgno);
            self.dirty_raw.remove(&pgno);
            self.ready.push(pgno);
        } else {
            self.freed.push(pgno);
        }
    }

    fn internal(&self, pgno: u64, what: &str) -> Error {
        self.shared
            .corrupt(pgno, format!("write batch invariant broken: {what}"))
    }

    fn node(&self, pgno: u64) -> Result<&Node> {
        self.dirty
            .get(&pgno)
            .ok_or_else(|| self.internal(pgno, "page not in the dirty set"))
    }

    fn node_mut(&mut self, pgno: u64) -> Result<&mut Node> {
        if !self.dirty.contains_key(&pgno) {
            return Err(self.internal(pgno, "page not in the dirty set"));
        }
        self.dirty
            .get_mut(&pgno)
            .ok_or_else(|| self.shared.corrupt(pgno, "vanished"))
    }

    /// The batch's own copy of a page: `pgno` itself if the batch allocated it, else a new
    /// page holding a copy (the committed one is freed).
    fn make_dirty(&mut self, pgno: u64) -> Result<u64> {
        if self.fresh.contains(&pgno) {
            return Ok(pgno);
        }
        let page = self.shared.page(pgno, self.meta.npages)?;
        let node = Node::decode(&page);
        let new = self.alloc();
        self.dirty.insert(new, node);
        self.free(pgno);
        Ok(new)
    }

    /// Whether `key` is present, seen through the batch's own edits.
    fn contains(&self, key: &[u8]) -> Result<bool> {
        let mut pgno = self.meta.root;
        for _ in 0..self.meta.depth {
            if let Some(n) = self.dirty.get(&pgno) {
                match n {
                    Node::Leaf(l) => return Ok(l.seek(key).is_ok()),
                    Node::Branch(b) => pgno = b.children[b.child_index(key)],
                }
            } else {
                let p = self.shared.page(pgno, self.meta.npages)?;
                if p.is_leaf() {
                    return Ok(p.leaf_seek(key).1);
                }
                pgno = p.child(p.child_index(key));
            }
        }
        Err(self.shared.corrupt(pgno, "tree deeper than recorded"))
    }

    fn insert_rec(&mut self, pgno: u64, key: &[u8], val: ValRef<'_>) -> Result<Outcome> {
        let (ci, child) = match self.node_mut(pgno)? {
            Node::Leaf(leaf) => {
                match leaf.seek(key) {
                    Ok(i) => {
                        if let Some((head, len)) = leaf.replace(i, val) {
                            self.free_overflow(head, len)?;
                        }
                    }
                    Err(i) => {
                        leaf.insert(i, key, val);
                        self.meta.entries += 1;
                    }
                }
                if self.node(pgno)?.overfull() {
                    return Ok(Outcome {
                        overfull: true,
                        ..Outcome::default()
                    });
                }
                return self.settle(pgno);
            }
            Node::Branch(b) => {
                let ci = b.child_index(key);
                (ci, b.children[ci])
            }
        };
        let child = self.make_dirty(child)?;
        self.set_child(pgno, ci, child)?;
        let out = self.insert_rec(child, key, val)?;
        self.absorb(pgno, ci, out)?;
        self.settle(pgno)
    }

    fn delete_rec(&mut self, pgno: u64, key: &[u8]) -> Result<Outcome> {
        let (ci, child) = match self.node_mut(pgno)? {
            Node::Leaf(leaf) => {
                let removed = match leaf.seek(key) {
                    Ok(i) => leaf.delete(i),
                    Err(_) => return Err(self.internal(pgno, "deleted key vanished")),
                };
                if let Some((head, len)) = removed {
                    self.free_overflow(head, len)?;
                }
                return self.settle(pgno);
            }
            Node::Branch(b) => {
                let ci = b.child_index(key);
                (ci, b.children[ci])
            }
        };
        let child = self.make_dirty(child)?;
        self.set_child(pgno, ci, child)?;
        let out = self.delete_rec(child, key)?;
        self.absorb(pgno, ci, out)?;
        self.settle(pgno)
    }

    fn set_child(&mut self, pgno: u64, ci: usize, child: u64) -> Result<()> {
        match self.node_mut(pgno)? {
            Node::Branch(b) if ci < b.children.len() => {
                b.children[ci] = child;
                Ok(())
            }
            _ => Err(self.internal(pgno, "child index out of range")),
        }
    }

    /// Fold a child's outcome into branch `pgno`: link a new sibling, or rebalance an
    /// underfull child with its neighbour.
    fn absorb(&mut self, pgno: u64, ci: usize, mut out: Outcome) -> Result<()> {
        if out.overfull && !self.spill(pgno, ci)? {
            let child = self.child_at(pgno, ci)?;
            out.split = self.split_now(child)?;
        }
        if let Some((sep, right)) = out.split {
            match self.node_mut(pgno)? {
                Node::Branch(b) => {
                    b.insert(ci, &sep, right);
                }
                Node::Leaf(_) => return Err(self.internal(pgno, "split into a leaf")),
            }
        } else if out.underfull {
            self.rebalance(pgno, ci)?;
        }
        Ok(())
    }

    /// After editing node `pgno`: split it if it overflows, report if it is underfull.
    fn settle(&mut self, pgno: u64) -> Result<Outcome> {
        let size = self.node(pgno)?.size();
        if size <= PAGE_SIZE {
            return Ok(Outcome {
                underfull: size < UNDERFULL,
                ..Outcome::default()
            });
        }
        Ok(Outcome {
            split: self.split_now(pgno)?,
            ..Outcome::default()
        })
    }

    fn child_at(&self, pgno: u64, ci: usize) -> Result<u64> {
        match self.node(pgno)? {
            Node::Branch(b) if ci < b.children.len() => Ok(b.children[ci]),
            _ => Err(self.internal(pgno, "child index out of range")),
        }
    }

    /// Encoded size of a leaf, from the batch's copy or the committed page.
    fn leaf_size(&self, pgno: u64) -> Result<usize> {
        match self.dirty.get(&pgno) {
            Some(Node::Leaf(l)) => Ok(l.size()),
            Some(Node::Branch(_)) => Err(self.internal(pgno, "expected a leaf")),
            None => {
                let p = self.shared.page(pgno, self.meta.npages)?;
                if !p.is_leaf() {
                    return Err(self
                        .shared
                        .corrupt(pgno, "expected a leaf at the bottom level"));
                }
                Ok(p.used())
            }
        }
    }

    /// An overfull leaf, child `ci` of `pgno`, hands entries to a sibling with room
    /// instead of splitting (as SQLite's balance does): pages stay fuller and the file
    /// smaller. Returns false when neither neighbour can take enough.
    fn spill(&mut self, pgno: u64, ci: usize) -> Result<bool> {
        let nch = match self.node(pgno)? {
            Node::Branch(b) => b.children.len(),
            Node::Leaf(_) => return Err(self.internal(pgno, "spill in a leaf")),
        };
        let child = self.child_at(pgno, ci)?;
        let sizes: Vec<usize> = match self.node(child)? {
            Node::Leaf(l) => (0..l.len()).map(|i| l.cell_size(i)).collect(),
            Node::Branch(_) => return Err(self.internal(child, "spill of a branch")),
        };
        let total = self.node(child)?.size();
        // How many cells to move, taking them in `order`, so that the leaf fits and the
        // two end up about equal; None if the sibling cannot take them.
        let plan = |sib: usize, order: &mut dyn Iterator<Item = usize>| -> Option<usize> {
            let (mut mine, mut theirs, mut k) = (total, sib, 0usize);
            for c in order {
                if mine <= PAGE_SIZE && theirs + c > mine - c {
                    break;
                }
                mine -= c;
                theirs += c;
                k += 1;
            }
            (mine <= PAGE_SIZE && theirs <= PAGE_SIZE && k >= 1 && k < sizes.len()).then_some(k)
        };
        if ci > 0 {
            let sib = self.child_at(pgno, ci - 1)?;
            if let Some(k) = plan(self.leaf_size(sib)?, &mut sizes.iter().copied()) {
                let sp = self.make_dirty(sib)?;
                self.set_child(pgno, ci - 1, sp)?;
                let (Some(Node::Leaf(mut left)), Some(Node::Leaf(mut me))) =
                    (self.dirty.remove(&sp), self.dirty.remove(&child))
                else {
                    return Err(self.internal(child, "spill lost a leaf"));
                };
                left.extend(&me.take_front(k));
                let sep = separator(left.key(left.len() - 1), me.key(0));
                self.dirty.insert(sp, Node::Leaf(left));
                self.dirty.insert(child, Node::Leaf(me));
                if let Node::Branch(b) = self.node_mut(pgno)? {
                    b.set_key(ci - 1, &sep);
                }
                return Ok(true);
            }
        }
        if ci + 1 < nch {
            let sib = self.child_at(pgno, ci + 1)?;
            if let Some(k) = plan(self.leaf_size(sib)?, &mut sizes.iter().rev().copied()) {
                let sp = self.make_dirty(sib)?;
                self.set_child(pgno, ci + 1, sp)?;
                let (Some(Node::Leaf(right)), Some(Node::Leaf(mut me))) =
                    (self.dirty.remove(&sp), self.dirty.remove(&child))
                else {
                    return Err(self.internal(child, "spill lost a leaf"));
                };
                let mut moved = me.take_back(k);
                moved.extend(&right);
                let sep = separator(me.key(me.len() - 1), moved.key(0));
                self.dirty.insert(sp, Node::Leaf(moved));
                self.dirty.insert(child, Node::Leaf(me));
                if let Node::Branch(b) = self.node_mut(pgno)? {
                    b.set_key(ci, &sep);
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Split node `pgno` if it overflows; returns the separator and the new right page.
    fn split_now(&mut self, pgno: u64) -> Result<Option<(Vec<u8>, u64)>> {
        if !self.node(pgno)?.overfull() {
            return Ok(None);
        }
        let (sep, right) = match self.node_mut(pgno)? {
            Node::Leaf(l) => {
                let r = l.split();
                if l.is_empty() || r.is_empty() {
                    return Err(self.internal(pgno, "leaf split left an empty half"));
                }
                let sep = separator(l.key(l.len() - 1), r.key(0));
                (sep, Node::Leaf(r))
            }
            Node::Branch(b) => {
                let (sep, r) = b.split();
                (sep, Node::Branch(r))
            }
        };
        let rp = self.alloc();
        self.dirty.insert(rp, right);
        Ok(Some((sep, rp)))
    }

    /// Merge child `ci` of branch `pgno` with a neighbour, or, if the two do not fit in
    /// one page, share their entries evenly.
    fn rebalance(&mut self, pgno: u64, ci: usize) -> Result<()> {
        let n = match self.node(pgno)? {
            Node::Branch(b) => b.children.len(),
            Node::Leaf(_) => return Err(self.internal(pgno, "rebalance in a leaf")),
        };
        if n < 2 {
            return Ok(());
        }
        let (l, r) = if ci > 0 { (ci - 1, ci) } else { (0, 1) };
        let (lc, rc) = match self.node(pgno)? {
            Node::Branch(b) => (b.children[l], b.children[r]),
            Node::Leaf(_) => return Err(self.internal(pgno, "rebalance in a leaf")),
        };
        let lp = self.make_dirty(lc)?;
        self.set_child(pgno, l, lp)?;
        let rp = self.make_dirty(rc)?;
        self.set_child(pgno, r, rp)?;
        let left = self
            .dirty
            .remove(&lp)
            .ok_or_else(|| self.internal(lp, "left sibling missing"))?;
        let right = self
            .dirty
            .remove(&rp)
            .ok_or_else(|| self.internal(rp, "right sibling missing"))?;
        let sep = match self.node(pgno)? {
            Node::Branch(b) => b.key(r - 1).to_vec(),
            Node::Leaf(_) => return Err(self.internal(pgno, "rebalance in a leaf")),
        };
        let (merged, new_sep) = match (left, right) {
            (Node::Leaf(mut a), Node::Leaf(b)) => {
                a.extend(&b);
                if a.size() <= PAGE_SIZE {
                    (Node::Leaf(a), None)
                } else {
                    let b = a.split();
                    if a.is_empty() || b.is_empty() {
                        return Err(self.internal(lp, "leaf split left an empty half"));
                    }
                    let s = separator(a.key(a.len() - 1), b.key(0));
                    self.dirty.insert(rp, Node::Leaf(b));
                    (Node::Leaf(a), Some(s))
                }
            }
            (Node::Branch(mut a), Node::Branch(b)) => {
                a.extend(&sep, &b);
                if a.size() <= PAGE_SIZE {
                    (Node::Branch(a), None)
                } else {
                    let (s, b) = a.split();
                    self.dirty.insert(rp, Node::Branch(b));
                    (Node::Branch(a), Some(s))
                }
            }
            _ => return Err(self.shared.corrupt(lp, "siblings of different kinds")),
        };
        self.dirty.insert(lp, merged);
        let merged_away = new_sep.is_none();
        match self.node_mut(pgno)? {
            Node::Branch(b) => match new_sep {
                Some(s) => b.set_key(r - 1, &s),
                None => b.remove(r - 1),
            },
            Node::Leaf(_) => return Err(self.internal(pgno, "rebalance in a leaf")),
        }
        if merged_away {
            self.free(rp);
        }
        Ok(())
    }

    fn write_overflow(&mut self, value: &[u8]) -> (u64, u32) {
        let chunks: Vec<&[u8]> = value.chunks(OVERFLOW_DATA).collect();
        let pages: Vec<u64> = chunks.iter().map(|_| self.alloc()).collect();
        for (i, data) in chunks.iter().enumerate() {
            let next = pages.get(i + 1).copied().unwrap_or(0);
            self.dirty_raw.insert(
                pages[i],
                page::encode_overflow(pages[i], self.txn, next, data),
            );
        }
        (pages.first().copied().unwrap_or(0), value.len() as u32)
    }

    /// Free every page of an overflow chain.
    fn free_overflow(&mut self, head: u64, len: u32) -> Result<()> {
        let count = (len as usize).div_ceil(OVERFLOW_DATA);
        let mut pgno = head;
        for _ in 0..count {
            let next = match self.dirty_raw.get(&pgno) {
                Some(buf) => page::rd64(buf, 16),
                None => {
                    let buf = self.shared.read_raw(pgno, self.meta.npages)?;
                    page::parse_overflow(pgno, &buf)
                        .map_err(|r| self.shared.corrupt(pgno, r))?
                        .0
                }
            };
            self.free(pgno);
            pgno = next;
        }
        Ok(())
    }

    /// Make the batch durable and visible: new pages, fsync, meta page, fsync.
    /// Returns the committed batch id.
    pub fn commit(mut self) -> Result<u64> {
        if self.dirty.is_empty() && self.dirty_raw.is_empty() && self.freed.is_empty() {
            return Ok(self.meta.txn);
        }
        let txn = self.txn;
        // The previous freelist pages are referenced by the committed meta: free them
        // like any other page this batch replaces.
        let old_list = self.free.list_pages.clone();
        self.freed.extend(old_list);
        let pending: usize = self.free.pending.iter().map(|(_, p)| p.len()).sum();
        // Taking a list page from `ready` shrinks the list, so this settles.
        let mut list_pages = Vec::new();
        loop {
            let total = self.ready.len() + pending + self.freed.len();
            if list_pages.len() >= total.div_ceil(FREELIST_CAP) {
                break;
            }
            list_pages.push(self.alloc());
        }
        let all_free: Vec<u64> = self
            .ready
            .iter()
            .chain(self.free.pending.iter().flat_map(|(_, p)| p.iter()))
            .chain(self.freed.iter())
            .copied()
            .collect();
        self.meta.freelist = list_pages.first().copied().unwrap_or(0);
        self.meta.nfree = all_free.len() as u64;

        let mut out: Vec<(u64, Box<[u8]>)> =
            Vec::with_capacity(self.dirty.len() + self.dirty_raw.len() + list_pages.len());
        let mut tree_pages = Vec::with_capacity(self.dirty.len());
        for (&pgno, node) in &self.dirty {
            if node.overfull() {
                return Err(self.internal(pgno, "overfull node at commit"));
            }
            let buf = node.encode(pgno, txn);
            tree_pages.push(pgno);
            out.push((pgno, buf));
        }
        for (pgno, buf) in self.dirty_raw.drain() {
            out.push((pgno, buf));
        }
        let mut chunks = all_free.chunks(FREELIST_CAP);
        for (i, &lp) in list_pages.iter().enumerate() {
            let next = list_pages.get(i + 1).copied().unwrap_or(0);
            out.push((
                lp,
                page::encode_freelist(lp, txn, next, chunks.next().unwrap_or(&[])),
            ));
        }
        out.sort_unstable_by_key(|(p, _)| *p);

        let shared = self.shared;
        // From the first write on, a failure leaves the process unsure of what is on
        // disk; refuse further batches until the file is reopened.
        shared.poisoned.store(true, Ordering::SeqCst);
        write_runs(shared, &out)?;
        // A page taken past the old end and freed again within this batch is on the
        // freelist but was never written: the file must still hold every page the
        // meta names (open refuses a meta that names more), so it grows to `npages`
        // (a hole of zeros) before the sync that makes the pages durable.
        let end = self.meta.npages * PAGE_SIZE as u64;
        let len = shared
            .file
            .metadata()
            .map_err(|e| shared.io("fstat", e))?
            .len();
        if len < end {
            shared
                .file
                .set_len(end)
                .map_err(|e| shared.io("ftruncate", e))?;
        }
        shared
            .file
            .sync_data()
            .map_err(|e| shared.io("fdatasync", e))?;
        self.meta.txn = txn;
        let meta_buf = self.meta.encode();
        shared
            .file
            .write_all_at(&meta_buf, (txn % 2) * PAGE_SIZE as u64)
            .map_err(|e| shared.io("pwrite meta", e))?;
        shared
            .file
            .sync_data()
            .map_err(|e| shared.io("fdatasync", e))?;
        shared.poisoned.store(false, Ordering::SeqCst);

        {
            let mut cache = lock(&shared.cache);
            let tree: HashSet<u64> = tree_pages.into_iter().collect();
            for (pgno, buf) in out {
                if tree.contains(&pgno) {
                    if let Some(p) = Page::from_encoded(pgno, buf) {
                        cache.insert(Arc::new(p));
                    }
                } else {
                    cache.remove(pgno);
                }
            }
        }
        lock(&shared.state).meta = self.meta;
        let freed = std::mem::take(&mut self.freed);
        let ready = std::mem::take(&mut self.ready);
        self.free.ready = ready;
        self.free.pending.push((txn, freed));
        self.free.list_pages = list_pages;
        tracing::trace!(
            txn,
            entries = self.meta.entries,
            npages = self.meta.npages,
            "btree commit"
        );
        Ok(txn)
    }
}

/// Write pages sorted by number, coalescing runs of consecutive pages into one `pwrite`.
fn write_runs(shared: &Shared, pages: &[(u64, Box<[u8]>)]) -> Result<()> {
    let mut i = 0;
    let mut buf = Vec::new();
    while i < pages.len() {
        let start = pages[i].0;
        let mut j = i;
        while j + 1 < pages.len() && pages[j + 1].0 == pages[j].0 + 1 && j + 1 - i < 256 {
            j += 1;
        }
        let off = start * PAGE_SIZE as u64;
        if i == j {
            shared.file.write_all_at(&pages[i].1, off)
        } else {
            buf.clear();
            for (_, b) in &pages[i..=j] {
                buf.extend_from_slice(b);
            }
            shared.file.write_all_at(&buf, off)
        }
        .map_err(|e| shared.io("pwrite", e))?;
        i = j + 1;
    }
    Ok(())
}
