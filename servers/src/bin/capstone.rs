//! `capstone`: the production-style web server (master + forked workers, one epoll
//! loop per thread). All the logic lives in `servers::capstone`.

use clap::Parser;
use servers::capstone::config::Config;
use servers::capstone::{logging, master, worker};
use servers::rotate::RotatePolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "An nginx-style web server: a master process, forked workers, one epoll loop per thread.",
    after_help = "Examples:\n  capstone                                   # the bundled site on http://127.0.0.1:8080/\n  capstone --listen 127.0.0.1:9000 --root ./public\n  capstone --config servers/capstone.example.toml\n  capstone --check-config servers/capstone.example.toml\n\nSignals (to the master): TERM/INT graceful stop, QUIT stop now, HUP reload the config, USR1 reopen logs."
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check_config {
        return match Config::load(path) {
            Ok(_) => {
                println!("capstone: configuration file {} is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("capstone: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let reload = master::Reload {
        path: args.config.clone(),
        listen: args.listen,
        root: args.root.clone(),
    };
    let config = match reload.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capstone: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !config.root.is_dir() && config.chroot.is_none() {
        eprintln!(
            "capstone: root {} is not a directory",
            config.root.display()
        );
        return ExitCode::FAILURE;
    }
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
