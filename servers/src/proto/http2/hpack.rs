//! HPACK (RFC 7541) for the server side: a bounded decoder of our own, and an
//! encoder from `loona-hpack` whose string literals we Huffman-code (§5.2) where
//! that makes them no longer.
//!
//! The decoder is tables as data (the static table, the Huffman code, both from
//! the RFC's appendices) and one loop over the representations. What a server
//! needs beyond the codec is a bound against a small block that decodes into a
//! huge header list (an "HPACK bomb": a 4 KiB table entry referenced by one
//! byte, many times): the decoded size is summed as RFC 7541 §4.1 counts it, and
//! past the limit nothing more is kept, though the block is still decoded to the
//! end so the dynamic table stays in step with the peer's. The dynamic table a
//! peer may ask for is capped at our SETTINGS_HEADER_TABLE_SIZE. (The codec
//! crate's decoder builds a hash map per Huffman string, which made it most of
//! the cost of a small request.)

use loona_hpack::Encoder;
use std::collections::VecDeque;
use std::sync::OnceLock;

/// The dynamic table size we allow the peer's encoder (the protocol default).
pub const TABLE_SIZE: usize = 4096;

/// A decoded header list, or the news that it was larger than allowed.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    /// The list's size (names, values and 32 bytes per field) passed the limit.
    TooLarge,
}

/// A decoded header list in one buffer: every name and value copied (or
/// Huffman-decoded) into `text` side by side, so a list costs no allocation per
/// field, and none at all when the list is cleared and used again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderList {
    text: Vec<u8>,
    /// Per field: where its name starts, where its value starts (the name's end)
    /// and where the value ends.
    spans: Vec<(usize, usize, usize)>,
}

impl HeaderList {
    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes its buffers hold room for.
    pub fn capacity(&self) -> usize {
        self.text.capacity() + self.spans.capacity() * std::mem::size_of::<(usize, usize, usize)>()
    }

    /// The `i`th field's name and value.
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let &(n, v, end) = self.spans.get(i)?;
        Some((&self.text[n..v], &self.text[v..end]))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|&(n, v, end)| (&self.text[n..v], &self.text[v..end]))
    }

    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let n = self.text.len();
        self.text.extend_from_slice(name);
        let v = self.text.len();
        self.text.extend_from_slice(value);
        self.spans.push((n, v, self.text.len()));
    }
}

/// A malformed block: the connection's compression state is lost
/// (COMPRESSION_ERROR).
#[derive(Debug, PartialEq, Eq)]
pub struct CompressionError;

pub struct HeaderDecoder {
    /// Newest first: index 62 is `table[0]`.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
    max_list: usize,
}

/// An entry's size (§4.1).
fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

