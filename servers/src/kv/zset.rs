//! The sorted set: a hash table from member to score beside a skip list ordered by
//! (score, member), as Redis's `t_zset.c` builds it.
//!
//! The one idea: every skip-list link carries a *span*, the number of elements it
//! jumps over, so walking from the head towards an element and summing the spans of
//! the links taken gives its rank in O(log n), and walking while the summed span stays
//! within a rank finds the element at that rank in O(log n) as well. Nodes live in an
//! arena (`Vec`) and links are indices, so the structure is safe Rust; freed slots are
//! reused. Chosen over a `BTreeMap<(score, member)>` because that answers range
//! queries in O(log n) but rank (ZRANK, ZRANGE by index) only by counting.
//!
//! The member table is an `IndexMap`: O(1) score lookup, O(1) random members
//! (ZRANDMEMBER) and ZSCAN's positional cursor (see [`super::value`]). A small sorted
//! set skips both and is one ordered vector ([`ZSet::Pack`]).

use super::value::Encodings;
use indexmap::IndexMap;
use std::cmp::Ordering;

const MAX_LEVEL: usize = 32;
const NIL: usize = usize::MAX;
const HEAD: usize = 0;

#[derive(Debug, Clone, Copy)]
struct Link {
    next: usize,
    span: usize,
}

#[derive(Debug, Clone)]
struct Node {
    score: f64,
    member: Box<[u8]>,
    back: usize,
    links: Vec<Link>,
}

/// The ordered half: (score, member) pairs, ranks 0-based in the public API.
#[derive(Debug, Clone)]
pub struct SkipList {
    nodes: Vec<Node>,
    free: Vec<usize>,
    tail: usize,
    len: usize,
    level: usize,
    rng: u64,
}

impl Default for SkipList {
    fn default() -> Self {
        Self {
            nodes: vec![Node {
                score: 0.0,
                member: Box::default(),
                back: NIL,
                links: vec![Link { next: NIL, span: 0 }; MAX_LEVEL],
            }],
            free: Vec::new(),
            tail: NIL,
            len: 0,
            level: 1,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

fn cmp(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| m1.cmp(m2))
}

/// A score interval, ends open or closed.
#[derive(Debug, Clone, Copy)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    pub fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }
    pub fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }
    /// Redis's `zslParseRange` on `min` and `max` arguments: `(` opens an end.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let one = |s: &[u8]| -> Option<(f64, bool)> {
            match s.split_first() {
                Some((b'(', rest)) => super::value::parse_f64(rest).map(|v| (v, true)),
                _ => super::value::parse_f64(s).map(|v| (v, false)),
            }
        };
        let (min, minex) = one(min)?;
        let (max, maxex) = one(max)?;
        Some(ScoreRange {
            min,
            max,
            minex,
            maxex,
        })
    }
    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// One end of a lexicographic interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexBound {
    fn parse(s: &[u8]) -> Option<LexBound> {
        match s {
            b"-" => Some(LexBound::NegInf),
            b"+" => Some(LexBound::PosInf),
            [b'[', rest @ ..] => Some(LexBound::Incl(rest.to_vec())),
            [b'(', rest @ ..] => Some(LexBound::Excl(rest.to_vec())),
            _ => None,
        }
    }
}

impl LexRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        Some(LexRange {
            min: LexBound::parse(min)?,
            max: LexBound::parse(max)?,
        })
    }
    pub fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(v) => m >= v.as_slice(),
            LexBound::Excl(v) => m > v.as_slice(),
        }
    }
    pub fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(v) => m <= v.as_slice(),
            LexBound::Excl(v) => m < v.as_slice(),
        }
    }
    fn is_empty(&self) -> bool {
        use LexBound::*;
        match (&self.min, &self.max) {
            (PosInf, _) | (_, NegInf) => true,
            (NegInf, _) | (_, PosInf) => false,
            (Incl(a), Incl(b)) => a > b,
            (Incl(a), Excl(b)) | (Excl(a), Incl(b)) | (Excl(a), Excl(b)) => a >= b,
        }
    }
}

