//! `httpd`: the static file server — a thin front over `proto::http` and `io::serve`.
//!
//! Start-up order is the security story: open the document root and the access log,
//! bind the sockets, then `chroot` and drop to `--user`, and only then serve, so nothing
//! a client can reach ever runs with the privileges that opened those.

use clap::Parser;
use servers::cli::{self, IoArgs};
use servers::log::{AccessLog, AppendFile};
use servers::privs;
use servers::proto::http::{AccessRule, Cidr, Coding, Features, Htpasswd, Http, HttpConfig};
use servers::signals::Shutdown;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A hardened HTTP/1.0 and 1.1 static file server (GET and HEAD, ranges, keep-alive,
/// precompressed and compressed files, directory listings).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Example:\n  httpd --listen 127.0.0.1:8080 --root ./www --access-log /tmp/access.log\n  \
                  curl -i http://127.0.0.1:8080/\n\n\
                  With compression and listings:\n  \
                  httpd --root ./www --precompressed --compress br,gzip --autoindex\n\n\
                  As root: httpd --listen 0.0.0.0:80 --root /srv/www --user nobody --chroot\n\
                  SIGUSR1 reopens the access log. SIGTERM or SIGINT closes the listening sockets at\n\
                  once and stops after the in-flight responses (at most --drain-timeout seconds):\n  \
                  httpd --root ./www --drain-timeout 10"
)]
struct Args {
    /// Address to listen on (repeat for more; IPv6 as [::1]:8080).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: Vec<SocketAddr>,
    /// Document root: only files below it are served.
    #[arg(long)]
    root: PathBuf,
    #[command(flatten)]
    io: IoArgs,
    /// Append one Combined Log Format line per request to this file.
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// Drop to this user (and its group) after binding and opening files.
    #[arg(long)]
    user: Option<String>,
    /// Jail the process in the document root before dropping privileges.
    #[arg(long)]
    chroot: bool,
    /// Seconds a request head may take to arrive (slowloris guard); then 408.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a kept-alive connection may sit idle between requests.
    #[arg(long, default_value_t = 30)]
    idle_timeout: u64,
    /// Opened files kept per worker for the rest of the current second (a change on
    /// disk shows within about a second); 0 opens every request's file afresh.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=65536))]
    file_cache: u32,
    /// On SIGTERM/SIGINT, seconds in-flight responses may take to finish before they
    /// are cut; 0 cuts them at once.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    drain_timeout: u64,
    /// Serve FILE.br, FILE.zst or FILE.gz in place of FILE when the client's
    /// Accept-Encoding prefers that coding (as nginx's gzip_static).
    #[arg(long)]
    precompressed: bool,
    /// Compress text files on the fly with these codings (br, zstd, gzip; repeat or
    /// comma-separate), keeping the results in memory.
    #[arg(long, value_name = "CODING", value_delimiter = ',', value_parser = parse_coding)]
    compress: Vec<Coding>,
    /// Files smaller than this many bytes are not compressed on the fly.
    #[arg(long, value_name = "BYTES", default_value_t = Features::default().compress_min_size)]
    compress_min_size: u64,
    /// Files larger than this many bytes are not compressed on the fly (it would
    /// stall the event loop); they go out as they are.
    #[arg(long, value_name = "BYTES", default_value_t = Features::default().compress_max_size)]
    compress_max_size: u64,
    /// Bytes of compressed bodies kept in memory.
    #[arg(long, value_name = "BYTES", default_value_t = Features::default().compress_cache)]
    compress_cache: u64,
    /// List directories that have no index.html.
    #[arg(long)]
    autoindex: bool,
    /// Below PREFIX, admit these clients even when --deny lists them (repeatable;
    /// PREFIX=CIDR[,CIDR...], e.g. /admin/=127.0.0.1,10.0.0.0/8).
    #[arg(long, value_name = "PREFIX=CIDRS")]
    allow: Vec<String>,
    /// Below PREFIX, refuse these clients with 403 ("all" is every address).
    #[arg(long, value_name = "PREFIX=CIDRS")]
    deny: Vec<String>,
    /// Below PREFIX, require HTTP Basic authentication against an htpasswd file of
    /// bcrypt (htpasswd -B) or argon2 hashes: PREFIX=FILE.
    #[arg(long, value_name = "PREFIX=FILE")]
    auth: Vec<String>,
    /// The realm --auth names in its 401 answers.
    #[arg(long, default_value = "restricted")]
    auth_realm: String,
}

