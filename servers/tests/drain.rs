//! Graceful stops of `httpd` and the capstone, end to end: the listening socket goes at
//! once (newcomers are refused, a replacement may bind) while a slow download in
//! flight goes on; httpd's `--drain-timeout`; httpd's log reopening inside a chroot.
//!
//! The slow reader is a client with a small receive buffer that takes 32 KiB every
//! 40 ms (at most 800 KiB/s), so a 6 MiB file takes at least 7.5 s: longer than the
//! fixed 5 s drain httpd once had. httpd runs with a small `--sndbuf`, so the kernel
//! does not take most of the file into the socket's send buffer (where it would
//! still reach the client after the server gave up on the connection).

mod common;

use common::Server;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const HTTPD: &str = env!("CARGO_BIN_EXE_httpd");
const CAPSTONE: &str = env!("CARGO_BIN_EXE_capstone");
const BIG: usize = 6 * 1024 * 1024;
/// How soon after SIGTERM the port must be released.
const CLOSED_WITHIN: Duration = Duration::from_millis(1500);

fn write_site(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("index.html"), "<h1>drain</h1>\n").unwrap();
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

/// A connection whose receive buffer is small (set before connecting, so the window
/// the server sees is small from the start).
fn small_window_connect(addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only: {addr}")
    };
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    socket::setsockopt(&fd, sockopt::RcvBuf, &16384).unwrap();
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    TcpStream::from(fd)
}

/// What a slow download got.
#[derive(Debug)]
struct Got {
    /// Body bytes received.
    body: usize,
    /// Content-Length announced.
    expected: usize,
    /// When the server ended the connection (EOF or reset).
    ended: Instant,
}

struct Download {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Got>,
}

