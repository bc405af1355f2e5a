//! The event loops driven directly (no binary): deadlines, ticks, draining, stopping,
//! several reactors on one port, the connection table, and select's descriptor cap.

use super::accept_group::AcceptGroup;
use super::epoll::Reactor;
use super::event_loop::{EventLoop, LoopHandle, Poller};
use super::poll::Poll;
use super::select::Select;
use super::{epoll::Epoll, IoError, Limits, Stats};
use crate::net::{ListenOptions, Listener};
use crate::proto::{ConnId, Outbox, Protocol};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A line protocol for exercising the loop: `deadline MS`, `busy`, `done`, `close`,
/// `stall MS` (blocks the whole loop, so new connections wait in the accept queue),
/// `big N` (N bytes of `x` and a newline), `later WORD` (WORD, sent only from
/// `before_wait`); anything else is echoed. A connection is idle once it has sent a
/// line and is not busy (like a kept-alive HTTP connection between requests).
#[derive(Default)]
struct Probe {
    ticks: Arc<AtomicU64>,
    rounds: Arc<AtomicU64>,
    later: Vec<(ConnId, Vec<u8>)>,
}

#[derive(Default)]
struct ProbeConn {
    busy: bool,
    spoke: bool,
}

impl Protocol for Probe {
    type Conn = ProbeConn;

    fn open(&mut self, id: ConnId, _peer: SocketAddr, out: &mut Outbox) -> ProbeConn {
        out.send(id, &b"hi\n"[..]);
        ProbeConn::default()
    }

    fn data(&mut self, id: ConnId, conn: &mut ProbeConn, input: &[u8], out: &mut Outbox) -> usize {
        let Some(nl) = input.iter().position(|&b| b == b'\n') else {
            return 0;
        };
        let line = std::str::from_utf8(&input[..nl]).unwrap_or("");
        conn.spoke = true;
        if let Some(ms) = line.strip_prefix("stall ") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(100)));
        } else if let Some(ms) = line.strip_prefix("deadline ") {
            let ms: u64 = ms.parse().unwrap_or(100);
            out.deadline(id, Some(Duration::from_millis(ms)));
        } else if line == "busy" {
            conn.busy = true;
        } else if line == "done" {
            conn.busy = false;
        } else if line == "close" {
            out.send(id, &b"bye\n"[..]);
            out.close(id);
        } else if let Some(n) = line.strip_prefix("big ") {
            let mut v = vec![b'x'; n.parse().unwrap_or(1)];
            v.push(b'\n');
            out.send(id, v);
        } else if let Some(w) = line.strip_prefix("later ") {
            self.later.push((id, format!("{w}\n").into_bytes()));
        } else {
            out.send(id, input[..=nl].to_vec());
        }
        nl + 1
    }

    fn timeout(&mut self, id: ConnId, _conn: &mut ProbeConn, out: &mut Outbox) {
        out.send(id, &b"timeout\n"[..]);
        out.close(id);
    }

    fn closed(&mut self, _id: ConnId, _conn: ProbeConn, _out: &mut Outbox) {}

    fn tick(&mut self, _out: &mut Outbox) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }

    fn before_wait(&mut self, out: &mut Outbox) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        for (id, data) in self.later.drain(..) {
            out.send(id, data);
        }
    }

    fn idle(&self, conn: &ProbeConn) -> bool {
        conn.spoke && !conn.busy
    }
}

struct Running {
    addr: SocketAddr,
    handle: LoopHandle,
    stats: Arc<Stats>,
    ticks: Arc<AtomicU64>,
    rounds: Arc<AtomicU64>,
    /// Returns the loop's result and its table size at exit.
    thread: JoinHandle<(Result<(), IoError>, usize)>,
}

fn spawn<B: Poller + 'static>(listeners: Vec<Listener>, exclusive: bool) -> Running {
    spawn_with::<B>(listeners, Limits::default(), move |lp| {
        lp.exclusive_accept(exclusive)
    })
}

fn spawn_with<B: Poller + 'static>(
    listeners: Vec<Listener>,
    limits: Limits,
    setup: impl FnOnce(EventLoop<Probe, B>) -> EventLoop<Probe, B> + Send + 'static,
) -> Running {
    let addr = listeners[0].local_addr();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let probe = Probe::default();
        let ticks = probe.ticks.clone();
        let rounds = probe.rounds.clone();
        let stats = Arc::new(Stats::default());
        let mut lp =
            setup(EventLoop::<Probe, B>::new(listeners, probe, limits, stats.clone()).unwrap());
        tx.send((lp.handle(), stats, ticks, rounds)).unwrap();
        let res = lp.run(None);
        (res, lp.table_size())
    });
    let (handle, stats, ticks, rounds) = rx.recv().unwrap();
    Running {
        addr,
        handle,
        stats,
        ticks,
        rounds,
        thread,
    }
}

