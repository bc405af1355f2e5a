//! The Prometheus view of the counter board: the text exposition format 0.0.4
//! served at `metrics_path`, and the request-duration histograms the loops keep.
//!
//! The one idea: a histogram is a row of plain counters in the loop's own slot of
//! the shared board (one per bucket, one past the last bound, one sum), so
//! observing a request costs a bucket search and two relaxed adds in memory no
//! other loop writes. The buckets are kept apart; the renderer makes them
//! cumulative, as the format wants.

use super::site::Tally;
use super::status::{Board, Counter, Snapshot};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Upper bounds of the duration buckets, in microseconds: 100 µs to 10 s.
pub const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// Cells of one histogram row: the buckets, the one past the last bound, the sum (ns).
pub const HIST_CELLS: usize = BOUNDS_US.len() + 2;
const SUM: usize = HIST_CELLS - 1;
const OVERFLOW: usize = BOUNDS_US.len();

/// The protocols a histogram is kept for, by index (the `proto` label).
pub const PROTO_NAMES: [&str; 3] = ["http/1.1", "http/1.0", "h2"];
pub const PROTOS: usize = PROTO_NAMES.len();
pub const HTTP11: usize = 0;
pub const HTTP10: usize = 1;
pub const HTTP2: usize = 2;

/// The `proto` label of a connection, from its first request line (looked for
/// in the first bytes only): `HTTP/1.0` or else HTTP/1.1; HTTP/2 (over TLS or
/// `h2c`) by the preface its first bytes are.
pub fn proto_of(first: &[u8]) -> usize {
    if first.starts_with(crate::proto::http2::PREFACE) {
        return HTTP2;
    }
    let head = &first[..first.len().min(8192)];
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let line = &head[start..];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(end) => &line[..end],
        None => line,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.ends_with(b" HTTP/1.0") {
        HTTP10
    } else {
        HTTP11
    }
}

/// When a batch of input reached HTTP, and how many requests had been read then.
#[derive(Clone, Copy)]
pub struct Timer {
    at: Instant,
    requests: u64,
}

/// Whether this process times its requests: set once its configuration serves
/// the metrics (a worker process is forked for one configuration).
static TIMING: AtomicBool = AtomicBool::new(false);

pub fn enable_timing(on: bool) {
    TIMING.store(on, Ordering::Relaxed);
}

impl Tally {
    /// `None` when the metrics are off: then nothing is timed.
    #[inline]
    pub fn start(&self) -> Option<Timer> {
        TIMING.load(Ordering::Relaxed).then(|| Timer {
            at: Instant::now(),
            requests: self.http.requests.load(Ordering::Relaxed),
        })
    }

    /// Records every request the batch begun at `timer` answered, each with the
    /// batch's time (their responses are queued once it ends).
    #[inline]
    pub fn observe(&self, proto: usize, timer: Option<Timer>) {
        let Some(timer) = timer else { return };
        let n = self
            .http
            .requests
            .load(Ordering::Relaxed)
            .wrapping_sub(timer.requests);
        if n > 0 {
            let nanos = u64::try_from(timer.at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.board.slot(self.slot).observe(proto, nanos, n);
        }
    }
}

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One histogram row read at one moment (buckets not cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram(pub [u64; HIST_CELLS]);

impl Histogram {
    /// Adds `n` observations of `nanos` each to `row`.
    #[inline]
    pub fn observe(row: &[AtomicU64; HIST_CELLS], nanos: u64, n: u64) {
        let micros = nanos / 1000;
        let i = BOUNDS_US
            .iter()
            .position(|&b| micros < b || (micros == b && nanos % 1000 == 0))
            .unwrap_or(OVERFLOW);
        row[i].fetch_add(n, Ordering::Relaxed);
        row[SUM].fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    pub fn load(row: &[AtomicU64; HIST_CELLS]) -> Histogram {
        Histogram(std::array::from_fn(|i| row[i].load(Ordering::Relaxed)))
    }

    pub fn add(&mut self, o: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a = a.wrapping_add(b);
        }
    }

    pub fn count(&self) -> u64 {
        self.0[..SUM].iter().sum()
    }

    pub fn sum_nanos(&self) -> u64 {
        self.0[SUM]
    }
}

/// A writer of the text exposition format: HELP and TYPE once per family, then
/// its samples. Label values are escaped as the format requires.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(8192),
        }
    }

    /// Starts a family: `kind` is `counter`, `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; `labels` are `(name, value)` pairs.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Seconds with enough digits for a microsecond bound or a nanosecond sum.
fn seconds(nanos: u64) -> String {
    format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
}

