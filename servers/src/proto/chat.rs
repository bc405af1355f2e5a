//! Line-based broadcast chat: each complete line a client sends goes to every other
//! client, prefixed with the sender's name.
//!
//! The one idea: a line is only acted on once its newline has arrived, and a line
//! that grows past [`MAX_LINE`] without one is answered with an error at once and
//! then skipped up to its newline, so no client can make the server buffer more than
//! a line. Commands: `/nick NAME`, `/who`, `/quit`. Server notices start with `*`,
//! errors with `!`.
//!
//! Lines reach other people's terminals, so control bytes in them are escaped, as
//! `ncat --chat` does: every C0 control but tab, and DEL, becomes a visible `\ooo`
//! (octal; NUL is `\000`, ESC `\033`), so nobody can colour, clear, retitle or
//! overwrite another user's screen, or fake a line with a carriage return. Bytes from
//! 0x80 up (UTF-8) pass unchanged.

use super::{ConnId, Outbox, Protocol, Target};
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

/// The longest line accepted, newline excluded.
pub const MAX_LINE: usize = 4096;
/// The longest name accepted.
pub const MAX_NAME: usize = 32;

/// The shared state: who is here.
#[derive(Debug, Default)]
pub struct Chat {
    /// In arrival order (ids only grow), for `/who`.
    names: BTreeMap<ConnId, String>,
    taken: HashSet<String>,
    next_guest: u64,
}

/// One client's state.
#[derive(Debug)]
pub struct ChatConn {
    name: String,
    /// Skipping the rest of an over-long line, up to its newline.
    discarding: bool,
    /// Said `/quit`: whatever follows is ignored.
    quit: bool,
}

impl Chat {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many clients are in the room.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn fresh_guest(&mut self) -> String {
        loop {
            self.next_guest += 1;
            let name = format!("guest-{}", self.next_guest);
            if !self.taken.contains(&name) {
                return name;
            }
        }
    }

    /// Joins a client to the room, named `wanted` when that is a valid name nobody
    /// holds (a TLS client's certificate name: `alice`, else `alice-2`, …), else a
    /// fresh `guest-N`.
    pub fn join(&mut self, id: ConnId, wanted: Option<&str>, out: &mut Outbox) -> ChatConn {
        let name = match wanted.filter(|w| valid_name(w.as_bytes())) {
            Some(w) => self.free_variant(w),
            None => self.fresh_guest(),
        };
        self.taken.insert(name.clone());
        self.names.insert(id, name.clone());
        out.send(
            id,
            format!(
                "* welcome, you are {name} ({} online; /nick NAME, /who, /quit)\n",
                self.names.len()
            ),
        );
        out.send_to(Target::AllBut(id), format!("* {name} joined\n"));
        ChatConn {
            name,
            discarding: false,
            quit: false,
        }
    }

    fn free_variant(&mut self, wanted: &str) -> String {
        if !self.taken.contains(wanted) {
            return wanted.to_string();
        }
        let variant = (2..1000)
            .map(|n| format!("{wanted}-{n}"))
            .find(|c| c.len() <= MAX_NAME && !self.taken.contains(c));
        variant.unwrap_or_else(|| self.fresh_guest())
    }

