//! End-to-end: the limits and failure modes every model must survive — short writes,
//! slow readers, restarts in TIME_WAIT, a thousand clients, a fixed pool, select's
//! descriptor cap, and hostile input.

mod common;

use common::{
    connect, lines, next_line, next_until, raise_nofile, read_line, read_until, Server, MODELS,
};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn set_int_opt(s: &TcpStream, level: i32, name: i32, val: i32) {
    // SAFETY: setsockopt with a live c_int and its exact size on an open socket.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&val as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Closes with an RST instead of a FIN.
fn reset(s: TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a live linger struct and its exact size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    drop(s);
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn short_writes_with_tiny_sndbuf_and_a_slow_reader() {
    for model in MODELS {
        let srv = Server::start(ECHO, &["--io", model, "--sndbuf", "4096"]);
        let data = pattern(1 << 20);
        let mut w = connect(srv.addr);
        let mut r = w.try_clone().unwrap();
        let expect = data.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::with_capacity(expect.len());
            let mut buf = [0u8; 4096];
            while got.len() < expect.len() {
                let n = r.read(&mut buf).unwrap();
                assert!(n > 0, "EOF early");
                got.extend_from_slice(&buf[..n]);
                std::thread::sleep(Duration::from_micros(1500));
            }
            assert!(got == expect, "bytes lost, duplicated or reordered");
        });
        w.write_all(&data).unwrap();
        reader.join().unwrap();
        drop(srv);
    }
}

#[test]
fn chat_slow_but_reading_client_gets_every_line_in_order() {
    for model in MODELS {
        let srv = Server::start(CHAT, &["--io", model, "--sndbuf", "4096"]);
        let mut a = connect(srv.addr);
        read_line(&mut a);
        let mut b = connect(srv.addr);
        read_line(&mut b);
        read_until(&mut a, "joined");
        let n = 2000;
        let writer = std::thread::spawn(move || {
            let mut all = Vec::new();
            for k in 0..n {
                all.extend_from_slice(format!("line {k} {}\n", "z".repeat(100)).as_bytes());
            }
            a.write_all(&all).unwrap();
            a
        });
        for k in 0..n {
            let l = read_line(&mut b);
            assert!(
                l.contains(&format!(": line {k} ")),
                "{model}: expected line {k}, got {l}"
            );
            if k % 64 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        drop(writer.join().unwrap());
    }
}

#[test]
fn chat_slow_reader_is_disconnected_and_nobody_stalls() {
    for model in MODELS {
        let srv = Server::start(
            CHAT,
            &["--io", model, "--out-limit", "262144", "--sndbuf", "16384"],
        );
        let slow = connect(srv.addr);
        set_int_opt(&slow, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
        let mut a = connect(srv.addr);
        read_line(&mut a);
        let mut b = lines(connect(srv.addr));
        next_line(&mut b);
        wait_for_clients(&mut a, 3);
        // Four times the 256 KiB out_limit.
        let n = 5_000;
        // The writer never runs more than 200 lines (~40 KB) ahead of the attentive
        // reader, however the machine schedules the test's threads; the client that
        // never reads falls the whole megabyte behind.
        let progress = Arc::new(AtomicUsize::new(0));
        let seen = progress.clone();
        let writer = std::thread::spawn(move || {
            for k in 0..n {
                let end = Instant::now() + Duration::from_secs(30);
                while k > seen.load(Ordering::Acquire) + 200 && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(1));
                }
                a.write_all(format!("flood {k} {}\n", "y".repeat(200)).as_bytes())
                    .unwrap();
            }
            a
        });
        for k in 0..n {
            let l = next_until(&mut b, ": flood ");
            assert!(
                l.contains(&format!(": flood {k} ")),
                "{model}: expected {k}, got {l}"
            );
            progress.store(k + 1, Ordering::Release);
        }
        drop(writer.join().unwrap());
        assert!(
            srv.wait_log("slow reader", Duration::from_secs(10)),
            "{model}: no slow-reader log:\n{}",
            srv.log()
        );
        // The slow client was cut off: after what was already buffered, EOF or reset.
        let mut slow = slow;
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 65536];
        let mut total = 0usize;
        loop {
            match slow.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => total += k,
            }
        }
        assert!(
            total < 5000 * 200,
            "{model}: the slow reader was never cut off ({total} bytes)"
        );
    }
}

