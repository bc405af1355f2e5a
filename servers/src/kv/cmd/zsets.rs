//! Sorted-set commands: ZADD (NX XX GT LT CH INCR) ZINCRBY ZREM ZCARD ZSCORE ZMSCORE
//! ZRANK ZREVRANK ZRANGE (BYSCORE BYLEX REV LIMIT) ZREVRANGE ZRANGEBYSCORE
//! ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZCOUNT ZLEXCOUNT ZPOPMIN ZPOPMAX
//! ZREMRANGEBYRANK|SCORE|LEX ZUNION ZINTER ZDIFF and their STORE forms, ZRANDMEMBER,
//! ZSCAN.
//!
//! Every range is located with the skip list's O(log n) searches ([`crate::kv::zset`]):
//! the first rank in range, then a walk of at most the reply's length. Logged as
//! sent, except an increment (ZADD INCR, ZINCRBY), logged as the ZADD of the
//! resulting score, printed so it reads back exactly.

use super::{
    count_arg, distinct_picks, index_range, int_arg, repeat_limit, scan_args, scan_match, tri, Ctx,
    ERR_NOT_FLOAT, ERR_OUT_OF_RANGE, ERR_SYNTAX,
};
use crate::kv::keyspace::{Keyspace, WRONGTYPE};
use crate::kv::value::{fmt_score, parse_f64, scan_positions, Kind, Value};
use crate::kv::zset::{LexRange, ScoreRange, ZSet};
use crate::proto::resp::{self, Args};

const ERR_MINMAX_FLOAT: &str = "ERR min or max is not a float";
const ERR_MINMAX_LEX: &str = "ERR min or max not valid string range item";
const ERR_NAN: &str = "ERR resulting score is not a number (NaN)";

pub(crate) fn read<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<Option<&'a ZSet>, &'static str> {
    Ok(match ks.read(key, Kind::ZSet)? {
        Some(Value::ZSet(z)) => Some(z),
        _ => None,
    })
}

pub(crate) fn write<'a>(
    ks: &'a mut Keyspace,
    key: &[u8],
) -> Result<Option<&'a mut ZSet>, &'static str> {
    Ok(match ks.write(key, Kind::ZSet)? {
        Some(Value::ZSet(z)) => Some(z),
        _ => None,
    })
}

fn create<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<&'a mut ZSet, String> {
    match ks.write_or_create(key, Kind::ZSet)? {
        Value::ZSet(z) => Ok(z),
        _ => Err(WRONGTYPE.into()),
    }
}

/// A score: a bulk string in RESP2, a double in RESP3.
pub(crate) fn double(out: &mut Vec<u8>, v: f64, resp3: bool) {
    resp::encode_double_text(out, fmt_score(v).as_bytes(), resp3);
}

/// Members, with their scores: flat in RESP2, (member, score) pairs in RESP3, as
/// Redis 7.0 answers ZRANGE ... WITHSCORES.
fn pairs(out: &mut Vec<u8>, items: &[(f64, &[u8])], withscores: bool, resp3: bool) {
    let nested = withscores && resp3;
    resp::encode_array_len(out, items.len() * if withscores && !resp3 { 2 } else { 1 });
    for (s, m) in items {
        if nested {
            resp::encode_array_len(out, 2);
        }
        resp::encode_bulk(out, m);
        if withscores {
            double(out, *s, resp3);
        }
    }
}

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

