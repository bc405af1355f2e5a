//! What every binary shares: logging setup, listening with the one "listening" log
//! line tests wait for, and the `--io` family of options.
//!
//! The one idea: a binary stays thin — parse, [`init_tracing`], [`listen`], hand the
//! listeners to [`crate::io::serve`] — so every server behaves alike at its edges.

use crate::io::{Limits, Model, Options};
use crate::net::{ListenOptions, Listener, NetError};
use std::io::IsTerminal;
use std::net::SocketAddr;

/// Logs to stderr; `RUST_LOG` filters (default `info`); colours only on a terminal.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Binds every address and logs `listening addr=...` once for each.
pub fn listen(addrs: &[SocketAddr], opts: &ListenOptions) -> Result<Vec<Listener>, NetError> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let l = Listener::bind(*addr, opts)?;
        tracing::info!(addr = %l.local_addr(), "listening");
        out.push(l);
    }
    Ok(out)
}

/// The concurrency options every server takes (`#[command(flatten)]` them).
#[derive(clap::Args, Debug, Clone)]
pub struct IoArgs {
    /// Concurrency model.
    #[arg(long = "io", value_enum, default_value_t = Model::Epoll)]
    pub model: Model,
    /// Worker threads for `--io pool`.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Connections waiting for a free worker under `--io pool` before new ones are refused.
    #[arg(long, default_value_t = 64)]
    pub queue_len: usize,
    /// Clients served at once; the next one is told and closed.
    #[arg(long, default_value_t = Limits::default().max_clients)]
    pub max_clients: usize,
    /// Bytes queued for one client before it is disconnected as a slow reader.
    #[arg(long, default_value_t = Limits::default().out_limit)]
    pub out_limit: usize,
    /// listen(2) backlog.
    #[arg(long, default_value_t = 1024)]
    pub backlog: i32,
    /// Set SO_REUSEPORT on the listening sockets.
    #[arg(long)]
    pub reuse_port: bool,
    /// SO_SNDBUF for accepted connections, in bytes (small values force short writes).
    #[arg(long)]
    pub sndbuf: Option<usize>,
}

impl IoArgs {
    pub fn options(&self) -> Options {
        Options {
            model: self.model,
            workers: self.workers.max(1),
            queue_len: self.queue_len.max(1),
            limits: Limits {
                max_clients: self.max_clients,
                out_limit: self.out_limit,
                out_high: Limits::default().out_high.min(self.out_limit),
                ..Limits::default()
            },
            drain_grace: crate::io::DRAIN_GRACE,
        }
    }

    /// Binds every address (see [`listen`]) and applies the socket options given here.
    pub fn listen(&self, addrs: &[SocketAddr]) -> Result<Vec<Listener>, NetError> {
        let mut ls = listen(addrs, &self.listen_options())?;
        if let Some(n) = self.sndbuf {
            for l in &mut ls {
                l.set_send_buffer(n);
            }
        }
        Ok(ls)
    }

    pub fn listen_options(&self) -> ListenOptions {
        ListenOptions {
            reuse_port: self.reuse_port,
            backlog: self.backlog,
        }
    }
}