/// Whether /proc/net/tcp{,6} lists a TIME_WAIT socket on local port `port`.
fn time_wait_on(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|p| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && format!("{} ", f[1]).ends_with(&needle) && f[3] == "06"
            })
    })
}

#[test]
fn restart_on_the_same_port_while_connections_sit_in_time_wait() {
    for model in ["epoll", "threads"] {
        let srv = Server::start(CHAT, &["--io", model]);
        let addr = srv.addr;
        let mut clients: Vec<TcpStream> = (0..10).map(|_| connect(addr)).collect();
        for c in clients.iter_mut() {
            read_line(c);
        }
        // The server closes first (clients quit), so the TIME_WAITs are on its port.
        for c in clients.iter_mut() {
            c.write_all(b"/quit\n").unwrap();
            let mut rest = Vec::new();
            let _ = c.read_to_end(&mut rest);
        }
        drop(clients);
        assert!(srv.stop().success());
        assert!(
            time_wait_on(addr.port()),
            "{model}: expected TIME_WAIT sockets on port {}",
            addr.port()
        );
        let listen = addr.to_string();
        let again = Server::start_raw(CHAT, &["--listen", &listen, "--io", model], &[]);
        assert_eq!(again.addr, addr);
        let mut c = connect(addr);
        assert!(read_line(&mut c).starts_with("* welcome"));
    }
}

#[test]
fn a_thousand_concurrent_clients_on_poll_and_epoll() {
    if raise_nofile() < 2200 {
        eprintln!("skipped: RLIMIT_NOFILE hard limit below 2200");
        return;
    }
    for model in ["poll", "epoll"] {
        let srv = Server::start(ECHO, &["--io", model]);
        let mut cs: Vec<TcpStream> = (0..1000).map(|_| connect(srv.addr)).collect();
        for (i, c) in cs.iter_mut().enumerate() {
            c.write_all(format!("client {i:04}\n").as_bytes()).unwrap();
        }
        for (i, c) in cs.iter_mut().enumerate() {
            let mut buf = [0u8; 12];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, format!("client {i:04}\n").as_bytes(), "{model}");
        }
        drop(cs);
        // And chat: one line reaches all 999 others.
        let srv = Server::start(CHAT, &["--io", model]);
        let mut cs: Vec<common::Lines> = (0..1000).map(|_| lines(connect(srv.addr))).collect();
        for c in cs.iter_mut() {
            next_line(c);
        }
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            cs[0].get_mut().write_all(b"/who\n").unwrap();
            if next_until(&mut cs[0], "* online (").contains("(1000)") {
                break;
            }
            assert!(Instant::now() < end);
        }
        cs[0].get_mut().write_all(b"to everyone\n").unwrap();
        for c in cs.iter_mut().skip(1) {
            assert!(next_until(c, "to everyone").ends_with(": to everyone\n"));
        }
    }
}

