//! `chat`: line-based broadcast chat, under any concurrency model.

use clap::Parser;
use servers::cli::{self, IoArgs};
use servers::proto::chat::Chat;
use servers::signals::Shutdown;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Chat server: each line a client sends goes to every other client, prefixed with
/// the sender's name. Commands: /nick NAME, /who, /quit.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Example:\n  chat --listen 127.0.0.1:7000 --max-clients 100\n  nc 127.0.0.1 7000        # in two terminals, then type"
)]
struct Args {
    /// Address to listen on (repeat for more; IPv6 as [::1]:7000).
    #[arg(long, default_value = "127.0.0.1:7000")]
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
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let shutdown = Shutdown::install()?;
    let listeners = args.io.listen(&args.listen)?;
    servers::io::serve(listeners, Chat::new(), &args.io.options(), &shutdown)?;
    Ok(())
}
