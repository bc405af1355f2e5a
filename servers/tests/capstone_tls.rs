//! End-to-end tests of the capstone over HTTPS, with real TLS peers: curl and
//! `openssl s_client` (Debian's `curl` and `openssl`, installed by scripts/test.sh),
//! against certificates made by the server itself, by rcgen and by `openssl req`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
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

/// Skips the test (with a message) when curl or openssl is missing.
macro_rules! need_tools {
    () => {
        if !have("curl") || !have("openssl") {
            eprintln!("skipped: needs curl and openssl (scripts/test.sh installs them)");
            return;
        }
    };
}

/// A running capstone; its error log is followed on a thread.
struct Server {
    child: Child,
    /// The plaintext and the HTTPS address, in the order the log named them.
    plain: Option<SocketAddr>,
    https: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    stdout: String,
    _state: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let state = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .env("XDG_RUNTIME_DIR", state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capstone");
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let out = Arc::new(Mutex::new(String::new()));
        let out_sink = out.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut o = out_sink.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
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
            if let Some(h) = addr_after("listening for https addr=") {
                if text.contains("worker serving") {
                    break (addr_after("listening addr="), h);
                }
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!("capstone did not start; log:\n{text}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        thread::sleep(Duration::from_millis(100));
        let stdout = out.lock().unwrap().clone();
        Server {
            child,
            plain,
            https,
            log,
            stdout,
            _state: state,
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn wait_log(&self, what: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log_text().matches(what).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in the log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// The worker processes (the master's children).
    fn workers(&self) -> Vec<u32> {
        let pid = self.child.id();
        let path = format!("/proc/{pid}/task/{pid}/children");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
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

/// `curl --cacert CA https://localhost:PORT/PATH` plus `extra`; (stdout, stderr).
fn curl(ca: &Path, https: SocketAddr, path: &str, extra: &[&str]) -> Output {
    run(Command::new("curl")
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(ca)
        .args([
            "--resolve",
            &format!("localhost:{}:{}", https.port(), https.ip()),
        ])
        .args(extra)
        .arg(format!("https://localhost:{}{path}", https.port())))
}

/// A site with an index page and `big.bin` of `big` pseudo-random bytes.
fn site(dir: &Path, big: usize) -> PathBuf {
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<p>over tls</p>\n").unwrap();
    if big > 0 {
        let mut data = Vec::with_capacity(big);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while data.len() < big {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(big);
        std::fs::write(root.join("big.bin"), data).unwrap();
    }
    root
}

/// A CA and a server certificate for localhost, made by the server's own
/// generator in `dir`; returns (CA, cert, key).
fn own_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dd = servers::tls::DataDir::named(dir, name);
    dd.server_identity().unwrap();
    (dd.ca_cert(), dd.server_cert(), dd.server_key())
}

fn config(dir: &Path, root: &Path, cert: &Path, key: &Path, extra: &str) -> PathBuf {
    let path = dir.join("capstone.toml");
    std::fs::write(
        &path,
        format!(
            "listen = [\"127.0.0.2:0\", {{ addr = \"127.0.0.1:0\", tls = true }}]\n\
             root = {root:?}\nprocesses = 1\nworkers = 2\n{extra}\n\
             [tls]\ncert = {cert:?}\nkey = {key:?}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn curl_over_tls_1_2_and_1_3_and_plain_beside_it() {
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = config(tmp.path(), &root, &cert, &key, "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    for (flags, version) in [
        (&["--tlsv1.3"][..], "TLSv1.3"),
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2"),
    ] {
        let mut args = vec!["-v"];
        args.extend_from_slice(flags);
        let o = curl(&ca, s.https, "/", &args);
        let all = text(&o);
        assert!(o.status.success(), "{all}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "<p>over tls</p>\n");
        assert!(
            all.contains(&format!("SSL connection using {version}")),
            "{all}"
        );
        // HTTP/2 is offered first, and curl takes it.
        assert!(all.contains("ALPN: server accepted h2"), "{all}");
        if version == "TLSv1.2" {
            // ECDHE key exchange with an AEAD cipher, nothing else.
            assert!(all.contains("/ ECDHE-"), "{all}");
            assert!(all.contains("GCM") || all.contains("CHACHA20"), "{all}");
        }
    }
    // The plaintext listener of the same server speaks plain HTTP.
    let plain = s.plain.expect("a plaintext listener");
    let o = run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{plain}/")));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "<p>over tls</p>\n");
    // And TLS spoken to it fails cleanly, as plaintext to the TLS one does.
    let o = run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{}/", s.https)));
    assert!(!o.status.success(), "plain HTTP answered on the TLS port");
}

#[test]
fn openssl_negotiates_alpn_and_resumes_sessions() {
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = config(tmp.path(), &root, &cert, &key, "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let connect = s.https.to_string();
    // Each asks for the index page and reads until the server closes: TLS 1.3
    // tickets arrive after the handshake, so a client that left at once would
    // never see one.
    let s_client = |extra: &[&str]| {
        use std::io::Write;
        let mut child = Command::new("openssl")
            .args(["s_client", "-ign_eof", "-connect", &connect])
            .args(["-servername", "localhost", "-CAfile"])
            .arg(&ca)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        drop(stdin);
        text(&child.wait_with_output().unwrap())
    };
    let first = s_client(&["-alpn", "http/1.1"]);
    assert!(first.contains("ALPN protocol: http/1.1"), "{first}");
    assert!(first.contains("Verify return code: 0 (ok)"), "{first}");
    assert!(first.contains("<p>over tls</p>"), "{first}");
    // HTTP/2 is offered first.
    let h2 = s_client(&["-alpn", "h2,http/1.1"]);
    assert!(h2.contains("ALPN protocol: h2"), "{h2}");

    for version in ["-tls1_3", "-tls1_2"] {
        let sess = tmp.path().join(format!("sess{version}.pem"));
        let sess = sess.to_str().unwrap();
        let new = s_client(&[version, "-sess_out", sess]);
        assert!(new.contains("New, TLSv1."), "{new}");
        let again = s_client(&[version, "-sess_in", sess]);
        assert!(again.contains("Reused, TLSv1."), "{version}: {again}");
    }
}

#[test]
fn a_large_file_streams_intact_in_bounded_memory() {
    need_tools!();
    const BIG: usize = 64 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), BIG);
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = config(tmp.path(), &root, &cert, &key, "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    // Warm up (first TLS handshake, first file open), then the baseline.
    assert!(curl(&ca, s.https, "/", &[]).status.success());
    let workers = s.workers();
    assert_eq!(workers.len(), 1, "one worker process");
    let before = rss_kib(workers[0]);
    let out = tmp.path().join("big.out");
    // Slower than the server: the socket fills and the stream must wait for it.
    let mut dl = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--limit-rate", "24M", "--cacert"])
        .arg(&ca)
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", s.https.port()),
        ])
        .arg("-o")
        .arg(&out)
        .arg(format!("https://localhost:{}/big.bin", s.https.port()))
        .spawn()
        .unwrap();
    let mut peak = before;
    let status = loop {
        if let Some(st) = dl.try_wait().unwrap() {
            break st;
        }
        peak = peak.max(rss_kib(workers[0]));
        thread::sleep(Duration::from_millis(25));
    };
    assert!(status.success(), "download failed; log:\n{}", s.log_text());
    let got = std::fs::read(&out).unwrap();
    let want = std::fs::read(root.join("big.bin")).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the download differs from the file");
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "worker RSS grew by {grown} KiB while streaming a 64 MiB file ({before} KiB before)"
    );
}

#[test]
fn reload_serves_a_renewed_certificate_keeps_downloads_and_refuses_a_broken_one() {
    need_tools!();
    const BIG: usize = 32 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), BIG);
    let (ca1, cert1, key1) = own_ca(&tmp.path().join("one"), "one");
    let (ca2, cert2, key2) = own_ca(&tmp.path().join("two"), "two");
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let cfg = config(tmp.path(), &root, &cert, &key, "[timeouts]\ndrain = 30");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    assert!(curl(&ca1, s.https, "/", &[]).status.success());

    // A slow download under the first certificate…
    let out = tmp.path().join("big.out");
    let mut dl = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--limit-rate", "8M", "--cacert"])
        .arg(&ca1)
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", s.https.port()),
        ])
        .arg("-o")
        .arg(&out)
        .arg(format!("https://localhost:{}/big.bin", s.https.port()))
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    // …while the certificate is renewed and the server reloaded.
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded", 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = curl(&ca2, s.https, "/", &[]);
        if o.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served: {}",
            text(&o)
        );
        thread::sleep(Duration::from_millis(50));
    }
    // New connections see only the new certificate.
    let o = curl(&ca1, s.https, "/", &[]);
    assert!(!o.status.success(), "the old certificate is still served");
    assert!(
        dl.try_wait().unwrap().is_none(),
        "the download ended before the reload was done; make it slower"
    );
    assert!(
        dl.wait().unwrap().success(),
        "the download in flight failed"
    );
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(root.join("big.bin")).unwrap(),
        "the download in flight differs from the file"
    );