#[test]
fn pool_serves_500_short_lived_clients_with_a_fixed_thread_count() {
    let srv = Server::start(ECHO, &["--io", "pool", "--workers", "8"]);
    let expected = 8 + 1;
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.threads() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(srv.threads(), expected, "workers + acceptor");
    let stop = Arc::new(AtomicBool::new(false));
    let (lo, hi) = (
        Arc::new(AtomicUsize::new(usize::MAX)),
        Arc::new(AtomicUsize::new(0)),
    );
    let pid = srv.pid();
    let monitor = {
        let (stop, lo, hi) = (stop.clone(), lo.clone(), hi.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) {
                    let n = d.count();
                    lo.fetch_min(n, Ordering::Relaxed);
                    hi.fetch_max(n, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let served = Arc::new(AtomicUsize::new(0));
    for batch in 0..20 {
        let hs: Vec<_> = (0..25)
            .map(|i| {
                let (addr, served) = (srv.addr, served.clone());
                std::thread::spawn(move || {
                    let mut c = connect(addr);
                    let msg = format!("short-lived {batch} {i}\n");
                    c.write_all(msg.as_bytes()).unwrap();
                    let mut buf = vec![0u8; msg.len()];
                    c.read_exact(&mut buf).unwrap();
                    assert_eq!(buf, msg.as_bytes());
                    served.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    assert_eq!(served.load(Ordering::Relaxed), 500);
    assert_eq!(
        (lo.load(Ordering::Relaxed), hi.load(Ordering::Relaxed)),
        (expected, expected),
        "thread count moved"
    );
}

#[test]
fn pool_tells_a_waiting_chat_client_it_is_queued() {
    let srv = Server::start(CHAT, &["--io", "pool", "--workers", "2"]);
    let mut a = connect(srv.addr);
    read_line(&mut a);
    let mut b = connect(srv.addr);
    read_line(&mut b);
    let mut c = connect(srv.addr);
    let l = read_line(&mut c);
    assert!(l.contains("you are number 1 in the queue"), "{l}");
    // A worker frees up when a client leaves; the queued one is then served.
    a.write_all(b"/quit\n").unwrap();
    assert!(read_until(&mut c, "welcome").starts_with("* welcome"));
}

#[test]
fn select_past_fd_setsize_gives_a_clear_error_and_keeps_serving() {
    if raise_nofile() < 2500 {
        eprintln!("skipped: RLIMIT_NOFILE hard limit below 2500");
        return;
    }
    let srv = Server::start(ECHO, &["--io", "select"]);
    let mut first = connect(srv.addr);
    let mut cs: Vec<TcpStream> = (0..1100).map(|_| connect(srv.addr)).collect();
    assert!(
        srv.wait_log("FD_SETSIZE", Duration::from_secs(10)),
        "no FD_SETSIZE error in the log:\n{}",
        srv.log()
    );
    // Clients past the cap were closed; the others and the first still echo.
    let mut refused = 0;
    for c in cs.iter_mut().rev().take(50) {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        if matches!(c.read(&mut b), Ok(0) | Err(_)) {
            refused += 1;
        }
    }
    assert!(refused > 0, "no client was refused");
    first.write_all(b"still alive\n").unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still alive\n");
}

/// The hostile client does its thing; `a` and `b` must still talk afterwards.
fn survives(model: &str, hostile: impl FnOnce(std::net::SocketAddr)) {
    let srv = Server::start(CHAT, &["--io", model]);
    let mut a = connect(srv.addr);
    read_line(&mut a);
    let mut b = connect(srv.addr);
    read_line(&mut b);
    let reader = std::thread::spawn(move || {
        read_until(&mut b, "marker-after");
        b
    });
    hostile(srv.addr);
    a.write_all(b"marker-after\n").unwrap();
    let mut b = reader.join().unwrap();
    b.write_all(b"reply\n").unwrap();
    assert!(
        read_until(&mut a, "reply").ends_with(": reply\n"),
        "{model}"
    );
}

#[test]
fn hostile_input_leaves_the_others_served() {
    for model in MODELS {
        // Random binary, newlines and all.
        survives(model, |addr| {
            let mut h = connect(addr);
            let mut x: u32 = 12345;
            let junk: Vec<u8> = (0..256 * 1024)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            h.write_all(&junk).unwrap();
        });
        // 1 MiB without a newline: one error line, the connection stays usable.
        survives(model, |addr| {
            let mut h = connect(addr);
            read_line(&mut h);
            h.write_all(&vec![b'x'; 1 << 20]).unwrap();
            assert!(read_until(&mut h, "!").contains("line too long"));
            h.write_all(b"\n/who\n").unwrap();
            assert!(read_until(&mut h, "* online").starts_with("* online"));
        });
        // Half-close: the line before it is delivered, then the server closes.
        survives(model, |addr| {
            let mut h = connect(addr);
            read_line(&mut h);
            h.write_all(b"last words\n").unwrap();
            h.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            h.read_to_end(&mut rest).unwrap();
        });
        // Abrupt reset with a partial line pending.
        survives(model, |addr| {
            let mut h = connect(addr);
            read_line(&mut h);
            h.write_all(b"half a li").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            reset(h);
        });
    }
}

#[test]
fn echo_survives_a_reset_in_the_middle_of_a_large_reply() {
    for model in MODELS {
        let srv = Server::start(ECHO, &["--io", model, "--sndbuf", "4096"]);
        for _ in 0..3 {
            let mut h = connect(srv.addr);
            h.write_all(&pattern(512 * 1024)).unwrap();
            reset(h);
        }
        let mut c = connect(srv.addr);
        c.write_all(b"ok?\n").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok?\n", "{model}");
    }
}
