//! The keyspace: an [`Engine`] plus key expiry, plus the feed of write commands for the
//! log.
//!
//! The one idea, as in Redis: expiry times live in a table of their own beside the
//! data, so a key is expired in two ways — lazily, when a command touches it and finds
//! its time passed, and actively, by [`Keyspace::active_expire`] sampling random keys
//! of that table a few times a second. Either way the deletion is written to the log as
//! a `DEL`, so a replay never depends on the clock at replay time for what was already
//! gone. Times are absolute Unix milliseconds.

use super::engine::Engine;
use super::value::{fmt_score, Kind, StrForm, Value};
use crate::proto::resp;
use indexmap::IndexMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The reply to a command on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[derive(Debug, Default, Clone, Copy)]
pub struct KeyspaceStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
}

pub struct Keyspace {
    engine: Box<dyn Engine>,
    expires: IndexMap<Box<[u8]>, i64, foldhash::fast::RandomState>,
    /// Strings whose OBJECT ENCODING the command that wrote them decides, not their
    /// bytes (see [`StrForm`]); only live string keys are here.
    forms: std::collections::HashMap<Box<[u8]>, StrForm, foldhash::fast::RandomState>,
    /// The time commands see: set once per batch, as Redis caches it per command.
    pub now: i64,
    /// Write commands to append to the log, RESP-encoded; drained by the caller.
    pub feed: Vec<u8>,
    /// Off while replaying the log: what is replayed is already in it. Nothing
    /// expires meanwhile (see [`Keyspace::is_past`]).
    pub logging: bool,
    pub stats: KeyspaceStats,
    rng: u64,
    /// Whether a blocking command may block now (false while replaying and inside
    /// EXEC); see [`super::blocking`].
    pub may_block: bool,
    /// Left by a blocking command that found nothing, for the caller to park.
    pub(crate) block_request: Option<super::blocking::Request>,
}

