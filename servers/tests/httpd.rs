//! `httpd` end to end: real clients (curl, ab, headless Chromium, raw sockets) against
//! the binary on port 0, a real document root, and the kernel's view of the process.

mod common;

use common::{connect, raise_nofile, Server, MODELS};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HTTPD: &str = env!("CARGO_BIN_EXE_httpd");

/// A 3x2 PNG.
const PNG: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0,
    0, 0, 18, 22, 241, 77, 0, 0, 0, 15, 73, 68, 65, 84, 120, 156, 99, 96, 104, 248, 15, 69, 112,
    22, 0, 83, 222, 8, 251, 113, 210, 43, 183, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// A document root (inside a parent that also holds a secret file outside the root).
struct Site {
    parent: tempfile::TempDir,
    root: PathBuf,
}

fn site() -> Site {
    let parent = tempfile::tempdir().unwrap();
    // World-traversable, so the site still works after a drop to `nobody`.
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = parent.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(parent.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(
        root.join("index.html"),
        "<!DOCTYPE html><html><head><link rel=\"stylesheet\" href=\"style.css\"></head>\
         <body><h1 id=\"t\">Hello from httpd</h1><img id=\"i\" src=\"img/dot.png\">\
         <p id=\"out\">pending</p><script>\
         window.addEventListener('load', () => { const i = document.getElementById('i');\
         document.getElementById('out').textContent = 'color=' + \
         getComputedStyle(document.getElementById('t')).color + ' img=' + i.naturalWidth + \
         'x' + i.naturalHeight; });</script></body></html>\n",
    )
    .unwrap();
    std::fs::write(root.join("style.css"), "h1 { color: rgb(255, 0, 0); }\n").unwrap();
    std::fs::create_dir(root.join("img")).unwrap();
    std::fs::write(root.join("img/dot.png"), PNG).unwrap();
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    std::fs::create_dir(root.join("bare")).unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/index.html"), "sub index").unwrap();
    std::fs::write(root.join("%2e%2e"), "a file literally named %2e%2e").unwrap();
    symlink("../digits.txt", root.join("sub/inside-link")).unwrap();
    symlink(parent.path().join("secret.txt"), root.join("abs-out")).unwrap();
    symlink("../secret.txt", root.join("rel-out")).unwrap();
    symlink(parent.path(), root.join("dir-out")).unwrap();
    symlink("/etc/passwd", root.join("passwd")).unwrap();
    // A Unix socket cannot be opened: the server's own misconfiguration, a 500.
    let _sock = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    let for_all = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for_all(&root, 0o755);
    Site { parent, root }
}

fn start(site: &Site, extra: &[&str]) -> Server {
    let mut args = vec!["--root", site.root.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(HTTPD, &args)
}

/// Sends raw bytes, half-closes nothing, and reads until the server closes.
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    String::from_utf8_lossy(&raw_bytes(addr, bytes)).into_owned()
}

fn raw_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn status(resp: &str) -> &str {
    resp.get(9..12).unwrap_or("")
}

/// `curl -si` → (status, whole response text).
fn curl(addr: SocketAddr, path: &str, extra: &[&str]) -> (String, String) {
    let url = format!("http://{addr}{path}");
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "--path-as-is"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (status(&text).to_string(), text)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[test]
fn curl_sees_every_status() {
    let site = site();
    let srv = start(&site, &["--header-timeout", "1", "--max-clients", "4"]);
    let a = srv.addr;

    let (s, r) = curl(a, "/", &[]);
    assert_eq!(s, "200", "{r}");
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    assert!(header(&r, "last-modified").is_some() && header(&r, "date").is_some());
    assert_eq!(header(&r, "server"), Some("httpd"));

    let (s, r) = curl(a, "/digits.txt", &["-I"]);
    assert_eq!(s, "200");
    assert_eq!(header(&r, "content-length"), Some("10"));
    assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r:?}");

    let (s, r) = curl(a, "/digits.txt", &["-r", "2-5"]);
    assert_eq!(s, "206");
    assert!(r.ends_with("\r\n\r\n2345"), "{r}");
    assert_eq!(header(&r, "content-range"), Some("bytes 2-5/10"));
    let (s, r) = curl(a, "/digits.txt", &["-r", "50-"]);
    assert_eq!(s, "416");
    assert_eq!(header(&r, "content-range"), Some("bytes */10"));

    let lm = header(&curl(a, "/digits.txt", &["-I"]).1, "last-modified")
        .unwrap()
        .to_string();
    let (s, r) = curl(
        a,
        "/digits.txt",
        &["-H", &format!("If-Modified-Since: {lm}")],
    );
    assert_eq!(s, "304");
    assert!(r.ends_with("\r\n\r\n"));
    let (s, _) = curl(
        a,
        "/digits.txt",
        &["-H", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"],
    );
    assert_eq!(s, "200");

    // HTTP/1.1 without Host.
    assert_eq!(curl(a, "/", &["-H", "Host:"]).0, "400");
    assert_eq!(curl(a, "/a%zz", &[]).0, "400");
    assert_eq!(curl(a, "/../secret.txt", &[]).0, "403");
    assert_eq!(curl(a, "/bare/", &[]).0, "403");
    assert_eq!(curl(a, "/abs-out", &[]).0, "403");
    assert_eq!(curl(a, "/nope.html", &[]).0, "404");
    let (s, r) = curl(a, "/sub", &[]);
    assert_eq!(s, "301");
    assert_eq!(header(&r, "location"), Some("/sub/"));
    assert!(curl(a, "/sub", &["-L"]).1.ends_with("sub index"));

    let (s, r) = curl(a, "/", &["-X", "POST", "-d", "x=1"]);
    assert_eq!(s, "405");
    assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    let (s, r) = curl(a, "/", &["-X", "BREW"]);
    assert_eq!(s, "501");
    assert_eq!(header(&r, "allow"), Some("GET, HEAD"));

    assert_eq!(curl(a, "/socket", &[]).0, "500");

    let long = format!("/{}", "a".repeat(9000));
    assert_eq!(curl(a, &long, &[]).0, "414");
    let mut many = Vec::new();
    for i in 0..120 {
        many.push("-H".to_string());
        many.push(format!("X-Header-{i}: v"));
    }
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(curl(a, "/", &many).0, "431");
    let big = format!("X-Big: {}", "b".repeat(17 * 1024));
    assert_eq!(curl(a, "/", &["-H", &big]).0, "431");

    // 408: a head that never completes within --header-timeout 1.
    let (s, r) = {
        let t = Instant::now();
        let r = raw(a, b"GET / HTTP/1.1\r\nHost: x\r\n");
        let el = t.elapsed();
        assert!(
            el >= Duration::from_millis(900) && el < Duration::from_secs(4),
            "{el:?}"
        );
        (status(&r).to_string(), r)
    };
    assert_eq!(s, "408", "{r}");
    assert!(r.contains("<h1>408 Request Timeout</h1>"));

    // 503: with --max-clients 4, a fifth client is refused while four are held open.
    // The kernel completes the four connections at once; the server counts them only once
    // its loop has accepted them, which on a loaded machine may take longer than any fixed
    // sleep. So ask until the fifth is refused (or 5 s pass).
    let held: Vec<TcpStream> = (0..4).map(|_| connect(a)).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (s, r) = loop {
        let (s, r) = curl(a, "/", &[]);
        if s == "503" || Instant::now() > deadline {
            break (s, r);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(s, "503", "{r}");
    assert!(r.contains("503 Service Unavailable"));
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(curl(a, "/", &[]).0, "200");
}

#[test]
fn raw_malformed_requests() {
    let site = site();
    let srv = start(&site, &[]);
    let a = srv.addr;
    let cases: &[(&[u8], &str)] = &[
        (b"GARBAGE\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\n\r\n", "400"),
        (b"GET / HTTP/9.9\r\n\r\n", "505"),
        (b"GET /\x00 HTTP/1.0\r\n\r\n", "400"),
        (b"GET /a%00b HTTP/1.0\r\n\r\n", "400"),
        (b"GET / HTTP/1.0\r\nBad Header\r\n\r\n", "400"),
        (b"GET / HTTP/1.0\r\nX: a\x00b\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        (
            b"GET / HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "400",
        ),
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
            "400",
        ),
        (b"GET http://example.org/digits.txt HTTP/1.0\r\n\r\n", "200"),
        (b"\r\n\r\nGET /digits.txt HTTP/1.0\n\n", "200"),
        (b"get / HTTP/1.0\r\n\r\n", "501"),
        (b"DELETE / HTTP/1.0\r\n\r\n", "405"),
    ];
    for (req, want) in cases {
        let r = raw(a, req);
        assert_eq!(
            status(&r),
            *want,
            "{:?} → {r:?}",
            String::from_utf8_lossy(req)
        );
        if *want != "200" {
            let body = r.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            assert_eq!(
                header(&r, "content-length"),
                Some(body.len().to_string().as_str())
            );
        }
    }
    // A request line over 8 KiB, sent without ever ending it.
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat(b'x').take(9000));
    assert_eq!(status(&raw(a, &long)), "414");
}

#[test]
fn keep_alive_and_pipelining() {
    let site = site();
    let srv = start(&site, &[]);
    // Three pipelined requests in one write; the answers come back in order, then close.
    let r = raw(
        srv.addr,
        b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /digits.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let statuses: Vec<&str> = r
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &r[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200", "200"], "{r}");
    assert_eq!(r.matches("0123456789").count(), 2);

    // HTTP/1.0 with keep-alive: two requests on one connection, one at a time.
    let mut s = connect(srv.addr);
    for _ in 0..2 {
        s.write_all(b"GET /digits.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let mut buf = vec![0; 4096];
        let mut got = String::new();
        while !got.ends_with("0123456789") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early after {got:?}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert_eq!(header(&got, "connection"), Some("keep-alive"));
    }
    // Back-to-back keep-alive requests are not held by Nagle's algorithm waiting for a
    // delayed ACK (which costs 40 ms per request when the head and the file body leave
    // as separate small segments).
    let mut s = connect(srv.addr);
    let t = Instant::now();
    for _ in 0..20 {
        s.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"0123456789") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "20 requests took {:?}",
        t.elapsed()
    );

    // Plain HTTP/1.0 closes after one answer.
    let r = raw(srv.addr, b"GET /digits.txt HTTP/1.0\r\n\r\n");
    assert!(r.ends_with("0123456789"));
    assert_eq!(header(&r, "connection"), Some("close"));
}

#[test]
fn every_io_model_serves() {
    let site = site();
    std::fs::write(site.root.join("big.bin"), vec![b'z'; 100_000]).unwrap();
    for model in MODELS {
        let srv = start(&site, &["--io", model]);
        let bytes = raw_bytes(
            srv.addr,
            b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /img/dot.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(bytes.ends_with(PNG), "{model}");
        let r = String::from_utf8_lossy(&bytes);
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{model}: {r}");
        assert!(r.contains("0123456789"), "{model}");
        assert_eq!(
            header(&r, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(r.contains("Content-Type: image/png"), "{model}");
        // A pipeline of files too big to inline: each is streamed in turn, the rest of
        // the pipeline offered again by the model once the file is out.
        let one = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut pipeline = one.repeat(3);
        pipeline
            .extend_from_slice(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let bytes = raw_bytes(srv.addr, &pipeline);
        let body_bytes = bytes.iter().filter(|&&b| b == b'z').count();
        assert_eq!(body_bytes, 3 * 100_000, "{model}");
        assert!(bytes.ends_with(b"0123456789"), "{model}");
    }
}

#[test]
fn traversal_battery_never_leaves_the_root() {
    let site = site();
    let srv = start(&site, &[]);
    let cases: &[(&str, &str)] = &[
        ("/../secret.txt", "403"),
        ("/../../../../../../etc/passwd", "403"),
        ("/sub/../../secret.txt", "403"),
        ("/%2e%2e/secret.txt", "403"),
        ("/%2E%2E/%2e%2E/etc/passwd", "403"),
        ("/sub/%2e%2e/%2e%2e/secret.txt", "403"),
        ("/.%2e/secret.txt", "403"),
        ("/%252e%252e/secret.txt", "404"),
        ("/%252e%252e", "200"), // the file literally named %2e%2e, inside the root
        ("/..%2fsecret.txt", "403"),
        ("/%2e%2e%2fsecret.txt", "403"),
        ("/..\\secret.txt", "400"),
        ("/..%5csecret.txt", "400"),
        ("/sub\\..\\..\\secret.txt", "400"),
        ("/etc/passwd", "404"),
        ("//etc/passwd", "404"),
        ("http://evil/../secret.txt", "403"),
        ("/abs-out", "403"),
        ("/rel-out", "403"),
        ("/dir-out/secret.txt", "403"),
        ("/passwd", "403"),
        ("/sub/inside-link", "200"),
        ("/digits.txt%00.html", "400"),
    ];
    for (target, want) in cases {
        let r = raw(
            srv.addr,
            format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&r), *want, "{target} → {r}");
        assert!(!r.contains(SECRET), "{target} leaked the secret");
        assert!(!r.contains("root:x:0:0"), "{target} leaked /etc/passwd");
    }
    // Also through curl's own encoding of a path with spaces and unicode.
    std::fs::write(site.root.join("a b é.txt"), "spaced").unwrap();
    let (s, r) = curl(srv.addr, "/a%20b%20%C3%A9.txt", &[]);
    assert_eq!(s, "200");
    assert!(r.ends_with("spaced"));
}

#[test]
fn ab_10000_requests_zero_failed() {
    if !have("ab") {
        eprintln!("SKIP: ab (apache2-utils) is not installed; scripts/test.sh installs it");
        return;
    }
    let site = site();
    let srv = start(&site, &[]);
    let out = Command::new("timeout")
        .args(["120", "ab", "-n", "10000", "-c", "50", "-r"])
        .arg(format!("http://{}/digits.txt", srv.addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Complete requests:      10000"), "{text}");
    assert!(text.contains("Failed requests:        0"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
}

#[test]
fn large_file_streams_without_buffering() {
    let site = site();
    let big = site.root.join("big.bin");
    let data: Vec<u8> = (0..48 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    let srv = start(&site, &[]);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", "-o", "-"])
        .arg(format!("http://{}/big.bin", srv.addr))
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "content differs");
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.pid())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        hwm_kib < 24 * 1024,
        "peak RSS {hwm_kib} KiB: the file was buffered"
    );
}

#[test]
fn a_client_that_stops_reading_is_evicted_after_the_idle_timeout() {
    let site = site();
    let size = 64 * 1024 * 1024u64;
    let f = std::fs::File::create(site.root.join("huge.bin")).unwrap();
    f.set_len(size).unwrap();
    let srv = start(&site, &["--idle-timeout", "1"]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Read nothing while the server's send buffer and our receive buffer fill up and
    // the idle timeout (measured from the last byte written) passes.
    std::thread::sleep(Duration::from_secs(4));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    assert!(
        total < size / 2,
        "got {total} of {size} bytes: the stalled client was never evicted"
    );
    // The server still serves others.
    let (code, _) = curl(srv.addr, "/digits.txt", &[]);
    assert_eq!(code, "200");
}

#[test]
fn files_leave_with_sendfile() {
    if !have("strace") {
        eprintln!("SKIP: strace is not installed; scripts/test.sh installs it");
        return;
    }
    let site = site();
    std::fs::write(site.root.join("64k.bin"), vec![7u8; 64 * 1024]).unwrap();
    let trace = site.parent.path().join("trace");
    let srv = start(&site, &[]);
    // Attached to the running server, so stopping strace leaves no orphan behind.
    let mut strace = Command::new("strace")
        .args(["-f", "-e", "trace=sendfile,sendmsg,writev,write", "-o"])
        .arg(&trace)
        .args(["-p", &srv.pid().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // strace says "attached" on stderr once it traces.
    let mut attached = [0u8; 64];
    let _ = strace.stderr.as_mut().unwrap().read(&mut attached);
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
        ])
        .arg(format!("http://{}/64k.bin", srv.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "65536");
    // SAFETY: kill(2) on our own child's pid; SIGINT makes strace detach and exit.
    unsafe { libc::kill(strace.id() as libc::pid_t, libc::SIGINT) };
    let _ = strace.wait();
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("sendfile(") && l.contains("65536")),
        "no sendfile of the 64 KiB file in:\n{text}"
    );
}

#[test]
fn access_log_is_combined_flushed_and_reopened() {
    let site = site();
    let log = site.parent.path().join("access.log");
    let srv = start(&site, &["--access-log", log.to_str().unwrap()]);
    let (s, _) = curl(
        srv.addr,
        "/digits.txt",
        &["-A", "agent \"quoted\"", "-e", "http://ref/"],
    );
    assert_eq!(s, "200");
    raw(srv.addr, b"GET /x\x1b[2J HTTP/1.0\r\n\r\n");
    // Flushed within a second, without stopping the server.
    std::thread::sleep(Duration::from_millis(1600));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{text}");
    assert!(
        lines[0].ends_with(
            "\"GET /digits.txt HTTP/1.1\" 200 10 \"http://ref/\" \"agent \\x22quoted\\x22\""
        ),
        "{text}"
    );
    assert!(
        lines[1].contains("\"GET /x\\x1B[2J HTTP/1.0\" 400 "),
        "{text}"
    );

    // Rotation: rename, SIGUSR1, and the next line lands in a new file.
    let rotated = site.parent.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(srv.pid() as libc::pid_t, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(300));
    curl(srv.addr, "/", &[]);
    let status = srv.stop();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        2
    );
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert!(fresh.contains("\"GET / HTTP/1.1\" 200 "), "{fresh}");
}

#[test]
fn slowloris_does_not_starve_a_normal_client() {
    raise_nofile();
    let site = site();
    let srv = start(&site, &["--header-timeout", "3"]);
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let s = TcpStream::connect(srv.addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let head = b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n";
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    for second in 0..3 {
        for s in &mut slow {
            let _ = s.write(&head[second..second + 1]);
        }
        // A normal client in the middle of it all (in process: a spawned curl would
        // measure the machine's load more than the server).
        let t = Instant::now();
        let r = raw(srv.addr, b"GET /digits.txt HTTP/1.0\r\n\r\n");
        worst = worst.max(t.elapsed());
        assert_eq!(status(&r), "200", "{r}");
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
    }
    assert!(
        worst < Duration::from_millis(750),
        "normal client took {worst:?}"
    );
    // The header timeout (3 s from connect) answers 408 and closes every slow client.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(start.elapsed()));
    let mut timed_out = 0;
    for s in slow.iter_mut().take(50) {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if out.starts_with(b"HTTP/1.1 408 ") {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 50);
}

#[test]
fn headless_chromium_renders_the_page() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| have(c))
    else {
        eprintln!("SKIP: chromium is not installed; scripts/test.sh installs it");
        return;
    };
    let site = site();
    let log = site.parent.path().join("access.log");
    let srv = start(&site, &["--access-log", log.to_str().unwrap()]);
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["60", chromium])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{}/", srv.addr))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Hello from httpd"),
        "DOM:\n{dom}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The stylesheet applied and the image decoded at its real size.
    assert!(dom.contains("color=rgb(255, 0, 0) img=3x2"), "DOM:\n{dom}");
    assert!(srv.stop().success());
    let text = std::fs::read_to_string(&log).unwrap();
    for path in ["GET / ", "GET /style.css ", "GET /img/dot.png "] {
        assert!(text.contains(path), "{path} missing from\n{text}");
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn privileges_drop_to_nobody_in_a_chroot() {
    if !is_root() {
        eprintln!("SKIP: privilege drop needs root");
        return;
    }
    let site = site();
    let locked = site.root.join("locked.txt");
    std::fs::write(&locked, "no").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let log = site.parent.path().join("access.log");
    let srv = start(
        &site,
        &[
            "--user",
            "nobody",
            "--chroot",
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    assert!(
        srv.wait_log("serving files", Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.pid())).unwrap();
    let ids = |key: &str| -> Vec<String> {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().skip(1).map(String::from).collect()
    };
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    let nogroup = Command::new("id").args(["-g", "nobody"]).output().unwrap();
    let gid = String::from_utf8_lossy(&nogroup.stdout).trim().to_string();
    assert_eq!(ids("Uid:"), [uid.as_str(); 4], "{status}");
    assert_eq!(ids("Gid:"), [gid.as_str(); 4], "{status}");
    assert_eq!(ids("Groups:"), [gid.as_str()], "{status}");
    let jail = std::fs::read_link(format!("/proc/{}/root", srv.pid())).unwrap();
    assert_eq!(jail, site.root.canonicalize().unwrap());
    // Still serving inside the jail, as nobody.
    assert_eq!(curl(srv.addr, "/digits.txt", &[]).0, "200");
    assert_eq!(curl(srv.addr, "/locked.txt", &[]).0, "403");
    assert_eq!(curl(srv.addr, "/passwd", &[]).0, "403");
    assert!(!srv.log().contains("RUNNING AS ROOT"));
    assert!(srv.stop().success());
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("/locked.txt HTTP/1.1\" 403"));

    // Without --user, root is warned about loudly.
    let srv = start(&site, &[]);
    assert!(
        srv.wait_log("RUNNING AS ROOT", Duration::from_secs(5)),
        "{}",
        srv.log()
    );
}
