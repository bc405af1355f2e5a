//! Key commands: DEL, EXISTS, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (NX XX GT LT), TTL,
//! PTTL, PERSIST, KEYS, SCAN (MATCH COUNT TYPE), RANGE (LIMIT), DBSIZE, FLUSHDB.

use super::strings::expire_ms;
use super::{parse_cursor, Ctx, ERR_NOT_INT, ERR_SYNTAX};
use crate::kv::value::Kind;
use crate::proto::resp::{self, parse_i64, Args};

pub(crate) fn del(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.ks.del(k) {
            n += 1;
        }
    }
    if n > 0 {
        ctx.ks.log_args(args);
    }
    ctx.int(n);
}

pub(crate) fn exists(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.ks.exists(k) {
            n += 1;
        }
    }
    ctx.int(n);
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn expire_flags(args: Args<'_>) -> Result<ExpireFlags, String> {
    let mut f = ExpireFlags::default();
    for opt in args.iter().skip(3) {
        if opt.eq_ignore_ascii_case(b"NX") {
            f.nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") {
            f.xx = true;
        } else if opt.eq_ignore_ascii_case(b"GT") {
            f.gt = true;
        } else if opt.eq_ignore_ascii_case(b"LT") {
            f.lt = true;
        } else {
            return Err(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if f.gt && f.lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    Ok(f)
}

fn expire_generic(ctx: &mut Ctx<'_>, args: Args<'_>, unit: i64, relative: bool, name: &str) {
    let flags = match expire_flags(args) {
        Ok(f) => f,
        Err(e) => return ctx.err(&e),
    };
    let key = args.get(1);
    let at = match expire_ms(args.get(2), unit, relative, ctx.ks.now, name) {
        Ok(at) => at,
        Err(e) => return ctx.err(&e),
    };
    if !ctx.ks.exists(key) {
        return ctx.int(0);
    }
    let cur = ctx.ks.expire_at(key);
    // GT treats no expiry as an infinite one, which nothing is greater than.
    let refused = (flags.nx && cur.is_some())
        || (flags.xx && cur.is_none())
        || (flags.gt && cur.map_or(true, |c| at <= c))
        || (flags.lt && cur.is_some_and(|c| at >= c));
    if refused {
        return ctx.int(0);
    }
    if ctx.ks.is_past(at) {
        ctx.ks.del(key);
        ctx.ks.log(&[&b"DEL"[..], key]);
    } else {
        ctx.ks.set_expire(key, at);
        let mut b = itoa::Buffer::new();
        ctx.ks
            .log(&[&b"PEXPIREAT"[..], key, b.format(at).as_bytes()]);
    }
    ctx.int(1);
}

pub(crate) fn expire(ctx: &mut Ctx<'_>, args: Args<'_>) {
    expire_generic(ctx, args, 1000, true, "expire")
}

pub(crate) fn pexpire(ctx: &mut Ctx<'_>, args: Args<'_>) {
    expire_generic(ctx, args, 1, true, "pexpire")
}

pub(crate) fn expireat(ctx: &mut Ctx<'_>, args: Args<'_>) {
    expire_generic(ctx, args, 1000, false, "expireat")
}

pub(crate) fn pexpireat(ctx: &mut Ctx<'_>, args: Args<'_>) {
    expire_generic(ctx, args, 1, false, "pexpireat")
}

fn ttl_generic(ctx: &mut Ctx<'_>, args: Args<'_>, ms: bool) {
    let key = args.get(1);
    if !ctx.ks.exists(key) {
        return ctx.int(-2);
    }
    match ctx.ks.expire_at(key) {
        None => ctx.int(-1),
        Some(at) => {
            let left = (at - ctx.ks.now).max(0);
            ctx.int(if ms { left } else { (left + 500) / 1000 })
        }
    }
}

pub(crate) fn ttl(ctx: &mut Ctx<'_>, args: Args<'_>) {
    ttl_generic(ctx, args, false)
}

pub(crate) fn pttl(ctx: &mut Ctx<'_>, args: Args<'_>) {
    ttl_generic(ctx, args, true)
}

pub(crate) fn persist(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let key = args.get(1);
    if ctx.ks.exists(key) && ctx.ks.persist(key) {
        ctx.ks.log_args(args);
        ctx.int(1)
    } else {
        ctx.int(0)
    }
}

pub(crate) fn keys(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let found = ctx.ks.keys(args.get(1));
    ctx.array(found.len());
    for k in &found {
        ctx.bulk(k);
    }
}

/// `RANGE start end [LIMIT n]`: the pairs with `start <= key <= end` in key order, as a
/// flat array `key value key value ...` (at most `n` pairs). Needs `--engine btree`.
pub(crate) fn range(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let mut limit = usize::MAX;
    let mut i = 3;
    while i < args.len() {
        if args.get(i).eq_ignore_ascii_case(b"LIMIT") && i + 1 < args.len() {
            match parse_i64(args.get(i + 1)) {
                Some(n) if n >= 0 => limit = usize::try_from(n).unwrap_or(usize::MAX),
                _ => return ctx.err(ERR_NOT_INT),
            }
            i += 2;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
    }
    match ctx.ks.range(args.get(1), args.get(2), limit) {
        None => ctx.err("ERR RANGE needs an ordered engine: start kvd with --engine btree"),
        Some(Err(e)) => ctx.err(&format!("ERR {e}")),
        Some(Ok(pairs)) => {
            ctx.array(pairs.len() * 2);
            for (k, v) in &pairs {
                ctx.bulk(k);
                ctx.bulk(v);
            }
        }
    }
}

pub(crate) fn scan(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let Some(cursor) = parse_cursor(args.get(1)) else {
        return ctx.err("ERR invalid cursor");
    };
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut kind = None;
    let mut i = 2;
    while i < args.len() {
        let (opt, left) = (args.get(i), args.len() - i);
        if opt.eq_ignore_ascii_case(b"COUNT") && left >= 2 {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.err(ERR_NOT_INT),
                Some(n) if n < 1 => return ctx.err(ERR_SYNTAX),
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            }
        } else if opt.eq_ignore_ascii_case(b"MATCH") && left >= 2 {
            let p = args.get(i + 1);
            pattern = if p == b"*" { None } else { Some(p) };
        } else if opt.eq_ignore_ascii_case(b"TYPE") && left >= 2 {
            // An unknown type matches nothing, as in Redis.
            kind = Some(Kind::from_name(args.get(i + 1)));
        } else {
            return ctx.err(ERR_SYNTAX);
        }
        i += 2;
    }
    let (next, mut found) = ctx.ks.scan(cursor, count, pattern);
    if let Some(want) = kind {
        found.retain(|k| want.is_some() && ctx.ks.kind(k) == want);
    }
    ctx.array(2);
    let mut b = itoa::Buffer::new();
    resp::encode_bulk(ctx.out, b.format(next).as_bytes());
    ctx.array(found.len());
    for k in &found {
        ctx.bulk(k);
    }
}

pub(crate) fn dbsize(ctx: &mut Ctx<'_>, _args: Args<'_>) {
    let n = ctx.ks.len();
    ctx.int(n as i64);
}

pub(crate) fn flushdb(ctx: &mut Ctx<'_>, args: Args<'_>) {
    if args.len() > 2
        || (args.len() == 2
            && !args.get(1).eq_ignore_ascii_case(b"ASYNC")
            && !args.get(1).eq_ignore_ascii_case(b"SYNC"))
    {
        return ctx.err(ERR_SYNTAX);
    }
    ctx.ks.clear();
    ctx.ks.log(&[&b"FLUSHDB"[..]]);
    ctx.ok();
}

pub(crate) fn type_(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let name = ctx.ks.kind(args.get(1)).map_or("none", Kind::name);
    ctx.simple(name);
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// OBJECT ENCODING answers kvd's own encodings (`raw`, `hashtable`, `deque`,
/// `skiplist`); kvd shares no values (REFCOUNT 1) and tracks no access times
/// (IDLETIME 0) or frequencies (FREQ answers Redis's error for that case).
pub(crate) fn object(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"HELP") && args.len() == 2 {
        ctx.array(OBJECT_HELP.len());
        for l in OBJECT_HELP {
            ctx.simple(l);
        }
        return;
    }
    let known = ["ENCODING", "REFCOUNT", "IDLETIME", "FREQ"]
        .iter()
        .find(|s| sub.eq_ignore_ascii_case(s.as_bytes()));
    let Some(known) = known else {
        return ctx.err(&format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(sub)
        ));
    };
    if args.len() != 3 {
        return ctx.err(&format!(
            "ERR wrong number of arguments for 'object|{}' command",
            known.to_ascii_lowercase()
        ));
    }
    let Some(enc) = ctx.ks.encoding(args.get(2)) else {
        return ctx.null();
    };
    match *known {
        "ENCODING" => ctx.bulk(enc.as_bytes()),
        "REFCOUNT" => ctx.int(1),
        "IDLETIME" => ctx.int(0),
        _ => ctx.err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."),
    }
}

/// MEMORY USAGE key [SAMPLES n]: an estimate of the key's bytes (see
/// [`crate::kv::value::Value::mem_usage`]); MEMORY HELP. Redis's other subcommands
/// report its allocator, which kvd does not have.
pub(crate) fn memory(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"HELP") && args.len() == 2 {
        const HELP: &[&str] = &[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ];
        ctx.array(HELP.len());
        for l in HELP {
            ctx.simple(l);
        }
        return;
    }
    if !sub.eq_ignore_ascii_case(b"USAGE") || args.len() < 3 {
        return ctx.err(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try MEMORY HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
    let mut samples = 5usize;
    let mut i = 3;
    while i < args.len() {
        if args.get(i).eq_ignore_ascii_case(b"SAMPLES") && i + 1 < args.len() {
            match crate::proto::resp::parse_i64(args.get(i + 1)) {
                Some(n) if n >= 0 => samples = usize::try_from(n).unwrap_or(usize::MAX),
                _ => return ctx.err("ERR value is out of range, must be positive"),
            }
            i += 2;
        } else {
            return ctx.err(super::ERR_SYNTAX);
        }
    }
    let key = args.get(2);
    match ctx.ks.peek(key).map(|v| v.mem_usage(samples)) {
        Some(n) => ctx.int((n + key.len() + 48) as i64),
        None => ctx.null(),
    }
}

/// RENAME and RENAMENX: the value moves with its expiry; logged as sent.
fn rename_generic(ctx: &mut Ctx<'_>, args: Args<'_>, nx: bool) {
    let (src, dst) = (args.get(1), args.get(2));
    if !ctx.ks.exists(src) {
        return ctx.err("ERR no such key");
    }
    if src == dst {
        return if nx { ctx.int(0) } else { ctx.ok() };
    }
    if nx && ctx.ks.exists(dst) {
        return ctx.int(0);
    }
    // The value moves as it is, encoding included.
    let form = ctx.ks.form(src);
    let Some((v, at)) = ctx.ks.take(src) else {
        return ctx.err("ERR no such key");
    };
    ctx.ks.set(dst, v);
    if let Some(f) = form {
        ctx.ks.set_form(dst, f);
    }
    if let Some(at) = at {
        ctx.ks.set_expire(dst, at);
    }
    ctx.ks.log_args(args);
    if nx {
        ctx.int(1)
    } else {
        ctx.ok()
    }
}

pub(crate) fn rename(ctx: &mut Ctx<'_>, args: Args<'_>) {
    rename_generic(ctx, args, false)
}

pub(crate) fn renamenx(ctx: &mut Ctx<'_>, args: Args<'_>) {
    rename_generic(ctx, args, true)
}

/// `COPY src dst [DB 0] [REPLACE]`: kvd has the one database, 0.
pub(crate) fn copy(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let (src, dst) = (args.get(1), args.get(2));
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        if opt.eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"DB") && i + 1 < args.len() {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.err(ERR_NOT_INT),
                Some(0) => {}
                Some(_) => return ctx.err("ERR DB index is out of range"),
            }
            i += 1;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
        i += 1;
    }
    if src == dst {
        return ctx.err("ERR source and destination objects are the same");
    }
    let Some(v) = ctx.ks.peek(src).cloned() else {
        return ctx.int(0);
    };
    if ctx.ks.exists(dst) && !replace {
        return ctx.int(0);
    }
    let at = ctx.ks.expire_at(src);
    // A copy keeps the source's encoding (Redis's `dupStringObject`).
    let form = ctx.ks.form(src);
    ctx.ks.set(dst, v);
    if let Some(f) = form {
        ctx.ks.set_form(dst, f);
    }
    if let Some(at) = at {
        ctx.ks.set_expire(dst, at);
    }
    ctx.ks.log_args(args);
    ctx.int(1);
}

pub(crate) fn randomkey(ctx: &mut Ctx<'_>, _args: Args<'_>) {
    match ctx.ks.random_key() {
        Some(k) => ctx.bulk(&k),
        None => ctx.null(),
    }
}

fn expiretime_generic(ctx: &mut Ctx<'_>, args: Args<'_>, ms: bool) {
    let key = args.get(1);
    if !ctx.ks.exists(key) {
        return ctx.int(-2);
    }
    match ctx.ks.expire_at(key) {
        None => ctx.int(-1),
        Some(at) => ctx.int(if ms { at } else { (at + 500) / 1000 }),
    }
}

pub(crate) fn expiretime(ctx: &mut Ctx<'_>, args: Args<'_>) {
    expiretime_generic(ctx, args, false)
}

pub(crate) fn pexpiretime(ctx: &mut Ctx<'_>, args: Args<'_>) {
    expiretime_generic(ctx, args, true)
}

/// kvd keeps no access times, so TOUCH only counts the keys that exist.
pub(crate) fn touch(ctx: &mut Ctx<'_>, args: Args<'_>) {
    exists(ctx, args)
}

/// UNLINK frees at once, as DEL does, and is logged as a DEL.
pub(crate) fn unlink(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let mut n = 0;
    let mut rec: Vec<&[u8]> = vec![b"DEL"];
    for k in args.iter().skip(1) {
        if ctx.ks.del(k) {
            n += 1;
            rec.push(k);
        }
    }
    if n > 0 {
        ctx.ks.log(&rec);
    }
    ctx.int(n);
}

/// DUMP: the value in Redis's payload shape (see `kv::dump`); a missing key is null.
pub(crate) fn dump(ctx: &mut Ctx<'_>, args: Args<'_>) {
    match ctx.ks.get(args.get(1)) {
        Some(v) => {
            let p = crate::kv::dump::serialize(v);
            ctx.bulk(&p);
        }
        None => ctx.null(),
    }
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], checked in
/// Redis's order (options, the key, the TTL, the footer, the body). kvd keeps no
/// access times or frequencies: IDLETIME and FREQ are checked and then ignored. It is
/// logged with an absolute TTL and REPLACE, so a replay makes the same key.
pub(crate) fn restore(ctx: &mut Ctx<'_>, args: Args<'_>) {
    use crate::kv::dump;
    let key = args.get(1);
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (false, false);
    let mut i = 4;
    while i < args.len() {
        let opt = args.get(i);
        let more = args.len() - i - 1;
        if opt.eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"ABSTTL") {
            absttl = true;
        } else if opt.eq_ignore_ascii_case(b"IDLETIME") && more >= 1 && !freq {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.err(ERR_NOT_INT),
                Some(n) if n < 0 => return ctx.err("ERR Invalid IDLETIME value, must be >= 0"),
                Some(_) => {}
            }
            idle = true;
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"FREQ") && more >= 1 && !idle {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.err(ERR_NOT_INT),
                Some(n) if !(0..=255).contains(&n) => {
                    return ctx.err("ERR Invalid FREQ value, must be >= 0 and <= 255")
                }
                Some(_) => {}
            }
            freq = true;
            i += 1;
        } else {
            return ctx.err(ERR_SYNTAX);
        }
        i += 1;
    }
    if !replace && ctx.ks.exists(key) {
        return ctx.err("BUSYKEY Target key name already exists.");
    }
    let ttl = match parse_i64(args.get(2)) {
        None => return ctx.err(ERR_NOT_INT),
        Some(t) if t < 0 => return ctx.err("ERR Invalid TTL value, must be >= 0"),
        Some(t) => t,
    };
    let body = match dump::verify(args.get(3)) {
        Ok(b) => b,
        Err(e) => return ctx.err(e),
    };
    let lim = ctx.server.encodings;
    let value = match dump::deserialize(body, &lim) {
        Ok(v) => v,
        Err(e) => return ctx.err(e),
    };
    if let Err(e) = ctx.ks.holds(value.kind()) {
        return ctx.err(&e);
    }
    if let Err(e) = ctx.ks.fits(key, value_bytes(&value)) {
        return ctx.err(&e);
    }
    let at = match (ttl, absttl) {
        (0, _) => None,
        (t, true) => Some(t),
        (t, false) => Some(ctx.ks.now.saturating_add(t)),
    };
    if at.is_some_and(|at| ctx.ks.is_past(at)) {
        // Already expired: nothing is made, and a replaced key is gone.
        if replace && ctx.ks.del(key) {
            ctx.ks.log(&[&b"DEL"[..], key]);
        }
        return ctx.ok();
    }
    ctx.ks.set(key, value);
    let mut b = itoa::Buffer::new();
    match at {
        Some(at) => {
            ctx.ks.set_expire(key, at);
            let at = b.format(at);
            ctx.ks.log(&[
                &b"RESTORE"[..],
                key,
                at.as_bytes(),
                args.get(3),
                b"REPLACE",
                b"ABSTTL",
            ]);
        }
        None => ctx
            .ks
            .log(&[&b"RESTORE"[..], key, b"0", args.get(3), b"REPLACE"]),
    }
    ctx.ok();
}

/// About the bytes a restored value holds, for the engine's size check.
fn value_bytes(v: &crate::kv::value::Value) -> usize {
    match v {
        crate::kv::value::Value::Str(s) => s.len(),
        _ => 0,
    }
}
