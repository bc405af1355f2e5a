//! The protocol driven directly, bytes in and bytes out, with no sockets.

use super::*;
use crate::proto::Action;

struct Client {
    kv: Kv,
    conn: KvConn,
    pending: Vec<u8>,
    closed: bool,
}

impl Client {
    fn new(kv: Kv) -> Self {
        let mut kv = kv;
        let mut out = Outbox::new();
        let conn = kv.open(ConnId(1), "127.0.0.1:1".parse().unwrap(), &mut out);
        Self {
            kv,
            conn,
            pending: Vec::new(),
            closed: false,
        }
    }

    fn memory() -> Self {
        Self::new(Kv::open(Config::default()).unwrap())
    }

    /// Sends bytes, returns every byte replied by the end of the loop iteration.
    fn send(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Outbox::new();
        let n = self
            .kv
            .data(ConnId(1), &mut self.conn, &self.pending, &mut out);
        self.pending.drain(..n);
        self.kv.before_wait(&mut out);
        let mut got = Vec::new();
        for a in out.drain() {
            match a {
                Action::Send { data, .. } => got.extend_from_slice(&data),
                Action::Close { .. } => self.closed = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    }

    fn cmd(&mut self, args: &[&str]) -> String {
        let mut b = Vec::new();
        resp::encode_command(&mut b, args);
        String::from_utf8_lossy(&self.send(&b)).into_owned()
    }
}

#[test]
fn basic_strings() {
    let mut c = Client::memory();
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(c.cmd(&["ping", "hi"]), "$2\r\nhi\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(c.cmd(&["GET", "nope"]), "$-1\r\n");
    assert_eq!(c.cmd(&["SET", "k", "w", "NX"]), "$-1\r\n");
    assert_eq!(c.cmd(&["SET", "k", "w", "XX", "GET"]), "$1\r\nv\r\n");
    assert_eq!(c.cmd(&["SET", "n", "w", "XX"]), "$-1\r\n");
    assert_eq!(c.cmd(&["GETSET", "k", "x"]), "$1\r\nw\r\n");
    assert_eq!(c.cmd(&["APPEND", "k", "yz"]), ":3\r\n");
    assert_eq!(c.cmd(&["STRLEN", "k"]), ":3\r\n");
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]), "+OK\r\n");
    assert_eq!(
        c.cmd(&["MGET", "a", "x", "b"]),
        "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
    );
    assert_eq!(c.cmd(&["INCR", "a"]), ":2\r\n");
    assert_eq!(c.cmd(&["INCRBY", "a", "10"]), ":12\r\n");
    assert_eq!(c.cmd(&["DECR", "a"]), ":11\r\n");
    assert_eq!(c.cmd(&["DECRBY", "a", "20"]), ":-9\r\n");
    assert_eq!(c.cmd(&["EXISTS", "a", "a", "zz"]), ":2\r\n");
    assert_eq!(c.cmd(&["DEL", "a", "b", "zz"]), ":2\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), ":1\r\n");
    assert_eq!(c.cmd(&["FLUSHDB"]), "+OK\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), ":0\r\n");
}

#[test]
fn errors_in_redis_words() {
    let mut c = Client::memory();
    assert_eq!(
        c.cmd(&["FOO", "a", "b"]),
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        c.cmd(&["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        c.cmd(&["MSET", "a", "1", "b"]),
        "-ERR wrong number of arguments for 'mset' command\r\n"
    );
    c.cmd(&["SET", "s", "abc"]);
    assert_eq!(
        c.cmd(&["INCR", "s"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        c.cmd(&["INCRBY", "n", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    c.cmd(&["SET", "m", "9223372036854775807"]);
    assert_eq!(
        c.cmd(&["INCR", "m"]),
        "-ERR increment or decrement would overflow\r\n"
    );
    assert_eq!(
        c.cmd(&["SET", "k", "v", "EX", "0"]),
        "-ERR invalid expire time in 'set' command\r\n"
    );
    assert_eq!(
        c.cmd(&["SET", "k", "v", "EX", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        c.cmd(&["SET", "k", "v", "NX", "XX"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(c.cmd(&["SET", "k", "v", "EX"]), "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SCAN", "x"]), "-ERR invalid cursor\r\n");
    assert!(!c.closed);
}

#[test]
fn expiry_commands() {
    let mut c = Client::memory();
    assert_eq!(c.cmd(&["TTL", "k"]), ":-2\r\n");
    c.cmd(&["SET", "k", "v"]);
    assert_eq!(c.cmd(&["TTL", "k"]), ":-1\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "100"]), ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]), ":100\r\n");
    let pttl = c.cmd(&["PTTL", "k"]);
    let ms: i64 = pttl[1..pttl.len() - 2].parse().unwrap();
    assert!((99_000..=100_000).contains(&ms), "{pttl}");
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "GT"]), ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "LT"]), ":1\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "NX"]), ":0\r\n");
    assert_eq!(c.cmd(&["PERSIST", "k"]), ":1\r\n");
    assert_eq!(c.cmd(&["PERSIST", "k"]), ":0\r\n");
    assert_eq!(c.cmd(&["PEXPIRE", "k", "1"]), ":1\r\n");
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(c.cmd(&["GET", "k"]), "$-1\r\n");
    c.cmd(&["SET", "k", "v", "PX", "100000"]);
    assert_eq!(c.cmd(&["INCR", "c"]), ":1\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "-1"]), ":1\r\n");
    assert_eq!(c.cmd(&["EXISTS", "k"]), ":0\r\n");
    assert_eq!(
        c.cmd(&["EXPIRE", "c", "9223372036854775807"]),
        "-ERR invalid expire time in 'expire' command\r\n"
    );
}

#[test]
fn keys_and_scan() {
    let mut c = Client::memory();
    for i in 0..100 {
        c.cmd(&["SET", &format!("key:{i}"), "v"]);
    }
    c.cmd(&["SET", "other", "v"]);
    let keys = c.cmd(&["KEYS", "key:1?"]);
    assert!(keys.starts_with("*10\r\n"), "{keys}");
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let r = c.cmd(&["SCAN", &cursor, "MATCH", "key:*", "COUNT", "7"]);
        let lines: Vec<&str> = r.split("\r\n").collect();
        cursor = lines[2].to_string();
        for l in lines.iter().skip(5).step_by(2) {
            if !l.is_empty() {
                seen.insert(l.to_string());
            }
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 100);
}

#[test]
fn pipelined_batch_is_one_send() {
    let mut c = Client::memory();
    let mut b = Vec::new();
    for i in 0..100 {
        resp::encode_command(&mut b, &["SET", &format!("k{i}"), "v"]);
    }
    b.extend_from_slice(b"PING\r\n*1\r\n$4\r\nPI");
    let mut out = Outbox::new();
    let n = c.kv.data(ConnId(1), &mut c.conn, &b, &mut out);
    assert_eq!(n, b.len() - 10);
    assert_eq!(out.len(), 1);
}

#[test]
fn a_pipeline_of_large_replies_is_cut_into_bounded_batches() {
    let mut c = Client::memory();
    c.cmd(&["SET", "big", &"x".repeat(300_000)]);
    let mut b = Vec::new();
    for _ in 0..100 {
        resp::encode_command(&mut b, &["GET", "big"]);
    }
    let mut out = Outbox::new();
    let n = c.kv.data(ConnId(1), &mut c.conn, &b, &mut out);
    let per = b.len() / 100;
    assert_eq!(n, 4 * per, "stops after ~1 MiB of replies");
    let sent: usize = out
        .drain()
        .map(|a| match a {
            Action::Send { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert!(sent < 2 * REPLY_BATCH_MAX);
}

#[test]
fn inline_commands_and_quit() {
    let mut c = Client::memory();
    assert_eq!(
        c.send(b"SET k \"a b\"\r\nGET k\r\n"),
        b"+OK\r\n$3\r\na b\r\n"
    );
    assert_eq!(c.send(b"QUIT\r\nPING\r\n"), b"+OK\r\n");
    assert!(c.closed);
}

#[test]
fn protocol_error_replies_then_closes() {
    let mut c = Client::memory();
    assert_eq!(
        c.send(b"PING\r\n*1\r\n$-5\r\n"),
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(c.closed);
}

#[test]
fn large_value_arrives_in_pieces() {
    let mut c = Client::memory();
    let value = vec![b'x'; 1_000_000];
    let mut b = Vec::new();
    resp::encode_command(&mut b, &[&b"SET"[..], b"big", &value]);
    for chunk in b.chunks(4096) {
        let r = c.send(chunk);
        if !r.is_empty() {
            assert_eq!(r, b"+OK\r\n");
        }
    }
    assert!(c.pending.is_empty());
    assert_eq!(c.cmd(&["STRLEN", "big"]), ":1000000\r\n");
}

#[test]
fn log_replays_into_the_same_state() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config {
        dir: Some(d.path().to_owned()),
        fsync: FsyncPolicy::Always,
        ..Config::default()
    };
    {
        let mut c = Client::new(Kv::open(cfg.clone()).unwrap());
        c.cmd(&["SET", "a", "1"]);
        c.cmd(&["INCRBY", "a", "5"]);
        c.cmd(&["SET", "t", "v", "EX", "1000"]);
        c.cmd(&["SET", "gone", "v"]);
        c.cmd(&["DEL", "gone"]);
        c.cmd(&["APPEND", "s", "xy"]);
        c.cmd(&["MSET", "m1", "a", "m2", "b"]);
        c.cmd(&["SET", "nx", "1", "NX"]);
        c.cmd(&["SET", "nx", "2", "NX"]);
    }
    let mut c = Client::new(Kv::open(cfg).unwrap());
    assert_eq!(c.cmd(&["GET", "a"]), "$1\r\n6\r\n");
    assert_eq!(c.cmd(&["EXISTS", "gone"]), ":0\r\n");
    assert_eq!(c.cmd(&["GET", "s"]), "$2\r\nxy\r\n");
    assert_eq!(c.cmd(&["GET", "nx"]), "$1\r\n1\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), ":6\r\n");
    let ttl = c.cmd(&["TTL", "t"]);
    assert!(ttl == ":1000\r\n" || ttl == ":999\r\n", "{ttl}");
}

#[test]
fn unknown_command_in_the_log_refuses_to_start() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Vec::new();
    resp::encode_command(&mut b, &["SET", "a", "1"]);
    let at = b.len();
    resp::encode_command(&mut b, &["BOGUS", "a"]);
    std::fs::write(d.path().join(aof::FILE_NAME), &b).unwrap();
    let err = Kv::open(Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains(&format!("offset {at}")), "{err}");
}

#[test]
fn btree_engine_serves_and_replays() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config {
        dir: Some(d.path().to_owned()),
        engine: EngineKind::Btree,
        ..Config::default()
    };
    {
        let mut c = Client::new(Kv::open(cfg.clone()).unwrap());
        for i in 0..25_000 {
            c.cmd(&["SET", &format!("k{i}"), &i.to_string()]);
        }
        c.cmd(&["DEL", "k7"]);
        c.cmd(&["INCRBY", "k8", "100"]);
        assert_eq!(c.cmd(&["DBSIZE"]), ":24999\r\n");
        let long = "x".repeat(2000);
        assert!(c
            .cmd(&["SET", &long, "v"])
            .starts_with("-ERR key of 2000 bytes"));
    }
    let mut c = Client::new(Kv::open(cfg).unwrap());
    assert_eq!(c.cmd(&["DBSIZE"]), ":24999\r\n");
    assert_eq!(c.cmd(&["GET", "k8"]), "$3\r\n108\r\n");
    assert_eq!(c.cmd(&["EXISTS", "k7"]), ":0\r\n");
    assert_eq!(c.cmd(&["GET", "k24999"]), "$5\r\n24999\r\n");
    assert!(c.cmd(&["INFO", "server"]).contains("engine:btree"));
}

/// What one call queued: bytes sent per connection, in order, and closes.
fn sent(out: &mut Outbox) -> Vec<(u64, Vec<u8>)> {
    out.drain()
        .map(|a| match a {
            Action::Send {
                to: crate::proto::Target::One(id),
                data,
            } => (id.0, data.to_vec()),
            Action::Close { id } => (id.0, b"<close>".to_vec()),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    resp::encode_command(&mut b, args);
    b
}

fn log_len(d: &std::path::Path) -> u64 {
    std::fs::metadata(d.join(aof::FILE_NAME)).unwrap().len()
}

/// Within a loop iteration every reply waits until the log records of all clients are
/// written, in one write at the iteration's end; with nothing to log, replies go at
/// once.
#[test]
fn replies_wait_for_the_iterations_log_write() {
    for fsync in [FsyncPolicy::Everysec, FsyncPolicy::Always, FsyncPolicy::No] {
        let d = tempfile::tempdir().unwrap();
        let mut kv = Kv::open(Config {
            dir: Some(d.path().to_owned()),
            fsync,
            ..Config::default()
        })
        .unwrap();
        let mut out = Outbox::new();
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut a = kv.open(ConnId(1), peer, &mut out);
        let mut b = kv.open(ConnId(2), peer, &mut out);
        let mut c = kv.open(ConnId(3), peer, &mut out);

        let q = command(&["GET", "k"]);
        assert_eq!(kv.data(ConnId(3), &mut c, &q, &mut out), q.len());
        assert_eq!(sent(&mut out), vec![(3, b"$-1\r\n".to_vec())], "{fsync}");

        let set = command(&["SET", "k", "v"]);
        let incr = command(&["INCR", "n"]);
        assert_eq!(kv.data(ConnId(1), &mut a, &set, &mut out), set.len());
        assert_eq!(kv.data(ConnId(2), &mut b, &incr, &mut out), incr.len());
        // A read after a write in the same iteration may show it: it waits too.
        assert_eq!(kv.data(ConnId(3), &mut c, &q, &mut out), q.len());
        let quit = command(&["QUIT"]);
        assert_eq!(kv.data(ConnId(2), &mut b, &quit, &mut out), quit.len());
        assert!(
            sent(&mut out).is_empty(),
            "{fsync}: a reply left before the log write"
        );
        assert_eq!(log_len(d.path()), 0, "{fsync}");

        kv.before_wait(&mut out);
        assert_eq!(log_len(d.path()), (set.len() + incr.len()) as u64);
        assert_eq!(
            sent(&mut out),
            vec![
                (1, b"+OK\r\n".to_vec()),
                (2, b":1\r\n".to_vec()),
                (3, b"$1\r\nv\r\n".to_vec()),
                (2, b"+OK\r\n".to_vec()),
                (2, b"<close>".to_vec()),
            ],
            "{fsync}"
        );
        // Whatever a quitting client sends while its close is applied is dropped.
        assert_eq!(kv.data(ConnId(2), &mut b, &set, &mut out), set.len());
        kv.before_wait(&mut out);
        assert!(sent(&mut out).is_empty());
        assert_eq!(log_len(d.path()), (set.len() + incr.len()) as u64);

        // Nothing pending: the end of the iteration does nothing.
        assert_eq!(kv.data(ConnId(1), &mut a, &q, &mut out), q.len());
        assert_eq!(sent(&mut out), vec![(1, b"$1\r\nv\r\n".to_vec())]);
        kv.before_wait(&mut out);
        assert!(out.is_empty());
    }
}

/// Held replies are bounded: past REPLY_BATCH_MAX the log is written and they are
/// released from within the batch, so the loop's backpressure sees them.
#[test]
fn held_replies_are_released_early_past_the_batch_bound() {
    let d = tempfile::tempdir().unwrap();
    let mut kv = Kv::open(Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    })
    .unwrap();
    let mut out = Outbox::new();
    let mut a = kv.open(ConnId(1), "127.0.0.1:1".parse().unwrap(), &mut out);
    let big = "x".repeat(REPLY_BATCH_MAX / 3);
    let set = command(&["SET", "big", &big]);
    assert_eq!(kv.data(ConnId(1), &mut a, &set, &mut out), set.len());
    let get = command(&["GET", "big"]);
    let mut held = 0;
    for _ in 0..3 {
        assert_eq!(kv.data(ConnId(1), &mut a, &get, &mut out), get.len());
        if out.is_empty() {
            held += 1;
        }
    }
    assert_eq!(held, 2, "the third GET passes the bound");
    assert_eq!(log_len(d.path()), set.len() as u64);
    let replies = sent(&mut out);
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[0], (1, b"+OK\r\n".to_vec()));
    assert!(kv.held.is_empty() && kv.held_bytes == 0);
}

/// A rewrite asked for in the same batch as writes before it: the new log holds their
/// effect once (in the snapshot), not again after it.
#[test]
fn rewrite_in_a_batch_after_writes_replays_them_once() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    };
    {
        let mut c = Client::new(Kv::open(cfg.clone()).unwrap());
        let mut batch = command(&["INCR", "n"]);
        batch.extend_from_slice(&command(&["BGREWRITEAOF"]));
        batch.extend_from_slice(&command(&["INCR", "n"]));
        assert_eq!(
            c.send(&batch),
            b":1\r\n+Background append only file rewriting started\r\n:2\r\n"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.kv.aof.as_ref().unwrap().rewrite_in_progress() {
            assert!(
                std::time::Instant::now() < deadline,
                "rewrite never finished"
            );
            std::thread::sleep(Duration::from_millis(10));
            c.kv.tick(&mut Outbox::new());
        }
        assert_eq!(
            c.kv.aof.as_ref().unwrap().last_rewrite_status,
            Some(aof::RewriteStatus::Ok)
        );
    }
    let mut c = Client::new(Kv::open(cfg).unwrap());
    assert_eq!(c.cmd(&["GET", "n"]), "$1\r\n2\r\n");
}