/// The access rules of --allow, --deny and --auth, one per prefix.
fn access_rules(args: &Args) -> Result<Vec<AccessRule>, String> {
    if !args
        .auth_realm
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err("--auth-realm: printable ASCII without quotes or backslashes".into());
    }
    let mut rules: Vec<AccessRule> = Vec::new();
    for (flag, specs) in [
        ("allow", &args.allow),
        ("deny", &args.deny),
        ("auth", &args.auth),
    ] {
        for spec in specs {
            let (prefix, value) = spec
                .split_once('=')
                .filter(|(p, _)| p.starts_with('/'))
                .ok_or_else(|| format!("--{flag} {spec:?}: expected /PREFIX=VALUE"))?;
            let i = match rules.iter().position(|r| r.prefix == prefix) {
                Some(i) => i,
                None => {
                    rules.push(AccessRule::new(prefix));
                    rules.len() - 1
                }
            };
            let r = &mut rules[i];
            if flag == "auth" {
                let users = Htpasswd::load(Path::new(value)).map_err(|e| e.to_string())?;
                r.auth = Some((Arc::new(users), args.auth_realm.clone()));
                continue;
            }
            for c in value.split(',') {
                let c = c
                    .trim()
                    .parse::<Cidr>()
                    .map_err(|e| format!("--{flag}: {e}"))?;
                if flag == "allow" {
                    r.allow.push(c);
                } else {
                    r.deny.push(c);
                }
            }
        }
    }
    Ok(rules)
}

fn parse_coding(s: &str) -> Result<Coding, String> {
    Coding::from_token(s).ok_or_else(|| format!("{s:?} is not br, zstd or gzip"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_tracing();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("httpd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    // Blocked before any thread exists, so every thread inherits the mask and only the
    // waiter below ever takes SIGUSR1.
    let mut usr1 = nix::sys::signal::SigSet::empty();
    usr1.add(nix::sys::signal::Signal::SIGUSR1);
    usr1.thread_block()
        .map_err(|e| format!("pthread_sigmask(SIG_BLOCK, SIGUSR1): {e}"))?;
    // Before any thread starts: the service manager's socket, taken out of the environment.
    let notifier = servers::sd::Notifier::from_env();
    let passed = servers::sd::listen_fds()?;
    let shutdown = Shutdown::install()?;
    // The user database is outside the jail: look the user up first.
    let account = args.user.as_deref().map(privs::lookup).transpose()?;
    let mut cfg = HttpConfig::new(&args.root)?;
    cfg.header_timeout = Duration::from_secs(args.header_timeout.max(1));
    cfg.idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
    cfg.file_cache = args.file_cache as usize;
    cfg.features = Features {
        precompressed: args.precompressed,
        compress: args.compress.clone(),
        compress_min_size: args.compress_min_size,
        compress_max_size: args.compress_max_size,
        compress_cache: args.compress_cache,
        autoindex: args.autoindex,
        access: access_rules(args)?,
    };
    let mut guard = None;
    if let Some(path) = &args.access_log {
        let (log, g) = AccessLog::start(Box::new(AppendFile::open(path)?), 8192)?;
        let reopen = log.clone();
        std::thread::Builder::new()
            .name("sigusr1".into())
            .spawn(move || loop {
                if usr1.wait().is_ok() {
                    reopen.reopen();
                }
            })
            .map_err(|e| format!("spawn SIGUSR1 thread: {e}"))?;
        cfg.access_log = Some(log);
        guard = Some(g);
    }
    // Through IoArgs, so --sndbuf reaches the accepted sockets as in echo and chat.
    // The sockets systemd passed (socket activation), the others bound here.
    let mut listeners = servers::sd::listeners(passed, &args.listen, |addr| {
        let l = servers::net::Listener::bind(addr, &args.io.listen_options())?;
        tracing::info!(addr = %l.local_addr(), "listening");
        Ok(l)
    })?;
    if let Some(n) = args.io.sndbuf {
        for l in &mut listeners {
            l.set_send_buffer(n);
        }
    }
    for l in &listeners {
        // Linux copies TCP_NODELAY from the listener to every accepted socket. Without
        // it, a response's head and its file body leave as two small segments and
        // Nagle holds the second until the client's delayed ACK: 40 ms per keep-alive
        // request.
        nix::sys::socket::setsockopt(l, nix::sys::socket::sockopt::TcpNoDelay, &true)
            .map_err(|e| format!("setsockopt(TCP_NODELAY) on {}: {e}", l.local_addr()))?;
    }

    if args.chroot {
        privs::chroot(cfg.root_path())?;
        cfg.chrooted();
        tracing::info!(root = %args.root.display(), "chrooted");
    }
    match &account {
        Some(account) => privs::drop_to(account)?,
        None => {
            privs::warn_if_root(None);
        }
    }
    tracing::info!(root = %args.root.display(), model = %args.io.model, "serving files");
    let opts = servers::io::Options {
        drain_grace: Duration::from_secs(args.drain_timeout),
        ..args.io.options()
    };
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().to_string())
        .collect();
    notifier.ready(&format!(
        "serving {} on {}",
        args.root.display(),
        addrs.join(" ")
    ));
    let stopping = notifier.stopping_when(&shutdown, "stopping: finishing the responses in flight");
    servers::io::serve(listeners, Http::new(Arc::new(cfg)), &opts, &shutdown)?;
    stopping.stop();
    drop(guard);
    Ok(())
}
