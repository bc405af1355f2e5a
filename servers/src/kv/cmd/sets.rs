//! Set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE
//! SINTER SUNION SDIFF (and their STORE forms) SINTERCARD SSCAN.
//!
//! Logged as sent, except SPOP, logged as the SREM (or DEL) of what it removed, so a
//! replay removes the same members. The algebra holds one set borrowed at a time: it
//! copies the smallest (SINTER) or first (SDIFF) set and filters the copy against the
//! others one by one.

use super::{
    count_arg, distinct_picks, int_arg, repeat_limit, scan_args, scan_match, tri, Ctx,
    ERR_OUT_OF_RANGE, ERR_SYNTAX,
};
use crate::kv::keyspace::{Keyspace, WRONGTYPE};
use crate::kv::value::{scan_positions, Encodings, Kind, Set, Value};
use crate::proto::resp::{self, Args};

fn read<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<Option<&'a Set>, &'static str> {
    Ok(match ks.read(key, Kind::Set)? {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    })
}

fn write<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<Option<&'a mut Set>, &'static str> {
    Ok(match ks.write(key, Kind::Set)? {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    })
}

fn create<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<&'a mut Set, String> {
    match ks.write_or_create(key, Kind::Set)? {
        Value::Set(s) => Ok(s),
        _ => Err(WRONGTYPE.into()),
    }
}

/// Members as an array, or as a RESP3 set when `set3` (SMEMBERS, SPOP, SINTER...:
/// where Redis 7.0 replies with a set).
fn members(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = impl AsRef<[u8]>>, set3: bool) {
    resp::encode_set_len(out, items.len(), set3);
    for m in items {
        resp::encode_bulk(out, m.as_ref());
    }
}

pub(crate) fn sadd(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let lim = ctx.server.encodings;
    let s = tri!(ctx, create(ctx.ks, args.get(1)));
    let mut n = 0;
    for m in args.iter().skip(2) {
        if s.insert(m, &lim) {
            n += 1;
        }
    }
    if n > 0 {
        ctx.ks.log_args(args);
    }
    ctx.int(n);
}

pub(crate) fn srem(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let Some(s) = tri!(ctx, write(ctx.ks, key)) else {
        return ctx.int(0);
    };
    let mut n = 0;
    for m in args.iter().skip(2) {
        if s.remove(m) {
            n += 1;
        }
    }
    if n > 0 {
        ctx.ks.drop_if_empty(key);
        ctx.ks.log_args(args);
    }
    ctx.int(n);
}

pub(crate) fn smembers(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match tri!(ctx, read(ctx.ks, args.get(1))) {
        Some(s) => members(ctx.out, s.iter(), ctx.resp3),
        None => ctx.set(0),
    }
}

pub(crate) fn sismember(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let found = tri!(ctx, read(ctx.ks, args.get(1))).is_some_and(|s| s.contains(args.get(2)));
    ctx.int(i64::from(found));
}

pub(crate) fn smismember(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let s = tri!(ctx, read(ctx.ks, args.get(1)));
    resp::encode_array_len(ctx.out, args.len() - 2);
    for m in args.iter().skip(2) {
        resp::encode_int(ctx.out, i64::from(s.is_some_and(|s| s.contains(m))));
    }
}

pub(crate) fn scard(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let n = tri!(ctx, read(ctx.ks, args.get(1))).map_or(0, |s| s.len());
    ctx.int(n as i64);
}

pub(crate) fn spop(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let count = match args.len() {
        2 => None,
        3 => match resp::parse_i64(args.get(2)) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return ctx.err(ERR_OUT_OF_RANGE),
        },
        _ => return ctx.err(ERR_SYNTAX),
    };
    let len = tri!(ctx, read(ctx.ks, key)).map_or(0, |s| s.len());
    if len == 0 || count == Some(0) {
        return match count {
            None => ctx.null(),
            Some(_) => ctx.set(0),
        };
    }
    let n = count.map_or(1, |c| c.min(len as u64) as usize);
    let mut picks = if n == len {
        (0..len).collect()
    } else {
        distinct_picks(ctx.ks, len, n)
    };
    // Remove from the highest position down, so a removal moves no picked member.
    picks.sort_unstable_by(|a, b| b.cmp(a));
    let Some(s) = tri!(ctx, write(ctx.ks, key)) else {
        return;
    };
    let popped: Vec<Box<[u8]>> = picks.iter().filter_map(|&i| s.remove_index(i)).collect();
    if ctx.ks.drop_if_empty(key) {
        ctx.ks.log(&[&b"DEL"[..], key]);
    } else {
        let mut rec: Vec<&[u8]> = vec![b"SREM", key];
        rec.extend(popped.iter().map(|m| &m[..]));
        ctx.ks.log(&rec);
    }
    match count {
        None => ctx.bulk(&popped[0]),
        Some(_) => members(ctx.out, popped.iter(), ctx.resp3),
    }
}

