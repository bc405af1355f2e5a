//! The capstone's master process on its own, with a minimal worker body that
//! answers each connection with its pid: fork, respawn after `kill -9`, reload
//! to new workers on the same socket, graceful stop.
//!
//! The test binary runs itself again as the master (`MASTER_UNDER_TEST=1`), so the
//! master gets a process of its own for its signal handlers and timers.

use servers::capstone::config::Config;
use servers::capstone::master::{self, WorkerCtx};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn body(ctx: WorkerCtx) -> i32 {
    use std::io::Write;
    let set = master::handled_signals();
    loop {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        // SAFETY: valid sigset and timespec on the stack; info may be null.
        let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
        if sig == libc::SIGTERM || sig == libc::SIGQUIT {
            return 0;
        }
        let first = ctx.place * ctx.config.workers;
        for l in ctx.sockets.of_loops(first, ctx.config.workers) {
            while let Ok(Some((fd, _))) = l.accept() {
                let mut s = std::net::TcpStream::from(fd);
                let _ = s.set_nonblocking(false);
                let _ = write!(s, "{} {}", std::process::id(), ctx.generation);
            }
        }
    }
}

#[test]
fn master_process_entry() {
    if std::env::var_os("MASTER_UNDER_TEST").is_none() {
        return;
    }
    // The master must be the only thread of its process (signal masks are per
    // thread); the harness has others, so the master runs in a forked child.
    // SAFETY: the child only runs the master and exits; the harness's other
    // threads hold no locks the master needs (they wait for this test).
    if let nix::unistd::ForkResult::Parent { child } = unsafe { nix::unistd::fork() }.unwrap() {
        let code = match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
            _ => 1,
        };
        std::process::exit(code);
    }
    servers::capstone::logging::init();
    let reload = master::Reload {
        path: Some(std::env::var_os("MASTER_CONFIG").unwrap().into()),
        listen: None,
        root: None,
        tls_self_signed: None,
    };
    let config: Config = reload.load().unwrap();
    let code = master::run(config, reload, body).unwrap();
    std::process::exit(code);
}

struct Master {
    child: Child,
    /// The master itself: a child of `child` (see `master_process_entry`).
    pid: i32,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Master {
    fn start(config: &std::path::Path) -> Master {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "master_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MASTER_UNDER_TEST", "1")
            .env("MASTER_CONFIG", config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(a) = line.split("listening addr=").nth(1) {
                    let _ = tx.send((0, a.trim().parse::<SocketAddr>().unwrap()));
                }
                if let Some(p) = line.split("master started pid=").nth(1) {
                    let _ = tx.send((
                        p.split(' ').next().unwrap().parse::<i32>().unwrap(),
                        ([0, 0, 0, 0], 0).into(),
                    ));
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (_, addr) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("master address");
        let (pid, _) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("master pid");
        Master {
            child,
            pid,
            addr,
            log,
        }
    }

    /// (worker pid, generation) of whoever answers the next connection.
    fn ask(&self) -> (i32, u64) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let mut it = text.split(' ');
        (
            it.next().unwrap().parse().unwrap(),
            it.next().unwrap().parse().unwrap(),
        )
    }

    fn children(&self) -> Vec<i32> {
        let pid = self.pid;
        let mut v: Vec<i32> = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            v.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
        v.sort();
        v
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the master we started.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0);
    }

    fn wait_for(&self, what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
        let t = Instant::now();
        while !ok() {
            assert!(
                t.elapsed() < limit,
                "{what} not within {limit:?}; log:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        t.elapsed()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the master we started; its workers follow it (PDEATHSIG).
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn master_respawns_reloads_and_stops() {
    if std::env::var_os("MASTER_UNDER_TEST").is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("m.toml");
    let conf = |n: usize| {
        format!("listen = [\"127.0.0.1:0\"]\naccept = \"shared\"\nprocesses = {n}\nworkers = 1\n[timeouts]\ndrain = 2\n")
    };
    std::fs::write(&cfg, conf(2)).unwrap();
    let mut m = Master::start(&cfg);
    m.wait_for("two workers", Duration::from_secs(5), || {
        m.children().len() == 2
    });
    let first = m.children();
    let (pid, generation) = m.ask();
    assert!(first.contains(&pid) && generation == 1);

    // kill -9 one worker: a replacement within a second.
    // SAFETY: kill(2) on a child of our child, read from /proc.
    assert_eq!(unsafe { libc::kill(first[0], libc::SIGKILL) }, 0);
    let took = m.wait_for("a replacement", Duration::from_secs(3), || {
        let now = m.children();
        now.len() == 2 && !now.contains(&first[0])
    });
    assert!(took < Duration::from_secs(1), "replacement took {took:?}");

    // SIGHUP: generation 2 (three processes now) answers on the same socket, the
    // old workers leave.
    let before = m.children();
    std::fs::write(&cfg, conf(3)).unwrap();
    m.signal(libc::SIGHUP);
    m.wait_for("generation 2", Duration::from_secs(5), || m.ask().1 == 2);
    m.wait_for("old workers gone", Duration::from_secs(5), || {
        let now = m.children();
        now.len() == 3 && before.iter().all(|p| !now.contains(p))
    });
    for _ in 0..20 {
        assert_eq!(m.ask().1, 2);
    }

    // SIGTERM: everything exits, code 0.
    m.signal(libc::SIGTERM);
    let t = Instant::now();
    let status = loop {
        if let Some(st) = m.child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "master did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "log:\n{}", m.log.lock().unwrap());
}
