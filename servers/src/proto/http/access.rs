//! Access control by path prefix: client addresses allowed or denied by CIDR (403),
//! and HTTP Basic authentication (RFC 7617) against an htpasswd file of bcrypt or
//! argon2 hashes (401 with `WWW-Authenticate`).
//!
//! The one idea: a password hash costs tens of milliseconds by design, and it runs on
//! the event loop, so each distinct credential is hashed once and its verdict
//! (either way) remembered under a SHA-256 of the rule and the `Authorization` value;
//! a keep-alive client that sends the same header with every request costs one hash,
//! not one per request. The memory holds digests, never passwords, and is dropped
//! every minute so a changed file or a revoked user is seen. Unknown users are hashed
//! against a fixed dummy hash, so their answer takes as long as a wrong password.
//!
//! The rule for a request is the one with the longest prefix matching its normalised
//! path; `/admin/` matches below it, `/admin` also matches `/admin` itself. Addresses:
//! an allow match admits, else a deny match refuses, else the request is admitted
//! (so `allow = [...]` with `deny = ["all"]` is an allow-list, as in nginx).

use base64::Engine as _;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0:?} is not an address, a CIDR block (10.0.0.0/8, ::1/128) or \"all\"")]
    Cidr(String),
    #[error("read htpasswd file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Htpasswd {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

/// An address block (`all` is `0.0.0.0/0` and `::/0` together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    All,
    Net { addr: IpAddr, bits: u8 },
}

impl std::str::FromStr for Cidr {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Cidr, AccessError> {
        let bad = || AccessError::Cidr(s.to_string());
        if s == "all" {
            return Ok(Cidr::All);
        }
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr::Net { addr, bits })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // A v4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (*self, ip) {
            (Cidr::All, _) => true,
            (
                Cidr::Net {
                    addr: IpAddr::V4(n),
                    bits,
                },
                IpAddr::V4(a),
            ) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (
                Cidr::Net {
                    addr: IpAddr::V6(n),
                    bits,
                },
                IpAddr::V6(a),
            ) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Users and their password hashes, from an htpasswd-style file (`user:hash` lines;
/// `#` comments). Only bcrypt (`$2a$`, `$2b$`, `$2y$`, as `htpasswd -B` writes) and
/// argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`) hashes are accepted: the older
/// schemes (crypt, MD5, SHA-1) are too fast to hash to be worth protecting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

/// A bcrypt hash of a random password no one knows, checked for unknown users.
const DUMMY_HASH: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Htpasswd::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Htpasswd, AccessError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |msg: &str| AccessError::Htpasswd {
                path: path.to_path_buf(),
                line: i + 1,
                msg: msg.to_string(),
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| err("not user:hash"))?;
            if user.is_empty() {
                return Err(err("empty user name"));
            }
            let known = [
                "$2a$",
                "$2b$",
                "$2y$",
                "$argon2id$",
                "$argon2i$",
                "$argon2d$",
            ];
            if !known.iter().any(|p| hash.starts_with(p)) {
                return Err(err(
                    "only bcrypt ($2y$...) and argon2 ($argon2id$...) hashes are accepted",
                ));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(err("user listed twice"));
            }
        }
        Ok(Htpasswd { users })
    }

    /// Whether `user` exists and `password` matches its hash (the hash's own
    /// comparison is constant-time).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let ok = if hash.starts_with("$argon2") {
            use argon2::PasswordVerifier as _;
            argon2::PasswordHash::new(hash).is_ok_and(|h| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        } else {
            bcrypt::verify(password, hash).unwrap_or(false)
        };
        ok && known
    }
}

/// What applies below one path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub prefix: String,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Basic authentication against these users, in this realm.
    pub auth: Option<(Arc<Htpasswd>, String)>,
}

impl AccessRule {
    pub fn new(prefix: impl Into<String>) -> AccessRule {
        AccessRule {
            prefix: prefix.into(),
            allow: Vec::new(),
            deny: Vec::new(),
            auth: None,
        }
    }

    fn matches(&self, path: &str) -> bool {
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) => self.prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Whether the client's address may pass.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(ip)) || !self.deny.iter().any(|c| c.contains(ip))
    }
}

