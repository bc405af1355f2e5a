//! kvd end to end: real sockets on port 0, real files, `kill -9`, and the real Redis
//! tools (`redis-cli`, `redis-server`) where installed (`scripts/tests.d/50-kvd.sh`
//! installs them; without them those tests say so and skip).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KVD: &str = env!("CARGO_BIN_EXE_kvd");

struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        Self::try_start(dir, extra).unwrap_or_else(|log| panic!("kvd did not start:\n{log}"))
    }

    /// Starts kvd; on failure returns what it printed.
    fn try_start(dir: &Path, extra: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(KVD)
            .args(["--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kvd");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
                if let Some(i) = line.find("listening addr=") {
                    let rest = &line[i + "listening addr=".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    if let (Ok(a), Some(t)) = (addr.parse::<SocketAddr>(), tx.take()) {
                        let _ = t.send(a);
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Server { child, addr, log }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let l = log.lock().unwrap().clone();
                Err(l)
            }
        }
    }

    fn conn(&self) -> Conn {
        Conn::new(self.addr)
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// Reads one whole reply, returned raw.
    fn reply(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        match line[0] {
            b'$' if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                self.r.read_exact(&mut body)?;
                line.extend_from_slice(&body);
            }
            b'*' if n > 0 => {
                for _ in 0..n {
                    let sub = self.reply()?;
                    line.extend_from_slice(&sub);
                }
            }
            _ => {}
        }
        Ok(line)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    fn try_cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
        self.w.write_all(&encode(args))?;
        self.reply()
    }

    fn cmd(&mut self, args: &[&str]) -> String {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        String::from_utf8_lossy(&self.try_cmd(&a).unwrap()).into_owned()
    }
}

fn have(prog: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: {prog} is not installed (Debian package redis-tools / redis-server; scripts/test.sh installs it)");
    }
    ok
}

fn aof_path(dir: &Path) -> PathBuf {
    dir.join("appendonly.aof")
}

fn info_field(c: &mut Conn, field: &str) -> String {
    let info = c.cmd(&["INFO", "persistence"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .to_string()
}

#[test]
fn raw_resp_byte_for_byte_with_pipelining() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*1\r\n$3\r\nFOO\r\n*1\r\n$3\r\nGET\r\n");
    let mut want: &[u8] = b"+OK\r\n$5\r\nhello\r\n+PONG\r\n-ERR value is not an integer or out of range\r\n-ERR unknown command 'FOO', with args beginning with: \r\n-ERR wrong number of arguments for 'get' command\r\n";
    let mut got = vec![0u8; want.len()];
    c.r.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    // A frame split at every byte boundary still parses.
    let frame = b"*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$3\r\nabc\r\n";
    for b in frame.iter() {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_millis(1));
    }
    want = b"+OK\r\n";
    let mut got = vec![0u8; want.len()];
    c.r.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
    // 10,000 pipelined commands in one write.
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend_from_slice(&encode(&[b"INCR", b"ctr"]));
        let _ = i;
    }
    c.send(&batch);
    let mut last = Vec::new();
    for _ in 0..10_000 {
        last = c.reply().unwrap();
    }
    assert_eq!(last, b":10000\r\n");
    assert_eq!(c.cmd(&["QUIT"]), "+OK\r\n");
    let mut rest = Vec::new();
    assert_eq!(c.r.read_to_end(&mut rest).unwrap(), 0);
}