impl SkipList {
    fn random_level(&mut self) -> usize {
        let mut level = 1;
        loop {
            let mut x = self.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng = x;
            // p = 1/4 per level, as Redis.
            if level < MAX_LEVEL && (x & 3) == 0 {
                level += 1;
            } else {
                return level;
            }
        }
    }

    fn less(&self, idx: usize, score: f64, member: &[u8]) -> bool {
        let n = &self.nodes[idx];
        cmp(n.score, &n.member, score, member) == Ordering::Less
    }

    fn next(&self, idx: usize, level: usize) -> usize {
        self.nodes[idx].links[level].next
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts a pair that is not present.
    pub fn insert(&mut self, score: f64, member: Box<[u8]>) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let nx = self.next(x, i);
                if nx != NIL && self.less(nx, score, &member) {
                    rank[i] += self.nodes[x].links[i].span;
                    x = nx;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let level = self.random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.nodes[HEAD].links[i].span = self.len;
            }
            self.level = level;
        }
        let node = Node {
            score,
            member,
            back: NIL,
            links: vec![Link { next: NIL, span: 0 }; level],
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        for i in 0..level {
            let u = update[i];
            let jumped = rank[0] - rank[i];
            self.nodes[idx].links[i] = Link {
                next: self.nodes[u].links[i].next,
                span: self.nodes[u].links[i].span - jumped,
            };
            self.nodes[u].links[i] = Link {
                next: idx,
                span: jumped + 1,
            };
        }
        for (i, u) in update.iter().enumerate().take(self.level).skip(level) {
            self.nodes[*u].links[i].span += 1;
        }
        self.nodes[idx].back = if update[0] == HEAD { NIL } else { update[0] };
        let nx = self.next(idx, 0);
        if nx != NIL {
            self.nodes[nx].back = idx;
        } else {
            self.tail = idx;
        }
        self.len += 1;
    }

    /// Removes a pair; false when absent.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let nx = self.next(x, i);
                if nx != NIL && self.less(nx, score, member) {
                    x = nx;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let x = self.next(x, 0);
        if x == NIL || self.nodes[x].score != score || &*self.nodes[x].member != member {
            return false;
        }
        for (i, &u) in update.iter().enumerate().take(self.level) {
            if self.nodes[u].links[i].next == x {
                self.nodes[u].links[i].span += self.nodes[x].links[i].span;
                self.nodes[u].links[i].span -= 1;
                self.nodes[u].links[i].next = self.nodes[x].links[i].next;
            } else {
                self.nodes[u].links[i].span -= 1;
            }
        }
        let (nx, back) = (self.next(x, 0), self.nodes[x].back);
        if nx != NIL {
            self.nodes[nx].back = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.nodes[HEAD].links[self.level - 1].next == NIL {
            self.level -= 1;
        }
        self.nodes[x].member = Box::default();
        self.nodes[x].links = Vec::new();
        self.free.push(x);
        self.len -= 1;
        if self.len == 0 {
            // Give the arena back once empty.
            self.nodes.truncate(1);
            self.nodes.shrink_to_fit();
            self.free = Vec::new();
        }
        true
    }

    /// 0-based rank of a present pair.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut x = HEAD;
        let mut rank = 0;
        for i in (0..self.level).rev() {
            loop {
                let nx = self.next(x, i);
                if nx == NIL {
                    break;
                }
                let n = &self.nodes[nx];
                if cmp(n.score, &n.member, score, member) != Ordering::Greater {
                    rank += self.nodes[x].links[i].span;
                    x = nx;
                } else {
                    break;
                }
            }
            if x != HEAD && &*self.nodes[x].member == member {
                return Some(rank - 1);
            }
        }
        None
    }

    /// The node at 0-based `rank`.
    fn at(&self, rank: usize) -> usize {
        if rank >= self.len {
            return NIL;
        }
        let want = rank + 1;
        let mut x = HEAD;
        let mut traversed = 0;
        for i in (0..self.level).rev() {
            loop {
                let nx = self.next(x, i);
                if nx != NIL && traversed + self.nodes[x].links[i].span <= want {
                    traversed += self.nodes[x].links[i].span;
                    x = nx;
                } else {
                    break;
                }
            }
            if traversed == want {
                return x;
            }
        }
        NIL
    }

