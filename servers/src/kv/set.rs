//! A set's two encodings, as Redis 7.0 keeps them: a set of integers is a sorted
//! vector of them (OBJECT ENCODING `intset`), any other a hash table (`hashtable`).
//!
//! The one idea: a member that reads as a 64-bit integer in its canonical spelling
//! (Redis's `string2ll`: no `+`, no leading zeros, no `-0`) is stored as the integer,
//! eight bytes and no allocation, and found by binary search. The first member that is
//! not such an integer, or growth past `set-max-intset-entries`, converts the set once
//! and for good (Redis's `setTypeAdd` and `setTypeConvert`). Members come out of
//! either form as a [`Member`], which spells an integer on the stack.

use super::value::Encodings;
use crate::proto::resp::parse_i64;
use indexmap::IndexSet;

pub type Table = IndexSet<Box<[u8]>, foldhash::fast::RandomState>;

/// A set value.
#[derive(Debug, Clone)]
pub enum Set {
    /// Sorted, distinct.
    Ints(Vec<i64>),
    Table(Table),
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(Vec::new())
    }
}

/// A member as bytes: borrowed from a table, or an integer spelled in place.
#[derive(Clone, Copy)]
pub enum Member<'a> {
    Bytes(&'a [u8]),
    Int([u8; 20], u8),
}

impl Member<'_> {
    fn int(n: i64) -> Member<'static> {
        let mut b = itoa::Buffer::new();
        let s = b.format(n).as_bytes();
        let mut buf = [0u8; 20];
        buf[..s.len()].copy_from_slice(s);
        Member::Int(buf, s.len() as u8)
    }
}

impl AsRef<[u8]> for Member<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Member::Bytes(b) => b,
            Member::Int(buf, n) => &buf[..usize::from(*n)],
        }
    }
}

impl Set {
    pub fn len(&self) -> usize {
        match self {
            Set::Ints(v) => v.len(),
            Set::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn is_intset(&self) -> bool {
        matches!(self, Set::Ints(_))
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Ints(v) => parse_i64(m).is_some_and(|n| v.binary_search(&n).is_ok()),
            Set::Table(t) => t.contains(m),
        }
    }

    /// The one-way conversion to a table, in ascending order.
    pub fn convert(&mut self) {
        if let Set::Ints(v) = self {
            let mut t = Table::with_capacity_and_hasher(v.len() + 1, Default::default());
            for &n in v.iter() {
                t.insert(Member::int(n).as_ref().into());
            }
            *self = Set::Table(t);
        }
    }

    /// Adds `m`; true when it is new.
    pub fn insert(&mut self, m: &[u8], lim: &Encodings) -> bool {
        if let Set::Ints(v) = self {
            match parse_i64(m) {
                Some(n) => match v.binary_search(&n) {
                    Ok(_) => return false,
                    Err(at) => {
                        if v.len() < lim.set_intset {
                            v.insert(at, n);
                            return true;
                        }
                        self.convert();
                    }
                },
                None => self.convert(),
            }
        }
        match self {
            Set::Table(t) => t.insert(m.into()),
            Set::Ints(_) => false,
        }
    }

    /// Removes `m`; true when it was there. A table moves its last member into the
    /// hole (see [`super::value`] on scan cursors).
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match parse_i64(m).map(|n| v.binary_search(&n)) {
                Some(Ok(at)) => {
                    v.remove(at);
                    true
                }
                _ => false,
            },
            Set::Table(t) => t.swap_remove(m),
        }
    }

    /// Removes the member at position `i`, returning it.
    pub fn remove_index(&mut self, i: usize) -> Option<Box<[u8]>> {
        match self {
            Set::Ints(v) => (i < v.len()).then(|| Member::int(v.remove(i)).as_ref().into()),
            Set::Table(t) => t.swap_remove_index(i),
        }
    }

    pub fn get_index(&self, i: usize) -> Option<Member<'_>> {
        match self {
            Set::Ints(v) => v.get(i).map(|&n| Member::int(n)),
            Set::Table(t) => t.get_index(i).map(|m| Member::Bytes(m)),
        }
    }

    pub fn iter(&self) -> SetIter<'_> {
        match self {
            Set::Ints(v) => SetIter::Ints(v.iter()),
            Set::Table(t) => SetIter::Table(t.iter()),
        }
    }

    /// Keeps the members `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        match self {
            Set::Ints(v) => v.retain(|&n| keep(Member::int(n).as_ref())),
            Set::Table(t) => t.retain(|m| keep(m)),
        }
    }

    pub fn truncate(&mut self, n: usize) {
        match self {
            Set::Ints(v) => v.truncate(n),
            Set::Table(t) => t.truncate(n),
        }
    }
}

pub enum SetIter<'a> {
    Ints(std::slice::Iter<'a, i64>),
    Table(indexmap::set::Iter<'a, Box<[u8]>>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Ints(i) => i.next().map(|&n| Member::int(n)),
            SetIter::Table(i) => i.next().map(|m| Member::Bytes(m)),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            SetIter::Ints(i) => i.size_hint(),
            SetIter::Table(i) => i.size_hint(),
        }
    }
}

impl ExactSizeIterator for SetIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(n: usize) -> Encodings {
        Encodings {
            set_intset: n,
            ..Encodings::default()
        }
    }

    fn members(s: &Set) -> Vec<Vec<u8>> {
        s.iter().map(|m| m.as_ref().to_vec()).collect()
    }

    #[test]
    fn integers_stay_an_intset_in_order() {
        let l = lim(512);
        let mut s = Set::default();
        for m in [
            "5",
            "-3",
            "17",
            "5",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            s.insert(m.as_bytes(), &l);
        }
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.len(), 5);
        assert_eq!(
            members(&s),
            [
                &b"-9223372036854775808"[..],
                b"-3",
                b"5",
                b"17",
                b"9223372036854775807"
            ]
        );
        assert!(s.contains(b"17"));
        assert!(!s.contains(b"017"));
        assert!(s.remove(b"-3"));
        assert!(!s.remove(b"-3"));
        assert_eq!(
            s.remove_index(0).as_deref(),
            Some(&b"-9223372036854775808"[..])
        );
        assert_eq!(
            s.get_index(0).map(|m| m.as_ref().to_vec()),
            Some(b"5".to_vec())
        );
    }

    #[test]
    fn a_non_canonical_integer_or_text_converts() {
        for odd in ["abc", "+1", "01", "-0", "1.5", "9223372036854775808", " 1"] {
            let mut s = Set::default();
            s.insert(b"1", &lim(512));
            s.insert(odd.as_bytes(), &lim(512));
            assert_eq!(s.encoding(), "hashtable", "{odd}");
            assert!(s.contains(b"1") && s.contains(odd.as_bytes()));
        }
    }

    #[test]
    fn growth_past_the_limit_converts_once() {
        let l = lim(3);
        let mut s = Set::default();
        for m in ["1", "2", "3"] {
            s.insert(m.as_bytes(), &l);
        }
        assert_eq!(s.encoding(), "intset");
        assert!(!s.insert(b"3", &l));
        assert_eq!(s.encoding(), "intset");
        assert!(s.insert(b"4", &l));
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(members(&s), [&b"1"[..], b"2", b"3", b"4"]);
        s.remove(b"4");
        assert_eq!(s.encoding(), "hashtable");
    }
}
