//! `capstone`: the production-style web server (master + forked workers, one epoll
//! loop per thread). All the logic lives in `servers::capstone`.

use clap::Parser;
use servers::capstone::config::Config;
use servers::capstone::pidfile::{self, PidFile};
use servers::capstone::{logging, master, worker};
use servers::rotate::RotatePolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "An nginx-style web server: a master process, forked workers, one epoll loop per thread.",
    after_help = "Examples:\n  capstone                                   # the bundled site on http://127.0.0.1:8080/\n  capstone --listen 127.0.0.1:9000 --root ./public\n  capstone --config servers/capstone.example.toml\n  capstone --check-config servers/capstone.example.toml\n  capstone --tls-self-signed                 # also https://127.0.0.1:8443/ (prints the CA to trust)\n  capstone -s reload --config servers/capstone.example.toml\n\nSignals (to the master, or through -s and the pid file): HUP = reload, USR1 = reopen,\nQUIT = stop (now), TERM/INT = quit (finish requests in flight, then exit)."
)]
struct Args {
    /// The TOML configuration file (without it: the embedded default).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on this address instead of the configured ones.
    #[arg(short, long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve this directory instead of the configured root.
    #[arg(short, long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Validate FILE and exit (0 if it is good), like `nginx -t`.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Serve HTTPS with a private CA and a localhost certificate made (once) in the
    /// state directory; adds 127.0.0.1:8443 when no listener has `tls = true`.
    /// Prints the CA's path, for `curl --cacert` or a browser's trust store.
    #[arg(long)]
    tls_self_signed: bool,
    /// Signal the running master named by the pid file (of --config FILE, or the
    /// default one) and exit, like `nginx -s`.
    #[arg(
        short = 's',
        long = "signal",
        value_name = "SIGNAL",
        conflicts_with_all = ["check_config", "listen", "root"]
    )]
    signal: Option<pidfile::Command>,
}

/// The pid file the configuration names, else the default for `config_file`.
fn pid_path(
    config: &Config,
    config_file: Option<&std::path::Path>,
) -> Result<PathBuf, pidfile::PidFileError> {
    match &config.pid_file {
        Some(p) => Ok(p.clone()),
        None => pidfile::default_path(config_file),
    }
}

/// `capstone -s SIGNAL [--config FILE]`.
fn send_signal(command: pidfile::Command, config_file: Option<&std::path::Path>) -> ExitCode {
    // Only the pid file matters here: a file whose TLS listeners rely on
    // --tls-self-signed for their certificate names it as well as any.
    let config = match config_file {
        Some(f) => match Config::load_tls(f, true) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("capstone: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    let sent = pid_path(&config, config_file).and_then(|p| pidfile::send(&p, command));
    match sent {
        Ok(pid) => {
            println!(
                "capstone: sent {} to master {pid}",
                command.signal().as_str()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("capstone: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(command) = args.signal {
        return send_signal(command, args.config.as_deref());
    }
    if let Some(path) = &args.check_config {
        return match Config::load(path) {
            Ok(c) => {
                for w in c.tls.warnings() {
                    eprintln!("capstone: warning: {w}");
                }
                println!("capstone: configuration file {} is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("capstone: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let tls_self_signed = if args.tls_self_signed {
        match servers::capstone::state::dir() {
            Ok(d) => Some(d.join("tls")),
            Err(e) => {
                eprintln!("capstone: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let reload = master::Reload {
        path: args.config.clone(),
        listen: args.listen,
        root: args.root.clone(),
        tls_self_signed: tls_self_signed.clone(),
    };
    let config = match reload.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capstone: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = &tls_self_signed {
        let ca = servers::tls::DataDir::named(dir, "sysnet capstone").ca_cert();
        println!("capstone: HTTPS with a private CA: trust {}", ca.display());
        for addr in &config.tls.listeners {
            println!(
                "capstone:   curl --cacert {} https://localhost:{}/",
                ca.display(),
                addr.port()
            );
        }
    }
    if let Some(root) = config.root.as_ref().filter(|_| config.chroot.is_none()) {
        if !root.is_dir() {
            eprintln!("capstone: root {} is not a directory", root.display());
            return ExitCode::FAILURE;
        }
    }
    // Claimed before anything binds: a second master for the same pid file stops
    // here, with one line, instead of at the busy port. Removed when this returns
    // (workers leave through `_exit` and never drop it).
    let _pid_file =
        match pid_path(&config, args.config.as_deref()).and_then(|p| PidFile::create(&p)) {
            Ok((file, stale)) => {
                if let Some(note) = stale {
                    eprintln!("capstone: writing the pid file anew ({note})");
                }
                file
            }
            Err(e) => {
                eprintln!("capstone: {e}");
                return ExitCode::FAILURE;
            }
        };
    logging::init();
    let policy = RotatePolicy {
        max_size: config.log.rotate_size,
        daily: config.log.rotate_daily,
        keep: config.log.keep,
    };
    if let Err(e) = logging::open(config.log.error.as_deref(), policy) {
        eprintln!("capstone: error log: {e}");
        return ExitCode::FAILURE;
    }
    let error_log_is_file = config.log.error.is_some();
    let result = if config.processes == 0 {
        worker::run_single(config)
    } else {
        master::run(config, reload, worker::run)
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code.clamp(1, 255) as u8),
        Err(e) => {
            // The terminal gets one line; a file error log gets its own record too.
            if error_log_is_file {
                tracing::error!(error = %e, "capstone failed");
                logging::flush(std::time::Duration::from_secs(1));
            }
            eprintln!("capstone: {e}");
            ExitCode::FAILURE
        }
    }
}
