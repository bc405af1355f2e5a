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
use crate::qualify::{status, Inject, Qualifiers};
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
    /// `-e status=`, `signal=`, `read=`, `write=`, `inject=` (its `trace=` is `trace`).
    pub qual: Qualifiers,
    /// `-P PATH`: only calls that name one of these paths, or a descriptor open on one.
    pub paths: Vec<Vec<u8>>,
    /// `-q`: 1 hides attach/detach messages, 2 also the `+++ exited` lines.
    pub quiet: u8,
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
    /// `-i`: where this call was made.
    ip: Option<u64>,
    /// Invocations seen of each syscall named by an `-e inject=` rule, by number
    /// (strace counts per syscall and per tracee).
    inject_counts: Vec<u32>,
    /// This call was replaced: the result to set at its exit.
    tampered: Option<i64>,
    /// A signal to deliver as the thread resumes from this entry.
    inject_signal: i32,
    /// Hold the thread this long before it resumes from this stop.
    delay: Option<Duration>,
    /// `delay_exit`: the hold for this call's exit stop.
    delay_exit: Option<Duration>,
    /// A delay was injected into this call: its line ends ` (DELAYED)`.
    delayed: bool,
    /// `-k`: the stack at this call's entry, printed after its line.
    stack: String,
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
    /// Threads held at a syscall entry by `delay_enter`, with when to resume them.
    delayed: Vec<(Instant, i32, i32)>,
    /// `-k`: unwinds each shown call's stack.
    unwinder: Option<crate::stack::Unwinder>,
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
                fd_paths: 0,
                xlat: Default::default(),
                fd_cache: None,
            },
            exit_text: String::with_capacity(256),
            exit_spans: Vec::new(),
            ret_text: String::with_capacity(64),
            delayed: Vec::new(),
            unwinder: None,
        }
    }

    /// strace's `-v`: structures printed whole (getdents64's entries) instead of
    /// abbreviated.
    pub fn set_verbose(&mut self, on: bool) {
        self.ctx.verbose = on;
    }

    /// `-S` and `-U` for the `-c` table.
    pub fn set_summary_layout(
        &mut self,
        columns: Vec<crate::summary::Column>,
        sort: crate::summary::SortBy,
    ) {
        self.summary.set_layout(columns, sort);
    }

    /// `-k`: print each shown call's stack.
    pub fn set_stack_traces(&mut self, on: bool) {
        // Maps may be kept only when every call of every thread stops here.
        let sees_all = !self.seccomp && !self.attached && self.cfg.follow;
        self.unwinder = on.then(|| {
            if sees_all {
                crate::stack::Unwinder::keeping_maps()
            } else {
                crate::stack::Unwinder::default()
            }
        });
    }

    /// `-X raw|abbrev|verbose`.
    pub fn set_xlat(&mut self, style: decode::Xlat) {
        self.ctx.xlat = style;
    }

    /// `-y` (1), `-yy` (2): print what each descriptor refers to.
    pub fn set_fd_paths(&mut self, level: u8) {
        self.ctx.fd_paths = level;
        // Kept texts are only safe when every call of every thread stops here.
        let sees_all = !self.seccomp && !self.attached && self.cfg.follow;
        self.ctx.fd_cache = (level > 0 && sees_all).then(crate::fdinfo::FdCache::default);
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
                    if self.cfg.quiet == 0 {
                        eprintln!("strace-lite: Process {tid} attached");
                    }
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
                if !self.attached && self.main_pid > 0 {
                    // As strace does: the program we launched gets the signal that
                    // stopped us, so it does not run on untraced and orphaned.
                    // SAFETY: kill(2) on the pid of the child we forked.
                    unsafe {
                        libc::kill(self.main_pid, libc::SIGCONT);
                        libc::kill(self.main_pid, sig);
                    }
                }
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
            let flags = if self.delayed.is_empty() {
                libc::__WALL
            } else {
                self.release_delayed();
                libc::__WALL | libc::WNOHANG
            };
            // SAFETY: `status` is a live int for the call.
            let tid = unsafe { libc::waitpid(-1, &mut status, flags) };
            if tid == 0 {
                // Only held threads are left to wait for: sleep a little, bounded.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
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

    /// Resumes the threads whose `delay_enter` is over.
    fn release_delayed(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.delayed.len() {
            let (when, tid, sig) = self.delayed[i];
            if when <= now {
                self.delayed.swap_remove(i);
                self.resume(tid, sig);
            } else {
                i += 1;
            }
        }
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
        self.threads.len() > 1 && !self.printer.is_split()
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
            self.resume_from_syscall(tid);
            return;
        }
        match event {
            0 => self.signal_stop(tid, sig),
            libc::PTRACE_EVENT_SECCOMP => {
                self.syscall_stop(tid);
                self.resume_from_syscall(tid);
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
                if !self.cfg.summary && !self.is_hidden(tid) && self.cfg.qual.shows_signal(sig) {
                    self.printer.ip = None;
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

    /// Resumes `tid` after a syscall stop: with the signal an injection asked for, or
    /// later, if it asked for a delay.
    fn resume_from_syscall(&mut self, tid: i32) {
        let (sig, delay) = match self.threads.get_mut(&tid) {
            Some(th) => (std::mem::take(&mut th.inject_signal), th.delay.take()),
            None => (0, None),
        };
        match delay {
            Some(d) => self.delayed.push((Instant::now() + d, tid, sig)),
            None => self.resume(tid, sig),
        }
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
        if !self.cfg.summary && !self.is_hidden(tid) && self.cfg.qual.shows_signal(sig) {
            if self.printer.show_ip {
                self.printer.ip = ptrace::instruction_pointer(tid).ok();
            }
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
                        self.printer.ip = None;
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
        if let Some(c) = &mut self.ctx.fd_cache {
            // Its tid may be reused by another process.
            c.clear();
        }
        if let Some(u) = &mut self.unwinder {
            u.forget(tid);
        }
        if tid == self.main_pid {
            self.main_status = Some(status);
        }
        if self.cfg.summary || th.hidden {
            return;
        }
        let deferred = self.cfg.qual.status != status::ALL;
        let wanted = self.cfg.qual.status & (status::UNFINISHED | status::UNAVAILABLE) != 0;
        if th.in_syscall && th.shown && (!deferred || wanted) {
            // exit_group, or a call the process died in: its result never comes.
            let row = self.table.get(th.nr);
            let name = display_name(row, th.nr);
            self.printer.ip = th.ip;
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
                if deferred {
                    print_entry(
                        &mut self.printer,
                        tid,
                        show_pid,
                        row,
                        th.nr,
                        &th.text,
                        &th.spans,
                    );
                }
                self.printer.exit(tid, show_pid, &name, "", "?", None);
            }
        }
        self.printer.ip = None;
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
            if self.cfg.quiet < 2 {
                self.printer.note(tid, show_pid, &text);
            }
            if th.in_syscall && th.shown && !th.stack.is_empty() {
                self.printer.text(&th.stack);
            }
        }
        self.printer.close_thread(tid);
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
            unwinder,
            ..
        } = self;
        let Some(th) = threads.get_mut(&tid) else {
            return;
        };
        th.in_syscall = true;
        th.nr = nr;
        th.args = args;
        th.shown = false;
        th.tampered = None;
        th.delayed = false;
        if th.hidden {
            if nr != libc::SYS_execve as u64 && nr != libc::SYS_execveat as u64 {
                return;
            }
            th.hidden = false;
        }
        if !cfg.qual.inject.is_empty() {
            inject(tid, th, &cfg.qual.inject, nr);
        }
        if !cfg.trace.contains(nr) {
            return;
        }
        if !cfg.paths.is_empty() {
            ctx.pid = tid;
            if !touches_path(ctx, table.get(nr), &args, &cfg.paths) {
                return;
            }
        }
        th.shown = true;
        if let Some(u) = unwinder {
            th.stack.clear();
            u.stack(tid, &mut th.stack);
        }
        th.ip = if printer.show_ip {
            ptrace::instruction_pointer(tid).ok()
        } else {
            None
        };
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
        if !printer.json && cfg.qual.status == status::ALL {
            printer.ip = th.ip;
            print_entry(printer, tid, show_pid, row, nr, &th.text, &th.spans);
        }
    }

    fn exit(&mut self, tid: i32, rval_in: i64) {
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
            unwinder,
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
            format_ret(ret_text, ctx, row, &th.args, rval_in);
            printer.exit(tid, show_pid, &display_name(row, nr), "", ret_text, None);
            return;
        }
        th.in_syscall = false;
        th.delay = th.delay_exit.take();
        if let Some(c) = &mut ctx.fd_cache {
            c.after_call(th.nr, &th.args);
        }
        if let Some(u) = unwinder {
            u.after_call(th.nr);
        }
        let rval = match th.tampered.take() {
            Some(v) => {
                if let Err(e) = ptrace::poke_user(tid, ptrace::RAX, v as u64) {
                    tracing::debug!(tid, error = %e, "setting an injected result failed");
                }
                Some(v)
            }
            None => None,
        };
        let injected = rval.is_some();
        let rval = rval.unwrap_or(rval_in);
        if !th.shown {
            return;
        }
        let nr = th.nr;
        let dur = th.start.take().map(|s| s.elapsed());
        if cfg.summary {
            summary.record(nr, decode::is_error(rval), dur.unwrap_or(Duration::ZERO));
            return;
        }
        let failed = decode::is_error(rval) && row_ret(table, nr) != Ret::NoReturn;
        let category = if row_ret(table, nr) == Ret::NoReturn {
            status::UNAVAILABLE
        } else if failed {
            status::FAILED
        } else {
            status::SUCCESSFUL
        };
        if cfg.qual.status & category == 0 {
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
        if ctx.fd_paths > 0 && !failed && returns_fd(nr, &th.args) {
            match &mut ctx.fd_cache {
                Some(c) => c.describe(ret_text, tid, rval, ctx.fd_paths),
                None => {
                    crate::fdinfo::describe(ret_text, tid, rval, ctx.fd_paths);
                }
            }
        }
        if injected {
            ret_text.push_str(" (INJECTED)");
        }
        if th.delayed {
            ret_text.push_str(" (DELAYED)");
        }
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
            printer.ip = th.ip;
            if cfg.qual.status != status::ALL {
                print_entry(printer, tid, show_pid, row, nr, &th.text, &th.spans);
            }
            printer.exit(tid, show_pid, &name, exit_text, ret_text, dur);
            if !th.stack.is_empty() {
                printer.text(&th.stack);
            }
            let dumps = !(cfg.qual.read.is_empty() && cfg.qual.write.is_empty());
            if !failed && dumps {
                dump_io(ctx, printer, &cfg.qual, nr, &th.args, rval);
            }
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
                if self.attached && self.cfg.quiet == 0 {
                    eprintln!("strace-lite: Process {tid} detached");
                }
            }
            pending.retain(|&t| t != tid);
            self.threads.remove(&tid);
        }
    }
}

