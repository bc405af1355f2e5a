//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP (with count) LLEN LRANGE LINDEX
//! LSET LINSERT LREM LTRIM LPOS LMOVE RPOPLPUSH.
//!
//! Every list command is deterministic given the data, so each is logged as sent,
//! once it changed something (the blocking forms log the pop that happened, see
//! `kv::blocking`).

use super::{index_range, int_arg, tri, Ctx, ERR_OUT_OF_RANGE, ERR_SYNTAX};
use crate::kv::keyspace::{Keyspace, WRONGTYPE};
use crate::kv::value::{Kind, List, Value};
use crate::proto::resp::{self, Args};

pub(crate) fn read<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<Option<&'a List>, &'static str> {
    Ok(match ks.read(key, Kind::List)? {
        Some(Value::List(l)) => Some(l),
        _ => None,
    })
}

pub(crate) fn write<'a>(
    ks: &'a mut Keyspace,
    key: &[u8],
) -> Result<Option<&'a mut List>, &'static str> {
    Ok(match ks.write(key, Kind::List)? {
        Some(Value::List(l)) => Some(l),
        _ => None,
    })
}

pub(crate) fn create<'a>(ks: &'a mut Keyspace, key: &[u8]) -> Result<&'a mut List, String> {
    match ks.write_or_create(key, Kind::List)? {
        Value::List(l) => Ok(l),
        _ => Err(WRONGTYPE.into()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum End {
    Left,
    Right,
}

impl End {
    pub(crate) fn parse(s: &[u8]) -> Option<End> {
        if s.eq_ignore_ascii_case(b"LEFT") {
            Some(End::Left)
        } else if s.eq_ignore_ascii_case(b"RIGHT") {
            Some(End::Right)
        } else {
            None
        }
    }
}

fn push(ctx: &mut Ctx<'_>, args: Args<'_>, end: End, only_existing: bool) {
    let key = args.get(1);
    let l = if only_existing {
        match tri!(ctx, write(ctx.ks, key)) {
            Some(l) => l,
            None => return ctx.int(0),
        }
    } else {
        tri!(ctx, create(ctx.ks, key))
    };
    for v in args.iter().skip(2) {
        match end {
            End::Left => l.push_front(v.into()),
            End::Right => l.push_back(v.into()),
        }
    }
    let n = l.len();
    ctx.ks.log_args(args);
    ctx.int(n as i64);
}

pub(crate) fn lpush(ctx: &mut Ctx<'_>, args: Args<'_>) {
    push(ctx, args, End::Left, false)
}
pub(crate) fn rpush(ctx: &mut Ctx<'_>, args: Args<'_>) {
    push(ctx, args, End::Right, false)
}
pub(crate) fn lpushx(ctx: &mut Ctx<'_>, args: Args<'_>) {
    push(ctx, args, End::Left, true)
}
pub(crate) fn rpushx(ctx: &mut Ctx<'_>, args: Args<'_>) {
    push(ctx, args, End::Right, true)
}

/// Pops up to `n` elements from one end; the key goes when the list empties.
pub(crate) fn pop_n(ks: &mut Keyspace, key: &[u8], end: End, n: usize) -> Vec<Box<[u8]>> {
    let mut out = Vec::new();
    if let Ok(Some(l)) = write(ks, key) {
        let n = n.min(l.len());
        out.reserve(n);
        for _ in 0..n {
            let v = match end {
                End::Left => l.pop_front(),
                End::Right => l.pop_back(),
            };
            out.extend(v);
        }
        ks.drop_if_empty(key);
    }
    out
}

fn pop(ctx: &mut Ctx<'_>, args: Args<'_>, end: End) {
    let key = args.get(1);
    let count = match args.len() {
        2 => None,
        3 => match resp::parse_i64(args.get(2)) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return ctx.err(ERR_OUT_OF_RANGE),
        },
        _ => {
            return ctx.err(&super::wrong_arity(if end == End::Left {
                "lpop"
            } else {
                "rpop"
            }))
        }
    };
    if tri!(ctx, read(ctx.ks, key)).is_none() {
        return match count {
            None => ctx.null(),
            Some(_) => ctx.null_array(),
        };
    }
    let n = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX));
    let got = pop_n(ctx.ks, key, end, n);
    if !got.is_empty() {
        ctx.ks.log_args(args);
    }
    match count {
        None => match got.first() {
            Some(v) => ctx.bulk(v),
            None => ctx.null(),
        },
        Some(_) => {
            resp::encode_array_len(ctx.out, got.len());
            for v in &got {
                resp::encode_bulk(ctx.out, v);
            }
        }
    }
}

