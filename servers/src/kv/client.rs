//! What kvd knows about each connected client beyond its bytes: its name and address
//! (CLIENT LIST), the keys it WATCHes, its transaction queue, its subscriptions.
//!
//! The one idea: state other clients' commands must reach (a WATCH made dirty by
//! someone else's write, a CLIENT KILL, a PUBLISH to its channels) lives here, in
//! [`Clients`] owned by [`super::Kv`] and keyed by connection; the event loop's
//! per-connection value ([`super::KvConn`]) only caches whether the client is plain
//! (authenticated, not in MULTI, not subscribed, speaking RESP2 with replies on), so an
//! ordinary command costs no lookup at all.

use crate::proto::resp::Args;
use crate::proto::ConnId;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

/// Commands kept as bytes plus argument ranges, for a MULTI queue or a transaction
/// read back from the log.
#[derive(Debug, Default)]
pub struct CommandQueue {
    bytes: Vec<u8>,
    ranges: Vec<Range<usize>>,
    /// Each command's slice of `ranges`.
    cmds: Vec<Range<usize>>,
}

impl CommandQueue {
    pub fn push(&mut self, args: Args<'_>) {
        let first = self.ranges.len();
        for a in args.iter() {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(a);
            self.ranges.push(start..self.bytes.len());
        }
        self.cmds.push(first..self.ranges.len());
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Bytes held (arguments and their bookkeeping), for the queue's bound.
    pub fn weight(&self) -> usize {
        self.bytes.len() + 16 * self.ranges.len() + 16 * self.cmds.len()
    }

    pub fn get(&self, i: usize) -> Args<'_> {
        let r = self.cmds[i].clone();
        Args::new(&self.bytes, &self.ranges[r])
    }
}

/// An open MULTI.
#[derive(Debug, Default)]
pub struct Multi {
    pub queue: CommandQueue,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub aborted: bool,
}

/// A watched key: whether it was already logically expired when WATCHed (its
/// deletion then is no change, as in Redis).
#[derive(Debug)]
pub struct Watched {
    pub key: Box<[u8]>,
    pub expired: bool,
}

#[derive(Debug)]
pub struct Client {
    pub addr: SocketAddr,
    pub created: Instant,
    pub name: Option<Vec<u8>>,
    pub last_cmd: &'static str,
    pub authed: bool,
    pub multi: Option<Multi>,
    pub watched: Vec<Watched>,
    /// A watched key changed: the next EXEC fails.
    pub dirty_cas: bool,
    pub channels: HashSet<Box<[u8]>>,
    pub patterns: HashSet<Box<[u8]>>,
    /// CLIENT REPLY: whether replies are sent.
    pub reply: ReplyMode,
    /// HELLO 3 made it a RESP3 client.
    pub resp3: bool,
}

/// CLIENT REPLY ON | OFF | SKIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// The next command's reply is dropped, then On.
    SkipNext,
    /// Set by CLIENT REPLY SKIP itself: becomes SkipNext after its own command.
    Skip,
}

impl Client {
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Neither authentication, a transaction nor subscriptions change how its
    /// commands run.
    pub fn plain(&self) -> bool {
        self.authed
            && self.multi.is_none()
            && self.subscriptions() == 0
            && self.reply == ReplyMode::On
            && !self.resp3
    }
}

/// Every client, the reverse index of watched keys, and the subscription tables.
#[derive(Debug, Default)]
pub struct Clients {
    pub map: HashMap<ConnId, Client>,
    /// Key → the clients watching it.
    pub watches: HashMap<Box<[u8]>, Vec<ConnId>>,
    /// Channel → its subscribers.
    pub channels: HashMap<Box<[u8]>, Vec<ConnId>>,
    /// Pattern → its subscribers.
    pub patterns: HashMap<Box<[u8]>, Vec<ConnId>>,
}

impl Clients {
    pub fn add(&mut self, id: ConnId, addr: SocketAddr, authed: bool) {
        self.map.insert(
            id,
            Client {
                addr,
                created: Instant::now(),
                name: None,
                last_cmd: "NULL",
                authed,
                multi: None,
                watched: Vec::new(),
                dirty_cas: false,
                channels: HashSet::new(),
                patterns: HashSet::new(),
                reply: ReplyMode::On,
                resp3: false,
            },
        );
    }

    pub fn remove(&mut self, id: ConnId) {
        self.unwatch_all(id);
        self.unsubscribe_all(id);
        self.map.remove(&id);
    }

    pub fn watch(&mut self, id: ConnId, key: &[u8], expired: bool) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        if c.watched.iter().any(|w| &*w.key == key) {
            return;
        }
        c.watched.push(Watched {
            key: key.into(),
            expired,
        });
        self.watches.entry(key.into()).or_default().push(id);
    }

    pub fn unwatch_all(&mut self, id: ConnId) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        c.dirty_cas = false;
        for w in std::mem::take(&mut c.watched) {
            if let Some(ids) = self.watches.get_mut(&w.key) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    self.watches.remove(&w.key);
                }
            }
        }
    }

    /// A write changed `key`: every client watching it fails its next EXEC, unless the
    /// key was already logically expired when WATCHed and is gone now (`exists`).
    pub fn touch(&mut self, key: &[u8], exists: bool) {
        let Some(ids) = self.watches.get(key) else {
            return;
        };
        for id in ids {
            let Some(c) = self.map.get_mut(id) else {
                continue;
            };
            let Some(w) = c.watched.iter_mut().find(|w| &*w.key == key) else {
                continue;
            };
            if w.expired {
                if !exists {
                    w.expired = false;
                }
                continue;
            }
            c.dirty_cas = true;
        }
    }

    pub fn unsubscribe_all(&mut self, id: ConnId) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        for ch in std::mem::take(&mut c.channels) {
            remove_from(&mut self.channels, &ch, id);
        }
        for p in std::mem::take(&mut c.patterns) {
            remove_from(&mut self.patterns, &p, id);
        }
    }
}

/// Removes `id` from `table[name]`, dropping the entry when it empties.
pub fn remove_from(table: &mut HashMap<Box<[u8]>, Vec<ConnId>>, name: &[u8], id: ConnId) {
    if let Some(ids) = table.get_mut(name) {
        ids.retain(|&i| i != id);
        if ids.is_empty() {
            table.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keeps_commands_apart() {
        let mut q = CommandQueue::default();
        let src = b"SETkv";
        q.push(Args::new(src, &[0..3, 3..4, 4..5]));
        let ping = [std::ops::Range { start: 0, end: 4 }];
        q.push(Args::new(b"PING", &ping));
        assert_eq!(q.len(), 2);
        assert_eq!(
            q.get(0).iter().collect::<Vec<_>>(),
            [&b"SET"[..], b"k", b"v"]
        );
        assert_eq!(q.get(1).iter().collect::<Vec<_>>(), [&b"PING"[..]]);
    }

    #[test]
    fn touch_dirties_watchers_but_not_of_stale_keys_deleted() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut c = Clients::default();
        c.add(ConnId(1), addr, true);
        c.add(ConnId(2), addr, true);
        c.watch(ConnId(1), b"k", false);
        c.watch(ConnId(2), b"k", true);
        c.touch(b"k", false);
        assert!(c.map[&ConnId(1)].dirty_cas);
        assert!(!c.map[&ConnId(2)].dirty_cas);
        // Once deleted, the stale key is an ordinary watched key again.
        c.touch(b"k", true);
        assert!(c.map[&ConnId(2)].dirty_cas);
        c.remove(ConnId(1));
        c.remove(ConnId(2));
        assert!(c.watches.is_empty());
    }
}
