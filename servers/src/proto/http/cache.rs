//! An open-file cache: what a path resolved to, kept for the rest of the current second.
//!
//! Without it every request for a small file costs `openat2`, `statx`, `pread` and
//! `close` beside the socket's own read and write; with it a repeated request costs
//! the socket calls only. The one idea: an entry is trusted only during the wall-clock
//! second in which it was opened (the validity lighttpd's default stat cache gives, and
//! nginx's `open_file_cache_valid` makes configurable), then it is dropped and the next
//! request opens the path afresh, through the same `openat2(RESOLVE_BENEATH)`
//! containment check as an uncached one. So a file replaced, removed, or made
//! unreadable is seen within about a second, and nothing ever skips the check for
//! longer than that.
//!
//! An entry also keeps the last whole answer made from it (head and body, for a plain
//! `GET` of a small file, see [`Form`]): made once, it is sent as it is for the rest
//! of the second, so the common request costs no formatting at all. Its `Date` is
//! right because the entry never outlives the second it was made in.
//!
//! Bounds: at most `max` entries per [`super::Http`] instance (one per worker), each
//! holding one descriptor and, for a file no larger than the inline limit, its bytes
//! and one answer holding them again; so memory is at most `max` x 2 x `inline_max`
//! (plus heads) per worker. Only successful opens of
//! regular files are kept; errors are answered fresh every time. A file's
//! precompressed siblings are opened with it and live in its entry, so they are
//! cached (and streamed with `sendfile`) exactly as it is.

use super::encoding::Coding;
use super::Form;
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

/// What a request path resolved to: an open regular file and what its answers need.
#[derive(Debug)]
pub(super) struct Cached {
    pub file: Arc<File>,
    pub len: u64,
    /// The strong validator, formatted once (see [`etag`]).
    pub etag: String,
    pub mtime: i64,
    /// `mtime` as an HTTP date, formatted once.
    pub last_modified: String,
    pub content_type: &'static str,
    /// The whole file when it is small enough to go inline; read at open time, so the
    /// answers of one entry are all of one version of the file.
    pub body: Option<Bytes>,
    /// The file's path below the root (what on-the-fly compression is keyed by).
    pub rel: Box<[u8]>,
    /// The representation's content coding (`None`: the file as it is).
    pub coding: Option<Coding>,
    /// Other representations exist, so answers carry `Vary: Accept-Encoding`.
    pub vary: bool,
    /// The precompressed siblings found next to the file (`FILE.br`, ...).
    pub siblings: Vec<Arc<Cached>>,
    /// The file may be compressed on the fly (type, size and configuration allow it).
    pub compress: bool,
}

/// A strong entity tag from the file's identity: modification time to the nanosecond,
/// size and inode, so a rewrite, a truncation or a replacement by rename each change it
/// (nginx's `"mtime-size"`, finer). Not a hash of the bytes: a write that keeps the
/// size within the same nanosecond is not seen, as with every server that does this.
pub(super) fn etag(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "\"{:x}.{:x}-{:x}-{:x}\"",
        meta.mtime(),
        meta.mtime_nsec(),
        meta.len(),
        meta.ino()
    )
}

/// One cached path: what it resolved to, and the last whole answer made from it.
#[derive(Debug)]
pub(super) struct Slot {
    pub entry: Arc<Cached>,
    /// Which representation (`entry` or one of its siblings) and request form the
    /// answer is for, and its bytes.
    reply: Option<(Arc<Cached>, Form, Bytes)>,
}

