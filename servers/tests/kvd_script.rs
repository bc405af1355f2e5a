//! kvd's Lua scripts (EVAL, EVALSHA, SCRIPT): the same bytes as Debian's `redis-server`
//! for the same scripts, a script's writes replayed from the log after a restart, WATCH
//! invalidated by a script, a runaway script stopped by `lua-time-limit` while other
//! clients are served afterwards, and redis-py's `Lock` (EVALSHA with its EVAL
//! fallback). Tests that need `redis-server` or redis-py say so and skip when they are
//! absent (`scripts/tests.d/50-kvd.sh` installs both).

mod kvd_common;

use kvd_common::{kvd, python_with_redis, redis_server, Conn};
use std::process::Command;
use std::time::{Duration, Instant};

/// Each case runs on both servers, in order, on one connection each.
const CASES: &[&[&str]] = &[
    // Conversions Lua -> RESP.
    &["EVAL", "return 1", "0"],
    &["EVAL", "return 3.99", "0"],
    &["EVAL", "return -3.99", "0"],
    &["EVAL", "return redis.call('set','n',0.1)", "0"],
    &["EVAL", "return redis.call('get','n')", "0"],
    &["EVAL", "return 'str'", "0"],
    &["EVAL", "return true", "0"],
    &["EVAL", "return false", "0"],
    &["EVAL", "return nil", "0"],
    &["EVAL", "return {}", "0"],
    &["EVAL", "return {1,2,3,'x',nil,4}", "0"],
    &["EVAL", "return {1,2,{3,'x'},false,true}", "0"],
    &["EVAL", "return {1,{2,{3,{4}}}}", "0"],
    &["EVAL", "return {ok='fine'}", "0"],
    &["EVAL", "return {err='My Error'}", "0"],
    &["EVAL", "return {err=1}", "0"],
    &["EVAL", "return redis.status_reply('FINE')", "0"],
    &["EVAL", "return redis.error_reply('boom')", "0"],
    &["EVAL", "return redis.error_reply('My Error')", "0"],
    &["EVAL", "return redis.error_reply('-CODE detail here')", "0"],
    &["EVAL", "return 'a\r\nb'", "0"],
    &["EVAL", "return {err='a\r\nb'}", "0"],
    &["EVAL", "return redis.sha1hex('')", "0"],
    &["EVAL", "return redis.sha1hex()", "0"],
    // KEYS and ARGV.
    &["EVAL", "return KEYS[1]..ARGV[1]", "1", "k", "v"],
    &[
        "EVAL",
        "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}",
        "2",
        "a",
        "b",
        "c",
        "d",
    ],
    &["EVAL", "return #ARGV", "0", "a", "b"],
    &["EVAL", "return 1", "-1"],
    &["EVAL", "return 1", "2", "a"],
    &["EVAL", "return 1", "x"],
    // Conversions RESP -> Lua, through redis.call.
    &[
        "EVAL",
        "redis.call('set',KEYS[1],ARGV[1]); return redis.call('get',KEYS[1])",
        "1",
        "k",
        "v",
    ],
    &["EVAL", "return redis.call('incr','cnt')", "0"],
    &["EVAL", "return redis.call('get','nokey')", "0"],
    &["EVAL", "return type(redis.call('get','nokey'))", "0"],
    &["EVAL", "return redis.call('hgetall','nokey')", "0"],
    &["EVAL", "return redis.call('set','x','y')", "0"],
    &["EVAL", "return redis.call('type','k')", "0"],
    &["EVAL", "local t = redis.call('type','k'); return t.ok", "0"],
    &["EVAL", "return redis.call('ping')", "0"],
    &["EVAL", "return redis.call('set','n',3.5)", "0"],
    &["EVAL", "return redis.call('get','n')", "0"],
    &["EVAL", "return redis.call('set','n',100000000000000)", "0"],
    &["EVAL", "return redis.call('get','n')", "0"],
    &["EVAL", "return redis.call('zadd','z',1.5,'a')", "0"],
    &[
        "EVAL",
        "return redis.call('zrange','z',0,-1,'withscores')",
        "0",
    ],
    &["EVAL", "return redis.call('lpush','l','a','b')", "0"],
    &["EVAL", "return redis.call('lrange','l',0,-1)", "0"],
    &[
        "EVAL",
        "return redis.call('exists', unpack(KEYS))",
        "3",
        "k",
        "x",
        "nope",
    ],
    &["EVAL", "return redis.call('publish','c','m')", "0"],
    // Errors, raised and caught.
    &["SET", "s", "1"],
    &["EVAL", "return redis.call('lpush','s','a')", "0"],
    &["EVAL", "return redis.pcall('lpush','s','a')", "0"],
    &["EVAL", "return redis.pcall('incr','s2')", "0"],
    &["EVAL", "return redis.pcall('nosuch')", "0"],
    &["EVAL", "return redis.call('nosuch')", "0"],
    &["EVAL", "return redis.call('get')", "0"],
    &["EVAL", "return redis.call()", "0"],
    &["EVAL", "return redis.call({})", "0"],
    &["EVAL", "return redis.call('eval','return 1',0)", "0"],
    &["EVAL", "return redis.call('multi')", "0"],
    &["EVAL", "return redis.call('blpop','nolist',0)", "0"],
    &["EVAL", "return redis.call('config','get','x')", "0"],
    &["EVAL", "\n\nredis.call('lpush','s','a')", "0"],
    &["EVAL", "error('boom')", "0"],
    &[
        "EVAL",
        "local ok, e = pcall(function() return redis.call('lpush','s','a') end); return e",
        "0",
    ],
    &[
        "EVAL",
        "local ok, e = pcall(redis.call, 'nosuch'); return {tostring(ok), e.err}",
        "0",
    ],
    &[
        "EVAL",
        "local ok, e = pcall(error, 'x'); return {tostring(ok), e}",
        "0",
    ],
    &["EVAL", "local x = nil; return x.y", "0"],
    &["EVAL", "retur 1", "0"],
    &["EVAL_RO", "return redis.call('set','a','b')", "0"],
    &["EVAL_RO", "return redis.call('get','k')", "0"],
    // The sandbox.
    &["EVAL", "x=1", "0"],
    &["EVAL", "print = nil", "0"],
    &["EVAL", "string.rep = nil", "0"],
    &["EVAL", "redis.call = nil", "0"],
    &["EVAL", "local t = math; t.y = 1", "0"],
    &["EVAL", "return string.rep('ab', 2) .. ('x'):rep(2)", "0"],
    &["EVAL", "KEYS[1] = 'x'; return KEYS[1]", "0"],
    &["EVAL", "return y", "0"],
    &["EVAL", "return os", "0"],
    &["EVAL", "return io", "0"],
    &["EVAL", "return loadfile", "0"],
    &["EVAL", "return dofile", "0"],
    &["EVAL", "return _G.undefined", "0"],
    &["EVAL", "return string.format('%d-%s', 5, 'x')", "0"],
    &["EVAL", "return table.concat({'a','b'}, ',')", "0"],
    &["EVAL", "return math.floor(7/2)", "0"],
    // The cache.
    &["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"],
    &["SCRIPT", "LOAD", "return 'loaded'"],
    &[
        "SCRIPT",
        "EXISTS",
        "b534286061d4b9e4026607613b95c06c06015ae8",
        "ffff",
    ],
    &["EVALSHA", "b534286061d4b9e4026607613b95c06c06015ae8", "0"],
    &[
        "EVALSHA_RO",
        "B534286061D4B9E4026607613B95C06C06015AE8",
        "0",
    ],
    &["SCRIPT", "FLUSH", "x"],
    &["SCRIPT", "FLUSH", "ASYNC"],
    &["EVALSHA", "b534286061d4b9e4026607613b95c06c06015ae8", "0"],
    &[
        "SCRIPT",
        "EXISTS",
        "b534286061d4b9e4026607613b95c06c06015ae8",
    ],
    &["SCRIPT", "KILL"],
    &["SCRIPT", "FOO"],
    &["SCRIPT", "EXISTS"],
    &["SCRIPT", "LOAD"],
    &["SCRIPT", "LOAD", "return 1", "extra"],
    &["SCRIPT", "LOAD", "retur 1"],
    &["SCRIPT", "KILL", "x"],
    &["SCRIPT", "FLUSH", "SYNC", "x"],
    &["EVAL"],
];