/// An integer with an `n`-bit prefix at the start of `buf` (§5.1): its value and
/// length. Values past 2^28 are refused (no field or table is that large).
fn integer(buf: &[u8], n: u32) -> Result<(usize, usize), CompressionError> {
    let max = (1usize << n) - 1;
    let first = *buf.first().ok_or(CompressionError)? as usize & max;
    if first < max {
        return Ok((first, 1));
    }
    let mut value = max;
    for (i, &b) in buf.iter().enumerate().skip(1).take(4) {
        value += ((b & 0x7f) as usize) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(CompressionError)
}

impl HeaderDecoder {
    pub fn new(max_list: usize) -> HeaderDecoder {
        HeaderDecoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_SIZE,
            max_list,
        }
    }

    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), CompressionError> {
        match index {
            0 => Err(CompressionError),
            1..=61 => Ok(STATIC[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(CompressionError),
        }
    }

    fn evict_to(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some((n, v)) = self.table.pop_back() else {
                break;
            };
            self.size -= entry_size(&n, &v);
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = entry_size(&name, &value);
        // §4.4: an entry larger than the table empties it and is not added.
        self.evict_to(size);
        if size <= self.max_size {
            self.size += size;
            self.table.push_front((name, value));
        }
    }

    /// A string literal (§5.2) at the start of `buf` appended to `text`; its
    /// length in `buf`.
    fn string(buf: &[u8], text: &mut Vec<u8>) -> Result<usize, CompressionError> {
        let (len, n) = integer(buf, 7)?;
        let data = buf.get(n..n + len).ok_or(CompressionError)?;
        if buf[0] & 0x80 != 0 {
            huffman_decode_into(data, text)?;
        } else {
            text.extend_from_slice(data);
        }
        Ok(n + len)
    }

    /// Decodes `block` into a list of its own (see [`HeaderDecoder::decode_into`]).
    pub fn decode(&mut self, block: &[u8]) -> Result<Decoded, CompressionError> {
        let mut list = HeaderList::default();
        if !self.decode_into(block, &mut list)? {
            return Ok(Decoded::TooLarge);
        }
        Ok(Decoded::Fields(
            list.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
        ))
    }

    /// Decodes `block`, appending its fields to `list`; false if the list was
    /// larger than allowed (`list` then holds some of its fields only).
    pub fn decode_into(
        &mut self,
        block: &[u8],
        list: &mut HeaderList,
    ) -> Result<bool, CompressionError> {
        let mut total = 0usize;
        let mut pos = 0;
        let mut seen_field = false;
        while pos < block.len() {
            let rest = &block[pos..];
            let b = rest[0];
            if b & 0x80 != 0 {
                // §6.1 indexed field.
                let (i, n) = integer(rest, 7)?;
                pos += n;
                let (name, value) = self.get(i)?;
                seen_field = true;
                total = total.saturating_add(entry_size(name, value));
                if total <= self.max_list {
                    list.push(name, value);
                }
                continue;
            }
            if b & 0xe0 == 0x20 {
                // §6.3 dynamic table size update: only at the start of a block.
                let (size, n) = integer(rest, 5)?;
                if seen_field || size > TABLE_SIZE {
                    return Err(CompressionError);
                }
                pos += n;
                self.max_size = size;
                self.evict_to(0);
                continue;
            }
            // §6.2 literals: with incremental indexing (01), without (0000) or
            // never indexed (0001). Name and value go to the end of the list's
            // text, and are taken back off if the list is over its limit.
            let index = b & 0x40 != 0;
            let (i, mut n) = integer(rest, if index { 6 } else { 4 })?;
            let start = list.text.len();
            if i == 0 {
                n += Self::string(&rest[n..], &mut list.text)?;
            } else {
                let name = self.get(i)?.0;
                list.text.extend_from_slice(name);
            }
            let mid = list.text.len();
            n += Self::string(&rest[n..], &mut list.text)?;
            pos += n;
            let end = list.text.len();
            seen_field = true;
            total = total.saturating_add(end - start + 32);
            if index {
                let (name, value) = (&list.text[start..mid], &list.text[mid..end]);
                self.insert(name.to_vec(), value.to_vec());
            }
            if total <= self.max_list {
                list.spans.push((start, mid, end));
            } else {
                list.text.truncate(start);
            }
        }
        Ok(total <= self.max_list)
    }
}

/// The Huffman code as a binary tree: `[child for 0, child for 1]` per node,
/// a child with the top bit set being a leaf holding its symbol.
fn huffman_tree() -> &'static [[u16; 2]] {
    static TREE: OnceLock<Vec<[u16; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = vec![[0u16; 2]];
        for (sym, &(code, len)) in HUFFMAN.iter().enumerate() {
            let mut node = 0usize;
            for i in (0..len).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    tree[node][bit] = 0x8000 | sym as u16;
                } else {
                    if tree[node][bit] == 0 {
                        tree.push([0, 0]);
                        tree[node][bit] = (tree.len() - 1) as u16;
                    }
                    node = tree[node][bit] as usize;
                }
            }
        }
        tree
    })
}

/// One step of the nibble decoder: from a state (an inner node of the code's
/// tree), four bits lead to `next`, perhaps through a leaf (`EMIT`, its symbol in
/// `sym`; a code is at least 5 bits long, so four bits finish at most one), or
/// into the EOS symbol or off the tree (`FAIL`). `ACCEPT`: the bits read since the
/// last symbol are a valid padding (at most 7, all ones) if the string ends here.
#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    sym: u8,
    flags: u8,
}

