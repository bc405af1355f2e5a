//! End-to-end tests of the capstone binary: real processes, real signals, real
//! sockets on loopback (port 0), loads bounded in count and time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_capstone");

/// A running capstone with its stderr (the error log) followed on a thread.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// The server's own state directory (`XDG_RUNTIME_DIR`): its default pid file
    /// and unpacked bundled site, apart from every other test's.
    state: tempfile::TempDir,
}

impl Server {
    fn start(config: &Path) -> Server {
        Server::start_args(&["--config", config.to_str().unwrap()])
    }

    fn start_args(args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        Server::spawn(cmd, tempfile::tempdir().unwrap())
    }

    /// Starts `cmd` (a capstone, however it is invoked) with `state` as its
    /// runtime directory.
    fn spawn(mut cmd: Command, state: tempfile::TempDir) -> Server {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .env("XDG_RUNTIME_DIR", state.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capstone");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening addr=").nth(1) {
                    if let (Some(t), Ok(a)) = (tx.take(), rest.trim().parse::<SocketAddr>()) {
                        let _ = t.send(a);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "capstone did not report its address; log: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        let s = Server {
            child,
            addr,
            log,
            state,
        };
        s.wait_ready();
        s
    }

    /// `capstone ARGS` run as a client of this server (same state directory):
    /// exit code, stdout and stderr.
    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .env("XDG_RUNTIME_DIR", self.state.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits until the error log has a line containing `what`.
    fn wait_log(&self, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log_text().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in the log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A counter of `/status.json`.
    fn counter(&self, name: &str) -> u64 {
        json_number(&self.status(), name)
            .unwrap_or_else(|| panic!("no {name} in {}", self.status()))
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if get(self.addr, "/status.json").is_ok_and(|r| r.status == 200) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "capstone never answered; log: {:?}",
            self.log.lock().unwrap()
        );
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st.code().unwrap_or(-1));
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn status(&self) -> String {
        String::from_utf8_lossy(&get(self.addr, "/status.json").expect("status").body).into_owned()
    }

    /// Waits until `n` workers show on the status page (a worker just forked shows
    /// once it has recorded its pid) and returns their pids.
    fn wait_workers(&self, n: usize) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.worker_pids();
            if pids.len() == n {
                return pids;
            }
            assert!(
                Instant::now() < deadline,
                "{} workers, want {n}: {}",
                pids.len(),
                self.status()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Worker pids from the status JSON, one per process.
    fn worker_pids(&self) -> Vec<i32> {
        let s = self.status();
        let mut pids: Vec<i32> = s
            .split("\"pid\":")
            .skip(1)
            .filter_map(|p| p.split([',', '}']).next()?.parse().ok())
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGQUIT);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// A capstone started without [`Server`]: stopped at once if the test fails early.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on our own child; its workers follow (PDEATHSIG).
            unsafe { libc::kill(self.0.id() as i32, libc::SIGQUIT) };
            let _ = self.0.wait();
        }
    }
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

/// The number after `"name":` in a flat JSON object.
fn json_number(json: &str, name: &str) -> Option<u64> {
    let rest = json.split(&format!("\"{name}\":")).nth(1)?;
    rest.split([',', '}']).next()?.trim().parse().ok()
}

/// One request on a fresh connection, read to the end and checked for completeness
/// against Content-Length.
fn get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    request_on(&mut s, path)
}

fn request_on(s: &mut TcpStream, path: &str) -> Result<Response, String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Response, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete head in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let body = raw[head_end + 4..].to_vec();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = len {
        if body.len() != len {
            return Err(format!("short body: {} of {len}", body.len()));
        }
    }
    Ok(Response { status, body })
}

fn write_site(dir: &Path, marker: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("index.html"), format!("<h1>{marker}</h1>\n")).unwrap();
    let big: Vec<u8> = (0..64 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.join("big.bin"), big).unwrap();
}

fn write_config(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

/// Client threads hammering `path` with one request per connection until `stop`.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<Vec<Outcome>>>,
}

#[derive(Debug)]
struct Outcome {
    connected: Instant,
    result: Result<Response, String>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {} ({} bytes)", self.status, self.body.len())
    }
}

