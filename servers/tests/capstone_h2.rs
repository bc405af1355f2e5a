//! End-to-end tests of the capstone's HTTP/2: curl (`--http2-prior-knowledge` on
//! the plaintext listener, `--http2` over TLS 1.2 and 1.3), nghttp and h2load
//! (Debian's `nghttp2-client`), and raw frames over a socket for every error the
//! RFC 9113 names for a server and for the known attacks, each checked for the
//! GOAWAY or RST_STREAM code the RFC gives it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_capstone");
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const BIG: usize = 8 << 20;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

macro_rules! need_tools {
    ($($t:literal),*) => {
        for t in [$($t),*] {
            if !have(t) {
                eprintln!("skipped: needs {t} (scripts/test.sh installs it)");
                return;
            }
        }
    };
}

/// A running capstone with a plaintext and an HTTPS listener.
struct Server {
    child: Child,
    plain: SocketAddr,
    https: SocketAddr,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl Server {
    fn start(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root = site(dir.path());
        let dd = servers::tls::DataDir::named(dir.path().join("ca"), "h2");
        dd.server_identity().unwrap();
        let (ca, cert, key) = (dd.ca_cert(), dd.server_cert(), dd.server_key());
        let access = dir.path().join("access.log");
        let processes = if extra.contains("processes") {
            ""
        } else {
            "processes = 0\n"
        };
        let cfg = dir.path().join("capstone.toml");
        std::fs::write(
            &cfg,
            format!(
                "listen = [\"127.0.0.2:0\", {{ addr = \"127.0.0.1:0\", tls = true }}]\n\
                 root = {root:?}\n{processes}workers = 2\n{extra}\n\
                 [log]\naccess = {access:?}\n\
                 [tls]\ncert = {cert:?}\nkey = {key:?}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .env("XDG_RUNTIME_DIR", dir.path())
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
        let (plain, https) = loop {
            let text = log.lock().unwrap().join("\n");
            let addr_after = |tag: &str| {
                text.split(tag)
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            };
            if let (Some(p), Some(h)) = (
                addr_after("listening addr="),
                addr_after("listening for https addr="),
            ) {
                if text.contains("worker serving") {
                    break (p, h);
                }
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!("capstone did not start; log:\n{text}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        Server {
            child,
            plain,
            https,
            dir,
            ca,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// curl against the plaintext listener with prior knowledge.
    fn h2c(&self, path: &str, extra: &[&str]) -> Output {
        run(Command::new("curl")
            .args(["-sS", "--max-time", "30", "--http2-prior-knowledge"])
            .args(extra)
            .arg(format!("http://{}{path}", self.plain)))
    }

    /// curl over TLS, HTTP/2 by ALPN.
    fn h2(&self, path: &str, extra: &[&str]) -> Output {
        let p = self.https.port();
        run(Command::new("curl")
            .args(["-sS", "--max-time", "30", "--http2", "--cacert"])
            .arg(&self.ca)
            .args(["--resolve", &format!("localhost:{p}:{}", self.https.ip())])
            .args(extra)
            .arg(format!("https://localhost:{p}{path}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run a peer")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn big_bytes() -> Vec<u8> {
    let mut data = Vec::with_capacity(BIG);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while data.len() < BIG {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data
}

fn site(dir: &Path) -> PathBuf {
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<p>over h2</p>\n").unwrap();
    std::fs::write(root.join("digits.txt"), "0123456789\n").unwrap();
    std::fs::write(root.join("big.bin"), big_bytes()).unwrap();
    root
}

/// The value of header `name` in a `-D -` dump.
fn header<'a>(dump: &'a str, name: &str) -> Option<&'a str> {
    dump.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn curl_gets_files_statuses_conditionals_and_ranges_over_h2c_and_h2() {
    need_tools!("curl");
    let s = Server::start("");
    let tls13 = ["--tlsv1.3"];
    let tls12 = ["--tlsv1.2", "--tls-max", "1.2"];
    type Fetch<'a> = Box<dyn Fn(&str, &[&str]) -> Output + 'a>;
    let ways: [(&str, Fetch); 3] = [
        ("h2c", Box::new(|p, e| s.h2c(p, e))),
        (
            "h2 TLS 1.3",
            Box::new(|p, e| s.h2(p, &[&tls13[..], e].concat())),
        ),
        (
            "h2 TLS 1.2",
            Box::new(|p, e| s.h2(p, &[&tls12[..], e].concat())),
        ),
    ];
    let upload = format!("@{}", s.root().join("big.bin").display());
    for (way, fetch) in &ways {
        let o = fetch("/index.html", &["-D", "-"]);
        let out = text(&o);
        assert!(o.status.success(), "{way}: {out}");
        assert!(out.starts_with("HTTP/2 200"), "{way}: {out}");
        assert!(out.ends_with("\r\n\r\n<p>over h2</p>\n"), "{way}: {out}");
        assert_eq!(header(&out, "content-length"), Some("15"), "{way}: {out}");
        assert_eq!(header(&out, "connection"), None, "{way}: {out}");
        let etag = header(&out, "etag").expect("an etag").to_string();

        let o = fetch("/missing", &["-D", "-", "-o", "/dev/null"]);
        assert!(text(&o).starts_with("HTTP/2 404"), "{way}: {}", text(&o));

        let inm = format!("If-None-Match: {etag}");
        let o = fetch("/index.html", &["-D", "-", "-H", &inm]);
        let out = text(&o);
        assert!(out.starts_with("HTTP/2 304"), "{way}: {out}");
        assert!(out.ends_with("\r\n\r\n"), "{way}: a 304 has no body: {out}");

        let o = fetch("/digits.txt", &["-D", "-", "-H", "Range: bytes=2-5"]);
        let out = text(&o);
        assert!(out.starts_with("HTTP/2 206"), "{way}: {out}");
        assert_eq!(header(&out, "content-range"), Some("bytes 2-5/11"));
        assert!(out.ends_with("\r\n\r\n2345"), "{way}: {out}");

        let o = fetch("/big.bin", &["-I"]);
        let out = text(&o);
        assert!(out.starts_with("HTTP/2 200"), "{way}: {out}");
        assert_eq!(header(&out, "content-length"), Some(&*BIG.to_string()));

        let o = fetch("/big.bin", &[]);
        assert!(
            o.status.success(),
            "{way}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.stdout == big_bytes(), "{way}: 8 MiB not byte-exact");

        // Other methods get what HTTP/1 gives them.
        let o = fetch(
            "/index.html",
            &["-D", "-", "-X", "DELETE", "-o", "/dev/null"],
        );
        let out = text(&o);
        assert!(out.starts_with("HTTP/2 405"), "{way}: {out}");
        assert_eq!(header(&out, "allow"), Some("GET, HEAD"));
        // With an 8 MiB body: answered at once, the body read to its end and
        // dropped (its windows handed back), the stream then closed cleanly.
        let o = fetch(
            "/index.html",
            &["-D", "-", "-o", "/dev/null", "--data-binary", &upload],
        );
        let out = text(&o);
        assert!(o.status.success(), "{way}: {out}");
        assert!(out.starts_with("HTTP/2 405"), "{way}: {out}");
    }
    // TLS picked h2 by ALPN, on both versions.
    for flags in [&tls13[..], &tls12[..]] {
        let o = s.h2("/", &[flags, &["-v", "-o", "/dev/null"]].concat());
        assert!(
            text(&o).contains("ALPN: server accepted h2"),
            "{}",
            text(&o)
        );
    }
    // The request-duration histogram has its own label.
    let o = s.h2c("/metrics", &[]);
    let metrics = text(&o);
    let h2_count = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("sysnet_capstone_request_duration_seconds_count{proto=\"h2\"} ")
        })
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(h2_count.is_some_and(|n| n > 20), "{metrics}");
    // The access log names the protocol.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s
        .access_log()
        .contains("\"GET /digits.txt HTTP/2.0\" 206 4")
    {
        assert!(Instant::now() < deadline, "{}", s.access_log());
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nghttp_and_many_concurrent_streams_on_one_connection() {
    need_tools!("nghttp", "h2load");
    let s = Server::start("");
    let o = run(Command::new("nghttp")
        .args(["-nv"])
        .arg(format!("http://{}/index.html", s.plain)));
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // (nghttp sends PRIORITY frames on streams 3 to 11 first, and asks on 13.)
    assert!(out.contains("recv (stream_id=13) :status: 200"), "{out}");
    assert!(
        out.contains("recv DATA frame <length=15, flags=0x01, stream_id=13>"),
        "{out}"
    );
    // The server's SETTINGS say what it allows.
    assert!(
        out.contains("[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):128]"),
        "{out}"
    );

    // 1000 requests, 100 at a time, over one connection.
    let o = run(Command::new("h2load")
        .args(["-n", "1000", "-c", "1", "-m", "100"])
        .arg(format!("http://{}/digits.txt", s.plain)));
    let out = text(&o);
    assert!(
        out.contains("requests: 1000 total, 1000 started, 1000 done, 1000 succeeded"),
        "{out}"
    );
    assert!(out.contains("status codes: 1000 2xx"), "{out}");
    // And large files in parallel on one connection, byte-exact, fetched by
    // Python's h2 (which checks every frame it gets against the RFC).
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped the python3-h2 part: no /usr/bin/python3");
        return;
    }
    let o = run(Command::new("/usr/bin/python3")
        .args(["-c", PARALLEL_H2, &s.plain.to_string()])
        .arg(s.root().join("big.bin")));
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.trim(), "4 streams byte-exact", "{out}");
}

/// Four GETs of one file on one connection; every body compared with the file.
const PARALLEL_H2: &str = r#"
import socket, sys, h2.connection, h2.config, h2.events
host, port = sys.argv[1].rsplit(":", 1)
want = open(sys.argv[2], "rb").read()
s = socket.create_connection((host, int(port)), timeout=20)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
s.sendall(c.data_to_send())
ids = [1, 3, 5, 7]
for i in ids:
    c.send_headers(i, [(":method", "GET"), (":path", "/big.bin"), (":scheme", "http"),
                       (":authority", sys.argv[1])], end_stream=True)
s.sendall(c.data_to_send())
bodies = {i: bytearray() for i in ids}
ended = set()
while len(ended) < len(ids):
    data = s.recv(1 << 16)
    if not data:
        sys.exit("connection closed early")
    for e in c.receive_data(data):
        if isinstance(e, h2.events.DataReceived):
            bodies[e.stream_id] += e.data
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            ended.add(e.stream_id)
        elif isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
            sys.exit(repr(e))
    s.sendall(c.data_to_send())
bad = [i for i in ids if bodies[i] != want]
print("bodies differ on streams %s" % bad if bad else "%d streams byte-exact" % len(ids))
"#;

#[test]
fn http2_can_be_turned_off() {
    need_tools!("curl");
    let s = Server::start("http2 = false");
    let o = s.h2("/", &["-v", "-o", "/dev/null"]);
    assert!(
        text(&o).contains("ALPN: server accepted http/1.1"),
        "{}",
        text(&o)
    );
    let o = s.h2c("/", &["-o", "/dev/null"]);
    assert!(!o.status.success(), "h2c answered with http2 = false");
}

// ---- raw frames ----

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

const PROTOCOL_ERROR: u32 = 1;
const FLOW_CONTROL_ERROR: u32 = 3;
const STREAM_CLOSED: u32 = 5;
const FRAME_SIZE_ERROR: u32 = 6;
const REFUSED_STREAM: u32 = 7;
const COMPRESSION_ERROR: u32 = 9;
const ENHANCE_YOUR_CALM: u32 = 11;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let l = (payload.len() as u32).to_be_bytes();
    let mut f = vec![l[1], l[2], l[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let p: Vec<u8> = values
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect();
    frame(SETTINGS, 0, 0, &p)
}

/// An HPACK integer with an `n`-bit prefix under `mask`.
fn int(mask: u8, n: u32, mut v: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(mask | v as u8);
        return;
    }
    out.push(mask | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literals without indexing (no table, no Huffman).
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        b.push(0);
        int(0, 7, n.len(), &mut b);
        b.extend_from_slice(n.as_bytes());
        int(0, 7, v.len(), &mut b);
        b.extend_from_slice(v.as_bytes());
    }
    b
}

fn get(path: &str) -> Vec<u8> {
    block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
    ])
}

fn request(stream: u32, path: &str) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &get(path))
}

/// A connection past the preface and our (empty) SETTINGS.
fn h2c(addr: SocketAddr, first: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(first);
    s.write_all(&hello).unwrap();
    s
}

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn read_frame(s: &mut impl Read) -> Option<Frame> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).ok()?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).ok()?;
    Some(Frame {
        kind: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]),
        payload,
    })
}

fn code(f: &Frame) -> u32 {
    let p = &f.payload;
    let at = if f.kind == GOAWAY { 4 } else { 0 };
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    GoAway(u32),
    Rst(u32, u32),
    Closed,
}

/// Reads until a GOAWAY or RST_STREAM arrives (or the connection ends).
fn outcome(s: &mut impl Read) -> End {
    while let Some(f) = read_frame(s) {
        match f.kind {
            GOAWAY => return End::GoAway(code(&f)),
            RST_STREAM => return End::Rst(f.stream, code(&f)),
            _ => {}
        }
    }
    End::Closed
}

/// Reads frames until stream `id` ends; returns its DATA.
fn body_of(s: &mut impl Read, id: u32) -> (Vec<u8>, Vec<u8>) {
    let (mut head, mut body) = (Vec::new(), Vec::new());
    while let Some(f) = read_frame(s) {
        assert!(f.kind != GOAWAY && f.kind != RST_STREAM, "{f:?}");
        if f.stream != id {
            continue;
        }
        match f.kind {
            HEADERS => head.extend(&f.payload),
            DATA => body.extend(&f.payload),
            _ => {}
        }
        if f.flags & END_STREAM != 0 {
            return (head, body);
        }
    }
    panic!("stream {id} did not end");
}

#[test]
fn protocol_errors_get_the_codes_rfc_9113_names() {
    let s = Server::start("");
    let big_req = request(1, "/big.bin");
    let mut no_end_headers = frame(HEADERS, 0, 1, &get("/"));
    no_end_headers.extend(frame(PING, 0, 0, &[0; 8]));
    let even = frame(HEADERS, END_HEADERS | END_STREAM, 2, &get("/"));
    // However much was sent before they arrive, the second one overflows.
    let mut overflow_stream = big_req.clone();
    for _ in 0..2 {
        overflow_stream.extend(frame(WINDOW_UPDATE, 0, 1, &0x7fff_ffffu32.to_be_bytes()));
    }
    let mut too_many = Vec::new();
    for i in 0..129 {
        too_many.extend(request(2 * i + 1, "/big.bin"));
    }
    let cases: Vec<(&str, Vec<u8>, End)> = vec![
        (
            "SETTINGS_ENABLE_PUSH = 2",
            settings(&[(2, 2)]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "SETTINGS_INITIAL_WINDOW_SIZE > 2^31-1",
            settings(&[(4, 1 << 31)]),
            End::GoAway(FLOW_CONTROL_ERROR),
        ),
        (
            "SETTINGS_MAX_FRAME_SIZE below 16384",
            settings(&[(5, 16_383)]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "SETTINGS_MAX_FRAME_SIZE above 2^24-1",
            settings(&[(5, 1 << 24)]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "SETTINGS of a length not a multiple of 6",
            frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 1]),
            End::GoAway(FRAME_SIZE_ERROR),
        ),
        (
            "SETTINGS on a stream",
            frame(SETTINGS, 0, 1, &[]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "connection window overflow",
            frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
            End::GoAway(FLOW_CONTROL_ERROR),
        ),
        (
            "stream window overflow",
            overflow_stream,
            End::Rst(1, FLOW_CONTROL_ERROR),
        ),
        (
            "WINDOW_UPDATE of 0",
            frame(WINDOW_UPDATE, 0, 0, &[0; 4]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "HEADERS without END_HEADERS, then not CONTINUATION",
            no_end_headers,
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "CONTINUATION without HEADERS",
            frame(CONTINUATION, END_HEADERS, 1, &get("/")),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "DATA on stream 0",
            frame(DATA, 0, 0, b"x"),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "DATA on an idle stream",
            frame(DATA, 0, 5, b"x"),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "HEADERS on an even stream",
            even,
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "PING of 7 bytes",
            frame(PING, 0, 0, &[0; 7]),
            End::GoAway(FRAME_SIZE_ERROR),
        ),
        (
            "PING on a stream",
            frame(PING, 0, 1, &[0; 8]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "RST_STREAM on an idle stream",
            frame(RST_STREAM, 0, 7, &[0, 0, 0, 8]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "RST_STREAM on stream 0",
            frame(RST_STREAM, 0, 0, &[0, 0, 0, 8]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "PRIORITY depending on itself",
            frame(PRIORITY, 0, 3, &[0, 0, 0, 3, 16]),
            End::Rst(3, PROTOCOL_ERROR),
        ),
        (
            "PUSH_PROMISE from a client",
            frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2]),
            End::GoAway(PROTOCOL_ERROR),
        ),
        (
            "a frame over SETTINGS_MAX_FRAME_SIZE",
            frame(PING, 0, 0, &vec![0; 16_385]),
            End::GoAway(FRAME_SIZE_ERROR),
        ),
        (
            "an HPACK index past the tables",
            frame(HEADERS, END_HEADERS, 1, &[0xff, 0x40]),
            End::GoAway(COMPRESSION_ERROR),
        ),
        (
            "an upper-case field name",
            frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[get("/"), block(&[("X-Bad", "1")])].concat(),
            ),
            End::Rst(1, PROTOCOL_ERROR),
        ),
        (
            "a connection-specific field",
            frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[get("/"), block(&[("connection", "keep-alive")])].concat(),
            ),
            End::Rst(1, PROTOCOL_ERROR),
        ),
        (
            "no :path",
            frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &block(&[(":method", "GET"), (":scheme", "http")]),
            ),
            End::Rst(1, PROTOCOL_ERROR),
        ),
        (
            "a pseudo-header field after a regular one",
            frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[block(&[("accept", "*/*")]), get("/")].concat(),
            ),
            End::Rst(1, PROTOCOL_ERROR),
        ),
        (
            "more streams than SETTINGS_MAX_CONCURRENT_STREAMS",
            too_many,
            End::Rst(257, REFUSED_STREAM),
        ),
    ];
    for (name, bytes, want) in cases {
        let mut c = h2c(s.plain, &settings(&[]));
        c.write_all(&bytes).unwrap();
        assert_eq!(outcome(&mut c), want, "{name}");
    }
    // A first frame other than SETTINGS.
    let mut c = h2c(s.plain, &frame(PING, 0, 0, &[0; 8]));
    assert_eq!(outcome(&mut c), End::GoAway(PROTOCOL_ERROR), "PING first");
}

#[test]
fn frames_on_closed_streams() {
    let s = Server::start("");
    // DATA after the stream closed: a stream error; HEADERS reopening it: a
    // connection error, both STREAM_CLOSED.
    let mut c = h2c(s.plain, &settings(&[]));
    for id in [1, 3] {
        c.write_all(&request(id, "/index.html")).unwrap();
        let (_, body) = body_of(&mut c, id);
        assert_eq!(body, b"<p>over h2</p>\n");
    }
    c.write_all(&frame(DATA, END_STREAM, 1, b"late")).unwrap();
    assert_eq!(outcome(&mut c), End::Rst(1, STREAM_CLOSED));
    // (Stream 1 is now one the server reset, whose late frames it ignores.)
    c.write_all(&request(3, "/index.html")).unwrap();
    assert_eq!(outcome(&mut c), End::GoAway(STREAM_CLOSED));
    // DATA on a stream the client already ended (half-closed remote).
    let mut c = h2c(s.plain, &settings(&[(4, 0)]));
    c.write_all(&request(1, "/big.bin")).unwrap();
    c.write_all(&frame(DATA, 0, 1, b"x")).unwrap();
    assert_eq!(outcome(&mut c), End::Rst(1, STREAM_CLOSED));
}

#[test]
fn a_wrong_preface_over_tls_is_a_protocol_error() {
    need_tools!("openssl");
    let s = Server::start("");
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-alpn", "h2", "-connect"])
        .arg(s.https.to_string())
        .args(["-servername", "localhost", "-CAfile"])
        .arg(&s.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let end = outcome(&mut stdout);
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(end, End::GoAway(PROTOCOL_ERROR));
}

#[test]
fn rapid_reset_is_sent_away() {
    let s = Server::start("");
    let mut c = h2c(s.plain, &settings(&[]));
    let mut burst = Vec::new();
    for i in 0..300u32 {
        burst.extend(request(2 * i + 1, "/big.bin"));
        burst.extend(frame(RST_STREAM, 0, 2 * i + 1, &8u32.to_be_bytes()));
    }
    c.write_all(&burst).unwrap();
    loop {
        match outcome(&mut c) {
            // Streams answered before their reset are fine; the budget is not.
            End::Rst(..) => continue,
            end => {
                assert_eq!(end, End::GoAway(ENHANCE_YOUR_CALM));
                break;
            }
        }
    }
}

#[test]
fn continuation_flood_is_bounded() {
    let s = Server::start("");
    // Many empty CONTINUATION frames.
    let mut c = h2c(s.plain, &settings(&[]));
    let mut flood = frame(HEADERS, 0, 1, &get("/"));
    for _ in 0..100 {
        flood.extend(frame(CONTINUATION, 0, 1, &[]));
    }
    let _ = c.write_all(&flood);
    assert_eq!(outcome(&mut c), End::GoAway(ENHANCE_YOUR_CALM));
    // A few large ones.
    let mut c = h2c(s.plain, &settings(&[]));
    let mut flood = frame(HEADERS, 0, 1, &get("/"));
    let filler = block(&[("x-filler", &"a".repeat(16_000))]);
    for _ in 0..8 {
        flood.extend(frame(CONTINUATION, 0, 1, &filler));
    }
    let _ = c.write_all(&flood);
    assert_eq!(outcome(&mut c), End::GoAway(ENHANCE_YOUR_CALM));
}

/// The head HTTP/1 would have parsed is built from the fields without one: what
/// the HTTP/1 parser refuses, an h2 request gets the same status for (a stream
/// each, the connection going on), and the rest is read as HTTP/1 reads it.
#[test]
fn requests_are_checked_as_an_http1_head_is() {
    use servers::proto::http2::hpack::{Decoded, HeaderDecoder};
    let s = Server::start("");
    let mut c = h2c(s.plain, &settings(&[]));
    let mut d = HeaderDecoder::new(1 << 16);
    let mut id = 1;
    let mut ask = |fields: &[(&str, &str)]| -> (String, Vec<u8>) {
        c.write_all(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &block(fields),
        ))
        .unwrap();
        let (head, body) = body_of(&mut c, id);
        id += 2;
        let Ok(Decoded::Fields(got)) = d.decode(&head) else {
            panic!("{head:02x?}")
        };
        let status = got.iter().find(|(n, _)| n == b":status").unwrap();
        (String::from_utf8(status.1.clone()).unwrap(), body)
    };
    let base = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/index.html"),
    ];
    let with = |more: &[(&'static str, &'static str)]| {
        let mut f = base.to_vec();
        f.extend_from_slice(more);
        f
    };
    let (status, body) = ask(&with(&[(":authority", "localhost")]));
    assert_eq!(
        (status.as_str(), &body[..]),
        ("200", &b"<p>over h2</p>\n"[..])
    );
    // Host rules: one is needed, a bad one is a 400, :authority wins over Host.
    assert_eq!(ask(&base).0, "400");
    assert_eq!(ask(&with(&[("host", "a..b")])).0, "400");
    assert_eq!(ask(&with(&[(":authority", "a..b")])).0, "400");
    assert_eq!(ask(&with(&[("host", "localhost")])).0, "200");
    assert_eq!(
        ask(&with(&[(":authority", "localhost"), ("host", "a..b")])).0,
        "200"
    );
    assert_eq!(
        ask(&with(&[("host", "localhost"), ("host", "localhost")])).0,
        "400"
    );
    let host = (":authority", "localhost");
    // A control byte in a value, bad or doubled lengths.
    assert_eq!(ask(&with(&[host, ("x-a", "a\u{1}b")])).0, "400");
    assert_eq!(ask(&with(&[host, ("x-a", "a\u{7f}")])).0, "400");
    assert_eq!(ask(&with(&[host, ("content-length", "x")])).0, "400");
    let two = [host, ("content-length", "0"), ("content-length", "0")];
    assert_eq!(ask(&with(&two)).0, "400");
    // The method: not a token, or one this server does not serve.
    let mut f = with(&[host]);
    f[0] = (":method", "G(T");
    assert_eq!(ask(&f).0, "400");
    f[0] = (":method", "BREW");
    assert_eq!(ask(&f).0, "501");
    f[0] = (":method", "POST");
    assert_eq!(ask(&f).0, "405");
    // A path over 8 KiB, and more than 100 fields.
    let long = format!("/{}", "a".repeat(8 * 1024));
    let (status, _) = ask(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", &long),
        host,
    ]);
    assert_eq!(status, "414");
    let names: Vec<String> = (0..100).map(|i| format!("x-{i}")).collect();
    let mut many: Vec<(&str, &str)> = with(&[host]);
    many.extend(names.iter().map(|n| (n.as_str(), "v")));
    assert_eq!(ask(&many).0, "431");
    many.pop();
    assert_eq!(ask(&many).0, "200");
    // Values are read without the spaces around them, as in an HTTP/1 head.
    let (status, body) = ask(&with(&[host, ("range", "  bytes=0-2\t")]));
    assert_eq!((status.as_str(), &body[..]), ("206", &b"<p>"[..]));
}

