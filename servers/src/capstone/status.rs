//! The counter board: one shared-memory page of counters for every event loop of
//! every worker process, summed on demand for the status page.
//!
//! The one idea (nginx's shared-memory `stub_status`): the master maps an anonymous
//! `MAP_SHARED` region before it forks, so every worker sees the same memory. Each
//! loop owns one cache-line-aligned slot and is its only writer, so counting needs
//! no lock and no shared cache line; readers just sum. When a worker process ends,
//! the master folds its slots into a "retired" row so totals never go backwards.

use super::metrics::{Histogram, BOUNDS_US, HIST_CELLS, PROTOS, PROTO_NAMES};
use crate::upstream::shared::ServerTable;
use std::fmt::Write as _;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters, in slot order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    Accepted,
    Active,
    Refused,
    Closed,
    Requests,
    Responses2xx,
    Responses3xx,
    Responses4xx,
    Responses5xx,
    BytesIn,
    BytesOut,
    Timeouts,
    Errors,
    LogDropped,
    /// Log lines (access and error log) a write failed to put on disk.
    LogWriteErrors,
}

pub const COUNTERS: usize = 15;

/// Names as they appear in JSON and as `/dev/sysnet` carries them.
pub const NAMES: [&str; COUNTERS] = [
    "connections_accepted",
    "connections_active",
    "connections_refused",
    "connections_closed",
    "requests_total",
    "responses_2xx",
    "responses_3xx",
    "responses_4xx",
    "responses_5xx",
    "bytes_in",
    "bytes_out",
    "timeouts",
    "errors",
    "log_dropped",
    "log_write_errors",
];

/// Gauges are current values, not running totals: they are not carried into the
/// retired row when a worker ends.
fn is_gauge(i: usize) -> bool {
    i == Counter::Active as usize
}

/// One loop's counters. 128-byte alignment keeps two loops off one cache line pair.
#[repr(C, align(128))]
pub struct Slot {
    /// The owning worker's pid; 0 = free.
    pid: AtomicU64,
    /// The loop's index inside its process.
    index: AtomicU64,
    /// The configuration generation the worker runs (bumped by each reload).
    generation: AtomicU64,
    values: [AtomicU64; COUNTERS],
    /// Request durations per protocol (see [`super::metrics`]), also a running total.
    hist: [[AtomicU64; HIST_CELLS]; PROTOS],
    /// Requests answered per protocol, over plain TCP `[p][0]` and over TLS `[p][1]`
    /// (counted whether or not requests are timed).
    by_proto: [[AtomicU64; 2]; PROTOS],
}

/// Requests answered per protocol (index as in [`PROTO_NAMES`]): `[plain, tls]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByProto(pub [[u64; 2]; PROTOS]);

