//! Ordered iteration over a snapshot, in both directions.
//!
//! The one idea: a cursor is the path of (page, index) pairs from the root to a leaf
//! slot; stepping past the end of a leaf climbs to the nearest ancestor with another
//! child and descends its leftmost (or rightmost) edge. A [`Range`] runs one cursor
//! from each end and stops when they meet.

use super::page::Page;
use super::{Result, Snapshot};
use std::ops::Bound;
use std::sync::Arc;

struct Cursor {
    /// Root first; the last element is a leaf and the index of the current entry.
    path: Vec<(Arc<Page>, usize)>,
}

/// Where to place a new cursor.
enum Seek<'k> {
    /// First key `>= k` (or `> k` when `exclusive`).
    Forward {
        key: Option<&'k [u8]>,
        exclusive: bool,
    },
    /// Last key `<= k` (or `< k` when `exclusive`).
    Backward {
        key: Option<&'k [u8]>,
        exclusive: bool,
    },
}

impl Cursor {
    /// Place a cursor; `None` when no key satisfies the seek.
    fn seek(snap: &Snapshot, how: Seek<'_>) -> Result<Option<Cursor>> {
        let meta = &snap.meta;
        if meta.root == 0 {
            return Ok(None);
        }
        let sh = &snap.shared;
        let mut path = Vec::with_capacity(meta.depth as usize);
        let mut pgno = meta.root;
        for level in 1..=meta.depth {
            let p = sh.page(pgno, meta.npages)?;
            if p.is_leaf() != (level == meta.depth) {
                return Err(sh.corrupt(
                    pgno,
                    format!(
                        "page kind does not match its level {level} of {}",
                        meta.depth
                    ),
                ));
            }
            if p.is_leaf() {
                break;
            }
            let ci = match &how {
                Seek::Forward { key: Some(k), .. } | Seek::Backward { key: Some(k), .. } => {
                    p.child_index(k)
                }
                Seek::Forward { key: None, .. } => 0,
                Seek::Backward { key: None, .. } => p.nchildren() - 1,
            };
            pgno = p.child(ci);
            path.push((p, ci));
        }
        let leaf = sh.page(pgno, meta.npages)?;
        if !leaf.is_leaf() {
            return Err(sh.corrupt(pgno, "expected a leaf at the bottom level"));
        }
        let n = leaf.n;
        match how {
            Seek::Forward { key, exclusive } => {
                let idx = match key {
                    None => 0,
                    Some(k) => match leaf.leaf_seek(k) {
                        (i, true) if exclusive => i + 1,
                        (i, _) => i,
                    },
                };
                path.push((leaf, idx));
                let mut c = Cursor { path };
                if idx >= n && !c.next_leaf(snap, true)? {
                    return Ok(None);
                }
                Ok(Some(c))
            }
            Seek::Backward { key, exclusive } => {
                let after = match key {
                    None => n,
                    Some(k) => match leaf.leaf_seek(k) {
                        (i, true) if !exclusive => i + 1,
                        (i, _) => i,
                    },
                };
                path.push((leaf, after.saturating_sub(1)));
                let mut c = Cursor { path };
                if after == 0 && !c.next_leaf(snap, false)? {
                    return Ok(None);
                }
                Ok(Some(c))
            }
        }
    }

    fn current(&self) -> Option<(&Arc<Page>, usize)> {
        self.path.last().map(|(p, i)| (p, *i))
    }

    /// Step one entry forward or backward; false at the end.
    fn step(&mut self, snap: &Snapshot, forward: bool) -> Result<bool> {
        if let Some((p, i)) = self.path.last_mut() {
            if forward && *i + 1 < p.n {
                *i += 1;
                return Ok(true);
            }
            if !forward && *i > 0 && *i <= p.n {
                *i -= 1;
                return Ok(true);
            }
        }
        self.next_leaf(snap, forward)
    }

