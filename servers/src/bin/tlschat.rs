//! `tlschat`: the chat server inside TLS 1.3, its interactive client, and the
//! certificate tool for mutual TLS.

use clap::{Parser, Subcommand};
use servers::cli::{self, IoArgs};
use servers::proto::chat::Chat;
use servers::proto::tls::Tls;
use servers::signals::Shutdown;
use servers::tls::client::Session;
use servers::tls::{self as certs, DataDir, Identity, Trust};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Encrypted chat: the chat server's protocol inside TLS 1.3, interoperable with
/// `openssl s_client`.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:
  tlschat serve --listen 127.0.0.1:7443          # prints the certificate's SHA-256 fingerprint
  tlschat connect 127.0.0.1:7443 --fingerprint AB:CD:...
  tlschat connect 127.0.0.1:7443 --ca ~/.local/share/sysnet/tlschat/ca.pem
  openssl s_client -quiet -connect 127.0.0.1:7443 -CAfile ~/.local/share/sysnet/tlschat/ca.pem
  tlschat issue-client alice --out-dir .         # alice.pem + alice.key for mutual TLS"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the server.
    Serve(ServeArgs),
    /// Join a server: standard input goes to the chat, the chat to standard output.
    Connect(ConnectArgs),
    /// Issue a client certificate signed by the data directory's CA, for mutual TLS.
    IssueClient {
        /// The client's name: its certificate's common name, and its name in the chat.
        name: String,
        /// Where the server keeps its CA (default: $XDG_DATA_HOME/sysnet/tlschat).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where to write NAME.pem and NAME.key.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on (repeat for more; IPv6 as [::1]:7443).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: Vec<SocketAddr>,
    /// Where the generated CA and server certificate are kept
    /// (default: $XDG_DATA_HOME/sysnet/tlschat, else ~/.local/share/sysnet/tlschat).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Serve this certificate chain (PEM) instead of the generated one.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS); a client's chat
    /// name is its certificate's common name.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Seconds a client has to complete the handshake.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    #[command(flatten)]
    io: IoArgs,
}

#[derive(clap::Args, Debug)]
struct ConnectArgs {
    /// The server, HOST:PORT.
    addr: String,
    /// Trust servers whose certificate chains to this CA (PEM).
    #[arg(
        long,
        conflicts_with = "fingerprint",
        required_unless_present = "fingerprint"
    )]
    ca: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint.
    #[arg(long)]
    fingerprint: Option<String>,
    /// The name to verify in the server's certificate (default: the address's IP).
    #[arg(long)]
    server_name: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_tracing();
    let result = match args.cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Connect(a) => connect(a),
        Cmd::IssueClient {
            name,
            data_dir,
            out_dir,
        } => issue_client(&name, data_dir, &out_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlschat: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn serve(args: ServeArgs) -> Result<()> {
    let identity = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Identity::load(cert, key)?,
        _ => {
            let dir = DataDir::new(args.data_dir.clone().unwrap_or_else(DataDir::default_path));
            let (id, created) = dir.server_identity()?;
            if created {
                tracing::info!(cert = %dir.server_cert().display(), ca = %dir.ca_cert().display(), "created a CA and a server certificate");
            }
            id
        }
    };
    let fingerprint = identity.fingerprint();
    tracing::info!(sha256 = %fingerprint, "server certificate");
    let config = certs::server_config(identity, args.client_ca.as_deref())?;
    let proto = Tls::new(
        Arc::new(config),
        Chat::new(),
        Duration::from_secs(args.handshake_timeout.max(1)),
    );
    let shutdown = Shutdown::install()?;
    let listeners = cli::listen(&args.listen, &args.io.listen_options())?;
    servers::io::serve(listeners, proto, &args.io.options(), &shutdown)?;
    Ok(())
}

fn connect(args: ConnectArgs) -> Result<()> {
    let trust = match (&args.ca, &args.fingerprint) {
        (Some(ca), _) => Trust::Ca(ca.clone()),
        (None, Some(fp)) => Trust::Fingerprint(certs::parse_fingerprint(fp)?),
        (None, None) => return Err("give --ca FILE or --fingerprint SHA256".into()),
    };
    let id = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(Identity::load(cert, key)?),
        _ => None,
    };
    let config = certs::client_config(&trust, id)?;
    let session = Session::connect(&args.addr, args.server_name.as_deref(), config)?;
    eprintln!(
        "* connected to {} (TLS 1.3, server certificate {})",
        args.addr,
        session.peer_fingerprint().unwrap_or_default()
    );
    session.relay(&mut std::io::stdin(), &mut std::io::stdout())?;
    Ok(())
}

fn issue_client(name: &str, data_dir: Option<PathBuf>, out_dir: &std::path::Path) -> Result<()> {
    if !servers::proto::chat::valid_name(name.as_bytes()) {
        return Err(format!("bad name {name:?}: use letters, digits, '-', '_' or '.'").into());
    }
    let dir = DataDir::new(data_dir.unwrap_or_else(DataDir::default_path));
    let (cert, key) = dir.issue_client(name)?;
    let cert_path = out_dir.join(format!("{name}.pem"));
    let key_path = out_dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, cert).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        f.write_all(key.as_bytes())
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
    }
    println!("{}\n{}", cert_path.display(), key_path.display());
    Ok(())
}
