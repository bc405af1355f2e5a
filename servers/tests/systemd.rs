//! The servers under systemd's two service protocols, without systemd as PID 1:
//! Debian's `systemd-socket-activate` binds the socket and execs the server with
//! `LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`, and a datagram socket of the test's own
//! plays `NOTIFY_SOCKET`, checking the messages in order.
//!
//! `systemd-socket-activate` waits for the first connection before it execs, so each
//! test connects first (the connection waits in the passed socket's queue) and then
//! reads the server's readiness.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ACTIVATE: &str = "systemd-socket-activate";

/// A free loopback port (bound and released: the activator binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test's NOTIFY_SOCKET: a datagram socket in a temporary directory.
struct Notify {
    sock: UnixDatagram,
    path: std::path::PathBuf,
}

impl Notify {
    fn new(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        Notify { sock, path }
    }

    /// The next message, or a panic naming `what` after `timeout`.
    fn next(&self, what: &str, timeout: Duration) -> String {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => panic!("no notification while waiting for {what}: {e}"),
        }
    }

    /// Asserts no message arrives within `wait`.
    fn none_within(&self, wait: Duration) {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.sock.recv(&mut buf) {
            panic!(
                "unexpected notification: {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    }
}

fn lines(msg: &str) -> Vec<&str> {
    msg.lines().collect()
}

/// A server started through `systemd-socket-activate`, its stderr followed.
struct Activated {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Activated {
    /// `systemd-socket-activate -l ADDR... [--fdname=NAME] EXE ARGS`, with the
    /// variables the activator passes on (`-E`): RUST_LOG, NOTIFY_SOCKET and `env`.
    fn start(
        listen: &[SocketAddr],
        fdnames: Option<&str>,
        exe: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Activated {
        let mut cmd = Command::new(ACTIVATE);
        for a in listen {
            cmd.arg("-l").arg(a.to_string());
        }
        if let Some(n) = fdnames {
            cmd.arg(format!("--fdname={n}"));
        }
        cmd.arg("-E").arg("RUST_LOG=info");
        for (k, v) in env {
            cmd.arg("-E").arg(format!("{k}={v}"));
        }
        cmd.arg(exe).args(args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {ACTIVATE} (Debian's systemd package): {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Activated { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the log shows `text` within 5 s: a reader thread collects it, so a line the
    /// server wrote before a notification may reach the log a moment after it.
    fn log_shows(&self, text: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(text) {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// Waits up to 15 s for the exit.
    fn wait(&mut self) -> ExitStatus {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < end, "no exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to a port the activator listens on (retrying until it binds).
fn connect(addr: SocketAddr) -> TcpStream {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) => {
                assert!(Instant::now() < end, "connect {addr}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// One `GET /` with `Connection: close`; the status line.
fn get_status(mut s: TcpStream) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The inodes of the sockets process `pid` holds.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in dir.flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(ino) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = ino.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// The IPv4 TCP listening sockets (address, inode) that process `pid` holds.
fn listening(pid: u32) -> BTreeSet<(SocketAddr, u64)> {
    let mine = socket_inodes(pid);
    let mut out = BTreeSet::new();
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some((ip, port)) = f[1].split_once(':') else {
            continue;
        };
        let (Ok(ip), Ok(port), Ok(ino)) = (
            u32::from_str_radix(ip, 16),
            u16::from_str_radix(port, 16),
            f[9].parse::<u64>(),
        ) else {
            continue;
        };
        if mine.contains(&ino) {
            // /proc shows the address in host byte order of the network-order word.
            let ip = std::net::Ipv4Addr::from(ip.to_ne_bytes());
            out.insert((SocketAddr::from((ip, port)), ino));
        }
    }
    out
}

fn monotonic_usec() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000
}

#[test]
fn capstone_serves_the_passed_socket_and_notifies_through_a_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let notify = Notify::new(tmp.path());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // No --listen: the configuration's address is the default one, and the socket the
    // activator passes takes its place; the server binds nothing itself.
    let mut srv = Activated::start(
        &[addr],
        Some("web"),
        env!("CARGO_BIN_EXE_capstone"),
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", tmp.path().to_str().unwrap()),
        ],
    );
    // The first connection makes the activator exec the capstone; it waits queued.
    let first = connect(addr);
    let ready = notify.next("READY=1", Duration::from_secs(20));
    let l = lines(&ready);
    assert_eq!(l[0], "READY=1", "{ready}");
    assert!(
        l.iter().any(|x| x.starts_with("STATUS=generation 1")),
        "{ready}"
    );
    assert!(ready.contains(&addr.to_string()), "{ready}");
    // Ready means served: the queued connection and a new one, at once.
    assert_eq!(get_status(first), "HTTP/1.1 200 OK");
    assert_eq!(get_status(connect(addr)), "HTTP/1.1 200 OK");
    assert!(
        srv.log_shows("serving a socket passed by the service manager"),
        "{}",
        srv.log()
    );

    // The master listens on the passed socket only: the default 8080 was not bound.
    let before = listening(srv.pid());
    assert_eq!(
        before.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![addr],
        "listening sockets of the master: {before:?}\n{}",
        srv.log()
    );

    // SIGHUP: RELOADING=1 with a current CLOCK_MONOTONIC, then READY=1 once the new
    // generation serves; the passed socket is kept (same inode), nothing new is bound.
    let t0 = monotonic_usec();
    srv.signal(libc::SIGHUP);
    let reloading = notify.next("RELOADING=1", Duration::from_secs(10));
    let t1 = monotonic_usec();
    let l = lines(&reloading);
    assert_eq!(l[0], "RELOADING=1", "{reloading}");
    let usec: u64 = l
        .iter()
        .find_map(|x| x.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"))
        .parse()
        .unwrap();
    assert!(t0 <= usec && usec <= t1, "{t0} <= {usec} <= {t1}");
    let ready = notify.next("READY=1 after the reload", Duration::from_secs(10));
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains("STATUS=generation 2"), "{ready}");
    assert_eq!(get_status(connect(addr)), "HTTP/1.1 200 OK");
    assert_eq!(listening(srv.pid()), before, "{}", srv.log());

    // SIGTERM: STOPPING=1 first, then a clean exit.
    srv.signal(libc::SIGTERM);
    let stopping = notify.next("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    assert!(srv.wait().success(), "{}", srv.log());
    notify.none_within(Duration::from_millis(200));
}

#[test]
fn capstone_matches_by_port_name_and_binds_what_no_passed_socket_covers() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let passed: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Same port, another address: only the name (the port) ties the socket to it.
    let named: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let own: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = tmp.path().join("capstone.toml");
    std::fs::write(
        &cfg,
        format!("listen = [\"{own}\", \"{named}\"]\nprocesses = 1\nworkers = 1\n"),
    )
    .unwrap();
    let mut srv = Activated::start(
        &[passed],
        Some(&port.to_string()),
        env!("CARGO_BIN_EXE_capstone"),
        &["--config", cfg.to_str().unwrap()],
        &[("XDG_RUNTIME_DIR", tmp.path().to_str().unwrap())],
    );
    let first = connect(passed);
    assert_eq!(get_status(first), "HTTP/1.1 200 OK", "{}", srv.log());
    // The address with no passed socket is bound by the capstone itself...
    assert_eq!(get_status(connect(own)), "HTTP/1.1 200 OK", "{}", srv.log());
    // ...and the named one is not: the passed socket serves it.
    let held = listening(srv.pid());
    let addrs: BTreeSet<SocketAddr> = held.iter().map(|(a, _)| *a).collect();
    assert_eq!(addrs, [own, passed].into_iter().collect(), "{}", srv.log());
    srv.signal(libc::SIGTERM);
    assert!(srv.wait().success());
}

#[test]
fn capstone_single_process_says_ready_and_stopping_on_the_passed_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let notify = Notify::new(tmp.path());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = tmp.path().join("capstone.toml");
    std::fs::write(
        &cfg,
        "listen = [\"127.0.0.1:8080\"]\nprocesses = 0\nworkers = 1\n",
    )
    .unwrap();
    let mut srv = Activated::start(
        &[addr],
        None,
        env!("CARGO_BIN_EXE_capstone"),
        &["--config", cfg.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", tmp.path().to_str().unwrap()),
        ],
    );
    let first = connect(addr);
    let ready = notify.next("READY=1", Duration::from_secs(20));
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains(&addr.to_string()), "{ready}");
    assert_eq!(get_status(first), "HTTP/1.1 200 OK", "{}", srv.log());
    let held: Vec<SocketAddr> = listening(srv.pid()).iter().map(|(a, _)| *a).collect();
    assert_eq!(held, vec![addr]);
    // Without a master the process itself says it drains: STOPPING=1, then the exit.
    srv.signal(libc::SIGTERM);
    let stopping = notify.next("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    assert!(stopping.contains("STATUS=draining"), "{stopping}");
    assert!(srv.wait().success(), "{}", srv.log());
    notify.none_within(Duration::from_millis(200));
}

#[test]
fn capstone_keeps_a_passed_socket_across_reloads_that_drop_and_restore_it() {
    let tmp = tempfile::tempdir().unwrap();
    let notify = Notify::new(tmp.path());
    let passed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let own: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = tmp.path().join("capstone.toml");
    let write = |listen: &[SocketAddr]| {
        let l: Vec<String> = listen.iter().map(|a| format!("\"{a}\"")).collect();
        std::fs::write(
            &cfg,
            format!("listen = [{}]\nprocesses = 1\nworkers = 1\n", l.join(", ")),
        )
        .unwrap();
    };
    write(&[own, passed]);
    let mut srv = Activated::start(
        &[passed],
        None,
        env!("CARGO_BIN_EXE_capstone"),
        &["--config", cfg.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", tmp.path().to_str().unwrap()),
        ],
    );
    let first = connect(passed);
    assert!(notify
        .next("READY=1", Duration::from_secs(20))
        .starts_with("READY=1"));
    assert_eq!(get_status(first), "HTTP/1.1 200 OK", "{}", srv.log());
    let inode = |srv: &Activated| {
        listening(srv.pid())
            .iter()
            .find(|(a, _)| *a == passed)
            .map(|(_, i)| *i)
    };
    let original = inode(&srv).expect("the passed socket listens");
    let reload = |srv: &Activated| {
        srv.signal(libc::SIGHUP);
        assert!(notify
            .next("RELOADING=1", Duration::from_secs(10))
            .starts_with("RELOADING=1"));
        let ready = notify.next("READY=1", Duration::from_secs(10));
        assert!(ready.starts_with("READY=1"), "{ready}");
        assert!(!ready.contains("refused"), "{ready}\n{}", srv.log());
    };
    // Dropped from the configuration: the master still holds the passed socket.
    write(&[own]);
    reload(&srv);
    assert_eq!(inode(&srv), Some(original), "{}", srv.log());
    // Listed again: the very socket serves (not a new bind).
    write(&[own, passed]);
    reload(&srv);
    assert_eq!(inode(&srv), Some(original), "{}", srv.log());
    assert_eq!(
        get_status(connect(passed)),
        "HTTP/1.1 200 OK",
        "{}",
        srv.log()
    );
    assert!(
        srv.log().contains("serving the passed socket again"),
        "{}",
        srv.log()
    );
    srv.signal(libc::SIGTERM);
    assert!(srv.wait().success(), "{}", srv.log());
}

/// RESP: send one command, read one reply line.
fn resp(s: &mut TcpStream, args: &[&str]) -> String {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    if line.starts_with('$') && !line.starts_with("$-1") {
        let mut v = String::new();
        r.read_line(&mut v).unwrap();
        return v.trim_end().to_string();
    }
    line.trim_end().to_string()
}

#[test]
fn kvd_is_ready_after_the_log_replay_on_the_passed_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    // A log to replay: READY=1 must come after it is loaded.
    std::fs::write(
        dir.join("appendonly.aof"),
        "*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$5\r\nhello\r\n",
    )
    .unwrap();
    let notify = Notify::new(tmp.path());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Matched by address: the configured --listen is the passed socket's.
    let mut srv = Activated::start(
        &[addr],
        None,
        env!("CARGO_BIN_EXE_kvd"),
        &[
            "--listen",
            &addr.to_string(),
            "--dir",
            dir.to_str().unwrap(),
        ],
        &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())],
    );
    let mut first = connect(addr);
    let ready = notify.next("READY=1", Duration::from_secs(20));
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains("STATUS=1 keys"), "{ready}");
    assert_eq!(resp(&mut first, &["GET", "greeting"]), "hello");
    assert!(
        srv.log_shows("serving a socket passed by the service manager"),
        "{}",
        srv.log()
    );
    let held: Vec<SocketAddr> = listening(srv.pid()).iter().map(|(a, _)| *a).collect();
    assert_eq!(held, vec![addr]);
    srv.signal(libc::SIGTERM);
    let stopping = notify.next("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    assert!(srv.wait().success(), "{}", srv.log());
}

#[test]
fn kvd_refuses_a_passed_socket_it_has_no_address_for() {
    let tmp = tempfile::tempdir().unwrap();
    let a: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let b: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut srv = Activated::start(
        &[a, b],
        Some("main:extra"),
        env!("CARGO_BIN_EXE_kvd"),
        &[
            "--listen",
            &a.to_string(),
            "--dir",
            tmp.path().to_str().unwrap(),
        ],
        &[],
    );
    let _c = connect(a);
    let st = srv.wait();
    assert!(!st.success());
    let log = srv.log();
    assert!(
        log.contains("fd 4 (extra)") && log.contains(&b.to_string()),
        "{log}"
    );
}

#[test]
fn httpd_serves_the_passed_socket_and_says_ready_and_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), "hello\n").unwrap();
    let notify = Notify::new(tmp.path());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The default --listen (127.0.0.1:8080) is replaced by the passed socket.
    let mut srv = Activated::start(
        &[addr],
        Some("http"),
        env!("CARGO_BIN_EXE_httpd"),
        &["--root", root.to_str().unwrap()],
        &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())],
    );
    let first = connect(addr);
    let ready = notify.next("READY=1", Duration::from_secs(20));
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains(&addr.to_string()), "{ready}");
    assert_eq!(get_status(first), "HTTP/1.1 200 OK");
    let held: Vec<SocketAddr> = listening(srv.pid()).iter().map(|(a, _)| *a).collect();
    assert_eq!(held, vec![addr]);
    srv.signal(libc::SIGTERM);
    let stopping = notify.next("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    assert!(srv.wait().success(), "{}", srv.log());
}

