//! From a request target to a path relative to the document root, or a refusal.
//!
//! The one idea: decode once, then normalise segment by segment on the decoded bytes,
//! refusing (never clamping) any `..` that would climb above the root. The result has
//! no empty, `.` or `..` segment and no leading slash, so joining it under the root can
//! only name something below it lexically; symlinks are the file system's business and
//! are checked again when the file is opened (see `fs.rs`).

use super::Status;
use std::borrow::Cow;

/// A request target reduced to what the file lookup needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// Decoded, normalised, relative (`""` is the root itself), segments joined by `/`.
    /// Borrowed from the target when it was already in that form (the common case).
    pub rel: Cow<'a, [u8]>,
    /// The raw path ended in `/` (a directory asked for as one).
    pub trailing_slash: bool,
    /// The raw path as sent, before the query (for a redirect's `Location`).
    pub raw_path: &'a str,
    /// The query string after `?`, if any (ignored by the file lookup).
    pub query: Option<&'a str>,
}

impl Target<'_> {
    /// The normalised path with its leading slash, as routes are keyed.
    pub fn absolute(&self) -> String {
        format!("/{}", String::from_utf8_lossy(&self.rel))
    }
}

/// Parses an origin-form (`/a/b?q`) or absolute-form (`http://host/a/b`) target.
///
/// 400 for a target that is neither, for bad percent-encoding, for a decoded NUL or
/// backslash; 403 for a `..` that climbs above the root.
pub fn parse_target(target: &str) -> Result<Target<'_>, Status> {
    // The fragment goes, then the query is split off: one scan for whichever of `?`
    // and `#` comes first (a `?` after a `#` is part of the fragment).
    let (path, query) = match target.bytes().position(|b| b == b'?' || b == b'#') {
        Some(i) if target.as_bytes()[i] == b'?' => {
            let rest = &target[i + 1..];
            let query = rest.find('#').map_or(rest, |j| &rest[..j]);
            (&target[..i], Some(query))
        }
        Some(i) => (&target[..i], None),
        None => (target, None),
    };
    let path = strip_scheme_authority(path)?;
    if !path.starts_with('/') {
        return Err(Status::BadRequest);
    }
    let rel = match already_normal(path) {
        Some(rel) => Cow::Borrowed(rel),
        None => Cow::Owned(normalise(path)?),
    };
    Ok(Target {
        rel,
        trailing_slash: path.ends_with('/'),
        raw_path: path,
        query,
    })
}

/// Decodes an absolute path and drops its empty and `.` segments, resolving `..`.
fn normalise(path: &str) -> Result<Vec<u8>, Status> {
    let decoded = percent_decode(path.as_bytes())?;
    if decoded.iter().any(|&b| b == 0 || b == b'\\') {
        // NUL cannot be in a file name and would truncate a C string; a backslash is
        // a path separator somewhere, so no legitimate link needs one.
        return Err(Status::BadRequest);
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Err(Status::Forbidden);
                }
            }
            s => segments.push(s),
        }
    }
    Ok(segments.join(&b'/'))
}

/// The relative path of an absolute `path` that decoding and normalising would leave
/// as it is: no `%`, NUL or backslash, and no empty, `.` or `..` segment (a trailing
/// slash aside). `None` sends it the long way.
fn already_normal(path: &str) -> Option<&[u8]> {
    let rel = path.as_bytes().get(1..)?;
    let rel = rel.strip_suffix(b"/").unwrap_or(rel);
    if rel.is_empty() {
        return Some(rel);
    }
    // One pass: a segment is empty, `.` or `..` when it holds at most two bytes and
    // all of them are dots.
    let (mut dots, mut only_dots) = (0usize, true);
    for &b in rel {
        match b {
            b'%' | b'\\' | 0 => return None,
            b'/' if only_dots && dots <= 2 => return None,
            b'/' => (dots, only_dots) = (0, true),
            b'.' => dots += 1,
            _ => only_dots = false,
        }
    }
    (!(only_dots && dots <= 2)).then_some(rel)
}

