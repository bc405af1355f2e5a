//! `[[upstream]]` pools and the `[[location]]` / `[[site.location]]` prefixes that
//! send requests to them, read and checked like the rest of the file: every
//! mistake names its line and key.

use super::{int_in, ConfigError, Source};
use crate::upstream::proxy::Routes;
use crate::upstream::{Balance, HealthCheck, Location, Server, Upstream};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use toml::Spanned;

/// Pools per file, servers per pool: each loop keeps a balancer and an idle
/// connection pool per server.
const MAX_UPSTREAMS: usize = 256;
const MAX_SERVERS: usize = 256;
const MAX_WEIGHT: u64 = 1000;
const MAX_TRIES: u64 = 16;
const MAX_KEEPALIVE: u64 = 1024;
const MAX_FAILS: u64 = 1000;
/// Checks in a row that change a server's health.
const MAX_CHECKS: u64 = 100;
/// Upstream timeouts: 1 ms ..= 1 hour.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// One `[[upstream]]` block.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    name: Spanned<String>,
    servers: Option<Spanned<Vec<Spanned<RawServer>>>>,
    balance: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<RawDuration>>,
    read_timeout: Option<Spanned<RawDuration>>,
    max_fails: Option<Spanned<i64>>,
    fail_window: Option<Spanned<RawDuration>>,
    cooldown: Option<Spanned<RawDuration>>,
    keepalive: Option<Spanned<i64>>,
    tries: Option<Spanned<i64>>,
    health_check: Option<Spanned<RawHealth>>,
}

/// `health_check = { path = "/health", interval = "2s", timeout = "1s", fails = 2, passes = 2 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: Option<Spanned<String>>,
    interval: Option<Spanned<RawDuration>>,
    timeout: Option<Spanned<RawDuration>>,
    fails: Option<Spanned<i64>>,
    passes: Option<Spanned<i64>>,
}

/// One server: `"IP:PORT"` or `{ addr = "IP:PORT", weight = 2, backup = true }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawServer {
    Addr(String),
    Table(RawServerTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerTable {
    addr: String,
    weight: Option<i64>,
    #[serde(default)]
    backup: bool,
}

/// What toml says of a server entry that is neither form.
pub(super) const BAD_SERVER_ENTRY: &str = "untagged enum RawServer";
pub(super) const SERVER_FORMS: &str =
    "each server is \"IP:PORT\" or { addr = \"IP:PORT\", weight = N, backup = true }";

/// Seconds as an integer, or a string with a unit: `"500ms"`, `"2s"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Secs(i64),
    Text(String),
}

/// One `[[location]]` or `[[site.location]]` block.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocation {
    prefix: Spanned<String>,
    upstream: Spanned<String>,
}

fn duration(src: &Source, v: &Spanned<RawDuration>, key: &str) -> Result<Duration, ConfigError> {
    let d = match v.get_ref() {
        RawDuration::Secs(n) if *n >= 0 => Some(Duration::from_secs(*n as u64)),
        RawDuration::Secs(_) => None,
        RawDuration::Text(t) => {
            let t = t.trim();
            let (num, unit) = match t.strip_suffix("ms") {
                Some(n) => (n, 1),
                None => (t.strip_suffix('s').unwrap_or(t), 1000),
            };
            num.trim()
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(unit))
                .map(Duration::from_millis)
        }
    };
    match d {
        Some(d) if !d.is_zero() && d <= MAX_TIMEOUT => Ok(d),
        _ => src.err(
            v.span(),
            key,
            "must be seconds (1 to 3600) or a string like \"500ms\" or \"2s\"",
        ),
    }
}

impl super::Config {
    /// Where the reverse proxy sends requests: each site's locations, in the
    /// order the sites are served (the top level's alone without `[[site]]`).
    pub fn routes(&self) -> Routes {
        let locations = if self.sites.is_empty() {
            vec![self.locations.clone()]
        } else {
            self.sites.iter().map(|s| s.locations.clone()).collect()
        };
        Routes {
            upstreams: self.upstreams.clone(),
            locations,
            keepalive_timeout: self.timeouts.idle,
        }
    }
}

