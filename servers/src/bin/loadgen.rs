//! `loadgen`: the benchmark client, a separate process from the server it measures.
//!
//! One thread, one epoll loop over every connection (the crate's own [`Epoll`]
//! backend), so the generator is never the first thing to run out of threads or
//! descriptors. `echo` runs closed-loop clients (one message in flight each) and
//! reports messages/s and latency percentiles; `chat` has every client send its
//! lines at once and counts fan-out deliveries until every line reached every
//! other client (each payload line carries one `~`, which no server notice does).
//! A thread is done only when its clients have heard every line *and* sent all of
//! their own; `chat` exits non-zero if any delivery is missing when it stops.

use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use servers::io::epoll::Epoll;
use servers::io::event_loop::{Fired, Interest, Poller};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Load generator for the echo and chat benchmarks (scripts/bench/).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  loadgen echo --addr 127.0.0.1:7001 --conns 100 --secs 3\n  loadgen chat --addr 127.0.0.1:7000 --clients 50 --lines 2000"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Closed-loop echo clients: messages/s and latency.
    Echo {
        #[arg(long)]
        addr: SocketAddr,
        /// Concurrent connections.
        #[arg(long, default_value_t = 100)]
        conns: usize,
        /// Message size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// How long to measure, in seconds.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
    },
    /// Broadcast fan-out: every client sends LINES lines; count deliveries. Exit
    /// status 1 if a delivery is missing (lost=N > 0) or a client was disconnected.
    Chat {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 50,
              value_parser = clap::value_parser!(u32).range(1..=100_000).map(|n| n as usize))]
        clients: usize,
        #[arg(long, default_value_t = 2000)]
        lines: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let res = match args.cmd {
        Cmd::Echo {
            addr,
            conns,
            size,
            secs,
        } => echo(addr, conns, size.max(1), Duration::from_secs_f64(secs)),
        Cmd::Chat {
            addr,
            clients,
            lines,
            timeout,
        } => chat(addr, clients, lines, Duration::from_secs_f64(timeout)),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect_all(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    let _ = servers::net::raise_fd_limit();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(addr).map_err(|e| {
            io::Error::new(e.kind(), format!("connect {addr} (connection {i}): {e}"))
        })?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        v.push(s);
    }
    Ok(v)
}

fn interest(read: bool, write: bool) -> Interest {
    Interest {
        read,
        write,
        exclusive: false,
    }
}

struct EchoConn {
    s: TcpStream,
    sent_at: Instant,
    /// Bytes of the current message still to write / still to read back.
    to_write: usize,
    to_read: usize,
    served: bool,
    alive: bool,
}

