//! `--engine btree`: the keyspace's values live in the on-disk B+tree
//! ([`crate::store::btree`]) instead of memory.
//!
//! The one idea: the append-only log stays the only source of truth. The tree file is
//! rebuilt from the log at every start (it is a place to keep the data, not a second
//! durability mechanism whose state would have to be reconciled with the log), and
//! writes reach it in batches: they collect in a small ordered overlay in memory that
//! is committed to the tree as one write batch (one fsync boundary) once it holds
//! [`OVERLAY_MAX`] keys. Reads look in the overlay first, then in the tree.
//!
//! The tree holds strings only: [`Engine::holds`] refuses hashes, lists, sets and
//! sorted sets with a message naming `--engine hash`, so a command that would create
//! one answers that error and nothing else is stored.
//!
//! SCAN's cursor names a position in key order: the number handed out stands for the
//! last key returned (kept in a small table of scans in progress), and the next call
//! resumes strictly after that key with one tree seek, so it costs O(log n + COUNT) and
//! no key present throughout is missed whatever is deleted meanwhile.

use super::engine::Engine;
use super::value::{Kind, Value};
use crate::store::btree::{Db, Error as BtreeError, MAX_KEY, MAX_VALUE};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Keys changed in memory before they are committed to the tree together.
const OVERLAY_MAX: usize = 10_000;

/// SCANs in progress remembered at once; the oldest is forgotten past this (its next
/// call starts over from the first key: keys may repeat, none is missed).
const SCANS_MAX: usize = 4096;

/// Resume points of SCANs in progress: cursor number → last key returned.
#[derive(Default)]
struct Cursors {
    at: HashMap<u64, Box<[u8]>>,
    order: VecDeque<u64>,
    next: u64,
}

impl Cursors {
    fn take(&mut self, cursor: u64) -> Option<Box<[u8]>> {
        self.at.remove(&cursor)
    }

    fn put(&mut self, last: Box<[u8]>) -> u64 {
        while self.at.len() >= SCANS_MAX {
            match self.order.pop_front() {
                Some(old) => {
                    self.at.remove(&old);
                }
                None => break,
            }
        }
        // Ids of finished scans linger in `order`; drop them as they reach the front.
        while self.order.len() > 2 * SCANS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.at.remove(&old);
            }
        }
        self.next += 1;
        self.at.insert(self.next, last);
        self.order.push_back(self.next);
        self.next
    }
}

/// The tree's file name inside the data directory.
pub const FILE_NAME: &str = "kvd.btree";

pub struct BtreeEngine {
    path: PathBuf,
    db: Option<Db>,
    /// Uncommitted changes: `None` is a deletion.
    overlay: BTreeMap<Box<[u8]>, Option<Value>>,
    /// Keys in the overlay-plus-tree view.
    len: usize,
    /// Holds the last value read from the tree, so `get` can lend it out.
    scratch: Value,
    cursors: Cursors,
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
            scratch: Value::Str(Vec::new()),
            cursors: Cursors::default(),
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
                    Some(Value::Str(v)) => batch.put(k, v)?,
                    // `holds` keeps every other type out of the engine.
                    Some(other) => tracing::error!(
                        kind = other.kind().name(),
                        "the btree engine was given a non-string value; not stored"
                    ),
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

    fn stage(&mut self, key: &[u8], value: Option<Value>) {
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

    fn get(&mut self, key: &[u8]) -> Option<&Value> {
        if let Some(v) = self.overlay.get(key) {
            return v.as_ref();
        }
        self.scratch = Value::Str(self.tree_get(key)?);
        Some(&self.scratch)
    }

    /// Brings the value into the overlay, where a change is committed with the rest.
    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        if !self.overlay.contains_key(key) {
            let v = self.tree_get(key)?;
            if self.overlay.len() >= OVERLAY_MAX {
                self.commit();
            }
            self.overlay.insert(key.into(), Some(Value::Str(v)));
        }
        self.overlay.get_mut(key).and_then(Option::as_mut)
    }

    fn set(&mut self, key: &[u8], value: Value) -> bool {
        let existed = self.exists(key);
        if !existed {
            self.len += 1;
        }
        self.stage(key, Some(value));
        existed
    }

    fn take(&mut self, key: &[u8]) -> Option<Value> {
        let v = match self.overlay.get_mut(key) {
            Some(slot) => slot.take()?,
            None => Value::Str(self.tree_get(key)?),
        };
        self.len -= 1;
        self.stage(key, None);
        Some(v)
    }