/// The board's counters (names, kinds, help), in [`Counter`] order.
const FAMILIES: [(Counter, &str, &str, &str); 11] = [
    (
        Counter::Accepted,
        "connections_accepted_total",
        "counter",
        "Connections accepted.",
    ),
    (
        Counter::Active,
        "connections_active",
        "gauge",
        "Connections open now.",
    ),
    (
        Counter::Refused,
        "connections_refused_total",
        "counter",
        "Connections refused at the max_clients limit.",
    ),
    (
        Counter::Closed,
        "connections_closed_total",
        "counter",
        "Connections closed.",
    ),
    (
        Counter::Requests,
        "requests_total",
        "counter",
        "HTTP requests read.",
    ),
    (
        Counter::BytesIn,
        "bytes_in_total",
        "counter",
        "Bytes received from clients.",
    ),
    (
        Counter::BytesOut,
        "bytes_out_total",
        "counter",
        "Bytes sent to clients.",
    ),
    (
        Counter::Timeouts,
        "timeouts_total",
        "counter",
        "Header and keep-alive timeouts that fired.",
    ),
    (
        Counter::Errors,
        "errors_total",
        "counter",
        "Connections that ended on an I/O error.",
    ),
    (
        Counter::LogDropped,
        "log_dropped_total",
        "counter",
        "Log lines dropped because the writer fell behind.",
    ),
    (
        Counter::LogWriteErrors,
        "log_write_errors_total",
        "counter",
        "Log lines a write failed to put on disk.",
    ),
];

const CLASSES: [(Counter, &str); 4] = [
    (Counter::Responses2xx, "2xx"),
    (Counter::Responses3xx, "3xx"),
    (Counter::Responses4xx, "4xx"),
    (Counter::Responses5xx, "5xx"),
];