/// The same commands sent to kvd and to Debian's redis-server must get the same bytes.
#[test]
fn same_replies_as_redis_server() {
    if !have("redis-server") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let rd = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir"])
        .arg(rd.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let raddr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rc = loop {
        if let Ok(s) = TcpStream::connect(raddr) {
            drop(s);
            break Conn::new(raddr);
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let long = "a".repeat(200);
    let cmds: Vec<Vec<&str>> = vec![
        vec!["FLUSHDB"],
        vec!["PING"],
        vec!["PING", "x"],
        vec!["PING", "a", "b"],
        vec!["ECHO", "hi"],
        vec!["ECHO"],
        vec!["GET", "k"],
        vec!["SET", "k", "v"],
        vec!["GET", "k"],
        vec!["SET", "k", "v", "NX"],
        vec!["SET", "k", "v2", "XX", "GET"],
        vec!["SET", "k", "v", "EX", "0"],
        vec!["SET", "k", "v", "EX", "-5"],
        vec!["SET", "k", "v", "EX", "abc"],
        vec!["SET", "k", "v", "NX", "XX"],
        vec!["SET", "k", "v", "EX"],
        vec!["SET", "k", "v", "EX", "10", "PX", "100"],
        vec!["SET", "k", "v", "KEEPTTL", "EX", "1"],
        vec!["SET", "k", "v", "FOO"],
        vec!["SET", "k", "v", "EX", "9223372036854775807"],
        vec!["SET", "k", "v", "PX", "9223372036854775807"],
        vec!["SET", "k", "v", "GET", "NX"],
        vec!["SET", "k"],
        vec!["GETSET", "k", "w"],
        vec!["GETSET", "zz", "w"],
        vec!["DEL", "zz"],
        vec!["APPEND", "k", "xyz"],
        vec!["STRLEN", "k"],
        vec!["STRLEN", "nope"],
        vec!["MSET", "a", "1", "b", "2"],
        vec!["MSET", "a"],
        vec!["MSET", "a", "1", "b"],
        vec!["MGET", "a", "b", "c"],
        vec!["INCR", "a"],
        vec!["INCRBY", "a", "-5"],
        vec!["DECR", "a"],
        vec!["DECRBY", "a", "3"],
        vec!["INCR", "k"],
        vec!["INCRBY", "a", "x"],
        vec!["INCRBY", "a", "1.5"],
        vec!["SET", "m", "9223372036854775807"],
        vec!["INCR", "m"],
        vec!["DECRBY", "a", "-9223372036854775808"],
        vec!["SET", "n", "-9223372036854775808"],
        vec!["DECR", "n"],
        vec!["INCRBY", "a", " 1"],
        vec!["SET", "sp", " 12"],
        vec!["INCR", "sp"],
        vec!["SET", "lz", "012"],
        vec!["INCR", "lz"],
        vec!["EXISTS", "a", "a", "nope"],
        vec!["DEL", "a", "nope", "b"],
        vec!["TTL", "k"],
        vec!["PTTL", "nope"],
        vec!["EXPIRE", "k", "100"],
        vec!["TTL", "k"],
        vec!["EXPIRE", "k", "x"],
        vec!["EXPIRE", "k", "100", "NX"],
        vec!["EXPIRE", "k", "200", "GT"],
        vec!["EXPIRE", "k", "50", "LT"],
        vec!["EXPIRE", "k", "50", "NX", "XX"],
        vec!["EXPIRE", "k", "50", "GT", "LT"],
        vec!["EXPIRE", "k", "50", "FOO"],
        vec!["EXPIRE", "nope", "10"],
        vec!["EXPIRE", "k", "9223372036854775807"],
        vec!["PEXPIRE", "k", "9223372036854775807"],
        vec!["PERSIST", "k"],
        vec!["PERSIST", "k"],
        vec!["TTL", "k"],
        vec!["EXPIREAT", "k", "1"],
        vec!["EXISTS", "k"],
        vec!["KEYS", "l*"],
        vec!["DBSIZE"],
        vec!["SCAN", "x"],
        vec!["SCAN", "0", "COUNT", "0"],
        vec!["SCAN", "0", "COUNT", "x"],
        vec!["SCAN", "0", "FOO", "1"],
        vec!["SCAN", "0", "MATCH"],
        vec!["FLUSHDB", "x"],
        vec!["SELECT", "0"],
        vec!["SELECT", "x"],
        vec!["NOSUCH"],
        vec!["NOSUCH", "a", "b"],
        vec!["nosuch", &long, "b"],
        vec!["GET"],
        vec!["get", "a", "b"],
        vec!["DBSIZE", "x"],
        vec!["CONFIG", "GET", "save"],
        vec!["CONFIG", "GET"],
        vec!["CONFIG", "FOO"],
        vec!["COMMAND", "FOO"],
        vec!["BGREWRITEAOF", "x"],
        vec!["SET", "e", ""],
        vec!["GET", "e"],
        vec!["APPEND", "e", ""],
        vec!["INCRBY", "a", "9223372036854775807"],
        vec!["INCRBY", "a", "9223372036854775807"],
        vec!["SET", "x", "1", "PXAT", "1"],
        vec!["EXISTS", "x"],
        vec!["MGET"],
        vec!["TTL"],
        vec!["FLUSHDB", "ASYNC"],
        // Data types (hashes, sets, lists, sorted sets, more strings and keys).
        vec!["FLUSHDB"],
        vec!["hset", "h", "a", "1", "b"],
        vec!["hset", "h", "a", "1", "b", "2"],
        vec!["hget", "h", "a"],
        vec!["hmget", "h", "a", "b", "c"],
        vec!["hincrby", "h", "a", "x"],
        vec!["hset", "h", "s", "abc"],
        vec!["hincrby", "h", "s", "1"],
        vec!["hincrbyfloat", "h", "s", "1"],
        vec!["hincrbyfloat", "h", "a", "x"],
        vec!["hset", "h", "big", "9223372036854775807"],
        vec!["hincrby", "h", "big", "1"],
        vec!["hincrbyfloat", "h", "a", "1.5"],
        vec!["hincrbyfloat", "h", "a", "-2.5"],
        vec!["hincrbyfloat", "h", "a", "10.1"],
        vec!["hincrby", "h", "n", "5"],
        vec!["hrandfield", "h", "0"],
        vec!["hrandfield", "h", "x"],
        vec!["hrandfield", "h", "-3", "withvalues", "foo"],
        vec!["hrandfield", "nokey", "-5"],
        vec!["hrandfield", "nokey"],
        vec!["hrandfield", "h", "2", "foo"],
        vec!["hscan", "h", "0", "count", "0"],
        vec!["hscan", "h", "abc"],
        vec!["hmget", "h"],
        vec!["hstrlen", "h", "a"],
        vec!["set", "str", "x"],
        vec!["hget", "str", "a"],
        vec!["hgetall", "str"],
        vec!["hset", "str", "a", "b"],
        vec!["hlen", "h"],
        vec!["hexists", "h", "a"],
        vec!["hexists", "h", "zz"],
        vec!["hdel", "h", "a", "zz"],
        vec!["hdel", "h", "a"],
        vec!["hsetnx", "h", "a", "5"],
        vec!["hsetnx", "h", "a", "6"],
        vec!["hkeys", "nokey"],
        vec!["hvals", "nokey"],
        vec!["hgetall", "nokey"],
        vec!["hset", "h2", "f", "v"],
        vec!["hgetall", "h2"],
        vec!["hkeys", "h2"],
        vec!["hvals", "h2"],
        vec!["hrandfield", "h2"],
        vec!["hrandfield", "h2", "5"],
        vec!["hrandfield", "h2", "5", "withvalues"],
        vec!["hrandfield", "h2", "-2", "withvalues"],
        vec!["hscan", "h2", "0"],
        vec!["hscan", "h2", "0", "match", "x*"],
        vec!["hdel", "h2", "f"],
        vec!["exists", "h2"],
        vec!["type", "h"],
        vec!["type", "str"],
        vec!["type", "nokey"],
        vec!["hmset", "h", "x", "1", "y"],
        vec!["hmset", "h", "x", "1", "y", "2"],
        vec!["hincrbyfloat", "h", "x", "inf"],
        vec!["hincrbyfloat", "h", "x", "nan"],
        vec!["hincrby", "h", "x", "1.5"],
        vec!["hlen", "str"],
        vec!["hstrlen", "str", "a"],
        vec!["FLUSHDB"],
        vec!["sadd", "s", "a", "b", "c"],
        vec!["sadd", "s", "a"],
        vec!["scard", "s"],
        vec!["sismember", "s", "a"],
        vec!["sismember", "s", "z"],
        vec!["smismember", "s", "a", "z", "b"],
        vec!["srem", "s", "a", "z"],
        vec!["srem", "s", "z"],
        vec!["smembers", "nokey"],
        vec!["sadd", "one", "x"],
        vec!["smembers", "one"],
        vec!["spop", "nokey"],
        vec!["spop", "nokey", "3"],
        vec!["spop", "s", "0"],
        vec!["spop", "s", "-1"],
        vec!["spop", "s", "x"],
        vec!["spop", "s", "1", "2"],
        vec!["srandmember", "nokey"],
        vec!["srandmember", "nokey", "5"],
        vec!["srandmember", "one"],
        vec!["srandmember", "one", "5"],
        vec!["srandmember", "one", "-3"],
        vec!["srandmember", "s", "x"],
        vec!["srandmember", "s", "1", "2"],
        vec!["srandmember", "s", "-9223372036854775808"],
        vec!["sadd", "a", "1", "2", "3"],
        vec!["sadd", "b", "2", "3", "4"],
        vec!["sinter", "a", "b", "nokey"],
        vec!["sinterstore", "d", "a", "b"],
        vec!["scard", "d"],
        vec!["sismember", "d", "2"],
        vec!["sunionstore", "d", "a", "b"],
        vec!["scard", "d"],
        vec!["sdiffstore", "d", "a", "b"],
        vec!["smembers", "d"],
        vec!["sdiffstore", "d", "nokey"],
        vec!["exists", "d"],
        vec!["sintercard", "2", "a", "b"],
        vec!["sintercard", "2", "a", "b", "limit", "1"],
        vec!["sintercard", "0", "a", "b"],
        vec!["sintercard", "3", "a", "b"],
        vec!["sintercard", "2", "a", "b", "limit", "-1"],
        vec!["sintercard", "2", "a", "b", "foo"],
        vec!["sintercard", "x", "a"],
        vec!["sadd", "str", "a"],
        vec!["sinter", "a", "str"],
        vec!["sinter", "nokey", "str"],
        vec!["sunion", "one", "nokey"],
        vec!["sdiff", "nokey", "str"],
        vec!["smove", "a", "b", "1"],
        vec!["smove", "a", "b", "1"],
        vec!["smove", "nokey", "str", "1"],
        vec!["smove", "a", "str", "2"],
        vec!["smove", "str", "a", "2"],
        vec!["smove", "a", "a", "2"],
        vec!["smove", "a", "a", "9"],
        vec!["sismember", "b", "1"],
        vec!["sscan", "one", "0"],
        vec!["sscan", "one", "0", "match", "y"],
        vec!["sscan", "one", "x"],
        vec!["sinterstore", "str", "a", "b"],
        vec!["type", "str"],
        vec!["sinter"],
        vec!["sadd"],
        vec!["FLUSHDB"],
        vec!["rpush", "l", "a", "b", "c", "a"],
        vec!["lpop", "l", "0"],
        vec!["lpop", "nokey", "2"],
        vec!["lpop", "nokey", "0"],
        vec!["rpop", "l", "0"],
        vec!["lpop", "l", "1"],
        vec!["lrange", "l", "0", "-1"],
        vec!["lpos", "l", "zz", "count", "1"],
        vec!["lpos", "l", "a", "rank", "0"],
        vec!["lpos", "l", "a", "count", "-1"],
        vec!["lpos", "l", "a", "maxlen", "-1"],
        vec!["lpos", "l", "a", "rank", "-9223372036854775808"],
        vec!["lset", "nokey", "0", "a"],
        vec!["lset", "l", "9", "a"],
        vec!["linsert", "l", "middle", "a", "x"],
        vec!["linsert", "l", "before", "zz", "x"],
        vec!["lmove", "l", "l2", "left", "up"],
        vec!["lrange", "l", "0", "x"],
        vec!["lindex", "l", "x"],
        vec!["ltrim", "l", "a", "1"],
        vec!["lrem", "l", "x", "a"],
        vec!["lpos", "l", "a", "foo", "1"],
        vec!["lpos", "l", "zz"],
        vec!["lpos", "l", "a", "count", "0", "rank", "-1"],
        vec!["del", "l"],
        vec!["rpush", "l", "a", "b", "c", "a", "b", "c", "a"],
        vec!["lpos", "l", "a"],
        vec!["lpos", "l", "a", "rank", "2"],
        vec!["lpos", "l", "a", "rank", "-1"],
        vec!["lpos", "l", "a", "count", "0"],
        vec!["lpos", "l", "a", "count", "2", "rank", "-1"],
        vec!["lpos", "l", "a", "maxlen", "3", "count", "0"],
        vec!["lpos", "l", "a", "rank", "9"],
        vec!["lpos", "l", "a", "count", "0", "rank", "9"],
        vec!["lrem", "l", "-2", "a"],
        vec!["lrange", "l", "0", "-1"],
        vec!["lrem", "l", "0", "b"],
        vec!["lrange", "l", "0", "-1"],
        vec!["lrem", "l", "1", "c"],
        vec!["lrange", "l", "0", "-1"],
        vec!["linsert", "l", "before", "c", "X"],
        vec!["linsert", "l", "after", "c", "Y"],
        vec!["lrange", "l", "0", "-1"],
        vec!["lset", "l", "-1", "Z"],
        vec!["lindex", "l", "-1"],
        vec!["lindex", "l", "100"],
        vec!["lindex", "l", "-100"],
        vec!["ltrim", "l", "1", "-2"],
        vec!["lrange", "l", "0", "-1"],
        vec!["ltrim", "l", "5", "3"],
        vec!["exists", "l"],
        vec!["lpush", "l", "1", "2", "3"],
        vec!["rpush", "l", "4", "5"],
        vec!["lpushx", "nokey", "a"],
        vec!["rpushx", "nokey", "a"],
        vec!["lpushx", "l", "0"],
        vec!["llen", "l"],
        vec!["lrange", "l", "-100", "100"],
        vec!["lrange", "l", "2", "1"],
        vec!["lrange", "l", "-2", "-1"],
        vec!["lmove", "l", "l2", "left", "right"],
        vec!["lmove", "l", "l2", "right", "left"],
        vec!["lrange", "l2", "0", "-1"],
        vec!["rpoplpush", "l", "l2"],
        vec!["rpoplpush", "nokey", "l2"],
        vec!["lmove", "l", "l", "left", "left"],
        vec!["lrange", "l", "0", "-1"],
        vec!["set", "str", "x"],
        vec!["lpush", "str", "a"],
        vec!["rpoplpush", "l", "str"],
        vec!["lrange", "l", "0", "-1"],
        vec!["rpoplpush", "str", "l"],
        vec!["lpop", "str"],
        vec!["lpop", "l", "1", "2"],
        vec!["lpop"],
        vec!["llen", "str"],
        vec!["lpop", "l", "100"],
        vec!["exists", "l"],
        vec!["rpush", "r", "1", "2", "3"],
        vec!["rpop", "r", "2"],
        vec!["rpop", "r"],
        vec!["rpop", "r"],
        vec!["rpop", "r"],
        vec!["FLUSHDB"],
        vec!["zadd", "z", "1", "a", "2", "b", "3", "c"],
        vec!["zrange", "z", "0", "-1", "limit", "0", "1"],
        vec!["zrange", "z", "0", "-1", "bylex", "withscores"],
        vec!["zrange", "z", "0", "-1", "byscore", "limit", "-1", "1"],
        vec!["zrange", "z", "0", "-1", "byscore", "limit", "1", "-1"],
        vec!["zrangebyscore", "z", "x", "1"],
        vec!["zrangebylex", "z", "a", "b"],
        vec!["zrange", "z", "(1", "+inf", "byscore", "rev"],
        vec![
            "zrange", "z", "+inf", "(1", "byscore", "rev", "limit", "1", "1",
        ],
        vec!["zrange", "z", "0", "-1", "foo"],
        vec!["zpopmin", "z", "-1"],
        vec!["zpopmin", "nokey"],
        vec!["zpopmin", "nokey", "2"],
        vec!["zadd", "z", "nan", "a"],
        vec!["zadd", "z", "1"],
        vec!["zadd", "z", "incr", "1", "a", "2", "b"],
        vec!["zadd", "z", "nx", "xx", "1", "a"],
        vec!["zadd", "z", "gt", "lt", "1", "a"],
        vec!["zadd", "z", "x", "a"],
        vec!["zincrby", "z", "x", "a"],
        vec!["zadd", "z", "inf", "a"],
        vec!["zincrby", "z", "-inf", "a"],
        vec!["zunionstore", "d", "1", "z", "weights", "x"],
        vec!["zunionstore", "d", "1", "z", "aggregate", "foo"],
        vec!["zunionstore", "d", "1", "z", "weights", "1", "2"],
        vec!["zrandmember", "z", "1", "withscores", "x"],
        vec!["zrangebyscore", "z", "-inf", "+inf", "limit", "0"],
        vec![
            "zrangebyscore",
            "z",
            "-inf",
            "+inf",
            "withscores",
            "limit",
            "0",
            "1",
            "foo",
        ],
        vec!["zrevrange", "z", "0", "-1", "withscores"],
        vec!["zrange", "z", "0", "-1", "rev", "byscore"],
        vec!["zrangebylex", "z", "-", "+", "withscores"],
        vec!["zlexcount", "z", "a", "b"],
        vec!["zscore", "z", "nope"],
        vec!["zmscore", "z", "a", "nope"],
        vec!["zmscore", "nokey", "a"],
        vec!["zadd", "z", "xx", "5", "nope"],
        vec!["zadd", "z", "xx", "incr", "5", "nope"],
        vec!["zadd", "z", "nx", "incr", "5", "a"],
        vec!["zadd", "nokey2", "xx", "1", "a"],
        vec!["exists", "nokey2"],
        vec!["zremrangebyrank", "z", "x", "1"],
        vec!["zremrangebyscore", "z", "x", "1"],
        vec!["zremrangebylex", "z", "x", "1"],
        vec!["zinterstore", "d", "0", "z"],
        vec!["zdiffstore", "d", "2", "z"],
        vec!["zrange", "z", "1", "1", "byscore", "limit", "0", "-5"],
        vec!["zunionstore", "d", "x", "a"],
        vec!["zinter", "x", "a"],
        vec!["zinter", "0", "a"],
        vec!["zinter", "3", "a"],
        vec!["zunionstore", "d", "0", "a"],
        vec!["FLUSHDB"],
        vec![
            "zadd", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
        vec!["zadd", "z", "ch", "1", "a", "2.5", "b", "10", "f"],
        vec!["zadd", "z", "gt", "ch", "0", "a", "3", "b"],
        vec!["zadd", "z", "lt", "ch", "0", "a", "9", "b"],
        vec!["zadd", "z", "xx", "7", "g"],
        vec!["zadd", "z", "nx", "7", "a", "8", "h"],
        vec!["zadd", "z", "incr", "1.1", "a"],
        vec!["zincrby", "z", "0.2", "a"],
        vec!["zincrby", "z", "1e308", "big"],
        vec!["zincrby", "z", "1e308", "big"],
        vec!["zscore", "z", "big"],
        vec!["zcard", "z"],
        vec!["zrank", "z", "a"],
        vec!["zrevrank", "z", "a"],
        vec!["zrank", "z", "nope"],
        vec!["zrange", "z", "0", "-1", "withscores"],
        vec!["zrange", "z", "2", "4"],
        vec!["zrange", "z", "-3", "-1", "withscores"],
        vec!["zrange", "z", "5", "100"],
        vec!["zrange", "z", "0", "-1", "rev", "withscores"],
        vec!["zrevrange", "z", "1", "2"],
        vec!["zrangebyscore", "z", "2", "5"],
        vec!["zrangebyscore", "z", "(2", "5", "withscores"],
        vec!["zrangebyscore", "z", "-inf", "+inf", "limit", "2", "3"],
        vec!["zrangebyscore", "z", "(1", "(5"],
        vec!["zrevrangebyscore", "z", "5", "2"],
        vec![
            "zrevrangebyscore",
            "z",
            "+inf",
            "-inf",
            "limit",
            "1",
            "2",
            "withscores",
        ],
        vec!["zrevrangebyscore", "z", "2", "5"],
        vec!["zrange", "z", "2", "5", "byscore"],
        vec!["zrange", "z", "5", "2", "byscore", "rev", "limit", "0", "2"],
        vec!["zcount", "z", "-inf", "+inf"],
        vec!["zcount", "z", "(2", "5"],
        vec!["zcount", "z", "5", "2"],
        vec!["zrem", "z", "a", "nope"],
        vec!["zrem", "z", "nope"],
        vec![
            "zadd", "lz", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "f",
        ],
        vec!["zrangebylex", "lz", "-", "+"],
        vec!["zrangebylex", "lz", "[b", "(e"],
        vec!["zrangebylex", "lz", "(b", "[e", "limit", "1", "2"],
        vec!["zrevrangebylex", "lz", "+", "-"],
        vec!["zrevrangebylex", "lz", "[e", "(b"],
        vec!["zrange", "lz", "[e", "(b", "bylex", "rev"],
        vec!["zrange", "lz", "(a", "[c", "bylex"],
        vec!["zlexcount", "lz", "-", "+"],
        vec!["zlexcount", "lz", "[b", "[d"],
        vec!["zlexcount", "lz", "[d", "[b"],
        vec!["zremrangebylex", "lz", "[a", "[b"],
        vec!["zrange", "lz", "0", "-1"],
        vec!["zremrangebyrank", "lz", "0", "0"],
        vec!["zrange", "lz", "0", "-1"],
        vec!["zremrangebyrank", "lz", "-2", "-1"],
        vec!["zrange", "lz", "0", "-1"],
        vec!["zremrangebyscore", "z", "2", "4"],
        vec!["zrange", "z", "0", "-1", "withscores"],
        vec!["zpopmin", "z"],
        vec!["zpopmax", "z"],
        vec!["zpopmin", "z", "2"],
        vec!["zpopmax", "z", "0"],
        vec!["zpopmin", "z", "100"],
        vec!["exists", "z"],
        vec!["zadd", "a", "1", "x", "2", "y", "3", "z"],
        vec!["zadd", "b", "10", "y", "20", "z", "30", "w"],
        vec!["sadd", "s", "z", "w", "q"],
        vec!["zunionstore", "u", "2", "a", "b"],
        vec!["zrange", "u", "0", "-1", "withscores"],
        vec![
            "zunionstore",
            "u",
            "2",
            "a",
            "b",
            "weights",
            "2",
            "3",
            "aggregate",
            "max",
        ],
        vec!["zrange", "u", "0", "-1", "withscores"],
        vec!["zinterstore", "i", "2", "a", "b", "aggregate", "min"],
        vec!["zrange", "i", "0", "-1", "withscores"],
        vec!["zinterstore", "i", "3", "a", "b", "s"],
        vec!["zrange", "i", "0", "-1", "withscores"],
        vec![
            "zunionstore",
            "u",
            "3",
            "a",
            "b",
            "s",
            "weights",
            "1",
            "1",
            "0",
        ],
        vec!["zrange", "u", "0", "-1", "withscores"],
        vec!["zdiffstore", "df", "2", "a", "b"],
        vec!["zrange", "df", "0", "-1", "withscores"],
        vec!["zunion", "2", "a", "b", "withscores"],
        vec!["zinter", "2", "a", "b"],
        vec!["zdiff", "2", "a", "s", "withscores"],
        vec!["zdiff", "2", "a", "b", "weights", "1", "1"],
        vec!["zunionstore", "e", "1", "nokey"],
        vec!["exists", "e"],
        vec!["set", "str", "x"],
        vec!["zadd", "str", "1", "a"],
        vec!["zunionstore", "u", "2", "a", "str"],
        vec!["zrange", "str", "0", "-1"],
        vec!["zscore", "str", "a"],
        vec!["zrandmember", "nokey"],
        vec!["zrandmember", "nokey", "3"],
        vec!["zadd", "one", "5", "m"],
        vec!["zrandmember", "one"],
        vec!["zrandmember", "one", "3", "withscores"],
        vec!["zscan", "one", "0"],
        vec!["zadd", "inf", "-inf", "m1", "+inf", "m2"],
        vec!["zrange", "inf", "0", "-1", "withscores"],
        vec!["zunionstore", "ii", "2", "inf", "inf", "weights", "0", "1"],
        vec!["zrange", "ii", "0", "-1", "withscores"],
        vec![
            "zadd",
            "inf",
            "1.5e-5",
            "m3",
            "123456789.125",
            "m4",
            "-0.0",
            "m5",
        ],
        vec!["zrange", "inf", "0", "-1", "withscores"],
        vec!["zadd", "sc", "1", "a"],
        vec!["zadd", "sc", "incr", "-inf", "a"],
        vec!["zadd", "sc", "incr", "+inf", "a"],
        vec!["zrange", "sc", "0", "-1", "withscores"],
        vec!["zrangebyscore", "a", "1", "x"],
        vec!["zrangebyscore", "a", "[1", "2"],
        vec!["zrangebylex", "a", "(a", "+z"],
        vec!["type", "a"],
        vec!["FLUSHDB"],
        vec!["setex", "k", "0", "v"],
        vec!["setex", "k", "x", "v"],
        vec!["setex", "k", "-1", "v"],
        vec!["psetex", "k", "0", "v"],
        vec!["setex", "k", "10", "v"],
        vec!["ttl", "k"],
        vec!["getex", "k", "ex", "0"],
        vec!["getex", "k", "ex", "100", "px", "100"],
        vec!["getex", "k", "persist"],
        vec!["ttl", "k"],
        vec!["getex", "k", "foo"],
        vec!["getex", "nokey", "ex", "10"],
        vec!["getex", "k", "exat", "1"],
        vec!["exists", "k"],
        vec!["set", "k", "hello"],
        vec!["getrange", "k", "0", "-1"],
        vec!["getrange", "k", "-3", "-1"],
        vec!["getrange", "k", "5", "3"],
        vec!["getrange", "k", "x", "1"],
        vec!["getrange", "nokey", "0", "1"],
        vec!["getrange", "k", "-1", "-5"],
        vec!["getrange", "k", "0", "1000"],
        vec!["getrange", "k", "-1000", "1000"],
        vec!["getrange", "k", "9223372036854775807", "-1"],
        vec!["setrange", "k", "-1", "x"],
        vec!["setrange", "k", "536870912", "x"],
        vec!["setrange", "nokey", "0", ""],
        vec!["exists", "nokey"],
        vec!["setrange", "k", "10", "X"],
        vec!["get", "k"],
        vec!["setbit", "b", "7", "1"],
        vec!["setbit", "b", "7", "0"],
        vec!["setbit", "b", "7", "1"],
        vec!["setbit", "b", "100", "1"],
        vec!["setbit", "b", "7", "2"],
        vec!["setbit", "b", "-1", "1"],
        vec!["setbit", "b", "4294967296", "1"],
        vec!["getbit", "b", "7"],
        vec!["getbit", "b", "1000"],
        vec!["getbit", "b", "x"],
        vec!["bitcount", "b"],
        vec!["bitcount", "b", "0", "-1", "bit"],
        vec!["bitcount", "b", "0"],
        vec!["bitcount", "b", "0", "0", "foo"],
        vec!["bitcount", "b", "0", "0", "byte"],
        vec!["bitcount", "b", "1", "-1"],
        vec!["bitcount", "b", "5", "100", "bit"],
        vec!["bitpos", "b", "1"],
        vec!["bitpos", "b", "0"],
        vec!["bitpos", "b", "1", "0", "-1", "bit"],
        vec!["bitpos", "b", "1", "1"],
        vec!["bitpos", "b", "1", "8", "200", "bit"],
        vec!["bitpos", "b", "0", "0", "-1", "bit"],
        vec!["bitpos", "b", "2"],
        vec!["bitpos", "b", "x"],
        vec!["bitpos", "b", "1", "0", "0", "foo"],
        vec!["bitcount", "b", "-100", "-50"],
        vec!["bitcount", "nokey"],
        vec!["get", "b"],
        vec!["set", "e", ""],
        vec!["bitpos", "e", "0"],
        vec!["bitcount", "b", "x", "1"],
        vec!["bitpos", "b", "1", "x"],
        vec!["bitpos", "x", "0"],
        vec!["bitpos", "x", "0", "0"],
        vec!["bitpos", "x", "0", "0", "-1"],
        vec!["bitpos", "x", "0", "0", "-1", "bit"],
        vec!["bitpos", "nokey", "0"],
        vec!["bitpos", "nokey", "1"],
        vec!["lcs", "a", "b"],
        vec!["mset", "a", "ohmytext", "b", "mynewtext"],
        vec!["lcs", "a", "b"],
        vec!["lcs", "a", "b", "len"],
        vec!["lcs", "a", "b", "idx"],
        vec!["lcs", "a", "b", "idx", "minmatchlen", "4", "withmatchlen"],
        vec!["lcs", "a", "b", "idx", "withmatchlen"],
        vec!["lcs", "a", "b", "foo"],
        vec!["lcs", "a", "b", "len", "idx"],
        vec!["lpush", "l", "y"],
        vec!["lcs", "a", "l"],
        vec!["lcs", "a", "nokey"],
        vec!["msetnx", "a", "1", "c", "2"],
        vec!["msetnx", "c", "1", "d", "2"],
        vec!["msetnx", "c"],
        vec!["getdel", "c"],
        vec!["getdel", "c"],
        vec!["getdel", "l"],
        vec!["setnx", "c", "5"],
        vec!["setnx", "c", "6"],
        vec!["set", "f", "10.5"],
        vec!["incrbyfloat", "f", "0.1"],
        vec!["incrbyfloat", "f", "-10.6"],
        vec!["incrbyfloat", "f", "inf"],
        vec!["incrbyfloat", "f", "nan"],
        vec!["incrbyfloat", "f", "abc"],
        vec!["set", "g", "abc"],
        vec!["incrbyfloat", "g", "1"],
        vec!["set", "n", "3.0"],
        vec!["incrbyfloat", "n", "1"],
        vec!["incrbyfloat", "n", "1.5e2"],
        vec!["incrbyfloat", "l", "1"],
        vec!["incrbyfloat", "nk2", "-1.2"],
        vec!["incrbyfloat", "nk2", "1.2"],
        vec!["rename", "nokey", "x"],
        vec!["rename", "a", "a"],
        vec!["renamenx", "a", "b"],
        vec!["renamenx", "a", "z"],
        vec!["expire", "z", "100"],
        vec!["rename", "z", "z3"],
        vec!["ttl", "z3"],
        vec!["copy", "z3", "z2"],
        vec!["copy", "z3", "z2"],
        vec!["copy", "z3", "z2", "replace"],
        vec!["ttl", "z2"],
        vec!["copy", "z3", "z2", "foo"],
        vec!["copy", "z3", "z2", "db", "0"],
        vec!["copy", "z3", "z3"],
        vec!["copy", "z3", "z2", "db", "x"],
        vec!["pexpiretime", "nokey"],
        vec!["touch", "z3", "nokey", "z2"],
        vec!["unlink", "z3", "nokey", "z2"],
        vec!["set", "k", "v"],
        vec!["pexpiretime", "k"],
        vec!["getex", "k", "ex", "9223372036854775807"],
        vec!["rename", "l", "l2"],
        vec!["type", "l2"],
        vec!["lrange", "l2", "0", "-1"],
        vec!["substr", "b", "0", "1"],
        vec!["FLUSHDB"],
        vec!["zadd", "a", "1", "x", "2", "y", "3", "z"],
        vec!["zadd", "b", "2", "y", "3", "z"],
        vec!["zintercard", "2", "a", "b"],
        vec!["zintercard", "2", "a", "b", "limit", "1"],
        vec!["zintercard", "0", "a"],
        vec!["zintercard", "1", "a", "limit", "x"],
        vec!["zintercard", "1", "a", "foo"],
        vec!["zintercard", "3", "a", "b"],
        vec!["zmpop", "2", "nokey", "a", "min"],
        vec!["zmpop", "1", "a", "max", "count", "2"],
        vec!["zmpop", "1", "nokey", "min"],
        vec!["zmpop", "0", "a", "min"],
        vec!["zmpop", "1", "a", "foo"],
        vec!["zmpop", "1", "a", "min", "count", "0"],
        vec!["zmpop", "1", "a", "min", "count", "x"],
        vec!["rpush", "l", "a", "b", "c"],
        vec!["lmpop", "1", "l", "left", "count", "2"],
        vec!["lmpop", "2", "nokey", "l", "right"],
        vec!["lmpop", "1", "nokey", "left"],
        vec!["lmpop", "1", "l", "up"],
        vec!["lmpop", "1", "l", "left", "count", "0"],
        vec!["lmpop", "1", "l", "left", "count", "1", "count", "2"],
        vec!["lmpop", "1", "a", "left"],
        vec!["zmpop", "1", "l", "min"],
        vec!["set", "s", "x"],
        vec!["zmpop", "1", "s", "min"],
        vec!["lmpop", "1", "s", "left"],
        vec!["sadd", "st", "a"],
        vec!["sintercard", "1", "st", "limit", "x"],
        vec!["FLUSHDB"],
        vec!["blpop", "l", "x"],
        vec!["blpop", "l", "-1"],
        vec!["blpop", "l", "0.01"],
        vec!["set", "s", "v"],
        vec!["blpop", "s", "0.01"],
        vec!["blmove", "a", "b", "up", "left", "0"],
        vec!["bzpopmin", "z", "0.01"],
        vec!["rpush", "l", "a"],
        vec!["blpop", "nokey", "l", "0"],
        vec!["zadd", "z", "1", "a"],
        vec!["bzpopmax", "z", "0"],
        vec!["blmove", "l2", "d", "left", "right", "0.01"],
        vec!["rpush", "l2", "x"],
        vec!["brpoplpush", "l2", "d", "0"],
        vec!["lrange", "d", "0", "-1"],
        vec!["multi"],
        vec!["blpop", "l", "0"],
        vec!["exec"],
        // SORT and SORT_RO: numbers, ALPHA, LIMIT, BY, GET, STORE, errors.
        vec!["FLUSHDB"],
        vec!["rpush", "l", "3", "1", "2", "10", "-5", "1.5", "01"],
        vec!["sort", "l"],
        vec!["sort", "l", "desc"],
        vec!["sort", "l", "asc", "desc", "asc"],
        vec!["sort", "l", "limit", "1", "2"],
        vec!["sort", "l", "limit", "-1", "2"],
        vec!["sort", "l", "limit", "2", "-1"],
        vec!["sort", "l", "limit", "2", "-7"],
        vec!["sort", "l", "limit", "10", "5"],
        vec!["sort", "l", "limit", "6", "5"],
        vec!["sort", "l", "limit", "0", "0"],
        vec!["sort", "l", "limit", "0", "9223372036854775807"],
        vec![
            "sort",
            "l",
            "limit",
            "9223372036854775807",
            "9223372036854775807",
        ],
        vec!["sort", "l", "limit", "x", "1"],
        vec!["sort", "l", "limit", "1", "1.5"],
        vec!["sort", "l", "limit", "1"],
        vec!["sort", "l", "limit", "0", "2", "limit", "3", "2"],
        vec!["sort", "l", "alpha"],
        vec!["sort", "l", "alpha", "desc", "limit", "0", "3"],
        vec!["sort", "l", "foo"],
        vec!["sort", "l", "store"],
        vec!["sort", "l", "by"],
        vec!["sort", "l", "get"],
        vec!["sort", "l", "by", "nosort", "foo", "bar"],
        vec!["sort_ro", "l", "store", "d"],
        vec!["sort_ro", "l", "desc", "limit", "1", "3"],
        vec!["sort_ro"],
        vec!["sort"],
        vec!["sort", "nokey"],
        vec!["sort", "nokey", "limit", "0", "5"],
        vec!["sort", "nokey", "get", "#"],
        vec![
            "mset", "w_3", "30", "w_1", "10", "w_2", "5", "w_10", "-1", "w_-5", "7",
        ],
        vec!["mset", "w_01", "2.5", "x_1.5", "abc"],
        vec!["sort", "l", "by", "w_*"],
        vec!["sort", "l", "by", "w_*", "desc"],
        vec!["sort", "l", "by", "w_*", "limit", "2", "3"],
        vec!["sort", "l", "by", "x_*"],
        vec!["sort", "l", "by", "x_*", "alpha"],
        vec![
            "sort", "l", "by", "w_*", "get", "#", "get", "w_*", "get", "none_*",
        ],
        vec!["sort", "l", "get", "nostar"],
        vec!["sort", "l", "get", "#", "limit", "0", "2", "get", "w_*"],
        vec!["hset", "h_1", "f", "b", "g", "9"],
        vec!["hset", "h_2", "f", "a", "g", "8"],
        vec!["hset", "h_3", "f", "c"],
        vec!["sort", "l", "by", "h_*->f", "alpha"],
        vec!["sort", "l", "by", "h_*->f", "alpha", "desc"],
        vec!["sort", "l", "by", "h_*->g"],
        vec![
            "sort", "l", "get", "h_*->f", "get", "h_*->g", "get", "h_*->",
        ],
        vec!["sort", "l", "get", "h_*", "get", "w_*->f"],
        vec!["sort", "l", "by", "nosort"],
        vec!["sort", "l", "by", "nosort", "desc"],
        vec!["sort", "l", "by", "nosort", "limit", "1", "2"],
        vec!["sort", "l", "by", "nosort", "desc", "limit", "1", "2"],
        vec!["sort", "l", "by", "nosort", "limit", "7", "2"],
        vec!["sort", "l", "by", "nosort", "get", "w_*"],
        vec!["sort", "l", "by", "nosort", "by", "w_*"],
        vec!["sort", "l", "by", "w_*", "by", "nosort"],
        vec!["sort", "l", "store", "d"],
        vec!["lrange", "d", "0", "-1"],
        vec!["type", "d"],
        vec!["sort", "l", "by", "nosort", "desc", "store", "d"],
        vec!["lrange", "d", "0", "-1"],
        vec!["sort", "l", "get", "#", "get", "h_*->f", "store", "d"],
        vec!["lrange", "d", "0", "-1"],
        vec!["expire", "d", "100"],
        vec!["sort", "l", "limit", "0", "2", "store", "d"],
        vec!["ttl", "d"],
        vec!["lrange", "d", "0", "-1"],
        vec!["sort", "l", "store", "d1", "store", "d2"],
        vec!["exists", "d1", "d2"],
        vec!["sort", "nokey", "store", "d"],
        vec!["exists", "d"],
        vec!["sort", "l", "limit", "0", "0", "store", "d2"],
        vec!["exists", "d2"],
        vec!["set", "str", "x"],
        vec!["sort", "str"],
        vec!["sort", "str", "store", "d"],
        vec!["sort", "l", "store", "str"],
        vec!["type", "str"],
        vec!["sort", "h_1"],
        vec!["sort_ro", "h_1"],
        vec!["rpush", "bad", "1", "x", "2"],
        vec!["sort", "bad"],
        vec!["sort", "bad", "store", "d"],
        vec!["exists", "d"],
        vec!["sort", "bad", "alpha"],
        vec!["sort", "bad", "by", "nosort"],
        vec!["sort", "bad", "limit", "0", "1"],
        vec!["sadd", "si", "5", "3", "9", "1", "-2"],
        vec!["sort", "si"],
        vec!["sort", "si", "desc", "limit", "1", "2"],
        vec!["sort", "si", "by", "nosort"],
        vec!["sort", "si", "by", "nosort", "desc"],
        vec!["sort", "si", "by", "nosort", "limit", "1", "2"],
        vec!["sort", "si", "by", "nosort", "store", "d"],
        vec!["lrange", "d", "0", "-1"],
        vec!["sort", "si", "by", "w_*", "get", "#", "get", "w_*"],
        vec!["sadd", "ss", "b", "a", "c", "10", "9"],
        vec!["sort", "ss", "alpha"],
        vec!["sort", "ss", "alpha", "desc"],
        vec!["sort", "ss"],
        vec!["sort", "ss", "by", "nosort", "store", "d"],
        vec!["lrange", "d", "0", "-1"],
        vec![
            "sort", "ss", "by", "nosort", "desc", "limit", "1", "2", "store", "d",
        ],
        vec!["lrange", "d", "0", "-1"],
        vec!["zadd", "z", "1", "c", "2", "b", "3", "a", "4", "10"],
        vec!["sort", "z", "alpha"],
        vec!["sort", "z", "by", "nosort"],
        vec!["sort", "z", "by", "nosort", "desc"],
        vec!["sort", "z", "by", "nosort", "limit", "1", "2"],
        vec!["sort", "z", "by", "nosort", "desc", "limit", "1", "5"],
        vec!["sort", "z", "by", "nosort", "limit", "4", "1"],
        vec!["sort", "z", "by", "nosort", "store", "d"],
        vec!["lrange", "d", "0", "-1"],
        vec!["sort", "z"],
        vec!["object", "encoding", "z"],
        vec!["zadd", "z2", "1", "5", "2", "3"],
        vec!["sort_ro", "z2", "by", "nosort"],
        vec!["object", "encoding", "z2"],
        vec!["zadd", "z3", "1", "x"],
        vec!["sort", "z3", "limit", "0", "1", "by", "nosort"],
        vec!["object", "encoding", "z3"],
        vec!["zadd", "zinf", "-inf", "a", "+inf", "b", "0", "c"],
        vec!["sort", "zinf", "by", "nosort", "desc"],
        vec!["rpush", "nul", "b\0c", "a"],
        vec!["sort", "nul", "alpha"],
        vec!["sort", "nul", "get", "#", "get", "w_*"],
        vec!["command", "getkeys", "sort", "abc", "store", "def"],
        vec!["command", "getkeys", "sort_ro", "abc"],
        vec![
            "command", "getkeys", "sort", "abc", "store", "x", "store", "y", "store", "def",
        ],
        vec![
            "command", "getkeys", "sort", "abc", "limit", "0", "1", "get", "#", "store", "d",
        ],
        vec![
            "command", "getkeys", "sort", "abc", "get", "store", "by", "store",
        ],
        vec!["command", "getkeys", "get", "k"],
        vec!["command", "getkeys", "mset", "a", "1", "b", "2"],
        vec!["command", "getkeys", "mset", "a", "1", "b"],
        vec![
            "command",
            "getkeys",
            "zunionstore",
            "d",
            "2",
            "a",
            "b",
            "weights",
            "1",
            "2",
        ],
        vec!["command", "getkeys", "zunionstore", "d", "0", "a"],
        vec!["command", "getkeys", "zunionstore", "d", "5", "a"],
        vec!["command", "getkeys", "zunion", "2", "a", "b"],
        vec!["command", "getkeys", "zunion", "x", "a"],
        vec!["command", "getkeys", "zintercard", "1", "a", "limit", "3"],
        vec!["command", "getkeys", "lmpop", "2", "a", "b", "left"],
        vec!["command", "getkeys", "blmpop", "0", "2", "a", "b", "left"],
        vec!["command", "getkeys", "bzmpop", "0", "1", "z", "min"],
        vec!["command", "getkeys", "copy", "a", "b"],
        vec!["command", "getkeys", "rename", "a", "b"],
        vec!["command", "getkeys", "sinterstore", "d", "a", "b"],
        vec!["command", "getkeys", "smove", "a", "b", "m"],
        vec!["command", "getkeys", "blpop", "a", "b", "0"],
        vec!["command", "getkeys", "del", "a", "b", "c"],
        vec!["command", "getkeys", "object", "encoding", "k"],
        vec!["command", "getkeys", "ping"],
        vec!["command", "getkeys", "nosuch", "a"],
        vec!["command", "getkeys", "get"],
        vec!["command", "getkeys"],
        // Weights as strtod reads them, last: Redis reads `errno` after `strtod`
        // without clearing it first, so once a weight overflowed, its numeric sorts
        // fail until something else sets `errno`.
        vec![
            "rpush", "wl", "", " 3", "0x10", "1e3", "-.5", "+2", "inf", "-inf",
        ],
        vec![
            "rpush",
            "wl",
            "0x1p3",
            "0x1p-1074",
            "2.2250738585072014e-308",
        ],
        vec!["sort", "wl"],
        vec!["rpush", "wl2", "3 "],
        vec!["sort", "wl2"],
        vec!["rpush", "wl4", "nan"],
        vec!["sort", "wl4"],
        vec!["rpush", "wl3", "1e400"],
        vec!["sort", "wl3"],
        vec!["rpush", "wl5", "1e-400"],
        vec!["sort", "wl5"],
        vec!["rpush", "wl6", "1e-310"],
        vec!["sort", "wl6"],
        // Strings keep the encoding the command that wrote them gave them.
        vec!["FLUSHDB"],
        vec!["set", "e", "12"],
        vec!["object", "encoding", "e"],
        vec!["append", "e", "3"],
        vec!["object", "encoding", "e"],
        vec!["set", "e", "12"],
        vec!["object", "encoding", "e"],
        vec!["setrange", "e", "0", "3"],
        vec!["object", "encoding", "e"],
        vec!["get", "e"],
        vec!["set", "e", "12"],
        vec!["setrange", "e", "0", ""],
        vec!["object", "encoding", "e"],
        vec!["set", "e", "hello"],
        vec!["append", "e", ""],
        vec!["object", "encoding", "e"],
        vec!["append", "ne", "12"],
        vec!["object", "encoding", "ne"],
        vec!["append", "ne2", "hello"],
        vec!["object", "encoding", "ne2"],
        vec!["setrange", "nr", "0", "12"],
        vec!["object", "encoding", "nr"],
        vec!["setrange", "nr2", "0", ""],
        vec!["exists", "nr2"],
        vec!["setbit", "b", "1", "1"],
        vec!["object", "encoding", "b"],
        vec!["set", "b", "5"],
        vec!["setbit", "b", "1", "0"],
        vec!["object", "encoding", "b"],
        vec!["incrbyfloat", "f", "1"],
        vec!["object", "encoding", "f"],
        vec!["incrbyfloat", "f", "1.5"],
        vec!["object", "encoding", "f"],
        vec!["set", "f", "3"],
        vec!["object", "encoding", "f"],
        vec!["set", "c", "12"],
        vec!["append", "c", "3"],
        vec!["rename", "c", "c2"],
        vec!["object", "encoding", "c2"],
        vec!["copy", "c2", "c3"],
        vec!["object", "encoding", "c3"],
        vec!["incr", "c3"],
        vec!["object", "encoding", "c3"],
        vec!["getset", "c2", "7"],
        vec!["object", "encoding", "c2"],
        vec!["set", "c4", "1"],
        vec!["append", "c4", "2"],
        vec!["set", "c4", "12", "keepttl"],
        vec!["object", "encoding", "c4"],
        vec!["append", "c4", "x"],
        vec!["mset", "c4", "9"],
        vec!["object", "encoding", "c4"],
        vec!["FLUSHDB"],
        vec!["QUIT"],
    ];
    let mut kc = s.conn();
    let mut bad = Vec::new();
    for c in &cmds {
        let want = rc.cmd(c);
        let got = kc.cmd(c);
        if want != got {
            bad.push(format!(
                "{c:?}\n  redis-server: {want:?}\n  kvd:          {got:?}"
            ));
        }
    }
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(bad.is_empty(), "replies differ:\n{}", bad.join("\n"));
}

#[test]
fn redis_cli_round_trips_and_pipe() {
    if !have("redis-cli") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let port = s.addr.port().to_string();
    let cli = |args: &[&str]| -> String {
        let o = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "redis-cli {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(cli(&["INCRBY", "n", "41"]), "41");
    assert_eq!(cli(&["INCR", "n"]), "42");
    assert_eq!(cli(&["-n", "0", "DBSIZE"]), "2");
    assert_eq!(
        cli(&["MGET", "greeting", "none"]).lines().next(),
        Some("hello world")
    );
    assert_eq!(cli(&["CONFIG", "GET", "appendonly"]), "appendonly\nyes");
    // redis-cli --pipe: raw commands on stdin, then its ECHO marker.
    let mut input = Vec::new();
    for i in 0..20_000 {
        input.extend_from_slice(&encode(&[b"SET", format!("pipe:{i}").as_bytes(), b"x"]));
    }
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("errors: 0, replies: 20000"), "{out}");
    assert_eq!(cli(&["DBSIZE"]), "20002");
}

/// Writes `SET k<i> <i>` one at a time from `start`, recording the last acknowledged
/// `i`, until the connection dies.
fn writer(addr: SocketAddr, start: u64, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut c = Conn::new(addr);
    let mut i = start;
    while !stop.load(Ordering::Relaxed) {
        let k = format!("k{i}");
        let v = i.to_string();
        match c.try_cmd(&[b"SET", k.as_bytes(), v.as_bytes()]) {
            Ok(r) if r == b"+OK\r\n" => acked.store(i, Ordering::SeqCst),
            _ => return,
        }
        i += 1;
    }
}

/// The log bytes `writer` produced for keys 1..=acked (what a rewrite must keep).
fn writer_bytes(acked: u64) -> u64 {
    (1..=acked)
        .map(|i| {
            let (k, v) = (format!("k{i}"), i.to_string());
            encode(&[b"SET", k.as_bytes(), v.as_bytes()]).len() as u64
        })
        .sum()
}

fn crash_during_writes(policy: &str) -> (u64, u64, Duration) {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--appendfsync", policy]);
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (a, st, addr) = (acked.clone(), stop.clone(), s.addr);
    let t = std::thread::spawn(move || writer(addr, 1, a, st));
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked > 10, "too few writes acknowledged: {acked}");
    let s = Server::start(d.path(), &["--appendfsync", policy]);
    let mut c = s.conn();
    let mut missing = 0;
    for i in 1..=acked {
        let r = c.cmd(&["GET", &format!("k{i}")]);
        if r != format!("${}\r\n{i}\r\n", i.to_string().len()) {
            missing += 1;
        }
    }
    (acked, missing, elapsed)
}

#[test]
fn kill9_under_always_keeps_every_acknowledged_write() {
    let (acked, missing, _) = crash_during_writes("always");
    assert_eq!(missing, 0, "{missing} of {acked} acknowledged writes lost");
}

/// Many clients writing at once share each log write and fsync (one per loop
/// iteration): each still sees its acknowledgement only once its own write is durable.
#[test]
fn kill9_under_always_with_many_writers_keeps_every_acknowledged_write() {
    const WRITERS: u64 = 8;
    const SPAN: u64 = 1_000_000_000;
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--appendfsync", "always"]);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let acked = Arc::new(AtomicU64::new(0));
            let (a, st, addr) = (acked.clone(), stop.clone(), s.addr);
            let t = std::thread::spawn(move || writer(addr, w * SPAN + 1, a, st));
            (w * SPAN + 1, acked, t)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    let s = Server::start(d.path(), &["--appendfsync", "always"]);
    let mut c = s.conn();
    let (mut total, mut missing) = (0, 0);
    for (start, acked, t) in writers {
        t.join().unwrap();
        let last = acked.load(Ordering::SeqCst);
        if last < start {
            continue;
        }
        for i in start..=last {
            total += 1;
            let r = c.cmd(&["GET", &format!("k{i}")]);
            if r != format!("${}\r\n{i}\r\n", i.to_string().len()) {
                missing += 1;
            }
        }
    }
    assert!(total > 10 * WRITERS, "too few writes acknowledged: {total}");
    assert_eq!(missing, 0, "{missing} of {total} acknowledged writes lost");
}

#[test]
fn kill9_under_everysec_loses_at_most_about_a_second() {
    let (acked, missing, elapsed) = crash_during_writes("everysec");
    // The rate is acked / elapsed; a second of it is the most we may lose.
    let per_sec = acked as f64 / elapsed.as_secs_f64();
    assert!(
        (missing as f64) <= per_sec * 1.2,
        "{missing} of {acked} acknowledged writes lost (> ~1 s at {per_sec:.0}/s)"
    );
}

fn write_keys(c: &mut Conn, n: usize, prefix: &str) {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(&encode(&[
            b"SET",
            format!("{prefix}{i}").as_bytes(),
            b"value",
        ]));
    }
    c.send(&batch);
    for _ in 0..n {
        assert_eq!(c.reply().unwrap(), b"+OK\r\n");
    }
}

#[test]
fn truncated_log_restarts_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = Server::start(d.path(), &["--appendfsync", "always"]);
        write_keys(&mut s.conn(), 100, "t");
        s.kill9();
    }
    let p = aof_path(d.path());
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    let s = Server::start(d.path(), &[]);
    assert!(s.log().contains("partial command"), "{}", s.log());
    let mut c = s.conn();
    assert_eq!(c.cmd(&["DBSIZE"]), ":99\r\n");
    assert_eq!(c.cmd(&["SET", "after", "1"]), "+OK\r\n");
    drop(c);
    s.kill9();
    let s = Server::start(d.path(), &[]);
    assert_eq!(s.conn().cmd(&["GET", "after"]), "$1\r\n1\r\n");
}

