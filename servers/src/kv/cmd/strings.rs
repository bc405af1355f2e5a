//! String commands: GET, SET (NX XX GET EX PX EXAT PXAT KEEPTTL), GETSET, APPEND,
//! STRLEN, MGET, MSET, INCR, INCRBY, DECR, DECRBY.

use super::{wrong_arity, Ctx, ERR_NOT_INT, ERR_OVERFLOW, ERR_SYNTAX};
use crate::kv::value::Value;
use crate::proto::resp::{parse_i64, Args};

pub(crate) fn get(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match ctx.ks.get_str(args.get(1)) {
        Ok(Some(v)) => crate::proto::resp::encode_bulk(ctx.out, v),
        Ok(None) => ctx.null(),
        Err(e) => ctx.err(e),
    }
}

/// Turns an expire argument into absolute Unix milliseconds, with Redis's checks and
/// words. `unit_ms` is 1000 for seconds; `relative` adds the current time.
pub(crate) fn expire_ms(
    arg: &[u8],
    unit_ms: i64,
    relative: bool,
    now: i64,
    cmd: &str,
) -> Result<i64, String> {
    let v = parse_i64(arg).ok_or_else(|| ERR_NOT_INT.to_owned())?;
    let invalid = || format!("ERR invalid expire time in '{cmd}' command");
    let mut ms = v.checked_mul(unit_ms).ok_or_else(invalid)?;
    if relative {
        ms = ms.checked_add(now).ok_or_else(invalid)?;
    }
    Ok(ms)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cond {
    Always,
    Nx,
    Xx,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ttl {
    Clear,
    Keep,
    At(i64),
}

pub(crate) fn set(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, value) = (args.get(1), args.get(2));
    let mut cond = Cond::Always;
    let mut want_get = false;
    let mut ttl = Ttl::Clear;
    let mut have_ttl = false;
    let mut pending = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let has_next = i + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"NX") && cond != Cond::Xx {
            cond = Cond::Nx;
        } else if opt.eq_ignore_ascii_case(b"XX") && cond != Cond::Nx {
            cond = Cond::Xx;
        } else if opt.eq_ignore_ascii_case(b"GET") {
            want_get = true;
        } else if opt.eq_ignore_ascii_case(b"KEEPTTL") && !have_ttl {
            ttl = Ttl::Keep;
            have_ttl = true;
        } else if !have_ttl
            && has_next
            && ["EX", "PX", "EXAT", "PXAT"]
                .iter()
                .any(|o| opt.eq_ignore_ascii_case(o.as_bytes()))
        {
            let up = opt.to_ascii_uppercase();
            pending = Some(match &up[..] {
                b"EX" => (args.get(i + 1), 1000, true),
                b"PX" => (args.get(i + 1), 1, true),
                b"EXAT" => (args.get(i + 1), 1000, false),
                _ => (args.get(i + 1), 1, false),
            });
            have_ttl = true;
            i += 1;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
        i += 1;
    }
    if let Err(e) = ctx.ks.fits(key, value.len()) {
        return ctx.err(&e);
    }
    // Options first, then the expire value, as Redis checks them.
    if let Some((raw, unit, relative)) = pending {
        match parse_i64(raw) {
            None => return ctx.err(ERR_NOT_INT),
            Some(v) if v <= 0 => return ctx.err("ERR invalid expire time in 'set' command"),
            Some(_) => {}
        }
        match expire_ms(raw, unit, relative, ctx.ks.now, "set") {
            Ok(at) => ttl = Ttl::At(at),
            Err(e) => return ctx.err(&e),
        }
    }
    let old = if want_get {
        match ctx.ks.peek_str(key) {
            Ok(v) => v.map(<[u8]>::to_vec),
            Err(e) => return ctx.err(e),
        }
    } else {
        None
    };
    let exists = if want_get {
        old.is_some()
    } else {
        cond != Cond::Always && ctx.ks.exists(key)
    };
    if want_get {
        match &old {
            Some(v) => crate::proto::resp::encode_bulk(ctx.out, v),
            None => ctx.null(),
        }
    }
    if (cond == Cond::Nx && exists) || (cond == Cond::Xx && !exists) {
        if !want_get {
            ctx.null();
        }
        return;
    }
    match ttl {
        Ttl::Clear => {
            ctx.ks.set_str(key, value.to_vec());
            ctx.ks.log(&[&b"SET"[..], key, value]);
        }
        Ttl::Keep => {
            ctx.ks.set_keep_ttl(key, Value::Str(value.to_vec()));
            ctx.ks.log(&[&b"SET"[..], key, value, b"KEEPTTL"]);
        }
        Ttl::At(at) => {
            ctx.ks.set_str(key, value.to_vec());
            if at <= ctx.ks.now {
                // Already in the past: as good as deleted, and logged as such.
                ctx.ks.del(key);
                ctx.ks.log(&[&b"DEL"[..], key]);
            } else {
                ctx.ks.set_expire(key, at);
                let mut b = itoa::Buffer::new();
                ctx.ks
                    .log(&[&b"SET"[..], key, value, b"PXAT", b.format(at).as_bytes()]);
            }
        }
    }
    if !want_get {
        ctx.ok();
    }
}