const EMIT: u8 = 1;
const FAIL: u8 = 2;
const ACCEPT: u8 = 4;

/// The decoder's table, 256 states x 16 nibbles, made once from the tree (as
/// nghttp2's and the `h2` crate's are): a byte of code costs two lookups instead
/// of eight steps down the tree.
fn huffman_steps() -> &'static [[Step; 16]; 256] {
    static STEPS: OnceLock<Box<[[Step; 16]; 256]>> = OnceLock::new();
    STEPS.get_or_init(|| {
        let tree = huffman_tree();
        // A node is a valid place to stop if the path to it is at most 7 ones.
        let mut accept = [false; 256];
        let mut node = 0usize;
        accept[0] = true;
        for _ in 0..7 {
            node = tree[node][1] as usize;
            accept[node] = true;
        }
        let mut steps = Box::new([[Step::default(); 16]; 256]);
        for (state, row) in steps.iter_mut().enumerate() {
            for (nibble, step) in row.iter_mut().enumerate() {
                let mut node = state;
                for i in (0..4).rev() {
                    let next = tree[node][(nibble >> i) & 1];
                    if next & 0x8000 != 0 {
                        let sym = next & 0x7fff;
                        if sym == 256 {
                            step.flags = FAIL;
                            break;
                        }
                        step.flags |= EMIT;
                        step.sym = sym as u8;
                        node = 0;
                    } else if next == 0 {
                        step.flags = FAIL;
                        break;
                    } else {
                        node = next as usize;
                    }
                }
                if step.flags & FAIL == 0 {
                    // Inner nodes number 0..=255 (257 leaves make 256 of them).
                    step.next = node as u8;
                    if accept[node] {
                        step.flags |= ACCEPT;
                    }
                }
            }
        }
        steps
    })
}

/// Decodes a Huffman-coded string (§5.2) onto the end of `out`: the EOS symbol
/// inside it, or padding longer than 7 bits or not all ones, is an error.
fn huffman_decode_into(data: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let steps = huffman_steps();
    out.reserve(data.len() * 8 / 5);
    let (mut state, mut accept) = (0usize, true);
    for &byte in data {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = steps[state][nibble as usize];
            if step.flags & FAIL != 0 {
                return Err(CompressionError);
            }
            if step.flags & EMIT != 0 {
                out.push(step.sym);
            }
            state = step.next as usize;
            accept = step.flags & ACCEPT != 0;
        }
    }
    if !accept {
        return Err(CompressionError);
    }
    Ok(())
}

#[cfg(test)]
fn huffman_decode(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    huffman_decode_into(data, &mut out)?;
    Ok(out)
}

/// The decoder the table replaced, a bit at a time down the tree: kept to check
/// the table against.
#[cfg(test)]
fn huffman_decode_bitwise(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let tree = huffman_tree();
    let mut out = Vec::with_capacity(data.len() * 8 / 5);
    let mut node = 0usize;
    // Bits read since the last symbol, and whether they were all ones.
    let (mut pending, mut ones) = (0u32, true);
    for &byte in data {
        for i in (0..8).rev() {
            let bit = (byte >> i) & 1;
            pending += 1;
            ones &= bit == 1;
            let next = tree[node][bit as usize];
            if next & 0x8000 != 0 {
                let sym = next & 0x7fff;
                if sym == 256 {
                    return Err(CompressionError);
                }
                out.push(sym as u8);
                node = 0;
                pending = 0;
                ones = true;
            } else if next == 0 {
                return Err(CompressionError);
            } else {
                node = next as usize;
            }
        }
    }
    if pending > 7 || !ones {
        return Err(CompressionError);
    }
    Ok(out)
}

/// RFC 7541 Appendix A.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// RFC 7541 Appendix B: each symbol's code (right-aligned) and length in bits.
const HUFFMAN: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// The response encoder: indexed fields where the tables hold them, literals
/// otherwise, each Huffman-coded unless that would make it longer.
pub struct HeaderEncoder {
    inner: Encoder<'static>,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder {
            inner: Encoder::new(),
        }
    }
}