pub(crate) fn zadd(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        let flag = match a.to_ascii_uppercase().as_slice() {
            b"NX" => &mut f.nx,
            b"XX" => &mut f.xx,
            b"GT" => &mut f.gt,
            b"LT" => &mut f.lt,
            b"CH" => &mut f.ch,
            b"INCR" => &mut f.incr,
            _ => break,
        };
        *flag = true;
        i += 1;
    }
    let elements = args.len() - i;
    if elements % 2 != 0 || elements == 0 {
        return ctx.err(ERR_SYNTAX);
    }
    if f.nx && f.xx {
        return ctx.err("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return ctx.err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 2 {
        return ctx.err("ERR INCR option supports a single increment-element pair");
    }
    let mut items = Vec::with_capacity(elements / 2);
    for j in (i..args.len()).step_by(2) {
        let s = tri!(ctx, parse_f64(args.get(j)).ok_or(ERR_NOT_FLOAT));
        items.push((s, args.get(j + 1)));
    }
    if tri!(ctx, read(ctx.ks, key)).is_none() && f.xx {
        return if f.incr { ctx.null() } else { ctx.int(0) };
    }
    if f.incr {
        let (by, m) = items[0];
        let cur = tri!(ctx, read(ctx.ks, key)).and_then(|z| z.score(m));
        let new = match cur {
            Some(_) if f.nx => return ctx.null(),
            None if f.xx => return ctx.null(),
            Some(c) => c + by,
            None => by,
        };
        if new.is_nan() {
            return ctx.err(ERR_NAN);
        }
        if let Some(c) = cur {
            if (f.lt && new >= c) || (f.gt && new <= c) {
                return ctx.null();
            }
        }
        let lim = ctx.server.encodings;
        tri!(ctx, create(ctx.ks, key)).insert(m, new, &lim);
        let text = fmt_score(new);
        ctx.ks.log(&[&b"ZADD"[..], key, text.as_bytes(), m]);
        return resp::encode_double_text(ctx.out, text.as_bytes(), ctx.resp3);
    }
    let lim = ctx.server.encodings;
    let z = tri!(ctx, create(ctx.ks, key));
    let (mut added, mut updated) = (0, 0);
    for (s, m) in items {
        match z.score(m) {
            Some(cur) => {
                if f.nx || (f.lt && s >= cur) || (f.gt && s <= cur) {
                    continue;
                }
                if s != cur {
                    z.insert(m, s, &lim);
                    updated += 1;
                }
            }
            None if !f.xx => {
                z.insert(m, s, &lim);
                added += 1;
            }
            None => {}
        }
    }
    if added + updated > 0 {
        ctx.ks.log_args(args);
    } else {
        ctx.ks.drop_if_empty(key);
    }
    ctx.int(if f.ch { added + updated } else { added });
}

pub(crate) fn zincrby(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, m) = (args.get(1), args.get(3));
    let by = tri!(ctx, parse_f64(args.get(2)).ok_or(ERR_NOT_FLOAT));
    let cur = tri!(ctx, read(ctx.ks, key)).and_then(|z| z.score(m));
    let new = cur.map_or(by, |c| c + by);
    if new.is_nan() {
        return ctx.err(ERR_NAN);
    }
    let lim = ctx.server.encodings;
    tri!(ctx, create(ctx.ks, key)).insert(m, new, &lim);
    let text = fmt_score(new);
    ctx.ks.log(&[&b"ZADD"[..], key, text.as_bytes(), m]);
    resp::encode_double_text(ctx.out, text.as_bytes(), ctx.resp3);
}

pub(crate) fn zrem(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let Some(z) = tri!(ctx, write(ctx.ks, key)) else {
        return ctx.int(0);
    };
    let n = args.iter().skip(2).filter(|m| z.remove(m)).count();
    if n > 0 {
        ctx.ks.drop_if_empty(key);
        ctx.ks.log_args(args);
    }
    ctx.int(n as i64);
}

pub(crate) fn zcard(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let n = tri!(ctx, read(ctx.ks, args.get(1))).map_or(0, ZSet::len);
    ctx.int(n as i64);
}

pub(crate) fn zscore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match tri!(ctx, read(ctx.ks, args.get(1))).and_then(|z| z.score(args.get(2))) {
        Some(s) => double(ctx.out, s, ctx.resp3),
        None => ctx.null(),
    }
}

pub(crate) fn zmscore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let z = tri!(ctx, read(ctx.ks, args.get(1)));
    resp::encode_array_len(ctx.out, args.len() - 2);
    for m in args.iter().skip(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => double(ctx.out, s, ctx.resp3),
            None => resp::encode_null(ctx.out, ctx.resp3),
        }
    }
}

