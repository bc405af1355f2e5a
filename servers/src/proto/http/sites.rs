//! Virtual hosts and the per-site rules of the capstone's `[[site]]` blocks.
//!
//! The one idea: a site is a whole [`HttpConfig`] (its own root, index files,
//! file cache) plus its [`SiteRules`]; a [`SiteTable`] picks one per request from
//! the `Host` header (exact names first, then the longest matching `*.` wildcard,
//! else the default site), so everything downstream of the choice is the same code
//! httpd runs with its single root.

use super::HttpConfig;
use std::collections::HashMap;
use std::sync::Arc;

/// Where a `[[site.headers]]` block applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// Paths starting with this (`/assets/`).
    Prefix(String),
    /// Paths whose last segment ends in `.EXT` (stored lower-case, without the dot).
    Extension(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Extension(ext) => {
                let last = path.rsplit('/').next().unwrap_or(path);
                last.rsplit_once('.')
                    .is_some_and(|(stem, e)| !stem.is_empty() && e.eq_ignore_ascii_case(ext))
            }
        }
    }
}

/// Response headers set on the answers for matching paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRule {
    pub when: PathMatch,
    /// Names and values, already checked as valid field names and values.
    pub set: Vec<(String, String)>,
}

/// A redirect of one path, or of everything below a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The path matched exactly, or the prefix (with `prefix`).
    pub from: String,
    pub prefix: bool,
    /// The `Location`: for a prefix, the rest of the path (and the query) is appended.
    pub to: String,
    /// 301, 302, 307 or 308.
    pub code: u16,
}

/// What a `[[site]]` adds to plain static serving. All empty for httpd.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteRules {
    /// Status code → absolute path of the page served (with that status) instead of
    /// the built-in one.
    pub error_pages: Vec<(u16, String)>,
    pub headers: Vec<HeaderRule>,
    pub redirects: Vec<Redirect>,
    /// A missing path is answered with this file (absolute path) and 200.
    pub fallback: Option<String>,
    /// `Strict-Transport-Security` value, sent on TLS connections only.
    pub hsts: Option<String>,
}

impl SiteRules {
    /// The header lines (each ending in CRLF) the rules give `path`; a later
    /// rule setting a header an earlier one set replaces it.
    pub fn header_lines(&self, path: &str) -> String {
        let mut set: Vec<(&str, &str)> = Vec::new();
        for rule in self.headers.iter().filter(|r| r.when.matches(path)) {
            for (name, value) in &rule.set {
                match set.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                    Some(slot) => slot.1 = value,
                    None => set.push((name, value)),
                }
            }
        }
        let mut out = String::new();
        for (n, v) in set {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out
    }

    /// The `(code, Location)` a redirect gives `path` (exact matches first, then
    /// the longest prefix).
    pub fn redirect_for(&self, path: &str, query: Option<&str>) -> Option<(u16, String)> {
        if let Some(r) = self.redirects.iter().find(|r| !r.prefix && r.from == path) {
            return Some((r.code, r.to.clone()));
        }
        let r = self
            .redirects
            .iter()
            .filter(|r| r.prefix && path.starts_with(r.from.as_str()))
            .max_by_key(|r| r.from.len())?;
        let mut to = format!("{}{}", r.to, &path[r.from.len()..]);
        if let Some(q) = query {
            to.push('?');
            to.push_str(q);
        }
        Some((r.code, to))
    }

    pub fn error_page(&self, code: u16) -> Option<&str> {
        self.error_pages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, p)| p.as_str())
    }
}

/// Whether `value` may be a header field value (RFC 9110 §5.5: visible ASCII,
/// spaces and tabs inside, no CR/LF/NUL).
pub fn valid_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        && value.trim() == value
}

/// Whether `name` is a header field name (an RFC 9110 token).
pub fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The sites of a server and how a `Host` picks one.
#[derive(Debug)]
pub struct SiteTable {
    pub(super) sites: Vec<Arc<HttpConfig>>,
    exact: HashMap<String, usize>,
    /// `(".example.test", site)`, longest suffix first.
    wildcards: Vec<(String, usize)>,
    pub(super) default: usize,
}

