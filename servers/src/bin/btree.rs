//! `btree`: the command-line face of the on-disk B+tree (`servers::store::btree`):
//! single operations, an integrity check, statistics, and bulk modes for benchmarks.
//!
//! The one idea: every subcommand opens the file, does one thing, and exits; the bulk
//! `load` commits one durable batch per `--batch` keys, so killing it at any moment
//! leaves a file that reopens at the last batch it reported.

use clap::{Parser, Subcommand};
use servers::store::btree::{Db, Error as DbError, Options};
use std::io::{IsTerminal, Write};
use std::ops::Bound;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const KEY_LEN: usize = 16;

#[derive(Parser)]
#[command(
    name = "btree",
    about = "An on-disk, crash-safe B+tree: one file, ordered byte-string keys",
    after_help = "Examples:
  btree /tmp/t.db put apple red
  btree /tmp/t.db get apple
  btree /tmp/t.db scan --start a --end b --reverse
  btree /tmp/t.db check --strict
  head -c 1600000 /dev/urandom > keys.bin
  btree /tmp/t.db load keys.bin --value-len 100 --batch 1000
  btree /tmp/t.db lookup keys.bin
  btree /tmp/t.db scan-from keys.bin --count 100"
)]
struct Cli {
    /// The database file (created if absent).
    file: PathBuf,
    /// Pages held in the page cache (4 KiB each).
    #[arg(long, default_value_t = 4096)]
    cache_pages: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Insert or replace one key.
    Put { key: String, value: String },
    /// Print one key's value (exit status 1 if absent).
    Get { key: String },
    /// Delete one key (exit status 1 if absent).
    Del { key: String },
    /// Print pairs in key order, tab-separated, non-printable bytes escaped.
    Scan {
        /// First key (inclusive).
        #[arg(long)]
        start: Option<String>,
        /// Last key (exclusive).
        #[arg(long)]
        end: Option<String>,
        /// Descending order.
        #[arg(long)]
        reverse: bool,
        /// At most this many pairs.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Walk the whole file: order, balance, checksums, free-page accounting.
    ///
    /// A damaged meta page is a warning (the other one is used, and a batch may have
    /// been rolled back); exit status 1 for it with --strict, 2 for corruption.
    Check {
        /// Exit non-zero (1) when a meta page is damaged, not only on corruption.
        #[arg(long)]
        strict: bool,
    },
    /// Height, page counts and fill factor.
    Stats,
    /// Insert every 16-byte key of KEYFILE; value = the key repeated, cut to --value-len.
    Load {
        keyfile: PathBuf,
        #[arg(long, default_value_t = 100)]
        value_len: usize,
        /// Keys per durable commit.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Print `committed N` on stdout after each batch's commit returns.
        #[arg(long)]
        report: bool,
    },
    /// Look up every 16-byte key of KEYFILE; prints how many were found.
    Lookup { keyfile: PathBuf },
    /// For each 16-byte start key of STARTFILE read --count pairs from the first key >= it.
    ScanFrom {
        startfile: PathBuf,
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {len} bytes is not a whole number of {KEY_LEN}-byte keys")]
    KeyFile { path: PathBuf, len: usize },
    #[error("{0}")]
    Usage(String),
    #[error("write stdout: {0}")]
    Stdout(std::io::Error),
}

/// Progress on stderr, only when it is a terminal, at most a few times a second.
struct Progress {
    on: bool,
    what: &'static str,
    total: usize,
    last: Instant,
    start: Instant,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Self {
        let now = Instant::now();
        Progress {
            on: std::io::stderr().is_terminal(),
            what,
            total,
            last: now,
            start: now,
        }
    }

    fn tick(&mut self, done: usize) {
        if self.on && self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            eprint!("\r{} {done}/{} ({:.0}/s)   ", self.what, self.total, rate);
        }
    }

    fn finish(&self) {
        if self.on {
            eprintln!(
                "\r{} {}/{} done in {:.2?}   ",
                self.what,
                self.total,
                self.total,
                self.start.elapsed()
            );
        }
    }
}

fn read_keys(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    let data = std::fs::read(path).map_err(|source| CliError::Read {
        path: path.clone(),
        source,
    })?;
    if data.len() % KEY_LEN != 0 {
        return Err(CliError::KeyFile {
            path: path.clone(),
            len: data.len(),
        });
    }
    Ok(data)
}

fn value_for(key: &[u8], len: usize) -> Vec<u8> {
    key.iter().copied().cycle().take(len).collect()
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let db = Db::open_with(
        &cli.file,
        Options {
            cache_pages: cli.cache_pages,
        },
    )?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cli.cmd {
        Cmd::Put { key, value } => {
            let mut b = db.write()?;
            b.put(key.as_bytes(), value.as_bytes())?;
            b.commit()?;
        }
        Cmd::Get { key } => match db.read().get(key.as_bytes())? {
            Some(v) => {
                out.write_all(&v)
                    .and_then(|_| out.write_all(b"\n"))
                    .map_err(CliError::Stdout)?;
            }
            None => {
                eprintln!("btree: {key}: not found");
                return Ok(ExitCode::from(1));
            }
        },
        Cmd::Del { key } => {
            let mut b = db.write()?;
            let found = b.delete(key.as_bytes())?;
            b.commit()?;
            if !found {
                eprintln!("btree: {key}: not found");
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Scan {
            start,
            end,
            reverse,
            limit,
        } => {
            let snap = db.read();
            let lo = start
                .as_deref()
                .map_or(Bound::Unbounded, |s| Bound::Included(s.as_bytes()));
            let hi = end
                .as_deref()
                .map_or(Bound::Unbounded, |s| Bound::Excluded(s.as_bytes()));
            let range = snap.range(lo, hi);
            let iter: Box<dyn Iterator<Item = _>> = if reverse {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            for item in iter.take(limit.unwrap_or(usize::MAX)) {
                let (k, v) = item?;
                writeln!(out, "{}\t{}", k.escape_ascii(), v.escape_ascii())
                    .map_err(CliError::Stdout)?;
            }
        }
        Cmd::Check { strict } => {
            let s = db.check()?;
            for f in &s.meta_faults {
                eprintln!(
                    "btree: warning: {f}; using meta page {} (txn {}): a batch committed after txn {} is lost if the damaged page held it",
                    s.txn % 2,
                    s.txn,
                    s.txn
                );
            }
            let damaged = match s.meta_faults.len() {
                0 => String::new(),
                n => format!(", {n} meta page damaged"),
            };
            writeln!(
                out,
                "ok: {} entries, height {}, {} pages ({} free), txn {}{damaged}",
                s.entries, s.height, s.pages, s.free_pages, s.txn
            )
            .map_err(CliError::Stdout)?;
            if strict && !s.meta_faults.is_empty() {
                out.flush().map_err(CliError::Stdout)?;
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Stats => {
            let s = db.stats()?;
            let w = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "{k:<16}{v}");
            w(&mut out, "txn", s.txn.to_string())
                .and_then(|_| w(&mut out, "entries", s.entries.to_string()))
                .and_then(|_| w(&mut out, "height", s.height.to_string()))
                .and_then(|_| w(&mut out, "root", s.root.to_string()))
                .and_then(|_| w(&mut out, "pages", s.pages.to_string()))
                .and_then(|_| w(&mut out, "branch_pages", s.branch_pages.to_string()))
                .and_then(|_| w(&mut out, "leaf_pages", s.leaf_pages.to_string()))
                .and_then(|_| w(&mut out, "overflow_pages", s.overflow_pages.to_string()))
                .and_then(|_| w(&mut out, "freelist_pages", s.freelist_pages.to_string()))
                .and_then(|_| w(&mut out, "free_pages", s.free_pages.to_string()))
                .and_then(|_| w(&mut out, "fill", format!("{:.3}", s.fill)))
                .and_then(|_| w(&mut out, "file_bytes", s.file_bytes.to_string()))
                .and_then(|_| w(&mut out, "meta_faults", s.meta_faults.len().to_string()))
                .map_err(CliError::Stdout)?;
        }
        Cmd::Load {
            keyfile,
            value_len,
            batch,
            report,
        } => {
            if batch == 0 {
                return Err(CliError::Usage("--batch must be at least 1".into()));
            }
            let keys = read_keys(&keyfile)?;
            let n = keys.len() / KEY_LEN;
            let mut progress = Progress::new("load", n);
            let mut done = 0usize;
            for (i, chunk) in keys.chunks(KEY_LEN * batch).enumerate() {
                let mut b = db.write()?;
                for key in chunk.chunks_exact(KEY_LEN) {
                    b.put(key, &value_for(key, value_len))?;
                }
                b.commit()?;
                done += chunk.len() / KEY_LEN;
                if report {
                    writeln!(out, "committed {}", i + 1)
                        .and_then(|_| out.flush())
                        .map_err(CliError::Stdout)?;
                }
                progress.tick(done);
            }
            progress.finish();
            writeln!(out, "{done}").map_err(CliError::Stdout)?;
        }
        Cmd::Lookup { keyfile } => {
            let keys = read_keys(&keyfile)?;
            let n = keys.len() / KEY_LEN;
            let snap = db.read();
            let mut progress = Progress::new("lookup", n);
            let mut found = 0usize;
            for (i, key) in keys.chunks_exact(KEY_LEN).enumerate() {
                if snap.get(key)?.is_some() {
                    found += 1;
                }
                if i % 4096 == 0 {
                    progress.tick(i);
                }
            }
            progress.finish();
            writeln!(out, "{found}").map_err(CliError::Stdout)?;
        }
        Cmd::ScanFrom { startfile, count } => {
            let starts = read_keys(&startfile)?;
            let n = starts.len() / KEY_LEN;
            let snap = db.read();
            let mut progress = Progress::new("scan-from", n);
            let mut total = 0usize;
            for (i, start) in starts.chunks_exact(KEY_LEN).enumerate() {
                for item in snap
                    .range(Bound::Included(start), Bound::Unbounded)
                    .take(count)
                {
                    item?;
                    total += 1;
                }
                progress.tick(i);
            }
            progress.finish();
            writeln!(out, "{total}").map_err(CliError::Stdout)?;
        }
    }
    out.flush().map_err(CliError::Stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // Warnings (a rejected meta page at open) are shown unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("btree: {e}");
            ExitCode::from(2)
        }
    }
}