pub(crate) fn lpop(ctx: &mut Ctx<'_>, args: Args<'_>) {
    pop(ctx, args, End::Left)
}
pub(crate) fn rpop(ctx: &mut Ctx<'_>, args: Args<'_>) {
    pop(ctx, args, End::Right)
}

pub(crate) fn llen(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let n = tri!(ctx, read(ctx.ks, args.get(1))).map_or(0, |l| l.len());
    ctx.int(n as i64);
}

pub(crate) fn lrange(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let start = tri!(ctx, int_arg(args.get(2)));
    let stop = tri!(ctx, int_arg(args.get(3)));
    let l = tri!(ctx, read(ctx.ks, args.get(1)));
    match l.and_then(|l| index_range(start, stop, l.len()).map(|r| (l, r))) {
        None => resp::encode_array_len(ctx.out, 0),
        Some((l, (a, b))) => {
            resp::encode_array_len(ctx.out, b - a + 1);
            for v in l.range(a..=b) {
                resp::encode_bulk(ctx.out, v);
            }
        }
    }
}

fn resolve(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { len.checked_add(i)? } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

pub(crate) fn lindex(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let i = tri!(ctx, int_arg(args.get(2)));
    let l = tri!(ctx, read(ctx.ks, args.get(1)));
    match l.and_then(|l| resolve(i, l.len()).and_then(|i| l.get(i))) {
        Some(v) => resp::encode_bulk(ctx.out, v),
        None => ctx.null(),
    }
}

pub(crate) fn lset(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let i = tri!(ctx, int_arg(args.get(2)));
    let Some(l) = tri!(ctx, write(ctx.ks, args.get(1))) else {
        return ctx.err("ERR no such key");
    };
    let Some(slot) = resolve(i, l.len()).and_then(|i| l.get_mut(i)) else {
        return ctx.err("ERR index out of range");
    };
    *slot = args.get(3).into();
    ctx.ks.log_args(args);
    ctx.ok();
}

pub(crate) fn linsert(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let after = match args.get(2) {
        w if w.eq_ignore_ascii_case(b"BEFORE") => false,
        w if w.eq_ignore_ascii_case(b"AFTER") => true,
        _ => return ctx.err(ERR_SYNTAX),
    };
    let Some(l) = tri!(ctx, write(ctx.ks, args.get(1))) else {
        return ctx.int(0);
    };
    let pivot = args.get(3);
    let Some(at) = l.iter().position(|v| &v[..] == pivot) else {
        return ctx.int(-1);
    };
    l.insert(at + usize::from(after), args.get(4).into());
    let n = l.len();
    ctx.ks.log_args(args);
    ctx.int(n as i64);
}

pub(crate) fn lrem(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let count = tri!(ctx, int_arg(args.get(2)));
    let Some(l) = tri!(ctx, write(ctx.ks, key)) else {
        return ctx.int(0);
    };
    let want = args.get(3);
    let limit = if count == 0 {
        usize::MAX
    } else {
        usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
    };
    let mut removed = 0usize;
    if count >= 0 {
        l.retain(|v| {
            if removed < limit && &v[..] == want {
                removed += 1;
                false
            } else {
                true
            }
        });
    } else {
        let mut i = l.len();
        while i > 0 && removed < limit {
            i -= 1;
            if &l[i][..] == want {
                l.remove(i);
                removed += 1;
            }
        }
    }
    if removed > 0 {
        ctx.ks.drop_if_empty(key);
        ctx.ks.log_args(args);
    }
    ctx.int(removed as i64);
}

pub(crate) fn ltrim(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let start = tri!(ctx, int_arg(args.get(2)));
    let stop = tri!(ctx, int_arg(args.get(3)));
    let Some(l) = tri!(ctx, write(ctx.ks, key)) else {
        return ctx.ok();
    };
    let before = l.len();
    match index_range(start, stop, l.len()) {
        None => l.clear(),
        Some((a, b)) => {
            l.truncate(b + 1);
            l.drain(..a);
        }
    }
    let changed = l.len() != before;
    if l.capacity() > 64 && l.capacity() > 4 * l.len() {
        l.shrink_to_fit();
    }
    if changed {
        ctx.ks.drop_if_empty(key);
        ctx.ks.log_args(args);
    }
    ctx.ok();
}

pub(crate) fn lpos(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen = 0usize;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        if i + 1 >= args.len() {
            return ctx.err(ERR_SYNTAX);
        }
        let v = tri!(ctx, int_arg(args.get(i + 1)));
        if opt.eq_ignore_ascii_case(b"RANK") {
            if v == 0 {
                return ctx.err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
            }
            rank = v;
        } else if opt.eq_ignore_ascii_case(b"COUNT") {
            if v < 0 {
                return ctx.err("ERR COUNT can't be negative");
            }
            count = Some(usize::try_from(v).unwrap_or(usize::MAX));
        } else if opt.eq_ignore_ascii_case(b"MAXLEN") {
            if v < 0 {
                return ctx.err("ERR MAXLEN can't be negative");
            }
            maxlen = usize::try_from(v).unwrap_or(usize::MAX);
        } else {
            return ctx.err(ERR_SYNTAX);
        }
        i += 2;
    }
    let l = tri!(ctx, read(ctx.ks, args.get(1)));
    let want = args.get(2);
    let from_tail = rank < 0;
    // As Redis: a rank of i64::MIN stays negative when negated, and so matches first.
    let skip = rank.unsigned_abs().saturating_sub(1);
    let skip = if rank == i64::MIN { 0 } else { skip };
    let limit = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(n) => n,
    };
    let mut found = Vec::new();
    if let Some(l) = l {
        let len = l.len();
        let scan = if maxlen == 0 { len } else { maxlen.min(len) };
        let mut matches = 0u64;
        for step in 0..scan {
            let idx = if from_tail { len - 1 - step } else { step };
            if &l[idx][..] == want {
                matches += 1;
                if matches > skip {
                    found.push(idx as i64);
                    if found.len() >= limit {
                        break;
                    }
                }
            }
        }
    }
    match count {
        None => match found.first() {
            Some(&i) => ctx.int(i),
            None => ctx.null(),
        },
        Some(_) => {
            resp::encode_array_len(ctx.out, found.len());
            for i in found {
                resp::encode_int(ctx.out, i);
            }
        }
    }
}

