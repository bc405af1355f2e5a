//! Upstream pools for the capstone's reverse proxy: the servers a named upstream
//! has, which one a request goes to, and which ones are healthy.
//!
//! The one idea: a pool's state is per event loop and holds no I/O. A
//! [`Balancer`] is told when a request starts and ends on a server and when a
//! server failed (with the time it happened), and answers which server to try
//! next. Each loop owns its balancers, as it owns its sockets, so choosing a
//! server takes no lock; the price is that each loop learns a server's failures
//! by itself, as each nginx worker does.
//!
//! Choice, as in nginx's `ngx_http_upstream_round_robin.c`: the primary servers
//! are tried first and the `backup` ones only when no primary is left (down or
//! already tried for this request). Weights are spread with the smooth weighted
//! round robin (weights 5, 1, 1 give a a b a c a a, not a a a a a b c);
//! `least_conn` takes the fewest requests in flight per unit of weight, ties
//! broken by the same round robin; `hash_client_ip` maps the client's address
//! onto the weighted list of primaries, so a client keeps its server while that
//! server is up. Passive health: `max_fails` failures within `fail_window` take a
//! server out for `cooldown`. When every server of a pool is out, all are tried
//! again rather than failing every request until a cooldown ends.
//!
//! Active health (opt-in per pool, [`HealthCheck`]): each loop asks every server
//! for a path at an interval; `fails` failed checks in a row mark it down, and it
//! is skipped (as a server in a cooldown is) until `passes` checks in a row pass.
//! The counters every loop shares (the status page's upstream table) are in
//! [`shared`]; a balancer given its rows ([`Balancer::share`]) keeps them current.

pub mod proxy;
pub mod shared;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How a pool spreads requests over its servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConn,
    HashClientIp,
}

impl Balance {
    pub fn parse(s: &str) -> Option<Balance> {
        match s {
            "round_robin" => Some(Balance::RoundRobin),
            "least_conn" => Some(Balance::LeastConn),
            "hash_client_ip" => Some(Balance::HashClientIp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::HashClientIp => "hash_client_ip",
        }
    }
}

/// One server of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddr,
    /// At least 1.
    pub weight: u32,
    /// Used only when no primary server is left.
    pub backup: bool,
}

/// A named pool of servers and how requests reach them (`[[upstream]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    /// Never empty, and at least one is not a backup.
    pub servers: Vec<Server>,
    pub balance: Balance,
    /// Connecting to a server may take this long before the next is tried.
    pub connect_timeout: Duration,
    /// A server silent this long while a response is awaited or read has failed.
    pub read_timeout: Duration,
    /// Failures within `fail_window` that take a server out.
    pub max_fails: u32,
    pub fail_window: Duration,
    /// How long a server stays out.
    pub cooldown: Duration,
    /// Idle keep-alive connections each loop keeps per server.
    pub keepalive: usize,
    /// Servers one idempotent request may be tried on.
    pub tries: usize,
    /// The active health check, if the pool has one.
    pub health: Option<HealthCheck>,
}

/// An active health check (`health_check = { path = "/health", ... }`): a `GET`
/// of `path` answered with a 2xx or 3xx status within `timeout` passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Starts with `/`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Failed checks in a row that mark a server down.
    pub fails: u32,
    /// Passed checks in a row that bring it back.
    pub passes: u32,
}

impl HealthCheck {
    pub fn new(path: impl Into<String>) -> HealthCheck {
        HealthCheck {
            path: path.into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fails: 2,
            passes: 2,
        }
    }
}

impl Upstream {
    /// A pool of `servers` with the defaults for everything else.
    pub fn new(name: impl Into<String>, servers: Vec<Server>) -> Upstream {
        Upstream {
            name: name.into(),
            servers,
            balance: Balance::RoundRobin,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            max_fails: 3,
            fail_window: Duration::from_secs(10),
            cooldown: Duration::from_secs(10),
            keepalive: 32,
            tries: 3,
            health: None,
        }
    }
}

/// A path prefix whose requests go to an upstream (`[[location]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Starts with `/`.
    pub prefix: String,
    /// Index into the configuration's upstreams.
    pub upstream: usize,
}

/// The location a request path falls under: the longest matching prefix.
pub fn location_for<'a>(locations: &'a [Location], path: &str) -> Option<&'a Location> {
    locations
        .iter()
        .filter(|l| path.starts_with(l.prefix.as_str()))
        .max_by_key(|l| l.prefix.len())
}

/// Whether a server is taking requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Out until the cooldown ends.
    Down,
}