    // A broken certificate: refused, and the running one stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("reload refused", 1);
    assert!(curl(&ca2, s.https, "/", &[]).status.success());
    assert!(s.log_text().contains("tls.cert"), "{}", s.log_text());
}

/// `openssl req -x509` certificates of each key type the server takes.
#[test]
fn rsa_ecdsa_and_ed25519_certificates_serve() {
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    for (name, newkey) in [
        ("rsa", &["-newkey", "rsa:2048"][..]),
        (
            "ecdsa",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        ("ed25519", &["-newkey", "ed25519"][..]),
    ] {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let o = run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(newkey)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        assert!(o.status.success(), "{}", text(&o));
        let cfg = config(&dir, &root, &cert, &key, "");
        let check = run(Command::new(BIN).arg("--check-config").arg(&cfg));
        assert!(check.status.success(), "{name}: {}", text(&check));
        let s = Server::start(&["--config", cfg.to_str().unwrap()]);
        let o = curl(&cert, s.https, "/", &[]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "<p>over tls</p>\n");
    }
}

#[test]
fn check_config_names_certificate_problems() {
    use rcgen::{CertificateParams, KeyPair};
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    let make = |name: &str, from_days: i64, to_days: i64| {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(from_days);
        p.not_after = now + time::Duration::days(to_days);
        let k = KeyPair::generate().unwrap();
        let c = p.self_signed(&k).unwrap();
        let (cp, kp) = (
            tmp.path().join(format!("{name}.pem")),
            tmp.path().join(format!("{name}.key")),
        );
        std::fs::write(&cp, c.pem()).unwrap();
        std::fs::write(&kp, k.serialize_pem()).unwrap();
        (cp, kp)
    };
    let check = |cert: &Path, key: &Path| {
        let dir = tempfile::tempdir_in(tmp.path()).unwrap();
        let cfg = config(dir.path(), &root, cert, key, "");
        let o = run(Command::new(BIN).arg("--check-config").arg(&cfg));
        (o.status.code(), text(&o), cfg)
    };
    let (good_c, good_k) = make("good", -1, 90);
    let (code, out, _) = check(&good_c, &good_k);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");

    // Less than 14 days left: valid, with a warning.
    let (soon_c, soon_k) = make("soon", -1, 5);
    let (code, out, _) = check(&soon_c, &soon_k);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("warning") && out.contains("expires in"),
        "{out}"
    );

    // Expired: refused, at the cert line (line 7 of the file `config` writes).
    let (old_c, old_k) = make("old", -30, -2);
    let (code, out, cfg) = check(&old_c, &old_k);
    assert_eq!(code, Some(1), "{out}");
    let at = format!("{}:7: tls.cert:", cfg.display());
    assert!(out.contains(&at) && out.contains("expired"), "{out}");

    // A key of another certificate: refused, at the key line.
    let (code, out, cfg) = check(&good_c, &soon_k);
    assert_eq!(code, Some(1), "{out}");
    let at = format!("{}:8: tls.key:", cfg.display());
    assert!(out.contains(&at) && out.contains("does not match"), "{out}");

    // The chain in the wrong order: issuer first.
    let ca_dir = tmp.path().join("ca");
    let (ca, cert, key) = own_ca(&ca_dir, "order");
    let swapped = tmp.path().join("swapped.pem");
    std::fs::write(
        &swapped,
        std::fs::read_to_string(&ca).unwrap() + &std::fs::read_to_string(&cert).unwrap(),
    )
    .unwrap();
    let (code, out, _) = check(&swapped, &key);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not issued by certificate 1"), "{out}");
}