/// Moves one element between lists (or within one). `Ok(None)`: the source is
/// empty. Types are checked before anything moves.
pub(crate) fn move_one(
    ks: &mut Keyspace,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Box<[u8]>>, String> {
    if read(ks, src)?.is_none() {
        return Ok(None);
    }
    read(ks, dst)?;
    let Some(v) = pop_n(ks, src, from, 1).pop() else {
        return Ok(None);
    };
    let l = create(ks, dst)?;
    match to {
        End::Left => l.push_front(v.clone()),
        End::Right => l.push_back(v.clone()),
    }
    Ok(Some(v))
}

pub(crate) fn lmove(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (Some(from), Some(to)) = (End::parse(args.get(3)), End::parse(args.get(4))) else {
        return ctx.err(ERR_SYNTAX);
    };
    match tri!(ctx, move_one(ctx.ks, args.get(1), args.get(2), from, to)) {
        Some(v) => {
            ctx.ks.log_args(args);
            ctx.bulk(&v);
        }
        None => ctx.null(),
    }
}

pub(crate) fn rpoplpush(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match tri!(
        ctx,
        move_one(ctx.ks, args.get(1), args.get(2), End::Right, End::Left)
    ) {
        Some(v) => {
            ctx.ks.log_args(args);
            ctx.bulk(&v);
        }
        None => ctx.null(),
    }
}

pub(crate) fn lmpop(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (keys, right, count) = tri!(ctx, super::zsets::mpop_args(args, ["LEFT", "RIGHT"]));
    let end = if right { End::Right } else { End::Left };
    for key in keys {
        if tri!(ctx, read(ctx.ks, key)).is_none() {
            continue;
        }
        let got = pop_n(ctx.ks, key, end, count);
        let mut b = itoa::Buffer::new();
        let name: &[u8] = if right { b"RPOP" } else { b"LPOP" };
        ctx.ks.log(&[name, key, b.format(got.len()).as_bytes()]);
        resp::encode_array_len(ctx.out, 2);
        resp::encode_bulk(ctx.out, key);
        resp::encode_array_len(ctx.out, got.len());
        for v in &got {
            resp::encode_bulk(ctx.out, v);
        }
        return;
    }
    ctx.null_array();
}
