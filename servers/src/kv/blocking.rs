//! Blocking pops: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP.
//!
//! The one idea, as in Redis's `blocked.c`: a blocking command first tries as its
//! plain form; when every key is empty it leaves a [`Request`] in the keyspace instead
//! of a reply, and [`Kv::data`] parks the client: it is queued on each of its keys
//! (FIFO per key), the rest of its input waits, and its timeout is the connection's
//! deadline on the event loop ([`crate::proto::Outbox::deadline`]), never a sleep.
//! After every batch that wrote something, [`Kv::serve_blocked`] gives each key that
//! now holds data to the clients queued on it, oldest first; each pop is logged as
//! the plain pop that happened (LPOP, RPOP, LMOVE, ZPOPMIN, ZPOPMAX) and its reply is
//! held for the log write like any other. A deadline that passes answers a null array.
//! Inside a transaction (and while replaying) nothing blocks: an empty result is
//! answered at once, as Redis does.

use super::cmd::lists::{self, End};
use super::cmd::zsets;
use super::keyspace::{Keyspace, WRONGTYPE};
use super::value::Kind;
use super::{Held, Kv};
use crate::proto::resp::{self, Args};
use crate::proto::{ConnId, Outbox};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

/// What a parked client waits to do.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// BLPOP/BRPOP.
    Pop(End),
    /// BLMOVE/BRPOPLPUSH: pop from `from`, push to `dst` at `to`.
    Move { dst: Box<[u8]>, from: End, to: End },
    /// BZPOPMIN (`false`) / BZPOPMAX (`true`).
    ZPop(bool),
    /// BLMPOP: up to `count` from one end of the first list that has any.
    MPop(End, usize),
    /// BZMPOP: up to `count` from the low (`false`) or high end.
    ZMPop(bool, usize),
}

impl Op {
    fn kind(&self) -> Kind {
        match self {
            Op::ZPop(_) | Op::ZMPop(..) => Kind::ZSet,
            _ => Kind::List,
        }
    }
}

/// A blocking command that found nothing, left for [`Kv::data`] to park.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub keys: Vec<Box<[u8]>>,
    pub op: Op,
    /// `None`: wait for ever.
    pub timeout: Option<Duration>,
    /// The client speaks RESP3 (its reply, even when it comes later, in that protocol).
    pub resp3: bool,
}

/// The parked clients.
#[derive(Default)]
pub(crate) struct Blocked {
    waiting: HashMap<ConnId, Request>,
    /// Per key, the clients queued on it, oldest first.
    queues: HashMap<Box<[u8]>, VecDeque<ConnId>>,
}

