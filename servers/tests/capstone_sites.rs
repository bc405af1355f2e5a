//! End-to-end tests of the capstone's `[[site]]` blocks: sites chosen by `Host`,
//! their index files, error pages, header rules, redirects and fallback, HSTS on
//! HTTPS only, `--check-config` errors and a reload that applies a changed site.
//! Raw requests checked byte for byte, and curl (`--resolve`) as a real client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_capstone");

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running capstone; its error log is followed on a thread.
struct Server {
    child: Child,
    plain: SocketAddr,
    https: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    _state: tempfile::TempDir,
}

impl Server {
    fn start(config: &Path) -> Server {
        let state = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("XDG_RUNTIME_DIR", state.path())
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
        let (plain, https) = loop {
            let text = log.lock().unwrap().join("\n");
            let addr_after = |tag: &str| {
                text.split(tag)
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            };
            if text.contains("worker serving") {
                if let Some(p) = addr_after("listening addr=") {
                    break (p, addr_after("listening for https addr="));
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
            log,
            _state: state,
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(libc::SIGQUIT);
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

/// One parsed response: status, header lines (as sent), body.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    /// The value of header `name` (case-insensitive name), if sent once or more.
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

/// Reads one response (with a Content-Length, as every answer here has).
fn read_resp(s: &mut TcpStream, head_only: bool) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let mut r = Resp {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = r.header("Content-Length").map_or(0, |v| v.parse().unwrap());
    if !head_only {
        r.body = vec![0u8; len];
        s.read_exact(&mut r.body).expect("read body");
    }
    r
}

/// `GET path` with `host` (none: an HTTP/1.0 request without Host) on a new connection.
fn get(addr: SocketAddr, host: Option<&str>, path: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = match host {
        Some(h) => format!("GET {path} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"),
        None => format!("GET {path} HTTP/1.0\r\n\r\n"),
    };
    s.write_all(req.as_bytes()).unwrap();
    read_resp(&mut s, false)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A site root holding `index.html` that says `name`.
fn root(dir: &Path, name: &str) -> PathBuf {
    let r = dir.join(name);
    write(&r.join("index.html"), &format!("site {name}\n"));
    r
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

fn config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("capstone.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn the_host_header_picks_the_site() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (a, api, deep, dflt) = (
        root(t, "a"),
        root(t, "api"),
        root(t, "deep"),
        root(t, "dflt"),
    );
    write(&api.join("home.htm"), "api home\n");
    std::fs::remove_file(api.join("index.html")).unwrap();
    let cfg = config(
        t,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nprocesses = 1\nworkers = 1\n\
             [[site]]\nserver_names = [\"example.test\", \"*.example.test\"]\nroot = {a:?}\n\
             [[site]]\nserver_names = [\"api.example.test\"]\nroot = {api:?}\n\
             index = [\"index.html\", \"home.htm\"]\n\
             [[site]]\nserver_names = [\"*.b.example.test\"]\nroot = {deep:?}\n\
             [[site]]\nserver_names = [\"default.test\"]\ndefault = true\nroot = {dflt:?}\n"
        ),
    );
    let s = Server::start(&cfg);
    for (host, want) in [
        (Some("example.test"), "site a\n"),
        (Some("Example.TEST:8080"), "site a\n"),
        (Some("www.example.test."), "site a\n"),
        (Some("x.y.example.test"), "site a\n"),
        // An exact name beats a wildcard; the longest wildcard wins.
        (Some("api.example.test"), "api home\n"),
        (Some("x.b.example.test"), "site deep\n"),
        (Some("b.example.test"), "site a\n"),
        // Unknown names and no Host at all: the site marked default.
        (Some("unknown.test"), "site dflt\n"),
        (Some("127.0.0.1"), "site dflt\n"),
        (Some("example.test.evil"), "site dflt\n"),
        (None, "site dflt\n"),
    ] {
        let r = get(s.plain, host, "/");
        assert_eq!(r.status, 200, "{host:?}: {r:?}");
        assert_eq!(r.text(), want, "{host:?}");
    }
    // One keep-alive connection, pipelined requests for three sites.
    let mut c = TcpStream::connect(s.plain).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n\
          GET / HTTP/1.1\r\nHost: example.test\r\n\r\n\
          GET /index.html HTTP/1.1\r\nHost: nobody\r\n\r\n",
    )
    .unwrap();
    for want in ["api home\n", "site a\n", "site dflt\n"] {
        let r = read_resp(&mut c, false);
        assert_eq!((r.status, r.text().as_str()), (200, want), "{r:?}");
    }
    // The api site has no index.html: its own list finds home.htm; a path in one
    // site is not found in another.
    assert_eq!(get(s.plain, Some("example.test"), "/home.htm").status, 404);

    // With curl as the client, the name resolved to loopback.
    if have("curl") {
        let port = s.plain.port();
        let o = run(Command::new("curl")
            .args(["-sS", "--max-time", "10", "--resolve"])
            .arg(format!("api.example.test:{port}:127.0.0.1"))
            .arg(format!("http://api.example.test:{port}/")));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "api home\n",
            "{}",
            text(&o)
        );
    }
}

#[test]
fn the_first_site_is_the_default_and_a_top_level_root_still_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (one, two) = (root(t, "one"), root(t, "two"));
    let cfg = config(
        t,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nprocesses = 1\nworkers = 1\n\
             [[site]]\nserver_names = [\"one.test\"]\nroot = {one:?}\n\
             [[site]]\nserver_names = [\"two.test\"]\nroot = {two:?}\n"
        ),
    );
    let s = Server::start(&cfg);
    assert_eq!(get(s.plain, Some("two.test"), "/").text(), "site two\n");
    assert_eq!(get(s.plain, Some("other"), "/").text(), "site one\n");
    drop(s);

    // No [[site]]: the top-level root, its own error page and headers.
    write(&two.join("missing.html"), "gone from two\n");
    let cfg = config(
        t,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nprocesses = 0\nworkers = 1\nroot = {two:?}\n\
             error_pages = {{ 404 = \"/missing.html\" }}\n\
             [[headers]]\nextension = \"html\"\nset = {{ \"X-Frame-Options\" = \"DENY\" }}\n"
        ),
    );
    let s = Server::start(&cfg);
    // Rules match the request's path ("/" is not "*.html").
    let r = get(s.plain, Some("any"), "/");
    assert_eq!((r.status, r.text().as_str()), (200, "site two\n"));
    assert_eq!(r.header("X-Frame-Options"), None);
    let r = get(s.plain, Some("any"), "/index.html");
    assert_eq!((r.status, r.text().as_str()), (200, "site two\n"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    let r = get(s.plain, Some("any"), "/nope");
    assert_eq!((r.status, r.text().as_str()), (404, "gone from two\n"));
}

#[test]
fn error_pages_headers_redirects_and_fallback_per_site() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (www, app) = (root(t, "www"), root(t, "app"));
    write(&www.join("404.html"), "<h1>custom not found</h1>\n");
    write(&www.join("assets/app.css"), "body{}\n");
    write(&www.join("assets/app.js"), "1;\n");
    write(&www.join("private/x.txt"), "x\n");
    std::fs::create_dir_all(app.join("static")).unwrap();
    write(&app.join("static/logo.svg"), "<svg/>\n");
    let cfg = config(
        t,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nprocesses = 1\nworkers = 1\n\
             [[site]]\nserver_names = [\"www.test\"]\nroot = {www:?}\n\
             error_pages = {{ 404 = \"/404.html\" }}\n\
             [[site.headers]]\nprefix = \"/assets/\"\n\
             set = {{ \"Cache-Control\" = \"max-age=3600\", \"X-Content-Type-Options\" = \"nosniff\" }}\n\
             [[site.headers]]\nextension = \"css\"\nset = {{ \"Cache-Control\" = \"max-age=60\" }}\n\
             [[site.redirects]]\npath = \"/old\"\nto = \"/new\"\n\
             [[site.redirects]]\nprefix = \"/blog/\"\nto = \"https://blog.test/posts/\"\ncode = 308\n\
             [[site.redirects]]\nprefix = \"/tmp/\"\nto = \"/temp/\"\ncode = 307\n\
             [[site]]\nserver_names = [\"app.test\"]\nroot = {app:?}\nfallback = \"/index.html\"\n"
        ),
    );
    let s = Server::start(&cfg);
    let w = Some("www.test");

    // 404 with the site's page, its type and the original status.
    let r = get(s.plain, w, "/no/such/file");
    assert!(
        r.head.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{}",
        r.head
    );
    assert_eq!(r.text(), "<h1>custom not found</h1>\n");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("Content-Length"), Some("26"));
    // Header rules are for successful answers only (nginx's add_header).
    assert_eq!(
        get(s.plain, w, "/assets/none.js").header("Cache-Control"),
        None
    );
    // HEAD of a missing file: the status and length, no body.
    let mut c = TcpStream::connect(s.plain).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"HEAD /nope HTTP/1.1\r\nHost: www.test\r\n\r\nGET / HTTP/1.1\r\nHost: www.test\r\n\r\n",
    )
    .unwrap();
    let r = read_resp(&mut c, true);
    assert_eq!((r.status, r.header("Content-Length")), (404, Some("26")));
    assert_eq!(read_resp(&mut c, false).text(), "site www\n");

    // Headers by prefix, by extension (the later rule wins for the same name).
    let r = get(s.plain, w, "/assets/app.js");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Cache-Control"), Some("max-age=3600"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    let r = get(s.plain, w, "/assets/app.css");
    assert_eq!(r.header("Cache-Control"), Some("max-age=60"));
    assert_eq!(r.head.matches("Cache-Control").count(), 1, "{}", r.head);
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(get(s.plain, w, "/").header("Cache-Control"), None);
    // A 304 carries them too.
    let etag = get(s.plain, w, "/assets/app.js")
        .header("ETag")
        .unwrap()
        .to_string();
    let mut c = TcpStream::connect(s.plain).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET /assets/app.js HTTP/1.1\r\nHost: www.test\r\nIf-None-Match: {etag}\r\n\r\n"
    )
    .unwrap();
    let r = read_resp(&mut c, true);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("Cache-Control"), Some("max-age=3600"));

    // Redirects: exact, and by prefix with the rest of the path and the query.
    let r = get(s.plain, w, "/old");
    assert!(
        r.head.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{}",
        r.head
    );
    assert_eq!(r.header("Location"), Some("/new"));
    assert_eq!(
        get(s.plain, w, "/old/").status,
        404,
        "an exact path is exact"
    );
    let r = get(s.plain, w, "/blog/2024/post?x=1");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("Location"),
        Some("https://blog.test/posts/2024/post?x=1")
    );
    let r = get(s.plain, w, "/tmp/a");
    assert!(
        r.head.starts_with("HTTP/1.1 307 Temporary Redirect\r\n"),
        "{}",
        r.head
    );
    assert_eq!(r.header("Location"), Some("/temp/a"));
    // The other site has none of these.
    assert_eq!(get(s.plain, Some("app.test"), "/old").status, 200);