    /// A command line (starts with `/`, `\r` stripped).
    fn command(&mut self, id: ConnId, conn: &mut ChatConn, line: &[u8], out: &mut Outbox) {
        let (cmd, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], trim(&line[i + 1..])),
            None => (line, &b""[..]),
        };
        match cmd {
            b"/nick" => self.nick(id, conn, arg, out),
            b"/who" => {
                let list: Vec<&str> = self.names.values().map(String::as_str).collect();
                out.send(
                    id,
                    format!("* online ({}): {}\n", list.len(), list.join(", ")),
                );
            }
            b"/quit" => {
                conn.quit = true;
                out.send(id, Bytes::from_static(b"* bye\n"));
                out.close(id);
            }
            _ => {
                let mut shown = Vec::new();
                push_escaped(&mut shown, &cmd[..cmd.len().min(MAX_NAME)]);
                out.send(
                    id,
                    format!(
                        "! unknown command {}; try /nick NAME, /who, /quit\n",
                        String::from_utf8_lossy(&shown)
                    ),
                )
            }
        }
    }

    fn nick(&mut self, id: ConnId, conn: &mut ChatConn, arg: &[u8], out: &mut Outbox) {
        if !valid_name(arg) {
            out.send(
                id,
                format!("! bad name: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.'\n"),
            );
            return;
        }
        // Validated as ASCII just above.
        let new = String::from_utf8_lossy(arg).into_owned();
        if new == conn.name {
            return;
        }
        if self.taken.contains(&new) {
            out.send(id, format!("! name taken: {new}\n"));
            return;
        }
        self.taken.remove(&conn.name);
        self.taken.insert(new.clone());
        self.names.insert(id, new.clone());
        out.send_to(Target::All, format!("* {} is now {}\n", conn.name, new));
        conn.name = new;
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// Whether `b` must not reach a terminal as is: C0 controls other than tab, and DEL.
fn is_unsafe_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Appends `line` to `out` with every unsafe control byte written as `\ooo`.
/// At most four bytes out per byte in, so a line stays bounded by `4 * MAX_LINE`.
pub fn push_escaped(out: &mut Vec<u8>, line: &[u8]) {
    let mut rest = line;
    while let Some(i) = rest.iter().position(|&b| is_unsafe_control(b)) {
        out.extend_from_slice(&rest[..i]);
        let b = rest[i];
        out.extend_from_slice(&[
            b'\\',
            b'0' + (b >> 6),
            b'0' + ((b >> 3) & 7),
            b'0' + (b & 7),
        ]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// 1 to [`MAX_NAME`] letters, digits, `-`, `_` or `.`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

impl Protocol for Chat {
    type Conn = ChatConn;

    fn open(&mut self, id: ConnId, _peer: SocketAddr, out: &mut Outbox) -> ChatConn {
        self.join(id, None, out)
    }

    fn data(&mut self, id: ConnId, conn: &mut ChatConn, input: &[u8], out: &mut Outbox) -> usize {
        // Consecutive chat lines of one read go out as one message: same recipients,
        // same order, one queue entry per recipient instead of one per line. The
        // batch is sent before anything else this client causes, so order holds.
        let mut batch: Vec<u8> = Vec::new();
        let send_batch = |batch: &mut Vec<u8>, out: &mut Outbox| {
            if !batch.is_empty() {
                out.send_to(Target::AllBut(id), std::mem::take(batch));
            }
        };
        let mut used = 0;
        while !conn.quit {
            let Some(nl) = memchr::memchr(b'\n', &input[used..]) else {
                break;
            };
            let line = &input[used..used + nl];
            used += nl + 1;
            if conn.discarding {
                conn.discarding = false;
                continue;
            }
            if line.len() > MAX_LINE {
                send_batch(&mut batch, out);
                out.send(
                    id,
                    format!("! line too long (max {MAX_LINE} bytes); dropped\n"),
                );
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if line[0] != b'/' {
                batch.extend_from_slice(conn.name.as_bytes());
                batch.extend_from_slice(b": ");
                push_escaped(&mut batch, line);
                batch.push(b'\n');
                continue;
            }
            send_batch(&mut batch, out);
            self.command(id, conn, line, out);
        }
        send_batch(&mut batch, out);
        if conn.quit {
            return input.len();
        }
        if input.len() - used > MAX_LINE {
            if !conn.discarding {
                out.send(
                    id,
                    format!("! line too long (max {MAX_LINE} bytes); dropped\n"),
                );
                conn.discarding = true;
            }
            used = input.len();
        }
        used
    }

    fn closed(&mut self, id: ConnId, conn: ChatConn, out: &mut Outbox) {
        self.names.remove(&id);
        self.taken.remove(&conn.name);
        out.send_to(Target::All, format!("* {} left\n", conn.name));
    }

    fn refusal(&mut self) -> Bytes {
        Bytes::from_static(b"! server full, try again later\n")
    }

    fn queued(&mut self, position: usize) -> Bytes {
        Bytes::from(format!(
            "* all workers are busy: you are number {position} in the queue, please wait\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Action;

    /// Flattens an outbox into (target, text) pairs, closes as ("close", id).
    fn take(out: &mut Outbox) -> Vec<(String, String)> {
        out.drain()
            .map(|a| match a {
                Action::Send { to, data } => (
                    format!("{to:?}"),
                    String::from_utf8_lossy(&data).into_owned(),
                ),
                Action::Close { id } => ("close".into(), id.to_string()),
                other => (format!("{other:?}"), String::new()),
            })
            .collect()
    }

    fn room(n: u64) -> (Chat, Vec<ChatConn>, Outbox) {
        let mut c = Chat::new();
        let mut out = Outbox::new();
        let conns = (1..=n)
            .map(|i| c.open(ConnId(i), "127.0.0.1:9".parse().unwrap(), &mut out))
            .collect();
        out.drain();
        (c, conns, out)
    }

    #[test]
    fn a_wanted_name_is_used_once_then_varied() {
        let mut c = Chat::new();
        let mut out = Outbox::new();
        let a = c.join(ConnId(1), Some("alice"), &mut out);
        let b = c.join(ConnId(2), Some("alice"), &mut out);
        let g = c.join(ConnId(3), Some("bad name!"), &mut out);
        assert_eq!((a.name.as_str(), b.name.as_str()), ("alice", "alice-2"));
        assert!(g.name.starts_with("guest-"));
        let long = "x".repeat(MAX_NAME);
        let l1 = c.join(ConnId(4), Some(&long), &mut out);
        let l2 = c.join(ConnId(5), Some(&long), &mut out);
        assert_eq!(l1.name, long);
        assert!(l2.name.starts_with("guest-"), "{}", l2.name);
    }

    #[test]
    fn join_greets_and_announces() {
        let mut c = Chat::new();
        let mut out = Outbox::new();
        c.open(ConnId(1), "127.0.0.1:9".parse().unwrap(), &mut out);
        let a = take(&mut out);
        assert_eq!(a[0].0, "One(ConnId(1))");
        assert!(a[0].1.starts_with("* welcome, you are guest-1"), "{a:?}");
        assert_eq!(
            a[1],
            ("AllBut(ConnId(1))".into(), "* guest-1 joined\n".into())
        );
    }

    #[test]
    fn complete_lines_are_relayed_and_partial_lines_wait() {
        let (mut c, mut conns, mut out) = room(2);
        assert_eq!(c.data(ConnId(1), &mut conns[0], b"hel", &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(
            c.data(ConnId(1), &mut conns[0], b"hello\r\nwor", &mut out),
            7
        );
        assert_eq!(
            take(&mut out),
            vec![("AllBut(ConnId(1))".into(), "guest-1: hello\n".into())]
        );
        assert_eq!(c.data(ConnId(1), &mut conns[0], b"\n\n", &mut out), 2);
        assert!(out.is_empty(), "empty lines are ignored");
    }

    #[test]
    fn nick_who_quit() {
        let (mut c, mut conns, mut out) = room(2);
        c.data(ConnId(2), &mut conns[1], b"/nick alice\n", &mut out);
        assert_eq!(
            take(&mut out),
            vec![("All".into(), "* guest-2 is now alice\n".into())]
        );
        c.data(
            ConnId(1),
            &mut conns[0],
            b"/nick alice\n/nick bad name!\n",
            &mut out,
        );
        let a = take(&mut out);
        assert_eq!(a[0].1, "! name taken: alice\n");
        assert!(a[1].1.starts_with("! bad name"), "{a:?}");
        c.data(ConnId(1), &mut conns[0], b"/who\n", &mut out);
        assert_eq!(take(&mut out)[0].1, "* online (2): guest-1, alice\n");
        c.data(ConnId(2), &mut conns[1], b"hi\n", &mut out);
        assert_eq!(take(&mut out)[0].1, "alice: hi\n");
        assert_eq!(
            c.data(ConnId(2), &mut conns[1], b"/quit\nignored\n", &mut out),
            14
        );
        assert_eq!(
            take(&mut out),
            vec![
                ("One(ConnId(2))".into(), "* bye\n".into()),
                ("close".into(), "#2".into())
            ]
        );
        let gone = conns.pop().unwrap();
        c.closed(ConnId(2), gone, &mut out);
        assert_eq!(
            take(&mut out),
            vec![("All".into(), "* alice left\n".into())]
        );
        assert_eq!(c.len(), 1);
        // The name is free again.
        c.data(ConnId(1), &mut conns[0], b"/nick alice\n", &mut out);
        assert_eq!(take(&mut out)[0].1, "* guest-1 is now alice\n");
    }

    #[test]
    fn long_lines_are_refused_and_skipped_without_buffering() {
        let (mut c, mut conns, mut out) = room(2);
        let ok = vec![b'a'; MAX_LINE];
        let mut input = ok.clone();
        input.push(b'\n');
        c.data(ConnId(1), &mut conns[0], &input, &mut out);
        assert_eq!(take(&mut out)[0].1.len(), "guest-1: ".len() + MAX_LINE + 1);

        // Over the limit with no newline yet: error at once, everything consumed.
        let big = vec![b'x'; MAX_LINE + 1];
        assert_eq!(c.data(ConnId(1), &mut conns[0], &big, &mut out), big.len());
        assert!(take(&mut out)[0].1.starts_with("! line too long"));
        // More of the same line: no second error, still consumed.
        assert_eq!(c.data(ConnId(1), &mut conns[0], &big, &mut out), big.len());
        assert!(out.is_empty());
        // Its newline ends the skip; the next line goes through.
        c.data(ConnId(1), &mut conns[0], b"tail\nnext\n", &mut out);
        assert_eq!(
            take(&mut out),
            vec![("AllBut(ConnId(1))".into(), "guest-1: next\n".into())]
        );

        // Over the limit but complete in one read.
        let mut one = vec![b'y'; MAX_LINE + 1];
        one.extend_from_slice(b"\nafter\n");
        c.data(ConnId(1), &mut conns[0], &one, &mut out);
        let a = take(&mut out);
        assert!(a[0].1.starts_with("! line too long"));
        assert_eq!(a[1].1, "guest-1: after\n");
    }

    #[test]
    fn control_bytes_are_escaped_before_they_reach_a_terminal() {
        let (mut c, mut conns, mut out) = room(2);
        let line = b"a\0b\x1b[31mred\x1b[0m\ttab\x7f\x07bell\rfake: hi \xc3\xa9\n";
        c.data(ConnId(1), &mut conns[0], line, &mut out);
        assert_eq!(
            take(&mut out),
            vec![(
                "AllBut(ConnId(1))".into(),
                "guest-1: a\\000b\\033[31mred\\033[0m\ttab\\177\\007bell\\015fake: hi \u{e9}\n"
                    .into()
            )]
        );
        // A trailing CR is the line ending, not content.
        c.data(ConnId(1), &mut conns[0], b"crlf\r\n", &mut out);
        assert_eq!(take(&mut out)[0].1, "guest-1: crlf\n");
        // The unknown-command reply escapes too.
        c.data(ConnId(1), &mut conns[0], b"/x\x1b]0;t\x07\n", &mut out);
        assert!(take(&mut out)[0]
            .1
            .starts_with("! unknown command /x\\033]0;t\\007;"));
        // Every byte: nothing below 0x20 but tab, and no DEL, survives.
        let mut all = Vec::new();
        push_escaped(&mut all, &(0..=255u8).collect::<Vec<_>>());
        assert!(all.iter().all(|&b| !is_unsafe_control(b)));
        assert_eq!(all.len(), 256 + 3 * 32);
    }

    #[test]
    fn binary_garbage_is_relayed_not_fatal() {
        let (mut c, mut conns, mut out) = room(2);
        let junk: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').chain([b'\n']).collect();
        assert_eq!(
            c.data(ConnId(1), &mut conns[0], &junk, &mut out),
            junk.len()
        );
        assert_eq!(out.len(), 1);
    }
}
