//! HTTP semantics end to end (RFC 9110/9112), each case against both binaries that
//! share `proto::http`: `httpd` and the capstone, over raw sockets, byte for byte where
//! a status or a header matters. Conditionals and ETags, several ranges, request
//! framing (Transfer-Encoding, Content-Length, bodies on GET), Host and version checks,
//! and IPv6 listeners.

mod common;

use common::{connect, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

const HTTPD: &str = env!("CARGO_BIN_EXE_httpd");
const CAPSTONE: &str = env!("CARGO_BIN_EXE_capstone");

/// Larger than the inline limit, so its ranges go out with `sendfile`.
const BIG: usize = 100 * 1024;

fn big_byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn write_site(root: &Path) {
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>\n").unwrap();
    let big: Vec<u8> = (0..BIG).map(big_byte).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
}

/// Both servers on one document root: `(name, server)`.
fn both() -> (tempfile::TempDir, Vec<(&'static str, Server)>) {
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path());
    let root = dir.path().to_str().unwrap();
    let servers = vec![
        ("httpd", Server::start(HTTPD, &["--root", root])),
        ("capstone", Server::start(CAPSTONE, &["--root", root])),
    ];
    (dir, servers)
}

/// One response read off a stream: status code, head text, body bytes.
#[derive(Debug)]
struct Resp {
    code: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one response (its body by Content-Length, none for 304 or a HEAD).
fn read_resp(s: &mut TcpStream, head_only: bool) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            other => panic!(
                "reading a head: {other:?} after {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let code = head[9..12].parse().unwrap();
    let mut r = Resp {
        code,
        head,
        body: Vec::new(),
    };
    let len: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
    if !head_only && code != 304 {
        r.body = vec![0; len];
        s.read_exact(&mut r.body).unwrap();
    }
    r
}

/// Sends `req` on a fresh connection and reads one response.
fn ask(addr: SocketAddr, req: &str) -> Resp {
    let mut s = connect(addr);
    s.write_all(req.as_bytes()).unwrap();
    read_resp(&mut s, req.starts_with("HEAD "))
}

/// Whether the server closed the stream (reads EOF within a few seconds).
fn closed_after(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    // A close with unread input in the server's buffer arrives as a reset.
    match s.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n")
}

#[test]
fn wrong_today_statuses() {
    let (_dir, servers) = both();
    for (name, srv) in &servers {
        let a = srv.addr;
        let cases: &[(&str, u16, bool)] = &[
            // §13.1.2: `*` matches any current representation.
            (&get("/digits.txt", "If-None-Match: *\r\n"), 304, false),
            // RFC 9112 §6.3: a final coding other than chunked cannot be framed.
            (
                &get("/digits.txt", "Transfer-Encoding: xchunked\r\n"),
                400,
                true,
            ),
            (
                &get("/digits.txt", "Transfer-Encoding: identity\r\n"),
                400,
                true,
            ),
            (
                &get("/digits.txt", "Transfer-Encoding: chunked, chunked\r\n"),
                400,
                true,
            ),
            (
                &get("/digits.txt", "Transfer-Encoding: gzip, chunked\r\n"),
                501,
                true,
            ),
            (
                &get(
                    "/digits.txt",
                    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                ),
                400,
                true,
            ),
            (
                &get("/digits.txt", "Content-Length: 1\r\nContent-Length: 2\r\n"),
                400,
                true,
            ),
            ("GET / HTTP/1.1\r\nHost: bad host/x\r\n\r\n", 400, true),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, true),
            ("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", 400, true),
            (
                &get("/digits.txt", "Content-Length: 2\r\nContent-Length: 2\r\n"),
                400,
                true,
            ),
            (&get("/digits.txt/", ""), 404, false),
            ("GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505, true),
            ("GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400, true),
            (
                &get("/digits.txt", "Range: bytes=20000000000000000000-\r\n"),
                416,
                false,
            ),
            ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, true),
            ("GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505, true),
        ];
        for (req, want, closes) in cases {
            let mut s = connect(a);
            s.write_all(req.as_bytes()).unwrap();
            let r = read_resp(&mut s, false);
            assert_eq!(r.code, *want, "{name}: {req:?}\n{}", r.head);
            if *closes {
                assert!(r.closes(), "{name}: {req:?} must close\n{}", r.head);
                assert!(closed_after(&mut s), "{name}: {req:?} left the socket open");
            }
        }
    }
}

#[test]
fn if_none_match_overrides_if_modified_since() {
    let (_dir, servers) = both();
    for (name, srv) in &servers {
        let r = ask(srv.addr, &get("/digits.txt", ""));
        let lm = r.header("last-modified").unwrap().to_string();
        let r = ask(
            srv.addr,
            &get("/digits.txt", &format!("If-Modified-Since: {lm}\r\n")),
        );
        assert_eq!(r.code, 304, "{name}");
        let r = ask(
            srv.addr,
            &get(
                "/digits.txt",
                &format!("If-None-Match: \"nomatch\"\r\nIf-Modified-Since: {lm}\r\n"),
            ),
        );
        assert_eq!((r.code, &r.body[..]), (200, &b"0123456789"[..]), "{name}");
    }
}

#[test]
fn etag_on_200_206_304_and_conditionals() {
    let (_dir, servers) = both();
    for (name, srv) in &servers {
        let a = srv.addr;
        let full = ask(a, &get("/digits.txt", ""));
        let etag = full.header("etag").expect("ETag on 200").to_string();
        let lm = full.header("last-modified").unwrap().to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{name}: strong, quoted: {etag}"
        );
        let part = ask(a, &get("/digits.txt", "Range: bytes=1-2\r\n"));
        assert_eq!(
            (part.code, part.header("etag")),
            (206, Some(&*etag)),
            "{name}"
        );
        let big = ask(a, &get("/big.bin", ""))
            .header("etag")
            .unwrap()
            .to_string();
        assert_ne!(big, etag, "{name}: files differ, so do their tags");

        let cond = |extra: String| ask(a, &get("/digits.txt", &extra));
        // If-None-Match: weak comparison, lists, `*`.
        let r = cond(format!("If-None-Match: {etag}\r\n"));
        assert_eq!((r.code, r.header("etag")), (304, Some(&*etag)), "{name}");
        assert_eq!(r.header("last-modified"), Some(&*lm), "{name}");
        assert!(r.header("content-length").is_none(), "{name}: {}", r.head);
        assert_eq!(
            cond(format!("If-None-Match: W/{etag}\r\n")).code,
            304,
            "{name}"
        );
        assert_eq!(
            cond(format!("If-None-Match: \"x\", {etag}\r\n")).code,
            304,
            "{name}"
        );
        assert_eq!(
            cond(format!("If-None-Match: \"x\"\r\nIf-None-Match: {etag}\r\n")).code,
            304,
            "{name}: two lines are one list"
        );
        assert_eq!(cond("If-None-Match: \"x\"\r\n".into()).code, 200, "{name}");
        // If-Match: strong comparison, 412 when it fails.
        assert_eq!(cond(format!("If-Match: {etag}\r\n")).code, 200, "{name}");
        assert_eq!(cond("If-Match: *\r\n".into()).code, 200, "{name}");
        let r = cond("If-Match: \"x\"\r\n".into());
        assert_eq!(r.code, 412, "{name}");
        assert!(!r.closes(), "{name}: a 412 keeps the connection");
        assert_eq!(cond(format!("If-Match: W/{etag}\r\n")).code, 412, "{name}");
        // If-Unmodified-Since, ignored when If-Match is present (§13.1.4).
        let old = "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:01 GMT\r\n";
        assert_eq!(cond(old.into()).code, 412, "{name}");
        assert_eq!(
            cond(format!("If-Unmodified-Since: {lm}\r\n")).code,
            200,
            "{name}"
        );
        assert_eq!(
            cond(format!("If-Match: {etag}\r\n{old}")).code,
            200,
            "{name}"
        );
        assert_eq!(
            cond(format!("{old}If-None-Match: {etag}\r\n")).code,
            412,
            "{name}"
        );
        // §13.2.2: If-Match is evaluated before If-None-Match.
        assert_eq!(
            cond(format!("If-Match: \"x\"\r\nIf-None-Match: {etag}\r\n")).code,
            412,
            "{name}"
        );
        // If-Range: the ETag strongly, or the exact date; otherwise the whole file.
        let range = |if_range: &str| cond(format!("Range: bytes=2-4\r\nIf-Range: {if_range}\r\n"));
        let r = range(&etag);
        assert_eq!((r.code, &r.body[..]), (206, &b"234"[..]), "{name}");
        assert_eq!(r.header("content-range"), Some("bytes 2-4/10"), "{name}");
        assert_eq!(range(&lm).code, 206, "{name}");
        assert_eq!(range(&format!("W/{etag}")).code, 200, "{name}");
        assert_eq!(range("\"x\"").code, 200, "{name}");
        let r = range("Thu, 01 Jan 1970 00:00:01 GMT");
        assert_eq!((r.code, &r.body[..]), (200, &b"0123456789"[..]), "{name}");
        // Conditionals do not turn a 404 into a 412 (§13.2.1).
        assert_eq!(
            ask(a, &get("/nope", "If-Match: \"x\"\r\n")).code,
            404,
            "{name}"
        );
    }
}

#[test]
fn etag_changes_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path());
    let root = dir.path().to_str().unwrap();
    for exe in [HTTPD, CAPSTONE] {
        let srv = Server::start(exe, &["--root", root]);
        let before = ask(srv.addr, &get("/digits.txt", ""))
            .header("etag")
            .unwrap()
            .to_string();
        // Same size, new mtime, new inode (a replace by rename, as deploys do).
        let tmp = dir.path().join("digits.tmp");
        std::fs::write(&tmp, "9876543210").unwrap();
        std::fs::rename(&tmp, dir.path().join("digits.txt")).unwrap();
        // The open-file cache trusts an entry for the rest of its second.
        std::thread::sleep(Duration::from_millis(1100));
        let r = ask(
            srv.addr,
            &get("/digits.txt", &format!("If-None-Match: {before}\r\n")),
        );
        assert_eq!((r.code, &r.body[..]), (200, &b"9876543210"[..]), "{exe}");
        assert_ne!(r.header("etag"), Some(&*before), "{exe}");
        std::fs::write(dir.path().join("digits.txt"), "0123456789").unwrap();
    }
}