pub(crate) fn getset(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, value) = (args.get(1), args.get(2));
    if let Err(e) = ctx.ks.fits(key, value.len()) {
        return ctx.err(&e);
    }
    match ctx.ks.peek_str(key) {
        Ok(Some(v)) => crate::proto::resp::encode_bulk(ctx.out, v),
        Ok(None) => ctx.null(),
        Err(e) => return ctx.err(e),
    }
    ctx.ks.set_str(key, value.to_vec());
    ctx.ks.log(&[&b"SET"[..], key, value]);
}

pub(crate) fn append(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, tail) = (args.get(1), args.get(2));
    let cur = match ctx.ks.peek_str(key) {
        Ok(v) => v.map_or(0, <[u8]>::len),
        Err(e) => return ctx.err(e),
    };
    if cur + tail.len() > ctx.server.limits.max_bulk {
        return ctx.err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    if let Err(e) = ctx.ks.fits(key, cur + tail.len()) {
        return ctx.err(&e);
    }
    let n = ctx.ks.append(key, tail);
    ctx.ks.log_args(args);
    ctx.int(n as i64);
}

pub(crate) fn strlen(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match ctx
        .ks
        .peek_str(args.get(1))
        .map(|v| v.map_or(0, <[u8]>::len))
    {
        Ok(n) => ctx.int(n as i64),
        Err(e) => ctx.err(e),
    }
}

pub(crate) fn mget(ctx: &mut Ctx<'_>, args: Args<'_>) {
    ctx.array(args.len() - 1);
    for k in args.iter().skip(1) {
        match ctx.ks.get(k) {
            Some(Value::Str(v)) => crate::proto::resp::encode_bulk(ctx.out, v),
            _ => ctx.out.extend_from_slice(crate::proto::resp::NULL_BULK),
        }
    }
}

pub(crate) fn mset(ctx: &mut Ctx<'_>, args: Args<'_>) {
    if args.len() % 2 == 0 {
        return ctx.err(&wrong_arity("mset"));
    }
    let mut i = 1;
    while i + 1 < args.len() {
        if let Err(e) = ctx.ks.fits(args.get(i), args.get(i + 1).len()) {
            return ctx.err(&e);
        }
        i += 2;
    }
    let mut i = 1;
    while i + 1 < args.len() {
        ctx.ks.set_str(args.get(i), args.get(i + 1).to_vec());
        i += 2;
    }
    ctx.ks.log_args(args);
    ctx.ok();
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> Result<i64, String> {
    ctx.ks.fits(key, 20)?;
    let cur = match ctx.ks.peek_str(key)? {
        None => 0,
        Some(v) => parse_i64(v).ok_or(ERR_NOT_INT)?,
    };
    let new = cur.checked_add(by).ok_or(ERR_OVERFLOW)?;
    let mut b = itoa::Buffer::new();
    ctx.ks
        .set_keep_ttl(key, Value::Str(b.format(new).as_bytes().to_vec()));
    Ok(new)
}

fn incr_reply(ctx: &mut Ctx<'_>, args: Args<'_>, by: i64) {
    match incr_by(ctx, args.get(1), by) {
        Ok(v) => {
            ctx.ks.log_args(args);
            ctx.int(v)
        }
        Err(e) => ctx.err(&e),
    }
}

pub(crate) fn incr(ctx: &mut Ctx<'_>, args: Args<'_>) {
    incr_reply(ctx, args, 1)
}

pub(crate) fn decr(ctx: &mut Ctx<'_>, args: Args<'_>) {
    incr_reply(ctx, args, -1)
}

pub(crate) fn incrby(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match parse_i64(args.get(2)) {
        Some(by) => incr_reply(ctx, args, by),
        None => ctx.err(ERR_NOT_INT),
    }
}

pub(crate) fn decrby(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match parse_i64(args.get(2)) {
        Some(i64::MIN) => ctx.err("ERR decrement would overflow"),
        Some(by) => incr_reply(ctx, args, -by),
        None => ctx.err(ERR_NOT_INT),
    }
}