#[test]
fn an_hpack_bomb_gets_431_and_the_connection_stays_in_step() {
    let s = Server::start("");
    let mut c = h2c(s.plain, &settings(&[]));
    // A 4000-byte field put in the table, then referenced 1000 times: 4 MB of
    // header list from 5 KB of block.
    let mut b = get("/index.html");
    b.push(0x40);
    int(0, 7, 6, &mut b);
    b.extend_from_slice(b"x-bomb");
    int(0, 7, 4000, &mut b);
    b.extend(std::iter::repeat_n(b'v', 4000));
    b.extend(std::iter::repeat_n(0xbe, 1000));
    c.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &b))
        .unwrap();
    let (head, _) = body_of(&mut c, 1);
    // (The first header block on the connection: a fresh decoder reads it.)
    let mut d = servers::proto::http2::hpack::HeaderDecoder::new(1 << 16);
    let Ok(servers::proto::http2::hpack::Decoded::Fields(fields)) = d.decode(&head) else {
        panic!("{head:02x?}")
    };
    assert_eq!(
        fields[0],
        (b":status".to_vec(), b"431".to_vec()),
        "{fields:?}"
    );
    // The table entry is still there for the next request.
    let mut b = get("/index.html");
    b.push(0xbe);
    c.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &b))
        .unwrap();
    let (_, body) = body_of(&mut c, 3);
    assert_eq!(body, b"<p>over h2</p>\n");
}