impl ByProto {
    pub fn add(&mut self, o: &ByProto) {
        for (a, b) in self.0.iter_mut().flatten().zip(o.0.iter().flatten()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// `(protocol, "plain" or "tls", requests)` for each cell.
    pub fn cells(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.0.iter().enumerate().flat_map(|(p, row)| {
            [("plain", row[0]), ("tls", row[1])]
                .into_iter()
                .map(move |(t, n)| (PROTO_NAMES[p], t, n))
        })
    }
}

impl Slot {
    /// Records `n` requests of protocol `proto` that each took `micros`.
    #[inline]
    pub fn observe(&self, proto: usize, micros: u64, n: u64) {
        if let Some(h) = self.hist.get(proto) {
            Histogram::observe(h, micros, n);
        }
    }

    pub fn histograms(&self) -> [Histogram; PROTOS] {
        std::array::from_fn(|p| Histogram::load(&self.hist[p]))
    }

    /// Counts `n` requests answered over protocol `proto`, on TLS or not.
    #[inline]
    pub fn count_requests(&self, proto: usize, tls: bool, n: u64) {
        if let Some(row) = self.by_proto.get(proto) {
            row[usize::from(tls)].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn by_proto(&self) -> ByProto {
        ByProto(std::array::from_fn(|p| {
            std::array::from_fn(|t| self.by_proto[p][t].load(Ordering::Relaxed))
        }))
    }

    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        self.values[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn set(&self, c: Counter, n: u64) {
        self.values[c as usize].store(n, Ordering::Relaxed);
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot(std::array::from_fn(|i| {
            self.values[i].load(Ordering::Relaxed)
        }))
    }

    pub fn pid(&self) -> u64 {
        self.pid.load(Ordering::Relaxed)
    }
}

/// A board-wide header: what the status page says about the master.
#[repr(C, align(128))]
struct Header {
    master_pid: AtomicU64,
    generation: AtomicU64,
    started: AtomicU64,
    restarts: AtomicU64,
}

/// Seconds of history the status page draws.
pub const HISTORY: usize = 300;
/// The history a ring cell holds: when, and what that second saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Unix time of the sample, in milliseconds.
    pub at_ms: u64,
    /// Requests per second over the interval that ended at `at_ms`.
    pub rps: f64,
    /// Connections open at `at_ms`.
    pub active: u64,
    /// Median and 99th percentile of the interval's request durations (µs),
    /// estimated from the histograms; `None` when no request was timed.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// Cells of one ring entry: time (ms), requests, interval (ms), active, p50 and p99 (ns).
const SAMPLE_CELLS: usize = 6;
/// A latency cell with no value.
const NONE: u64 = u64::MAX;

/// The last [`HISTORY`] per-second samples, written by one sampler (the master, or
/// the single process) and read by every worker's status page.
#[repr(C, align(128))]
struct Ring {
    /// Samples written so far; entry `n` lives in cell `n % HISTORY`.
    written: AtomicU64,
    cells: [[AtomicU64; SAMPLE_CELLS]; HISTORY],
}

/// Counter values read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot(pub [u64; COUNTERS]);

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    /// `(name, value)` pairs, the shape `/dev/sysnet` takes.
    pub fn pairs(&self) -> [(&'static str, u64); COUNTERS] {
        std::array::from_fn(|i| (NAMES[i], self.0[i]))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("mmap(MAP_SHARED|MAP_ANONYMOUS, {0} bytes): {1}")]
    Map(usize, nix::Error),
}

/// The shared region: a header, the retired row (slot 0), then one slot per loop.
pub struct Board {
    base: NonNull<u8>,
    slots: usize,
    len: usize,
}

// SAFETY: the region holds only atomics, which are safe to share between threads;
// the pointer stays valid until `Drop`, which needs `&mut self`.
unsafe impl Send for Board {}
// SAFETY: as above: every access through `&Board` goes through an atomic.
unsafe impl Sync for Board {}

impl Board {
    /// Maps a board with room for `slots` loops (plus the retired row). Call it
    /// before forking: children inherit the mapping, shared.
    pub fn new(slots: usize) -> Result<Board, BoardError> {
        let len = Self::SLOTS_AT
            + (slots + 1) * std::mem::size_of::<Slot>()
            + std::mem::size_of::<ServerTable>();
        let size =
            std::num::NonZeroUsize::new(len).ok_or(BoardError::Map(len, nix::Error::EINVAL))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks aliases no
        // Rust object; it is zero-filled, and all-zero bytes are valid atomics.
        let ptr = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                size,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
            )
        }
        .map_err(|e| BoardError::Map(len, e))?;
        let board = Board {
            base: ptr.cast(),
            slots,
            len,
        };
        board
            .header()
            .master_pid
            .store(std::process::id() as u64, Ordering::Relaxed);
        board.header().started.store(unix_now(), Ordering::Relaxed);
        Ok(board)
    }

    /// Where the slots begin: after the header and the history ring.
    const SLOTS_AT: usize = std::mem::size_of::<Header>() + std::mem::size_of::<Ring>();

    fn ring(&self) -> &Ring {
        // SAFETY: the ring follows the header inside the mapping made in `new`; the
        // offset is a multiple of Ring's alignment (Header is 128-aligned), the bytes
        // were zeroed (valid atomics), and the mapping lives as long as `self`.
        unsafe {
            &*(self
                .base
                .as_ptr()
                .add(std::mem::size_of::<Header>())
                .cast::<Ring>())
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a zero-initialised Header, page-aligned,
        // and lives as long as `self`.
        unsafe { &*(self.base.as_ptr() as *const Header) }
    }

    fn slot_at(&self, i: usize) -> &Slot {
        assert!(i <= self.slots, "slot {i} outside the board");
        // SAFETY: `i <= slots` keeps the slot inside the `len` bytes mapped in `new`;
        // the offset is a multiple of Slot's alignment from a page-aligned base.
        unsafe {
            &*(self
                .base
                .as_ptr()
                .add(Self::SLOTS_AT + i * std::mem::size_of::<Slot>())
                as *const Slot)
        }
    }

    /// The upstream servers' counters, after the last slot.
    pub fn upstreams(&self) -> &ServerTable {
        // SAFETY: the table follows slot `slots` inside the `len` bytes mapped in
        // `new`, at a multiple of its alignment (128, as Slot's size is) from a
        // page-aligned base; zeroed bytes are valid atomics; the mapping lives as
        // long as `self`.
        unsafe {
            &*(self
                .base
                .as_ptr()
                .add(Self::SLOTS_AT + (self.slots + 1) * std::mem::size_of::<Slot>())
                .cast::<ServerTable>())
        }
    }

    /// Loop slot `i` (0-based; the retired row is not reachable this way).
    pub fn slot(&self, i: usize) -> &Slot {
        self.slot_at(i + 1)
    }

    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Reserves `n` free slots for a worker about to be forked (master only: the
    /// master is the one allocator, so no race). `None` if the board is full.
    pub fn claim(&self, n: usize, generation: u64) -> Option<Vec<usize>> {
        let free: Vec<usize> = (0..self.slots)
            .filter(|&i| self.slot(i).pid() == 0)
            .take(n)
            .collect();
        if free.len() < n {
            return None;
        }
        for (index, &i) in free.iter().enumerate() {
            let s = self.slot(i);
            let cells = s.hist.iter().flatten().chain(s.by_proto.iter().flatten());
            for v in s.values.iter().chain(cells) {
                v.store(0, Ordering::Relaxed);
            }
            s.index.store(index as u64, Ordering::Relaxed);
            s.generation.store(generation, Ordering::Relaxed);
            // Reserved until the fork tells us the real pid.
            s.pid.store(u64::MAX, Ordering::Relaxed);
        }
        Some(free)
    }

    /// Records the pid of the worker that owns `slots`.
    pub fn assign(&self, slots: &[usize], pid: u32) {
        for &i in slots {
            self.slot(i).pid.store(pid as u64, Ordering::Relaxed);
        }
    }

    /// Folds a finished worker's totals into the retired row and frees its slots.
    pub fn retire(&self, slots: &[usize]) {
        let retired = self.slot_at(0);
        for &i in slots {
            let s = self.slot(i);
            for (c, v) in s.values.iter().enumerate() {
                let n = v.swap(0, Ordering::Relaxed);
                if !is_gauge(c) {
                    retired.values[c].fetch_add(n, Ordering::Relaxed);
                }
            }
            for (r, v) in retired.hist.iter().flatten().zip(s.hist.iter().flatten()) {
                r.fetch_add(v.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            }
            let by_proto = s.by_proto.iter().flatten();
            for (r, v) in retired.by_proto.iter().flatten().zip(by_proto) {
                r.fetch_add(v.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            }
            s.pid.store(0, Ordering::Relaxed);
        }
    }

    pub fn set_generation(&self, g: u64) {
        self.header().generation.store(g, Ordering::Relaxed);
    }

    pub fn generation(&self) -> u64 {
        self.header().generation.load(Ordering::Relaxed)
    }

    /// Adds to the retired row: counts of the master itself, which has no slot.
    pub fn add_retired(&self, c: Counter, n: u64) {
        self.slot_at(0).add(c, n);
    }

    pub fn count_restart(&self) {
        self.header().restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of every slot, retired row included.
    pub fn totals(&self) -> Snapshot {
        let mut t = self.slot_at(0).snapshot();
        for i in 0..self.slots {
            let s = self.slot(i);
            if s.pid() == 0 {
                continue;
            }
            let snap = s.snapshot();
            for (a, b) in t.0.iter_mut().zip(snap.0) {
                *a += b;
            }
        }
        t
    }

    /// The page served at the status path (`json` picks the format).
    pub fn render(&self, json: bool, json_path: &str) -> String {
        if json {
            self.render_json()
        } else {
            self.render_html(json_path)
        }
    }

    /// Request-duration histograms per protocol, summed like [`Board::totals`].
    pub fn histograms(&self) -> [Histogram; PROTOS] {
        let mut t = self.slot_at(0).histograms();
        for i in 0..self.slots {
            let s = self.slot(i);
            if s.pid() != 0 {
                for (a, b) in t.iter_mut().zip(s.histograms()) {
                    a.add(&b);
                }
            }
        }
        t
    }

    /// Requests per protocol and transport, summed like [`Board::totals`].
    pub fn by_proto(&self) -> ByProto {
        let mut t = self.slot_at(0).by_proto();
        for i in 0..self.slots {
            let s = self.slot(i);
            if s.pid() != 0 {
                t.add(&s.by_proto());
            }
        }
        t
    }

    /// Master pid, configuration generation, uptime (s) and worker restarts.
    pub fn header_values(&self) -> (u64, u64, u64, u64) {
        let h = self.header();
        (
            h.master_pid.load(Ordering::Relaxed),
            h.generation.load(Ordering::Relaxed),
            unix_now().saturating_sub(h.started.load(Ordering::Relaxed)),
            h.restarts.load(Ordering::Relaxed),
        )
    }

    /// Each live loop: pid, loop index, generation and its counters.
    pub fn live(&self) -> Vec<(u64, u64, u64, Snapshot)> {
        (0..self.slots)
            .map(|i| self.slot(i))
            .filter(|s| s.pid() != 0 && s.pid() != u64::MAX)
            .map(|s| {
                (
                    s.pid(),
                    s.index.load(Ordering::Relaxed),
                    s.generation.load(Ordering::Relaxed),
                    s.snapshot(),
                )
            })
            .collect()
    }

    /// Appends one per-second sample to the history (one writer: the sampler).
    fn push_sample(&self, cells: [u64; SAMPLE_CELLS]) {
        let ring = self.ring();
        let n = ring.written.load(Ordering::Relaxed);
        for (c, v) in ring.cells[(n % HISTORY as u64) as usize].iter().zip(cells) {
            c.store(v, Ordering::Relaxed);
        }
        // Published after the cells: a reader that sees the count sees them.
        ring.written.store(n + 1, Ordering::Release);
    }

    /// The recorded history, oldest first. The oldest cell is left out once the
    /// ring is full: it is the one the sampler overwrites next.
    pub fn history(&self) -> Vec<Sample> {
        let ring = self.ring();
        let n = ring.written.load(Ordering::Acquire);
        let keep = n.min(HISTORY as u64 - 1);
        (n - keep..n)
            .map(|i| {
                let c = &ring.cells[(i % HISTORY as u64) as usize];
                let v: [u64; SAMPLE_CELLS] = std::array::from_fn(|k| c[k].load(Ordering::Relaxed));
                let micros = |ns: u64| (ns != NONE).then(|| ns as f64 / 1000.0);
                Sample {
                    at_ms: v[0],
                    rps: if v[2] == 0 {
                        0.0
                    } else {
                        v[1] as f64 * 1000.0 / v[2] as f64
                    },
                    active: v[3],
                    p50_us: micros(v[4]),
                    p99_us: micros(v[5]),
                }
            })
            .collect()
    }

    pub fn render_json(&self) -> String {
        let h = self.header();
        let t = self.totals();
        let mut out = String::with_capacity(16 * 1024);
        let _ = write!(
            out,
            "{{\"master_pid\":{},\"generation\":{},\"uptime_secs\":{},\"worker_restarts\":{}",
            h.master_pid.load(Ordering::Relaxed),
            h.generation.load(Ordering::Relaxed),
            unix_now().saturating_sub(h.started.load(Ordering::Relaxed)),
            h.restarts.load(Ordering::Relaxed),
        );
        for (name, v) in t.pairs() {
            let _ = write!(out, ",\"{name}\":{v}");
        }
        // {"http/1.1":{"plain":n,"tls":n},...}
        out.push_str(",\"requests_by_protocol\":{");
        for (p, row) in self.by_proto().0.iter().enumerate() {
            let comma = if p > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{comma}\"{}\":{{\"plain\":{},\"tls\":{}}}",
                PROTO_NAMES[p], row[0], row[1]
            );
        }
        out.push_str("},\"loops\":[");
        for (n, (pid, index, generation, s)) in self.live().into_iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"pid\":{pid},\"loop\":{index},\"generation\":{generation},\"active\":{},\"requests\":{}}}",
                s.get(Counter::Active),
                s.get(Counter::Requests)
            );
        }
        out.push(']');
        crate::upstream::shared::json(&mut out, &self.upstreams().rows(self.generation()));
        out.push_str(",\"history\":");
        history_json(&mut out, &self.history());
        out.push_str("}\n");
        out
    }

    /// The HTML page; `json_path` is where its script fetches fresh figures.
    pub fn render_html(&self, json_path: &str) -> String {
        let h = self.header();
        let t = self.totals();
        let history = self.history();
        let mut out = String::with_capacity(32 * 1024);
        let _ = write!(
            out,
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\
             <title>capstone status</title><link rel=\"stylesheet\" href=\"/style.css\">\
             <style>{STYLE}</style></head><body data-src=\"{}\">\
             <h1>capstone status</h1>",
            escape(json_path)
        );
        let _ = write!(
            out,
            "<p>master pid <span id=\"n-master_pid\">{}</span> &middot; config generation \
             <span id=\"n-generation\">{}</span> &middot; up <span id=\"n-uptime_secs\">{}</span> s \
             &middot; <span id=\"n-worker_restarts\">{}</span> worker restarts \
             &middot; <a href=\"?format=json\">JSON</a> &middot; <span id=\"live\">{}</span></p>",
            h.master_pid.load(Ordering::Relaxed),
            h.generation.load(Ordering::Relaxed),
            unix_now().saturating_sub(h.started.load(Ordering::Relaxed)),
            h.restarts.load(Ordering::Relaxed),
            history.len(),
        );
        let _ = write!(
            out,
            "<h2>The last {} minutes</h2><div class=\"charts\">",
            HISTORY / 60
        );
        let rps: Vec<Option<f64>> = history.iter().map(|s| Some(s.rps)).collect();
        let active: Vec<Option<f64>> = history.iter().map(|s| Some(s.active as f64)).collect();
        let p50: Vec<Option<f64>> = history.iter().map(|s| s.p50_us).collect();
        let p99: Vec<Option<f64>> = history.iter().map(|s| s.p99_us).collect();
        chart(&mut out, "rps", "requests/s", "", &[("rps", &rps)]);
        chart(
            &mut out,
            "active",
            "active connections",
            "",
            &[("active", &active)],
        );
        chart(
            &mut out,
            "lat",
            "latency p50 / p99",
            " µs",
            &[("p50", &p50), ("p99", &p99)],
        );
        out.push_str("</div><h2>Counters</h2><table>");
        for (name, v) in t.pairs() {
            let _ = write!(
                out,
                "<tr id=\"n-{name}\"><th align=\"left\">{name}</th><td align=\"right\">{v}</td></tr>"
            );
        }
        out.push_str("</table><h2>Requests by protocol</h2><table><tr><th></th><th>plain</th><th>TLS</th></tr>");
        for (p, row) in self.by_proto().0.iter().enumerate() {
            let _ = write!(
                out,
                "<tr><th align=\"left\">{}</th><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>",
                PROTO_NAMES[p], row[0], row[1]
            );
        }
        out.push_str("</table><h2>Event loops</h2><table><tr><th>pid</th><th>loop</th><th>generation</th><th>active</th><th>requests</th></tr>");
        for (pid, index, generation, s) in self.live() {
            let _ = write!(
                out,
                "<tr><td>{pid}</td><td>{index}</td><td>{generation}</td><td>{}</td><td>{}</td></tr>",
                s.get(Counter::Active),
                s.get(Counter::Requests)
            );
        }
        out.push_str("</table>");
        crate::upstream::shared::html(&mut out, &self.upstreams().rows(self.generation()));
        let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
        out
    }
}

/// Chart geometry, shared with the script: width, height, and the cells of a full ring.
const CHART_W: f64 = 600.0;
const CHART_H: f64 = 100.0;
/// Room above the largest value, so its line is not cut by the frame.
const TOP_MARGIN: f64 = 4.0;

const STYLE: &str = ".charts{display:flex;flex-wrap:wrap;gap:1em}\
figure{margin:0}svg.chart{background:#fafafa;border:1px solid #ccc}\
polyline{fill:none;stroke-width:1.5}#l-rps,#l-active,#l-p50{stroke:#1565c0}#l-p99{stroke:#c62828}#v-p99{color:#c62828}";

/// Refreshes the figures and redraws the lines each second from the JSON page;
/// the server-drawn page above is complete without it.
const SCRIPT: &str = r#"(function(){
var W=600,H=100,T=4,N=300,src=document.body.getAttribute('data-src'),runs=0;
function top(s){var m=0;s.forEach(function(a){a.forEach(function(v){if(v!=null&&v>m)m=v;});});return m>0?m:1;}
function pts(a,m){var o=[],off=N-1-a.length;a.forEach(function(v,i){if(v!=null)o.push(((off+i)*W/(N-2)).toFixed(1)+','+(H-v/m*(H-T)).toFixed(1));});return o.join(' ');}
function fmt(v){return v==null?'-':(v>=100?Math.round(v):Math.round(v*10)/10).toString();}
function text(id,t){var e=document.getElementById(id);if(e)(e.tagName==='TR'?e.lastChild:e).textContent=t;}
function draw(id,series){var m=top(series.map(function(s){return s[1];}));
series.forEach(function(s){var e=document.getElementById('l-'+s[0]);if(e)e.setAttribute('points',pts(s[1],m));text('v-'+s[0],fmt(s[1].length?s[1][s[1].length-1]:null));});
text('m-'+id,fmt(m));}
function tick(){fetch(src,{cache:'no-store'}).then(function(r){return r.json();}).then(function(j){
Object.keys(j).forEach(function(k){if(typeof j[k]==='number')text('n-'+k,j[k]);});
var h=j.history;draw('rps',[['rps',h.rps]]);draw('active',[['active',h.active]]);draw('lat',[['p50',h.p50_us],['p99',h.p99_us]]);
runs++;document.body.setAttribute('data-updated',runs);text('live','live, '+h.rps.length+' s of history');
}).catch(function(){text('live','not updating');});}
tick();setInterval(tick,1000);})();"#;

/// One chart: an inline SVG with a polyline per series, scaled to the largest value
/// any of them shows, and the newest value of each in the caption.
fn chart(out: &mut String, id: &str, title: &str, unit: &str, series: &[(&str, &[Option<f64>])]) {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0_f64, |m, &v| m.max(v));
    let max = if max > 0.0 { max } else { 1.0 };
    let _ = write!(out, "<figure><figcaption>{title}:");
    for (name, values) in series {
        let _ = write!(
            out,
            " {name} <b id=\"v-{name}\">{}</b>{unit}",
            fmt(values.last().copied().flatten())
        );
    }
    let _ = write!(
        out,
        " (top <span id=\"m-{id}\">{}</span>)</figcaption>\
         <svg class=\"chart\" id=\"c-{id}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" width=\"{CHART_W}\" \
         height=\"{CHART_H}\" role=\"img\" aria-label=\"{title}\">",
        fmt(Some(max))
    );
    for (name, values) in series {
        let _ = write!(
            out,
            "<polyline id=\"l-{name}\" points=\"{}\"/>",
            points(values, max)
        );
    }
    out.push_str("</svg></figure>");
}

/// Polyline points for `values` (oldest first), the newest at the right edge.
fn points(values: &[Option<f64>], max: f64) -> String {
    let mut out = String::with_capacity(values.len() * 12);
    let offset = (HISTORY - 1).saturating_sub(values.len());
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let x = (offset + i) as f64 * CHART_W / (HISTORY - 2) as f64;
            let y = CHART_H - v / max * (CHART_H - TOP_MARGIN);
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{x:.1},{y:.1}");
        }
    }
    out
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{}", v.round()),
        Some(v) => format!("{}", (v * 10.0).round() / 10.0),
    }
}

