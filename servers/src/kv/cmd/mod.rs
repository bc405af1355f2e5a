//! The command table: each command's name, arity and flags, and the function that runs
//! it, one file per group (connection, strings, keys, server).
//!
//! The one idea: a command runs against a [`Ctx`] — the keyspace, the reply buffer of
//! the current batch and the server's state — and never does I/O. It writes its reply
//! into `ctx.out` and, if it changed anything, logs itself (or a deterministic
//! equivalent: `EXPIRE k 10` is logged as `PEXPIREAT k <ms>`) through the keyspace, so
//! the same code serves clients and replays the log.

mod connection;
mod keys;
mod server;
mod strings;

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
}

impl Ctx<'_> {
    pub fn ok(&mut self) {
        self.out.extend_from_slice(resp::OK);
    }
    pub fn null(&mut self) {
        self.out.extend_from_slice(resp::NULL_BULK);
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
    spec!("script", -2, 0, 0, 0, 0, server::script),
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

/// Finds a command by name, case-insensitively, without allocating.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let mut up = [0u8; 16];
    if name.len() > up.len() {
        return None;
    }
    for (d, s) in up.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower = &up[..name.len()];
    // The hot commands first; the table is short enough to search for the rest.
    let i = match lower {
        b"get" => 4,
        b"set" => 5,
        b"ping" => 0,
        b"incr" => 11,
        b"mset" => 10,
        _ => return COMMANDS.iter().find(|c| c.name.as_bytes() == lower),
    };
    COMMANDS.get(i)
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
    fn unknown_command_in_redis_words() {
        let src = b"foo a b";
        let r = [0..3, 4..5, 6..7];
        assert_eq!(
            unknown_command(Args::new(src, &r)),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
    }
}
