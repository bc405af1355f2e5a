//! `-e QUALIFIER=SET`: which calls are traced, which results and signals are shown,
//! which descriptors are dumped, which calls are tampered with.
//!
//! A later `-e` of the same qualifier replaces the earlier one, as in strace
//! (`-e trace=open -e trace=close` traces close only); each `-e inject=` adds a rule.
//! A bare `-e SET` is `trace=SET`.

use crate::decode::{flags, process};
use crate::error::Error;
use crate::filter::TraceSet;
use crate::table::Table;
use std::time::Duration;

/// strace's `-e status=` categories, as bits.
pub mod status {
    pub const SUCCESSFUL: u8 = 1;
    pub const FAILED: u8 = 2;
    /// The call never returned (the thread died in it, or we detached).
    pub const UNFINISHED: u8 = 4;
    /// It returned, but its result cannot be known (`exit_group`, `= ?`).
    pub const UNAVAILABLE: u8 = 8;
    pub const DETACHED: u8 = 16;
    pub const ALL: u8 = 31;
    pub const NAMES: &[(&str, u8)] = &[
        ("successful", SUCCESSFUL),
        ("failed", FAILED),
        ("unfinished", UNFINISHED),
        ("unavailable", UNAVAILABLE),
        ("detached", DETACHED),
        ("all", ALL),
        ("none", 0),
    ];
}

/// Descriptor numbers, as a bitmap over the first 1024 (strace's limit is the same
/// order: `-e read=` takes small numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdSet {
    bits: Vec<u64>,
}

impl FdSet {
    const MAX: u64 = 1024;

    pub fn contains(&self, fd: u64) -> bool {
        fd < Self::MAX
            && self
                .bits
                .get(fd as usize / 64)
                .is_some_and(|w| w & (1 << (fd % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    fn set_all(&mut self, on: bool) {
        self.bits = vec![if on { !0 } else { 0 }; (Self::MAX / 64) as usize];
    }

    fn parse_into(&mut self, spec: &str, what: &str) -> Result<(), Error> {
        let (negate, spec) = match spec.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let mut set = FdSet::default();
        set.set_all(false);
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            match item {
                "all" => set.set_all(true),
                "none" => set.set_all(false),
                n => match n.parse::<u64>() {
                    Ok(fd) if fd < Self::MAX => set.bits[fd as usize / 64] |= 1 << (fd % 64),
                    _ => {
                        return Err(Error::Usage(format!(
                            "invalid descriptor '{item}' in -e {what}"
                        )))
                    }
                },
            }
        }
        if negate {
            for w in &mut set.bits {
                *w = !*w;
            }
        }
        *self = set;
        Ok(())
    }
}

/// `-e inject=SET:...`: what to do to the calls of SET, and on which invocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inject {
    pub set: TraceSet,
    /// The call fails with this errno (`error=`) ...
    pub error: Option<i32>,
    /// ... or returns this value without running (`retval=`).
    pub retval: Option<i64>,
    /// A signal delivered to the thread as it enters the call.
    pub signal: Option<i32>,
    /// How long the thread is held before the call runs.
    pub delay_enter: Option<Duration>,
    /// How long the thread is held after the call, before it sees the result.
    pub delay_exit: Option<Duration>,
    /// The first invocation tampered with (1-based) ...
    pub first: u64,
    /// ... the last one (`when=FIRST..LAST`) ...
    pub last: u64,
    /// ... and the step to the next ones (0: only the first).
    pub step: u64,
}

impl Inject {
    /// Whether invocation `n` (1-based, counted per thread and per syscall) is tampered with.
    pub fn fires(&self, n: u64) -> bool {
        n >= self.first
            && n <= self.last
            && (n == self.first || (self.step > 0 && (n - self.first) % self.step == 0))
    }

    /// Whether the call is replaced (its number rewritten to -1, its result set at exit).
    pub fn replaces(&self) -> bool {
        self.error.is_some() || self.retval.is_some()
    }
}

/// Everything the `-e` options said.
#[derive(Clone, Debug)]
pub struct Qualifiers {
    /// None: no `trace=` given, every call is traced.
    pub trace: Option<TraceSet>,
    pub status: u8,
    /// Signals shown, bit N for signal N (1..=64).
    pub signals: u128,
    pub read: FdSet,
    pub write: FdSet,
    pub inject: Vec<Inject>,
}

impl Default for Qualifiers {
    fn default() -> Qualifiers {
        Qualifiers {
            trace: None,
            status: status::ALL,
            signals: !0,
            read: FdSet::default(),
            write: FdSet::default(),
            inject: Vec::new(),
        }
    }
}

impl Qualifiers {
    /// Adds one `-e` expression.
    pub fn add(&mut self, expr: &str, table: &Table) -> Result<(), Error> {
        let (key, value) = match expr.split_once('=') {
            Some((k, v)) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => (k, v),
            _ => ("trace", expr),
        };
        match key {
            "trace" | "t" => {
                self.trace = Some(TraceSet::parse(value, table)?);
            }
            "status" => self.status = parse_status(value)?,
            "signal" | "signals" | "s" => self.signals = parse_signals(value)?,
            "read" | "reads" | "r" => self.read.parse_into(value, expr)?,
            "write" | "writes" | "w" => self.write.parse_into(value, expr)?,
            "inject" | "fault" => self.inject.push(parse_inject(value, key == "fault", table)?),
            _ => {
                return Err(Error::Usage(format!(
                    "invalid -e qualifier '{key}' in '{expr}' (trace, status, signal, read, write, inject, fault)"
                )))
            }
        }
        Ok(())
    }

    /// Whether signal `sig` is shown.
    pub fn shows_signal(&self, sig: i32) -> bool {
        (1..=127).contains(&sig) && self.signals & (1u128 << sig) != 0
    }
}

fn parse_status(value: &str) -> Result<u8, Error> {
    let (negate, spec) = match value.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let mut bits = 0;
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        match status::NAMES.iter().find(|(n, _)| *n == item) {
            Some(&(_, b)) => bits |= b,
            None => {
                return Err(Error::Usage(format!(
                    "invalid status '{item}' in -e status={value}"
                )))
            }
        }
    }
    Ok(if negate { !bits & status::ALL } else { bits })
}

/// A signal by name (`SIGUSR1`, `USR1`) or number.
pub fn signal_number(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    (1..=64).find(|&n| flags::signal_name(n) == full)
}

fn parse_signals(value: &str) -> Result<u128, Error> {
    let (negate, spec) = match value.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let mut bits: u128 = 0;
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        match item {
            "all" => bits = !0,
            "none" => bits = 0,
            _ => match signal_number(item) {
                Some(n) => bits |= 1 << n,
                None => {
                    return Err(Error::Usage(format!(
                        "invalid signal '{item}' in -e signal={value}"
                    )))
                }
            },
        }
    }
    Ok(if negate { !bits } else { bits })
}

