//! `--metrics-listen`: INFO's figures in the Prometheus text exposition format,
//! served over plain HTTP on an address of their own.
//!
//! The one idea: the keyspace belongs to the event loop, so the loop renders the
//! page itself. The HTTP side runs on its own thread; a scrape raises a flag and
//! waits, and the loop's next tick (at most 250 ms away) sees the flag, renders
//! the page from its own state and hands it over. Between scrapes the loop pays
//! one relaxed load per tick; the protocol is otherwise passed through untouched.

use super::{cmd, info, Kv, KvConn};
use crate::capstone::metrics::{Exposition, CONTENT_TYPE};
use crate::proto::{ConnId, Outbox, Protocol};
use bytes::Bytes;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Largest request head the responder reads.
const MAX_REQUEST: usize = 4096;
/// How long a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a scrape waits for the loop (a tick is at most 250 ms away).
const LOOP_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("bind({addr}) for --metrics-listen: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("spawn metrics thread: {0}")]
    Spawn(std::io::Error),
}

/// Where a scrape and the loop meet: the flag, and the pages rendered so far.
#[derive(Default)]
struct Exchange {
    wanted: AtomicBool,
    page: Mutex<(u64, String)>,
    ready: Condvar,
}

impl Exchange {
    /// Asks the loop for a fresh page; `None` if it did not answer in time.
    fn scrape(&self) -> Option<String> {
        let guard = self.page.lock().unwrap_or_else(|p| p.into_inner());
        let seen = guard.0;
        self.wanted.store(true, Ordering::Release);
        let (guard, _) = self
            .ready
            .wait_timeout_while(guard, LOOP_WAIT, |(n, _)| *n == seen)
            .unwrap_or_else(|p| p.into_inner());
        (guard.0 != seen).then(|| guard.1.clone())
    }
}

/// [`Kv`] with the metrics page rendered on request.
pub struct Scraped {
    kv: Kv,
    exchange: Arc<Exchange>,
}

impl Scraped {
    /// Serves the page on `addr` from a thread of its own; returns the protocol
    /// to run in place of `kv`, and the address bound.
    pub fn start(kv: Kv, addr: SocketAddr) -> Result<(Scraped, SocketAddr), MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let local = listener.local_addr().unwrap_or(addr);
        let exchange = Arc::new(Exchange::default());
        let shared = exchange.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(s) => {
                            if let Err(e) = answer(s, &shared) {
                                tracing::debug!(error = %e, "metrics request");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "metrics accept");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .map_err(MetricsError::Spawn)?;
        Ok((Scraped { kv, exchange }, local))
    }

    fn publish_if_wanted(&mut self) {
        if self.exchange.wanted.swap(false, Ordering::Acquire) {
            let text = render(&self.kv);
            let mut page = self.exchange.page.lock().unwrap_or_else(|p| p.into_inner());
            page.0 = page.0.wrapping_add(1);
            page.1 = text;
            self.exchange.ready.notify_all();
        }
    }
}

/// One HTTP/1.0 exchange: `GET /metrics` (or `HEAD`) gets the page, anything else 404.
fn answer(mut s: TcpStream, exchange: &Exchange) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n")
        && !buf[..len].windows(2).any(|w| w == b"\n\n")
    {
        if len == buf.len() {
            return reply(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
                false,
            );
        }
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let line = buf[..len].split(|&b| b == b'\n').next().unwrap_or(b"");
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or(b"");
    let target = parts.next().unwrap_or(b"");
    let path = target.split(|&b| b == b'?').next().unwrap_or(b"");
    let head = method == b"HEAD";
    if (method != b"GET" && !head) || path != b"/metrics" {
        return reply(&mut s, "404 Not Found", "text/plain", b"not found\n", head);
    }
    match exchange.scrape() {
        Some(page) => reply(&mut s, "200 OK", CONTENT_TYPE, page.as_bytes(), head),
        None => reply(
            &mut s,
            "503 Service Unavailable",
            "text/plain",
            b"the server did not answer in time\n",
            head,
        ),
    }
}

