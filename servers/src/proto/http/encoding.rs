//! Content codings: which representation of a file a request gets (`Accept-Encoding`
//! with q-values, RFC 9110 §12.5.3), on-the-fly compression, and the memory cache of
//! what was compressed.
//!
//! The one idea: a coded representation is just another [`Cached`] entry — its own
//! length, strong ETag, `Content-Encoding` and bytes (a precompressed sibling's open
//! file, or a compressed body in memory) — so conditionals, ranges, HEAD and 304 apply
//! to it through the same send path as to the plain file.
//!
//! Compressed bodies are keyed by path, ETag and coding (a new version of a file has a
//! new ETag, so a stale body is never served, only evicted) and bounded by a byte
//! budget shared by every loop of the process; oldest first out. A file larger than
//! the per-file limit (never more than the budget) is not compressed: compressing it on
//! the event loop would stall every other connection of that loop, so it goes out as
//! it is.

use super::cache::Cached;
use super::request::FieldLines;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::sync::{Arc, Mutex};

/// A content coding this server can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// In the server's order of preference when a client rates several alike.
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The `Content-Encoding` token (and the config's name).
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The precompressed sibling's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }

    pub fn from_token(t: &str) -> Option<Coding> {
        Coding::ALL.into_iter().find(|c| c.token() == t)
    }
}

/// How a request rates the codings, in thousandths (q=0.5 → 500).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accept {
    /// Per coding in [`Coding::ALL`] order: the q it was given, if named.
    named: [Option<u16>; 3],
    identity: Option<u16>,
    star: Option<u16>,
}

/// Parses a `q` parameter's value (`0`, `0.5`, `1.000`); `None` if malformed.
fn qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

impl Accept {
    pub fn parse(lines: &FieldLines<'_>) -> Accept {
        let mut a = Accept::default();
        for member in lines.members() {
            let mut parts = member.split(|&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            let mut q = Some(1000);
            for p in parts {
                let p = p.trim_ascii();
                if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                    q = qvalue(&p[2..]);
                }
            }
            // A malformed weight makes the member meaningless: skip it.
            let Some(q) = q else { continue };
            let eq = |t: &str| name.eq_ignore_ascii_case(t.as_bytes());
            if eq("*") {
                a.star = Some(q);
            } else if eq("identity") {
                a.identity = Some(q);
            } else if eq("x-gzip") {
                // RFC 9110 §8.4.1.3: the same coding.
                a.named[2] = Some(q);
            } else if let Some(i) = Coding::ALL.iter().position(|c| eq(c.token())) {
                a.named[i] = Some(q);
            }
        }
        a
    }

    fn q(&self, c: Coding) -> u16 {
        let i = Coding::ALL.iter().position(|&x| x == c).unwrap_or(0);
        self.named[i].or(self.star).unwrap_or(0)
    }

    /// The coding to send among those `available`, or `None` for the file as it is.
    ///
    /// The highest q above 0 wins, ties going to the one `available` lists first (the
    /// caller lists precompressed siblings before codings it would have to compute).
    /// The plain file is always acceptable unless refused (RFC 9110 §12.5.3) but only
    /// preferred when the client rates `identity` (or `*`) explicitly above every
    /// offered coding; when everything is refused, the plain file goes out anyway, as
    /// nginx does, rather than a 406.
    pub fn choose(&self, available: impl Iterator<Item = Coding>) -> Option<Coding> {
        let mut best: Option<(u16, Coding)> = None;
        for c in available {
            let q = self.q(c);
            if q > 0 && best.map_or(true, |(bq, _)| q > bq) {
                best = Some((q, c));
            }
        }
        let (q, c) = best?;
        match self.identity.or(self.star) {
            Some(iq) if iq > q => None,
            _ => Some(c),
        }
    }
}

/// Whether a media type is text-like enough to be worth compressing on the fly.
pub fn compressible(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim();
    t.starts_with("text/")
        || matches!(
            t,
            "application/json" | "application/xml" | "image/svg+xml" | "application/wasm"
        )
}

