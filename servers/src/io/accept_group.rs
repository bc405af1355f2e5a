//! How the event loops of one process share the connections of one listening socket.
//!
//! The one idea: fill the first loop, then spill. The first loop of the group (the
//! leader) always watches the listeners; the others watch them only while the leader
//! is saturated, that is while it spent most of its last tick doing work rather than
//! waiting for it. Then every loop waits on the socket with `EPOLLEXCLUSIVE` and the
//! kernel hands each new connection to one waiting loop.
//!
//! Why not always share: a connection stays on the loop that accepted it, and a loop
//! costs a thread that needs a core. With a lightly loaded leader, a second busy loop
//! adds no throughput, only a second runnable thread that competes with everything
//! else on the machine for a core; a request that lands on it waits for a scheduler
//! slice. The leader measures its own load (time outside `epoll_wait` over a tick),
//! so the followers join in exactly when one loop is no longer enough: under a stream
//! of short connections, or when many long ones arrive at a busy server.
//!
//! Like any accept-time policy, it places connections, never moves them: keep-alive
//! connections accepted while the leader was idle stay on it when they all turn busy.

use super::event_loop::LoopHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The leader counts as saturated from this share of a tick spent working...
const SPILL_ON: f64 = 0.8;
/// ...and as having room again below this one.
const SPILL_OFF: f64 = 0.5;
/// A load window shorter than this says nothing (a tick taken right after another).
const MIN_WINDOW: Duration = Duration::from_millis(50);

/// The loops of one process that share listening sockets.
#[derive(Debug, Default)]
pub struct AcceptGroup {
    /// Followers accept too (the leader is saturated, or gone).
    spill: AtomicBool,
    /// The leader has left (stopped, or its thread died): followers accept for good.
    orphaned: AtomicBool,
    /// Each member's wake handle, in joining order; the first is the leader.
    members: Mutex<Vec<LoopHandle>>,
}

impl AcceptGroup {
    pub fn new() -> Arc<AcceptGroup> {
        Arc::new(AcceptGroup::default())
    }

    /// Whether the followers accept right now.
    pub fn spilling(&self) -> bool {
        self.spill.load(Ordering::Relaxed) || self.orphaned.load(Ordering::Relaxed)
    }

    /// Adds a loop (identified by its wake handle); the first to join leads.
    pub(crate) fn join(self: &Arc<Self>, handle: LoopHandle) -> Member {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let index = members.len();
        members.push(handle);
        Member {
            group: self.clone(),
            leader: index == 0,
            window_start: Instant::now(),
            waited: Duration::ZERO,
        }
    }

    pub(crate) fn set_spill(&self, on: bool) {
        if self.spill.swap(on, Ordering::Relaxed) != on {
            tracing::debug!(spill = on, "accept group");
            if on {
                self.wake_followers();
            }
        }
    }

    /// Followers may sleep in `epoll_wait` for a whole tick; wake them to start
    /// watching the listeners now.
    fn wake_followers(&self) {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        for m in members.iter().skip(1) {
            m.wake();
        }
    }
}

/// One loop's place in an [`AcceptGroup`], kept by the loop itself.
#[derive(Debug)]
pub(crate) struct Member {
    group: Arc<AcceptGroup>,
    leader: bool,
    window_start: Instant,
    waited: Duration,
}

impl Member {
    /// Whether this loop should watch the listeners now.
    pub(crate) fn admits(&self) -> bool {
        self.leader || self.group.spilling()
    }

    /// The loop spent `d` waiting for events (only the leader's load is measured).
    pub(crate) fn waited(&mut self, d: Duration) {
        if self.leader {
            self.waited += d;
        }
    }

    /// Once per tick: the leader turns its load since the last tick into the
    /// group's spill flag, with hysteresis so a load near one threshold does not
    /// flap.
    pub(crate) fn tick(&mut self, now: Instant) {
        if !self.leader {
            return;
        }
        let window = now.saturating_duration_since(self.window_start);
        if window < MIN_WINDOW {
            return;
        }
        let busy = 1.0 - self.waited.as_secs_f64() / window.as_secs_f64();
        if busy >= SPILL_ON {
            self.group.set_spill(true);
        } else if busy < SPILL_OFF {
            self.group.set_spill(false);
        }
        self.window_start = now;
        self.waited = Duration::ZERO;
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // A leader that stops (or whose thread unwinds) must not leave the
        // listeners unwatched while followers still run.
        if self.leader {
            self.group.orphaned.store(true, Ordering::Relaxed);
            self.group.wake_followers();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_load_sets_and_clears_spill_with_hysteresis() {
        let g = AcceptGroup::new();
        let mut leader = g.join(LoopHandle::unattached());
        let follower = g.join(LoopHandle::unattached());
        assert!(leader.admits());
        assert!(!follower.admits());
        let t0 = leader.window_start;
        // 90% busy: spill.
        leader.waited(Duration::from_millis(25));
        leader.tick(t0 + Duration::from_millis(250));
        assert!(follower.admits());
        // 60% busy: between the thresholds, no change.
        leader.waited(Duration::from_millis(100));
        leader.tick(t0 + Duration::from_millis(500));
        assert!(follower.admits());
        // 20% busy: room again.
        leader.waited(Duration::from_millis(200));
        leader.tick(t0 + Duration::from_millis(750));
        assert!(!follower.admits());
        // A leader that goes away hands the listeners to everyone.
        drop(leader);
        assert!(follower.admits());
    }
}