impl HeaderEncoder {
    /// The peer's decoder allows at most this much table (its
    /// SETTINGS_HEADER_TABLE_SIZE); the caller announces the change.
    pub fn set_max_table_size(&mut self, size: usize) {
        self.inner.set_max_table_size(size);
    }

    pub fn encode<'a>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Vec<u8> {
        let block = self.inner.encode(fields);
        // The dynamic table holds the strings, not their coding: recoding the
        // literals leaves the peer's table as the encoder's. A block not in the
        // shape expected goes out as it is (still valid, only longer).
        huffman_literals(&block).unwrap_or(block)
    }
}

/// The static table's index of `name` (its first entry, and the entry whose value
/// is `value` if one is), for the names a response carries; `None` for a name the
/// static table lacks.
fn static_index(name: &[u8], value: &[u8]) -> Option<(usize, bool)> {
    let first = match name {
        b":status" => {
            let exact = match value {
                b"200" => 8,
                b"204" => 9,
                b"206" => 10,
                b"304" => 11,
                b"400" => 12,
                b"404" => 13,
                b"500" => 14,
                _ => return Some((8, false)),
            };
            return Some((exact, true));
        }
        b"accept-ranges" => 18,
        b"age" => 21,
        b"allow" => 22,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"date" => 33,
        b"etag" => 34,
        b"expires" => 36,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"proxy-authenticate" => 48,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    };
    Some((first, STATIC[first - 1].1 == value))
}

