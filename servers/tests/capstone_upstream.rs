//! End-to-end tests of the capstone as a reverse proxy: `[[upstream]]` pools behind
//! `[[location]]` prefixes. The origins are written here (std `TcpListener`s on
//! threads) and record exactly what reached them: request heads as sent, body
//! sizes, and how many connections they saw. Clients speak raw HTTP/1.1 (and curl
//! where it is installed).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_capstone");

/// One request as an origin received it.
#[derive(Clone, Debug)]
struct Seen {
    head: String,
    body_len: usize,
    /// The body's bytes summed, to check a large one arrived intact.
    body_sum: u64,
    /// The chunked body exactly as it arrived (small ones only).
    raw_body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// An HTTP/1.1 origin on a thread: answers `origin NAME PATH`, keeps connections
/// alive. Paths ask for behaviours: `/sleep/MS` waits before answering,
/// `/chunked` answers in chunks, `/api/big/N` sends N bytes, `/hop` adds hop-by-hop response fields,
/// `/slowread` reads a request body slowly, `/health` answers 200 or 503 as
/// `healthy` says.
struct Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<AtomicUsize>,
    alive: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Origin {
    fn start(name: &'static str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let o = Origin {
            addr,
            seen: Arc::default(),
            conns: Arc::default(),
            alive: Arc::new(AtomicBool::new(true)),
            healthy: Arc::new(AtomicBool::new(true)),
            streams: Arc::default(),
        };
        let (seen, conns, alive, healthy, streams) = (
            o.seen.clone(),
            o.conns.clone(),
            o.alive.clone(),
            o.healthy.clone(),
            o.streams.clone(),
        );
        thread::spawn(move || {
            for s in listener.incoming() {
                if !alive.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(s) = s else { continue };
                conns.fetch_add(1, Ordering::SeqCst);
                streams.lock().unwrap().push(s.try_clone().unwrap());
                let seen = seen.clone();
                let alive = alive.clone();
                let healthy = healthy.clone();
                thread::spawn(move || serve_origin(name, s, seen, alive, healthy));
            }
        });
        o
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// Stops listening and resets every connection, as a crashed process would.
    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn serve_origin(
    name: &'static str,
    s: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    alive: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        if !alive.load(Ordering::SeqCst) {
            return;
        }
        let mut seen_req = Seen {
            head: head.clone(),
            body_len: 0,
            body_sum: 0,
            raw_body: Vec::new(),
        };
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let slow_read = path.contains("/slowread");
        if let Some(n) = seen_req.header("content-length") {
            let mut left: usize = n.parse().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let k = r.read(&mut buf[..left.min(64 * 1024)]).unwrap();
                if k == 0 {
                    return;
                }
                seen_req.body_len += k;
                seen_req.body_sum += buf[..k].iter().map(|&b| b as u64).sum::<u64>();
                left -= k;
                if slow_read {
                    thread::sleep(Duration::from_millis(2));
                }
            }
        } else if seen_req.header("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap();
                seen_req.raw_body.extend_from_slice(size.as_bytes());
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0u8; n + 2];
                r.read_exact(&mut chunk).unwrap();
                seen_req.raw_body.extend_from_slice(&chunk);
                seen_req.body_len += n;
                if n == 0 {
                    break;
                }
            }
        }
        seen.lock().unwrap().push(seen_req);
        if let Some(ms) = path
            .strip_prefix("/api/sleep/")
            .or(path.strip_prefix("/slow/sleep/"))
        {
            thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        }
        let upgrade = seen
            .lock()
            .unwrap()
            .last()
            .and_then(|s| s.header("upgrade"));
        if let (true, Some(up)) = (path == "/api/ws", upgrade) {
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {up}\r\nConnection: Upgrade\r\n\r\n"
            );
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            // An echo, until the client closes.
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if let Some(n) = path.strip_prefix("/api/big/") {
            let n: usize = n.parse().unwrap();
            let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut left = n;
            while left > 0 {
                let k = left.min(block.len());
                if w.write_all(&block[..k]).is_err() {
                    return;
                }
                left -= k;
            }
            continue;
        }
        let body = format!("origin {name} {path}\n");
        let reply = if path == "/health" {
            if healthy.load(Ordering::SeqCst) {
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n".to_string()
            } else {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nsick\n".to_string()
            }
        } else if path.contains("/chunked") {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n".to_string()
        } else if path.contains("/hop") {
            format!("HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A running capstone (one process, one loop), its error log followed on a thread.
struct Capstone {
    child: Child,
    addr: SocketAddr,
    /// The HTTPS listener, when the configuration has one.
    tls_addr: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The configuration around `pools`: one loop, in `processes` worker processes
/// (0: no master).
fn config_text(dir: &Path, processes: usize, pools: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\nroot = {dir:?}\nprocesses = {processes}\nworkers = 1\n{pools}"
    )
}

impl Capstone {
    /// One pool `app` of `origins` (with `extra` pool settings) behind `/api/`.
    fn api(origins: &[&Origin], extra: &str) -> Capstone {
        Capstone::start(&format!(
            "{}[[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n",
            pool("app", origins, extra)
        ))
    }

    fn start(pools: &str) -> Capstone {
        Capstone::start_in(0, pools)
    }

    fn start_in(processes: usize, pools: &str) -> Capstone {
        Capstone::launch(|dir| config_text(dir, processes, pools))
    }

    /// A capstone whose whole configuration `text` makes from its directory.
    fn launch(text: impl FnOnce(&Path) -> String) -> Capstone {
        Capstone::launch_under(&[], text)
    }

    /// [`Capstone::launch`] with the binary run by `wrapper` (strace and its options).
    fn launch_under(wrapper: &[&str], text: impl FnOnce(&Path) -> String) -> Capstone {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "static\n").unwrap();
        let config = dir.path().join("capstone.toml");
        std::fs::write(&config, text(dir.path())).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = cmd
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("XDG_RUNTIME_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capstone");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = log.lock().unwrap().join("\n");
            if text.contains("worker serving") {
                if let Some(a) = text
                    .split("listening addr=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    break a;
                }
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!("capstone did not start; log:\n{text}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let tls_addr = log
            .lock()
            .unwrap()
            .join("\n")
            .split("listening for https addr=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse::<SocketAddr>().ok());
        Capstone {
            child,
            addr,
            tls_addr,
            log,
            config,
            _dir: dir,
        }
    }

    /// The process's peak resident set, in KiB (`VmHWM`).
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Capstone {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response: status, head as sent, body (still chunk-framed if it was).
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `r`; a chunked body is returned with its framing.
fn read_resp(r: &mut BufReader<TcpStream>) -> Resp {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "closed after {head:?}");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = head[9..12].parse().unwrap();
    let mut resp = Resp {
        status,
        head,
        body: Vec::new(),
    };
    if let Some(n) = resp.header("content-length") {
        let mut body = vec![0; n.parse().unwrap()];
        r.read_exact(&mut body).unwrap();
        resp.body = body;
    } else if resp.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            resp.body.extend_from_slice(size.as_bytes());
            let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
            if n == 0 {
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t).unwrap();
                    resp.body.extend_from_slice(t.as_bytes());
                    if t == "\r\n" {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).unwrap();
            resp.body.extend_from_slice(&chunk);
        }
    } else {
        r.read_to_end(&mut resp.body).unwrap();
    }
    resp
}

fn client(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

/// `GET path` on a connection of its own.
fn get(addr: SocketAddr, path: &str) -> Resp {
    let mut c = client(addr);
    write!(
        c.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_resp(&mut c)
}

fn pool(name: &str, origins: &[&Origin], extra: &str) -> String {
    let servers: Vec<String> = origins.iter().map(|o| format!("\"{}\"", o.addr)).collect();
    format!(
        "[[upstream]]\nname = \"{name}\"\nservers = [{}]\n{extra}\n",
        servers.join(", ")
    )
}

fn origin_of(r: &Resp) -> String {
    r.text().split(' ').nth(1).unwrap_or("").to_string()
}

/// A loopback address that refuses connections for as long as the returned socket
/// lives: bound but not listening, so no other socket (another test's origin, an
/// outgoing connection's ephemeral port) can take the port meanwhile, as it could
/// once a listener bound only to learn a free port was dropped.
fn refusing_addr() -> (std::os::fd::OwnedFd, SocketAddr) {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .unwrap();
    let at: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
    (fd, SocketAddr::from(([127, 0, 0, 1], at.port())))
}

#[test]
fn round_robin_spreads_evenly_over_kept_connections() {
    let (a, b, c) = (Origin::start("a"), Origin::start("b"), Origin::start("c"));
    let cap = Capstone::api(&[&a, &b, &c], "");
    let mut by = std::collections::HashMap::new();
    for i in 0..30 {
        let r = get(cap.addr, &format!("/api/n{i}"));
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.text().ends_with(&format!(" /api/n{i}\n")), "{r:?}");
        *by.entry(origin_of(&r)).or_insert(0) += 1;
    }
    assert_eq!(by.len(), 3, "{by:?}");
    assert!(by.values().all(|&n| n == 10), "{by:?}");
    // Outside the location: the static site.
    assert_eq!(get(cap.addr, "/").text(), "static\n");
    // Kept alive: one connection per origin served all ten.
    let conns = a.connections() + b.connections() + c.connections();
    assert!(conns <= 3, "30 requests took {conns} upstream connections");
}

#[test]
fn least_conn_avoids_the_busy_server() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let cap = Capstone::api(&[&a, &b], "balance = \"least_conn\"");
    let addr = cap.addr;
    let slow = thread::spawn(move || get(addr, "/api/sleep/1500"));
    // Until the slow request reached its origin.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.seen().len() + b.seen().len() == 0 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(10));
    }
    let busy = if a.seen().is_empty() { "b" } else { "a" };
    for i in 0..6 {
        let r = get(cap.addr, &format!("/api/quick{i}"));
        assert_eq!(r.status, 200);
        assert_ne!(origin_of(&r), busy, "went to the busy server: {r:?}");
    }
    let r = slow.join().unwrap();
    assert_eq!((r.status, origin_of(&r)), (200, busy.to_string()));
}

#[test]
fn hop_by_hop_fields_are_removed_both_ways_and_forwarded_fields_added() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    let mut c = client(cap.addr);
    c.get_mut()
        .write_all(
            b"GET /api/hop?x=1 HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, X-Hop\r\n\
              X-Hop: secret\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nUpgrade: h2c\r\n\
              X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Other: kept\r\n\r\n",
        )
        .unwrap();
    let r = read_resp(&mut c);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-kept"), Some("yes"));
    for gone in ["x-resp-hop", "keep-alive"] {
        assert_eq!(
            r.header(gone),
            None,
            "{gone} reached the client: {}",
            r.head
        );
    }
    assert_eq!(r.header("connection"), None, "{}", r.head);
    let seen = a.seen();
    let s = &seen[0];
    assert!(
        s.head.starts_with("GET /api/hop?x=1 HTTP/1.1\r\n"),
        "{}",
        s.head
    );
    for gone in ["x-hop", "keep-alive", "te", "upgrade", "connection"] {
        assert_eq!(
            s.header(gone),
            None,
            "{gone} reached the origin: {}",
            s.head
        );
    }
    assert_eq!(s.header("host").as_deref(), Some("app.test"));
    assert_eq!(s.header("x-other").as_deref(), Some("kept"));
    assert_eq!(
        s.header("x-forwarded-for").as_deref(),
        Some("192.0.2.1, 127.0.0.1")
    );
    assert_eq!(s.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        s.header("forwarded").as_deref(),
        Some("for=127.0.0.1;proto=http;host=\"app.test\"")
    );
    // The same client connection carries a second request.
    write!(
        c.get_mut(),
        "GET /api/again HTTP/1.1\r\nHost: app.test\r\n\r\n"
    )
    .unwrap();
    let r = read_resp(&mut c);
    assert_eq!(
        (r.status, r.text()),
        (200, "origin a /api/again\n".to_string())
    );
}

#[test]
fn no_get_fails_while_another_origin_is_up() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let cap = Capstone::api(&[&a, &b], "connect_timeout = 1");
    for i in 0..40 {
        if i == 10 {
            a.kill();
        }
        let r = get(cap.addr, &format!("/api/k{i}"));
        assert_eq!(r.status, 200, "request {i}: {r:?}\n{}", cap.log_text());
        if i > 10 {
            assert_eq!(origin_of(&r), "b");
        }
    }
    // Every origin refused: 502.
    b.kill();
    let r = get(cap.addr, "/api/none");
    assert_eq!(r.status, 502, "{r:?}");
}

