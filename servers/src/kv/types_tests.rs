//! The typed values driven through the protocol: WRONGTYPE across families, every
//! type surviving a log replay and a rewrite, and each structure against a model.

use super::*;
use crate::proto::Action;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use value::Value;

/// One client of a [`Kv`], bytes in and bytes out (the other test modules use it too).
pub(super) struct Client {
    pub(super) kv: Kv,
    conn: KvConn,
}

impl Client {
    pub(super) fn new(kv: Kv) -> Self {
        let mut kv = kv;
        let mut out = Outbox::new();
        let conn = kv.open(ConnId(1), "127.0.0.1:1".parse().unwrap(), &mut out);
        Self { kv, conn }
    }

    pub(super) fn memory() -> Self {
        Self::new(Kv::open(Config::default()).unwrap())
    }

    pub(super) fn send(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Outbox::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let n = self
                .kv
                .data(ConnId(1), &mut self.conn, &bytes[pos..], &mut out);
            assert!(n > 0, "stuck at {pos}");
            pos += n;
        }
        self.kv.before_wait(&mut out);
        let mut got = Vec::new();
        for a in out.drain() {
            if let Action::Send { data, .. } = a {
                got.extend_from_slice(&data);
            }
        }
        got
    }

    pub(super) fn cmd(&mut self, args: &[&str]) -> String {
        let mut b = Vec::new();
        resp::encode_command(&mut b, args);
        String::from_utf8_lossy(&self.send(&b)).into_owned()
    }

    /// Every key with its type, contents (in a canonical order) and expiry.
    pub(super) fn dump(&mut self) -> BTreeMap<Vec<u8>, String> {
        let ks = &mut self.kv.ks;
        let mut out = BTreeMap::new();
        for k in ks.keys(b"*") {
            let at = ks.expire_at(&k);
            let text = match ks.peek(&k).unwrap() {
                Value::Str(v) => format!("string {v:?}"),
                Value::Hash(h) => {
                    let m: BTreeMap<_, _> = h.iter().collect();
                    format!("hash {m:?}")
                }
                Value::List(l) => format!("list {l:?}"),
                Value::Set(s) => {
                    let m: BTreeSet<_> = s.iter().map(|m| m.as_ref().to_vec()).collect();
                    format!("set {m:?}")
                }
                Value::ZSet(z) => {
                    let m: Vec<_> = z.walk(0, false, usize::MAX).collect();
                    format!("zset {m:?}")
                }
            };
            out.insert(k, format!("{text} ttl={at:?}"));
        }
        out
    }
}

const WRONGTYPE_REPLY: &str =
    "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

#[test]
fn every_family_refuses_the_wrong_type() {
    let mut c = Client::memory();
    c.cmd(&["SET", "s", "v"]);
    c.cmd(&["HSET", "h", "f", "v"]);
    c.cmd(&["RPUSH", "l", "a"]);
    c.cmd(&["SADD", "set", "a"]);
    c.cmd(&["ZADD", "z", "1", "a"]);
    let probes: &[&[&str]] = &[
        &["GET", "h"],
        &["INCR", "l"],
        &["APPEND", "set", "x"],
        &["GETRANGE", "z", "0", "1"],
        &["SETBIT", "h", "1", "1"],
        &["HGET", "s", "f"],
        &["HSET", "l", "f", "v"],
        &["LPUSH", "h", "x"],
        &["LRANGE", "s", "0", "-1"],
        &["SADD", "z", "x"],
        &["SMEMBERS", "l"],
        &["ZADD", "set", "1", "x"],
        &["ZRANGE", "h", "0", "-1"],
        &["SINTER", "set", "z"],
        &["LMOVE", "l", "s", "LEFT", "LEFT"],
    ];
    for p in probes {
        assert_eq!(c.cmd(p), WRONGTYPE_REPLY, "{p:?}");
    }
    // Nothing changed, and the failed LMOVE kept its element.
    assert_eq!(c.cmd(&["LLEN", "l"]), ":1\r\n");
    for (k, t) in [
        ("s", "string"),
        ("h", "hash"),
        ("l", "list"),
        ("set", "set"),
        ("z", "zset"),
    ] {
        assert_eq!(c.cmd(&["TYPE", k]), format!("+{t}\r\n"));
    }
    assert_eq!(c.cmd(&["TYPE", "none"]), "+none\r\n");
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "z"]), "$8\r\nlistpack\r\n");
    // SET overwrites any type; MGET shows a non-string as nil.
    assert_eq!(c.cmd(&["MGET", "h", "s"]), "*2\r\n$-1\r\n$1\r\nv\r\n");
    assert_eq!(c.cmd(&["SET", "h", "x"]), "+OK\r\n");
    assert_eq!(c.cmd(&["TYPE", "h"]), "+string\r\n");
}

