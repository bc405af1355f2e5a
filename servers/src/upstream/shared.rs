//! Per-server counters of the upstream pools, shared by every event loop of every
//! worker process: the rows of the status page's and `/metrics`' upstream tables.
//!
//! The one idea, the board's own: a fixed table of atomics in the counter board's
//! shared mapping, one row per (pool name, server address, loop slot), found by a
//! hash of the three, so each row has one writer and counting takes no lock and
//! shares no cache line between loops; readers sum a server's rows. A loop claims
//! its rows when it starts (a compare-and-swap on the row's key, so loops and
//! processes claiming at once agree), then only adds to them: requests and
//! failures are running totals, `active` and `checks_down` are gauges the loop
//! moves up and back down, `down_until_ms` the end of its cooldown. A row is
//! labelled once, by its claimer, before its key is published. A server is shown
//! while the running configuration generation has claimed a row of it, with the
//! rows of every generation summed: a reload that drops a server drops it from
//! the pages, one that keeps it keeps its totals (a loop slot reused by a later
//! worker goes on counting in the same row). The table never grows: past
//! [`MAX_ROWS`] rows over the server's life, further ones are not counted (a
//! warning says so).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Rows of the table: (pool, server, loop slot) triples it can count.
pub const MAX_ROWS: usize = 4096;
/// Bytes of a pool name a row keeps (longer names are refused by the configuration).
pub const MAX_NAME: usize = NAME_WORDS * 8;
const NAME_WORDS: usize = 8;
/// A key being labelled by its claimer.
const RESERVED: u64 = u64::MAX;

/// One server of one pool, as every loop has seen it.
#[repr(C, align(128))]
pub struct ServerStat {
    key: AtomicU64,
    /// The newest configuration generation that claimed the row.
    generation: AtomicU64,
    /// Pool index << 16 | server index, in that generation's configuration.
    order: AtomicU64,
    name: [AtomicU64; NAME_WORDS],
    name_len: AtomicU64,
    ip: [AtomicU64; 2],
    /// Port, and 6 << 16 for IPv6.
    port: AtomicU64,
    /// Requests sent to the server (each try counts).
    requests: AtomicU64,
    /// Tries that failed: refused, reset, timed out, a malformed response.
    failures: AtomicU64,
    /// Requests in flight now.
    active: AtomicU64,
    /// Unix time (ms) until which a loop took the server out (passive health).
    down_until_ms: AtomicU64,
    /// Loops whose active health check finds the server down now.
    checks_down: AtomicU64,
    /// Responses received whole, and their summed time from sending the request
    /// to the response's last byte (µs).
    responses: AtomicU64,
    response_us: AtomicU64,
}

