//! kvd: a key-value store that speaks Redis's protocol (RESP2) and keeps an append-only
//! log, as a [`Protocol`] any concurrency model can drive.
//!
//! The one idea: a loop iteration is the unit of work, as in Redis. [`Kv::data`] runs
//! every complete command a client has sent (pipelining costs one call, not one per
//! command), gathering its replies into one buffer and the log records into the log's
//! queue. While the log holds records not yet written, replies (anyone's: a read may
//! show a write) are held back in [`Kv`]; at the end of the iteration
//! ([`Protocol::before_wait`]) the records of every client go to the log with one
//! `write(2)` (and under `appendfsync always` one fsync), and only then are the held
//! replies released, each as a single send. So no client ever sees an
//! acknowledgement for a write that is not in the log, and fifty clients writing at
//! once cost one log write, not fifty. Between iterations, [`Kv::tick`] expires keys
//! actively, finishes background log rewrites and retries a log write that failed.

mod blocking;
pub mod btree_engine;
mod client;
mod cmd;
mod dump;
pub mod engine;
pub mod glob;
pub mod hash;
mod info;
pub mod keyspace;
pub mod metrics;
mod notify;
pub mod params;
mod script;
mod session;
pub mod set;
pub mod value;
pub mod zset;

use crate::proto::resp::{self, Args, Parsed, Source};
use crate::proto::{ConnId, Outbox, Protocol};
use crate::store::aof::{self, Aof, AofError, FsyncPolicy};
use bytes::Bytes;
use engine::{EngineKind, HashEngine};
use keyspace::Keyspace;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How kvd is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the log lives; `None` keeps everything in memory only (tests).
    pub dir: Option<PathBuf>,
    pub fsync: FsyncPolicy,
    pub engine: EngineKind,
    pub maxclients: usize,
    pub limits: resp::Limits,
    /// Shown in INFO and CONFIG GET.
    pub port: u16,
    /// Clients must AUTH with this password first (`--requirepass`).
    pub requirepass: Option<String>,
}

/// The Redis version kvd answers as (INFO, HELLO): the one whose behaviour it follows.
pub const REDIS_VERSION: &str = "7.0.15";