#[test]
fn a_slow_origin_gets_504_and_does_not_hold_up_the_others() {
    let (slow, fast) = (Origin::start("slow"), Origin::start("fast"));
    let cap = Capstone::start(&format!(
        "{}{}[[location]]\nprefix = \"/slow/\"\nupstream = \"slow\"\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"fast\"\n",
        pool("slow", &[&slow], "read_timeout = \"1500ms\""),
        pool("fast", &[&fast], "")
    ));
    let addr = cap.addr;
    let t0 = Instant::now();
    let waiting = thread::spawn(move || get(addr, "/slow/sleep/3000"));
    thread::sleep(Duration::from_millis(100));
    for i in 0..5 {
        let t = Instant::now();
        let r = get(cap.addr, &format!("/api/f{i}"));
        assert_eq!(r.status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    let r = waiting.join().unwrap();
    assert_eq!(r.status, 504, "{r:?}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(2900),
        "{took:?}"
    );
}

#[test]
fn a_large_post_is_streamed_up_in_bounded_memory() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    assert_eq!(get(cap.addr, "/api/warm").status, 200);
    let before = cap.peak_rss_kib();
    const LEN: usize = 20 << 20;
    let mut c = client(cap.addr);
    write!(
        c.get_mut(),
        "POST /api/slowread HTTP/1.1\r\nHost: app.test\r\nContent-Length: {LEN}\r\n\r\n"
    )
    .unwrap();
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut sum = 0u64;
    for _ in 0..LEN / block.len() {
        c.get_mut().write_all(&block).unwrap();
        sum += block.iter().map(|&b| b as u64).sum::<u64>();
    }
    let r = read_resp(&mut c);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = a.seen();
    let post = seen.iter().find(|s| s.head.starts_with("POST")).unwrap();
    assert_eq!((post.body_len, post.body_sum), (LEN, sum));
    let grew = cap.peak_rss_kib().saturating_sub(before);
    assert!(
        grew < 8 * 1024,
        "peak RSS grew by {grew} KiB for a 20 MiB body"
    );
}

#[test]
fn a_slow_reader_throttles_its_upstream_in_bounded_memory() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "read_timeout = 20");
    assert_eq!(get(cap.addr, "/api/warm").status, 200);
    let before = cap.peak_rss_kib();
    const LEN: usize = 48 << 20;
    // Slow for the first 8 MiB: the origin is far ahead by then unless throttled.
    slow_download(cap.addr, LEN, 8 << 20);
    let grew = cap.peak_rss_kib().saturating_sub(before);
    assert!(
        grew < 8 * 1024,
        "peak RSS grew by {grew} KiB for a 48 MiB response"
    );
}