/// The history as columns: `{"t":[ms...],"rps":[...],"active":[...],"p50_us":[...],"p99_us":[...]}`.
fn history_json(out: &mut String, h: &[Sample]) {
    fn column(out: &mut String, name: &str, h: &[Sample], f: impl Fn(&Sample) -> String) {
        let _ = write!(out, "\"{name}\":[");
        for (i, s) in h.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&f(s));
        }
        out.push(']');
    }
    let opt = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:.1}"));
    out.push('{');
    column(out, "t", h, |s| s.at_ms.to_string());
    out.push(',');
    column(out, "rps", h, |s| format!("{:.1}", s.rps));
    out.push(',');
    column(out, "active", h, |s| s.active.to_string());
    out.push(',');
    column(out, "p50_us", h, |s| opt(s.p50_us));
    out.push(',');
    column(out, "p99_us", h, |s| opt(s.p99_us));
    out.push('}');
}

/// Escapes text for an HTML attribute or element.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The quantile `q` (0..1) of a histogram, in nanoseconds, interpolated inside
/// its bucket as Prometheus' `histogram_quantile` does; `None` when it is empty.
/// A rank past the last bound reads as that bound.
pub fn quantile(h: &Histogram, q: f64) -> Option<u64> {
    let count = h.count();
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    let mut below = 0u64;
    let mut lower = 0u64;
    for (i, &bound) in BOUNDS_US.iter().enumerate() {
        let n = h.0[i];
        if n > 0 && (below + n) as f64 >= rank {
            let within = (rank - below as f64) / n as f64;
            let us = lower as f64 + (bound - lower) as f64 * within;
            return Some((us * 1000.0).round() as u64);
        }
        below += n;
        lower = bound;
    }
    Some(lower * 1000)
}