#[test]
fn tls_self_signed_prints_a_ca_that_strict_verifiers_accept() {
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    // A TLS listener with no [tls]: --tls-self-signed supplies the certificate.
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("listen = [{{ addr = \"127.0.0.1:0\", tls = true }}]\nroot = {root:?}\nprocesses = 1\nworkers = 1\n"),
    )
    .unwrap();
    let s = Server::start(&["--tls-self-signed", "--config", cfg.to_str().unwrap()]);
    let ca: PathBuf = s
        .stdout
        .split("trust ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no CA path printed: {:?}", s.stdout));
    assert!(ca.is_file(), "{}", ca.display());
    let o = curl(&ca, s.https, "/", &[]);
    assert!(o.status.success(), "{}", text(&o));

    // RFC 5280's key identifiers: OpenSSL's strict mode requires them.
    let server = ca.with_file_name("server.pem");
    let o = run(Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(&ca)
        .arg(&server));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&server));
    let t = text(&o);
    assert!(t.contains("X509v3 Authority Key Identifier"), "{t}");
    assert!(t.contains("X509v3 Subject Key Identifier"), "{t}");

    // Python's `cryptography` verifier (as sslyze uses it), where it is new enough.
    let py = "import sys\n\
        from cryptography import x509\n\
        from cryptography.x509.verification import PolicyBuilder, Store\n\
        ca = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())\n\
        leaf = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read())\n\
        v = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName('localhost'))\n\
        v.verify(leaf, [])\n\
        print('verified')\n";
    let has_verifier =
        run(Command::new("python3").args(["-c", "import cryptography.x509.verification"]))
            .status
            .success();
    if has_verifier {
        let o = run(Command::new("python3")
            .args(["-c", py])
            .arg(&ca)
            .arg(&server));
        assert!(text(&o).contains("verified"), "{}", text(&o));
    } else {
        eprintln!("python cryptography without x509.verification (< 42): that check skipped");
    }
}