/// The `splice` calls strace recorded so far (one line each).
fn splice_calls(trace: &Path) -> usize {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("splice("))
        .count()
}

/// The capstone's own pid (the wrapper's child), from its log.
fn capstone_pid(cap: &Capstone) -> i32 {
    cap.log_text()
        .split("worker serving pid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("pid in the log")
}

#[test]
fn a_body_of_known_length_is_spliced_to_a_slow_reader_and_others_are_copied() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: strace is not installed");
        return;
    }
    let a = Origin::start("a");
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("trace");
    let trace_arg = trace.to_str().unwrap().to_string();
    let cap = Capstone::launch_under(
        &[
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=splice",
            "-o",
            &trace_arg,
        ],
        |dir| {
            config_text(
                dir,
                0,
                &format!(
                    "{}[[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n",
                    pool("app", &[&a], "read_timeout = 20")
                ),
            )
        },
    );
    let pid = capstone_pid(&cap);
    // A short body arrives with its head and a chunked one is scanned: copied.
    assert_eq!(get(cap.addr, "/api/small").status, 200);
    assert_eq!(get(cap.addr, "/api/chunked").status, 200);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        splice_calls(&trace),
        0,
        "spliced a body that needs no splice"
    );
    // 16 MiB through a pipe of at most 1 MiB, read slowly: many splices, every
    // byte in order.
    const LEN: usize = 16 << 20;
    slow_download(cap.addr, LEN, 4 << 20);
    thread::sleep(Duration::from_millis(200));
    let calls = splice_calls(&trace);
    assert!(calls >= 32, "{calls} splice calls for 16 MiB");
    // The upstream connection went back to the pool: the next request reuses it.
    let conns = a.connections();
    assert_eq!(get(cap.addr, "/api/again").status, 200);
    assert_eq!(a.connections(), conns);
    // A request body of known length goes up the same way, to a slow reader.
    const UP: usize = 4 << 20;
    let mut c = client(cap.addr);
    write!(
        c.get_mut(),
        "POST /api/slowread HTTP/1.1\r\nHost: app.test\r\nContent-Length: {UP}\r\n\r\n"
    )
    .unwrap();
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..UP / block.len() {
        c.get_mut().write_all(&block).unwrap();
    }
    assert_eq!(read_resp(&mut c).status, 200);
    let post = a
        .seen()
        .into_iter()
        .find(|s| s.head.starts_with("POST"))
        .unwrap();
    let per_block: u64 = block.iter().map(|&b| b as u64).sum();
    assert_eq!(
        (post.body_len, post.body_sum),
        (UP, per_block * (UP / block.len()) as u64)
    );
    thread::sleep(Duration::from_millis(200));
    let up_calls = splice_calls(&trace) - calls;
    assert!(up_calls >= 8, "{up_calls} splice calls for a 4 MiB upload");
    // A WebSocket tunnel: each message spliced up, and its echo down.
    let before_ws = splice_calls(&trace);
    let mut c = client(cap.addr);
    c.get_mut()
        .write_all(
            b"GET /api/ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\n\r\n",
        )
        .unwrap();
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        assert!(c.read_line(&mut line).unwrap() > 0, "closed after {head:?}");
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    for msg in ["ping", "a longer second message"] {
        c.get_mut().write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    thread::sleep(Duration::from_millis(200));
    let ws_calls = splice_calls(&trace) - before_ws;
    assert!(
        ws_calls >= 8,
        "{ws_calls} splice calls for two echoed messages"
    );
    // SAFETY: kill(2) on the capstone strace started for this test.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
}