#[derive(Debug)]
struct Slot {
    weight: i64,
    backup: bool,
    /// The smooth round robin's running weight.
    current: i64,
    /// Requests in flight on this server from this loop.
    active: u32,
    fails: u32,
    window_start: Option<Instant>,
    down_until: Option<Instant>,
    /// The active check marked it down.
    checked_down: bool,
    /// Checks in a row that failed / passed.
    check_fails: u32,
    check_passes: u32,
    /// Its row of the shared counters, if it has one.
    shared: Option<&'static shared::ServerStat>,
}

impl Slot {
    fn up(&self, now: Instant) -> bool {
        !self.checked_down && self.down_until.map_or(true, |t| now >= t)
    }
}

/// One loop's view of one pool: which server next, and which are out.
#[derive(Debug)]
pub struct Balancer {
    slots: Vec<Slot>,
    balance: Balance,
    max_fails: u32,
    fail_window: Duration,
    cooldown: Duration,
    /// The active check's thresholds (1 without one).
    check_fails: u32,
    check_passes: u32,
}

impl Balancer {
    pub fn new(up: &Upstream) -> Balancer {
        Balancer {
            slots: up
                .servers
                .iter()
                .map(|s| Slot {
                    weight: i64::from(s.weight.max(1)),
                    backup: s.backup,
                    current: 0,
                    active: 0,
                    fails: 0,
                    window_start: None,
                    down_until: None,
                    checked_down: false,
                    check_fails: 0,
                    check_passes: 0,
                    shared: None,
                })
                .collect(),
            balance: up.balance,
            max_fails: up.max_fails.max(1),
            fail_window: up.fail_window,
            cooldown: up.cooldown,
            check_fails: up.health.as_ref().map_or(1, |h| h.fails.max(1)),
            check_passes: up.health.as_ref().map_or(1, |h| h.passes.max(1)),
        }
    }

    /// Keeps the shared counters of server `i` in `row` from now on.
    pub fn share(&mut self, i: usize, row: &'static shared::ServerStat) {
        if let Some(s) = self.slots.get_mut(i) {
            s.shared = Some(row);
        }
    }

    /// An active check of server `i` passed (`ok`) or failed; returns the new
    /// health when this check changed it.
    pub fn checked(&mut self, i: usize, ok: bool) -> Option<Health> {
        let (need_fails, need_passes) = (self.check_fails, self.check_passes);
        let s = self.slots.get_mut(i)?;
        if ok {
            s.check_fails = 0;
            s.check_passes = s.check_passes.saturating_add(1);
            if s.checked_down && s.check_passes >= need_passes {
                s.checked_down = false;
                if let Some(r) = s.shared {
                    r.check_down(false);
                }
                return Some(Health::Up);
            }
        } else {
            s.check_passes = 0;
            s.check_fails = s.check_fails.saturating_add(1);
            if !s.checked_down && s.check_fails >= need_fails {
                s.checked_down = true;
                if let Some(r) = s.shared {
                    r.check_down(true);
                }
                return Some(Health::Down);
            }
        }
        None
    }