fn rank(ctx: &mut Ctx<'_>, args: Args<'_>, rev: bool) {
    match tri!(ctx, read(ctx.ks, args.get(1))).and_then(|z| z.rank(args.get(2), rev)) {
        Some(r) => ctx.int(r as i64),
        None => ctx.null(),
    }
}

pub(crate) fn zrank(ctx: &mut Ctx<'_>, args: Args<'_>) {
    rank(ctx, args, false)
}
pub(crate) fn zrevrank(ctx: &mut Ctx<'_>, args: Args<'_>) {
    rank(ctx, args, true)
}

/// What a range selects.
enum By {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// The rank `offset` places past `first` in walking order (towards rank 0 when `rev`),
/// if it is still inside a set of `len`.
fn offset_from(first: usize, offset: usize, len: usize, rev: bool) -> Option<usize> {
    if rev {
        first.checked_sub(offset)
    } else {
        first.checked_add(offset).filter(|s| *s < len)
    }
}

/// The pairs `by` selects, in order (`rev`: descending), after skipping `offset` and
/// taking at most `count` (negative: all). A walk from one O(log n) search.
fn select<'z>(z: &'z ZSet, by: &By, rev: bool, offset: i64, count: i64) -> Vec<(f64, &'z [u8])> {
    let len = z.len();
    let list = z;
    let limit = if count < 0 {
        usize::MAX
    } else {
        usize::try_from(count).unwrap_or(usize::MAX)
    };
    if offset < 0 || limit == 0 {
        return Vec::new();
    }
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    match by {
        By::Rank(a, b) => {
            let Some((a, b)) = index_range(*a, *b, len) else {
                return Vec::new();
            };
            let start = if rev { len - 1 - a } else { a };
            list.walk(start, rev, b - a + 1).collect()
        }
        By::Score(r) => {
            let first = if rev {
                list.last_in_score(r)
            } else {
                list.first_in_score(r)
            };
            let Some(first) = first else {
                return Vec::new();
            };
            let Some(start) = offset_from(first, offset, len, rev) else {
                return Vec::new();
            };
            list.walk(start, rev, limit)
                .take_while(|(s, _)| if rev { r.gte_min(*s) } else { r.lte_max(*s) })
                .collect()
        }
        By::Lex(r) => {
            let first = if rev {
                list.last_in_lex(r)
            } else {
                list.first_in_lex(r)
            };
            let Some(first) = first else {
                return Vec::new();
            };
            let Some(start) = offset_from(first, offset, len, rev) else {
                return Vec::new();
            };
            list.walk(start, rev, limit)
                .take_while(|(_, m)| if rev { r.gte_min(m) } else { r.lte_max(m) })
                .collect()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Rank,
    Score,
    Lex,
}

/// ZRANGE and its older forms: `mode` and `rev` preset by the command name (`None`:
/// ZRANGE, which reads them from its options). ZRANGESTORE (`store`) takes ZRANGE's
/// options but WITHSCORES after its destination.
fn zrange_generic(ctx: &mut Ctx<'_>, args: Args<'_>, preset: Option<(Mode, bool)>, store: bool) {
    let (mut mode, mut rev) = preset.unwrap_or((Mode::Rank, false));
    let base = usize::from(store);
    let mut withscores = false;
    let mut limit: Option<(i64, i64)> = None;
    let mut i = 4 + base;
    while i < args.len() {
        let a = args.get(i);
        let left = args.len() - i - 1;
        if !store && a.eq_ignore_ascii_case(b"WITHSCORES") {
            withscores = true;
        } else if a.eq_ignore_ascii_case(b"LIMIT")
            && left >= 2
            && preset.map_or(true, |p| p.0 != Mode::Rank)
        {
            let o = tri!(ctx, int_arg(args.get(i + 1)));
            let c = tri!(ctx, int_arg(args.get(i + 2)));
            limit = Some((o, c));
            i += 2;
        } else if preset.is_none() && a.eq_ignore_ascii_case(b"BYSCORE") {
            mode = Mode::Score;
        } else if preset.is_none() && a.eq_ignore_ascii_case(b"BYLEX") {
            mode = Mode::Lex;
        } else if preset.is_none() && a.eq_ignore_ascii_case(b"REV") {
            rev = true;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
        i += 1;
    }
    if limit.is_some() && mode == Mode::Rank {
        return ctx.err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && mode == Mode::Lex {
        return ctx.err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    // Reversed score and lex ranges are given `max min`.
    let (lo, hi) = if rev && mode != Mode::Rank {
        (args.get(3 + base), args.get(2 + base))
    } else {
        (args.get(2 + base), args.get(3 + base))
    };
    let by = match mode {
        Mode::Rank => By::Rank(tri!(ctx, int_arg(lo)), tri!(ctx, int_arg(hi))),
        Mode::Score => By::Score(tri!(ctx, ScoreRange::parse(lo, hi).ok_or(ERR_MINMAX_FLOAT))),
        Mode::Lex => By::Lex(tri!(ctx, LexRange::parse(lo, hi).ok_or(ERR_MINMAX_LEX))),
    };
    let (offset, count) = limit.unwrap_or((0, -1));
    if store {
        return range_store(ctx, args, &by, rev, offset, count);
    }
    let Some(z) = tri!(ctx, read(ctx.ks, args.get(1))) else {
        return resp::encode_array_len(ctx.out, 0);
    };
    let items = select(z, &by, rev, offset, count);
    pairs(ctx.out, &items, withscores, ctx.resp3);
}

/// ZRANGESTORE's second half: the selection becomes the destination (an empty one
/// deletes it), packed unless it holds more than `zset-max-listpack-entries` members
/// or a longer one, as Redis's `zrangeResultBeginStore` decides; logged as sent.
fn range_store(ctx: &mut Ctx<'_>, args: Args<'_>, by: &By, rev: bool, offset: i64, count: i64) {
    let (dst, src) = (args.get(1), args.get(2));
    let lim = ctx.server.encodings;
    let out = match tri!(ctx, read(ctx.ks, src)) {
        None => None,
        Some(z) => {
            let items = select(z, by, rev, offset, count);
            (!items.is_empty()).then(|| {
                let mut out = ZSet::with_capacity(items.len(), &lim);
                for (s, m) in items {
                    out.insert(m, s, &lim);
                }
                out
            })
        }
    };
    let Some(out) = out else {
        if ctx.ks.del(dst) {
            ctx.ks.log(&[&b"DEL"[..], dst]);
        }
        return ctx.int(0);
    };
    tri!(ctx, ctx.ks.holds(Kind::ZSet));
    let n = out.len();
    ctx.ks.set(dst, Value::ZSet(Box::new(out)));
    ctx.ks.log_args(args);
    ctx.int(n as i64);
}

pub(crate) fn zrange(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zrange_generic(ctx, args, None, false)
}
pub(crate) fn zrangestore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zrange_generic(ctx, args, None, true)
}
pub(crate) fn zrevrange(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zrange_generic(ctx, args, Some((Mode::Rank, true)), false)
}
pub(crate) fn zrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zrange_generic(ctx, args, Some((Mode::Score, false)), false)
}
pub(crate) fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zrange_generic(ctx, args, Some((Mode::Score, true)), false)
}
pub(crate) fn zrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zrange_generic(ctx, args, Some((Mode::Lex, false)), false)
}
pub(crate) fn zrevrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zrange_generic(ctx, args, Some((Mode::Lex, true)), false)
}