/// An errno by name (`EIO`) or number.
fn errno_number(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..4096).contains(&n).then_some(n);
    }
    (1..4096).find(|&n| process::errno_name(n) == Some(name))
}

/// `SET:error=EIO:when=3+2`, `SET:retval=0`, `SET:signal=SIGUSR1`, `SET:delay_enter=10ms`,
/// `SET:delay_exit=1s`, `when=FIRST[..LAST][+[STEP]]`.
fn parse_inject(value: &str, fault: bool, table: &Table) -> Result<Inject, Error> {
    let bad = |why: String| Error::Usage(format!("invalid -e inject={value}: {why}"));
    let mut parts = value.split(':');
    let set = TraceSet::parse(parts.next().unwrap_or(""), table)?;
    let mut inj = Inject {
        set,
        error: None,
        retval: None,
        signal: None,
        delay_enter: None,
        delay_exit: None,
        first: 1,
        last: u64::MAX,
        step: 1,
    };
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("'{part}' is not KEY=VALUE")))?;
        match k {
            "error" => {
                inj.error =
                    Some(errno_number(v).ok_or_else(|| bad(format!("unknown error '{v}'")))?)
            }
            "retval" => {
                inj.retval = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|r| !crate::decode::is_error(*r))
                        .ok_or_else(|| bad(format!("invalid retval '{v}'")))?,
                )
            }
            "signal" => {
                inj.signal =
                    Some(signal_number(v).ok_or_else(|| bad(format!("unknown signal '{v}'")))?)
            }
            "delay_enter" => {
                inj.delay_enter =
                    Some(parse_delay(v).ok_or_else(|| bad(format!("invalid delay '{v}'")))?)
            }
            "delay_exit" => {
                inj.delay_exit =
                    Some(parse_delay(v).ok_or_else(|| bad(format!("invalid delay '{v}'")))?)
            }
            "when" => {
                let invalid = || bad(format!("invalid when '{v}'"));
                // FIRST[..LAST][+[STEP]]: a range alone steps by one, FIRST alone is one call.
                let (range, step) = match v.split_once('+') {
                    None => (v, None),
                    Some((r, "")) => (r, Some("1")),
                    Some((r, s)) => (r, Some(s)),
                };
                let (first, last) = match range.split_once("..") {
                    None => (range, None),
                    Some((f, l)) => (f, Some(l)),
                };
                inj.first = first
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| (1..=65535).contains(&n))
                    .ok_or_else(invalid)?;
                inj.last = match last {
                    None => u64::MAX,
                    Some(l) => l
                        .parse::<u64>()
                        .ok()
                        .filter(|&n| (1..=65534).contains(&n) && n >= inj.first)
                        .ok_or_else(invalid)?,
                };
                let step = step.unwrap_or(if last.is_some() { "1" } else { "0" });
                inj.step = step
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n <= 65535)
                    .ok_or_else(invalid)?;
            }
            _ => return Err(bad(format!("unknown key '{k}'"))),
        }
    }
    if inj.error.is_some() && inj.retval.is_some() {
        return Err(bad("error= and retval= exclude each other".into()));
    }
    if fault && inj.error.is_none() {
        // `-e fault=SET` is `inject=SET:error=ENOSYS`.
        inj.error = Some(libc::ENOSYS);
    }
    if !fault
        && inj.error.is_none()
        && inj.retval.is_none()
        && inj.signal.is_none()
        && inj.delay_enter.is_none()
        && inj.delay_exit.is_none()
    {
        return Err(bad(
            "give error=, retval=, signal=, delay_enter= or delay_exit=".into(),
        ));
    }
    Ok(inj)
}

