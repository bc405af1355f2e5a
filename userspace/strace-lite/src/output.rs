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
const RESULT_COLUMN: usize = 40;

pub struct Printer {
    out: io::BufWriter<Box<dyn Write>>,
    pub json: bool,
    /// 0: none, 1: `-t` (seconds), 2: `-tt` (microseconds).
    timestamps: u8,
    durations: bool,
    /// The tid whose syscall line is open.
    open: Option<i32>,
    col: usize,
    line: String,
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
            open: None,
            col: 0,
            line: String::with_capacity(256),
        }
    }

    pub fn flush(&mut self) {
        // A closed stdout/stderr must not kill the tracer and its tracees with it.
        let _ = self.out.flush();
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
            let _ = write!(self.line, "[pid {tid:>5}] ");
        }
        if self.timestamps > 0 {
            wall_clock(&mut self.line, self.timestamps > 1);
            self.line.push(' ');
        }
        let line = std::mem::take(&mut self.line);
        self.put(&line);
        self.line = line;
    }

    /// Prints `name(entry-args` and leaves the line open for `tid`.
    pub fn entry(&mut self, tid: i32, show_pid: bool, name: &str, args: &str) {
        if self.json {
            return;
        }
        self.interrupt_open_line();
        self.leader(tid, show_pid);
        self.put(name);
        self.put("(");
        self.put(args);
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
        if self.col < RESULT_COLUMN {
            let pad = RESULT_COLUMN - self.col;
            let _ = write!(self.out, "{:pad$}", "");
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
        self.interrupt_open_line();
        self.leader(tid, show_pid);
        self.put(text);
        self.put("\n");
    }

    pub fn json_call(&mut self, c: &JsonCall) {
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

/// `HH:MM:SS` (`-t`) or `HH:MM:SS.uuuuuu` (`-tt`) in local time.
fn wall_clock(out: &mut String, micros: bool) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
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