impl Load {
    fn start(addr: SocketAddr, path: &'static str, clients: usize, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let end = Instant::now() + limit;
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < end
                        && out.len() < 20_000
                    {
                        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                            Ok(mut s) => {
                                let connected = Instant::now();
                                let result = request_on(&mut s, path);
                                out.push(Outcome { connected, result });
                            }
                            // Refused after the listener closed: nothing was accepted.
                            Err(_) => thread::sleep(Duration::from_millis(5)),
                        }
                    }
                    out
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

fn body_text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn default_config_serves_the_bundled_site_and_status() {
    let s = Server::start_args(&["--listen", "127.0.0.1:0"]);
    let r = get(s.addr, "/").unwrap();
    assert_eq!(r.status, 200);
    assert!(body_text(&r).contains("sysnet"), "{}", body_text(&r));
    // The front page shows control through the pid file, not a guess with pgrep.
    assert!(
        body_text(&r).contains("capstone -s reload"),
        "{}",
        body_text(&r)
    );
    assert!(!body_text(&r).contains("pgrep"), "{}", body_text(&r));
    for p in ["/style.css", "/logo.svg"] {
        assert_eq!(get(s.addr, p).unwrap().status, 200, "{p}");
    }
    assert_eq!(get(s.addr, "/no-such-page").unwrap().status, 404);
    let json = s.status();
    assert!(json.contains("\"requests_total\":"), "{json}");
    assert!(json.contains("\"responses_4xx\":"), "{json}");
    let html = body_text(&get(s.addr, "/status").unwrap());
    assert!(html.contains("http-equiv=\"refresh\""), "{html}");
    let json2 = body_text(&get(s.addr, "/status?format=json").unwrap());
    assert!(json2.starts_with('{'), "{json2}");
}

#[test]
fn graceful_shutdown_under_load_loses_no_request() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "drain");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 2\n[timeouts]\ndrain = 5\n",
            root.display()
        ),
    );
    let mut s = Server::start(&cfg);
    let load = Load::start(s.addr, "/big.bin", 8, Duration::from_secs(15));
    thread::sleep(Duration::from_millis(700));
    let sent_term = Instant::now();
    s.signal(libc::SIGTERM);
    let code = s.wait_exit(Duration::from_secs(10));
    let outcomes = load.finish();
    assert_eq!(code, Some(0), "exit code; log:\n{}", s.log_text());
    let before: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.connected < sent_term)
        .collect();
    assert!(
        before.len() > 50,
        "too little load to mean anything: {}",
        before.len()
    );
    for o in &before {
        match &o.result {
            Ok(r) => assert!(
                r.status == 200 && r.body.len() == 64 * 1024,
                "status {}",
                r.status
            ),
            Err(e) => panic!("a connection made before SIGTERM failed: {e}"),
        }
    }
}

#[test]
fn reload_under_load_switches_root_without_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_site(&a, "old-root");
    write_site(&b, "new-root");
    let cfg = tmp.path().join("c.toml");
    let conf = |root: &Path| {
        format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 2\n[timeouts]\ndrain = 5\n",
            root.display()
        )
    };
    write_config(&cfg, &conf(&a));
    let mut s = Server::start(&cfg);
    let master = s.pid();
    let load = Load::start(s.addr, "/index.html", 6, Duration::from_secs(20));
    thread::sleep(Duration::from_millis(500));
    write_config(&cfg, &conf(&b));
    let hup = Instant::now();
    s.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !body_text(&get(s.addr, "/index.html").unwrap()).contains("new-root") {
        assert!(
            Instant::now() < deadline,
            "new root never served; log:\n{}",
            s.log_text()
        );
        thread::sleep(Duration::from_millis(10));
    }
    // Old workers stop accepting as soon as they get the signal: give them that.
    thread::sleep(Duration::from_millis(300));
    let switched = Instant::now();
    thread::sleep(Duration::from_millis(700));
    let outcomes = load.finish();
    assert_eq!(s.pid(), master);
    let mut old = 0;
    for o in &outcomes {
        let r = o
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("request failed during reload: {e}"));
        assert_eq!(r.status, 200);
        let text = body_text(r);
        if o.connected > switched {
            assert!(
                text.contains("new-root"),
                "old root served after the switch"
            );
        }
        if text.contains("old-root") {
            old += 1;
        }
    }
    assert!(
        old > 0 && outcomes.len() > old,
        "load did not span the reload"
    );
    assert!(outcomes.iter().any(|o| o.connected < hup));
    assert!(s.log_text().contains("configuration reloaded"));
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn bad_reload_is_refused_and_old_config_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "still-here");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nworkers = 1\n",
            root.display()
        ),
    );
    let s = Server::start(&cfg);
    let pids = s.wait_workers(1);
    write_config(
        &cfg,
        "listen = [\"127.0.0.1:0\"]\nroot = \"/no/such/root\"\n",
    );
    s.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.log_text().contains("reload refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            s.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(s.log_text().contains("c.toml:2: root"), "{}", s.log_text());
    assert!(body_text(&get(s.addr, "/").unwrap()).contains("still-here"));
    assert_eq!(s.worker_pids(), pids, "workers were replaced");
}

