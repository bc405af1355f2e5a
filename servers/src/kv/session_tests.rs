//! The connection layer driven directly with several clients: transactions, WATCH,
//! Pub/Sub, AUTH, CLIENT, CONFIG and INFO, replies compared with Redis 7.0's bytes.

use super::*;
use crate::proto::{Action, Target};
use std::collections::HashMap;

/// Several clients of one [`Kv`], bytes in and bytes out per client.
struct Net {
    kv: Kv,
    conns: HashMap<u64, KvConn>,
    inbox: HashMap<u64, Vec<u8>>,
    closed: Vec<u64>,
}

impl Net {
    fn new(config: Config) -> Self {
        Self {
            kv: Kv::open(config).unwrap(),
            conns: HashMap::new(),
            inbox: HashMap::new(),
            closed: Vec::new(),
        }
    }

    fn memory() -> Self {
        Self::new(Config::default())
    }

    fn apply(&mut self, out: &mut Outbox) {
        for a in out.drain() {
            match a {
                Action::Send {
                    to: Target::One(id),
                    data,
                } => self.inbox.entry(id.0).or_default().extend_from_slice(&data),
                Action::Close { id } => self.closed.push(id.0),
                // A parked client's timeout: these tests never let one pass.
                Action::Deadline { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn open(&mut self, id: u64) {
        let mut out = Outbox::new();
        let c = self.kv.open(
            ConnId(id),
            format!("127.0.0.1:{}", 40000 + id).parse().unwrap(),
            &mut out,
        );
        self.conns.insert(id, c);
    }

    fn close(&mut self, id: u64) {
        let mut out = Outbox::new();
        if let Some(c) = self.conns.remove(&id) {
            self.kv.closed(ConnId(id), c, &mut out);
        }
    }

    /// Sends a command from `id`; returns what `id` received by the end of the
    /// iteration (others' output stays in their inbox).
    fn cmd(&mut self, id: u64, args: &[&str]) -> String {
        if !self.conns.contains_key(&id) {
            self.open(id);
        }
        let mut b = Vec::new();
        resp::encode_command(&mut b, args);
        let mut out = Outbox::new();
        let mut conn = self.conns.remove(&id).unwrap();
        let n = self.kv.data(ConnId(id), &mut conn, &b, &mut out);
        assert_eq!(n, b.len());
        self.conns.insert(id, conn);
        self.kv.before_wait(&mut out);
        self.apply(&mut out);
        self.take(id)
    }

    fn tick(&mut self) {
        let mut out = Outbox::new();
        self.kv.tick(&mut out);
        self.apply(&mut out);
    }

    fn take(&mut self, id: u64) -> String {
        String::from_utf8_lossy(&self.inbox.remove(&id).unwrap_or_default()).into_owned()
    }
}

#[test]
fn multi_exec_runs_the_queue_in_order() {
    let mut n = Net::memory();
    assert_eq!(n.cmd(1, &["MULTI"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["SET", "a", "1"]), "+QUEUED\r\n");
    assert_eq!(n.cmd(1, &["INCR", "a"]), "+QUEUED\r\n");
    // Another client's view is unchanged until EXEC.
    assert_eq!(n.cmd(2, &["GET", "a"]), "$-1\r\n");
    assert_eq!(n.cmd(1, &["EXEC"]), "*2\r\n+OK\r\n:2\r\n");
    assert_eq!(n.cmd(2, &["GET", "a"]), "$1\r\n2\r\n");
    assert_eq!(n.cmd(1, &["EXEC"]), "-ERR EXEC without MULTI\r\n");
    assert_eq!(n.cmd(1, &["DISCARD"]), "-ERR DISCARD without MULTI\r\n");
    assert_eq!(n.cmd(1, &["MULTI"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["EXEC"]), "*0\r\n");
}

#[test]
fn a_queueing_error_aborts_exec_and_a_runtime_error_does_not_roll_back() {
    let mut n = Net::memory();
    n.cmd(1, &["MULTI"]);
    assert_eq!(
        n.cmd(1, &["SET", "a"]),
        "-ERR wrong number of arguments for 'set' command\r\n"
    );
    assert_eq!(
        n.cmd(1, &["NOSUCH", "x"]),
        "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
    );
    assert_eq!(n.cmd(1, &["SET", "b", "1"]), "+QUEUED\r\n");
    assert_eq!(
        n.cmd(1, &["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(n.cmd(1, &["GET", "b"]), "$-1\r\n");
    // The MULTI state is gone after the abort.
    assert_eq!(n.cmd(1, &["SET", "a", "x"]), "+OK\r\n");
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["INCR", "a"]);
    n.cmd(1, &["SET", "b", "2"]);
    assert_eq!(
        n.cmd(1, &["EXEC"]),
        "*2\r\n-ERR value is not an integer or out of range\r\n+OK\r\n"
    );
    assert_eq!(n.cmd(1, &["GET", "b"]), "$1\r\n2\r\n");
}

#[test]
fn nested_multi_and_watch_inside_multi_are_refused() {
    let mut n = Net::memory();
    n.cmd(1, &["MULTI"]);
    assert_eq!(
        n.cmd(1, &["MULTI"]),
        "-ERR MULTI calls can not be nested\r\n"
    );
    assert_eq!(
        n.cmd(1, &["WATCH", "x"]),
        "-ERR WATCH inside MULTI is not allowed\r\n"
    );
    n.cmd(1, &["SET", "x", "1"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*1\r\n+OK\r\n");
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["SET", "x", "2"]);
    assert_eq!(n.cmd(1, &["DISCARD"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["GET", "x"]), "$1\r\n1\r\n");
}

#[test]
fn watch_aborts_on_another_clients_write_and_only_then() {
    let mut n = Net::memory();
    n.cmd(1, &["SET", "k", "1"]);
    assert_eq!(n.cmd(1, &["WATCH", "k", "other"]), "+OK\r\n");
    n.cmd(2, &["GET", "k"]);
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["SET", "k", "2"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*1\r\n+OK\r\n");
    // After EXEC nothing is watched any more.
    n.cmd(2, &["SET", "k", "3"]);
    n.cmd(1, &["MULTI"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*0\r\n");

    n.cmd(1, &["WATCH", "k"]);
    n.cmd(2, &["INCR", "k"]);
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["SET", "k", "mine"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*-1\r\n");
    assert_eq!(n.cmd(1, &["GET", "k"]), "$1\r\n4\r\n");

    // UNWATCH and DISCARD forget the watch.
    n.cmd(1, &["WATCH", "k"]);
    n.cmd(1, &["UNWATCH"]);
    n.cmd(2, &["SET", "k", "5"]);
    n.cmd(1, &["MULTI"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*0\r\n");
    assert!(n.kv.clients.watches.is_empty());
}

#[test]
fn watch_sees_expiry_and_flushes_of_existing_keys() {
    let mut n = Net::memory();
    n.cmd(1, &["SET", "k", "1", "PX", "5"]);
    n.cmd(1, &["WATCH", "k"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["PING"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*-1\r\n");

    // A key already expired when watched: its deletion is no change.
    n.cmd(1, &["SET", "s", "1", "PX", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(10));
    n.cmd(1, &["WATCH", "s"]);
    n.cmd(2, &["GET", "s"]);
    n.cmd(1, &["MULTI"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*0\r\n");

    n.cmd(1, &["SET", "x", "1"]);
    n.cmd(1, &["WATCH", "x"]);
    n.cmd(2, &["FLUSHALL"]);
    n.cmd(1, &["MULTI"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*-1\r\n");

    // FLUSHDB leaves a watch on a key that did not exist alone.
    n.cmd(1, &["WATCH", "absent"]);
    n.cmd(2, &["SET", "y", "1"]);
    n.cmd(2, &["FLUSHDB"]);
    n.cmd(1, &["MULTI"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*0\r\n");

    // A client closing drops its watches.
    n.cmd(3, &["WATCH", "a", "b"]);
    n.close(3);
    assert!(n.kv.clients.watches.is_empty());
}

#[test]
fn a_transaction_is_one_group_in_the_log_and_a_torn_one_is_cut_away() {
    let d = tempfile::tempdir().unwrap();
    let config = || Config {
        dir: Some(d.path().to_owned()),
        fsync: FsyncPolicy::Always,
        ..Config::default()
    };
    let mut n = Net::new(config());
    n.cmd(1, &["SET", "before", "1"]);
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["SET", "a", "1"]);
    n.cmd(1, &["GET", "a"]);
    n.cmd(1, &["INCR", "a"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*3\r\n+OK\r\n$1\r\n1\r\n:2\r\n");
    // One write alone needs no group.
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["SET", "single", "1"]);
    n.cmd(1, &["EXEC"]);
    drop(n);
    let path = d.path().join(aof::FILE_NAME);
    let log = std::fs::read(&path).unwrap();
    let mut want = Vec::new();
    resp::encode_command(&mut want, &["SET", "before", "1"]);
    resp::encode_command(&mut want, &["MULTI"]);
    resp::encode_command(&mut want, &["SET", "a", "1"]);
    resp::encode_command(&mut want, &["INCR", "a"]);
    resp::encode_command(&mut want, &["EXEC"]);
    resp::encode_command(&mut want, &["SET", "single", "1"]);
    assert_eq!(
        String::from_utf8_lossy(&log),
        String::from_utf8_lossy(&want)
    );

    // A transaction whose EXEC never reached the disk: every command in it is dropped
    // and the file cut back to where it began.
    let whole = log.len() as u64;
    let mut torn = log.clone();
    resp::encode_command(&mut torn, &["MULTI"]);
    resp::encode_command(&mut torn, &["SET", "t1", "1"]);
    resp::encode_command(&mut torn, &["SET", "t2", "1"]);
    torn.extend_from_slice(b"*1\r\n$4\r\nEX");
    std::fs::write(&path, &torn).unwrap();
    let mut n = Net::new(config());
    assert_eq!(n.cmd(1, &["GET", "a"]), "$1\r\n2\r\n");
    assert_eq!(n.cmd(1, &["EXISTS", "t1", "t2"]), ":0\r\n");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    n.cmd(1, &["SET", "after", "1"]);
    drop(n);
    let mut n = Net::new(config());
    assert_eq!(
        n.cmd(1, &["MGET", "single", "after"]),
        "*2\r\n$1\r\n1\r\n$1\r\n1\r\n"
    );
}

#[test]
fn pubsub_delivers_to_channels_and_patterns() {
    let mut n = Net::memory();
    assert_eq!(
        n.cmd(1, &["SUBSCRIBE", "news", "sport"]),
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n"
    );
    assert_eq!(
        n.cmd(2, &["PSUBSCRIBE", "n*"]),
        "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n"
    );
    assert_eq!(n.cmd(3, &["PUBLISH", "news", "hi"]), ":2\r\n");
    assert_eq!(
        n.take(1),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    assert_eq!(
        n.take(2),
        "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    assert_eq!(n.cmd(3, &["PUBLISH", "nobody", "x"]), ":1\r\n");
    n.take(2);
    assert_eq!(
        n.cmd(3, &["PUBSUB", "NUMSUB", "news", "zzz"]),
        "*4\r\n$4\r\nnews\r\n:1\r\n$3\r\nzzz\r\n:0\r\n"
    );
    assert_eq!(n.cmd(3, &["PUBSUB", "NUMPAT"]), ":1\r\n");
    assert_eq!(
        n.cmd(3, &["PUBSUB", "CHANNELS", "s*"]),
        "*1\r\n$5\r\nsport\r\n"
    );
    // A subscribed client may only (un)subscribe, ping, quit or reset.
    assert_eq!(
        n.cmd(1, &["GET", "x"]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(n.cmd(1, &["PING"]), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        n.cmd(1, &["UNSUBSCRIBE", "news"]),
        "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    assert_eq!(
        n.cmd(1, &["UNSUBSCRIBE"]),
        "*3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:0\r\n"
    );
    assert_eq!(n.cmd(1, &["GET", "x"]), "$-1\r\n");
    assert_eq!(
        n.cmd(1, &["PUNSUBSCRIBE"]),
        "*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n"
    );
    n.close(2);
    assert_eq!(n.cmd(3, &["PUBLISH", "news", "x"]), ":0\r\n");
    assert!(n.kv.clients.patterns.is_empty());
}

#[test]
fn auth_gates_every_command_until_the_password_is_given() {
    let mut n = Net::new(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    });
    assert_eq!(
        n.cmd(1, &["GET", "a"]),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        n.cmd(1, &["AUTH", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(n.cmd(1, &["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["GET", "a"]), "$-1\r\n");
    // HELLO AUTH authenticates too.
    assert!(n
        .cmd(2, &["HELLO", "2", "AUTH", "default", "s3cret"])
        .starts_with("*14\r\n"));
    assert_eq!(n.cmd(2, &["GET", "a"]), "$-1\r\n");
    // Without a password, AUTH says so.
    let mut m = Net::memory();
    assert_eq!(
        m.cmd(1, &["AUTH", "x"]),
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
    assert_eq!(
        m.cmd(1, &["HELLO", "4"]),
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert!(m.cmd(3, &["HELLO", "3"]).starts_with("%7\r\n"));
    assert_eq!(m.cmd(3, &["GET", "a"]), "_\r\n");
    // CONFIG SET requirepass applies to clients that connect afterwards.
    assert_eq!(m.cmd(1, &["CONFIG", "SET", "requirepass", "pw"]), "+OK\r\n");
    assert_eq!(m.cmd(1, &["GET", "a"]), "$-1\r\n");
    assert_eq!(
        m.cmd(2, &["GET", "a"]),
        "-NOAUTH Authentication required.\r\n"
    );
}

#[test]
fn client_commands_name_list_and_kill() {
    let mut n = Net::memory();
    assert_eq!(n.cmd(1, &["CLIENT", "ID"]), ":1\r\n");
    assert_eq!(n.cmd(1, &["CLIENT", "GETNAME"]), "$-1\r\n");
    assert_eq!(
        n.cmd(1, &["CLIENT", "SETNAME", "a b"]),
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(n.cmd(1, &["CLIENT", "SETNAME", "worker"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["CLIENT", "GETNAME"]), "$6\r\nworker\r\n");
    n.cmd(2, &["PING"]);
    let list = n.cmd(1, &["CLIENT", "LIST"]);
    assert!(list.contains("id=1 addr=127.0.0.1:40001 "), "{list}");
    assert!(list.contains(" name=worker "), "{list}");
    assert!(list.contains("id=2 addr=127.0.0.1:40002 "), "{list}");
    assert_eq!(n.cmd(1, &["CLIENT", "KILL", "ID", "2"]), ":1\r\n");
    assert_eq!(n.closed, vec![2]);
    assert_eq!(
        n.cmd(1, &["CLIENT", "KILL", "127.0.0.1:9"]),
        "-ERR No such client\r\n"
    );
    assert_eq!(
        n.cmd(1, &["CLIENT", "NOPE"]),
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
    );
}

#[test]
fn config_info_and_the_small_server_commands() {
    let mut n = Net::memory();
    assert_eq!(
        n.cmd(1, &["CONFIG", "SET", "hash-max-ziplist-entries", "16"]),
        "+OK\r\n"
    );
    assert_eq!(
        n.cmd(1, &["CONFIG", "GET", "hash-max-listpack-entries"]),
        "*2\r\n$25\r\nhash-max-listpack-entries\r\n$2\r\n16\r\n"
    );
    assert_eq!(
        n.cmd(1, &["CONFIG", "SET", "nosuch", "1"]),
        "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n"
    );
    assert_eq!(n.cmd(1, &["FUNCTION", "FLUSH"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["SCRIPT", "FLUSH"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["EVAL", "return 1", "0"]), ":1\r\n");
    assert!(n.cmd(1, &["TIME"]).starts_with("*2\r\n$10\r\n"));
    assert!(n.cmd(1, &["LASTSAVE"]).starts_with(':'));
    n.cmd(1, &["GET", "x"]);
    n.cmd(1, &["INCR", "x", "y"]);
    let info = n.cmd(1, &["INFO"]);
    for field in [
        "# Server",
        "redis_version:7.0.15",
        "# Clients",
        "connected_clients:1",
        "# Memory",
        "used_memory:",
        "# Persistence",
        "# Stats",
        "# Replication",
        "role:master",
        "# CPU",
        "used_cpu_user:",
        "# Errorstats",
        "errorstat_ERR:count=2",
        "# Keyspace",
    ] {
        assert!(info.contains(field), "{field} missing from {info}");
    }
    assert!(!info.contains("rejected_calls"));
    let all = n.cmd(1, &["INFO", "all"]);
    assert!(all.contains("cmdstat_get:calls=1,"), "{all}");
    assert!(
        all.contains(
            "cmdstat_incr:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0"
        ),
        "{all}"
    );
    assert_eq!(n.cmd(1, &["CONFIG", "RESETSTAT"]), "+OK\r\n");
    assert!(!n.cmd(1, &["INFO", "commandstats"]).contains("cmdstat_get"));
}

#[test]
fn keyspace_notifications_follow_the_flags() {
    let mut n = Net::memory();
    assert_eq!(
        n.cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        "+OK\r\n"
    );
    assert_eq!(
        n.cmd(1, &["CONFIG", "GET", "notify-keyspace-events"]),
        "*2\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nAKE\r\n"
    );
    n.cmd(2, &["PSUBSCRIBE", "*"]);
    n.cmd(1, &["SET", "foo", "bar"]);
    assert_eq!(
        n.take(2),
        "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$18\r\n__keyspace@0__:foo\r\n$3\r\nset\r\n\
         *4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$18\r\n__keyevent@0__:set\r\n$3\r\nfoo\r\n"
    );
    // Only generic events, only keyspace channels: EXPIRE (logged as PEXPIREAT) is
    // an "expire", SET is not reported.
    n.cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "Kg"]);
    n.cmd(1, &["SET", "foo", "bar"]);
    n.cmd(1, &["EXPIRE", "foo", "100"]);
    n.cmd(1, &["DEL", "foo"]);
    assert_eq!(
        n.take(2),
        "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$18\r\n__keyspace@0__:foo\r\n$6\r\nexpire\r\n\
         *4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$18\r\n__keyspace@0__:foo\r\n$3\r\ndel\r\n"
    );
    assert!(n
        .cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "Kq"])
        .starts_with("-ERR CONFIG SET failed"));
}

#[test]
fn client_reply_off_and_skip_silence_replies() {
    let mut n = Net::memory();
    assert_eq!(n.cmd(1, &["CLIENT", "REPLY", "OFF"]), "");
    assert_eq!(n.cmd(1, &["SET", "a", "1"]), "");
    assert_eq!(n.cmd(1, &["CLIENT", "REPLY", "ON"]), "+OK\r\n");
    assert_eq!(n.cmd(1, &["CLIENT", "REPLY", "SKIP"]), "");
    assert_eq!(n.cmd(1, &["GET", "a"]), "");
    assert_eq!(n.cmd(1, &["GET", "a"]), "$1\r\n1\r\n");
    // Subscriptions are confirmed, and messages delivered, even with replies off.
    n.cmd(1, &["CLIENT", "REPLY", "OFF"]);
    assert_eq!(
        n.cmd(1, &["SUBSCRIBE", "c"]),
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    );
}

#[test]
fn maxmemory_refuses_growing_writes_and_transactions_holding_them() {
    let mut n = Net::memory();
    n.cmd(1, &["SET", "x", "v"]);
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["GET", "x"]);
    n.cmd(2, &["CONFIG", "SET", "maxmemory", "1"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*1\r\n$1\r\nv\r\n");
    assert_eq!(
        n.cmd(1, &["SET", "y", "1"]),
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    assert_eq!(n.cmd(1, &["DEL", "x"]), ":1\r\n");
    n.cmd(1, &["MULTI"]);
    assert!(n.cmd(1, &["SET", "y", "1"]).starts_with("-OOM"));
    assert!(n.cmd(1, &["EXEC"]).starts_with("-EXECABORT"));
    n.cmd(2, &["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(n.cmd(1, &["SET", "y", "1"]), "+OK\r\n");
}

#[test]
fn active_expiry_touches_watched_keys_and_notifies_expired() {
    let mut n = Net::memory();
    n.cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    n.cmd(2, &["SUBSCRIBE", "__keyevent@0__:expired"]);
    n.cmd(1, &["SET", "x", "foo", "PX", "5"]);
    n.cmd(1, &["WATCH", "x"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    for _ in 0..50 {
        n.tick();
        if n.kv.ks.is_empty() {
            break;
        }
    }
    assert!(n.kv.ks.is_empty());
    assert_eq!(
        n.take(2),
        "*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$1\r\nx\r\n"
    );
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["PING"]);
    assert_eq!(n.cmd(1, &["EXEC"]), "*-1\r\n");
}

#[test]
fn maxmemory_with_an_eviction_policy_evicts_and_announces_it() {
    let mut n = Net::memory();
    n.cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "Ee"]);
    n.cmd(1, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    n.cmd(2, &["SUBSCRIBE", "__keyevent@0__:evicted"]);
    n.cmd(1, &["SET", "foo", "bar"]);
    assert_eq!(n.cmd(1, &["CONFIG", "SET", "maxmemory", "1"]), "+OK\r\n");
    assert_eq!(
        n.take(2),
        "*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:evicted\r\n$3\r\nfoo\r\n"
    );
    assert_eq!(n.cmd(1, &["DBSIZE"]), ":0\r\n");
}

#[test]
fn lazy_expiry_is_an_expired_event_not_a_del() {
    let mut n = Net::memory();
    n.cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    n.cmd(1, &["SET", "foo", "1", "PX", "5"]);
    n.cmd(2, &["PSUBSCRIBE", "__keyevent@0__:*"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(n.cmd(1, &["EXISTS", "foo"]), ":0\r\n");
    assert_eq!(
        n.take(2),
        "*4\r\n$8\r\npmessage\r\n$16\r\n__keyevent@0__:*\r\n$22\r\n__keyevent@0__:expired\r\n$3\r\nfoo\r\n"
    );
}

#[test]
fn a_created_key_is_a_new_event_once() {
    let mut n = Net::memory();
    n.cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "En"]);
    n.cmd(2, &["SUBSCRIBE", "__keyevent@0__:new"]);
    n.cmd(1, &["SET", "foo", "bar"]);
    n.cmd(1, &["SET", "foo", "baz"]);
    n.cmd(1, &["SET", "bar", "bar"]);
    assert_eq!(
        n.take(2),
        "*3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:new\r\n$3\r\nfoo\r\n\
         *3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:new\r\n$3\r\nbar\r\n"
    );
}

#[test]
fn smove_touches_and_announces_the_destination_only_when_it_gains_the_member() {
    let mut n = Net::memory();
    n.cmd(1, &["SADD", "src", "a", "b"]);
    n.cmd(1, &["SADD", "dst", "a"]);
    // The destination already holds `a`: only the source changes.
    n.cmd(1, &["WATCH", "dst"]);
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["SADD", "dst", "c"]);
    assert_eq!(n.cmd(2, &["SMOVE", "src", "dst", "a"]), ":1\r\n");
    assert_eq!(n.cmd(1, &["EXEC"]), "*1\r\n:1\r\n");
    assert_eq!(n.cmd(1, &["SCARD", "dst"]), ":2\r\n");
    // A member the destination gains: a change to both keys.
    n.cmd(1, &["WATCH", "dst"]);
    n.cmd(1, &["MULTI"]);
    n.cmd(1, &["SADD", "dst", "d"]);
    assert_eq!(n.cmd(2, &["SMOVE", "src", "dst", "b"]), ":1\r\n");
    assert_eq!(n.cmd(1, &["EXEC"]), "*-1\r\n");

    n.cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "Ks"]);
    n.cmd(3, &["PSUBSCRIBE", "*"]);
    n.take(3);
    n.cmd(1, &["SADD", "x", "m"]);
    n.cmd(1, &["SADD", "y", "m"]);
    n.cmd(1, &["SADD", "x", "o"]);
    n.take(3);
    n.cmd(1, &["SMOVE", "x", "y", "m"]);
    n.cmd(1, &["SMOVE", "x", "z", "o"]);
    let ev = |key: &str, e: &str| {
        let ch = format!("__keyspace@0__:{key}");
        format!(
            "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n${}\r\n{ch}\r\n${}\r\n{e}\r\n",
            ch.len(),
            e.len()
        )
    };
    assert_eq!(
        n.take(3),
        [ev("x", "srem"), ev("x", "srem"), ev("z", "sadd")].concat()
    );
}

#[test]
fn a_push_made_by_a_served_brpoplpush_touches_watchers_and_is_announced() {
    let mut n = Net::memory();
    n.cmd(1, &["SET", "k", "v"]);
    assert_eq!(n.cmd(1, &["BRPOPLPUSH", "src", "dst", "0"]), "");
    n.cmd(2, &["WATCH", "dst"]);
    n.cmd(2, &["MULTI"]);
    n.cmd(2, &["GET", "k"]);
    n.cmd(4, &["CONFIG", "SET", "notify-keyspace-events", "El"]);
    n.cmd(3, &["PSUBSCRIBE", "__keyevent@0__:*"]);
    n.take(3);
    assert_eq!(n.cmd(4, &["LPUSH", "src", "e"]), ":1\r\n");
    assert_eq!(n.take(1), "$1\r\ne\r\n");
    assert_eq!(n.cmd(2, &["EXEC"]), "*-1\r\n");
    let ev = |e: &str, key: &str| {
        let ch = format!("__keyevent@0__:{e}");
        format!(
            "*4\r\n$8\r\npmessage\r\n$16\r\n__keyevent@0__:*\r\n${}\r\n{ch}\r\n${}\r\n{key}\r\n",
            ch.len(),
            key.len()
        )
    };
    assert_eq!(
        n.take(3),
        [ev("lpush", "src"), ev("rpop", "src"), ev("lpush", "dst")].concat()
    );
}
