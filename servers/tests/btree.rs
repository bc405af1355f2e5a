//! The on-disk B+tree against real files: a model check against `BTreeMap` with
//! reopens, snapshot isolation, overflow values, corruption detection by page number,
//! and free-page reuse.

use proptest::prelude::*;
use servers::store::btree::{Db, Error, Options, MAX_KEY, MAX_VALUE, PAGE_SIZE};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::os::unix::fs::FileExt;

fn all(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.read()
        .iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("iterate")
}

#[derive(Clone, Debug)]
enum Op {
    Put(Vec<u8>, usize),
    Del(Vec<u8>),
    Commit,
    Abort,
    Reopen,
    Range(Vec<u8>, Vec<u8>, bool),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // A small alphabet makes updates and deletes of existing keys common; long keys
    // force deep trees and branch splits with few entries.
    prop_oneof![
        4 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..6),
        2 => proptest::collection::vec(any::<u8>(), 1..40),
        1 => (0usize..MAX_KEY).prop_map(|n| vec![b'k'; n]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (key(), prop_oneof![8 => 0usize..200, 1 => 0usize..3000, 1 => 5000usize..20000]).prop_map(|(k, n)| Op::Put(k, n)),
        6 => key().prop_map(Op::Del),
        2 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
        1 => (key(), key(), any::<bool>()).prop_map(|(a, b, r)| Op::Range(a, b, r)),
    ]
}

fn value(k: &[u8], n: usize, salt: usize) -> Vec<u8> {
    (0..n)
        .map(|i| k.first().copied().unwrap_or(7) ^ (i as u8) ^ (salt as u8))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn matches_btreemap_across_reopens(ops in proptest::collection::vec(op(), 1..250)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut db = Some(Db::open_with(&path, Options { cache_pages: 16 }).unwrap());
        let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut working = committed.clone();
        let mut batch_ops: Vec<Op> = Vec::new();
        for (salt, op) in ops.into_iter().enumerate() {
            match op {
                Op::Put(k, n) => {
                    let v = value(&k, n, salt);
                    working.insert(k.clone(), v);
                    batch_ops.push(Op::Put(k, salt * 100_000 + n));
                }
                Op::Del(k) => {
                    working.remove(&k);
                    batch_ops.push(Op::Del(k));
                }
                Op::Commit => {
                    let d = db.as_ref().unwrap();
                    let mut b = d.write().unwrap();
                    for o in batch_ops.drain(..) {
                        match o {
                            Op::Put(k, code) => b.put(&k, &value(&k, code % 100_000, code / 100_000)).unwrap(),
                            Op::Del(k) => { b.delete(&k).unwrap(); }
                            _ => unreachable!("only puts and deletes are buffered"),
                        }
                    }
                    prop_assert_eq!(b.len(), working.len() as u64);
                    b.commit().unwrap();
                    committed = working.clone();
                    d.check().unwrap();
                }
                Op::Abort => {
                    let d = db.as_ref().unwrap();
                    let mut b = d.write().unwrap();
                    for o in batch_ops.drain(..) {
                        match o {
                            Op::Put(k, code) => b.put(&k, &value(&k, code % 100_000, code / 100_000)).unwrap(),
                            Op::Del(k) => { b.delete(&k).unwrap(); }
                            _ => unreachable!("only puts and deletes are buffered"),
                        }
                    }
                    drop(b);
                    working = committed.clone();
                    d.check().unwrap();
                }
                Op::Reopen => {
                    batch_ops.clear();
                    working = committed.clone();
                    drop(db.take());
                    db = Some(Db::open_with(&path, Options { cache_pages: 16 }).unwrap());
                    db.as_ref().unwrap().check().unwrap();
                }
                Op::Range(a, b, rev) => {
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    let snap = db.as_ref().unwrap().read();
                    let r = snap.range(Bound::Included(&lo), Bound::Excluded(&hi));
                    let got: Vec<_> = if rev { r.rev().collect::<Result<_, _>>().unwrap() } else { r.collect::<Result<_, _>>().unwrap() };
                    let mut want: Vec<_> = committed.range(lo.clone()..hi.clone()).map(|(k, v)| (k.clone(), v.clone())).collect();
                    if rev { want.reverse(); }
                    prop_assert_eq!(got, want);
                }
            }
        }
        let d = db.as_ref().unwrap();
        let want: Vec<_> = committed.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(all(d), want.clone());
        let mut rev: Vec<_> = d.read().iter().rev().collect::<Result<_, _>>().unwrap();
        rev.reverse();
        prop_assert_eq!(rev, want);
        for (k, v) in &committed {
            let got = d.read().get(k).unwrap();
            prop_assert_eq!(got.as_ref(), Some(v));
        }
    }
}

