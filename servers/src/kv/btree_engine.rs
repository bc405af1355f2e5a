//! `--engine btree`: the keyspace's values live in the on-disk B+tree
//! ([`crate::store::btree`]) instead of memory.
//!
//! The one idea: the append-only log stays the only source of truth. The tree file is
//! rebuilt from the log at every start (it is a place to keep the data, not a second
//! durability mechanism whose state would have to be reconciled with the log), and
//! writes reach it in batches: they collect in a small ordered overlay in memory that
//! is committed to the tree as one write batch (one fsync boundary) once it holds
//! [`OVERLAY_MAX`] keys. Reads look in the overlay first, then in the tree.

use super::engine::Engine;
use crate::store::btree::{Db, Error as BtreeError, MAX_KEY, MAX_VALUE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keys changed in memory before they are committed to the tree together.
const OVERLAY_MAX: usize = 10_000;

/// The tree's file name inside the data directory.
pub const FILE_NAME: &str = "kvd.btree";

pub struct BtreeEngine {
    path: PathBuf,
    db: Option<Db>,
    /// Uncommitted changes: `None` is a deletion.
    overlay: BTreeMap<Box<[u8]>, Option<Vec<u8>>>,
    /// Keys in the overlay-plus-tree view.
    len: usize,
    /// Holds the last value read from the tree, so `get` can lend it out.
    scratch: Vec<u8>,
}

fn report(what: &str, e: &BtreeError) {
    tracing::error!(error = %e, "{what}");
}

impl BtreeEngine {
    /// Creates an empty tree at `dir/kvd.btree`, replacing any old one (the log is
    /// replayed into it).
    pub fn create(dir: &Path) -> Result<Self, BtreeError> {
        let path = dir.join(FILE_NAME);
        let _ = std::fs::remove_file(&path);
        let db = Db::open(&path)?;
        Ok(Self {
            path,
            db: Some(db),
            overlay: BTreeMap::new(),
            len: 0,
            scratch: Vec::new(),
        })
    }

    fn tree_get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let db = self.db.as_ref()?;
        match db.read().get(key) {
            Ok(v) => v,
            Err(e) => {
                report("reading the B-tree failed", &e);
                None
            }
        }
    }

    fn exists(&self, key: &[u8]) -> bool {
        match self.overlay.get(key) {
            Some(v) => v.is_some(),
            None => self.tree_get(key).is_some(),
        }
    }

    /// Commits the overlay as one write batch. On failure the overlay is kept (and
    /// retried at the next commit); the log still holds every change.
    fn commit(&mut self) {
        if self.overlay.is_empty() {
            return;
        }
        let Some(db) = self.db.as_ref() else {
            return;
        };
        let r = (|| -> Result<(), BtreeError> {
            let mut batch = db.write()?;
            for (k, v) in &self.overlay {
                match v {
                    Some(v) => batch.put(k, v)?,
                    None => {
                        batch.delete(k)?;
                    }
                }
            }
            batch.commit()?;
            Ok(())
        })();
        match r {
            Ok(()) => self.overlay.clear(),
            Err(e) => report("committing to the B-tree failed", &e),
        }
    }

    fn stage(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        self.overlay.insert(key.into(), value);
        if self.overlay.len() >= OVERLAY_MAX {
            self.commit();
        }
    }
}

