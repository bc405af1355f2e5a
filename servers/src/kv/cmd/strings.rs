//! String commands: GET, SET (NX XX GET EX PX EXAT PXAT KEEPTTL), GETSET, APPEND,
//! STRLEN, MGET, MSET, INCR, INCRBY, DECR, DECRBY, SETNX, SETEX, PSETEX, GETEX, GETDEL,
//! GETRANGE, SETRANGE, INCRBYFLOAT, MSETNX, SETBIT, GETBIT, BITCOUNT, BITPOS, LCS.
//!
//! Relative times are logged as absolute ones (`SET k v PXAT`, `PEXPIREAT`) and
//! INCRBYFLOAT as the `SET ... KEEPTTL` of its result, so a replay needs no clock and
//! no float arithmetic.

use super::{tri, wrong_arity, Ctx, ERR_NOT_FLOAT, ERR_NOT_INT, ERR_OVERFLOW, ERR_SYNTAX};
use crate::kv::value::{fmt_incr_float, parse_incr_float, StrForm, Value};
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
            if ctx.ks.is_past(at) {
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
            _ => ctx.null(),
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

pub(crate) fn setnx(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, value) = (args.get(1), args.get(2));
    tri!(ctx, ctx.ks.fits(key, value.len()));
    if ctx.ks.exists(key) {
        return ctx.int(0);
    }
    ctx.ks.set_str(key, value.to_vec());
    ctx.ks.log_args(args);
    ctx.int(1);
}

/// SETEX and PSETEX: logged as `SET k v PXAT <ms>`.
fn setex_generic(ctx: &mut Ctx<'_>, args: Args<'_>, unit: i64, name: &str) {
    let (key, value) = (args.get(1), args.get(3));
    let invalid = format!("ERR invalid expire time in '{name}' command");
    match parse_i64(args.get(2)) {
        None => return ctx.err(ERR_NOT_INT),
        Some(v) if v <= 0 => return ctx.err(&invalid),
        Some(_) => {}
    }
    let at = tri!(ctx, expire_ms(args.get(2), unit, true, ctx.ks.now, name));
    tri!(ctx, ctx.ks.fits(key, value.len()));
    ctx.ks.set_str(key, value.to_vec());
    ctx.ks.set_expire(key, at);
    let mut b = itoa::Buffer::new();
    ctx.ks
        .log(&[&b"SET"[..], key, value, b"PXAT", b.format(at).as_bytes()]);
    ctx.ok();
}

pub(crate) fn setex(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setex_generic(ctx, args, 1000, "setex")
}

pub(crate) fn psetex(ctx: &mut Ctx<'_>, args: Args<'_>) {
    setex_generic(ctx, args, 1, "psetex")
}

pub(crate) fn getex(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    // None: leave the expiry; Some(None): PERSIST; Some(Some(at)): set it.
    let mut change: Option<Option<i64>> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i).to_ascii_uppercase();
        if opt == b"PERSIST" && change.is_none() {
            change = Some(None);
            i += 1;
            continue;
        }
        let unit = match opt.as_slice() {
            b"EX" | b"EXAT" => 1000,
            b"PX" | b"PXAT" => 1,
            _ => return ctx.err(ERR_SYNTAX),
        };
        if change.is_some() || i + 1 >= args.len() {
            return ctx.err(ERR_SYNTAX);
        }
        let raw = args.get(i + 1);
        match parse_i64(raw) {
            None => return ctx.err(ERR_NOT_INT),
            Some(v) if v <= 0 => return ctx.err("ERR invalid expire time in 'getex' command"),
            Some(_) => {}
        }
        let relative = !opt.ends_with(b"AT");
        change = Some(Some(tri!(
            ctx,
            expire_ms(raw, unit, relative, ctx.ks.now, "getex")
        )));
        i += 2;
    }
    let Some(v) = tri!(ctx, ctx.ks.get_str(key)).map(<[u8]>::to_vec) else {
        return ctx.null();
    };
    match change {
        None => {}
        Some(None) if ctx.ks.persist(key) => {
            ctx.ks.log(&[&b"PERSIST"[..], key]);
        }
        Some(None) => {}
        Some(Some(at)) if ctx.ks.is_past(at) => {
            ctx.ks.del(key);
            ctx.ks.log(&[&b"DEL"[..], key]);
        }
        Some(Some(at)) => {
            ctx.ks.set_expire(key, at);
            let mut b = itoa::Buffer::new();
            ctx.ks
                .log(&[&b"PEXPIREAT"[..], key, b.format(at).as_bytes()]);
        }
    }
    ctx.bulk(&v);
}