/// Splits a `multipart/byteranges` body into (Content-Range, data) by its boundary,
/// checking the framing byte for byte.
fn parts_of(r: &Resp) -> Vec<(String, Vec<u8>)> {
    let ctype = r.header("content-type").unwrap();
    let boundary = ctype
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("content-type {ctype}"));
    let delim = format!("\r\n--{boundary}");
    let body = &r.body[..];
    let closing = format!("{delim}--\r\n");
    assert!(body.ends_with(closing.as_bytes()), "closing delimiter");
    let mut parts = Vec::new();
    let mut rest = &body[..body.len() - closing.len()];
    while !rest.is_empty() {
        assert!(rest.starts_with(delim.as_bytes()), "delimiter");
        rest = &rest[delim.len()..];
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[2..end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: bytes "))
            .unwrap()
            .to_string();
        assert!(
            head.lines().any(|l| l.starts_with("Content-Type: ")),
            "{head}"
        );
        let (span, _) = range.split_once('/').unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        let data = rest[end + 4..end + 4 + n].to_vec();
        rest = &rest[end + 4 + n..];
        parts.push((range, data));
    }
    parts
}

#[test]
fn several_ranges_answer_multipart_byteranges() {
    let (_dir, servers) = both();
    for (name, srv) in &servers {
        let a = srv.addr;
        let r = ask(a, &get("/digits.txt", "Range: bytes=0-0,2-3\r\n"));
        assert_eq!(r.code, 206, "{name}");
        assert!(r.header("content-range").is_none(), "{name}");
        assert_eq!(
            r.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            r.body.len()
        );
        assert!(r.header("etag").is_some(), "{name}");
        let boundary = r.header("content-type").unwrap()[31..].to_string();
        let want = format!(
            "\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-0/10\r\n\r\n0\
             \r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 2-3/10\r\n\r\n23\
             \r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8_lossy(&r.body), want, "{name}");

        // A file sent with sendfile, part by part, in request order.
        let r = ask(a, &get("/big.bin", "Range: bytes=90000-90009, 5-9, -3\r\n"));
        let parts = parts_of(&r);
        let want: Vec<(String, Vec<u8>)> = [(90000, 90009), (5, 9), (BIG - 3, BIG - 1)]
            .iter()
            .map(|&(s, e)| (format!("{s}-{e}/{BIG}"), (s..=e).map(big_byte).collect()))
            .collect();
        assert_eq!(parts, want, "{name}");

        // Overlapping and adjacent ranges coalesce; one left is a plain 206.
        let r = ask(a, &get("/digits.txt", "Range: bytes=0-2,3-4,1-3\r\n"));
        assert_eq!((r.code, &r.body[..]), (206, &b"01234"[..]), "{name}");
        assert_eq!(r.header("content-range"), Some("bytes 0-4/10"), "{name}");
        let r = ask(a, &get("/big.bin", "Range: bytes=0-9,100-199,150-300\r\n"));
        let ranges: Vec<String> = parts_of(&r).into_iter().map(|p| p.0).collect();
        assert_eq!(
            ranges,
            [format!("0-9/{BIG}"), format!("100-300/{BIG}")],
            "{name}"
        );
        // Unsatisfiable members are dropped, all unsatisfiable is a 416.
        let r = ask(a, &get("/digits.txt", "Range: bytes=50-60,1-1\r\n"));
        assert_eq!((r.code, &r.body[..]), (206, &b"1"[..]), "{name}");
        let r = ask(a, &get("/digits.txt", "Range: bytes=50-60,70-\r\n"));
        assert_eq!(
            (r.code, r.header("content-range")),
            (416, Some("bytes */10"))
        );

        // More than 16 ranges, or more bytes in all than the file: the file, 200.
        let seventeen: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 10, i * 10)).collect();
        let r = ask(
            a,
            &get(
                "/big.bin",
                &format!("Range: bytes={}\r\n", seventeen.join(",")),
            ),
        );
        assert_eq!((r.code, r.body.len()), (200, BIG), "{name}");
        let sixteen = &seventeen[..16];
        let r = ask(
            a,
            &get(
                "/big.bin",
                &format!("Range: bytes={}\r\n", sixteen.join(",")),
            ),
        );
        assert_eq!((r.code, parts_of(&r).len()), (206, 16), "{name}");
        let r = ask(a, &get("/digits.txt", "Range: bytes=0-7,2-9\r\n"));
        assert_eq!((r.code, &r.body[..]), (200, &b"0123456789"[..]), "{name}");

        // HEAD: the same head, no body.
        let mut s = connect(a);
        s.write_all(b"HEAD /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0,2-3\r\n\r\nGET /digits.txt HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let h = read_resp(&mut s, true);
        assert_eq!(h.code, 206, "{name}");
        assert!(
            h.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap()
                > 3
        );
        let next = read_resp(&mut s, false);
        assert_eq!(
            next.body, b"0123456789",
            "{name}: keep-alive in step after the HEAD"
        );
    }
}

