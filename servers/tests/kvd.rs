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