#[test]
fn killed_worker_is_replaced_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "alive");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 1\n",
            root.display()
        ),
    );
    let s = Server::start(&cfg);
    let before = s.wait_workers(2);
    let load = Load::start(s.addr, "/index.html", 4, Duration::from_secs(10));
    thread::sleep(Duration::from_millis(300));
    let victim = before[0];
    let killed = Instant::now();
    // SAFETY: kill(2) on a worker pid read from the server's own status page.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    let mut replaced = None;
    while killed.elapsed() < Duration::from_secs(3) {
        let now = s.worker_pids();
        if now.len() == 2 && !now.contains(&victim) {
            replaced = Some(killed.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let took =
        replaced.unwrap_or_else(|| panic!("no replacement: {}\n{}", s.status(), s.log_text()));
    assert!(took < Duration::from_secs(1), "replacement took {took:?}");
    thread::sleep(Duration::from_millis(500));
    let outcomes = load.finish();
    // Requests in flight inside the killed process die with it; every request that
    // started afterwards must be answered.
    let grace = killed + Duration::from_millis(50);
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.connected > grace).collect();
    assert!(
        after.len() > 50,
        "too little load after the kill: {}",
        after.len()
    );
    for o in after {
        let r = o
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("request after the kill failed: {e}"));
        assert_eq!(r.status, 200);
    }
    assert!(
        s.status().contains("\"worker_restarts\":1"),
        "{}",
        s.status()
    );
}

#[test]
fn access_log_rotates_at_the_size_limit_keeping_n() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "logs");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 1\nworkers = 1\n\
             [log]\ndir = \"{}\"\naccess = \"access.log\"\nerror = \"off\"\nrotate_size = 2048\nkeep = 2\n",
            root.display(),
            logs.display()
        ),
    );
    let mut s = Server::start(&cfg);
    for _ in 0..200 {
        assert_eq!(get(s.addr, "/index.html").unwrap().status, 200);
    }
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["access.log", "access.log.1", "access.log.2"]);
    let line_len = std::fs::read_to_string(logs.join("access.log.1"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .len() as u64
        + 1;
    for n in &names {
        let len = std::fs::metadata(logs.join(n)).unwrap().len();
        assert!(len <= 2048, "{n} is {len} bytes");
        if n != "access.log" {
            assert!(len > 2048 - line_len, "{n} rotated early at {len} bytes");
        }
    }
    let line = std::fs::read_to_string(logs.join("access.log.1")).unwrap();
    assert!(line.contains("\"GET /index.html HTTP/1.1\" 200"), "{line}");
}

#[test]
fn usr1_reopens_the_access_log() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "reopen");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 1\nworkers = 1\n[log]\ndir = \"{}\"\nerror = \"off\"\n",
            root.display(),
            logs.display()
        ),
    );
    let mut s = Server::start(&cfg);
    get(s.addr, "/index.html?before").unwrap();
    let access = logs.join("access.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&access)
        .unwrap_or_default()
        .contains("before")
    {
        assert!(Instant::now() < deadline, "access line never written");
        thread::sleep(Duration::from_millis(50));
    }
    std::fs::rename(&access, logs.join("access.log.old")).unwrap();
    s.signal(libc::SIGUSR1);
    thread::sleep(Duration::from_millis(300));
    get(s.addr, "/index.html?after").unwrap();
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    let new = std::fs::read_to_string(&access).unwrap();
    assert!(new.contains("after") && !new.contains("before"), "{new}");
    assert!(!std::fs::read_to_string(logs.join("access.log.old"))
        .unwrap()
        .contains("after"));
}

