//! End-to-end: the chat server under every concurrency model, over real sockets.

mod common;

use common::{connect, read_line, read_until, Server, MODELS};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const CHAT: &str = env!("CARGO_BIN_EXE_chat");

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
