//! An on-disk B+tree in one file: ordered byte-string keys, copy-on-write pages, two
//! meta pages, and a commit that is one fsync boundary. It survives `kill -9` at any
//! instant and reopens at the last committed batch.
//!
//! # Design note
//!
//! **File.** A sequence of 4 KiB pages. Pages 0 and 1 are the two *meta pages*; every
//! other page is a branch, a leaf, an overflow page, a freelist page, or free. A meta
//! page holds: magic, format version, page size, the transaction id `txn`, the root
//! page, the tree depth, the number of entries, the high-water mark `npages` (pages
//! `[0, npages)` belong to the database; anything after is scrap from an interrupted
//! batch), and the head of the freelist chain with its length.
//!
//! **Checksums.** Every page, meta pages included, starts with a CRC-32C over the page
//! number and bytes 4..4096. A page is parsed only after its checksum and every slot
//! offset in it have been checked, so a flipped bit, a torn write or a page at the wrong
//! offset is reported as [`Error::Corrupt`] naming the page number, never followed.
//!
//! **Pages.** Leaves and branches are slotted pages (LMDB's layout): a 16-byte header,
//! an array of 2-byte slot offsets growing up, cells growing down from the end. A leaf
//! cell is `klen:u16 vlen:u32 key value`; a branch holds its leftmost child in the
//! header and cells `klen:u16 child:u64 key`, child `i+1` holding keys `>= key i`.
//! Keys are at most [`MAX_KEY`] (1024) bytes. A value whose cell would exceed
//! [`MAX_INLINE_CELL`] (1200 bytes) is moved to a chain of overflow pages (4070 value
//! bytes each) and the leaf keeps its first page number; values up to [`MAX_VALUE`]
//! (16 MiB) are accepted, larger ones are refused with [`Error::ValueTooLarge`]. Both
//! bounds keep every cell under a third of a page, so splitting an overfull node in
//! two by bytes always yields two nodes that fit.
//!
//! **Copy-on-write.** A write batch never modifies a page reachable from the committed
//! root. The first time it touches a page it copies it to a newly allocated page
//! number (and the parent's child pointer, and so on up to a new root); the old page
//! number is recorded as *freed by this batch*. On the way back up, a leaf grown past a
//! page first spills entries into a neighbour with room (as SQLite's balance does,
//! keeping pages ~84% full under random inserts instead of ~68%), and otherwise splits
//! in two by bytes; branches split. A node under a quarter full after a delete is
//! merged with a sibling, or, if both do not fit in one page, the two are re-split
//! evenly. Branches hold the shortest separator between two leaves, not a whole key.
//!
//! **Commit**, for batch `txn = N+1`, in this order:
//! 1. the freelist is rewritten into fresh pages (the previous list's pages are freed);
//! 2. every new page is written (`pwrite`), the file grown to `npages` if a page taken
//!    and freed again within the batch left its end unwritten, then `fdatasync`;
//! 3. the meta page for `N+1` is written into slot `(N+1) % 2`, then `fdatasync`.
//!
//! **What is on disk at each instant, and why reopen finds the last commit.** Reopen
//! reads both meta pages and takes the valid one (checksum and magic) with the larger
//! `txn`. Before step 3 starts, the meta for `N` sits intact in the other slot, and
//! every page its tree and freelist reach is untouched: batch `N+1` only writes to
//! pages that were free in `N` (beyond `npages`, or on `N`'s freelist), and the pages
//! `N+1` itself frees were still reachable from `N`, so they are not reused until batch
//! `N+2`, which starts only after meta `N+1` is durable. A crash during step 3 leaves a
//! torn meta page whose checksum fails, so reopen again picks `N`. After step 3's
//! fsync returns, meta `N+1` wins. Hence a reopen always lands on the last batch whose
//! `commit` returned, or on the one being committed if its meta reached the disk.
//! Page writes that never got a meta (scrap past `npages`, or reused free pages) are
//! simply free space in the state reopen picks. The only loss this design cannot
//! mask is a *durable* meta page later damaged by the medium; then the older meta is
//! used and `check` reports any page the newer batches overwrote. Either way a
//! rejected meta page is never silent: the open logs a warning naming the page, why
//! it was rejected and which one was chosen, and [`Db::meta_faults`] (and `check`'s
//! [`Stats`]) keep the report, so `btree check` warns and `--strict` fails.
//!
//! **Free pages.** Pages freed by batch `T` were part of snapshot `T-1`. They become
//! reusable by the writer once no open [`Snapshot`] is older than `T` (readers are
//! in-process; each registers its `txn`) and never within batch `T` itself; pages
//! allocated *and* freed inside one batch are reused at once. On disk the freelist is a
//! chain of pages listing every free page number, written copy-on-write like the
//! tree, so it is exactly as crash-safe: after reopen no reader exists and every listed
//! page is reusable. `check` verifies that every page below `npages` is accounted for
//! exactly once: meta, tree, overflow, freelist page, or listed free.
//!
//! **Readers** take a [`Snapshot`]: a copy of the committed meta. They share a bounded
//! page cache (CLOCK) with the writer; because a page number's content changes only
//! after it is freed and reused, and no reused page is reachable from a live snapshot,
//! the cache needs no invalidation beyond replacing the pages a commit writes.
//!
//! **Concurrency.** One writer at a time ([`Db::write`] blocks on a mutex), any number
//! of readers, one process (the file is `flock`ed exclusively on open).