#[test]
fn corrupted_log_refuses_with_the_offset_and_check_aof_fixes_it() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = Server::start(d.path(), &["--appendfsync", "always"]);
        write_keys(&mut s.conn(), 50, "c");
        s.kill9();
    }
    let p = aof_path(d.path());
    let mut bytes = std::fs::read(&p).unwrap();
    // Corrupt the 11th command: its first '$' becomes '#'.
    let offset: usize = (0..10)
        .map(|i| encode(&[b"SET", format!("c{i}").as_bytes(), b"value"]).len())
        .sum();
    bytes[offset + 4] = b'#';
    std::fs::write(&p, &bytes).unwrap();
    let log = match Server::try_start(d.path(), &[]) {
        Ok(_) => panic!("kvd started on a corrupted log"),
        Err(log) => log,
    };
    assert!(log.contains(&format!("byte offset {offset}")), "{log}");
    let o = Command::new(KVD)
        .arg("--check-aof")
        .arg(&p)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(out.contains(&format!("byte offset {offset}")), "{out}");
    let o = Command::new(KVD)
        .arg("--check-aof")
        .arg(&p)
        .arg("--fix")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(std::fs::metadata(&p).unwrap().len(), offset as u64);
    let o = Command::new(KVD)
        .arg("--check-aof")
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let s = Server::start(d.path(), &[]);
    assert_eq!(s.conn().cmd(&["DBSIZE"]), ":10\r\n");
}