/// The `[[upstream]]` blocks, in file order.
pub(super) fn parse_upstreams(
    src: &Source,
    raw: &Option<Vec<Spanned<RawUpstream>>>,
) -> Result<Vec<Upstream>, ConfigError> {
    let mut out: Vec<Upstream> = Vec::new();
    for block in raw.iter().flatten() {
        if out.len() == MAX_UPSTREAMS {
            return src.err(
                block.span(),
                "upstream",
                format!("more than {MAX_UPSTREAMS} upstreams"),
            );
        }
        let r = block.get_ref();
        let name = r.name.get_ref();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return src.err(
                r.name.span(),
                "upstream.name",
                format!("{name:?} must be letters, digits, '-', '_' or '.'"),
            );
        }
        if name.len() > crate::upstream::shared::MAX_NAME {
            return src.err(
                r.name.span(),
                "upstream.name",
                format!(
                    "{name:?} is longer than {} bytes",
                    crate::upstream::shared::MAX_NAME
                ),
            );
        }
        if out.iter().any(|u| &u.name == name) {
            return src.err(
                r.name.span(),
                "upstream.name",
                format!("{name:?} names another upstream"),
            );
        }
        let Some(list) = &r.servers else {
            return src.err(
                block.span(),
                "upstream.servers",
                format!("upstream {name:?} has no servers"),
            );
        };
        if list.get_ref().is_empty() {
            return src.err(
                list.span(),
                "upstream.servers",
                format!("upstream {name:?} has no servers"),
            );
        }
        if list.get_ref().len() > MAX_SERVERS {
            return src.err(
                list.span(),
                "upstream.servers",
                format!("more than {MAX_SERVERS} servers"),
            );
        }
        let mut servers: Vec<Server> = Vec::new();
        for s in list.get_ref() {
            let (addr, weight, backup) = match s.get_ref() {
                RawServer::Addr(a) => (a.as_str(), None, false),
                RawServer::Table(t) => (t.addr.as_str(), t.weight, t.backup),
            };
            let addr: SocketAddr = match addr.parse() {
                Ok(a) => a,
                Err(_) => {
                    return src.err(
                        s.span(),
                        "upstream.servers",
                        format!("{addr:?} is not an IP:PORT address (like \"127.0.0.1:9001\" or \"[::1]:9001\")"),
                    )
                }
            };
            if addr.port() == 0 {
                return src.err(
                    s.span(),
                    "upstream.servers",
                    format!("{addr}: port 0 is not a server"),
                );
            }
            if servers.iter().any(|o| o.addr == addr) {
                return src.err(
                    s.span(),
                    "upstream.servers",
                    format!("{addr} is listed twice"),
                );
            }
            let weight = match weight {
                None => 1,
                Some(w) if (1..=MAX_WEIGHT as i64).contains(&w) => w as u32,
                Some(w) => {
                    return src.err(
                        s.span(),
                        "upstream.servers.weight",
                        format!("{w} is out of range 1..={MAX_WEIGHT}"),
                    )
                }
            };
            servers.push(Server {
                addr,
                weight,
                backup,
            });
        }
        if servers.iter().all(|s| s.backup) {
            return src.err(
                list.span(),
                "upstream.servers",
                format!("upstream {name:?} has only backup servers"),
            );
        }
        let mut up = Upstream::new(name.clone(), servers);
        if let Some(b) = &r.balance {
            up.balance = match Balance::parse(b.get_ref()) {
                Some(b) => b,
                None => {
                    return src.err(
                        b.span(),
                        "upstream.balance",
                        format!(
                        "{:?} is not one of \"round_robin\", \"least_conn\", \"hash_client_ip\"",
                        b.get_ref()
                    ),
                    )
                }
            };
        }
        if let Some(v) = &r.connect_timeout {
            up.connect_timeout = duration(src, v, "upstream.connect_timeout")?;
        }
        if let Some(v) = &r.read_timeout {
            up.read_timeout = duration(src, v, "upstream.read_timeout")?;
        }
        if let Some(v) = &r.fail_window {
            up.fail_window = duration(src, v, "upstream.fail_window")?;
        }
        if let Some(v) = &r.cooldown {
            up.cooldown = duration(src, v, "upstream.cooldown")?;
        }
        if let Some(v) = &r.max_fails {
            up.max_fails = int_in(src, v, "upstream.max_fails", 1, MAX_FAILS)? as u32;
        }
        if let Some(v) = &r.keepalive {
            up.keepalive = int_in(src, v, "upstream.keepalive", 0, MAX_KEEPALIVE)? as usize;
        }
        if let Some(v) = &r.tries {
            up.tries = int_in(src, v, "upstream.tries", 1, MAX_TRIES)? as usize;
        }
        if let Some(h) = &r.health_check {
            up.health = Some(health_check(src, h)?);
        }
        out.push(up);
    }
    Ok(out)
}