/// `systemd-analyze verify` of dist/systemd in a throw-away root (`--root`): the unit
/// search path of the host's systemd package, stub binaries at the paths the units
/// name. verify exits 0 even on directives it ignores, so any output is a failure.
fn verify_units(units_dir: &Path) -> String {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["usr/bin", "etc/systemd/system", "usr/lib/systemd", "bin"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    for b in ["capstone", "kvd", "httpd"] {
        let p = r.join("usr/bin").join(b);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::copy("/bin/kill", r.join("bin/kill")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg("/lib/systemd/system")
        .arg(r.join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(st.success());
    for e in std::fs::read_dir(units_dir).unwrap().flatten() {
        std::fs::copy(e.path(), r.join("etc/systemd/system").join(e.file_name())).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .args([
            "capstone.socket",
            "capstone.service",
            "kvd.socket",
            "kvd.service",
            "httpd@site.service",
        ])
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && text.is_empty() {
        return format!("systemd-analyze verify failed: {}", out.status);
    }
    text
}

fn dist() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd")
}

#[test]
fn unit_files_verify_cleanly_and_are_hardened() {
    let out = verify_units(&dist());
    assert!(out.is_empty(), "systemd-analyze verify:\n{out}");
    for unit in ["capstone.service", "kvd.service", "httpd@.service"] {
        let text = std::fs::read_to_string(dist().join(unit)).unwrap();
        for line in [
            "Type=notify",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "CapabilityBoundingSet=",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{unit}: no {line}"
            );
        }
    }
    // The check has teeth: a misspelt value is reported.
    let broken = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dist()).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        std::fs::write(
            broken.path().join(e.file_name()),
            text.replace("ProtectSystem=strict", "ProtectSystem=strictly"),
        )
        .unwrap();
    }
    let out = verify_units(broken.path());
    assert!(out.contains("protect system value"), "{out}");
}
