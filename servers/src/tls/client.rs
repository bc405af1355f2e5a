//! The interactive side of tlschat: standard input to the server, the server to
//! standard output, over a verified TLS 1.3 session.
//!
//! One thread and one `poll(2)` over the terminal and the socket: rustls is a plain
//! state machine too, so the client needs no second thread to read while it writes.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("resolve {addr}: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("connect {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("TLS with {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: rustls::Error,
    },
    #[error("{call} with {addr}: {source}")]
    Io {
        call: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A verified session, ready to chat.
pub struct Session {
    addr: SocketAddr,
    sock: TcpStream,
    tls: ClientConnection,
}

impl Session {
    /// Connects and completes the handshake; a certificate the trust settings
    /// refuse ends here with the reason.
    pub fn connect(
        addr: &str,
        server_name: Option<&str>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let resolved = addr
            .to_socket_addrs()
            .and_then(|mut it| {
                it.next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            })
            .map_err(|source| ClientError::Resolve {
                addr: addr.to_string(),
                source,
            })?;
        let name = match server_name {
            Some(n) => ServerName::try_from(n.to_string())
                .map_err(|_| ClientError::ServerName(n.to_string()))?,
            None => ServerName::IpAddress(resolved.ip().into()),
        };
        let mut sock = TcpStream::connect(resolved).map_err(|source| ClientError::Connect {
            addr: resolved,
            source,
        })?;
        let mut tls =
            ClientConnection::new(Arc::new(config), name).map_err(|source| ClientError::Tls {
                addr: resolved,
                source,
            })?;
        while tls.is_handshaking() {
            if let Err(e) = tls.complete_io(&mut sock) {
                return Err(unwrap_tls_error(resolved, e));
            }
        }
        Ok(Self {
            addr: resolved,
            sock,
            tls,
        })
    }

    pub fn peer_fingerprint(&self) -> Option<String> {
        self.tls
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| crate::tls::fingerprint(c.as_ref()))
    }

    /// Relays `input` to the server and the server to `output` until either ends.
    pub fn relay(
        mut self,
        input: &mut impl InputFd,
        output: &mut impl Write,
    ) -> Result<(), ClientError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let addr = self.addr;
        let io_err = |call: &'static str| move |source| ClientError::Io { call, addr, source };
        let mut buf = vec![0u8; 16 * 1024];
        let mut input_open = true;
        loop {
            self.flush()?;
            let (sock_ready, input_ready) = {
                let sock_fd = self.sock.as_fd();
                let in_fd = input.fd();
                let mut fds = vec![PollFd::new(sock_fd, PollFlags::POLLIN)];
                if input_open {
                    fds.push(PollFd::new(in_fd, PollFlags::POLLIN));
                }
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io_err("poll")(e.into())),
                }
                let ready = |f: &PollFd| {
                    f.revents().is_some_and(|r| {
                        r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                    })
                };
                (ready(&fds[0]), fds.get(1).is_some_and(ready))
            };
            if input_ready {
                let n = input.read(&mut buf).map_err(io_err("read stdin"))?;
                if n == 0 {
                    input_open = false;
                    self.tls.send_close_notify();
                    self.flush()?;
                    let _ = self.sock.shutdown(std::net::Shutdown::Write);
                } else {
                    self.tls
                        .writer()
                        .write_all(&buf[..n])
                        .map_err(io_err("encrypt"))?;
                }
            }
            if sock_ready {
                let n = self.tls.read_tls(&mut self.sock).map_err(io_err("read"))?;
                self.tls
                    .process_new_packets()
                    .map_err(|source| ClientError::Tls { addr, source })?;
                loop {
                    match self.tls.reader().read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(m) => {
                            output
                                .write_all(&buf[..m])
                                .map_err(io_err("write stdout"))?;
                            output.flush().map_err(io_err("write stdout"))?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(io_err("decrypt")(e)),
                    }
                }
                if n == 0 {
                    // The server closed the connection without a close_notify.
                    return Ok(());
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        let addr = self.addr;
        while self.tls.wants_write() {
            self.tls
                .write_tls(&mut self.sock)
                .map_err(|source| ClientError::Io {
                    call: "write",
                    addr,
                    source,
                })?;
        }
        Ok(())
    }
}

/// Standard input, or anything readable with a descriptor to poll.
pub trait InputFd: Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl InputFd for io::Stdin {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

fn unwrap_tls_error(addr: SocketAddr, e: io::Error) -> ClientError {
    // rustls reports its own errors wrapped in io::ErrorKind::InvalidData.
    if e.kind() == io::ErrorKind::InvalidData {
        if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return ClientError::Tls {
                addr,
                source: inner.clone(),
            };
        }
    }
    ClientError::Io {
        call: "handshake",
        addr,
        source: e,
    }
}