#[test]
fn sigquit_stops_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "quit");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\n[timeouts]\ndrain = 60\n",
            root.display()
        ),
    );
    let mut s = Server::start(&cfg);
    // An idle keep-alive client that a graceful stop would wait for.
    let _idle = TcpStream::connect(s.addr).unwrap();
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    s.signal(libc::SIGQUIT);
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn single_process_mode_serves_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "single");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 0\nworkers = 2\n",
            root.display()
        ),
    );
    let mut s = Server::start(&cfg);
    assert!(body_text(&get(s.addr, "/").unwrap()).contains("single"));
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn config_errors_name_key_and_line_and_exit_nonzero() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "workers = 2\nlisten_on = [\"x\"]\n",
            ":2: listen_on: unknown field",
        ),
        (
            "root = \"www\"\nworkers = \"two\"\n",
            ":2: workers: invalid type",
        ),
        ("listen = [\"127.0.0.1:99999\"]\n", ":1: listen:"),
        ("max_clients = 0\n", ":1: max_clients: 0 is out of range"),
        ("\nroot = \"/definitely/not/here\"\n", ":2: root:"),
        ("[timeouts]\nidle = 0\n", ":2: timeouts.idle:"),
        ("[log]\nkeep = -3\n", ":2: log.keep:"),
        ("[log]\nrotate_size = \"lots\"\n", ":2: log.rotate_size:"),
        ("user = \"nobody-at-all-here\"\n", ":1: user: no such user"),
        ("workers = \n", ":1:"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for flag in ["--check-config", "--config"] {
            let out = Command::new(BIN).arg(flag).arg(&path).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{flag} {text:?} succeeded");
            assert!(
                err.contains(want),
                "{flag} {text:?}: stderr {err:?} lacks {want:?}"
            );
            assert_eq!(err.trim().lines().count(), 1, "one line expected: {err:?}");
        }
    }
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg("/no/such.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.toml"));
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("capstone.example.toml");
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_counts_requests_across_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "count");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 2\n",
            root.display()
        ),
    );
    let s = Server::start(&cfg);
    let n = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let n = n.clone();
            let addr = s.addr;
            thread::spawn(move || {
                for _ in 0..50 {
                    assert_eq!(get(addr, "/nope").unwrap().status, 404);
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let field = |json: &str, k: &str| -> u64 {
        json.split(&format!("\"{k}\":"))
            .nth(1)
            .unwrap()
            .split([',', '}'])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let j = s.status();
        if field(&j, "responses_4xx") >= 200 {
            assert!(field(&j, "requests_total") >= 200);
            assert!(field(&j, "connections_accepted") >= 200);
            break;
        }
        assert!(Instant::now() < deadline, "counters never reached 200: {j}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn error_log_goes_to_its_file_and_reopens_on_usr1() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "errors");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 1\n[log]\ndir = \"{}\"\naccess = \"off\"\n",
            root.display(),
            logs.display()
        ),
    );
    let mut guard = Guard(
        Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let error_log = logs.join("error.log");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr: SocketAddr = loop {
        let text = read(&error_log);
        if let Some(a) = text
            .split("listening addr=")
            .nth(1)
            .and_then(|r| r.lines().next())
        {
            if text.matches("worker serving").count() == 2 {
                break a.trim().parse().unwrap();
            }
        }
        assert!(Instant::now() < deadline, "error log: {}", read(&error_log));
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(get(addr, "/").unwrap().status, 200);
    std::fs::rename(&error_log, logs.join("error.log.old")).unwrap();
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read(&error_log).contains("logs reopened") {
        assert!(
            Instant::now() < deadline,
            "no reopen: {}",
            read(&logs.join("error.log.old"))
        );
        thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let after = read(&error_log);
    // The workers' own lines (their writer threads reopened too) reach the new file.
    assert!(after.contains("draining"), "{after}");
    assert!(after.contains("all workers done"), "{after}");
    assert!(!read(&logs.join("error.log.old")).contains("draining"));
}

#[test]
fn crash_loop_backs_off_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "back");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 1\n",
            root.display()
        ),
    );
    let s = Server::start(&cfg);
    let pids = s.wait_workers(2);
    // Both must have opened their root before it goes away.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.log_text().matches("worker serving").count() < 2 {
        assert!(Instant::now() < deadline, "{}", s.log_text());
        thread::sleep(Duration::from_millis(20));
    }
    // Replacements now fail at once: their root is gone.
    let parked = tmp.path().join("parked");
    std::fs::rename(&root, &parked).unwrap();
    // SAFETY: kill(2) on a worker pid from the server's own status page.
    assert_eq!(unsafe { libc::kill(pids[0], libc::SIGKILL) }, 0);
    thread::sleep(Duration::from_millis(2500));
    let deaths = s.log_text().matches("worker died").count();
    // 0.1 + 0.2 + 0.4 + 0.8 s of backoff fit in 2.5 s: about five, not hundreds.
    assert!(
        (3..=7).contains(&deaths),
        "{deaths} deaths:\n{}",
        s.log_text()
    );
    let delays: Vec<u64> = s
        .log_text()
        .lines()
        .filter_map(|l| {
            l.split("restart_in_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        delays.windows(2).skip(1).all(|w| w[1] >= w[0]),
        "backoff not growing: {delays:?}"
    );
    // The surviving worker kept serving throughout.
    std::fs::rename(&parked, &root).unwrap();
    assert_eq!(get(s.addr, "/index.html").unwrap().status, 200);
    let deadline = Instant::now() + Duration::from_secs(8);
    while s.worker_pids().len() < 2 {
        assert!(Instant::now() < deadline, "no recovery:\n{}", s.log_text());
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn busy_port_is_one_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--listen", &addr])
        .env("XDG_RUNTIME_DIR", state.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&addr) && err.contains("bind"), "{err}");
    assert!(
        !state.path().join("sysnet/capstone.pid").exists(),
        "pid file left by a failed start"
    );
}

#[test]
fn reload_moves_the_error_log_to_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "moved");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = tmp.path().join("c.toml");
    let base = format!(
        "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nworkers = 1\n",
        root.display()
    );
    write_config(&cfg, &base);
    let s = Server::start(&cfg);
    write_config(
        &cfg,
        &format!(
            "{base}[log]\ndir = \"{}\"\naccess = \"off\"\n",
            logs.display()
        ),
    );
    s.signal(libc::SIGHUP);
    let file = logs.join("error.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("configuration reloaded") && text.contains("worker serving") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "file: {text}\nstderr: {}",
            s.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!s.log_text().contains("configuration reloaded"));
}

