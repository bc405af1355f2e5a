//! `sysnet-top`: a live table of the `/dev/sysnet` counters with per-second rates.
//!
//! The device reports an open file readable (`EPOLLIN`) only when the table changed since
//! that file last read it from offset 0, so the loop sleeps in `epoll_wait` until something
//! changes, then waits out the rest of the interval (so bursts of writes make one update,
//! not hundreds), reads the table and prints it with each counter's rate since the previous
//! update. Nothing changes, nothing is printed; `--once` prints the table and exits.

use clap::Parser;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Live view of the /dev/sysnet counters: values and per-second rates, updated when they
/// change (at most once per interval).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  sysnet-top                  a live table, redrawn on change\n  \
                  sysnet-top --once --json    one JSON object and exit\n  \
                  sysnet-top --json --count 5 five updates, one JSON object per line"
)]
struct Args {
    /// The counters device (default: $SYSNET_DEVICE, else /dev/sysnet).
    #[arg(long)]
    device: Option<PathBuf>,
    /// Print the table once and exit.
    #[arg(long)]
    once: bool,
    /// One JSON object per update: {"time":…,"interval":…,"counters":{"name":{"value":…,"rate":…}}}.
    #[arg(long)]
    json: bool,
    /// Least time between two updates, in seconds (0: print every change).
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many updates (the first table counts).
    #[arg(long)]
    count: Option<u64>,
    /// Only counters whose name starts with this prefix (e.g. `capstone.`).
    #[arg(long, default_value = "")]
    prefix: String,
}

/// The device holds at most 128 lines of at most 70 bytes; anything beyond is not a table.
const MAX_TABLE: usize = 64 * 1024;

type Table = BTreeMap<String, u64>;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sysnet-top: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if !(args.interval.is_finite() && (0.0..=3600.0).contains(&args.interval)) {
        return Err(format!(
            "--interval {}: want 0 to 3600 seconds",
            args.interval
        ));
    }
    let interval = Duration::from_secs_f64(args.interval);
    let path = args
        .device
        .clone()
        .or_else(|| std::env::var_os("SYSNET_DEVICE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/dev/sysnet"));
    let device = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let read =
        |device: &File| read_table(device).map_err(|e| format!("read {}: {e}", path.display()));
    let mut out = io::stdout().lock();
    let redraw = !args.json && io::stdout().is_terminal();
    let mut print = |table: &Table, rates: Option<(&Table, Duration)>| -> Result<(), String> {
        let text = if args.json {
            json(table, rates, &args.prefix)
        } else {
            text(table, rates, &args.prefix, redraw)
        };
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("write to stdout: {e}"))
    };

    let mut previous = read(&device)?;
    let mut taken = Instant::now();
    print(&previous, None)?;
    if args.once || args.count == Some(1) {
        return Ok(());
    }
    let epoll =
        Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll_create1: {e}"))?;
    epoll
        .add(&device, EpollEvent::new(EpollFlags::EPOLLIN, 0))
        .map_err(|e| match e {
            nix::errno::Errno::EPERM => format!(
                "{}: cannot be watched (epoll_ctl: EPERM; not a device that supports poll); \
                 --once still reads it",
                path.display()
            ),
            e => format!("epoll_ctl {}: {e}", path.display()),
        })?;
    let mut updates = 1;
    let mut events = [EpollEvent::empty()];
    loop {
        match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        }
        let since = taken.elapsed();
        if since < interval {
            std::thread::sleep(interval - since);
        }
        let table = read(&device)?;
        let now = Instant::now();
        print(&table, Some((&previous, now - taken)))?;
        previous = table;
        taken = now;
        updates += 1;
        if args.count.is_some_and(|n| updates >= n) {
            return Ok(());
        }
    }
}

/// Reads the whole table from offset 0 (which also marks this file as up to date for
/// `poll`) and parses its `name value` lines; a line that is not one is an error.
fn read_table(device: &File) -> io::Result<Table> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() >= MAX_TABLE {
                return Err(io::Error::other(format!(
                    "table larger than {MAX_TABLE} bytes"
                )));
            }
            buf.resize(buf.len() * 2, 0);
        }
        match device.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    parse_table(&buf[..len])
}