mod cache;
mod check;
mod cursor;
mod node;
mod page;
mod write;

pub use check::Stats;
pub use cursor::Range;
pub use page::{MAX_INLINE_CELL, MAX_KEY, MAX_VALUE, PAGE_SIZE};
pub use write::WriteBatch;

use cache::PageCache;
use nix::fcntl::{Flock, FlockArg};
use page::{rd32, rd64, wr32, wr64, Page, ValRef, KIND_META};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const MAGIC: &[u8; 8] = b"SYSNBTR1";
const VERSION: u32 = 1;
/// Deepest tree accepted from disk; a deeper one is a corrupt (or cyclic) tree.
const MAX_DEPTH: u32 = 40;

/// Errors of the B+tree; each names the call and the file, and corruption names the page.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path}: page {pgno} is corrupt: {reason}")]
    Corrupt {
        path: PathBuf,
        pgno: u64,
        reason: String,
    },
    #[error("{path}: locked by another process (flock): {source}")]
    Locked { path: PathBuf, source: nix::Error },
    #[error("key of {len} bytes is over the {max}-byte limit")]
    KeyTooLarge { len: usize, max: usize },
    #[error("value of {len} bytes is over the {max}-byte limit")]
    ValueTooLarge { len: usize, max: usize },
    #[error("{path}: an earlier commit failed after writing began; reopen the database")]
    Poisoned { path: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tuning knobs for [`Db::open_with`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Pages kept in the shared page cache (4 KiB each on disk).
    pub cache_pages: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { cache_pages: 4096 }
    }
}

/// The contents of a meta page: one committed state of the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub txn: u64,
    pub root: u64,
    pub npages: u64,
    pub freelist: u64,
    pub nfree: u64,
    pub entries: u64,
    pub depth: u32,
}

impl Meta {
    fn encode(&self) -> Box<[u8]> {
        let mut b = page::blank();
        b[4] = KIND_META;
        b[8..16].copy_from_slice(MAGIC);
        wr32(&mut b, 16, VERSION);
        wr32(&mut b, 20, PAGE_SIZE as u32);
        wr64(&mut b, 24, self.txn);
        wr64(&mut b, 32, self.root);
        wr64(&mut b, 40, self.npages);
        wr64(&mut b, 48, self.freelist);
        wr64(&mut b, 56, self.nfree);
        wr64(&mut b, 64, self.entries);
        wr32(&mut b, 72, self.depth);
        page::seal(self.txn % 2, &mut b);
        b
    }

    fn decode(slot: u64, b: &[u8]) -> Result<Meta, String> {
        if rd32(b, 0) != page::page_checksum(slot, b) {
            return Err("checksum mismatch".into());
        }
        if b[4] != KIND_META || &b[8..16] != MAGIC {
            return Err("not a meta page (bad magic)".into());
        }
        if rd32(b, 16) != VERSION || rd32(b, 20) != PAGE_SIZE as u32 {
            return Err(format!(
                "unsupported version {} / page size {}",
                rd32(b, 16),
                rd32(b, 20)
            ));
        }
        let m = Meta {
            txn: rd64(b, 24),
            root: rd64(b, 32),
            npages: rd64(b, 40),
            freelist: rd64(b, 48),
            nfree: rd64(b, 56),
            entries: rd64(b, 64),
            depth: rd32(b, 72),
        };
        if m.txn % 2 != slot
            || m.npages < 2
            || m.depth > MAX_DEPTH
            || (m.root == 0) != (m.depth == 0)
            || (m.root != 0 && (m.root < 2 || m.root >= m.npages))
            || (m.freelist != 0 && (m.freelist < 2 || m.freelist >= m.npages))
        {
            return Err(format!("inconsistent fields {m:?}"));
        }
        Ok(m)
    }
}

