//! `strace-lite`: trace a program's syscalls, or attach to a running process.
//!
//! A thin front: parse options, check the program, start the tracer, hand on the
//! tracee's exit status (a tracee killed by signal N gives 128+N, like a shell).

use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use strace_lite::decode::Xlat;
use strace_lite::error::Error;
use strace_lite::exec::{self, Launch};
use strace_lite::filter::TraceSet;
use strace_lite::output::Printer;
use strace_lite::qualify::{status, Qualifiers};
use strace_lite::summary::{Column, SortBy};
use strace_lite::table::Table;
use strace_lite::tracer::{Config, Tracer};

#[derive(Parser, Debug)]
#[command(
    name = "strace-lite",
    version,
    about = "Trace the system calls of a program, the way strace does",
    after_help = "Examples:\n  strace-lite cat /etc/hosts\n  strace-lite -f -e trace=%network,openat -o trace.txt ./capstone\n  strace-lite -c -f sh -c 'ls; ls'\n  strace-lite -ff -o trace make     (trace.PID for each process)\n  strace-lite -e 'trace=/^(.*_)?stat' ls   (a regular expression over names)\n  strace-lite -p 1234            (Ctrl-C detaches, the process keeps running)\n  strace-lite -- -weird-name     (-- ends the options)"
)]
struct Cli {
    /// Attach to a running process (PTRACE_SEIZE); Ctrl-C detaches. May be repeated.
    #[arg(short = 'p', long = "attach", value_name = "PID")]
    pids: Vec<i32>,
    /// Follow forks, vforks, clones and threads. -ff with -o FILE: each thread's trace
    /// goes to FILE.TID, without the `[pid N]` prefix.
    #[arg(short = 'f', action = clap::ArgAction::Count)]
    follow: u8,
    /// A qualifier, as strace's: trace=SET (NAME,%file,%network,/REGEX,...), status=SET
    /// (successful,failed,unfinished,unavailable), signal=SET, read=FDS, write=FDS,
    /// inject=SET:error=ERRNO|retval=N[:signal=SIG][:delay_enter=T][:delay_exit=T]
    /// [:when=FIRST[..LAST][+[STEP]]], fault=SET. Repeatable; a bare SET is trace=SET.
    #[arg(short = 'e', value_name = "EXPR")]
    expr: Vec<String>,
    /// Print only the calls that succeeded (-e status=successful).
    #[arg(short = 'z', long = "successful-only")]
    successful_only: bool,
    /// Print only the calls that failed (-e status=failed).
    #[arg(short = 'Z', long = "failed-only")]
    failed_only: bool,
    /// Print structures whole (getdents64's entries) instead of abbreviated.
    #[arg(short = 'v', long = "no-abbrev")]
    verbose: bool,
    /// Print what descriptors refer to (-yy: socket endpoints and device numbers too).
    #[arg(short = 'y', action = clap::ArgAction::Count)]
    decode_fds: u8,
    /// Only calls that name PATH or use a descriptor open on it. Repeatable.
    #[arg(short = 'P', long = "trace-path", value_name = "PATH")]
    trace_paths: Vec<PathBuf>,
    /// Prefix each line with the time since the previous one.
    #[arg(short = 'r', long = "relative-timestamps")]
    relative: bool,
    /// Prefix each line with the instruction pointer of the call.
    #[arg(short = 'i', long = "instruction-pointer")]
    instruction_pointer: bool,
    /// Filter with seccomp-bpf (needs -f): only traced calls stop the tracee. strace-lite
    /// does so whenever -f and a trace= set are given; the option is accepted as strace spells it.
    #[arg(long = "seccomp-bpf")]
    seccomp_bpf: bool,
    /// Count time, calls and errors per syscall and print a summary at the end.
    #[arg(short = 'c')]
    summary: bool,
    /// With -c: time is the wall-clock latency of each call (strace-lite always measures
    /// it so; accepted as strace spells it).
    #[arg(short = 'w', long = "summary-wall-clock")]
    wall_clock: bool,
    /// With -c: order the rows by time, calls, errors, name, avg-time, min-time,
    /// max-time or nothing.
    #[arg(short = 'S', long = "summary-sort-by", value_name = "SORTBY")]
    sort_by: Option<String>,
    /// With -c: the columns, in order: time-percent, total-time, avg-time, calls,
    /// errors, name, min-time, max-time.
    #[arg(short = 'U', long = "summary-columns", value_name = "COLUMNS")]
    columns: Option<String>,
    /// How constants and flags print: abbrev (names, the default), raw (numbers) or
    /// verbose (numbers with the names in a comment).
    #[arg(short = 'X', long = "const-print-style", value_name = "FORMAT")]
    xlat: Option<String>,
    /// Quieter: -q hides the attach/detach messages, -qq also the `+++ exited` lines.
    #[arg(short = 'q', action = clap::ArgAction::Count)]
    quiet: u8,
    /// Align results to column N (default 40).
    #[arg(short = 'a', long = "columns", value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=4096))]
    align: Option<u32>,
    /// Print the call stack of each shown call (unwound with .eh_frame, symbolised).
    #[arg(short = 'k', long = "stack-traces")]
    stack_traces: bool,
    /// Run the tracer as a detached grandchild: the program keeps this process's pid
    /// and parent, and its exit status is what the caller waits for.
    #[arg(short = 'D', long = "daemonize")]
    daemonize: bool,
    /// Write the trace to FILE instead of stderr.
    #[arg(short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Show the time spent in each call.
    #[arg(short = 'T')]
    durations: bool,
    /// Prefix each line with the wall-clock time (-tt: with microseconds, -ttt: since the epoch).
    #[arg(short = 't', action = clap::ArgAction::Count)]
    timestamps: u8,
    /// Maximum string length to print, at most 1048576 (paths are always whole).
    #[arg(short = 's', value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    strsize: u32,
    /// One JSON object per event, one per line.
    #[arg(long)]
    json: bool,
    /// The program to run and its arguments. Options end at the program's name (or at
    /// `--`): whatever follows is the program's own.
    #[arg(trailing_var_arg = true, value_name = "CMD")]
    cmd: Vec<OsString>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRACE_LITE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(usage_error(e)),
    };
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("strace-lite: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// Reports a command-line error the way strace does (`strace: unrecognized option
/// '--bogus'` and a hint, exit status 1); `--help` and `--version` print and exit 0.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Nothing useful to do if stdout is gone.
            let _ = e.print();
            0
        }
        ErrorKind::UnknownArgument => {
            match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => {
                    eprintln!("strace-lite: unrecognized option '{arg}'")
                }
                _ => eprintln!("strace-lite: unrecognized option"),
            }
            eprintln!("Try 'strace-lite --help' for more information.");
            1
        }
        _ => {
            let msg = e.render().to_string();
            let msg = msg.trim_end().trim_start_matches("error: ");
            eprintln!("strace-lite: {msg}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    if cli.cmd.is_empty() == cli.pids.is_empty() {
        return Err(Error::Usage(
            "give either a command to run or -p PID (see --help)".into(),
        ));
    }
    let table = Table::new();
    let mut qual = Qualifiers::default();
    for e in &cli.expr {
        qual.add(e, &table)?;
    }
    if cli.successful_only {
        qual.status = status::SUCCESSFUL;
    }
    if cli.failed_only {
        qual.status = if cli.successful_only {
            status::SUCCESSFUL | status::FAILED
        } else {
            status::FAILED
        };
    }
    let trace = qual.trace.clone().unwrap_or_else(TraceSet::all);
    // The calls that must stop the tracee: the shown ones and the tampered ones.
    let stops = qual
        .inject
        .iter()
        .fold(trace.clone(), |set, inj| set.union(&inj.set));
    let paths = trace_paths(&cli.trace_paths);
    let _ = cli.wall_clock;
    let xlat = match cli.xlat.as_deref() {
        None | Some("abbrev") => Xlat::Abbrev,
        Some("raw") => Xlat::Raw,
        Some("verbose") => Xlat::Verbose,
        Some(x) => {
            return Err(Error::Usage(format!(
                "invalid xlat style '{x}' (raw, abbrev, verbose)"
            )))
        }
    };
    let sort = match &cli.sort_by {
        None => SortBy::Time,
        Some(k) => {
            SortBy::parse(k).ok_or_else(|| Error::Usage(format!("invalid sortby: '{k}'")))?
        }
    };
    let mut columns = Vec::new();
    if let Some(list) = &cli.columns {
        for name in list.split(',') {
            columns.push(
                Column::parse(name)
                    .ok_or_else(|| Error::Usage(format!("unknown column name '{name}'")))?,
            );
        }
    }
    // Check the program before creating any output file, like a shell would.
    let launch_path = match cli.cmd.first() {
        Some(cmd) => {
            let path = exec::resolve(cmd)?;
            exec::precheck(&path)?;
            Some(path)
        }
        None => None,
    };
    // -ff -o FILE: FILE itself is not written, FILE.TID is (strace's -ff without -o is -f).
    let split = cli.follow >= 2 && !cli.summary && cli.output.is_some();
    let (sink, to_file): (Box<dyn std::io::Write>, bool) = match &cli.output {
        Some(_) if split => (Box::new(std::io::sink()), true),
        Some(p) => {
            let f = std::fs::File::create(p).map_err(|source| Error::Output {
                path: p.display().to_string(),
                source,
            })?;
            (Box::new(f), true)
        }
        None => (Box::new(std::io::stderr()), false),
    };
    // A terminal or pipe shows each line as it happens; a file is flushed on a timer.
    let eager_flush = !to_file;
    let mut printer = Printer::new(sink, cli.json, cli.timestamps.min(3), cli.durations);
    printer.set_relative(cli.relative);
    if let (Some(base), true) = (&cli.output, split) {
        printer.split_by_thread(base.clone());
    }
    printer.show_ip = cli.instruction_pointer;
    if let Some(n) = cli.align {
        printer.result_column = n as usize;
    }
    let cfg = Config {
        follow: cli.follow > 0,
        trace: trace.clone(),
        summary: cli.summary,
        durations: cli.durations,
        max_str: cli.strsize as usize,
        eager_flush,
        qual,
        paths,
        quiet: cli.quiet,
    };
    match launch_path {
        Some(path) => {
            // As strace does: without -f the program's threads and children run untraced, and
            // a filter they inherit would turn each filtered call into ENOSYS for them (no
            // tracer to stop for). So the filter is only installed when everything is followed.
            let seccomp = !stops.all && cli.follow > 0;
            if cli.seccomp_bpf && !cli.follow > 0 {
                eprintln!("strace-lite: --seccomp-bpf cannot be used without -f/--follow-forks, disabling");
            }
            let filter = seccomp.then(|| strace_lite::seccomp::program(&stops));
            let launch = Launch::new(&path, &cli.cmd, filter)?;
            let pid = if cli.daemonize {
                launch.spawn_detached(Tracer::options(cli.follow > 0, seccomp))?
            } else {
                launch.spawn(Tracer::options(cli.follow > 0, seccomp) | libc::PTRACE_O_EXITKILL)?
            };
            let mut tracer = Tracer::new(cfg, table, printer, seccomp, false);
            tracer.set_verbose(cli.verbose);
            tracer.set_summary_layout(columns.clone(), sort);
            tracer.set_xlat(xlat);
            tracer.set_stack_traces(cli.stack_traces);
            tracer.set_fd_paths(cli.decode_fds.min(2));
            tracer.add_launched(pid);
            tracer.run()
        }
        None => {
            for &pid in &cli.pids {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() || pid <= 0 {
                    return Err(Error::Usage(format!(
                        "attach: process {pid}: No such process"
                    )));
                }
            }
            let mut tracer = Tracer::new(cfg, table, printer, false, true);
            tracer.set_verbose(cli.verbose);
            tracer.set_summary_layout(columns.clone(), sort);
            tracer.set_xlat(xlat);
            tracer.set_stack_traces(cli.stack_traces);
            tracer.set_fd_paths(cli.decode_fds.min(2));
            for &pid in &cli.pids {
                tracer.attach(pid)?;
            }
            tracer.run()
        }
    }
}

/// `-P` paths as strace matches them: as given, and resolved if that differs.
fn trace_paths(given: &[PathBuf]) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for p in given {
        out.push(p.as_os_str().as_bytes().to_vec());
        if let Ok(real) = std::fs::canonicalize(p) {
            let real = real.as_os_str().as_bytes().to_vec();
            if !out.contains(&real) {
                out.push(real);
            }
        }
    }
    out
}