#[test]
fn settings_and_ping_floods_are_sent_away() {
    let s = Server::start("");
    for (name, one) in [
        ("SETTINGS", settings(&[])),
        ("PING", frame(PING, 0, 0, &[1; 8])),
    ] {
        let mut c = h2c(s.plain, &settings(&[]));
        let flood: Vec<u8> = std::iter::repeat_n(one, 1100).flatten().collect();
        let _ = c.write_all(&flood);
        assert_eq!(outcome(&mut c), End::GoAway(ENHANCE_YOUR_CALM), "{name}");
    }
}

#[test]
fn a_zero_window_stall_is_timed_out() {
    let s = Server::start("[timeouts]\nidle = 2\n");
    let mut c = h2c(s.plain, &settings(&[(4, 0)]));
    let started = Instant::now();
    c.write_all(&request(1, "/big.bin")).unwrap();
    // HEADERS come, no DATA can; then the server gives up on the client.
    let mut data = 0;
    let end = loop {
        let Some(f) = read_frame(&mut c) else {
            break End::Closed;
        };
        match f.kind {
            DATA => data += f.payload.len(),
            GOAWAY => break End::GoAway(code(&f)),
            _ => {}
        }
    };
    let took = started.elapsed();
    assert_eq!(data, 0);
    assert_eq!(end, End::GoAway(0));
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(8)).contains(&took),
        "{took:?}"
    );
    // And the connection is closed after it.
    assert!(read_frame(&mut c).is_none());
}

