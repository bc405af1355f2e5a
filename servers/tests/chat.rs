//! End-to-end: the chat server under every concurrency model, over real sockets.

mod common;

use common::{connect, read_line, read_until, Server, MODELS};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CHAT: &str = env!("CARGO_BIN_EXE_chat");
const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// Waits until the server counts `n` clients (asking with /who on `s`).
fn wait_for_clients(s: &mut TcpStream, n: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        s.write_all(b"/who\n").unwrap();
        let l = read_until(s, "* online (");
        if l.contains(&format!("* online ({n})")) {
            return;
        }
        assert!(Instant::now() < end, "never saw {n} clients: {l}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn broadcast(model: &str, n: usize, lines_each: usize) {
    let srv = Server::start(CHAT, &["--io", model, "--workers", "64"]);
    let mut clients: Vec<TcpStream> = (0..n).map(|_| connect(srv.addr)).collect();
    for c in clients.iter_mut() {
        assert!(read_line(c).starts_with("* welcome, you are guest-"));
    }
    wait_for_clients(&mut clients[0], n);
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    for k in 0..lines_each {
                        w.write_all(format!("msg {i} {k}\n").as_bytes()).unwrap();
                    }
                });
                // From every other sender, every line, in that sender's order.
                let mut next = vec![0usize; n];
                let mut done = BTreeSet::new();
                done.insert(i);
                if lines_each == 0 {
                    done.extend(0..n);
                }
                while done.len() < n {
                    let l = read_line(&mut c);
                    let Some(p) = l.find(": msg ") else { continue };
                    let mut it = l[p + 6..].trim_end().split(' ');
                    let from: usize = it.next().unwrap().parse().unwrap();
                    let k: usize = it.next().unwrap().parse().unwrap();
                    assert_ne!(from, i, "a client got its own line back");
                    assert_eq!(k, next[from], "client {i}: lines from {from} out of order");
                    next[from] += 1;
                    if next[from] == lines_each {
                        done.insert(from);
                    }
                }
                writer.join().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let st = srv.stop();
    assert!(st.success(), "{model}: {st:?}");
}

#[test]
fn broadcast_under_every_model() {
    for model in MODELS {
        broadcast(model, 20, 50);
    }
}

#[test]
fn nick_who_quit_and_announcements() {
    let srv = Server::start(CHAT, &[]);
    let mut a = connect(srv.addr);
    read_line(&mut a);
    let mut b = connect(srv.addr);
    read_line(&mut b);
    assert!(read_line(&mut a).ends_with(" joined\n"));
    a.write_all(b"/nick alice\n").unwrap();
    assert!(read_line(&mut b).ends_with(" is now alice\n"));
    a.write_all(b"hel").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    a.write_all(b"lo\r\n").unwrap();
    assert_eq!(read_line(&mut b), "alice: hello\n");
    b.write_all(b"/who\n").unwrap();
    let who = read_until(&mut b, "* online");
    assert!(
        who.starts_with("* online (2): ") && who.contains("alice"),
        "{who}"
    );
    a.write_all(b"/quit\n").unwrap();
    assert_eq!(read_until(&mut a, "bye"), "* bye\n");
    assert_eq!(read_line(&mut b), "* alice left\n");
}

#[test]
fn max_clients_refuses_the_newcomer_only() {
    for model in MODELS {
        let srv = Server::start(CHAT, &["--io", model, "--max-clients", "2"]);
        let mut a = connect(srv.addr);
        read_line(&mut a);
        let mut b = connect(srv.addr);
        read_line(&mut b);
        wait_for_clients(&mut a, 2);
        let mut c = connect(srv.addr);
        assert!(read_line(&mut c).contains("server full"), "{model}");
        b.write_all(b"still here\n").unwrap();
        assert!(
            read_until(&mut a, "still here").contains(": still here"),
            "{model}"
        );
    }
}

/// NUL, ANSI escape sequences, a bare CR and DEL reach the other users as visible
/// `\ooo` escapes under every model; tab and UTF-8 pass as they are.
#[test]
fn control_bytes_reach_others_escaped() {
    for model in MODELS {
        let srv = Server::start(CHAT, &["--io", model]);
        let mut a = connect(srv.addr);
        read_line(&mut a);
        let mut b = connect(srv.addr);
        read_line(&mut b);
        wait_for_clients(&mut a, 2);
        a.write_all(b"/nick mallory\n").unwrap();
        read_until(&mut b, "is now mallory");
        a.write_all(b"\x1b[2J\x1b]0;owned\x07x\0y\x7f\tz\rroot: hi \xc3\xa9\r\n")
            .unwrap();
        let got = read_until(&mut b, "mallory: ");
        assert_eq!(
            got, "mallory: \\033[2J\\033]0;owned\\007x\\000y\\177\tz\\015root: hi \u{e9}\n",
            "{model}"
        );
    }
}

/// Runs `loadgen chat` against `addr`; returns its output and how long it took.
fn loadgen_chat(
    addr: SocketAddr,
    clients: usize,
    lines: usize,
    timeout: u32,
) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(LOADGEN)
        .args(["chat", "--addr", &addr.to_string()])
        .args([
            "--clients",
            &clients.to_string(),
            "--lines",
            &lines.to_string(),
        ])
        .args(["--timeout", &timeout.to_string()])
        .output()
        .unwrap();
    (out, t.elapsed())
}

/// The benchmark client counts every delivery at small sizes too (3 clients x 5 lines
/// once lost a whole client's lines, then waited out its timeout and exited 0), and
/// finishes as soon as the last line arrives. Small sizes repeat: the loss was a race.
#[test]
fn loadgen_chat_counts_every_line_at_small_and_medium_sizes() {
    for model in ["epoll", "threads"] {
        let srv = Server::start(CHAT, &["--io", model]);
        let sizes = [(2, 1), (2, 5), (3, 5), (4, 3), (10, 40), (30, 200)];
        for (clients, lines) in sizes {
            let rounds = if clients * lines < 100 { 8 } else { 1 };
            for round in 0..rounds {
                let (out, took) = loadgen_chat(srv.addr, clients, lines, 20);
                let stdout = String::from_utf8_lossy(&out.stdout);
                let what = format!(
                    "{model} {clients}x{lines} round {round}: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let expected = clients * (clients - 1) * lines;
                assert!(out.status.success(), "{what}");
                assert!(
                    stdout.contains(&format!(
                        "expected={expected} delivered={expected} lost=0 disconnected=0"
                    )),
                    "{what}"
                );
                assert!(took < Duration::from_secs(10), "took {took:?}: {what}");
            }
        }
    }
}

/// A relay that passes the barrier's pings but drops every payload line: loadgen
/// must report the loss and exit non-zero once its timeout runs out.
#[test]
fn loadgen_chat_exits_non_zero_when_lines_are_lost() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let peers: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>> = Default::default();
        for (id, s) in listener.incoming().take(2).enumerate() {
            let s = s.unwrap();
            peers.lock().unwrap().push(s.try_clone().unwrap());
            let peers = peers.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(s).split(b'\n') {
                    let Ok(line) = line else { return };
                    if line.first() != Some(&b'^') {
                        continue;
                    }
                    for (other, mut p) in peers.lock().unwrap().iter().enumerate() {
                        if other != id {
                            let _ = p.write_all(b"^\n");
                        }
                    }
                }
            });
        }
    });
    let (out, _) = loadgen_chat(addr, 2, 3, 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{out:?}");
    assert!(stdout.contains("expected=6 delivered=0 lost=6"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("6 of 6 deliveries missing"),
        "{out:?}"
    );
}