#[test]
fn a_redirect_listener_sends_plain_http_to_https() {
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = [{{ addr = \"127.0.0.2:0\", https_redirect = true }}, \
             {{ addr = \"127.0.0.1:0\", tls = true }}]\nroot = {root:?}\nprocesses = 1\nworkers = 1\n\
             [tls]\ncert = {cert:?}\nkey = {key:?}\n"
        ),
    )
    .unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let plain = s.plain.expect("the redirect listener");
    let o = run(Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "-o", "/dev/null"])
        .args(["-H", "Host: localhost:80"])
        .arg(format!("http://{plain}/index.html?x=1")));
    let head = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(head.starts_with("HTTP/1.1 301 "), "{head}");
    let want = format!(
        "Location: https://localhost:{}/index.html?x=1\r\n",
        s.https.port()
    );
    assert!(head.contains(&want), "{head}");
    // Followed, it lands on the HTTPS listener, which serves the page.
    let o = run(Command::new("curl")
        .args(["-sS", "--max-time", "10", "-L", "--cacert"])
        .arg(&ca)
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", s.https.port()),
        ])
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.2", plain.port()),
        ])
        .arg(format!("http://localhost:{}/index.html", plain.port())));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "<p>over tls</p>\n");
    // A request with a host that could smuggle a path is refused.
    let o = run(Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", "Host: evil.org/x"])
        .arg(format!("http://{plain}/")));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "400");
}

/// Two pipelined requests over one TLS connection, the first for a file larger
/// than the streaming window: the second answer must come after the whole file,
/// in order, on the same session.
#[test]
fn a_request_pipelined_behind_a_streamed_file_is_answered_after_it() {
    use std::io::{Read, Write};
    const BIG: usize = 3 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), BIG);
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = config(tmp.path(), &root, &cert, &key, "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);

    let conn = localhost_client(&ca);
    let sock = std::net::TcpStream::connect(s.https).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    match tls.read_to_end(&mut got) {
        Ok(_) => {}
        // A peer that closes without close_notify still delivered what it sent.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the answers: {e}"),
    }
    let want = std::fs::read(root.join("big.bin")).unwrap();
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a first head")
        + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains(&format!("Content-Length: {BIG}")), "{head}");
    assert!(got.len() >= head_end + BIG, "short: {} bytes", got.len());
    assert!(
        got[head_end..head_end + BIG] == want[..],
        "the file arrived damaged"
    );
    let second = String::from_utf8_lossy(&got[head_end + BIG..]).to_string();
    assert!(second.starts_with("HTTP/1.1 200"), "{second:.200}");
    assert!(second.ends_with("<p>over tls</p>\n"), "{second:.400}");
}