impl Default for Config {
    fn default() -> Self {
        Self {
            dir: None,
            fsync: FsyncPolicy::Everysec,
            engine: EngineKind::Hash,
            maxclients: 10_000,
            limits: resp::Limits::default(),
            port: 0,
            requirepass: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("engine '{0}' needs a data directory")]
    EngineNeedsDir(EngineKind),
    #[error("open the B-tree in the data directory: {0}")]
    Btree(#[from] crate::store::btree::Error),
    #[error("create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Aof(#[from] AofError),
}

/// Counters for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerStats {
    pub connections_received: u64,
    pub connected: u64,
    pub rejected: u64,
    pub commands: u64,
    pub net_input: u64,
    pub net_output: u64,
}

impl ServerStats {
    /// CONFIG RESETSTAT: the counters start again; the connected count is a state.
    pub fn reset(&mut self) {
        *self = Self {
            connected: self.connected,
            ..Self::default()
        };
    }
}

/// What commands may read about the server.
pub struct ServerState {
    pub limits: resp::Limits,
    pub maxclients: usize,
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    pub port: u16,
    pub started: Instant,
    /// Unix seconds at start (LASTSAVE).
    pub started_unix: i64,
    pub stats: ServerStats,
    /// CONFIG GET/SET's table.
    pub params: params::Params,
    pub requirepass: Option<String>,
    /// CONFIG SET maxmemory: write commands that may grow memory are refused (OOM)
    /// while the resident set is above it; 0 = no limit.
    pub maxmemory: u64,
    /// `notify-keyspace-events` as flags (`notify`'s bits); 0 publishes nothing.
    pub notify: u16,
    /// The encoding thresholds (`hash-max-listpack-entries` and the like).
    pub encodings: value::Encodings,
}

impl ServerState {
    /// Reads back the parameters kvd acts on after a CONFIG SET.
    pub fn apply_params(&mut self) {
        self.requirepass = self
            .params
            .get("requirepass")
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let mem = |name: &str| {
            self.params
                .get(name)
                .and_then(|v| params::parse_memory(v.as_bytes()))
                .and_then(|v| usize::try_from(v).ok())
        };
        self.notify = self
            .params
            .get("notify-keyspace-events")
            .and_then(notify::parse_flags)
            .unwrap_or(0);
        self.maxmemory = self
            .params
            .get("maxmemory")
            .and_then(|v| params::parse_memory(v.as_bytes()))
            .unwrap_or(0);
        let int = |name: &str, default: usize| {
            self.params
                .get(name)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
        };
        let d = value::Encodings::default();
        self.encodings = value::Encodings {
            hash_entries: int("hash-max-listpack-entries", d.hash_entries),
            hash_value: int("hash-max-listpack-value", d.hash_value),
            set_intset: int("set-max-intset-entries", d.set_intset),
            zset_entries: int("zset-max-listpack-entries", d.zset_entries),
            zset_value: int("zset-max-listpack-value", d.zset_value),
        };
        if let Some(v) = mem("proto-max-bulk-len") {
            self.limits.max_bulk = v;
        }
        if let Some(v) = mem("client-query-buffer-limit") {
            self.limits.max_query = v.max(self.limits.max_bulk + 64);
        }
    }
}

/// Per-connection state: how many bytes the pending frame needs at least, so a large
/// value arriving in many reads is not re-walked on each.
#[derive(Debug, Default)]
pub struct KvConn {
    need: usize,
    /// The client quit (or broke the protocol); its close may still be held, so
    /// whatever it sends meanwhile is dropped.
    quit: bool,
    /// Authenticated, not in MULTI, not subscribed: its keyspace commands run
    /// without looking at its state (see `client::Client::plain`).
    plain: bool,
}

/// A batch stops once its replies pass this size: the rest of the input waits until
/// the client has read them (the loop stops offering input to a connection whose
/// output is over its high mark), so a pipeline of large GETs cannot make the server
/// build an unbounded reply. Held replies of all clients together are released (the
/// log written first) once they pass it too, so holding them is bounded as well.
const REPLY_BATCH_MAX: usize = 1024 * 1024;

/// Replies up to this size are copied out of the reused reply buffer (see
/// `Kv::reply_bytes`); larger ones take the buffer with them.
const REPLY_COPY_MAX: usize = 16 * 1024;

/// What waits in [`Kv`] for the log write that must precede it.
#[derive(Debug)]
enum Held {
    Send(ConnId, Bytes),
    Close(ConnId),
}

/// Active expiry gets at most this much of each tick, as Redis gives its cycle 25 ms.
const EXPIRE_BUDGET: Duration = Duration::from_millis(25);

pub struct Kv {
    ks: Keyspace,
    /// Clients parked by a blocking pop.
    blocked: blocking::Blocked,
    /// Clients CLIENT UNBLOCK freed during this batch, whose deadlines the batch's
    /// end clears.
    unblocked: Vec<ConnId>,
    aof: Option<Aof>,
    server: ServerState,
    ranges: Vec<Range<usize>>,
    scratch: Vec<u8>,
    on_fatal: Option<Box<dyn FnMut() + Send>>,
    /// SHUTDOWN: asks the server to stop as on SIGTERM.
    on_shutdown: Option<Box<dyn FnMut() + Send>>,
    /// Told why, when the final sync of the log fails at shutdown.
    on_close_error: Option<Box<dyn FnOnce(String) + Send>>,
    /// Set when the log could not be made durable under `always`: the process must stop.
    fatal: bool,
    /// Replies and closes waiting for the log write, in the order they were made.
    held: Vec<Held>,
    /// Bytes in `held`.
    held_bytes: usize,
    /// The reply buffer, reused from batch to batch while its replies stay small.
    reply: Vec<u8>,
    clients: client::Clients,
    /// Pub/Sub messages made during a batch, sent after it.
    outgoing: Vec<(ConnId, Bytes)>,
    /// Connections CLIENT KILL closed during a batch.
    kills: Vec<ConnId>,
    /// Per command of `cmd::COMMANDS`, by position.
    cmdstats: Vec<session::CmdStat>,
    /// Error replies by their first word (INFO errorstats).
    errorstats: BTreeMap<String, u64>,
    /// The protocol of the client whose command runs: RESP3 after its `HELLO 3`.
    /// Plain clients speak RESP2, so only the connection layer sets it.
    resp3: bool,
    /// The Lua VM and its cached scripts, started by the first script.
    scripts: Option<Box<script::Scripts>>,
    /// An EXEC runs its queue: the transaction wraps what a script logs.
    in_exec: bool,
}

/// Runs one command, its reply appended to `out`. True when the client asked to quit.
fn exec(
    ks: &mut Keyspace,
    aof: Option<&mut Aof>,
    server: &ServerState,
    out: &mut Vec<u8>,
    args: Args<'_>,
    refuse_writes: Option<&str>,
) -> bool {
    let Some(spec) = cmd::lookup(args.get(0)) else {
        resp::encode_error(out, &cmd::unknown_command(args));
        return false;
    };
    exec_spec(ks, aof, server, out, spec, args, refuse_writes, false)
}

/// [`exec`] once the command is found; `resp3` is the client's protocol.
#[allow(clippy::too_many_arguments)]
fn exec_spec(
    ks: &mut Keyspace,
    aof: Option<&mut Aof>,
    server: &ServerState,
    out: &mut Vec<u8>,
    spec: &'static cmd::Spec,
    args: Args<'_>,
    refuse_writes: Option<&str>,
    resp3: bool,
) -> bool {
    if !spec.arity_ok(args.len()) {
        resp::encode_error(out, &cmd::wrong_arity(spec.name));
        return false;
    }
    if let (true, Some(why)) = (spec.is_write(), refuse_writes) {
        resp::encode_error(
            out,
            &format!("MISCONF Errors writing to the AOF file: {why}"),
        );
        return false;
    }
    let mut ctx = cmd::Ctx {
        ks,
        out,
        aof,
        server,
        quit: false,
        resp3,
    };
    (spec.run)(&mut ctx, args);
    ctx.quit
}

impl Kv {
    /// Builds the store, replaying the log in `config.dir` if there is one.
    pub fn open(config: Config) -> Result<Self, KvError> {
        // The log is opened (and locked) first: a second server on the same directory
        // must stop before it touches anything (a live log's tail, the B-tree file).
        let mut log = match &config.dir {
            None => None,
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| KvError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                Some(Aof::open(dir, config.fsync)?)
            }
        };
        let engine: Box<dyn engine::Engine> = match (config.engine, &config.dir) {
            (EngineKind::Hash, _) => Box::new(HashEngine::new()),
            (EngineKind::Btree, Some(dir)) => Box::new(btree_engine::BtreeEngine::create(dir)?),
            (EngineKind::Btree, None) => return Err(KvError::EngineNeedsDir(config.engine)),
        };
        let mut ks = Keyspace::new(engine);
        let mut params = params::Params::default();
        params.init("appendfsync", config.fsync.to_string());
        params.init(
            "dir",
            config
                .dir
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
                .to_string(),
        );
        params.init("port", config.port.to_string());
        params.init("maxclients", config.maxclients.to_string());
        params.init("proto-max-bulk-len", config.limits.max_bulk.to_string());
        params.init(
            "client-query-buffer-limit",
            config.limits.max_query.to_string(),
        );
        params.init(
            "requirepass",
            config.requirepass.clone().unwrap_or_default(),
        );
        if config.dir.is_none() {
            params.init("appendonly", "no");
        }
        let mut server = ServerState {
            limits: config.limits,
            maxclients: config.maxclients,
            dir: config.dir.clone().unwrap_or_default(),
            fsync: config.fsync,
            port: config.port,
            started: Instant::now(),
            started_unix: keyspace::unix_ms() / 1000,
            stats: ServerStats::default(),
            params,
            requirepass: None,
            maxmemory: 0,
            notify: 0,
            encodings: value::Encodings::default(),
        };
        server.apply_params();
        if let Some(log) = &mut log {
            let path = log.path().to_owned();
            let started = Instant::now();
            ks.logging = false;
            let mut sink = Vec::new();
            // A transaction is applied when its EXEC is read: one cut off by a crash
            // is not applied at all, and cut away below.
            let mut tx: Option<(u64, client::CommandQueue)> = None;
            let report = aof::load(&path, &mut |offset, args| {
                let name = args.get(0);
                if name.eq_ignore_ascii_case(b"MULTI") && args.len() == 1 {
                    if tx.is_some() {
                        return Err("MULTI inside a transaction".into());
                    }
                    tx = Some((offset, client::CommandQueue::default()));
                    return Ok(());
                }
                if name.eq_ignore_ascii_case(b"EXEC") && args.len() == 1 {
                    let Some((_, q)) = tx.take() else {
                        return Err("EXEC without MULTI".into());
                    };
                    for i in 0..q.len() {
                        sink.clear();
                        exec(&mut ks, None, &server, &mut sink, q.get(i), None);
                    }
                    return Ok(());
                }
                cmd::validate(args)?;
                if let Some((_, q)) = &mut tx {
                    q.push(args);
                    return Ok(());
                }
                sink.clear();
                exec(&mut ks, None, &server, &mut sink, args, None);
                Ok(())
            })?;
            if let Some((at, q)) = tx {
                tracing::warn!(
                    path = %path.display(),
                    offset = at,
                    commands = q.len(),
                    "the append-only file ends inside a transaction (a crash mid-write?); cutting the whole transaction away"
                );
                aof::truncate(&path, at)?;
            }
            ks.logging = true;
            ks.feed.clear();
            tracing::info!(
                path = %path.display(),
                commands = report.commands,
                bytes = report.valid_len,
                keys = ks.len(),
                secs = started.elapsed().as_secs_f64(),
                "append-only file replayed"
            );
            log.refresh_size()?;
        }
        let aof = log;
        Ok(Self {
            ks,
            blocked: blocking::Blocked::default(),
            unblocked: Vec::new(),
            aof,
            server,
            ranges: Vec::new(),
            scratch: Vec::new(),
            on_fatal: None,
            on_shutdown: None,
            on_close_error: None,
            fatal: false,
            held: Vec::new(),
            held_bytes: 0,
            reply: Vec::new(),
            clients: client::Clients::default(),
            outgoing: Vec::new(),
            kills: Vec::new(),
            cmdstats: vec![session::CmdStat::default(); cmd::COMMANDS.len()],
            errorstats: BTreeMap::new(),
            resp3: false,
            scripts: None,
            in_exec: false,
        })
    }

