//! Lua scripts, as Redis 7.0 runs them: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT,
//! on one Lua 5.1 VM per server with the bodies cached by their SHA1.
//!
//! The one idea: a script is a client's command that runs other commands. Its
//! `redis.call` goes through the same dispatch a client's command does (so WRONGTYPE,
//! WATCH, keyspace events, blocked-client wakeups and the log all see it), and what it
//! writes reaches the log as the commands it ran — wrapped in MULTI/EXEC when there
//! are two or more — never as the EVAL, so replay needs no script cache. A script runs
//! to its end on the event loop; a count hook checks the clock and stops one that runs
//! past `lua-time-limit` with an error, so the loop is never stuck.

use super::cmd;
use super::Kv;
use crate::proto::resp::{self, Args};
use crate::proto::ConnId;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes one VM may hold, as a bound on what a script can make the server allocate.
const MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// The hook looks at the clock this often (in VM instructions).
const HOOK_EVERY: u32 = 10_000;
/// Nesting beyond this in a returned table is refused (a table may hold itself).
const MAX_DEPTH: usize = 200;
const CHUNK_NAME: &str = "@user_script";
const ERR_NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// The VM, the compiled scripts and the time limit the hook enforces.
pub(crate) struct Scripts {
    lua: Lua,
    /// The table scripts see as their globals: reads fall through to the real ones,
    /// writes are refused.
    env: Table,
    globals: Table,
    redis: Table,
    xpcall: Function,
    handler: Function,
    cache: HashMap<String, Function>,
    /// When the running script started; `None` between scripts.
    started: Arc<Mutex<Option<Instant>>>,
    /// `lua-time-limit` in milliseconds.
    limit: Arc<AtomicU64>,
    /// The running script passed the limit: `pcall` may not swallow that.
    killed: Arc<AtomicBool>,
}

