//! The connection layer of kvd: what a command means for the client that sent it
//! and for the others — authentication, MULTI/EXEC/WATCH, Pub/Sub, CLIENT, HELLO,
//! CONFIG and INFO.
//!
//! The one idea, as in Redis's `processCommand`: a command from a client that is not
//! plain (see [`super::client::Client::plain`]) passes a fixed sequence of gates —
//! existence and arity, authentication, the MULTI queue, the subscribed-client
//! restriction — before it runs; a refusal at any gate while a MULTI is open marks the
//! transaction aborted. Commands flagged [`cmd::CONN`] run here, with the whole server
//! in reach; the rest run through [`Kv::run`] against the keyspace. WATCH learns of
//! changes from the log records a command produced (every change to the data set is
//! logged, so the log feed is the one complete list of writes), and a transaction's
//! records are wrapped in MULTI/EXEC so the log applies them whole or not at all.

use super::client::{remove_from, Client, Multi, ReplyMode};
use super::cmd::{self, Spec};
use super::{Held, Kv, KvConn};
use crate::kv::glob;
use crate::proto::resp::{self, parse_i64, Args, Parsed};
use crate::proto::ConnId;
use bytes::Bytes;
use std::fmt::Write as _;

const ERR_EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
const ERR_NOAUTH: &str = "NOAUTH Authentication required.";
const ERR_OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Whether a command may grow memory (Redis's `denyoom`): writes, except those that
/// only remove or re-time keys.
fn grows(spec: &Spec) -> bool {
    spec.flags & cmd::WRITE != 0
        && !matches!(
            spec.name,
            "del"
                | "unlink"
                | "flushdb"
                | "flushall"
                | "persist"
                | "expire"
                | "pexpire"
                | "expireat"
                | "pexpireat"
                | "getdel"
                | "lpop"
                | "rpop"
                | "srem"
                | "hdel"
                | "zrem"
                | "spop"
                | "ltrim"
                | "lrem"
        )
}
const ERR_WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Calls and errors per command, for INFO commandstats.
#[derive(Debug, Default, Clone, Copy)]
pub struct CmdStat {
    pub calls: u64,
    pub rejected: u64,
    pub failed: u64,
}

impl Kv {
    /// Runs a keyspace command (not [`cmd::CONN`]): the WATCH bookkeeping around it
    /// and its statistics. True when the client asked to quit.
    pub(super) fn run(
        &mut self,
        spec: &'static Spec,
        args: Args<'_>,
        reply: &mut Vec<u8>,
        refuse: Option<&str>,
    ) -> bool {
        if self.server.maxmemory != 0 && grows(spec) && !self.evict() {
            let before = reply.len();
            resp::encode_error(reply, ERR_OOM);
            self.count_error(&reply[before..]);
            if let Some(s) = self.cmdstats.get_mut(cmd::index_of(spec)) {
                s.rejected += 1;
            }
            return false;
        }
        if !spec.arity_ok(args.len()) {
            let before = reply.len();
            resp::encode_error(reply, &cmd::wrong_arity(spec.name));
            self.count_error(&reply[before..]);
            if let Some(s) = self.cmdstats.get_mut(cmd::index_of(spec)) {
                s.rejected += 1;
            }
            return false;
        }
        let watching = !self.clients.watches.is_empty();
        let notifying = self.server.notify != 0;
        if watching && spec.flags & cmd::FLUSH != 0 {
            self.touch_all_existing();
        }
        // Keys a write may create, for "new" events: those absent before it runs.
        let absent: Vec<Box<[u8]>> =
            if self.server.notify & super::notify::NEW != 0 && spec.flags & cmd::WRITE != 0 {
                key_positions(spec, args)
                    .map(|i| args.get(i))
                    .filter(|k| !self.ks.contains_raw(k))
                    .map(Into::into)
                    .collect()
            } else {
                Vec::new()
            };
        let feed_before = self.ks.feed.len();
        let expired_before = self.ks.stats.expired;
        let reply_before = reply.len();
        let quit = super::exec_spec(
            &mut self.ks,
            self.aof.as_mut(),
            &self.server,
            reply,
            spec,
            args,
            refuse,
            self.resp3,
        );
        self.count(spec, reply, reply_before);
        for k in absent {
            if self.ks.contains_raw(&k) {
                self.notify_event(self.server.notify, "new", &k);
            }
        }
        if (watching || notifying) && self.ks.feed.len() > feed_before {
            let expired = self.ks.stats.expired.saturating_sub(expired_before);
            self.after_write(feed_before, expired);
        }
        quit
    }

    /// kvd does not count its allocations; its resident set stands for them.
    fn over_maxmemory(&self) -> bool {
        super::info::rss_bytes() > self.server.maxmemory
    }

    /// Redis's `performEvictions`, keys chosen at random: while over `maxmemory` and
    /// the policy allows, delete keys (logged as DEL, announced as "evicted"), at
    /// most 128 per call. True when the command may run.
    fn evict(&mut self) -> bool {
        if self.server.maxmemory == 0 || !self.over_maxmemory() {
            return true;
        }
        let policy = self
            .server
            .params
            .get("maxmemory-policy")
            .unwrap_or("noeviction");
        if policy == "noeviction" {
            return false;
        }
        let volatile = policy.starts_with("volatile");
        let notify = self.server.notify;
        for _ in 0..128 {
            let Some(key) = self.ks.random_key() else {
                break;
            };
            if volatile && self.ks.expire_at(&key).is_none() {
                continue;
            }
            if !self.ks.del(&key) {
                continue;
            }
            self.ks.log(&[&b"DEL"[..], &key]);
            self.clients.touch(&key, false);
            if notify & super::notify::EVICTED != 0 {
                self.notify_event(notify, "evicted", &key);
            }
            if !self.over_maxmemory() {
                return true;
            }
        }
        !self.over_maxmemory()
    }

    /// Counts a call, and an error reply as a failed call and in the error table.
    pub(super) fn count(&mut self, spec: &'static Spec, reply: &[u8], reply_before: usize) {
        let i = cmd::index_of(spec);
        if let Some(s) = self.cmdstats.get_mut(i) {
            s.calls += 1;
            if reply.get(reply_before) == Some(&b'-') {
                s.failed += 1;
                self.count_error(&reply[reply_before..]);
            }
        }
    }

    fn count_error(&mut self, reply: &[u8]) {
        let code = reply[1..]
            .iter()
            .position(|&c| c == b' ' || c == b'\r')
            .map_or(&reply[1..], |n| &reply[1..1 + n]);
        let code = String::from_utf8_lossy(code);
        // Bounded as Redis bounds it: a flood of odd error codes stops adding rows.
        if self.errorstats.len() < 128 || self.errorstats.contains_key(&*code) {
            *self.errorstats.entry(code.into_owned()).or_insert(0) += 1;
        }
    }

    fn reject(&mut self, id: ConnId, spec: Option<&'static Spec>, reply: &mut Vec<u8>, msg: &str) {
        let before = reply.len();
        resp::encode_error(reply, msg);
        self.count_error(&reply[before..]);
        if let Some(s) = spec.and_then(|s| self.cmdstats.get_mut(cmd::index_of(s))) {
            s.rejected += 1;
        }
        if let Some(m) = self.clients.map.get_mut(&id).and_then(|c| c.multi.as_mut()) {
            m.aborted = true;
        }
    }

    /// A FLUSHDB/FLUSHALL is about to empty the keyspace: every watched key that
    /// exists now is touched (one that does not is unaffected, as in Redis).
    fn touch_all_existing(&mut self) {
        let keys: Vec<Box<[u8]>> = self.clients.watches.keys().cloned().collect();
        for k in keys {
            if self.ks.contains_raw(&k) {
                self.clients.touch(&k, false);
            }
        }
    }

    /// Reads the log records appended to the feed since `from` — every change a
    /// command made — and touches their keys for WATCH and publishes their keyspace
    /// events (`notify-keyspace-events`).
    /// The first `expired` DEL records are the work of expiry (lazy expiry runs
    /// before a command's own change; active expiry passes `u64::MAX`): they are
    /// "expired" events.
    pub(super) fn after_write(&mut self, from: usize, mut expired: u64) {
        let mut ranges = Vec::new();
        let mut scratch = Vec::new();
        let mut pos = from;
        let limits = resp::Limits {
            max_bulk: usize::MAX / 4,
            max_args: usize::MAX / 4,
            max_query: usize::MAX / 4,
        };
        let notify = self.server.notify;
        // Taken out while its records are read: checking a key needs the keyspace.
        let feed = std::mem::take(&mut self.ks.feed);
        while pos < feed.len() {
            let rest = &feed[pos..];
            let Ok(Parsed::Command { len, .. }) =
                resp::parse(rest, &limits, &mut ranges, &mut scratch)
            else {
                break;
            };
            pos += len;
            let args = Args::new(rest, &ranges);
            let Some(spec) = cmd::lookup(args.get(0)) else {
                continue;
            };
            if spec.flags & cmd::FLUSH != 0 || spec.first_key <= 0 {
                continue;
            }
            let by_expiry = expired > 0 && spec.name == "del";
            if by_expiry {
                expired -= 1;
            }
            let event_at = |nth: usize| {
                if notify == 0 {
                    None
                } else if by_expiry {
                    // Active expiry's deletions are "expired" events, of their own class.
                    Some((super::notify::EXPIRED, "expired"))
                        .filter(|(class, _)| notify & class != 0)
                } else {
                    // LMOVE's third and fourth arguments name the ends it moves between.
                    let side = args.get(3 + nth.min(1));
                    super::notify::event_at(spec.name, nth, side)
                        .filter(|(class, _)| notify & class != 0)
                }
            };
            for (nth, i) in key_positions(spec, args).enumerate() {
                let key = args.get(i);
                if self.clients.watches.contains_key(key) {
                    let exists = self.ks.contains_raw(key);
                    self.clients.touch(key, exists);
                }
                if let Some((_, name)) = event_at(nth) {
                    self.notify_event(notify, name, key);
                }
            }
        }
        self.ks.feed = feed;
    }

    /// Publishes one keyspace event on `__keyspace@0__:KEY` and/or
    /// `__keyevent@0__:EVENT`, as the flags ask.
    fn notify_event(&mut self, notify: u16, event: &str, key: &[u8]) {
        if notify & super::notify::KEYSPACE != 0 {
            let mut ch = b"__keyspace@0__:".to_vec();
            ch.extend_from_slice(key);
            self.publish_message(&ch, event.as_bytes());
        }
        if notify & super::notify::KEYEVENT != 0 {
            let ch = format!("__keyevent@0__:{event}");
            self.publish_message(ch.as_bytes(), key);
        }
    }

    /// A command from a client that is not plain, or a connection-level command: the
    /// gates of `processCommand`, then the command. True when the client quits.
    pub(super) fn command(
        &mut self,
        id: ConnId,
        conn: &mut KvConn,
        spec: Option<&'static Spec>,
        args: Args<'_>,
        reply: &mut Vec<u8>,
        refuse: Option<&str>,
    ) -> bool {
        let before = reply.len();
        self.resp3 = self.clients.map.get(&id).is_some_and(|c| c.resp3);
        let quit = self.gated(id, spec, args, reply, refuse);
        self.resp3 = false;
        // (Un)subscribe confirmations are pushed whatever CLIENT REPLY says, as
        // messages are.
        let pushed = spec.is_some_and(|s| s.name.ends_with("subscribe"));
        if let Some(c) = self.clients.map.get_mut(&id).filter(|_| !pushed) {
            match c.reply {
                ReplyMode::On => {}
                ReplyMode::Off => reply.truncate(before),
                ReplyMode::Skip => {
                    reply.truncate(before);
                    c.reply = ReplyMode::SkipNext;
                }
                ReplyMode::SkipNext => {
                    reply.truncate(before);
                    c.reply = ReplyMode::On;
                }
            }
        }
        conn.plain = self.clients.map.get(&id).map_or(true, Client::plain);
        quit
    }

    fn gated(
        &mut self,
        id: ConnId,
        spec: Option<&'static Spec>,
        args: Args<'_>,
        reply: &mut Vec<u8>,
        refuse: Option<&str>,
    ) -> bool {
        let Some(spec) = spec else {
            self.reject(id, None, reply, &cmd::unknown_command(args));
            return false;
        };
        if !spec.arity_ok(args.len()) {
            self.reject(id, Some(spec), reply, &cmd::wrong_arity(spec.name));
            return false;
        }
        let Some(client) = self.clients.map.get_mut(&id) else {
            return self.dispatch(id, spec, args, reply, refuse);
        };
        if !client.authed && !matches!(spec.name, "auth" | "hello" | "quit" | "reset") {
            self.reject(id, Some(spec), reply, ERR_NOAUTH);
            return false;
        }
        if client.multi.is_some() && spec.flags & cmd::NO_MULTI != 0 {
            self.reject(
                id,
                Some(spec),
                reply,
                "ERR Command not allowed inside a transaction",
            );
            return false;
        }
        // A RESP3 client tells pushes from replies by their type: it may run anything.
        if client.subscriptions() > 0
            && !client.resp3
            && !matches!(
                spec.name,
                "ping"
                    | "subscribe"
                    | "unsubscribe"
                    | "psubscribe"
                    | "punsubscribe"
                    | "quit"
                    | "reset"
            )
        {
            let msg = format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            );
            self.reject(id, Some(spec), reply, &msg);
            return false;
        }
        if spec.name == "ping" && client.subscriptions() > 0 && !client.resp3 {
            let before = reply.len();
            self.ping(id, args, reply);
            self.count(spec, reply, before);
            return false;
        }
        let queues = client.multi.is_some()
            && !matches!(
                spec.name,
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            );
        if queues && self.server.maxmemory != 0 && grows(spec) && !self.evict() {
            self.reject(id, Some(spec), reply, ERR_OOM);
            return false;
        }
        let Some(client) = self.clients.map.get_mut(&id) else {
            return false;
        };
        if let Some(m) = &mut client.multi {
            if queues {
                let weight: usize = args.iter().map(|a| a.len() + 16).sum();
                if m.queue.weight() + weight > self.server.limits.max_query {
                    m.aborted = true;
                    resp::encode_error(
                        reply,
                        "ERR the transaction is larger than client-query-buffer-limit",
                    );
                    return false;
                }
                m.queue.push(args);
                reply.extend_from_slice(b"+QUEUED\r\n");
                return false;
            }
        }
        client.last_cmd = spec.name;
        self.dispatch(id, spec, args, reply, refuse)
    }

    /// Runs a command that passed the gates (or was queued and is now executed).
    pub(super) fn dispatch(
        &mut self,
        id: ConnId,
        spec: &'static Spec,
        args: Args<'_>,
        reply: &mut Vec<u8>,
        refuse: Option<&str>,
    ) -> bool {
        if spec.flags & cmd::CONN == 0 {
            return self.run(spec, args, reply, refuse);
        }
        let before = reply.len();
        let mut quit = false;
        match spec.name {
            "multi" => self.multi(id, reply),
            "exec" => self.exec_transaction(id, reply, refuse),
            "discard" => self.discard(id, reply),
            "watch" => self.watch(id, args, reply),
            "unwatch" => {
                self.clients.unwatch_all(id);
                reply.extend_from_slice(resp::OK);
            }
            "subscribe" | "psubscribe" => {
                self.subscribe(id, args, reply, spec.name == "psubscribe")
            }
            "unsubscribe" | "punsubscribe" => {
                self.unsubscribe(id, args, reply, spec.name == "punsubscribe")
            }
            "publish" => self.publish(args, reply),
            "pubsub" => self.pubsub(args, reply),
            "ping" => self.ping(id, args, reply),
            "auth" => self.auth(id, args, reply),
            "hello" => self.hello(id, args, reply),
            "client" => self.client(id, args, reply),
            "reset" => self.reset(id, reply),
            "config" => self.config(args, reply),
            "info" => self.info(args, reply),
            "eval" => self.eval(id, args, reply, refuse, false, false),
            "evalsha" => self.eval(id, args, reply, refuse, true, false),
            "eval_ro" => self.eval(id, args, reply, refuse, false, true),
            "evalsha_ro" => self.eval(id, args, reply, refuse, true, true),
            "script" => self.script(args, reply),
            "shutdown" => {
                // A clean stop, as SIGTERM: clients drained, the log synced.
                tracing::info!("SHUTDOWN asked by a client");
                match &mut self.on_shutdown {
                    Some(stop) => {
                        stop();
                        quit = true;
                    }
                    None => resp::encode_error(reply, "ERR Errors trying to SHUTDOWN. Check logs."),
                }
            }
            "quit" => {
                reply.extend_from_slice(resp::OK);
                quit = true;
            }
            _ => resp::encode_error(reply, &cmd::unknown_command(args)),
        }
        self.count(spec, reply, before);
        quit
    }

    fn multi(&mut self, id: ConnId, reply: &mut Vec<u8>) {
        let Some(c) = self.clients.map.get_mut(&id) else {
            return;
        };
        if c.multi.is_some() {
            return resp::encode_error(reply, "ERR MULTI calls can not be nested");
        }
        c.multi = Some(Multi::default());
        reply.extend_from_slice(resp::OK);
    }

    fn discard(&mut self, id: ConnId, reply: &mut Vec<u8>) {
        let Some(c) = self.clients.map.get_mut(&id) else {
            return;
        };
        if c.multi.take().is_none() {
            return resp::encode_error(reply, "ERR DISCARD without MULTI");
        }
        self.clients.unwatch_all(id);
        reply.extend_from_slice(resp::OK);
    }

    fn watch(&mut self, id: ConnId, args: Args<'_>, reply: &mut Vec<u8>) {
        let Some(c) = self.clients.map.get(&id) else {
            return;
        };
        if c.multi.is_some() {
            return resp::encode_error(reply, "ERR WATCH inside MULTI is not allowed");
        }
        if !c.dirty_cas {
            let now = self.ks.now;
            for key in args.iter().skip(1) {
                let stale = self.ks.expire_at(key).is_some_and(|at| at <= now);
                self.clients.watch(id, key, stale);
            }
        }
        reply.extend_from_slice(resp::OK);
    }

    fn exec_transaction(&mut self, id: ConnId, reply: &mut Vec<u8>, refuse: Option<&str>) {
        let Some(c) = self.clients.map.get_mut(&id) else {
            return;
        };
        let Some(multi) = c.multi.take() else {
            return resp::encode_error(reply, "ERR EXEC without MULTI");
        };
        let now = self.ks.now;
        let expired = c
            .watched
            .iter()
            .any(|w| !w.expired && self.ks.expire_at(&w.key).is_some_and(|at| at <= now));
        let dirty = c.dirty_cas || expired;
        self.clients.unwatch_all(id);
        if multi.aborted {
            return resp::encode_error(reply, ERR_EXECABORT);
        }
        if self.server.maxmemory != 0
            && (0..multi.queue.len())
                .filter_map(|i| cmd::lookup(multi.queue.get(i).get(0)))
                .any(grows)
            && self.over_maxmemory()
        {
            return resp::encode_error(
                reply,
                &format!("EXECABORT Transaction discarded because of: {ERR_OOM}"),
            );
        }
        if dirty {
            return resp::encode_null_array(reply, self.resp3);
        }
        resp::encode_array_len(reply, multi.queue.len());
        let feed_start = self.ks.feed.len();
        let mut logged = 0;
        self.in_exec = true;
        for i in 0..multi.queue.len() {
            let args = multi.queue.get(i);
            let Some(spec) = cmd::lookup(args.get(0)) else {
                resp::encode_error(reply, &cmd::unknown_command(args));
                continue;
            };
            let before = self.ks.feed.len();
            if let Some(c) = self.clients.map.get_mut(&id) {
                c.last_cmd = spec.name;
            }
            self.dispatch(id, spec, args, reply, refuse);
            if self.ks.feed.len() > before {
                logged += 1;
            }
        }
        self.in_exec = false;
        // Two or more writes go to the log as one group: replay applies all or none.
        if logged >= 2 && self.ks.feed.len() > feed_start {
            let mut head = Vec::with_capacity(16);
            resp::encode_command(&mut head, &[b"MULTI"]);
            self.ks.feed.splice(feed_start..feed_start, head);
            resp::encode_command(&mut self.ks.feed, &[b"EXEC"]);
        }
    }

    fn subscribe(&mut self, id: ConnId, args: Args<'_>, reply: &mut Vec<u8>, pattern: bool) {
        let Some(c) = self.clients.map.get_mut(&id) else {
            return;
        };
        let kind: &[u8] = if pattern { b"psubscribe" } else { b"subscribe" };
        for name in args.iter().skip(1) {
            let (mine, table) = if pattern {
                (&mut c.patterns, &mut self.clients.patterns)
            } else {
                (&mut c.channels, &mut self.clients.channels)
            };
            if mine.insert(name.into()) {
                table.entry(name.into()).or_default().push(id);
            }
            resp::encode_push_len(reply, 3, c.resp3);
            resp::encode_bulk(reply, kind);
            resp::encode_bulk(reply, name);
            resp::encode_int(reply, c.subscriptions() as i64);
        }
    }

    fn unsubscribe(&mut self, id: ConnId, args: Args<'_>, reply: &mut Vec<u8>, pattern: bool) {
        let Some(c) = self.clients.map.get_mut(&id) else {
            return;
        };
        let kind: &[u8] = if pattern {
            b"punsubscribe"
        } else {
            b"unsubscribe"
        };
        let names: Vec<Box<[u8]>> = if args.len() > 1 {
            args.iter().skip(1).map(Into::into).collect()
        } else if pattern {
            c.patterns.iter().cloned().collect()
        } else {
            c.channels.iter().cloned().collect()
        };
        if names.is_empty() {
            resp::encode_push_len(reply, 3, c.resp3);
            resp::encode_bulk(reply, kind);
            resp::encode_null(reply, c.resp3);
            resp::encode_int(reply, c.subscriptions() as i64);
            return;
        }
        for name in names {
            let (mine, table) = if pattern {
                (&mut c.patterns, &mut self.clients.patterns)
            } else {
                (&mut c.channels, &mut self.clients.channels)
            };
            if mine.remove(&name) {
                remove_from(table, &name, id);
            }
            resp::encode_push_len(reply, 3, c.resp3);
            resp::encode_bulk(reply, kind);
            resp::encode_bulk(reply, &name);
            resp::encode_int(reply, c.subscriptions() as i64);
        }
    }

    fn publish(&mut self, args: Args<'_>, reply: &mut Vec<u8>) {
        let n = self.publish_message(args.get(1), args.get(2));
        resp::encode_int(reply, n as i64);
    }

    /// Delivers a message to the channel's subscribers and the matching patterns';
    /// returns how many received it.
    pub(super) fn publish_message(&mut self, channel: &[u8], message: &[u8]) -> usize {
        let mut n = 0;
        let clients = &self.clients.map;
        let is_resp3 = |id: &ConnId| clients.get(id).is_some_and(|c| c.resp3);
        if let Some(ids) = self.clients.channels.get(channel) {
            // One message per protocol spoken among the subscribers, built once.
            let mut built: [Option<Bytes>; 2] = [None, None];
            for &id in ids {
                let resp3 = is_resp3(&id);
                let m = built[usize::from(resp3)].get_or_insert_with(|| {
                    let mut m = Vec::with_capacity(channel.len() + message.len() + 40);
                    resp::encode_push_len(&mut m, 3, resp3);
                    resp::encode_bulk(&mut m, b"message");
                    resp::encode_bulk(&mut m, channel);
                    resp::encode_bulk(&mut m, message);
                    Bytes::from(m)
                });
                self.outgoing.push((id, m.clone()));
                n += 1;
            }
        }
        for (pat, ids) in &self.clients.patterns {
            if !glob::matches(pat, channel, false) {
                continue;
            }
            let mut built: [Option<Bytes>; 2] = [None, None];
            for &id in ids {
                let resp3 = is_resp3(&id);
                let m = built[usize::from(resp3)].get_or_insert_with(|| {
                    let mut m = Vec::with_capacity(pat.len() + channel.len() + message.len() + 48);
                    resp::encode_push_len(&mut m, 4, resp3);
                    resp::encode_bulk(&mut m, b"pmessage");
                    resp::encode_bulk(&mut m, pat);
                    resp::encode_bulk(&mut m, channel);
                    resp::encode_bulk(&mut m, message);
                    Bytes::from(m)
                });
                self.outgoing.push((id, m.clone()));
                n += 1;
            }
        }
        n
    }

    fn pubsub(&mut self, args: Args<'_>, reply: &mut Vec<u8>) {
        let sub = args.get(1);
        if sub.eq_ignore_ascii_case(b"CHANNELS") && args.len() <= 3 {
            let pat = (args.len() == 3).then(|| args.get(2));
            let names: Vec<&Box<[u8]>> = self
                .clients
                .channels
                .keys()
                .filter(|c| pat.map_or(true, |p| glob::matches(p, c, false)))
                .collect();
            resp::encode_array_len(reply, names.len());
            for n in names {
                resp::encode_bulk(reply, n);
            }
        } else if sub.eq_ignore_ascii_case(b"NUMSUB") {
            resp::encode_array_len(reply, 2 * (args.len() - 2));
            for ch in args.iter().skip(2) {
                resp::encode_bulk(reply, ch);
                let n = self.clients.channels.get(ch).map_or(0, Vec::len);
                resp::encode_int(reply, n as i64);
            }
        } else if sub.eq_ignore_ascii_case(b"NUMPAT") && args.len() == 2 {
            resp::encode_int(reply, self.clients.patterns.len() as i64);
        } else if sub.eq_ignore_ascii_case(b"SHARDCHANNELS") && args.len() <= 3 {
            resp::encode_array_len(reply, 0);
        } else if sub.eq_ignore_ascii_case(b"SHARDNUMSUB") {
            resp::encode_array_len(reply, 2 * (args.len() - 2));
            for ch in args.iter().skip(2) {
                resp::encode_bulk(reply, ch);
                resp::encode_int(reply, 0);
            }
        } else {
            resp::encode_error(reply, &unknown_subcommand(sub, "PUBSUB"));
        }
    }

    fn ping(&mut self, id: ConnId, args: Args<'_>, reply: &mut Vec<u8>) {
        if args.len() > 2 {
            return resp::encode_error(reply, &cmd::wrong_arity("ping"));
        }
        let subscribed = self
            .clients
            .map
            .get(&id)
            .is_some_and(|c| c.subscriptions() > 0 && !c.resp3);
        if subscribed {
            resp::encode_array_len(reply, 2);
            resp::encode_bulk(reply, b"pong");
            resp::encode_bulk(reply, if args.len() == 2 { args.get(1) } else { b"" });
        } else if args.len() == 2 {
            resp::encode_bulk(reply, args.get(1));
        } else {
            reply.extend_from_slice(b"+PONG\r\n");
        }
    }

    /// Checks a password for `user`; None when no password is configured.
    fn password_ok(&self, user: &[u8], pass: &[u8]) -> Option<bool> {
        let want = self.server.requirepass.as_deref()?;
        Some(user == b"default" && pass == want.as_bytes())
    }

    fn auth(&mut self, id: ConnId, args: Args<'_>, reply: &mut Vec<u8>) {
        if args.len() > 3 {
            return resp::encode_error(reply, super::cmd::ERR_SYNTAX);
        }
        let (user, pass) = if args.len() == 3 {
            (args.get(1), args.get(2))
        } else {
            (&b"default"[..], args.get(1))
        };
        match self.password_ok(user, pass) {
            None if args.len() == 2 => resp::encode_error(
                reply,
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ),
            // No password: the default user accepts any, as Redis's `nopass`.
            None if user == b"default" => reply.extend_from_slice(resp::OK),
            Some(true) => {
                if let Some(c) = self.clients.map.get_mut(&id) {
                    c.authed = true;
                }
                reply.extend_from_slice(resp::OK);
            }
            _ => resp::encode_error(reply, ERR_WRONGPASS),
        }
    }

    fn hello(&mut self, id: ConnId, args: Args<'_>, reply: &mut Vec<u8>) {
        let mut i = 1;
        // The protocol asked for; none keeps the client's.
        let mut proto = None;
        if args.len() >= 2 {
            match parse_i64(args.get(1)) {
                None => {
                    return resp::encode_error(
                        reply,
                        "ERR Protocol version is not an integer or out of range",
                    )
                }
                Some(v) if v != 2 && v != 3 => {
                    return resp::encode_error(reply, "NOPROTO unsupported protocol version")
                }
                Some(v) => proto = Some(v == 3),
            }
            i = 2;
        }
        let mut name = None;
        while i < args.len() {
            let opt = args.get(i);
            let more = args.len() - 1 - i;
            if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
                if self.password_ok(args.get(i + 1), args.get(i + 2)) != Some(true)
                    && !(self.server.requirepass.is_none() && args.get(i + 1) == b"default")
                {
                    return resp::encode_error(reply, ERR_WRONGPASS);
                }
                if let Some(c) = self.clients.map.get_mut(&id) {
                    c.authed = true;
                }
                i += 3;
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
                if let Err(e) = check_client_name(args.get(i + 1)) {
                    return resp::encode_error(reply, e);
                }
                name = Some(args.get(i + 1).to_vec());
                i += 2;
            } else {
                return resp::encode_error(
                    reply,
                    &format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(opt)
                    ),
                );
            }
        }
        let Some(c) = self.clients.map.get_mut(&id) else {
            return;
        };
        if !c.authed {
            return resp::encode_error(
                reply,
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(n) = name {
            c.name = (!n.is_empty()).then_some(n);
        }
        if let Some(resp3) = proto {
            c.resp3 = resp3;
        }
        // The reply is in the protocol just chosen, as Redis's.
        let resp3 = c.resp3;
        self.resp3 = resp3;
        resp::encode_map_len(reply, 7, resp3);
        for (k, v) in [("server", "redis"), ("version", super::REDIS_VERSION)] {
            resp::encode_bulk(reply, k.as_bytes());
            resp::encode_bulk(reply, v.as_bytes());
        }
        resp::encode_bulk(reply, b"proto");
        resp::encode_int(reply, if resp3 { 3 } else { 2 });
        resp::encode_bulk(reply, b"id");
        resp::encode_int(reply, id.0 as i64);
        for (k, v) in [("mode", "standalone"), ("role", "master")] {
            resp::encode_bulk(reply, k.as_bytes());
            resp::encode_bulk(reply, v.as_bytes());
        }
        resp::encode_bulk(reply, b"modules");
        resp::encode_array_len(reply, 0);
    }

    fn reset(&mut self, id: ConnId, reply: &mut Vec<u8>) {
        self.clients.unwatch_all(id);
        self.clients.unsubscribe_all(id);
        let authed = self.server.requirepass.is_none();
        if let Some(c) = self.clients.map.get_mut(&id) {
            c.multi = None;
            c.name = None;
            c.authed = authed;
            c.resp3 = false;
        }
        reply.extend_from_slice(b"+RESET\r\n");
    }

    fn client_line(&self, id: ConnId, c: &Client, out: &mut String) {
        let mut flags = String::new();
        if c.multi.is_some() {
            flags.push('x');
        }
        if c.subscriptions() > 0 {
            flags.push('P');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let name = c
            .name
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "id={} addr={} laddr=127.0.0.1:{} fd=-1 name={} age={} idle=0 flags={} db=0 sub={} psub={} ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem={} rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
            id.0,
            c.addr,
            self.server.port,
            name,
            c.created.elapsed().as_secs(),
            flags,
            c.channels.len(),
            c.patterns.len(),
            c.multi.as_ref().map_or(-1, |m| m.queue.len() as i64),
            c.multi.as_ref().map_or(0, |m| m.queue.weight()),
            c.last_cmd,
            if c.resp3 { 3 } else { 2 },
        );
    }

    fn client(&mut self, id: ConnId, args: Args<'_>, reply: &mut Vec<u8>) {
        let sub = args.get(1);
        let n = args.len();
        if sub.eq_ignore_ascii_case(b"ID") && n == 2 {
            resp::encode_int(reply, id.0 as i64);
        } else if sub.eq_ignore_ascii_case(b"SETNAME") && n == 3 {
            let name = args.get(2);
            if let Err(e) = check_client_name(name) {
                return resp::encode_error(reply, e);
            }
            if let Some(c) = self.clients.map.get_mut(&id) {
                c.name = (!name.is_empty()).then(|| name.to_vec());
            }
            reply.extend_from_slice(resp::OK);
        } else if sub.eq_ignore_ascii_case(b"GETNAME") && n == 2 {
            match self.clients.map.get(&id).and_then(|c| c.name.as_deref()) {
                Some(name) => resp::encode_bulk(reply, name),
                None => resp::encode_null(reply, self.resp3),
            }
        } else if sub.eq_ignore_ascii_case(b"INFO") && n == 2 {
            let mut s = String::new();
            if let Some(c) = self.clients.map.get(&id) {
                self.client_line(id, c, &mut s);
            }
            resp::encode_verbatim(reply, s.as_bytes(), self.resp3);
        } else if sub.eq_ignore_ascii_case(b"LIST") {
            let mut ids: Option<Vec<u64>> = None;
            let mut i = 2;
            while i < n {
                let opt = args.get(i);
                if opt.eq_ignore_ascii_case(b"ID") && i + 1 < n {
                    let mut v = Vec::new();
                    for a in args.iter().skip(i + 1) {
                        match parse_i64(a) {
                            Some(x) if x > 0 => v.push(x as u64),
                            _ => return resp::encode_error(reply, "ERR Invalid client ID"),
                        }
                    }
                    ids = Some(v);
                    i = n;
                } else if opt.eq_ignore_ascii_case(b"TYPE") && i + 1 < n {
                    let t = args.get(i + 1);
                    if !(t.eq_ignore_ascii_case(b"normal") || t.eq_ignore_ascii_case(b"pubsub")) {
                        return resp::encode_error(
                            reply,
                            &format!("ERR Unknown client type '{}'", String::from_utf8_lossy(t)),
                        );
                    }
                    i += 2;
                } else {
                    return resp::encode_error(reply, super::cmd::ERR_SYNTAX);
                }
            }
            let mut all: Vec<(&ConnId, &Client)> = self.clients.map.iter().collect();
            all.sort_by_key(|(id, _)| **id);
            let mut s = String::new();
            for (cid, c) in all {
                if ids.as_ref().is_some_and(|v| !v.contains(&cid.0)) {
                    continue;
                }
                self.client_line(*cid, c, &mut s);
            }
            resp::encode_verbatim(reply, s.as_bytes(), self.resp3);
        } else if sub.eq_ignore_ascii_case(b"UNBLOCK") && (n == 3 || n == 4) {
            let Some(target) = parse_i64(args.get(2)) else {
                return resp::encode_error(reply, super::cmd::ERR_NOT_INT);
            };
            let error = match (n == 4).then(|| args.get(3)) {
                None => false,
                Some(w) if w.eq_ignore_ascii_case(b"TIMEOUT") => false,
                Some(w) if w.eq_ignore_ascii_case(b"ERROR") => true,
                Some(_) => {
                    return resp::encode_error(
                        reply,
                        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                    )
                }
            };
            let done = target >= 0 && self.unblock(ConnId(target as u64), error);
            resp::encode_int(reply, i64::from(done));
        } else if sub.eq_ignore_ascii_case(b"KILL") && n >= 3 {
            self.client_kill(id, args, reply);
        } else if sub.eq_ignore_ascii_case(b"REPLY") && n == 3 {
            let mode = args.get(2);
            let mode = if mode.eq_ignore_ascii_case(b"ON") {
                ReplyMode::On
            } else if mode.eq_ignore_ascii_case(b"OFF") {
                ReplyMode::Off
            } else if mode.eq_ignore_ascii_case(b"SKIP") {
                ReplyMode::Skip
            } else {
                return resp::encode_error(reply, super::cmd::ERR_SYNTAX);
            };
            if let Some(c) = self.clients.map.get_mut(&id) {
                c.reply = mode;
            }
            if mode == ReplyMode::On {
                reply.extend_from_slice(resp::OK);
            }
        } else if (sub.eq_ignore_ascii_case(b"NO-EVICT") || sub.eq_ignore_ascii_case(b"NO-TOUCH"))
            && n == 3
        {
            reply.extend_from_slice(resp::OK);
        } else {
            resp::encode_error(reply, &unknown_subcommand(sub, "CLIENT"));
        }
    }

    fn client_kill(&mut self, me: ConnId, args: Args<'_>, reply: &mut Vec<u8>) {
        // The old form: CLIENT KILL addr:port.
        if args.len() == 3 {
            let addr = String::from_utf8_lossy(args.get(2)).into_owned();
            let hit = self
                .clients
                .map
                .iter()
                .find(|(_, c)| c.addr.to_string() == addr)
                .map(|(id, _)| *id);
            return match hit {
                Some(id) => {
                    self.kills.push(id);
                    reply.extend_from_slice(resp::OK);
                }
                None => resp::encode_error(reply, "ERR No such client"),
            };
        }
        let mut by_id = None;
        let mut by_addr = None;
        let mut skipme = true;
        let mut i = 2;
        while i + 1 < args.len() {
            let (opt, val) = (args.get(i), args.get(i + 1));
            if opt.eq_ignore_ascii_case(b"ID") {
                match parse_i64(val) {
                    Some(v) if v > 0 => by_id = Some(v as u64),
                    _ => {
                        return resp::encode_error(reply, "ERR client-id should be greater than 0")
                    }
                }
            } else if opt.eq_ignore_ascii_case(b"ADDR") {
                by_addr = Some(String::from_utf8_lossy(val).into_owned());
            } else if opt.eq_ignore_ascii_case(b"SKIPME") {
                if val.eq_ignore_ascii_case(b"yes") {
                    skipme = true;
                } else if val.eq_ignore_ascii_case(b"no") {
                    skipme = false;
                } else {
                    return resp::encode_error(reply, super::cmd::ERR_SYNTAX);
                }
            } else if opt.eq_ignore_ascii_case(b"TYPE")
                || opt.eq_ignore_ascii_case(b"USER")
                || opt.eq_ignore_ascii_case(b"LADDR")
            {
            } else {
                return resp::encode_error(reply, super::cmd::ERR_SYNTAX);
            }
            i += 2;
        }
        if i != args.len() {
            return resp::encode_error(reply, super::cmd::ERR_SYNTAX);
        }
        let hits: Vec<ConnId> = self
            .clients
            .map
            .iter()
            .filter(|(id, c)| {
                by_id.map_or(true, |v| id.0 == v)
                    && by_addr.as_ref().map_or(true, |a| c.addr.to_string() == *a)
                    && !(skipme && **id == me)
            })
            .map(|(id, _)| *id)
            .collect();
        resp::encode_int(reply, hits.len() as i64);
        self.kills.extend(hits);
    }

    fn config(&mut self, args: Args<'_>, reply: &mut Vec<u8>) {
        let sub = args.get(1);
        if sub.eq_ignore_ascii_case(b"GET") && args.len() >= 3 {
            let mut hits: Vec<(&str, String)> = Vec::new();
            for (name, value) in self.server.params.iter() {
                if args
                    .iter()
                    .skip(2)
                    .any(|p| glob::matches(p, name.as_bytes(), true))
                    && !hits.iter().any(|(n, _)| *n == name)
                {
                    hits.push((name, value));
                }
            }
            resp::encode_map_len(reply, hits.len(), self.resp3);
            for (name, value) in hits {
                resp::encode_bulk(reply, name.as_bytes());
                resp::encode_bulk(reply, value.as_bytes());
            }
        } else if sub.eq_ignore_ascii_case(b"SET") && args.len() >= 4 && args.len() % 2 == 0 {
            // All or nothing, as Redis: check every pair before applying any.
            let pairs: Vec<(&[u8], &[u8])> = (2..args.len())
                .step_by(2)
                .map(|i| (args.get(i), args.get(i + 1)))
                .collect();
            for &(name, value) in &pairs {
                if let Err(e) = self.server.params.check(name, value) {
                    return resp::encode_error(reply, &e);
                }
            }
            for (name, value) in pairs {
                self.server.params.set(name, value);
            }
            self.server.apply_params();
            self.evict();
            reply.extend_from_slice(resp::OK);
        } else if sub.eq_ignore_ascii_case(b"RESETSTAT") && args.len() == 2 {
            self.server.stats.reset();
            self.ks.stats = Default::default();
            self.cmdstats
                .iter_mut()
                .for_each(|s| *s = CmdStat::default());
            self.errorstats.clear();
            reply.extend_from_slice(resp::OK);
        } else if sub.eq_ignore_ascii_case(b"REWRITE") && args.len() == 2 {
            resp::encode_error(reply, "ERR The server is running without a config file")
        } else if sub.eq_ignore_ascii_case(b"SET") {
            resp::encode_error(reply, &cmd::wrong_arity("config|set"));
        } else if sub.eq_ignore_ascii_case(b"GET") {
            resp::encode_error(reply, &cmd::wrong_arity("config|get"));
        } else {
            resp::encode_error(reply, &unknown_subcommand(sub, "CONFIG"));
        }
    }

    fn info(&mut self, args: Args<'_>, reply: &mut Vec<u8>) {
        let text = super::info::render(self, args);
        resp::encode_verbatim(reply, text.as_bytes(), self.resp3);
    }

    /// Pub/Sub messages and kills made during a batch go out after it, behind whatever
    /// is held for the log (see [`Kv::data`]).
    pub(super) fn flush_outgoing(&mut self, out: &mut crate::proto::Outbox, hold: bool) {
        for (id, m) in self.outgoing.drain(..) {
            if hold {
                self.held_bytes += m.len();
                self.held.push(Held::Send(id, m));
            } else {
                out.send(id, m);
            }
        }
        for id in self.kills.drain(..) {
            if hold {
                self.held.push(Held::Close(id));
            } else {
                out.close(id);
            }
        }
    }
}

/// The argument positions of a command's keys, from its table row.
pub(super) fn key_positions(spec: &Spec, args: Args<'_>) -> impl Iterator<Item = usize> {
    let n = args.len();
    // SORT writes one key, STORE's destination, found by parsing its options (the
    // key it sorts is only read); Redis's `sortGetKeys`.
    let (store, first) = if spec.name == "sort" {
        (cmd::sort::store_at(args), n)
    } else if spec.first_key > 0 {
        (None, spec.first_key as usize)
    } else {
        (None, n)
    };
    let last = if spec.last_key < 0 {
        n as i64 + i64::from(spec.last_key)
    } else {
        i64::from(spec.last_key)
    };
    (first..n)
        .step_by(spec.step.max(1) as usize)
        .take_while(move |&i| (i as i64) <= last)
        .chain(store)
}

fn unknown_subcommand(sub: &[u8], cmd: &str) -> String {
    let sub = String::from_utf8_lossy(sub);
    let sub: String = sub.chars().take(128).collect();
    format!("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")
}

fn check_client_name(name: &[u8]) -> Result<(), &'static str> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    Ok(())
}
