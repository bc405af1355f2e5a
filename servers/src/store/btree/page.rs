//! The on-disk page format: layout constants, the checksum, validation of a page read
//! from disk, and encoding of in-memory nodes back into pages.
//!
//! The one idea: a page is trusted only after [`Page::parse`] has checked its checksum
//! (which covers the page number, so a page written to the wrong place fails too) and
//! every offset in it; after that, the accessors can slice without further checks.

/// Size of every page in the file.
pub const PAGE_SIZE: usize = 4096;
/// Bytes before the first slot of a leaf page.
pub const LEAF_HDR: usize = 16;
/// Bytes before the first slot of a branch page (the header plus the leftmost child).
pub const BRANCH_HDR: usize = 24;
/// Header of an overflow page: common header, next page, bytes used.
pub const OVERFLOW_HDR: usize = 26;
/// Value bytes carried by one overflow page.
pub const OVERFLOW_DATA: usize = PAGE_SIZE - OVERFLOW_HDR;
/// Header of a freelist page: common header, next page.
pub const FREELIST_HDR: usize = 24;
/// Page numbers carried by one freelist page.
pub const FREELIST_CAP: usize = (PAGE_SIZE - FREELIST_HDR) / 8;

/// Largest key accepted. With this bound a branch cell is under a third of a page, so
/// splitting any overfull node in two always yields two nodes that fit.
pub const MAX_KEY: usize = 1024;
/// Largest value accepted (the rest of a large value lives in overflow pages).
pub const MAX_VALUE: usize = 16 << 20;
/// A leaf cell (header + key + value) larger than this moves its value to overflow
/// pages; kept under a third of a leaf's space for the same reason as [`MAX_KEY`].
pub const MAX_INLINE_CELL: usize = 1200;
/// A non-root node whose encoded size falls below this is merged with or refilled
/// from a sibling.
pub const UNDERFULL: usize = PAGE_SIZE / 4;

/// Flag in a leaf cell's value length: the value lives in an overflow chain.
pub const OVERFLOW_FLAG: u32 = 0x8000_0000;

/// Page kinds, byte 4 of every page.
pub const KIND_BRANCH: u8 = 1;
pub const KIND_LEAF: u8 = 2;
pub const KIND_OVERFLOW: u8 = 3;
pub const KIND_FREELIST: u8 = 4;
pub const KIND_META: u8 = 5;

/// CRC-32C (Castagnoli) of `data`, continuing from `crc` (start with 0); the crate
/// uses the SSE 4.2 / ARMv8 CRC instructions when the CPU has them.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// The checksum stored in bytes 0..4: it covers the page number, so a page that
/// landed at the wrong offset fails as surely as a flipped bit.
pub fn page_checksum(pgno: u64, buf: &[u8]) -> u32 {
    crc32c(crc32c(0, &pgno.to_le_bytes()), &buf[4..PAGE_SIZE])
}

/// Stamp the checksum into a fully built page.
pub fn seal(pgno: u64, buf: &mut [u8]) {
    let c = page_checksum(pgno, buf);
    buf[0..4].copy_from_slice(&c.to_le_bytes());
}

pub fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub fn rd64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
pub fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn wr32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn wr64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A zeroed page buffer.
pub fn blank() -> Box<[u8]> {
    vec![0u8; PAGE_SIZE].into_boxed_slice()
}

/// A leaf value as stored in a page.
#[derive(Clone, Copy, Debug)]
pub enum ValRef<'a> {
    Inline(&'a [u8]),
    Overflow { pgno: u64, len: u32 },
}

/// A validated tree page (branch or leaf) read from disk.
///
/// # Invariants
/// `kind` is branch or leaf, and for every `i < n` the slot at `i` points at a cell
/// lying wholly inside the page, as checked by [`Page::parse`].
#[derive(Debug)]
pub struct Page {
    pub pgno: u64,
    pub kind: u8,
    pub n: usize,
    buf: Box<[u8]>,
}

