//! kvd in RESP3 (`HELLO 3`): the same bytes as Debian's `redis-server` for the same
//! commands, Pub/Sub pushes beside replies, per-connection protocols, CLIENT REPLY,
//! and redis-py with `protocol=3`. Tests that need `redis-server` or redis-py 5 say so
//! and skip when they are absent (`scripts/tests.d/50-kvd.sh` installs both).

mod kvd_common;

use kvd_common::{kvd, python_with_redis, redis_server, Conn};
use std::process::Command;

/// HELLO's reply names the connection's id, which differs between two servers.
fn mask_id(reply: &str) -> String {
    match reply.find("$2\r\nid\r\n:") {
        Some(i) => {
            let start = i + "$2\r\nid\r\n:".len();
            let end = start + reply[start..].find("\r\n").unwrap_or(0);
            format!("{}N{}", &reply[..start], &reply[end..])
        }
        None => reply.to_string(),
    }
}

/// The same commands, in RESP3 and back in RESP2, get the same bytes from kvd as from
/// redis-server.
#[test]
fn resp3_replies_are_redis_servers_bytes() {
    let rd = tempfile::tempdir().unwrap();
    let Some(redis) = redis_server(rd.path()) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let k = kvd(d.path());
    let cmds: Vec<Vec<&str>> = vec![
        vec!["HELLO", "4"],
        vec!["HELLO", "1"],
        vec!["HELLO", "x"],
        vec!["HELLO", "3", "SETNAME"],
        vec!["HELLO", "3", "FOO", "bar"],
        vec!["HELLO", "3"],
        vec!["HELLO"],
        vec!["HELLO", "3", "SETNAME", "me"],
        vec!["CLIENT", "GETNAME"],
        vec!["FLUSHALL"],
        vec!["PING"],
        vec!["GET", "nokey"],
        vec!["SET", "k", "v"],
        vec!["SET", "k", "w", "GET"],
        vec!["SET", "k2", "w", "GET"],
        vec!["GETDEL", "nokey"],
        vec!["MGET", "k", "nokey"],
        vec!["INCRBYFLOAT", "f", "1.5"],
        vec!["EXISTS", "k"],
        vec!["TTL", "k"],
        vec!["OBJECT", "ENCODING", "nokey"],
        vec!["LCS", "k", "k2", "IDX"],
        vec!["LCS", "k", "k2", "IDX", "WITHMATCHLEN"],
        // hashes
        vec!["HSET", "h", "f1", "v1", "f2", "v2"],
        vec!["HGETALL", "h"],
        vec!["HGETALL", "nohash"],
        vec!["HKEYS", "h"],
        vec!["HVALS", "h"],
        vec!["HMGET", "h", "f1", "nof"],
        vec!["HGET", "h", "nof"],
        vec!["HSET", "h1", "f", "v"],
        vec!["HRANDFIELD", "h1", "-3", "WITHVALUES"],
        vec!["HRANDFIELD", "h1", "2", "WITHVALUES"],
        vec!["HRANDFIELD", "h1", "-2"],
        vec!["HRANDFIELD", "nohash"],
        vec!["HRANDFIELD", "nohash", "2", "WITHVALUES"],
        vec!["HINCRBYFLOAT", "h", "n", "2.5"],
        vec!["HSCAN", "h", "0"],
        // sets (integers and single members: the same order on both)
        vec!["SADD", "s", "3", "1", "2"],
        vec!["SMEMBERS", "s"],
        vec!["SMEMBERS", "noset"],
        vec!["SINTER", "s", "s"],
        vec!["SINTER", "s", "noset"],
        vec!["SUNION", "s", "noset"],
        vec!["SDIFF", "s", "noset"],
        vec!["SMISMEMBER", "s", "1", "9"],
        vec!["SISMEMBER", "s", "1"],
        vec!["SADD", "one", "x"],
        vec!["SRANDMEMBER", "one", "-2"],
        vec!["SRANDMEMBER", "one", "2"],
        vec!["SRANDMEMBER", "noset", "2"],
        vec!["SRANDMEMBER", "noset"],
        vec!["SPOP", "one", "5"],
        vec!["SPOP", "noset", "5"],
        vec!["SPOP", "noset"],
        vec!["SPOP", "s", "0"],
        vec!["SSCAN", "s", "0"],
        vec!["SINTERCARD", "1", "s"],
        // sorted sets
        vec!["ZADD", "z", "1", "a", "2.5", "b", "inf", "c", "-inf", "d"],
        vec!["ZSCORE", "z", "b"],
        vec!["ZSCORE", "z", "c"],
        vec!["ZSCORE", "z", "d"],
        vec!["ZSCORE", "z", "none"],
        vec!["ZSCORE", "noz", "a"],
        vec!["ZMSCORE", "z", "a", "none", "c"],
        vec!["ZINCRBY", "z", "0.1", "a"],
        vec!["ZADD", "z", "INCR", "1", "a"],
        vec!["ZADD", "z", "NX", "INCR", "1", "a"],
        vec!["ZADD", "z", "XX", "INCR", "1", "nobody"],
        vec!["ZRANGE", "z", "0", "-1"],
        vec!["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        vec!["ZRANGE", "noz", "0", "-1", "WITHSCORES"],
        vec!["ZREVRANGE", "z", "0", "1", "WITHSCORES"],
        vec![
            "ZRANGEBYSCORE",
            "z",
            "-inf",
            "+inf",
            "WITHSCORES",
            "LIMIT",
            "1",
            "2",
        ],
        vec!["ZREVRANGEBYSCORE", "z", "+inf", "-inf", "WITHSCORES"],
        vec!["ZRANGE", "z", "(1", "+inf", "BYSCORE", "WITHSCORES"],
        vec!["ZRANGEBYLEX", "z", "-", "+"],
        vec!["ZUNION", "2", "z", "z", "WITHSCORES"],
        vec!["ZINTER", "1", "z", "WITHSCORES"],
        vec!["ZDIFF", "1", "z", "WITHSCORES"],
        vec!["ZDIFF", "1", "z"],
        vec!["ZSCAN", "z", "0"],
        vec!["ZRANK", "z", "a"],
        vec!["ZRANK", "z", "none"],
        vec!["ZADD", "one", "5", "m"],
        vec!["DEL", "one"],
        vec!["ZADD", "one", "5", "m"],
        vec!["ZRANDMEMBER", "one", "-2", "WITHSCORES"],
        vec!["ZRANDMEMBER", "one", "1", "WITHSCORES"],
        vec!["ZRANDMEMBER", "one", "-2"],
        vec!["ZRANDMEMBER", "noz"],
        vec!["ZRANDMEMBER", "noz", "2", "WITHSCORES"],
        vec!["ZPOPMIN", "z"],
        vec!["ZPOPMIN", "z", "2"],
        vec!["ZPOPMAX", "z", "1"],
        vec!["ZPOPMAX", "z", "0"],
        vec!["ZPOPMIN", "noz"],
        vec!["ZPOPMIN", "noz", "3"],
        vec!["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        vec!["ZMPOP", "1", "z", "MIN"],
        vec!["ZMPOP", "1", "z", "MAX", "COUNT", "5"],
        vec!["ZMPOP", "1", "noz", "MIN"],
        vec!["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        vec!["BZPOPMIN", "z", "0"],
        vec!["BZPOPMAX", "z", "0"],
        vec!["BZMPOP", "0", "1", "z", "MIN", "COUNT", "2"],
        vec!["BZPOPMIN", "noz", "0.01"],
        vec!["BZMPOP", "0.01", "1", "noz", "MIN"],
        // lists
        vec!["RPUSH", "l", "a", "b", "c"],
        vec!["LRANGE", "l", "0", "-1"],
        vec!["LPOP", "nolist"],
        vec!["LPOP", "nolist", "2"],
        vec!["LPOS", "l", "z"],
        vec!["LINDEX", "l", "9"],
        vec!["LMPOP", "1", "nolist", "LEFT"],
        vec!["BLPOP", "l", "0"],
        vec!["BLPOP", "nolist", "0.01"],
        vec!["BLMOVE", "nolist", "l", "LEFT", "LEFT", "0.01"],
        vec!["BLMPOP", "0.01", "1", "nolist", "LEFT"],
        vec!["RPOPLPUSH", "nolist", "l"],
        vec!["SORT", "l", "BY", "nosort", "GET", "nokey*", "ALPHA"],
        // transactions
        vec!["MULTI"],
        vec!["ZSCORE", "z", "c"],
        vec!["HGETALL", "h1"],
        vec!["GET", "nokey"],
        vec!["EXEC"],
        vec!["WATCH", "k"],
        vec!["SET", "k", "changed"],
        vec!["MULTI"],
        vec!["GET", "k"],
        vec!["EXEC"],
        // server
        vec!["CONFIG", "GET", "maxmemory"],
        vec!["CONFIG", "GET", "nosuchparameter"],
        vec!["PUBSUB", "NUMSUB", "ch"],
        vec!["COMMAND", "INFO", "nosuchcommand"],
        vec!["COMMAND", "DOCS", "nosuchcommand"],
        vec!["CLIENT", "REPLY", "ON"],
        // Pub/Sub: confirmations are pushes, and a subscribed RESP3 client runs anything
        vec!["SUBSCRIBE", "ch", "ch2"],
        vec!["GET", "k"],
        vec!["PING"],
        vec!["PING", "hi"],
        vec!["ZSCORE", "z", "none"],
        vec!["UNSUBSCRIBE", "ch"],
        vec!["PSUBSCRIBE", "p*"],
        vec!["PUNSUBSCRIBE"],
        vec!["UNSUBSCRIBE"],
        vec!["UNSUBSCRIBE"],
        // and back to RESP2
        vec!["HELLO", "2"],
        vec!["HGETALL", "h1"],
        vec!["ZSCORE", "z", "none"],
        vec!["SMEMBERS", "noset"],
        vec!["ZADD", "z2", "1.5", "m"],
        vec!["ZRANGE", "z2", "0", "-1", "WITHSCORES"],
        vec!["ZPOPMIN", "z2", "1"],
        vec!["BLPOP", "nolist", "0.01"],
        vec!["HELLO", "3"],
        vec!["RESET"],
        vec!["GET", "nokey"],
    ];
    let mut rc = Conn::new(redis.addr);
    let mut kc = Conn::new(k.addr);
    let mut bad = Vec::new();
    for c in &cmds {
        let want = mask_id(&rc.cmd(c));
        let got = mask_id(&kc.cmd(c));
        if want != got {
            bad.push(format!(
                "{c:?}\n  redis-server: {want:?}\n  kvd:          {got:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "replies differ:\n{}", bad.join("\n"));
}

/// A published message reaches each subscriber in its own protocol: a push for the
/// RESP3 one, an array for the RESP2 one; the RESP3 one's replies interleave.
#[test]
fn pushes_and_replies_per_connection_protocol() {
    let d = tempfile::tempdir().unwrap();
    let k = kvd(d.path());
    let mut three = Conn::new(k.addr);
    let mut two = Conn::new(k.addr);
    let mut publisher = Conn::new(k.addr);
    assert!(three.cmd(&["HELLO", "3"]).starts_with("%7\r\n"));
    assert_eq!(
        three.cmd(&["SUBSCRIBE", "news"]),
        ">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    assert_eq!(
        three.cmd(&["PSUBSCRIBE", "n*"]),
        ">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n"
    );
    assert_eq!(
        two.cmd(&["SUBSCRIBE", "news"]),
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "hi"]), ":3\r\n");
    assert_eq!(
        String::from_utf8(three.reply()).unwrap(),
        ">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    assert_eq!(
        String::from_utf8(three.reply()).unwrap(),
        ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    assert_eq!(
        String::from_utf8(two.reply()).unwrap(),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    // The RESP3 subscriber may run any command; the RESP2 one may not.
    assert_eq!(three.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(three.cmd(&["PING"]), "+PONG\r\n");
    assert!(two
        .cmd(&["SET", "k", "v"])
        .starts_with("-ERR Can't execute 'set'"));
    assert_eq!(two.cmd(&["PING"]), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    // CLIENT REPLY OFF silences replies, not pushes.
    three.send(&["CLIENT", "REPLY", "OFF"]);
    three.send(&["SET", "k", "w"]);
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "2"]), ":3\r\n");
    assert_eq!(
        String::from_utf8(three.reply()).unwrap(),
        ">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        String::from_utf8(three.reply()).unwrap(),
        ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$1\r\n2\r\n"
    );
    three.send(&["CLIENT", "REPLY", "ON"]);
    assert_eq!(String::from_utf8(three.reply()).unwrap(), "+OK\r\n");
    assert_eq!(three.cmd(&["GET", "k"]), "$1\r\nw\r\n");
    // COMMAND INFO's flags are a set, as Redis's.
    assert!(three
        .cmd(&["COMMAND", "INFO", "get"])
        .contains("~2\r\n+readonly\r\n+fast\r\n"));
    assert!(publisher
        .cmd(&["COMMAND", "INFO", "get"])
        .contains("*2\r\n+readonly\r\n+fast\r\n"));
    // A blocked RESP3 client's timeout is RESP3's null.
    assert_eq!(three.cmd(&["BLPOP", "nolist", "0.01"]), "_\r\n");
}

/// A python interpreter with redis-py 5 or later (protocol=3): `KVD_REDIS_PY`, else the
/// virtualenv `scripts/tests.d/50-kvd.sh` makes, else the system's.
#[test]
fn redis_py_protocol_3() {
    let Some(python) =
        python_with_redis("import redis,sys; sys.exit(int(redis.__version__.split('.')[0]) < 5)")
    else {
        eprintln!("SKIP: no python with redis-py >= 5 (scripts/tests.d/50-kvd.sh installs it in $SYSNET_CACHE/redis-py5)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let k = kvd(d.path());
    let script = r#"
import sys, time, redis
port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, protocol=3)
assert r.ping()
got = r.execute_command("CLIENT", "INFO")
assert b" resp=3" in got, got
r.hset("h", mapping={"a": "1", "b": "2"})
assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}, r.hgetall("h")
assert r.hrandfield("h", 5, withvalues=True) in ([[b"a", b"1"], [b"b", b"2"]], [[b"b", b"2"], [b"a", b"1"]])
r.sadd("s", "x", "y")
assert r.smembers("s") == {b"x", b"y"}
assert r.sinter("s", "s") == {b"x", b"y"}
assert r.get("missing") is None
r.zadd("z", {"a": 1.5, "b": 2, "c": float("inf")})
assert r.zscore("z", "a") == 1.5
assert r.zscore("z", "c") == float("inf")
assert r.zscore("z", "none") is None
assert r.zincrby("z", 1, "a") == 2.5
assert r.zmscore("z", ["a", "none"]) == [2.5, None]
got = r.zrange("z", 0, -1, withscores=True)
assert got == [[b"b", 2.0], [b"a", 2.5], [b"c", float("inf")]], got
got = r.config_get("maxmemory")
assert got == {"maxmemory": "0"}, got
got = r.zpopmin("z")
assert got == [b"b", 2.0], got
got = r.zpopmin("z", 1)
assert got == [[b"a", 2.5]], got
got = r.bzpopmax("z", 1)
assert got == [b"z", b"c", float("inf")], got
assert r.bzpopmin("z", 0.01) is None
p = r.pubsub()
p.subscribe("news")
first = p.get_message(timeout=2)
assert first["type"] == "subscribe", first
time.sleep(0.1)
assert r.publish("news", "hello") == 1
m = None
deadline = time.time() + 5
while m is None and time.time() < deadline:
    m = p.get_message(timeout=1)
assert m and m["type"] == "message" and m["data"] == b"hello", m
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