fn echo(addr: SocketAddr, conns: usize, size: usize, secs: Duration) -> io::Result<()> {
    let streams = connect_all(addr, conns)?;
    let mut ep = Epoll::new()?;
    let msg = vec![b'e'; size];
    let mut cs: Vec<EchoConn> = Vec::with_capacity(conns);
    let now = Instant::now();
    for (i, s) in streams.into_iter().enumerate() {
        ep.add(s.as_raw_fd(), i as u64, interest(true, true))?;
        cs.push(EchoConn {
            s,
            sent_at: now,
            to_write: size,
            to_read: size,
            served: false,
            alive: true,
        });
    }
    let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut msgs: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut fired: Vec<Fired> = Vec::new();
    let start = Instant::now();
    let end = start + secs;
    while Instant::now() < end {
        ep.wait(Duration::from_millis(50), &mut fired)?;
        for f in &fired {
            let i = f.token as usize;
            let c = &mut cs[i];
            if !c.alive {
                continue;
            }
            if f.writable && c.to_write > 0 {
                match c.s.write(&msg[size - c.to_write..]) {
                    Ok(n) => c.to_write -= n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => c.alive = false,
                }
                if c.to_write == 0 {
                    ep.modify(c.s.as_raw_fd(), i as u64, interest(true, false))?;
                }
            }
            if f.readable {
                loop {
                    match c.s.read(&mut buf) {
                        Ok(0) => {
                            c.alive = false;
                            break;
                        }
                        Ok(n) => {
                            c.to_read = c.to_read.saturating_sub(n);
                            if c.to_read == 0 {
                                let t = c.sent_at.elapsed();
                                lat_us.push(t.as_micros().min(u32::MAX as u128) as u32);
                                msgs += 1;
                                c.served = true;
                                c.sent_at = Instant::now();
                                c.to_read = size;
                                match c.s.write(&msg) {
                                    Ok(n) => c.to_write = size - n,
                                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                        c.to_write = size
                                    }
                                    Err(_) => c.alive = false,
                                }
                                if c.to_write > 0 && c.alive {
                                    ep.modify(c.s.as_raw_fd(), i as u64, interest(true, true))?;
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            c.alive = false;
                            break;
                        }
                    }
                }
            }
            if !cs[i].alive {
                let _ = ep.delete(cs[i].s.as_raw_fd());
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat_us.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat_us.is_empty() {
            0
        } else {
            lat_us[((lat_us.len() as f64 - 1.0) * p) as usize]
        }
    };
    let served = cs.iter().filter(|c| c.served).count();
    let dead = cs.iter().filter(|c| !c.alive).count();
    println!(
        "conns={conns} served={served} closed={dead} msgs={msgs} secs={elapsed:.2} msgs_per_s={:.0} p50_us={} p99_us={} max_us={}",
        msgs as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

struct ChatConn {
    s: TcpStream,
    out: Vec<u8>,
    off: usize,
    got: u64,
    pinged: bool,
    alive: bool,
}

/// What the chat threads share: phase flags and counters.
struct ChatShared {
    /// Clients that have received a ping line (`^`): they are surely registered.
    ready: AtomicUsize,
    go: AtomicBool,
    start: std::sync::OnceLock<Instant>,
}

fn chat(addr: SocketAddr, clients: usize, lines: usize, timeout: Duration) -> io::Result<()> {
    let streams = connect_all(addr, clients)?;
    // Two threads read (the machine may have few cores; one reader thread can be the
    // bottleneck before the server is).
    let threads = 2.min(clients.max(1));
    let shared = Arc::new(ChatShared {
        ready: AtomicUsize::new(0),
        go: AtomicBool::new(false),
        start: std::sync::OnceLock::new(),
    });
    let mut groups: Vec<Vec<(usize, TcpStream)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in streams.into_iter().enumerate() {
        groups[i % threads].push((i, s));
    }
    let expected_each = (lines * clients.saturating_sub(1)) as u64;
    let handles: Vec<_> = groups
        .into_iter()
        .map(|g| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                chat_thread(g, lines, expected_each, clients, timeout, &shared)
            })
        })
        .collect();
    let mut delivered = 0u64;
    let mut dead = 0usize;
    let mut last: Option<Instant> = None;
    for h in handles {
        let (d, x, l) = h
            .join()
            .map_err(|_| io::Error::other("a load thread panicked"))??;
        delivered += d;
        dead += x;
        last = last.max(l);
    }
    let expected = expected_each * clients as u64;
    let start = shared.start.get().copied().unwrap_or_else(Instant::now);
    let secs = last.map_or(0.0, |l| (l - start).as_secs_f64()).max(1e-6);
    let lost = expected.saturating_sub(delivered);
    println!(
        "clients={clients} lines={lines} expected={expected} delivered={delivered} lost={lost} disconnected={dead} secs={secs:.3} deliveries_per_s={:.0}",
        delivered as f64 / secs
    );
    if lost > 0 || dead > 0 {
        return Err(io::Error::other(format!(
            "{lost} of {expected} deliveries missing, {dead} clients disconnected"
        )));
    }
    Ok(())
}

/// One reader/writer thread over its share of the chat clients. Returns
/// (deliveries, disconnected clients, time of its last delivery).
fn chat_thread(
    group: Vec<(usize, TcpStream)>,
    lines: usize,
    expected_each: u64,
    clients: usize,
    timeout: Duration,
    shared: &ChatShared,
) -> io::Result<(u64, usize, Option<Instant>)> {
    let mut ep = Epoll::new()?;
    let mut cs: Vec<ChatConn> = Vec::with_capacity(group.len());
    let mut zero: Option<usize> = None;
    for (slot, (i, s)) in group.into_iter().enumerate() {
        ep.add(s.as_raw_fd(), slot as u64, interest(true, false))?;
        let mut out = Vec::with_capacity(lines * 12);
        for k in 0..lines {
            writeln!(out, "~{i} {k}")?;
        }
        if i == 0 {
            zero = Some(slot);
        }
        cs.push(ChatConn {
            s,
            out,
            off: 0,
            got: 0,
            // Client 0 sends the pings and never hears its own.
            pinged: i == 0,
            alive: true,
        });
    }
    if zero.is_some() {
        shared.ready.fetch_add(1, Ordering::SeqCst);
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut fired: Vec<Fired> = Vec::new();
    // Barrier: a ping line reaches every client only once the server has registered
    // it (a threaded server opens clients asynchronously); resend until all heard one.
    let deadline = Instant::now() + timeout;
    let mut next_ping = Instant::now();
    let mut early: u64 = 0;
    while !shared.go.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return Err(io::Error::other(
                "not every client heard the ping; is the server serving them all?",
            ));
        }
        if let (Some(z), true) = (zero, Instant::now() >= next_ping) {
            if shared.ready.load(Ordering::SeqCst) >= clients {
                let _ = shared.start.set(Instant::now());
                shared.go.store(true, Ordering::SeqCst);
                break;
            }
            let _ = cs[z].s.write(b"^\n");
            next_ping = Instant::now() + Duration::from_millis(200);
        }
        ep.wait(Duration::from_millis(20), &mut fired)?;
        for f in &fired {
            let c = &mut cs[f.token as usize];
            while let Ok(n) = c.s.read(&mut buf) {
                if n == 0 {
                    c.alive = false;
                    break;
                }
                // The other thread may already be sending: count what arrives.
                let k = memchr::memchr_iter(b'~', &buf[..n]).count() as u64;
                c.got += k;
                early += k;
                if !c.pinged && memchr::memchr(b'^', &buf[..n]).is_some() {
                    c.pinged = true;
                    shared.ready.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
    for (slot, c) in cs.iter().enumerate() {
        ep.modify(c.s.as_raw_fd(), slot as u64, interest(true, true))?;
    }
    let expected = expected_each * cs.len() as u64;
    let mut delivered: u64 = early;
    let mut last = None;
    let start = Instant::now();
    // Done when every line has arrived and every client has sent all of its own: a
    // client may hear all the others (even during the barrier, above) before it
    // has written a byte, and its lines are what the other threads wait for.
    let unsent = |cs: &[ChatConn]| cs.iter().any(|c| c.alive && c.off < c.out.len());
    while (delivered < expected || unsent(&cs)) && start.elapsed() < timeout {
        ep.wait(Duration::from_millis(100), &mut fired)?;
        for f in &fired {
            let i = f.token as usize;
            let c = &mut cs[i];
            if !c.alive {
                continue;
            }
            if f.writable && c.off < c.out.len() {
                match c.s.write(&c.out[c.off..]) {
                    Ok(n) => c.off += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => c.alive = false,
                }
                if c.off == c.out.len() {
                    ep.modify(c.s.as_raw_fd(), i as u64, interest(true, false))?;
                }
            }
            if f.readable {
                loop {
                    match c.s.read(&mut buf) {
                        Ok(0) => {
                            c.alive = false;
                            break;
                        }
                        Ok(n) => {
                            let k = memchr::memchr_iter(b'~', &buf[..n]).count() as u64;
                            c.got += k;
                            delivered += k;
                            last = Some(Instant::now());
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            c.alive = false;
                            break;
                        }
                    }
                }
            }
            if !cs[i].alive {
                let _ = ep.delete(cs[i].s.as_raw_fd());
            }
        }
    }
    let dead = cs.iter().filter(|c| !c.alive).count();
    Ok((delivered, dead, last))
}