#[test]
fn bgrewriteaof_during_writes_loses_nothing_and_shrinks_the_file() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--appendfsync", "everysec"]);
    let mut c = s.conn();
    // Many overwrites of few keys: the log is far bigger than the data.
    for round in 0..100 {
        let mut batch = Vec::new();
        for i in 0..1000 {
            batch.extend_from_slice(&encode(&[
                b"SET",
                format!("r{i}").as_bytes(),
                format!("{round}").as_bytes(),
            ]));
        }
        c.send(&batch);
        for _ in 0..1000 {
            c.reply().unwrap();
        }
    }
    let p = aof_path(d.path());
    let before = std::fs::metadata(&p).unwrap().len();
    // Concurrent writers: counters and fresh keys, each acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let (a, st, addr) = (acked.clone(), stop.clone(), s.addr);
    let t = std::thread::spawn(move || writer(addr, 1, a, st));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        c.cmd(&["BGREWRITEAOF"]),
        "+Background append only file rewriting started\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut c, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);
    let after = std::fs::metadata(&p).unwrap().len();
    // The data is 1,000 keys written 100 times: apart from what the writer added
    // meanwhile, the new log holds about a hundredth of the old one.
    let added = writer_bytes(acked);
    assert!(
        after < before / 10 + added,
        "log did not shrink: {before} -> {after} ({added} bytes written meanwhile)"
    );
    drop(c);
    s.kill9();
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["GET", "r999"]), "$2\r\n99\r\n");
    for i in 1..=acked {
        assert_eq!(
            c.cmd(&["GET", &format!("k{i}")]),
            format!("${}\r\n{i}\r\n", i.to_string().len()),
            "k{i} lost ({acked} acknowledged)"
        );
    }
    assert_eq!(c.cmd(&["DBSIZE"]), format!(":{}\r\n", 1000 + acked));
}

