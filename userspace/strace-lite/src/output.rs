//! Output: strace's text lines, or one JSON object per event.
//!
//! The one idea: at most one line is "open" (a syscall entry printed, its result not
//! yet). Anything else that prints first closes it with ` <unfinished ...>`, and the
//! call's exit then starts a fresh line `<... NAME resumed>`. Output is buffered; it
//! is flushed when the tracer is about to block, so a blocking call's entry shows.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

/// Column the ` = result` is aligned to, as strace's default `-a 40`.
pub const RESULT_COLUMN: usize = 40;

pub struct Printer {
    out: io::BufWriter<Box<dyn Write>>,
    pub json: bool,
    /// 0: none, 1: `-t` (seconds), 2: `-tt` (microseconds), 3: `-ttt` (epoch seconds).
    timestamps: u8,
    durations: bool,
    /// `-r`: the time since the previous line, and when that line started.
    relative: bool,
    last: Option<std::time::Instant>,
    /// `-i`: each line starts with the instruction pointer this holds (None: unknown).
    pub show_ip: bool,
    pub ip: Option<u64>,
    /// `-a N`: the column results are aligned to.
    pub result_column: usize,
    /// The tid whose syscall line is open.
    open: Option<i32>,
    col: usize,
    line: String,
    /// `-ff -o FILE`: each thread's lines go to `FILE.TID`.
    split: Option<Split>,
}

/// `-ff`: the files of the threads not being printed now, each with its own open line.
/// Switching threads swaps the printer's writer and line state with the parked ones.
struct Split {
    base: std::path::PathBuf,
    current: i32,
    parked: std::collections::HashMap<i32, Parked>,
}

struct Parked {
    out: io::BufWriter<Box<dyn Write>>,
    open: Option<i32>,
    col: usize,
}

/// A finished syscall for the JSON form.
pub struct JsonCall<'a> {
    pub tid: i32,
    pub name: &'a str,
    pub args: &'a [&'a str],
    pub ret: Option<i64>,
    pub errno: Option<&'a str>,
    pub ret_text: &'a str,
    pub duration: Option<Duration>,
}

impl Printer {
    pub fn new(out: Box<dyn Write>, json: bool, timestamps: u8, durations: bool) -> Printer {
        Printer {
            out: io::BufWriter::with_capacity(64 * 1024, out),
            json,
            timestamps,
            durations,
            relative: false,
            last: None,
            show_ip: false,
            ip: None,
            result_column: RESULT_COLUMN,
            open: None,
            col: 0,
            line: String::with_capacity(256),
            split: None,
        }
    }

    /// `-ff -o FILE`: from now on each thread writes to `FILE.TID`, created at its first
    /// line, closed when it is gone.
    pub fn split_by_thread(&mut self, base: std::path::PathBuf) {
        self.split = Some(Split {
            base,
            current: 0,
            parked: Default::default(),
        });
    }

    pub fn is_split(&self) -> bool {
        self.split.is_some()
    }

    /// Makes `tid`'s file the current writer (`-ff`); nothing otherwise.
    fn select(&mut self, tid: i32) {
        let Some(split) = &mut self.split else {
            return;
        };
        if split.current == tid {
            return;
        }
        let next = match split.parked.remove(&tid) {
            Some(p) => p,
            None => {
                // FILE.TID, byte for byte (the name need not be UTF-8).
                let mut path = split.base.clone().into_os_string();
                path.push(format!(".{tid}"));
                let file: Box<dyn Write> = match std::fs::File::create(&path) {
                    Ok(f) => Box::new(f),
                    Err(e) => {
                        // Its lines are lost, the others' are not (EMFILE with very many
                        // threads alive at once, a full disk).
                        tracing::warn!(path = %path.to_string_lossy(), error = %e, "cannot create the trace file");
                        Box::new(io::sink())
                    }
                };
                Parked {
                    out: io::BufWriter::with_capacity(8 * 1024, file),
                    open: None,
                    col: 0,
                }
            }
        };
        let prev = Parked {
            out: std::mem::replace(&mut self.out, next.out),
            open: std::mem::replace(&mut self.open, next.open),
            col: std::mem::replace(&mut self.col, next.col),
        };
        split.parked.insert(split.current, prev);
        split.current = tid;
    }