impl Keyspace {
    pub fn new(engine: Box<dyn Engine>) -> Self {
        Self {
            engine,
            expires: IndexMap::default(),
            forms: Default::default(),
            now: unix_ms(),
            feed: Vec::new(),
            logging: true,
            stats: KeyspaceStats::default(),
            rng: (unix_ms() as u64) | 1,
            may_block: false,
            block_request: None,
        }
    }

    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }

    /// See [`Engine::pin`].
    pub fn pin(&self) -> Box<dyn std::any::Any + Send> {
        self.engine.pin()
    }

    /// Whether the engine can store `key` with a value of `value_len` bytes.
    pub fn fits(&self, key: &[u8], value_len: usize) -> Result<(), String> {
        self.engine.fits(key, value_len)
    }

    /// Appends a command to the log feed.
    pub fn log<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        if self.logging {
            resp::encode_command(&mut self.feed, args);
        }
    }

    /// Appends a command to the log feed exactly as the client sent it.
    pub fn log_args(&mut self, args: resp::Args<'_>) {
        if self.logging {
            args.encode(&mut self.feed);
        }
    }

    /// Whether the absolute time `at` has passed for the commands running now.
    /// Never while replaying: a key whose time passed before a restart is still the
    /// key the records after its expiry time changed (an APPEND to it, a SORT that
    /// read it), as it was when they ran; it expires once the server serves again,
    /// as Redis does after loading.
    pub fn is_past(&self, at: i64) -> bool {
        self.logging && at <= self.now
    }

    /// Deletes `key` if its time has passed; true when it did.
    fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        if self.expires.is_empty() || !self.logging {
            return false;
        }
        match self.expires.get(key) {
            Some(&at) if at <= self.now => {
                self.expires.swap_remove(key);
                self.forget_form(key);
                self.engine.del(key);
                self.stats.expired += 1;
                self.log(&[&b"DEL"[..], key]);
                true
            }
            _ => false,
        }
    }

    /// The value of a live key, counting a hit or a miss.
    pub fn get(&mut self, key: &[u8]) -> Option<&Value> {
        self.expire_if_needed(key);
        let v = self.engine.get(key);
        if v.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        v
    }

    /// The value of a live key, without touching the hit counters (for writes).
    pub fn peek(&mut self, key: &[u8]) -> Option<&Value> {
        self.expire_if_needed(key);
        self.engine.get(key)
    }

    /// The value of a live key, to change in place.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.expire_if_needed(key);
        self.engine.get_mut(key)
    }

    /// The type of a live key.
    pub fn kind(&mut self, key: &[u8]) -> Option<Kind> {
        self.peek(key).map(Value::kind)
    }

    /// A live string for a read command: `Err` is the WRONGTYPE reply.
    pub fn get_str(&mut self, key: &[u8]) -> Result<Option<&[u8]>, &'static str> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(v)) => Ok(Some(v)),
            Some(_) => Err(WRONGTYPE),
        }
    }

    /// A live string for a write command (no hit counted).
    pub fn peek_str(&mut self, key: &[u8]) -> Result<Option<&[u8]>, &'static str> {
        match self.peek(key) {
            None => Ok(None),
            Some(Value::Str(v)) => Ok(Some(v)),
            Some(_) => Err(WRONGTYPE),
        }
    }

    /// A live value of `kind` for a read command: `Ok(None)` when missing, `Err` (the
    /// WRONGTYPE reply) when of another type.
    pub fn read(&mut self, key: &[u8], kind: Kind) -> Result<Option<&Value>, &'static str> {
        match self.get(key) {
            Some(v) if v.kind() != kind => Err(WRONGTYPE),
            v => Ok(v),
        }
    }

    /// As [`Keyspace::read`], to change in place.
    pub fn write(&mut self, key: &[u8], kind: Kind) -> Result<Option<&mut Value>, &'static str> {
        match self.get_mut(key) {
            Some(v) if v.kind() != kind => Err(WRONGTYPE),
            v => Ok(v),
        }
    }

    /// A live value of `kind`, created empty when missing (the engine may refuse the
    /// type). Callers validate their arguments first and call
    /// [`Keyspace::drop_if_empty`] after, so no empty aggregate is left behind.
    pub fn write_or_create(&mut self, key: &[u8], kind: Kind) -> Result<&mut Value, String> {
        match self.kind(key) {
            Some(k) if k != kind => return Err(WRONGTYPE.into()),
            Some(_) => {}
            None => {
                self.engine.holds(kind)?;
                self.engine.set(key, Value::empty(kind));
                if !self.expires.is_empty() {
                    self.expires.swap_remove(key);
                }
            }
        }
        self.engine
            .get_mut(key)
            .ok_or_else(|| "ERR the engine lost a key it just stored".to_owned())
    }

    /// Whether the engine can hold values of `kind`.
    pub fn holds(&self, kind: Kind) -> Result<(), String> {
        self.engine.holds(kind)
    }

    /// Deletes `key` if it holds an empty aggregate (Redis never keeps one); true
    /// when it did.
    pub fn drop_if_empty(&mut self, key: &[u8]) -> bool {
        let empty = match self.engine.get(key) {
            Some(Value::Hash(h)) => h.is_empty(),
            Some(Value::List(l)) => l.is_empty(),
            Some(Value::Set(s)) => s.is_empty(),
            Some(Value::ZSet(z)) => z.is_empty(),
            _ => false,
        };
        if empty {
            self.del(key);
        }
        empty
    }

    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.expire_if_needed(key);
        self.engine.contains(key)
    }

    /// Whether the engine holds `key`, expired or not, without expiring it (WATCH
    /// asks whether a write left a key behind).
    pub fn contains_raw(&mut self, key: &[u8]) -> bool {
        self.engine.contains(key)
    }

    /// Stores `value`, dropping any expiry (plain SET semantics).
    pub fn set(&mut self, key: &[u8], value: Value) {
        self.forget_form(key);
        self.engine.set(key, value);
        if !self.expires.is_empty() {
            self.expires.swap_remove(key);
        }
    }

    /// Stores a string, dropping any expiry.
    pub fn set_str(&mut self, key: &[u8], value: Vec<u8>) {
        self.set(key, Value::Str(value))
    }

    /// Stores `value`, keeping the key's expiry (INCR, APPEND, SET KEEPTTL).
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value) {
        self.expire_if_needed(key);
        self.forget_form(key);
        self.engine.set(key, value);
    }

    /// Appends to a live string (creating it), returning the new length; the caller
    /// checked the type. A string appended to is `raw` from then on; a created one is
    /// judged by its bytes, as Redis encodes a new value.
    pub fn append(&mut self, key: &[u8], tail: &[u8]) -> usize {
        self.expire_if_needed(key);
        match self.engine.get_mut(key) {
            Some(Value::Str(v)) => {
                v.extend_from_slice(tail);
                let n = v.len();
                self.set_form(key, StrForm::Raw);
                n
            }
            _ => {
                self.forget_form(key);
                self.engine.set(key, Value::Str(tail.to_vec()));
                tail.len()
            }
        }
    }

    /// Records how the string at `key` was written (see [`StrForm`]); the next
    /// write that replaces the value forgets it.
    pub fn set_form(&mut self, key: &[u8], form: StrForm) {
        if let Some(f) = self.forms.get_mut(key) {
            *f = form;
        } else {
            self.forms.insert(key.into(), form);
        }
    }

    /// How the string at `key` was written, when that decides its encoding.
    pub fn form(&self, key: &[u8]) -> Option<StrForm> {
        if self.forms.is_empty() {
            return None;
        }
        self.forms.get(key).copied()
    }

    fn forget_form(&mut self, key: &[u8]) {
        if !self.forms.is_empty() {
            self.forms.remove(key);
        }
    }

    /// OBJECT ENCODING of a live key.
    pub fn encoding(&mut self, key: &[u8]) -> Option<&'static str> {
        let form = self.form(key);
        match self.peek(key)? {
            Value::Str(s) => Some(super::value::str_encoding(s, form)),
            v => Some(v.encoding()),
        }
    }

    /// Removes a live key, returning its value and expiry (RENAME, MOVE-like commands).
    pub fn take(&mut self, key: &[u8]) -> Option<(Value, Option<i64>)> {
        if self.expire_if_needed(key) {
            return None;
        }
        let v = self.engine.take(key)?;
        self.forget_form(key);
        let at = if self.expires.is_empty() {
            None
        } else {
            self.expires.swap_remove(key)
        };
        Some((v, at))
    }

    /// A live key picked at random (RANDOMKEY), a bounded number of tries.
    pub fn random_key(&mut self) -> Option<Box<[u8]>> {
        for _ in 0..100 {
            let r = self.next_random();
            let k = self.engine.random_key(r)?;
            if !self.expire_if_needed(&k) {
                return Some(k);
            }
        }
        None
    }

    pub fn del(&mut self, key: &[u8]) -> bool {
        if self.expire_if_needed(key) {
            return false;
        }
        if !self.expires.is_empty() {
            self.expires.swap_remove(key);
        }
        self.forget_form(key);
        self.engine.del(key)
    }

    /// The expiry of a live key (`None`: no expiry); call [`Keyspace::exists`] first.
    pub fn expire_at(&self, key: &[u8]) -> Option<i64> {
        self.expires.get(key).copied()
    }

    /// Sets the expiry of an existing key.
    pub fn set_expire(&mut self, key: &[u8], at: i64) {
        if let Some(v) = self.expires.get_mut(key) {
            *v = at;
        } else {
            self.expires.insert(key.into(), at);
        }
    }

    /// Removes a key's expiry; true when it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.expires.swap_remove(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.engine.len()
    }

    pub fn is_empty(&self) -> bool {
        self.engine.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    pub fn clear(&mut self) {
        self.engine.clear();
        self.expires = IndexMap::default();
        self.forms = Default::default();
    }

    /// Live keys matching `pattern` (KEYS).
    pub fn keys(&mut self, pattern: &[u8]) -> Vec<Vec<u8>> {
        let all = pattern == b"*";
        let mut out = Vec::new();
        let now = self.now;
        let expires = &self.expires;
        self.engine.scan(0, usize::MAX, &mut |k| {
            if (all || super::glob::matches(pattern, k, false))
                && !matches!(expires.get(k), Some(&at) if at <= now)
            {
                out.push(k.to_vec());
            }
        });
        out
    }

    /// RANGE: the live pairs with `start <= key <= end`, in key order, at most
    /// `limit`. `None` when the engine keeps no order.
    #[allow(clippy::type_complexity)]
    pub fn range(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Option<Result<Vec<(Vec<u8>, Vec<u8>)>, String>> {
        let now = self.now;
        let expires = &self.expires;
        let mut out = Vec::new();
        if limit == 0 || start > end {
            return self
                .engine
                .range(start, start, &mut |_, _| false)
                .map(|r| r.map(|()| out));
        }
        let res = self.engine.range(start, end, &mut |k, v| {
            if !matches!(expires.get(k), Some(&at) if at <= now) {
                out.push((k.to_vec(), v.to_vec()));
            }
            out.len() < limit
        })?;
        Some(res.map(|()| out))
    }

    /// One SCAN step: keys visited from `cursor`, filtered by `pattern`, live ones only.
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
    ) -> (u64, Vec<Vec<u8>>) {
        let mut found = Vec::new();
        let next = self.engine.scan(cursor, count, &mut |k| {
            if pattern.map_or(true, |p| super::glob::matches(p, k, false)) {
                found.push(k.to_vec());
            }
        });
        found.retain(|k| !self.expire_if_needed(k));
        (next, found)
    }

    /// A pseudo-random number (random members, RANDOMKEY).
    pub fn rand(&mut self) -> u64 {
        self.next_random()
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: cheap and good enough to pick keys to sample.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Redis's active expiry cycle: sample 20 keys with an expiry, delete the expired
    /// ones, and go again while more than a quarter of a sample had expired, within
    /// `budget`. Returns how many keys were deleted.
    pub fn active_expire(&mut self, budget: Duration) -> u64 {
        const SAMPLE: usize = 20;
        let started = Instant::now();
        self.now = unix_ms();
        let mut deleted = 0;
        loop {
            let n = self.expires.len();
            if n == 0 {
                break;
            }
            let mut expired_here = 0;
            for _ in 0..SAMPLE.min(n) {
                let n = self.expires.len();
                if n == 0 {
                    break;
                }
                let i = (self.next_random() % n as u64) as usize;
                let Some((k, &at)) = self.expires.get_index(i) else {
                    break;
                };
                if at <= self.now {
                    let k = k.clone();
                    self.expires.swap_remove_index(i);
                    self.forget_form(&k);
                    self.engine.del(&k);
                    self.stats.expired += 1;
                    self.log(&[&b"DEL"[..], &k]);
                    expired_here += 1;
                }
            }
            deleted += expired_here;
            if expired_here * 4 <= SAMPLE.min(n) as u64 || started.elapsed() >= budget {
                break;
            }
        }
        deleted
    }

    /// Writes the keyspace as commands that rebuild it: `SET k v [PXAT ms]` for a
    /// string; `HSET`, `RPUSH`, `SADD`, `ZADD` of up to [`REWRITE_ITEMS`] members each
    /// for the aggregates, then `PEXPIREAT` for one with an expiry. Runs in the
    /// rewrite child, on its snapshot.
    pub fn write_snapshot(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(256 * 1024);
        let mut err = None;
        let walked = self.engine.for_each(&mut |k, v| {
            if err.is_some() {
                return;
            }
            let at = self.expires.get(k).copied();
            let mut ms = itoa::Buffer::new();
            match v {
                Value::Str(v) => match at {
                    Some(at) => resp::encode_command(
                        &mut buf,
                        &[&b"SET"[..], k, v, b"PXAT", ms.format(at).as_bytes()],
                    ),
                    None => resp::encode_command(&mut buf, &[&b"SET"[..], k, v]),
                },
                Value::Hash(h) => {
                    let items: Vec<&[u8]> = h.iter().flat_map(|(f, v)| [f, v]).collect();
                    encode_chunks(&mut buf, b"HSET", k, &items, 2);
                }
                Value::List(l) => {
                    let items: Vec<&[u8]> = l.iter().map(|e| &e[..]).collect();
                    encode_chunks(&mut buf, b"RPUSH", k, &items, 1);
                }
                Value::Set(s) => {
                    let members: Vec<_> = s.iter().collect();
                    let items: Vec<&[u8]> = members.iter().map(|m| m.as_ref()).collect();
                    encode_chunks(&mut buf, b"SADD", k, &items, 1);
                }
                Value::ZSet(z) => {
                    let scores: Vec<String> = z.iter().map(|(_, s)| fmt_score(s)).collect();
                    let items: Vec<&[u8]> = z
                        .iter()
                        .zip(&scores)
                        .flat_map(|((m, _), s)| [s.as_bytes(), m])
                        .collect();
                    encode_chunks(&mut buf, b"ZADD", k, &items, 2);
                }
            }
            if let (Some(at), false) = (at, matches!(v, Value::Str(_))) {
                resp::encode_command(&mut buf, &[&b"PEXPIREAT"[..], k, ms.format(at).as_bytes()]);
            }
            if buf.len() >= 128 * 1024 {
                if let Err(e) = w.write_all(&buf) {
                    err = Some(e);
                }
                buf.clear();
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        walked.map_err(std::io::Error::other)?;
        w.write_all(&buf)?;
        w.flush()
    }
}

/// Members per command in a rewritten log, as Redis's `AOF_REWRITE_ITEMS_PER_CMD`.
pub const REWRITE_ITEMS: usize = 64;

/// `CMD key item...` in commands of at most [`REWRITE_ITEMS`] members (`per` items
/// each).
fn encode_chunks(buf: &mut Vec<u8>, cmd: &[u8], key: &[u8], items: &[&[u8]], per: usize) {
    for chunk in items.chunks(REWRITE_ITEMS * per) {
        let mut args: Vec<&[u8]> = Vec::with_capacity(chunk.len() + 2);
        args.push(cmd);
        args.push(key);
        args.extend_from_slice(chunk);
        resp::encode_command(buf, &args);
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::HashEngine;
    use super::*;

    fn ks() -> Keyspace {
        Keyspace::new(Box::new(HashEngine::new()))
    }

    #[test]
    fn lazy_expiry_logs_a_del() {
        let mut k = ks();
        k.set_str(b"a", b"1".to_vec());
        k.set_expire(b"a", k.now + 1000);
        assert_eq!(k.get_str(b"a"), Ok(Some(&b"1"[..])));
        k.now += 1000;
        assert_eq!(k.get_str(b"a"), Ok(None));
        assert_eq!(k.feed, b"*2\r\n$3\r\nDEL\r\n$1\r\na\r\n");
        assert_eq!(k.stats.expired, 1);
        assert_eq!(k.expires_len(), 0);
    }

    #[test]
    fn active_expiry_clears_most_expired_keys() {
        let mut k = ks();
        let past = unix_ms() - 10;
        for i in 0..10_000u32 {
            k.set_str(&i.to_be_bytes(), vec![]);
            k.set_expire(&i.to_be_bytes(), past);
        }
        for i in 10_000..10_100u32 {
            k.set_str(&i.to_be_bytes(), vec![]);
            k.set_expire(&i.to_be_bytes(), past + 3_600_000);
        }
        for _ in 0..100 {
            k.active_expire(Duration::from_millis(25));
        }
        assert!(k.len() < 10_100 + 2500, "left {}", k.len());
        assert!(k.len() >= 100);
        assert!(k.exists(&10_050u32.to_be_bytes()));
    }

    #[test]
    fn set_clears_ttl_and_keep_ttl_keeps_it() {
        let mut k = ks();
        k.set_str(b"a", b"1".to_vec());
        k.set_expire(b"a", k.now + 5000);
        k.set_keep_ttl(b"a", Value::Str(b"2".to_vec()));
        assert!(k.expire_at(b"a").is_some());
        k.set_str(b"a", b"3".to_vec());
        assert!(k.expire_at(b"a").is_none());
    }
}
