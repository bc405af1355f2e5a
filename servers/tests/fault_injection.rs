//! The servers under fault injection: each runs under `strace-lite -f -e inject=...`,
//! which makes a chosen syscall fail (or return early) the way a full disk, a
//! descriptor limit or a busy socket would, and the test checks that the server does
//! what it promises when that happens.
//!
//! - kvd under `--appendfsync always` whose `fdatasync` fails with EIO refuses to
//!   acknowledge the write and stops with a non-zero status;
//! - the capstone whose third `accept4` fails with EMFILE keeps serving, and counts
//!   the failure on its status page;
//! - httpd whose `sendfile` says EAGAIN every other time still delivers the whole file.
//!
//! Each test also reads the trace and checks that the injection happened
//! (`(INJECTED)`), so a tracer that injected nothing cannot pass it.

mod common;

use common::Server;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The strace-lite binary beside this package's binaries, built (or brought up to
/// date) once per test run: `cargo test -p servers` does not build another package.
fn strace_lite() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let dir = Path::new(env!("CARGO_BIN_EXE_kvd"))
        .parent()
        .expect("binaries live in a directory");
    let exe = dir.join("strace-lite");
    BUILT.call_once(|| {
        let release = dir.ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "strace-lite", "--bin", "strace-lite"]);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build -p strace-lite");
        assert!(st.success(), "cargo build -p strace-lite failed");
    });
    assert!(exe.exists(), "no {}", exe.display());
    exe
}

/// Starts `exe ARGS` under `strace-lite -f -o TRACE -e trace=CALL -e inject=SPEC`.
fn start_injected(
    trace: &Path,
    call: &str,
    inject: &str,
    exe: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let tracer = strace_lite();
    let trace_expr = format!("trace={call}");
    let inject_expr = format!("inject={inject}");
    let mut all = vec![
        "-f",
        "-o",
        trace.to_str().unwrap(),
        "-e",
        &trace_expr,
        "-e",
        &inject_expr,
        "--",
        exe,
    ];
    all.extend_from_slice(args);
    Server::start_raw(tracer.to_str().unwrap(), &all, env)
}

/// Waits (bounded) until the process `pid` has exited (a zombie or gone).
fn wait_exited(pid: u32, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
                if state == Some('Z') {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn injected_lines(trace: &Path, call: &str) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("{call}(")) && l.ends_with("(INJECTED)"))
        .map(str::to_string)
        .collect()
}

#[test]
fn kvd_refuses_to_acknowledge_when_fdatasync_fails_under_always() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let srv = start_injected(
        &trace,
        "fdatasync",
        "fdatasync:error=EIO",
        env!("CARGO_BIN_EXE_kvd"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--dir",
            data.to_str().unwrap(),
            "--appendfsync",
            "always",
        ],
        &[],
    );
    let mut c = common::connect(srv.addr);
    c.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
        .unwrap();
    // No `+OK`: the connection is closed in its place (or the server is gone).
    let mut reply = Vec::new();
    let _ = c.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("+OK"),
        "acknowledged a write its log could not make durable: {:?}\n{}",
        String::from_utf8_lossy(&reply),
        srv.log()
    );
    assert!(
        wait_exited(srv.pid(), Duration::from_secs(20)),
        "kvd kept running after the failed fdatasync:\n{}",
        srv.log()
    );
    let log = srv.log();
    let st = srv.stop();
    assert!(!st.success(), "kvd stopped with {st:?}:\n{log}");
    assert!(log.contains("appendfsync always"), "{log}");
    let inj = injected_lines(&trace, "fdatasync");
    assert!(
        inj.iter()
            .any(|l| l.contains("= -1 EIO (Input/output error) (INJECTED)")),
        "no injected fdatasync in the trace: {inj:?}"
    );
}

/// `GET path` on a fresh connection (Connection: close); the status line and body.
fn get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = common::connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .unwrap_or_else(|e| panic!("GET {path}: {e} after {} bytes", all.len()));
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no head in {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head.lines().next().unwrap_or("").to_string();
    (status, all[split + 4..].to_vec())
}

#[test]
fn capstone_keeps_serving_when_accept_fails_with_emfile() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let srv = start_injected(
        &trace,
        "accept4",
        "accept4:error=EMFILE:when=3",
        env!("CARGO_BIN_EXE_capstone"),
        &["--listen", "127.0.0.1:0"],
        &[("XDG_RUNTIME_DIR", state.to_str().unwrap())],
    );
    for i in 0..8 {
        let (status, body) = get(srv.addr, "/");
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "request {i}: {status}\n{}",
            srv.log()
        );
        assert!(String::from_utf8_lossy(&body).contains("sysnet"));
    }
    // The tracer flushes its output file on a timer: wait for the line (bounded).
    let end = Instant::now() + Duration::from_secs(5);
    let mut inj = injected_lines(&trace, "accept4");
    while inj.is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        inj = injected_lines(&trace, "accept4");
    }
    assert!(
        inj.iter()
            .any(|l| l.contains("= -1 EMFILE (Too many open files) (INJECTED)")),
        "no injected accept4 in the trace: {inj:?}"
    );
    // The failure is counted.
    let (_, status) = get(srv.addr, "/status.json");
    let status = String::from_utf8_lossy(&status).into_owned();
    let errors = status
        .split("\"errors\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no errors counter in {status}"));
    assert!(errors >= 1, "the accept failure was not counted: {status}");
    assert!(srv.log().contains("accept failed"), "{}", srv.log());
}

#[test]
fn httpd_delivers_the_whole_file_when_sendfile_says_eagain() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    // Large enough to leave by sendfile(2), not inline with the head.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let srv = start_injected(
        &trace,
        "sendfile",
        "sendfile:error=EAGAIN:when=1+2",
        env!("CARGO_BIN_EXE_httpd"),
        &["--listen", "127.0.0.1:0", "--root", root.to_str().unwrap()],
        &[],
    );
    for i in 0..3 {
        let (status, body) = get(srv.addr, "/big.bin");
        assert!(status.starts_with("HTTP/1.1 200"), "request {i}: {status}");
        assert_eq!(body.len(), data.len(), "request {i}: a short body");
        assert!(body == data, "request {i}: the body differs from the file");
    }
    // The tracer flushes its output file on a timer; stopping it flushes the rest.
    srv.stop();
    let inj = injected_lines(&trace, "sendfile");
    assert!(
        inj.iter()
            .any(|l| l.contains("= -1 EAGAIN (Resource temporarily unavailable) (INJECTED)")),
        "no injected sendfile in the trace: {inj:?}"
    );
}