/// Takes the per-second samples of the history: call [`Sampler::tick`] often (every
/// 100 ms or so) from the one process that owns the board; it records a sample
/// once a second has passed since the last.
#[derive(Default)]
pub struct Sampler {
    last: Option<(std::time::Instant, u64, Histogram)>,
}

impl Sampler {
    pub fn tick(&mut self, board: &Board) {
        let now = std::time::Instant::now();
        if let Some((at, _, _)) = &self.last {
            if now.duration_since(*at) < std::time::Duration::from_secs(1) {
                return;
            }
        }
        let t = board.totals();
        let mut hist = Histogram::default();
        for h in board.histograms() {
            hist.add(&h);
        }
        if let Some((at, requests, before)) = &self.last {
            let mut delta = Histogram::default();
            for (d, (a, b)) in delta.0.iter_mut().zip(hist.0.iter().zip(before.0)) {
                *d = a.saturating_sub(b);
            }
            let interval = u64::try_from(now.duration_since(*at).as_millis()).unwrap_or(u64::MAX);
            board.push_sample([
                unix_now_ms(),
                t.get(Counter::Requests).saturating_sub(*requests),
                interval,
                t.get(Counter::Active),
                quantile(&delta, 0.5).unwrap_or(NONE),
                quantile(&delta, 0.99).unwrap_or(NONE),
            ]);
        }
        self.last = Some((now, t.get(Counter::Requests), hist));
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region `new` mapped; no reference into it can
        // outlive `self` (they all borrow it).
        let _ = unsafe { nix::sys::mman::munmap(self.base.cast(), self.len) };
    }
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_counters() {
        assert_eq!(NAMES[Counter::LogDropped as usize], "log_dropped");
        assert_eq!(NAMES[Counter::Requests as usize], "requests_total");
        assert_eq!(std::mem::size_of::<Slot>() % 128, 0);
    }