pub(crate) fn zcount(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let r = tri!(
        ctx,
        ScoreRange::parse(args.get(2), args.get(3)).ok_or(ERR_MINMAX_FLOAT)
    );
    let n = tri!(ctx, read(ctx.ks, args.get(1))).map_or(0, |z| {
        match (z.first_in_score(&r), z.last_in_score(&r)) {
            (Some(a), Some(b)) if b >= a => b - a + 1,
            _ => 0,
        }
    });
    ctx.int(n as i64);
}

pub(crate) fn zlexcount(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let r = tri!(
        ctx,
        LexRange::parse(args.get(2), args.get(3)).ok_or(ERR_MINMAX_LEX)
    );
    let n = tri!(ctx, read(ctx.ks, args.get(1))).map_or(0, |z| {
        match (z.first_in_lex(&r), z.last_in_lex(&r)) {
            (Some(a), Some(b)) if b >= a => b - a + 1,
            _ => 0,
        }
    });
    ctx.int(n as i64);
}

fn remrange(ctx: &mut Ctx<'_>, args: Args<'_>, by: By) {
    let key = args.get(1);
    let Some(z) = tri!(ctx, write(ctx.ks, key)) else {
        return ctx.int(0);
    };
    let doomed: Vec<Box<[u8]>> = select(z, &by, false, 0, -1)
        .into_iter()
        .map(|(_, m)| m.into())
        .collect();
    for m in &doomed {
        z.remove(m);
    }
    if !doomed.is_empty() {
        ctx.ks.drop_if_empty(key);
        ctx.ks.log_args(args);
    }
    ctx.int(doomed.len() as i64);
}