#[test]
fn eval_replies_are_redis_servers_bytes() {
    let dr = tempfile::tempdir().unwrap();
    let Some(r) = redis_server(dr.path()) else {
        return;
    };
    let dk = tempfile::tempdir().unwrap();
    let k = kvd(dk.path());
    let mut rc = Conn::new(r.addr);
    let mut kc = Conn::new(k.addr);
    let mut diffs = Vec::new();
    for c in CASES {
        let want = rc.cmd(c);
        let got = kc.cmd(c);
        if want != got {
            diffs.push(format!(
                "{c:?}\n  redis-server: {want:?}\n  kvd:          {got:?}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert!(CASES.len() >= 60);
}

#[test]
fn a_scripts_writes_are_logged_as_commands_and_replayed() {
    let d = tempfile::tempdir().unwrap();
    {
        let k = kvd(d.path());
        let mut c = Conn::new(k.addr);
        let got = c.cmd(&[
            "EVAL",
            "redis.call('incr', KEYS[1]); redis.call('rpush', KEYS[2], ARGV[1], ARGV[2]); \
             redis.call('set', KEYS[3], ARGV[1]); return redis.call('get', KEYS[3])",
            "3",
            "counter",
            "list",
            "str",
            "a",
            "b",
        ]);
        assert_eq!(got, "$1\r\na\r\n");
        assert_eq!(
            c.cmd(&[
                "EVAL",
                "return redis.call('incrby', KEYS[1], 10)",
                "1",
                "counter"
            ]),
            ":11\r\n"
        );
        // A read-only script writes nothing to the log.
        assert_eq!(
            c.cmd(&["EVAL", "return redis.call('get','str')", "0"]),
            "$1\r\na\r\n"
        );
        // A failing script keeps what it wrote before the error, as Redis does.
        c.cmd(&[
            "EVAL",
            "redis.call('set','partial','1'); redis.call('lpush','str','x')",
            "0",
        ]);
    }
    let log = std::fs::read(d.path().join("appendonly.aof")).unwrap();
    let text = String::from_utf8_lossy(&log).to_ascii_uppercase();
    assert!(!text.contains("EVAL"), "the log holds the EVAL: {text:?}");
    assert!(text.contains("MULTI") && text.contains("EXEC"), "{text:?}");
    let k = kvd(d.path());
    let mut c = Conn::new(k.addr);
    assert_eq!(c.cmd(&["GET", "counter"]), "$2\r\n11\r\n");
    assert_eq!(
        c.cmd(&["LRANGE", "list", "0", "-1"]),
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(c.cmd(&["GET", "str"]), "$1\r\na\r\n");
    assert_eq!(c.cmd(&["GET", "partial"]), "$1\r\n1\r\n");
}

#[test]
fn a_script_inside_multi_and_a_watch_it_invalidates() {
    let d = tempfile::tempdir().unwrap();
    {
        let k = kvd(d.path());
        let mut a = Conn::new(k.addr);
        let mut b = Conn::new(k.addr);
        assert_eq!(a.cmd(&["WATCH", "w"]), "+OK\r\n");
        assert_eq!(
            b.cmd(&["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "w"]),
            "+OK\r\n"
        );
        assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
        assert_eq!(a.cmd(&["SET", "w", "mine"]), "+QUEUED\r\n");
        assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
        // A script in a transaction: its writes are inside the transaction's group.
        assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
        assert_eq!(
            a.cmd(&[
                "EVAL",
                "redis.call('set','m1','1'); return redis.call('set','m2','2')",
                "0"
            ]),
            "+QUEUED\r\n"
        );
        assert_eq!(a.cmd(&["SET", "m3", "3"]), "+QUEUED\r\n");
        assert_eq!(a.cmd(&["EXEC"]), "*2\r\n+OK\r\n+OK\r\n");
        // A blocked client is served by a script's push.
        b.send(&["BLPOP", "q", "5"]);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            a.cmd(&["EVAL", "return redis.call('rpush', 'q', 'job')", "0"]),
            ":1\r\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&b.reply()),
            "*2\r\n$1\r\nq\r\n$3\r\njob\r\n"
        );
    }
    let k = kvd(d.path());
    let mut c = Conn::new(k.addr);
    assert_eq!(
        c.cmd(&["MGET", "w", "m1", "m2", "m3", "q"]),
        "*5\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$-1\r\n"
    );
    assert_eq!(c.cmd(&["LLEN", "q"]), ":0\r\n");
}

#[test]
fn a_runaway_script_is_stopped_and_others_are_served_after() {
    let d = tempfile::tempdir().unwrap();
    let k = kvd(d.path());
    let mut a = Conn::new(k.addr);
    let mut b = Conn::new(k.addr);
    assert_eq!(
        a.cmd(&["CONFIG", "SET", "lua-time-limit", "300"]),
        "+OK\r\n"
    );
    let started = Instant::now();
    a.send(&["EVAL", "while true do end", "0"]);
    b.send(&["PING"]);
    let got = String::from_utf8_lossy(&a.reply()).into_owned();
    assert!(
        got.starts_with("-ERR Script killed: it ran longer than lua-time-limit (300 ms)"),
        "{got:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(b.reply(), b"+PONG\r\n");
    // A runaway that catches errors with pcall is stopped too: the limit keeps firing.
    a.send(&[
        "EVAL",
        "while true do pcall(function() while true do end end) end",
        "0",
    ]);
    let got = String::from_utf8_lossy(&a.reply()).into_owned();
    assert!(got.starts_with("-ERR Script killed"), "{got:?}");
    assert_eq!(b.cmd(&["EVAL", "return 'alive'", "0"]), "$5\r\nalive\r\n");
    // busy-reply-threshold is the same setting under its Redis 7 name.
    assert_eq!(
        b.cmd(&["CONFIG", "GET", "busy-reply-threshold"]),
        "*2\r\n$20\r\nbusy-reply-threshold\r\n$3\r\n300\r\n"
    );
}

#[test]
fn redis_py_lock_acquire_extend_release() {
    let Some(python) = python_with_redis("import redis") else {
        eprintln!("SKIP: no python with redis-py (Debian package python3-redis)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let k = kvd(d.path());
    let script = r#"
import sys, redis
from redis.exceptions import LockError, LockNotOwnedError
port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port)
r.script_flush()
a = r.lock("res", timeout=10)
b = r.lock("res", timeout=10, blocking=False)
assert a.acquire(blocking=False)
assert not b.acquire()
assert a.owned()
assert a.extend(5)
assert 10000 < r.pttl("res") <= 15000, r.pttl("res")
assert a.reacquire()
assert 9000 < r.pttl("res") <= 10000, r.pttl("res")
a.release()
assert r.get("res") is None
try:
    a.release()
    raise SystemExit("a second release must fail")
except LockError:
    pass
assert b.acquire()
c = r.lock("res", timeout=10)
c.local.token = b"someone else"
try:
    c.extend(1)
    raise SystemExit("extend by a non-owner must fail")
except LockNotOwnedError:
    pass
try:
    c.release()
    raise SystemExit("release by a non-owner must fail")
except LockNotOwnedError:
    pass
b.release()
# The scripts were loaded with EVALSHA's NOSCRIPT fallback; after a flush, again.
r.script_flush()
with r.lock("res2", timeout=5):
    assert r.exists("res2")
assert not r.exists("res2")
print("ok")
"#;
    let o = Command::new(&python)
        .args(["-c", script, &k.addr.port().to_string()])
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "ok",
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