#[test]
fn max_clients_per_loop_refuses_with_503() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "full");
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 1\nworkers = 1\nmax_clients = 2\n",
            root.display()
        ),
    );
    let s = Server::start(&cfg);
    let _a = TcpStream::connect(s.addr).unwrap();
    let _b = TcpStream::connect(s.addr).unwrap();
    thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    drop((_a, _b));
    // Until the loop has seen those two close, a status request is refused as well.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Ok(r) = get(s.addr, "/status.json") {
            let text = body_text(&r);
            let refused: u64 = text
                .split("\"connections_refused\":")
                .nth(1)
                .and_then(|v| v.split(',').next()?.parse().ok())
                .unwrap_or(0);
            // At least ours; refused status requests while the two closed count too.
            if refused >= 1 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "refusal never counted");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn counters_reach_the_device_as_deltas_including_at_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "dev");
    let device = tmp.path().join("sysnet");
    std::fs::write(&device, "").unwrap();
    let cfg = tmp.path().join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 1\n",
            root.display()
        ),
    );
    let mut guard = Guard(
        Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap()])
            .env("SYSNET_DEVICE", &device)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("capstone exited").unwrap();
        if let Some(a) = line.split("listening addr=").nth(1) {
            break a.trim().parse().unwrap();
        }
    };
    thread::spawn(move || for _ in lines {});
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "/index.html").is_err() {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..10 {
        assert_eq!(get(addr, "/index.html").unwrap().status, 200);
    }
    for _ in 0..5 {
        assert_eq!(get(addr, "/missing").unwrap().status, 404);
    }
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&device).unwrap();
    let sum = |name: &str| -> i128 {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("capstone.{name} ")))
            .map(|v| match v.strip_prefix('-') {
                Some(d) => -d.parse::<i128>().unwrap(),
                None => v.trim_start_matches('+').parse::<i128>().unwrap(),
            })
            .sum::<i128>()
    };
    assert_eq!(sum("responses_4xx"), 5, "{text}");
    assert!(sum("requests_total") >= 16, "{text}");
    assert_eq!(
        sum("requests_total"),
        sum("responses_2xx") + sum("responses_4xx"),
        "{text}"
    );
    // A gauge goes up and down through signed deltas; everyone has left.
    assert_eq!(sum("connections_active"), 0, "{text}");
}