fn bind() -> Listener {
    Listener::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap()
}

fn client(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(line(&mut r), "hi\n");
    r
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

fn send(r: &mut BufReader<TcpStream>, s: &str) {
    r.get_mut().write_all(s.as_bytes()).unwrap();
}

fn each_backend(f: impl Fn(&dyn Fn(Vec<Listener>) -> Running)) {
    f(&|l| spawn::<Epoll>(l, false));
    f(&|l| spawn::<Poll>(l, false));
    f(&|l| spawn::<Select>(l, false));
}

#[test]
fn deadline_fires_once_and_ticks_run() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        let mut c = client(rt.addr);
        let t0 = Instant::now();
        send(&mut c, "deadline 300\n");
        assert_eq!(line(&mut c), "timeout\n");
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!(line(&mut c), "", "closed after the timeout");
        assert!(rt.ticks.load(Ordering::Relaxed) >= 1);
        assert_eq!(rt.stats.timeouts.load(Ordering::Relaxed), 1);
        rt.handle.stop();
        rt.thread.join().unwrap().0.unwrap();
    });
}

/// A deadline shorter than the tick fires when it is due, not on the next tick; one
/// re-armed later before it was due fires at its new time only.
#[test]
fn short_deadlines_fire_when_due_and_rearming_moves_them() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        let t0 = Instant::now();
        for _ in 0..8 {
            let mut c = client(rt.addr);
            let t = Instant::now();
            send(&mut c, "deadline 10\n");
            assert_eq!(line(&mut c), "timeout\n");
            assert!(
                t.elapsed() >= Duration::from_millis(10),
                "{:?}",
                t.elapsed()
            );
        }
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "eight 10 ms deadlines took {took:?}"
        );
        let mut c = client(rt.addr);
        let t = Instant::now();
        send(&mut c, "deadline 20\ndeadline 400\n");
        assert_eq!(line(&mut c), "timeout\n");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(390), "{took:?}");
        assert_eq!(rt.stats.timeouts.load(Ordering::Relaxed), 9);
        rt.handle.stop();
        rt.thread.join().unwrap().0.unwrap();
    });
}

/// A deadline moved later (as every answer moves a keep-alive's) fires at its new
/// time, not at the first tick after it: the entry armed for the old time follows it.
#[test]
fn a_deadline_moved_later_fires_at_its_new_time() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        for _ in 0..3 {
            let mut c = client(rt.addr);
            let t = Instant::now();
            send(&mut c, "deadline 20\ndeadline 300\n");
            assert_eq!(line(&mut c), "timeout\n");
            let took = t.elapsed();
            // The tick (every 250 ms) alone would take it anywhere up to 550 ms.
            assert!(
                took >= Duration::from_millis(295) && took < Duration::from_millis(420),
                "{took:?}"
            );
        }
        assert_eq!(rt.stats.timeouts.load(Ordering::Relaxed), 3);
        rt.handle.stop();
        rt.thread.join().unwrap().0.unwrap();
    });
}

#[test]
fn before_wait_runs_each_iteration_and_its_output_leaves_at_once() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        let mut c = client(rt.addr);
        for i in 0..20 {
            let t0 = Instant::now();
            send(&mut c, &format!("later w{i}\n"));
            assert_eq!(line(&mut c), format!("w{i}\n"));
            // Not waiting for the 250 ms tick: the hook ran in the same iteration.
            assert!(
                t0.elapsed() < Duration::from_millis(200),
                "{:?}",
                t0.elapsed()
            );
        }
        // In order with what data() sent directly.
        send(&mut c, "later b\na\n");
        assert_eq!(line(&mut c), "a\n");
        assert_eq!(line(&mut c), "b\n");
        // Idle, the loop wakes for ticks only: a few rounds, not a spin.
        let before = rt.rounds.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(600));
        let idle_rounds = rt.rounds.load(Ordering::Relaxed) - before;
        assert!(
            (1..=12).contains(&idle_rounds),
            "{idle_rounds} rounds while idle"
        );
        rt.handle.stop();
        rt.thread.join().unwrap().0.unwrap();
    });
}