impl Blocked {
    pub fn is_blocked(&self, id: ConnId) -> bool {
        self.waiting.contains_key(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many clients are parked (INFO's `blocked_clients`).
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn park(&mut self, id: ConnId, req: Request) {
        for k in &req.keys {
            self.queues.entry(k.clone()).or_default().push_back(id);
        }
        self.waiting.insert(id, req);
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Request> {
        let req = self.waiting.remove(&id)?;
        for k in &req.keys {
            if let Some(q) = self.queues.get_mut(k) {
                q.retain(|c| *c != id);
                if q.is_empty() {
                    self.queues.remove(k);
                }
            }
        }
        Some(req)
    }
}

/// Parses a blocking timeout in seconds (a float, as Redis 6+ takes it).
fn timeout_arg(a: &[u8]) -> Result<Option<Duration>, &'static str> {
    let v = super::value::parse_f64(a)
        .filter(|v| v.is_finite())
        .ok_or("ERR timeout is not a float or out of range")?;
    if v < 0.0 {
        return Err("ERR timeout is negative");
    }
    if v == 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(v)
        .map(Some)
        .map_err(|_| "ERR timeout is not a float or out of range")
}

/// Tries `op` on `key` (which holds a value of the op's type): the reply and the log
/// record of the pop, or `None` when the key is empty.
fn attempt(ks: &mut Keyspace, key: &[u8], op: &Op, resp3: bool) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    match op {
        Op::Pop(end) => {
            let Some(v) = lists::pop_n(ks, key, *end, 1).pop() else {
                return Ok(None);
            };
            let name: &[u8] = if *end == End::Left { b"LPOP" } else { b"RPOP" };
            ks.log(&[name, key]);
            resp::encode_array_len(&mut out, 2);
            resp::encode_bulk(&mut out, key);
            resp::encode_bulk(&mut out, &v);
        }
        Op::Move { dst, from, to } => {
            let Some(v) = lists::move_one(ks, key, dst, *from, *to)? else {
                return Ok(None);
            };
            let side = |e: End| -> &[u8] {
                if e == End::Left {
                    b"LEFT"
                } else {
                    b"RIGHT"
                }
            };
            ks.log(&[&b"LMOVE"[..], key, dst, side(*from), side(*to)]);
            resp::encode_bulk(&mut out, &v);
        }
        Op::ZPop(max) => {
            let Some((s, m)) = zsets::pop_n(ks, key, *max, 1).pop() else {
                return Ok(None);
            };
            let name: &[u8] = if *max { b"ZPOPMAX" } else { b"ZPOPMIN" };
            ks.log(&[name, key]);
            resp::encode_array_len(&mut out, 3);
            resp::encode_bulk(&mut out, key);
            resp::encode_bulk(&mut out, &m);
            zsets::double(&mut out, s, resp3);
        }
        Op::MPop(end, count) => {
            let got = lists::pop_n(ks, key, *end, *count);
            if got.is_empty() {
                return Ok(None);
            }
            let name: &[u8] = if *end == End::Left { b"LPOP" } else { b"RPOP" };
            let mut b = itoa::Buffer::new();
            ks.log(&[name, key, b.format(got.len()).as_bytes()]);
            resp::encode_array_len(&mut out, 2);
            resp::encode_bulk(&mut out, key);
            resp::encode_array_len(&mut out, got.len());
            for v in &got {
                resp::encode_bulk(&mut out, v);
            }
        }
        Op::ZMPop(max, count) => {
            let got = zsets::pop_n(ks, key, *max, *count);
            if got.is_empty() {
                return Ok(None);
            }
            let name: &[u8] = if *max { b"ZPOPMAX" } else { b"ZPOPMIN" };
            let mut b = itoa::Buffer::new();
            ks.log(&[name, key, b.format(got.len()).as_bytes()]);
            resp::encode_array_len(&mut out, 2);
            resp::encode_bulk(&mut out, key);
            resp::encode_array_len(&mut out, got.len());
            for (s, m) in &got {
                resp::encode_array_len(&mut out, 2);
                resp::encode_bulk(&mut out, m);
                zsets::double(&mut out, *s, resp3);
            }
        }
    }
    Ok(Some(out))
}

/// The reply when nothing came: a null array, as Redis answers a timed-out client.
fn timed_out(resp3: bool) -> &'static [u8] {
    if resp3 {
        resp::NULL3
    } else {
        resp::NULL_ARRAY
    }
}

/// The command half: try now, else leave a request (or, where nothing may block,
/// answer empty).
fn blocking(ctx: &mut super::cmd::Ctx<'_>, keys: Vec<Box<[u8]>>, op: Op, timeout: &[u8]) {
    let timeout = match timeout_arg(timeout) {
        Ok(t) => t,
        Err(e) => return ctx.err(e),
    };
    let kind = op.kind();
    for key in &keys {
        match ctx.ks.kind(key) {
            Some(k) if k != kind => return ctx.err(WRONGTYPE),
            _ => {}
        }
    }
    if let Op::Move { dst, .. } = &op {
        if matches!(ctx.ks.kind(dst), Some(k) if k != Kind::List) && ctx.ks.kind(&keys[0]).is_some()
        {
            return ctx.err(WRONGTYPE);
        }
    }
    for key in &keys {
        if ctx.ks.kind(key).is_none() {
            continue;
        }
        match attempt(ctx.ks, key, &op, ctx.resp3) {
            Ok(Some(reply)) => return ctx.out.extend_from_slice(&reply),
            Ok(None) => {}
            Err(e) => return ctx.err(&e),
        }
    }
    if ctx.ks.may_block {
        ctx.ks.block_request = Some(Request {
            keys,
            op,
            timeout,
            resp3: ctx.resp3,
        });
    } else {
        ctx.out.extend_from_slice(timed_out(ctx.resp3));
    }
}

fn keys_of(args: Args<'_>, from: usize, to: usize) -> Vec<Box<[u8]>> {
    (from..to).map(|i| args.get(i).into()).collect()
}

pub(crate) fn blpop(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    let n = args.len();
    blocking(
        ctx,
        keys_of(args, 1, n - 1),
        Op::Pop(End::Left),
        args.get(n - 1),
    )
}

pub(crate) fn brpop(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    let n = args.len();
    blocking(
        ctx,
        keys_of(args, 1, n - 1),
        Op::Pop(End::Right),
        args.get(n - 1),
    )
}

pub(crate) fn bzpopmin(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    let n = args.len();
    blocking(
        ctx,
        keys_of(args, 1, n - 1),
        Op::ZPop(false),
        args.get(n - 1),
    )
}

pub(crate) fn bzpopmax(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    let n = args.len();
    blocking(
        ctx,
        keys_of(args, 1, n - 1),
        Op::ZPop(true),
        args.get(n - 1),
    )
}

pub(crate) fn blmove(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    let (Some(from), Some(to)) = (End::parse(args.get(3)), End::parse(args.get(4))) else {
        return ctx.err(super::cmd::ERR_SYNTAX);
    };
    let op = Op::Move {
        dst: args.get(2).into(),
        from,
        to,
    };
    blocking(ctx, keys_of(args, 1, 2), op, args.get(5))
}

/// BLMPOP and BZMPOP: `timeout numkeys key... WHERE [COUNT n]`; the timeout is
/// checked first, as Redis does.
fn mpop(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>, zset: bool) {
    if let Err(e) = timeout_arg(args.get(1)) {
        return ctx.err(e);
    }
    let words = if zset {
        ["MIN", "MAX"]
    } else {
        ["LEFT", "RIGHT"]
    };
    let (keys, second, count) = match zsets::mpop_args_at(args, 2, words) {
        Ok(v) => v,
        Err(e) => return ctx.err(e),
    };
    let op = if zset {
        Op::ZMPop(second, count)
    } else {
        Op::MPop(if second { End::Right } else { End::Left }, count)
    };
    let keys = keys.into_iter().map(Box::from).collect();
    blocking(ctx, keys, op, args.get(1))
}

pub(crate) fn blmpop(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    mpop(ctx, args, false)
}

pub(crate) fn bzmpop(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    mpop(ctx, args, true)
}

pub(crate) fn brpoplpush(ctx: &mut super::cmd::Ctx<'_>, args: Args<'_>) {
    let op = Op::Move {
        dst: args.get(2).into(),
        from: End::Right,
        to: End::Left,
    };
    blocking(ctx, keys_of(args, 1, 2), op, args.get(3))
}

impl Kv {
    /// Parks `id` if its last command left a request; true when it did.
    pub(super) fn park_if_blocked(&mut self, id: ConnId, out: &mut Outbox) -> bool {
        let Some(req) = self.ks.block_request.take() else {
            return false;
        };
        out.deadline(id, req.timeout);
        self.blocked.park(id, req);
        true
    }