pub(super) fn encoding(c: &mut Client, key: &str) -> String {
    let r = c.cmd(&["OBJECT", "ENCODING", key]);
    r.lines().nth(1).unwrap_or_default().to_owned()
}

#[test]
fn object_encoding_follows_redis_thresholds_and_config() {
    let mut c = Client::memory();
    c.cmd(&["SET", "n", "12345"]);
    assert_eq!(encoding(&mut c, "n"), "int");
    c.cmd(&["SET", "n", "012"]);
    assert_eq!(encoding(&mut c, "n"), "embstr");
    c.cmd(&["SET", "n", &"x".repeat(45)]);
    assert_eq!(encoding(&mut c, "n"), "raw");
    c.cmd(&["RPUSH", "l", "a"]);
    assert_eq!(encoding(&mut c, "l"), "quicklist");

    // Hashes: packed up to 128 entries of at most 64 bytes, then a table for good.
    for i in 0..128 {
        c.cmd(&["HSET", "h", &format!("f{i}"), "v"]);
    }
    assert_eq!(encoding(&mut c, "h"), "listpack");
    c.cmd(&["HSET", "h", "f128", "v"]);
    assert_eq!(encoding(&mut c, "h"), "hashtable");
    c.cmd(&["HSET", "h2", "f", &"v".repeat(64)]);
    assert_eq!(encoding(&mut c, "h2"), "listpack");
    c.cmd(&["HSET", "h2", "f", &"v".repeat(65)]);
    assert_eq!(encoding(&mut c, "h2"), "hashtable");
    // The old name sets the same threshold.
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "hash-max-ziplist-entries", "2"]),
        "+OK\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "hash-max-listpack-entries"]),
        "*2\r\n$25\r\nhash-max-listpack-entries\r\n$1\r\n2\r\n"
    );
    c.cmd(&["HSET", "h3", "a", "1", "b", "2"]);
    assert_eq!(encoding(&mut c, "h3"), "listpack");
    c.cmd(&["HINCRBY", "h3", "c", "1"]);
    assert_eq!(encoding(&mut c, "h3"), "hashtable");
    assert_eq!(c.cmd(&["HGET", "h3", "a"]), "$1\r\n1\r\n");

    // Sets: integers as an intset up to set-max-intset-entries.
    c.cmd(&["SADD", "s", "1", "2", "3"]);
    assert_eq!(encoding(&mut c, "s"), "intset");
    c.cmd(&["SADD", "s", "a"]);
    assert_eq!(encoding(&mut c, "s"), "hashtable");
    c.cmd(&["SREM", "s", "a"]);
    assert_eq!(encoding(&mut c, "s"), "hashtable");
    // A stored result of integers is an intset again, as Redis builds it.
    c.cmd(&["SINTERSTORE", "s2", "s", "s"]);
    assert_eq!(encoding(&mut c, "s2"), "intset");
    c.cmd(&["CONFIG", "SET", "set-max-intset-entries", "2"]);
    c.cmd(&["SUNIONSTORE", "s3", "s"]);
    assert_eq!(encoding(&mut c, "s3"), "hashtable");
    assert_eq!(c.cmd(&["SCARD", "s3"]), ":3\r\n");

    // Sorted sets: packed up to 128 members of at most 64 bytes.
    for i in 0..128 {
        c.cmd(&["ZADD", "z", &i.to_string(), &format!("m{i}")]);
    }
    assert_eq!(encoding(&mut c, "z"), "listpack");
    assert_eq!(c.cmd(&["ZRANK", "z", "m5"]), ":5\r\n");
    c.cmd(&["ZADD", "z", "1000", "m128"]);
    assert_eq!(encoding(&mut c, "z"), "skiplist");
    c.cmd(&["ZADD", "z2", "1", &"m".repeat(65)]);
    assert_eq!(encoding(&mut c, "z2"), "skiplist");
    c.cmd(&["CONFIG", "SET", "zset-max-ziplist-entries", "3"]);
    c.cmd(&["ZADD", "z3", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(encoding(&mut c, "z3"), "listpack");
    c.cmd(&["ZINCRBY", "z3", "1", "d"]);
    assert_eq!(encoding(&mut c, "z3"), "skiplist");
    // A small stored result is packed again, as Redis's zsetConvertToListpackIfNeeded.
    c.cmd(&["ZREM", "z3", "d"]);
    assert_eq!(encoding(&mut c, "z3"), "skiplist");
    assert_eq!(c.cmd(&["ZUNIONSTORE", "z4", "1", "z3"]), ":3\r\n");
    assert_eq!(encoding(&mut c, "z4"), "listpack");
    assert_eq!(c.cmd(&["ZINTERSTORE", "z5", "2", "z", "z"]), ":129\r\n");
    assert_eq!(encoding(&mut c, "z5"), "skiplist");
    assert_eq!(c.cmd(&["ZDIFFSTORE", "z6", "2", "z", "z3"]), ":129\r\n");
    assert_eq!(encoding(&mut c, "z6"), "skiplist");
    // ZRANGESTORE: packed unless the selection is past the entry limit.
    c.cmd(&["CONFIG", "SET", "zset-max-listpack-entries", "1"]);
    c.cmd(&["ZADD", "src", "1", "a", "2", "b"]);
    assert_eq!(c.cmd(&["ZRANGESTORE", "d1", "src", "0", "0"]), ":1\r\n");
    assert_eq!(encoding(&mut c, "d1"), "listpack");
    assert_eq!(c.cmd(&["ZRANGESTORE", "d2", "src", "0", "1"]), ":2\r\n");
    assert_eq!(encoding(&mut c, "d2"), "skiplist");
    assert_eq!(
        c.cmd(&[
            "ZRANGESTORE",
            "d1",
            "src",
            "5",
            "0",
            "BYSCORE",
            "REV",
            "LIMIT",
            "0",
            "1"
        ]),
        ":1\r\n"
    );
    assert_eq!(c.cmd(&["ZRANGE", "d1", "0", "-1"]), "*1\r\n$1\r\nb\r\n");
    assert_eq!(
        c.cmd(&["ZRANGESTORE", "d1", "src", "0", "-1", "WITHSCORES"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        c.cmd(&["ZRANGESTORE", "d1", "missing", "0", "-1"]),
        ":0\r\n"
    );
    assert_eq!(c.cmd(&["EXISTS", "d1"]), ":0\r\n");
    assert_eq!(
        c.cmd(&["ZRANGESTORE", "d2", "n", "0", "-1"]),
        WRONGTYPE_REPLY
    );

    // MEMORY USAGE: a size for a key, more for more members, nil for none.
    let usage = |c: &mut Client, k: &str| {
        let r = c.cmd(&["MEMORY", "USAGE", k, "SAMPLES", "0"]);
        r[1..r.len() - 2].parse::<i64>().unwrap()
    };
    assert!(usage(&mut c, "z") > usage(&mut c, "z4"));
    assert!(usage(&mut c, "h") > usage(&mut c, "h3"));
    assert_eq!(c.cmd(&["MEMORY", "USAGE", "none"]), "$-1\r\n");
    // A count whose reply would overflow when doubled is refused, as Redis.
    for (cmd, opt) in [("HRANDFIELD", "WITHVALUES"), ("ZRANDMEMBER", "WITHSCORES")] {
        let key = if cmd == "HRANDFIELD" { "h" } else { "z" };
        assert_eq!(
            c.cmd(&[cmd, key, "-9223372036854770000", opt]),
            "-ERR value is out of range\r\n"
        );
    }
}

#[test]
fn empty_aggregates_are_deleted() {
    let mut c = Client::memory();
    c.cmd(&["HSET", "h", "f", "v"]);
    c.cmd(&["HDEL", "h", "f"]);
    c.cmd(&["RPUSH", "l", "a"]);
    c.cmd(&["LPOP", "l"]);
    c.cmd(&["SADD", "s", "a"]);
    c.cmd(&["SPOP", "s"]);
    c.cmd(&["ZADD", "z", "1", "a"]);
    c.cmd(&["ZPOPMIN", "z"]);
    assert_eq!(c.cmd(&["DBSIZE"]), ":0\r\n");
    // A refused argument creates nothing.
    assert!(c.cmd(&["ZADD", "z", "nan", "a"]).starts_with("-ERR"));
    assert!(c.cmd(&["HINCRBY", "h", "f", "x"]).starts_with("-ERR"));
    assert_eq!(c.cmd(&["DBSIZE"]), ":0\r\n");
}

/// Writes of every type, including the ones logged as something else (SPOP as SREM,
/// relative times as absolute, float increments as their result).
fn mixed_writes(c: &mut Client) {
    for args in [
        &["HSET", "h", "a", "1", "b", "2"][..],
        &["HINCRBYFLOAT", "h", "a", "0.1"],
        &["HINCRBY", "h", "b", "5"],
        &["RPUSH", "l", "a", "b", "c", "d"],
        &["LPUSH", "l", "z"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["LREM", "l", "1", "c"],
        &["SADD", "s", "a", "b", "c", "d", "e", "f"],
        &["SPOP", "s", "2"],
        &["SPOP", "s"],
        &["SINTERSTORE", "s2", "s", "s"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        &["ZINCRBY", "z", "0.1", "a"],
        &["ZADD", "z", "INCR", "1e-3", "b"],
        &["ZPOPMAX", "z"],
        &["ZUNIONSTORE", "zu", "2", "z", "s", "WEIGHTS", "2", "3"],
        &["SETEX", "ttl", "100", "v"],
        &["EXPIRE", "h", "1000"],
        &["INCRBYFLOAT", "f", "2.5"],
        &["SETRANGE", "f", "5", "xyz"],
        &["SETBIT", "bits", "13", "1"],
        &["RENAME", "l2", "l3"],
        &["COPY", "z", "zc"],
        &["GETEX", "zz", "EX", "5"],
        &["SET", "g", "v"],
        &["GETEX", "g", "PX", "100000"],
        &["MSETNX", "m1", "a", "m2", "b"],
    ] {
        let r = c.cmd(args);
        assert!(!r.starts_with('-'), "{args:?}: {r}");
    }
}

#[test]
fn every_type_survives_a_log_replay() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    };
    let before = {
        let mut c = Client::new(Kv::open(cfg.clone()).unwrap());
        mixed_writes(&mut c);
        c.dump()
    };
    assert!(before.len() > 10);
    let mut c = Client::new(Kv::open(cfg).unwrap());
    assert_eq!(c.dump(), before);
    // SPOP went to the log as the SREM of what it removed, never as SPOP.
    let log = std::fs::read(d.path().join(aof::FILE_NAME)).unwrap();
    assert!(!log.windows(4).any(|w| w == b"SPOP"));
    assert!(log.windows(4).any(|w| w == b"SREM"));
}

#[test]
fn a_rewritten_log_rebuilds_every_type_compactly() {
    let mut c = Client::memory();
    mixed_writes(&mut c);
    for i in 0..200 {
        c.cmd(&["RPUSH", "big", &i.to_string()]);
        c.cmd(&["HSET", "bigh", &i.to_string(), "v"]);
    }
    let before = c.dump();
    let mut snap = Vec::new();
    c.kv.ks.write_snapshot(&mut snap).unwrap();
    // 200 elements in chunks of 64: 4 RPUSH records for `big`, not 200 (plus one
    // each for the short lists `l` and `l3`).
    let text = String::from_utf8_lossy(&snap);
    assert_eq!(text.matches("RPUSH").count(), 4 + 2);
    let mut fresh = Client::memory();
    let replies = fresh.send(&snap);
    assert!(
        !replies.contains(&b'-'),
        "{}",
        String::from_utf8_lossy(&replies)
    );
    assert_eq!(fresh.dump(), before);
}

#[test]
fn hostile_sizes_get_errors_or_bounded_work() {
    let mut c = Client::memory();
    c.cmd(&["SADD", "s", "a", "b"]);
    c.cmd(&["HSET", "h", "f", "v"]);
    c.cmd(&["ZADD", "z", "1", "a"]);
    assert!(c
        .cmd(&["SRANDMEMBER", "s", "-9223372036854775807"])
        .starts_with("-ERR count of"));
    assert!(c
        .cmd(&["HRANDFIELD", "h", "-9223372036854775807"])
        .starts_with("-ERR"));
    assert!(c
        .cmd(&["ZRANDMEMBER", "z", "-9223372036854775807"])
        .starts_with("-ERR"));
    assert_eq!(
        c.cmd(&["SRANDMEMBER", "s", "-9223372036854775808"]),
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"
    );
    assert_eq!(
        c.cmd(&["ZADD", "z", "nan", "x"]),
        "-ERR value is not a valid float\r\n"
    );
    assert_eq!(
        c.cmd(&["LRANGE", "nokey", "0", "9223372036854775807"]),
        "*0\r\n"
    );
    assert_eq!(
        c.cmd(&["ZRANGE", "z", "-9223372036854775808", "9223372036854775807"]),
        "*1\r\n$1\r\na\r\n"
    );
    assert!(c
        .cmd(&["SETBIT", "b", "4294967295", "1"])
        .starts_with("-ERR string exceeds"));
    assert!(c
        .cmd(&["SETRANGE", "b", "536870912", "x"])
        .starts_with("-ERR string exceeds"));
    c.cmd(&["SET", "a", &"x".repeat(5000)]);
    c.cmd(&["SET", "b", &"y".repeat(5000)]);
    assert!(c
        .cmd(&["LCS", "a", "b"])
        .starts_with("-ERR Insufficient memory"));
}

#[test]
fn btree_engine_refuses_other_types_in_words() {
    let d = tempfile::tempdir().unwrap();
    let mut c = Client::new(
        Kv::open(Config {
            dir: Some(d.path().to_owned()),
            engine: engine::EngineKind::Btree,
            ..Config::default()
        })
        .unwrap(),
    );
    let r = c.cmd(&["HSET", "h", "f", "v"]);
    assert!(
        r.starts_with("-ERR the btree engine stores strings only, not a hash"),
        "{r}"
    );
    assert_eq!(c.cmd(&["EXISTS", "h"]), ":0\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SETRANGE", "k", "1", "xy"]), ":3\r\n");
    assert_eq!(c.cmd(&["GET", "k"]), "$3\r\nvxy\r\n");
    assert_eq!(c.cmd(&["LPUSH", "k", "x"]), WRONGTYPE_REPLY);
}

#[derive(Debug, Clone)]
enum ListOp {
    Push(bool, u8),
    Pop(bool, u8),
    Set(i8, u8),
    Rem(i8, u8),
    Trim(i8, i8),
    Insert(bool, u8, u8),
}

fn list_op() -> impl Strategy<Value = ListOp> {
    prop_oneof![
        (any::<bool>(), 0u8..5).prop_map(|(l, v)| ListOp::Push(l, v)),
        (any::<bool>(), 0u8..3).prop_map(|(l, n)| ListOp::Pop(l, n)),
        (-6i8..6, 0u8..5).prop_map(|(i, v)| ListOp::Set(i, v)),
        (-3i8..3, 0u8..5).prop_map(|(n, v)| ListOp::Rem(n, v)),
        (-6i8..6, -6i8..6).prop_map(|(a, b)| ListOp::Trim(a, b)),
        (any::<bool>(), 0u8..5, 0u8..5).prop_map(|(a, p, v)| ListOp::Insert(a, p, v)),
    ]
}

fn norm(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// LPUSH/RPUSH/LPOP/RPOP/LSET/LREM/LTRIM/LINSERT against a VecDeque.
    #[test]
    fn lists_match_a_vecdeque(ops in proptest::collection::vec(list_op(), 1..60)) {
        let mut c = Client::memory();
        let mut m: VecDeque<String> = VecDeque::new();
        for op in ops {
            match op {
                ListOp::Push(left, v) => {
                    let v = v.to_string();
                    c.cmd(&[if left { "LPUSH" } else { "RPUSH" }, "l", &v]);
                    if left { m.push_front(v) } else { m.push_back(v) }
                }
                ListOp::Pop(left, n) => {
                    c.cmd(&[if left { "LPOP" } else { "RPOP" }, "l", &n.to_string()]);
                    for _ in 0..n {
                        if left { m.pop_front(); } else { m.pop_back(); }
                    }
                }
                ListOp::Set(i, v) => {
                    let r = c.cmd(&["LSET", "l", &i.to_string(), &v.to_string()]);
                    if let Some(i) = norm(i64::from(i), m.len()) {
                        prop_assert_eq!(r, "+OK\r\n");
                        m[i] = v.to_string();
                    }
                }
                ListOp::Rem(n, v) => {
                    c.cmd(&["LREM", "l", &n.to_string(), &v.to_string()]);
                    let v = v.to_string();
                    let limit = if n == 0 { usize::MAX } else { n.unsigned_abs() as usize };
                    let mut idx: Vec<usize> = (0..m.len()).filter(|&i| m[i] == v).collect();
                    if n < 0 { idx.reverse(); }
                    idx.truncate(limit);
                    idx.sort_unstable();
                    for i in idx.into_iter().rev() { m.remove(i); }
                }
                ListOp::Trim(a, b) => {
                    c.cmd(&["LTRIM", "l", &a.to_string(), &b.to_string()]);
                    let keep: VecDeque<String> = match super::cmd::index_range(a.into(), b.into(), m.len()) {
                        Some((a, b)) => m.range(a..=b).cloned().collect(),
                        None => VecDeque::new(),
                    };
                    m = keep;
                }
                ListOp::Insert(after, p, v) => {
                    c.cmd(&["LINSERT", "l", if after { "AFTER" } else { "BEFORE" }, &p.to_string(), &v.to_string()]);
                    if let Some(i) = m.iter().position(|x| *x == p.to_string()) {
                        m.insert(i + usize::from(after), v.to_string());
                    }
                }
            }
            let mut want = format!("*{}\r\n", m.len());
            for v in &m {
                want.push_str(&format!("${}\r\n{v}\r\n", v.len()));
            }
            prop_assert_eq!(c.cmd(&["LRANGE", "l", "0", "-1"]), want);
            prop_assert_eq!(c.cmd(&["EXISTS", "l"]), format!(":{}\r\n", u8::from(!m.is_empty())));
        }
    }

    /// SADD/SREM/SMOVE and HSET/HDEL against BTreeSet/BTreeMap, with full scans.
    #[test]
    fn sets_and_hashes_match_models(ops in proptest::collection::vec((0u8..5, 0u8..12), 1..80)) {
        let mut c = Client::memory();
        let mut s: BTreeSet<String> = BTreeSet::new();
        let mut s2: BTreeSet<String> = BTreeSet::new();
        let mut h: BTreeMap<String, String> = BTreeMap::new();
        for (op, v) in ops {
            let v = v.to_string();
            match op {
                0 => { c.cmd(&["SADD", "s", &v]); s.insert(v); }
                1 => { c.cmd(&["SREM", "s", &v]); s.remove(&v); }
                2 => {
                    c.cmd(&["SMOVE", "s", "s2", &v]);
                    if s.remove(&v) { s2.insert(v); }
                }
                3 => { c.cmd(&["HSET", "h", &v, &format!("x{v}")]); h.insert(v.clone(), format!("x{v}")); }
                _ => { c.cmd(&["HDEL", "h", &v]); h.remove(&v); }
            }
        }
        let dump = c.dump();
        let got_s = dump.get(&b"s"[..]).cloned();
        let want_s = (!s.is_empty()).then(|| {
            let m: BTreeSet<Box<[u8]>> = s.iter().map(|x| x.as_bytes().into()).collect();
            format!("set {:?} ttl=None", m.iter().collect::<BTreeSet<_>>())
        });
        prop_assert_eq!(got_s, want_s);
        prop_assert_eq!(c.cmd(&["SCARD", "s2"]), format!(":{}\r\n", s2.len()));
        prop_assert_eq!(c.cmd(&["HLEN", "h"]), format!(":{}\r\n", h.len()));
        // A full HSCAN and SSCAN return every member.
        let mut seen = BTreeSet::new();
        let mut cursor = "0".to_string();
        loop {
            let r = c.cmd(&["SSCAN", "s", &cursor, "COUNT", "3"]);
            let parts: Vec<&str> = r.split("\r\n").collect();
            cursor = parts[2].to_string();
            for w in parts[4..].iter().skip(1).step_by(2) {
                if !w.is_empty() { seen.insert(w.to_string()); }
            }
            if cursor == "0" { break; }
        }
        prop_assert_eq!(seen, s);
        for (f, v) in &h {
            prop_assert_eq!(c.cmd(&["HGET", "h", f]), format!("${}\r\n{v}\r\n", v.len()));
        }
    }
}

/// What one step sent, per connection.
pub(super) fn step(kv: &mut Kv, id: u64, conn: &mut KvConn, args: &[&str]) -> Vec<(u64, String)> {
    let mut b = Vec::new();
    resp::encode_command(&mut b, args);
    let mut out = Outbox::new();
    let n = kv.data(ConnId(id), conn, &b, &mut out);
    assert_eq!(n, b.len());
    kv.before_wait(&mut out);
    out.drain()
        .filter_map(|a| match a {
            Action::Send {
                to: crate::proto::Target::One(to),
                data,
            } => Some((to.0, String::from_utf8_lossy(&data).into_owned())),
            _ => None,
        })
        .collect()
}

#[test]
fn blocked_clients_are_served_in_fifo_order_and_time_out_with_a_null_array() {
    let d = tempfile::tempdir().unwrap();
    let mut kv = Kv::open(Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    })
    .unwrap();
    let mut out = Outbox::new();
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut a = kv.open(ConnId(1), peer, &mut out);
    let mut b = kv.open(ConnId(2), peer, &mut out);
    let mut c = kv.open(ConnId(3), peer, &mut out);
    assert!(step(&mut kv, 1, &mut a, &["BLPOP", "q", "other", "0"]).is_empty());
    assert!(step(&mut kv, 2, &mut b, &["BRPOP", "q", "5"]).is_empty());
    let info = step(&mut kv, 3, &mut c, &["INFO", "clients"]);
    assert!(info[0].1.contains("blocked_clients:2\r\n"), "{info:?}");
    // The first push goes to the oldest waiter, logged as the pop that happened.
    let got = step(&mut kv, 3, &mut c, &["RPUSH", "q", "x"]);
    assert!(
        got.contains(&(1, "*2\r\n$1\r\nq\r\n$1\r\nx\r\n".into())),
        "{got:?}"
    );
    assert!(got.contains(&(3, ":1\r\n".into())));
    assert_eq!(got.len(), 2);
    // The second waiter's deadline passes: a null array, and it is free again.
    let mut out = Outbox::new();
    kv.timeout(ConnId(2), &mut b, &mut out);
    kv.before_wait(&mut out);
    let sent: Vec<_> = out.drain().collect();
    assert!(
        matches!(&sent[..], [Action::Send { data, .. }] if &data[..] == b"*-1\r\n"),
        "{sent:?}"
    );
    assert_eq!(
        step(&mut kv, 2, &mut b, &["LLEN", "q"]),
        vec![(2, ":0\r\n".into())]
    );
    // Inside a transaction nothing blocks.
    step(&mut kv, 2, &mut b, &["MULTI"]);
    step(&mut kv, 2, &mut b, &["BZPOPMIN", "z", "0"]);
    assert_eq!(
        step(&mut kv, 2, &mut b, &["EXEC"]),
        vec![(2, "*1\r\n*-1\r\n".into())]
    );
    drop(kv);
    let log = std::fs::read_to_string(d.path().join(aof::FILE_NAME)).unwrap();
    assert!(log.contains("LPOP") && !log.contains("BLPOP"), "{log}");
}

