//! The two systemd service protocols, without libsystemd: readiness notification
//! (`sd_notify(3)`: datagrams to `$NOTIFY_SOCKET`) and socket activation
//! (`sd_listen_fds(3)`: listening sockets passed as descriptors 3, 4, ...).
//!
//! The one idea: both are read from the environment once, at start, and the variables
//! are removed at once, so no child process (a forked worker, a CGI-like helper)
//! inherits them and mistakes itself for the service. Both are no-ops when the
//! variables are absent, so a server run by hand behaves as before.

use crate::net::{Listener, NetError};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;
/// More descriptors than any unit passes: a larger `LISTEN_FDS` is taken as garbage.
const MAX_LISTEN_FDS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SdError {
    #[error("{var}={value:?}: {why}")]
    Env {
        var: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("socket activation: fd {fd}{name}: {why}")]
    Fd {
        fd: RawFd,
        name: String,
        why: String,
    },
    #[error("socket activation: the passed socket fd {fd}{name} on {addr} matches no configured address")]
    Unmatched {
        fd: RawFd,
        name: String,
        addr: SocketAddr,
    },
    #[error(transparent)]
    Net(#[from] NetError),
}

/// The service manager's notification socket, taken from `$NOTIFY_SOCKET` at start.
/// A `Notifier` without a socket (not run by systemd) sends nothing.
#[derive(Debug, Default, Clone)]
pub struct Notifier {
    target: Option<UnixAddr>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and removes it
    /// from the environment. Call it before any thread or child process starts.
    pub fn from_env() -> Notifier {
        let Some(raw) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::default();
        };
        std::env::remove_var("NOTIFY_SOCKET");
        let target = parse_notify_socket(&raw);
        if target.is_none() {
            tracing::warn!(value = ?raw, "NOTIFY_SOCKET is neither a path nor @name: not notifying");
        }
        Notifier { target }
    }

    /// A notifier for an explicit address (for tests and embedding).
    pub fn to(addr: UnixAddr) -> Notifier {
        Notifier { target: Some(addr) }
    }

    /// Whether there is a service manager to tell.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification (`KEY=VALUE` lines). A failure is logged, never fatal: a
    /// service manager that went away must not stop the server.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else { return };
        if let Err(e) = send(target, state) {
            tracing::warn!(error = %e, state, "sd_notify: sendto(NOTIFY_SOCKET)");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` with the `CLOCK_MONOTONIC` time `Type=notify-reload` requires.
    pub fn reloading(&self, status: &str) {
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}",
            monotonic_usec(),
            one_line(status)
        ));
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// Sends `STOPPING=1` (with `status`) from a thread of its own as soon as
    /// `shutdown` is requested, so the manager knows at once that the drain began.
    /// Call [`StoppingGuard::stop`] on the returned guard once the server has
    /// stopped: it sends the message if the thread has not yet (a fast stop could
    /// otherwise exit first), never twice. Nothing starts when there is no manager.
    pub fn stopping_when(
        &self,
        shutdown: &crate::signals::Shutdown,
        status: &str,
    ) -> StoppingGuard {
        let guard = StoppingGuard {
            notifier: self.clone(),
            status: status.to_string(),
            sent: std::sync::Arc::new(std::sync::Mutex::new(false)),
        };
        if !self.enabled() {
            return guard;
        }
        let (me, shutdown) = (guard.clone(), shutdown.clone());
        let spawned = std::thread::Builder::new()
            .name("sd-notify".into())
            .spawn(move || {
                use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                loop {
                    let mut fds = [PollFd::new(shutdown.fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(n) if n > 0 => break,
                        Ok(_) | Err(nix::Error::EINTR) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "sd_notify: poll on the stop request");
                            return;
                        }
                    }
                }
                me.send_once();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "sd_notify: spawning the STOPPING=1 thread");
        }
        guard
    }

    /// A `STATUS=` line alone.
    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }
}

/// Sends `STOPPING=1` once: from the thread that sees the stop request, or from
/// [`StoppingGuard::stop`].
#[derive(Debug, Clone)]
pub struct StoppingGuard {
    notifier: Notifier,
    status: String,
    sent: std::sync::Arc<std::sync::Mutex<bool>>,
}

impl StoppingGuard {
    fn send_once(&self) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if !*sent {
            *sent = true;
            self.notifier.stopping(&self.status);
        }
    }

    /// Sends `STOPPING=1` now unless it was sent already.
    pub fn stop(self) {
        self.send_once();
    }
}

/// A status must stay one line: a newline would start another assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn parse_notify_socket(raw: &std::ffi::OsStr) -> Option<UnixAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_bytes();
    match bytes.first()? {
        b'@' => UnixAddr::from_abstract_name(&bytes[1..]).ok(),
        b'/' => UnixAddr::from_pathname(std::path::Path::new(raw)).ok(),
        _ => None,
    }
}

fn send(target: &UnixAddr, state: &str) -> io::Result<()> {
    // An unbound datagram socket per message: notifications are rare (start, reload,
    // stop), and nothing is kept open for a child to inherit.
    let sock = UnixDatagram::unbound()?;
    let n = sock.send_to_addr(state.as_bytes(), target)?;
    if n != state.len() {
        return Err(io::Error::other(format!(
            "short datagram: {n} of {} bytes",
            state.len()
        )));
    }
    Ok(())
}

/// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC=` wants it.
pub fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000,
        Err(_) => 0,
    }
}

