//! In-memory nodes: the form a page takes while a write batch changes it.
//!
//! The one idea: a node keeps its cells, in the page's own cell format, appended to one
//! byte buffer, plus a vector of offsets in key order. Copying a page in is one copy,
//! an insert appends a cell and shifts a few offsets, a delete only drops an offset,
//! and encoding at commit copies each live cell once; no allocation per entry. The
//! node's encoded size, kept up to date, decides when to split or rebalance.

use super::page::{
    blank, leaf_cell, rd16, seal, wr16, wr64, Page, ValRef, BRANCH_HDR, KIND_BRANCH, KIND_LEAF,
    LEAF_HDR, OVERFLOW_FLAG, PAGE_SIZE,
};

/// Rebuild a node's buffer once dead cells exceed this many bytes (and half the buffer).
const COMPACT_AT: usize = 2 * PAGE_SIZE;

/// A leaf: entries in strictly increasing key order.
#[derive(Clone, Debug, Default)]
pub struct Leaf {
    buf: Vec<u8>,
    cells: Vec<u32>,
    garbage: usize,
    size: usize,
}

/// A branch: `children.len() == nkeys() + 1`; child `i + 1` holds keys `>= key(i)` and
/// `< key(i + 1)`.
#[derive(Clone, Debug)]
pub struct Branch {
    buf: Vec<u8>,
    keys: Vec<u32>,
    pub children: Vec<u64>,
    garbage: usize,
    size: usize,
}

#[derive(Clone, Debug)]
pub enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

/// Bytes of a leaf cell for `key` and `val`, without its slot.
pub fn leaf_cell_len(key: &[u8], val: ValRef<'_>) -> usize {
    6 + key.len()
        + match val {
            ValRef::Inline(v) => v.len(),
            ValRef::Overflow { .. } => 8,
        }
}

fn push_leaf_cell(buf: &mut Vec<u8>, key: &[u8], val: ValRef<'_>) {
    buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
    match val {
        ValRef::Inline(v) => {
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(key);
            buf.extend_from_slice(v);
        }
        ValRef::Overflow { pgno, len } => {
            buf.extend_from_slice(&(len | OVERFLOW_FLAG).to_le_bytes());
            buf.extend_from_slice(key);
            buf.extend_from_slice(&pgno.to_le_bytes());
        }
    }
}

/// The overflow chain a value points at, if any.
fn overflow_of(v: ValRef<'_>) -> Option<(u64, u32)> {
    match v {
        ValRef::Overflow { pgno, len } => Some((pgno, len)),
        ValRef::Inline(_) => None,
    }
}

impl Leaf {
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn size(&self) -> usize {
        LEAF_HDR + self.size
    }

    fn cell(&self, i: usize) -> (&[u8], ValRef<'_>, usize) {
        leaf_cell(&self.buf, self.cells[i] as usize)
    }

    pub fn key(&self, i: usize) -> &[u8] {
        self.cell(i).0
    }

    fn raw(&self, i: usize) -> &[u8] {
        let (_, _, len) = self.cell(i);
        let off = self.cells[i] as usize;
        &self.buf[off..off + len]
    }

    pub fn seek(&self, key: &[u8]) -> Result<usize, usize> {
        self.cells
            .binary_search_by(|&off| leaf_cell(&self.buf, off as usize).0.cmp(key))
    }

    pub fn insert(&mut self, i: usize, key: &[u8], val: ValRef<'_>) {
        let off = self.buf.len() as u32;
        push_leaf_cell(&mut self.buf, key, val);
        self.cells.insert(i, off);
        self.size += 2 + leaf_cell_len(key, val);
    }

    /// Replace entry `i`'s value; returns the overflow chain the old value used.
    pub fn replace(&mut self, i: usize, val: ValRef<'_>) -> Option<(u64, u32)> {
        let (key, old) = self.remove(i);
        self.insert(i, &key, val);
        old
    }

    /// Remove entry `i`; returns its key and the overflow chain its value used.
    pub fn remove(&mut self, i: usize) -> (Vec<u8>, Option<(u64, u32)>) {
        let (key, val, len) = self.cell(i);
        let out = (key.to_vec(), overflow_of(val));
        self.cells.remove(i);
        self.size -= 2 + len;
        self.garbage += len;
        self.maybe_compact();
        out
    }

    /// Drop entry `i` without copying its key out.
    pub fn delete(&mut self, i: usize) -> Option<(u64, u32)> {
        let (_, val, len) = self.cell(i);
        let ov = overflow_of(val);
        self.cells.remove(i);
        self.size -= 2 + len;
        self.garbage += len;
        self.maybe_compact();
        ov
    }

    fn maybe_compact(&mut self) {
        if self.garbage > COMPACT_AT && self.garbage * 2 > self.buf.len() {
            *self = self.slice(0, self.len());
        }
    }

    /// A compact copy of entries `[from, to)`.
    fn slice(&self, from: usize, to: usize) -> Leaf {
        let mut out = Leaf {
            buf: Vec::with_capacity(self.size),
            ..Leaf::default()
        };
        for i in from..to {
            out.push_raw(self.raw(i));
        }
        out
    }

