//! tlschat end to end: OpenSSL's own client and ours in one chat, certificate pinning,
//! mutual TLS, and clients that never finish a handshake.

mod common;

use common::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TLSCHAT: &str = env!("CARGO_BIN_EXE_tlschat");

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data];
    args.extend_from_slice(extra);
    Server::start_raw(TLSCHAT, &args, &[])
}

/// A child whose stdout and stderr are collected as they arrive.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Peer {
    fn spawn(cmd: &mut Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        let stdin = child.stdin.take();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Peer {
            child,
            stdin,
            out,
            err,
        }
    }

    fn say(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(line.as_bytes()).unwrap();
        w.flush().unwrap();
    }

    fn wait_out(&self, needle: &str) -> bool {
        wait_for(&self.out, needle)
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

fn wait_for(buf: &Mutex<String>, needle: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if buf.lock().unwrap().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn own_client(srv: &Server, trust: &[&str]) -> Peer {
    let addr = srv.addr.to_string();
    Peer::spawn(Command::new(TLSCHAT).arg("connect").arg(&addr).args(trust))
}

fn handshakes(srv: &Server) -> usize {
    srv.log().matches("handshake complete").count()
}

fn wait_handshakes(srv: &Server, n: usize) {
    let end = Instant::now() + Duration::from_secs(10);
    while handshakes(srv) < n {
        assert!(
            Instant::now() < end,
            "no {n} handshakes; log:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn openssl_s_client_and_tlschat_connect_chat_together() {
    if !have("openssl") {
        eprintln!("skipped: openssl not installed (scripts/test.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let srv = serve(tmp.path(), &[]);
    let ca = tmp.path().join("data/ca.pem");
    let mut ours = own_client(&srv, &["--ca", ca.to_str().unwrap()]);
    wait_handshakes(&srv, 1);
    let mut theirs = Peer::spawn(
        Command::new("openssl")
            .args(["s_client", "-quiet", "-nocommands", "-verify_return_error"])
            .args(["-connect", &srv.addr.to_string()])
            .arg("-CAfile")
            .arg(&ca),
    );
    assert!(
        ours.wait_out("joined"),
        "our client never saw openssl join; server log:\n{}\nopenssl stderr:\n{}",
        srv.log(),
        theirs.err.lock().unwrap()
    );
    theirs.say("hello from openssl\n");
    assert!(
        ours.wait_out(": hello from openssl\n"),
        "{}",
        ours.out.lock().unwrap()
    );
    ours.say("hello from tlschat\n");
    assert!(
        theirs.wait_out(": hello from tlschat\n"),
        "{}",
        theirs.out.lock().unwrap()
    );
    // The server certificate OpenSSL verified has the fingerprint the server logged.
    assert!(srv.log().contains("sha256="));
}

#[test]
fn pinned_fingerprint_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = serve(tmp.path(), &[]);
    let log = srv.log();
    let fp = log
        .split("sha256=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("server logs its fingerprint")
        .to_string();

    let mut wrong = own_client(&srv, &["--fingerprint", &format!("{}00", "00:".repeat(31))]);
    let st = wrong.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(!st.success());
    assert!(
        wait_for(&wrong.err, "does not match"),
        "stderr: {}",
        wrong.err.lock().unwrap()
    );

    let mut right = own_client(&srv, &["--fingerprint", &fp]);
    assert!(
        wait_for(&right.err, "connected to"),
        "stderr: {}",
        right.err.lock().unwrap()
    );
    right.say("/who\n");
    assert!(right.wait_out("* online (1)"));
}

#[test]
fn plaintext_and_stalled_handshakes_are_dropped_and_others_unaffected() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = serve(tmp.path(), &["--handshake-timeout", "1"]);
    let ca = tmp.path().join("data/ca.pem");
    let mut member = own_client(&srv, &["--ca", ca.to_str().unwrap()]);
    wait_handshakes(&srv, 1);

    // Plaintext: answered with at most an alert, then closed.
    let mut plain = TcpStream::connect(srv.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(b"hello, I speak no TLS\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.windows(5).any(|w| w == b"hello"), "plaintext echoed");
    assert!(srv.wait_log("dropping client", Duration::from_secs(5)));

    // A stall: nothing sent, dropped after the handshake timeout.
    let started = Instant::now();
    let mut stall = TcpStream::connect(srv.addr).unwrap();
    stall
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = stall.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a stalled client got bytes");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(srv.wait_log("handshake timed out", Duration::from_secs(2)));

    // The member is still served.
    member.say("/who\n");
    assert!(
        member.wait_out("* online (1)"),
        "{}",
        member.out.lock().unwrap()
    );
}

#[test]
fn mutual_tls_names_clients_by_certificate_and_refuses_others() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Issue a client certificate first (this also creates the CA).
    let st = Command::new(TLSCHAT)
        .args(["issue-client", "alice", "--data-dir"])
        .arg(&data)
        .arg("--out-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let ca = data.join("ca.pem");
    let srv = serve(tmp.path(), &["--client-ca", ca.to_str().unwrap()]);
    let cert = tmp.path().join("alice.pem");
    let key = tmp.path().join("alice.key");

    let mut alice = own_client(
        &srv,
        &[
            "--ca",
            ca.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    wait_handshakes(&srv, 1);
    alice.say("/who\n");
    assert!(
        alice.wait_out("* online (1): alice"),
        "{}",
        alice.out.lock().unwrap()
    );

    // No certificate: the handshake is refused and the client says why.
    let mut anon = own_client(&srv, &["--ca", ca.to_str().unwrap()]);
    anon.say("hi\n");
    let st = anon.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(!st.success());
    assert!(
        srv.wait_log("dropping client", Duration::from_secs(5)),
        "{}",
        srv.log()
    );
    alice.say("/who\n");
    assert!(alice.wait_out("* online (1): alice"));

    if have("openssl") {
        let mut theirs = Peer::spawn(
            Command::new("openssl")
                .args(["s_client", "-quiet", "-nocommands"])
                .args(["-connect", &srv.addr.to_string()])
                .arg("-CAfile")
                .arg(&ca)
                .arg("-cert")
                .arg(&cert)
                .arg("-key")
                .arg(&key),
        );
        theirs.say("from openssl as alice too\n");
        assert!(alice.wait_out(": from openssl as alice too\n"));
    }
}