    /// Called once if the log cannot be made durable under `appendfsync always` (the
    /// process should stop, as Redis does: memory holds writes the disk does not).
    pub fn on_fatal(&mut self, f: impl FnMut() + Send + 'static) {
        self.on_fatal = Some(Box::new(f));
    }

    /// Called when a client sends SHUTDOWN: the owner stops the server as on SIGTERM.
    pub fn on_shutdown(&mut self, f: impl FnMut() + Send + 'static) {
        self.on_shutdown = Some(Box::new(f));
    }

    /// Called once if the final sync of the log fails when the server stops (writes
    /// already acknowledged may be missing from it: the exit must not look clean).
    pub fn on_close_error(&mut self, f: impl FnOnce(String) + Send + 'static) {
        self.on_close_error = Some(Box::new(f));
    }

    pub fn keys(&self) -> usize {
        self.ks.len()
    }

    /// Moves the batch's log records into the log's queue, unwritten; true when the
    /// log then holds records not yet written (the batch's replies must wait).
    fn queue_log(&mut self) -> bool {
        let Some(aof) = &mut self.aof else {
            self.ks.feed.clear();
            return false;
        };
        if !self.ks.feed.is_empty() {
            aof.feed(&self.ks.feed);
            self.ks.feed.clear();
            if self.ks.feed.capacity() > 1024 * 1024 {
                self.ks.feed.shrink_to(64 * 1024);
            }
        }
        aof.pending()
    }

