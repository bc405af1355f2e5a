//! CONFIG GET/SET's table: kvd's own parameters, and the Redis parameters that
//! applications and Redis's test suite set, accepted and remembered.
//!
//! The one idea: a parameter is a row (name, kind, value); CONFIG SET checks a value
//! against its kind, stores it as text, and [`super::ServerState::apply_params`] reads
//! back the ones kvd acts on (`requirepass`, the request limits, the encoding
//! thresholds such as `hash-max-listpack-entries`). Old names
//! (`hash-max-ziplist-entries`) are aliases of the new ones, as in Redis 7.0.

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer at least this.
    Int(i64),
    /// Bytes, with Redis's units (`1mb`, `2gb`).
    Memory,
    Bool,
    Text,
    OneOf(&'static [&'static str]),
    /// `notify-keyspace-events` flags, stored in Redis's spelling.
    Notify,
    /// Set at start only.
    Immutable,
    /// Only the value kvd runs with is accepted (kvd always logs, say).
    Fixed,
}

#[derive(Debug)]
struct Param {
    name: &'static str,
    kind: Kind,
    value: String,
    /// Index of the row this one is another name for.
    alias_of: Option<usize>,
}

/// The parameter table.
#[derive(Debug)]
pub struct Params {
    rows: Vec<Param>,
}

