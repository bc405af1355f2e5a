//! Directory listings (`autoindex`): an HTML page or a JSON array of a directory's
//! entries, sorted (directories first, then by name), dotfiles hidden.
//!
//! The one idea: a listing shows exactly what a request could fetch. Entries are
//! stat'ed relative to the open directory without following links; a symlink is
//! listed only if opening it through the root's containment check (`fs.rs`) succeeds,
//! and then with what it points to, so a link leading out of the root is not even
//! named. Names are bytes: percent-encoded in links (every byte outside the
//! unreserved set), HTML-escaped (lossily decoded) in text, JSON-escaped in JSON.

use super::date::format_iso_date;
use super::fs::Root;
use super::Status;
use nix::dir::Dir;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, SFlag};
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// At most this many entries are shown (a bound on the page's memory); the rest are
/// left out and the page says so.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    name: Vec<u8>,
    dir: bool,
    size: u64,
    mtime: i64,
}

/// Reads the directory `dir` (opened as `rel` below `root`).
fn entries(root: &Root, dir: File, rel: &[u8]) -> Result<(Vec<Entry>, bool), Status> {
    let mut d = Dir::from(dir).map_err(|e| {
        tracing::warn!(error = %e, "fdopendir failed");
        Status::InternalServerError
    })?;
    let fd = d.as_raw_fd();
    let mut list = Vec::new();
    let mut truncated = false;
    for e in d.iter() {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_bytes();
        if name.starts_with(b".") {
            continue;
        }
        if list.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        let Ok(st) = fstatat(Some(fd), e.file_name(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let entry = if kind == SFlag::S_IFLNK {
            let mut path = rel.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            match root.open_file(&path) {
                Ok((_, m)) if m.is_file() || m.is_dir() => Entry {
                    name: name.to_vec(),
                    dir: m.is_dir(),
                    size: m.len(),
                    mtime: m.mtime(),
                },
                _ => continue,
            }
        } else if kind == SFlag::S_IFREG || kind == SFlag::S_IFDIR {
            Entry {
                name: name.to_vec(),
                dir: kind == SFlag::S_IFDIR,
                size: u64::try_from(st.st_size).unwrap_or(0),
                mtime: st.st_mtime,
            }
        } else {
            // FIFOs, sockets, devices: never served, so never listed.
            continue;
        };
        list.push(entry);
    }
    list.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    Ok((list, truncated))
}

/// Every byte outside RFC 3986's unreserved set, percent-encoded.
fn url_escape(name: &[u8], out: &mut String) {
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn html_escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn json_escape(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The listing of `dir` as `(content type, body)`; `shown` is the decoded request
/// path (with its trailing slash) for the page's title.
pub fn render(
    root: &Root,
    dir: File,
    rel: &[u8],
    shown: &[u8],
    json: bool,
) -> Result<(&'static str, String), Status> {
    let (list, truncated) = entries(root, dir, rel)?;
    let mut out = String::with_capacity(256 + list.len() * 160);
    if json {
        out.push('[');
        for (i, e) in list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            json_escape(&String::from_utf8_lossy(&e.name), &mut out);
            let _ = write!(
                out,
                ",\"type\":\"{}\",\"size\":{},\"mtime\":\"{}\"}}",
                if e.dir { "directory" } else { "file" },
                e.size,
                format_iso_date(e.mtime)
            );
        }
        out.push_str("]\n");
        return Ok(("application/json", out));
    }
    let mut title = String::new();
    html_escape(&String::from_utf8_lossy(shown), &mut title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title>\
         <style>td{{padding:0 1em}}td.s{{text-align:right}}</style></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>\n"
    );
    if !rel.is_empty() {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in &list {
        out.push_str("<tr><td><a href=\"./");
        url_escape(&e.name, &mut out);
        if e.dir {
            out.push('/');
        }
        out.push_str("\">");
        html_escape(&String::from_utf8_lossy(&e.name), &mut out);
        if e.dir {
            out.push('/');
        }
        out.push_str("</a></td><td class=\"s\">");
        if e.dir {
            out.push('-');
        } else {
            let _ = write!(out, "{}", e.size);
        }
        let _ = writeln!(out, "</td><td>{}</td></tr>", format_iso_date(e.mtime));
    }
    out.push_str("</table>\n");
    if truncated {
        let _ = writeln!(
            out,
            "<p>Only the first {MAX_ENTRIES} entries are shown.</p>"
        );
    }
    out.push_str("</body></html>\n");
    Ok(("text/html; charset=utf-8", out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut s = String::new();
        url_escape(b"a b&<\"x\xff.txt", &mut s);
        assert_eq!(s, "a%20b%26%3C%22x%FF.txt");
        let mut s = String::new();
        html_escape("<script>\"&'", &mut s);
        assert_eq!(s, "&lt;script&gt;&quot;&amp;&#39;");
        let mut s = String::new();
        json_escape("a\"b\\c\n", &mut s);
        assert_eq!(s, "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn sorted_hidden_and_contained() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::write(r.join("b.txt"), b"bb").unwrap();
        std::fs::write(r.join("a.txt"), b"a").unwrap();
        std::fs::write(r.join(".hidden"), b"h").unwrap();
        std::fs::create_dir(r.join("zdir")).unwrap();
        std::os::unix::fs::symlink("a.txt", r.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), r.join("out")).unwrap();
        let root = Root::open(r).unwrap();
        let (f, _) = root.open_file(b"").unwrap();
        let (list, truncated) = entries(&root, f, b"").unwrap();
        assert!(!truncated);
        let names: Vec<_> = list
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        assert_eq!(names, ["zdir", "a.txt", "b.txt", "link"]);
        assert_eq!(list[3].size, 1, "a link shows its target");
    }
}