fn row_ret(table: &Table, nr: u64) -> Ret {
    table.get(nr).ret
}

/// Prints `name(entry-args` (and the `, ` before the exit arguments, if any follow).
fn print_entry(
    printer: &mut Printer,
    tid: i32,
    show_pid: bool,
    row: &Row,
    nr: u64,
    text: &str,
    spans: &[(usize, usize)],
) {
    let name = display_name(row, nr);
    let more = row.args.is_some_and(|k| (row.split as usize) < k.len()) && !spans.is_empty();
    printer.entry(tid, show_pid, &name, text, if more { ", " } else { "" });
}

/// Counts this invocation against every `-e inject=` rule whose set has `nr`; the first
/// rule that fires on it tampers with the call, as strace does: a replaced call's number
/// becomes -1 (the kernel skips it with ENOSYS) and its result is set at exit.
fn inject(tid: i32, th: &mut Thread, rules: &[Inject], nr: u64) {
    if !rules.iter().any(|r| r.set.contains(nr)) {
        return;
    }
    let Some(slot) = usize::try_from(nr).ok().filter(|&n| n < 1024) else {
        return;
    };
    if th.inject_counts.len() <= slot {
        th.inject_counts.resize(slot + 1, 0);
    }
    th.inject_counts[slot] = th.inject_counts[slot].saturating_add(1);
    let n = u64::from(th.inject_counts[slot]);
    let mut fired = false;
    for rule in rules {
        if !rule.set.contains(nr) {
            continue;
        }
        if fired || !rule.fires(n) {
            continue;
        }
        fired = true;
        if rule.replaces() {
            match ptrace::poke_user(tid, ptrace::ORIG_RAX, u64::MAX) {
                Ok(()) => {
                    th.tampered = match (rule.error, rule.retval) {
                        (Some(e), _) => Some(-i64::from(e)),
                        (None, r) => r,
                    }
                }
                Err(e) => tracing::warn!(tid, error = %e, "rewriting the syscall number failed"),
            }
        }
        if let Some(sig) = rule.signal {
            th.inject_signal = sig;
        }
        th.delay = rule.delay_enter;
        th.delay_exit = rule.delay_exit;
        th.delayed = rule.delay_enter.is_some() || rule.delay_exit.is_some();
    }
}