impl Scripts {
    fn new() -> mlua::Result<Self> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let globals = lua.globals();
        let xpcall: Function = globals.get("xpcall")?;
        for name in [
            "dofile", "loadfile", "require", "module", "os", "io", "debug",
        ] {
            globals.raw_set(name, Value::Nil)?;
        }
        let redis = lua.create_table()?;
        redis.set(
            "sha1hex",
            lua.create_function(|lua, args: MultiValue| match (args.len(), args.front()) {
                (1, Some(v)) => {
                    let s = lua.coerce_string(v.clone())?;
                    let bytes = s.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
                    Ok(Value::String(lua.create_string(sha1_hex(&bytes))?))
                }
                _ => Err(mlua::Error::RuntimeError(
                    "wrong number of arguments".into(),
                )),
            })?,
        )?;
        redis.set(
            "error_reply",
            lua.create_function(|lua, args: MultiValue| {
                let msg = match (args.len(), args.front()) {
                    (1, Some(Value::String(s))) => s.as_bytes().to_vec(),
                    _ => b"-ERR wrong number or type of arguments".to_vec(),
                };
                let msg = if msg.first() == Some(&b'-') {
                    msg
                } else {
                    [b"-".as_slice(), &msg].concat()
                };
                error_table(lua, &msg)
            })?,
        )?;
        redis.set(
            "status_reply",
            lua.create_function(|lua, args: MultiValue| match (args.len(), args.front()) {
                (1, Some(Value::String(s))) => {
                    let t = lua.create_table()?;
                    t.raw_set("ok", s.clone())?;
                    Ok(t)
                }
                _ => error_table(lua, b"wrong number or type of arguments"),
            })?,
        )?;
        redis.set(
            "log",
            lua.create_function(|lua, args: MultiValue| {
                let mut it = args.into_iter();
                let level = match it.next() {
                    Some(Value::Integer(l)) => l,
                    Some(Value::Number(l)) => l as i64,
                    _ => {
                        return Err(mlua::Error::RuntimeError(
                            "First argument must be a number (log level).".into(),
                        ))
                    }
                };
                let mut line = String::new();
                for v in it {
                    if let Some(s) = lua.coerce_string(v)? {
                        if !line.is_empty() {
                            line.push(' ');
                        }
                        line.push_str(&s.to_string_lossy());
                    }
                }
                match level {
                    0 => tracing::debug!(script = %line, "redis.log"),
                    1 | 2 => tracing::info!(script = %line, "redis.log"),
                    _ => tracing::warn!(script = %line, "redis.log"),
                }
                Ok(())
            })?,
        )?;
        for (name, v) in [
            ("LOG_DEBUG", 0),
            ("LOG_VERBOSE", 1),
            ("LOG_NOTICE", 2),
            ("LOG_WARNING", 3),
        ] {
            redis.set(name, v)?;
        }
        globals.raw_set("redis", redis.clone())?;
        // What a failing script reports: the error as `{err=...}` and the line of the
        // script it happened at, as Redis's `__redis__err__handler` does.
        let handler = lua.create_function(|lua, err: Value| {
            let t = match err {
                Value::Table(t) => t,
                Value::Error(e) if pending_matches(lua, &e) => {
                    lua.named_registry_value::<Table>(PENDING)?
                }
                other => {
                    let msg = match other {
                        Value::Error(e) => root_message(&e),
                        Value::String(s) => s.to_string_lossy(),
                        v => lua
                            .coerce_string(v)?
                            .map_or_else(|| "execution failure".into(), |s| s.to_string_lossy()),
                    };
                    let t = lua.create_table()?;
                    t.raw_set("err", format!("ERR {msg}"))?;
                    t
                }
            };
            if !t.contains_key("line")? {
                if let Some(line) = script_line(lua) {
                    t.raw_set("source", CHUNK_NAME)?;
                    t.raw_set("line", line)?;
                }
            }
            Ok(t)
        })?;
        // Reads of missing globals and every write are refused, as Redis 7.0 does.
        let env = lua.create_table()?;
        let meta = lua.create_table()?;
        meta.raw_set(
            "__index",
            lua.create_function(|lua, (_t, name): (Table, Value)| {
                let globals = lua.globals();
                match globals.raw_get::<Value>(name.clone())? {
                    Value::Nil => {
                        let name = lua
                            .coerce_string(name)?
                            .map(|s| s.to_string_lossy())
                            .unwrap_or_default();
                        Err(mlua::Error::RuntimeError(format!(
                            "{}Script attempted to access nonexistent global variable '{name}'",
                            position(lua)
                        )))
                    }
                    v => Ok(v),
                }
            })?,
        )?;
        let readonly = lua.create_function(|lua, _: MultiValue| -> mlua::Result<()> {
            Err(mlua::Error::RuntimeError(format!(
                "{}Attempt to modify a readonly table",
                position(lua)
            )))
        })?;
        meta.raw_set("__newindex", readonly.clone())?;
        meta.raw_set("__metatable", false)?;
        env.set_metatable(Some(meta));
        // The libraries are read-only too: one script cannot change what the next sees.
        for name in ["string", "table", "math", "redis"] {
            let real: Table = globals.raw_get(name)?;
            let view = lua.create_table()?;
            let meta = lua.create_table()?;
            meta.raw_set("__index", real)?;
            meta.raw_set("__newindex", readonly.clone())?;
            meta.raw_set("__metatable", false)?;
            view.set_metatable(Some(meta));
            globals.raw_set(name, view)?;
        }
        // `_G` names the guarded view, so `_G.x` and `rawset(_G, ...)` stay inside it.
        globals.raw_set("_G", env.clone())?;
        let started = Arc::new(Mutex::new(None));
        let limit = Arc::new(AtomicU64::new(5000));
        let killed = Arc::new(AtomicBool::new(false));
        // A script's own pcall/xpcall rethrow once the time limit has fired, so a
        // runaway that catches every error still ends; the error of a `redis.call`
        // they catch is its message, as in Redis.
        let flag = killed.clone();
        let is_killed = lua.create_function(move |_, ()| Ok(flag.load(Ordering::Relaxed)))?;
        let (pcall, xpcall_guarded): (Function, Function) = lua
            .load(
                "local pcall, xpcall, killed, raise, call_error = ...\n\
                 local function check(ok, ...)\n\
                 if not ok and killed() then raise((...), 0) end\n\
                 if not ok then\n\
                 local t = call_error((...))\n\
                 if t then return false, t end\n\
                 end\n\
                 return ok, ...\n\
                 end\n\
                 return function(...) return check(pcall(...)) end,\n\
                 function(f, h) return check(xpcall(f, h)) end",
            )
            .set_name("=kvd")
            .call((
                globals.get::<Function>("pcall")?,
                xpcall.clone(),
                is_killed,
                globals.get::<Function>("error")?,
                // What `redis.call` raised, caught by the script: its message, as in
                // Redis 7.0 (`WRONGTYPE Operation against ...`).
                lua.create_function(|lua, err: Value| match err {
                    Value::Error(e) if pending_matches(lua, &e) => lua
                        .named_registry_value::<Table>(PENDING)?
                        .raw_get::<Value>("err"),
                    _ => Ok(Value::Nil),
                })?,
            ))?;
        globals.raw_set("pcall", pcall)?;
        globals.raw_set("xpcall", xpcall_guarded)?;
        Ok(Self {
            lua,
            env,
            globals,
            redis,
            xpcall,
            handler,
            cache: HashMap::new(),
            started,
            limit,
            killed,
        })
    }

    /// Compiles `body` unless its SHA is cached; the SHA, or Redis's compile error.
    fn load(&mut self, body: &[u8]) -> Result<String, String> {
        let sha = sha1_hex(body);
        if self.cache.contains_key(&sha) {
            return Ok(sha);
        }
        let f = self
            .lua
            .load(body)
            .set_name(CHUNK_NAME)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    e => e.to_string(),
                };
                format!("ERR Error compiling script (new function): {msg}")
            })?;
        self.cache.insert(sha.clone(), f);
        Ok(sha)
    }
}

