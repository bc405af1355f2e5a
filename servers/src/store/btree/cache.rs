//! A bounded page cache shared by readers and the writer.
//!
//! The one idea: pages are copy-on-write, so a page number's content changes only when
//! the page is freed and reused, and a reused page is always rewritten through
//! [`PageCache::insert`] at commit; a cached page is therefore never stale for any
//! snapshot that can still reach it. Eviction is CLOCK (second chance), O(1) per access.

use super::page::Page;
use std::collections::HashMap;
use std::sync::Arc;

struct Slot {
    page: Arc<Page>,
    referenced: bool,
}

pub struct PageCache {
    cap: usize,
    map: HashMap<u64, usize>,
    slots: Vec<Slot>,
    hand: usize,
    pub hits: u64,
    pub misses: u64,
}

impl PageCache {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(8);
        PageCache {
            cap,
            map: HashMap::with_capacity(cap),
            slots: Vec::with_capacity(cap),
            hand: 0,
            hits: 0,
            misses: 0,
        }
    }

    pub fn get(&mut self, pgno: u64) -> Option<Arc<Page>> {
        match self.map.get(&pgno) {
            Some(&i) => {
                self.hits += 1;
                let s = &mut self.slots[i];
                s.referenced = true;
                Some(s.page.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn insert(&mut self, page: Arc<Page>) {
        let pgno = page.pgno;
        if let Some(&i) = self.map.get(&pgno) {
            self.slots[i] = Slot {
                page,
                referenced: true,
            };
            return;
        }
        if self.slots.len() < self.cap {
            self.map.insert(pgno, self.slots.len());
            self.slots.push(Slot {
                page,
                referenced: false,
            });
            return;
        }
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let s = &mut self.slots[i];
            if s.referenced {
                s.referenced = false;
                continue;
            }
            self.map.remove(&s.page.pgno);
            *s = Slot {
                page,
                referenced: false,
            };
            self.map.insert(pgno, i);
            return;
        }
    }

    /// Forget a page (its number was freed or its write failed).
    pub fn remove(&mut self, pgno: u64) {
        if let Some(i) = self.map.remove(&pgno) {
            let last = self.slots.len() - 1;
            self.slots.swap(i, last);
            self.slots.pop();
            if i < self.slots.len() {
                let moved = self.slots[i].page.pgno;
                self.map.insert(moved, i);
            }
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
        }
    }
}