/// Input held back under backpressure is fed when the flush lifts it; what the
/// protocol then holds for `before_wait` must leave without any new event from the
/// client (none comes: it waits for the reply).
#[test]
fn before_wait_runs_after_input_held_back_by_backpressure() {
    fn run<B: Poller + 'static>() {
        let limits = Limits {
            out_high: 1000,
            ..Limits::default()
        };
        let rt = spawn_with::<B>(vec![bind()], limits, |lp| lp);
        let mut c = client(rt.addr);
        // 1.5 KB passes the mark, so `later` waits in the input until the flush, which
        // empties the queue in one write and feeds it: nothing is left to write.
        send(&mut c, "big 1500\nlater tail\n");
        assert_eq!(line(&mut c).len(), 1501);
        let t0 = Instant::now();
        assert_eq!(line(&mut c), "tail\n");
        assert!(
            t0.elapsed() < Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
        rt.handle.stop();
        rt.thread.join().unwrap().0.unwrap();
    }
    run::<Epoll>();
    run::<Poll>();
    run::<Select>();
}

#[test]
fn threaded_models_call_before_wait_after_each_call() {
    for model in [super::Model::Threads, super::Model::Pool] {
        let l = bind();
        let addr = l.local_addr();
        let shutdown = crate::signals::Shutdown::new().unwrap();
        let stop = shutdown.clone();
        let opts = super::Options {
            model,
            workers: 2,
            ..super::Options::default()
        };
        let t =
            std::thread::spawn(move || super::serve(vec![l], Probe::default(), &opts, &shutdown));
        let mut c = client(addr);
        send(&mut c, "later x\n");
        assert_eq!(line(&mut c), "x\n", "{model}");
        stop.trigger();
        drop(c);
        t.join().unwrap().unwrap();
    }
}

#[test]
fn drain_closes_idle_at_once_and_waits_for_busy() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        let mut busy = client(rt.addr);
        let mut idle = client(rt.addr);
        send(&mut idle, "x\n");
        assert_eq!(line(&mut idle), "x\n");
        send(&mut busy, "busy\n");
        send(&mut busy, "ping\n");
        assert_eq!(line(&mut busy), "ping\n");
        rt.handle.drain(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(line(&mut idle), "", "idle connection closed by the drain");
        assert!(t0.elapsed() < Duration::from_secs(2));
        // No longer accepting: a newcomer is never greeted.
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(mut s) = TcpStream::connect(rt.addr) {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut b = [0u8; 3];
            assert!(
                !matches!(s.read(&mut b), Ok(3)),
                "greeted after drain began"
            );
        }
        // The busy one is still served, then closed once it is idle.
        send(&mut busy, "pong\n");
        assert_eq!(line(&mut busy), "pong\n");
        assert!(!rt.thread.is_finished());
        send(&mut busy, "done\n");
        assert_eq!(line(&mut busy), "");
        let (res, _) = rt.thread.join().unwrap();
        res.unwrap();
    });
}

#[test]
fn drain_serves_connections_already_in_the_accept_queue() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        let mut a = client(rt.addr);
        send(&mut a, "stall 400\n");
        // The loop is stalled: these complete their handshake in the kernel and
        // wait in the accept queue while the drain is asked for.
        std::thread::sleep(Duration::from_millis(50));
        let mut queued: Vec<BufReader<TcpStream>> = (0..3)
            .map(|_| {
                let s = TcpStream::connect(rt.addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                BufReader::new(s)
            })
            .collect();
        for (i, q) in queued.iter_mut().enumerate() {
            send(q, &format!("ping {i}\n"));
        }
        rt.handle.drain(Duration::from_secs(10));
        for (i, q) in queued.iter_mut().enumerate() {
            assert_eq!(line(q), "hi\n", "queued connection {i} accepted");
            assert_eq!(line(q), format!("ping {i}\n"), "and served");
            assert_eq!(line(q), "", "then closed as idle");
        }
        rt.thread.join().unwrap().0.unwrap();
    });
}

#[test]
fn drain_closes_the_listening_socket_while_busy_connections_go_on() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        let mut busy = client(rt.addr);
        send(&mut busy, "busy\n");
        send(&mut busy, "ping\n");
        assert_eq!(line(&mut busy), "ping\n");
        rt.handle.drain(Duration::from_secs(10));
        // The loop held the only copy: refused at once, and the port is free.
        let t0 = Instant::now();
        loop {
            match TcpStream::connect(rt.addr) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ => assert!(t0.elapsed() < Duration::from_secs(1), "still accepting"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(std::net::TcpListener::bind(rt.addr).expect("rebind during the drain"));
        send(&mut busy, "pong\n");
        assert_eq!(line(&mut busy), "pong\n");
        send(&mut busy, "done\n");
        assert_eq!(line(&mut busy), "");
        rt.thread.join().unwrap().0.unwrap();
    });
}

