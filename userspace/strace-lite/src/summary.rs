//! `-c`: counts, errors and time per syscall, printed as strace's table.
//!
//! Time is the wall-clock latency between the entry and exit stops (strace's `-w`),
//! measured by the tracer, with or without `-w`: per-call system time is not
//! something ptrace reports. A call counts once it returns, so `exit_group` does not.
//! `-S` orders the rows, `-U` picks and orders the columns, as strace's do.

use std::fmt::Write;
use std::time::Duration;

#[derive(Clone, Copy, Default)]
struct Counter {
    calls: u64,
    errors: u64,
    time: Duration,
    min: Option<Duration>,
    max: Duration,
}

/// A column of the table (`-U`), as strace names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    TimePercent,
    TotalTime,
    AvgTime,
    Calls,
    Errors,
    Name,
    MinTime,
    MaxTime,
}

/// strace's default columns.
pub const DEFAULT_COLUMNS: &[Column] = &[
    Column::TimePercent,
    Column::TotalTime,
    Column::AvgTime,
    Column::Calls,
    Column::Errors,
    Column::Name,
];

/// What the rows are ordered by (`-S`); the biggest first, names alphabetically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Time,
    AvgTime,
    MinTime,
    MaxTime,
    Calls,
    Errors,
    Name,
    Nothing,
}

impl Column {
    /// A `-U` name (strace's and its aliases).
    pub fn parse(name: &str) -> Option<Column> {
        Some(match name {
            "time-percent" | "time_percent" | "percent" | "time-pct" | "%time" => {
                Column::TimePercent
            }
            "total-time" | "total_time" | "time-total" | "time_total" | "seconds" | "time" => {
                Column::TotalTime
            }
            "avg-time" | "avg_time" | "time-avg" | "time_avg" | "usecs/call" => Column::AvgTime,
            "calls" | "count" => Column::Calls,
            "errors" | "error" => Column::Errors,
            "name" | "syscall" | "syscall-name" | "syscall_name" => Column::Name,
            "min-time" | "min_time" | "time-min" | "time_min" | "shortest" => Column::MinTime,
            "max-time" | "max_time" | "time-max" | "time_max" | "longest" => Column::MaxTime,
            _ => return None,
        })
    }

    fn header(self) -> (&'static str, usize) {
        match self {
            Column::TimePercent => ("% time", 6),
            Column::TotalTime => ("seconds", 11),
            Column::AvgTime => ("usecs/call", 11),
            Column::Calls => ("calls", 9),
            Column::Errors => ("errors", 9),
            Column::Name => ("syscall", 16),
            Column::MinTime => ("shortest", 8),
            Column::MaxTime => ("longest", 8),
        }
    }
}

impl SortBy {
    /// A `-S` key (strace's and its aliases).
    pub fn parse(name: &str) -> Option<SortBy> {
        Some(match name {
            "time" | "time-total" | "time_total" | "total-time" | "total_time" | "time-percent"
            | "time_percent" | "percent" => SortBy::Time,
            "avg-time" | "avg_time" | "time-avg" | "time_avg" => SortBy::AvgTime,
            "min-time" | "min_time" | "time-min" | "time_min" | "shortest" => SortBy::MinTime,
            "max-time" | "max_time" | "time-max" | "time_max" | "longest" => SortBy::MaxTime,
            "calls" | "count" => SortBy::Calls,
            "errors" | "error" => SortBy::Errors,
            "name" | "syscall" | "syscall-name" | "syscall_name" => SortBy::Name,
            "nothing" | "none" => SortBy::Nothing,
            _ => return None,
        })
    }
}

pub struct Summary {
    counters: Vec<Counter>,
    columns: Vec<Column>,
    sort: SortBy,
}

impl Summary {
    pub fn new() -> Summary {
        Summary {
            counters: vec![Counter::default(); 512],
            columns: DEFAULT_COLUMNS.to_vec(),
            sort: SortBy::Time,
        }
    }

    /// `-U` and `-S`.
    pub fn set_layout(&mut self, columns: Vec<Column>, sort: SortBy) {
        if !columns.is_empty() {
            self.columns = columns;
        }
        self.sort = sort;
    }

    pub fn record(&mut self, nr: u64, failed: bool, time: Duration) {
        if let Some(c) = self.counters.get_mut(nr as usize) {
            c.calls += 1;
            c.errors += u64::from(failed);
            c.time += time;
            c.min = Some(c.min.map_or(time, |m| m.min(time)));
            c.max = c.max.max(time);
        }
    }