    /// Move to the first (forward) or last (backward) entry of the adjacent non-empty
    /// leaf; false if there is none.
    fn next_leaf(&mut self, snap: &Snapshot, forward: bool) -> Result<bool> {
        let meta = &snap.meta;
        let sh = &snap.shared;
        loop {
            // Climb to an ancestor with a further child in this direction.
            self.path.pop();
            let next = loop {
                let Some((p, ci)) = self.path.last_mut() else {
                    return Ok(false);
                };
                if forward && *ci + 1 < p.nchildren() {
                    *ci += 1;
                    break p.child(*ci);
                }
                if !forward && *ci > 0 {
                    *ci -= 1;
                    break p.child(*ci);
                }
                self.path.pop();
            };
            // Descend the near edge back to the leaf level.
            let mut pgno = next;
            while self.path.len() < meta.depth as usize {
                let p = sh.page(pgno, meta.npages)?;
                let level = self.path.len() as u32 + 1;
                if p.is_leaf() != (level == meta.depth) {
                    return Err(sh.corrupt(
                        pgno,
                        format!(
                            "page kind does not match its level {level} of {}",
                            meta.depth
                        ),
                    ));
                }
                if p.is_leaf() {
                    let idx = if forward { 0 } else { p.n.saturating_sub(1) };
                    let empty = p.n == 0;
                    self.path.push((p, idx));
                    if empty {
                        break;
                    }
                    return Ok(true);
                }
                let ci = if forward { 0 } else { p.nchildren() - 1 };
                pgno = p.child(ci);
                self.path.push((p, ci));
            }
            // An empty leaf (only possible in a damaged tree): keep moving.
        }
    }
}

/// Iterator over `(key, value)` pairs of a snapshot within bounds, ascending, or
/// descending through [`DoubleEndedIterator`] (`.rev()`).
pub struct Range<'a> {
    snap: &'a Snapshot,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    front: Option<Cursor>,
    back: Option<Cursor>,
    started_front: bool,
    started_back: bool,
    last_front: Option<Vec<u8>>,
    last_back: Option<Vec<u8>>,
    done: bool,
}

impl<'a> Range<'a> {
    pub(crate) fn new(snap: &'a Snapshot, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Range<'a> {
        Range {
            snap,
            lo,
            hi,
            front: None,
            back: None,
            started_front: false,
            started_back: false,
            last_front: None,
            last_back: None,
            done: false,
        }
    }

    fn advance(&mut self, forward: bool) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let snap = self.snap;
        let (cursor, started) = if forward {
            (&mut self.front, &mut self.started_front)
        } else {
            (&mut self.back, &mut self.started_back)
        };
        if !*started {
            *started = true;
            let how = if forward {
                match &self.lo {
                    Bound::Included(k) => Seek::Forward {
                        key: Some(k),
                        exclusive: false,
                    },
                    Bound::Excluded(k) => Seek::Forward {
                        key: Some(k),
                        exclusive: true,
                    },
                    Bound::Unbounded => Seek::Forward {
                        key: None,
                        exclusive: false,
                    },
                }
            } else {
                match &self.hi {
                    Bound::Included(k) => Seek::Backward {
                        key: Some(k),
                        exclusive: false,
                    },
                    Bound::Excluded(k) => Seek::Backward {
                        key: Some(k),
                        exclusive: true,
                    },
                    Bound::Unbounded => Seek::Backward {
                        key: None,
                        exclusive: false,
                    },
                }
            };
            *cursor = Cursor::seek(snap, how)?;
        } else if let Some(c) = cursor.as_mut() {
            if !c.step(snap, forward)? {
                *cursor = None;
            }
        }
        let Some((page, i)) = cursor.as_ref().and_then(|c| c.current()) else {
            self.done = true;
            return Ok(None);
        };
        if i >= page.n {
            self.done = true;
            return Ok(None);
        }
        let key = page.key(i);
        let in_bounds = if forward {
            match &self.hi {
                Bound::Included(h) => key <= h.as_slice(),
                Bound::Excluded(h) => key < h.as_slice(),
                Bound::Unbounded => true,
            }
        } else {
            match &self.lo {
                Bound::Included(l) => key >= l.as_slice(),
                Bound::Excluded(l) => key > l.as_slice(),
                Bound::Unbounded => true,
            }
        };
        // Stop where the two ends meet.
        let crossed = if forward {
            self.last_back.as_deref().is_some_and(|b| key >= b)
        } else {
            self.last_front.as_deref().is_some_and(|f| key <= f)
        };
        if !in_bounds || crossed {
            self.done = true;
            return Ok(None);
        }
        let key = key.to_vec();
        let val = snap.shared.value(page.val(i), snap.meta.npages)?;
        if forward {
            self.last_front = Some(key.clone());
        } else {
            self.last_back = Some(key.clone());
        }
        Ok(Some((key, val)))
    }
}

impl Iterator for Range<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance(true) {
            Ok(v) => v.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self.advance(false) {
            Ok(v) => v.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
