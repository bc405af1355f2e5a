//! The listening sockets the master binds once and every worker inherits.
//!
//! The one idea: sockets outlive workers. The master holds every one for its whole
//! life and workers get copies through `fork`, so a worker that dies or drains
//! never takes a socket (and the connections queued in it) away. Two layouts:
//! `fill` and `shared` are one socket per address, watched with `EPOLLEXCLUSIVE` (by
//! the first loop of a process and, once it is saturated, by all of them; or always by
//! every loop).
//! `reuseport` is one `SO_REUSEPORT` socket per address per loop, and the kernel
//! hashes connections across them. Loop `i` of the whole server always gets the
//! i-th socket, so a replacement worker takes over exactly what its predecessor had.

use super::config::{AcceptMode, Config};
use crate::net::{ListenOptions, Listener, NetError};
use std::net::SocketAddr;

/// The accept queue per socket (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SocketsError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Sd(#[from] crate::sd::SdError),
    #[error("accept = \"reuseport\" ties one socket to each event loop: changing {what} needs a restart, not a reload")]
    Layout { what: &'static str },
}

pub struct Sockets {
    mode: AcceptMode,
    /// Event loops served (reuseport: sockets per address).
    loops: usize,
    /// Per configured address: its sockets (one, or one per loop).
    addrs: Vec<(SocketAddr, Vec<Listener>)>,
    /// The sockets the service manager passed (socket activation), kept for the
    /// master's whole life: a reload that drops an address and a later one that lists
    /// it again serve the same socket (the manager holds it open, so binding the
    /// address anew would fail).
    passed: Vec<Listener>,
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> Result<Listener, NetError> {
    let l = Listener::bind(
        addr,
        &ListenOptions {
            reuse_port,
            backlog: BACKLOG,
        },
    )?;
    nodelay(l, addr)
}

fn nodelay(l: Listener, addr: SocketAddr) -> Result<Listener, NetError> {
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux). Without it a
    // response's second write (the body after the head) waits for the client's
    // delayed ACK: 40 ms per small-file request on a keep-alive connection.
    nix::sys::socket::setsockopt(&l, nix::sys::socket::sockopt::TcpNoDelay, &true)
        .map_err(|e| NetError::new("setsockopt(TCP_NODELAY)", addr, e.into()))?;
    Ok(l)
}

fn bind_addr(addr: SocketAddr, mode: AcceptMode, loops: usize) -> Result<Vec<Listener>, NetError> {
    match mode {
        AcceptMode::Fill | AcceptMode::Shared => Ok(vec![bind_one(addr, false)?]),
        AcceptMode::ReusePort => {
            let first = bind_one(addr, true)?;
            // Port 0 picked a port: the rest of the group must join that one.
            let real = first.local_addr();
            let mut v = vec![first];
            for _ in 1..loops {
                v.push(bind_one(real, true)?);
            }
            Ok(v)
        }
    }
}

/// A socket the service manager passed, in the layout `mode` wants: reuseport adds
/// one socket per further loop on its address (the socket unit needs `ReusePort=yes`).
fn adopt_addr(passed: Listener, mode: AcceptMode, loops: usize) -> Result<Vec<Listener>, NetError> {
    let real = passed.local_addr();
    let mut v = vec![nodelay(passed, real)?];
    if mode == AcceptMode::ReusePort {
        for _ in 1..loops {
            v.push(bind_one(real, true)?);
        }
    }
    Ok(v)
}

impl Sockets {
    /// Binds every configured address, or takes the socket systemd passed for it
    /// (socket activation, see [`crate::sd::assign`]). Reloads keep either kind
    /// through [`Sockets::rebind`], as long as the address stays configured.
    pub fn bind(config: &Config) -> Result<Sockets, SocketsError> {
        let loops = config.total_loops();
        let assigned = crate::sd::assign(&config.listen, crate::sd::listen_fds()?)?;
        let mut addrs = Vec::new();
        let mut passed = Vec::new();
        for (&addr, got) in config.listen.iter().zip(assigned) {
            let socks = match got {
                Some(l) => {
                    tracing::info!(configured = %addr, addr = %l.local_addr(), "serving a socket passed by the service manager");
                    passed.push(l.try_clone()?);
                    adopt_addr(l, config.accept, loops)?
                }
                None => bind_addr(addr, config.accept, loops)?,
            };
            addrs.push((addr, socks));
        }
        Ok(Sockets {
            mode: config.accept,
            loops,
            addrs,
            passed,
        })
    }

