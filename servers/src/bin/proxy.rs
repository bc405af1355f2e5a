//! `proxy`: an HTTP forward proxy (absolute-form requests, each parsed, checked and
//! rewritten, on kept-alive client connections; CONNECT tunnels), or with `--upstream`
//! a plain TCP forwarder; bulk bytes move with splice(2).

use clap::Parser;
use servers::io::relay::{self, Mode, RelayConfig, RelayStats};
use servers::log::{AccessLog, AppendFile};
use servers::net::{ListenOptions, Listener};
use servers::proto::proxy::{self, Policy, Rule};
use servers::signals::Shutdown;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Forward proxy for `curl -x` (HTTP) and `curl -p -x` (CONNECT tunnels), or a TCP
/// port forwarder with --upstream.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:
  proxy --listen 127.0.0.1:3128
  curl -x http://127.0.0.1:3128 http://127.0.0.1:8080/
  curl -p -x http://127.0.0.1:3128 https://127.0.0.1:443/
  proxy --listen 127.0.0.1:3128 --allow-connect-port 8443 --deny 10.0.0.0/8 --deny .internal.example
  proxy --auth users.txt --access-log access.log   # users.txt: alice:secret per line
  curl -x http://alice:secret@127.0.0.1:3128 http://127.0.0.1:8080/
  proxy --listen 127.0.0.1:9000 --upstream 127.0.0.1:8080      # TCP forwarder"
)]
struct Args {
    /// Address to listen on (repeat for more; IPv6 as [::1]:3128).
    #[arg(long, default_value = "127.0.0.1:3128")]
    listen: Vec<SocketAddr>,
    /// Forward every connection to HOST:PORT as raw TCP instead of speaking HTTP.
    #[arg(long)]
    upstream: Option<String>,
    /// Also allow CONNECT to this port (443 is always allowed).
    #[arg(long = "allow-connect-port", value_name = "PORT")]
    connect_ports: Vec<u16>,
    /// Allow only these destinations: a host (`example.com`), a domain with its
    /// subdomains (`.example.com`), or a network (`127.0.0.0/8`). Repeatable.
    #[arg(long, value_name = "HOST|NET")]
    allow: Vec<Rule>,
    /// Never allow these destinations (same forms as --allow; checked first).
    #[arg(long, value_name = "HOST|NET")]
    deny: Vec<Rule>,
    /// Seconds with no bytes moving before a connection is closed.
    #[arg(long, default_value_t = 60)]
    idle_timeout: u64,
    /// Seconds to resolve and connect to an upstream before answering 504.
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
    /// Refuse clients beyond this many (per worker).
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// Event-loop threads, each with its own SO_REUSEPORT listener.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Require `Proxy-Authorization: Basic` from one of the `user:password` lines of
    /// FILE (`#` starts a comment); others get 407.
    #[arg(long, value_name = "FILE")]
    auth: Option<PathBuf>,
    /// Append a Combined Log Format line per request to FILE.
    #[arg(long, value_name = "FILE")]
    access_log: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    servers::cli::init_tracing();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mode = match &args.upstream {
        Some(up) => {
            let addrs: Vec<SocketAddr> = up
                .to_socket_addrs()
                .map_err(|e| format!("--upstream {up}: {e}"))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("--upstream {up}: no address").into());
            }
            Mode::Upstream(addrs)
        }
        None => {
            let mut policy = Policy {
                allow: args.allow.clone(),
                deny: args.deny.clone(),
                ..Policy::default()
            };
            policy.connect_ports.extend(&args.connect_ports);
            if let Some(path) = &args.auth {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--auth {}: {e}", path.display()))?;
                policy.auth = proxy::parse_auth_file(&text)
                    .map_err(|e| format!("--auth {}: {e}", path.display()))?;
            }
            Mode::Forward(policy)
        }
    };
    let mut _access_guard = None;
    let access_log = match &args.access_log {
        Some(path) => {
            let (log, guard) = AccessLog::start(Box::new(AppendFile::open(path)?), 8192)?;
            _access_guard = Some(guard);
            Some(log)
        }
        None => None,
    };
    let config = RelayConfig {
        access_log,
        mode,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        max_clients: args.max_clients.max(1),
    };
    let _ = servers::net::raise_fd_limit();
    let workers = args.workers.max(1);
    let opts = ListenOptions {
        reuse_port: workers > 1,
        ..ListenOptions::default()
    };
    // One listener set per worker: the first binds (a port 0 becomes a real port),
    // the others bind the same addresses with SO_REUSEPORT.
    let first: Vec<Listener> = args
        .listen
        .iter()
        .map(|a| Listener::bind(*a, &opts))
        .collect::<Result<_, _>>()?;
    let bound: Vec<SocketAddr> = first.iter().map(Listener::local_addr).collect();
    for a in &bound {
        tracing::info!(addr = %a, "listening");
    }
    let mut sets = vec![first];
    for _ in 1..workers {
        sets.push(
            bound
                .iter()
                .map(|a| Listener::bind(*a, &opts))
                .collect::<Result<_, _>>()?,
        );
    }
    let shutdown = Shutdown::install()?;
    std::thread::scope(|s| {
        let handles: Vec<_> = sets
            .into_iter()
            .map(|set| {
                let config = &config;
                let shutdown = &shutdown;
                s.spawn(move || relay::run(set, config, &RelayStats::default(), shutdown))
            })
            .collect();
        let mut result = Ok(());
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    shutdown.trigger();
                    result = Err(e.into());
                }
                Err(_) => {
                    shutdown.trigger();
                    result = Err("a relay thread panicked".into());
                }
            }
        }
        result
    })
}
