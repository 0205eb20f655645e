//! Per-queue statistics: counters kept with atomics, and a snapshot type.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Counters of one queue that are bumped without the pool lock. All
/// `Relaxed`: each is an independent tally read only for reports.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    coalesced: AtomicU64,
    rejected_disabled: AtomicU64,
    panicked: AtomicU64,
    hogged: AtomicU64,
}

impl Counters {
    pub(crate) fn count_coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_rejected_disabled(&self) {
        self.rejected_disabled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_panicked(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a run that held a runtime thread too long; returns the count.
    pub(crate) fn count_hogged(&self) -> u64 {
        self.hogged.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn hogged(&self) -> u64 {
        self.hogged.load(Ordering::Relaxed)
    }

    pub(crate) fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    pub(crate) fn rejected_disabled(&self) -> u64 {
        self.rejected_disabled.load(Ordering::Relaxed)
    }

    pub(crate) fn panicked(&self) -> u64 {
        self.panicked.load(Ordering::Relaxed)
    }
}

/// Counters of one queue that change only under the pool lock, where plain
/// integers cost nothing extra.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tallies {
    pub(crate) queued: u64,
    pub(crate) modified: u64,
    pub(crate) executed: u64,
    pub(crate) cancelled: u64,
    pub(crate) max_in_flight: u64,
}

/// A snapshot of one queue's statistics, from [`Workqueue::stats`].
///
/// Every queueing that returned true is counted once in `queued` and ends
/// in exactly one of `executed` (the run started) or `cancelled`; until then
/// it is `pending`, `delayed` or, once started, `in_flight`. So after the
/// queue is idle, `queued == executed + cancelled`.
///
/// [`Workqueue::stats`]: crate::Workqueue::stats
#[derive(Clone, Debug)]
pub struct WorkqueueStats {
    /// Queue name.
    pub name: String,
    /// New pending periods: queueings of an idle item that returned true.
    /// A `mod_delayed_work` that moves a pending item is not one.
    pub queued: u64,
    /// Queueings that returned false because the item was already pending.
    pub coalesced: u64,
    /// `mod_delayed_work` calls that gave a pending item a new deadline
    /// on this queue. They return true but start no pending period, so
    /// they add nothing to `queued`. A move from another queue carries the
    /// period over, from that queue's `queued` to this one's. A debounce
    /// that pushes its deadline back shows here.
    pub modified: u64,
    /// Queueings that returned false because the item was disabled.
    pub rejected_disabled: u64,
    /// Runs started.
    pub executed: u64,
    /// Pending periods ended by a cancel before their run started.
    pub cancelled: u64,
    /// Runs whose work function panicked (also counted in `executed`).
    pub panicked: u64,
    /// Runs of a synchronous work function that kept a runtime thread over
    /// [`HOG_THRESHOLD`](crate::HOG_THRESHOLD) without handing it over.
    /// Each such run belongs on a `CPU_INTENSIVE` queue.
    pub hogged: u64,
    /// Runs in progress now.
    pub in_flight: u64,
    /// Maximum number of runs in progress at once since the queue was
    /// created.
    pub max_in_flight: u64,
    /// Items on the worklist now, waiting to start.
    pub pending: u64,
    /// Items on the timer list now, waiting for their delay.
    pub delayed: u64,
    /// Worker tasks alive now.
    pub workers: u64,
    /// Worker tasks asleep now, waiting for work; queueing wakes one.
    pub idle_workers: u64,
    /// Queue-to-start latency of every run, nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Run time of every finished run, nanoseconds.
    pub run_time_ns: Histogram<u64>,
}