pub(crate) fn srandmember(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    if args.len() == 2 {
        let len = tri!(ctx, read(ctx.ks, key)).map_or(0, |s| s.len());
        if len == 0 {
            return ctx.null();
        }
        let i = (ctx.ks.rand() % len as u64) as usize;
        if let Some(m) = tri!(ctx, read(ctx.ks, key)).and_then(|s| s.get_index(i)) {
            resp::encode_bulk(ctx.out, m.as_ref());
        }
        return;
    }
    if args.len() > 3 {
        return ctx.err(ERR_SYNTAX);
    }
    let count = tri!(ctx, count_arg(args.get(2)));
    let len = tri!(ctx, read(ctx.ks, key)).map_or(0, |s| s.len());
    if len == 0 || count == 0 {
        return resp::encode_array_len(ctx.out, 0);
    }
    let picks: Vec<usize> = if count < 0 {
        let n = tri!(ctx, repeat_limit(ctx, count.unsigned_abs()));
        (0..n)
            .map(|_| (ctx.ks.rand() % len as u64) as usize)
            .collect()
    } else if count as u64 >= len as u64 {
        (0..len).collect()
    } else {
        distinct_picks(ctx.ks, len, count as usize)
    };
    if let Some(s) = tri!(ctx, read(ctx.ks, key)) {
        members(
            ctx.out,
            picks
                .iter()
                .filter_map(|&i| s.get_index(i))
                .collect::<Vec<_>>()
                .into_iter(),
            false,
        );
    }
}

pub(crate) fn smove(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (src, dst, m) = (args.get(1), args.get(2), args.get(3));
    // Redis's order: a missing source answers 0 before the destination's type counts.
    let has = tri!(ctx, read(ctx.ks, src)).map(|s| s.contains(m));
    let Some(has) = has else {
        return ctx.int(0);
    };
    tri!(ctx, read(ctx.ks, dst));
    if src == dst || !has {
        return ctx.int(i64::from(has));
    }
    tri!(ctx, ctx.ks.holds(Kind::Set));
    if let Some(s) = tri!(ctx, write(ctx.ks, src)) {
        s.remove(m);
    }
    ctx.ks.drop_if_empty(src);
    let lim = ctx.server.encodings;
    // A member the destination already holds leaves it unchanged: only the source
    // is logged as changed, so a WATCH on the destination (and its `sadd` event)
    // stays quiet, as in Redis.
    if tri!(ctx, create(ctx.ks, dst)).insert(m, &lim) {
        ctx.ks.log_args(args);
    } else {
        ctx.ks.log(&[&b"SREM"[..], src, m]);
    }
    ctx.int(1);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// The result of an operation over `keys`; `limit` stops an intersection early
/// (SINTERCARD). `Err` is the reply.
///
/// The result is built as Redis builds a stored one: an intset while every member is
/// an integer and there are at most `set-max-intset-entries` of them.
fn algebra(
    ks: &mut Keyspace,
    keys: &[&[u8]],
    op: Op,
    limit: usize,
    lim: &Encodings,
) -> Result<Set, &'static str> {
    let mut sizes = Vec::with_capacity(keys.len());
    for k in keys {
        sizes.push(read(ks, k)?.map_or(0, |s| s.len()));
    }
    let mut out = Set::default();
    match op {
        Op::Inter => {
            if sizes.contains(&0) {
                return Ok(out);
            }
            let (small, _) = sizes
                .iter()
                .enumerate()
                .min_by_key(|(_, n)| **n)
                .unwrap_or((0, &0));
            out = read(ks, keys[small])?.cloned().unwrap_or_default();
            for (i, k) in keys.iter().enumerate() {
                if i == small {
                    continue;
                }
                let other = read(ks, k)?;
                out.retain(|m| other.is_some_and(|o| o.contains(m)));
                if out.is_empty() {
                    break;
                }
            }
            if out.len() > limit {
                out.truncate(limit);
            }
        }
        Op::Union => {
            for k in keys {
                if let Some(s) = read(ks, k)? {
                    // Each member is copied out of its source first: `s` is borrowed
                    // from the keyspace, `out` is not.
                    for m in s.iter() {
                        out.insert(m.as_ref(), lim);
                    }
                }
            }
        }
        Op::Diff => {
            out = read(ks, keys[0])?.cloned().unwrap_or_default();
            for k in &keys[1..] {
                if out.is_empty() {
                    break;
                }
                if let Some(s) = read(ks, k)? {
                    out.retain(|m| !s.contains(m));
                }
            }
        }
    }
    if !out.is_intset() && op != Op::Union {
        let mut packed = Set::default();
        for m in out.iter() {
            packed.insert(m.as_ref(), lim);
            if !packed.is_intset() {
                return Ok(out);
            }
        }
        out = packed;
    }
    Ok(out)
}

