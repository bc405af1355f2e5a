//! The whole protocol over a small document root: arbitrary bytes, split at arbitrary
//! points, must only ever produce well-formed responses and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use servers::proto::http::{Http, HttpConfig};
use servers::proto::{Action, ConnId, Outbox, Protocol};
use std::sync::{Arc, OnceLock};

fn config() -> Arc<HttpConfig> {
    static CFG: OnceLock<Arc<HttpConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let root = std::env::temp_dir().join("httpd-fuzz-root");
        let _ = std::fs::create_dir_all(root.join("dir"));
        let _ = std::fs::write(root.join("index.html"), "<h1>x</h1>");
        let _ = std::fs::write(root.join("a.txt"), "0123456789");
        Arc::new(HttpConfig::new(&root).expect("the fuzz root was just created"))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut http = Http::new(config());
    let id = ConnId(1);
    let mut out = Outbox::new();
    let mut conn = http.open(id, "127.0.0.1:1".parse().unwrap(), &mut out);
    // The first byte chooses the chunk size the bytes arrive in.
    let (step, rest) = match data.split_first() {
        Some((s, r)) => (usize::from(*s).max(1), r),
        None => (1, data),
    };
    let mut pending: Vec<u8> = Vec::new();
    for chunk in rest.chunks(step) {
        pending.extend_from_slice(chunk);
        let used = http.data(id, &mut conn, &pending, &mut out);
        assert!(used <= pending.len());
        pending.drain(..used);
        for a in out.drain() {
            if let Action::Send { data, .. } = a {
                assert!(data.starts_with(b"HTTP/1.1 ") || !data.is_empty());
            }
        }
    }
    http.timeout(id, &mut conn, &mut out);
    http.closed(id, conn, &mut out);
});