#[test]
fn blmpop_and_bzmpop_wait_then_pop_up_to_count_logged_as_plain_pops() {
    let d = tempfile::tempdir().unwrap();
    let mut kv = Kv::open(Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    })
    .unwrap();
    let mut out = Outbox::new();
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut a = kv.open(ConnId(1), peer, &mut out);
    let mut b = kv.open(ConnId(2), peer, &mut out);
    // Argument errors, the timeout's first.
    assert_eq!(
        step(&mut kv, 1, &mut a, &["BLMPOP", "x", "1", "l", "LEFT"]),
        vec![(1, "-ERR timeout is not a float or out of range\r\n".into())]
    );
    assert_eq!(
        step(&mut kv, 1, &mut a, &["BZMPOP", "0", "1", "z", "LEFT"]),
        vec![(1, "-ERR syntax error\r\n".into())]
    );
    // Data at hand: popped at once.
    step(&mut kv, 2, &mut b, &["RPUSH", "l", "a", "b", "c"]);
    assert_eq!(
        step(
            &mut kv,
            1,
            &mut a,
            &["BLMPOP", "0", "2", "none", "l", "RIGHT", "COUNT", "2"]
        ),
        vec![(1, "*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n".into())]
    );
    // Nothing yet: the client waits, and a ZADD serves it.
    assert!(step(
        &mut kv,
        1,
        &mut a,
        &["BZMPOP", "0", "1", "z", "MAX", "COUNT", "5"]
    )
    .is_empty());
    let got = step(&mut kv, 2, &mut b, &["ZADD", "z", "1", "m", "2", "n"]);
    assert!(
        got.contains(&(
            1,
            "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nn\r\n$1\r\n2\r\n*2\r\n$1\r\nm\r\n$1\r\n1\r\n"
                .into()
        )),
        "{got:?}"
    );
    // CLIENT UNBLOCK: a timeout's answer, or Redis's UNBLOCKED error; 0 for a client
    // that waits for nothing.
    assert!(step(&mut kv, 1, &mut a, &["BLMPOP", "0", "1", "e", "LEFT"]).is_empty());
    let got = step(&mut kv, 2, &mut b, &["CLIENT", "UNBLOCK", "1"]);
    assert!(got.contains(&(1, "*-1\r\n".into())), "{got:?}");
    assert!(got.contains(&(2, ":1\r\n".into())), "{got:?}");
    assert!(step(&mut kv, 1, &mut a, &["BLPOP", "e", "0"]).is_empty());
    let got = step(&mut kv, 2, &mut b, &["CLIENT", "UNBLOCK", "1", "ERROR"]);
    assert!(
        got.contains(&(
            1,
            "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n".into()
        )),
        "{got:?}"
    );
    assert_eq!(
        step(&mut kv, 2, &mut b, &["CLIENT", "UNBLOCK", "1"]),
        vec![(2, ":0\r\n".into())]
    );
    assert_eq!(
        step(&mut kv, 1, &mut a, &["PING"]),
        vec![(1, "+PONG\r\n".into())]
    );
    drop(kv);
    let log = std::fs::read_to_string(d.path().join(aof::FILE_NAME)).unwrap();
    assert!(log.contains("RPOP") && log.contains("ZPOPMAX"), "{log}");
    assert!(!log.contains("BLMPOP") && !log.contains("BZMPOP"), "{log}");
}