    /// Writes the log (one `write(2)`, and under `always` an fsync), then releases
    /// what was held for it: the replies, or, if the log could not be made durable
    /// under `always`, closes in their place, so nothing unlogged is acknowledged.
    fn release(&mut self, out: &mut Outbox) {
        let durable = self.flush_log();
        self.held_bytes = 0;
        for h in self.held.drain(..) {
            match h {
                Held::Send(id, data) if durable => out.send(id, data),
                Held::Close(id) => out.close(id),
                Held::Send(id, _) => out.close(id),
            }
        }
        if self.held.capacity() > 4096 {
            self.held = Vec::new();
        }
    }

    /// Moves the log records into the log and writes them. False when what waits for
    /// them must not be acknowledged.
    fn flush_log(&mut self) -> bool {
        self.queue_log();
        let Some(aof) = &mut self.aof else {
            return true;
        };
        match aof.flush() {
            Ok(()) => true,
            Err(e) if aof.policy() == FsyncPolicy::Always => {
                tracing::error!(error = %e, "cannot make the append-only file durable under appendfsync always; stopping");
                if !self.fatal {
                    self.fatal = true;
                    if let Some(f) = &mut self.on_fatal {
                        f();
                    }
                }
                false
            }
            // Under everysec/no the records stay queued and writes are refused until a
            // retry succeeds (see `write_refusal`); this batch's replies still go out,
            // as in Redis.
            Err(_) => true,
        }
    }

