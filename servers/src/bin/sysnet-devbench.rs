//! `sysnet-devbench`: how fast `/dev/sysnet` takes writes, gives reads and wakes a poller,
//! beside a plain file on tmpfs used the same way (the reference a user would otherwise
//! reach for). `scripts/run-vm.sh --bench` runs it inside the VM.
//!
//! Writes: 1 and 2 writer processes, each `write(2)` one `name +1` line (the file is opened
//! `O_APPEND`, which is how one would log increments to a file). Reads: the whole table from
//! offset 0, as `cat` does. Wake-ups: a writer thread stamps the clock and writes; a poller
//! thread blocked in `epoll_wait` (the device) or on `inotify` `IN_MODIFY` (the file) stamps
//! the clock when it wakes; the difference, over many rounds, gives the median and p99.

use clap::Parser;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Micro-benchmark of /dev/sysnet against a tmpfs file: writes/s, reads/s, wake-up latency.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Example (in the VM, as root, module loaded):\n  sysnet-devbench --file /tmp/bench-counters"
)]
struct Args {
    /// The counters device.
    #[arg(long, default_value = "/dev/sysnet")]
    device: PathBuf,
    /// The reference file (on tmpfs); created, and removed at the end.
    #[arg(long, default_value = "/tmp/sysnet-devbench")]
    file: PathBuf,
    /// Writes per writer process.
    #[arg(long, default_value_t = 20_000)]
    writes: u64,
    /// Full-table reads.
    #[arg(long, default_value_t = 5_000)]
    reads: u64,
    /// Wake-up rounds.
    #[arg(long, default_value_t = 10_000)]
    wakeups: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sysnet-devbench: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, String>;

fn run(args: &Args) -> Res<()> {
    if args.writes == 0 || args.reads == 0 || args.wakeups == 0 {
        return Err("--writes, --reads and --wakeups must be at least 1".into());
    }
    let (dev, file) = (&args.device, &args.file);
    // The same 32-counter table in both, so reads copy the same bytes.
    let table: String = (0..32)
        .map(|i| format!("bench.table_{i:02} {}\n", 1000 + i))
        .collect();
    let set: String = (0..32)
        .map(|i| format!("bench.table_{i:02} ={}\n", 1000 + i))
        .collect();
    write_whole(dev, &set)?;
    std::fs::write(file, &table).map_err(|e| format!("write {}: {e}", file.display()))?;

    let mut rows: Vec<(String, f64, f64, &str)> = Vec::new();
    for writers in [1u64, 2] {
        eprintln!(
            "sysnet-devbench: writes, {writers} writer(s) x {}",
            args.writes
        );
        let d = writes_per_sec(dev, writers, args.writes, false)?;
        let f = writes_per_sec(file, writers, args.writes, true)?;
        rows.push((format!("writes/s, {writers} writer(s)"), d, f, "higher"));
    }
    // The writes appended to the file: give it back the table, so both read the same.
    std::fs::write(file, &table).map_err(|e| format!("write {}: {e}", file.display()))?;
    eprintln!("sysnet-devbench: reads x {}", args.reads);
    rows.push((
        "full-table reads/s".into(),
        reads_per_sec(dev, args.reads)?,
        reads_per_sec(file, args.reads)?,
        "higher",
    ));
    eprintln!("sysnet-devbench: wake-ups x {}", args.wakeups);
    let dw = wakeups(dev, args.wakeups, Waiter::Epoll)?;
    std::fs::write(file, &table).map_err(|e| format!("write {}: {e}", file.display()))?;
    let fw = wakeups(file, args.wakeups, Waiter::Inotify)?;
    rows.push(("wake-up median (us)".into(), dw.0, fw.0, "lower"));
    rows.push(("wake-up p99 (us)".into(), dw.1, fw.1, "lower"));
    let _ = std::fs::remove_file(file);

    println!(
        "{:<26} {:>14} {:>14} {:>8}",
        "case", "/dev/sysnet", "tmpfs file", "ratio"
    );
    for (name, d, f, better) in rows {
        let ratio = if f > 0.0 { d / f } else { f64::NAN };
        println!("{name:<26} {d:>14.1} {f:>14.1} {ratio:>7.2}x  ({better} is better)");
    }
    Ok(())
}

fn write_whole(path: &Path, text: &str) -> Res<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// `writers` processes, each `count` one-line writes; the rate is all writes over the wall
/// time from the first fork to the last exit.
fn writes_per_sec(path: &Path, writers: u64, count: u64, append: bool) -> Res<f64> {
    let start = Instant::now();
    let mut children = Vec::new();
    for w in 0..writers {
        // SAFETY: this process is single-threaded here (the wake-up threads run later and
        // are joined), so the child may run arbitrary code after fork.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                let status = match write_loop(path, w, count, append) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("sysnet-devbench: writer {w}: {e}");
                        1
                    }
                };
                // Skip the parent's destructors and buffered output.
                // SAFETY: `_exit` is async-signal-safe and ends only this child.
                unsafe { libc::_exit(status) };
            }
            ForkResult::Parent { child } => children.push(child),
        }
    }
    for child in children {
        match waitpid(child, None).map_err(|e| format!("waitpid: {e}"))? {
            WaitStatus::Exited(_, 0) => {}
            other => return Err(format!("writer ended with {other:?}")),
        }
    }
    Ok((writers * count) as f64 / start.elapsed().as_secs_f64())
}