impl SiteTable {
    /// `sites` with their (already validated, lower-case) names; `default` indexes
    /// `sites` (out of range: the first). `None` without any site.
    pub fn new(sites: Vec<(Vec<String>, Arc<HttpConfig>)>, default: usize) -> Option<SiteTable> {
        if sites.is_empty() {
            return None;
        }
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        let mut configs = Vec::with_capacity(sites.len());
        for (i, (names, cfg)) in sites.into_iter().enumerate() {
            for n in names {
                match n.strip_prefix('*') {
                    Some(suffix) => wildcards.push((suffix.to_string(), i)),
                    None => {
                        exact.entry(n).or_insert(i);
                    }
                }
            }
            configs.push(cfg);
        }
        wildcards.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        let default = if default < configs.len() { default } else { 0 };
        Some(SiteTable {
            sites: configs,
            exact,
            wildcards,
            default,
        })
    }

    /// The site for a `Host` value (port ignored, case-insensitive; none or an
    /// unknown name: the default).
    pub fn pick(&self, host: Option<&[u8]>) -> usize {
        let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
            return self.default;
        };
        let name = host_name(host);
        if name.is_empty() {
            return self.default;
        }
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(&i) = self.exact.get(name) {
            return i;
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map_or(self.default, |&(_, i)| i)
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}

/// The name part of a `Host` value: without the port, the brackets of an IPv6
/// literal kept, and without a trailing dot.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name.strip_suffix('.').unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_and_dot() {
        assert_eq!(host_name("Example.test:8080"), "Example.test");
        assert_eq!(host_name("example.test."), "example.test");
        assert_eq!(host_name("[::1]:80"), "[::1]");
    }

    #[test]
    fn header_rules_by_prefix_and_extension() {
        let rules = SiteRules {
            headers: vec![
                HeaderRule {
                    when: PathMatch::Prefix("/assets/".into()),
                    set: vec![("Cache-Control".into(), "max-age=3600".into())],
                },
                HeaderRule {
                    when: PathMatch::Extension("css".into()),
                    set: vec![("cache-control".into(), "max-age=60".into())],
                },
            ],
            ..SiteRules::default()
        };
        assert_eq!(
            rules.header_lines("/assets/a.js"),
            "Cache-Control: max-age=3600\r\n"
        );
        assert_eq!(
            rules.header_lines("/assets/a.CSS"),
            "Cache-Control: max-age=60\r\n"
        );
        assert_eq!(
            rules.header_lines("/x.css"),
            "cache-control: max-age=60\r\n"
        );
        assert_eq!(rules.header_lines("/.css"), "");
        assert_eq!(rules.header_lines("/other"), "");
    }

    #[test]
    fn redirects_exact_before_longest_prefix() {
        let r = |from: &str, prefix, to: &str, code| Redirect {
            from: from.into(),
            prefix,
            to: to.into(),
            code,
        };
        let rules = SiteRules {
            redirects: vec![
                r("/old/", true, "/new/", 301),
                r("/old/deep/", true, "/deeper/", 308),
                r("/old/x", false, "https://e.test/x", 302),
            ],
            ..SiteRules::default()
        };
        assert_eq!(
            rules.redirect_for("/old/x", None),
            Some((302, "https://e.test/x".into()))
        );
        assert_eq!(
            rules.redirect_for("/old/a/b", Some("q=1")),
            Some((301, "/new/a/b?q=1".into()))
        );
        assert_eq!(
            rules.redirect_for("/old/deep/z", None),
            Some((308, "/deeper/z".into()))
        );
        assert_eq!(rules.redirect_for("/old", None), None);
    }

    #[test]
    fn field_checks() {
        assert!(valid_field_name("X-Frame-Options"));
        assert!(!valid_field_name("Bad Name"));
        assert!(!valid_field_name(""));
        assert!(valid_field_value("max-age=3600; includeSubDomains"));
        assert!(!valid_field_value("a\r\nX: y"));
        assert!(!valid_field_value(" padded"));
    }
}
