//! Keyspace notifications (`notify-keyspace-events`): which event a change is, and
//! which class of events it belongs to, as Redis names them.
//!
//! The one idea: events are read off the log records a command produced (see
//! `Kv::after_write`), so every command that changes data notifies without code of
//! its own; the record's command name picks the event. A record logged in a
//! deterministic form is named as logged (`EXPIRE k 10` is logged as `PEXPIREAT`,
//! reported as `expire`, as Redis reports it).

pub const KEYSPACE: u16 = 1;
pub const KEYEVENT: u16 = 2;
pub const GENERIC: u16 = 4;
pub const STRING: u16 = 8;
pub const LIST: u16 = 16;
pub const SET: u16 = 32;
pub const HASH: u16 = 64;
pub const ZSET: u16 = 128;
pub const EXPIRED: u16 = 256;
pub const EVICTED: u16 = 512;
pub const STREAM: u16 = 1024;
pub const KEY_MISS: u16 = 2048;
pub const NEW: u16 = 4096;
/// `A`: every class but key-miss and new-key events.
const ALL: u16 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM;

/// The flags of a `notify-keyspace-events` value; `None` when a character is not one
/// of Redis's.
pub fn parse_flags(v: &str) -> Option<u16> {
    let mut f = 0;
    for c in v.chars() {
        f |= match c {
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            't' => STREAM,
            'm' => KEY_MISS,
            'n' => NEW,
            'A' => ALL,
            _ => return None,
        };
    }
    // Nothing is published unless a kind of channel and a class are both chosen.
    if f & (KEYSPACE | KEYEVENT) == 0 || f & !(KEYSPACE | KEYEVENT) == 0 {
        return Some(0);
    }
    Some(f)
}

/// Redis's canonical spelling of the flags (what CONFIG GET answers).
pub fn format_flags(f: u16) -> String {
    let mut s = String::new();
    if f & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [
        (KEYSPACE, 'K'),
        (KEYEVENT, 'E'),
        (KEY_MISS, 'm'),
        (NEW, 'n'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// A logged command's event class and name.
const EVENTS: &[(&str, u16, &str)] = &[
    ("set", STRING, "set"),
    ("setex", STRING, "set"),
    ("psetex", STRING, "set"),
    ("setnx", STRING, "set"),
    ("getset", STRING, "set"),
    ("mset", STRING, "set"),
    ("msetnx", STRING, "set"),
    ("append", STRING, "append"),
    ("setrange", STRING, "setrange"),
    ("incr", STRING, "incrby"),
    ("decr", STRING, "decrby"),
    ("incrby", STRING, "incrby"),
    ("decrby", STRING, "decrby"),
    ("incrbyfloat", STRING, "incrbyfloat"),
    ("setbit", STRING, "setbit"),
    ("del", GENERIC, "del"),
    ("unlink", GENERIC, "del"),
    ("expire", GENERIC, "expire"),
    ("pexpire", GENERIC, "expire"),
    ("expireat", GENERIC, "expire"),
    ("pexpireat", GENERIC, "expire"),
    ("persist", GENERIC, "persist"),
    ("lpush", LIST, "lpush"),
    ("rpush", LIST, "rpush"),
    ("lpushx", LIST, "lpush"),
    ("rpushx", LIST, "rpush"),
    ("lpop", LIST, "lpop"),
    ("rpop", LIST, "rpop"),
    ("linsert", LIST, "linsert"),
    ("lset", LIST, "lset"),
    ("lrem", LIST, "lrem"),
    ("ltrim", LIST, "ltrim"),
    ("sadd", SET, "sadd"),
    ("srem", SET, "srem"),
    ("spop", SET, "spop"),
    ("zadd", ZSET, "zadd"),
    ("zincrby", ZSET, "zincr"),
    ("zrem", ZSET, "zrem"),
    ("zpopmin", ZSET, "zpopmin"),
    ("zpopmax", ZSET, "zpopmax"),
    ("zremrangebyscore", ZSET, "zremrangebyscore"),
    ("zremrangebyrank", ZSET, "zremrangebyrank"),
    ("zremrangebylex", ZSET, "zremrangebylex"),
    ("hset", HASH, "hset"),
    ("hmset", HASH, "hset"),
    ("hsetnx", HASH, "hset"),
    ("hdel", HASH, "hdel"),
    ("hincrby", HASH, "hincrby"),
    ("hincrbyfloat", HASH, "hincrbyfloat"),
];

/// The event a logged command reports, with its class.
pub fn event(command: &str) -> Option<(u16, &'static str)> {
    EVENTS
        .iter()
        .find(|(c, _, _)| *c == command)
        .map(|&(_, class, name)| (class, name))
}

/// The event a logged command reports on its `nth` key (0 for the first): a command
/// that moves data between two keys reports a different event on each, as Redis
/// does (SMOVE: `srem` on the source, `sadd` on the destination). `side` names the
/// end LMOVE pops from (`nth` 0) or pushes to (`nth` 1).
pub fn event_at(command: &str, nth: usize, side: &[u8]) -> Option<(u16, &'static str)> {
    let left = side.eq_ignore_ascii_case(b"LEFT");
    let ev = match (command, nth) {
        ("smove", 0) => (SET, "srem"),
        ("smove", _) => (SET, "sadd"),
        ("rename" | "renamenx", 0) => (GENERIC, "rename_from"),
        ("rename" | "renamenx", _) => (GENERIC, "rename_to"),
        ("rpoplpush", 0) => (LIST, "rpop"),
        ("rpoplpush", _) => (LIST, "lpush"),
        ("lmove", 0) => (LIST, if left { "lpop" } else { "rpop" }),
        ("lmove", _) => (LIST, if left { "lpush" } else { "rpush" }),
        ("copy", _) => (GENERIC, "copy_to"),
        ("restore", _) => (GENERIC, "restore"),
        ("sinterstore", _) => (SET, "sinterstore"),
        ("sunionstore", _) => (SET, "sunionstore"),
        ("sdiffstore", _) => (SET, "sdiffstore"),
        ("zunionstore", _) => (ZSET, "zunionstore"),
        ("zinterstore", _) => (ZSET, "zinterstore"),
        ("zdiffstore", _) => (ZSET, "zdiffstore"),
        // Only the destination changes; the source is read.
        ("zrangestore", 0) => (ZSET, "zrangestore"),
        ("zrangestore", _) => return None,
        // A logged SORT names one key, its destination (see `session::key_positions`).
        ("sort", _) => (LIST, "sortstore"),
        _ => return event(command),
    };
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_in_redis_spelling() {
        assert_eq!(parse_flags("KEA").map(format_flags).as_deref(), Some("AKE"));
        assert_eq!(parse_flags("Kl$").map(format_flags).as_deref(), Some("$lK"));
        assert_eq!(parse_flags("K"), Some(0));
        assert_eq!(parse_flags("Kq"), None);
        assert_eq!(event("pexpireat"), Some((GENERIC, "expire")));
        assert_eq!(event_at("smove", 0, b""), Some((SET, "srem")));
        assert_eq!(event_at("smove", 1, b""), Some((SET, "sadd")));
        assert_eq!(event_at("lmove", 1, b"left"), Some((LIST, "lpush")));
        assert_eq!(event_at("set", 0, b""), Some((STRING, "set")));
    }
}