    /// The sockets `next` needs: the ones for addresses still listed are shared with
    /// `self`, new addresses are bound. Dropping `self` afterwards closes only what
    /// `next` no longer lists (old workers keep their copies until they exit).
    pub fn rebind(&self, next: &Config) -> Result<Sockets, SocketsError> {
        if self.mode == AcceptMode::ReusePort || next.accept == AcceptMode::ReusePort {
            if next.accept != self.mode {
                return Err(SocketsError::Layout { what: "accept" });
            }
            if next.total_loops() != self.loops {
                return Err(SocketsError::Layout {
                    what: "processes × workers",
                });
            }
        }
        let loops = next.total_loops();
        let mut addrs = Vec::new();
        for &addr in &next.listen {
            let socks = match self.addrs.iter().find(|(a, _)| *a == addr) {
                Some((_, old)) => old
                    .iter()
                    .map(Listener::try_clone)
                    .collect::<Result<Vec<_>, _>>()?,
                None => match self.passed.iter().find(|l| l.local_addr() == addr) {
                    Some(held) => {
                        tracing::info!(%addr, "serving the passed socket again");
                        adopt_addr(held.try_clone()?, next.accept, loops)?
                    }
                    None => {
                        let v = bind_addr(addr, next.accept, loops)?;
                        tracing::info!(addr = %v[0].local_addr(), "listening (new in this configuration)");
                        v
                    }
                },
            };
            addrs.push((addr, socks));
        }
        let passed = self
            .passed
            .iter()
            .map(Listener::try_clone)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sockets {
            mode: next.accept,
            loops,
            addrs,
            passed,
        })
    }

    /// Whether loops share sockets (and so must register them with `EPOLLEXCLUSIVE`).
    pub fn shared(&self) -> bool {
        self.mode != AcceptMode::ReusePort
    }

    /// The bound addresses (port 0 resolved), one per configured address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.iter().map(|(_, v)| v[0].local_addr()).collect()
    }

    /// Copies of the sockets loop `index` (counted across the whole server) serves.
    pub fn for_loop(&self, index: usize) -> Result<Vec<Listener>, NetError> {
        self.addrs
            .iter()
            .map(|(_, v)| match self.mode {
                AcceptMode::Fill | AcceptMode::Shared => v[0].try_clone(),
                AcceptMode::ReusePort => v[index % v.len()].try_clone(),
            })
            .collect()
    }

    /// The sockets loops `first..first + count` serve, for a look at their queues.
    pub fn of_loops(&self, first: usize, count: usize) -> Vec<&Listener> {
        let mut out = Vec::new();
        for (_, v) in &self.addrs {
            match self.mode {
                AcceptMode::Fill | AcceptMode::Shared => out.push(&v[0]),
                AcceptMode::ReusePort => {
                    out.extend((first..first + count).map(|i| &v[i % v.len()]))
                }
            }
        }
        out
    }
}

/// One line per bound address (port 0 resolved); the TLS ones say so.
pub fn log_listening(config: &Config, sockets: &Sockets) {
    for (configured, addr) in config.listen.iter().zip(sockets.local_addrs()) {
        if config.tls.is_tls(configured) {
            tracing::info!(%addr, "listening for https");
        } else {
            tracing::info!(%addr, "listening");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: AcceptMode, processes: usize, workers: usize) -> Config {
        Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            accept: mode,
            processes,
            workers,
            ..Config::default()
        }
    }

    #[test]
    fn reuseport_binds_one_socket_per_loop_on_one_port() {
        let s = Sockets::bind(&config(AcceptMode::ReusePort, 2, 2)).unwrap();
        let port = s.local_addrs()[0].port();
        assert_ne!(port, 0);
        assert_eq!(s.of_loops(0, 4).len(), 4);
        assert!(s
            .of_loops(0, 4)
            .iter()
            .all(|l| l.local_addr().port() == port));
        assert_eq!(s.for_loop(3).unwrap().len(), 1);
        assert!(!s.shared());
        // Same layout reloads; a different number of loops is refused.
        assert!(s.rebind(&config(AcceptMode::ReusePort, 2, 2)).is_ok());
        assert!(matches!(
            s.rebind(&config(AcceptMode::ReusePort, 1, 2)),
            Err(SocketsError::Layout { .. })
        ));
        assert!(s.rebind(&config(AcceptMode::Shared, 2, 2)).is_err());
    }

    #[test]
    fn accepted_connections_inherit_nodelay() {
        let s = Sockets::bind(&config(AcceptMode::Shared, 1, 1)).unwrap();
        let _c = std::net::TcpStream::connect(s.local_addrs()[0]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (fd, _) = s.of_loops(0, 1)[0].accept().unwrap().unwrap();
        let on = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::TcpNoDelay).unwrap();
        assert!(on, "accepted socket without TCP_NODELAY");
    }

    #[test]
    fn shared_keeps_the_socket_across_rebind() {
        use std::os::fd::AsRawFd;
        let s = Sockets::bind(&config(AcceptMode::Shared, 1, 3)).unwrap();
        assert!(s.shared());
        assert_eq!(s.of_loops(0, 3).len(), 1);
        let next = s.rebind(&config(AcceptMode::Shared, 3, 1)).unwrap();
        assert_eq!(next.local_addrs(), s.local_addrs());
        // Same socket (a dup), not a new bind: getsockname agrees and both accept.
        let a = s.of_loops(0, 1)[0].as_raw_fd();
        let b = next.of_loops(0, 1)[0].as_raw_fd();
        assert_ne!(a, b);
        let _c = std::net::TcpStream::connect(s.local_addrs()[0]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(next.of_loops(0, 1)[0].accept().unwrap().is_some());
    }
}