/// A config with one worker process of one loop serving `root`, plus `extra` lines.
fn simple_config(dir: &Path, root: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("c.toml");
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 1\nworkers = 1\n{extra}",
            root.display()
        ),
    );
    cfg
}

#[test]
fn a_config_without_listen_is_refused_by_check_and_start() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, text) in ["", "# nothing but a comment\n", "workers = 2\n"]
        .iter()
        .enumerate()
    {
        let path = tmp.path().join(format!("empty{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for flag in ["--check-config", "--config"] {
            let out = Command::new(BIN)
                .arg(flag)
                .arg(&path)
                .env("XDG_RUNTIME_DIR", tmp.path())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{flag} {text:?}: {err}");
            assert_eq!(
                err.trim(),
                format!("capstone: {}: no `listen`", path.display()),
                "{flag} {text:?}"
            );
        }
    }
}

#[test]
fn reload_of_a_truncated_config_is_refused_and_the_port_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "kept");
    let cfg = simple_config(tmp.path(), &root, "");
    let s = Server::start(&cfg);
    let pids = s.wait_workers(1);
    // Truncated to 0 bytes, as a failed editor save or a full disk leaves it.
    std::fs::write(&cfg, "").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("reload refused", Duration::from_secs(5));
    assert!(s.log_text().contains("no `listen`"), "{}", s.log_text());
    assert!(body_text(&get(s.addr, "/").unwrap()).contains("kept"));
    assert_eq!(s.worker_pids(), pids, "workers were replaced");
    // A file that parses but keeps none of the current addresses is refused too.
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.2:0\"]\nroot = \"{}\"\n",
            root.display()
        ),
    );
    s.signal(libc::SIGHUP);
    s.wait_log("would close every current listener", Duration::from_secs(5));
    assert!(body_text(&get(s.addr, "/").unwrap()).contains("kept"));
    assert_eq!(s.worker_pids(), pids, "workers were replaced");
    assert!(s.status().contains("\"generation\":1,"), "{}", s.status());
}

#[test]
fn force_reload_may_close_every_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "moved");
    let cfg = simple_config(tmp.path(), &root, "");
    let s = Server::start(&cfg);
    s.wait_workers(1);
    let old = s.addr;
    let next = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    write_config(
        &cfg,
        &format!("listen = [\"{next}\"]\nroot = \"{}\"\n", root.display()),
    );
    let cfg_arg = cfg.to_str().unwrap();
    // A plain reload is refused ...
    let (code, _, err) = s.ctl(&["-s", "reload", "--config", cfg_arg]);
    assert_eq!(code, 0, "{err}");
    s.wait_log("would close every current listener", Duration::from_secs(5));
    assert!(body_text(&get(old, "/").unwrap()).contains("moved"));
    // ... a forced one moves the server to the new address and closes the old one.
    let (code, _, err) = s.ctl(&["-s", "force-reload", "--config", cfg_arg]);
    assert_eq!(code, 0, "{err}");
    s.wait_log("forced reload", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(next, "/").is_err() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(body_text(&get(next, "/").unwrap()).contains("moved"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(old).is_ok() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(TcpStream::connect(old).is_err(), "{old} still accepts");
}

#[test]
fn log_lines_lost_to_a_full_disk_are_counted_on_the_status_pages() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "full");
    // /dev/full takes opens and fails every write with ENOSPC: a disk that is full.
    let cfg = simple_config(
        tmp.path(),
        &root,
        "[log]\naccess = \"/dev/full\"\nerror = \"off\"\n",
    );
    let s = Server::start(&cfg);
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/index.html").unwrap().status, 200);
    }
    // The writer thread tries at least once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.counter("log_write_errors") < 5 {
        assert!(Instant::now() < deadline, "not counted: {}", s.status());
        thread::sleep(Duration::from_millis(50));
    }
    let html = body_text(&get(s.addr, "/status").unwrap());
    let row = html
        .split("<th align=\"left\">log_write_errors</th><td align=\"right\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no log_write_errors row: {html}"));
    let shown: u64 = row.split('<').next().unwrap().parse().unwrap();
    assert!(shown >= 5, "{html}");
}