pub(crate) fn zremrangebyrank(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let a = tri!(ctx, int_arg(args.get(2)));
    let b = tri!(ctx, int_arg(args.get(3)));
    remrange(ctx, args, By::Rank(a, b))
}
pub(crate) fn zremrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let r = tri!(
        ctx,
        ScoreRange::parse(args.get(2), args.get(3)).ok_or(ERR_MINMAX_FLOAT)
    );
    remrange(ctx, args, By::Score(r))
}
pub(crate) fn zremrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let r = tri!(
        ctx,
        LexRange::parse(args.get(2), args.get(3)).ok_or(ERR_MINMAX_LEX)
    );
    remrange(ctx, args, By::Lex(r))
}

/// Pops up to `n` members from the low (or, `max`, high) end; the key goes when empty.
pub(crate) fn pop_n(ks: &mut Keyspace, key: &[u8], max: bool, n: usize) -> Vec<(f64, Box<[u8]>)> {
    let mut out = Vec::new();
    if let Ok(Some(z)) = write(ks, key) {
        let n = n.min(z.len());
        let start = if max { z.len().saturating_sub(1) } else { 0 };
        out = z
            .walk(start, max, n)
            .map(|(s, m)| (s, Box::<[u8]>::from(m)))
            .collect();
        for (_, m) in &out {
            z.remove(m);
        }
        ks.drop_if_empty(key);
    }
    out
}

fn zpop(ctx: &mut Ctx<'_>, args: Args<'_>, max: bool) {
    let key = args.get(1);
    let n = match args.len() {
        2 => 1,
        3 => match resp::parse_i64(args.get(2)) {
            Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => return ctx.err(ERR_OUT_OF_RANGE),
            None => return ctx.err(super::ERR_NOT_INT),
        },
        _ => return ctx.err(ERR_SYNTAX),
    };
    if tri!(ctx, read(ctx.ks, key)).is_none() {
        return resp::encode_array_len(ctx.out, 0);
    }
    let got = pop_n(ctx.ks, key, max, n);
    if !got.is_empty() {
        ctx.ks.log_args(args);
    }
    // With a count, RESP3 nests each (member, score) pair, as Redis 7.0 does.
    let nested = ctx.resp3 && args.len() == 3;
    resp::encode_array_len(ctx.out, got.len() * if nested { 1 } else { 2 });
    for (s, m) in &got {
        if nested {
            resp::encode_array_len(ctx.out, 2);
        }
        resp::encode_bulk(ctx.out, m);
        double(ctx.out, *s, ctx.resp3);
    }
}

pub(crate) fn zpopmin(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zpop(ctx, args, false)
}
pub(crate) fn zpopmax(ctx: &mut Ctx<'_>, args: Args<'_>) {
    zpop(ctx, args, true)
}