    /// Turns a batch's replies into what is sent, keeping the buffer for the next
    /// batch: a small reply is copied out (one exact allocation, where handing the
    /// buffer over would cost its growth and a shared header every batch); a large one
    /// is handed over as it is, and the next batch starts a fresh buffer.
    fn reply_bytes(&mut self, mut reply: Vec<u8>) -> Bytes {
        if reply.len() > REPLY_COPY_MAX {
            return Bytes::from(reply);
        }
        let b = Bytes::copy_from_slice(&reply);
        reply.clear();
        self.reply = reply;
        b
    }

    fn write_refusal(&self) -> Option<String> {
        if self.fatal {
            return Some("the log cannot be made durable; shutting down".into());
        }
        self.aof.as_ref().and_then(Aof::write_error)
    }
}

impl Protocol for Kv {
    type Conn = KvConn;

    fn open(&mut self, id: ConnId, peer: SocketAddr, _out: &mut Outbox) -> KvConn {
        self.server.stats.connections_received += 1;
        self.server.stats.connected += 1;
        let authed = self.server.requirepass.is_none();
        self.clients.add(id, peer, authed);
        KvConn {
            plain: authed,
            ..KvConn::default()
        }
    }

    fn data(&mut self, id: ConnId, conn: &mut KvConn, input: &[u8], out: &mut Outbox) -> usize {
        if conn.quit {
            return input.len();
        }
        // A parked client's further input waits until it is served or times out.
        if self.blocked.is_blocked(id) {
            return 0;
        }
        if input.len() < conn.need {
            return 0;
        }
        conn.need = 0;
        self.ks.now = keyspace::unix_ms();
        let refuse = self.write_refusal();
        let mut reply = std::mem::take(&mut self.reply);
        // Taken out of `self` for the batch, so commands may borrow all of it.
        let mut ranges = std::mem::take(&mut self.ranges);
        let mut scratch = std::mem::take(&mut self.scratch);
        // An unauthenticated client may not make the server buffer much, as in Redis.
        let limits = if self.clients.map.get(&id).map_or(true, |c| c.authed) {
            self.server.limits
        } else {
            resp::Limits {
                max_bulk: 16 * 1024,
                max_args: 10,
                max_query: 64 * 1024,
            }
        };
        let mut pos = 0;
        let mut close = false;
        let mut commands = 0u64;
        while pos < input.len() {
            let rest = &input[pos..];
            match resp::parse(rest, &limits, &mut ranges, &mut scratch) {
                Ok(Parsed::Command { len, source }) => {
                    pos += len;
                    if ranges.is_empty() {
                        continue;
                    }
                    let src = match source {
                        Source::Input => rest,
                        Source::Scratch => &scratch[..],
                    };
                    commands += 1;
                    let args = Args::new(src, &ranges);
                    let spec = cmd::lookup(args.get(0));
                    // Inside EXEC nothing blocks.
                    self.ks.may_block = !matches!(spec, Some(s) if s.name == "exec");
                    let quit = match spec {
                        Some(spec) if conn.plain && spec.flags & cmd::CONN == 0 => {
                            self.run(spec, args, &mut reply, refuse.as_deref())
                        }
                        _ => self.command(id, conn, spec, args, &mut reply, refuse.as_deref()),
                    };
                    if quit {
                        close = true;
                        pos = input.len();
                        break;
                    }
                    if self.park_if_blocked(id, out) {
                        break;
                    }
                    if reply.len() >= REPLY_BATCH_MAX {
                        break;
                    }
                }
                Ok(Parsed::Incomplete { need }) => {
                    conn.need = need;
                    break;
                }
                Err(e) => {
                    tracing::debug!(conn = %id, error = %e, "closing a client after a protocol error");
                    resp::encode_error(&mut reply, &format!("ERR {e}"));
                    close = true;
                    pos = input.len();
                    break;
                }
            }
        }
        self.ks.may_block = false;
        self.ks.block_request = None;
        for freed in self.unblocked.drain(..) {
            out.deadline(freed, None);
        }
        if !self.ks.feed.is_empty() {
            // A served waiter's pop (and BLMOVE's push) is a write like any other:
            // it touches watched keys and publishes its events.
            let feed_before = self.ks.feed.len();
            self.serve_blocked(out);
            if (!self.clients.watches.is_empty() || self.server.notify != 0)
                && self.ks.feed.len() > feed_before
            {
                self.after_write(feed_before, 0);
            }
        }
        self.ranges = ranges;
        self.scratch = scratch;
        if self.ranges.capacity() > 4096 {
            self.ranges = Vec::new();
        }
        if self.scratch.capacity() > resp::INLINE_MAX {
            self.scratch = Vec::new();
        }
        let st = &mut self.server.stats;
        st.commands += commands;
        st.net_input += pos as u64;
        st.net_output += reply.len() as u64;
        conn.quit = close;
        let reply = self.reply_bytes(reply);
        if self.queue_log() || !self.held.is_empty() {
            if !reply.is_empty() {
                self.held_bytes += reply.len();
                self.held.push(Held::Send(id, reply));
            }
            if close {
                self.held.push(Held::Close(id));
            }
            self.flush_outgoing(out, true);
            if self.held_bytes >= REPLY_BATCH_MAX {
                self.release(out);
            }
            return pos;
        }
        if !reply.is_empty() {
            out.send(id, reply);
        }
        if close {
            out.close(id);
        }
        self.flush_outgoing(out, false);
        pos
    }