fn write_loop(path: &Path, writer: u64, count: u64, append: bool) -> Res<()> {
    let f = OpenOptions::new()
        .append(append)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let line = format!("bench.writer_{writer} +1\n");
    for _ in 0..count {
        let n = (&f)
            .write(line.as_bytes())
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        if n != line.len() {
            return Err(format!("short write to {}", path.display()));
        }
    }
    Ok(())
}

fn read_all(f: &File, buf: &mut [u8]) -> Res<usize> {
    let mut len = 0;
    loop {
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(e) => return Err(format!("read: {e}")),
        }
        if len == buf.len() {
            return Err("table larger than the read buffer".into());
        }
    }
}

fn reads_per_sec(path: &Path, count: u64) -> Res<f64> {
    let f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    for _ in 0..count {
        read_all(&f, &mut buf)?;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

#[derive(Clone, Copy)]
enum Waiter {
    Epoll,
    Inotify,
}

/// Median and p99 of write-to-wake-up latency in microseconds over `rounds`.
fn wakeups(path: &Path, rounds: usize, waiter: Waiter) -> Res<(f64, f64)> {
    let epoch = Instant::now();
    let stamp = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let reader = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let watched = path.to_path_buf();
    let poller_stamp = stamp.clone();
    let poller = std::thread::spawn(move || -> Res<Vec<f64>> {
        // The file grows by a line per round (the device stays one table).
        let mut buf = vec![0u8; 64 * 1024 + rounds * 64];
        let mut lat = Vec::with_capacity(rounds);
        match waiter {
            Waiter::Epoll => {
                let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| e.to_string())?;
                ep.add(&reader, EpollEvent::new(EpollFlags::EPOLLIN, 0))
                    .map_err(|e| format!("epoll_ctl: {e}"))?;
                read_all(&reader, &mut buf)?; // up to date: not readable until a write
                let mut ev = [EpollEvent::empty()];
                for _ in 0..rounds {
                    ready_tx.send(()).map_err(|_| "writer gone")?;
                    wait_epoll(&ep, &mut ev)?;
                    let woke = epoch.elapsed().as_nanos() as u64;
                    lat.push(woke.saturating_sub(poller_stamp.load(Ordering::Acquire)) as f64);
                    read_all(&reader, &mut buf)?;
                }
            }
            Waiter::Inotify => {
                let ino = Inotify::init(InitFlags::IN_CLOEXEC).map_err(|e| e.to_string())?;
                ino.add_watch(&watched, AddWatchFlags::IN_MODIFY)
                    .map_err(|e| format!("inotify_add_watch: {e}"))?;
                for _ in 0..rounds {
                    ready_tx.send(()).map_err(|_| "writer gone")?;
                    ino.read_events()
                        .map_err(|e| format!("inotify read: {e}"))?;
                    let woke = epoch.elapsed().as_nanos() as u64;
                    lat.push(woke.saturating_sub(poller_stamp.load(Ordering::Acquire)) as f64);
                    read_all(&reader, &mut buf)?;
                }
            }
        }
        Ok(lat)
    });
    let writer = OpenOptions::new()
        .append(matches!(waiter, Waiter::Inotify))
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let line = b"bench.wake +1\n";
    for _ in 0..rounds {
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            break; // the poller failed or stalled: its result says why
        }
        // Let the poller reach its wait before the write.
        std::thread::sleep(Duration::from_micros(200));
        stamp.store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
        (&writer)
            .write_all(line)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    drop(ready_rx);
    let mut lat = poller.join().map_err(|_| "poller panicked")??;
    if lat.len() != rounds {
        return Err(format!("{} of {rounds} wake-ups", lat.len()));
    }
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize] / 1000.0;
    Ok((at(0.5), at(0.99)))
}

fn wait_epoll(ep: &Epoll, ev: &mut [EpollEvent]) -> Res<()> {
    loop {
        match ep.wait(ev, EpollTimeout::from(10_000u16)) {
            Ok(0) => return Err("no wake-up within 10 s".into()),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("epoll_wait: {e}")),
        }
    }
}
