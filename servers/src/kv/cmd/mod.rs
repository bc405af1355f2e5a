//! The command table: each command's name, arity and flags, and the function that runs
//! it, one file per group (connection, strings, keys, server).
//!
//! The one idea: a command runs against a [`Ctx`] — the keyspace, the reply buffer of
//! the current batch and the server's state — and never does I/O. It writes its reply
//! into `ctx.out` and, if it changed anything, logs itself (or a deterministic
//! equivalent: `EXPIRE k 10` is logged as `PEXPIREAT k <ms>`) through the keyspace, so
//! the same code serves clients and replays the log.

mod connection;
mod hashes;
mod keys;
pub(crate) mod lists;
mod server;
mod sets;
pub(crate) mod sort;
mod strings;
pub(crate) mod zsets;

use super::keyspace::Keyspace;
use super::ServerState;
use crate::proto::resp::{self, Args};
use crate::store::aof::Aof;

pub(crate) struct Ctx<'a> {
    pub ks: &'a mut Keyspace,
    pub out: &'a mut Vec<u8>,
    pub aof: Option<&'a mut Aof>,
    pub server: &'a ServerState,
    /// Set by QUIT: close once the replies are out.
    pub quit: bool,
    /// The client speaks RESP3: maps, sets, doubles and `_` where Redis 7.0 uses them.
    pub resp3: bool,
}

impl Ctx<'_> {
    pub fn ok(&mut self) {
        self.out.extend_from_slice(resp::OK);
    }
    pub fn null(&mut self) {
        resp::encode_null(self.out, self.resp3);
    }
    pub fn bulk(&mut self, v: &[u8]) {
        resp::encode_bulk(self.out, v);
    }
    pub fn int(&mut self, v: i64) {
        resp::encode_int(self.out, v);
    }
    pub fn err(&mut self, msg: &str) {
        resp::encode_error(self.out, msg);
    }
    pub fn array(&mut self, n: usize) {
        resp::encode_array_len(self.out, n);
    }
    pub fn simple(&mut self, s: &str) {
        resp::encode_simple(self.out, s);
    }
    pub fn null_array(&mut self) {
        resp::encode_null_array(self.out, self.resp3);
    }
    /// A set of `n` members (RESP2: an array).
    pub fn set(&mut self, n: usize) {
        resp::encode_set_len(self.out, n, self.resp3);
    }
}

/// Unwraps a result or replies its error and returns from the command.
macro_rules! tri {
    ($ctx:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $ctx.err(&e),
        }
    };
}
pub(crate) use tri;

pub(crate) const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
pub(crate) const ERR_OUT_OF_RANGE: &str = "ERR value is out of range, must be positive";

/// An integer argument, with Redis's error.
pub(crate) fn int_arg(a: &[u8]) -> Result<i64, &'static str> {
    resp::parse_i64(a).ok_or(ERR_NOT_INT)
}

/// Redis's `getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX)` for random counts.
pub(crate) fn count_arg(a: &[u8]) -> Result<i64, &'static str> {
    match resp::parse_i64(a) {
        None => Err(ERR_NOT_INT),
        Some(i64::MIN) => Err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ),
        Some(v) => Ok(v),
    }
}

/// Resolves Redis's inclusive `start stop` indices (negative from the end) against
/// `len`: `None` when the range is empty.
pub(crate) fn index_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