    // Fallback: a missing path is the SPA's index with 200; files are themselves.
    let a = Some("app.test");
    let r = get(s.plain, a, "/users/42/settings");
    assert_eq!((r.status, r.text().as_str()), (200, "site app\n"));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(get(s.plain, a, "/static/logo.svg").text(), "<svg/>\n");
    assert_eq!(get(s.plain, a, "/static/logo.svg/").text(), "site app\n");
    // Traversal is still refused before any fallback.
    let r = get(s.plain, a, "/../../etc/passwd");
    assert_eq!(r.status, 403, "{r:?}");
    // Without a fallback, www answers 404.
    assert_eq!(get(s.plain, w, "/users/42").status, 404);

    if have("curl") {
        let port = s.plain.port();
        let o = run(Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
            ])
            .args(["--max-time", "10", "--resolve"])
            .arg(format!("www.test:{port}:127.0.0.1"))
            .arg(format!("http://www.test:{port}/old")));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("301 http://www.test:{port}/new"),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn hsts_goes_out_over_https_only() {
    if !have("curl") {
        eprintln!("skipped: needs curl (scripts/test.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (secure, other) = (root(t, "secure"), root(t, "other"));
    write(&secure.join("404.html"), "nf\n");
    let dd = servers::tls::DataDir::named(t.join("ca"), "sites");
    dd.server_identity().unwrap();
    let (ca, cert, key) = (dd.ca_cert(), dd.server_cert(), dd.server_key());
    let cfg = config(
        t,
        &format!(
            "listen = [\"127.0.0.2:0\", {{ addr = \"127.0.0.1:0\", tls = true }}]\n\
             processes = 1\nworkers = 2\n\
             [[site]]\nserver_names = [\"localhost\"]\nroot = {secure:?}\n\
             hsts = \"max-age=31536000; includeSubDomains\"\n\
             error_pages = {{ 404 = \"/404.html\" }}\n\
             [[site]]\nserver_names = [\"other.test\"]\nroot = {other:?}\n\
             [tls]\ncert = {cert:?}\nkey = {key:?}\n"
        ),
    );
    let s = Server::start(&cfg);
    let https = s.https.expect("an https listener");
    let curl = |url: String, resolve: String, extra: &[&str]| {
        let o = run(Command::new("curl")
            // HTTP/1.1 heads, as they are written (HTTP/2 has its own tests).
            .args([
                "-sS",
                "--http1.1",
                "-D",
                "-",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(&ca)
            .arg("--resolve")
            .arg(resolve)
            .args(extra)
            .arg(url));
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let p = https.port();
    let tls_resolve = format!("localhost:{p}:{}", https.ip());
    let out = curl(format!("https://localhost:{p}/"), tls_resolve.clone(), &[]);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.contains("\r\nStrict-Transport-Security: max-age=31536000; includeSubDomains\r\n"),
        "{out}"
    );
    assert!(out.ends_with("site secure\n"), "{out}");
    // On errors too (the custom page), and only once.
    let out = curl(
        format!("https://localhost:{p}/nope"),
        tls_resolve.clone(),
        &[],
    );
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
    assert_eq!(out.matches("Strict-Transport-Security").count(), 1, "{out}");
    assert!(out.ends_with("\r\n\r\nnf\n"), "{out}");
    // A site without hsts over the same TLS listener: none.
    let out = curl(
        format!("https://localhost:{p}/"),
        tls_resolve,
        &["-H", "Host: other.test"],
    );
    assert!(out.ends_with("site other\n"), "{out}");
    assert!(!out.contains("Strict-Transport-Security"), "{out}");
    // Plain HTTP to the hsts site: never (RFC 6797 §7.2).
    let pp = s.plain.port();
    let out = curl(
        format!("http://localhost:{pp}/"),
        format!("localhost:{pp}:{}", s.plain.ip()),
        &[],
    );
    assert!(out.ends_with("site secure\n"), "{out}");
    assert!(!out.contains("Strict-Transport-Security"), "{out}");
    let r = get(s.plain, Some("localhost"), "/nope");
    assert_eq!(
        (r.status, r.header("Strict-Transport-Security")),
        (404, None)
    );
}

#[test]
fn a_reload_applies_changed_sites() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (one, two) = (root(t, "one"), root(t, "two"));
    let body = |second: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\nprocesses = 1\nworkers = 1\n\
             [[site]]\nserver_names = [\"one.test\"]\nroot = {one:?}\n\
             {second}"
        )
    };
    let cfg = config(t, &body(""));
    let s = Server::start(&cfg);
    assert_eq!(get(s.plain, Some("two.test"), "/").text(), "site one\n");
    assert_eq!(get(s.plain, Some("one.test"), "/x").status, 404);
    std::fs::write(
        &cfg,
        body(&format!(
            "[[site]]\nserver_names = [\"two.test\"]\nroot = {two:?}\ndefault = true\n\
             [[site.redirects]]\npath = \"/x\"\nto = \"/\"\ncode = 302\n"
        )),
    )
    .unwrap();
    s.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if get(s.plain, Some("elsewhere"), "/").text() == "site two\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload not applied:\n{}",
            s.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(s.plain, Some("one.test"), "/").text(), "site one\n");
    let r = get(s.plain, Some("two.test"), "/x");
    assert_eq!((r.status, r.header("Location")), (302, Some("/")));

    // A broken file is refused and the sites in service stay.
    std::fs::write(
        &cfg,
        body("[[site]]\nserver_names = [\"one.test\"]\nroot = \"/\"\n"),
    )
    .unwrap();
    s.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log_text().contains("is named by another site") {
        assert!(Instant::now() < deadline, "no refusal:\n{}", s.log_text());
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(s.plain, Some("elsewhere"), "/").text(), "site two\n");
}

#[test]
fn check_config_reports_site_mistakes_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let www = root(t, "www");
    let head = format!(
        "listen = [\"127.0.0.1:0\"]\n[[site]]\nserver_names = [\"a.test\"]\nroot = {www:?}\n"
    );
    for (extra, line, key, msg) in [
        (
            "[[site]]\nserver_names = [\"b.test\", \"A.test\"]\nroot = \"www\"\n",
            6,
            "site.server_names",
            "is named by another site",
        ),
        (
            "default = true\n[[site]]\nserver_names = [\"b.test\"]\nroot = \"www\"\ndefault = true\n",
            9,
            "site.default",
            "already the default",
        ),
        (
            "[[site]]\nserver_names = [\"www.*.test\"]\nroot = \"www\"\n",
            6,
            "site.server_names",
            "wildcard",
        ),
        (
            "[[site.headers]]\nprefix = \"/\"\nset = { \"Bad Name\" = \"x\" }\n",
            7,
            "headers.set",
            "is not a header name",
        ),
        (
            "[[site.redirects]]\npath = \"/a\"\nto = \"/b\"\ncode = 303\n",
            8,
            "redirects.code",
            "303 is not 301, 302, 307 or 308",
        ),
        (
            "error_pages = { 404 = \"/missing.html\" }\n",
            5,
            "error_pages",
            "is not a file below the root",
        ),
        (
            "hsts = \"includeSubDomains\"\n",
            5,
            "hsts",
            "is not a Strict-Transport-Security value",
        ),
    ] {
        let path = config(t, &(head.clone() + extra));
        let o = run(Command::new(BIN).arg("--check-config").arg(&path));
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{extra}: {out}");
        let at = format!("{}:{line}: {key}: ", path.display());
        assert!(out.contains(&at) && out.contains(msg), "{extra}: want {at}…{msg}, got {out}");
    }
    let path = config(
        t,
        &(head + "hsts = \"max-age=600\"\nfallback = \"/index.html\"\n"),
    );
    let o = run(Command::new(BIN).arg("--check-config").arg(&path));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn access_blocks_per_site_replace_the_top_level_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (open, closed, inherit) = (root(t, "open"), root(t, "closed"), root(t, "inherit"));
    write(&inherit.join("admin/index.html"), "admin\n");
    write(&open.join("admin/index.html"), "open admin\n");
    let cfg = config(
        t,
        &format!(
            "listen = [\"127.0.0.1:0\"]\nprocesses = 1\nworkers = 1\n\
             [[access]]\nprefix = \"/admin/\"\ndeny = [\"127.0.0.0/8\"]\n\
             [[site]]\nserver_names = [\"inherit.test\"]\nroot = {inherit:?}\n\
             [[site]]\nserver_names = [\"closed.test\"]\nroot = {closed:?}\n\
             [[site.access]]\nprefix = \"/\"\ndeny = [\"127.0.0.1/32\"]\n\
             [[site]]\nserver_names = [\"open.test\"]\nroot = {open:?}\n\
             [[site.access]]\nprefix = \"/admin/\"\nallow = [\"127.0.0.1/32\"]\n"
        ),
    );
    let s = Server::start(&cfg);
    assert_eq!(get(s.plain, Some("inherit.test"), "/").status, 200);
    assert_eq!(get(s.plain, Some("inherit.test"), "/admin/").status, 403);
    assert_eq!(get(s.plain, Some("closed.test"), "/").status, 403);
    let r = get(s.plain, Some("open.test"), "/admin/");
    assert_eq!((r.status, r.text().as_str()), (200, "open admin\n"));
}
