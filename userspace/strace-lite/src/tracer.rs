//! The tracer loop: wait for a stop, classify it, print, resume.
//!
//! State lives per thread id (a `Thread` in a map), never in one global slot: any
//! number of threads may be inside syscalls at once and their stops arrive in any
//! order. `PTRACE_GET_SYSCALL_INFO` says whether a stop is a syscall entry or exit,
//! so that state is never guessed. With a seccomp filter, a thread runs under
//! `PTRACE_CONT` and stops only at traced calls (`PTRACE_EVENT_SECCOMP`, an entry);
//! it is then resumed with `PTRACE_SYSCALL` once, to see that call's exit.

use crate::decode::{self, flags, poll, process, Ctx};
use crate::error::Error;
use crate::filter::TraceSet;
use crate::output::{JsonCall, Printer};
use crate::ptrace::{self, SyscallInfo};
use crate::summary::Summary;
use crate::table::{Ret, Row, Table};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The signal that asked us to stop (SIGINT/SIGTERM/SIGHUP), or 0.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Set by SIGALRM: time to flush buffered output to the `-o` file.
static FLUSH_DUE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::Relaxed);
}

extern "C" fn on_alarm(_: libc::c_int) {
    FLUSH_DUE.store(true, Ordering::Relaxed);
}

/// Output to a file is flushed every 200 ms instead of every line (strace writes
/// each line): a SIGALRM interval timer interrupts `waitpid`, so even a tracee that
/// blocks for minutes has its last line in the file, at the cost of five signals a
/// second instead of one `write` per syscall.
fn start_flush_timer() {
    // SAFETY: the handler only stores to an atomic; the timer value is a local.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        let period = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        let it = libc::itimerval {
            it_interval: period,
            it_value: period,
        };
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
    }
}

/// Installs handlers that only set a flag. No `SA_RESTART`: the blocked `waitpid`
/// returns `EINTR` and the loop sees the flag at once.
fn install_signal_handlers(attached: bool) {
    let handled: &[i32] = if attached {
        &crate::exec::TRACER_SIGNALS
    } else {
        &[libc::SIGTERM, libc::SIGHUP]
    };
    for &sig in handled {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic,
        // which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    if !attached {
        // A launched program shares our terminal: Ctrl-C reaches it directly, and its
        // death ends the trace (strace does the same).
        // SAFETY: setting a disposition to SIG_IGN.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        }
    }
}

pub struct Config {
    pub follow: bool,
    pub trace: TraceSet,
    pub summary: bool,
    pub durations: bool,
    pub max_str: usize,
    /// Flush after every event (output is a terminal or pipe, not a file).
    pub eager_flush: bool,
}

#[derive(Default)]
struct Thread {
    in_syscall: bool,
    /// This call's entry was shown (traced, visible): its exit must be too.
    shown: bool,
    /// The launched child before its first execve: its own setup is not shown.
    hidden: bool,
    nr: u64,
    args: [u64; 6],
    saved: [u64; 6],
    start: Option<Instant>,
    /// Entry arguments as text, and each one's span (for JSON).
    text: String,
    spans: Vec<(usize, usize)>,
}

pub struct Tracer {
    cfg: Config,
    table: Table,
    printer: Printer,
    summary: Summary,
    threads: HashMap<i32, Thread, TidHash>,
    seccomp: bool,
    attached: bool,
    main_pid: i32,
    main_status: Option<i32>,
    ctx: Ctx,
    exit_text: String,
    exit_spans: Vec<(usize, usize)>,
    ret_text: String,
}

/// Thread ids are small distinct integers: a multiply spreads them well enough, and
/// is cheaper than SipHash on a lookup made at every stop.
#[derive(Default, Clone, Copy)]
struct TidHasher(u64);