/// A meta page that failed validation when the file was opened. The other one was
/// used; if the rejected page was the newer (a medium fault, or a torn write of the
/// batch being committed when the process died), that batch is not in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaFault {
    /// Which meta page: 0 or 1.
    pub slot: u64,
    /// Why it was rejected (checksum mismatch, bad magic, ...).
    pub reason: String,
    /// The transaction id stored in the rejected page, unverified.
    pub claimed_txn: Option<u64>,
}

impl std::fmt::Display for MetaFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "meta page {}: {}", self.slot, self.reason)?;
        if let Some(t) = self.claimed_txn {
            write!(f, " (its unverified txn field reads {t})")?;
        }
        Ok(())
    }
}

/// Free-page bookkeeping, owned by whoever holds the writer lock.
#[derive(Default)]
pub(crate) struct FreeState {
    /// Reusable now.
    pub ready: Vec<u64>,
    /// Freed by batch `txn`, reusable once no snapshot older than `txn` is open.
    pub pending: Vec<(u64, Vec<u64>)>,
    /// Pages holding the committed freelist.
    pub list_pages: Vec<u64>,
}

/// The committed meta and the open snapshots, under one lock so a reader registers
/// atomically with the state it reads.
struct ReadState {
    meta: Meta,
    readers: BTreeMap<u64, usize>,
}

pub(crate) struct Shared {
    path: PathBuf,
    file: Flock<File>,
    cache: Mutex<PageCache>,
    state: Mutex<ReadState>,
    writer: Mutex<FreeState>,
    poisoned: AtomicBool,
    /// Meta pages rejected when the file was opened.
    meta_faults: Vec<MetaFault>,
}

/// Lock a mutex, tolerating poisoning: every critical section here leaves its data
/// consistent before anything that could panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn io(&self, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, pgno: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            pgno,
            reason: reason.into(),
        }
    }

    /// Read one raw page from disk, bypassing the cache.
    pub(crate) fn read_raw(&self, pgno: u64, npages: u64) -> Result<Box<[u8]>> {
        if pgno < 2 || pgno >= npages {
            return Err(self.corrupt(pgno, format!("page number out of range [2, {npages})")));
        }
        let mut buf = page::blank();
        self.file
            .read_exact_at(&mut buf, pgno * PAGE_SIZE as u64)
            .map_err(|e| self.io("pread", e))?;
        Ok(buf)
    }

    /// A validated tree page, through the cache.
    pub(crate) fn page(&self, pgno: u64, npages: u64) -> Result<Arc<Page>> {
        if let Some(p) = lock(&self.cache).get(pgno) {
            return Ok(p);
        }
        let buf = self.read_raw(pgno, npages)?;
        let p = Arc::new(Page::parse(pgno, buf).map_err(|r| self.corrupt(pgno, r))?);
        lock(&self.cache).insert(p.clone());
        Ok(p)
    }

    /// The whole value of an overflow chain.
    pub(crate) fn read_overflow(&self, mut pgno: u64, len: u32, npages: u64) -> Result<Vec<u8>> {
        let len = len as usize;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let buf = self.read_raw(pgno, npages)?;
            let (next, data) =
                page::parse_overflow(pgno, &buf).map_err(|r| self.corrupt(pgno, r))?;
            if data.is_empty() || out.len() + data.len() > len {
                return Err(self.corrupt(pgno, "overflow chain length disagrees with the leaf"));
            }
            out.extend_from_slice(data);
            if out.len() < len && next == 0 {
                return Err(self.corrupt(pgno, "overflow chain ends early"));
            }
            pgno = next;
        }
        Ok(out)
    }

    pub(crate) fn value(&self, v: ValRef<'_>, npages: u64) -> Result<Vec<u8>> {
        match v {
            ValRef::Inline(b) => Ok(b.to_vec()),
            ValRef::Overflow { pgno, len } => self.read_overflow(pgno, len, npages),
        }
    }

    /// Descend from the root to the leaf that may hold `key`.
    pub(crate) fn find_leaf(&self, meta: &Meta, key: &[u8]) -> Result<Option<Arc<Page>>> {
        if meta.root == 0 {
            return Ok(None);
        }
        let mut pgno = meta.root;
        for level in 1..=meta.depth {
            let p = self.page(pgno, meta.npages)?;
            if p.is_leaf() != (level == meta.depth) {
                return Err(self.corrupt(
                    pgno,
                    format!(
                        "page kind does not match its level {level} of {}",
                        meta.depth
                    ),
                ));
            }
            if p.is_leaf() {
                return Ok(Some(p));
            }
            pgno = p.child(p.child_index(key));
        }
        Err(self.corrupt(pgno, "tree deeper than recorded"))
    }
}