    /// The end of the loop iteration: every client's log records in one write, then
    /// their replies.
    fn before_wait(&mut self, out: &mut Outbox) {
        let pending = self.aof.as_ref().is_some_and(Aof::pending);
        if pending || !self.held.is_empty() || !self.ks.feed.is_empty() {
            self.release(out);
        }
    }

    fn closed(&mut self, id: ConnId, _conn: KvConn, _out: &mut Outbox) {
        self.server.stats.connected = self.server.stats.connected.saturating_sub(1);
        self.clients.remove(id);
        self.blocked.remove(id);
    }

    /// A parked client's wait is over (answered, not closed); any other deadline
    /// closes as before.
    fn timeout(&mut self, id: ConnId, _conn: &mut KvConn, out: &mut Outbox) {
        if !self.blocked_timeout(id) {
            out.close(id);
        }
    }

    fn refusal(&mut self) -> Bytes {
        self.server.stats.rejected += 1;
        Bytes::from_static(b"-ERR max number of clients reached\r\n")
    }

    /// Work between iterations: active expiry, background rewrite completion, log
    /// retry.
    fn tick(&mut self, out: &mut Outbox) {
        let feed_before = self.ks.feed.len();
        self.ks.active_expire(EXPIRE_BUDGET);
        if (!self.clients.watches.is_empty() || self.server.notify != 0)
            && self.ks.feed.len() > feed_before
        {
            self.after_write(feed_before, u64::MAX);
            let hold = self.aof.as_ref().is_some_and(Aof::pending) || !self.ks.feed.is_empty();
            self.flush_outgoing(out, hold);
        }
        if let Some(aof) = &mut self.aof {
            aof.poll_rewrite();
        }
        self.release(out);
    }
}

impl Drop for Kv {
    /// The final sync: what the last iterations queued reaches the disk, or the owner
    /// hears that it did not.
    fn drop(&mut self) {
        let Some(aof) = &mut self.aof else {
            return;
        };
        if let Err(e) = aof.close() {
            tracing::error!(error = %e, "final sync of the append-only file failed");
            if let Some(f) = self.on_close_error.take() {
                f(e.to_string());
            }
        }
    }
}

/// `kvd --check-aof`: is every command in the log a known command with a valid
/// argument count?
pub fn validate_logged(args: Args<'_>) -> Result<(), String> {
    cmd::validate(args).map(|_| ())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod session_tests;

#[cfg(test)]
mod types_tests;

#[cfg(test)]
mod sort_tests;