#[test]
fn waiters_are_served_key_by_key_in_the_order_the_writes_named_the_keys() {
    let mut kv = Kv::open(Config::default()).unwrap();
    let mut out = Outbox::new();
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut c: Vec<KvConn> = (0..5)
        .map(|i| kv.open(ConnId(i + 1), peer, &mut out))
        .collect();
    let bulks = |xs: &[&str]| -> String {
        let mut s = format!("*{}\r\n", xs.len());
        for x in xs {
            s += &format!("${}\r\n{x}\r\n", x.len());
        }
        s
    };
    // Redis's "BLMPOP with multiple blocked clients", over several pairs of names so
    // that no table order can pass it by chance.
    for round in 0..8 {
        let (k1, k2) = (format!("b{round}"), format!("a{round}x"));
        for (i, (end, count)) in [("LEFT", "1"), ("RIGHT", "10"), ("LEFT", "10")]
            .into_iter()
            .enumerate()
        {
            let args = ["BLMPOP", "0", "2", &k1, &k2, end, "COUNT", count];
            assert!(step(&mut kv, i as u64 + 1, &mut c[i], &args).is_empty());
        }
        step(&mut kv, 5, &mut c[4], &["MULTI"]);
        step(
            &mut kv,
            5,
            &mut c[4],
            &["LPUSH", &k1, "a", "b", "c", "d", "e"],
        );
        step(
            &mut kv,
            5,
            &mut c[4],
            &["LPUSH", &k2, "1", "2", "3", "4", "5"],
        );
        let mut got = step(&mut kv, 5, &mut c[4], &["EXEC"]);
        got.sort();
        let reply = |k: &str, xs: &[&str]| format!("*2\r\n${}\r\n{k}\r\n{}", k.len(), bulks(xs));
        assert_eq!(
            got,
            vec![
                (1, reply(&k1, &["e"])),
                (2, reply(&k1, &["a", "b", "c", "d"])),
                (3, reply(&k2, &["5", "4", "3", "2", "1"])),
                (5, "*2\r\n:5\r\n:5\r\n".into()),
            ],
            "round {round}"
        );
    }
}