/// Downloads big.bin over h2c, sending `sig` to the server at the first DATA;
/// returns the GOAWAY's (code, last stream), whether the body came whole.
fn download_through(s: &Server, sig: i32) -> (Option<(u32, u32)>, bool) {
    // Windows wide open: the server alone paces the download.
    let mut hello = settings(&[(4, 0x7fff_ffff)]);
    hello.extend(frame(
        WINDOW_UPDATE,
        0,
        0,
        &(0x7fff_ffffu32 - 65_535).to_be_bytes(),
    ));
    let mut c = h2c(s.plain, &hello);
    c.write_all(&request(1, "/big.bin")).unwrap();
    let (mut body, mut goaway, mut ended) = (Vec::<u8>::new(), None, false);
    while let Some(f) = read_frame(&mut c) {
        match f.kind {
            DATA if f.stream == 1 => {
                if body.is_empty() {
                    // SAFETY: kill(2) on our own child's pid.
                    assert_eq!(unsafe { libc::kill(s.child.id() as i32, sig) }, 0);
                    // Not reading meanwhile: the download is held in flight.
                    thread::sleep(Duration::from_millis(500));
                }
                body.extend(&f.payload);
                ended = f.flags & END_STREAM != 0;
            }
            GOAWAY => {
                let last = u32::from_be_bytes(f.payload[..4].try_into().unwrap());
                goaway = Some((code(&f), last));
            }
            RST_STREAM => panic!("{f:?}"),
            _ => {}
        }
    }
    (goaway, ended && body == big_bytes())
}