/// One socket passed by the service manager.
#[derive(Debug)]
pub struct Passed {
    pub fd: RawFd,
    /// Its `LISTEN_FDNAMES` entry (`FileDescriptorName=`; systemd's default is the
    /// socket unit's name).
    pub name: Option<String>,
    pub listener: Listener,
}

/// Takes the sockets systemd passed to this process: `LISTEN_PID` must be our pid and
/// `LISTEN_FDS` their count. Each must be a listening stream socket; each is made
/// close-on-exec and non-blocking. The `LISTEN_*` variables are removed, so a second
/// call (or a child) finds nothing. Empty when the process was not socket-activated.
pub fn listen_fds() -> Result<Vec<Passed>, SdError> {
    let (Some(pid), Some(fds)) = (
        std::env::var_os("LISTEN_PID"),
        std::env::var_os("LISTEN_FDS"),
    ) else {
        return Ok(Vec::new());
    };
    let names = std::env::var_os("LISTEN_FDNAMES");
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let pid = pid.to_string_lossy().into_owned();
    let fds = fds.to_string_lossy().into_owned();
    let for_us: u32 = pid.trim().parse().map_err(|_| SdError::Env {
        var: "LISTEN_PID",
        value: pid.clone(),
        why: "not a process id",
    })?;
    if for_us != std::process::id() {
        // Meant for another process (a parent that did not clear them): not ours.
        return Ok(Vec::new());
    }
    let count: usize = fds.trim().parse().map_err(|_| SdError::Env {
        var: "LISTEN_FDS",
        value: fds.clone(),
        why: "not a count",
    })?;
    if count > MAX_LISTEN_FDS {
        return Err(SdError::Env {
            var: "LISTEN_FDS",
            value: fds,
            why: "more descriptors than any unit passes",
        });
    }
    let names: Vec<Option<String>> = match names {
        Some(n) => n
            .to_string_lossy()
            .split(':')
            .map(|s| Some(s.to_string()).filter(|s| !s.is_empty()))
            .collect(),
        None => Vec::new(),
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let fd = LISTEN_FDS_START + i as RawFd;
        let name = names.get(i).cloned().flatten();
        let bad = |why: String| SdError::Fd {
            fd,
            name: label(&name),
            why,
        };
        // SAFETY: fcntl(F_GETFD) only asks whether `fd` is open; it touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(bad(format!("not open: {}", io::Error::last_os_error())));
        }
        // SAFETY: the descriptor is open (checked above) and stays open while borrowed:
        // nothing closes it before it is owned below.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        check_listening_stream(borrowed).map_err(bad)?;
        // SAFETY: socket activation hands descriptors 3..3+LISTEN_FDS to this process
        // and nothing else in it refers to them: owning them here is the only use.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        set_cloexec(&owned).map_err(|e| bad(format!("fcntl(F_SETFD, FD_CLOEXEC): {e}")))?;
        let listener = Listener::from_fd(owned)?;
        out.push(Passed { fd, name, listener });
    }
    Ok(out)
}

fn label(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" ({n})"),
        None => String::new(),
    }
}

fn check_listening_stream(fd: BorrowedFd<'_>) -> Result<(), String> {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    match getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(other) => return Err(format!("a {other:?} socket, not a stream socket")),
        Err(e) => return Err(format!("getsockopt(SO_TYPE): {e}")),
    }
    match getsockopt(&fd, sockopt::AcceptConn) {
        Ok(true) => Ok(()),
        Ok(false) => Err("not listening (SO_ACCEPTCONN is off; Accept=no is needed)".into()),
        Err(e) => Err(format!("getsockopt(SO_ACCEPTCONN): {e}")),
    }
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain fcntl on a descriptor we own.
    let res = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    if res == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pairs passed sockets with configured addresses. Returns, per configured address in