fn reply_op(ctx: &mut Ctx<'_>, args: Args<'_>, op: Op) {
    let keys: Vec<&[u8]> = args.iter().skip(1).collect();
    let lim = ctx.server.encodings;
    let s = tri!(ctx, algebra(ctx.ks, &keys, op, usize::MAX, &lim));
    members(ctx.out, s.iter(), ctx.resp3);
}

fn store_op(ctx: &mut Ctx<'_>, args: Args<'_>, op: Op) {
    let dst = args.get(1);
    let keys: Vec<&[u8]> = args.iter().skip(2).collect();
    let lim = ctx.server.encodings;
    let s = tri!(ctx, algebra(ctx.ks, &keys, op, usize::MAX, &lim));
    let n = s.len();
    if n == 0 {
        if ctx.ks.del(dst) {
            ctx.ks.log(&[&b"DEL"[..], dst]);
        }
    } else {
        tri!(ctx, ctx.ks.holds(Kind::Set));
        ctx.ks.set(dst, Value::Set(Box::new(s)));
        ctx.ks.log_args(args);
    }
    ctx.int(n as i64);
}

pub(crate) fn sinter(ctx: &mut Ctx<'_>, args: Args<'_>) {
    reply_op(ctx, args, Op::Inter)
}
pub(crate) fn sunion(ctx: &mut Ctx<'_>, args: Args<'_>) {
    reply_op(ctx, args, Op::Union)
}
pub(crate) fn sdiff(ctx: &mut Ctx<'_>, args: Args<'_>) {
    reply_op(ctx, args, Op::Diff)
}
pub(crate) fn sinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    store_op(ctx, args, Op::Inter)
}
pub(crate) fn sunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    store_op(ctx, args, Op::Union)
}
pub(crate) fn sdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    store_op(ctx, args, Op::Diff)
}

/// `numkeys key... [LIMIT n]` of SINTERCARD (and the Z forms' key lists).
pub(crate) fn numkeys<'a>(args: Args<'a>, at: usize) -> Result<Vec<&'a [u8]>, &'static str> {
    let n = int_arg(args.get(at)).map_err(|_| "ERR numkeys should be greater than 0")?;
    if n <= 0 {
        return Err("ERR numkeys should be greater than 0");
    }
    if n as u64 > (args.len() - at - 1) as u64 {
        return Err("ERR Number of keys can't be greater than number of args");
    }
    Ok((at + 1..at + 1 + n as usize).map(|i| args.get(i)).collect())
}

pub(crate) fn sintercard(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let keys = tri!(ctx, numkeys(args, 1));
    let mut limit = usize::MAX;
    let mut i = 2 + keys.len();
    while i < args.len() {
        if args.get(i).eq_ignore_ascii_case(b"LIMIT") && i + 1 < args.len() {
            match resp::parse_i64(args.get(i + 1)) {
                None => return ctx.err("ERR LIMIT can't be negative"),
                Some(n) if n < 0 => return ctx.err("ERR LIMIT can't be negative"),
                Some(0) => limit = usize::MAX,
                Some(n) => limit = usize::try_from(n).unwrap_or(usize::MAX),
            }
            i += 2;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
    }
    let lim = ctx.server.encodings;
    let s = tri!(ctx, algebra(ctx.ks, &keys, Op::Inter, limit, &lim));
    ctx.int(s.len() as i64);
}

pub(crate) fn sscan(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (cursor, count, pattern) = tri!(ctx, scan_args(args));
    let s = tri!(ctx, read(ctx.ks, args.get(1)));
    let mut items = Vec::new();
    let next = match s {
        None => 0,
        // An intset answers whole in one call, as Redis does.
        Some(s) if s.is_intset() => {
            items.extend(s.iter().filter(|m| scan_match(pattern, m.as_ref())));
            0
        }
        Some(s) => scan_positions(s.len(), cursor, count, &mut |i| {
            if let Some(m) = s.get_index(i) {
                if scan_match(pattern, m.as_ref()) {
                    items.push(m);
                }
            }
        }),
    };
    resp::encode_array_len(ctx.out, 2);
    let mut b = itoa::Buffer::new();
    resp::encode_bulk(ctx.out, b.format(next).as_bytes());
    members(ctx.out, items.into_iter(), false);
}
