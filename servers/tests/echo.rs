//! End-to-end: the echo server under every concurrency model, over real sockets.

mod common;

use common::{connect, Server, MODELS};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

const ECHO: &str = env!("CARGO_BIN_EXE_echo");

/// Deterministic pseudo-random bytes (xorshift), different per seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Many clients at once, each streaming random bytes in odd-sized writes while a
/// second thread reads: every byte must come back in order.
fn many_clients_roundtrip(model: &str, clients: usize, bytes: usize) {
    let srv = Server::start(ECHO, &["--io", model, "--workers", "32"]);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let addr = srv.addr;
            std::thread::spawn(move || {
                let data = noise(i as u64 + 1, bytes);
                let mut w = connect(addr);
                let mut r = w.try_clone().unwrap();
                let expect = data.clone();
                let reader = std::thread::spawn(move || {
                    let mut got = Vec::with_capacity(expect.len());
                    let mut buf = [0u8; 8192];
                    while got.len() < expect.len() {
                        let n = r.read(&mut buf).expect("read echo");
                        assert!(n > 0, "EOF after {} of {} bytes", got.len(), expect.len());
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got == expect, "client {i}: echoed bytes differ");
                });
                let mut off = 0;
                let mut step = 1;
                while off < data.len() {
                    let end = (off + step).min(data.len());
                    w.write_all(&data[off..end]).unwrap();
                    off = end;
                    step = step * 7 % 65_521 + 1;
                }
                reader.join().unwrap();
                w.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                w.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let st = srv.stop();
    assert!(st.success(), "{model}: server exit {st:?}");
}

#[test]
fn echo_under_every_model() {
    for model in MODELS {
        many_clients_roundtrip(model, 12, 300_000);
    }
}

#[test]
fn half_close_gets_everything_back_then_eof() {
    for model in MODELS {
        let srv = Server::start(ECHO, &["--io", model]);
        let mut s = connect(srv.addr);
        let data = noise(99, 100_000);
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), data.len(), "{model}");
        assert!(got == data, "{model}: bytes differ");
        drop(srv);
    }
}

#[test]
fn sigterm_stops_cleanly_with_clients_connected() {
    for model in MODELS {
        let srv = Server::start(ECHO, &["--io", model]);
        let mut c = connect(srv.addr);
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let st = srv.stop();
        assert!(st.success(), "{model}: {st:?}");
        // The idle client was closed by the server, not left hanging.
        assert_eq!(c.read(&mut b).unwrap_or(0), 0, "{model}");
    }
}