pub(crate) fn getdel(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let Some(v) = tri!(ctx, ctx.ks.get_str(key)).map(<[u8]>::to_vec) else {
        return ctx.null();
    };
    ctx.ks.del(key);
    ctx.ks.log(&[&b"DEL"[..], key]);
    ctx.bulk(&v);
}

/// Resolves inclusive `start end` (negative from the end) over `len` units, as
/// GETRANGE, BITCOUNT and BITPOS do: `None` when empty.
fn clamp_range(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let (mut s, mut e) = (start, end);
    if s < 0 {
        s = s.saturating_add(len);
    }
    if e < 0 {
        e = e.saturating_add(len);
    }
    s = s.max(0);
    e = e.max(0);
    if e >= len {
        e = len - 1;
    }
    (len > 0 && s <= e).then_some((s, e))
}

pub(crate) fn getrange(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let start = tri!(ctx, parse_i64(args.get(2)).ok_or(ERR_NOT_INT));
    let end = tri!(ctx, parse_i64(args.get(3)).ok_or(ERR_NOT_INT));
    let v = tri!(ctx, ctx.ks.get_str(args.get(1))).unwrap_or(&[]);
    // As Redis: both negative and start past end is empty before clamping.
    if start < 0 && end < 0 && start > end {
        return crate::proto::resp::encode_bulk(ctx.out, b"");
    }
    match clamp_range(start, end, v.len() as i64) {
        Some((s, e)) => crate::proto::resp::encode_bulk(ctx.out, &v[s as usize..=e as usize]),
        None => crate::proto::resp::encode_bulk(ctx.out, b""),
    }
}

pub(crate) fn setrange(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (key, tail) = (args.get(1), args.get(3));
    let offset = tri!(ctx, parse_i64(args.get(2)).ok_or(ERR_NOT_INT));
    if offset < 0 {
        return ctx.err("ERR offset is out of range");
    }
    let cur = tri!(ctx, ctx.ks.peek_str(key)).map(<[u8]>::len);
    if tail.is_empty() {
        return ctx.int(cur.unwrap_or(0) as i64);
    }
    let end = (offset as u64).saturating_add(tail.len() as u64);
    if end > ctx.server.limits.max_bulk as u64 {
        return ctx.err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let end = end as usize;
    tri!(ctx, ctx.ks.fits(key, end.max(cur.unwrap_or(0))));
    let mut v = tri!(ctx, ctx.ks.peek_str(key))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if v.len() < end {
        v.resize(end, 0);
    }
    v[offset as usize..end].copy_from_slice(tail);
    let n = v.len();
    ctx.ks.set_keep_ttl(key, Value::Str(v));
    // Changed in place (or made by SETRANGE): `raw`, as Redis leaves it.
    ctx.ks.set_form(key, StrForm::Raw);
    ctx.ks.log_args(args);
    ctx.int(n as i64);
}

pub(crate) fn incrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let by = tri!(ctx, parse_incr_float(args.get(2)).ok_or(ERR_NOT_FLOAT));
    let cur = match tri!(ctx, ctx.ks.peek_str(key)) {
        None => 0.0,
        Some(v) => tri!(ctx, parse_incr_float(v).ok_or(ERR_NOT_FLOAT)),
    };
    let new = cur + by;
    if !new.is_finite() {
        return ctx.err("ERR increment would produce NaN or Infinity");
    }
    let text = fmt_incr_float(new);
    tri!(ctx, ctx.ks.fits(key, text.len()));
    ctx.ks
        .set_keep_ttl(key, Value::Str(text.as_bytes().to_vec()));
    ctx.ks.set_form(key, StrForm::Formatted);
    ctx.ks.log(&[&b"SET"[..], key, text.as_bytes(), b"KEEPTTL"]);
    ctx.bulk(text.as_bytes());
}