#[test]
fn snapshot_is_isolated_and_its_pages_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("s.db"), Options { cache_pages: 8 }).unwrap();
    let mut b = db.write().unwrap();
    for i in 0..3000u32 {
        b.put(&i.to_be_bytes(), &[1u8; 50]).unwrap();
    }
    b.commit().unwrap();
    let old = db.read();
    // Rewrite every key many times: without reader tracking, the old snapshot's pages
    // would be reused and overwritten.
    for round in 2..8u8 {
        let mut b = db.write().unwrap();
        for i in 0..3000u32 {
            b.put(&i.to_be_bytes(), &[round; 50]).unwrap();
        }
        b.delete(&7u32.to_be_bytes()).unwrap();
        b.commit().unwrap();
    }
    let got: Vec<_> = old.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), 3000);
    assert!(got.iter().all(|(_, v)| v == &vec![1u8; 50]));
    assert_eq!(db.read().get(&7u32.to_be_bytes()).unwrap(), None);
    assert_eq!(
        db.read().get(&8u32.to_be_bytes()).unwrap(),
        Some(vec![7u8; 50])
    );
    drop(old);
    db.check().unwrap();
}

#[test]
fn large_values_use_overflow_pages_and_limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    {
        let db = Db::open(&path).unwrap();
        let mut b = db.write().unwrap();
        b.put(b"big", &big).unwrap();
        b.put(b"small", b"x").unwrap();
        assert!(matches!(
            b.put(&vec![0u8; MAX_KEY + 1], b"v"),
            Err(Error::KeyTooLarge { .. })
        ));
        assert!(matches!(
            b.put(b"k", &vec![0u8; MAX_VALUE + 1]),
            Err(Error::ValueTooLarge { .. })
        ));
        b.commit().unwrap();
        let s = db.check().unwrap();
        assert!(s.overflow_pages >= 1_000_000 / PAGE_SIZE as u64, "{s:?}");
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.read().get(b"big").unwrap().as_deref(), Some(&big[..]));
    let mut b = db.write().unwrap();
    b.put(b"big", b"now small").unwrap();
    b.commit().unwrap();
    let s = db.check().unwrap();
    assert_eq!(s.overflow_pages, 0);
    assert!(s.free_pages >= 240, "the old chain is free: {s:?}");
}

/// Pages a batch takes past the end of the file and frees again before its commit
/// (a large value put and then deleted) are never written, yet the meta counts them:
/// the commit must still leave a file that holds every page its meta names, or the
/// next open refuses both meta pages.
#[test]
fn pages_taken_and_freed_in_one_batch_past_the_end_still_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    {
        let db = Db::open(&path).unwrap();
        let mut b = db.write().unwrap();
        b.put(b"a", b"1").unwrap();
        b.put(b"big", &vec![7u8; 10 * PAGE_SIZE]).unwrap();
        b.delete(b"big").unwrap();
        // Leaves split into fresh pages, then emptied and freed again.
        for i in 0..2_000u32 {
            b.put(format!("k{i:05}").as_bytes(), &[1u8; 100]).unwrap();
        }
        for i in 0..2_000u32 {
            b.delete(format!("k{i:05}").as_bytes()).unwrap();
        }
        b.commit().unwrap();
        db.check().unwrap();
    }
    let db = Db::open(&path).unwrap();
    db.check().unwrap();
    assert_eq!(db.read().get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.read().get(b"big").unwrap(), None);
    // The free pages are used again, and the file still reopens.
    let mut b = db.write().unwrap();
    b.put(b"big", &vec![8u8; 10 * PAGE_SIZE]).unwrap();
    b.commit().unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    db.check().unwrap();
    assert_eq!(
        db.read().get(b"big").unwrap().map(|v| v.len()),
        Some(10 * PAGE_SIZE)
    );
}