    /// The pair at 0-based `rank`.
    pub fn get(&self, rank: usize) -> Option<(f64, &[u8])> {
        self.entry(self.at(rank))
    }

    fn entry(&self, idx: usize) -> Option<(f64, &[u8])> {
        (idx != NIL && idx != HEAD).then(|| (self.nodes[idx].score, &*self.nodes[idx].member))
    }

    /// Walks from `rank` towards the tail (or the head when `rev`), `n` at most.
    pub fn walk(&self, rank: usize, rev: bool, n: usize) -> Walk<'_> {
        Walk {
            list: self,
            idx: self.at(rank),
            rev,
            left: n,
        }
    }

    /// Walks down from the head past every node `before` holds for (a prefix of the
    /// order): the last node passed (`HEAD` if none) and how many were passed.
    fn descend(&self, before: impl Fn(&Node) -> bool) -> (usize, usize) {
        let mut x = HEAD;
        let mut rank = 0;
        for i in (0..self.level).rev() {
            loop {
                let nx = self.next(x, i);
                if nx == NIL || !before(&self.nodes[nx]) {
                    break;
                }
                rank += self.nodes[x].links[i].span;
                x = nx;
            }
        }
        (x, rank)
    }

    /// 0-based rank of the first pair whose score is in `r`.
    pub fn first_in_score(&self, r: &ScoreRange) -> Option<usize> {
        if r.is_empty() || self.len == 0 {
            return None;
        }
        let (x, rank) = self.descend(|n| !r.gte_min(n.score));
        let x = self.next(x, 0);
        (x != NIL && r.lte_max(self.nodes[x].score)).then_some(rank)
    }

    /// 0-based rank of the last pair whose score is in `r`.
    pub fn last_in_score(&self, r: &ScoreRange) -> Option<usize> {
        if r.is_empty() || self.len == 0 {
            return None;
        }
        let (x, rank) = self.descend(|n| r.lte_max(n.score));
        (x != HEAD && r.gte_min(self.nodes[x].score)).then(|| rank - 1)
    }

    /// 0-based rank of the first member in `r` (meaningful when all scores are equal).
    pub fn first_in_lex(&self, r: &LexRange) -> Option<usize> {
        if r.is_empty() || self.len == 0 {
            return None;
        }
        let (x, rank) = self.descend(|n| !r.gte_min(&n.member));
        let x = self.next(x, 0);
        (x != NIL && r.lte_max(&self.nodes[x].member)).then_some(rank)
    }

    /// 0-based rank of the last member in `r`.
    pub fn last_in_lex(&self, r: &LexRange) -> Option<usize> {
        if r.is_empty() || self.len == 0 {
            return None;
        }
        let (x, rank) = self.descend(|n| r.lte_max(&n.member));
        (x != HEAD && r.gte_min(&self.nodes[x].member)).then(|| rank - 1)
    }
}

pub struct Walk<'a> {
    list: &'a SkipList,
    idx: usize,
    rev: bool,
    left: usize,
}

impl<'a> Iterator for Walk<'a> {
    type Item = (f64, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.idx == NIL || self.idx == HEAD {
            return None;
        }
        self.left -= 1;
        let n = &self.list.nodes[self.idx];
        self.idx = if self.rev { n.back } else { n.links[0].next };
        Some((n.score, &n.member))
    }
}

/// A large sorted set: the member table beside the skip list.
#[derive(Debug, Clone, Default)]
pub struct SkipSet {
    pub dict: IndexMap<Box<[u8]>, f64, foldhash::fast::RandomState>,
    pub list: SkipList,
}

impl SkipSet {
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }

    /// Sets `member`'s score; true when the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        match self.dict.get_mut(member) {
            Some(old) => {
                if *old != score {
                    let prev = *old;
                    *old = score;
                    self.list.remove(prev, member);
                    self.list.insert(score, member.into());
                }
                false
            }
            None => {
                self.dict.insert(member.into(), score);
                self.list.insert(score, member.into());
                true
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.dict.swap_remove(member) {
            Some(score) => {
                self.list.remove(score, member);
                true
            }
            None => false,
        }
    }

    /// 0-based rank, ascending or descending.
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let score = self.score(member)?;
        let r = self.list.rank(score, member)?;
        Some(if rev { self.len() - 1 - r } else { r })
    }
}

