//! In-memory nodes: the form a page takes while a write batch changes it.
//!
//! The one idea: a batch decodes a page once when it first copies it (copy-on-write),
//! edits plain vectors, and encodes it once at commit; splits and merges are vector
//! splices, and a node's encoded size decides when to split or rebalance.

use super::page::{
    branch_cell_size, encode_branch, encode_leaf, leaf_cell_size, Page, ValRef, BRANCH_HDR,
    LEAF_HDR, PAGE_SIZE,
};

/// A leaf value: inline bytes, or the head of an overflow chain and the total length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Inline(Vec<u8>),
    Overflow { pgno: u64, len: u32 },
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub key: Vec<u8>,
    pub val: Val,
}

/// A leaf: entries in strictly increasing key order.
#[derive(Clone, Debug, Default)]
pub struct Leaf {
    pub entries: Vec<Entry>,
}

/// A branch: `children.len() == keys.len() + 1`; child `i + 1` holds keys `>= keys[i]`
/// and `< keys[i + 1]`.
#[derive(Clone, Debug)]
pub struct Branch {
    pub keys: Vec<Vec<u8>>,
    pub children: Vec<u64>,
}

#[derive(Clone, Debug)]
pub enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

impl Leaf {
    pub fn size(&self) -> usize {
        LEAF_HDR + self.entries.iter().map(leaf_cell_size).sum::<usize>()
    }

    pub fn seek(&self, key: &[u8]) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.key.as_slice().cmp(key))
    }

    /// Split an overfull leaf in two by bytes; returns the right half.
    pub fn split(&mut self) -> Leaf {
        let total = self.size();
        let mut acc = LEAF_HDR;
        let mut at = 0;
        for (i, e) in self.entries.iter().enumerate() {
            acc += leaf_cell_size(e);
            at = i + 1;
            if acc >= total / 2 {
                break;
            }
        }
        // Both halves must be non-empty: an overfull leaf has at least two entries
        // because one cell is at most a third of a page.
        let at = at.clamp(1, self.entries.len().saturating_sub(1).max(1));
        Leaf {
            entries: self.entries.split_off(at),
        }
    }
}

impl Branch {
    pub fn size(&self) -> usize {
        BRANCH_HDR + self.keys.iter().map(|k| branch_cell_size(k)).sum::<usize>()
    }

    /// Index of the child that may hold `key`.
    pub fn child_index(&self, key: &[u8]) -> usize {
        self.keys.partition_point(|k| k.as_slice() <= key)
    }

    /// Split an overfull branch; returns (separator moved up, right half).
    pub fn split(&mut self) -> (Vec<u8>, Branch) {
        let total = self.size();
        let mut acc = BRANCH_HDR;
        let mut mid = 0;
        for (i, k) in self.keys.iter().enumerate() {
            acc += branch_cell_size(k);
            mid = i;
            if acc >= total / 2 {
                break;
            }
        }
        // mid is a valid key index: an overfull branch has at least three keys.
        let mid = mid.clamp(1, self.keys.len().saturating_sub(2).max(1));
        let right_keys = self.keys.split_off(mid + 1);
        let sep = self.keys.pop().unwrap_or_default();
        let right_children = self.children.split_off(mid + 1);
        (
            sep,
            Branch {
                keys: right_keys,
                children: right_children,
            },
        )
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
            Node::Leaf(l) => encode_leaf(pgno, txn, l),
            Node::Branch(b) => encode_branch(pgno, txn, b),
        }
    }

    /// Decode a validated page for editing.
    pub fn decode(p: &Page) -> Node {
        if p.is_leaf() {
            let entries = (0..p.n)
                .map(|i| Entry {
                    key: p.key(i).to_vec(),
                    val: match p.val(i) {
                        ValRef::Inline(v) => Val::Inline(v.to_vec()),
                        ValRef::Overflow { pgno, len } => Val::Overflow { pgno, len },
                    },
                })
                .collect();
            Node::Leaf(Leaf { entries })
        } else {
            Node::Branch(Branch {
                keys: (0..p.n).map(|i| p.key(i).to_vec()).collect(),
                children: (0..p.nchildren()).map(|c| p.child(c)).collect(),
            })
        }
    }
}
