//! Static-serving features end to end, each against both binaries that share
//! `proto::http` (`httpd` and the capstone): precompressed siblings chosen by
//! `Accept-Encoding`, on-the-fly compression cached per file version, and directory
//! listings. Byte-level over raw sockets where a status or header matters; bodies
//! decoded by the crates' decoders, by `curl --compressed` and by Python's `gzip` and
//! `brotli`; and a headless Chromium that renders a listing and a page whose assets
//! only work if their coded bodies arrive intact.

mod common;

use common::{connect, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const HTTPD: &str = env!("CARGO_BIN_EXE_httpd");
const CAPSTONE: &str = env!("CARGO_BIN_EXE_capstone");

/// About 20 KiB of HTML: above the inline limit and worth compressing.
fn page_text(tag: &str) -> String {
    let mut s = format!("<!DOCTYPE html>\n<title>{tag}</title>\n");
    for i in 0..400 {
        s.push_str(&format!(
            "<p>{tag} paragraph {i} of a compressible page.</p>\n"
        ));
    }
    s
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli_enc(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        w.write_all(data).unwrap();
    }
    out
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &data[..], &mut out).unwrap();
    out
}

/// Starts both servers on `root`: httpd with `flags`, the capstone with `toml` keys.
fn both(
    root: &Path,
    flags: &[&str],
    toml: &str,
) -> (tempfile::TempDir, Vec<(&'static str, Server)>) {
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("capstone.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = [\"127.0.0.1:0\"]\nroot = {:?}\npid_file = {:?}\n{toml}\n",
            root.to_str().unwrap(),
            etc.path().join("pid").to_str().unwrap()
        ),
    )
    .unwrap();
    let mut args = vec!["--root", root.to_str().unwrap()];
    args.extend_from_slice(flags);
    let servers = vec![
        ("httpd", Server::start(HTTPD, &args)),
        (
            "capstone",
            Server::start(CAPSTONE, &["--config", cfg.to_str().unwrap()]),
        ),
    ];
    (etc, servers)
}

#[derive(Debug)]
struct Resp {
    code: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    fn etag(&self) -> String {
        self.header("etag").expect("an ETag").to_string()
    }
}

fn read_resp(s: &mut TcpStream, head_only: bool) -> Resp {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            other => panic!(
                "reading a head: {other:?} after {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let code = head[9..12].parse().unwrap();
    let mut r = Resp {
        code,
        head,
        body: Vec::new(),
    };
    let len: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
    if !head_only && code != 304 {
        r.body = vec![0; len];
        s.read_exact(&mut r.body).unwrap();
    }
    r
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n")
}

fn ask(addr: SocketAddr, req: &str) -> Resp {
    let mut s = connect(addr);
    s.write_all(req.as_bytes()).unwrap();
    read_resp(&mut s, req.starts_with("HEAD "))
}

fn ae(path: &str, accept: &str) -> String {
    get(path, &format!("Accept-Encoding: {accept}\r\n"))
}

struct Site {
    dir: tempfile::TempDir,
    page: Vec<u8>,
    gz: Vec<u8>,
    br: Vec<u8>,
}

/// `page.html` with `.gz` and `.br` siblings; `plain.html` with none; `big.txt` whose
/// `.gz` sibling (100 KiB, not a real gzip stream) is large enough to be streamed.
fn precompressed_site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let page = page_text("page").into_bytes();
    let (gz, br) = (gzip(&page), brotli_enc(&page));
    std::fs::write(r.join("page.html"), &page).unwrap();
    std::fs::write(r.join("page.html.gz"), &gz).unwrap();
    std::fs::write(r.join("page.html.br"), &br).unwrap();
    std::fs::write(r.join("plain.html"), &page).unwrap();
    std::fs::write(r.join("big.txt"), "x".repeat(200 * 1024)).unwrap();
    let big_gz: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.join("big.txt.gz"), big_gz).unwrap();
    std::fs::create_dir(r.join("docs")).unwrap();
    std::fs::write(r.join("docs/index.html"), &page).unwrap();
    std::fs::write(r.join("docs/index.html.gz"), &gz).unwrap();
    Site { dir, page, gz, br }
}