/// `http://host:80/x` → `/x`; `http://host` → `/`; origin-form passes through.
fn strip_scheme_authority(path: &str) -> Result<&str, Status> {
    if path.starts_with('/') {
        return Ok(path);
    }
    let lower_starts = |p: &str| {
        path.len() >= p.len() && path.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    let after = if lower_starts("http://") {
        &path[7..]
    } else if lower_starts("https://") {
        &path[8..]
    } else {
        return Ok(path);
    };
    match after.find('/') {
        Some(i) => Ok(&after[i..]),
        None if !after.is_empty() => Ok("/"),
        None => Err(Status::BadRequest),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` exactly once (so `%252e` is the three bytes `%2e`, a plain name).
pub fn percent_decode(input: &[u8]) -> Result<Vec<u8>, Status> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hi = input.get(i + 1).copied().and_then(hex);
            let lo = input.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(Status::BadRequest),
            }
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(t: &str) -> Result<String, Status> {
        parse_target(t).map(|t| String::from_utf8_lossy(&t.rel).into_owned())
    }

    #[test]
    fn normalises_inside_the_root() {
        assert_eq!(rel("/").unwrap(), "");
        assert_eq!(rel("/a/b/c.html").unwrap(), "a/b/c.html");
        assert_eq!(rel("//a///b/./c").unwrap(), "a/b/c");
        assert_eq!(rel("/a/../b").unwrap(), "b");
        assert_eq!(rel("/a/b/..").unwrap(), "a");
        assert_eq!(rel("/a/%2e%2e/b").unwrap(), "b");
        assert_eq!(rel("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(rel("/sp%20ace").unwrap(), "sp ace");
        assert_eq!(rel("/x?y=/../../z").unwrap(), "x");
        assert_eq!(rel("/x#frag/../..").unwrap(), "x");
        assert_eq!(rel("http://example.org/a/b").unwrap(), "a/b");
        assert_eq!(rel("HTTP://example.org").unwrap(), "");
    }

    #[test]
    fn refuses_to_climb() {
        for t in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/%2e%2e/etc",
            "/./../x",
            "http://h/../x",
        ] {
            assert_eq!(rel(t), Err(Status::Forbidden), "{t}");
        }
    }

    #[test]
    fn double_encoding_is_a_plain_name() {
        assert_eq!(rel("/%252e%252e/etc/passwd").unwrap(), "%2e%2e/etc/passwd");
    }

    #[test]
    fn rejects_malformed() {
        for t in [
            "*",
            "a/b",
            "",
            "/%",
            "/%2",
            "/%zz",
            "/%00",
            "/a%00.html",
            "/..%5c..%5cetc",
            "/a\\b",
            "http://",
        ] {
            assert_eq!(rel(t), Err(Status::BadRequest), "{t:?}");
        }
    }

    #[test]
    fn plain_paths_are_borrowed_and_match_the_long_way() {
        for p in [
            "/",
            "//",
            "/a",
            "/a/",
            "/a/b.html",
            "/a.b/c-d_e~f/",
            "/.x",
            "/x.",
            "/...",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/a/.",
            "/./",
            "/%41",
            "/a\\b",
            "//a",
            "/a/b//",
            "/..",
            "/a/...",
            "/..a/b",
            "/a../b/",
            "/a/.../b",
            "/a/./",
            "/a/b/..",
            "/.../",
            "/./a",
            "/a//",
        ] {
            let t = parse_target(p);
            match already_normal(p) {
                Some(rel) => {
                    assert_eq!(normalise(p).as_deref(), Ok(rel), "{p:?}");
                    let t = t.unwrap();
                    assert!(matches!(t.rel, Cow::Borrowed(_)), "{p:?}");
                    assert_eq!(&t.rel[..], rel);
                }
                None => assert_eq!(t.map(|t| t.rel.into_owned()), normalise(p), "{p:?}"),
            }
        }
        assert!(matches!(
            parse_target("/a/b.html?x").unwrap().rel,
            Cow::Borrowed(b"a/b.html")
        ));
        assert!(matches!(parse_target("/a/%62").unwrap().rel, Cow::Owned(_)));
    }

    #[test]
    fn query_and_fragment_split_in_either_order() {
        let t = |s| parse_target(s).map(|t| (t.raw_path, t.query));
        assert_eq!(t("/a?q=1#f"), Ok(("/a", Some("q=1"))));
        assert_eq!(t("/a#f?q=1"), Ok(("/a", None)));
        assert_eq!(t("/a?q?r#f#g"), Ok(("/a", Some("q?r"))));
        assert_eq!(t("/a?"), Ok(("/a", Some(""))));
        assert_eq!(t("/a#"), Ok(("/a", None)));
        assert_eq!(t("/a"), Ok(("/a", None)));
    }

    #[test]
    fn keeps_trailing_slash_and_query() {
        let t = parse_target("/dir/?x=1").unwrap();
        assert!(t.trailing_slash);
        assert_eq!(t.query, Some("x=1"));
        assert_eq!(t.raw_path, "/dir/");
        assert_eq!(t.absolute(), "/dir");
    }
}