#[test]
fn drain_deadline_closes_the_stragglers() {
    let rt = spawn::<Epoll>(vec![bind()], false);
    let mut busy = client(rt.addr);
    send(&mut busy, "busy\n");
    send(&mut busy, "x\n");
    line(&mut busy);
    let t0 = Instant::now();
    rt.handle.drain(Duration::from_millis(400));
    assert_eq!(line(&mut busy), "");
    assert!(t0.elapsed() >= Duration::from_millis(350));
    rt.thread.join().unwrap().0.unwrap();
}

#[test]
fn no_stale_slots_after_many_clients_come_and_go() {
    each_backend(|start| {
        let rt = start(vec![bind()]);
        let keep = client(rt.addr);
        for i in 0..200 {
            let mut c = client(rt.addr);
            send(&mut c, &format!("n{i}\n"));
            assert_eq!(line(&mut c), format!("n{i}\n"));
        }
        let end = Instant::now() + Duration::from_secs(5);
        while rt.stats.active.load(Ordering::Relaxed) != 1 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let s = rt.stats.snapshot();
        assert_eq!((s.accepted, s.active, s.closed), (201, 1, 200));
        drop(keep);
        rt.handle.stop();
        let (res, table) = rt.thread.join().unwrap();
        res.unwrap();
        assert!(table <= 3, "slots are reused: table grew to {table}");
    });
}

#[test]
fn reactors_share_a_listener_with_exclusive_accept() {
    let l = bind();
    let a = spawn::<Epoll>(vec![l.try_clone().unwrap()], true);
    let b = spawn::<Epoll>(vec![l], true);
    let clients: Vec<_> = (0..40).map(|_| client(a.addr)).collect();
    for (i, mut c) in clients.into_iter().enumerate() {
        send(&mut c, &format!("{i}\n"));
        assert_eq!(line(&mut c), format!("{i}\n"));
    }
    let total = a.stats.accepted.load(Ordering::Relaxed) + b.stats.accepted.load(Ordering::Relaxed);
    assert_eq!(total, 40);
    for r in [a, b] {
        r.handle.stop();
        r.thread.join().unwrap().0.unwrap();
    }
}

#[test]
fn an_accept_group_fills_the_first_loop_and_spills_while_it_is_saturated() {
    let l = bind();
    let group = AcceptGroup::new();
    let g = group.clone();
    let lead = spawn_with::<Epoll>(vec![l.try_clone().unwrap()], Limits::default(), move |lp| {
        lp.accept_group(&g)
    });
    let g = group.clone();
    let follow = spawn_with::<Epoll>(vec![l], Limits::default(), move |lp| lp.accept_group(&g));
    let accepted = |r: &Running| r.stats.accepted.load(Ordering::Relaxed);

    // An idle leader takes every connection, however many arrive at once.
    let mut idle: Vec<_> = (0..40).map(|_| client(lead.addr)).collect();
    assert_eq!((accepted(&lead), accepted(&follow)), (40, 0));
    assert!(!group.spilling());
    // A leader that is briefly busy (well under the threshold) keeps its place: the
    // newcomer waits for it rather than waking the follower.
    send(&mut idle[0], "stall 120\n");
    std::thread::sleep(Duration::from_millis(20));
    idle.push(client(lead.addr));
    assert_eq!((accepted(&lead), accepted(&follow)), (41, 0));

    // Keep the leader working (each line blocks it for 50 ms) for a few ticks.
    let mut hog = idle.pop().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let hogger = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            send(&mut hog, "stall 50\nping\n");
            assert_eq!(line(&mut hog), "ping\n");
        }
        hog
    });
    let until = Instant::now() + Duration::from_secs(5);
    while !group.spilling() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        group.spilling(),
        "a saturated leader lets the others accept"
    );
    // The follower takes what the stalled leader cannot: served at once.
    let t = Instant::now();
    let mut fresh: Vec<_> = (0..8).map(|_| client(lead.addr)).collect();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(accepted(&follow) > 0);
    for (i, c) in fresh.iter_mut().enumerate() {
        send(c, &format!("{i}\n"));
        assert_eq!(line(c), format!("{i}\n"));
    }

    // Idle again: the leader has room, the follower stops accepting.
    stop.store(true, Ordering::Relaxed);
    let _hog = hogger.join().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while group.spilling() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!group.spilling(), "the leader has room again");
    // The follower's next wakeup takes it off the listeners.
    follow.handle.wake();
    std::thread::sleep(Duration::from_millis(50));
    let before = accepted(&follow);
    let _late: Vec<_> = (0..20).map(|_| client(lead.addr)).collect();
    assert_eq!(accepted(&follow), before);

    // Stopping the leader hands the socket to the follower.
    lead.handle.stop();
    lead.thread.join().unwrap().0.unwrap();
    let mut c = client(follow.addr);
    send(&mut c, "x\n");
    assert_eq!(line(&mut c), "x\n");
    follow.handle.stop();
    follow.thread.join().unwrap().0.unwrap();
    drop(idle);
}