/// An upstream's `health_check` table.
fn health_check(src: &Source, raw: &Spanned<RawHealth>) -> Result<HealthCheck, ConfigError> {
    let h = raw.get_ref();
    let Some(path) = &h.path else {
        return src.err(
            raw.span(),
            "upstream.health_check.path",
            "is missing (the path to ask, like \"/health\")",
        );
    };
    let p = path.get_ref();
    if !p.starts_with('/') || !p.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return src.err(
            path.span(),
            "upstream.health_check.path",
            format!("{p:?} must be an absolute path like \"/health\""),
        );
    }
    let mut check = HealthCheck::new(p.clone());
    if let Some(v) = &h.interval {
        check.interval = duration(src, v, "upstream.health_check.interval")?;
    }
    if let Some(v) = &h.timeout {
        check.timeout = duration(src, v, "upstream.health_check.timeout")?;
    }
    if let Some(v) = &h.fails {
        check.fails = int_in(src, v, "upstream.health_check.fails", 1, MAX_CHECKS)? as u32;
    }
    if let Some(v) = &h.passes {
        check.passes = int_in(src, v, "upstream.health_check.passes", 1, MAX_CHECKS)? as u32;
    }
    Ok(check)
}

/// `[[location]]` blocks (`key` names them in errors) resolved against `upstreams`.
pub(super) fn parse_locations(
    src: &Source,
    key: &str,
    raw: &Option<Vec<Spanned<RawLocation>>>,
    upstreams: &[Upstream],
) -> Result<Vec<Location>, ConfigError> {
    let mut out: Vec<Location> = Vec::new();
    for block in raw.iter().flatten() {
        let r = block.get_ref();
        let prefix = r.prefix.get_ref();
        if !super::url_path(prefix) {
            return src.err(
                r.prefix.span(),
                &format!("{key}.prefix"),
                format!("{prefix:?} must be an absolute path like \"/api/\""),
            );
        }
        if out.iter().any(|l| &l.prefix == prefix) {
            return src.err(
                r.prefix.span(),
                &format!("{key}.prefix"),
                format!("{prefix:?} is listed twice"),
            );
        }
        let name = r.upstream.get_ref();
        let Some(upstream) = upstreams.iter().position(|u| &u.name == name) else {
            let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
            return src.err(
                r.upstream.span(),
                &format!("{key}.upstream"),
                if known.is_empty() {
                    format!("no [[upstream]] is named {name:?} (none is defined)")
                } else {
                    format!(
                        "no [[upstream]] is named {name:?} (defined: {})",
                        known.join(", ")
                    )
                },
            );
        };
        out.push(Location {
            prefix: prefix.clone(),
            upstream,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, parse};
    use crate::upstream::{Balance, Location};
    use std::time::Duration;

    const POOL: &str = "listen = [\"127.0.0.1:1\"]\n\
        [[upstream]]\nname = \"app\"\n\
        servers = [\"127.0.0.1:9001\", { addr = \"[::1]:9002\", weight = 2, backup = true }]\n\
        balance = \"least_conn\"\nconnect_timeout = \"250ms\"\nread_timeout = 2\n\
        max_fails = 2\nfail_window = \"5s\"\ncooldown = 7\nkeepalive = 4\ntries = 2\n\
        health_check = { path = \"/health?deep=1\", interval = \"2s\", timeout = \"500ms\", fails = 3 }\n\
        [[upstream]]\nname = \"static\"\nservers = [\"127.0.0.1:9003\"]\n";

    #[test]
    fn pools_and_locations_parse() {
        let text = format!(
            "{POOL}[[location]]\nprefix = \"/api/\"\nupstream = \"app\"\n\
             [[site]]\nserver_names = [\"a.test\"]\nroot = \"src\"\n\
             [[site.location]]\nprefix = \"/api/\"\nupstream = \"static\"\n\
             [[site.location]]\nprefix = \"/s/\"\nupstream = \"static\"\n\
             [[site]]\nserver_names = [\"b.test\"]\nroot = \"src\"\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.upstreams.len(), 2);
        let app = &c.upstreams[0];
        assert_eq!(app.name, "app");
        assert_eq!(app.balance, Balance::LeastConn);
        assert_eq!(app.servers[0].addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!((app.servers[0].weight, app.servers[0].backup), (1, false));
        assert_eq!(app.servers[1].addr, "[::1]:9002".parse().unwrap());
        assert_eq!((app.servers[1].weight, app.servers[1].backup), (2, true));
        assert_eq!(app.connect_timeout, Duration::from_millis(250));
        assert_eq!(app.read_timeout, Duration::from_secs(2));
        assert_eq!(app.fail_window, Duration::from_secs(5));
        assert_eq!(app.cooldown, Duration::from_secs(7));
        assert_eq!((app.max_fails, app.keepalive, app.tries), (2, 4, 2));
        let h = app.health.as_ref().unwrap();
        assert_eq!(h.path, "/health?deep=1");
        assert_eq!(h.interval, Duration::from_secs(2));
        assert_eq!(h.timeout, Duration::from_millis(500));
        assert_eq!((h.fails, h.passes), (3, 2));
        assert_eq!(c.upstreams[1].health, None);
        assert_eq!(c.upstreams[1].balance, Balance::RoundRobin);
        let loc = |prefix: &str, upstream| Location {
            prefix: prefix.into(),
            upstream,
        };
        assert_eq!(c.locations, vec![loc("/api/", 0)]);
        // A site's own prefix replaces the inherited one; the others are inherited.
        assert_eq!(c.sites[0].locations, vec![loc("/api/", 1), loc("/s/", 1)]);
        assert_eq!(c.sites[1].locations, vec![loc("/api/", 0)]);
    }

    #[test]
    fn mistakes_name_their_line() {
        let base = "listen = [\"127.0.0.1:1\"]\n";
        let cases: &[(&str, usize, &str, &str)] = &[
            ("[[location]]\nprefix = \"/api/\"\nupstream = \"nope\"\n", 4, "location.upstream", "no [[upstream]] is named \"nope\" (none"),
            ("[[upstream]]\nname = \"app\"\nservers = []\n", 4, "upstream.servers", "has no servers"),
            ("[[upstream]]\nname = \"app\"\n", 2, "upstream.servers", "has no servers"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"localhost:80\"]\n", 4, "upstream.servers", "not an IP:PORT"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1\"]\n", 4, "upstream.servers", "not an IP:PORT"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:0\"]\n", 4, "upstream.servers", "port 0"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n", 4, "upstream.servers", "twice"),
            ("[[upstream]]\nname = \"app\"\nservers = [{ addr = \"127.0.0.1:1\", weight = 0 }]\n", 4, "upstream.servers.weight", "out of range"),
            ("[[upstream]]\nname = \"app\"\nservers = [{ addr = \"127.0.0.1:1\", backup = true }]\n", 4, "upstream.servers", "only backup"),
            ("[[upstream]]\nname = \"app\"\nservers = [{ adr = \"127.0.0.1:1\" }]\n", 4, "servers", "each server is"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nbalance = \"random\"\n", 5, "upstream.balance", "not one of"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nread_timeout = \"1h\"\n", 5, "upstream.read_timeout", "seconds"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nconnect_timeout = 0\n", 5, "upstream.connect_timeout", "seconds"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:2\"]\n", 6, "upstream.name", "another upstream"),
            ("[[upstream]]\nname = \"a b\"\nservers = [\"127.0.0.1:1\"]\n", 3, "upstream.name", "letters"),
            ("[[upstream]]\nname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\nservers = [\"127.0.0.1:1\"]\n", 3, "upstream.name", "longer than 64"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nhealth_check = { interval = 2 }\n", 5, "upstream.health_check.path", "is missing"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nhealth_check = { path = \"health\" }\n", 5, "upstream.health_check.path", "absolute path"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nhealth_check = { path = \"/h\", passes = 0 }\n", 5, "upstream.health_check.passes", "out of range"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nhealth_check = { path = \"/h\", timeout = \"2h\" }\n", 5, "upstream.health_check.timeout", "seconds"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n[[location]]\nprefix = \"api\"\nupstream = \"app\"\n", 6, "location.prefix", "absolute path"),
            ("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n[[site]]\nserver_names = [\"a.test\"]\nroot = \"src\"\n[[site.location]]\nprefix = \"/x/\"\nupstream = \"ap\"\n", 10, "site.location.upstream", "(defined: app)"),
        ];
        for (text, line, key, msg) in cases {
            let (l, k, m) = err(&format!("{base}{text}"));
            assert_eq!((l, k.as_str()), (*line, *key), "{text}: {m}");
            assert!(m.contains(msg), "{text}: {m:?} lacks {msg:?}");
        }
    }
}
