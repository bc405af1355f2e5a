//! A fixed pool of worker threads fed by a bounded queue (`Mutex` + `Condvar`).
//!
//! The main thread only accepts and queues; each worker pops a connection and serves
//! it until the client leaves, so at most `--workers` clients are served at once. A
//! client that has to wait is told its place in the queue (the protocol's
//! [`Protocol::queued`] line). When the queue is full the newcomer is shed at once
//! with the protocol's refusal line rather than blocking the acceptor: a blocked
//! acceptor would leave every later client hanging in the kernel backlog with no word.
//! This limit, a long-lived chat client holding a worker for as long as it stays, is
//! why the event-loop models exist.

use super::threaded::{accept_loop, lock, refuse, Hub};
use super::{IoError, Options, Stats};
use crate::net::{self, Listener};
use crate::proto::Protocol;
use crate::signals::Shutdown;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(OwnedFd, SocketAddr)>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

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
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
    });
    let mut workers = Vec::with_capacity(opts.workers);
    for i in 0..opts.workers.max(1) {
        let (h, sh) = (hub.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || worker(&h, &sh));
        match spawned {
            Ok(t) => workers.push(t),
            Err(e) => {
                close_queue(&shared);
                for t in workers {
                    let _ = t.join();
                }
                return Err(IoError::Spawn(e));
            }
        }
    }
    tracing::info!(
        workers = workers.len(),
        queue_len = opts.queue_len,
        "worker pool started"
    );

    let max = opts.limits.max_clients;
    let n_workers = workers.len();
    let queue_len = opts.queue_len.max(1);
    let res = accept_loop(
        &listeners,
        &hub,
        |fd, peer| {
            let mut q = lock(&shared.queue);
            let served = hub.stats.active.load(Ordering::Relaxed) as usize;
            if served + q.waiting.len() >= max {
                drop(q);
                refuse(&hub, fd, peer, "server full");
                return;
            }
            if q.waiting.len() >= queue_len {
                drop(q);
                refuse(&hub, fd, peer, "worker queue full");
                return;
            }
            // Its place among the clients no free worker will pick up at once. `active`
            // rises under this lock when a worker pops, so waiting + active is exact.
            let free = n_workers.saturating_sub(served);
            let position = (q.waiting.len() + 1).saturating_sub(free);
            if position > 0 {
                let msg = hub.queued(position);
                net::send_once(fd.as_fd(), &msg);
                tracing::debug!(%peer, position, "all workers busy; client queued");
            }
            q.waiting.push_back((fd, peer));
            drop(q);
            shared.ready.notify_one();
        },
        || {},
    );
    drop(listeners);
    close_queue(&shared);
    for t in workers {
        let _ = t.join();
    }
    res
}

fn close_queue(shared: &Shared) {
    let mut q = lock(&shared.queue);
    q.closed = true;
    // Clients still waiting were never opened: closing their sockets is all there is.
    q.waiting.clear();
    drop(q);
    shared.ready.notify_all();
}

fn worker<P: Protocol>(hub: &Hub<P>, shared: &Shared) {
    loop {
        let job = {
            let mut q = lock(&shared.queue);
            loop {
                if q.closed {
                    break None;
                }
                if let Some(job) = q.waiting.pop_front() {
                    // Counted under the queue lock so the acceptor's limit check
                    // never sees a client in neither place.
                    Stats::add(&hub.stats.active, 1);
                    break Some(job);
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some((fd, peer)) = job else {
            return;
        };
        hub.serve_conn(fd, peer);
        Stats::sub(&hub.stats.active, 1);
    }
}