fn set_started(cell: &Mutex<Option<Instant>>, v: Option<Instant>) {
    if let Ok(mut s) = cell.lock() {
        *s = v;
    }
}

/// Where `redis.call` leaves the error table it raises (a Rust function raises an
/// error object, not a table): the handler reports the table, as Redis does.
const PENDING: &str = "kvd_call_error";

fn pending_matches(lua: &Lua, e: &mlua::Error) -> bool {
    let msg = root_message(e);
    lua.named_registry_value::<Table>(PENDING)
        .and_then(|t| t.raw_get::<mlua::String>("err"))
        .is_ok_and(|s| s.to_string_lossy() == msg)
}

/// The message of the error a callback raised, without mlua's wrapping.
fn root_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(s) => s.clone(),
        e => e.to_string(),
    }
}

/// The line of the innermost frame of the user's script on the Lua stack.
fn script_line(lua: &Lua) -> Option<i32> {
    (0..64).find_map(|level| {
        let d = lua.inspect_stack(level)?;
        let from_script = d.source().source.as_deref() == Some(CHUNK_NAME);
        from_script.then(|| d.curr_line())
    })
}

/// `user_script:N: `, the prefix Lua gives its own runtime errors.
fn position(lua: &Lua) -> String {
    script_line(lua).map_or_else(String::new, |l| format!("user_script:{l}: "))
}

/// Redis's `luaPushErrorBuff`: `-CODE msg` keeps its code, a bare message gets ERR.
fn error_table(lua: &Lua, msg: &[u8]) -> mlua::Result<Table> {
    let (code, text): (&[u8], &[u8]) = match msg.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&c| c == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", msg),
    };
    let end = text
        .iter()
        .rposition(|&c| c != b'\r' && c != b'\n')
        .map_or(0, |i| i + 1);
    let start = text
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(end)
        .min(end);
    let full = [code, b" ", &text[start..end]].concat();
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(&full)?)?;
    Ok(t)
}

/// A Lua number as a command argument, as Redis 7.0 writes it: C's `%.17g`.
fn number_arg(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.into();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // 17 significant digits, then %g's choice between fixed and exponent notation.
    let sci = format!("{n:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..17).contains(&exp) {
        let m = trim(mantissa.to_string());
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(16 - exp).unwrap_or(0);
        trim(format!("{n:.decimals$}"))
    }
}