/// An open database file.
pub struct Db {
    shared: Arc<Shared>,
}

impl Db {
    /// Open (creating if absent) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(path, Options::default())
    }

    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        let io = |op, source| Error::Io {
            op,
            path: path.clone(),
            source,
        };
        // A missing or empty file (say, from mktemp) becomes a new database.
        let empty = std::fs::metadata(&path)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        if empty {
            create(&path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, source)| {
            Error::Locked {
                path: path.clone(),
                source,
            }
        })?;
        let file_pages = file.metadata().map_err(|e| io("fstat", e))?.len() / PAGE_SIZE as u64;
        let mut metas = Vec::new();
        let mut faults = Vec::new();
        for slot in 0..2u64 {
            let mut buf = page::blank();
            let reason = match file.read_exact_at(&mut buf, slot * PAGE_SIZE as u64) {
                Ok(()) => match Meta::decode(slot, &buf) {
                    // Every page a meta names was written (and synced) before it.
                    Ok(m) if m.npages > file_pages => {
                        format!("names {} pages, file holds {file_pages}", m.npages)
                    }
                    Ok(m) => {
                        metas.push((slot, m));
                        continue;
                    }
                    Err(r) => r,
                },
                Err(e) => format!("pread: {e}"),
            };
            // The txn field as stored, damage and all: a hint whether the rejected
            // page was the newer one (a lost batch) or the older.
            let claimed_txn = (&buf[8..16] == MAGIC).then(|| rd64(&buf, 24));
            faults.push(MetaFault {
                slot,
                reason,
                claimed_txn,
            });
        }
        let Some((slot, meta)) = metas.into_iter().max_by_key(|(_, m)| m.txn) else {
            let reasons: Vec<String> = faults.iter().map(MetaFault::to_string).collect();
            return Err(Error::Corrupt {
                path,
                pgno: 0,
                reason: format!("no valid meta page ({})", reasons.join("; ")),
            });
        };
        for f in &faults {
            tracing::warn!(
                path = %path.display(),
                rejected = f.slot,
                reason = %f.reason,
                claimed_txn = %f.claimed_txn.map_or("unknown".into(), |t| t.to_string()),
                chosen = slot,
                txn = meta.txn,
                "btree meta page rejected, opened from the other; if it was the newer, its batch is lost"
            );
        }
        if faults.is_empty() {
            tracing::debug!(path = %path.display(), chosen = slot, txn = meta.txn, "btree meta page chosen: both valid, higher txn");
        }
        let shared = Shared {
            path,
            file,
            cache: Mutex::new(PageCache::new(opts.cache_pages)),
            state: Mutex::new(ReadState {
                meta,
                readers: BTreeMap::new(),
            }),
            writer: Mutex::new(FreeState::default()),
            poisoned: AtomicBool::new(false),
            meta_faults: faults,
        };
        let (ready, list_pages) = load_freelist(&shared, &meta)?;
        *lock(&shared.writer) = FreeState {
            ready,
            pending: Vec::new(),
            list_pages,
        };
        tracing::debug!(path = %shared.path.display(), txn = meta.txn, entries = meta.entries, "btree opened");
        Ok(Db {
            shared: Arc::new(shared),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A consistent read-only view of the last committed batch.
    pub fn read(&self) -> Snapshot {
        let mut st = lock(&self.shared.state);
        let meta = st.meta;
        *st.readers.entry(meta.txn).or_insert(0) += 1;
        Snapshot {
            shared: self.shared.clone(),
            meta,
        }
    }

    /// Start the (single) write batch; blocks while another batch is open, so a thread
    /// must not open a second batch before committing or dropping its first. A batch
    /// keeps the pages it changes in memory until commit.
    pub fn write(&self) -> Result<WriteBatch<'_>> {
        if self.shared.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned {
                path: self.shared.path.clone(),
            });
        }
        WriteBatch::begin(&self.shared)
    }

    /// Walk the whole file and verify order, balance, checksums and page accounting.
    /// Runs on a snapshot, so a concurrent writer cannot reuse the pages it reads.
    pub fn check(&self) -> Result<Stats> {
        let snap = self.read();
        check::walk(&self.shared, &snap.meta, true)
    }

    /// Height, page counts and fill factor (a walk of the tree, without the strict checks).
    pub fn stats(&self) -> Result<Stats> {
        let snap = self.read();
        check::walk(&self.shared, &snap.meta, false)
    }

    /// Meta pages rejected when this file was opened (empty when both were valid).
    /// `check` and `stats` report them too.
    pub fn meta_faults(&self) -> &[MetaFault] {
        &self.shared.meta_faults
    }

    /// Page-cache hits and misses since open.
    pub fn cache_counters(&self) -> (u64, u64) {
        let c = lock(&self.shared.cache);
        (c.hits, c.misses)
    }
}

