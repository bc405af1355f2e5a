//! A hash's two encodings, as Redis 7.0 keeps them: a small hash is one flat buffer of
//! field/value pairs (OBJECT ENCODING `listpack`), a large one a hash table
//! (`hashtable`).
//!
//! The one idea: below a few dozen entries a linear walk over one contiguous buffer is
//! faster than hashing and costs one allocation instead of two per entry plus the
//! table, so a hash starts packed and converts, once and for good, when it grows past
//! `hash-max-listpack-entries` entries or is given a field or value longer than
//! `hash-max-listpack-value` bytes (Redis's `hashTypeTryConversion` and
//! `hashTypeConvert`). The table keeps the pack's order, so a hash reads back the same
//! across the conversion.

use super::value::Encodings;
use indexmap::IndexMap;

pub type Table = IndexMap<Box<[u8]>, Vec<u8>, foldhash::fast::RandomState>;

/// Field/value pairs in one buffer, each entry a LEB128 length then its bytes, the
/// field before its value, in insertion order.
#[derive(Debug, Clone, Default)]
pub struct Pack {
    buf: Vec<u8>,
    pairs: usize,
}

fn put_entry(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// The entry starting at `pos`: its bytes' range. The buffer only ever holds what
/// [`put_entry`] wrote, so a length never runs past its end; a short buffer reads as
/// an empty entry at the end rather than a panic.
fn entry_at(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    while let Some(&b) = buf.get(pos) {
        pos += 1;
        n |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 || shift >= usize::BITS as usize {
            break;
        }
    }
    let end = pos.saturating_add(n).min(buf.len());
    (pos, end)
}

/// One pair's place in the pack.
#[derive(Clone, Copy)]
struct Slot {
    start: usize,
    field: (usize, usize),
    value: (usize, usize),
}

impl Pack {
    /// The buffer's size in bytes.
    pub fn bytes(&self) -> usize {
        self.buf.capacity()
    }

    fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= self.buf.len() {
                return None;
            }
            let start = pos;
            let field = entry_at(&self.buf, pos);
            let value = entry_at(&self.buf, field.1);
            pos = value.1;
            Some(Slot {
                start,
                field,
                value,
            })
        })
    }

    fn find(&self, field: &[u8]) -> Option<Slot> {
        self.slots()
            .find(|s| &self.buf[s.field.0..s.field.1] == field)
    }

    fn pair(&self, s: Slot) -> (&[u8], &[u8]) {
        (
            &self.buf[s.field.0..s.field.1],
            &self.buf[s.value.0..s.value.1],
        )
    }
}

/// A hash value.
#[derive(Debug, Clone)]
pub enum Hash {
    Pack(Pack),
    Table(Table),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Pack(Pack::default())
    }
}

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(p) => p.pairs,
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING's name for the current form.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn is_packed(&self) -> bool {
        matches!(self, Hash::Pack(_))
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(p) => p.find(field).map(|s| p.pair(s).1),
            Hash::Table(t) => t.get(field).map(Vec::as_slice),
        }
    }

    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts a pack that would break one of the limits by taking `field`/`value`.
    fn make_room(&mut self, field: &[u8], value: &[u8], lim: &Encodings) {
        if let Hash::Pack(p) = self {
            if field.len() > lim.hash_value
                || value.len() > lim.hash_value
                || (p.pairs >= lim.hash_entries && p.find(field).is_none())
            {
                self.convert();
            }
        }
    }

    /// The one-way conversion to a table, in the pack's order.
    pub fn convert(&mut self) {
        if let Hash::Pack(p) = self {
            let mut t = Table::with_capacity_and_hasher(p.pairs, Default::default());
            for s in p.slots() {
                let (f, v) = p.pair(s);
                t.insert(f.into(), v.to_vec());
            }
            *self = Hash::Table(t);
        }
    }

    /// Sets `field` to `value`; true when the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8], lim: &Encodings) -> bool {
        self.make_room(field, value, lim);
        match self {
            Hash::Pack(p) => match p.find(field) {
                Some(s) => {
                    let mut enc = Vec::with_capacity(value.len() + 2);
                    put_entry(&mut enc, value);
                    let vstart = s.field.1;
                    p.buf.splice(vstart..s.value.1, enc);
                    false
                }
                None => {
                    put_entry(&mut p.buf, field);
                    put_entry(&mut p.buf, value);
                    p.pairs += 1;
                    true
                }
            },
            Hash::Table(t) => t.insert(field.into(), value.to_vec()).is_none(),
        }
    }

    /// Removes `field`; true when it was there. A pack keeps its order; a table moves
    /// its last entry into the hole (see [`super::value`] on scan cursors).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Pack(p) => match p.find(field) {
                Some(s) => {
                    p.buf.drain(s.start..s.value.1);
                    p.pairs -= 1;
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.swap_remove(field).is_some(),
        }
    }

    /// The pair at position `i` (O(i) in a pack, O(1) in a table).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Pack(p) => p.slots().nth(i).map(|s| p.pair(s)),
            Hash::Table(t) => t.get_index(i).map(|(f, v)| (&f[..], &v[..])),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            Hash::Pack(p) => Box::new(p.slots().map(move |s| p.pair(s))),
            Hash::Table(t) => Box::new(t.iter().map(|(f, v)| (&f[..], &v[..]))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(entries: usize, value: usize) -> Encodings {
        Encodings {
            hash_entries: entries,
            hash_value: value,
            ..Encodings::default()
        }
    }

    #[test]
    fn stays_packed_up_to_the_entry_limit_then_converts_keeping_order() {
        let l = lim(4, 64);
        let mut h = Hash::default();
        for i in 0..4 {
            assert!(h.insert(format!("f{i}").as_bytes(), b"v", &l));
        }
        assert_eq!(h.encoding(), "listpack");
        // Overwriting an existing field at the limit does not convert.
        assert!(!h.insert(b"f0", b"w", &l));
        assert_eq!(h.encoding(), "listpack");
        assert!(h.insert(b"f4", b"v", &l));
        assert_eq!(h.encoding(), "hashtable");
        let fields: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, [&b"f0"[..], b"f1", b"f2", b"f3", b"f4"]);
        assert_eq!(h.get(b"f0"), Some(&b"w"[..]));
        // One way: shrinking does not pack it again.
        for i in 0..5 {
            assert!(h.remove(format!("f{i}").as_bytes()));
        }
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn a_long_field_or_value_converts() {
        let l = lim(128, 8);
        let mut h = Hash::default();
        h.insert(b"a", b"12345678", &l);
        assert_eq!(h.encoding(), "listpack");
        h.insert(b"a", b"123456789", &l);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::default();
        h.insert(b"123456789", b"x", &l);
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn pack_replaces_and_removes_in_place() {
        let l = lim(128, 1000);
        let mut h = Hash::default();
        let long = vec![b'x'; 300]; // a two-byte length
        h.insert(b"a", b"1", &l);
        h.insert(b"b", &long, &l);
        h.insert(b"c", b"3", &l);
        assert!(!h.insert(b"b", b"2", &l));
        assert_eq!(h.get(b"b"), Some(&b"2"[..]));
        assert!(!h.insert(b"a", &long, &l));
        assert_eq!(h.get(b"a"), Some(&long[..]));
        assert_eq!(h.get(b"c"), Some(&b"3"[..]));
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_index(1), Some((&b"c"[..], &b"3"[..])));
        assert_eq!(h.get(b""), None);
        h.insert(b"", b"", &l);
        assert_eq!(h.get(b""), Some(&b""[..]));
        assert_eq!(h.encoding(), "listpack");
    }
}