#[test]
fn bodies_on_get_and_head_are_read_and_dropped() {
    let (_dir, servers) = both();
    for (name, srv) in &servers {
        let a = srv.addr;
        // A length-framed and a chunked body, each followed by a request on the same
        // connection, which must be read as a request (not as body bytes).
        let mut s = connect(a);
        s.write_all(
            b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n\
              GET /nope HTTP/1.1\r\n\r\n\
              GET /digits.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;x=1\r\nGET /\r\n10\r\nGET /nope HTTP/1\r\n0\r\nTrailer: t\r\n\r\n\
              HEAD /digits.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd\
              GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
        for _ in 0..2 {
            let r = read_resp(&mut s, false);
            assert_eq!((r.code, &r.body[..]), (200, &b"0123456789"[..]), "{name}");
            assert!(!r.closes(), "{name}");
        }
        assert_eq!(read_resp(&mut s, true).code, 200, "{name}");
        let r = read_resp(&mut s, false);
        assert_eq!(
            (r.code, &r.body[..]),
            (200, &b"<h1>home</h1>\n"[..]),
            "{name}"
        );

        // A body sent slowly, after its answer.
        let mut s = connect(a);
        s.write_all(
            b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
        )
        .unwrap();
        assert_eq!(read_resp(&mut s, false).code, 200, "{name}");
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(b"cd\r\n0\r\n\r\nGET /index.html HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_resp(&mut s, false).body, b"<h1>home</h1>\n", "{name}");

        // Over the limit: 413 and a close, by its length or its first chunk's size.
        for req in [
            get("/digits.txt", "Content-Length: 1048577\r\n"),
            get("/digits.txt", "Transfer-Encoding: chunked\r\n") + "100001\r\n",
        ] {
            let mut s = connect(a);
            s.write_all(req.as_bytes()).unwrap();
            let r = read_resp(&mut s, false);
            assert_eq!(r.code, 413, "{name}: {req:?}");
            assert!(r.closes() && closed_after(&mut s), "{name}");
        }
        // Bad chunked framing in what came with the head: 400 and a close.
        let mut s = connect(a);
        s.write_all((get("/digits.txt", "Transfer-Encoding: chunked\r\n") + "zz\r\n").as_bytes())
            .unwrap();
        let r = read_resp(&mut s, false);
        assert_eq!(r.code, 400, "{name}");
        assert!(closed_after(&mut s), "{name}");
    }
}

/// An unused TCP port on both loopbacks (as far as one can tell before binding).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// The addresses a server logged as `listening addr=...`.
fn listening(srv: &Server, n: usize) -> Vec<SocketAddr> {
    assert!(
        (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            srv.log().matches("listening addr=").count() >= n
        }),
        "{}",
        srv.log()
    );
    let mut v: Vec<SocketAddr> = srv
        .log()
        .lines()
        .filter_map(|l| l.split("listening addr=").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    v.dedup();
    v
}

#[test]
fn ipv6_listeners_and_dual_stack() {
    if !have_ipv6() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path());
    let root = dir.path().to_str().unwrap();
    let fetch = |addr: SocketAddr| {
        let r = ask(addr, &get("/digits.txt", ""));
        assert_eq!((r.code, &r.body[..]), (200, &b"0123456789"[..]), "{addr}");
    };
    for exe in [HTTPD, CAPSTONE] {
        // `[::1]` and the wildcard `[::]` (reached through ::1).
        for listen in ["[::1]:0", "[::]:0"] {
            let srv = Server::start_raw(exe, &["--listen", listen, "--root", root], &[]);
            assert!(srv.addr.is_ipv6(), "{exe}: {}", srv.addr);
            fetch(SocketAddr::from((
                [0, 0, 0, 0, 0, 0, 0, 1],
                srv.addr.port(),
            )));
        }
    }
    // Dual stack: one port, a socket per family.
    let port = free_port();
    let v4 = format!("127.0.0.1:{port}");
    let v6 = format!("[::1]:{port}");
    let httpd = Server::start_raw(
        HTTPD,
        &["--listen", &v4, "--listen", &v6, "--root", root],
        &[],
    );
    let addrs = listening(&httpd, 2);
    assert!(addrs.iter().any(SocketAddr::is_ipv4) && addrs.iter().any(SocketAddr::is_ipv6));
    fetch(v4.parse().unwrap());
    fetch(v6.parse().unwrap());
    drop(httpd);

    let port = free_port();
    let v4 = format!("127.0.0.1:{port}");
    let v6 = format!("[::]:{port}");
    let cfg = dir.path().join("capstone.toml");
    std::fs::write(
        &cfg,
        format!("listen = [\"{v4}\", \"{v6}\"]\nroot = \"{root}\"\nprocesses = 0\nworkers = 1\n"),
    )
    .unwrap();
    let cap = Server::start_raw(CAPSTONE, &["--config", cfg.to_str().unwrap()], &[]);
    listening(&cap, 2);
    fetch(v4.parse().unwrap());
    fetch(format!("[::1]:{port}").parse().unwrap());
}

/// Counts the allocations made by the current thread, so the protocol's hot path can
/// be held to a number.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        pub static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn count() {
        // `try_with`: the thread-local may be gone while a thread exits.
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
    }

    // SAFETY: every call is passed straight to the system allocator with the caller's
    // own arguments, so its contract is the caller's; counting touches no heap memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: forwarded as received (see the impl).
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded as received (see the impl).
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            // SAFETY: forwarded as received (see the impl).
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static COUNTING: counting::Counting = counting::Counting;