pub(crate) fn zrandmember(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    if args.len() == 2 {
        let len = tri!(ctx, read(ctx.ks, key)).map_or(0, ZSet::len);
        if len == 0 {
            return ctx.null();
        }
        let i = (ctx.ks.rand() % len as u64) as usize;
        if let Some((m, _)) = tri!(ctx, read(ctx.ks, key)).and_then(|z| z.get_index(i)) {
            resp::encode_bulk(ctx.out, m);
        }
        return;
    }
    let count = tri!(ctx, count_arg(args.get(2)));
    let withscores = match args.len() {
        3 => false,
        4 if args.get(3).eq_ignore_ascii_case(b"WITHSCORES") => true,
        _ => return ctx.err(ERR_SYNTAX),
    };
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        // The reply would hold twice the count: Redis refuses half the range.
        return ctx.err("ERR value is out of range");
    }
    let len = tri!(ctx, read(ctx.ks, key)).map_or(0, ZSet::len);
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
    let Some(z) = tri!(ctx, read(ctx.ks, key)) else {
        return;
    };
    let items: Vec<(f64, &[u8])> = picks
        .iter()
        .filter_map(|&i| z.get_index(i).map(|(m, s)| (s, m)))
        .collect();
    pairs(ctx.out, &items, withscores, ctx.resp3);
}

