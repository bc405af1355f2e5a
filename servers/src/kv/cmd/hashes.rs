//! Hash commands: HSET HMSET HSETNX HGET HMGET HDEL HLEN HEXISTS HGETALL HKEYS HVALS
//! HINCRBY HINCRBYFLOAT HSTRLEN HRANDFIELD HSCAN.
//!
//! Logged as sent, except HINCRBYFLOAT, logged as the HSET of its result so a replay
//! does not depend on float rounding.

use super::{
    count_arg, distinct_picks, int_arg, repeat_limit, scan_args, scan_match, tri, wrong_arity, Ctx,
    ERR_NOT_FLOAT, ERR_OVERFLOW, ERR_SYNTAX,
};
use crate::kv::keyspace::Keyspace;
use crate::kv::value::{fmt_incr_float, parse_incr_float, scan_positions, Hash, Kind, Value};
use crate::proto::resp::{self, parse_i64, Args};

fn read<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<Option<&'a Hash>, &'static str> {
    Ok(match ks.read(key, Kind::Hash)? {
        Some(Value::Hash(h)) => Some(h),
        _ => None,
    })
}

fn write<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<Option<&'a mut Hash>, &'static str> {
    Ok(match ks.write(key, Kind::Hash)? {
        Some(Value::Hash(h)) => Some(h),
        _ => None,
    })
}

fn create<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<&'a mut Hash, String> {
    match ks.write_or_create(key, Kind::Hash)? {
        Value::Hash(h) => Ok(h),
        _ => Err(crate::kv::keyspace::WRONGTYPE.into()),
    }
}

fn set_pairs(ctx: &mut Ctx<'_>, args: Args<'_>, name: &str) -> Option<i64> {
    if args.len() % 2 != 0 {
        ctx.err(&wrong_arity(name));
        return None;
    }
    let key = args.get(1);
    let lim = ctx.server.encodings;
    let h = match create(ctx.ks, key) {
        Ok(h) => h,
        Err(e) => {
            ctx.err(&e);
            return None;
        }
    };
    let mut added = 0;
    let mut i = 2;
    while i + 1 < args.len() {
        if h.insert(args.get(i), args.get(i + 1), &lim) {
            added += 1;
        }
        i += 2;
    }
    ctx.ks.log_args(args);
    Some(added)
}

pub(crate) fn hset(ctx: &mut Ctx<'_>, args: Args<'_>) {
    if let Some(n) = set_pairs(ctx, args, "hset") {
        ctx.int(n);
    }
}

pub(crate) fn hmset(ctx: &mut Ctx<'_>, args: Args<'_>) {
    if set_pairs(ctx, args, "hmset").is_some() {
        ctx.ok();
    }
}

pub(crate) fn hsetnx(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, field) = (args.get(1), args.get(2));
    let lim = ctx.server.encodings;
    let h = tri!(ctx, create(ctx.ks, key));
    if h.contains_key(field) {
        return ctx.int(0);
    }
    h.insert(field, args.get(3), &lim);
    ctx.ks.log_args(args);
    ctx.int(1);
}

pub(crate) fn hget(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match tri!(ctx, read(ctx.ks, args.get(1))).and_then(|h| h.get(args.get(2))) {
        Some(v) => resp::encode_bulk(ctx.out, v),
        None => ctx.null(),
    }
}

pub(crate) fn hmget(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let h = tri!(ctx, read(ctx.ks, args.get(1)));
    resp::encode_array_len(ctx.out, args.len() - 2);
    for f in args.iter().skip(2) {
        match h.and_then(|h| h.get(f)) {
            Some(v) => resp::encode_bulk(ctx.out, v),
            None => resp::encode_null(ctx.out, ctx.resp3),
        }
    }
}

pub(crate) fn hdel(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let Some(h) = tri!(ctx, write(ctx.ks, key)) else {
        return ctx.int(0);
    };
    let mut n = 0;
    for f in args.iter().skip(2) {
        if h.remove(f) {
            n += 1;
        }
    }
    if n > 0 {
        ctx.ks.drop_if_empty(key);
        ctx.ks.log_args(args);
    }
    ctx.int(n);
}

pub(crate) fn hlen(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let n = tri!(ctx, read(ctx.ks, args.get(1))).map_or(0, |h| h.len());
    ctx.int(n as i64);
}

pub(crate) fn hstrlen(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let n = tri!(ctx, read(ctx.ks, args.get(1)))
        .and_then(|h| h.get(args.get(2)))
        .map_or(0, <[u8]>::len);
    ctx.int(n as i64);
}

pub(crate) fn hexists(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let found = tri!(ctx, read(ctx.ks, args.get(1))).is_some_and(|h| h.contains_key(args.get(2)));
    ctx.int(i64::from(found));
}

fn dump(ctx: &mut Ctx<'_>, args: Args<'_>, keys: bool, values: bool) {
    // HGETALL is a map in RESP3.
    let as_map = keys && values;
    let Some(h) = tri!(ctx, read(ctx.ks, args.get(1))) else {
        return match as_map {
            true => resp::encode_map_len(ctx.out, 0, ctx.resp3),
            false => resp::encode_array_len(ctx.out, 0),
        };
    };
    if as_map {
        resp::encode_map_len(ctx.out, h.len(), ctx.resp3);
    } else {
        resp::encode_array_len(ctx.out, h.len());
    }
    for (f, v) in h.iter() {
        if keys {
            resp::encode_bulk(ctx.out, f);
        }
        if values {
            resp::encode_bulk(ctx.out, v);
        }
    }
}