/// `openssl req -x509` for `name` (subjectAltName DNS:`name`): (cert, key).
fn req_cert(dir: &Path, tag: &str, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{tag}.pem")),
        dir.join(format!("{tag}.key")),
    );
    let o = run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "30"])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{name}"))
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    assert!(o.status.success(), "{}", text(&o));
    (cert, key)
}

/// The leaf certificate (PEM) the server presents to a client asking for
/// `servername` (`None`: no SNI at all), as `openssl s_client` shows it.
fn served_cert(https: SocketAddr, servername: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &https.to_string()]);
    match servername {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    let out = text(&run(&mut cmd));
    let begin = out
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from the server: {out}"));
    let end = out[begin..].find("-----END CERTIFICATE-----").unwrap() + begin;
    out[begin..end + "-----END CERTIFICATE-----".len()].to_string()
}

fn pem(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// `[[site]]` certificates chosen by SNI, curl and `openssl s_client` as clients:
/// each site's name gets its certificate (and its pages), any other name or none
/// the `[tls]` one; a reload serves a site's renewed certificate and refuses a
/// broken one while the old stays; `--check-config` checks each.
#[test]
fn site_certificates_are_chosen_by_sni() {
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (def_c, def_k) = req_cert(dir, "default", "localhost");
    let (a_c, a_k) = req_cert(dir, "a", "a.test");
    let (b1_c, b1_k) = req_cert(dir, "b1", "b.test");
    let (b2_c, b2_k) = req_cert(dir, "b2", "b.test");
    let (b_c, b_k) = (dir.join("b.pem"), dir.join("b.key"));
    std::fs::copy(&b1_c, &b_c).unwrap();
    std::fs::copy(&b1_k, &b_k).unwrap();
    for s in ["a", "b"] {
        let root = dir.join(format!("www-{s}"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), format!("site {s}\n")).unwrap();
    }
    let site = |name: &str, root: &str, c: &Path, k: &Path| {
        format!(
            "[[site]]\nserver_names = [{name:?}]\nroot = {:?}\ntls = {{ cert = {c:?}, key = {k:?} }}\n",
            dir.join(root)
        )
    };
    let cfg = dir.join("c.toml");
    let write_cfg = |sites: &str| {
        std::fs::write(
            &cfg,
            format!(
                "listen = [{{ addr = \"127.0.0.1:0\", tls = true }}]\nprocesses = 1\nworkers = 1\n\
                 [tls]\ncert = {def_c:?}\nkey = {def_k:?}\n{sites}"
            ),
        )
        .unwrap();
    };
    write_cfg(&(site("a.test", "www-a", &a_c, &a_k) + &site("b.test", "www-b", &b_c, &b_k)));
    let check = run(Command::new(BIN).arg("--check-config").arg(&cfg));
    assert!(check.status.success(), "{}", text(&check));
    assert!(!text(&check).contains("warning"), "{}", text(&check));

    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let port = s.https.port();
    let get = |name: &str, ca: &Path| {
        run(Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(ca)
            .arg("--resolve")
            .arg(format!("{name}:{port}:127.0.0.1"))
            .arg(format!("https://{name}:{port}/")))
    };
    for (name, ca, body) in [("a.test", &a_c, "site a\n"), ("b.test", &b1_c, "site b\n")] {
        let o = get(name, ca);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), body);
    }
    // Each name's certificate is served to no other name.
    assert!(!get("b.test", &a_c).status.success());
    assert_eq!(served_cert(s.https, Some("a.test")), pem(&a_c));
    assert_eq!(served_cert(s.https, Some("b.test")), pem(&b1_c));
    // A name no site has, and no name at all: the [tls] certificate.
    assert_eq!(served_cert(s.https, Some("nosuch.test")), pem(&def_c));
    assert_eq!(served_cert(s.https, None), pem(&def_c));
    let o = get("localhost", &def_c);
    assert!(o.status.success(), "{}", text(&o));
    let o = get("nosuch.test", &a_c);
    assert!(
        !o.status.success(),
        "a wrong name was verified: {}",
        text(&o)
    );

    // b.test renewed: a reload serves the new one to new connections.
    std::fs::copy(&b2_c, &b_c).unwrap();
    std::fs::copy(&b2_k, &b_k).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded", 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cert(s.https, Some("b.test")) != pem(&b2_c) {
        assert!(
            Instant::now() < deadline,
            "the renewed b.test is not served"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served_cert(s.https, Some("a.test")), pem(&a_c));
    // A key that is not b.test's: refused (by --check-config too), b2 stays.
    std::fs::copy(&a_k, &b_k).unwrap();
    let check = run(Command::new(BIN).arg("--check-config").arg(&cfg));
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).contains("site.tls.key") && text(&check).contains("does not match"),
        "{}",
        text(&check)
    );
    s.signal(libc::SIGHUP);
    s.wait_log("reload refused", 1);
    assert_eq!(served_cert(s.https, Some("b.test")), pem(&b2_c));
    let o = get("b.test", &b2_c);
    assert!(o.status.success(), "{}", text(&o));

    // A site certificate that does not name the site: served, with a warning.
    write_cfg(&site("a.test", "www-a", &b2_c, &b2_k));
    let check = run(Command::new(BIN).arg("--check-config").arg(&cfg));
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("no subjectAltName covers the site name \"a.test\""),
        "{}",
        text(&check)
    );
}