pub(crate) fn msetnx(ctx: &mut Ctx<'_>, args: Args<'_>) {
    if args.len() % 2 == 0 {
        return ctx.err(&wrong_arity("msetnx"));
    }
    for i in (1..args.len()).step_by(2) {
        tri!(ctx, ctx.ks.fits(args.get(i), args.get(i + 1).len()));
    }
    for i in (1..args.len()).step_by(2) {
        if ctx.ks.exists(args.get(i)) {
            return ctx.int(0);
        }
    }
    for i in (1..args.len()).step_by(2) {
        ctx.ks.set_str(args.get(i), args.get(i + 1).to_vec());
    }
    let mut rec: Vec<&[u8]> = vec![b"MSET"];
    rec.extend(args.iter().skip(1));
    ctx.ks.log(&rec);
    ctx.int(1);
}

const ERR_BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";

/// A bit offset: below 2^32 as in Redis, and within proto-max-bulk-len bytes.
fn bit_offset(ctx: &Ctx<'_>, a: &[u8]) -> Result<usize, &'static str> {
    match parse_i64(a) {
        Some(v) if (0..1i64 << 32).contains(&v) => {
            if (v as u64 >> 3) >= ctx.server.limits.max_bulk as u64 {
                return Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
            }
            Ok(v as usize)
        }
        _ => Err(ERR_BIT_OFFSET),
    }
}

pub(crate) fn setbit(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    let off = tri!(ctx, bit_offset(ctx, args.get(2)));
    let on = match args.get(3) {
        b"1" => true,
        b"0" => false,
        _ => return ctx.err("ERR bit is not an integer or out of range"),
    };
    let byte = off >> 3;
    tri!(ctx, ctx.ks.fits(key, byte + 1));
    let mut v = tri!(ctx, ctx.ks.peek_str(key))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if v.len() <= byte {
        v.resize(byte + 1, 0);
    }
    let mask = 0x80u8 >> (off & 7);
    let old = v[byte] & mask != 0;
    if on {
        v[byte] |= mask;
    } else {
        v[byte] &= !mask;
    }
    ctx.ks.set_keep_ttl(key, Value::Str(v));
    ctx.ks.set_form(key, StrForm::Raw);
    ctx.ks.log_args(args);
    ctx.int(i64::from(old));
}

pub(crate) fn getbit(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let off = tri!(
        ctx,
        bit_offset(ctx, args.get(2)).map_err(|_| ERR_BIT_OFFSET)
    );
    let v = tri!(ctx, ctx.ks.get_str(args.get(1))).unwrap_or(&[]);
    let bit = v
        .get(off >> 3)
        .is_some_and(|b| b & (0x80 >> (off & 7)) != 0);
    ctx.int(i64::from(bit));
}

/// A bit range (`None`: empty) and whether its end was given.
type BitRange = (Option<(u64, u64)>, bool);

/// `[start end [BYTE|BIT]]` of BITCOUNT and BITPOS (from `args[at]`), as a bit range
/// over `len` bytes; `Ok(None)` when empty. The flag says whether `end` was given.
fn bit_range(args: Args<'_>, at: usize, len: usize) -> Result<BitRange, &'static str> {
    let n = args.len() - at;
    let bits = match n {
        0..=2 => false,
        3 if args.get(at + 2).eq_ignore_ascii_case(b"BIT") => true,
        3 if args.get(at + 2).eq_ignore_ascii_case(b"BYTE") => false,
        _ => return Err(ERR_SYNTAX),
    };
    let start = if n >= 1 {
        parse_i64(args.get(at)).ok_or(ERR_NOT_INT)?
    } else {
        0
    };
    let end = if n >= 2 {
        parse_i64(args.get(at + 1)).ok_or(ERR_NOT_INT)?
    } else {
        -1
    };
    let units = if bits { len as i64 * 8 } else { len as i64 };
    Ok((
        clamp_range(start, end, units).map(|(s, e)| {
            if bits {
                (s as u64, e as u64)
            } else {
                (s as u64 * 8, e as u64 * 8 + 7)
            }
        }),
        n >= 2,
    ))
}

fn bit_at(v: &[u8], i: u64) -> bool {
    v[(i >> 3) as usize] & (0x80 >> (i & 7)) != 0
}

pub(crate) fn bitcount(ctx: &mut Ctx<'_>, args: Args<'_>) {
    if args.len() == 3 {
        return ctx.err(ERR_SYNTAX);
    }
    let v = tri!(ctx, ctx.ks.get_str(args.get(1))).unwrap_or(&[]);
    let (range, _) = tri!(ctx, bit_range(args, 2, v.len()));
    let Some((mut s, e)) = range else {
        return ctx.int(0);
    };
    let mut n = 0u64;
    while s <= e {
        if s & 7 == 0 && s + 7 <= e {
            n += u64::from(v[(s >> 3) as usize].count_ones());
            s += 8;
        } else {
            n += u64::from(bit_at(v, s));
            s += 1;
        }
    }
    ctx.int(n as i64);
}

pub(crate) fn bitpos(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let want = match args.get(2) {
        b"1" => true,
        b"0" => false,
        a if parse_i64(a).is_none() => return ctx.err(ERR_NOT_INT),
        _ => return ctx.err("ERR The bit argument must be 1 or 0."),
    };
    let found = {
        let v = tri!(ctx, ctx.ks.get_str(args.get(1)));
        let Some(v) = v else {
            return ctx.int(if want { -1 } else { 0 });
        };
        let (range, end_given) = tri!(ctx, bit_range(args, 3, v.len()));
        let Some((mut s, e)) = range else {
            return ctx.int(-1);
        };
        let skip = if want { 0x00 } else { 0xff };
        let mut found = None;
        while s <= e {
            if s & 7 == 0 && s + 7 <= e && v[(s >> 3) as usize] == skip {
                s += 8;
                continue;
            }
            if bit_at(v, s) == want {
                found = Some(s as i64);
                break;
            }
            s += 1;
        }
        match found {
            Some(p) => p,
            None if !want && !end_given => e as i64 + 1,
            None => -1,
        }
    };
    ctx.int(found);
}

pub(crate) fn lcs(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (mut len_only, mut idx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen = 0u64;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        if opt.eq_ignore_ascii_case(b"IDX") {
            idx = true;
        } else if opt.eq_ignore_ascii_case(b"LEN") {
            len_only = true;
        } else if opt.eq_ignore_ascii_case(b"WITHMATCHLEN") {
            withmatchlen = true;
        } else if opt.eq_ignore_ascii_case(b"MINMATCHLEN") && i + 1 < args.len() {
            let v = tri!(ctx, parse_i64(args.get(i + 1)).ok_or(ERR_NOT_INT));
            minmatchlen = v.max(0) as u64;
            i += 1;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
        i += 1;
    }
    let not_str = "ERR The specified keys must contain string values";
    let a = tri!(ctx, ctx.ks.get_str(args.get(1)).map_err(|_| not_str))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let b = tri!(ctx, ctx.ks.get_str(args.get(2)).map_err(|_| not_str))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if len_only && idx {
        return ctx.err("ERR If you want both the length and indexes, please just use IDX.");
    }
    // The table costs (|a|+1)(|b|+1) 32-bit cells; bounded as Redis bounds it.
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.server.limits.max_bulk as u64 {
        return ctx
            .err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let (alen, blen) = (a.len(), b.len());
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen] as usize;
    if len_only {
        return ctx.int(total as i64);
    }
    // Redis's backtrack, emitting matched ranges from the end.
    let mut result = vec![0u8; total];
    let mut k = total;
    let (mut i, mut j) = (alen, blen);
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    let mut matches = Vec::new();
    let mut count = 0usize;
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[k - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            k -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            // Set whenever a range is emitted: a match started it.
            let mlen = (a_end + 1).saturating_sub(a_start) as u64;
            if idx && (minmatchlen == 0 || mlen >= minmatchlen) {
                crate::proto::resp::encode_array_len(&mut matches, 2 + usize::from(withmatchlen));
                for (s, e) in [(a_start, a_end), (b_start, b_end)] {
                    crate::proto::resp::encode_array_len(&mut matches, 2);
                    crate::proto::resp::encode_int(&mut matches, s as i64);
                    crate::proto::resp::encode_int(&mut matches, e as i64);
                }
                if withmatchlen {
                    crate::proto::resp::encode_int(&mut matches, mlen as i64);
                }
                count += 1;
            }
            a_start = alen;
        }
    }
    if idx {
        // A map in RESP3, as Redis 7.0's.
        crate::proto::resp::encode_map_len(ctx.out, 2, ctx.resp3);
        ctx.bulk(b"matches");
        ctx.array(count);
        ctx.out.extend_from_slice(&matches);
        ctx.bulk(b"len");
        ctx.int(total as i64);
    } else {
        ctx.bulk(&result);
    }
}