/// Appends `s` as a string literal (§5.2), Huffman-coded unless that is longer.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let coded = huffman_len(s);
    if coded <= s.len() {
        put_integer(out, 0x80, 7, coded);
        huffman_encode(s, out);
    } else {
        put_integer(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// Encodes `fields` into `out` with the static table alone: an indexed field
/// where name and value are there, else a literal without indexing (§6.2.2) of an
/// indexed name. Such a block neither reads nor changes the dynamic table, so it
/// means the same on every connection and may be kept and sent again. False (and
/// `out` as it was) when a name is not in the static table.
pub fn encode_static<'a>(
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    for (name, value) in fields {
        match static_index(name, value) {
            Some((i, true)) => put_integer(out, 0x80, 7, i),
            Some((i, false)) => {
                put_integer(out, 0, 4, i);
                put_string(out, value);
            }
            None => {
                out.truncate(start);
                return false;
            }
        }
    }
    true
}

/// Writes `value` as an integer with an `n`-bit prefix (§5.1), the bits above the
/// prefix in the first byte set to `high`.
fn put_integer(out: &mut Vec<u8>, high: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The length of `s` Huffman-coded, in bytes.
fn huffman_len(s: &[u8]) -> usize {
    let bits: usize = s.iter().map(|&b| HUFFMAN[b as usize].1 as usize).sum();
    bits.div_ceil(8)
}

/// Appends `s` Huffman-coded, padded with the most significant bits of EOS (ones).
fn huffman_encode(s: &[u8], out: &mut Vec<u8>) {
    // At most 7 pending bits plus one code of at most 30 bits: fits in 64.
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in s {
        let (code, len) = HUFFMAN[b as usize];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
}

/// A string literal at the start of `buf` copied to `out`, Huffman-coded when
/// that is no longer than it is raw (a tie goes to the code, as in RFC 7541's
/// examples); its length in `buf`.
fn recode_string(buf: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let (len, n) = integer(buf, 7).ok()?;
    let data = buf.get(n..n.checked_add(len)?)?;
    if buf[0] & 0x80 != 0 {
        out.extend_from_slice(&buf[..n + len]);
    } else {
        let coded = huffman_len(data);
        if coded <= len {
            put_integer(out, 0x80, 7, coded);
            huffman_encode(data, out);
        } else {
            out.extend_from_slice(&buf[..n + len]);
        }
    }
    Some(n + len)
}

/// `block` with every raw string literal Huffman-coded where that is no longer;
/// `None` if it does not parse as a header block.
fn huffman_literals(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len());
    let mut pos = 0;
    while pos < block.len() {
        let rest = &block[pos..];
        let b = rest[0];
        // (prefix bits, whether strings follow)
        let (prefix, literal) = if b & 0x80 != 0 {
            (7, false) // indexed field
        } else if b & 0xe0 == 0x20 {
            (5, false) // table size update
        } else if b & 0x40 != 0 {
            (6, true) // literal with incremental indexing
        } else {
            (4, true) // literal without indexing, or never indexed
        };
        let (i, n) = integer(rest, prefix).ok()?;
        out.extend_from_slice(&rest[..n]);
        pos += n;
        if !literal {
            continue;
        }
        if i == 0 {
            pos += recode_string(&block[pos..], &mut out)?;
        }
        pos += recode_string(&block[pos..], &mut out)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    //! RFC 7541 Appendix C, byte for byte.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(list: &[(&str, &str)]) -> Decoded {
        Decoded::Fields(
            list.iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn c2_single_representations() {
        // C.2.1 literal with indexing, C.2.2 without, C.2.3 never indexed, C.2.4 indexed.
        let mut d = HeaderDecoder::new(1 << 16);
        let c21 = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
        assert_eq!(
            d.decode(&c21).unwrap(),
            fields(&[("custom-key", "custom-header")])
        );
        // The entry is now index 62.
        assert_eq!(
            d.decode(&[0xbe]).unwrap(),
            fields(&[("custom-key", "custom-header")])
        );
        let c22 = hex("040c 2f73 616d 706c 652f 7061 7468");
        assert_eq!(
            d.decode(&c22).unwrap(),
            fields(&[(":path", "/sample/path")])
        );
        let c23 = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
        assert_eq!(d.decode(&c23).unwrap(), fields(&[("password", "secret")]));
        assert_eq!(d.decode(&hex("82")).unwrap(), fields(&[(":method", "GET")]));
        // C.2.1's field as the encoder writes it: both strings Huffman-coded
        // (C.4.3 has the name's code), two bytes shorter in all.
        let mut e = HeaderEncoder::default();
        let ours = e.encode([(&b"custom-key"[..], &b"custom-header"[..])]);
        assert_eq!(ours[..10], hex("4088 25a8 49e9 5ba9 7d7f")[..]);
        assert!(ours.len() < c21.len(), "{ours:02x?}");
        let mut d = HeaderDecoder::new(1 << 16);
        assert_eq!(
            d.decode(&ours).unwrap(),
            fields(&[("custom-key", "custom-header")])
        );
    }

    const C3: [&str; 3] = [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ];
    const C4: [&str; 3] = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];

    fn requests() -> [Decoded; 3] {
        [
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]),
        ]
    }

    #[test]
    fn c3_requests_without_huffman() {
        let mut d = HeaderDecoder::new(1 << 16);
        for (wire, want) in C3.iter().zip(requests()) {
            assert_eq!(d.decode(&hex(wire)).unwrap(), want);
        }
    }

    #[test]
    fn c4_requests_with_huffman() {
        let mut d = HeaderDecoder::new(1 << 16);
        for (wire, want) in C4.iter().zip(requests()) {
            assert_eq!(d.decode(&hex(wire)).unwrap(), want);
        }
    }

    const C5: [&str; 3] = [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ];
    const C6: [&str; 3] = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ];

    fn responses() -> [Decoded; 3] {
        let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
        let loc = "https://www.example.com";
        [
            fields(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", loc),
            ]),
            fields(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", loc),
            ]),
            fields(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", loc),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                ),
            ]),
        ]
    }

    /// C.5 and C.6 run with a 256-byte table, so entries are evicted on the way:
    /// decoding the later responses right proves the evictions were right too.
    fn responses_with_small_table(wire: [&str; 3]) {
        let mut d = HeaderDecoder::new(1 << 16);
        // The encoder announces the smaller table first (a size update, then an
        // indexed field so the block does not end on the update).
        let mut first = vec![0x3f, 0xe1, 0x01];
        first.extend(hex(wire[0]));
        assert_eq!(
            d.decode(&first).unwrap(),
            responses().into_iter().next().unwrap()
        );
        for (w, want) in wire.iter().zip(responses()).skip(1) {
            assert_eq!(d.decode(&hex(w)).unwrap(), want);
        }
    }

    #[test]
    fn c5_responses_without_huffman() {
        responses_with_small_table(C5);
    }

    #[test]
    fn c6_responses_with_huffman() {
        responses_with_small_table(C6);
    }

    #[test]
    fn the_encoder_huffman_codes_literals_as_c4_does() {
        // C.3's requests: loona-hpack's choices of what to index are not the RFC's
        // (it does not index :authority), but each string it writes as a literal
        // comes out with C.4's code, and every block decodes to its fields.
        let (mut e, mut raw) = (HeaderEncoder::default(), Encoder::new());
        let mut d = HeaderDecoder::new(1 << 16);
        for (i, list) in requests().into_iter().enumerate() {
            let Decoded::Fields(list) = &list else {
                unreachable!()
            };
            let pairs = || list.iter().map(|(n, v)| (&n[..], &v[..]));
            let got = e.encode(pairs());
            let plain = raw.encode(pairs());
            assert!(got.len() < plain.len(), "{got:02x?} {plain:02x?}");
            assert_eq!(d.decode(&got).unwrap(), Decoded::Fields(list.clone()));
            if i == 0 {
                // www.example.com
                assert!(got.ends_with(&hex("8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")));
            }
        }
    }

    #[test]
    fn huffman_code_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        for s in [
            &all[..],
            b"",
            b"a",
            b"302",
            b"Mon, 21 Oct 2013 20:13:21 GMT",
        ] {
            let mut out = Vec::new();
            huffman_encode(s, &mut out);
            assert_eq!(out.len(), huffman_len(s));
            assert_eq!(huffman_decode(&out).unwrap(), s);
        }
        // A field whose value is longer coded ("\0" takes 13 bits) stays raw.
        let mut e = HeaderEncoder::default();
        let block = e.encode([(&b"x-nul"[..], &b"\0\0"[..])]);
        assert_eq!(block[block.len() - 3..], [0x02, 0, 0]);
    }

    #[test]
    fn huffman_strings_of_appendix_c_decode() {
        // C.4.1-C.4.3 and C.6.1-C.6.3's strings, as coded there.
        for (code, text) in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
            ("640e ff", "307"),
            ("9bd9 ab", "gzip"),
            (
                "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
                 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ] {
            assert_eq!(
                huffman_decode(&hex(code)).unwrap(),
                text.as_bytes(),
                "{text}"
            );
            let mut out = Vec::new();
            huffman_encode(text.as_bytes(), &mut out);
            assert_eq!(out, hex(code), "{text}");
        }
    }

    #[test]
    fn every_byte_alone_and_in_pairs_round_trips() {
        for a in 0..=255u8 {
            for s in [vec![a], vec![a, a], vec![a, b'e'], vec![0xff, a, 0]] {
                let mut out = Vec::new();
                huffman_encode(&s, &mut out);
                assert_eq!(huffman_decode(&out).unwrap(), s, "{s:?}");
            }
        }
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // "0" (00000) padded with 000, 011 (not all ones).
        assert_eq!(huffman_decode(&[0x00]), Err(CompressionError));
        assert_eq!(huffman_decode(&[0x03]), Err(CompressionError));
        assert_eq!(huffman_decode(&[0x07]).unwrap(), b"0");
        // A whole byte of padding (8 ones) after "0", or alone.
        assert_eq!(huffman_decode(&[0x07, 0xff]), Err(CompressionError));
        assert_eq!(huffman_decode(&[0xff]), Err(CompressionError));
        // Eight bits that only begin a longer code.
        assert_eq!(huffman_decode(&[0xfe]), Err(CompressionError));
        // EOS (30 ones), alone or after a symbol, wherever it ends.
        assert_eq!(huffman_decode(&[0xff; 4]), Err(CompressionError));
        assert_eq!(
            huffman_decode(&[0x07, 0xff, 0xff, 0xff, 0xff]),
            Err(CompressionError)
        );
        assert_eq!(huffman_decode(&[0xff; 5]), Err(CompressionError));
        assert_eq!(huffman_decode(b""), Ok(Vec::new()));
    }

    proptest::proptest! {
        #[test]
        fn the_table_decoder_agrees_with_the_bitwise_one(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)
        ) {
            proptest::prop_assert_eq!(huffman_decode(&data), huffman_decode_bitwise(&data));
        }

        #[test]
        fn coded_text_agrees_with_the_bitwise_decoder(
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3)
        ) {
            // Valid codes, and valid codes with random bytes after them.
            let mut code = Vec::new();
            huffman_encode(&text, &mut code);
            proptest::prop_assert_eq!(huffman_decode(&code), Ok(text.clone()));
            code.extend(tail);
            proptest::prop_assert_eq!(huffman_decode(&code), huffman_decode_bitwise(&code));
        }
    }

    #[test]
    fn a_bomb_is_bounded_and_the_table_stays_in_step() {
        // One 4000-byte value indexed, then referenced 1000 times: 4 MB decoded
        // from 4 KB of block.
        let mut block = vec![0x40, 0x01, b'x', 0x7f];
        let mut n = 4000 - 127;
        while n >= 128 {
            block.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        block.push(n as u8);
        block.extend(std::iter::repeat(b'v').take(4000));
        block.extend(std::iter::repeat(0xbe).take(1000));
        let mut d = HeaderDecoder::new(16 * 1024);
        assert_eq!(d.decode(&block).unwrap(), Decoded::TooLarge);
        // The next block may still use the entry.
        match d.decode(&[0xbe]).unwrap() {
            Decoded::Fields(f) => assert_eq!(f[0].1.len(), 4000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_huffman_and_misplaced_updates_are_refused() {
        // A literal value "0" Huffman-coded (00000) with zero padding bits.
        let block = [0x04, 0x81, 0x00];
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&block),
            Err(CompressionError)
        );
        // The same with the padding all ones: the path "0".
        let block = [0x04, 0x81, 0x07];
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&block).unwrap(),
            fields(&[(":path", "0")])
        );
        // EOS (30 ones) inside a string.
        let block = [0x04, 0x84, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&block),
            Err(CompressionError)
        );
        // A size update after a field.
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&[0x82, 0x20]),
            Err(CompressionError)
        );
        // A string longer than the block.
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&[0x04, 0x05, b'a']),
            Err(CompressionError)
        );
    }

    #[test]
    fn a_table_larger_than_allowed_is_refused() {
        // Size update to 8192 (> 4096), then an indexed field.
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&[0x3f, 0xe1, 0x3f, 0x82]),
            Err(CompressionError)
        );
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CompressionError)
        );
    }

    #[test]
    fn static_blocks_decode_back_and_leave_the_table_alone() {
        // C.6.1's response fields: `:status 302` is a literal of an indexed name,
        // `date` and `location` Huffman-coded values; a name the static table
        // lacks is refused, leaving `out` as it was.
        let list = [
            (&b":status"[..], &b"302"[..]),
            (b"cache-control", b"private"),
            (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
            (b"location", b"https://www.example.com"),
        ];
        let mut block = vec![0xaa];
        assert!(encode_static(list, &mut block));
        // C.6.1 codes every string the same way: its value bytes appear here.
        let c61 = hex(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 \
                       0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        );
        assert_eq!(&block[1..3], &[0x08, 0x82]);
        assert!(c61.windows(18).any(|w| w == &block[block.len() - 18..]));
        let mut d = HeaderDecoder::new(1 << 16);
        assert_eq!(
            d.decode(&block[1..]).unwrap(),
            fields(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert!(d.table.is_empty());
        let mut exact = Vec::new();
        assert!(encode_static(
            [(&b":status"[..], &b"200"[..]), (b"content-length", b"")],
            &mut exact
        ));
        assert_eq!(exact, [0x88, 0x9c]);
        let mut out = vec![1, 2];
        assert!(!encode_static(
            [(&b"server"[..], &b"x"[..]), (b"x-custom", b"y")],
            &mut out
        ));
        assert_eq!(out, [1, 2]);
    }
}