pub(crate) fn sha1_hex(body: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, body);
    let mut hex = String::with_capacity(40);
    for b in d.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Commands a script may not run (Redis's `noscript`), besides the connection-level
/// ones other than those listed in [`allowed_conn`].
fn refused(name: &str) -> bool {
    matches!(
        name,
        "eval"
            | "evalsha"
            | "eval_ro"
            | "evalsha_ro"
            | "script"
            | "function"
            | "save"
            | "bgrewriteaof"
            | "blpop"
            | "brpop"
            | "brpoplpush"
            | "blmove"
            | "blmpop"
            | "bzpopmin"
            | "bzpopmax"
            | "bzmpop"
    )
}

fn allowed_conn(name: &str) -> bool {
    matches!(name, "ping" | "publish" | "pubsub" | "info")
}

/// A RESP2 reply (one whole value at the start of `buf`) as Redis hands it to Lua:
/// integers as numbers, bulk strings as strings, a null as `false`, a status as
/// `{ok=...}`, an error as `{err=...}`, arrays as tables. The value and its length.
fn reply_to_lua(lua: &Lua, buf: &[u8]) -> mlua::Result<(Value, usize)> {
    let bad = || mlua::Error::RuntimeError("malformed reply".into());
    let eol = memchr::memchr(b'\r', buf).ok_or_else(bad)?;
    let line = &buf[1..eol];
    let next = eol + 2;
    match buf.first() {
        Some(b'+') => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(line)?)?;
            Ok((Value::Table(t), next))
        }
        Some(b'-') => {
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(line)?)?;
            Ok((Value::Table(t), next))
        }
        Some(b':') => {
            let n = resp::parse_i64(line).ok_or_else(bad)?;
            Ok((Value::Number(n as f64), next))
        }
        Some(b'$') => {
            let n = resp::parse_i64(line).ok_or_else(bad)?;
            if n < 0 {
                return Ok((Value::Boolean(false), next));
            }
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| next.checked_add(n))
                .ok_or_else(bad)?;
            let body = buf.get(next..end).ok_or_else(bad)?;
            Ok((Value::String(lua.create_string(body)?), end + 2))
        }
        Some(b'*') => {
            let n = resp::parse_i64(line).ok_or_else(bad)?;
            if n < 0 {
                return Ok((Value::Boolean(false), next));
            }
            let t = lua.create_table()?;
            let mut pos = next;
            for i in 1..=n {
                let (v, len) = reply_to_lua(lua, buf.get(pos..).ok_or_else(bad)?)?;
                t.raw_set(i, v)?;
                pos += len;
            }
            Ok((Value::Table(t), pos))
        }
        _ => Err(bad()),
    }
}

fn push_line(out: &mut Vec<u8>, kind: u8, msg: &[u8]) {
    out.push(kind);
    out.extend(
        msg.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.extend_from_slice(b"\r\n");
}

/// A script's result as Redis 7.0 replies it in RESP2 (`luaReplyToRedisReply`).
fn lua_to_reply(v: &Value, out: &mut Vec<u8>, depth: usize, resp3: bool) {
    match v {
        Value::String(s) => resp::encode_bulk(out, &s.as_bytes()),
        Value::Boolean(true) => resp::encode_int(out, 1),
        Value::Integer(n) => resp::encode_int(out, *n),
        Value::Number(n) => resp::encode_int(out, *n as i64),
        Value::Table(_) if depth > MAX_DEPTH => {
            resp::encode_error(out, "ERR reached lua stack limit")
        }
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                let mut msg = b"-".to_vec();
                msg.extend_from_slice(&e.as_bytes());
                return push_line(out, b'-', &msg[1..]);
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return push_line(out, b'+', &s.as_bytes());
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(v),
                }
            }
            resp::encode_array_len(out, items.len());
            for v in &items {
                lua_to_reply(v, out, depth + 1, resp3);
            }
        }
        _ => resp::encode_null(out, resp3),
    }
}

/// How a script ended, besides its result.
fn failure_reply(t: &Table, sha: &str, out: &mut Vec<u8>) {
    let msg: Vec<u8> = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => s.as_bytes().to_vec(),
        _ => b"ERR execution failure".to_vec(),
    };
    let mut full = msg;
    if let (Ok(Value::String(src)), Ok(line)) =
        (t.raw_get::<Value>("source"), t.raw_get::<Value>("line"))
    {
        let line = match line {
            Value::Integer(n) => n,
            Value::Number(n) => n as i64,
            _ => 0,
        };
        full.extend_from_slice(
            format!(" script: {sha}, on {}:{line}.", src.to_string_lossy()).as_bytes(),
        );
    }
    push_line(out, b'-', &full);
}