/// strace's delays: a number of microseconds, or with a unit `s`, `ms`, `us`, `ns`.
fn parse_delay(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "" | "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "ns" => Duration::from_nanos(n),
        _ => return None,
    };
    (d <= Duration::from_secs(3600)).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers_add_up() {
        let t = Table::new();
        let mut q = Qualifiers::default();
        q.add("trace=openat", &t).unwrap();
        q.add("close,read", &t).unwrap();
        let tr = q.trace.clone().unwrap();
        assert!(!tr.contains(t.lookup("openat").unwrap()) && tr.contains(3) && tr.contains(0));
        q.add("status=failed,unfinished", &t).unwrap();
        assert_eq!(q.status, status::FAILED | status::UNFINISHED);
        q.add("status=!successful", &t).unwrap();
        assert_eq!(q.status, status::ALL & !status::SUCCESSFUL);
        q.add("signal=USR1,SIGCHLD", &t).unwrap();
        assert!(q.shows_signal(libc::SIGUSR1) && q.shows_signal(libc::SIGCHLD));
        assert!(!q.shows_signal(libc::SIGINT));
        q.add("read=3,5", &t).unwrap();
        assert!(q.read.contains(3) && q.read.contains(5) && !q.read.contains(4));
        q.add("read=!7", &t).unwrap();
        assert!(q.read.contains(3) && !q.read.contains(7));
        assert!(q.add("bogus=1", &t).is_err());
        assert!(q.add("status=maybe", &t).is_err());
        assert!(q.add("read=x", &t).is_err());
    }

    #[test]
    fn inject_specs() {
        let t = Table::new();
        let mut q = Qualifiers::default();
        q.add("inject=fdatasync:error=EIO:when=3+2", &t).unwrap();
        let i = &q.inject[0];
        assert_eq!(i.error, Some(libc::EIO));
        assert!(!i.fires(1) && !i.fires(2) && i.fires(3) && !i.fires(4) && i.fires(5));
        q.add("inject=read:retval=7:when=2", &t).unwrap();
        let i = &q.inject[1];
        assert!(i.fires(2) && !i.fires(3) && i.replaces());
        q.add("inject=getpid:signal=USR1:when=2+", &t).unwrap();
        let i = &q.inject[2];
        assert!(!i.fires(1) && i.fires(2) && i.fires(9) && !i.replaces());
        q.add("fault=open", &t).unwrap();
        assert_eq!(q.inject[3].error, Some(libc::ENOSYS));
        q.add("inject=read:delay_enter=10ms", &t).unwrap();
        assert_eq!(q.inject[4].delay_enter, Some(Duration::from_millis(10)));
        q.add("inject=read:error=EIO:when=2..4", &t).unwrap();
        let i = &q.inject[5];
        assert!(!i.fires(1) && i.fires(2) && i.fires(3) && i.fires(4) && !i.fires(5));
        q.add("inject=read:error=EIO:when=2..9+3", &t).unwrap();
        let i = &q.inject[6];
        assert!(i.fires(2) && !i.fires(3) && i.fires(5) && i.fires(8) && !i.fires(11));
        q.add("inject=read:delay_exit=1ms", &t).unwrap();
        assert_eq!(q.inject[7].delay_exit, Some(Duration::from_millis(1)));
        for bad in [
            "inject=read:error=EIO:when=5..2",
            "inject=read:error=EIO:when=1..65535",
            "inject=read:error=EIO:when=..3",
            "inject=read",
            "inject=read:error=EBOGUS",
            "inject=read:error=EIO:retval=1",
            "inject=read:when=0",
            "inject=read:error=EIO:colour=red",
        ] {
            assert!(q.add(bad, &t).is_err(), "{bad}");
        }
    }
}