fn prlimit_fsize(pid: u32, soft: &str) {
    let st = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={soft}:unlimited"),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "prlimit failed");
}

fn check_aof_valid(p: &Path) {
    let o = Command::new(KVD)
        .arg("--check-aof")
        .arg(p)
        .output()
        .unwrap();
    assert!(o.status.success(), "log not valid: {o:?}");
}

/// A write that hits a file-size limit part-way (as a full disk would) is undone with
/// ftruncate: the log stays whole, writes are refused until the retry succeeds.
#[test]
fn failed_log_write_under_everysec_is_undone_refused_and_retried() {
    if !have("prlimit") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--appendfsync", "everysec"]);
    let mut c = s.conn();
    let value = "x".repeat(100);
    assert_eq!(c.cmd(&["SET", "k0", &value]), "+OK\r\n");
    let p = aof_path(d.path());
    let limit = std::fs::metadata(&p).unwrap().len() + 1000;
    prlimit_fsize(s.child.id(), &limit.to_string());
    let mut acked = vec!["k0".to_string()];
    let mut refused = None;
    for i in 1..100 {
        let k = format!("k{i}");
        let r = c.cmd(&["SET", &k, &value]);
        if r == "+OK\r\n" {
            acked.push(k);
        } else {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("writes were never refused");
    assert!(
        refused.starts_with("-MISCONF Errors writing to the AOF file: File too large"),
        "{refused}"
    );
    assert!(std::fs::metadata(&p).unwrap().len() <= limit);
    check_aof_valid(&p);
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "err");
    // Reads still work; once the limit is lifted the queued records are written.
    assert_eq!(c.cmd(&["GET", "k0"]), format!("$100\r\n{value}\r\n"));
    prlimit_fsize(s.child.id(), "unlimited");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.cmd(&["SET", "after", "1"]);
        if r == "+OK\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "writes never recovered: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(c);
    s.kill9();
    check_aof_valid(&p);
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    for k in &acked {
        assert_eq!(c.cmd(&["EXISTS", k]), ":1\r\n", "{k} lost");
    }
    assert_eq!(c.cmd(&["GET", "after"]), "$1\r\n1\r\n");
}

/// Under `always` a write that cannot be made durable is never acknowledged, and the
/// server stops (memory would otherwise hold what the disk does not), with an error.
#[test]
fn failed_log_write_under_always_is_never_acknowledged() {
    if !have("prlimit") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut s = Server::start(d.path(), &["--appendfsync", "always"]);
    let mut c = s.conn();
    let value = "x".repeat(100);
    let p = aof_path(d.path());
    assert_eq!(c.cmd(&["SET", "k0", &value]), "+OK\r\n");
    let limit = std::fs::metadata(&p).unwrap().len() + 1000;
    prlimit_fsize(s.child.id(), &limit.to_string());
    let mut acked = vec!["k0".to_string()];
    let mut failed = false;
    for i in 1..100 {
        let k = format!("k{i}");
        match c.try_cmd(&[b"SET", k.as_bytes(), value.as_bytes()]) {
            Ok(r) if r == b"+OK\r\n" => acked.push(k),
            _ => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "every write was acknowledged past the limit");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "kvd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    // The reader thread may still be catching up with the last lines.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s
        .log()
        .contains("could not be written under appendfsync always")
    {
        assert!(Instant::now() < deadline, "{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    check_aof_valid(&p);
    drop(s);
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    for k in &acked {
        assert_eq!(c.cmd(&["EXISTS", k]), ":1\r\n", "{k} lost");
    }
}

#[test]
fn bad_input_never_crashes_and_memory_stays_bounded() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(
        d.path(),
        &[
            "--proto-max-bulk-len",
            "524288",
            "--client-query-buffer-limit",
            "1048576",
        ],
    );
    let rss0 = s.rss_kib();
    let expect_error_close = |bytes: &[u8], want: &str| {
        let mut c = s.conn();
        c.send(bytes);
        let r = c.reply().unwrap();
        assert_eq!(String::from_utf8_lossy(&r), want);
        let mut rest = Vec::new();
        let _ = c.r.read_to_end(&mut rest);
    };
    expect_error_close(
        b"*1\r\n$-7\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    expect_error_close(
        b"*1\r\n$9999999999999999999999\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    expect_error_close(
        b"*1\r\n$600000\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    expect_error_close(
        b"*99999999\r\n",
        "-ERR Protocol error: invalid multibulk length\r\n",
    );
    expect_error_close(
        b"*2\r\nxx\r\n",
        "-ERR Protocol error: expected '$', got 'x'\r\n",
    );
    let mut big = b"*3\r\n".to_vec();
    for _ in 0..2 {
        big.extend_from_slice(b"$500000\r\n");
        big.extend_from_slice(&vec![b'x'; 500_000]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b"$500000\r\n");
    expect_error_close(&big, "-ERR Protocol error: query buffer limit exceeded\r\n");
    expect_error_close(
        &vec![b'a'; 200_000],
        "-ERR Protocol error: too big inline request\r\n",
    );
    // Random bytes from several clients: whatever happens, the server lives on.
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..20 {
        let mut buf = vec![0u8; 64 * 1024];
        for b in buf.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        let mut c = s.conn();
        let _ = c.w.write_all(&buf);
        let _ = c.w.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = c.r.read_to_end(&mut rest);
    }
    // Unterminated frames held open by many clients: each is bounded by the limit.
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = s.conn();
        let mut f = b"*1\r\n$500000\r\n".to_vec();
        f.extend_from_slice(&vec![b'y'; 400_000]);
        c.send(&f);
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss = s.rss_kib();
    assert!(
        rss < rss0 + 64 * 1024,
        "RSS grew from {rss0} KiB to {rss} KiB"
    );
    assert_eq!(s.conn().cmd(&["PING"]), "+PONG\r\n");
    drop(held);
    assert_eq!(s.conn().cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn maxclients_refuses_with_an_error() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--maxclients", "2"]);
    let mut a = s.conn();
    let mut b = s.conn();
    assert_eq!(a.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(b.cmd(&["PING"]), "+PONG\r\n");
    let mut c = s.conn();
    let r = c.reply().unwrap();
    assert_eq!(r, b"-ERR max number of clients reached\r\n");
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.conn().cmd(&["PING"]), "+PONG\r\n");
}

/// A blocked client's timeout is a deadline the loop wakes for, not the next tick:
/// ten `BLPOP k 0.01` in a row on an empty key each answer a null array no sooner
/// than 10 ms, and all ten within a second (on the 250 ms tick they took 2.5 s).
#[test]
fn short_blocking_timeouts_fire_on_time() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    let start = Instant::now();
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(c.cmd(&["BLPOP", "k", "0.01"]), "*-1\r\n");
        assert!(
            t.elapsed() >= Duration::from_millis(10),
            "{:?}",
            t.elapsed()
        );
    }
    let all = start.elapsed();
    assert!(
        all < Duration::from_secs(1),
        "ten 10 ms timeouts took {all:?}"
    );
    // A client woken by a push before its timeout is not answered twice.
    let mut b = s.conn();
    b.send(&encode(&[b"BLPOP", b"q", b"0.05"]));
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(c.cmd(&["RPUSH", "q", "x"]), ":1\r\n");
    assert_eq!(
        String::from_utf8_lossy(&b.reply().unwrap()),
        "*2\r\n$1\r\nq\r\n$1\r\nx\r\n"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend_from_slice(&encode(&[
            b"SET",
            format!("e{i}").as_bytes(),
            b"v",
            b"PX",
            b"100",
        ]));
    }
    c.send(&batch);
    for _ in 0..500 {
        c.reply().unwrap();
    }
    c.cmd(&["SET", "keep", "v"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.cmd(&["DBSIZE"]) != ":1\r\n" {
        assert!(Instant::now() < deadline, "expired keys were not swept");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = c.cmd(&["INFO", "stats"]);
    assert!(info.contains("expired_keys:500"), "{info}");
}

#[test]
fn command_line_errors_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let o = Command::new(KVD)
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("kvd: create data directory") && last.contains("not-a-dir"),
        "{err}"
    );
    let o = Command::new(KVD).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("kvd --listen 127.0.0.1:6380"));
    let o = Command::new(KVD)
        .args(["--check-aof", "/nonexistent/appendonly.aof"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/appendonly.aof"));
}

/// `--engine btree`: values on disk in the B+tree, the log still the source of truth
/// (a rewrite reads the tree in the forked child; the same log restarts either engine).
#[test]
fn btree_engine_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--engine", "btree"]);
    let mut c = s.conn();
    write_keys(&mut c, 30_000, "b");
    write_keys(&mut c, 30_000, "b");
    assert_eq!(c.cmd(&["DEL", "b5"]), ":1\r\n");
    assert_eq!(c.cmd(&["APPEND", "b6", "!"]), ":6\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), ":29999\r\n");
    // RANGE walks the tree in key order: b1, b10, b100, ... (b5 was deleted above).
    assert_eq!(
        c.cmd(&["RANGE", "b1", "b2", "LIMIT", "3"]),
        "*6\r\n$2\r\nb1\r\n$5\r\nvalue\r\n$3\r\nb10\r\n$5\r\nvalue\r\n$4\r\nb100\r\n$5\r\nvalue\r\n"
    );
    assert_eq!(
        c.cmd(&["RANGE", "b4999", "b50", "LIMIT", "2"]),
        "*4\r\n$5\r\nb4999\r\n$5\r\nvalue\r\n$3\r\nb50\r\n$5\r\nvalue\r\n"
    );
    assert_eq!(c.cmd(&["RANGE", "b9", "b1"]), "*0\r\n");
    assert_eq!(
        c.cmd(&["RANGE", "b1", "b2", "LIMIT", "-1"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        c.cmd(&["RANGE", "b1", "b2", "BOGUS"]),
        "-ERR syntax error\r\n"
    );
    let p = aof_path(d.path());
    let before = std::fs::metadata(&p).unwrap().len();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let (a, st, addr) = (acked.clone(), stop.clone(), s.addr);
    let writer_thread = std::thread::spawn(move || writer(addr, 1, a, st));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        c.cmd(&["BGREWRITEAOF"]),
        "+Background append only file rewriting started\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(&mut c, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    stop.store(true, Ordering::Relaxed);
    writer_thread.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);
    let after = std::fs::metadata(&p).unwrap().len();
    // 30,000 keys written twice: apart from what the writer added meanwhile, the new
    // log holds about half of the old one.
    let added = writer_bytes(acked);
    assert!(
        after < before * 6 / 10 + added,
        "log did not shrink: {before} -> {after} ({added} bytes written meanwhile)"
    );
    drop(c);
    s.kill9();
    for engine in ["btree", "hash"] {
        let s = Server::start(d.path(), &["--engine", engine]);
        let mut c = s.conn();
        assert_eq!(
            c.cmd(&["DBSIZE"]),
            format!(":{}\r\n", 29_999 + acked),
            "{engine}"
        );
        for i in 1..=acked {
            let r = c.cmd(&["GET", &format!("k{i}")]);
            assert_eq!(
                r,
                format!("${}\r\n{i}\r\n", i.to_string().len()),
                "{engine}: k{i}"
            );
        }
        assert_eq!(c.cmd(&["GET", "b6"]), "$6\r\nvalue!\r\n", "{engine}");
        assert_eq!(c.cmd(&["EXISTS", "b5"]), ":0\r\n", "{engine}");
        assert_eq!(c.cmd(&["GET", "b29999"]), "$5\r\nvalue\r\n", "{engine}");
    }
}

/// 200 pipelined GETs of a 1 MiB value (200 MiB of replies) are all answered, in
/// bounded batches: the server's memory does not grow by the size of the replies.
#[test]
fn pipelined_large_replies_all_arrive_with_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    let value = vec![b'v'; 1024 * 1024];
    assert_eq!(c.try_cmd(&[b"SET", b"big", &value]).unwrap(), b"+OK\r\n");
    let rss0 = s.rss_kib();
    let mut batch = Vec::new();
    for _ in 0..200 {
        batch.extend_from_slice(&encode(&[b"GET", b"big"]));
    }
    c.send(&batch);
    // Read slowly at first so the server has to hold back.
    std::thread::sleep(Duration::from_millis(300));
    let rss_mid = s.rss_kib();
    for i in 0..200 {
        let r = c.reply().unwrap();
        assert_eq!(r.len(), value.len() + 12, "reply {i}");
    }
    assert!(
        rss_mid < rss0 + 64 * 1024,
        "RSS grew from {rss0} KiB to {rss_mid} KiB while replies waited"
    );
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
}

/// A second server on the same directory stops before touching the log.
#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = Server::start(d.path(), &["--appendfsync", "always"]);
    write_keys(&mut a.conn(), 100, "x");
    let len = std::fs::metadata(aof_path(d.path())).unwrap().len();
    for engine in ["hash", "btree"] {
        match Server::try_start(d.path(), &["--engine", engine]) {
            Ok(_) => panic!("a second kvd started on a locked directory"),
            Err(log) => assert!(log.contains("in use by another process"), "{log}"),
        }
    }
    assert_eq!(std::fs::metadata(aof_path(d.path())).unwrap().len(), len);
    let mut c = a.conn();
    assert_eq!(c.cmd(&["DBSIZE"]), ":100\r\n");
    assert_eq!(c.cmd(&["SET", "after", "1"]), "+OK\r\n");
}

#[test]
fn range_needs_the_ordered_engine() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd(&["RANGE", "a", "z"]),
        "-ERR RANGE needs an ordered engine: start kvd with --engine btree\r\n"
    );
    assert_eq!(
        c.cmd(&["RANGE", "a"]),
        "-ERR wrong number of arguments for 'range' command\r\n"
    );
}

// kvd's connection layer and shutdown: transactions through `kill -9`, redis-py's
// transactional pipeline, a subscriber that never reads, the rewrite child after its
// parent was killed, and the exit status after a failed final sync.

/// One writer's transactions: MULTI, two SETs and an INCR, EXEC, sent as one
/// pipeline; `acked` counts the ones whose EXEC reply arrived.
fn tx_writer(addr: SocketAddr, w: u64, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let Ok(s) = TcpStream::connect(addr) else {
        return;
    };
    let mut c = Conn {
        r: BufReader::new(s.try_clone().unwrap()),
        w: s,
    };
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) && i < 100_000 {
        let (a, b, n) = (
            format!("w{w}:{i}:a"),
            format!("w{w}:{i}:b"),
            format!("w{w}:n"),
        );
        let mut batch = encode(&[b"MULTI"]);
        batch.extend_from_slice(&encode(&[b"SET", a.as_bytes(), b"1"]));
        batch.extend_from_slice(&encode(&[b"SET", b.as_bytes(), b"1"]));
        batch.extend_from_slice(&encode(&[b"INCR", n.as_bytes()]));
        batch.extend_from_slice(&encode(&[b"EXEC"]));
        if c.w.write_all(&batch).is_err() {
            return;
        }
        for _ in 0..4 {
            if c.reply().is_err() {
                return;
            }
        }
        match c.reply() {
            Ok(r) if r.starts_with(b"*3\r\n") => {
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
            _ => return,
        }
    }
}

/// `kill -9` while clients stream transactions under `always`: after the restart
/// every acknowledged transaction is there whole, and none is there in part.
#[test]
fn kill9_during_transactions_under_always_keeps_each_one_whole() {
    const WRITERS: u64 = 4;
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--appendfsync", "always"]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Vec<Arc<AtomicU64>> = (0..WRITERS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (a, st, addr) = (acked[w as usize].clone(), stop.clone(), s.addr);
            std::thread::spawn(move || tx_writer(addr, w, a, st))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.iter().map(|a| a.load(Ordering::SeqCst)).sum::<u64>() < 200 {
        assert!(Instant::now() < deadline, "writers made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(s); // SIGKILL, mid-stream
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    for (w, a) in acked.iter().enumerate() {
        let acked = a.load(Ordering::SeqCst);
        let n: u64 = c
            .cmd(&["GET", &format!("w{w}:n")])
            .lines()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // The counter says how many transactions were applied: every acknowledged
        // one, plus at most the one in flight.
        assert!(
            n == acked || n == acked + 1,
            "writer {w}: {n} applied, {acked} acknowledged"
        );
        for i in 0..n + 2 {
            let want = if i < n { ":2\r\n" } else { ":0\r\n" };
            let got = c.cmd(&["EXISTS", &format!("w{w}:{i}:a"), &format!("w{w}:{i}:b")]);
            assert_eq!(
                got, want,
                "writer {w} transaction {i} ({n} applied, {acked} acknowledged)"
            );
        }
    }
}

/// redis-py's `pipeline(transaction=True)`: MULTI/EXEC around the queued commands, the
/// results returned together, and a WATCH conflict raised as WatchError.
#[test]
fn redis_py_transactional_pipeline() {
    let python = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import redis"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    let Some(python) = python else {
        eprintln!("SKIP: python3 with the redis module is not installed (Debian: python3-redis; scripts/tests.d/50-kvd.sh installs it)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &[]);
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
p = r.pipeline(transaction=True)
p.set("a", "1").incr("a").get("a")
assert p.execute() == [True, 2, b"2"], "pipeline results"
p = r.pipeline(transaction=True)
p.set("b", "x").incr("b").set("c", "y")
try:
    p.execute()
    raise SystemExit("a runtime error inside EXEC must be raised")
except redis.ResponseError:
    pass
assert r.get("c") == b"y", "no rollback: the command after the error ran"
with r.pipeline() as p:
    p.watch("a")
    r2 = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
    r2.set("a", "changed")
    p.multi()
    p.set("a", "mine")
    try:
        p.execute()
        raise SystemExit("WATCH did not abort")
    except redis.WatchError:
        pass
assert r.get("a") == b"changed"
print("ok")
"#;
    let o = Command::new(python)
        .args(["-c", script, &s.addr.port().to_string()])
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "ok",
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A subscriber that never reads is disconnected once its queued messages pass the
/// output limit, as any slow reader is; the server's memory stays bounded.
#[test]
fn a_subscriber_that_never_reads_is_disconnected_at_the_output_limit() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--proto-max-bulk-len", "1048576"]);
    let mut sub = s.conn();
    sub.w.write_all(&encode(&[b"SUBSCRIBE", b"feed"])).unwrap();
    sub.reply().unwrap();
    let mut publisher = s.conn();
    let rss_before = s.rss_kib();
    let msg = vec![b'm'; 1024 * 1024];
    let mut delivered_to_none = false;
    // The limit is 66 MiB with this bulk limit (2 x bulk + 64 MiB): 200 MiB of
    // messages must cross it.
    for _ in 0..200 {
        let r = publisher.try_cmd(&[b"PUBLISH", b"feed", &msg]).unwrap();
        if r == b":0\r\n" {
            delivered_to_none = true;
            break;
        }
    }
    assert!(delivered_to_none, "the subscriber was never disconnected");
    assert_eq!(
        publisher.cmd(&["PUBSUB", "NUMSUB", "feed"]),
        "*2\r\n$4\r\nfeed\r\n:0\r\n"
    );
    let grown = s.rss_kib().saturating_sub(rss_before);
    assert!(grown < 150 * 1024, "RSS grew by {grown} KiB");
}

/// Every descriptor path a process holds.
fn open_files(pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// `kill -9` during BGREWRITEAOF, then an immediate restart: the rewrite child holds
/// no descriptor of the log (whose lock would refuse the new server until the child
/// has died), and the restart is not refused.
#[test]
fn restart_right_after_kill9_during_a_rewrite_is_not_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path(), &["--appendfsync", "no"]);
    let mut c = s.conn();
    // Enough data that the child is still writing when we look (and when the parent
    // dies): 2,000 values of 64 KiB.
    let value = vec![b'v'; 64 * 1024];
    for chunk in 0..20 {
        let mut batch = Vec::new();
        for i in 0..100 {
            let k = format!("k{}", chunk * 100 + i);
            batch.extend_from_slice(&encode(&[b"SET", k.as_bytes(), &value]));
        }
        c.w.write_all(&batch).unwrap();
        for _ in 0..100 {
            c.reply().unwrap();
        }
    }
    let log = std::fs::canonicalize(d.path().join("appendonly.aof")).unwrap();
    assert!(c.cmd(&["BGREWRITEAOF"]).starts_with("+Background"));
    let pid = s.child.id();
    let kids = children(pid);
    assert_eq!(kids.len(), 1, "no rewrite child found: {kids:?}");
    // Once the child has closed what it inherited (its sockets go last), it must not
    // hold the log.
    let deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        let held = open_files(kids[0]);
        let settled = !held
            .iter()
            .any(|p| p.to_string_lossy().starts_with("socket:"));
        if settled || Instant::now() > deadline {
            break held;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        !held.contains(&log),
        "the rewrite child holds the log: {held:?}"
    );
    drop(c);
    drop(s); // SIGKILL while the child writes
    let s =
        Server::try_start(d.path(), &[]).unwrap_or_else(|log| panic!("restart refused:\n{log}"));
    let mut c = s.conn();
    assert_eq!(c.cmd(&["DBSIZE"]), ":2000\r\n");
}

/// A disk that stays full under `everysec`: the failing write is reported once a
/// second at most (not on every retry), and a stop whose final sync fails exits
/// non-zero, saying so.
#[test]
fn failed_final_sync_exits_non_zero_and_repeated_failures_are_logged_once_a_second() {
    if !have("prlimit") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut s = Server::start(d.path(), &["--appendfsync", "everysec"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "k0", "v"]), "+OK\r\n");
    let size = std::fs::metadata(d.path().join("appendonly.aof"))
        .unwrap()
        .len();
    prlimit_fsize(s.child.id(), &(size + 10).to_string());
    // Acknowledged under everysec (as Redis does); its record cannot be written.
    assert_eq!(c.cmd(&["SET", "k1", &"x".repeat(100)]), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(3200));
    let reports = s
        .log()
        .matches("write to the append-only file failed")
        .count();
    assert!(
        (1..=5).contains(&reports),
        "{reports} reports in 3.2 s:\n{}",
        s.log()
    );
    // SAFETY: kill(2) on the child we spawned, still unreaped.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "kvd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !status.success(),
        "exit status {status:?} after a failed final sync"
    );
    assert!(s.log().contains("final sync"), "{}", s.log());
}

/// `kvd --help` lists the engines there are, both of them.
#[test]
fn help_lists_every_engine() {
    let o = Command::new(KVD).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        help.contains("- hash:") && help.contains("- btree:"),
        "{help}"
    );
    assert!(!help.contains("only `hash`"), "{help}");
    assert!(help.contains("--requirepass"), "{help}");
}

/// SHUTDOWN stops the server as SIGTERM does: a clean exit, the log synced.
#[test]
fn shutdown_stops_cleanly_and_keeps_the_data() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Server::start(d.path(), &[]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK\r\n");
    c.w.write_all(&encode(&[b"SHUTDOWN"])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "kvd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", s.log());
    let s = Server::start(d.path(), &[]);
    assert_eq!(s.conn().cmd(&["GET", "k"]), "$1\r\nv\r\n");
}
