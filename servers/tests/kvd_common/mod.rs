//! Shared by the kvd parity suites (kvd_dump, kvd_resp3, kvd_script): kvd and Debian's
//! `redis-server` started on free loopback ports, and a raw RESP2/RESP3 connection
//! that returns each reply's exact bytes, so replies compare byte for byte.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KVD: &str = env!("CARGO_BIN_EXE_kvd");

pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn kvd(dir: &Path) -> Proc {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(KVD)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kvd");
    wait_listening(addr, "kvd");
    Proc { child, addr }
}

pub fn redis_server(dir: &Path) -> Option<Proc> {
    if !have("redis-server") {
        return None;
    }
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    wait_listening(addr, "redis-server");
    Some(Proc { child, addr })
}

pub fn have(prog: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: {prog} is not installed (Debian package redis-server; scripts/test.sh installs it)");
    }
    ok
}

pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// Reads one whole RESP2 or RESP3 value, returned raw.
    pub fn reply(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).unwrap();
        assert!(line.len() >= 3, "connection closed or short line: {line:?}");
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let items = match line[0] {
            b'$' | b'=' | b'!' if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                self.r.read_exact(&mut body).unwrap();
                line.extend_from_slice(&body);
                0
            }
            b'*' | b'~' | b'>' if n > 0 => n,
            b'%' if n > 0 => 2 * n,
            _ => 0,
        };
        for _ in 0..items {
            let sub = self.reply();
            line.extend_from_slice(&sub);
        }
        line
    }

    pub fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send_bytes(&args);
    }

    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        String::from_utf8_lossy(&self.reply()).into_owned()
    }

    pub fn send_bytes(&mut self, args: &[&[u8]]) {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&v).unwrap();
    }

    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send_bytes(args);
        self.reply()
    }

    /// A bulk reply's payload.
    pub fn bulk(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let r = self.cmd_bytes(args);
        let start = r.iter().position(|&c| c == b'\n').unwrap() + 1;
        r[start..r.len() - 2].to_vec()
    }
}

/// A Python whose `redis` package passes `check` (Python source that exits 0 when it
/// does): `$KVD_REDIS_PY`, then the redis-py 5 venv that `scripts/tests.d/50-kvd.sh`
/// keeps under the cache, then `python3`.
pub fn python_with_redis(check: &str) -> Option<String> {
    let cache = std::env::var("SYSNET_CACHE").unwrap_or_else(|_| "/var/cache/sysnet".into());
    let candidates = [
        std::env::var("KVD_REDIS_PY").ok(),
        Some(format!("{cache}/redis-py5/bin/python")),
        Some("python3".into()),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", check])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}