const ROWS: &[(&str, Kind, &str)] = &[
    ("appendonly", Kind::Fixed, "yes"),
    ("appendfsync", Kind::Fixed, "everysec"),
    (
        "appendfilename",
        Kind::Immutable,
        crate::store::aof::FILE_NAME,
    ),
    ("dir", Kind::Immutable, ""),
    ("port", Kind::Immutable, "0"),
    ("bind", Kind::Immutable, ""),
    ("databases", Kind::Immutable, "1"),
    ("maxclients", Kind::Immutable, "10000"),
    ("requirepass", Kind::Text, ""),
    ("proto-max-bulk-len", Kind::Memory, "33554432"),
    ("client-query-buffer-limit", Kind::Memory, "67108864"),
    ("save", Kind::Text, ""),
    ("timeout", Kind::Int(0), "0"),
    ("tcp-keepalive", Kind::Int(0), "300"),
    ("hz", Kind::Int(1), "10"),
    (
        "loglevel",
        Kind::OneOf(&["debug", "verbose", "notice", "warning", "nothing"]),
        "notice",
    ),
    ("maxmemory", Kind::Memory, "0"),
    (
        "maxmemory-policy",
        Kind::OneOf(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        "noeviction",
    ),
    ("maxmemory-samples", Kind::Int(1), "5"),
    ("maxmemory-clients", Kind::Memory, "0"),
    ("notify-keyspace-events", Kind::Notify, ""),
    ("hash-max-listpack-entries", Kind::Int(0), "128"),
    ("hash-max-listpack-value", Kind::Int(0), "64"),
    ("list-max-listpack-size", Kind::Int(i64::MIN), "-2"),
    ("list-compress-depth", Kind::Int(0), "0"),
    ("set-max-intset-entries", Kind::Int(0), "512"),
    ("zset-max-listpack-entries", Kind::Int(0), "128"),
    ("zset-max-listpack-value", Kind::Int(0), "64"),
    ("stream-node-max-bytes", Kind::Memory, "4096"),
    ("stream-node-max-entries", Kind::Int(0), "100"),
    ("active-expire-effort", Kind::Int(1), "1"),
    ("lazyfree-lazy-eviction", Kind::Bool, "no"),
    ("lazyfree-lazy-expire", Kind::Bool, "no"),
    ("lazyfree-lazy-server-del", Kind::Bool, "no"),
    ("lazyfree-lazy-user-del", Kind::Bool, "no"),
    ("lazyfree-lazy-user-flush", Kind::Bool, "no"),
    ("lua-time-limit", Kind::Int(0), "5000"),
    ("slowlog-log-slower-than", Kind::Int(-1), "10000"),
    ("slowlog-max-len", Kind::Int(0), "128"),
    ("latency-tracking", Kind::Bool, "yes"),
    ("min-replicas-to-write", Kind::Int(0), "0"),
    ("min-replicas-max-lag", Kind::Int(0), "10"),
    ("replica-serve-stale-data", Kind::Bool, "yes"),
    ("replica-read-only", Kind::Bool, "yes"),
    ("rdb-key-save-delay", Kind::Int(i64::MIN), "0"),
    ("rdbcompression", Kind::Bool, "yes"),
    (
        "client-output-buffer-limit",
        Kind::Text,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
];

const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("busy-reply-threshold", "lua-time-limit"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-read-only", "replica-read-only"),
];

/// A parameter value's longest accepted length: the table stays small whatever a
/// client sets.
const VALUE_MAX: usize = 64 * 1024;

/// Redis's `memtoull`: digits with an optional unit (b, k, kb, m, mb, g, gb).
pub fn parse_memory(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

impl Default for Params {
    fn default() -> Self {
        let mut rows: Vec<Param> = ROWS
            .iter()
            .map(|&(name, kind, value)| Param {
                name,
                kind,
                value: value.to_owned(),
                alias_of: None,
            })
            .collect();
        for &(alias, of) in ALIASES {
            if let Some(i) = rows.iter().position(|r| r.name == of) {
                rows.push(Param {
                    name: alias,
                    kind: rows[i].kind,
                    value: String::new(),
                    alias_of: Some(i),
                });
            }
        }
        Self { rows }
    }
}

impl Params {
    fn find(&self, name: &[u8]) -> Option<usize> {
        let i = self
            .rows
            .iter()
            .position(|r| r.name.as_bytes().eq_ignore_ascii_case(name))?;
        Some(self.rows[i].alias_of.unwrap_or(i))
    }

    /// The current value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name.as_bytes())
            .map(|i| self.rows[i].value.as_str())
    }

    /// Every parameter (aliases included) with its value, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.rows.iter().map(|r| {
            let src = r.alias_of.map_or(r, |i| &self.rows[i]);
            (r.name, src.value.clone())
        })
    }

    /// Sets a value at start-up, unchecked (kvd's own flags).
    pub fn init(&mut self, name: &str, value: impl Into<String>) {
        if let Some(i) = self.find(name.as_bytes()) {
            self.rows[i].value = value.into();
        }
    }

    /// Whether CONFIG SET `name` `value` would be accepted; the error is Redis's.
    pub fn check(&self, name: &[u8], value: &[u8]) -> Result<(), String> {
        let shown = String::from_utf8_lossy(name);
        let Some(i) = self.find(name) else {
            return Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{shown}'"
            ));
        };
        let fail = |why: &str| {
            Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{shown}') - {why}"
            ))
        };
        if value.len() > VALUE_MAX {
            return fail("value too long");
        }
        let row = &self.rows[i];
        match row.kind {
            Kind::Int(min) => match crate::proto::resp::parse_i64(value) {
                Some(v) if v >= min => Ok(()),
                Some(_) => fail("argument must be greater or equal"),
                None => fail("argument couldn't be parsed into an integer"),
            },
            Kind::Memory => match parse_memory(value) {
                Some(_) => Ok(()),
                None => fail("argument must be a memory value"),
            },
            Kind::Bool => {
                if value.eq_ignore_ascii_case(b"yes") || value.eq_ignore_ascii_case(b"no") {
                    Ok(())
                } else {
                    fail("argument must be 'yes' or 'no'")
                }
            }
            Kind::OneOf(set) => {
                if set.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(value)) {
                    Ok(())
                } else {
                    fail("argument(s) must be one of the following")
                }
            }
            Kind::Text => Ok(()),
            Kind::Notify => match super::notify::parse_flags(&String::from_utf8_lossy(value)) {
                Some(_) => Ok(()),
                None => fail("Invalid event class character. Use 'Ag$lshzxeKEtmd'."),
            },
            Kind::Immutable => fail("can't set immutable config"),
            Kind::Fixed => {
                if row.value.as_bytes().eq_ignore_ascii_case(value) {
                    Ok(())
                } else {
                    fail(&format!(
                        "kvd runs with {} {} (set it at start)",
                        row.name, row.value
                    ))
                }
            }
        }
    }

    /// Stores a value [`Params::check`] accepted.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        if let Some(i) = self.find(name) {
            let mut v = String::from_utf8_lossy(value).into_owned();
            if matches!(self.rows[i].kind, Kind::Bool | Kind::OneOf(_)) {
                v.make_ascii_lowercase();
            }
            if let Kind::Notify = self.rows[i].kind {
                v = super::notify::parse_flags(&v)
                    .map(super::notify::format_flags)
                    .unwrap_or_default();
            }
            self.rows[i].value = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_share_the_value() {
        let mut p = Params::default();
        assert!(p.check(b"hash-max-ziplist-entries", b"16").is_ok());
        p.set(b"hash-max-ziplist-entries", b"16");
        assert_eq!(p.get("hash-max-listpack-entries"), Some("16"));
        let all: Vec<_> = p.iter().collect();
        assert!(all.contains(&("hash-max-ziplist-entries", "16".to_owned())));
    }

    #[test]
    fn checks_in_redis_words() {
        let p = Params::default();
        assert_eq!(
            p.check(b"nosuch", b"1").unwrap_err(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
        );
        assert!(p.check(b"maxmemory", b"1mb").is_ok());
        assert!(p.check(b"hash-max-listpack-entries", b"x").is_err());
        assert!(p.check(b"port", b"1").unwrap_err().contains("immutable"));
        assert!(p.check(b"appendonly", b"no").is_err());
        assert!(p.check(b"appendonly", b"yes").is_ok());
        assert_eq!(parse_memory(b"2kb"), Some(2048));
    }
}