#[test]
fn an_upstream_reset_mid_body_cuts_a_spliced_download_off() {
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = origin.local_addr().unwrap();
    thread::spawn(move || {
        let (s, _) = origin.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        while r.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut w = s;
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n")
            .unwrap();
        let block = vec![7u8; 64 * 1024];
        for _ in 0..32 {
            if w.write_all(&block).is_err() {
                return;
            }
        }
        thread::sleep(Duration::from_millis(300));
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on an open socket with a correctly sized linger struct;
        // a zero linger makes the close a reset.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&w),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        drop(w);
    });
    let cap = Capstone::start(&format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"{addr}\"]\nread_timeout = 30\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n"
    ));
    let mut c = client(cap.addr);
    write!(
        c.get_mut(),
        "GET /api/reset HTTP/1.1\r\nHost: app.test\r\n\r\n"
    )
    .unwrap();
    let started = Instant::now();
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    // The client's read timeout is 10 s: a hang fails here.
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("after {got} bytes: {e}"),
        }
    }
    assert!(got <= 2 << 20, "{got} bytes of a 2 MiB start");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn weights_and_backups() {
    let (a, b, spare) = (
        Origin::start("a"),
        Origin::start("b"),
        Origin::start("spare"),
    );
    let servers = format!(
        "[[upstream]]\nname = \"app\"\nservers = [{{ addr = \"{}\", weight = 2 }}, \"{}\", \
         {{ addr = \"{}\", backup = true }}]\nmax_fails = 1\ncooldown = 30\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n",
        a.addr, b.addr, spare.addr
    );
    let cap = Capstone::start(&servers);
    let mut by = std::collections::HashMap::new();
    for i in 0..30 {
        let r = get(cap.addr, &format!("/api/w{i}"));
        *by.entry(origin_of(&r)).or_insert(0) += 1;
    }
    assert_eq!(
        (by.get("a"), by.get("b"), by.get("spare")),
        (Some(&20), Some(&10), None)
    );
    a.kill();
    b.kill();
    for i in 0..5 {
        let r = get(cap.addr, &format!("/api/s{i}"));
        assert_eq!(
            (r.status, origin_of(&r)),
            (200, "spare".to_string()),
            "{r:?}"
        );
    }
}