    /// Gives keys that now hold data to the clients queued on them, oldest first.
    pub(super) fn serve_blocked(&mut self, out: &mut Outbox) {
        if self.blocked.is_empty() {
            return;
        }
        // A move can feed another key's queue: go round until nothing is served.
        loop {
            let mut served = false;
            let keys = self.ready_order();
            for key in keys {
                while let Some(&id) = self.blocked.queues.get(&key).and_then(VecDeque::front) {
                    let Some(req) = self.blocked.waiting.get(&id) else {
                        break;
                    };
                    let (op, resp3) = (req.op.clone(), req.resp3);
                    if self.ks.kind(&key) != Some(op.kind()) {
                        break;
                    }
                    match attempt(&mut self.ks, &key, &op, resp3) {
                        Ok(Some(reply)) => {
                            self.blocked.remove(id);
                            out.deadline(id, None);
                            self.held_bytes += reply.len();
                            self.held.push(Held::Send(id, reply.into()));
                            served = true;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // The destination changed type meanwhile: the error ends the wait.
                            self.blocked.remove(id);
                            out.deadline(id, None);
                            let mut r = Vec::new();
                            resp::encode_error(&mut r, &e);
                            self.held.push(Held::Send(id, r.into()));
                        }
                    }
                }
            }
            if !served {
                break;
            }
        }
    }

    /// The keys parked clients wait on, in the order the batch's log records name
    /// them (Redis's `ready_keys` list): after `LPUSH a ..; LPUSH b ..` the waiters
    /// on `a` are served first, whoever also waits on `b`. Keys no record names follow.
    fn ready_order(&self) -> Vec<Box<[u8]>> {
        let queues = &self.blocked.queues;
        let mut order: Vec<Box<[u8]>> = Vec::with_capacity(queues.len());
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(queues.len());
        let limits = resp::Limits {
            max_bulk: usize::MAX / 4,
            max_args: usize::MAX / 4,
            max_query: usize::MAX / 4,
        };
        let (mut ranges, mut scratch) = (Vec::new(), Vec::new());
        let feed = &self.ks.feed;
        let mut pos = 0;
        while pos < feed.len() && order.len() < queues.len() {
            let rest = &feed[pos..];
            let Ok(resp::Parsed::Command { len, .. }) =
                resp::parse(rest, &limits, &mut ranges, &mut scratch)
            else {
                break;
            };
            pos += len;
            let args = Args::new(rest, &ranges);
            let Some(spec) = super::cmd::lookup(args.get(0)) else {
                continue;
            };
            for i in super::session::key_positions(spec, args) {
                if let Some((k, _)) = queues.get_key_value(args.get(i)) {
                    if seen.insert(&**k) {
                        order.push(k.clone());
                    }
                }
            }
        }
        for k in queues.keys() {
            if !seen.contains(&**k) {
                order.push(k.clone());
            }
        }
        order
    }

    /// CLIENT UNBLOCK: a parked client answered as if its timeout passed (or, `error`,
    /// with Redis's UNBLOCKED error) and unparked; false when `id` was not parked.
    pub(super) fn unblock(&mut self, id: ConnId, error: bool) -> bool {
        let Some(req) = self.blocked.remove(id) else {
            return false;
        };
        self.unblocked.push(id);
        let reply = if error {
            bytes::Bytes::from_static(b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")
        } else {
            bytes::Bytes::from_static(timed_out(req.resp3))
        };
        self.held_bytes += reply.len();
        self.held.push(Held::Send(id, reply));
        true
    }

    /// A parked client's deadline passed: it gets a null array and is unparked.
    /// False when `id` was not parked.
    pub(super) fn blocked_timeout(&mut self, id: ConnId) -> bool {
        let Some(req) = self.blocked.remove(id) else {
            return false;
        };
        self.held.push(Held::Send(
            id,
            bytes::Bytes::from_static(timed_out(req.resp3)),
        ));
        true
    }
}