impl std::hash::Hasher for TidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i32(&mut self, v: i32) {
        self.0 = (v as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type TidHash = std::hash::BuildHasherDefault<TidHasher>;

const STOP_SIGNALS: [i32; 4] = [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

impl Tracer {
    pub fn new(
        cfg: Config,
        table: Table,
        printer: Printer,
        seccomp: bool,
        attached: bool,
    ) -> Tracer {
        install_signal_handlers(attached);
        let max_str = cfg.max_str;
        Tracer {
            cfg,
            table,
            printer,
            summary: Summary::new(),
            threads: HashMap::default(),
            seccomp,
            attached,
            main_pid: 0,
            main_status: None,
            ctx: Ctx {
                pid: 0,
                max_str,
                scratch: Vec::with_capacity(4096),
                verbose: false,
            },
            exit_text: String::with_capacity(256),
            exit_spans: Vec::new(),
            ret_text: String::with_capacity(64),
        }
    }

    /// strace's `-v`: structures printed whole (getdents64's entries) instead of
    /// abbreviated.
    pub fn set_verbose(&mut self, on: bool) {
        self.ctx.verbose = on;
    }

    /// ptrace options for every tracee.
    pub fn options(follow: bool, seccomp: bool) -> libc::c_int {
        let mut o = ptrace::OPTIONS;
        if follow {
            o |= ptrace::FOLLOW;
        }
        if seccomp {
            o |= libc::PTRACE_O_TRACESECCOMP;
        }
        o
    }

    /// Registers the launched child (already seized and interrupted).
    pub fn add_launched(&mut self, pid: i32) {
        self.main_pid = pid;
        self.threads.insert(
            pid,
            Thread {
                hidden: true,
                ..Thread::default()
            },
        );
    }

    /// Seizes a running process (all its threads with `-f`) and stops it once so the
    /// loop can start it under `PTRACE_SYSCALL`.
    pub fn attach(&mut self, pid: i32) -> Result<(), Error> {
        if pid <= 0 {
            return Err(Error::Usage(format!("invalid process id {pid}")));
        }
        let tids = if self.cfg.follow {
            task_ids(pid)
        } else {
            vec![pid]
        };
        let opts = Tracer::options(self.cfg.follow, false);
        for (i, &tid) in tids.iter().enumerate() {
            match ptrace::seize(tid, opts).and_then(|_| ptrace::interrupt(tid)) {
                Ok(()) => {
                    self.threads.insert(tid, Thread::default());
                    eprintln!("strace-lite: Process {tid} attached");
                }
                // A thread that exited between listing and seizing is not an error.
                Err(e) if i > 0 && e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => return Err(Error::Attach { pid: tid, source }),
            }
        }
        if self.main_pid == 0 {
            self.main_pid = pid;
        }
        Ok(())
    }

    /// Runs until every tracee is gone (or we are interrupted); returns the exit status
    /// to hand on: the main tracee's code, 128+N if a signal killed it.
    pub fn run(mut self) -> Result<i32, Error> {
        if !self.cfg.eager_flush {
            start_flush_timer();
        }
        loop {
            let sig = INTERRUPTED.load(Ordering::Relaxed);
            if sig != 0 {
                self.detach_all();
                self.finish();
                return Ok(if self.attached { 0 } else { 128 + sig });
            }
            if self.threads.is_empty() {
                break;
            }
            if self.cfg.eager_flush || FLUSH_DUE.swap(false, Ordering::Relaxed) {
                self.printer.flush();
            }
            let mut status = 0;
            // SAFETY: `status` is a live int for the call.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
            if tid < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => break,
                    _ => {
                        return Err(Error::Sys {
                            call: "waitpid".into(),
                            source: e,
                        })
                    }
                }
            }
            self.handle(tid, status);
        }
        self.finish();
        Ok(match self.main_status {
            Some(s) if libc::WIFEXITED(s) => libc::WEXITSTATUS(s),
            Some(s) if libc::WIFSIGNALED(s) => 128 + libc::WTERMSIG(s),
            _ => 0,
        })
    }

    fn finish(&mut self) {
        if self.cfg.summary {
            let table = &self.table;
            let text = self
                .summary
                .render(|nr| display_name(table.get(nr), nr).into_owned());
            self.printer.text(&text);
        }
        self.printer.flush();
    }

    fn show_pid(&self) -> bool {
        self.threads.len() > 1
    }

    fn handle(&mut self, tid: i32, status: i32) {
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            self.gone(tid, status);
            return;
        }
        if !libc::WIFSTOPPED(status) {
            return;
        }
        // A tid we have not seen is a new auto-attached child or thread: its first
        // stop can arrive before its parent's fork event.
        self.threads.entry(tid).or_default();
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xffff;
        if sig == libc::SIGTRAP | 0x80 {
            self.syscall_stop(tid);
            self.resume(tid, 0);
            return;
        }
        match event {
            0 => self.signal_stop(tid, sig),
            libc::PTRACE_EVENT_SECCOMP => {
                self.syscall_stop(tid);
                self.resume(tid, 0);
            }
            libc::PTRACE_EVENT_EXEC => {
                self.exec_event(tid);
                self.resume(tid, 0);
            }
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                if let Ok(child) = ptrace::event_msg(tid) {
                    tracing::debug!(parent = tid, child, "new tracee");
                    self.threads.entry(child as i32).or_default();
                }
                self.resume(tid, 0);
            }
            libc::PTRACE_EVENT_STOP if STOP_SIGNALS.contains(&sig) => {
                // A group-stop: stay stopped, but keep reporting (PTRACE_LISTEN) so a
                // SIGCONT or a signal wakes us.
                if !self.cfg.summary && !self.is_hidden(tid) {
                    let text = format!("--- stopped by {} ---", flags::signal_name(sig));
                    self.note(tid, &text, "stopped", sig);
                }
                let _ = ptrace::listen(tid);
            }
            _ => self.resume(tid, 0),
        }
    }

    fn is_hidden(&self, tid: i32) -> bool {
        self.threads.get(&tid).is_some_and(|t| t.hidden)
    }

    /// Resumes `tid`, delivering `sig`. Inside a traced call (or without a filter) the
    /// next syscall boundary must stop; otherwise the seccomp filter decides.
    fn resume(&mut self, tid: i32, sig: i32) {
        let in_syscall = self.threads.get(&tid).is_some_and(|t| t.in_syscall);
        let r = if !self.seccomp || in_syscall {
            ptrace::syscall(tid, sig)
        } else {
            ptrace::cont(tid, sig)
        };
        if let Err(e) = r {
            // ESRCH: it died (SIGKILL from elsewhere); its exit status comes next.
            tracing::debug!(tid, error = %e, "resume failed");
        }
    }

    fn signal_stop(&mut self, tid: i32, sig: i32) {
        if !self.cfg.summary && !self.is_hidden(tid) {
            match ptrace::siginfo(tid) {
                Ok(si) => {
                    let mut text = String::from("--- ");
                    flags::signal(&mut text, sig as u64);
                    text.push(' ');
                    process::siginfo(&mut text, &si);
                    text.push_str(" ---");
                    self.note(tid, &text, "signal", sig);
                }
                Err(_) => {
                    let text = format!("--- {} ---", flags::signal_name(sig));
                    self.note(tid, &text, "signal", sig);
                }
            }
        }
        // Deliver it: a tracer must never swallow the tracee's signals.
        self.resume(tid, sig);
    }

    fn note(&mut self, tid: i32, text: &str, kind: &str, sig: i32) {
        let show_pid = self.show_pid();
        if self.printer.json {
            let mut fields = vec![("text", serde_json::Value::from(text))];
            if sig != 0 {
                fields.push(("signal", flags::signal_name(sig).into()));
            }
            self.printer.json_event(kind, tid, &fields);
        } else {
            self.printer.note(tid, show_pid, text);
        }
    }

    fn exec_event(&mut self, tid: i32) {
        // A non-leader thread that calls execve takes over the leader's pid; the
        // kernel tells us its former tid.
        if let Ok(former) = ptrace::event_msg(tid) {
            let former = former as i32;
            if former != tid {
                if let Some(th) = self.threads.remove(&former) {
                    if !self.cfg.summary && !th.hidden {
                        let text = format!("+++ superseded by execve in pid {tid} +++");
                        self.note(former, &text, "superseded", 0);
                    }
                    self.threads.insert(tid, th);
                }
            }
        }
        if let Some(th) = self.threads.get_mut(&tid) {
            th.hidden = false;
        }
    }

    fn gone(&mut self, tid: i32, status: i32) {
        let show_pid = self.show_pid();
        let Some(th) = self.threads.remove(&tid) else {
            return;
        };
        if tid == self.main_pid {
            self.main_status = Some(status);
        }
        if self.cfg.summary || th.hidden {
            return;
        }
        if th.in_syscall && th.shown {
            // exit_group, or a call the process died in: its result never comes.
            let row = self.table.get(th.nr);
            let name = display_name(row, th.nr);
            if self.printer.json {
                let args: Vec<&str> = th.spans.iter().map(|&(a, b)| &th.text[a..b]).collect();
                self.printer.json_call(&JsonCall {
                    tid,
                    name: &name,
                    args: &args,
                    ret: None,
                    errno: None,
                    ret_text: "?",
                    duration: None,
                });
            } else {
                self.printer.exit(tid, show_pid, &name, "", "?", None);
            }
        }
        let mut text = String::new();
        if libc::WIFEXITED(status) {
            let _ = write!(text, "+++ exited with {} +++", libc::WEXITSTATUS(status));
        } else {
            text.push_str("+++ killed by ");
            flags::signal(&mut text, libc::WTERMSIG(status) as u64);
            if libc::WCOREDUMP(status) {
                text.push_str(" (core dumped)");
            }
            text.push_str(" +++");
        }
        if self.printer.json {
            let mut fields = vec![("text", serde_json::Value::from(text.as_str()))];
            if libc::WIFEXITED(status) {
                fields.push(("exit_code", libc::WEXITSTATUS(status).into()));
            } else {
                fields.push(("signal", flags::signal_name(libc::WTERMSIG(status)).into()));
            }
            self.printer.json_event("exit", tid, &fields);
        } else {
            self.printer.note(tid, show_pid, &text);
        }
    }

    fn syscall_stop(&mut self, tid: i32) {
        match ptrace::syscall_info(tid) {
            Ok(SyscallInfo::Entry { nr, args }) => self.entry(tid, nr, args),
            Ok(SyscallInfo::Exit { rval }) => self.exit(tid, rval),
            Ok(SyscallInfo::Other) | Err(_) => {}
        }
    }

    fn entry(&mut self, tid: i32, nr: u64, args: [u64; 6]) {
        let show_pid = self.show_pid();
        let Tracer {
            threads,
            table,
            ctx,
            printer,
            cfg,
            ..
        } = self;
        let Some(th) = threads.get_mut(&tid) else {
            return;
        };
        th.in_syscall = true;
        th.nr = nr;
        th.args = args;
        th.shown = false;
        if th.hidden {
            if nr != libc::SYS_execve as u64 && nr != libc::SYS_execveat as u64 {
                return;
            }
            th.hidden = false;
        }
        if !cfg.trace.contains(nr) {
            return;
        }
        th.shown = true;
        if cfg.summary || cfg.durations {
            th.start = Some(Instant::now());
        }
        if cfg.summary {
            return;
        }
        let row = table.get(nr);
        ctx.pid = tid;
        th.text.clear();
        th.spans.clear();
        match row.args {
            Some(kinds) => {
                let split = row.split as usize;
                decode_range(
                    ctx,
                    kinds,
                    0..split,
                    &args,
                    None,
                    &th.saved,
                    &mut th.text,
                    &mut th.spans,
                );
                for (i, k) in kinds.iter().enumerate().skip(split) {
                    if k.captures() {
                        th.saved[i] = decode::capture(ctx, *k, args[i]);
                    }
                }
            }
            None => {
                // A number with no name prints as strace's printargs does: all hex.
                let unknown = row.name == "syscall";
                for (i, &a) in args.iter().enumerate().take(row.nargs as usize) {
                    if i > 0 {
                        th.text.push_str(", ");
                    }
                    let start = th.text.len();
                    if unknown {
                        decode::hex(&mut th.text, a);
                    } else {
                        decode::raw(&mut th.text, a);
                    }
                    th.spans.push((start, th.text.len()));
                }
            }
        }
        if !printer.json {
            let name = display_name(row, nr);
            let more =
                row.args.is_some_and(|k| (row.split as usize) < k.len()) && !th.spans.is_empty();
            if more {
                th.text.push_str(", ");
            }
            printer.entry(tid, show_pid, &name, &th.text);
            if more {
                th.text.truncate(th.text.len() - 2);
            }
        }
    }

    fn exit(&mut self, tid: i32, rval: i64) {
        let show_pid = self.show_pid();
        let Tracer {
            threads,
            table,
            ctx,
            printer,
            cfg,
            summary,
            exit_text,
            exit_spans,
            ret_text,
            ..
        } = self;
        let Some(th) = threads.get_mut(&tid) else {
            return;
        };
        if !th.in_syscall {
            // An exit whose entry we did not see: attached while the call ran.
            if th.hidden || cfg.summary || printer.json {
                return;
            }
            let Ok(nr) = ptrace::orig_syscall_nr(tid) else {
                return;
            };
            if !cfg.trace.contains(nr) {
                return;
            }
            let row = table.get(nr);
            ret_text.clear();
            ctx.pid = tid;
            format_ret(ret_text, ctx, row, &th.args, rval);
            printer.exit(tid, show_pid, &display_name(row, nr), "", ret_text, None);
            return;
        }
        th.in_syscall = false;
        if !th.shown {
            return;
        }
        let nr = th.nr;
        let dur = th.start.take().map(|s| s.elapsed());
        if cfg.summary {
            summary.record(nr, decode::is_error(rval), dur.unwrap_or(Duration::ZERO));
            return;
        }
        let row = table.get(nr);
        ctx.pid = tid;
        exit_text.clear();
        exit_spans.clear();
        if let Some(kinds) = row.args {
            let split = row.split as usize;
            decode_range(
                ctx,
                kinds,
                split..kinds.len(),
                &th.args,
                Some(rval),
                &th.saved,
                exit_text,
                exit_spans,
            );
        }
        ret_text.clear();
        format_ret(ret_text, ctx, row, &th.args, rval);
        let name = display_name(row, nr);
        if printer.json {
            let mut args: Vec<&str> = th.spans.iter().map(|&(a, b)| &th.text[a..b]).collect();
            args.extend(exit_spans.iter().map(|&(a, b)| &exit_text[a..b]));
            let failed = decode::is_error(rval) && row.ret != Ret::NoReturn;
            let errno = if failed {
                process::errno_name(-rval as i32)
            } else {
                None
            };
            printer.json_call(&JsonCall {
                tid,
                name: &name,
                args: &args,
                ret: Some(rval),
                errno,
                ret_text,
                duration: dur,
            });
        } else {
            printer.exit(tid, show_pid, &name, exit_text, ret_text, dur);
        }
    }

    /// Stops every tracee and detaches, re-delivering a signal it was stopped for,
    /// so the processes carry on untraced.
    fn detach_all(&mut self) {
        let mut pending: Vec<i32> = self.threads.keys().copied().collect();
        for &tid in &pending {
            let _ = ptrace::interrupt(tid);
        }
        // Bounded: each tracee stops once for the interrupt (or dies).
        let mut rounds = 0;
        while !pending.is_empty() && rounds < 10_000 {
            rounds += 1;
            let mut status = 0;
            // SAFETY: `status` is a live int.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
            if tid < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break;
            }
            if libc::WIFSTOPPED(status) {
                let sig = libc::WSTOPSIG(status);
                let event = (status >> 16) & 0xffff;
                let inject = if event == 0 && sig != libc::SIGTRAP | 0x80 {
                    sig
                } else {
                    0
                };
                let _ = ptrace::detach(tid, inject);
                if self.attached {
                    eprintln!("strace-lite: Process {tid} detached");
                }
            }
            pending.retain(|&t| t != tid);
            self.threads.remove(&tid);
        }
    }
}