/// A sorted set, in one of Redis 7.0's two encodings: up to `zset-max-listpack-entries`
/// members of at most `zset-max-listpack-value` bytes, one vector of (score, member)
/// pairs in order (OBJECT ENCODING `listpack`), where a rank is an index and a score
/// range two binary searches; past either limit, the table and skip list above
/// (`skiplist`). The conversion happens once on growth (Redis's `zsetAdd`); a stored
/// result (ZUNIONSTORE and the like) is packed when small, as
/// `zsetConvertToListpackIfNeeded` does.
#[derive(Debug, Clone)]
pub enum ZSet {
    Pack(Vec<(f64, Box<[u8]>)>),
    Skip(SkipSet),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Pack(Vec::new())
    }
}

fn pack_pos(v: &[(f64, Box<[u8]>)], member: &[u8]) -> Option<usize> {
    v.iter().position(|(_, m)| &m[..] == member)
}

impl ZSet {
    /// An empty set for `n` members: a skip list from the start when `n` is past the
    /// pack's entry limit.
    pub fn with_capacity(n: usize, lim: &Encodings) -> ZSet {
        if n > lim.zset_entries {
            ZSet::Skip(SkipSet::default())
        } else {
            ZSet::Pack(Vec::with_capacity(n))
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ZSet::Pack(v) => v.len(),
            ZSet::Skip(z) => z.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Pack(_) => "listpack",
            ZSet::Skip(_) => "skiplist",
        }
    }