fn parse_table(text: &[u8]) -> io::Result<Table> {
    let text = std::str::from_utf8(text).map_err(|_| io::Error::other("table is not UTF-8"))?;
    let mut table = Table::new();
    for line in text.lines() {
        let parsed = line
            .split_once(' ')
            .and_then(|(name, value)| Some((name, value.parse::<u64>().ok()?)));
        match parsed {
            Some((name, value)) => {
                table.insert(name.to_owned(), value);
            }
            None => {
                return Err(io::Error::other(format!(
                    "not a `name value` line: {line:?}"
                )))
            }
        }
    }
    Ok(table)
}

/// Change per second since `previous`; a counter that is new, or went down (reset, or a
/// gauge), shows its signed change too.
fn rate(name: &str, value: u64, rates: Option<(&Table, Duration)>) -> Option<f64> {
    let (previous, elapsed) = rates?;
    let before = previous.get(name).copied().unwrap_or(0);
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| (value as f64 - before as f64) / secs)
}

fn text(table: &Table, rates: Option<(&Table, Duration)>, prefix: &str, redraw: bool) -> String {
    let mut s = String::new();
    if redraw {
        s.push_str("\x1b[H\x1b[2J");
    }
    let width = table.keys().map(String::len).max().unwrap_or(7).max(7);
    s.push_str(&format!(
        "{:<width$} {:>20} {:>12}\n",
        "counter", "value", "/s"
    ));
    for (name, &value) in table.iter().filter(|(n, _)| n.starts_with(prefix)) {
        let r = match rate(name, value, rates) {
            Some(r) => format!("{r:.1}"),
            None => "-".into(),
        };
        s.push_str(&format!("{name:<width$} {value:>20} {r:>12}\n"));
    }
    if !redraw {
        s.push('\n');
    }
    s
}

fn json(table: &Table, rates: Option<(&Table, Duration)>, prefix: &str) -> String {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let interval = rates.map(|(_, d)| d.as_secs_f64());
    let mut s = format!("{{\"time\":{time:.3},\"interval\":");
    match interval {
        Some(i) => s.push_str(&format!("{i:.3}")),
        None => s.push_str("null"),
    }
    s.push_str(",\"counters\":{");
    let mut first = true;
    for (name, &value) in table.iter().filter(|(n, _)| n.starts_with(prefix)) {
        if !first {
            s.push(',');
        }
        first = false;
        // Counter names are [a-z0-9_.]: nothing to escape.
        s.push_str(&format!("\"{name}\":{{\"value\":{value},\"rate\":"));
        match rate(name, value, rates) {
            Some(r) => s.push_str(&format!("{r:.3}")),
            None => s.push_str("null"),
        }
        s.push('}');
    }
    s.push_str("}}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_and_refuse_what_is_not_one() {
        let t = parse_table(b"a.b 1\nz 18446744073709551615\n").unwrap();
        assert_eq!(t.get("a.b"), Some(&1));
        assert_eq!(t.get("z"), Some(&u64::MAX));
        assert!(parse_table(b"a.b x\n").is_err());
        assert!(parse_table(b"nospace\n").is_err());
        assert!(parse_table(b"").unwrap().is_empty());
    }

    #[test]
    fn rates_and_json() {
        let before = parse_table(b"a 10\nb 5\n").unwrap();
        let now = parse_table(b"a 30\nb 1\nc 4\n").unwrap();
        let j = json(&now, Some((&before, Duration::from_secs(2))), "");
        assert!(j.contains("\"a\":{\"value\":30,\"rate\":10.000}"), "{j}");
        assert!(j.contains("\"b\":{\"value\":1,\"rate\":-2.000}"), "{j}");
        assert!(j.contains("\"c\":{\"value\":4,\"rate\":2.000}"), "{j}");
        assert!(json(&now, None, "").contains("\"rate\":null"));
        assert!(!json(&now, None, "a").contains("\"b\""));
        let t = text(&now, Some((&before, Duration::from_secs(2))), "", false);
        assert!(t.lines().nth(1).unwrap().ends_with("10.0"), "{t}");
    }
}