#[test]
fn flipped_byte_is_reported_with_its_page_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let db = Db::open(&path).unwrap();
        let mut b = db.write().unwrap();
        for i in 0..5000u32 {
            b.put(format!("key{i:08}").as_bytes(), &[9u8; 40]).unwrap();
        }
        b.commit().unwrap();
        db.check().unwrap();
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let pages = file.metadata().unwrap().len() / PAGE_SIZE as u64;
    assert!(pages > 20);
    // One batch into a fresh file: every page past the metas is a tree page.
    for pgno in [2, pages / 2, pages - 1] {
        let off = pgno * PAGE_SIZE as u64 + 1000;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, off).unwrap();
        file.write_all_at(&[byte[0] ^ 0x04], off).unwrap();
        {
            let db = Db::open(&path).unwrap();
            match db.check() {
                Err(Error::Corrupt {
                    pgno: p, reason, ..
                }) => {
                    assert_eq!(p, pgno, "{reason}");
                    assert!(reason.contains("checksum"), "{reason}");
                }
                other => panic!("page {pgno}: expected corruption, got {other:?}"),
            }
            // Readers meet the same page and refuse to follow it.
            let errs: Vec<_> = db.read().iter().filter_map(|r| r.err()).collect();
            assert!(
                matches!(errs.as_slice(), [Error::Corrupt { pgno: p, .. }] if *p == pgno),
                "{errs:?}"
            );
            let msg = db.check().unwrap_err().to_string();
            assert!(msg.contains(&format!("page {pgno} is corrupt")), "{msg}");
        }
        file.write_all_at(&byte, off).unwrap();
        Db::open(&path).unwrap().check().unwrap();
    }
    // A damaged newest meta page falls back to the older one.
    file.write_all_at(&[0xff], 100).unwrap();
    file.write_all_at(&[0xff], PAGE_SIZE as u64 + 100).unwrap();
    assert!(matches!(
        Db::open(&path),
        Err(Error::Corrupt { pgno: 0, .. })
    ));
}

fn churn(n: u32, batch: u32) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let db = Db::open(&path).unwrap();
    let key = |i: u32| {
        // A cheap bijective scramble so inserts land all over the tree.
        let x = i.wrapping_mul(0x9E37_79B1).rotate_left(13) ^ 0x5bd1_e995;
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&x.to_be_bytes());
        k[4..8].copy_from_slice(&i.to_le_bytes());
        k
    };
    let fill = |db: &Db| {
        for start in (0..n).step_by(batch as usize) {
            let mut b = db.write().unwrap();
            for i in start..(start + batch).min(n) {
                b.put(&key(i), &[i as u8; 100]).unwrap();
            }
            b.commit().unwrap();
        }
    };
    fill(&db);
    assert_eq!(db.read().len(), n as u64);
    let after_fill = std::fs::metadata(&path).unwrap().len();
    for start in (0..n).step_by(batch as usize) {
        let mut b = db.write().unwrap();
        for i in start..(start + batch).min(n) {
            assert!(b.delete(&key(i)).unwrap());
        }
        b.commit().unwrap();
    }
    let after_delete = std::fs::metadata(&path).unwrap().len();
    let s = db.check().unwrap();
    assert_eq!(s.entries, 0);
    assert_eq!(s.height, 0);
    assert_eq!(s.branch_pages + s.leaf_pages, 0);
    fill(&db);
    let s = db.check().unwrap();
    assert_eq!(s.entries, n as u64);
    let after_refill = std::fs::metadata(&path).unwrap().len();
    eprintln!("file bytes: filled {after_fill}, emptied {after_delete}, refilled {after_refill}");
    (after_delete, after_refill)
}

#[test]
fn deleted_pages_are_reused_by_later_inserts() {
    let (emptied, refill) = churn(30_000, 1000);
    assert!(
        refill <= emptied,
        "inserts grew the file from {emptied} to {refill} bytes"
    );
}

#[test]
#[ignore = "a million keys: run in release (scripts/tests.d/70-btree.sh)"]
fn million_keys_deleted_then_reinserted_reuse_free_pages() {
    let (emptied, refill) = churn(1_000_000, 1000);
    assert!(
        refill <= emptied,
        "inserts grew the file from {emptied} to {refill} bytes"
    );
}

#[test]
fn an_empty_file_becomes_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.db");
    std::fs::write(&path, b"").unwrap();
    let db = Db::open(&path).unwrap();
    let mut b = db.write().unwrap();
    b.put(b"k", b"v").unwrap();
    b.commit().unwrap();
    assert_eq!(db.read().get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    std::fs::write(dir.path().join("junk.db"), b"not a database").unwrap();
    assert!(matches!(
        Db::open(dir.path().join("junk.db")),
        Err(Error::Corrupt { pgno: 0, .. })
    ));
}

#[test]
fn second_open_is_refused_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let _db = Db::open(&path).unwrap();
    let err = Db::open(&path).err().expect("second open must fail");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
}