    pub fn is_packed(&self) -> bool {
        matches!(self, ZSet::Pack(_))
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Pack(v) => pack_pos(v, member).map(|i| v[i].0),
            ZSet::Skip(z) => z.score(member),
        }
    }

    /// Moves a packed set into the table and skip list (once grown past the pack's
    /// limits, or sorted by SORT).
    pub fn convert(&mut self) {
        if let ZSet::Pack(v) = self {
            let mut z = SkipSet::default();
            z.dict.reserve(v.len() + 1);
            for (s, m) in v.drain(..) {
                z.dict.insert(m.clone(), s);
                z.list.insert(s, m);
            }
            *self = ZSet::Skip(z);
        }
    }

    /// Sets `member`'s score; true when the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64, lim: &Encodings) -> bool {
        if let ZSet::Pack(v) = self {
            match pack_pos(v, member) {
                Some(i) => {
                    if v[i].0 != score {
                        let (_, m) = v.remove(i);
                        let at = v.partition_point(|(s, x)| cmp(*s, x, score, member).is_lt());
                        v.insert(at, (score, m));
                    }
                    return false;
                }
                None if v.len() < lim.zset_entries && member.len() <= lim.zset_value => {
                    let at = v.partition_point(|(s, x)| cmp(*s, x, score, member).is_lt());
                    v.insert(at, (score, member.into()));
                    return true;
                }
                None => self.convert(),
            }
        }
        match self {
            ZSet::Skip(z) => z.insert(member, score),
            ZSet::Pack(_) => false,
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            ZSet::Pack(v) => match pack_pos(v, member) {
                Some(i) => {
                    v.remove(i);
                    true
                }
                None => false,
            },
            ZSet::Skip(z) => z.remove(member),
        }
    }

    /// Packs a skip-list set that fits the limits (a stored result).
    pub fn pack_if_small(&mut self, lim: &Encodings) {
        if let ZSet::Skip(z) = self {
            if z.len() <= lim.zset_entries && z.dict.keys().all(|m| m.len() <= lim.zset_value) {
                let v = z
                    .list
                    .walk(0, false, usize::MAX)
                    .map(|(s, m)| (s, m.into()))
                    .collect();
                *self = ZSet::Pack(v);
            }
        }
    }

    /// 0-based rank, ascending or descending.
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let r = match self {
            ZSet::Pack(v) => pack_pos(v, member)?,
            ZSet::Skip(z) => return z.rank(member, rev),
        };
        Some(if rev { self.len() - 1 - r } else { r })
    }

    /// The pair at 0-based `rank`.
    pub fn get(&self, rank: usize) -> Option<(f64, &[u8])> {
        match self {
            ZSet::Pack(v) => v.get(rank).map(|(s, m)| (*s, &m[..])),
            ZSet::Skip(z) => z.list.get(rank),
        }
    }

    /// Walks from `rank` towards the end (or the start when `rev`), `n` at most.
    pub fn walk(&self, rank: usize, rev: bool, n: usize) -> ZWalk<'_> {
        match self {
            ZSet::Pack(v) => {
                let part: &[(f64, Box<[u8]>)] = if rank >= v.len() {
                    &[]
                } else if rev {
                    &v[(rank + 1).saturating_sub(n)..=rank]
                } else {
                    &v[rank..rank + n.min(v.len() - rank)]
                };
                ZWalk::Pack(part.iter(), rev)
            }
            ZSet::Skip(z) => ZWalk::Skip(z.list.walk(rank, rev, n)),
        }
    }

    /// 0-based rank of the first pair whose score is in `r`.
    pub fn first_in_score(&self, r: &ScoreRange) -> Option<usize> {
        match self {
            ZSet::Pack(v) => {
                if r.is_empty() {
                    return None;
                }
                let i = v.partition_point(|(s, _)| !r.gte_min(*s));
                v.get(i).filter(|(s, _)| r.lte_max(*s)).map(|_| i)
            }
            ZSet::Skip(z) => z.list.first_in_score(r),
        }
    }

    /// 0-based rank of the last pair whose score is in `r`.
    pub fn last_in_score(&self, r: &ScoreRange) -> Option<usize> {
        match self {
            ZSet::Pack(v) => {
                if r.is_empty() {
                    return None;
                }
                let i = v.partition_point(|(s, _)| r.lte_max(*s)).checked_sub(1)?;
                r.gte_min(v[i].0).then_some(i)
            }
            ZSet::Skip(z) => z.list.last_in_score(r),
        }
    }

    /// 0-based rank of the first member in `r` (meaningful when all scores are equal).
    pub fn first_in_lex(&self, r: &LexRange) -> Option<usize> {
        match self {
            ZSet::Pack(v) => {
                if r.is_empty() {
                    return None;
                }
                let i = v.partition_point(|(_, m)| !r.gte_min(m));
                v.get(i).filter(|(_, m)| r.lte_max(m)).map(|_| i)
            }
            ZSet::Skip(z) => z.list.first_in_lex(r),
        }
    }

    /// 0-based rank of the last member in `r`.
    pub fn last_in_lex(&self, r: &LexRange) -> Option<usize> {
        match self {
            ZSet::Pack(v) => {
                if r.is_empty() {
                    return None;
                }
                let i = v.partition_point(|(_, m)| r.lte_max(m)).checked_sub(1)?;
                r.gte_min(&v[i].1).then_some(i)
            }
            ZSet::Skip(z) => z.list.last_in_lex(r),
        }
    }

    /// The member at position `i` of the member table (rank order in a pack): O(1)
    /// random picks and ZSCAN's positional cursor.
    pub fn get_index(&self, i: usize) -> Option<(&[u8], f64)> {
        match self {
            ZSet::Pack(v) => v.get(i).map(|(s, m)| (&m[..], *s)),
            ZSet::Skip(z) => z.dict.get_index(i).map(|(m, s)| (&m[..], *s)),
        }
    }

    /// Every member with its score, in table order (rank order in a pack).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            ZSet::Pack(v) => Box::new(v.iter().map(|(s, m)| (&m[..], *s))),
            ZSet::Skip(z) => Box::new(z.dict.iter().map(|(m, s)| (&m[..], *s))),
        }
    }
}