/// Create a new database file atomically: build it beside the target, fsync, rename,
/// fsync the directory, so a crash never leaves a file without valid meta pages.
fn create(path: &Path) -> Result<()> {
    let io = |op, source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.creating"));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    for txn in 0..2u64 {
        let m = Meta {
            txn,
            root: 0,
            npages: 2,
            freelist: 0,
            nfree: 0,
            entries: 0,
            depth: 0,
        };
        f.write_all_at(&m.encode(), txn * PAGE_SIZE as u64)
            .map_err(|e| io("pwrite", e))?;
    }
    f.sync_all().map_err(|e| io("fsync", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::Io {
            op: "fsync dir",
            path: dir,
            source: e,
        })?;
    Ok(())
}

fn load_freelist(shared: &Shared, meta: &Meta) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut free = Vec::new();
    let mut list_pages = Vec::new();
    let mut pgno = meta.freelist;
    while pgno != 0 {
        if list_pages.len() as u64 > meta.npages {
            return Err(shared.corrupt(pgno, "freelist chain loops"));
        }
        let buf = shared.read_raw(pgno, meta.npages)?;
        let (next, list) = page::parse_freelist(pgno, &buf).map_err(|r| shared.corrupt(pgno, r))?;
        for &p in &list {
            if p < 2 || p >= meta.npages {
                return Err(shared.corrupt(
                    pgno,
                    format!("freelist names page {p} outside [2, {})", meta.npages),
                ));
            }
        }
        free.extend(list);
        list_pages.push(pgno);
        pgno = next;
    }
    if free.len() as u64 != meta.nfree {
        return Err(shared.corrupt(
            meta.txn % 2,
            format!(
                "meta counts {} free pages, freelist holds {}",
                meta.nfree,
                free.len()
            ),
        ));
    }
    Ok((free, list_pages))
}

/// A read-only view of one committed batch; pages it reaches are not reused while it lives.
pub struct Snapshot {
    shared: Arc<Shared>,
    meta: Meta,
}

impl Snapshot {
    /// The batch id this snapshot shows.
    pub fn txn(&self) -> u64 {
        self.meta.txn
    }

    pub fn len(&self) -> u64 {
        self.meta.entries
    }

    pub fn is_empty(&self) -> bool {
        self.meta.entries == 0
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(leaf) = self.shared.find_leaf(&self.meta, key)? else {
            return Ok(None);
        };
        match leaf.leaf_seek(key) {
            (i, true) => Ok(Some(self.shared.value(leaf.val(i), self.meta.npages)?)),
            _ => Ok(None),
        }
    }

    /// Pairs with `lo <= key <= hi` (per the bounds) in key order; `.rev()` for descending.
    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Range<'_> {
        Range::new(self, lo.map(|k| k.to_vec()), hi.map(|k| k.to_vec()))
    }

    /// Every pair, in key order.
    pub fn iter(&self) -> Range<'_> {
        Range::new(self, Bound::Unbounded, Bound::Unbounded)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        if let Some(n) = st.readers.get_mut(&self.meta.txn) {
            *n -= 1;
            if *n == 0 {
                st.readers.remove(&self.meta.txn);
            }
        }
    }
}
