//! kvd's connection layer and shutdown end to end: transactions through `kill -9`,
//! redis-py's transactional pipeline, a subscriber that never reads, the rewrite child
//! after its parent was killed, and the exit status after a failed final sync.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
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

    fn reply(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line)?;
        if line.len() < 3 {
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
        eprintln!("SKIP: {prog} is not installed (scripts/tests.d/50-kvd.sh installs it)");
    }
    ok
}

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