    /// A response from server `i` arrived whole, `took` after its request was sent.
    pub fn responded(&self, i: usize, took: Duration) {
        if let Some(r) = self.slots.get(i).and_then(|s| s.shared) {
            r.responded(took);
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The server to try next for a request from `client`, skipping `tried`;
    /// `None` when none is left.
    pub fn pick(&mut self, client: IpAddr, tried: &[usize], now: Instant) -> Option<usize> {
        let all_down = self.slots.iter().all(|s| !s.up(now));
        for backup in [false, true] {
            let candidates: Vec<usize> = (0..self.slots.len())
                .filter(|&i| {
                    let s = &self.slots[i];
                    s.backup == backup && !tried.contains(&i) && (all_down || s.up(now))
                })
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let chosen = match self.balance {
                Balance::RoundRobin => self.smooth(&candidates),
                Balance::LeastConn => {
                    // Fewest in flight per unit of weight: a/wa < b/wb as a*wb < b*wa.
                    let load = |i: usize| (i64::from(self.slots[i].active), self.slots[i].weight);
                    let best = candidates
                        .iter()
                        .map(|&i| load(i))
                        .min_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)))?;
                    let tied: Vec<usize> = candidates
                        .iter()
                        .copied()
                        .filter(|&i| {
                            let l = load(i);
                            l.0 * best.1 == best.0 * l.1
                        })
                        .collect();
                    self.smooth(&tied)
                }
                Balance::HashClientIp => self.hashed(client, backup, &candidates),
            };
            return Some(chosen);
        }
        None
    }

    /// The smooth weighted round robin over `candidates` (not empty).
    fn smooth(&mut self, candidates: &[usize]) -> usize {
        let mut total = 0;
        let mut best = candidates[0];
        for &i in candidates {
            let s = &mut self.slots[i];
            s.current += s.weight;
            total += s.weight;
            if s.current > self.slots[best].current {
                best = i;
            }
        }
        self.slots[best].current -= total;
        best
    }

    /// The client's place on the weighted list of this tier's servers (up or not,
    /// so it does not move when another server goes down); when that server is not
    /// a candidate, the next places in turn.
    fn hashed(&mut self, client: IpAddr, backup: bool, candidates: &[usize]) -> usize {
        let tier: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].backup == backup)
            .collect();
        let total: u64 = tier.iter().map(|&i| self.slots[i].weight as u64).sum();
        let mut h = fnv1a(client);
        for _ in 0..tier.len().max(1) * 4 {
            let mut at = h % total.max(1);
            for &i in &tier {
                let w = self.slots[i].weight as u64;
                if at < w {
                    if candidates.contains(&i) {
                        return i;
                    }
                    break;
                }
                at -= w;
            }
            h = h.wrapping_mul(0x100_0000_01b3).wrapping_add(1);
        }
        self.smooth(candidates)
    }

    /// A request went to server `i`.
    pub fn started(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i) {
            s.active = s.active.saturating_add(1);
            if let Some(r) = s.shared {
                r.started();
            }
        }
    }

    /// A request on server `i` ended (well or not; a failure is also [`Balancer::failed`]).
    pub fn finished(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i) {
            s.active = s.active.saturating_sub(1);
            if let Some(r) = s.shared {
                r.finished();
            }
        }
    }

    /// Server `i` failed (refused, reset, timed out); returns true when this
    /// failure took it out.
    pub fn failed(&mut self, i: usize, now: Instant) -> bool {
        let (max_fails, window, cooldown) = (self.max_fails, self.fail_window, self.cooldown);
        let Some(s) = self.slots.get_mut(i) else {
            return false;
        };
        if let Some(r) = s.shared {
            r.failed();
        }
        match s.window_start {
            Some(t) if now.saturating_duration_since(t) <= window => s.fails += 1,
            _ => {
                s.window_start = Some(now);
                s.fails = 1;
            }
        }
        if s.fails >= max_fails {
            s.fails = 0;
            s.window_start = None;
            s.down_until = Some(now + cooldown);
            if let Some(r) = s.shared {
                r.cooled(cooldown);
            }
            return true;
        }
        false
    }

    pub fn health(&self, i: usize, now: Instant) -> Health {
        match self.slots.get(i) {
            Some(s) if !s.up(now) => Health::Down,
            _ => Health::Up,
        }
    }

    /// Requests in flight on server `i` from this loop.
    pub fn active(&self, i: usize) -> u32 {
        self.slots.get(i).map_or(0, |s| s.active)
    }
}

impl Drop for Balancer {
    /// A loop that ends takes back what it put in the shared gauges.
    fn drop(&mut self) {
        for s in &self.slots {
            if let Some(r) = s.shared {
                if s.checked_down {
                    r.check_down(false);
                }
                for _ in 0..s.active {
                    r.finished();
                }
            }
        }
    }
}

