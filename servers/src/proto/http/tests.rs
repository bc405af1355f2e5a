//! The protocol driven directly, without sockets: what each request queues.

use super::*;
use crate::proto::Action;

struct Site {
    _dir: tempfile::TempDir,
    http: Http,
    conn: HttpConn,
}

const ID: ConnId = ConnId(7);

fn site() -> Site {
    site_with(|_| {})
}

fn site_with(tune: impl FnOnce(&mut HttpConfig)) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("hello.txt"), "hello world\n").unwrap();
    std::fs::write(root.join("empty.css"), "").unwrap();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/index.html"), "docs").unwrap();
    std::fs::create_dir(root.join("bare")).unwrap();
    let mut cfg = HttpConfig::new(root).unwrap();
    cfg.route("/status", |r| RouteResponse {
        status: 200,
        content_type: "application/json".into(),
        body: Bytes::from(format!("{{\"path\":\"{}\"}}", r.path)),
    });
    tune(&mut cfg);
    let mut http = Http::new(Arc::new(cfg));
    let mut out = Outbox::new();
    let conn = http.open(ID, "127.0.0.1:5555".parse().unwrap(), &mut out);
    let actions: Vec<Action> = out.drain().collect();
    assert!(matches!(
        actions.as_slice(),
        [Action::Deadline { after: Some(d), .. }] if *d == Duration::from_secs(10)
    ));
    Site {
        _dir: dir,
        http,
        conn,
    }
}

/// What the client would read, and the actions that were not sends.
#[derive(Debug, Default)]
struct Seen {
    bytes: String,
    closed: bool,
    deadlines: Vec<Option<Duration>>,
    files: usize,
}

fn render(out: &mut Outbox) -> Seen {
    let mut seen = Seen::default();
    for a in out.drain() {
        match a {
            Action::Send { data, .. } => seen.bytes.push_str(&String::from_utf8_lossy(&data)),
            Action::SendFile {
                file, offset, len, ..
            } => {
                let mut buf = vec![0u8; usize::try_from(len).unwrap()];
                file.read_exact_at(&mut buf, offset).unwrap();
                seen.bytes.push_str(&String::from_utf8_lossy(&buf));
                seen.files += 1;
            }
            Action::Close { .. } => seen.closed = true,
            Action::Deadline { after, .. } => seen.deadlines.push(after),
            other => panic!("static HTTP never connects or pauses: {other:?}"),
        }
    }
    seen
}

impl Site {
    fn feed(&mut self, input: &[u8]) -> (usize, Seen) {
        let mut out = Outbox::new();
        let n = self.http.data(ID, &mut self.conn, input, &mut out);
        (n, render(&mut out))
    }

    fn get(&mut self, input: &str) -> Seen {
        let (n, seen) = self.feed(input.as_bytes());
        assert_eq!(n, input.len(), "all consumed");
        seen
    }
}

fn status_of(s: &Seen) -> &str {
    &s.bytes[9..12]
}

fn header<'a>(s: &'a Seen, name: &str) -> Option<&'a str> {
    let head = s.bytes.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v.trim_end())
    })
}

fn body(s: &Seen) -> &str {
    s.bytes.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn small_files_inline_large_files_stream() {
    let mut s = site_with(|c| c.inline_max = 5);
    let r = s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.files, body(&r)), (1, "hello world\n"));
    let r = s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-5\r\n\r\n");
    assert_eq!((r.files, body(&r)), (0, "ello "));
    let r = s.get("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.files, 1);
    assert_eq!(body(&r), "<h1>home</h1>");
}