/// The rule with the longest prefix matching `path` (normalised, with its leading
/// slash), with its index.
pub fn rule_for<'a>(rules: &'a [AccessRule], path: &str) -> Option<(usize, &'a AccessRule)> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.matches(path))
        .max_by_key(|(_, r)| r.prefix.len())
}

/// `user` and `password` from a `Basic` credential, if well formed.
fn basic(value: &[u8]) -> Option<(String, String)> {
    let v = value.trim_ascii();
    let (scheme, token) = v.split_at(v.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim_ascii())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Verdicts of credentials already hashed, per event loop.
#[derive(Debug, Default)]
pub struct Verified {
    seen: HashMap<[u8; 32], bool>,
    minute: i64,
}

/// Entries kept before the memory starts afresh (a bound against a client that sends
/// a new credential with every request).
const MAX_VERIFIED: usize = 4096;

impl Verified {
    /// Whether `authorization` (the header's value, if sent) passes `users`.
    pub fn check(
        &mut self,
        rule: usize,
        users: &Htpasswd,
        authorization: Option<&[u8]>,
        now: i64,
    ) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        if now / 60 != self.minute {
            self.minute = now / 60;
            self.seen.clear();
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&rule.to_le_bytes());
        ctx.update(value);
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        if let Some(&ok) = self.seen.get(&key) {
            return ok;
        }
        let ok = basic(value).is_some_and(|(u, p)| users.verify(&u, &p));
        if self.seen.len() >= MAX_VERIFIED {
            self.seen.clear();
        }
        self.seen.insert(key, ok);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "v4-mapped");
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let zero: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(zero.contains(ip("8.8.8.8")) && !zero.contains(ip("::1")));
        assert!(Cidr::All.contains(ip("::1")));
        for bad in ["10.0.0.0/33", "::/129", "x", "10.0.0.0/", "1.2.3.4/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn longest_prefix_and_segments() {
        let rules = vec![AccessRule::new("/a"), AccessRule::new("/a/b/")];
        assert_eq!(rule_for(&rules, "/a").map(|r| r.0), Some(0));
        assert_eq!(rule_for(&rules, "/a/x").map(|r| r.0), Some(0));
        assert_eq!(rule_for(&rules, "/ab"), None);
        assert_eq!(rule_for(&rules, "/a/b/c").map(|r| r.0), Some(1));
        let mut r = AccessRule::new("/");
        r.allow = vec!["127.0.0.0/8".parse().unwrap()];
        r.deny = vec![Cidr::All];
        assert!(r.admits(ip("127.0.0.5")) && !r.admits(ip("10.0.0.1")));
    }

    #[test]
    fn htpasswd_bcrypt_argon2_and_the_memory() {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let b = bcrypt::hash("s3cret", 4).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let a = argon2::Argon2::default()
            .hash_password(b"pa:ss", &salt)
            .unwrap()
            .to_string();
        let text = format!("# users\nalice:{b}\n\nbob:{a}\n");
        let users = Htpasswd::parse(&text, Path::new("f")).unwrap();
        assert!(users.verify("alice", "s3cret"));
        assert!(!users.verify("alice", "wrong"));
        assert!(users.verify("bob", "pa:ss"), "a colon in the password");
        assert!(!users.verify("carol", "s3cret"));
        for bad in [
            "alice",
            ":x",
            "u:plain",
            "u:{SHA}abc",
            &format!("a:{b}\na:{b}"),
        ] {
            assert!(Htpasswd::parse(bad, Path::new("f")).is_err(), "{bad}");
        }
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let mut v = Verified::default();
        assert!(v.check(0, &users, Some(header("alice", "s3cret").as_bytes()), 0));
        assert!(!v.check(0, &users, Some(header("alice", "no").as_bytes()), 0));
        assert!(!v.check(0, &users, None, 0));
        assert!(!v.check(0, &users, Some(b"Bearer x"), 0));
        assert!(!v.check(0, &users, Some(b"Basic !!!"), 0));
        assert_eq!(v.seen.len(), 4, "each verdict remembered once");
        assert!(v.check(0, &users, Some(header("alice", "s3cret").as_bytes()), 59));
        assert_eq!(v.seen.len(), 4, "a repeat is not hashed again");
        assert!(v.check(0, &users, Some(header("alice", "s3cret").as_bytes()), 60));
        assert_eq!(v.seen.len(), 1, "a new minute starts afresh");
    }
}