pub enum ZWalk<'a> {
    Pack(std::slice::Iter<'a, (f64, Box<[u8]>)>, bool),
    Skip(Walk<'a>),
}

impl<'a> Iterator for ZWalk<'a> {
    type Item = (f64, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ZWalk::Pack(it, rev) => {
                let e = if *rev { it.next_back() } else { it.next() };
                e.map(|(s, m)| (*s, &m[..]))
            }
            ZWalk::Skip(w) => w.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::value::Encodings;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ordered(model: &BTreeMap<Vec<u8>, i32>) -> Vec<(f64, Vec<u8>)> {
        let mut v: Vec<(f64, Vec<u8>)> = model
            .iter()
            .map(|(m, s)| (f64::from(*s), m.clone()))
            .collect();
        v.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
        v
    }

    proptest! {
        #[test]
        fn matches_a_sorted_model(ops in proptest::collection::vec((0u8..3, 0u8..40, -5i32..5), 1..400), entries in 0usize..48) {
            // A small entry limit has some runs convert half-way and others stay packed.
            let lim = Encodings { zset_entries: entries, ..Encodings::default() };
            let mut z = ZSet::default();
            let mut model: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
            let mut peak = 0;
            for (op, m, s) in ops {
                let member = vec![b'a' + m % 26, m];
                if op < 2 {
                    prop_assert_eq!(z.insert(&member, f64::from(s), &lim), model.insert(member, s).is_none());
                    peak = peak.max(model.len());
                } else {
                    prop_assert_eq!(z.remove(&member), model.remove(&member).is_some());
                }
            }
            let want = ordered(&model);
            prop_assert_eq!(z.len(), want.len());
            prop_assert_eq!(z.encoding(), if peak > entries { "skiplist" } else { "listpack" });
            let got: Vec<(f64, Vec<u8>)> = z.walk(0, false, usize::MAX).map(|(s, m)| (s, m.to_vec())).collect();
            prop_assert_eq!(&got, &want);
            let back: Vec<(f64, Vec<u8>)> = z.walk(want.len().saturating_sub(1), true, usize::MAX).map(|(s, m)| (s, m.to_vec())).collect();
            let mut rev = want.clone();
            rev.reverse();
            prop_assert_eq!(&back, &rev);
            for (i, (s, m)) in want.iter().enumerate() {
                prop_assert_eq!(z.rank(m, false), Some(i));
                prop_assert_eq!(z.rank(m, true), Some(want.len() - 1 - i));
                let (gs, gm) = z.get(i).unwrap();
                prop_assert_eq!((gs, gm), (*s, m.as_slice()));
            }
            for lo in -6..6 {
                for hi in lo - 1..6 {
                    for (minex, maxex) in [(false, false), (true, false), (false, true), (true, true)] {
                        let r = ScoreRange { min: f64::from(lo), max: f64::from(hi), minex, maxex };
                        let inside: Vec<usize> = (0..want.len()).filter(|&i| r.gte_min(want[i].0) && r.lte_max(want[i].0)).collect();
                        prop_assert_eq!(z.first_in_score(&r), inside.first().copied());
                        prop_assert_eq!(z.last_in_score(&r), inside.last().copied());
                    }
                }
            }
        }

        #[test]
        fn lex_ranges_match_a_model(members in proptest::collection::btree_set(proptest::collection::vec(b'a'..b'e', 0..3), 0..30),
                                    lo in proptest::collection::vec(b'a'..b'e', 0..3), hi in proptest::collection::vec(b'a'..b'e', 0..3),
                                    kinds in (0u8..4, 0u8..4), packed in proptest::bool::ANY) {
            let mut z = ZSet::default();
            let lim = Encodings { zset_entries: packed as usize * 64, ..Encodings::default() };
            for m in &members {
                z.insert(m, 0.0, &lim);
            }
            let mk = |k: u8, v: &Vec<u8>| match k { 0 => LexBound::Incl(v.clone()), 1 => LexBound::Excl(v.clone()), 2 => LexBound::NegInf, _ => LexBound::PosInf };
            let r = LexRange { min: mk(kinds.0, &lo), max: mk(kinds.1, &hi) };
            let sorted: Vec<&Vec<u8>> = members.iter().collect();
            let inside: Vec<usize> = (0..sorted.len()).filter(|&i| r.gte_min(sorted[i]) && r.lte_max(sorted[i])).collect();
            prop_assert_eq!(z.first_in_lex(&r), inside.first().copied());
            prop_assert_eq!(z.last_in_lex(&r), inside.last().copied());
        }
    }
}