impl Kv {
    fn scripts(&mut self) -> Result<&mut Scripts, String> {
        if self.scripts.is_none() {
            self.scripts = Some(Box::new(
                Scripts::new().map_err(|e| format!("ERR cannot start Lua: {e}"))?,
            ));
        }
        self.scripts
            .as_deref_mut()
            .ok_or_else(|| "ERR cannot start Lua".to_string())
    }

    /// SCRIPT LOAD | EXISTS | FLUSH | KILL.
    pub(super) fn script(&mut self, args: Args<'_>, reply: &mut Vec<u8>) {
        let sub = args.get(1);
        let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
        let arity =
            |name: &str| format!("ERR wrong number of arguments for 'script|{name}' command");
        if is("LOAD") {
            if args.len() != 3 {
                return resp::encode_error(reply, &arity("load"));
            }
            match self.scripts().and_then(|s| s.load(args.get(2))) {
                Ok(sha) => resp::encode_bulk(reply, sha.as_bytes()),
                Err(e) => resp::encode_error(reply, &e),
            }
        } else if is("EXISTS") {
            if args.len() < 3 {
                return resp::encode_error(reply, &arity("exists"));
            }
            resp::encode_array_len(reply, args.len() - 2);
            for a in args.iter().skip(2) {
                let sha = String::from_utf8_lossy(a).to_ascii_lowercase();
                let known = self
                    .scripts
                    .as_ref()
                    .is_some_and(|s| s.cache.contains_key(&sha));
                resp::encode_int(reply, i64::from(known));
            }
        } else if is("FLUSH") {
            let mode_ok = match args.len() {
                2 => true,
                3 => {
                    args.get(2).eq_ignore_ascii_case(b"SYNC")
                        || args.get(2).eq_ignore_ascii_case(b"ASYNC")
                }
                _ => false,
            };
            if !mode_ok {
                return resp::encode_error(
                    reply,
                    "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
                );
            }
            // A fresh VM: what scripts left behind goes with the cache.
            self.scripts = None;
            reply.extend_from_slice(resp::OK);
        } else if is("KILL") {
            if args.len() != 2 {
                return resp::encode_error(reply, &arity("kill"));
            }
            resp::encode_error(reply, "NOTBUSY No scripts in execution right now.");
        } else {
            resp::encode_error(
                reply,
                &format!(
                    "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
                    String::from_utf8_lossy(sub)
                ),
            );
        }
    }

