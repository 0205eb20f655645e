//! Per-queue statistics: counters kept with atomics, and a snapshot type.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Counters of one queue. All `Relaxed`: each is an independent tally read
/// only for reports, and orders no other memory.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    queued: AtomicU64,
    coalesced: AtomicU64,
    rejected_disabled: AtomicU64,
    executed: AtomicU64,
    cancelled: AtomicU64,
    panicked: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Counters {
    pub(crate) fn count_queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back a `count_queued` for a move between lists that is not a
    /// new queueing.
    pub(crate) fn uncount_queued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn count_coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_rejected_disabled(&self) {
        self.rejected_disabled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_panicked(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a run that started; `running` is the number running now.
    pub(crate) fn count_started(&self, running: usize) {
        self.executed.fetch_add(1, Ordering::Relaxed);
        let running = running as u64;
        self.in_flight.store(running, Ordering::Relaxed);
        self.max_in_flight.fetch_max(running, Ordering::Relaxed);
    }

    /// Notes a run that finished; `running` is the number still running.
    pub(crate) fn count_finished(&self, running: usize) {
        self.in_flight.store(running as u64, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> CounterValues {
        CounterValues {
            queued: self.queued.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            rejected_disabled: self.rejected_disabled.load(Ordering::Relaxed),
            executed: self.executed.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct CounterValues {
    pub(crate) queued: u64,
    pub(crate) coalesced: u64,
    pub(crate) rejected_disabled: u64,
    pub(crate) executed: u64,
    pub(crate) cancelled: u64,
    pub(crate) panicked: u64,
    pub(crate) in_flight: u64,
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
    /// Queueings that returned true (new pending periods).
    pub queued: u64,
    /// Queueings that returned false because the item was already pending.
    pub coalesced: u64,
    /// Queueings that returned false because the item was disabled.
    pub rejected_disabled: u64,
    /// Runs started.
    pub executed: u64,
    /// Pending periods ended by a cancel before their run started.
    pub cancelled: u64,
    /// Runs whose work function panicked (also counted in `executed`).
    pub panicked: u64,
    /// Runs in progress now.
    pub in_flight: u64,
    /// Most runs in progress at once since the queue was created.
    pub max_in_flight: u64,
    /// Items on the worklist now, waiting to start.
    pub pending: u64,
    /// Items on the timer list now, waiting for their delay.
    pub delayed: u64,
    /// Worker tasks alive now.
    pub workers: u64,
    /// Queue-to-start latency of every run, nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Run time of every finished run, nanoseconds.
    pub run_time_ns: Histogram<u64>,
}