#[test]
fn a_pipeline_of_streamed_files_holds_one_at_a_time() {
    let mut s = site_with(|c| c.inline_max = 0);
    let one = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let three = format!("{one}{one}GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    let (n, r) = s.feed(three.as_bytes());
    assert_eq!((n, r.files), (one.len(), 1));
    let (n, r) = s.feed(&three.as_bytes()[one.len()..]);
    assert_eq!((n, r.files), (one.len(), 1));
    let (n, r) = s.feed(&three.as_bytes()[2 * one.len()..]);
    assert_eq!(n, three.len() - 2 * one.len());
    assert_eq!(status_of(&r), "404");
}

/// Sleeps until the wall-clock second turns (at most ~1 s), as the server reads the
/// clock (the coarse clock, which may turn a few milliseconds after the precise one).
fn next_second() {
    let secs = wall_secs;
    let start = secs();
    for _ in 0..300 {
        if secs() != start {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the clock did not move in 1.5 s");
}

#[test]
fn cached_files_answer_ranges_and_see_changes_within_a_second() {
    let mut s = site();
    let get = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    // At the start of a second, so the next requests fall in the same one (the
    // test takes microseconds) and must come from the entry opened by the first.
    next_second();
    assert_eq!(body(&s.get(get)), "hello world\n");
    std::fs::write(s._dir.path().join("hello.txt"), "changed\n").unwrap();
    let r = s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-5\r\n\r\n");
    assert_eq!(
        (status_of(&r), body(&r)),
        ("206", "ello "),
        "served from the cache"
    );
    assert_eq!(header(&r, "Content-Range"), Some("bytes 1-5/12"));
    next_second();
    let r = s.get(get);
    assert_eq!(
        (header(&r, "Content-Length"), body(&r)),
        (Some("8"), "changed\n")
    );
    std::fs::remove_file(s._dir.path().join("hello.txt")).unwrap();
    next_second();
    assert_eq!(status_of(&s.get(get)), "404");
}

#[test]
fn without_the_cache_every_request_opens_afresh() {
    let mut s = site_with(|c| c.file_cache = 0);
    let get = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(body(&s.get(get)), "hello world\n");
    std::fs::write(s._dir.path().join("hello.txt"), "changed\n").unwrap();
    assert_eq!(body(&s.get(get)), "changed\n");
    std::fs::remove_file(s._dir.path().join("hello.txt")).unwrap();
    assert_eq!(status_of(&s.get(get)), "404");
}

#[test]
fn a_cached_index_does_not_answer_for_the_slashless_path() {
    let mut s = site();
    for _ in 0..2 {
        let r = s.get("GET /docs HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status_of(&r), "301");
        let r = s.get("GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((status_of(&r), body(&r)), ("200", "docs"));
        assert_eq!(header(&r, "Content-Type"), Some("text/html; charset=utf-8"));
    }
}

#[test]
fn get_a_file_http10_closes() {
    let mut s = site_with(|c| c.inline_max = 0);
    let r = s.get("GET /hello.txt HTTP/1.0\r\n\r\n");
    assert!(r.bytes.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.bytes);
    assert_eq!(
        header(&r, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&r, "content-length"), Some("12"));
    assert_eq!(header(&r, "connection"), Some("close"));
    assert_eq!(header(&r, "server"), Some("httpd"));
    assert!(header(&r, "date").is_some_and(|d| d.ends_with(" GMT") && d.len() == 29));
    assert!(header(&r, "last-modified").is_some());
    assert_eq!(body(&r), "hello world\n");
    assert_eq!(r.files, 1);
    assert!(r.closed);
    // Further input is discarded.
    let (n, r) = s.feed(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(n, 18);
    assert!(r.bytes.is_empty());
}

#[test]
fn keep_alive_rules() {
    let mut s = site();
    let r = s.get("GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(header(&r, "connection"), Some("keep-alive"));
    assert!(!r.closed);
    assert_eq!(r.deadlines, [Some(Duration::from_secs(30))]);
    let r = s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(header(&r, "connection"), None);
    assert!(!r.closed);
    let r = s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(header(&r, "connection"), Some("close"));
    assert!(r.closed);
}

#[test]
fn http11_without_host_is_400() {
    let mut s = site();
    let r = s.get("GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&r), "400");
    assert!(r.closed);
    assert!(body(&r).contains("400 Bad Request"));
    assert_eq!(
        header(&r, "content-length").unwrap(),
        body(&r).len().to_string()
    );
}

#[test]
fn pipelined_requests_answer_in_order() {
    let mut s = site();
    let r = s.get(
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /docs/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let statuses: Vec<&str> = r
        .bytes
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &r.bytes[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "404", "200"]);
    assert!(r.bytes.contains("hello world\n"));
    assert!(r.bytes.ends_with("\r\n\r\ndocs"));
    assert!(!r.bytes.contains("<h1>home</h1>"), "HEAD sent a body");
    assert!(r.closed);
    assert_eq!(s.http.stats().snapshot().requests, 4);
}

#[test]
fn partial_heads_wait_and_keep_their_deadline() {
    let mut s = site();
    // Bytes trickling in never re-arm the header timeout.
    for end in 1..20 {
        let (n, r) = s.feed(&b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n"[..end]);
        assert_eq!(n, 0);
        assert!(r.bytes.is_empty() && r.deadlines.is_empty() && !r.closed);
    }
    // After an answer, a new partial head arms the header timeout again, once.
    let (n, r) = s.feed(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /");
    assert_eq!(n, 36);
    assert_eq!(status_of(&r), "200");
    assert_eq!(r.deadlines, [Some(Duration::from_secs(10))]);
    let (n, r) = s.feed(b"GET /x");
    assert_eq!(n, 0);
    assert!(r.deadlines.is_empty());
}

#[test]
fn timeouts() {
    let mut s = site();
    let mut out = Outbox::new();
    s.http.timeout(ID, &mut s.conn, &mut out);
    let r = render(&mut out);
    assert_eq!(status_of(&r), "408");
    assert!(r.closed);

    let mut s = site();
    s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    s.http.timeout(ID, &mut s.conn, &mut out);
    let r = render(&mut out);
    assert!(
        r.bytes.is_empty(),
        "an idle keep-alive connection closes silently"
    );
    assert!(r.closed);
    assert_eq!(s.http.stats().snapshot().timeouts, 1);
}

#[test]
fn statuses() {
    let cases: &[(&str, &str)] = &[
        ("GET / HTTP/1.0\r\n\r\n", "200"),
        ("GET /docs HTTP/1.0\r\n\r\n", "301"),
        ("GET /docs/ HTTP/1.0\r\n\r\n", "200"),
        ("GET /bare/ HTTP/1.0\r\n\r\n", "403"),
        ("GET /../etc/passwd HTTP/1.0\r\n\r\n", "403"),
        ("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.0\r\n\r\n", "403"),
        ("GET /%252e%252e/etc/passwd HTTP/1.0\r\n\r\n", "404"),
        ("GET /..%5c..%5cetc%5cpasswd HTTP/1.0\r\n\r\n", "400"),
        ("GET /a%00b HTTP/1.0\r\n\r\n", "400"),
        ("GET /%zz HTTP/1.0\r\n\r\n", "400"),
        ("GET /etc/passwd HTTP/1.0\r\n\r\n", "404"),
        ("GET /hello.txt?x=1 HTTP/1.0\r\n\r\n", "200"),
        ("POST / HTTP/1.0\r\n\r\n", "405"),
        ("BREW / HTTP/1.0\r\n\r\n", "501"),
        ("GET /hello.txt HTTP/1.0\r\nRange: bytes=0-4\r\n\r\n", "206"),
        (
            "GET /hello.txt HTTP/1.0\r\nRange: bytes=100-\r\n\r\n",
            "416",
        ),
        (
            "GET / HTTP/1.0\r\nIf-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n\r\n",
            "304",
        ),
        (
            "GET / HTTP/1.0\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n",
            "200",
        ),
        (
            "GET / HTTP/1.0\r\nIf-Modified-Since: garbage\r\n\r\n",
            "200",
        ),
        ("GET /status HTTP/1.0\r\n\r\n", "200"),
        ("GARBAGE\r\n\r\n", "400"),
    ];
    for (req, want) in cases {
        let mut s = site();
        let r = s.get(req);
        assert_eq!(status_of(&r), *want, "{req:?} → {}", r.bytes);
        if !matches!(*want, "200" | "206" | "304") {
            assert!(
                body(&r).contains(&format!("<h1>{want} ")),
                "{req:?} → {}",
                r.bytes
            );
            assert_eq!(
                header(&r, "content-length").unwrap(),
                body(&r).len().to_string()
            );
        }
    }
}

#[test]
fn details_of_special_answers() {
    let mut s = site();
    let r = s.get("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    assert!(r.closed, "a request with a body closes the connection");

    let mut s = site();
    let r = s.get("GET /docs?a=b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(header(&r, "location"), Some("/docs/?a=b"));

    let mut s = site();
    let r = s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=-6\r\n\r\n");
    assert_eq!(header(&r, "content-range"), Some("bytes 6-11/12"));
    assert_eq!(header(&r, "content-length"), Some("6"));
    assert_eq!(body(&r), "world\n");

    let r = s.get("GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=20-\r\n\r\n");
    assert_eq!(header(&r, "content-range"), Some("bytes */12"));

    let lm = header(
        &s.get("HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
        "last-modified",
    )
    .unwrap()
    .to_string();
    let r = s.get(&format!(
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\nIf-Range: {lm}\r\n\r\n"
    ));
    assert_eq!(status_of(&r), "206");
    let r = s.get(
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\nIf-Range: \"etag\"\r\n\r\n",
    );
    assert_eq!(status_of(&r), "200");
    let r = s.get(&format!(
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {lm}\r\n\r\n"
    ));
    assert_eq!(status_of(&r), "304");
    assert_eq!(body(&r), "");

    let r = s.get("GET /empty.css HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(header(&r, "content-length"), Some("0"));
    assert_eq!(r.files, 0);

    let r = s.get("HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&r), "404");
    assert_eq!(body(&r), "");
    assert_ne!(header(&r, "content-length"), Some("0"));

    let r = s.get("GET /status?x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(body(&r), "{\"path\":\"/status\"}");

    let c = s.http.stats().snapshot();
    assert_eq!(c.requests, 9);
    assert_eq!(c.responses_2xx, 6);
    assert_eq!(c.responses_3xx, 1);
    assert_eq!(c.responses_4xx, 2);
}

#[test]
fn limits_reject_and_close() {
    let mut s = site();
    let mut long = "GET /".to_string();
    long.push_str(&"a".repeat(MAX_URI + 100));
    let r = s.get(&long);
    assert_eq!(status_of(&r), "414");
    assert!(r.closed);

    let mut s = site();
    let big = format!("GET / HTTP/1.0\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
    let r = s.get(&big);
    assert_eq!(status_of(&r), "431");
    assert!(r.closed);
}

#[test]
fn refusal_is_a_complete_503() {
    let mut s = site();
    let bytes = s.http.refusal();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    assert!(head.contains("Connection: close"));
}

#[test]
fn access_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (log, guard) =
        crate::log::AccessLog::start(Box::new(crate::log::AppendFile::open(&path).unwrap()), 64)
            .unwrap();
    let mut cfg = HttpConfig::new(dir.path()).unwrap();
    cfg.access_log = Some(log);
    let mut http = Http::new(Arc::new(cfg));
    let mut out = Outbox::new();
    let mut conn = http.open(ID, "10.1.2.3:999".parse().unwrap(), &mut out);
    http.data(
        ID,
        &mut conn,
        b"GET /x%0a HTTP/1.1\r\nHost: h\r\nReferer: r\r\nUser-Agent: u\"a\xff\r\n\r\n",
        &mut out,
    );
    http.data(ID, &mut conn, b"GET /\"\x1b[31m HTTP/1.1\r\n\r\n", &mut out);
    drop(guard);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("10.1.2.3 - - ["), "{text}");
    let page = html_page(404).len();
    assert!(
        lines[0].ends_with(&format!(
            "] \"GET /x%0a HTTP/1.1\" 404 {page} \"r\" \"u\\x22a\\xFF\""
        )),
        "{text}"
    );
    assert!(
        lines[1].contains("\"GET /\\x22\\x1B[31m HTTP/1.1\" 400 "),
        "{text}"
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Heads built from pieces that stress the parser's branches, plus raw noise.
    fn head_strategy() -> impl Strategy<Value = Vec<u8>> {
        let method = prop::sample::select(vec!["GET", "HEAD", "POST", "BREW", "get", ""]);
        let seg = prop::sample::select(vec![
            "..",
            ".",
            "%2e%2e",
            "%252e",
            "%",
            "%zz",
            "%00",
            "\\",
            "a",
            "hello.txt",
            "docs",
            "index.html",
            "",
            "%2f",
            "é",
            "?q=1",
            "#f",
        ]);
        let path = prop::collection::vec(seg, 0..8).prop_map(|s| format!("/{}", s.join("/")));
        let version = prop::sample::select(vec!["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/1", ""]);
        let header = prop::sample::select(vec![
            "Host: x",
            "Connection: keep-alive",
            "Connection: close",
            "Range: bytes=0-3",
            "Range: bytes=-2",
            "Range: bytes=9999-",
            "Range: bytes=1-0,2-3",
            "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT",
            "If-Modified-Since: nonsense",
            "If-Range: x",
            "Content-Length: 5",
            "Content-Length: -1",
            "Transfer-Encoding: chunked",
            "X-Bad\0: v",
            "no colon",
            "",
        ]);
        let noise = prop::collection::vec(any::<u8>(), 0..64);
        (
            method,
            path,
            version,
            prop::collection::vec(header, 0..6),
            noise,
            any::<bool>(),
        )
            .prop_map(|(m, p, v, hs, noise, lf_only)| {
                let eol = if lf_only { "\n" } else { "\r\n" };
                let mut s = format!("{m} {p} {v}{eol}");
                for h in hs {
                    s.push_str(h);
                    s.push_str(eol);
                }
                s.push_str(eol);
                let mut b = s.into_bytes();
                b.extend(noise);
                b
            })
    }

    fn drive(inputs: &[Vec<u8>], cuts: &[usize]) {
        let mut s = site();
        let mut stream: Vec<u8> = inputs.concat();
        let mut pending: Vec<u8> = Vec::new();
        let mut out = Outbox::new();
        let mut cuts = cuts.iter().cycle();
        while !stream.is_empty() {
            let n = (*cuts.next().unwrap_or(&1)).clamp(1, stream.len());
            pending.extend(stream.drain(..n));
            let used = s.http.data(ID, &mut s.conn, &pending, &mut out);
            assert!(used <= pending.len());
            pending.drain(..used);
            let seen = render(&mut out);
            if !seen.bytes.is_empty() {
                assert!(seen.bytes.starts_with("HTTP/1.1 "), "{}", seen.bytes);
            }
            // The model's cap on unconsumed input is never approached.
            assert!(pending.len() <= MAX_HEAD + MAX_URI + 64);
        }
        s.http.timeout(ID, &mut s.conn, &mut out);
        let _ = render(&mut out);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn structured_heads(heads in prop::collection::vec(head_strategy(), 1..5),
                            cuts in prop::collection::vec(1usize..200, 1..8)) {
            drive(&heads, &cuts);
        }

        #[test]
        fn raw_bytes(noise in prop::collection::vec(any::<u8>(), 0..4096),
                     cuts in prop::collection::vec(1usize..2000, 1..8)) {
            drive(&[noise], &cuts);
        }
    }
}

/// The capstone shares one config across worker threads and moves each `Http` and
/// its connections into a thread of its own.
#[test]
fn thread_safety_the_capstone_relies_on() {
    fn shared<T: Send + Sync>() {}
    fn movable<T: Send>() {}
    shared::<HttpConfig>();
    shared::<HttpStats>();
    movable::<Http>();
    movable::<HttpConn>();
}
