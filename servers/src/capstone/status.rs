//! The counter board: one shared-memory page of counters for every event loop of
//! every worker process, summed on demand for the status page.
//!
//! The one idea (nginx's shared-memory `stub_status`): the master maps an anonymous
//! `MAP_SHARED` region before it forks, so every worker sees the same memory. Each
//! loop owns one cache-line-aligned slot and is its only writer, so counting needs
//! no lock and no shared cache line; readers just sum. When a worker process ends,
//! the master folds its slots into a "retired" row so totals never go backwards.

use super::metrics::{Histogram, HIST_CELLS, PROTOS};
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
        let len = std::mem::size_of::<Header>() + (slots + 1) * std::mem::size_of::<Slot>();
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
                .add(std::mem::size_of::<Header>() + i * std::mem::size_of::<Slot>())
                as *const Slot)
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
            for v in s.values.iter().chain(s.hist.iter().flatten()) {
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
    pub fn render(&self, json: bool) -> String {
        if json {
            self.render_json()
        } else {
            self.render_html()
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

    pub fn render_json(&self) -> String {
        let h = self.header();
        let t = self.totals();
        let mut out = String::with_capacity(1024);
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
        out.push_str(",\"loops\":[");
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
        out.push_str("]}\n");
        out
    }

    pub fn render_html(&self) -> String {
        let h = self.header();
        let t = self.totals();
        let mut out = String::with_capacity(4096);
        out.push_str(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
             <title>capstone status</title><link rel=\"stylesheet\" href=\"/style.css\"></head><body>\
             <h1>capstone status</h1>",
        );
        let _ = write!(
            out,
            "<p>master pid {} &middot; config generation {} &middot; up {} s &middot; {} worker restarts \
             &middot; <a href=\"?format=json\">JSON</a></p><table>",
            h.master_pid.load(Ordering::Relaxed),
            h.generation.load(Ordering::Relaxed),
            unix_now().saturating_sub(h.started.load(Ordering::Relaxed)),
            h.restarts.load(Ordering::Relaxed),
        );
        for (name, v) in t.pairs() {
            let _ = write!(
                out,
                "<tr><th align=\"left\">{name}</th><td align=\"right\">{v}</td></tr>"
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
        out.push_str("</table></body></html>\n");
        out
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region `new` mapped; no reference into it can
        // outlive `self` (they all borrow it).
        let _ = unsafe { nix::sys::mman::munmap(self.base.cast(), self.len) };
    }
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
        let j = b.render(true);
        assert!(j.contains("\"responses_4xx\":2"), "{j}");
        assert!(j.contains("\"pid\":77,\"loop\":0,\"generation\":3"), "{j}");
        let h = b.render(false);
        assert!(h.contains("http-equiv=\"refresh\""));
        assert!(h.contains("<td>77</td>"));
    }
}