/// `cursor [MATCH pattern] [COUNT n]` of HSCAN, SSCAN and ZSCAN (from `args[2]`).
pub(crate) fn scan_args<'a>(
    args: Args<'a>,
) -> Result<(u64, usize, Option<&'a [u8]>), &'static str> {
    let cursor = parse_cursor(args.get(2)).ok_or("ERR invalid cursor")?;
    let mut count = 10usize;
    let mut pattern = None;
    let mut i = 3;
    while i < args.len() {
        let (opt, left) = (args.get(i), args.len() - i);
        if opt.eq_ignore_ascii_case(b"COUNT") && left >= 2 {
            match resp::parse_i64(args.get(i + 1)) {
                None => return Err(ERR_NOT_INT),
                Some(n) if n < 1 => return Err(ERR_SYNTAX),
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            }
        } else if opt.eq_ignore_ascii_case(b"MATCH") && left >= 2 {
            let p = args.get(i + 1);
            pattern = if p == b"*" { None } else { Some(p) };
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 2;
    }
    Ok((cursor, count, pattern))
}

pub(crate) fn parse_cursor(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Whether a scanned element passes MATCH.
pub(crate) fn scan_match(pattern: Option<&[u8]>, s: &[u8]) -> bool {
    pattern.map_or(true, |p| crate::kv::glob::matches(p, s, false))
}

/// `n` distinct positions out of `len`, picked at random (`n < len`): a partial
/// Fisher-Yates shuffle when `n` is a large share of `len`, else rejection sampling.
pub(crate) fn distinct_picks(ks: &mut Keyspace, len: usize, n: usize) -> Vec<usize> {
    if n * 3 > len {
        let mut idx: Vec<usize> = (0..len).collect();
        for i in 0..n {
            let j = i + (ks.rand() % (len - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(n);
        idx
    } else {
        let mut seen = std::collections::HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let i = (ks.rand() % len as u64) as usize;
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}

/// The most elements a reply that repeats random picks (a negative count) may hold:
/// the same bound as the arguments one request may carry.
pub(crate) fn repeat_limit(ctx: &Ctx<'_>, n: u64) -> Result<usize, String> {
    let cap = ctx.server.limits.max_args as u64;
    if n > cap {
        return Err(format!(
            "ERR count of {n} repeated picks is over this server's limit of {cap} (proto-max-multibulk-len)"
        ));
    }
    Ok(n as usize)
}

pub(crate) const ERR_NOT_INT: &str = "ERR value is not an integer or out of range";
pub(crate) const ERR_SYNTAX: &str = "ERR syntax error";
pub(crate) const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";

/// Command flags.
pub(crate) const WRITE: u8 = 1;
pub(crate) const READONLY: u8 = 2;
pub(crate) const FAST: u8 = 4;
/// Allowed in the log (commands that change data, plus the harmless ones Redis logs).
pub(crate) const ADMIN: u8 = 8;
/// Runs in the connection layer (`kv::session`): it needs the client's state or other
/// clients' (MULTI, SUBSCRIBE, CLIENT, CONFIG, INFO); `run` is never called.
pub(crate) const CONN: u8 = 16;
/// Empties the keyspace: WATCH treats it as a change to every watched key that exists.
pub(crate) const FLUSH: u8 = 32;
/// Refused inside MULTI ("Command not allowed inside a transaction").
pub(crate) const NO_MULTI: u8 = 64;

pub(crate) struct Spec {
    /// Lower case, as Redis names commands in its errors.
    pub name: &'static str,
    /// Redis's convention: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    pub flags: u8,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub run: fn(&mut Ctx<'_>, Args<'_>),
}

impl Spec {
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let a = i64::from(self.arity);
        if a >= 0 {
            argc == a
        } else {
            argc >= -a
        }
    }

    pub fn is_write(&self) -> bool {
        self.flags & WRITE != 0
    }
}

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $run:path) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            run: $run,
        }
    };
}

pub(crate) static COMMANDS: &[Spec] = &[
    spec!("ping", -1, FAST, 0, 0, 0, connection::ping),
    spec!("echo", 2, FAST, 0, 0, 0, connection::echo),
    spec!("quit", -1, FAST, 0, 0, 0, connection::quit),
    spec!("select", 2, FAST, 0, 0, 0, connection::select),
    spec!("get", 2, READONLY | FAST, 1, 1, 1, strings::get),
    spec!("set", -3, WRITE, 1, 1, 1, strings::set),
    spec!("getset", 3, WRITE | FAST, 1, 1, 1, strings::getset),
    spec!("append", 3, WRITE | FAST, 1, 1, 1, strings::append),
    spec!("strlen", 2, READONLY | FAST, 1, 1, 1, strings::strlen),
    spec!("mget", -2, READONLY | FAST, 1, -1, 1, strings::mget),
    spec!("mset", -3, WRITE, 1, -1, 2, strings::mset),
    spec!("incr", 2, WRITE | FAST, 1, 1, 1, strings::incr),
    spec!("decr", 2, WRITE | FAST, 1, 1, 1, strings::decr),
    spec!("incrby", 3, WRITE | FAST, 1, 1, 1, strings::incrby),
    spec!("decrby", 3, WRITE | FAST, 1, 1, 1, strings::decrby),
    spec!("del", -2, WRITE, 1, -1, 1, keys::del),
    spec!("exists", -2, READONLY | FAST, 1, -1, 1, keys::exists),
    spec!("expire", -3, WRITE | FAST, 1, 1, 1, keys::expire),
    spec!("pexpire", -3, WRITE | FAST, 1, 1, 1, keys::pexpire),
    spec!("expireat", -3, WRITE | FAST, 1, 1, 1, keys::expireat),
    spec!("pexpireat", -3, WRITE | FAST, 1, 1, 1, keys::pexpireat),
    spec!("ttl", 2, READONLY | FAST, 1, 1, 1, keys::ttl),
    spec!("pttl", 2, READONLY | FAST, 1, 1, 1, keys::pttl),
    spec!("persist", 2, WRITE | FAST, 1, 1, 1, keys::persist),
    spec!("keys", 2, READONLY, 0, 0, 0, keys::keys),
    spec!("scan", -2, READONLY, 0, 0, 0, keys::scan),
    spec!("range", -3, READONLY, 1, 2, 1, keys::range),
    spec!("dbsize", 1, READONLY | FAST, 0, 0, 0, keys::dbsize),
    spec!("flushdb", -1, WRITE | FLUSH, 0, 0, 0, keys::flushdb),
    spec!("flushall", -1, WRITE | FLUSH, 0, 0, 0, keys::flushdb),
    spec!("info", -1, ADMIN | CONN, 0, 0, 0, connection_level),
    spec!("bgrewriteaof", 1, ADMIN, 0, 0, 0, server::bgrewriteaof),
    spec!("command", -1, ADMIN, 0, 0, 0, server::command),
    spec!("config", -2, ADMIN | CONN, 0, 0, 0, connection_level),
    // Transactions, Pub/Sub and the client's own state: see `kv::session`.
    spec!("multi", 1, CONN | FAST, 0, 0, 0, connection_level),
    spec!("exec", 1, CONN, 0, 0, 0, connection_level),
    spec!("discard", 1, CONN | FAST, 0, 0, 0, connection_level),
    spec!("watch", -2, CONN | FAST, 1, -1, 1, connection_level),
    spec!("unwatch", 1, CONN | FAST, 0, 0, 0, connection_level),
    spec!("subscribe", -2, CONN, 0, 0, 0, connection_level),
    spec!("unsubscribe", -1, CONN, 0, 0, 0, connection_level),
    spec!("psubscribe", -2, CONN, 0, 0, 0, connection_level),
    spec!("punsubscribe", -1, CONN, 0, 0, 0, connection_level),
    spec!("publish", 3, CONN | FAST, 0, 0, 0, connection_level),
    spec!("pubsub", -2, CONN, 0, 0, 0, connection_level),
    spec!("auth", -2, CONN | FAST, 0, 0, 0, connection_level),
    spec!("hello", -1, CONN | FAST, 0, 0, 0, connection_level),
    spec!("client", -2, CONN, 0, 0, 0, connection_level),
    spec!("reset", 1, CONN | FAST, 0, 0, 0, connection_level),
    spec!("time", 1, FAST, 0, 0, 0, server::time),
    spec!("lastsave", 1, FAST, 0, 0, 0, server::lastsave),
    spec!("function", -2, 0, 0, 0, 0, server::function),
    // Lua scripts: see `kv::script`.
    spec!("script", -2, CONN, 0, 0, 0, connection_level),
    spec!("eval", -3, CONN, 0, 0, 0, connection_level),
    spec!("evalsha", -3, CONN, 0, 0, 0, connection_level),
    spec!("eval_ro", -3, CONN, 0, 0, 0, connection_level),
    spec!("evalsha_ro", -3, CONN, 0, 0, 0, connection_level),
    spec!("save", 1, ADMIN | NO_MULTI, 0, 0, 0, server::save),
    spec!("shutdown", -1, CONN | NO_MULTI, 0, 0, 0, connection_level),
    // Keys and types.
    spec!("type", 2, READONLY | FAST, 1, 1, 1, keys::type_),
    spec!("object", -2, READONLY, 2, 2, 1, keys::object),
    spec!("memory", -2, READONLY, 2, 2, 1, keys::memory),
    // Hashes.
    spec!("hset", -4, WRITE | FAST, 1, 1, 1, hashes::hset),
    spec!("hmset", -4, WRITE | FAST, 1, 1, 1, hashes::hmset),
    spec!("hsetnx", 4, WRITE | FAST, 1, 1, 1, hashes::hsetnx),
    spec!("hget", 3, READONLY | FAST, 1, 1, 1, hashes::hget),
    spec!("hmget", -3, READONLY | FAST, 1, 1, 1, hashes::hmget),
    spec!("hdel", -3, WRITE | FAST, 1, 1, 1, hashes::hdel),
    spec!("hlen", 2, READONLY | FAST, 1, 1, 1, hashes::hlen),
    spec!("hstrlen", 3, READONLY | FAST, 1, 1, 1, hashes::hstrlen),
    spec!("hexists", 3, READONLY | FAST, 1, 1, 1, hashes::hexists),
    spec!("hgetall", 2, READONLY, 1, 1, 1, hashes::hgetall),
    spec!("hkeys", 2, READONLY, 1, 1, 1, hashes::hkeys),
    spec!("hvals", 2, READONLY, 1, 1, 1, hashes::hvals),
    spec!("hincrby", 4, WRITE | FAST, 1, 1, 1, hashes::hincrby),
    spec!(
        "hincrbyfloat",
        4,
        WRITE | FAST,
        1,
        1,
        1,
        hashes::hincrbyfloat
    ),
    spec!("hrandfield", -2, READONLY, 1, 1, 1, hashes::hrandfield),
    spec!("hscan", -3, READONLY, 1, 1, 1, hashes::hscan),
    // Sets.
    spec!("sadd", -3, WRITE | FAST, 1, 1, 1, sets::sadd),
    spec!("srem", -3, WRITE | FAST, 1, 1, 1, sets::srem),
    spec!("smembers", 2, READONLY, 1, 1, 1, sets::smembers),
    spec!("sismember", 3, READONLY | FAST, 1, 1, 1, sets::sismember),
    spec!("smismember", -3, READONLY | FAST, 1, 1, 1, sets::smismember),
    spec!("scard", 2, READONLY | FAST, 1, 1, 1, sets::scard),
    spec!("spop", -2, WRITE | FAST, 1, 1, 1, sets::spop),
    spec!("srandmember", -2, READONLY, 1, 1, 1, sets::srandmember),
    spec!("smove", 4, WRITE | FAST, 1, 2, 1, sets::smove),
    spec!("sinter", -2, READONLY, 1, -1, 1, sets::sinter),
    spec!("sunion", -2, READONLY, 1, -1, 1, sets::sunion),
    spec!("sdiff", -2, READONLY, 1, -1, 1, sets::sdiff),
    spec!("sinterstore", -3, WRITE, 1, 1, 1, sets::sinterstore),
    spec!("sunionstore", -3, WRITE, 1, 1, 1, sets::sunionstore),
    spec!("sdiffstore", -3, WRITE, 1, 1, 1, sets::sdiffstore),
    spec!("sintercard", -3, READONLY, 0, 0, 0, sets::sintercard),
    spec!("sscan", -3, READONLY, 1, 1, 1, sets::sscan),
    // Lists.
    spec!("lpush", -3, WRITE | FAST, 1, 1, 1, lists::lpush),
    spec!("rpush", -3, WRITE | FAST, 1, 1, 1, lists::rpush),
    spec!("lpushx", -3, WRITE | FAST, 1, 1, 1, lists::lpushx),
    spec!("rpushx", -3, WRITE | FAST, 1, 1, 1, lists::rpushx),
    spec!("lpop", -2, WRITE | FAST, 1, 1, 1, lists::lpop),
    spec!("rpop", -2, WRITE | FAST, 1, 1, 1, lists::rpop),
    spec!("llen", 2, READONLY | FAST, 1, 1, 1, lists::llen),
    spec!("lrange", 4, READONLY, 1, 1, 1, lists::lrange),
    spec!("lindex", 3, READONLY, 1, 1, 1, lists::lindex),
    spec!("lset", 4, WRITE, 1, 1, 1, lists::lset),
    spec!("linsert", 5, WRITE, 1, 1, 1, lists::linsert),
    spec!("lrem", 4, WRITE, 1, 1, 1, lists::lrem),
    spec!("ltrim", 4, WRITE, 1, 1, 1, lists::ltrim),
    spec!("lpos", -3, READONLY, 1, 1, 1, lists::lpos),
    spec!("lmove", 5, WRITE, 1, 2, 1, lists::lmove),
    spec!("rpoplpush", 3, WRITE, 1, 2, 1, lists::rpoplpush),
    // Sorted sets.
    spec!("zadd", -4, WRITE | FAST, 1, 1, 1, zsets::zadd),
    spec!("zincrby", 4, WRITE | FAST, 1, 1, 1, zsets::zincrby),
    spec!("zrem", -3, WRITE | FAST, 1, 1, 1, zsets::zrem),
    spec!("zcard", 2, READONLY | FAST, 1, 1, 1, zsets::zcard),
    spec!("zscore", 3, READONLY | FAST, 1, 1, 1, zsets::zscore),
    spec!("zmscore", -3, READONLY | FAST, 1, 1, 1, zsets::zmscore),
    spec!("zrank", 3, READONLY | FAST, 1, 1, 1, zsets::zrank),
    spec!("zrevrank", 3, READONLY | FAST, 1, 1, 1, zsets::zrevrank),
    spec!("zrange", -4, READONLY, 1, 1, 1, zsets::zrange),
    spec!("zrevrange", -4, READONLY, 1, 1, 1, zsets::zrevrange),
    spec!("zrangebyscore", -4, READONLY, 1, 1, 1, zsets::zrangebyscore),
    spec!(
        "zrevrangebyscore",
        -4,
        READONLY,
        1,
        1,
        1,
        zsets::zrevrangebyscore
    ),
    spec!("zrangebylex", -4, READONLY, 1, 1, 1, zsets::zrangebylex),
    spec!(
        "zrevrangebylex",
        -4,
        READONLY,
        1,
        1,
        1,
        zsets::zrevrangebylex
    ),
    spec!("zcount", 4, READONLY | FAST, 1, 1, 1, zsets::zcount),
    spec!("zlexcount", 4, READONLY | FAST, 1, 1, 1, zsets::zlexcount),
    spec!("zremrangebyrank", 4, WRITE, 1, 1, 1, zsets::zremrangebyrank),
    spec!(
        "zremrangebyscore",
        4,
        WRITE,
        1,
        1,
        1,
        zsets::zremrangebyscore
    ),
    spec!("zremrangebylex", 4, WRITE, 1, 1, 1, zsets::zremrangebylex),
    spec!("zpopmin", -2, WRITE | FAST, 1, 1, 1, zsets::zpopmin),
    spec!("zpopmax", -2, WRITE | FAST, 1, 1, 1, zsets::zpopmax),
    spec!("zrandmember", -2, READONLY, 1, 1, 1, zsets::zrandmember),
    spec!("zscan", -3, READONLY, 1, 1, 1, zsets::zscan),
    spec!("zunionstore", -4, WRITE, 1, 1, 1, zsets::zunionstore),
    spec!("zinterstore", -4, WRITE, 1, 1, 1, zsets::zinterstore),
    spec!("zdiffstore", -4, WRITE, 1, 1, 1, zsets::zdiffstore),
    spec!("zunion", -3, READONLY, 0, 0, 0, zsets::zunion),
    spec!("zinter", -3, READONLY, 0, 0, 0, zsets::zinter),
    spec!("zdiff", -3, READONLY, 0, 0, 0, zsets::zdiff),
    // More strings.
    spec!("setnx", 3, WRITE | FAST, 1, 1, 1, strings::setnx),
    spec!("setex", 4, WRITE, 1, 1, 1, strings::setex),
    spec!("psetex", 4, WRITE, 1, 1, 1, strings::psetex),
    spec!("getex", -2, WRITE | FAST, 1, 1, 1, strings::getex),
    spec!("getdel", 2, WRITE | FAST, 1, 1, 1, strings::getdel),
    spec!("getrange", 4, READONLY, 1, 1, 1, strings::getrange),
    spec!("substr", 4, READONLY, 1, 1, 1, strings::getrange),
    spec!("setrange", 4, WRITE, 1, 1, 1, strings::setrange),
    spec!(
        "incrbyfloat",
        3,
        WRITE | FAST,
        1,
        1,
        1,
        strings::incrbyfloat
    ),
    spec!("msetnx", -3, WRITE, 1, -1, 2, strings::msetnx),
    spec!("setbit", 4, WRITE, 1, 1, 1, strings::setbit),
    spec!("getbit", 3, READONLY | FAST, 1, 1, 1, strings::getbit),
    spec!("bitcount", -2, READONLY, 1, 1, 1, strings::bitcount),
    spec!("bitpos", -3, READONLY, 1, 1, 1, strings::bitpos),
    spec!("lcs", -3, READONLY, 1, 1, 1, strings::lcs),
    // More keys.
    spec!("rename", 3, WRITE, 1, 2, 1, keys::rename),
    spec!("renamenx", 3, WRITE | FAST, 1, 2, 1, keys::renamenx),
    // The source is only read: a WATCH on it must not see a change.
    spec!("copy", -3, WRITE, 2, 2, 1, keys::copy),
    spec!("randomkey", 1, READONLY, 0, 0, 0, keys::randomkey),
    spec!("expiretime", 2, READONLY | FAST, 1, 1, 1, keys::expiretime),
    spec!(
        "pexpiretime",
        2,
        READONLY | FAST,
        1,
        1,
        1,
        keys::pexpiretime
    ),
    spec!("touch", -2, READONLY | FAST, 1, -1, 1, keys::touch),
    spec!("unlink", -2, WRITE | FAST, 1, -1, 1, keys::unlink),
    spec!("dump", 2, READONLY, 1, 1, 1, keys::dump),
    spec!("restore", -4, WRITE, 1, 1, 1, keys::restore),
    spec!("zintercard", -3, READONLY, 0, 0, 0, zsets::zintercard),
    spec!("zmpop", -4, WRITE, 0, 0, 0, zsets::zmpop),
    spec!("zrangestore", -5, WRITE, 1, 2, 1, zsets::zrangestore),
    spec!("lmpop", -4, WRITE, 0, 0, 0, lists::lmpop),
    // The destination of STORE is found by parsing: see `session::key_positions`.
    spec!("sort", -2, WRITE, 1, 1, 1, sort::sort),
    spec!("sort_ro", -2, READONLY, 1, 1, 1, sort::sort_ro),
    // Blocking pops: see `kv::blocking`.
    spec!("blpop", -3, WRITE, 1, -2, 1, crate::kv::blocking::blpop),
    spec!("brpop", -3, WRITE, 1, -2, 1, crate::kv::blocking::brpop),
    spec!("blmove", 6, WRITE, 1, 2, 1, crate::kv::blocking::blmove),
    spec!("blmpop", -5, WRITE, 0, 0, 0, crate::kv::blocking::blmpop),
    spec!("bzmpop", -5, WRITE, 0, 0, 0, crate::kv::blocking::bzmpop),
    spec!(
        "brpoplpush",
        4,
        WRITE,
        1,
        2,
        1,
        crate::kv::blocking::brpoplpush
    ),
    spec!(
        "bzpopmin",
        -3,
        WRITE | FAST,
        1,
        -2,
        1,
        crate::kv::blocking::bzpopmin
    ),
    spec!(
        "bzpopmax",
        -3,
        WRITE | FAST,
        1,
        -2,
        1,
        crate::kv::blocking::bzpopmax
    ),
];

/// The `run` of a [`CONN`] command: the connection layer handles these before the
/// table's function would be reached.
fn connection_level(ctx: &mut Ctx<'_>, args: Args<'_>) {
    ctx.err(&unknown_command(args));
}

/// The position of `spec` in [`COMMANDS`] (for per-command counters).
pub(crate) fn index_of(spec: &Spec) -> usize {
    let base = COMMANDS.as_ptr() as usize;
    (spec as *const Spec as usize).wrapping_sub(base) / std::mem::size_of::<Spec>()
}

/// Finds a command by name, case-insensitively, without allocating: one hash of the
/// lowered name and, as a rule, one comparison (a scan of the table cost 15% of a
/// pipelined ZPOPMIN's time, measured with `perf record`).
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let mut up = [0u8; 24];
    if name.len() > up.len() {
        return None;
    }
    for (d, s) in up.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower = &up[..name.len()];
    let table = name_index();
    let mask = table.len() - 1;
    let mut slot = name_hash(lower) & mask;
    // The table is at most a quarter full, so a probe ends at an empty slot.
    loop {
        let i = *table.get(slot)?;
        let spec = COMMANDS.get(usize::from(i))?;
        if spec.name.as_bytes() == lower {
            return Some(spec);
        }
        slot = (slot + 1) & mask;
    }
}

const NO_COMMAND: u16 = u16::MAX;

fn name_hash(name: &[u8]) -> usize {
    // FNV-1a: short keys, no adversary (the table's names are fixed).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize
}

/// Open addressing over [`COMMANDS`]' indices, built on first use; a name listed
/// twice resolves to its first row, as a scan would.
fn name_index() -> &'static [u16] {
    static INDEX: std::sync::OnceLock<Box<[u16]>> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let size = (COMMANDS.len() * 4).next_power_of_two();
        let mut t = vec![NO_COMMAND; size];
        for (i, c) in COMMANDS.iter().enumerate() {
            let mut slot = name_hash(c.name.as_bytes()) & (size - 1);
            while t[slot] != NO_COMMAND {
                slot = (slot + 1) & (size - 1);
            }
            t[slot] = u16::try_from(i).unwrap_or(NO_COMMAND);
        }
        t.into_boxed_slice()
    })
}