/// FNV-1a over the address's bytes: cheap, stable across runs and processes.
fn fnv1a(ip: IpAddr) -> u64 {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(specs: &[(u32, bool)], balance: Balance) -> Upstream {
        let servers = specs
            .iter()
            .enumerate()
            .map(|(i, &(weight, backup))| Server {
                addr: SocketAddr::from(([127, 0, 0, 1], 9001 + i as u16)),
                weight,
                backup,
            })
            .collect();
        Upstream {
            balance,
            ..Upstream::new("app", servers)
        }
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    fn picks(b: &mut Balancer, n: usize, now: Instant) -> Vec<usize> {
        (0..n).map(|_| b.pick(CLIENT, &[], now).unwrap()).collect()
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves() {
        let mut b = Balancer::new(&pool(
            &[(5, false), (1, false), (1, false)],
            Balance::RoundRobin,
        ));
        let now = Instant::now();
        assert_eq!(picks(&mut b, 7, now), vec![0, 0, 1, 0, 2, 0, 0]);
        let mut even = Balancer::new(&pool(&[(1, false); 3], Balance::RoundRobin));
        assert_eq!(picks(&mut even, 6, now), vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn backups_only_when_no_primary_is_left() {
        let up = pool(&[(1, false), (1, false), (1, true)], Balance::RoundRobin);
        let mut b = Balancer::new(&up);
        let now = Instant::now();
        assert!(picks(&mut b, 10, now).iter().all(|&i| i < 2));
        assert_eq!(b.pick(CLIENT, &[0, 1], now), Some(2));
        assert_eq!(b.pick(CLIENT, &[0, 1, 2], now), None);
        for _ in 0..3 {
            b.failed(0, now);
            b.failed(1, now);
        }
        assert_eq!(b.health(0, now), Health::Down);
        assert_eq!(picks(&mut b, 3, now), vec![2, 2, 2]);
    }

    #[test]
    fn least_conn_takes_the_least_loaded_per_weight() {
        let mut b = Balancer::new(&pool(&[(1, false), (2, false)], Balance::LeastConn));
        let now = Instant::now();
        let mut got = Vec::new();
        for _ in 0..3 {
            let i = b.pick(CLIENT, &[], now).unwrap();
            b.started(i);
            got.push(i);
        }
        // 0/1 vs 0/2 tie (smooth RR: 1 first, the heavier), then 0/1 < 1/2, then 1/1 vs 1/2.
        assert_eq!(got, vec![1, 0, 1]);
        b.finished(0);
        assert_eq!(b.pick(CLIENT, &[], now), Some(0));
        assert_eq!(b.active(1), 2);
    }

    #[test]
    fn hash_keeps_a_client_on_its_server_and_moves_it_only_when_down() {
        let mut b = Balancer::new(&pool(&[(1, false); 4], Balance::HashClientIp));
        let now = Instant::now();
        let first = b.pick(CLIENT, &[], now).unwrap();
        assert!(picks(&mut b, 20, now).iter().all(|&i| i == first));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
        let spread: std::collections::HashSet<usize> = (0..64u8)
            .map(|k| {
                let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, k, 1));
                b.pick(ip, &[], now).unwrap()
            })
            .collect();
        assert!(spread.len() >= 3, "64 clients over 4 servers: {spread:?}");
        let _ = b.pick(other, &[], now);
        for _ in 0..3 {
            b.failed(first, now);
        }
        let moved = b.pick(CLIENT, &[], now).unwrap();
        assert_ne!(moved, first);
        let later = now + Duration::from_secs(11);
        assert_eq!(b.pick(CLIENT, &[], later), Some(first));
    }

    #[test]
    fn failures_count_within_the_window_only() {
        let mut b = Balancer::new(&pool(&[(1, false), (1, false)], Balance::RoundRobin));
        let t0 = Instant::now();
        assert!(!b.failed(0, t0));
        assert!(!b.failed(0, t0 + Duration::from_secs(5)));
        // The window restarted: two old failures do not count.
        assert!(!b.failed(0, t0 + Duration::from_secs(11)));
        assert!(!b.failed(0, t0 + Duration::from_secs(12)));
        assert!(b.failed(0, t0 + Duration::from_secs(13)));
        let t = t0 + Duration::from_secs(13);
        assert_eq!(b.health(0, t), Health::Down);
        assert_eq!(picks(&mut b, 4, t), vec![1, 1, 1, 1]);
        assert_eq!(b.health(0, t + Duration::from_secs(10)), Health::Up);
    }

    #[test]
    fn active_checks_take_a_server_out_and_bring_it_back() {
        let mut up = pool(&[(1, false), (1, false)], Balance::RoundRobin);
        up.health = Some(HealthCheck {
            fails: 2,
            passes: 3,
            ..HealthCheck::new("/health")
        });
        let mut b = Balancer::new(&up);
        let now = Instant::now();
        assert_eq!(b.checked(0, false), None);
        assert_eq!(b.checked(0, true), None, "a pass resets the failures");
        assert_eq!(b.checked(0, false), None);
        assert_eq!(b.checked(0, false), Some(Health::Down));
        assert_eq!(b.health(0, now), Health::Down);
        assert_eq!(picks(&mut b, 4, now), vec![1, 1, 1, 1]);
        // A cooldown's end does not bring it back: only passing checks do.
        let later = now + Duration::from_secs(60);
        assert_eq!(b.health(0, later), Health::Down);
        assert_eq!(b.checked(0, true), None);
        assert_eq!(b.checked(0, true), None);
        assert_eq!(b.checked(0, true), Some(Health::Up));
        assert_eq!(picks(&mut b, 4, later), vec![0, 1, 0, 1]);
    }

    #[test]
    fn all_down_tries_all_again() {
        let mut b = Balancer::new(&pool(&[(1, false), (1, true)], Balance::RoundRobin));
        let now = Instant::now();
        for _ in 0..3 {
            b.failed(0, now);
            b.failed(1, now);
        }
        assert_eq!(b.pick(CLIENT, &[], now), Some(0));
        assert_eq!(b.pick(CLIENT, &[0], now), Some(1));
    }

    #[test]
    fn the_longest_prefix_wins() {
        let locs = vec![
            Location {
                prefix: "/api/".into(),
                upstream: 0,
            },
            Location {
                prefix: "/api/v2/".into(),
                upstream: 1,
            },
        ];
        assert_eq!(
            location_for(&locs, "/api/v2/x").map(|l| l.upstream),
            Some(1)
        );
        assert_eq!(location_for(&locs, "/api/x").map(|l| l.upstream), Some(0));
        assert_eq!(location_for(&locs, "/apix"), None);
    }
}
