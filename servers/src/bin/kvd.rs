//! kvd: a Redis-compatible key-value server with an append-only log, on the epoll loop.
//! Also `kvd --check-aof FILE [--fix]`, the log checker.

use clap::Parser;
use servers::kv::engine::EngineKind;
use servers::kv::{Config, Kv};
use servers::proto::resp;
use servers::store::aof::{self, CheckOutcome, FsyncPolicy};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "kvd",
    version,
    about = "A key-value server that speaks Redis's protocol and logs every write to an append-only file",
    after_help = "Examples:\n  kvd --listen 127.0.0.1:6380 --dir /var/lib/kvd --appendfsync everysec\n  redis-cli -p 6380 set greeting hello\n  kvd --check-aof /var/lib/kvd/appendonly.aof --fix"
)]
struct Args {
    /// Address to listen on (IPv4 or IPv6, port 0 picks one).
    #[arg(long, required_unless_present = "check_aof")]
    listen: Option<SocketAddr>,
    /// Data directory; the log is DIR/appendonly.aof.
    #[arg(long, required_unless_present = "check_aof")]
    dir: Option<PathBuf>,
    /// When the log is fsynced: before each acknowledgement, once a second, or never.
    #[arg(long, value_enum, default_value_t = FsyncPolicy::Everysec)]
    appendfsync: FsyncPolicy,
    /// Storage engine, one of those listed below.
    #[arg(long, value_enum, default_value_t = EngineKind::Hash)]
    engine: EngineKind,
    /// Clients must AUTH with this password before any other command.
    #[arg(long)]
    requirepass: Option<String>,
    /// Most clients at once; the next one is told `-ERR max number of clients reached`.
    #[arg(long, default_value_t = 10_000)]
    maxclients: usize,
    /// Largest bulk string a client may send, in bytes.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    proto_max_bulk_len: usize,
    /// Largest request a client may make the server buffer, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    client_query_buffer_limit: usize,
    /// Also serve Prometheus metrics (INFO's figures) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Check the log FILE and exit (0: valid or fixed, 1: not valid).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["listen", "dir"])]
    check_aof: Option<PathBuf>,
    /// With --check-aof: truncate the log at the first bad command.
    #[arg(long, requires = "check_aof")]
    fix: bool,
}

fn check_aof(path: &std::path::Path, fix: bool) -> ExitCode {
    match aof::check(path, fix, &mut |args| servers::kv::validate_logged(args)) {
        Ok(CheckOutcome::Valid { commands, len }) => {
            println!("AOF is valid: {commands} commands, {len} bytes");
            ExitCode::SUCCESS
        }
        Ok(CheckOutcome::Bad {
            offset,
            file_len,
            reason,
            fixed,
        }) => {
            let cut = file_len - offset;
            if fixed {
                println!(
                    "AOF was not valid at byte offset {offset} ({reason}); truncated to {offset} bytes, {cut} bytes removed"
                );
                ExitCode::SUCCESS
            } else {
                println!(
                    "AOF is not valid at byte offset {offset} of {file_len}: {reason}; \
                     --fix would truncate it there, removing {cut} bytes"
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("kvd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let (Some(listen), Some(dir)) = (args.listen, args.dir) else {
        return Err("--listen and --dir are required".into());
    };
    let limits = resp::Limits {
        max_bulk: args.proto_max_bulk_len,
        max_query: args
            .client_query_buffer_limit
            .max(args.proto_max_bulk_len + 64),
        ..resp::Limits::default()
    };
    // Before any thread starts: the service manager's socket, taken out of the environment.
    let notifier = servers::sd::Notifier::from_env();
    let passed = servers::sd::listen_fds().map_err(|e| e.to_string())?;
    let shutdown = servers::signals::Shutdown::install().map_err(|e| e.to_string())?;
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety
    // preconditions. A file-size limit must make a log write fail with EFBIG (handled
    // like any write error: undone, retried, reported) instead of killing the server.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let mut kv = Kv::open(Config {
        dir: Some(dir),
        fsync: args.appendfsync,
        engine: args.engine,
        maxclients: args.maxclients,
        limits,
        port: listen.port(),
        requirepass: args.requirepass.filter(|p| !p.is_empty()),
    })
    .map_err(|e| e.to_string())?;
    let stop_on_request = shutdown.clone();
    kv.on_shutdown(move || stop_on_request.trigger());
    let stop = shutdown.clone();
    let fatal = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fatal2 = fatal.clone();
    kv.on_fatal(move || {
        fatal2.store(true, std::sync::atomic::Ordering::SeqCst);
        stop.trigger();
    });
    let close_error = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let close_error2 = close_error.clone();
    kv.on_close_error(move |e| {
        *close_error2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    });
    // The socket systemd passed (socket activation), or bound here.
    let listener = servers::sd::listeners(passed, &[listen], |addr| {
        servers::net::Listener::bind(
            addr,
            &servers::net::ListenOptions {
                reuse_port: false,
                backlog: 511,
            },
        )
    })
    .map_err(|e| e.to_string())?
    .pop()
    .ok_or("no listener")?;
    let local = listener.local_addr();
    tracing::info!(addr = %local, keys = kv.keys(), appendfsync = %args.appendfsync, "listening");
    let mut opts = servers::io::Options {
        model: servers::io::Model::Epoll,
        ..servers::io::Options::default()
    };
    opts.limits.max_clients = args.maxclients;
    // The loop must let a request the protocol accepts be buffered whole, and a reply
    // as large as the largest value (or a big KEYS) leave without the client being
    // taken for a slow reader.
    opts.limits.max_input = limits.max_query + 64 * 1024;
    opts.limits.out_limit = opts
        .limits
        .out_limit
        .max(2 * limits.max_bulk + 64 * 1024 * 1024);
    // The log is replayed and the socket listens: ready.
    notifier.ready(&format!("{} keys, serving {local}", kv.keys()));
    let stopping =
        notifier.stopping_when(&shutdown, "stopping: closing clients and syncing the log");
    match args.metrics_listen {
        Some(addr) => {
            let (scraped, bound) =
                servers::kv::metrics::Scraped::start(kv, addr).map_err(|e| e.to_string())?;
            tracing::info!(addr = %bound, "metrics listening");
            servers::io::serve(vec![listener], scraped, &opts, &shutdown)
        }
        None => servers::io::serve(vec![listener], kv, &opts, &shutdown),
    }
    .map_err(|e| e.to_string())?;
    stopping.stop();
    if fatal.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(
            "stopped: the append-only file could not be written under appendfsync always".into(),
        );
    }
    if let Some(e) = close_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(format!(
            "the final sync of the append-only file failed ({e}): writes acknowledged since the last successful sync may be missing from it"
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check_aof {
        return check_aof(path, args.fix);
    }
    servers::cli::init_tracing();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvd: {e}");
            ExitCode::FAILURE
        }
    }
}