#[test]
fn readers_in_other_threads_see_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(
        Db::open_with(dir.path().join("t.db"), Options { cache_pages: 32 }).unwrap(),
    );
    let keys = 2000u32;
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for round in 0..40u8 {
                let mut b = db.write().unwrap();
                for i in 0..keys {
                    b.put(&i.to_be_bytes(), &[round; 24]).unwrap();
                }
                b.commit().unwrap();
            }
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let snap = db.read();
        let pairs: Vec<_> = snap.iter().collect::<Result<_, _>>().unwrap();
        if pairs.is_empty() {
            continue;
        }
        assert_eq!(pairs.len(), keys as usize, "a snapshot shows a whole batch");
        let round = pairs[0].1[0];
        assert!(
            pairs.iter().all(|(_, v)| v == &vec![round; 24]),
            "snapshot mixes batches"
        );
        seen.insert(round);
        db.check().unwrap();
    }
    writer.join().unwrap();
    db.check().unwrap();
    assert!(
        seen.len() >= 2,
        "the reader should have overlapped several commits: {seen:?}"
    );
}

#[test]
fn torn_newest_meta_page_falls_back_to_the_previous_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let (txn_a, txn_b) = {
        let db = Db::open(&path).unwrap();
        let mut b = db.write().unwrap();
        for i in 0..3000u32 {
            b.put(&i.to_be_bytes(), b"first").unwrap();
        }
        let a = b.commit().unwrap();
        let mut b = db.write().unwrap();
        for i in 0..3000u32 {
            b.put(&i.to_be_bytes(), b"second").unwrap();
        }
        (a, b.commit().unwrap())
    };
    // A crash halfway through writing meta page B: the sector holding its root and
    // counters never made it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.write_all_at(&[0xAA; 40], (txn_b % 2) * PAGE_SIZE as u64 + 32)
        .unwrap();
    let db = Db::open(&path).unwrap();
    let s = db.check().unwrap();
    assert_eq!(s.txn, txn_a);
    assert!(db.read().iter().all(|r| r.unwrap().1 == b"first"));
    // The next batch takes B's slot again and the file stays consistent.
    let mut b = db.write().unwrap();
    b.put(b"x", b"y").unwrap();
    assert_eq!(b.commit().unwrap(), txn_b);
    db.check().unwrap();
}

/// A single flipped byte in the newest meta page: the open falls back to the older
/// one (the last batch is rolled back), and says so: the library reports the rejected
/// page, `btree check` warns naming it, and `btree check --strict` fails.
#[test]
fn damaged_newest_meta_page_is_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let newest = {
        let db = Db::open(&path).unwrap();
        let mut txn = 0;
        for round in 0..3u32 {
            let mut b = db.write().unwrap();
            b.put(&round.to_be_bytes(), b"v").unwrap();
            txn = b.commit().unwrap();
        }
        assert!(db.meta_faults().is_empty());
        txn
    };
    let slot = newest % 2;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // A byte well inside the page, outside every field: only the checksum notices.
    let off = slot * PAGE_SIZE as u64 + 2000;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, off).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], off).unwrap();
    drop(file);
    {
        let db = Db::open(&path).unwrap();
        let faults = db.meta_faults().to_vec();
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].slot, slot);
        assert!(faults[0].reason.contains("checksum"), "{faults:?}");
        assert_eq!(faults[0].claimed_txn, Some(newest));
        let s = db.check().unwrap();
        assert_eq!(s.txn, newest - 1);
        assert_eq!(s.meta_faults, faults);
    }

    let btree = env!("CARGO_BIN_EXE_btree");
    let run = |args: &[&str]| {
        std::process::Command::new(btree)
            .arg(&path)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let out = run(&["check"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("warning: meta page {slot}: checksum mismatch")),
        "check must name the damaged meta page: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "using meta page {} (txn {})",
            1 - slot,
            newest - 1
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("txn {}, 1 meta page damaged", newest - 1)),
        "{stdout}"
    );
    // The open itself logs which page it chose and why.
    assert!(
        stderr.contains("WARN") && stderr.contains(&format!("rejected={slot}")),
        "the open must log the rejected meta page: {stderr}"
    );
    assert!(stderr.contains(&format!("chosen={}", 1 - slot)), "{stderr}");

    let out = run(&["check", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Undamaged files pass --strict.
    let clean = dir.path().join("clean.db");
    Db::open(&clean).unwrap();
    let out = std::process::Command::new(btree)
        .arg(&clean)
        .args(["check", "--strict"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}