#[test]
fn a_follower_that_stops_accepting_first_takes_what_was_announced_to_it() {
    // The leader here is a handle only, so nothing else will ever accept: a
    // connection left in the queue when the follower stops watching is lost.
    let group = AcceptGroup::new();
    let _leader = group.join(LoopHandle::unattached());
    group.set_spill(true);
    let g = group.clone();
    let follow = spawn_with::<Epoll>(vec![bind()], Limits::default(), move |lp| {
        lp.accept_group(&g)
    });
    let mut busy = client(follow.addr);
    // Arrives while the follower is stalled; spill ends before it looks again.
    send(&mut busy, "stall 300\n");
    std::thread::sleep(Duration::from_millis(50));
    let late = std::thread::spawn(move || {
        let mut c = client(follow.addr);
        send(&mut c, "x\n");
        line(&mut c)
    });
    std::thread::sleep(Duration::from_millis(50));
    group.set_spill(false);
    assert_eq!(late.join().unwrap(), "x\n");
    follow.handle.stop();
    follow.thread.join().unwrap().0.unwrap();
}

#[test]
fn reactors_on_reuseport_listeners_share_a_port() {
    let opts = ListenOptions {
        reuse_port: true,
        backlog: 128,
    };
    let l1 = Listener::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    let l2 = Listener::bind(l1.local_addr(), &opts).unwrap();
    let rs: Vec<Running> = vec![
        spawn::<Epoll>(vec![l1], false),
        spawn::<Epoll>(vec![l2], false),
    ];
    let clients: Vec<_> = (0..64).map(|_| client(rs[0].addr)).collect();
    drop(clients);
    let counts: Vec<u64> = rs
        .iter()
        .map(|r| r.stats.accepted.load(Ordering::Relaxed))
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 64);
    assert!(
        counts.iter().all(|&c| c > 0),
        "the kernel spreads connections: {counts:?}"
    );
    for r in rs {
        r.handle.stop();
        r.thread.join().unwrap().0.unwrap();
    }
}

#[test]
fn select_refuses_a_listener_past_fd_setsize() {
    if crate::net::raise_fd_limit().unwrap_or(0) <= libc::FD_SETSIZE as u64 + 8 {
        eprintln!("skipped: RLIMIT_NOFILE hard limit too low to open a descriptor past FD_SETSIZE");
        return;
    }
    let l = bind();
    let high = libc::FD_SETSIZE as i32 + 5;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: dup2 onto an unused high number; the new descriptor is owned below.
    let fd = unsafe { libc::dup2(l.as_raw_fd(), high) };
    assert_eq!(fd, high);
    // SAFETY: `fd` was just created by dup2 and is owned by nobody else.
    let high_l = Listener::from_fd(unsafe { OwnedFd::from_raw_fd(fd) }).unwrap();
    let mut lp = EventLoop::<Probe, Select>::new(
        vec![high_l],
        Probe::default(),
        Limits::default(),
        Arc::new(Stats::default()),
    )
    .unwrap();
    match lp.run(None) {
        Err(e @ IoError::FdSetSize { .. }) => assert!(e.to_string().contains("FD_SETSIZE"), "{e}"),
        other => panic!("expected the FD_SETSIZE error, got {other:?}"),
    }
}

#[test]
fn reactor_type_is_the_epoll_loop() {
    let r: Reactor<Probe> = Reactor::new(
        vec![bind()],
        Probe::default(),
        Limits::default(),
        Arc::new(Stats::default()),
    )
    .unwrap();
    assert_eq!(r.connections(), 0);
}