    /// The table, ordered by the `-S` key (time by default, then calls, then number).
    pub fn render(&self, name_of: impl Fn(u64) -> String) -> String {
        let mut rows: Vec<(u64, Counter, String)> = self
            .counters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.calls > 0)
            .map(|(n, c)| (n as u64, *c, name_of(n as u64)))
            .collect();
        let avg = |c: &Counter| (c.time.as_nanos() as u64).checked_div(c.calls).unwrap_or(0);
        match self.sort {
            SortBy::Time => rows.sort_by(|a, b| {
                b.1.time
                    .cmp(&a.1.time)
                    .then(b.1.calls.cmp(&a.1.calls))
                    .then(a.0.cmp(&b.0))
            }),
            SortBy::AvgTime => rows.sort_by(|a, b| avg(&b.1).cmp(&avg(&a.1)).then(a.0.cmp(&b.0))),
            SortBy::MinTime => rows.sort_by(|a, b| b.1.min.cmp(&a.1.min).then(a.0.cmp(&b.0))),
            SortBy::MaxTime => rows.sort_by(|a, b| b.1.max.cmp(&a.1.max).then(a.0.cmp(&b.0))),
            SortBy::Calls => rows.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(&b.0))),
            SortBy::Errors => rows.sort_by(|a, b| b.1.errors.cmp(&a.1.errors).then(a.0.cmp(&b.0))),
            SortBy::Name => rows.sort_by(|a, b| a.2.cmp(&b.2)),
            SortBy::Nothing => {}
        }
        let mut total = Counter::default();
        for (_, c, _) in &rows {
            total.calls += c.calls;
            total.errors += c.errors;
            total.time += c.time;
            total.min = match (total.min, c.min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            total.max = total.max.max(c.max);
        }
        let total_time = total.time;
        let last = self.columns.len().saturating_sub(1);
        let mut s = String::new();
        for (i, col) in self.columns.iter().enumerate() {
            let (h, w) = col.header();
            if i > 0 {
                s.push(' ');
            }
            if *col == Column::Name {
                if i == last {
                    s.push_str(h);
                } else {
                    let _ = write!(s, "{h:<w$}");
                }
            } else {
                let _ = write!(s, "{h:>w$}");
            }
        }
        s.push('\n');
        let mut rule = String::new();
        for (i, col) in self.columns.iter().enumerate() {
            if i > 0 {
                rule.push(' ');
            }
            rule.push_str(&"-".repeat(col.header().1));
        }
        rule.push('\n');
        s.push_str(&rule);
        let line = |s: &mut String, c: &Counter, name: &str, pct: f64| {
            for (i, col) in self.columns.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                let _ = match col {
                    Column::TimePercent => write!(s, "{pct:6.2}"),
                    Column::TotalTime => write!(s, "{:11.6}", c.time.as_secs_f64()),
                    Column::AvgTime => write!(
                        s,
                        "{:11}",
                        (c.time.as_micros() as u64)
                            .checked_div(c.calls)
                            .unwrap_or(0)
                    ),
                    Column::Calls => write!(s, "{:9}", c.calls),
                    Column::Errors if c.errors == 0 => write!(s, "{:9}", ""),
                    Column::Errors => write!(s, "{:9}", c.errors),
                    Column::Name if i == last => write!(s, "{name}"),
                    Column::Name => write!(s, "{name:<16}"),
                    Column::MinTime => {
                        write!(s, "{:8.6}", c.min.unwrap_or_default().as_secs_f64())
                    }
                    Column::MaxTime => write!(s, "{:8.6}", c.max.as_secs_f64()),
                };
            }
            s.push('\n');
        };
        let pct = |t: Duration| {
            if total_time.is_zero() {
                0.0
            } else {
                100.0 * t.as_secs_f64() / total_time.as_secs_f64()
            }
        };
        for (_, c, name) in &rows {
            line(&mut s, c, name, pct(c.time));
        }
        s.push_str(&rule);
        line(
            &mut s,
            &total,
            "total",
            if total_time.is_zero() { 0.0 } else { 100.0 },
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
        s.set_layout(
            vec![
                Column::Name,
                Column::Calls,
                Column::MinTime,
                Column::MaxTime,
            ],
            SortBy::Name,
        );
        let t = s.render(|n| {
            if n == 0 {
                "read".into()
            } else {
                "write".into()
            }
        });
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "syscall              calls shortest  longest");
        assert_eq!(lines[1], "---------------- --------- -------- --------");
        assert_eq!(lines[2], "read                     2 0.000010 0.000030");
        assert_eq!(lines[5], "total                    3 0.000010 0.000060");
    }
}