    /// `-ff`: `tid` is gone; its file is flushed and closed (a program that starts
    /// thousands of processes must not keep thousands of files open).
    pub fn close_thread(&mut self, tid: i32) {
        let Some(split) = &mut self.split else {
            return;
        };
        if split.current == tid {
            let _ = self.out.flush();
            self.out = io::BufWriter::new(Box::new(io::sink()));
            self.open = None;
            self.col = 0;
            split.current = 0;
        } else if let Some(mut p) = split.parked.remove(&tid) {
            let _ = p.out.flush();
        }
    }

    /// `-r`: prefix each line with the time since the previous one.
    pub fn set_relative(&mut self, on: bool) {
        self.relative = on;
    }

    pub fn flush(&mut self) {
        // A closed stdout/stderr must not kill the tracer and its tracees with it.
        let _ = self.out.flush();
        if let Some(split) = &mut self.split {
            for p in split.parked.values_mut() {
                let _ = p.out.flush();
            }
        }
    }

    fn put(&mut self, s: &str) {
        self.col += s.len();
        let _ = self.out.write_all(s.as_bytes());
    }

    /// Closes a line another thread left open.
    fn interrupt_open_line(&mut self) {
        if self.open.take().is_some() {
            self.put(" <unfinished ...>\n");
        }
    }

    fn leader(&mut self, tid: i32, show_pid: bool) {
        self.col = 0;
        self.line.clear();
        if show_pid {
            self.line.push_str("[pid ");
            let start = self.line.len();
            crate::decode::int(&mut self.line, i64::from(tid));
            let width = self.line.len() - start;
            for _ in width..5 {
                self.line.insert(start, ' ');
            }
            self.line.push_str("] ");
        }
        if self.timestamps > 0 {
            wall_clock(&mut self.line, self.timestamps);
            self.line.push(' ');
        }
        if self.relative {
            let now = std::time::Instant::now();
            let d = self.last.map_or(Duration::ZERO, |t| now.duration_since(t));
            self.last = Some(now);
            let (open, close) = if self.timestamps > 0 {
                ("(+", ") ")
            } else {
                ("", " ")
            };
            let _ = write!(
                self.line,
                "{open}{:6}.{:06}{close}",
                d.as_secs(),
                d.subsec_micros()
            );
        }
        if self.show_ip {
            match self.ip {
                Some(ip) => {
                    let _ = write!(self.line, "[{ip:016x}] ");
                }
                None => self.line.push_str("[????????????????] "),
            }
        }
        let line = std::mem::take(&mut self.line);
        self.put(&line);
        self.line = line;
    }

    /// Prints `name(entry-args` (and `more`, the `, ` before exit arguments to come)
    /// and leaves the line open for `tid`.
    pub fn entry(&mut self, tid: i32, show_pid: bool, name: &str, args: &str, more: &str) {
        if self.json {
            return;
        }
        self.select(tid);
        self.interrupt_open_line();
        self.leader(tid, show_pid);
        self.put(name);
        self.put("(");
        self.put(args);
        self.put(more);
        self.open = Some(tid);
    }

    /// Completes `tid`'s call: exit-args, `) = result`, duration.
    pub fn exit(
        &mut self,
        tid: i32,
        show_pid: bool,
        name: &str,
        args: &str,
        ret: &str,
        dur: Option<Duration>,
    ) {
        self.select(tid);
        if self.open == Some(tid) {
            self.open = None;
        } else {
            self.interrupt_open_line();
            self.leader(tid, show_pid);
            self.put("<... ");
            self.put(name);
            self.put(" resumed>");
        }
        self.put(args);
        self.put(") ");
        // Spaces from a constant, not `{:pad$}`: core::fmt pads one char at a time.
        const SPACES: &[u8; 64] = &[b' '; 64];
        let mut pad = self.result_column.saturating_sub(self.col);
        while pad > 0 {
            let n = pad.min(SPACES.len());
            let _ = self.out.write_all(&SPACES[..n]);
            pad -= n;
        }
        let _ = self.out.write_all(b"= ");
        let _ = self.out.write_all(ret.as_bytes());
        if let (true, Some(d)) = (self.durations, dur) {
            let _ = write!(self.out, " <{}.{:06}>", d.as_secs(), d.subsec_micros());
        }
        let _ = self.out.write_all(b"\n");
        self.col = 0;
    }