/// The capstone's page at `metrics_path`.
pub fn render(board: &Board) -> String {
    let t: Snapshot = board.totals();
    let (master_pid, generation, uptime, restarts) = board.header_values();
    let mut e = Exposition::new();
    for (c, name, kind, help) in FAMILIES {
        e.single(&format!("sysnet_capstone_{name}"), kind, help, t.get(c));
    }
    e.family(
        "sysnet_capstone_responses_total",
        "counter",
        "Responses sent, by status class.",
    );
    for (c, class) in CLASSES {
        e.sample(
            "sysnet_capstone_responses_total",
            &[("class", class)],
            t.get(c),
        );
    }
    let name = "sysnet_capstone_requests_by_protocol_total";
    e.family(
        name,
        "counter",
        "HTTP requests answered, by protocol and by transport (plain TCP or TLS).",
    );
    for (proto, transport, n) in board.by_proto().cells() {
        e.sample(name, &[("proto", proto), ("transport", transport)], n);
    }
    e.single(
        "sysnet_capstone_master_pid",
        "gauge",
        "Process id of the master.",
        master_pid,
    );
    e.single(
        "sysnet_capstone_config_generation",
        "gauge",
        "Configuration generation (bumped by each reload).",
        generation,
    );
    e.single(
        "sysnet_capstone_uptime_seconds",
        "gauge",
        "Seconds since the master started.",
        uptime,
    );
    e.single(
        "sysnet_capstone_worker_restarts_total",
        "counter",
        "Worker processes restarted after an unexpected exit.",
        restarts,
    );

    let live = board.live();
    let per_loop: [(&str, &str, &str, Counter); 3] = [
        (
            "sysnet_capstone_loop_requests_total",
            "counter",
            "HTTP requests read, by event loop of each live worker.",
            Counter::Requests,
        ),
        (
            "sysnet_capstone_loop_connections_active",
            "gauge",
            "Connections open now, by event loop of each live worker.",
            Counter::Active,
        ),
        (
            "sysnet_capstone_loop_connections_accepted_total",
            "counter",
            "Connections accepted, by event loop of each live worker.",
            Counter::Accepted,
        ),
    ];
    for (name, kind, help, c) in per_loop {
        e.family(name, kind, help);
        for (pid, index, _, s) in &live {
            let (pid, index) = (pid.to_string(), index.to_string());
            e.sample(name, &[("worker", &pid), ("loop", &index)], s.get(c));
        }
    }

    let name = "sysnet_capstone_request_duration_seconds";
    e.family(
        name,
        "histogram",
        "Time from a request's last bytes arriving to its response being queued, by protocol.",
    );
    let bucket = format!("{name}_bucket");
    for (p, h) in board.histograms().iter().enumerate() {
        let proto = PROTO_NAMES[p];
        let mut cumulative = 0u64;
        for (i, bound) in BOUNDS_US.iter().enumerate() {
            cumulative += h.0[i];
            let le = seconds(bound * 1000);
            let le = le.trim_end_matches('0').trim_end_matches('.');
            e.sample(&bucket, &[("proto", proto), ("le", le)], cumulative);
        }
        e.sample(&bucket, &[("proto", proto), ("le", "+Inf")], h.count());
        e.sample(
            &format!("{name}_sum"),
            &[("proto", proto)],
            seconds(h.sum_nanos()),
        );
        e.sample(&format!("{name}_count"), &[("proto", proto)], h.count());
    }
    let upstreams = board.upstreams().rows(board.generation());
    if !upstreams.is_empty() {
        crate::upstream::shared::metrics(&mut e, &upstreams);
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_sum_and_bounds() {
        let row: [AtomicU64; HIST_CELLS] = Default::default();
        Histogram::observe(&row, 50_000, 2); // 50 µs
        Histogram::observe(&row, 100_000, 1); // exactly 100 µs: le="0.0001"
        Histogram::observe(&row, 100_001, 1);
        Histogram::observe(&row, 20_000_000_000, 1); // 20 s
        let h = Histogram::load(&row);
        assert_eq!(h.0[0], 3);
        assert_eq!(h.0[1], 1);
        assert_eq!(h.0[OVERFLOW], 1);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_nanos(), 100_000 + 100_000 + 100_001 + 20_000_000_000);
        assert_eq!(seconds(100_000), "0.000100000");
    }

    #[test]
    fn metrics_path_key() {
        use crate::capstone::config::Config;
        use std::path::Path;
        let parse = |extra: &str| {
            let text = format!("listen = [\"127.0.0.1:1\"]\n{extra}");
            Config::parse(&text, Path::new("t.toml"), Path::new("."))
        };
        assert_eq!(parse("").unwrap().metrics_path.as_deref(), Some("/metrics"));
        let c = parse("metrics_path = \"/_/prom\"").unwrap();
        assert_eq!(c.metrics_path.as_deref(), Some("/_/prom"));
        assert_eq!(parse("metrics_path = \"\"").unwrap().metrics_path, None);
        for bad in ["metrics", "/m/", "/m?x"] {
            let e = parse(&format!("metrics_path = \"{bad}\"")).unwrap_err();
            assert!(e.to_string().contains("metrics_path"), "{e}");
        }
    }

    #[test]
    fn proto_from_request_line() {
        assert_eq!(proto_of(b"GET / HTTP/1.0\r\n\r\n"), HTTP10);
        assert_eq!(proto_of(b"\r\nGET / HTTP/1.0\n"), HTTP10);
        assert_eq!(proto_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP11);
        assert_eq!(proto_of(b"GET / HT"), HTTP11);
        assert_eq!(proto_of(b""), HTTP11);
        assert_eq!(proto_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"), HTTP2);
    }

    #[test]
    fn renders_families_once_with_labels() {
        let b = Board::new(2).unwrap();
        let s = b.claim(2, 1).unwrap();
        b.assign(&s, 42);
        b.slot(s[0]).add(Counter::Responses2xx, 3);
        b.slot(s[1]).add(Counter::Responses2xx, 2);
        b.slot(s[1]).observe(HTTP10, 3_000_000, 4);
        b.slot(s[0]).count_requests(HTTP2, true, 6);
        b.slot(s[1]).count_requests(HTTP2, true, 1);
        b.slot(s[1]).count_requests(HTTP11, false, 2);
        let m = render(&b);
        let by = |p: &str, t: &str, n: u64| {
            format!("sysnet_capstone_requests_by_protocol_total{{proto=\"{p}\",transport=\"{t}\"}} {n}\n")
        };
        for (p, t, n) in [
            ("h2", "tls", 7),
            ("h2", "plain", 0),
            ("http/1.1", "plain", 2),
            ("http/1.0", "tls", 0),
        ] {
            assert!(m.contains(&by(p, t, n)), "{m}");
        }
        assert!(
            m.contains("sysnet_capstone_responses_total{class=\"2xx\"} 5\n"),
            "{m}"
        );
        assert!(m.contains("{worker=\"42\",loop=\"1\"}"), "{m}");
        assert!(m.contains(
            "sysnet_capstone_request_duration_seconds_bucket{proto=\"http/1.0\",le=\"0.005\"} 4\n"
        ), "{m}");
        assert!(m.contains(
            "sysnet_capstone_request_duration_seconds_bucket{proto=\"http/1.0\",le=\"0.0025\"} 0\n"
        ), "{m}");
        assert!(
            m.contains(
                "sysnet_capstone_request_duration_seconds_sum{proto=\"http/1.0\"} 0.012000000\n"
            ),
            "{m}"
        );
        assert_eq!(
            m.matches("# TYPE sysnet_capstone_responses_total ").count(),
            1
        );
        // Histograms survive the worker, as counters do.
        b.retire(&s);
        let m = render(&b);
        assert!(m.contains("_count{proto=\"http/1.0\"} 4\n"), "{m}");
        assert!(m.contains(&by("h2", "tls", 7)), "{m}");
        let json = b.render_json();
        assert!(
            json.contains("\"requests_by_protocol\":{\"http/1.1\":{\"plain\":2,\"tls\":0},\"http/1.0\":{\"plain\":0,\"tls\":0},\"h2\":{\"plain\":0,\"tls\":7}}"),
            "{json}"
        );
    }
}
