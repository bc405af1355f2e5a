//! Shared by the end-to-end tests: start a server binary on an ephemeral port and
//! learn its address from its `listening addr=...` log line.
//!
//! Use: `let srv = Server::start(env!("CARGO_BIN_EXE_echo"), &["--io", "epoll"]);`
//! then connect to `srv.addr`. The child is killed when the guard drops.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server; killed (SIGKILL) and reaped on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `exe --listen 127.0.0.1:0 ARGS...`.
    pub fn start(exe: &str, args: &[&str]) -> Server {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Self::start_raw(exe, &all, &[])
    }

    /// Starts `exe ARGS...` exactly as given, with extra environment variables.
    pub fn start_raw(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
        let stderr = child.stderr.take().expect("stderr was piped above");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        // Keeps draining stderr for the server's whole life so it never blocks on a
        // full pipe; the first `listening` line is sent back.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening addr=") {
                    let rest = &line[i + "listening addr=".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    if let (Some(t), Ok(a)) = (tx.as_ref(), addr.parse::<SocketAddr>()) {
                        let _ = t.send(a);
                        tx = None;
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{exe} never logged `listening addr=`; stderr:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server { child, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for `needle` to appear in the log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits (up to 10 s) for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().expect("waitpid") {
                return st;
            }
            if Instant::now() > end {
                panic!(
                    "server did not stop within 10 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Threads of the server process right now (from /proc/PID/task).
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client with read/write timeouts, so a broken server fails a test instead of
/// hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads exactly `n` bytes (panics on timeout or early EOF).
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Reads one `\n`-terminated line, byte by byte (the stream stays usable).
pub fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => panic!("EOF after {:?}", String::from_utf8_lossy(&line)),
            Ok(_) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return String::from_utf8_lossy(&line).into_owned();
                }
            }
            Err(e) => panic!("read_line after {:?}: {e}", String::from_utf8_lossy(&line)),
        }
    }
}

/// Reads lines until one contains `needle`; returns it.
pub fn read_until(s: &mut TcpStream, needle: &str) -> String {
    loop {
        let l = read_line(s);
        if l.contains(needle) {
            return l;
        }
    }
}

/// Raises this test process's open-file limit to its hard limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid, writable rlimit struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: valid rlimit with cur == max.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    lim.rlim_cur
}

/// Every concurrency model's `--io` name.
pub const MODELS: [&str; 5] = ["threads", "pool", "select", "poll", "epoll"];

/// A buffered line reader for clients that receive a lot (byte-at-a-time reads would
/// make the test, not the server, the slow reader).
pub type Lines = std::io::BufReader<TcpStream>;

pub fn lines(s: TcpStream) -> Lines {
    std::io::BufReader::with_capacity(64 * 1024, s)
}

/// Next line from a [`Lines`] (panics on EOF or timeout).
pub fn next_line(r: &mut Lines) -> String {
    let mut l = String::new();
    match r.read_line(&mut l) {
        Ok(0) => panic!("EOF"),
        Ok(_) => l,
        Err(e) => panic!("read_line: {e} after {l:?}"),
    }
}

/// Lines from a [`Lines`] until one contains `needle`; returns it.
pub fn next_until(r: &mut Lines, needle: &str) -> String {
    loop {
        let l = next_line(r);
        if l.contains(needle) {
            return l;
        }
    }
}