    #[test]
    fn claim_retire_and_totals() {
        let b = Board::new(4).unwrap();
        let a = b.claim(2, 1).unwrap();
        b.assign(&a, 100);
        let c = b.claim(2, 1).unwrap();
        b.assign(&c, 200);
        assert!(b.claim(1, 1).is_none(), "board is full");
        b.slot(a[0]).add(Counter::Requests, 5);
        b.slot(a[1]).add(Counter::Requests, 7);
        b.slot(a[1]).set(Counter::Active, 3);
        b.slot(c[0]).add(Counter::Requests, 1);
        assert_eq!(b.totals().get(Counter::Requests), 13);
        assert_eq!(b.totals().get(Counter::Active), 3);
        b.retire(&a);
        // Totals survive the worker; its gauge does not.
        assert_eq!(b.totals().get(Counter::Requests), 13);
        assert_eq!(b.totals().get(Counter::Active), 0);
        let again = b.claim(2, 2).unwrap();
        assert_eq!(b.slot(again[0]).get(Counter::Requests), 0);
    }

    #[test]
    fn shared_across_fork() {
        let b = Board::new(1).unwrap();
        let s = b.claim(1, 0).unwrap();
        // SAFETY: the test process is about to fork; the child only touches atomics
        // in the shared mapping and calls _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                b.slot(s[0]).add(Counter::BytesOut, 42);
                // SAFETY: _exit is async-signal-safe and skips the parent's atexit work.
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(b.slot(s[0]).get(Counter::BytesOut), 42);
            }
        }
    }

    #[test]
    fn renders_both_formats() {
        let b = Board::new(2).unwrap();
        let s = b.claim(1, 3).unwrap();
        b.assign(&s, 77);
        b.slot(s[0]).add(Counter::Responses4xx, 2);
        let j = b.render(true, "");
        assert!(j.contains("\"responses_4xx\":2"), "{j}");
        assert!(j.contains("\"pid\":77,\"loop\":0,\"generation\":3"), "{j}");
        let h = b.render(false, "/st<\"at>us.json");
        assert!(h.contains("http-equiv=\"refresh\""));
        assert!(h.contains("data-src=\"/st&lt;&quot;at&gt;us.json\""), "{h}");
        assert!(h.contains("<td>77</td>"));
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let mut h = Histogram::default();
        assert_eq!(quantile(&h, 0.5), None);
        h.0[0] = 100; // 100 in [0, 100 µs)
        assert_eq!(quantile(&h, 0.5), Some(50_000));
        assert_eq!(quantile(&h, 0.99), Some(99_000));
        h.0[3] = 100; // 100 more in [500 µs, 1 ms)
        assert_eq!(quantile(&h, 0.5), Some(100_000));
        assert_eq!(quantile(&h, 0.99), Some(990_000));
        let mut over = Histogram::default();
        over.0[BOUNDS_US.len()] = 3; // past 10 s
        assert_eq!(quantile(&over, 0.5), Some(10_000_000_000));
    }

    #[test]
    fn history_ring_keeps_the_newest_and_draws_them() {
        let b = Board::new(1).unwrap();
        assert!(b.history().is_empty());
        for n in 0..(HISTORY as u64 + 10) {
            b.push_sample([n, n * 2, 1000, n % 7, 50_000, NONE]);
        }
        let h = b.history();
        assert_eq!(h.len(), HISTORY - 1);
        assert_eq!(h.last().unwrap().at_ms, HISTORY as u64 + 9);
        assert_eq!(h[0].at_ms, 11);
        assert_eq!(h.last().unwrap().rps, (HISTORY as f64 + 9.0) * 2.0);
        assert_eq!(h[0].p50_us, Some(50.0));
        assert_eq!(h[0].p99_us, None);
        let j = b.render_json();
        assert!(j.contains("\"history\":{\"t\":[11,"), "{j}");
        assert!(j.contains("\"p99_us\":[null,"), "{j}");
        let page = b.render_html("/status.json");
        // The newest requests/s sample is the chart's highest point, drawn at the top right.
        assert!(page.contains("600.0,4.0\"/>"), "{page}");
        assert!(
            page.contains("<polyline id=\"l-p99\" points=\"\"/>"),
            "{page}"
        );
    }

    #[test]
    fn sampler_records_rates_and_latency_once_a_second() {
        let b = Board::new(1).unwrap();
        let s = b.claim(1, 1).unwrap();
        b.assign(&s, 9);
        let mut sampler = Sampler::default();
        sampler.tick(&b); // the baseline
        b.slot(s[0]).add(Counter::Requests, 300);
        b.slot(s[0]).set(Counter::Active, 4);
        b.slot(s[0]).observe(0, 200_000, 300); // 200 µs each
        sampler.tick(&b); // under a second: nothing yet
        assert!(b.history().is_empty());
        sampler.last.as_mut().unwrap().0 -= std::time::Duration::from_secs(2);
        sampler.tick(&b);
        let h = b.history();
        assert_eq!(h.len(), 1);
        assert!((140.0..=150.0).contains(&h[0].rps), "{:?}", h[0]);
        assert_eq!(h[0].active, 4);
        // Inside the [100 µs, 250 µs) bucket.
        let p50 = h[0].p50_us.unwrap();
        assert!((100.0..250.0).contains(&p50), "{p50}");
    }
}