fn reply(
    s: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    s.write_all(&out)?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// One figure of a command's INFO commandstats line.
type CmdFigure = fn(&super::session::CmdStat) -> u64;

/// The page: INFO's figures as counters and gauges.
fn render(kv: &Kv) -> String {
    let s = &kv.server;
    let st = &s.stats;
    let ks = &kv.ks;
    let mut e = Exposition::new();
    let mut one = |name: &str, kind: &str, help: &str, v: u64| {
        e.single(&format!("sysnet_kvd_{name}"), kind, help, v);
    };
    one(
        "connected_clients",
        "gauge",
        "Clients connected now.",
        st.connected,
    );
    one(
        "blocked_clients",
        "gauge",
        "Clients waiting in a blocking command.",
        kv.blocked.len() as u64,
    );
    one(
        "connections_received_total",
        "counter",
        "Connections accepted (INFO total_connections_received).",
        st.connections_received,
    );
    one(
        "rejected_connections_total",
        "counter",
        "Connections refused at maxclients.",
        st.rejected,
    );
    one(
        "commands_processed_total",
        "counter",
        "Commands run (INFO total_commands_processed).",
        st.commands,
    );
    one(
        "net_input_bytes_total",
        "counter",
        "Bytes read from clients.",
        st.net_input,
    );
    one(
        "net_output_bytes_total",
        "counter",
        "Bytes written to clients.",
        st.net_output,
    );
    one(
        "keyspace_hits_total",
        "counter",
        "Key lookups that found the key.",
        ks.stats.hits,
    );
    one(
        "keyspace_misses_total",
        "counter",
        "Key lookups that found nothing.",
        ks.stats.misses,
    );
    one(
        "expired_keys_total",
        "counter",
        "Keys removed on expiry.",
        ks.stats.expired,
    );
    one(
        "evicted_keys_total",
        "counter",
        "Keys evicted for memory (kvd does not evict).",
        0,
    );
    one(
        "used_memory_bytes",
        "gauge",
        "Resident set size (kvd does not count its allocations).",
        info::rss_bytes(),
    );
    one(
        "uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        s.started.elapsed().as_secs(),
    );
    one(
        "error_replies_total",
        "counter",
        "Error replies sent (INFO total_error_replies).",
        kv.errorstats.values().sum(),
    );
    match kv.aof.as_ref() {
        Some(aof) => {
            one(
                "aof_enabled",
                "gauge",
                "Whether the append-only file is on.",
                1,
            );
            one(
                "aof_current_size_bytes",
                "gauge",
                "Size of the append-only file.",
                aof.size(),
            );
            one(
                "aof_base_size_bytes",
                "gauge",
                "Size of the append-only file at its last rewrite.",
                aof.base_size(),
            );
            one(
                "aof_last_write_ok",
                "gauge",
                "1 if the last write of the append-only file succeeded, else 0.",
                u64::from(aof.write_error().is_none()),
            );
            one(
                "aof_rewrite_in_progress",
                "gauge",
                "1 while the append-only file is rewritten.",
                u64::from(aof.rewrite_in_progress()),
            );
        }
        None => one(
            "aof_enabled",
            "gauge",
            "Whether the append-only file is on.",
            0,
        ),
    }
    e.family("sysnet_kvd_keys", "gauge", "Keys, by database.");
    e.sample("sysnet_kvd_keys", &[("db", "0")], ks.len());
    e.family(
        "sysnet_kvd_expiring_keys",
        "gauge",
        "Keys with a time to live, by database.",
    );
    e.sample("sysnet_kvd_expiring_keys", &[("db", "0")], ks.expires_len());
    let families: [(&str, &str, CmdFigure); 3] = [
        (
            "sysnet_kvd_commands_total",
            "Calls, by command (INFO commandstats).",
            |c| c.calls,
        ),
        (
            "sysnet_kvd_commands_rejected_total",
            "Calls refused before running, by command.",
            |c| c.rejected,
        ),
        (
            "sysnet_kvd_commands_failed_total",
            "Calls that failed, by command.",
            |c| c.failed,
        ),
    ];
    for (name, help, get) in families {
        e.family(name, "counter", help);
        for (spec, c) in cmd::COMMANDS.iter().zip(&kv.cmdstats) {
            if c.calls != 0 || c.rejected != 0 {
                e.sample(name, &[("cmd", spec.name)], get(c));
            }
        }
    }
    e.family(
        "sysnet_kvd_errors_total",
        "counter",
        "Error replies, by error code (INFO errorstats).",
    );
    for (code, n) in &kv.errorstats {
        e.sample("sysnet_kvd_errors_total", &[("code", code)], n);
    }
    e.finish()
}

impl Protocol for Scraped {
    type Conn = KvConn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, out: &mut Outbox) -> KvConn {
        self.kv.open(id, peer, out)
    }

    fn open_on(
        &mut self,
        id: ConnId,
        peer: SocketAddr,
        listener: usize,
        out: &mut Outbox,
    ) -> KvConn {
        self.kv.open_on(id, peer, listener, out)
    }

    fn data(&mut self, id: ConnId, conn: &mut KvConn, input: &[u8], out: &mut Outbox) -> usize {
        self.kv.data(id, conn, input, out)
    }

    fn eof(&mut self, id: ConnId, conn: &mut KvConn, out: &mut Outbox) {
        self.kv.eof(id, conn, out)
    }

    fn timeout(&mut self, id: ConnId, conn: &mut KvConn, out: &mut Outbox) {
        self.kv.timeout(id, conn, out)
    }

    fn drained(&mut self, id: ConnId, conn: &mut KvConn, out: &mut Outbox) {
        self.kv.drained(id, conn, out)
    }

    const WANTS_DRAINED: bool = <Kv as Protocol>::WANTS_DRAINED;

    fn closed(&mut self, id: ConnId, conn: KvConn, out: &mut Outbox) {
        self.kv.closed(id, conn, out)
    }

    fn refusal(&mut self) -> Bytes {
        self.kv.refusal()
    }

    fn tick(&mut self, out: &mut Outbox) {
        self.kv.tick(out);
        self.publish_if_wanted();
    }

    #[inline]
    fn before_wait(&mut self, out: &mut Outbox) {
        self.kv.before_wait(out)
    }

    fn queued(&mut self, position: usize) -> Bytes {
        self.kv.queued(position)
    }

    fn idle(&self, conn: &KvConn) -> bool {
        self.kv.idle(conn)
    }
}
