//! The storage engine behind the keyspace: a plain map from byte-string keys to
//! [`Value`]s, nothing more.
//!
//! The one idea: expiry, counters and the log live above this trait (in
//! [`super::keyspace`]), so an engine only stores and finds values. That keeps the
//! contract small enough for an ordered on-disk B-tree to implement it
//! (`--engine btree`), with SCAN's cursor left to each engine's own notion of position,
//! and lets an engine refuse the types it cannot hold ([`Engine::holds`]).

use super::value::{Kind, Value};
use indexmap::IndexMap;

/// The engines `--engine` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// An in-memory hash table; holds every type.
    Hash,
    /// The ordered on-disk B+tree (values on disk, rebuilt from the log at start);
    /// holds strings only.
    Btree,
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Hash => "hash",
            EngineKind::Btree => "btree",
        })
    }
}

/// A map from keys to values. `&mut self` on reads lets an engine that pages data in
/// from disk return a reference into its own buffer.
pub trait Engine: Send {
    fn name(&self) -> &'static str;
    fn get(&mut self, key: &[u8]) -> Option<&Value>;
    /// The value to change in place (the engine stores the change).
    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value>;
    /// Stores `value` under `key`; true when the key already existed.
    fn set(&mut self, key: &[u8], value: Value) -> bool;
    /// Removes `key`, returning its value.
    fn take(&mut self, key: &[u8]) -> Option<Value>;
    /// Removes `key`; true when it existed.
    fn del(&mut self, key: &[u8]) -> bool {
        self.take(key).is_some()
    }
    fn contains(&mut self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn clear(&mut self);
    /// A key picked at random from `r` (RANDOMKEY); `None` when empty.
    fn random_key(&mut self, r: u64) -> Option<Box<[u8]>>;
    /// Visits about `count` entries from `cursor` (0 starts) and returns the cursor to
    /// continue from (0 when done). Every key present for a whole scan is visited at
    /// least once; keys may be visited more than once.
    fn scan(&mut self, cursor: u64, count: usize, visit: &mut dyn FnMut(&[u8])) -> u64;
    /// Visits every entry (used to write a compacted log); an error means the visit
    /// is incomplete.
    fn for_each(&self, visit: &mut dyn FnMut(&[u8], &Value)) -> Result<(), String>;
    /// Something to hold while a forked child reads the engine: an on-disk engine pins
    /// its current state so the parent does not reuse pages the child still reads.
    fn pin(&self) -> Box<dyn std::any::Any + Send> {
        Box::new(())
    }
    /// Visits the pairs with `start <= key <= end` in key order until `visit` returns
    /// false. `None`: the engine keeps no order (the hash engine).
    fn range(
        &mut self,
        _start: &[u8],
        _end: &[u8],
        _visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Result<(), String>> {
        None
    }
    /// Refuses a key or value the engine cannot store, with the reply's wording.
    fn fits(&self, _key: &[u8], _value_len: usize) -> Result<(), String> {
        Ok(())
    }
    /// Refuses a type the engine cannot store, with the reply's wording.
    fn holds(&self, _kind: Kind) -> Result<(), String> {
        Ok(())
    }
}

/// The in-memory engine: an insertion-ordered hash table (`IndexMap`), because its
/// entries have positions: SCAN walks positions downwards, and active expiry samples
/// random positions.
#[derive(Default)]
pub struct HashEngine {
    map: IndexMap<Box<[u8]>, Value, foldhash::fast::RandomState>,
}

impl HashEngine {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for HashEngine {
    fn name(&self) -> &'static str {
        "hash"
    }

    fn get(&mut self, key: &[u8]) -> Option<&Value> {
        self.map.get(key)
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.map.get_mut(key)
    }

    fn set(&mut self, key: &[u8], value: Value) -> bool {
        if let Some(v) = self.map.get_mut(key) {
            *v = value;
            true
        } else {
            self.map.insert(key.into(), value);
            false
        }
    }

    fn take(&mut self, key: &[u8]) -> Option<Value> {
        self.map.swap_remove(key)
    }

    fn random_key(&mut self, r: u64) -> Option<Box<[u8]>> {
        if self.map.is_empty() {
            return None;
        }
        let i = (r % self.map.len() as u64) as usize;
        self.map.get_index(i).map(|(k, _)| k.clone())
    }

    fn contains(&mut self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn clear(&mut self) {
        self.map = IndexMap::default();
    }

    /// The cursor is a position, walked from the end down to 0. A removal moves the last
    /// entry into the hole (`swap_remove`): the last entry has been visited already or
    /// lands below the cursor, so nothing present throughout is missed; insertions go to
    /// the end, behind the cursor, which SCAN allows.
    fn scan(&mut self, cursor: u64, count: usize, visit: &mut dyn FnMut(&[u8])) -> u64 {
        let len = self.map.len() as u64;
        let mut pos = if cursor == 0 { len } else { cursor.min(len) };
        let mut n = 0;
        while pos > 0 && n < count.max(1) {
            pos -= 1;
            if let Some((k, _)) = self.map.get_index(pos as usize) {
                visit(k);
            }
            n += 1;
        }
        pos
    }

    fn for_each(&self, visit: &mut dyn FnMut(&[u8], &Value)) -> Result<(), String> {
        for (k, v) in &self.map {
            visit(k, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn crud() {
        let mut e = HashEngine::new();
        let s = |v: &[u8]| Value::Str(v.to_vec());
        assert!(!e.set(b"a", s(b"1")));
        assert!(e.set(b"a", s(b"2")));
        assert!(matches!(e.get(b"a"), Some(Value::Str(v)) if v == b"2"));
        assert!(!e.set(b"b", s(b"x")));
        assert_eq!(e.len(), 2);
        assert!(e.del(b"a"));
        assert!(!e.del(b"a"));
        e.clear();
        assert!(e.is_empty());
    }

    #[test]
    fn scan_misses_nothing_under_concurrent_deletes() {
        let mut e = HashEngine::new();
        for i in 0..1000u32 {
            e.set(&i.to_be_bytes(), Value::Str(vec![]));
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut round = 0u32;
        loop {
            cursor = e.scan(cursor, 10, &mut |k| {
                seen.insert(k.to_vec());
            });
            // Delete keys with odd numbers and add new ones between calls.
            for j in 0..5u32 {
                let victim = (round * 5 + j) * 2 + 1;
                if victim < 1000 {
                    e.del(&victim.to_be_bytes());
                }
                e.set(&(100_000 + round * 5 + j).to_be_bytes(), Value::Str(vec![]));
            }
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in (0..1000u32).step_by(2) {
            assert!(seen.contains(i.to_be_bytes().as_slice()), "missed {i}");
        }
    }
}
