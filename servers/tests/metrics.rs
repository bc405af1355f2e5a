//! Prometheus metrics of the capstone (`metrics_path`) and kvd (`--metrics-listen`),
//! read back through Python's `prometheus_client` text parser (Debian:
//! python3-prometheus-client), and checked to move with the traffic sent.

mod common;

use common::Server;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CAPSTONE: &str = env!("CARGO_BIN_EXE_capstone");
const KVD: &str = env!("CARGO_BIN_EXE_kvd");
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parses the exposition with `text_string_to_metric_families` and prints what it
/// understood: `T<TAB>family<TAB>type` and `S<TAB>sample<TAB>k=v;...<TAB>value`.
const PARSER: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    print("T\t%s\t%s" % (f.name, f.type))
    for s in f.samples:
        labels = ";".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("S\t%s\t%s\t%r" % (s.name, labels, s.value))
"#;

fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import prometheus_client.parser"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// What the parser read: sample values by `name{labels}` and family types.
struct Parsed {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Parsed {
    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key}; have {:?}", self.samples.keys()))
    }

    /// Samples named `name` with their label strings.
    fn series(&self, name: &str) -> Vec<(&str, f64)> {
        self.samples
            .iter()
            .filter_map(|(k, v)| {
                let (n, labels) = k.split_once('{')?;
                (n == name).then(|| (labels.trim_end_matches('}'), *v))
            })
            .collect()
    }
}

fn parse(py: &str, text: &str) -> Parsed {
    let mut child = Command::new(py)
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut p = Parsed {
        samples: BTreeMap::new(),
        types: BTreeMap::new(),
    };
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["T", name, kind] => {
                p.types.insert(name.to_string(), kind.to_string());
            }
            ["S", name, labels, value] => {
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("value {line}"));
                let prev = p.samples.insert(format!("{name}{{{labels}}}"), v);
                assert!(prev.is_none(), "duplicate sample {line}");
            }
            _ => panic!("parser output {line:?}"),
        }
    }
    // Every sample line of the page is under a HELP and a TYPE of its family.
    let mut helped = Vec::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap().to_string());
        } else if !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = typed.last().expect("a sample before any TYPE");
            assert!(
                name == family
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(family)),
                "{name} is not of the family typed before it ({family})"
            );
            assert_eq!(helped.last(), Some(family), "{family} has no HELP");
        }
    }
    let mut unique = typed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), typed.len(), "a family typed twice");
    p
}