/// A cached keep-alive GET, driven through the protocol directly: its allocations (the
/// response head, the action list) must not grow with the new validators and checks.
#[test]
fn a_cached_keep_alive_get_costs_no_new_allocations() {
    use servers::proto::http::{Http, HttpConfig};
    use servers::proto::{ConnId, Outbox, Protocol};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path());
    let mut http = Http::new(Arc::new(HttpConfig::new(dir.path()).unwrap()));
    let mut out = Outbox::new();
    let id = ConnId(1);
    let mut conn = http.open(id, "127.0.0.1:1".parse().unwrap(), &mut out);
    out.drain().for_each(drop);
    let req = b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n";
    fn allocs() -> u64 {
        counting::ALLOCS.with(|n| n.get())
    }
    let fewest = (0..20)
        .map(|_| {
            // Every other turn is a cache hit even when the second turns in between.
            let before = allocs();
            assert_eq!(http.data(id, &mut conn, req, &mut out), req.len());
            out.drain().for_each(drop);
            allocs() - before
        })
        .min()
        .unwrap();
    eprintln!("allocations per cached GET: {fewest}");
    // Five before ETags, conditionals and ranges came (the target's decoded and
    // normalised path, the response head, the outbox's action list): five now.
    assert!(fewest <= 5, "{fewest} allocations per cached GET");
}