#[test]
fn precompressed_siblings_follow_accept_encoding() {
    let site = precompressed_site();
    let (_etc, servers) = both(
        site.dir.path(),
        &["--precompressed"],
        "precompressed = true",
    );
    for (name, srv) in &servers {
        let a = srv.addr;
        let plain = ask(a, &get("/page.html", ""));
        assert_eq!(plain.code, 200, "{name}");
        assert_eq!(plain.body, site.page, "{name}");
        assert_eq!(plain.header("content-encoding"), None, "{name}");
        assert_eq!(
            plain.header("vary"),
            Some("Accept-Encoding"),
            "{name}: {}",
            plain.head
        );

        let gz = ask(a, &ae("/page.html", "gzip"));
        assert_eq!(gz.code, 200, "{name}");
        assert_eq!(
            gz.header("content-encoding"),
            Some("gzip"),
            "{name}: {}",
            gz.head
        );
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"), "{name}");
        assert_eq!(
            gz.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{name}"
        );
        assert_eq!(gz.body, site.gz, "{name}: the sibling's bytes as they are");
        assert_eq!(gunzip(&gz.body), site.page, "{name}");

        let br = ask(a, &ae("/page.html", "gzip, deflate, br, zstd"));
        assert_eq!(br.header("content-encoding"), Some("br"), "{name}");
        assert_eq!(br.body, site.br, "{name}");
        assert_eq!(unbrotli(&br.body), site.page, "{name}");

        let tags = [plain.etag(), gz.etag(), br.etag()];
        assert!(
            tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2],
            "{name}: one strong tag per representation: {tags:?}"
        );
        assert!(tags.iter().all(|t| t.starts_with('"')), "{name}: strong");

        // q-values: the highest wins, q=0 refuses, `*` covers the rest, identity may win.
        for (accept, want) in [
            ("br;q=0.5, gzip;q=0.8", Some("gzip")),
            ("br;q=0, gzip", Some("gzip")),
            ("gzip;q=0, br;q=0", None),
            ("*", Some("br")),
            ("*;q=0.1, br;q=0", Some("gzip")),
            ("*;q=0", None),
            ("identity", None),
            ("gzip;q=0.5, identity", None),
            ("x-gzip", Some("gzip")),
            ("zstd", None),
            ("", None),
        ] {
            let r = ask(a, &ae("/page.html", accept));
            assert_eq!(r.code, 200, "{name}: {accept:?}");
            assert_eq!(r.header("content-encoding"), want, "{name}: {accept:?}");
            assert_eq!(
                r.header("vary"),
                Some("Accept-Encoding"),
                "{name}: {accept:?}"
            );
            let body = match want {
                Some("gzip") => &site.gz,
                Some(_) => &site.br,
                None => &site.page,
            };
            assert_eq!(&r.body, body, "{name}: {accept:?}");
        }

        // HEAD agrees with GET, header for header.
        let head = ask(
            a,
            "HEAD /page.html HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n",
        );
        assert_eq!(head.code, 200);
        for h in [
            "content-length",
            "content-encoding",
            "etag",
            "vary",
            "content-type",
        ] {
            assert_eq!(head.header(h), gz.header(h), "{name}: HEAD {h}");
        }
        assert!(head.body.is_empty());

        // Conditionals compare against the chosen representation's tag.
        let inm = |tag: &str, accept: &str| {
            ask(
                a,
                &get(
                    "/page.html",
                    &format!("If-None-Match: {tag}\r\nAccept-Encoding: {accept}\r\n"),
                ),
            )
        };
        let r = inm(&tags[1], "gzip");
        assert_eq!(r.code, 304, "{name}: {}", r.head);
        assert_eq!(r.header("etag"), Some(tags[1].as_str()), "{name}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{name}");
        assert!(r.header("content-length").is_none(), "{name}");
        assert_eq!(
            inm(&tags[1], "br").code,
            200,
            "{name}: another representation"
        );
        assert_eq!(inm(&tags[1], "identity").code, 200, "{name}");
        assert_eq!(inm(&tags[0], "identity").code, 304, "{name}");

        // Range applies to the coded bytes.
        let r = ask(
            a,
            &get(
                "/page.html",
                "Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n",
            ),
        );
        assert_eq!(r.code, 206, "{name}: {}", r.head);
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes 0-9/{}", site.gz.len()).as_str()),
            "{name}"
        );
        assert_eq!(r.body, site.gz[..10], "{name}");
        // If-Range with the coded tag keeps the range; with the plain one it does not.
        let r = ask(
            a,
            &get(
                "/page.html",
                &format!(
                    "Accept-Encoding: gzip\r\nRange: bytes=5-\r\nIf-Range: {}\r\n",
                    tags[1]
                ),
            ),
        );
        assert_eq!(r.code, 206, "{name}");
        assert_eq!(r.body, site.gz[5..], "{name}");
        let r = ask(
            a,
            &get(
                "/page.html",
                &format!(
                    "Accept-Encoding: gzip\r\nRange: bytes=5-\r\nIf-Range: {}\r\n",
                    tags[0]
                ),
            ),
        );
        assert_eq!(r.code, 200, "{name}");
        assert_eq!(r.body, site.gz, "{name}");
        // Several ranges of a coded body: the whole of it (multipart cannot say coded).
        let r = ask(
            a,
            &get(
                "/page.html",
                "Accept-Encoding: gzip\r\nRange: bytes=0-1,4-5\r\n",
            ),
        );
        assert_eq!(r.code, 200, "{name}");
        assert_eq!(r.body, site.gz, "{name}");

        // A directory's index has siblings too.
        let r = ask(a, &ae("/docs/", "gzip"));
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(r.body, site.gz, "{name}");

        // No siblings: no Vary, nothing coded.
        let r = ask(a, &ae("/plain.html", "gzip, br"));
        assert_eq!(r.header("content-encoding"), None, "{name}");
        assert_eq!(r.header("vary"), None, "{name}");
        assert_eq!(r.body, site.page, "{name}");

        // A large sibling is streamed, and keep-alive stays in step around it.
        let mut s = connect(a);
        let req = ae("/big.txt", "gzip");
        s.write_all(format!("{req}{req}{}", get("/plain.html", "")).as_bytes())
            .unwrap();
        for _ in 0..2 {
            let r = read_resp(&mut s, false);
            assert_eq!(r.code, 200, "{name}");
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
            assert_eq!(r.body.len(), 100 * 1024, "{name}");
            assert!(r
                .body
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8));
        }
        assert_eq!(read_resp(&mut s, false).body, site.page, "{name}");
    }
}

