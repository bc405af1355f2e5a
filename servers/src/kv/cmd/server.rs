//! Server commands: INFO, BGREWRITEAOF, and the parts of COMMAND and CONFIG GET that
//! clients such as `redis-cli` and `redis-benchmark` ask for.

use super::{Ctx, Spec, COMMANDS, FAST, READONLY, WRITE};
use crate::kv::glob;
use crate::proto::resp::Args;
use crate::store::aof::RewriteStatus;
use std::fmt::Write as _;

const SECTIONS: &[&str] = &["server", "clients", "persistence", "stats", "keyspace"];

pub(crate) fn info(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let all = args.len() == 1
        || args.iter().skip(1).any(|a| {
            a.eq_ignore_ascii_case(b"all")
                || a.eq_ignore_ascii_case(b"default")
                || a.eq_ignore_ascii_case(b"everything")
        });
    let wanted = |s: &str| {
        all || args
            .iter()
            .skip(1)
            .any(|a| a.eq_ignore_ascii_case(s.as_bytes()))
    };
    let mut text = String::new();
    for &section in SECTIONS.iter().filter(|s| wanted(s)) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        render_section(ctx, section, &mut text);
    }
    ctx.bulk(text.as_bytes());
}

fn render_section(ctx: &Ctx<'_>, section: &str, t: &mut String) {
    let s = ctx.server;
    let st = &s.stats;
    // `write!` into a String cannot fail.
    macro_rules! line {
        ($($arg:tt)*) => {{ let _ = write!(t, $($arg)*); t.push_str("\r\n"); }};
    }
    match section {
        "server" => {
            let up = s.started.elapsed().as_secs();
            t.push_str("# Server\r\n");
            line!("redis_version:7.0.0");
            line!("kvd_version:{}", env!("CARGO_PKG_VERSION"));
            line!("redis_mode:standalone");
            line!("os:{} {}", std::env::consts::OS, std::env::consts::ARCH);
            line!("arch_bits:{}", usize::BITS);
            line!("multiplexing_api:epoll");
            line!("process_id:{}", std::process::id());
            line!("tcp_port:{}", s.port);
            line!("uptime_in_seconds:{up}");
            line!("uptime_in_days:{}", up / 86400);
            line!("engine:{}", ctx.ks.engine_name());
        }
        "clients" => {
            t.push_str("# Clients\r\n");
            line!("connected_clients:{}", st.connected);
            line!("maxclients:{}", s.maxclients);
            line!("blocked_clients:0");
        }
        "persistence" => {
            t.push_str("# Persistence\r\n");
            line!("loading:0");
            match ctx.aof.as_deref() {
                Some(aof) => {
                    let status = |r: Option<RewriteStatus>| match r {
                        Some(RewriteStatus::Err) => "err",
                        _ => "ok",
                    };
                    line!("aof_enabled:1");
                    line!(
                        "aof_rewrite_in_progress:{}",
                        u8::from(aof.rewrite_in_progress())
                    );
                    line!("aof_rewrite_scheduled:0");
                    line!(
                        "aof_last_rewrite_time_sec:{}",
                        aof.last_rewrite_secs.map_or(-1, |v| v as i64)
                    );
                    line!(
                        "aof_last_bgrewrite_status:{}",
                        status(aof.last_rewrite_status)
                    );
                    line!(
                        "aof_last_write_status:{}",
                        if aof.write_error().is_some() {
                            "err"
                        } else {
                            "ok"
                        }
                    );
                    line!("aof_current_size:{}", aof.size());
                    line!("aof_base_size:{}", aof.base_size());
                    line!("aof_fsync:{}", aof.policy());
                }
                None => line!("aof_enabled:0"),
            }
        }
        "stats" => {
            t.push_str("# Stats\r\n");
            line!("total_connections_received:{}", st.connections_received);
            line!("total_commands_processed:{}", st.commands);
            line!("total_net_input_bytes:{}", st.net_input);
            line!("total_net_output_bytes:{}", st.net_output);
            line!("rejected_connections:{}", st.rejected);
            line!("expired_keys:{}", ctx.ks.stats.expired);
            line!("keyspace_hits:{}", ctx.ks.stats.hits);
            line!("keyspace_misses:{}", ctx.ks.stats.misses);
        }
        _ => {
            t.push_str("# Keyspace\r\n");
            if !ctx.ks.is_empty() {
                line!(
                    "db0:keys={},expires={},avg_ttl=0",
                    ctx.ks.len(),
                    ctx.ks.expires_len()
                );
            }
        }
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
    ctx.array(flags.len());
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
        ctx.array(0);
    } else if sub.eq_ignore_ascii_case(b"LIST") {
        ctx.array(COMMANDS.len());
        for c in COMMANDS {
            ctx.bulk(c.name.as_bytes());
        }
    } else if sub.eq_ignore_ascii_case(b"INFO") {
        ctx.array(args.len() - 2);
        for name in args.iter().skip(2) {
            match super::lookup(name) {
                Some(c) => command_entry(ctx, c),
                None => ctx.out.extend_from_slice(crate::proto::resp::NULL_ARRAY),
            }
        }
    } else {
        ctx.err(&format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
}

pub(crate) fn config(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"GET") {
        if args.len() < 3 {
            return ctx.err("ERR wrong number of arguments for 'config|get' command");
        }
        let s = ctx.server;
        let params: [(&str, String); 12] = [
            ("save", String::new()),
            ("appendonly", "yes".into()),
            ("appendfsync", s.fsync.to_string()),
            ("appendfilename", crate::store::aof::FILE_NAME.into()),
            ("dir", s.dir.display().to_string()),
            ("maxclients", s.maxclients.to_string()),
            ("proto-max-bulk-len", s.limits.max_bulk.to_string()),
            ("client-query-buffer-limit", s.limits.max_query.to_string()),
            ("databases", "1".into()),
            ("port", s.port.to_string()),
            ("maxmemory", "0".into()),
            ("timeout", "0".into()),
        ];
        let hits: Vec<&(&str, String)> = params
            .iter()
            .filter(|(name, _)| {
                args.iter()
                    .skip(2)
                    .any(|p| glob::matches(p, name.as_bytes(), true))
            })
            .collect();
        ctx.array(hits.len() * 2);
        for (name, value) in hits {
            ctx.bulk(name.as_bytes());
            ctx.bulk(value.as_bytes());
        }
    } else if sub.eq_ignore_ascii_case(b"SET") {
        ctx.err(&format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            String::from_utf8_lossy(args.get(2))
        ));
    } else {
        ctx.err(&format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
}
