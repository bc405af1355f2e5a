//! Crash safety of the on-disk B+tree: the `btree` binary loads batches into one file
//! and is killed with SIGKILL at random moments, over and over; after every kill the
//! file must open, pass `check`, and hold exactly the batches that committed.

use servers::store::btree::Db;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const BATCH: usize = 100;

fn value_for(key: &[u8], len: usize) -> Vec<u8> {
    key.iter().copied().cycle().take(len).collect()
}

fn apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, keys: &[[u8; 16]], batches: usize, vlen: usize) {
    for k in keys.iter().take(batches * BATCH) {
        model.insert(k.to_vec(), value_for(k, vlen));
    }
}

#[test]
fn sigkill_at_random_moments_leaves_exactly_the_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("crash.db");
    let key_path = dir.path().join("keys.bin");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut known: Vec<[u8; 16]> = Vec::new();
    let started = Instant::now();
    let (mut rounds, mut killed_mid_run) = (0, 0);
    while rounds < 40 && started.elapsed() < Duration::from_secs(25) {
        rounds += 1;
        // New keys plus rewrites of old ones with a different value length, so a torn
        // batch would show up as a mix of old and new values.
        let mut keys: Vec<[u8; 16]> = Vec::new();
        for i in 0..2000 {
            if i % 3 == 0 && !known.is_empty() {
                keys.push(known[(rng.next() % known.len() as u64) as usize]);
            } else {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&rng.next().to_le_bytes());
                k[8..].copy_from_slice(&rng.next().to_le_bytes());
                keys.push(k);
                known.push(k);
            }
        }
        std::fs::write(&key_path, keys.concat()).unwrap();
        let vlen = 10 + (rounds % 5) * 60 + if rounds % 7 == 0 { 3000 } else { 0 };
        let mut child = Command::new(env!("CARGO_BIN_EXE_btree"))
            .arg(&db_path)
            .args(["load"])
            .arg(&key_path)
            .args([
                "--value-len",
                &vlen.to_string(),
                "--batch",
                &BATCH.to_string(),
                "--report",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn btree");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("committed ") {
                    let _ = tx.send(n.parse::<usize>().unwrap_or(0));
                }
            }
        });
        // Kill at a random point of the load, found by progress rather than by the
        // clock (a loaded or an idle machine would otherwise kill too early or too
        // late): after a random number of commits, plus a random few milliseconds so
        // the kill also lands inside a commit.
        let batches = keys.len() / BATCH;
        let target = (rng.next() % batches as u64) as usize;
        let mut reported = 0;
        let wait_until = Instant::now() + Duration::from_secs(30);
        while reported < target && Instant::now() < wait_until {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(n) => reported = n,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 5_000));
        let finished = matches!(child.try_wait(), Ok(Some(_)));
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let reported = rx.try_iter().last().unwrap_or(reported);
        if !finished {
            killed_mid_run += 1;
        }

        let db = Db::open(&db_path).unwrap_or_else(|e| panic!("round {rounds}: reopen: {e}"));
        db.check()
            .unwrap_or_else(|e| panic!("round {rounds}: check: {e}"));
        let got: BTreeMap<Vec<u8>, Vec<u8>> = db.read().iter().map(|r| r.unwrap()).collect();
        // The batch in flight may have reached its meta page before the kill.
        let mut exact = model.clone();
        apply(&mut exact, &keys, reported, vlen);
        let mut plus_one = model.clone();
        apply(&mut plus_one, &keys, reported + 1, vlen);
        if got == exact {
            model = exact;
        } else if got == plus_one && reported * BATCH < keys.len() {
            model = plus_one;
        } else {
            panic!(
                "round {rounds}: file holds {} keys, expected {} ({} batches reported) or {}",
                got.len(),
                exact.len(),
                reported,
                plus_one.len()
            );
        }
    }
    assert!(
        killed_mid_run >= rounds / 2,
        "only {killed_mid_run} of {rounds} runs were killed mid-load"
    );
    eprintln!(
        "{rounds} rounds, {killed_mid_run} killed mid-load, {} keys at the end",
        model.len()
    );
}