/// `data` compressed with `coding` at a level meant for serving: brotli 5, gzip 6,
/// zstd 3 (each close to its speed/ratio knee).
pub fn compress(coding: Coding, data: &[u8]) -> std::io::Result<Vec<u8>> {
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 3),
                flate2::Compression::new(6),
            );
            e.write_all(data)?;
            e.finish()
        }
        Coding::Br => {
            let mut out = Vec::with_capacity(data.len() / 3);
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data)?;
                w.flush()?;
            }
            Ok(out)
        }
        Coding::Zstd => zstd::bulk::compress(data, 3),
    }
}

type Key = (Box<[u8]>, Box<str>, Coding);

/// Compressed bodies by file version and coding, within a byte budget.
#[derive(Debug)]
pub struct CompressCache {
    inner: Mutex<Inner>,
    budget: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Arc<Cached>>,
    order: VecDeque<Key>,
    bytes: u64,
}

impl CompressCache {
    pub fn new(budget: u64) -> CompressCache {
        CompressCache {
            inner: Mutex::new(Inner::default()),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock left at worst a stale map: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, rel: &[u8], etag: &str, coding: Coding) -> Option<Arc<Cached>> {
        let key: Key = (rel.into(), etag.into(), coding);
        self.lock().map.get(&key).cloned()
    }

    /// Keeps `entry` (whose body is `size` bytes), evicting the oldest to make room;
    /// an entry larger than the whole budget is not kept.
    pub fn insert(&self, rel: &[u8], etag: &str, coding: Coding, entry: Arc<Cached>, size: u64) {
        if size > self.budget {
            return;
        }
        let key: Key = (rel.into(), etag.into(), coding);
        let mut g = self.lock();
        if g.map.contains_key(&key) {
            return;
        }
        while g.bytes + size > self.budget {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            if let Some(e) = g.map.remove(&old) {
                g.bytes -= e.len;
            }
        }
        g.bytes += size;
        g.order.push_back(key.clone());
        g.map.insert(key, entry);
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

/// An entity tag for a coded representation of the file tagged `etag`: the coding's
/// name inside the quotes, so each representation has its own strong tag.
pub fn coded_etag(etag: &str, coding: Coding) -> String {
    match etag.strip_suffix('"') {
        Some(open) => format!("{open}-{}\"", coding.token()),
        None => etag.to_string(),
    }
}

/// A response body for a coded representation held in memory.
pub fn in_memory(plain: &Cached, coding: Coding, body: Vec<u8>) -> Cached {
    Cached {
        file: Arc::clone(&plain.file),
        len: body.len() as u64,
        etag: coded_etag(&plain.etag, coding),
        mtime: plain.mtime,
        last_modified: plain.last_modified.clone(),
        content_type: plain.content_type,
        body: Some(Bytes::from(body)),
        rel: plain.rel.clone(),
        coding: Some(coding),
        vary: true,
        siblings: Vec::new(),
        compress: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Accept {
        let mut l = FieldLines::default();
        l.push(v.as_bytes());
        Accept::parse(&l)
    }

    fn pick(v: &str, avail: &[Coding]) -> Option<Coding> {
        accept(v).choose(avail.iter().copied())
    }

    #[test]
    fn negotiation() {
        use Coding::*;
        let all = [Br, Zstd, Gzip];
        assert_eq!(pick("gzip, deflate, br, zstd", &all), Some(Br));
        assert_eq!(pick("gzip", &all), Some(Gzip));
        assert_eq!(pick("x-gzip", &all), Some(Gzip));
        assert_eq!(pick("br;q=0.5, gzip;q=0.8", &all), Some(Gzip));
        assert_eq!(pick("br;q=0, gzip", &[Br]), None);
        assert_eq!(pick("*", &[Gzip]), Some(Gzip));
        assert_eq!(pick("*;q=0", &all), None);
        assert_eq!(pick("*, br;q=0", &[Br, Gzip]), Some(Gzip));
        assert_eq!(pick("gzip;q=0.5, identity", &all), None);
        assert_eq!(pick("gzip;q=1.0, identity;q=0.9", &all), Some(Gzip));
        assert_eq!(pick("identity", &all), None);
        assert_eq!(pick("", &all), None);
        assert_eq!(pick("GZIP;Q=0.001", &all), Some(Gzip));
        assert_eq!(
            pick("gzip;q=2", &all),
            None,
            "malformed q ignores the member"
        );
        assert_eq!(pick("gzip;q=0.1234", &all), None);
        assert_eq!(pick("deflate", &all), None);
        assert_eq!(pick("gzip", &[]), None);
        // Equal q: the first offered (the caller puts siblings first) wins.
        assert_eq!(pick("gzip, br", &[Gzip, Br]), Some(Gzip));
        assert_eq!(pick("gzip;q=0.5, br", &[Gzip, Br]), Some(Br));
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"0.25"), Some(250));
        assert_eq!(qvalue(b"1.5"), None);
        assert_eq!(qvalue(b""), None);
        assert_eq!(qvalue(b"0.x"), None);
    }

    #[test]
    fn round_trips() {
        let text = "hello hello hello compressible text\n".repeat(200);
        for c in Coding::ALL {
            let z = compress(c, text.as_bytes()).unwrap();
            assert!(z.len() < text.len() / 4, "{c:?}");
            let mut back = Vec::new();
            match c {
                Coding::Gzip => {
                    use std::io::Read;
                    flate2::read::GzDecoder::new(&z[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Br => {
                    brotli::BrotliDecompress(&mut &z[..], &mut back).unwrap();
                }
                Coding::Zstd => back = zstd::decode_all(&z[..]).unwrap(),
            }
            assert_eq!(back, text.as_bytes(), "{c:?}");
        }
    }

    fn body(n: usize) -> Arc<Cached> {
        let plain = Cached {
            file: Arc::new(tempfile::tempfile().unwrap()),
            len: 0,
            etag: "\"e\"".into(),
            mtime: 0,
            last_modified: String::new(),
            content_type: "text/plain",
            body: None,
            rel: Box::default(),
            coding: None,
            vary: true,
            siblings: Vec::new(),
            compress: true,
        };
        Arc::new(in_memory(&plain, Coding::Gzip, vec![0; n]))
    }

    #[test]
    fn cache_keeps_to_its_budget_oldest_out() {
        let c = CompressCache::new(100);
        c.insert(b"a", "\"1\"", Coding::Gzip, body(60), 60);
        c.insert(b"b", "\"1\"", Coding::Gzip, body(30), 30);
        assert_eq!(c.bytes(), 90);
        c.insert(b"c", "\"1\"", Coding::Gzip, body(30), 30);
        assert_eq!(c.bytes(), 60, "the oldest made room");
        assert!(c.get(b"a", "\"1\"", Coding::Gzip).is_none());
        assert!(c.get(b"b", "\"1\"", Coding::Gzip).is_some());
        assert!(
            c.get(b"b", "\"2\"", Coding::Gzip).is_none(),
            "another version"
        );
        assert!(c.get(b"b", "\"1\"", Coding::Br).is_none(), "another coding");
        c.insert(b"d", "\"1\"", Coding::Gzip, body(101), 101);
        assert!(
            c.get(b"d", "\"1\"", Coding::Gzip).is_none(),
            "larger than the budget"
        );
        assert_eq!(c.bytes(), 60);
    }

    #[test]
    fn etags_differ_per_coding() {
        assert_eq!(coded_etag("\"a-1\"", Coding::Br), "\"a-1-br\"");
        assert_ne!(
            coded_etag("\"a-1\"", Coding::Gzip),
            coded_etag("\"a-1\"", Coding::Zstd)
        );
    }
}
