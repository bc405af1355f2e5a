//! `-c`: counts, errors and time per syscall, printed as strace's table.
//!
//! Time is the wall-clock latency between the entry and exit stops (strace's `-w`),
//! measured by the tracer; a call counts once it returns, so `exit_group` does not.

use std::fmt::Write;
use std::time::Duration;

#[derive(Clone, Copy, Default)]
struct Counter {
    calls: u64,
    errors: u64,
    time: Duration,
}

pub struct Summary {
    counters: Vec<Counter>,
}

impl Summary {
    pub fn new() -> Summary {
        Summary {
            counters: vec![Counter::default(); 512],
        }
    }

    pub fn record(&mut self, nr: u64, failed: bool, time: Duration) {
        if let Some(c) = self.counters.get_mut(nr as usize) {
            c.calls += 1;
            c.errors += u64::from(failed);
            c.time += time;
        }
    }

    /// The table, sorted by time then calls (descending) like `strace -c`.
    pub fn render(&self, name_of: impl Fn(u64) -> String) -> String {
        let mut rows: Vec<(u64, Counter)> = self
            .counters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.calls > 0)
            .map(|(n, c)| (n as u64, *c))
            .collect();
        rows.sort_by(|a, b| {
            b.1.time
                .cmp(&a.1.time)
                .then(b.1.calls.cmp(&a.1.calls))
                .then(a.0.cmp(&b.0))
        });
        let total_time: Duration = rows.iter().map(|r| r.1.time).sum();
        let total_calls: u64 = rows.iter().map(|r| r.1.calls).sum();
        let total_errors: u64 = rows.iter().map(|r| r.1.errors).sum();
        let mut s = String::new();
        let rule = "------ ----------- ----------- --------- --------- ----------------\n";
        s.push_str("% time     seconds  usecs/call     calls    errors syscall\n");
        s.push_str(rule);
        let pct = |t: Duration| {
            if total_time.is_zero() {
                0.0
            } else {
                100.0 * t.as_secs_f64() / total_time.as_secs_f64()
            }
        };
        let line = |s: &mut String, t: Duration, calls: u64, errors: u64, name: &str| {
            let per = (t.as_micros() as u64).checked_div(calls).unwrap_or(0);
            let err = if errors == 0 {
                String::new()
            } else {
                errors.to_string()
            };
            let _ = writeln!(
                s,
                "{:6.2} {:11.6} {:11} {:9} {:>9} {}",
                pct(t),
                t.as_secs_f64(),
                per,
                calls,
                err,
                name
            );
        };
        for (nr, c) in &rows {
            line(&mut s, c.time, c.calls, c.errors, &name_of(*nr));
        }
        s.push_str(rule);
        let _ = writeln!(
            s,
            "{:6.2} {:11.6} {:11} {:9} {:>9} total",
            if total_time.is_zero() { 0.0 } else { 100.0 },
            total_time.as_secs_f64(),
            (total_time.as_micros() as u64)
                .checked_div(total_calls)
                .unwrap_or(0),
            total_calls,
            if total_errors == 0 {
                String::new()
            } else {
                total_errors.to_string()
            }
        );
        s
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shape() {
        let mut s = Summary::new();
        s.record(0, false, Duration::from_micros(30));
        s.record(0, true, Duration::from_micros(10));
        s.record(1, false, Duration::from_micros(60));
        let t = s.render(|n| {
            if n == 0 {
                "read".into()
            } else {
                "write".into()
            }
        });
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[2],
            " 60.00    0.000060          60         1           write"
        );
        assert_eq!(
            lines[3],
            " 40.00    0.000040          20         2         1 read"
        );
        assert_eq!(
            lines[5],
            "100.00    0.000100          33         3         1 total"
        );
    }
}