#[test]
fn a_graceful_stop_sends_goaway_and_finishes_the_download() {
    let mut s = Server::start("");
    // SIGTERM, the capstone's graceful stop: GOAWAY NO_ERROR naming stream 1 as
    // the last taken, all 8 MiB, then the connection closed.
    assert_eq!(download_through(&s, libc::SIGTERM), (Some((0, 1)), true));
    // The server has gone once its last stream was done.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_finishes_downloads_in_flight_and_new_connections_go_to_the_new_generation() {
    let s = Server::start("processes = 1");
    let worker = || {
        let pid = s.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
    };
    let before = worker();
    // SIGHUP: a new generation of workers; the old one drains.
    assert_eq!(download_through(&s, libc::SIGHUP), (Some((0, 1)), true));
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker() == before || worker().split_whitespace().count() != 1 {
        assert!(Instant::now() < deadline, "no new generation: {}", worker());
        thread::sleep(Duration::from_millis(50));
    }
    let mut c = h2c(s.plain, &settings(&[]));
    c.write_all(&request(1, "/index.html")).unwrap();
    assert_eq!(body_of(&mut c, 1).1, b"<p>over h2</p>\n");
}

/// Headless Chromium (Debian's `chromium`) loads a page over HTTPS: ALPN gives it
/// `h2`, and the access log has its request as `HTTP/2.0`.
#[test]
fn chromium_loads_a_page_over_h2() {
    need_tools!("chromium", "timeout");
    let s = Server::start("");
    let profile = tempfile::tempdir().unwrap();
    let url = format!("https://localhost:{}/index.html", s.https.port());
    let o = run(Command::new("timeout")
        .args(["-k", "5", "90", "chromium", "--headless", "--no-sandbox"])
        .args(["--disable-gpu", "--disable-quic", "--no-first-run"])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .args(["--disable-sync", "--ignore-certificate-errors"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!(
            "--host-resolver-rules=MAP localhost {}",
            s.https.ip()
        ))
        .args(["--dump-dom", &url]));
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("<p>over h2</p>"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = s.access_log();
        let line = log
            .lines()
            .find(|l| l.contains("\"GET /index.html ") && l.contains("Chrome"));
        if let Some(l) = line {
            assert!(l.contains("\"GET /index.html HTTP/2.0\" 200 "), "{l}");
            break;
        }
        assert!(Instant::now() < deadline, "no request from Chromium: {log}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// `/status.json` and `/metrics` count requests by protocol and by transport:
/// HTTP/1.0, HTTP/1.1 and h2c on the plaintext listener, HTTP/1.1 and h2 over TLS.
#[test]
fn requests_are_counted_by_protocol_and_transport() {
    need_tools!("curl");
    let s = Server::start("");
    let plain = |extra: &[&str], path: &str| {
        let o = run(Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version}",
            ])
            .args(extra)
            .arg(format!("http://{}{path}", s.plain)));
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for _ in 0..2 {
        assert_eq!(plain(&["--http1.1"], "/index.html"), "1.1");
    }
    // An HTTP/1.0 request, answered as HTTP/1.1 (RFC 9110 §6.2: the server's version).
    assert_eq!(plain(&["--http1.0"], "/index.html"), "1.1");
    let o = s.h2c("/index.html", &[]);
    assert!(o.status.success(), "{}", text(&o));
    for _ in 0..2 {
        let o = s.h2("/index.html", &["-o", "/dev/null", "-w", "%{http_version}"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "2", "{}", text(&o));
    }
    let o = s.h2(
        "/index.html",
        &["--http1.1", "-o", "/dev/null", "-w", "%{http_version}"],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1.1", "{}", text(&o));

    let o = run(Command::new("curl")
        .args(["-sS", "--max-time", "30", "--http1.1"])
        .arg(format!("http://{}/status.json", s.plain)));
    let json = text(&o);
    assert!(
        json.contains(
            "\"requests_by_protocol\":{\"http/1.1\":{\"plain\":2,\"tls\":1},\
             \"http/1.0\":{\"plain\":1,\"tls\":0},\"h2\":{\"plain\":1,\"tls\":2}}"
        ),
        "{json}"
    );
    // The status request itself is counted by now.
    let o = run(Command::new("curl")
        .args(["-sS", "--max-time", "30", "--http1.1"])
        .arg(format!("http://{}/metrics", s.plain)));
    let m = text(&o);
    for (proto, transport, n) in [
        ("http/1.1", "plain", 3),
        ("http/1.1", "tls", 1),
        ("http/1.0", "plain", 1),
        ("http/1.0", "tls", 0),
        ("h2", "plain", 1),
        ("h2", "tls", 2),
    ] {
        let line = format!(
            "sysnet_capstone_requests_by_protocol_total{{proto=\"{proto}\",transport=\"{transport}\"}} {n}\n"
        );
        assert!(m.contains(&line), "no {line:?} in:\n{m}");
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1) at `buf[0]`: value, length.
fn hpack_int(buf: &[u8], n: u32) -> (usize, usize) {
    let max = (1usize << n) - 1;
    let mut v = buf[0] as usize & max;
    if v < max {
        return (v, 1);
    }
    let mut i = 1;
    loop {
        v += ((buf[i] & 0x7f) as usize) << (7 * (i - 1));
        i += 1;
        if buf[i - 1] & 0x80 == 0 {
            return (v, i);
        }
    }
}

/// Response headers go out with their string literals Huffman-coded (RFC 7541
/// §5.2), and nghttp decodes them to what HTTP/1.1 says.
#[test]
fn response_headers_are_huffman_coded_and_nghttp_decodes_them() {
    need_tools!("curl", "nghttp");
    let s = Server::start("");
    let mut c = h2c(s.plain, &settings(&[]));
    c.write_all(&request(1, "/index.html")).unwrap();
    let (block, body) = body_of(&mut c, 1);
    assert_eq!(body, b"<p>over h2</p>\n");
    // The block's literals: how many strings, and how many Huffman-coded.
    let (mut strings, mut coded, mut pos) = (0, 0, 0);
    while pos < block.len() {
        let b = block[pos];
        let (prefix, literal) = match b {
            _ if b & 0x80 != 0 => (7, false),
            _ if b & 0xe0 == 0x20 => (5, false),
            _ if b & 0x40 != 0 => (6, true),
            _ => (4, true),
        };
        let (index, n) = hpack_int(&block[pos..], prefix);
        pos += n;
        if !literal {
            continue;
        }
        for _ in 0..if index == 0 { 2 } else { 1 } {
            strings += 1;
            coded += usize::from(block[pos] & 0x80 != 0);
            let (len, n) = hpack_int(&block[pos..], 7);
            pos += n + len;
        }
    }
    assert_eq!(pos, block.len(), "{block:02x?}");
    assert!(
        strings > 0 && coded > 0,
        "{strings} strings, {coded} coded: {block:02x?}"
    );

    let o = run(Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--http1.1",
            "-o",
            "/dev/null",
            "-D",
            "-",
        ])
        .arg(format!("http://{}/index.html", s.plain)));
    let http1 = text(&o);
    let o = run(Command::new("nghttp")
        .args(["-nv"])
        .arg(format!("http://{}/index.html", s.plain)));
    let h2 = text(&o);
    assert!(o.status.success(), "{h2}");
    for name in [
        "content-type",
        "content-length",
        "last-modified",
        "etag",
        "server",
    ] {
        let want = header(&http1, name).unwrap_or_else(|| panic!("no {name}: {http1}"));
        let line = format!("recv (stream_id=13) {name}: {want}\n");
        assert!(h2.contains(&line), "no {line:?} in:\n{h2}");
    }
}

/// Many requests for one cached file in one write: every answer's header block uses
/// the static table alone (a fresh decoder reads each), the kept blocks of the
/// cached answer are the ones sent again, and a table size update the client's
/// SETTINGS asked for still opens the first block only.
#[test]
fn a_cached_answer_keeps_its_header_block_and_the_table_size_update_comes_first() {
    use servers::proto::http2::hpack::{Decoded, HeaderDecoder};
    let s = Server::start("");
    // SETTINGS_HEADER_TABLE_SIZE 0: the next block must open with an update to 0.
    let mut c = h2c(s.plain, &settings(&[(1, 0)]));
    let ids: Vec<u32> = (0..40).map(|i| 2 * i + 1).collect();
    let batch: Vec<u8> = ids
        .iter()
        .flat_map(|&id| request(id, "/index.html"))
        .collect();
    c.write_all(&batch).unwrap();
    let mut blocks = Vec::new();
    for &id in &ids {
        let (block, body) = body_of(&mut c, id);
        assert_eq!(body, b"<p>over h2</p>\n", "stream {id}");
        blocks.push(block);
    }
    assert_eq!(blocks[0][0], 0x20, "{:02x?}", blocks[0]);
    let first = blocks[0][1..].to_vec();
    blocks[0] = first;
    for (i, b) in blocks.iter().enumerate() {
        assert_ne!(b[0] & 0xe0, 0x20, "block {i} has a size update: {b:02x?}");
        let Ok(Decoded::Fields(fields)) = HeaderDecoder::new(1 << 16).decode(b) else {
            panic!("block {i} needs a dynamic table: {b:02x?}");
        };
        let get = |n: &[u8]| {
            fields
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(b":status").as_deref(), Some(&b"200"[..]), "{fields:?}");
        assert_eq!(get(b"content-length").as_deref(), Some(&b"15"[..]));
        assert!(
            get(b"etag").is_some() && get(b"date").is_some(),
            "{fields:?}"
        );
    }
    // Made within a second or two, the blocks are one or two distinct ones (the
    // Date may tick over), however many streams asked.
    let mut distinct = blocks.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() <= 3, "{} distinct blocks", distinct.len());
}
