//! `Content-Type` by file extension: a fixed table, case-insensitive, with
//! `application/octet-stream` for anything unknown (a browser then downloads rather
//! than guesses, which is the safe failure).

const TABLE: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("wasm", "application/wasm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
];

pub const DEFAULT: &str = "application/octet-stream";

/// The media type for a path's last segment (bytes, as the file system has them).
pub fn content_type(path: &[u8]) -> &'static str {
    let name = match memchr::memrchr(b'/', path) {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let Some(dot) = memchr::memrchr(b'.', name) else {
        return DEFAULT;
    };
    let ext = &name[dot + 1..];
    TABLE
        .iter()
        .find(|(e, _)| e.as_bytes().eq_ignore_ascii_case(ext))
        .map_or(DEFAULT, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(content_type(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"a/b/STYLE.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type(b"img/logo.png"), "image/png");
        assert_eq!(content_type(b"archive.tar.gz"), "application/gzip");
        assert_eq!(content_type(b"README"), DEFAULT);
        assert_eq!(content_type(b"dir.html/file"), DEFAULT);
        assert_eq!(content_type(b"trailing."), DEFAULT);
        assert_eq!(content_type(b""), DEFAULT);
    }
}