/// One HTTP exchange; returns (status, head, body).
fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str, version: &str) -> (u16, String, String) {
    http(
        addr,
        &format!("GET {path} HTTP/{version}\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn scrape(py: &str, addr: SocketAddr) -> Parsed {
    let (status, head, body) = get(addr, "/metrics", "1.1");
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(header(&head, "content-type"), Some(CONTENT_TYPE), "{head}");
    parse(py, &body)
}

fn capstone(config: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capstone.toml");
    std::fs::write(&path, config).unwrap();
    let state = dir.path().to_str().unwrap().to_string();
    let srv = Server::start_raw(
        CAPSTONE,
        &["--config", path.to_str().unwrap()],
        &[("XDG_RUNTIME_DIR", &state)],
    );
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(srv.addr).is_err() {
        assert!(Instant::now() < end, "capstone never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
    (srv, dir)
}

#[test]
fn capstone_metrics_parse_and_move_with_requests() {
    let Some(py) = python() else {
        eprintln!("SKIP: python3 with prometheus_client is not installed (Debian: python3-prometheus-client; scripts/test.sh installs it)");
        return;
    };
    let (srv, _dir) = capstone(
        "listen = [\"127.0.0.1:0\"]\nworkers = 2\nprocesses = 1\n\
         [[access]]\nprefix = \"/metrics\"\nallow = [\"127.0.0.1\"]\ndeny = [\"all\"]\n",
    );
    let a = scrape(py, srv.addr);
    for _ in 0..5 {
        assert_eq!(get(srv.addr, "/", "1.1").0, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(srv.addr, "/no-such-file", "1.1").0, 404);
    }
    for _ in 0..3 {
        assert_eq!(get(srv.addr, "/", "1.0").0, 200);
    }
    let b = scrape(py, srv.addr);

    let ty = |n: &str| b.types.get(n).map(String::as_str);
    assert_eq!(ty("sysnet_capstone_responses"), Some("counter"));
    assert_eq!(ty("sysnet_capstone_requests"), Some("counter"));
    assert_eq!(ty("sysnet_capstone_connections_active"), Some("gauge"));
    assert_eq!(
        ty("sysnet_capstone_request_duration_seconds"),
        Some("histogram")
    );
    // A page counts every request answered before it, the scrape `a` included.
    let d = |k: &str| b.get(k) - a.get(k);
    assert_eq!(d("sysnet_capstone_responses_total{class=2xx}"), 9.0);
    assert_eq!(d("sysnet_capstone_responses_total{class=4xx}"), 2.0);
    assert_eq!(d("sysnet_capstone_responses_total{class=5xx}"), 0.0);
    assert_eq!(d("sysnet_capstone_requests_total{}"), 11.0);
    assert!(d("sysnet_capstone_bytes_out_total{}") > 0.0);
    assert!(d("sysnet_capstone_connections_accepted_total{}") >= 11.0);
    let h = "sysnet_capstone_request_duration_seconds";
    assert_eq!(d(&format!("{h}_count{{proto=http/1.1}}")), 8.0);
    assert_eq!(d(&format!("{h}_count{{proto=http/1.0}}")), 3.0);
    assert!(d(&format!("{h}_sum{{proto=http/1.0}}")) > 0.0);

    // Buckets: 100 µs to 10 s, cumulative, +Inf equal to the count.
    for proto in ["http/1.1", "http/1.0"] {
        let mut buckets: Vec<(f64, f64)> = b
            .series(&format!("{h}_bucket"))
            .into_iter()
            .filter(|(l, _)| l.contains(&format!("proto={proto}")))
            .map(|(l, v)| {
                let le = l.split(';').find_map(|kv| kv.strip_prefix("le=")).unwrap();
                (le.parse::<f64>().unwrap(), v)
            })
            .collect();
        buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert_eq!(buckets.len(), 17, "{buckets:?}");
        assert_eq!(buckets[0].0, 0.0001);
        assert_eq!(buckets[15].0, 10.0);
        assert!(buckets[16].0.is_infinite());
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "buckets not monotonic: {buckets:?}"
        );
        assert_eq!(
            buckets[16].1,
            b.get(&format!("{h}_count{{proto={proto}}}")),
            "+Inf is not the count"
        );
    }

    // Per-loop series: one per loop, summing to the totals of this fresh server.
    let loops = b.series("sysnet_capstone_loop_requests_total");
    assert_eq!(loops.len(), 2, "{loops:?}");
    assert!(loops
        .iter()
        .all(|(l, _)| l.contains("loop=") && l.contains("worker=")));
    let sum: f64 = loops.iter().map(|(_, v)| v).sum();
    assert_eq!(sum, b.get("sysnet_capstone_requests_total{}"));

    // The access rules of its path apply, as to any path.
    if Command::new("curl").arg("--version").output().is_ok() {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--interface", "127.0.0.2", "--max-time", "5"])
            .arg(format!("http://{}/metrics", srv.addr))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    }
    srv.stop();
}

/// An origin on threads: every request, whatever it is, gets `200 ok` (kept alive).
fn origin() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .is_err()
                            {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn capstone_metrics_count_each_upstream_server() {
    let Some(py) = python() else {
        eprintln!("SKIP: python3 with prometheus_client is not installed (Debian: python3-prometheus-client; scripts/test.sh installs it)");
        return;
    };
    let live = origin();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (srv, _dir) = capstone(&format!(
        "listen = [\"127.0.0.1:0\"]\nworkers = 2\nprocesses = 1\n\
         [[upstream]]\nname = \"app\"\nservers = [\"{live}\", \"{dead}\"]\nmax_fails = 1\n\
         [[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n"
    ));
    let before = scrape(py, srv.addr);
    let key = |name: &str, server: SocketAddr| format!("{name}{{server={server};upstream=app}}");
    assert_eq!(
        before.get(&key("sysnet_capstone_upstream_requests_total", live)),
        0.0
    );
    for _ in 0..4 {
        let (status, head, _) = get(srv.addr, "/api/x", "1.1");
        assert_eq!(status, 200, "{head}");
    }
    let b = scrape(py, srv.addr);
    let ty = |n: &str| b.types.get(n).map(String::as_str);
    assert_eq!(ty("sysnet_capstone_upstream_requests"), Some("counter"));
    assert_eq!(ty("sysnet_capstone_upstream_failures"), Some("counter"));
    assert_eq!(ty("sysnet_capstone_upstream_active"), Some("gauge"));
    assert_eq!(ty("sysnet_capstone_upstream_up"), Some("gauge"));
    let v = |name: &str, server| b.get(&key(name, server));
    // Every request was answered by the live server; the dead one was tried (by
    // each loop at most once: one failure takes it out) and is in its cooldown.
    assert_eq!(v("sysnet_capstone_upstream_requests_total", live), 4.0);
    assert_eq!(v("sysnet_capstone_upstream_responses_total", live), 4.0);
    assert_eq!(v("sysnet_capstone_upstream_failures_total", live), 0.0);
    assert_eq!(v("sysnet_capstone_upstream_active", live), 0.0);
    assert_eq!(v("sysnet_capstone_upstream_up", live), 1.0);
    assert!(v("sysnet_capstone_upstream_response_seconds_total", live) > 0.0);
    let tried = v("sysnet_capstone_upstream_requests_total", dead);
    assert!((1.0..=2.0).contains(&tried), "{tried}");
    assert_eq!(v("sysnet_capstone_upstream_failures_total", dead), tried);
    assert_eq!(v("sysnet_capstone_upstream_up", dead), 0.0);
    srv.stop();
}

#[test]
fn capstone_metrics_path_moves_and_turns_off() {
    let (srv, _dir) =
        capstone("listen = [\"127.0.0.1:0\"]\nprocesses = 0\nmetrics_path = \"/_/prom\"\n");
    let (status, head, body) = get(srv.addr, "/_/prom", "1.1");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), Some(CONTENT_TYPE));
    assert!(body.contains("# TYPE sysnet_capstone_requests_total counter\n"));
    assert_eq!(get(srv.addr, "/metrics", "1.1").0, 404);
    srv.stop();
    let (srv, _dir) = capstone("listen = [\"127.0.0.1:0\"]\nprocesses = 0\nmetrics_path = \"\"\n");
    assert_eq!(get(srv.addr, "/metrics", "1.1").0, 404);
    srv.stop();
}

/// Keep-alive GETs of `/` on one connection until `stop` or `limit` requests;
/// returns how many were answered 200.
fn keep_alive_load(addr: SocketAddr, stop: &AtomicBool, limit: u64) -> u64 {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut done = 0;
    while done < limit && !stop.load(Ordering::Relaxed) {
        w.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200 "), "{line:?}");
        let mut length = 0usize;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0u8; length];
        r.read_exact(&mut body).unwrap();
        done += 1;
    }
    done
}

/// The points of the polyline `id` in a page, as (x, y) pairs.
fn polyline(page: &str, id: &str) -> Vec<(f64, f64)> {
    let tag = format!("<polyline id=\"{id}\" points=\"");
    let start = page
        .find(&tag)
        .unwrap_or_else(|| panic!("no polyline {id} in:\n{page}"))
        + tag.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end]
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// Whether a chart line shows a value above zero somewhere (the charts are 100 high:
/// y = 100 is zero).
fn shows_data(page: &str, id: &str) -> bool {
    polyline(page, id).iter().any(|&(_, y)| y < 100.0)
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Headless Chromium on `url` with `args` (`--dump-dom` or `--screenshot=...`).
fn headless(chromium: &str, url: &str, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new("timeout")
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
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn status_page_draws_the_live_history_in_chromium_under_load() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIP: chromium is not installed; scripts/test.sh installs it");
        return;
    };
    let (srv, dir) = capstone("listen = [\"127.0.0.1:0\"]\nworkers = 2\nprocesses = 1\n");
    let addr = srv.addr;
    // Bounded load: 4 keep-alive clients, at most 40 s and 400k requests each.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || keep_alive_load(addr, &stop, 400_000))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    let watchdog = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    // Three seconds of history under load, as the JSON carries it.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, json) = get(addr, "/status.json", "1.1");
        assert_eq!(status, 200);
        let rps = json
            .split("\"rps\":[")
            .nth(1)
            .and_then(|r| r.split(']').next())
            .unwrap_or_else(|| panic!("no history in {json}"));
        if rps
            .split(',')
            .filter(|v| v.parse::<f64>().unwrap_or(0.0) > 0.0)
            .count()
            >= 3
        {
            assert!(json.contains("\"p99_us\":["), "{json}");
            break;
        }
        assert!(Instant::now() < end, "no requests/s in the history: {json}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Without a script the server-drawn page shows it all.
    let (status, head, page) = get(addr, "/status", "1.1");
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    for id in ["l-rps", "l-active", "l-p50", "l-p99"] {
        assert!(shows_data(&page, id), "{id} is flat in:\n{page}");
    }
    assert!(!page.contains(" data-updated=\""), "{page}");
    assert!(!page.contains("src=\"http"), "no external script: {page}");

    // In the browser the script has fetched /status.json and redrawn the lines.
    let url = format!("http://{addr}/status");
    let out = headless(chromium, &url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    let why = || {
        format!(
            "DOM:\n{dom}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(
        dom.contains(" data-updated=\""),
        "the script never ran: {}",
        why()
    );
    assert!(dom.contains("s of history</span>"), "{}", why());
    for id in ["l-rps", "l-active", "l-p50", "l-p99"] {
        assert!(shows_data(&dom, id), "{id} is flat: {}", why());
    }

    // A screenshot of the page under load: a PNG of the window's size.
    let shot = dir.path().join("status-live.png");
    let out = headless(
        chromium,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 900));
    if let Some(keep) = std::env::var_os("SYSNET_STATUS_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    stop.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    let answered: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(answered > 0);
    srv.stop();
}

/// One RESP command; returns the raw reply (one read is enough for these).
fn resp(s: &mut TcpStream, args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(out.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn kvd_metrics_addr(srv: &Server) -> SocketAddr {
    assert!(
        srv.wait_log("metrics listening addr=", Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    let log = srv.log();
    let rest = log.split("metrics listening addr=").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn kvd_metrics_parse_and_move_with_commands() {
    let Some(py) = python() else {
        eprintln!("SKIP: python3 with prometheus_client is not installed (Debian: python3-prometheus-client; scripts/test.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        KVD,
        &[
            "--dir",
            dir.path().to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let maddr = kvd_metrics_addr(&srv);
    let a = scrape(py, maddr);
    let mut c = TcpStream::connect(srv.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for k in ["k1", "k2", "k3"] {
        assert_eq!(resp(&mut c, &["SET", k, "v"]), "+OK\r\n");
    }
    assert_eq!(resp(&mut c, &["GET", "k1"]), "$1\r\nv\r\n");
    assert_eq!(resp(&mut c, &["GET", "nope"]), "$-1\r\n");
    assert_eq!(resp(&mut c, &["GET", "nope2"]), "$-1\r\n");
    assert!(resp(&mut c, &["INCR", "k1"]).starts_with("-ERR"));
    let b = scrape(py, maddr);

    // A command's series appears with its first call.
    let d = |k: &str| b.get(k) - a.samples.get(k).copied().unwrap_or(0.0);
    assert!(!a.samples.contains_key("sysnet_kvd_commands_total{cmd=set}"));
    assert_eq!(d("sysnet_kvd_commands_total{cmd=set}"), 3.0);
    assert_eq!(b.get("sysnet_kvd_commands_total{cmd=get}"), 3.0);
    assert_eq!(d("sysnet_kvd_commands_processed_total{}"), 7.0);
    // GET k1 (a write's lookup, INCR's, is no hit, as in Redis).
    assert_eq!(d("sysnet_kvd_keyspace_hits_total{}"), 1.0);
    assert_eq!(d("sysnet_kvd_keyspace_misses_total{}"), 2.0);
    assert_eq!(d("sysnet_kvd_connections_received_total{}"), 1.0);
    assert_eq!(b.get("sysnet_kvd_connected_clients{}"), 1.0);
    assert_eq!(b.get("sysnet_kvd_keys{db=0}"), 3.0);
    assert_eq!(b.get("sysnet_kvd_aof_enabled{}"), 1.0);
    assert_eq!(b.get("sysnet_kvd_aof_last_write_ok{}"), 1.0);
    assert!(d("sysnet_kvd_aof_current_size_bytes{}") > 0.0);
    assert!(b.get("sysnet_kvd_used_memory_bytes{}") > 0.0);
    assert_eq!(d("sysnet_kvd_error_replies_total{}"), 1.0);
    assert_eq!(
        b.types.get("sysnet_kvd_commands").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        b.types.get("sysnet_kvd_keys").map(String::as_str),
        Some("gauge")
    );
    drop(c);

    // Only GET /metrics; a head past the limit is refused; a silent client holds
    // the responder no longer than its timeout.
    assert_eq!(get(maddr, "/", "1.0").0, 404);
    assert_eq!(
        http(maddr, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n").0,
        404
    );
    let (status, _, _) = http(
        maddr,
        &format!("GET /metrics HTTP/1.0\r\nX: {}", "a".repeat(5000)),
    );
    assert_eq!(status, 431);
    let silent = TcpStream::connect(maddr).unwrap();
    let t = Instant::now();
    let _ = scrape(py, maddr);
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    drop(silent);
    assert!(srv.stop().success());
}