#[test]
fn a_graceful_stop_lets_a_proxied_request_finish() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    let addr = cap.addr;
    let waiting = thread::spawn(move || get(addr, "/api/sleep/800"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.seen().is_empty() {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(cap.child.id() as i32, libc::SIGTERM) },
        0
    );
    let r = waiting.join().unwrap();
    assert_eq!(
        (r.status, r.text()),
        (200, "origin a /api/sleep/800\n".to_string())
    );
}

#[test]
fn proxied_requests_are_logged_and_counted() {
    let a = Origin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (_held, dead) = refusing_addr();
    let cap = Capstone::start(&format!(
        "[log]\naccess = {log:?}\n{}[[upstream]]\nname = \"dead\"\nservers = [\"{dead}\"]\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n\
         [[location]]\nprefix = \"/dead/\"\nupstream = \"dead\"\n",
        pool("app", &[&a], "")
    ));
    let mut c = client(cap.addr);
    c.get_mut()
        .write_all(
            b"GET /api/logged HTTP/1.1\r\nHost: app.test\r\nReferer: http://ref.test/page\r\n\
              User-Agent: ua-test/1.0 (\"quoted\")\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert_eq!(read_resp(&mut c).status, 200);
    assert_eq!(get(cap.addr, "/dead/x").status, 502);
    // The Combined format, as for a static request: Referer and User-Agent
    // included; then the server tried and how long it took.
    let want = [
        format!("\"GET /api/logged HTTP/1.1\" 200 21 \"http://ref.test/page\" \"ua-test/1.0 (\\x22quoted\\x22)\" \"{}\" \"0.", a.addr),
        format!("\"GET /dead/x HTTP/1.1\" 502 16 \"-\" \"-\" \"{dead}\" \"0."),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if want.iter().all(|w| text.contains(w.as_str())) {
            break;
        }
        assert!(Instant::now() < deadline, "access log:\n{text}");
        thread::sleep(Duration::from_millis(50));
    }
    let status = get(cap.addr, "/status.json").text();
    assert!(
        status.contains("\"requests\":2") || status.contains("\"requests\": 2"),
        "{status}"
    );
    // Each upstream server's own counters.
    for row in [
        format!("{{\"upstream\":\"app\",\"server\":\"{}\",\"state\":\"up\",\"requests\":1,\"failures\":0,\"active\":0,\"responses\":1,", a.addr),
        format!("{{\"upstream\":\"dead\",\"server\":\"{dead}\",\"state\":\"up\",\"requests\":1,\"failures\":1,\"active\":0,\"responses\":0,"),
    ] {
        assert!(status.contains(&row), "{row} not in {status}");
    }
    let page = get(cap.addr, "/status").text();
    assert!(page.contains("<table id=\"upstreams\">"), "{page}");
    assert!(
        page.contains(&format!("<td>dead</td><td>{dead}</td><td class=\"up\">up</td><td>1</td><td>1</td><td>0</td><td>-</td>")),
        "{page}"
    );
}

/// The last two fields of an access log line (the upstream's address and
/// response time), once a line for `request` is in the log.
fn upstream_fields(log: &Path, request: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(request)) {
            // `... "addr" "time"`: the last four quotes.
            let fields: Vec<&str> = line.rsplitn(5, '"').collect();
            return (fields[3].to_string(), fields[1].to_string());
        }
        assert!(Instant::now() < deadline, "no line for {request}:\n{text}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_access_log_names_every_server_tried_and_its_time() {
    let a = Origin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (_held, dead) = refusing_addr();
    // The smooth round robin starts with the first server: the refusing one.
    let cap = Capstone::start(&format!(
        "[log]\naccess = {log:?}\n[[upstream]]\nname = \"two\"\nservers = [\"{dead}\", \"{}\"]\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"two\"\n",
        a.addr
    ));
    let r = get(cap.addr, "/api/sleep/150");
    assert_eq!((r.status, origin_of(&r)), (200, "a".to_string()));
    let (addrs, times) = upstream_fields(&log, "GET /api/sleep/150 ");
    assert_eq!(addrs, format!("{dead}, {}", a.addr));
    let times: Vec<f64> = times.split(", ").map(|t| t.parse().unwrap()).collect();
    assert_eq!(times.len(), 2, "{times:?}");
    assert!(times[0] < 0.15, "a refused connect took {}", times[0]);
    assert!(
        (0.15..5.0).contains(&times[1]),
        "the origin slept 150 ms: {}",
        times[1]
    );
    // Not proxied: "-" for both.
    assert_eq!(get(cap.addr, "/index.html").status, 200);
    assert_eq!(
        upstream_fields(&log, "GET /index.html "),
        ("-".to_string(), "-".to_string())
    );
}

#[test]
fn an_idle_client_after_a_proxied_response_is_closed_quietly() {
    let a = Origin::start("a");
    let cap = Capstone::start(&format!(
        "[timeouts]\nidle = 1\n{}[[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n",
        pool("app", &[&a], "")
    ));
    let mut c = client(cap.addr);
    write!(
        c.get_mut(),
        "GET /api/idle HTTP/1.1\r\nHost: app.test\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_resp(&mut c).status, 200);
    let t = Instant::now();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "",
        "no answer to a request never sent"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_reload_changes_the_pool_without_dropping_a_request_in_flight() {
    let (old, new) = (Origin::start("old"), Origin::start("new"));
    let loc = "[[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n";
    let cap = Capstone::start_in(1, &format!("{}{loc}", pool("app", &[&old], "")));
    let addr = cap.addr;
    let waiting = thread::spawn(move || get(addr, "/api/sleep/1500"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while old.seen().is_empty() {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(10));
    }
    let dir = cap.config.parent().unwrap().to_path_buf();
    std::fs::write(
        &cap.config,
        config_text(&dir, 1, &format!("{}{loc}", pool("app", &[&new], ""))),
    )
    .unwrap();
    // SAFETY: kill(2) on our own child's pid (the master).
    assert_eq!(
        unsafe { libc::kill(cap.child.id() as i32, libc::SIGHUP) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get(cap.addr, "/api/which");
        assert_eq!(r.status, 200, "{r:?}");
        if origin_of(&r) == "new" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload not applied:\n{}",
            cap.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let r = waiting.join().unwrap();
    assert_eq!((r.status, origin_of(&r)), (200, "old".to_string()), "{r:?}");
}

#[test]
fn hash_client_ip_keeps_a_client_on_one_server() {
    let (a, b, c) = (Origin::start("a"), Origin::start("b"), Origin::start("c"));
    let cap = Capstone::api(&[&a, &b, &c], "balance = \"hash_client_ip\"");
    let first = origin_of(&get(cap.addr, "/api/h0"));
    for i in 1..12 {
        assert_eq!(origin_of(&get(cap.addr, &format!("/api/h{i}"))), first);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_whoever_serves_them() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    let mut c = client(cap.addr);
    c.get_mut()
        .write_all(
            b"GET /api/one HTTP/1.1\r\nHost: app.test\r\n\r\n\
              POST /api/two HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nxyz\
              GET / HTTP/1.1\r\nHost: app.test\r\n\r\n\
              GET /api/sleep/50 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let texts: Vec<String> = (0..4).map(|_| read_resp(&mut c).text()).collect();
    assert_eq!(
        texts,
        [
            "origin a /api/one\n",
            "origin a /api/two\n",
            "static\n",
            "origin a /api/sleep/50\n"
        ]
    );
    let seen = a.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].body_len, 3);
}

#[test]
fn a_failing_server_is_taken_out_for_its_cooldown() {
    let a = Origin::start("a");
    let (_held, dead) = refusing_addr();
    let cap = Capstone::start(&format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"{dead}\", \"{}\"]\n\
         max_fails = 2\nfail_window = 10\ncooldown = 30\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n",
        a.addr
    ));
    for i in 0..20 {
        let r = get(cap.addr, &format!("/api/h{i}"));
        assert_eq!((r.status, origin_of(&r)), (200, "a".to_string()), "{r:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cap.log_text().contains("taken out") {
        assert!(Instant::now() < deadline, "{}", cap.log_text());
        thread::sleep(Duration::from_millis(20));
    }
    // Two refusals took it out; it was not tried again within the cooldown.
    assert_eq!(
        cap.log_text().matches("taken out").count(),
        1,
        "{}",
        cap.log_text()
    );
}

#[test]
fn an_upgrade_is_tunnelled_both_ways() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    let mut c = client(cap.addr);
    c.get_mut()
        .write_all(
            b"GET /api/ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        assert!(c.read_line(&mut line).unwrap() > 0, "closed after {head:?}");
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: upgrade\r\n"), "{head}");
    let seen = a.seen();
    assert_eq!(seen[0].header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(seen[0].header("connection").as_deref(), Some("upgrade"));
    assert_eq!(
        seen[0].header("sec-websocket-key").as_deref(),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    for msg in ["ping", "a longer second message"] {
        c.get_mut().write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    // The client leaves; the origin's side closes too.
    c.get_mut().shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn chunked_bodies_pass_exactly_both_ways() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    let r = get(cap.addr, "/api/chunked");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        r.body,
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
    );
    let mut c = client(cap.addr);
    c.get_mut()
        .write_all(
            b"POST /api/up HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
    let r = read_resp(&mut c);
    assert_eq!(r.status, 200);
    let seen = a.seen();
    let post = seen.iter().find(|s| s.head.starts_with("POST")).unwrap();
    assert_eq!(post.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(post.raw_body, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
}

#[test]
fn check_config_names_the_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[location]]\nprefix = \"/api/\"\nupstream = \"nope\"\n",
            "location.upstream: no [[upstream]] is named \"nope\"",
        ),
        (
            "[[upstream]]\nname = \"app\"\nservers = []\n",
            "upstream.servers: upstream \"app\" has no servers",
        ),
        (
            "[[upstream]]\nname = \"app\"\nservers = [\"app.internal:80\"]\n",
            "is not an IP:PORT address",
        ),
    ];
    for (text, want) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("listen = [\"127.0.0.1:0\"]\n{text}")).unwrap();
        let out = Command::new(BIN)
            .arg("--check-config")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} passed");
        assert!(err.contains(want), "{text}: {err}");
    }
    let good = Path::new(&dir.path().to_path_buf()).join("good.toml");
    std::fs::write(
        &good,
        "listen = [\"127.0.0.1:0\"]\n[[upstream]]\nname = \"app\"\n\
         servers = [\"127.0.0.1:9001\", { addr = \"127.0.0.1:9002\", weight = 2, backup = true }]\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn h2c_never_serves_a_proxied_prefix_from_the_static_root() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIP: no curl (scripts/test.sh installs it)");
        return;
    }
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    // A file under the root at a proxied path: HTTP/2 must not reach it either.
    let api = cap._dir.path().join("api");
    std::fs::create_dir(&api).unwrap();
    std::fs::write(api.join("x"), "static copy\n").unwrap();
    let url = format!("http://{}/api/x", cap.addr);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--http2-prior-knowledge", &url])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(!body.contains("static copy"), "h2c served the root: {body}");
    // HTTP/1.1 on the same listener is proxied as configured.
    let r = get(cap.addr, "/api/x");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().starts_with("origin a "), "{r:?}");
}

#[test]
fn a_request_pipelined_after_a_static_one_with_a_body_is_still_routed() {
    let a = Origin::start("a");
    let cap = Capstone::api(&[&a], "");
    // A file under the root at a proxied path: it must never be what answers.
    let api = cap._dir.path().join("api");
    std::fs::create_dir(&api).unwrap();
    std::fs::write(api.join("x"), "static copy\n").unwrap();
    let mut c = client(cap.addr);
    c.get_mut()
        .write_all(
            b"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nxyz\
              GET /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n\
              GET / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
              GET /api/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let texts: Vec<String> = (0..4).map(|_| read_resp(&mut c).text()).collect();
    assert_eq!(
        texts,
        [
            "static\n",
            "origin a /api/x\n",
            "static\n",
            "origin a /api/x\n"
        ]
    );
}

/// `curl -sS ARGS` against the capstone's HTTPS listener (the name `localhost`
/// resolved to it); (stdout, stderr).
fn curl_https(cap: &Capstone, ca: &Path, path: &str, args: &[&str]) -> (String, String) {
    let addr = cap.tls_addr.expect("an https listener");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", addr.port()))
        .args(args)
        .arg(format!("https://localhost:{}{path}", addr.port()))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Requests written at once on one TLS connection (Python's ssl module), and
/// everything read back until the server closes.
fn pipelined_over_tls(addr: SocketAddr, ca: &Path, requests: &str) -> String {
    const SCRIPT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(sys.stdin.buffer.read())
got = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
except (ssl.SSLError, OSError):
    pass
sys.stdout.write(got.decode("latin-1"))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(ca)
        .arg(addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(requests.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_https_listener_proxies_its_prefixes_as_https() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIP: no curl (scripts/test.sh installs it)");
        return;
    }
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let pools = format!(
        "{}{}",
        pool("app", &[&a], ""),
        pool(
            "checked",
            &[&b],
            "health_check = { path = \"/health\", interval = \"100ms\" }"
        )
    );
    let cap = Capstone::launch(|dir| {
        let dd = servers::tls::DataDir::named(dir.join("ca"), "test");
        dd.server_identity().unwrap();
        format!(
            "listen = [\"127.0.0.2:0\", {{ addr = \"127.0.0.1:0\", tls = true }}]\n\
             root = {dir:?}\nprocesses = 0\nworkers = 1\n{pools}\
             [[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\n",
            dd.server_cert(),
            dd.server_key()
        )
    });
    let ca = servers::tls::DataDir::named(cap._dir.path().join("ca"), "test").ca_cert();
    // The plaintext listener says http; its upstream connection is kept…
    assert_eq!(origin_of(&get(cap.addr, "/api/plain")), "a");
    assert_eq!(
        a.seen()
            .last()
            .unwrap()
            .header("x-forwarded-proto")
            .as_deref(),
        Some("http")
    );
    // …and serves the HTTPS client next. HTTP/2 offered: ALPN settles on HTTP/1.1,
    // and the prefix is proxied.
    let (body, err) = curl_https(
        &cap,
        &ca,
        "/api/tls?q=1",
        &["--http2", "-w", "|%{http_version}"],
    );
    assert_eq!(body, "origin a /api/tls?q=1\n|1.1", "{err}");
    let seen = a.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-forwarded-proto").as_deref(), Some("https"));
    assert!(
        last.header("forwarded")
            .is_some_and(|f| f.contains("for=127.0.0.1;proto=https")),
        "{last:?}"
    );
    assert_eq!(
        a.connections(),
        1,
        "the kept upstream connection was not reused"
    );
    // The static site beside it, over TLS too.
    let (body, err) = curl_https(&cap, &ca, "/", &[]);
    assert_eq!(body, "static\n", "{err}");
    // Requests pipelined on one TLS connection: each answered, in order, the one
    // behind a proxied request included.
    let got = pipelined_over_tls(
        cap.tls_addr.unwrap(),
        &ca,
        "GET /api/p1 HTTP/1.1\r\nHost: localhost\r\n\r\n\
         GET / HTTP/1.1\r\nHost: localhost\r\n\r\n\
         GET /api/p2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let at = |needle: &str| {
        got.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {got:?}"))
    };
    assert!(at("origin a /api/p1") < at("static\n"), "{got}");
    assert!(at("static\n") < at("origin a /api/p2"), "{got}");
    // Health checks run beside TLS listeners too.
    b.healthy.store(false, Ordering::SeqCst);
    wait_state(&cap, b.addr, "down");
}

/// Waits until the status page shows `server` in `state`.
fn wait_state(cap: &Capstone, server: SocketAddr, state: &str) {
    let want = format!("\"server\":\"{server}\",\"state\":\"{state}\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = get(cap.addr, "/status.json").text();
        if status.contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "{want} never in {status}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_active_health_check_takes_a_server_out_until_it_passes_again() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let cap = Capstone::api(
        &[&a, &b],
        "health_check = { path = \"/health\", interval = \"100ms\", timeout = \"1s\", fails = 2, passes = 2 }",
    );
    let spread = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let r = get(cap.addr, "/api/x");
                assert_eq!(r.status, 200, "{r:?}");
                origin_of(&r)
            })
            .collect()
    };
    let both = spread(6);
    assert!(
        both.contains(&"a".into()) && both.contains(&"b".into()),
        "{both:?}"
    );
    // b still answers every request, but its health check fails: it is skipped.
    b.healthy.store(false, Ordering::SeqCst);
    wait_state(&cap, b.addr, "down");
    let only_a = spread(8);
    assert!(only_a.iter().all(|o| o == "a"), "{only_a:?}");
    assert!(cap.log_text().contains("marked down"), "{}", cap.log_text());
    // Passing again brings it back.
    b.healthy.store(true, Ordering::SeqCst);
    wait_state(&cap, b.addr, "up");
    let again = spread(6);
    assert!(again.contains(&"b".into()), "{again:?}");
    let probe = b
        .seen()
        .into_iter()
        .find(|s| s.head.starts_with("GET /health HTTP/1.1\r\n"))
        .expect("b was asked for /health");
    assert_eq!(
        probe.header("user-agent").as_deref(),
        Some("capstone-health-check")
    );
    // A server that refuses connections fails its checks as well.
    a.kill();
    wait_state(&cap, a.addr, "down");
    let only_b = spread(4);
    assert!(only_b.iter().all(|o| o == "b"), "{only_b:?}");
}

/// `GET /api/big/LEN` through the capstone, read in 64 KiB reads with a 5 ms pause
/// every fourth read until `slow_for` bytes are in: the whole body must arrive, every
/// byte in order (its sum is the origin's pattern's).
fn slow_download(addr: SocketAddr, len: usize, slow_for: usize) {
    let mut c = client(addr);
    write!(
        c.get_mut(),
        "GET /api/big/{len} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (mut got, mut sum, mut buf) = (0usize, 0u64, vec![0u8; 64 * 1024]);
    let mut reads = 0;
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
        sum += buf[..n].iter().map(|&b| b as u64).sum::<u64>();
        reads += 1;
        if got < slow_for && reads % 4 == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    let block: Vec<u64> = (0..64 * 1024).map(|i| (i % 251) as u64).collect();
    let want: u64 = block.iter().sum::<u64>() * (len / block.len()) as u64;
    assert_eq!((got, sum), (len, want));
}