    /// EVAL / EVALSHA (`by_sha`), read-only with `ro`.
    pub(super) fn eval(
        &mut self,
        id: ConnId,
        args: Args<'_>,
        reply: &mut Vec<u8>,
        refuse: Option<&str>,
        by_sha: bool,
        ro: bool,
    ) {
        let numkeys = match resp::parse_i64(args.get(2)) {
            None => return resp::encode_error(reply, cmd::ERR_NOT_INT),
            Some(n) if n < 0 => {
                return resp::encode_error(reply, "ERR Number of keys can't be negative")
            }
            Some(n) if n as u64 > (args.len() - 3) as u64 => {
                return resp::encode_error(
                    reply,
                    "ERR Number of keys can't be greater than number of args",
                )
            }
            Some(n) => n as usize,
        };
        let limit_ms = self
            .server
            .params
            .get("lua-time-limit")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(5000);
        let scripts = match self.scripts() {
            Ok(s) => s,
            Err(e) => return resp::encode_error(reply, &e),
        };
        let sha = if by_sha {
            let sha = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
            if !scripts.cache.contains_key(&sha) {
                return resp::encode_error(reply, ERR_NOSCRIPT);
            }
            sha
        } else {
            match scripts.load(args.get(1)) {
                Ok(sha) => sha,
                Err(e) => return resp::encode_error(reply, &e),
            }
        };
        scripts.limit.store(limit_ms.max(1), Ordering::Relaxed);
        // The VM leaves `self` while it runs, so its callbacks may borrow the rest.
        let Some(scripts) = self.scripts.take() else {
            return;
        };
        let resp3 = self.resp3;
        let may_block = self.ks.may_block;
        self.resp3 = false;
        self.ks.may_block = false;
        let feed_start = self.ks.feed.len();
        let outcome = self.run_script(&scripts, &sha, id, args, numkeys, refuse, ro, resp3);
        self.resp3 = resp3;
        self.ks.may_block = may_block;
        // Two or more writes reach the log as one transaction: replay applies all or
        // none. Inside EXEC the transaction's own MULTI/EXEC wraps them already.
        if outcome.logged >= 2 && !self.in_exec {
            let mut head = Vec::with_capacity(16);
            resp::encode_command(&mut head, &[b"MULTI"]);
            self.ks.feed.splice(feed_start..feed_start, head);
            resp::encode_command(&mut self.ks.feed, &[b"EXEC"]);
        }
        reply.extend_from_slice(&outcome.reply);
        // A script that filled the VM leaves a fresh one behind.
        if !outcome.reset {
            self.scripts = Some(scripts);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_script(
        &mut self,
        scripts: &Scripts,
        sha: &str,
        id: ConnId,
        args: Args<'_>,
        numkeys: usize,
        refuse: Option<&str>,
        ro: bool,
        resp3: bool,
    ) -> Outcome {
        let mut out = Vec::new();
        let logged = Cell::new(0usize);
        let kv = RefCell::new(self);
        let lua = &scripts.lua;
        let result = lua.scope(|scope| {
            let keys = lua.create_table()?;
            let argv = lua.create_table()?;
            for (i, k) in args.iter().skip(3).take(numkeys).enumerate() {
                keys.raw_set(i + 1, lua.create_string(k)?)?;
            }
            for (i, a) in args.iter().skip(3 + numkeys).enumerate() {
                argv.raw_set(i + 1, lua.create_string(a)?)?;
            }
            scripts.globals.raw_set("KEYS", keys)?;
            scripts.globals.raw_set("ARGV", argv)?;
            let kv = &kv;
            let logged = &logged;
            let call = move |lua: &Lua, argv: MultiValue, raise: bool| -> mlua::Result<Value> {
                let mut kv = kv
                    .try_borrow_mut()
                    .map_err(|_| mlua::Error::RuntimeError("nested redis.call".into()))?;
                let v = kv.call_from_script(lua, id, argv, refuse, ro, logged)?;
                match v {
                    Value::Table(t) if raise && t.contains_key("err")? => {
                        if let Some(line) = script_line(lua) {
                            t.raw_set("source", CHUNK_NAME)?;
                            t.raw_set("line", line)?;
                        }
                        let msg = t.raw_get::<mlua::String>("err")?.to_string_lossy();
                        lua.set_named_registry_value(PENDING, t)?;
                        Err(mlua::Error::RuntimeError(msg))
                    }
                    v => Ok(v),
                }
            };
            scripts.redis.raw_set(
                "call",
                scope.create_function(move |lua, a: MultiValue| call(lua, a, true))?,
            )?;
            scripts.redis.raw_set(
                "pcall",
                scope.create_function(move |lua, a: MultiValue| call(lua, a, false))?,
            )?;
            let f = scripts
                .cache
                .get(sha)
                .cloned()
                .ok_or_else(|| mlua::Error::RuntimeError("script vanished".into()))?;
            set_started(&scripts.started, Some(Instant::now()));
            scripts.killed.store(false, Ordering::Relaxed);
            let started = scripts.started.clone();
            let limit = scripts.limit.clone();
            let killed = scripts.killed.clone();
            lua.set_hook(
                HookTriggers::new().every_nth_instruction(HOOK_EVERY),
                move |_, _| {
                    let since = started.lock().ok().and_then(|s| *s);
                    let ms = limit.load(Ordering::Relaxed);
                    match since {
                        Some(t) if t.elapsed() > Duration::from_millis(ms) => {
                            killed.store(true, Ordering::Relaxed);
                            Err(mlua::Error::RuntimeError(format!(
                                "Script killed: it ran longer than lua-time-limit ({ms} ms)"
                            )))
                        }
                        _ => Ok(VmState::Continue),
                    }
                },
            );
            let r: mlua::Result<MultiValue> = scripts.xpcall.call((f, scripts.handler.clone()));
            lua.remove_hook();
            set_started(&scripts.started, None);
            let r = r?;
            let mut it = r.into_iter();
            let ok = matches!(it.next(), Some(Value::Boolean(true)));
            let v = it.next().unwrap_or(Value::Nil);
            if ok {
                lua_to_reply(&v, &mut out, 0, resp3);
            } else {
                match v {
                    Value::Table(t) => failure_reply(&t, sha, &mut out),
                    other => {
                        let what = match other {
                            Value::String(s) => s.to_string_lossy(),
                            Value::Error(e) => root_message(&e),
                            _ => "execution failure".into(),
                        };
                        let msg = format!("ERR Error running script {sha}, {what}");
                        resp::encode_error(&mut out, &msg);
                    }
                }
            }
            scripts.redis.raw_set("call", Value::Nil)?;
            scripts.redis.raw_set("pcall", Value::Nil)?;
            lua.unset_named_registry_value(PENDING)?;
            Ok(())
        });
        let mut reset = false;
        if let Err(e) = result {
            out.clear();
            resp::encode_error(&mut out, &format!("ERR Error running script {sha}: {e}"));
            reset = matches!(e, mlua::Error::MemoryError(_));
        }
        Outcome {
            reply: out,
            logged: logged.get(),
            reset,
        }
    }

    /// One `redis.call`/`redis.pcall`: the command through the client dispatch, its
    /// reply as a Lua value (an error as `{err=...}`).
    fn call_from_script(
        &mut self,
        lua: &Lua,
        id: ConnId,
        argv: MultiValue,
        refuse: Option<&str>,
        ro: bool,
        logged: &Cell<usize>,
    ) -> mlua::Result<Value> {
        if argv.is_empty() {
            return error_table(
                lua,
                b"Please specify at least one argument for this redis lib call",
            )
            .map(Value::Table);
        }
        let mut src = Vec::new();
        let mut ranges = Vec::with_capacity(argv.len());
        for v in argv {
            let bytes = match v {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(n) => n.to_string().into_bytes(),
                Value::Number(n) => number_arg(n).into_bytes(),
                _ => {
                    return error_table(
                        lua,
                        b"Lua redis lib command arguments must be strings or integers",
                    )
                    .map(Value::Table)
                }
            };
            let start = src.len();
            src.extend_from_slice(&bytes);
            ranges.push(start..src.len());
        }
        let args = Args::new(&src, &ranges);
        let Some(spec) = cmd::lookup(args.get(0)) else {
            return error_table(lua, b"Unknown Redis command called from script").map(Value::Table);
        };
        if !spec.arity_ok(args.len()) {
            return error_table(
                lua,
                b"Wrong number of args calling Redis command from script",
            )
            .map(Value::Table);
        }
        if refused(spec.name) || (spec.flags & cmd::CONN != 0 && !allowed_conn(spec.name)) {
            return error_table(lua, b"This Redis command is not allowed from script")
                .map(Value::Table);
        }
        if ro && spec.is_write() {
            return error_table(
                lua,
                b"-ERR Write commands are not allowed from read-only scripts.",
            )
            .map(Value::Table);
        }
        let mut out = Vec::new();
        let before = self.ks.feed.len();
        if let Some(c) = self.clients.map.get_mut(&id) {
            c.last_cmd = spec.name;
        }
        self.dispatch(id, spec, args, &mut out, refuse);
        if self.ks.feed.len() > before {
            logged.set(logged.get() + 1);
        }
        match out.first() {
            Some(b'-') => {
                let end = out.len().saturating_sub(2);
                error_table(lua, &out[..end]).map(Value::Table)
            }
            Some(_) => reply_to_lua(lua, &out).map(|(v, _)| v),
            None => Ok(Value::Boolean(false)),
        }
    }
}

struct Outcome {
    reply: Vec<u8>,
    /// Commands of the script that wrote to the log.
    logged: usize,
    reset: bool,
}

#[cfg(test)]
mod tests {
    use super::number_arg;

    #[test]
    fn numbers_are_written_as_printf_percent_17g() {
        for (n, want) in [
            (0.1, "0.10000000000000001"),
            (3.5, "3.5"),
            (1e14, "100000000000000"),
            (1e17, "1e+17"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-2.0, "-2"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (1.0 / 3.0, "0.33333333333333331"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(number_arg(n), want, "{n}");
        }
    }
}
