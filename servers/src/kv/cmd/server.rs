//! Server commands: BGREWRITEAOF, COMMAND, TIME, LASTSAVE, and FUNCTION/SCRIPT
//! answered for a server without scripting. (INFO and CONFIG need the clients' state:
//! see `kv::info` and `kv::session`.)

use super::{Ctx, Spec, COMMANDS, FAST, READONLY, WRITE};
use crate::proto::resp::{self, Args};

pub(crate) fn time(ctx: &mut Ctx<'_>, _args: Args<'_>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.array(2);
    ctx.bulk(now.as_secs().to_string().as_bytes());
    ctx.bulk(now.subsec_micros().to_string().as_bytes());
}

/// kvd does not write snapshots: the last "save" is the start, when the log was
/// replayed.
pub(crate) fn lastsave(ctx: &mut Ctx<'_>, _args: Args<'_>) {
    ctx.int(ctx.server.started_unix);
}

/// kvd runs no functions or scripts: FUNCTION FLUSH and SCRIPT FLUSH have nothing to
/// drop (clients and Redis's test suite send them between runs), the listings are
/// empty.
/// kvd's persistence is its log: SAVE makes everything written so far durable
/// (write, then fsync), which is what a client calling it wants.
pub(crate) fn save(ctx: &mut Ctx<'_>, _args: Args<'_>) {
    let Some(aof) = ctx.aof.as_deref_mut() else {
        return ctx.ok();
    };
    if !ctx.ks.feed.is_empty() {
        aof.feed(&ctx.ks.feed);
        ctx.ks.feed.clear();
    }
    match aof.sync() {
        Ok(()) => ctx.ok(),
        Err(e) => ctx.err(&format!("ERR {e}")),
    }
}