#[test]
fn precompressed_is_off_by_default() {
    let site = precompressed_site();
    let (_etc, servers) = both(site.dir.path(), &[], "");
    for (name, srv) in &servers {
        let r = ask(srv.addr, &ae("/page.html", "gzip, br"));
        assert_eq!(r.code, 200, "{name}");
        assert_eq!(r.header("content-encoding"), None, "{name}");
        assert_eq!(r.header("vary"), None, "{name}");
        assert_eq!(r.body, site.page, "{name}");
    }
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => gunzip(body),
        "br" => unbrotli(body),
        "zstd" => zstd::decode_all(body).unwrap(),
        other => panic!("unexpected coding {other}"),
    }
}

#[test]
fn compression_on_the_fly_per_file_version() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let page = page_text("fly").into_bytes();
    std::fs::write(r.join("fly.html"), &page).unwrap();
    std::fs::write(r.join("app.js"), "let x = 1;\n".repeat(300)).unwrap();
    std::fs::write(r.join("tiny.css"), "a{}\n").unwrap();
    std::fs::write(r.join("huge.txt"), "y".repeat(300 * 1024)).unwrap();
    std::fs::write(r.join("img.png"), vec![0u8; 20 * 1024]).unwrap();
    let (_etc, servers) = both(
        r,
        &[
            "--compress",
            "br,zstd,gzip",
            "--compress-max-size",
            "262144",
        ],
        "compress = [\"br\", \"zstd\", \"gzip\"]\ncompress_max_size = \"256K\"",
    );
    for (name, srv) in &servers {
        let a = srv.addr;
        let mut tags = vec![ask(a, &get("/fly.html", "")).etag()];
        for coding in ["br", "zstd", "gzip"] {
            let first = ask(a, &ae("/fly.html", coding));
            assert_eq!(first.code, 200, "{name}");
            assert_eq!(
                first.header("content-encoding"),
                Some(coding),
                "{name}: {}",
                first.head
            );
            assert_eq!(first.header("vary"), Some("Accept-Encoding"), "{name}");
            assert!(
                first.body.len() < page.len() / 4,
                "{name}: {coding} compresses"
            );
            assert_eq!(decode(coding, &first.body), page, "{name}: {coding}");
            // The second answer comes from memory: the same bytes, the same tag.
            let again = ask(a, &ae("/fly.html", coding));
            assert_eq!(again.body, first.body, "{name}: {coding}");
            assert_eq!(again.etag(), first.etag(), "{name}: {coding}");
            let r = ask(
                a,
                &get(
                    "/fly.html",
                    &format!(
                        "Accept-Encoding: {coding}\r\nIf-None-Match: {}\r\n",
                        first.etag()
                    ),
                ),
            );
            assert_eq!(r.code, 304, "{name}: {coding}");
            let r = ask(
                a,
                &get(
                    "/fly.html",
                    &format!("Accept-Encoding: {coding}\r\nRange: bytes=10-19\r\n"),
                ),
            );
            assert_eq!(r.code, 206, "{name}: {coding}");
            assert_eq!(r.header("content-encoding"), Some(coding), "{name}");
            assert_eq!(r.body, first.body[10..20], "{name}: {coding}");
            tags.push(first.etag());
        }
        let mut unique = tags.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4, "{name}: {tags:?}");

        let js = ask(a, &ae("/app.js", "gzip"));
        assert_eq!(js.header("content-encoding"), Some("gzip"), "{name}");
        // Too small, too large, or not text: as it is, and no Vary.
        for path in ["/tiny.css", "/huge.txt", "/img.png"] {
            let r = ask(a, &ae(path, "gzip, br"));
            assert_eq!(r.code, 200, "{name}: {path}");
            assert_eq!(r.header("content-encoding"), None, "{name}: {path}");
            assert_eq!(r.header("vary"), None, "{name}: {path}");
        }
    }
    // A new version of the file is compressed afresh (the file cache lasts a second).
    let page2 = page_text("second version").into_bytes();
    std::fs::write(r.join("fly.html"), &page2).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    for (name, srv) in &servers {
        let r = ask(srv.addr, &ae("/fly.html", "br"));
        assert_eq!(unbrotli(&r.body), page2, "{name}: the new version");
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn curl_and_python_decode_what_is_sent() {
    if !have("curl") {
        eprintln!("SKIP: curl is not installed; scripts/test.sh installs it");
        return;
    }
    let py = "/usr/bin/python3";
    let py_brotli = Command::new(py)
        .args(["-c", "import brotli"])
        .status()
        .is_ok_and(|s| s.success());
    let site = precompressed_site();
    std::fs::write(
        site.dir.path().join("fly.css"),
        "p { color: red }\n".repeat(200),
    )
    .unwrap();
    let (_etc, servers) = both(
        site.dir.path(),
        &["--precompressed", "--compress", "br,gzip"],
        "precompressed = true\ncompress = [\"br\", \"gzip\"]",
    );
    let fly = std::fs::read(site.dir.path().join("fly.css")).unwrap();
    for (name, srv) in &servers {
        for (path, want) in [("/page.html", &site.page), ("/fly.css", &fly)] {
            let url = format!("http://{}{path}", srv.addr);
            let out = Command::new("curl")
                .args(["-sS", "--compressed", "-D", "/dev/stderr", &url])
                .output()
                .unwrap();
            let head = String::from_utf8_lossy(&out.stderr);
            assert!(
                head.to_ascii_lowercase().contains("content-encoding: "),
                "{name}: curl --compressed got no coding:\n{head}"
            );
            assert_eq!(&out.stdout, want, "{name}: curl --compressed {path}");
            if !py_brotli {
                eprintln!("SKIP: python3-brotli is not installed; scripts/test.sh installs it");
                continue;
            }
            for coding in ["gzip", "br"] {
                let script = format!(
                    "import sys, urllib.request, gzip, brotli\n\
                     r = urllib.request.urlopen(urllib.request.Request({url:?}, headers={{'Accept-Encoding': {coding:?}}}))\n\
                     assert r.headers['Content-Encoding'] == {coding:?}, r.headers\n\
                     body = r.read()\n\
                     plain = gzip.decompress(body) if {coding:?} == 'gzip' else brotli.decompress(body)\n\
                     sys.stdout.buffer.write(plain)\n"
                );
                let out = Command::new(py).args(["-c", &script]).output().unwrap();
                assert!(
                    out.status.success(),
                    "{name}: python {coding} {path}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(&out.stdout, want, "{name}: python {coding} {path}");
            }
        }
    }
}

#[test]
fn directory_listing() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let files = r.join("files");
    std::fs::create_dir_all(files.join("sub dir")).unwrap();
    std::fs::write(files.join("b.txt"), "bb").unwrap();
    std::fs::write(files.join("a&b <i>x.txt"), "12345").unwrap();
    std::fs::write(files.join("\"q'.txt"), "q").unwrap();
    std::fs::write(files.join(".secret"), "hidden").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), files.join("escape")).unwrap();
    std::fs::create_dir(r.join("withindex")).unwrap();
    std::fs::write(r.join("withindex/index.html"), "<p>index</p>").unwrap();

    // Off by default: a directory without an index is a 403.
    let (_etc, off) = both(r, &[], "");
    for (name, srv) in &off {
        assert_eq!(ask(srv.addr, &get("/files/", "")).code, 403, "{name}");
    }
    drop(off);

    let (_etc, servers) = both(r, &["--autoindex"], "autoindex = true");
    for (name, srv) in &servers {
        let a = srv.addr;
        let page = ask(a, &get("/files/", ""));
        assert_eq!(page.code, 200, "{name}");
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let html = String::from_utf8(page.body.clone()).unwrap();
        assert!(
            html.contains("<title>Index of /files/</title>"),
            "{name}: {html}"
        );
        // Directories first with their slash, then names in byte order; escaped twice
        // over: in the link by URL rules, in the text by HTML rules.
        let rows = [
            "<a href=\"./sub%20dir/\">sub dir/</a>",
            "<a href=\"./%22q%27.txt\">&quot;q&#39;.txt</a>",
            "<a href=\"./a%26b%20%3Ci%3Ex.txt\">a&amp;b &lt;i&gt;x.txt</a></td><td class=\"s\">5</td>",
            "<a href=\"./b.txt\">b.txt</a></td><td class=\"s\">2</td>",
        ];
        let mut at = 0;
        for row in rows {
            let i = html[at..]
                .find(row)
                .unwrap_or_else(|| panic!("{name}: {row} missing or out of order in\n{html}"));
            at += i + row.len();
        }
        assert!(!html.contains("<i>"), "{name}: unescaped name");
        assert!(
            !html.contains("secret"),
            "{name}: dotfile or escaping link listed"
        );
        assert!(
            !html.contains("escape"),
            "{name}: a link out of the root is listed"
        );
        assert!(html.contains("<a href=\"../\">"), "{name}");
        // The links work.
        let r = ask(a, &get("/files/a%26b%20%3Ci%3Ex.txt", ""));
        assert_eq!(r.body, b"12345", "{name}");

        let json = ask(a, &get("/files/?format=json", ""));
        assert_eq!(
            json.header("content-type"),
            Some("application/json"),
            "{name}"
        );
        let text = String::from_utf8(json.body).unwrap();
        assert!(
            text.starts_with("[{\"name\":\"sub dir\",\"type\":\"directory\",")
                && text.contains("{\"name\":\"\\\"q'.txt\",\"type\":\"file\",\"size\":1,")
                && text.contains("{\"name\":\"b.txt\",\"type\":\"file\",\"size\":2,\"mtime\":\"20"),
            "{name}: {text}"
        );
        assert!(
            !text.contains("secret") && !text.contains("escape"),
            "{name}: {text}"
        );

        let head = ask(a, "HEAD /files/ HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(head.code, 200);
        assert_eq!(head.header("content-length"), page.header("content-length"));

        // `/dir` still redirects to `/dir/`, and an index still wins.
        let r = ask(a, &get("/files/sub%20dir?x=1", ""));
        assert_eq!(r.code, 301, "{name}");
        assert_eq!(
            r.header("location"),
            Some("/files/sub%20dir/?x=1"),
            "{name}"
        );
        let r = ask(a, &get("/files/sub%20dir/", ""));
        assert_eq!(r.code, 200, "{name}");
        assert!(String::from_utf8_lossy(&r.body).contains("Index of /files/sub dir/"));
        assert_eq!(
            ask(a, &get("/withindex/", "")).body,
            b"<p>index</p>",
            "{name}"
        );
        // The root lists too, without a parent link.
        let root = String::from_utf8(ask(a, &get("/", "")).body).unwrap();
        assert!(
            root.contains("<a href=\"./files/\">files/</a>"),
            "{name}: {root}"
        );
        assert!(!root.contains("href=\"../\""), "{name}");
    }
}