/// Decodes `kinds[range]` into `text`, recording each argument's span.
#[allow(clippy::too_many_arguments)]
fn decode_range(
    ctx: &mut Ctx,
    kinds: &[decode::Arg],
    range: std::ops::Range<usize>,
    args: &[u64; 6],
    ret: Option<i64>,
    saved: &[u64; 6],
    text: &mut String,
    spans: &mut Vec<(usize, usize)>,
) {
    let mut first = true;
    for i in range {
        let mark = text.len();
        if !first {
            text.push_str(", ");
        }
        let start = text.len();
        if decode::arg(ctx, text, kinds[i], i, args, ret, saved[i]) {
            spans.push((start, text.len()));
            first = false;
        } else {
            text.truncate(mark);
        }
    }
}

fn display_name(row: &Row, nr: u64) -> std::borrow::Cow<'static, str> {
    if row.name == "syscall" {
        std::borrow::Cow::Owned(format!("syscall_{nr:#x}"))
    } else {
        std::borrow::Cow::Borrowed(row.name)
    }
}

/// The text after `= `.
fn format_ret(out: &mut String, ctx: &mut Ctx, row: &Row, args: &[u64; 6], rval: i64) {
    if row.ret == Ret::NoReturn {
        out.push('?');
        return;
    }
    if decode::is_error(rval) {
        let e = -rval;
        if (512..=530).contains(&e) {
            out.push_str("? ");
        } else {
            out.push_str("-1 ");
        }
        process::errno(out, e);
        return;
    }
    match row.ret {
        Ret::Hex => decode::hex(out, rval as u64),
        Ret::Oct => decode::fs::mode(out, rval as u64),
        Ret::Fcntl if rval != 0 && args[1] == libc::F_GETFD as u64 => {
            let _ = write!(out, "{rval:#x} (flags ");
            flags::flags(out, rval as u64, flags::FD_FLAGS, "0");
            out.push(')');
        }
        Ret::Fcntl if args[1] == libc::F_GETFL as u64 => {
            let _ = write!(out, "{rval:#x} (flags ");
            flags::open_flags(out, rval as u64);
            out.push(')');
        }
        Ret::Poll | Ret::Ppoll | Ret::Select | Ret::Pselect6 => {
            let _ = write!(out, "{rval}");
            let which = match row.ret {
                Ret::Poll => poll::Which::Poll,
                Ret::Ppoll => poll::Which::Ppoll,
                Ret::Select => poll::Which::Select,
                _ => poll::Which::Pselect6,
            };
            poll::result(ctx, out, which, args, rval);
        }
        Ret::Signal => {
            let _ = write!(out, "{rval} (");
            flags::signal(out, rval as u64);
            out.push(')');
        }
        Ret::SchedPolicy => {
            let _ = write!(out, "{rval} (");
            decode::sched::policy(out, rval as u64);
            out.push(')');
        }
        Ret::Membarrier if args[0] == 0 && rval > 0 => {
            let _ = write!(out, "{rval:#x} (");
            flags::flags(out, rval as u64, decode::sched::MEMBARRIER_CMDS, "0");
            out.push(')');
        }
        Ret::Time => {
            let _ = write!(out, "{rval}");
            local_time(out, rval);
        }
        Ret::Personality => {
            if rval == 0 {
                out.push_str("0 (");
            } else {
                let _ = write!(out, "{rval:#x} (");
            }
            decode::fds::personality(out, rval as u64);
            out.push(')');
        }
        Ret::Prctl => {
            let _ = write!(out, "{rval}");
            decode::creds::prctl_result(out, args, rval);
        }
        _ => {
            let _ = write!(out, "{rval}");
        }
    }
}

/// ` (2026-12-07T14:17:25+0000)`: seconds since the epoch as local time, as strace
/// prints time(2)'s result.
fn local_time(out: &mut String, secs: i64) {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills from `t`; both are live locals.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return;
    }
    let off = tm.tm_gmtoff;
    let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
    let _ = write!(
        out,
        " ({:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}{:02})",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off / 3600,
        off % 3600 / 60
    );
}

/// Thread ids of `pid` from /proc; just `pid` if the listing fails.
fn task_ids(pid: i32) -> Vec<i32> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    // The leader first, so a failure to attach reports the pid the user gave.
    tids.retain(|&t| t != pid);
    tids.insert(0, pid);
    tids
}