impl Page {
    /// Check a page read from disk: its checksum and, for tree pages, every slot and cell
    /// bound. Returns the reason on failure so the caller can name the page.
    pub fn parse(pgno: u64, buf: Box<[u8]>) -> Result<Page, String> {
        if buf.len() != PAGE_SIZE {
            return Err(format!("short page: {} bytes", buf.len()));
        }
        let stored = rd32(&buf, 0);
        let want = page_checksum(pgno, &buf);
        if stored != want {
            return Err(format!(
                "checksum mismatch (stored {stored:#010x}, computed {want:#010x})"
            ));
        }
        let kind = buf[4];
        let n = rd16(&buf, 6) as usize;
        let hdr = match kind {
            KIND_LEAF => LEAF_HDR,
            KIND_BRANCH => BRANCH_HDR,
            other => return Err(format!("not a tree page (kind {other})")),
        };
        let slots_end = hdr + 2 * n;
        if slots_end > PAGE_SIZE {
            return Err(format!("{n} slots overflow the page"));
        }
        for i in 0..n {
            let off = rd16(&buf, hdr + 2 * i) as usize;
            let fixed = if kind == KIND_LEAF { 6 } else { 10 };
            if off < slots_end || off + fixed > PAGE_SIZE {
                return Err(format!("slot {i} offset {off} out of bounds"));
            }
            let klen = rd16(&buf, off) as usize;
            if klen > MAX_KEY {
                return Err(format!("slot {i} key length {klen} over the limit"));
            }
            let body = if kind == KIND_LEAF {
                let v = rd32(&buf, off + 2);
                if v & OVERFLOW_FLAG != 0 {
                    if (v & !OVERFLOW_FLAG) as usize > MAX_VALUE {
                        return Err(format!("slot {i} overflow value length over the limit"));
                    }
                    8
                } else {
                    v as usize
                }
            } else {
                0
            };
            if off + fixed + klen + body > PAGE_SIZE {
                return Err(format!("slot {i} cell runs past the page end"));
            }
        }
        Ok(Page { pgno, kind, n, buf })
    }

    /// A page this process just encoded (and so knows to be well formed); `None` if it
    /// is not a tree page.
    pub fn from_encoded(pgno: u64, buf: Box<[u8]>) -> Option<Page> {
        let kind = buf[4];
        if kind != KIND_LEAF && kind != KIND_BRANCH {
            return None;
        }
        let n = rd16(&buf, 6) as usize;
        Some(Page { pgno, kind, n, buf })
    }

    pub fn is_leaf(&self) -> bool {
        self.kind == KIND_LEAF
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn slot(&self, i: usize) -> usize {
        let hdr = if self.is_leaf() { LEAF_HDR } else { BRANCH_HDR };
        rd16(&self.buf, hdr + 2 * i) as usize
    }

    /// Key `i` (leaf or branch). `i < n`: bounds were checked in `parse`.
    pub fn key(&self, i: usize) -> &[u8] {
        let off = self.slot(i);
        let klen = rd16(&self.buf, off) as usize;
        let start = off + if self.is_leaf() { 6 } else { 10 };
        &self.buf[start..start + klen]
    }

    /// Value of leaf entry `i`.
    pub fn val(&self, i: usize) -> ValRef<'_> {
        leaf_cell(&self.buf, self.slot(i)).1
    }

    /// Number of children of a branch (`n + 1`).
    pub fn nchildren(&self) -> usize {
        self.n + 1
    }

    /// Child `c` of a branch: child 0 is the leftmost, child `i + 1` holds keys `>= key(i)`.
    pub fn child(&self, c: usize) -> u64 {
        if c == 0 {
            rd64(&self.buf, 16)
        } else {
            rd64(&self.buf, self.slot(c - 1) + 2)
        }
    }

    /// Leaf: index of the first key `>= key`, and whether it is equal.
    pub fn leaf_seek(&self, key: &[u8]) -> (usize, bool) {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Equal => return (mid, true),
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        (lo, false)
    }

