//! One thread per client: the simplest model, and the most expensive per connection
//! (a stack and a kernel thread each). The main thread only accepts.

use super::threaded::{accept_loop, refuse, Hub};
use super::{IoError, Options, Stats};
use crate::net::Listener;
use crate::proto::Protocol;
use crate::signals::Shutdown;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Smaller than the 2 MiB default (thousands of clients means thousands of stacks of
/// address space) but roomy enough for any protocol's call depth, TLS handshakes
/// included; only the pages a thread touches become resident.
const STACK: usize = 1024 * 1024;

pub fn serve<P>(
    listeners: Vec<Listener>,
    proto: P,
    opts: &Options,
    stats: Arc<Stats>,
    shutdown: &Shutdown,
) -> Result<(), IoError>
where
    P: Protocol + Send + 'static,
    P::Conn: Send,
{
    let hub = Arc::new(Hub::new(
        proto,
        opts.limits.clone(),
        stats,
        shutdown.clone(),
        opts.drain_grace,
    ));
    // Finished threads are joined as we go so their stacks are given back.
    let threads: RefCell<Vec<JoinHandle<()>>> = RefCell::new(Vec::new());
    let reap = || {
        let mut ts = threads.borrow_mut();
        let mut i = 0;
        while i < ts.len() {
            if ts[i].is_finished() {
                let _ = ts.swap_remove(i).join();
            } else {
                i += 1;
            }
        }
    };
    let max = opts.limits.max_clients as u64;
    let res = accept_loop(
        &listeners,
        &hub,
        |fd, peer| {
            if hub.stats.active.load(Ordering::Relaxed) >= max {
                refuse(&hub, fd, peer, "server full");
                return;
            }
            Stats::add(&hub.stats.active, 1);
            let h = hub.clone();
            let spawned = std::thread::Builder::new()
                .name("conn".into())
                .stack_size(STACK)
                .spawn(move || {
                    h.serve_conn(fd, peer);
                    Stats::sub(&h.stats.active, 1);
                });
            match spawned {
                Ok(t) => threads.borrow_mut().push(t),
                Err(e) => {
                    Stats::sub(&hub.stats.active, 1);
                    Stats::add(&hub.stats.errors, 1);
                    tracing::error!(%peer, error = %e, "spawning a connection thread failed; client dropped");
                }
            }
        },
        reap,
    );
    drop(listeners);
    for t in threads.into_inner() {
        let _ = t.join();
    }
    res
}