#[test]
fn two_workers_never_grow_an_access_log_past_rotate_size() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "two");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = tmp.path().join("c.toml");
    // reuseport: the kernel spreads connections over both processes' sockets, so
    // both write the same file.
    write_config(
        &cfg,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\nprocesses = 2\nworkers = 1\naccept = \"reuseport\"\n\
             [log]\ndir = \"{}\"\naccess = \"access.log\"\nerror = \"off\"\nrotate_size = 1024\nkeep = 1000\n",
            root.display(),
            logs.display()
        ),
    );
    let mut s = Server::start(&cfg);
    s.wait_workers(2);
    // A fixed count, so that every rotated file is still kept at the end.
    let addr = s.addr;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..150 {
                    assert_eq!(get(addr, "/index.html").unwrap().status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let requests = 4 * 150;
    let loops = s.status();
    s.signal(libc::SIGTERM);
    assert_eq!(
        s.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        s.log_text()
    );
    // Both workers served (and so both wrote the log).
    let per_loop: Vec<u64> = loops
        .split("\"requests\":")
        .skip(1)
        .filter_map(|r| r.split('}').next()?.parse().ok())
        .collect();
    assert!(
        per_loop.len() == 2 && per_loop.iter().all(|&n| n > 50),
        "{loops}"
    );
    let mut lines = 0;
    let mut files = 0;
    for e in std::fs::read_dir(&logs).unwrap() {
        let e = e.unwrap();
        let len = e.metadata().unwrap().len();
        assert!(len <= 1024, "{:?} is {len} bytes", e.file_name());
        lines += std::fs::read_to_string(e.path()).unwrap().lines().count();
        files += 1;
    }
    assert!(files > 3, "too few rotations: {files}");
    assert!(files < 1000, "rotated past keep: {files}");
    assert!(lines >= requests, "{lines} lines for {requests} requests");
}

/// The worker processes of the master `pid` (its children).
fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn totals_keep_the_requests_of_a_worker_killed_right_after_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "counted");
    let cfg = simple_config(tmp.path(), &root, "");
    let s = Server::start(&cfg);
    let workers = children(s.pid());
    assert_eq!(workers.len(), 1, "{workers:?}");
    // This read itself is counted after it is rendered: +1.
    let before = s.counter("requests_total");
    for _ in 0..3 {
        assert_eq!(get(s.addr, "/index.html").unwrap().status, 200);
    }
    // SAFETY: kill(2) on the worker, a child of our own child.
    assert_eq!(unsafe { libc::kill(workers[0], libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = children(s.pid());
        if now.len() == 1 && now != workers {
            break;
        }
        assert!(Instant::now() < deadline, "no replacement worker");
        thread::sleep(Duration::from_millis(10));
    }
    s.wait_ready();
    // wait_ready's successful read was rendered before it counted itself.
    let after = s.counter("requests_total");
    assert!(
        after >= before + 1 + 3,
        "requests_total went from {before} to {after}: the killed worker's requests were lost"
    );
}

#[test]
fn pid_file_and_dash_s_signal_the_master() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write_site(&root, "pid");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let pid_file = tmp.path().join("c.pid");
    let cfg = simple_config(
        tmp.path(),
        &root,
        &format!(
            "pid_file = \"{}\"\n[log]\ndir = \"{}\"\naccess = \"access.log\"\nerror = \"off\"\n",
            pid_file.display(),
            logs.display()
        ),
    );
    let c = cfg.to_str().unwrap();
    let mut s = Server::start(&cfg);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        s.pid().to_string()
    );

    // A second master for the same pid file is refused before it binds anything.
    let (code, _, err) = s.ctl(&["--config", c]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("already running: pid {}", s.pid())),
        "{err}"
    );

    let (code, out, err) = s.ctl(&["-s", "reload", "--config", c]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("sent SIGHUP to master {}", s.pid())),
        "{out}"
    );
    s.wait_log("configuration reloaded", Duration::from_secs(5));

    std::fs::rename(logs.join("access.log"), logs.join("access.log.old")).unwrap();
    let (code, _, err) = s.ctl(&["-s", "reopen", "--config", c]);
    assert_eq!(code, 0, "{err}");
    s.wait_log("logs reopened", Duration::from_secs(5));

    let (code, _, err) = s.ctl(&["-s", "quit", "--config", c]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(s.log_text().contains("graceful stop"), "{}", s.log_text());
    assert!(!pid_file.exists(), "pid file left after a clean exit");
    assert!(logs.join("access.log").exists(), "reopen made no new file");

    // Stale: a pid with no process (a child already reaped), then a live process
    // that is not a capstone (this test). Both are reported, exit 1.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(&pid_file, format!("{gone_pid}\n")).unwrap();
    let (code, _, err) = s.ctl(&["-s", "reload", "--config", c]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stale pid file") && err.contains("no process"),
        "{err}"
    );
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    let (code, _, err) = s.ctl(&["-s", "stop", "--config", c]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stale pid file") && err.contains("not a capstone"),
        "{err}"
    );

    // A stale pid file does not stop a start; `-s stop` is the fast stop (SIGQUIT).
    let mut s2 = Server::start(&cfg);
    let (code, out, err) = s2.ctl(&["-s", "stop", "--config", c]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SIGQUIT"), "{out}");
    assert_eq!(s2.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        s2.log_text().contains("SIGQUIT: stopping now"),
        "{}",
        s2.log_text()
    );
    assert!(!pid_file.exists());

    // No pid file at all.
    let (code, _, err) = s2.ctl(&["-s", "reload", "--config", c]);
    assert_eq!(code, 1);
    assert!(err.contains(&pid_file.display().to_string()), "{err}");
}

#[test]
fn dash_s_without_config_finds_the_default_pid_file() {
    let mut s = Server::start_args(&["--listen", "127.0.0.1:0"]);
    let (code, _, err) = s.ctl(&["-s", "quit"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    let pid = s.state.path().join("sysnet/capstone.pid");
    assert!(!pid.exists(), "{} left behind", pid.display());
}

#[test]
fn a_copied_binary_serves_the_embedded_site() {
    // The source tree's www/ is hidden (an empty directory mounted over it, in a
    // mount namespace of the server's own), so the site can only come from the
    // binary itself.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("unshare").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and unshare(1) to hide the source tree");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin/capstone");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    // Copied by cp(1), not std::fs::copy: a descriptor open for writing in this process
    // would be inherited by any child another test forks meanwhile, and exec of the copy
    // would then fail with ETXTBSY until that child execs.
    let cp = Command::new("cp").arg(BIN).arg(&bin).status().unwrap();
    assert!(cp.success(), "cp {BIN}: {cp}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let www = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{}' '{}' && exec '{}' --listen 127.0.0.1:0",
            empty.display(),
            www.display(),
            bin.display()
        ));
    let s = Server::spawn(cmd, tempfile::tempdir().unwrap());
    let r = get(s.addr, "/").unwrap();
    assert_eq!(r.status, 200, "{}", s.log_text());
    let page = body_text(&r);
    assert!(page.contains("capstone -s reload"), "{page}");
    for p in ["/style.css", "/logo.svg"] {
        assert_eq!(get(s.addr, p).unwrap().status, 200, "{p}");
    }
}
