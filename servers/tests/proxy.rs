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
    assert!(got.contains("GET /x HTTP/1.0\n"), "{got}");
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
