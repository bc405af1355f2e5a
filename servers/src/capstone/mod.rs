//! The capstone: a production-style web server built from the socket core's epoll
//! loop and httpd's HTTP protocol, run under an nginx-style master and workers.
//!
//! The one idea: the master is single-threaded and only binds, forks, reaps and
//! relays signals; everything that serves runs in forked workers, each a set of
//! event-loop threads that share nothing but the listening sockets and a
//! shared-memory counter board where every loop owns one slot.

pub mod bundled;
pub mod config;
pub mod logging;
pub mod master;
pub mod metrics;
pub mod pidfile;
pub mod redirect;
pub mod sink;
pub mod site;
pub mod sockets;
pub mod state;
pub mod status;
pub mod worker;