    fn push_raw(&mut self, cell: &[u8]) {
        self.cells.push(self.buf.len() as u32);
        self.buf.extend_from_slice(cell);
        self.size += 2 + cell.len();
    }

    /// Bytes entry `i` takes in a page, slot included.
    pub fn cell_size(&self, i: usize) -> usize {
        2 + self.cell(i).2
    }

    /// Remove and return the first `k` entries.
    pub fn take_front(&mut self, k: usize) -> Leaf {
        let front = self.slice(0, k);
        *self = self.slice(k, self.len());
        front
    }

    /// Remove and return the last `k` entries.
    pub fn take_back(&mut self, k: usize) -> Leaf {
        let at = self.len() - k;
        let back = self.slice(at, self.len());
        *self = self.slice(0, at);
        back
    }

    /// Append every entry of `other` (all of whose keys are greater).
    pub fn extend(&mut self, other: &Leaf) {
        for i in 0..other.len() {
            self.push_raw(other.raw(i));
        }
    }

    /// Split an overfull leaf in two by bytes; returns the right half.
    pub fn split(&mut self) -> Leaf {
        let half = self.size / 2;
        let mut acc = 0;
        let mut at = self.len();
        for i in 0..self.len() {
            acc += 2 + self.cell(i).2;
            if acc >= half {
                at = i + 1;
                break;
            }
        }
        // Both halves must be non-empty: an overfull leaf has at least two entries
        // because one cell is at most a third of a page.
        let at = at.clamp(1, self.len().saturating_sub(1).max(1));
        let right = self.slice(at, self.len());
        *self = self.slice(0, at);
        right
    }

    pub fn from_page(p: &Page) -> Leaf {
        let buf = p.bytes().to_vec();
        let cells: Vec<u32> = (0..p.n).map(|i| p.slot(i) as u32).collect();
        let live: usize = cells.iter().map(|&o| leaf_cell(&buf, o as usize).2).sum();
        Leaf {
            garbage: buf.len() - live,
            size: live + 2 * cells.len(),
            buf,
            cells,
        }
    }

    pub fn encode(&self, pgno: u64, txn: u64) -> Box<[u8]> {
        let mut b = blank();
        b[4] = KIND_LEAF;
        wr16(&mut b, 6, self.len() as u16);
        wr64(&mut b, 8, txn);
        let mut top = PAGE_SIZE;
        for i in 0..self.len() {
            let cell = self.raw(i);
            top -= cell.len();
            b[top..top + cell.len()].copy_from_slice(cell);
            wr16(&mut b, LEAF_HDR + 2 * i, top as u16);
        }
        seal(pgno, &mut b);
        b
    }
}

impl Branch {
    /// A new root over two children.
    pub fn root(left: u64, sep: &[u8], right: u64) -> Branch {
        let mut b = Branch {
            buf: Vec::new(),
            keys: Vec::new(),
            children: vec![left],
            garbage: 0,
            size: 0,
        };
        b.insert(0, sep, right);
        b
    }

    pub fn nkeys(&self) -> usize {
        self.keys.len()
    }

    pub fn size(&self) -> usize {
        BRANCH_HDR + self.size
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let off = self.keys[i] as usize;
        let klen = rd16(&self.buf, off) as usize;
        &self.buf[off + 2..off + 2 + klen]
    }

