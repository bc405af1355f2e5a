//! proxy end to end: `curl -x` through it, `curl -p -x` CONNECT tunnels to a TLS
//! server (`openssl s_server`), half-close carried through, and the refusals (403,
//! 502) a client sees.

mod common;

use common::Server;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A one-thread origin server: answers each request with its own request line
/// and Host header, so a test sees what the proxy sent upstream.
fn origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().take(64) {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let body = head.join("\n") + "\n";
            let mut w = r.into_inner();
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// A closed port: bound, then dropped.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn raw(proxy: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn curl_x_goes_through_in_origin_form() {
    if !have("curl", "--version") {
        eprintln!("skipped: curl not installed (scripts/test.sh installs it)");
        return;
    }
    let up = origin();
    let px = Server::start(PROXY, &[]);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-x"])
        .arg(format!("http://{}", px.addr))
        .arg(format!("http://{up}/some/path?q=1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.starts_with("GET /some/path?q=1 HTTP/1.1\n"), "{body}");
    assert!(body.contains(&format!("Host: {up}")), "{body}");
    assert!(
        !body.to_ascii_lowercase().contains("proxy-connection"),
        "{body}"
    );
}

#[test]
fn http_1_0_absolute_form_works_raw() {
    let up = origin();
    let px = Server::start(PROXY, &[]);
    let got = raw(
        px.addr,
        format!("GET http://{up}/x HTTP/1.0\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.contains("GET /x HTTP/1.1\n"), "{got}");
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn curl_p_x_tunnels_tls_through_connect() {
    if !have("curl", "--version") || !have("openssl", "version") {
        eprintln!("skipped: curl or openssl not installed (scripts/test.sh installs them)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("c.pem"), tmp.path().join("k.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let port = dead_port();
    let _tls = Killed(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let px = Server::start(PROXY, &["--allow-connect-port", &port.to_string()]);
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "10", "-p", "-x"])
        .arg(format!("http://{}", px.addr))
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("s_server"), "{body}");

    // Without the port allowed, the same CONNECT is refused with 403.
    let strict = Server::start(PROXY, &[]);
    let got = raw(
        strict.addr,
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
}

#[test]
fn unreachable_upstream_gives_502() {
    let px = Server::start(PROXY, &[]);
    let port = dead_port();
    let got = raw(
        px.addr,
        format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 502"), "{got}");
    // A name (resolved on the resolver threads, from /etc/hosts) to a dead port.
    let got = raw(
        px.addr,
        format!("GET http://localhost:{port}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 502"), "{got}");
}

#[test]
fn denied_destinations_and_bad_requests_are_refused() {
    let up = origin();
    let px = Server::start(PROXY, &["--deny", "127.0.0.0/8"]);
    let got = raw(
        px.addr,
        format!("GET http://{up}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    let got = raw(px.addr, b"GET /not-absolute HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    let got = raw(px.addr, b"\x16\x03\x01\x00\xff garbage\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
}

/// An upstream that reads until end of stream, then answers with the count: it
/// only answers if the client's half-close reached it as a FIN.
fn counting_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().take(8) {
            let Ok(mut conn) = conn else { continue };
            let mut all = Vec::new();
            if conn.read_to_end(&mut all).is_ok() {
                let _ = write!(conn, "got {} bytes", all.len());
            }
        }
    });
    addr
}

#[test]
fn half_close_is_carried_through_the_forwarder() {
    let up = counting_upstream();
    let px = Server::start(PROXY, &["--upstream", &up.to_string()]);
    let mut s = TcpStream::connect(px.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let payload = vec![7u8; 300_000];
    s.write_all(&payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "got 300000 bytes");
}

#[test]
fn forwarder_moves_a_large_stream_intact_both_ways() {
    // An echo upstream: the proxy must pass every byte, in order, while the
    // client writes and reads at once.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Some(Ok(mut c)) = l.incoming().next() {
            let mut r = c.try_clone().unwrap();
            let _ = std::io::copy(&mut r, &mut c);
        }
    });
    let px = Server::start(PROXY, &["--upstream", &up.to_string()]);
    let s = TcpStream::connect(px.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data: Vec<u8> = (0..8_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(data.len());
    (&s).read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
}

/// CPU seconds (user + system) the process has used so far, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is parenthesised and may hold spaces:
    // the first is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (f[10] + f[11]) as f64 / hz
}

#[test]
fn a_stalled_reader_does_not_make_the_forwarder_spin() {
    // An upstream that sends a file with sendfile(2), as a web server does: its bytes
    // reach the proxy as pieces of page-cache pages, so the proxy's pipe runs out of
    // buffers before it reaches its byte capacity. A client that reads nothing for a
    // while must leave the proxy asleep, not splicing into a full pipe in a loop.
    const LEN: u64 = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.bin");
    std::fs::File::create(&path).unwrap().set_len(LEN).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let Some(Ok(c)) = l.incoming().next() else {
            return;
        };
        let mut off: libc::off_t = 0;
        while (off as u64) < LEN {
            // SAFETY: both descriptors are open for the call; `off` is a live off_t
            // the kernel advances.
            let n = unsafe {
                libc::sendfile(
                    c.as_raw_fd(),
                    file.as_raw_fd(),
                    &mut off,
                    (LEN - off as u64) as usize,
                )
            };
            if n <= 0 {
                return;
            }
        }
    });
    let px = Server::start(PROXY, &["--upstream", &up.to_string()]);
    let mut s = TcpStream::connect(px.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Let the socket buffers and the pipe fill while the client reads nothing.
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(px.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(px.pid()) - before;
    assert!(
        used < 0.3,
        "the proxy used {used:.2} s of CPU in 1 s while its client read nothing"
    );
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf).unwrap() {
            0 => break,
            n => got += n as u64,
        }
    }
    assert_eq!(got, LEN);
}

#[test]
fn out_of_descriptors_the_forwarder_pauses_accepting_instead_of_spinning() {
    if !have("prlimit", "--version") {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || {
        // An echo server, a thread per connection.
        for c in l.incoming().take(64) {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut r = c.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut c);
            });
        }
    });
    let px = Server::start(PROXY, &["--upstream", &up.to_string()]);
    // One relayed exchange first: the loop's own descriptors (epoll, eventfd) exist
    // only once it runs, which the `listening` line does not wait for.
    {
        let mut s = TcpStream::connect(px.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).unwrap();
    }
    let pid = px.pid().to_string();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // No descriptor left: a new descriptor takes the lowest free number, and with 0, 1
    // and 2 open a limit of 3 leaves none, so every accept4 fails with EMFILE while
    // clients wait. (A limit of the count of open descriptors would race with any the
    // proxy still had open briefly when they were counted.)
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap()
        .to_string();
    let limit = format!("--nofile=3:{hard}");
    let st = Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status()
        .unwrap();
    assert!(st.success(), "prlimit failed");
    let waiting: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(px.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(px.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(px.pid()) - before;
    assert!(
        used < 0.3,
        "the proxy used {used:.2} s of CPU in 1 s while it could not accept"
    );
    let warnings = px.log().matches("accept failed").count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} accept warnings in about 1.3 s:\n{}",
        px.log()
    );
    // Descriptors back: the pause ends, the listeners are watched again and a new
    // client is relayed.
    drop(waiting);
    let limit = format!("--nofile={}:{hard}", open + 64);
    let st = Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status()
        .unwrap();
    assert!(st.success(), "prlimit failed");
    let mut s = TcpStream::connect(px.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
}
