//! sysnet's servers: a socket core, five concurrency models, and the servers built on
//! them (chat, echo, httpd, capstone, kvd, tlschat, proxy, btree).
//!
//! The crate is cut along one seam: [`proto`] holds protocols as pure state machines
//! (bytes in, actions out), [`io`] holds the concurrency models that own sockets and
//! readiness and never know what the bytes mean, and [`net`] holds what every model
//! shares: listeners and the one write path.

pub mod capstone;
pub mod cli;
pub mod io;
pub mod kv;
pub mod log;
pub mod net;
pub mod privs;
pub mod proto;
pub mod rotate;
pub mod sd;
pub mod signals;
pub mod store;
pub mod sysnet_dev;
pub mod tls;
pub mod upstream;