impl Slot {
    /// The answer kept for representation `rep` asked for in `form`, if that is the
    /// one kept.
    pub fn reply(&self, rep: &Arc<Cached>, form: Form) -> Option<Bytes> {
        match &self.reply {
            Some((r, f, bytes)) if *f == form && Arc::ptr_eq(r, rep) => Some(bytes.clone()),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct FileCache {
    /// Keyed by request paths, which clients choose; the table is small and emptied
    /// every second, so a fast hash is safe here.
    entries: HashMap<Vec<u8>, Slot, foldhash::quality::RandomState>,
    /// The second the entries were opened in.
    second: i64,
    max: usize,
}

impl FileCache {
    /// A cache of at most `max` entries; 0 turns it off.
    pub fn new(max: usize) -> FileCache {
        FileCache {
            entries: HashMap::default(),
            second: i64::MIN,
            max,
        }
    }

    /// The entry for `key` if it was opened during second `now`.
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&Slot> {
        self.expire(now);
        self.entries.get(key)
    }

    /// Keeps `entry` for the rest of second `now`, if there is room.
    pub fn insert(&mut self, key: Vec<u8>, entry: Arc<Cached>, now: i64) {
        self.expire(now);
        if self.entries.len() < self.max {
            self.entries.insert(key, Slot { entry, reply: None });
        }
    }

    /// Keeps `bytes`, the whole answer to a `form` request for `rep` (a
    /// representation of `key`'s entry), in place of the one kept before.
    pub fn keep_reply(&mut self, key: &[u8], rep: &Arc<Cached>, form: Form, bytes: Bytes) {
        if let Some(slot) = self.entries.get_mut(key) {
            slot.reply = Some((Arc::clone(rep), form, bytes));
        }
    }

    /// Drops everything once the second has turned; also called from the model's
    /// periodic tick, so descriptors of removed files are let go on an idle server.
    pub fn expire(&mut self, now: i64) {
        if now != self.second {
            self.second = now;
            self.entries.clear();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Arc<Cached> {
        Arc::new(Cached {
            file: Arc::new(tempfile::tempfile().unwrap()),
            len: 0,
            etag: String::new(),
            mtime: 0,
            last_modified: String::new(),
            content_type: "text/plain",
            body: None,
            rel: Box::default(),
            coding: None,
            vary: false,
            siblings: Vec::new(),
            compress: false,
        })
    }

    #[test]
    fn entries_live_for_their_second_only() {
        let mut c = FileCache::new(4);
        c.insert(b"a".to_vec(), entry(), 100);
        assert!(c.get(b"a", 100).is_some());
        assert!(c.get(b"b", 100).is_none());
        assert!(c.get(b"a", 101).is_none(), "a new second opens afresh");
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_reply_is_kept_per_representation_and_form_for_the_second() {
        let mut c = FileCache::new(4);
        let (plain, other) = (entry(), entry());
        let f = |minor, tls| Form { minor, tls };
        let (f11, f10, f11_tls) = (f(1, false), f(0, false), f(1, true));
        c.insert(b"a".to_vec(), Arc::clone(&plain), 7);
        assert!(c.get(b"a", 7).unwrap().reply(&plain, f11).is_none());
        c.keep_reply(b"a", &plain, f11, Bytes::from_static(b"answer"));
        let slot = c.get(b"a", 7).unwrap();
        assert_eq!(slot.reply(&plain, f11).as_deref(), Some(&b"answer"[..]));
        assert!(slot.reply(&plain, f10).is_none(), "another HTTP version");
        assert!(slot.reply(&plain, f11_tls).is_none(), "over TLS");
        assert!(slot.reply(&other, f11).is_none(), "another representation");
        c.keep_reply(b"missing", &plain, f11, Bytes::from_static(b"x"));
        assert!(c.get(b"missing", 7).is_none());
        assert!(c.get(b"a", 8).is_none(), "gone with its second");
    }

    #[test]
    fn bounded_and_off_at_zero() {
        let mut c = FileCache::new(2);
        for k in [b"a", b"b", b"c"] {
            c.insert(k.to_vec(), entry(), 5);
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(b"c", 5).is_none());
        let mut off = FileCache::new(0);
        off.insert(b"a".to_vec(), entry(), 5);
        assert!(off.get(b"a", 5).is_none());
    }
}