impl Download {
    /// Starts reading `path` slowly; returns once the response head has arrived.
    fn start(addr: SocketAddr, path: &str) -> Download {
        let mut s = small_window_connect(addr);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            let mut raw = Vec::new();
            let mut head: Option<(usize, usize)> = None; // (head length, content-length)
            let mut total = 0usize;
            let ended = loop {
                if flag.load(Ordering::Relaxed) {
                    break Instant::now();
                }
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => break Instant::now(),
                    Ok(n) => n,
                };
                total += n;
                if head.is_none() {
                    raw.extend_from_slice(&buf[..n]);
                    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        let text = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        head = Some((end + 4, len));
                        let _ = tx.send(());
                    }
                }
                std::thread::sleep(Duration::from_millis(40));
            };
            let (head_len, expected) = head.unwrap_or((0, 0));
            Got {
                body: total.saturating_sub(head_len),
                expected,
                ended,
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("no response head within 10 s");
        Download { stop, thread }
    }

    /// Waits for the download to end by itself.
    fn finish(self) -> Got {
        self.thread.join().unwrap()
    }

    /// Hangs up (the server then has nothing left in flight).
    fn abandon(self) -> Got {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Waits up to [`CLOSED_WITHIN`] after `since` for the port to refuse connections,
/// then checks that a new server may bind it. Returns how long the refusal took.
fn assert_port_released(addr: SocketAddr, since: Instant, log: impl Fn() -> String) -> Duration {
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            other => {
                assert!(
                    since.elapsed() < CLOSED_WITHIN,
                    "{addr} still accepts {:?} after SIGTERM ({other:?}); log:\n{}",
                    since.elapsed(),
                    log()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = since.elapsed();
    // std binds with SO_REUSEADDR, as a restarted server does: the port is free
    // even though a connection on it is still being served.
    let replacement = TcpListener::bind(addr)
        .unwrap_or_else(|e| panic!("a replacement cannot bind {addr} during the drain: {e}"));
    drop(replacement);
    took
}

#[test]
fn httpd_sigterm_closes_the_listener_at_once_while_a_download_drains() {
    for model in ["epoll", "poll", "select"] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("www");
        write_site(&root);
        let srv = Server::start(HTTPD, &["--root", root.to_str().unwrap(), "--io", model]);
        let dl = Download::start(srv.addr, "/big.bin");
        let term = Instant::now();
        signal(srv.pid(), libc::SIGTERM);
        assert_port_released(srv.addr, term, || srv.log());
        // The download was not cut by the close.
        std::thread::sleep(Duration::from_millis(300));
        assert!(!dl.thread.is_finished(), "{model}: download cut");
        let got = dl.abandon();
        assert!(
            got.body < got.expected && got.ended > term,
            "{model}: {got:?}"
        );
        let status = srv.stop();
        assert!(status.success(), "{model}: {status:?}");
    }
}

#[test]
fn httpd_default_drain_lets_a_slow_download_finish() {
    // One server per model, all at once: each download takes 7.5 s or more.
    let runs: Vec<_> = ["epoll", "threads", "pool"]
        .into_iter()
        .map(|model| {
            std::thread::spawn(move || {
                let tmp = tempfile::tempdir().unwrap();
                let root = tmp.path().join("www");
                write_site(&root);
                let srv = Server::start(
                    HTTPD,
                    &[
                        "--root",
                        root.to_str().unwrap(),
                        "--sndbuf",
                        "32768",
                        "--io",
                        model,
                    ],
                );
                let dl = Download::start(srv.addr, "/big.bin");
                let term = Instant::now();
                signal(srv.pid(), libc::SIGTERM);
                let got = dl.finish();
                assert_eq!(got.expected, BIG, "{model}");
                assert_eq!(
                    got.body,
                    BIG,
                    "{model}: cut {:?} after SIGTERM; log:\n{}",
                    got.ended - term,
                    srv.log()
                );
                assert!(
                    got.ended - term > Duration::from_secs(5),
                    "{model}: too fast to tell a 5 s drain from a longer one: {:?}",
                    got.ended - term
                );
                assert!(srv.stop().success(), "{model}");
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}

#[test]
fn httpd_drain_timeout_cuts_a_slow_download() {
    let runs: Vec<_> = [("epoll", 1), ("threads", 1), ("pool", 1), ("epoll", 0)]
        .into_iter()
        .map(|(model, secs)| {
            std::thread::spawn(move || {
                let tmp = tempfile::tempdir().unwrap();
                let root = tmp.path().join("www");
                write_site(&root);
                let secs_arg = secs.to_string();
                let srv = Server::start(
                    HTTPD,
                    &[
                        "--root",
                        root.to_str().unwrap(),
                        "--sndbuf",
                        "32768",
                        "--io",
                        model,
                        "--drain-timeout",
                        &secs_arg,
                    ],
                );
                let dl = Download::start(srv.addr, "/big.bin");
                let term = Instant::now();
                signal(srv.pid(), libc::SIGTERM);
                let got = dl.finish();
                let after = got.ended - term;
                assert!(got.body < BIG, "{model}: {got:?}");
                let (low, high) = match secs {
                    0 => (Duration::ZERO, Duration::from_millis(800)),
                    _ => (Duration::from_millis(800), Duration::from_secs(3)),
                };
                assert!(
                    after >= low && after < high,
                    "{model} --drain-timeout {secs}: cut {after:?} after SIGTERM; log:\n{}",
                    srv.log()
                );
                if model == "epoll" && secs > 0 {
                    assert!(
                        srv.wait_log("drain deadline passed", Duration::from_secs(3)),
                        "{}",
                        srv.log()
                    );
                }
                assert!(srv.stop().success(), "{model}");
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn httpd_reopens_its_access_log_from_inside_the_chroot() {
    if !is_root() {
        eprintln!("SKIP: --chroot needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root);
    // Outside the jail: after the chroot this path names nothing.
    let log = tmp.path().join("logs").join("access.log");
    std::fs::create_dir(log.parent().unwrap()).unwrap();
    let srv = Server::start(
        HTTPD,
        &[
            "--root",
            root.to_str().unwrap(),
            "--chroot",
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    assert!(
        srv.wait_log("chrooted", Duration::from_secs(5)),
        "{}",
        srv.log()
    );
    let get = |path: &str| {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200 "), "{path}: {out}");
    };
    get("/index.html?before");
    let rotated = log.with_extension("log.1");
    // The writer flushes at least once a second; wait for the line, then rotate.
    let end = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("before")) {
        assert!(Instant::now() < end, "first line never written");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::rename(&log, &rotated).unwrap();
    signal(srv.pid(), libc::SIGUSR1);
    assert!(
        srv.wait_log("access log reopen", Duration::from_secs(5)),
        "{}",
        srv.log()
    );
    get("/index.html?after");
    assert!(srv.log().contains("access log reopened"), "{}", srv.log());
    assert!(srv.stop().success());
    let fresh = std::fs::read_to_string(&log).unwrap_or_default();
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(fresh.contains("?after"), "new log: {fresh:?}; old: {old:?}");
    assert!(!old.contains("?after"), "old log: {old:?}");
}

/// A capstone with `processes = 2`, `workers = 2` and the given accept mode.
fn start_capstone(dir: &Path, accept: &str) -> Server {
    let root = dir.join("www");
    write_site(&root);
    let cfg = dir.join("capstone.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 2\n\
             accept = \"{accept}\"\n[timeouts]\ndrain = 30\n",
            root.display()
        ),
    )
    .unwrap();
    Server::start_raw(CAPSTONE, &["--config", cfg.to_str().unwrap()], &[])
}

fn get_index(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read: {e}"))?;
    if out.starts_with("HTTP/1.1 200") && out.ends_with("<h1>drain</h1>\n") {
        Ok(())
    } else {
        Err(format!("bad response: {out:?}"))
    }
}

/// A reload keeps the port (the old generation drains a download meanwhile); a stop
/// releases it within [`CLOSED_WITHIN`] while downloads of both generations go on.
fn capstone_stop_releases_the_port(accept: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_capstone(tmp.path(), accept);
    let end = Instant::now() + Duration::from_secs(10);
    while get_index(srv.addr).is_err() {
        assert!(Instant::now() < end, "never served; log:\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let old = Download::start(srv.addr, "/big.bin");
    signal(srv.pid(), libc::SIGHUP);
    assert!(
        srv.wait_log("configuration reloaded", Duration::from_secs(5)),
        "{}",
        srv.log()
    );
    // The old workers drain (and let their copies of the sockets go); the port
    // stays open for the new ones.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if let Err(e) = get_index(srv.addr) {
            panic!(
                "{accept}: request failed after a reload: {e}; log:\n{}",
                srv.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let new = Download::start(srv.addr, "/big.bin");
    let term = Instant::now();
    signal(srv.pid(), libc::SIGTERM);
    let took = assert_port_released(srv.addr, term, || srv.log());
    assert!(!old.thread.is_finished(), "{accept}: old download cut");
    assert!(!new.thread.is_finished(), "{accept}: new download cut");
    for got in [old.abandon(), new.abandon()] {
        assert!(
            got.body < got.expected && got.ended > term,
            "{accept}: {got:?}"
        );
    }
    let status = srv.stop();
    assert!(status.success(), "{accept}: {status:?}");
    eprintln!("{accept}: port released {took:?} after SIGTERM");
}

#[test]
fn capstone_fill_stop_releases_the_port_at_once() {
    capstone_stop_releases_the_port("fill");
}

#[test]
fn capstone_shared_stop_releases_the_port_at_once() {
    capstone_stop_releases_the_port("shared");
}

#[test]
fn capstone_reuseport_stop_releases_the_port_at_once() {
    capstone_stop_releases_the_port("reuseport");
}

#[test]
fn capstone_single_process_stop_releases_the_port_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root);
    let cfg = tmp.path().join("capstone.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 0\nworkers = 2\n\
             [timeouts]\ndrain = 30\n",
            root.display()
        ),
    )
    .unwrap();
    let srv = Server::start_raw(CAPSTONE, &["--config", cfg.to_str().unwrap()], &[]);
    let dl = Download::start(srv.addr, "/big.bin");
    let term = Instant::now();
    signal(srv.pid(), libc::SIGTERM);
    assert_port_released(srv.addr, term, || srv.log());
    assert!(!dl.thread.is_finished(), "download cut");
    let got = dl.abandon();
    assert!(got.body < got.expected && got.ended > term, "{got:?}");
    assert!(srv.stop().success());
}