/// `-P`: whether the call names one of `paths`, or a descriptor open on one.
fn touches_path(ctx: &mut Ctx, row: &Row, args: &[u64; 6], paths: &[Vec<u8>]) -> bool {
    use decode::Arg;
    let Some(kinds) = row.args else {
        return false;
    };
    let fd_link = |fd: i64| -> bool {
        if fd < 0 {
            return false;
        }
        std::fs::read_link(format!("/proc/{}/fd/{fd}", ctx.pid)).is_ok_and(|t| {
            use std::os::unix::ffi::OsStrExt;
            paths
                .iter()
                .any(|p| p.as_slice() == t.as_os_str().as_bytes())
        })
    };
    for (i, k) in kinds.iter().enumerate() {
        let hit = match k {
            Arg::Fd => fd_link(i64::from(args[i] as i32)),
            Arg::DirFd => {
                let fd = args[i] as i32;
                fd != libc::AT_FDCWD && fd_link(i64::from(fd))
            }
            Arg::Path => {
                let mut buf = Vec::new();
                crate::mem::read_cstr(ctx.pid, args[i], 4096, &mut buf).is_some()
                    && paths.contains(&buf)
            }
            _ => false,
        };
        if hit {
            return true;
        }
    }
    false
}

/// Calls whose result is a new descriptor (`-y` prints what it refers to).
fn returns_fd(nr: u64, args: &[u64; 6]) -> bool {
    use syscalls::Sysno as S;
    let Some(s) = S::new(nr as usize) else {
        return false;
    };
    match s {
        S::fcntl => matches!(args[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC),
        S::open
        | S::openat
        | S::openat2
        | S::creat
        | S::socket
        | S::accept
        | S::accept4
        | S::dup
        | S::dup2
        | S::dup3
        | S::epoll_create
        | S::epoll_create1
        | S::eventfd
        | S::eventfd2
        | S::timerfd_create
        | S::signalfd
        | S::signalfd4
        | S::memfd_create
        | S::inotify_init
        | S::inotify_init1
        | S::fanotify_init
        | S::pidfd_open
        | S::pidfd_getfd
        | S::userfaultfd
        | S::perf_event_open
        | S::io_uring_setup
        | S::open_by_handle_at
        | S::memfd_secret => true,
        _ => false,
    }
}

/// `-e read=FD` / `-e write=FD`: the data of a successful read or write on FD, dumped
/// under its line as strace does (each iovec of readv/writev with its own header).
fn dump_io(
    ctx: &mut Ctx,
    printer: &mut Printer,
    qual: &Qualifiers,
    nr: u64,
    args: &[u64; 6],
    rval: i64,
) {
    use syscalls::Sysno as S;
    let Some(s) = S::new(nr as usize) else {
        return;
    };
    let fd = args[0] as i32 as i64;
    if fd < 0 {
        return;
    }
    let fd = fd as u64;
    const LIMIT: u64 = 1 << 20;
    let plain = |printer: &mut Printer, addr: u64, len: u64| {
        let mut buf = vec![0u8; len.min(LIMIT) as usize];
        let n = crate::mem::read(ctx.pid, addr, &mut buf);
        printer.dump(&buf[..n]);
    };
    match s {
        S::read | S::pread64 | S::recvfrom if qual.read.contains(fd) => {
            plain(printer, args[1], rval as u64)
        }
        S::write | S::pwrite64 | S::sendto if qual.write.contains(fd) => {
            plain(printer, args[1], args[2])
        }
        S::readv | S::preadv | S::preadv2 if qual.read.contains(fd) => {
            dump_iov(ctx.pid, printer, args[1], args[2], rval as u64)
        }
        S::writev | S::pwritev | S::pwritev2 if qual.write.contains(fd) => {
            dump_iov(ctx.pid, printer, args[1], args[2], u64::MAX)
        }
        _ => {}
    }
}

/// strace's dumpiov: ` * N bytes in buffer I` and the dump, for each iovec, up to `total`.
fn dump_iov(pid: i32, printer: &mut Printer, iov: u64, count: u64, mut total: u64) {
    for i in 0..count.min(1024) {
        let mut raw = [0u8; 16];
        if crate::mem::read(pid, iov + i * 16, &mut raw) < 16 {
            return;
        }
        let base = u64::from_ne_bytes(raw[..8].try_into().unwrap_or_default());
        let len = u64::from_ne_bytes(raw[8..].try_into().unwrap_or_default());
        let len = len.min(total).min(1 << 20);
        if len == 0 {
            // strace's dump ends at the first empty buffer.
            return;
        }
        printer.text(&format!(" * {len} bytes in buffer {i}\n"));
        let mut buf = vec![0u8; len as usize];
        let n = crate::mem::read(pid, base, &mut buf);
        printer.dump(&buf[..n]);
        total -= len;
        if total == 0 {
            return;
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
        _ => decode::int(out, rval),
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
