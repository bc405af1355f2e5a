//! `-e trace=SET`: which syscalls are shown.
//!
//! A set is a bitmap over syscall numbers, so asking "is this call traced" on the hot
//! path is a shift and a mask. The same set becomes the seccomp-bpf program.

use crate::error::Error;
use crate::table::{class, Table};

const WORDS: usize = 8; // 512 syscall numbers

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSet {
    bits: [u64; WORDS],
    /// True when every syscall is traced (no filter given): no seccomp program needed.
    pub all: bool,
}

impl TraceSet {
    pub fn all() -> TraceSet {
        TraceSet {
            bits: [!0; WORDS],
            all: true,
        }
    }

    pub fn contains(&self, nr: u64) -> bool {
        self.all
            || (nr < (WORDS * 64) as u64 && self.bits[nr as usize / 64] & (1 << (nr % 64)) != 0)
    }

    fn insert(&mut self, nr: u64) {
        if nr < (WORDS * 64) as u64 {
            self.bits[nr as usize / 64] |= 1 << (nr % 64);
        }
    }

    /// The calls of either set.
    pub fn union(&self, other: &TraceSet) -> TraceSet {
        let mut bits = self.bits;
        for (a, b) in bits.iter_mut().zip(other.bits) {
            *a |= b;
        }
        TraceSet {
            bits,
            all: bits == [!0; WORDS],
        }
    }

    /// The traced numbers, ascending.
    pub fn numbers(&self) -> impl Iterator<Item = u64> + '_ {
        (0..(WORDS * 64) as u64).filter(|&n| self.contains(n))
    }

    /// Parses `trace=open,%network` (or just `open,%network`); `!` negates the set.
    pub fn parse(expr: &str, table: &Table) -> Result<TraceSet, Error> {
        let spec = expr
            .strip_prefix("trace=")
            .or_else(|| expr.strip_prefix("t="))
            .unwrap_or(expr);
        if expr.contains('=') && !expr.starts_with("trace=") && !expr.starts_with("t=") {
            return Err(Error::Usage(format!(
                "unsupported -e expression {expr:?} (only trace=SET)"
            )));
        }
        let (negate, spec) = match spec.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let mut set = TraceSet {
            bits: [0; WORDS],
            all: false,
        };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "all" {
                set.bits = [!0; WORDS];
            } else if item == "none" {
            } else if let Some(&(_, bit)) = class::NAMES.iter().find(|(n, _)| *n == item) {
                for (nr, row) in table.iter() {
                    if row.class & bit != 0 {
                        set.insert(nr);
                    }
                }
            } else if let Some(pattern) = item.strip_prefix('/') {
                // strace's `/REGEX`: every call whose name it matches anywhere.
                let re = regex_automata::meta::Regex::new(pattern).map_err(|e| {
                    Error::Usage(format!("invalid regular expression {pattern:?}: {e}"))
                })?;
                let mut any = false;
                for (nr, row) in table.iter() {
                    if row.name != "syscall" && re.is_match(row.name) {
                        set.insert(nr);
                        any = true;
                    }
                }
                if !any {
                    return Err(Error::Usage(format!(
                        "invalid system call {item:?} in -e {expr:?} (no name matches)"
                    )));
                }
            } else if let Some(nr) = table.lookup(item) {
                set.insert(nr);
            } else {
                return Err(Error::Usage(format!(
                    "invalid system call {item:?} in -e {expr:?}"
                )));
            }
        }
        if negate {
            for w in &mut set.bits {
                *w = !*w;
            }
        }
        set.all = set.bits == [!0; WORDS];
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_classes() {
        let t = Table::new();
        let s = TraceSet::parse("trace=openat,%network", &t).unwrap();
        assert!(s.contains(t.lookup("openat").unwrap()));
        assert!(s.contains(t.lookup("accept4").unwrap()));
        assert!(!s.contains(t.lookup("read").unwrap()));
        assert!(!s.all);
        let s = TraceSet::parse("!write", &t).unwrap();
        assert!(!s.contains(1) && s.contains(0));
        assert!(TraceSet::parse("trace=nosuchcall", &t).is_err());
        assert!(TraceSet::parse("trace=all", &t).unwrap().all);
        let s = TraceSet::parse("trace=/^(.*_)?statx?$,close", &t).unwrap();
        for name in ["stat", "statx", "close"] {
            assert!(s.contains(t.lookup(name).unwrap()), "{name}");
        }
        assert!(!s.contains(t.lookup("fstatfs").unwrap()));
        assert!(TraceSet::parse("trace=/(", &t).is_err());
        assert!(TraceSet::parse("trace=/^nosuchcall$", &t).is_err());
    }
}
