//! `echo`: sends every byte back, under any concurrency model.

use clap::Parser;
use servers::cli::{self, IoArgs};
use servers::proto::echo::Echo;
use servers::signals::Shutdown;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Echo server: every byte a client sends comes back to it.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Example:\n  echo --listen 127.0.0.1:7001 --io epoll\n  printf 'hello\\n' | nc -q1 127.0.0.1 7001"
)]
struct Args {
    /// Address to listen on (repeat for more; IPv6 as [::1]:7001).
    #[arg(long, default_value = "127.0.0.1:7001")]
    listen: Vec<SocketAddr>,
    #[command(flatten)]
    io: IoArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_tracing();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let shutdown = Shutdown::install()?;
    let listeners = args.io.listen(&args.listen)?;
    // With /dev/sysnet present, export echo.* connection counters to it.
    match servers::sysnet_dev::export_connections("echo") {
        None => servers::io::serve(listeners, Echo, &args.io.options(), &shutdown)?,
        Some((counters, exporter)) => {
            let proto = servers::sysnet_dev::Counted::new(Echo, counters);
            servers::io::serve(listeners, proto, &args.io.options(), &shutdown)?;
            exporter.finish();
        }
    }
    Ok(())
}