/// A file's answer kept for the second is kept apart per transport: with `hsts`
/// set, every answer over TLS (HTTP/1.1 and HTTP/2, first and repeated) carries
/// `Strict-Transport-Security`, and none over plain HTTP, when both are asked for
/// in turn of one event loop.
#[test]
fn kept_answers_carry_hsts_over_tls_only() {
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = tmp.path().join("capstone.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = [\"127.0.0.2:0\", {{ addr = \"127.0.0.1:0\", tls = true }}]\n\
             root = {root:?}\nprocesses = 1\nworkers = 1\nhsts = \"max-age=600\"\n\
             [tls]\ncert = {cert:?}\nkey = {key:?}\n"
        ),
    )
    .unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let plain = s.plain.expect("a plaintext listener");
    let urls = |base: String| -> Vec<String> { (0..4).map(|_| format!("{base}/")).collect() };
    let https_base = format!("https://localhost:{}", s.https.port());
    for round in 0..2 {
        for proto in ["--http1.1", "--http2"] {
            let mut args = vec!["-D", "-", "-o", "/dev/null", proto];
            let list = urls(https_base.clone());
            args.extend(list.iter().flat_map(|u| ["--url", u.as_str()]));
            let o = run(Command::new("curl")
                .args(["-sS", "--max-time", "30", "--cacert"])
                .arg(&ca)
                .args([
                    "--resolve",
                    &format!("localhost:{}:{}", s.https.port(), s.https.ip()),
                ])
                .args(&args));
            let out = text(&o);
            assert!(o.status.success(), "{out}");
            let hsts = out
                .lines()
                .filter(|l| {
                    l.trim_end()
                        .eq_ignore_ascii_case("strict-transport-security: max-age=600")
                })
                .count();
            assert_eq!(hsts, 4, "round {round}, {proto}:\n{out}");
        }
        let list = urls(format!("http://{plain}"));
        let o = run(Command::new("curl")
            .args(["-sS", "--max-time", "30", "-D", "-", "-o", "/dev/null"])
            .args(list.iter().flat_map(|u| ["--url", u.as_str()])));
        let out = text(&o);
        assert_eq!(out.matches("200 OK").count(), 4, "{out}");
        assert!(
            !out.to_ascii_lowercase()
                .contains("strict-transport-security"),
            "{out}"
        );
    }
}