pub(crate) fn zscan(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (cursor, count, pattern) = tri!(ctx, scan_args(args));
    let z = tri!(ctx, read(ctx.ks, args.get(1)));
    let mut items: Vec<(f64, &[u8])> = Vec::new();
    let next = match z {
        None => 0,
        // A pack answers whole in one call, as Redis does for its compact encodings.
        Some(z) if z.is_packed() => {
            items.extend(
                z.iter()
                    .filter(|(m, _)| scan_match(pattern, m))
                    .map(|(m, s)| (s, m)),
            );
            0
        }
        Some(z) => scan_positions(z.len(), cursor, count, &mut |i| {
            if let Some((m, s)) = z.get_index(i) {
                if scan_match(pattern, m) {
                    items.push((s, m));
                }
            }
        }),
    };
    resp::encode_array_len(ctx.out, 2);
    let mut b = itoa::Buffer::new();
    resp::encode_bulk(ctx.out, b.format(next).as_bytes());
    pairs(ctx.out, &items, true, false);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// A member's weighted score as Redis computes it: `inf * 0` is 0, not NaN.
fn weighted(s: f64, w: f64) -> f64 {
    let v = s * w;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn aggregate(a: Aggregate, acc: f64, v: f64) -> f64 {
    match a {
        Aggregate::Sum => {
            let s = acc + v;
            if s.is_nan() {
                0.0
            } else {
                s
            }
        }
        Aggregate::Min => acc.min(v),
        Aggregate::Max => acc.max(v),
    }
}

/// The members of one input (a sorted set, or a set whose members score 1), copied.
/// Members and scores, copied out of one input.
type Scored = Vec<(Box<[u8]>, f64)>;

fn input(ks: &mut Keyspace, key: &[u8]) -> Result<Scored, &'static str> {
    match ks.get(key) {
        None => Ok(Vec::new()),
        Some(Value::ZSet(z)) => Ok(z.iter().map(|(m, s)| (m.into(), s)).collect()),
        Some(Value::Set(s)) => Ok(s.iter().map(|m| (m.as_ref().into(), 1.0)).collect()),
        Some(_) => Err(WRONGTYPE),
    }
}

/// ZUNION/ZINTER/ZDIFF and the STORE forms: `at` is the index of numkeys.
fn setop(ctx: &mut Ctx<'_>, args: Args<'_>, op: SetOp, store: bool) {
    let at = if store { 2 } else { 1 };
    let name = String::from_utf8_lossy(args.get(0)).to_ascii_lowercase();
    let n = tri!(ctx, int_arg(args.get(at)));
    if n < 1 {
        return ctx.err(&format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ));
    }
    if n as u64 > (args.len() - at - 1) as u64 {
        return ctx.err(ERR_SYNTAX);
    }
    let n = n as usize;
    let keys: Vec<&[u8]> = (at + 1..at + 1 + n).map(|i| args.get(i)).collect();
    let mut weights = vec![1.0; n];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut i = at + 1 + n;
    while i < args.len() {
        let a = args.get(i);
        let left = args.len() - i - 1;
        if op != SetOp::Diff && a.eq_ignore_ascii_case(b"WEIGHTS") && left >= n {
            for (j, w) in weights.iter_mut().enumerate() {
                *w = tri!(
                    ctx,
                    parse_f64(args.get(i + 1 + j)).ok_or("ERR weight value is not a float")
                );
            }
            i += n + 1;
        } else if op != SetOp::Diff && a.eq_ignore_ascii_case(b"AGGREGATE") && left >= 1 {
            agg = match args.get(i + 1).to_ascii_uppercase().as_slice() {
                b"SUM" => Aggregate::Sum,
                b"MIN" => Aggregate::Min,
                b"MAX" => Aggregate::Max,
                _ => return ctx.err(ERR_SYNTAX),
            };
            i += 2;
        } else if !store && a.eq_ignore_ascii_case(b"WITHSCORES") {
            withscores = true;
            i += 1;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
    }
    let mut inputs = Vec::with_capacity(n);
    for k in &keys {
        inputs.push(tri!(ctx, input(ctx.ks, k)));
    }
    let lim = ctx.server.encodings;
    let mut out = ZSet::default();
    match op {
        SetOp::Union => {
            let mut acc: indexmap::IndexMap<Box<[u8]>, f64, foldhash::fast::RandomState> =
                Default::default();
            for (inp, w) in inputs.into_iter().zip(&weights) {
                for (m, s) in inp {
                    let v = weighted(s, *w);
                    match acc.get_mut(&m) {
                        Some(a) => *a = aggregate(agg, *a, v),
                        None => {
                            acc.insert(m, v);
                        }
                    }
                }
            }
            for (m, s) in acc {
                out.insert(&m, s, &lim);
            }
        }
        SetOp::Inter => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&j| inputs[j].len());
            let first = order[0];
            let maps: Vec<std::collections::HashMap<&[u8], f64>> = inputs
                .iter()
                .map(|inp| inp.iter().map(|(m, s)| (&m[..], *s)).collect())
                .collect();
            'members: for (m, s) in &inputs[first] {
                let mut acc = weighted(*s, weights[first]);
                for &j in &order[1..] {
                    match maps[j].get(&m[..]) {
                        Some(v) => acc = aggregate(agg, acc, weighted(*v, weights[j])),
                        None => continue 'members,
                    }
                }
                out.insert(m, acc, &lim);
            }
        }
        SetOp::Diff => {
            let others: std::collections::HashSet<&[u8]> = inputs[1..]
                .iter()
                .flat_map(|inp| inp.iter().map(|(m, _)| &m[..]))
                .collect();
            for (m, s) in &inputs[0] {
                if !others.contains(&m[..]) {
                    out.insert(m, *s, &lim);
                }
            }
        }
    }
    if store {
        let dst = args.get(1);
        let len = out.len();
        if len == 0 {
            if ctx.ks.del(dst) {
                ctx.ks.log(&[&b"DEL"[..], dst]);
            }
        } else {
            tri!(ctx, ctx.ks.holds(Kind::ZSet));
            out.pack_if_small(&lim);
            ctx.ks.set(dst, Value::ZSet(Box::new(out)));
            ctx.ks.log_args(args);
        }
        return ctx.int(len as i64);
    }
    let items: Vec<(f64, &[u8])> = out.walk(0, false, usize::MAX).collect();
    pairs(ctx.out, &items, withscores, ctx.resp3);
}

pub(crate) fn zunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setop(ctx, args, SetOp::Union, true)
}
pub(crate) fn zinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setop(ctx, args, SetOp::Inter, true)
}
pub(crate) fn zdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setop(ctx, args, SetOp::Diff, true)
}
pub(crate) fn zunion(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setop(ctx, args, SetOp::Union, false)
}
pub(crate) fn zinter(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setop(ctx, args, SetOp::Inter, false)
}
pub(crate) fn zdiff(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setop(ctx, args, SetOp::Diff, false)
}