pub(crate) fn hgetall(ctx: &mut Ctx<'_>, args: Args<'_>) {
    dump(ctx, args, true, true)
}

pub(crate) fn hkeys(ctx: &mut Ctx<'_>, args: Args<'_>) {
    dump(ctx, args, true, false)
}

pub(crate) fn hvals(ctx: &mut Ctx<'_>, args: Args<'_>) {
    dump(ctx, args, false, true)
}

pub(crate) fn hincrby(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, field) = (args.get(1), args.get(2));
    let by = tri!(ctx, int_arg(args.get(3)));
    if let Some(h) = tri!(ctx, read(ctx.ks, key)) {
        if let Some(v) = h.get(field) {
            let cur = tri!(ctx, parse_i64(v).ok_or("ERR hash value is not an integer"));
            if cur.checked_add(by).is_none() {
                return ctx.err(ERR_OVERFLOW);
            }
        }
    }
    let lim = ctx.server.encodings;
    let h = tri!(ctx, create(ctx.ks, key));
    let cur = h.get(field).and_then(parse_i64).unwrap_or(0);
    let new = cur.saturating_add(by);
    let mut b = itoa::Buffer::new();
    h.insert(field, b.format(new).as_bytes(), &lim);
    ctx.ks.log_args(args);
    ctx.int(new);
}

pub(crate) fn hincrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, field) = (args.get(1), args.get(2));
    let by = tri!(ctx, parse_incr_float(args.get(3)).ok_or(ERR_NOT_FLOAT));
    if by.is_infinite() {
        return ctx.err("ERR value is NaN or Infinity");
    }
    let mut cur = 0.0;
    if let Some(v) = tri!(ctx, read(ctx.ks, key)).and_then(|h| h.get(field)) {
        cur = tri!(
            ctx,
            parse_incr_float(v).ok_or("ERR hash value is not a float")
        );
    }
    let new = cur + by;
    if !new.is_finite() {
        return ctx.err("ERR increment would produce NaN or Infinity");
    }
    let text = fmt_incr_float(new);
    let lim = ctx.server.encodings;
    let h = tri!(ctx, create(ctx.ks, key));
    h.insert(field, text.as_bytes(), &lim);
    ctx.ks.log(&[&b"HSET"[..], key, field, text.as_bytes()]);
    ctx.bulk(text.as_bytes());
}

pub(crate) fn hrandfield(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    if args.len() == 2 {
        let h = tri!(ctx, read(ctx.ks, key));
        let Some(len) = h.map(|h| h.len()) else {
            return ctx.null();
        };
        let i = (ctx.ks.rand() % len as u64) as usize;
        if let Some((f, _)) = tri!(ctx, read(ctx.ks, key)).and_then(|h| h.get_index(i)) {
            resp::encode_bulk(ctx.out, f);
        }
        return;
    }
    let count = tri!(ctx, count_arg(args.get(2)));
    let withvalues = match args.len() {
        3 => false,
        4 if args.get(3).eq_ignore_ascii_case(b"WITHVALUES") => true,
        _ => return ctx.err(ERR_SYNTAX),
    };
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        // The reply would hold twice the count: Redis refuses half the range.
        return ctx.err("ERR value is out of range");
    }
    let len = tri!(ctx, read(ctx.ks, key)).map_or(0, |h| h.len());
    if len == 0 || count == 0 {
        return resp::encode_array_len(ctx.out, 0);
    }
    let per = if withvalues { 2 } else { 1 };
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
    let Some(h) = tri!(ctx, read(ctx.ks, key)) else {
        return;
    };
    // A pack reaches a position by walking: walk it once.
    let packed: Vec<(&[u8], &[u8])> = if h.is_packed() {
        h.iter().collect()
    } else {
        Vec::new()
    };
    // RESP3 nests each field-value pair in an array of its own, as Redis 7.0 does.
    let nested = withvalues && ctx.resp3;
    resp::encode_array_len(ctx.out, picks.len() * if nested { 1 } else { per });
    for i in picks {
        let pair = if h.is_packed() {
            packed.get(i).copied()
        } else {
            h.get_index(i)
        };
        if let Some((f, v)) = pair {
            if nested {
                resp::encode_array_len(ctx.out, 2);
            }
            resp::encode_bulk(ctx.out, f);
            if withvalues {
                resp::encode_bulk(ctx.out, v);
            }
        }
    }
}

pub(crate) fn hscan(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (cursor, count, pattern) = tri!(ctx, scan_args(args));
    let h = tri!(ctx, read(ctx.ks, args.get(1)));
    let mut items: Vec<(&[u8], &[u8])> = Vec::new();
    let next = match h {
        None => 0,
        // A pack answers whole in one call, as Redis does for its compact encodings.
        Some(h) if h.is_packed() => {
            items.extend(h.iter().filter(|(f, _)| scan_match(pattern, f)));
            0
        }
        Some(h) => scan_positions(h.len(), cursor, count, &mut |i| {
            if let Some((f, v)) = h.get_index(i) {
                if scan_match(pattern, f) {
                    items.push((f, v));
                }
            }
        }),
    };
    resp::encode_array_len(ctx.out, 2);
    let mut b = itoa::Buffer::new();
    resp::encode_bulk(ctx.out, b.format(next).as_bytes());
    resp::encode_array_len(ctx.out, items.len() * 2);
    for (f, v) in items {
        resp::encode_bulk(ctx.out, f);
        resp::encode_bulk(ctx.out, v);
    }
}
