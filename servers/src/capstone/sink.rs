//! Where the master sends the counter totals once a second and at shutdown: the
//! kernel's `/dev/sysnet` (or `$SYSNET_DEVICE`), when it is there.
//!
//! The one idea: the master owns the only sink. It sums the shared board, and
//! `DeviceSink` turns totals into deltas, so worker restarts and reloads never
//! double-count or lose a request on the device.

use super::status::Snapshot;
use crate::sysnet_dev::DeviceSink;

/// Counter names on the device are `capstone.<name>` (`capstone.requests_total`, ...).
const PREFIX: &str = "capstone";

pub struct CounterSink {
    device: Option<DeviceSink>,
    failing: bool,
}

impl CounterSink {
    /// Opens the device if present (the absence is logged once by `DeviceSink`).
    pub fn open() -> CounterSink {
        CounterSink {
            device: DeviceSink::open(PREFIX),
            failing: false,
        }
    }

    pub fn push(&mut self, now: &Snapshot) {
        let Some(device) = &mut self.device else {
            return;
        };
        match device.push(&now.pairs()) {
            Ok(()) => self.failing = false,
            Err(e) => {
                // Once per failure streak: the device is not worth an error a second.
                if !self.failing {
                    tracing::warn!(error = %e, path = %device.path().display(), "counters device write failed");
                }
                self.failing = true;
            }
        }
    }
}