impl Engine for BtreeEngine {
    fn name(&self) -> &'static str {
        "btree"
    }

    fn get(&mut self, key: &[u8]) -> Option<&[u8]> {
        if let Some(v) = self.overlay.get(key) {
            return v.as_deref();
        }
        self.scratch = self.tree_get(key)?;
        Some(&self.scratch)
    }

    fn set(&mut self, key: &[u8], value: Vec<u8>) -> bool {
        let existed = self.exists(key);
        if !existed {
            self.len += 1;
        }
        self.stage(key, Some(value));
        existed
    }

    fn del(&mut self, key: &[u8]) -> bool {
        let existed = self.exists(key);
        if existed {
            self.len -= 1;
            self.stage(key, None);
        }
        existed
    }

    fn contains(&mut self, key: &[u8]) -> bool {
        self.exists(key)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.overlay.clear();
        self.len = 0;
        // Dropping the Db releases its lock before the file is replaced.
        self.db = None;
        let _ = std::fs::remove_file(&self.path);
        match Db::open(&self.path) {
            Ok(db) => self.db = Some(db),
            Err(e) => report("recreating the B-tree failed", &e),
        }
    }

    /// The cursor is a position in key order; each call commits the overlay and skips
    /// to that position, so a whole SCAN costs O(n²/COUNT) (a key present throughout
    /// is still visited once, unless keys before it are deleted meanwhile).
    fn scan(&mut self, cursor: u64, count: usize, visit: &mut dyn FnMut(&[u8])) -> u64 {
        self.commit();
        let Some(db) = self.db.as_ref() else {
            return 0;
        };
        let snap = db.read();
        let mut pos = cursor;
        let mut seen = 0usize;
        for item in snap.iter().skip(cursor as usize) {
            match item {
                Ok((k, _)) => visit(&k),
                Err(e) => {
                    report("scanning the B-tree failed", &e);
                    return 0;
                }
            }
            pos += 1;
            seen += 1;
            if seen >= count.max(1) {
                return if pos >= snap.len() { 0 } else { pos };
            }
        }
        0
    }

    fn range(
        &mut self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Result<(), String>> {
        self.commit();
        let Some(db) = self.db.as_ref() else {
            return Some(Ok(()));
        };
        let snap = db.read();
        for item in snap.range(
            std::ops::Bound::Included(start),
            std::ops::Bound::Included(end),
        ) {
            match item {
                Ok((k, v)) => {
                    if !visit(&k, &v) {
                        break;
                    }
                }
                Err(e) => return Some(Err(format!("reading the B-tree: {e}"))),
            }
        }
        Some(Ok(()))
    }

    /// Tree entries not shadowed by the overlay, then the overlay's live entries.
    fn for_each(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), String> {
        if let Some(db) = self.db.as_ref() {
            for item in db.read().iter() {
                match item {
                    Ok((k, v)) => {
                        if !self.overlay.contains_key(k.as_slice()) {
                            visit(&k, &v);
                        }
                    }
                    Err(e) => return Err(format!("iterating the B-tree: {e}")),
                }
            }
        }
        for (k, v) in &self.overlay {
            if let Some(v) = v {
                visit(k, v);
            }
        }
        Ok(())
    }

    /// A registered reader at the current batch: pages it reaches are not reused by
    /// later commits while the rewrite child (which reads that batch) runs.
    fn pin(&self) -> Box<dyn std::any::Any + Send> {
        match self.db.as_ref() {
            Some(db) => Box::new(db.read()),
            None => Box::new(()),
        }
    }

    fn fits(&self, key: &[u8], value_len: usize) -> Result<(), String> {
        if key.len() > MAX_KEY {
            return Err(format!(
                "ERR key of {} bytes is over the btree engine's {MAX_KEY}-byte limit",
                key.len()
            ));
        }
        if value_len > MAX_VALUE {
            return Err(format!(
                "ERR value of {value_len} bytes is over the btree engine's {MAX_VALUE}-byte limit"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_hash_map_across_commits() {
        let d = tempfile::tempdir().unwrap();
        let mut e = BtreeEngine::create(d.path()).unwrap();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x = 12345u64;
        for _ in 0..30_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = format!("k{}", x % 5000).into_bytes();
            if x % 3 == 0 {
                assert_eq!(e.del(&k), model.remove(&k).is_some());
            } else {
                let v = x.to_string().into_bytes();
                assert_eq!(e.set(&k, v.clone()), model.insert(k, v).is_some());
            }
        }
        assert_eq!(e.len(), model.len());
        for (k, v) in &model {
            assert_eq!(e.get(k), Some(v.as_slice()));
        }
        let mut seen = 0;
        e.for_each(&mut |k, v| {
            assert_eq!(model.get(k).map(Vec::as_slice), Some(v));
            seen += 1;
        })
        .unwrap();
        assert!(e.fits(&[0; 2000], 1).is_err());
        assert!(e.fits(b"k", 1).is_ok());
        assert_eq!(seen, model.len());
        let mut scanned = std::collections::HashSet::new();
        let mut c = 0;
        loop {
            c = e.scan(c, 100, &mut |k| {
                scanned.insert(k.to_vec());
            });
            if c == 0 {
                break;
            }
        }
        assert_eq!(scanned.len(), model.len());
        e.clear();
        assert_eq!(e.len(), 0);
        assert_eq!(e.get(b"k1"), None);
    }
}