impl std::fmt::Debug for ServerStat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStat")
            .field("key", &self.key.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ServerStat {
    pub fn started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self) {
        // Never below zero, whatever the order of calls.
        let _ = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A response arrived whole, `took` after its request was sent.
    pub fn responded(&self, took: Duration) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.response_us.fetch_add(us, Ordering::Relaxed);
    }

    /// A loop took the server out for `cooldown` (passive health).
    pub fn cooled(&self, cooldown: Duration) {
        let until = unix_ms().saturating_add(u64::try_from(cooldown.as_millis()).unwrap_or(0));
        self.down_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// A loop's active check found the server down (`true`) or up again.
    pub fn check_down(&self, down: bool) {
        if down {
            self.checks_down.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .checks_down
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }

    fn label(&self, name: &str, addr: SocketAddr) {
        let bytes = &name.as_bytes()[..name.len().min(MAX_NAME)];
        for (w, word) in self.name.iter().enumerate() {
            let mut b = [0u8; 8];
            for (k, slot) in b.iter_mut().enumerate() {
                *slot = bytes.get(w * 8 + k).copied().unwrap_or(0);
            }
            word.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        self.name_len.store(bytes.len() as u64, Ordering::Relaxed);
        let (octets, family) = match addr.ip() {
            IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), 4u64),
            IpAddr::V6(a) => (a.octets(), 6u64),
        };
        let (hi, lo) = octets.split_at(8);
        self.ip[0].store(
            u64::from_le_bytes(hi.try_into().unwrap_or([0; 8])),
            Ordering::Relaxed,
        );
        self.ip[1].store(
            u64::from_le_bytes(lo.try_into().unwrap_or([0; 8])),
            Ordering::Relaxed,
        );
        self.port
            .store(u64::from(addr.port()) | (family << 16), Ordering::Relaxed);
    }

    fn view(&self, now_ms: u64) -> ServerView {
        let mut bytes = Vec::with_capacity(MAX_NAME);
        for w in &self.name {
            bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        bytes.truncate((self.name_len.load(Ordering::Relaxed) as usize).min(MAX_NAME));
        let mut octets = [0u8; 16];
        octets[..8].copy_from_slice(&self.ip[0].load(Ordering::Relaxed).to_le_bytes());
        octets[8..].copy_from_slice(&self.ip[1].load(Ordering::Relaxed).to_le_bytes());
        let port = self.port.load(Ordering::Relaxed);
        let v6 = Ipv6Addr::from(octets);
        let ip = match (port >> 16, v6.to_ipv4_mapped()) {
            (4, Some(v4)) => IpAddr::V4(v4),
            (4, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            _ => IpAddr::V6(v6),
        };
        let responses = self.responses.load(Ordering::Relaxed);
        let state = if self.checks_down.load(Ordering::Relaxed) > 0 {
            "down"
        } else if self.down_until_ms.load(Ordering::Relaxed) > now_ms {
            "cooldown"
        } else {
            "up"
        };
        ServerView {
            order: self.order.load(Ordering::Relaxed),
            upstream: String::from_utf8_lossy(&bytes).into_owned(),
            server: SocketAddr::new(ip, port as u16),
            state,
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            responses,
            response_seconds: self.response_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// One row read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerView {
    order: u64,
    pub upstream: String,
    pub server: SocketAddr,
    /// `up`, `cooldown` (passive health took it out) or `down` (its active check fails).
    pub state: &'static str,
    pub requests: u64,
    pub failures: u64,
    pub active: u64,
    pub responses: u64,
    /// Summed time of those responses.
    pub response_seconds: f64,
}

/// The table, placed in the board's shared mapping (all-zero bytes are an empty table).
#[repr(C, align(128))]
pub struct ServerTable {
    rows: [ServerStat; MAX_ROWS],
}

impl ServerTable {
    /// The row of server `addr` of pool `upstream` (the `server`th of the
    /// `pool`th pool in the configuration of `generation`), claimed if new;
    /// `None` when the table is full.
    pub fn claim(
        &self,
        upstream: &str,
        addr: SocketAddr,
        (pool, server): (usize, usize),
        (generation, slot): (u64, usize),
    ) -> Option<&ServerStat> {
        let key = key_of(upstream, addr, slot);
        let start = (key % MAX_ROWS as u64) as usize;
        for k in 0..MAX_ROWS {
            let row = &self.rows[(start + k) % MAX_ROWS];
            // A claimer labelling a row takes microseconds; one that died doing it
            // leaves the row reserved, and it is passed over after a while.
            for _ in 0..10_000 {
                match row
                    .key
                    .compare_exchange(0, RESERVED, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        row.label(upstream, addr);
                        row.order
                            .store(((pool as u64) << 16) | server as u64, Ordering::Relaxed);
                        row.generation.fetch_max(generation, Ordering::Relaxed);
                        row.key.store(key, Ordering::Release);
                        return Some(row);
                    }
                    Err(RESERVED) => std::thread::yield_now(),
                    Err(found) if found == key => {
                        if row.generation.fetch_max(generation, Ordering::Relaxed) < generation {
                            row.order
                                .store(((pool as u64) << 16) | server as u64, Ordering::Relaxed);
                        }
                        return Some(row);
                    }
                    Err(_) => break,
                }
            }
        }
        None
    }

    /// The servers the configuration `generation` has, in its order, each the sum
    /// of its rows.
    pub fn rows(&self, generation: u64) -> Vec<ServerView> {
        let now = unix_ms();
        let all: Vec<(bool, ServerView)> = self
            .rows
            .iter()
            .filter(|r| {
                let k = r.key.load(Ordering::Acquire);
                k != 0 && k != RESERVED
            })
            .map(|r| {
                let current = r.generation.load(Ordering::Relaxed) == generation;
                (current, r.view(now))
            })
            .collect();
        let mut out: Vec<ServerView> = Vec::new();
        let mut at: std::collections::HashMap<(&str, SocketAddr), usize> = Default::default();
        for (_, v) in all.iter().filter(|(current, _)| *current) {
            at.entry((v.upstream.as_str(), v.server))
                .or_insert_with(|| {
                    out.push(ServerView {
                        state: "up",
                        requests: 0,
                        failures: 0,
                        active: 0,
                        responses: 0,
                        response_seconds: 0.0,
                        ..v.clone()
                    });
                    out.len() - 1
                });
        }
        for (_, v) in &all {
            if let Some(&i) = at.get(&(v.upstream.as_str(), v.server)) {
                let o = &mut out[i];
                o.requests += v.requests;
                o.failures += v.failures;
                o.active += v.active;
                o.responses += v.responses;
                o.response_seconds += v.response_seconds;
                o.state = match (o.state, v.state) {
                    ("down", _) | (_, "down") => "down",
                    ("cooldown", _) | (_, "cooldown") => "cooldown",
                    _ => "up",
                };
            }
        }
        out.sort_by_key(|v| v.order);
        out
    }
}

/// The status page's JSON member: `"upstreams":[{...},...]` (with a leading comma).
pub fn json(out: &mut String, rows: &[ServerView]) {
    use std::fmt::Write as _;
    out.push_str(",\"upstreams\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"upstream\":\"{}\",\"server\":\"{}\",\"state\":\"{}\",\"requests\":{},\"failures\":{},\"active\":{},\"responses\":{},\"response_seconds\":{:.6}}}",
            r.upstream, r.server, r.state, r.requests, r.failures, r.active, r.responses, r.response_seconds
        );
    }
    out.push(']');
}

/// The status page's HTML table (nothing without pools).
pub fn html(out: &mut String, rows: &[ServerView]) {
    use std::fmt::Write as _;
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Upstream servers</h2><table id=\"upstreams\"><tr><th>upstream</th><th>server</th>\
         <th>state</th><th>requests</th><th>failures</th><th>active</th><th>mean response</th></tr>",
    );
    for r in rows {
        let mean = if r.responses == 0 {
            "-".to_string()
        } else {
            format!("{:.1} ms", r.response_seconds * 1000.0 / r.responses as f64)
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.upstream, r.server, r.state, r.state, r.requests, r.failures, r.active, mean
        );
    }
    out.push_str("</table>");
}

/// The `/metrics` families, one sample per row, labelled `upstream` and `server`.
pub fn metrics(e: &mut crate::capstone::metrics::Exposition, rows: &[ServerView]) {
    type Value = fn(&ServerView) -> String;
    let families: [(&str, &str, &str, Value); 6] = [
        (
            "sysnet_capstone_upstream_requests_total",
            "counter",
            "Requests sent to each upstream server (every try counts).",
            |r| r.requests.to_string(),
        ),
        (
            "sysnet_capstone_upstream_failures_total",
            "counter",
            "Tries that failed on each upstream server (refused, reset, timed out, malformed).",
            |r| r.failures.to_string(),
        ),
        (
            "sysnet_capstone_upstream_active",
            "gauge",
            "Requests in flight on each upstream server.",
            |r| r.active.to_string(),
        ),
        (
            "sysnet_capstone_upstream_up",
            "gauge",
            "1 while an upstream server takes requests, 0 in a cooldown or while its health check fails.",
            |r| u8::from(r.state == "up").to_string(),
        ),
        (
            "sysnet_capstone_upstream_responses_total",
            "counter",
            "Responses received whole from each upstream server.",
            |r| r.responses.to_string(),
        ),
        (
            "sysnet_capstone_upstream_response_seconds_total",
            "counter",
            "Summed time from sending a request to the last byte of its response, per upstream server.",
            |r| format!("{:.6}", r.response_seconds),
        ),
    ];
    for (name, kind, help, value) in families {
        e.family(name, kind, help);
        for r in rows {
            let server = r.server.to_string();
            e.sample(
                name,
                &[
                    ("upstream", r.upstream.as_str()),
                    ("server", server.as_str()),
                ],
                value(r),
            );
        }
    }
}

/// FNV-1a of the triple; never 0 (empty) nor [`RESERVED`].
fn key_of(upstream: &str, addr: SocketAddr, slot: usize) -> u64 {
    let text = format!("{upstream}\0{addr}\0{slot}");
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    match h {
        0 => 1,
        RESERVED => RESERVED - 1,
        h => h,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::capstone::status::Board;

    #[test]
    fn rows_are_claimed_once_counted_and_shown_per_generation() {
        let board = Board::new(1).unwrap();
        let t = board.upstreams();
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let b: SocketAddr = "[::1]:9002".parse().unwrap();
        let ra = t.claim("app", a, (0, 0), (1, 0)).unwrap();
        let rb = t.claim("app", b, (0, 1), (1, 0)).unwrap();
        // The same loop slot later (a restarted worker) gets the same row…
        assert!(std::ptr::eq(ra, t.claim("app", a, (0, 0), (1, 0)).unwrap()));
        // …another loop a row of its own, summed with it.
        let ra2 = t.claim("app", a, (0, 0), (1, 1)).unwrap();
        assert!(!std::ptr::eq(ra, ra2));
        ra2.started();
        ra2.finished();
        ra.started();
        ra.started();
        ra.finished();
        ra.failed();
        ra.responded(Duration::from_millis(3));
        rb.cooled(Duration::from_secs(10));
        rb.finished(); // never below zero
        let rows = t.rows(1);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].upstream.as_str(), rows[0].server, rows[0].state),
            ("app", a, "up")
        );
        assert_eq!(
            (rows[0].requests, rows[0].failures, rows[0].active),
            (3, 1, 1)
        );
        assert!((rows[0].response_seconds - 0.003).abs() < 1e-9);
        assert_eq!(
            (rows[1].server, rows[1].state, rows[1].active),
            (b, "cooldown", 0)
        );
        rb.check_down(true);
        assert_eq!(t.rows(1)[1].state, "down");
        rb.check_down(false);
        assert_eq!(t.rows(1)[1].state, "cooldown");
        // A reload keeping only `a`, its loops in other slots: its totals stay, `b`
        // leaves the pages.
        t.claim("app", a, (0, 0), (2, 5)).unwrap().started();
        let rows = t.rows(2);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].requests, rows[0].active), (4, 2));
        let mut j = String::new();
        json(&mut j, &rows);
        assert!(
            j.contains("\"upstream\":\"app\",\"server\":\"127.0.0.1:9001\",\"state\":\"up\",\"requests\":4,\"failures\":1,\"active\":2"),
            "{j}"
        );
    }

    #[test]
    fn a_full_table_counts_no_more() {
        let board = Board::new(1).unwrap();
        let t = board.upstreams();
        for i in 0..MAX_ROWS {
            let addr = SocketAddr::from(([127, 0, 0, 1], 1 + i as u16));
            assert!(t.claim("p", addr, (0, i), (1, 0)).is_some(), "row {i}");
        }
        let extra = SocketAddr::from(([127, 0, 0, 2], 1));
        assert!(t.claim("p", extra, (0, 0), (1, 0)).is_none());
        assert_eq!(t.rows(1).len(), MAX_ROWS);
    }
}