    /// Branch: which child may hold `key` (the number of separators `<= key`).
    pub fn child_index(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Bytes used by headers, slots and cells (for the fill factor).
    pub fn used(&self) -> usize {
        let hdr = if self.is_leaf() { LEAF_HDR } else { BRANCH_HDR };
        let mut used = hdr;
        for i in 0..self.n {
            let off = self.slot(i);
            let klen = rd16(&self.buf, off) as usize;
            used += 2 + klen;
            if self.is_leaf() {
                used += 6 + match self.val(i) {
                    ValRef::Inline(v) => v.len(),
                    ValRef::Overflow { .. } => 8,
                };
            } else {
                used += 10;
            }
        }
        used
    }
}

/// Key, value and length of the leaf cell at `off` of `buf`, which the caller knows to
/// be a whole cell (a validated page, or a node's own buffer).
pub fn leaf_cell(buf: &[u8], off: usize) -> (&[u8], ValRef<'_>, usize) {
    let klen = rd16(buf, off) as usize;
    let v = rd32(buf, off + 2);
    let k = off + 6;
    if v & OVERFLOW_FLAG != 0 {
        let val = ValRef::Overflow {
            pgno: rd64(buf, k + klen),
            len: v & !OVERFLOW_FLAG,
        };
        (&buf[k..k + klen], val, 6 + klen + 8)
    } else {
        let vlen = v as usize;
        (
            &buf[k..k + klen],
            ValRef::Inline(&buf[k + klen..k + klen + vlen]),
            6 + klen + vlen,
        )
    }
}

/// Encode one overflow page carrying `data` (at most [`OVERFLOW_DATA`] bytes).
pub fn encode_overflow(pgno: u64, txn: u64, next: u64, data: &[u8]) -> Box<[u8]> {
    let mut b = blank();
    b[4] = KIND_OVERFLOW;
    wr64(&mut b, 8, txn);
    wr64(&mut b, 16, next);
    wr16(&mut b, 24, data.len() as u16);
    b[OVERFLOW_HDR..OVERFLOW_HDR + data.len()].copy_from_slice(data);
    seal(pgno, &mut b);
    b
}

/// A validated overflow page: (next page, data).
pub fn parse_overflow(pgno: u64, buf: &[u8]) -> Result<(u64, &[u8]), String> {
    check_raw(pgno, buf, KIND_OVERFLOW)?;
    let used = rd16(buf, 24) as usize;
    if used > OVERFLOW_DATA {
        return Err(format!("overflow length {used} too large"));
    }
    Ok((rd64(buf, 16), &buf[OVERFLOW_HDR..OVERFLOW_HDR + used]))
}

/// Encode one freelist page listing `pgnos` (at most [`FREELIST_CAP`]).
pub fn encode_freelist(pgno: u64, txn: u64, next: u64, pgnos: &[u64]) -> Box<[u8]> {
    let mut b = blank();
    b[4] = KIND_FREELIST;
    wr16(&mut b, 6, pgnos.len() as u16);
    wr64(&mut b, 8, txn);
    wr64(&mut b, 16, next);
    for (i, p) in pgnos.iter().enumerate() {
        wr64(&mut b, FREELIST_HDR + 8 * i, *p);
    }
    seal(pgno, &mut b);
    b
}

/// A validated freelist page: (next page, listed pages).
pub fn parse_freelist(pgno: u64, buf: &[u8]) -> Result<(u64, Vec<u64>), String> {
    check_raw(pgno, buf, KIND_FREELIST)?;
    let n = rd16(buf, 6) as usize;
    if n > FREELIST_CAP {
        return Err(format!("freelist count {n} too large"));
    }
    let list = (0..n).map(|i| rd64(buf, FREELIST_HDR + 8 * i)).collect();
    Ok((rd64(buf, 16), list))
}

fn check_raw(pgno: u64, buf: &[u8], kind: u8) -> Result<(), String> {
    if buf.len() != PAGE_SIZE {
        return Err(format!("short page: {} bytes", buf.len()));
    }
    let stored = rd32(buf, 0);
    let want = page_checksum(pgno, buf);
    if stored != want {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {want:#010x})"
        ));
    }
    if buf[4] != kind {
        return Err(format!("expected page kind {kind}, found {}", buf[4]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vector() {
        // The check value of CRC-32C from the Castagnoli paper / RFC 3720.
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        let a = crc32c(0, b"12345");
        assert_eq!(crc32c(a, b"6789"), 0xE306_9283);
    }

    #[test]
    fn leaf_roundtrip_and_flip_detected() {
        use super::super::node::Leaf;
        let mut leaf = Leaf::default();
        leaf.insert(0, b"a", ValRef::Inline(b"1"));
        leaf.insert(1, b"b", ValRef::Overflow { pgno: 9, len: 5000 });
        let buf = leaf.encode(7, 1);
        let p = Page::parse(7, buf.clone()).expect("valid page");
        assert_eq!(p.n, 2);
        assert_eq!(p.key(1), b"b");
        assert!(matches!(p.val(0), ValRef::Inline(b"1")));
        assert!(matches!(p.val(1), ValRef::Overflow { pgno: 9, len: 5000 }));
        assert!(
            Page::parse(8, buf.clone()).is_err(),
            "wrong page number must fail"
        );
        let mut bad = buf;
        bad[2000] ^= 0x10;
        assert!(Page::parse(7, bad).unwrap_err().contains("checksum"));
    }
}