pub(crate) fn function(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"FLUSH") && args.len() <= 3 {
        ctx.ok();
    } else if sub.eq_ignore_ascii_case(b"LIST") {
        ctx.array(0);
    } else {
        ctx.err(&format!(
            "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
}

pub(crate) fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: Args<'_>) {
    let Some(aof) = ctx.aof.as_deref_mut() else {
        return ctx.err("ERR the append-only file is off");
    };
    if aof.rewrite_in_progress() {
        return ctx.err("ERR Background append only file rewriting already in progress");
    }
    // The records of the commands before this one in the batch go to the old log now:
    // fed after the fork, they would follow the snapshot that already holds their
    // effect, and replay would apply them twice (an INCR counted twice).
    if !ctx.ks.feed.is_empty() {
        aof.feed(&ctx.ks.feed);
        ctx.ks.feed.clear();
    }
    let ks: &crate::kv::keyspace::Keyspace = ctx.ks;
    match aof.start_rewrite(&|w| ks.write_snapshot(w), ks.pin()) {
        Ok(()) => ctx.simple("Background append only file rewriting started"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the log rewrite");
            ctx.err(&format!(
                "ERR Can't rewrite append only file in background: {e}"
            ))
        }
    }
}

fn command_entry(ctx: &mut Ctx<'_>, c: &Spec) {
    ctx.array(6);
    ctx.bulk(c.name.as_bytes());
    ctx.int(i64::from(c.arity));
    let flags: Vec<&str> = [(WRITE, "write"), (READONLY, "readonly"), (FAST, "fast")]
        .iter()
        .filter(|(f, _)| c.flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    // A set in RESP3, as Redis's.
    ctx.set(flags.len());
    for f in flags {
        ctx.simple(f);
    }
    ctx.int(i64::from(c.first_key));
    ctx.int(i64::from(c.last_key));
    ctx.int(i64::from(c.step));
}

pub(crate) fn command(ctx: &mut Ctx<'_>, args: Args<'_>) {
    if args.len() == 1 {
        ctx.array(COMMANDS.len());
        for c in COMMANDS {
            command_entry(ctx, c);
        }
        return;
    }
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"COUNT") {
        ctx.int(COMMANDS.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"DOCS") {
        // No docs: an empty map (RESP2: an empty array).
        crate::proto::resp::encode_map_len(ctx.out, 0, ctx.resp3);
    } else if sub.eq_ignore_ascii_case(b"LIST") {
        ctx.array(COMMANDS.len());
        for c in COMMANDS {
            ctx.bulk(c.name.as_bytes());
        }
    } else if sub.eq_ignore_ascii_case(b"GETKEYS") {
        // A command and at least one argument: Redis's own arity for the subcommand.
        if args.len() < 4 {
            return ctx.err(&super::wrong_arity("command|getkeys"));
        }
        // The command to look at, as arguments of its own.
        let (mut src, mut ranges) = (Vec::new(), Vec::new());
        for a in args.iter().skip(2) {
            let at = src.len();
            src.extend_from_slice(a);
            ranges.push(at..src.len());
        }
        let inner = Args::new(&src, &ranges);
        match getkeys(inner) {
            Ok(keys) => {
                ctx.array(keys.len());
                for i in keys {
                    ctx.bulk(inner.get(i));
                }
            }
            Err(e) => ctx.err(e),
        }
    } else if sub.eq_ignore_ascii_case(b"INFO") {
        ctx.array(args.len() - 2);
        for name in args.iter().skip(2) {
            match super::lookup(name) {
                Some(c) => command_entry(ctx, c),
                None => ctx.null_array(),
            }
        }
    } else {
        ctx.err(&format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
}

/// COMMAND GETKEYS: the positions of the keys in `args` (a command and its
/// arguments) as Redis 7.0's key specs find them, or its error. The table's key
/// positions name the keys a command writes (what WATCH and notifications need);
/// Redis also names the keys a command only reads, and keys counted by a `numkeys`
/// argument, which are spelled out here.
fn getkeys(args: Args<'_>) -> Result<Vec<usize>, &'static str> {
    const INVALID: &str = "ERR Invalid arguments specified for command";
    let spec = super::lookup(args.get(0)).ok_or("ERR Invalid command specified")?;
    let n = args.len();
    // `numkeys` at `at`, the keys right after it; as Redis's `genericGetKeys`, a count
    // below 1 is refused, since the command itself would answer a syntax error.
    let counted = |at: usize| -> Result<Vec<usize>, &'static str> {
        let c = resp::parse_i64(args.get(at))
            .filter(|&c| c >= 1 && c < (n - at) as i64)
            .ok_or(INVALID)?;
        Ok((at + 1..=at + c as usize).collect())
    };
    let counted_from = |at: usize| -> Result<Vec<usize>, &'static str> {
        if at >= n {
            return Err(INVALID);
        }
        counted(at)
    };
    let fixed = |first: usize, last: i64| -> Vec<usize> {
        let last = if last < 0 { n as i64 + last } else { last };
        (first..n).take_while(|&i| i as i64 <= last).collect()
    };
    let has_keys = spec.first_key > 0
        || matches!(
            spec.name,
            "zunion"
                | "zinter"
                | "zdiff"
                | "zintercard"
                | "sintercard"
                | "lmpop"
                | "zmpop"
                | "blmpop"
                | "bzmpop"
        );
    if !has_keys {
        return Err("ERR The command has no key arguments");
    }
    if !spec.arity_ok(n) {
        return Err("ERR Invalid number of arguments specified for command");
    }
    let keys = match spec.name {
        "sort" => {
            let mut k = vec![1];
            k.extend(super::sort::store_at(args));
            k
        }
        "copy" | "smove" | "rename" | "renamenx" | "lmove" | "rpoplpush" | "blmove"
        | "brpoplpush" => fixed(1, 2),
        "sinterstore" | "sunionstore" | "sdiffstore" => fixed(1, -1),
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut k = vec![1];
            k.extend(counted_from(2)?);
            k
        }
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            counted_from(1)?
        }
        "blmpop" | "bzmpop" => counted_from(2)?,
        _ => {
            let last = i64::from(spec.last_key);
            let step = spec.step.max(1) as usize;
            fixed(spec.first_key as usize, last)
                .into_iter()
                .step_by(step)
                .collect()
        }
    };
    if keys.is_empty() {
        return Err(INVALID);
    }
    Ok(keys)
}