    /// A line of its own: `--- SIGCHLD {...} ---`, `+++ exited with 0 +++`.
    pub fn note(&mut self, tid: i32, show_pid: bool, text: &str) {
        self.select(tid);
        self.interrupt_open_line();
        self.leader(tid, show_pid);
        self.put(text);
        self.put("\n");
    }

    pub fn json_call(&mut self, c: &JsonCall) {
        self.select(c.tid);
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), "syscall".into());
        obj.insert("pid".into(), c.tid.into());
        if self.timestamps > 0 {
            obj.insert("time".into(), unix_time().into());
        }
        obj.insert("name".into(), c.name.into());
        obj.insert(
            "args".into(),
            c.args.iter().map(|&a| serde_json::Value::from(a)).collect(),
        );
        match c.ret {
            Some(r) => obj.insert("ret".into(), r.into()),
            None => obj.insert("ret".into(), serde_json::Value::Null),
        };
        obj.insert("result".into(), c.ret_text.into());
        if let Some(e) = c.errno {
            obj.insert("errno".into(), e.into());
        }
        if let Some(d) = c.duration {
            obj.insert("duration".into(), d.as_secs_f64().into());
        }
        self.json_line(obj);
    }

    pub fn json_event(&mut self, kind: &str, tid: i32, fields: &[(&str, serde_json::Value)]) {
        self.select(tid);
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), kind.into());
        obj.insert("pid".into(), tid.into());
        if self.timestamps > 0 {
            obj.insert("time".into(), unix_time().into());
        }
        for (k, v) in fields {
            obj.insert((*k).into(), v.clone());
        }
        self.json_line(obj);
    }

    fn json_line(&mut self, obj: serde_json::Map<String, serde_json::Value>) {
        let _ = serde_json::to_writer(&mut self.out, &serde_json::Value::Object(obj));
        let _ = self.out.write_all(b"\n");
    }

    /// `-e read=`/`-e write=`: `data` as strace's hex dump, 16 bytes a line.
    pub fn dump(&mut self, data: &[u8]) {
        self.interrupt_open_line();
        let mut line = String::with_capacity(80);
        for (n, chunk) in data.chunks(16).enumerate() {
            line.clear();
            let _ = write!(line, " | {:05x}  ", n * 16);
            for i in 0..16 {
                match chunk.get(i) {
                    Some(b) => {
                        let _ = write!(line, "{b:02x} ");
                    }
                    None => line.push_str("   "),
                }
                if i % 8 == 7 {
                    line.push(' ');
                }
            }
            for &b in chunk {
                line.push(if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                });
            }
            for _ in chunk.len()..16 {
                line.push(' ');
            }
            line.push_str(" |\n");
            let _ = self.out.write_all(line.as_bytes());
        }
    }

    /// Raw text (the `-c` table).
    pub fn text(&mut self, s: &str) {
        self.interrupt_open_line();
        let _ = self.out.write_all(s.as_bytes());
    }
}

fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `HH:MM:SS` (`-t`) or `HH:MM:SS.uuuuuu` (`-tt`) in local time, or seconds since
/// the epoch `S.uuuuuu` (`-ttt`).
fn wall_clock(out: &mut String, level: u8) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if level >= 3 {
        let _ = write!(out, "{}.{:06}", now.as_secs(), now.subsec_micros());
        return;
    }
    let micros = level > 1;
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: `tm` is plain data; localtime_r fills it from `secs` and touches nothing else.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    let ok = !unsafe { libc::localtime_r(&secs, &mut tm) }.is_null();
    if ok {
        let _ = write!(out, "{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
        if micros {
            let _ = write!(out, ".{:06}", now.subsec_micros());
        }
    } else {
        let _ = write!(out, "{}.{:06}", now.as_secs(), now.subsec_micros());
    }
}