#[test]
fn chromium_renders_a_listing_and_coded_assets() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| have(c))
    else {
        eprintln!("SKIP: chromium is not installed; scripts/test.sh installs it");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::create_dir(r.join("files")).unwrap();
    std::fs::write(r.join("files/report <2026>.txt"), "r").unwrap();
    std::fs::write(
        r.join("app.html"),
        "<!DOCTYPE html><html><head><link rel=stylesheet href=style.css></head>\
         <body><p id=p>app</p><script src=app.js></script></body></html>",
    )
    .unwrap();
    // The plain stylesheet says blue; its gzip sibling says red. Red in the page means
    // the coded sibling was chosen and decoded; garbled bytes would apply neither.
    let padding = "/* padding */\n".repeat(100);
    std::fs::write(
        r.join("style.css"),
        format!("p {{ color: blue }}\n{padding}"),
    )
    .unwrap();
    std::fs::write(
        r.join("style.css.gz"),
        gzip(format!("p {{ color: red }}\n{padding}").as_bytes()),
    )
    .unwrap();
    // Compressed on the fly (no sibling): if it arrived garbled, nothing would run.
    std::fs::write(
        r.join("app.js"),
        format!(
            "{}\nconst p = document.getElementById('p');\n\
             p.dataset.seen = 'color=' + getComputedStyle(p).color;\n",
            "// a comment that makes the script worth compressing\n".repeat(60)
        ),
    )
    .unwrap();
    let (_etc, servers) = both(
        r,
        &["--precompressed", "--compress", "br,gzip", "--autoindex"],
        "precompressed = true\ncompress = [\"br\", \"gzip\"]\nautoindex = true",
    );
    for (name, srv) in &servers {
        // The asset really is sent coded to a browser's Accept-Encoding.
        let js = ask(srv.addr, &ae("/app.js", "gzip, deflate, br, zstd"));
        assert_eq!(js.header("content-encoding"), Some("br"), "{name}");
        for (path, want) in [
            ("/app.html", "data-seen=\"color=rgb(255, 0, 0)\""),
            ("/files/", "report &lt;2026&gt;.txt</a>"),
        ] {
            let profile = tempfile::tempdir().unwrap();
            let out = Command::new("timeout")
                .args(["60", chromium])
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--virtual-time-budget=3000",
                ])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg("--dump-dom")
                .arg(format!("http://{}{path}", srv.addr))
                .output()
                .unwrap();
            let dom = String::from_utf8_lossy(&out.stdout);
            assert!(
                dom.contains(want),
                "{name}: {path}: {want} not in DOM:\n{dom}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn access_control_by_prefix() {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for d in ["private/sub", "lan/ok"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("public.txt"), "public").unwrap();
    std::fs::write(r.join("private/secret.txt"), "secret").unwrap();
    std::fs::write(r.join("lan/x.txt"), "lan").unwrap();
    std::fs::write(r.join("lan/ok/y.txt"), "ok").unwrap();
    let etc = tempfile::tempdir().unwrap();
    let users = etc.path().join("htpasswd");
    // alice by Apache's own tool where it is installed (bcrypt, as `htpasswd -B`
    // writes it), else by the crate; bob with argon2id.
    let made = have("htpasswd")
        && Command::new("htpasswd")
            .args(["-cbB", "-C", "5"])
            .arg(&users)
            .args(["alice", "s3cret"])
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        std::fs::write(
            &users,
            format!("alice:{}\n", bcrypt::hash("s3cret", 5).unwrap()),
        )
        .unwrap();
    }
    let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
    let argon = argon2::Argon2::default()
        .hash_password(b"hunter2", &salt)
        .unwrap()
        .to_string();
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&format!("bob:{argon}\n"));
    std::fs::write(&users, text).unwrap();

    let auth = format!("/private/={}", users.display());
    let (_etc, servers) = both(
        r,
        &[
            "--deny",
            "/lan/=all",
            "--allow",
            "/lan/=10.0.0.0/8",
            "--allow",
            "/lan/ok/=127.0.0.0/8",
            "--deny",
            "/lan/ok/=all",
            "--auth",
            &auth,
            "--auth-realm",
            "private area",
        ],
        &format!(
            "[[access]]\nprefix = \"/lan/\"\nallow = [\"10.0.0.0/8\"]\ndeny = [\"all\"]\n\
             [[access]]\nprefix = \"/lan/ok/\"\nallow = [\"127.0.0.0/8\"]\ndeny = [\"all\"]\n\
             [[access]]\nprefix = \"/private/\"\nauth_file = {:?}\nrealm = \"private area\"\n",
            users.to_str().unwrap()
        ),
    );
    for (name, srv) in &servers {
        let a = srv.addr;
        assert_eq!(ask(a, &get("/public.txt", "")).body, b"public", "{name}");
        assert_eq!(ask(a, &get("/lan/x.txt", "")).code, 403, "{name}");
        assert_eq!(ask(a, &get("/lan/", "")).code, 403, "{name}");
        assert_eq!(
            ask(a, &get("/lan/ok/y.txt", "")).body,
            b"ok",
            "{name}: longest prefix"
        );
        for path in [
            "/private/secret.txt",
            "/private/",
            "/private/sub/",
            "/%70rivate/secret.txt",
            "/public.txt/../private/secret.txt",
            "//private//secret.txt",
        ] {
            let r = ask(a, &get(path, ""));
            assert_eq!(r.code, 401, "{name}: {path}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Basic realm=\"private area\", charset=\"UTF-8\""),
                "{name}"
            );
        }
        for (user, pass) in [
            ("alice", "wrong"),
            ("carol", "s3cret"),
            ("bob", "s3cret"),
            ("alice", ""),
        ] {
            let r = ask(a, &get("/private/secret.txt", &basic(user, pass)));
            assert_eq!(r.code, 401, "{name}: {user}:{pass}");
        }
        let r = ask(
            a,
            &get("/private/secret.txt", "Authorization: Bearer x\r\n"),
        );
        assert_eq!(r.code, 401, "{name}");
        // The right credentials, repeated on one kept-alive connection (hashed once).
        let mut s = connect(a);
        for _ in 0..5 {
            for (user, pass) in [("alice", "s3cret"), ("bob", "hunter2")] {
                s.write_all(get("/private/secret.txt", &basic(user, pass)).as_bytes())
                    .unwrap();
                let r = read_resp(&mut s, false);
                assert_eq!(r.code, 200, "{name}: {user}");
                assert_eq!(r.body, b"secret", "{name}: {user}");
            }
        }
        // A 401 keeps the connection: the client retries with credentials on it.
        s.write_all(get("/private/secret.txt", "").as_bytes())
            .unwrap();
        assert_eq!(read_resp(&mut s, false).code, 401, "{name}");
        s.write_all(get("/private/secret.txt", &basic("alice", "s3cret")).as_bytes())
            .unwrap();
        assert_eq!(read_resp(&mut s, false).code, 200, "{name}");
    }
}