pub(crate) fn zintercard(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let n = tri!(ctx, int_arg(args.get(1)));
    if n < 1 {
        return ctx.err("ERR at least 1 input key is needed for 'zintercard' command");
    }
    if n as u64 > (args.len() - 2) as u64 {
        return ctx.err(ERR_SYNTAX);
    }
    let n = n as usize;
    let mut limit = usize::MAX;
    let mut i = 2 + n;
    while i < args.len() {
        if args.get(i).eq_ignore_ascii_case(b"LIMIT") && i + 1 < args.len() {
            limit = match resp::parse_i64(args.get(i + 1)) {
                Some(0) => usize::MAX,
                Some(v) if v > 0 => usize::try_from(v).unwrap_or(usize::MAX),
                _ => return ctx.err("ERR LIMIT can't be negative"),
            };
            i += 2;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
    }
    let mut inputs = Vec::with_capacity(n);
    for k in (2..2 + n).map(|j| args.get(j)) {
        inputs.push(tri!(ctx, input(ctx.ks, k)));
    }
    inputs.sort_by_key(Vec::len);
    let others: Vec<std::collections::HashSet<&[u8]>> = inputs[1..]
        .iter()
        .map(|inp| inp.iter().map(|(m, _)| &m[..]).collect())
        .collect();
    let count = inputs[0]
        .iter()
        .filter(|(m, _)| others.iter().all(|o| o.contains(&m[..])))
        .take(limit)
        .count();
    ctx.int(count as i64);
}

/// `numkeys key... MIN|MAX [COUNT n]` of ZMPOP (and LMPOP's `LEFT|RIGHT`), from
/// `args[1]`: the keys, whether the second word was chosen, and the count.
pub(crate) fn mpop_args<'a>(
    args: Args<'a>,
    words: [&str; 2],
) -> Result<(Vec<&'a [u8]>, bool, usize), &'static str> {
    mpop_args_at(args, 1, words)
}

/// [`mpop_args`] with numkeys at `args[at]` (2 for the blocking forms, after the
/// timeout).
pub(crate) fn mpop_args_at<'a>(
    args: Args<'a>,
    at: usize,
    words: [&str; 2],
) -> Result<(Vec<&'a [u8]>, bool, usize), &'static str> {
    let keys = super::sets::numkeys(args, at)?;
    let mut i = at + 1 + keys.len();
    let second = match args.get(i) {
        w if w.eq_ignore_ascii_case(words[0].as_bytes()) => false,
        w if w.eq_ignore_ascii_case(words[1].as_bytes()) => true,
        _ => return Err(ERR_SYNTAX),
    };
    i += 1;
    let mut count = None;
    while i < args.len() {
        if args.get(i).eq_ignore_ascii_case(b"COUNT") && i + 1 < args.len() && count.is_none() {
            count = match resp::parse_i64(args.get(i + 1)) {
                Some(v) if v > 0 => Some(usize::try_from(v).unwrap_or(usize::MAX)),
                _ => return Err("ERR count should be greater than 0"),
            };
            i += 2;
        } else {
            return Err(ERR_SYNTAX);
        }
    }
    Ok((keys, second, count.unwrap_or(1)))
}

pub(crate) fn zmpop(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (keys, max, count) = tri!(ctx, mpop_args(args, ["MIN", "MAX"]));
    for key in keys {
        if tri!(ctx, read(ctx.ks, key)).is_none() {
            continue;
        }
        let got = pop_n(ctx.ks, key, max, count);
        let mut b = itoa::Buffer::new();
        let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ctx.ks.log(&[name, key, b.format(got.len()).as_bytes()]);
        resp::encode_array_len(ctx.out, 2);
        resp::encode_bulk(ctx.out, key);
        resp::encode_array_len(ctx.out, got.len());
        for (s, m) in &got {
            resp::encode_array_len(ctx.out, 2);
            resp::encode_bulk(ctx.out, m);
            double(ctx.out, *s, ctx.resp3);
        }
        return;
    }
    ctx.null_array();
}