    /// Index of the child that may hold `key`.
    pub fn child_index(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.keys.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn push_key(&mut self, key: &[u8]) -> u32 {
        let off = self.buf.len() as u32;
        self.buf
            .extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.size += 12 + key.len();
        off
    }

    /// Insert separator `key` at `i` with `child` to its right.
    pub fn insert(&mut self, i: usize, key: &[u8], child: u64) {
        let off = self.push_key(key);
        self.keys.insert(i, off);
        self.children.insert(i + 1, child);
    }

    pub fn set_key(&mut self, i: usize, key: &[u8]) {
        let old = self.key(i).len();
        self.size -= 12 + old;
        self.garbage += 2 + old;
        let off = self.push_key(key);
        self.keys[i] = off;
        self.maybe_compact();
    }

    /// Remove separator `i` and the child to its right.
    pub fn remove(&mut self, i: usize) {
        let old = self.key(i).len();
        self.size -= 12 + old;
        self.garbage += 2 + old;
        self.keys.remove(i);
        self.children.remove(i + 1);
        self.maybe_compact();
    }

    fn maybe_compact(&mut self) {
        if self.garbage > COMPACT_AT && self.garbage * 2 > self.buf.len() {
            *self = self.slice(0, self.nkeys());
        }
    }

    /// A compact copy holding keys `[from, to)` and children `[from, to]`.
    fn slice(&self, from: usize, to: usize) -> Branch {
        let mut out = Branch {
            buf: Vec::with_capacity(self.size),
            keys: Vec::with_capacity(to - from),
            children: self.children[from..=to].to_vec(),
            garbage: 0,
            size: 0,
        };
        for i in from..to {
            let off = out.push_key(self.key(i));
            out.keys.push(off);
        }
        out
    }

    /// Append separator `sep` and then all of `other` (whose keys are all greater).
    pub fn extend(&mut self, sep: &[u8], other: &Branch) {
        let off = self.push_key(sep);
        self.keys.push(off);
        self.children.push(other.children[0]);
        for i in 0..other.nkeys() {
            let off = self.push_key(other.key(i));
            self.keys.push(off);
            self.children.push(other.children[i + 1]);
        }
    }

    /// Split an overfull branch; returns (separator moved up, right half).
    pub fn split(&mut self) -> (Vec<u8>, Branch) {
        let half = self.size / 2;
        let mut acc = 0;
        let mut mid = self.nkeys().saturating_sub(1);
        for i in 0..self.nkeys() {
            acc += 12 + self.key(i).len();
            if acc >= half {
                mid = i;
                break;
            }
        }
        // An overfull branch has at least four keys (each cell is under a third of a
        // page), so both halves keep at least one key.
        let mid = mid.clamp(1, self.nkeys().saturating_sub(2).max(1));
        let sep = self.key(mid).to_vec();
        let right = self.slice(mid + 1, self.nkeys());
        *self = self.slice(0, mid);
        (sep, right)
    }

    pub fn from_page(p: &Page) -> Branch {
        let mut b = Branch {
            buf: Vec::with_capacity(PAGE_SIZE),
            keys: Vec::with_capacity(p.n),
            children: (0..p.nchildren()).map(|c| p.child(c)).collect(),
            garbage: 0,
            size: 0,
        };
        for i in 0..p.n {
            let off = b.push_key(p.key(i));
            b.keys.push(off);
        }
        b
    }

    pub fn encode(&self, pgno: u64, txn: u64) -> Box<[u8]> {
        let mut b = blank();
        b[4] = KIND_BRANCH;
        wr16(&mut b, 6, self.nkeys() as u16);
        wr64(&mut b, 8, txn);
        wr64(&mut b, 16, self.children[0]);
        let mut top = PAGE_SIZE;
        for i in 0..self.nkeys() {
            let key = self.key(i);
            top -= 10 + key.len();
            wr16(&mut b, BRANCH_HDR + 2 * i, top as u16);
            wr16(&mut b, top, key.len() as u16);
            wr64(&mut b, top + 2, self.children[i + 1]);
            b[top + 10..top + 10 + key.len()].copy_from_slice(key);
        }
        seal(pgno, &mut b);
        b
    }
}

impl Node {
    pub fn size(&self) -> usize {
        match self {
            Node::Leaf(l) => l.size(),
            Node::Branch(b) => b.size(),
        }
    }

    pub fn overfull(&self) -> bool {
        self.size() > PAGE_SIZE
    }

    pub fn encode(&self, pgno: u64, txn: u64) -> Box<[u8]> {
        match self {
            Node::Leaf(l) => l.encode(pgno, txn),
            Node::Branch(b) => b.encode(pgno, txn),
        }
    }

    /// Decode a validated page for editing.
    pub fn decode(p: &Page) -> Node {
        if p.is_leaf() {
            Node::Leaf(Leaf::from_page(p))
        } else {
            Node::Branch(Branch::from_page(p))
        }
    }
}

/// Shortest separator `s` with `left < s <= right`: a prefix of `right` one byte
/// longer than its common prefix with `left`. Short separators keep branches wide.
pub fn separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    right[..(common + 1).min(right.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_edit_split_roundtrip() {
        let mut l = Leaf::default();
        let mut i = 0u32;
        while l.size() <= PAGE_SIZE {
            i += 1;
            let k = format!("k{i:05}");
            let at = l.seek(k.as_bytes()).unwrap_err();
            l.insert(at, k.as_bytes(), ValRef::Inline(&[i as u8; 30]));
        }
        let n = l.len();
        assert_eq!(
            l.replace(
                3,
                ValRef::Overflow {
                    pgno: 77,
                    len: 9000
                }
            ),
            None
        );
        assert_eq!(l.delete(3), Some((77, 9000)));
        let r = l.split();
        assert!(l.size() <= PAGE_SIZE && r.size() <= PAGE_SIZE);
        assert_eq!(l.len() + r.len(), n - 1);
        assert!(l.key(l.len() - 1) < r.key(0));
        let p = Page::parse(5, l.encode(5, 1)).expect("encoded leaf parses");
        assert_eq!(Leaf::from_page(&p).size(), l.size());
        assert_eq!(p.key(0), b"k00001");
    }

    #[test]
    fn separators_are_short_and_between() {
        assert_eq!(separator(b"abc", b"abd"), b"abd");
        assert_eq!(separator(b"abc", b"b"), b"b");
        assert_eq!(separator(b"a", b"abc"), b"ab");
        assert_eq!(separator(b"", b"x"), b"x");
    }
}
