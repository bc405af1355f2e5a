//! Listening sockets: `SO_REUSEADDR` always, `SO_REUSEPORT` on request, IPv4 and IPv6,
//! non-blocking, and `accept4` that hands back non-blocking, close-on-exec streams.

use super::{cvt, NetError};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// How to listen: `reuse_port` lets several sockets (one per worker thread or process)
/// bind the same address and have the kernel spread connections between them.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    pub reuse_port: bool,
    pub backlog: i32,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            reuse_port: false,
            backlog: 1024,
        }
    }
}

/// A bound, listening, non-blocking TCP socket.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    local: SocketAddr,
    /// `SO_SNDBUF` to set on every accepted connection.
    sndbuf: Option<libc::c_int>,
    /// Whether each accepted connection needs its own `setsockopt(TCP_NODELAY)`:
    /// false once the listener carries it, since Linux copies it to every socket
    /// `accept` returns (one system call less per connection).
    nodelay_per_conn: bool,
}

impl Listener {
    /// Binds and listens on `addr` (port 0 picks a free port; see [`Listener::local_addr`]).
    pub fn bind(addr: SocketAddr, opts: &ListenOptions) -> Result<Listener, NetError> {
        let domain = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        // SAFETY: plain syscall with constant arguments.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        let raw = cvt(raw).map_err(|e| NetError::new("socket", addr, e))?;
        // SAFETY: `raw` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // Without SO_REUSEADDR a restarted server cannot bind while the previous
        // run's connections sit in TIME_WAIT.
        set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
            .map_err(|e| NetError::new("setsockopt(SO_REUSEADDR)", addr, e))?;
        if opts.reuse_port {
            set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
                .map_err(|e| NetError::new("setsockopt(SO_REUSEPORT)", addr, e))?;
        }
        if addr.is_ipv6() {
            // One socket per family, so `[::]:80` and `0.0.0.0:80` can both be bound.
            set_int_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)
                .map_err(|e| NetError::new("setsockopt(IPV6_V6ONLY)", addr, e))?;
        }
        let (storage, len) = to_sockaddr(&addr);
        // SAFETY: `storage` holds a sockaddr of the family matching the socket, `len`
        // is its true length, and both outlive the call.
        let res = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        cvt(res).map_err(|e| NetError::new("bind", addr, e))?;
        // SAFETY: plain syscall on a descriptor we own.
        let res = unsafe { libc::listen(fd.as_raw_fd(), opts.backlog) };
        cvt(res).map_err(|e| NetError::new("listen", addr, e))?;
        let local = local_addr(fd.as_fd()).map_err(|e| NetError::new("getsockname", addr, e))?;
        let nodelay_per_conn = !listener_nodelay(&fd, local);
        Ok(Listener {
            fd,
            local,
            sndbuf: None,
            nodelay_per_conn,
        })
    }

    /// Adopts a descriptor that is already a listening socket (inherited from a
    /// parent process, or moved with `dup2`); it is made non-blocking.
    pub fn from_fd(fd: OwnedFd) -> Result<Listener, NetError> {
        let local = local_addr(fd.as_fd())
            .map_err(|e| NetError::new("getsockname", format!("fd {}", fd.as_raw_fd()), e))?;
        // SAFETY: plain fcntl calls on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        let flags = cvt(flags).map_err(|e| NetError::new("fcntl(F_GETFL)", local, e))?;
        // SAFETY: as above.
        let res = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
        cvt(res).map_err(|e| NetError::new("fcntl(F_SETFL)", local, e))?;
        let nodelay_per_conn = !listener_nodelay(&fd, local);
        Ok(Listener {
            fd,
            local,
            sndbuf: None,
            nodelay_per_conn,
        })
    }

    /// The address actually bound (with the port the kernel picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Another descriptor for the same socket, for a second event loop that shares
    /// this listener (with `EPOLLEXCLUSIVE`) or a process that inherits it.
    pub fn try_clone(&self) -> Result<Listener, NetError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| NetError::new("dup", self.local, e))?;
        Ok(Listener {
            fd,
            local: self.local,
            sndbuf: self.sndbuf,
            nodelay_per_conn: self.nodelay_per_conn,
        })
    }

    /// Sets `SO_SNDBUF` on every connection accepted from now on (a tiny buffer
    /// makes every large reply a series of short writes). Set per connection, not on
    /// the listener: an accepted socket inherits the size but not the lock, so the
    /// kernel's autotuning would grow it again.
    pub fn set_send_buffer(&mut self, bytes: usize) {
        self.sndbuf = Some(bytes.min(i32::MAX as usize) as libc::c_int);
    }

    /// Accepts one pending connection; `Ok(None)` when none is pending.
    pub fn accept(&self) -> Result<Option<(OwnedFd, SocketAddr)>, NetError> {
        let got = accept(self.fd.as_fd()).map_err(|e| NetError::new("accept4", self.local, e))?;
        if let Some((fd, peer)) = &got {
            if self.nodelay_per_conn {
                if let Err(e) = set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1) {
                    tracing::debug!(%peer, error = %e, "setsockopt(TCP_NODELAY) failed");
                }
            }
            if let Some(n) = self.sndbuf {
                if let Err(e) = set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, n) {
                    tracing::warn!(%peer, error = %e, "setsockopt(SO_SNDBUF) failed");
                }
            }
        }
        Ok(got)
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)` on any listening socket, retrying on
/// `EINTR` and on errors that belong to the aborted connection rather than the
/// listener (`ECONNABORTED`, `EPROTO`...). `Ok(None)` when nothing is pending.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<(OwnedFd, SocketAddr)>> {
    loop {
        // SAFETY: an all-zero sockaddr_storage is a valid value of that plain C struct.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `storage` and `len` are live and writable, `len` is the buffer's size.
        let res = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        match cvt(res) {
            Ok(raw) => {
                // SAFETY: `raw` was just returned by accept4 and is owned by nobody else.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                let peer = from_sockaddr(&storage)
                    .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
                return Ok(Some((fd, peer)));
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::ECONNABORTED) | Some(libc::EPROTO) => continue,
                Some(libc::EAGAIN) => return Ok(None),
                _ => return Err(e),
            },
        }
    }
}

/// Sets `TCP_NODELAY` on a listening socket, so that every connection it accepts
/// starts with it: replies are written whole from the outbound queue, and Nagle's
/// delay would only add latency to small ones. False when the socket refuses it
/// (then each accepted connection is asked instead).
fn listener_nodelay(fd: &OwnedFd, local: SocketAddr) -> bool {
    match set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(%local, error = %e, "setsockopt(TCP_NODELAY) on the listener failed");
            false
        }
    }
}

fn set_int_opt(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: points at a live c_int and passes its exact size.
    let res = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&val as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(res).map(|_| ())
}

fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of that plain C struct.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are live and writable, `len` is the buffer's size.
    let res = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    cvt(res)?;
    from_sockaddr(&storage).ok_or_else(|| io::Error::other("getsockname: not an inet address"))
}

fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value of that plain C struct.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and suitably aligned for
            // sockaddr_in, so the cast points at valid, exclusively borrowed memory.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            (storage, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            (storage, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is
            // large enough and aligned for.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_v4_and_v6_on_port_zero() {
        let l4 = Listener::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        assert_ne!(l4.local_addr().port(), 0);
        assert!(
            l4.accept().unwrap().is_none(),
            "non-blocking accept with nothing pending"
        );
        let c = std::net::TcpStream::connect(l4.local_addr()).unwrap();
        let mut got = None;
        for _ in 0..100 {
            if let Some(x) = l4.accept().unwrap() {
                got = Some(x);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (_fd, peer) = got.expect("connection accepted");
        assert_eq!(peer, c.local_addr().unwrap());
        // ::1 may be missing in some containers; only check when it binds.
        if let Ok(l6) = Listener::bind("[::1]:0".parse().unwrap(), &ListenOptions::default()) {
            assert!(l6.local_addr().is_ipv6());
        }
    }

    #[test]
    fn accepted_connections_have_nodelay_without_a_call_of_their_own() {
        use std::os::fd::AsRawFd;
        let l = Listener::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        assert!(
            !l.nodelay_per_conn,
            "the listener itself carries TCP_NODELAY"
        );
        let _c = std::net::TcpStream::connect(l.local_addr()).unwrap();
        let mut got = None;
        for _ in 0..100 {
            if let Some(x) = l.accept().unwrap() {
                got = Some(x);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (fd, _) = got.expect("connection accepted");
        let mut on: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `on` and `len` are live and `len` is `on`'s exact size.
        let res = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut on as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(res, 0);
        assert_eq!(on, 1, "accepted socket without TCP_NODELAY");
    }

    #[test]
    fn reuse_port_lets_two_sockets_share_an_address() {
        let opts = ListenOptions {
            reuse_port: true,
            backlog: 16,
        };
        let a = Listener::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let b = Listener::bind(a.local_addr(), &opts).unwrap();
        assert_eq!(a.local_addr(), b.local_addr());
        let err = Listener::bind(a.local_addr(), &ListenOptions::default()).unwrap_err();
        assert_eq!(err.call, "bind");
        assert!(
            err.to_string().contains(&a.local_addr().to_string()),
            "{err}"
        );
    }
}