    /// Seeks to a random key-sized position and takes the key at or after it.
    fn random_key(&mut self, r: u64) -> Option<Box<[u8]>> {
        if self.len == 0 {
            return None;
        }
        self.commit();
        let db = self.db.as_ref()?;
        let snap = db.read();
        let probe = r.to_be_bytes();
        let first = |lo: Bound<&[u8]>| match snap.range(lo, Bound::Unbounded).next() {
            Some(Ok((k, _))) => Some(k.into_boxed_slice()),
            _ => None,
        };
        first(Bound::Included(&probe[..])).or_else(|| first(Bound::Unbounded))
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

    /// The cursor stands for the last key returned (see the module comment); the
    /// walk resumes strictly after it with one seek.
    fn scan(&mut self, cursor: u64, count: usize, visit: &mut dyn FnMut(&[u8])) -> u64 {
        self.commit();
        let after = if cursor == 0 {
            None
        } else {
            self.cursors.take(cursor)
        };
        let Some(db) = self.db.as_ref() else {
            return 0;
        };
        let snap = db.read();
        let lo = match &after {
            Some(k) => Bound::Excluded(&k[..]),
            None => Bound::Unbounded,
        };
        let mut seen = 0usize;
        let mut last: Option<Vec<u8>> = None;
        for item in snap.range(lo, Bound::Unbounded) {
            match item {
                Ok((k, _)) => {
                    if seen >= count.max(1) {
                        // There is more: resume after the last key returned.
                        let resume = last.take().unwrap_or_default().into_boxed_slice();
                        return self.cursors.put(resume);
                    }
                    visit(&k);
                    last = Some(k);
                    seen += 1;
                }
                Err(e) => {
                    report("scanning the B-tree failed", &e);
                    return 0;
                }
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
    fn for_each(&self, visit: &mut dyn FnMut(&[u8], &Value)) -> Result<(), String> {
        if let Some(db) = self.db.as_ref() {
            for item in db.read().iter() {
                match item {
                    Ok((k, v)) => {
                        if !self.overlay.contains_key(k.as_slice()) {
                            visit(&k, &Value::Str(v));
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

    fn holds(&self, kind: Kind) -> Result<(), String> {
        match kind {
            Kind::Str => Ok(()),
            other => Err(format!(
                "ERR the btree engine stores strings only, not a {}; start kvd with --engine hash for hashes, lists, sets and sorted sets",
                other.name()
            )),
        }
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
                assert_eq!(
                    e.set(&k, Value::Str(v.clone())),
                    model.insert(k, v).is_some()
                );
            }
        }
        assert_eq!(e.len(), model.len());
        for (k, v) in &model {
            assert!(matches!(e.get(k), Some(Value::Str(got)) if got == v));
        }
        let mut seen = 0;
        e.for_each(&mut |k, v| {
            assert!(matches!(v, Value::Str(v) if model.get(k) == Some(v)));
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
        assert!(e.get(b"k1").is_none());
        assert!(e.holds(Kind::Hash).is_err());
        assert!(e.holds(Kind::Str).is_ok());
    }

    /// Keys present for the whole scan are all returned even when others (before and
    /// after the cursor) are deleted between calls, and each call seeks, not skips.
    #[test]
    fn scan_resumes_after_the_last_key_under_deletes() {
        let d = tempfile::tempdir().unwrap();
        let mut e = BtreeEngine::create(d.path()).unwrap();
        for i in 0..1000u32 {
            e.set(format!("k{i:04}").as_bytes(), Value::Str(vec![]));
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0u32;
        loop {
            cursor = e.scan(cursor, 10, &mut |k| {
                seen.insert(k.to_vec());
            });
            for j in 0..5u32 {
                let victim = (round * 5 + j) * 2 + 1;
                if victim < 1000 {
                    e.del(format!("k{victim:04}").as_bytes());
                }
                e.set(format!("n{round}-{j}").as_bytes(), Value::Str(vec![]));
            }
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in (0..1000u32).step_by(2) {
            assert!(
                seen.contains(format!("k{i:04}").as_bytes()),
                "missed k{i:04}"
            );
        }
        assert!(
            e.cursors.at.is_empty(),
            "a finished scan leaves no resume point"
        );
    }
}