/// order, the passed socket that serves it (`None`: bind it as usual).
///
/// Matching, in this order:
/// 1. a `LISTEN_FDNAMES` entry that is a port number (`FileDescriptorName=443`) takes
///    the configured address with that port (`:` separates the names, so an address
///    cannot be one); a port name that no configured address (or more than one) has
///    is an error;
/// 2. a socket whose bound address (`getsockname`) equals a configured address takes it;
/// 3. the remaining sockets take the remaining configured addresses in order (the
///    socket unit owns the address; the configuration says what is served on it).
///
/// A passed socket left over is an error naming it: it would be held and never served.
pub fn assign(
    configured: &[SocketAddr],
    passed: Vec<Passed>,
) -> Result<Vec<Option<Listener>>, SdError> {
    let mut out: Vec<Option<Listener>> = configured.iter().map(|_| None).collect();
    let mut rest = Vec::new();
    for p in passed {
        let by_name = p.name.as_deref().and_then(|n| n.parse::<u16>().ok());
        if let Some(port) = by_name {
            let mut with_port = configured
                .iter()
                .enumerate()
                .filter(|(_, a)| a.port() == port);
            match (with_port.next(), with_port.next()) {
                (Some((i, _)), None) if out[i].is_none() => out[i] = Some(p.listener),
                _ => {
                    return Err(SdError::Unmatched {
                        fd: p.fd,
                        name: label(&p.name),
                        addr: p.listener.local_addr(),
                    })
                }
            }
            continue;
        }
        rest.push(p);
    }
    let mut left = Vec::new();
    for p in rest {
        let addr = p.listener.local_addr();
        match configured.iter().position(|a| *a == addr) {
            Some(i) if out[i].is_none() => out[i] = Some(p.listener),
            _ => left.push(p),
        }
    }
    for p in left {
        match out.iter().position(Option::is_none) {
            Some(i) => out[i] = Some(p.listener),
            None => {
                return Err(SdError::Unmatched {
                    fd: p.fd,
                    name: label(&p.name),
                    addr: p.listener.local_addr(),
                })
            }
        }
    }
    Ok(out)
}

/// The listeners for `configured`: the sockets `passed` (from [`listen_fds`], taken
/// before any thread starts, since it edits the environment; matched by [`assign`])
/// where systemd passed one, `bind(addr)` for the others.
pub fn listeners(
    passed: Vec<Passed>,
    configured: &[SocketAddr],
    mut bind: impl FnMut(SocketAddr) -> Result<Listener, NetError>,
) -> Result<Vec<Listener>, SdError> {
    let activated = !passed.is_empty();
    let assigned = assign(configured, passed)?;
    let mut out = Vec::with_capacity(configured.len());
    for (addr, got) in configured.iter().zip(assigned) {
        match got {
            Some(l) => {
                tracing::info!(configured = %addr, addr = %l.local_addr(), "serving a socket passed by the service manager");
                out.push(l);
            }
            None => {
                if activated {
                    tracing::info!(%addr, "no socket passed for this address: binding it");
                }
                out.push(bind(*addr)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ListenOptions;

    fn passed(fd: RawFd, name: Option<&str>) -> Passed {
        Passed {
            fd,
            name: name.map(str::to_string),
            listener: Listener::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default())
                .unwrap(),
        }
    }

    #[test]
    fn assign_by_name_then_address_then_order() {
        let a = passed(3, Some("web"));
        let b = passed(4, None);
        let b_addr = b.listener.local_addr();
        let c = passed(5, Some("9"));
        let c_addr = c.listener.local_addr();
        let a_addr = a.listener.local_addr();
        let configured: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            b_addr,
            "127.0.0.2:9".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let got = assign(&configured, vec![a, b, c]).unwrap();
        let addrs: Vec<Option<SocketAddr>> = got
            .iter()
            .map(|l| l.as_ref().map(Listener::local_addr))
            .collect();
        assert_eq!(addrs, vec![Some(a_addr), Some(b_addr), Some(c_addr), None]);
    }

    #[test]
    fn a_leftover_socket_is_an_error_naming_it() {
        let configured: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap()];
        let err = assign(&configured, vec![passed(3, None), passed(4, Some("extra"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fd 4") && err.contains("extra"), "{err}");
        let err = assign(&configured, vec![passed(3, Some("7"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fd 3") && err.contains("(7)"), "{err}");
    }

    #[test]
    fn notify_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("sd-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(UnixAddr::from_pathname(&path).unwrap());
        n.reloading("a\nb");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..len]).unwrap();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines[0], "RELOADING=1");
        let usec: u64 = lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0 && usec <= monotonic_usec());
        assert_eq!(lines[2], "STATUS=a b");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn notify_socket_forms() {
        use std::ffi::OsStr;
        assert!(parse_notify_socket(OsStr::new("@abstract")).is_some());
        assert!(parse_notify_socket(OsStr::new("/run/systemd/notify")).is_some());
        assert!(parse_notify_socket(OsStr::new("relative")).is_none());
        assert!(parse_notify_socket(OsStr::new("")).is_none());
    }

    #[test]
    fn notify_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("sysnet-sd-test-{}", std::process::id());
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let target = parse_notify_socket(std::ffi::OsStr::new(&format!("@{name}"))).unwrap();
        Notifier::to(target).ready("up");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
    }

    #[test]
    fn only_listening_stream_sockets_are_taken() {
        use std::os::fd::AsFd;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = check_listening_stream(udp.as_fd()).unwrap_err();
        assert!(err.contains("not a stream socket"), "{err}");
        // A connected (not listening) stream socket.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let err = check_listening_stream(c.as_fd()).unwrap_err();
        assert!(err.contains("SO_ACCEPTCONN"), "{err}");
        assert!(check_listening_stream(l.as_fd()).is_ok());
    }
}
