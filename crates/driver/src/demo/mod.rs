//! The demo drivers: each shows the top-half/bottom-half split on one of
//! irq-sim's device models, and exposes its counters for reports.

pub mod block;
pub mod gpio;
pub mod nic;
pub mod tick;
pub mod uart;

use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;
use irq_sim::clock::{self, Timestamp};

/// Maximum end-to-end latency recorded exactly; longer ones are recorded
/// as this many nanoseconds (10 s).
const END_TO_END_MAX_NS: u64 = 10_000_000_000;

/// End-to-end latency of a driver: from the moment a device raised its
/// line for an event (a packet landing, a request completing) to the
/// moment the bottom half took the event, in nanoseconds.
///
/// Bottom halves record into it under a short mutex; a top half never
/// does. Clones share the histogram.
#[derive(Clone, Debug)]
pub struct EndToEnd {
    histogram: Arc<Mutex<Histogram<u64>>>,
}

impl Default for EndToEnd {
    fn default() -> Self {
        Self::new()
    }
}

impl EndToEnd {
    /// Makes an empty histogram (3 significant digits, up to 10 s).
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, END_TO_END_MAX_NS, 3)
            .expect("histogram bounds are valid constants");
        Self {
            histogram: Arc::new(Mutex::new(histogram)),
        }
    }

    /// Records the latency of each event raised at one of `raised`, as of
    /// now.
    ///
    /// # Context
    ///
    /// Task context (a bottom half): takes the histogram's mutex.
    pub fn record(&self, raised: impl IntoIterator<Item = Timestamp>) {
        let now = clock::now();
        let mut histogram = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for at in raised {
            let latency = clock::duration_nanos(now.saturating_since(at));
            histogram.saturating_record(latency.max(1));
        }
    }

    /// Returns a copy of the histogram.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