/// Reads one HTTP/1.1 answer (head and `Content-Length` body) through `conn` from
/// `sock`, and returns it with the number of TLS records it came in.
fn answer_and_records(
    conn: &mut rustls::ClientConnection,
    sock: &mut std::net::TcpStream,
) -> (Vec<u8>, usize) {
    use std::io::Read;
    let mut raw = Vec::new();
    let mut plain = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = plain.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&plain[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("a Content-Length")
                .trim()
                .parse()
                .unwrap();
            if plain.len() >= end + 4 + len {
                break;
            }
        }
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed mid-answer");
        raw.extend_from_slice(&buf[..n]);
        conn.read_tls(&mut &buf[..n]).unwrap();
        conn.process_new_packets().unwrap();
        let _ = conn.reader().read_to_end(&mut plain);
    }
    // Every record is whole by now: rustls hands out a record's plaintext only then.
    let mut records = 0;
    let mut at = 0;
    while at + 5 <= raw.len() {
        records += 1;
        at += 5 + usize::from(u16::from_be_bytes([raw[at + 3], raw[at + 4]]));
    }
    assert_eq!(at, raw.len(), "a record cut short");
    (plain, records)
}

#[test]
fn a_small_answer_is_one_tls_record() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 0);
    for i in 0..3 {
        std::fs::write(root.join(format!("page{i}.html")), "x".repeat(600)).unwrap();
    }
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = config(tmp.path(), &root, &cert, &key, "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);

    let mut conn = localhost_client(&ca);
    let mut sock = std::net::TcpStream::connect(s.https).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    // The first answer also brings the session tickets; the others are counted alone.
    // Each file is asked for once: an answer made afresh (head, then body), not one
    // kept whole from an earlier request.
    for round in 0..3 {
        conn.writer()
            .write_all(
                format!("GET /page{round}.html HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
            )
            .unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut sock).unwrap();
        }
        let (answer, records) = answer_and_records(&mut conn, &mut sock);
        let text = String::from_utf8_lossy(&answer).to_string();
        assert!(text.starts_with("HTTP/1.1 200"), "{text:.300}");
        assert!(text.ends_with(&"x".repeat(600)), "{text:.300}");
        if round > 0 {
            assert_eq!(
                records, 1,
                "head and body of a 600-byte answer in {records} records"
            );
        }
    }
}

/// A rustls client session for `localhost` that trusts the CA at `ca`.
fn localhost_client(ca: &Path) -> rustls::ClientConnection {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    rustls::ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
        .unwrap()
}

#[test]
fn a_file_that_shrinks_under_a_small_answer_closes_the_connection() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let root = site(tmp.path(), 1 << 20);
    let (ca, cert, key) = own_ca(&tmp.path().join("ca"), "test");
    let cfg = config(tmp.path(), &root, &cert, &key, "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let mut conn = localhost_client(&ca);
    let mut sock = std::net::TcpStream::connect(s.https).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    let ask = |conn: &mut rustls::ClientConnection, sock: &mut std::net::TcpStream| {
        conn.writer()
            .write_all(
                b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1000-1999\r\n\r\n",
            )
            .unwrap();
        while conn.wants_write() {
            conn.write_tls(sock).unwrap();
        }
    };
    // The file cache keeps what it opened for the rest of the current second: start
    // early in one, so that both requests fall within it and the second one is
    // answered from the open descriptor of a file that is empty by then.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis()
        > 200
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    ask(&mut conn, &mut sock);
    let (answer, _) = answer_and_records(&mut conn, &mut sock);
    let text = String::from_utf8_lossy(&answer).to_string();
    assert!(text.starts_with("HTTP/1.1 206"), "{text:.300}");
    assert!(answer.len() > 1000, "a whole first range");
    std::fs::File::create(root.join("big.bin")).unwrap();
    ask(&mut conn, &mut sock);
    // The second answer's head promises 1,000 bytes the file no longer has: the
    // connection must end instead of the body arriving short (or hanging).
    let mut plain = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("reading the second answer: {e}"),
        };
        if n == 0 {
            break;
        }
        conn.read_tls(&mut &buf[..n]).unwrap();
        conn.process_new_packets().unwrap();
        let _ = conn.reader().read_to_end(&mut plain);
    }
    let text = String::from_utf8_lossy(&plain).to_string();
    if text.starts_with("HTTP/1.1 206") {
        let head_end = plain.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(
            plain.len() - head_end < 1000,
            "a full body from an emptied file: {text:.300}"
        );
    } else {
        // The cache noticed (a new second began): an honest answer for an empty file.
        assert!(text.starts_with("HTTP/1.1 416"), "{text:.300}");
    }
}
