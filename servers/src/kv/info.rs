//! INFO: the server described in Redis's sections and field names, so monitoring
//! tools and client libraries that read them (`redis_version`, `role`,
//! `used_memory`, `aof_enabled`, `db0:keys=`) work unchanged.
//!
//! Sections as Redis 7.0 groups them: no argument or `default` gives every section
//! but `commandstats` (and `latencystats`, which kvd does not keep); `all` and
//! `everything` add it; names pick sections case-insensitively.

use super::{cmd, Kv, REDIS_VERSION};
use crate::proto::resp::Args;
use crate::store::aof::RewriteStatus;
use std::fmt::Write as _;

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "keyspace",
];
const ALL: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "keyspace",
];

pub(super) fn render(kv: &Kv, args: Args<'_>) -> String {
    let mut wanted: Vec<&str> = Vec::new();
    let add = |names: &[&'static str], wanted: &mut Vec<&str>| {
        for n in names {
            if !wanted.contains(n) {
                wanted.push(n);
            }
        }
    };
    if args.len() == 1 {
        add(DEFAULT, &mut wanted);
    }
    for a in args.iter().skip(1) {
        if a.eq_ignore_ascii_case(b"default") {
            add(DEFAULT, &mut wanted);
        } else if a.eq_ignore_ascii_case(b"all") || a.eq_ignore_ascii_case(b"everything") {
            add(ALL, &mut wanted);
        } else if let Some(&s) = ALL.iter().find(|s| s.as_bytes().eq_ignore_ascii_case(a)) {
            add(&[s], &mut wanted);
        }
    }
    // Sections in Redis's order, whatever order they were asked in.
    let mut text = String::new();
    for &section in ALL.iter().filter(|s| wanted.contains(s)) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        section_text(kv, section, &mut text);
    }
    text
}

/// (user, system) CPU seconds of this process and of its waited-for children.
fn cpu_times() -> ((f64, f64), (f64, f64)) {
    fn get(who: i32) -> (f64, f64) {
        // SAFETY: getrusage writes into the zeroed struct we own; no other memory.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `who` is RUSAGE_SELF or RUSAGE_CHILDREN.
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return (0.0, 0.0);
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (secs(ru.ru_utime), secs(ru.ru_stime))
    }
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}

/// The resident set size in bytes, from /proc/self/statm.
pub(super) fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * 4096
}

fn section_text(kv: &Kv, section: &str, t: &mut String) {
    let s = &kv.server;
    let st = &s.stats;
    let ks = &kv.ks;
    // `write!` into a String cannot fail.
    macro_rules! line {
        ($($arg:tt)*) => {{ let _ = write!(t, $($arg)*); t.push_str("\r\n"); }};
    }
    match section {
        "server" => {
            let up = s.started.elapsed().as_secs();
            t.push_str("# Server\r\n");
            line!("redis_version:{REDIS_VERSION}");
            line!("kvd_version:{}", env!("CARGO_PKG_VERSION"));
            line!("redis_mode:standalone");
            line!("os:{} {}", std::env::consts::OS, std::env::consts::ARCH);
            line!("arch_bits:{}", usize::BITS);
            line!("multiplexing_api:epoll");
            line!("process_id:{}", std::process::id());
            line!("tcp_port:{}", s.port);
            line!("uptime_in_seconds:{up}");
            line!("uptime_in_days:{}", up / 86400);
            line!("hz:10");
            line!("executable:kvd");
            line!("engine:{}", ks.engine_name());
        }
        "clients" => {
            let pubsub = kv
                .clients
                .map
                .values()
                .filter(|c| c.subscriptions() > 0)
                .count();
            t.push_str("# Clients\r\n");
            line!("connected_clients:{}", st.connected);
            line!("maxclients:{}", s.maxclients);
            line!("blocked_clients:{}", kv.blocked.len());
            line!("pubsub_clients:{pubsub}");
            line!(
                "watching_clients:{}",
                kv.clients
                    .map
                    .values()
                    .filter(|c| !c.watched.is_empty())
                    .count()
            );
            line!("total_watched_keys:{}", kv.clients.watches.len());
        }
        "memory" => {
            let rss = rss_bytes();
            t.push_str("# Memory\r\n");
            // kvd does not count its allocations: the resident set stands for them.
            line!("used_memory:{rss}");
            line!("used_memory_human:{:.2}M", rss as f64 / (1024.0 * 1024.0));
            line!("used_memory_rss:{rss}");
            line!("used_memory_peak:{rss}");
            line!("maxmemory:{}", s.params.get("maxmemory").unwrap_or("0"));
            line!(
                "maxmemory_policy:{}",
                s.params.get("maxmemory-policy").unwrap_or("noeviction")
            );
            line!("mem_allocator:libc");
        }
        "persistence" => {
            t.push_str("# Persistence\r\n");
            line!("loading:0");
            line!("async_loading:0");
            line!("rdb_bgsave_in_progress:0");
            line!("rdb_last_save_time:{}", s.started_unix);
            match kv.aof.as_ref() {
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
            line!("expired_keys:{}", ks.stats.expired);
            line!("evicted_keys:0");
            line!("keyspace_hits:{}", ks.stats.hits);
            line!("keyspace_misses:{}", ks.stats.misses);
            line!("pubsub_channels:{}", kv.clients.channels.len());
            line!("pubsub_patterns:{}", kv.clients.patterns.len());
            line!(
                "total_error_replies:{}",
                kv.errorstats.values().sum::<u64>()
            );
        }
        "replication" => {
            t.push_str("# Replication\r\n");
            line!("role:master");
            line!("connected_slaves:0");
            line!("master_failover_state:no-failover");
            line!("master_replid:0000000000000000000000000000000000000000");
            line!("master_repl_offset:0");
            line!("repl_backlog_active:0");
        }
        "cpu" => {
            let ((u, s), (cu, cs)) = cpu_times();
            t.push_str("# CPU\r\n");
            line!("used_cpu_sys:{s:.6}");
            line!("used_cpu_user:{u:.6}");
            line!("used_cpu_sys_children:{cs:.6}");
            line!("used_cpu_user_children:{cu:.6}");
        }
        "modules" => t.push_str("# Modules\r\n"),
        "commandstats" => {
            t.push_str("# Commandstats\r\n");
            for (spec, st) in cmd::COMMANDS.iter().zip(&kv.cmdstats) {
                if st.calls == 0 && st.rejected == 0 {
                    continue;
                }
                line!(
                    "cmdstat_{}:calls={},usec=0,usec_per_call=0.00,rejected_calls={},failed_calls={}",
                    spec.name,
                    st.calls,
                    st.rejected,
                    st.failed
                );
            }
        }
        "errorstats" => {
            t.push_str("# Errorstats\r\n");
            for (code, n) in &kv.errorstats {
                line!("errorstat_{code}:count={n}");
            }
        }
        _ => {
            t.push_str("# Keyspace\r\n");
            if !ks.is_empty() {
                line!(
                    "db0:keys={},expires={},avg_ttl=0",
                    ks.len(),
                    ks.expires_len()
                );
            }
        }
    }
}