/// Redis's reply to an unknown command: the name and the first arguments, quoted.
pub(crate) fn unknown_command(args: Args<'_>) -> String {
    let name = String::from_utf8_lossy(args.get(0));
    let name: String = name.chars().take(128).collect();
    let mut rest = String::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let a = String::from_utf8_lossy(a);
        let a: String = a.chars().take(room).collect();
        rest.push('\'');
        rest.push_str(&a);
        rest.push_str("' ");
    }
    format!("ERR unknown command '{name}', with args beginning with: {rest}")
}

pub(crate) fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Checks a command read from the log: known, and with a valid argument count.
pub(crate) fn validate(args: Args<'_>) -> Result<&'static Spec, String> {
    let spec = lookup(args.get(0)).ok_or_else(|| unknown_command(args))?;
    if !spec.arity_ok(args.len()) {
        return Err(wrong_arity(spec.name));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_indices_match_the_table() {
        for name in [
            "get", "set", "ping", "incr", "mset", "GeT", "dbsize", "config",
        ] {
            let s = lookup(name.as_bytes()).unwrap();
            assert_eq!(s.name, name.to_ascii_lowercase());
        }
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"averyveryverylongname").is_none());
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(index_of(c), i);
        }
    }

    #[test]
    fn lookup_finds_every_command_in_any_case_and_nothing_else() {
        for c in COMMANDS {
            for name in [c.name.to_string(), c.name.to_ascii_uppercase()] {
                assert!(std::ptr::eq(lookup(name.as_bytes()).unwrap(), c), "{name}");
            }
        }
        for unknown in [
            &b""[..],
            b"gett",
            b"ge",
            b"zpopmi",
            b"evalshaa",
            &[0xff; 30],
        ] {
            assert!(lookup(unknown).is_none(), "{unknown:?}");
        }
    }

    #[test]
    fn unknown_command_in_redis_words() {
        let src = b"foo a b";
        let r = [0..3, 4..5, 6..7];
        assert_eq!(
            unknown_command(Args::new(src, &r)),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
    }
}
