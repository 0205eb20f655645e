//! The clock behind the queues' statistics.
//!
//! Queue-to-start latency and run time take a timestamp at every queueing
//! and two at every run. `std::time::Instant::now` reads `CLOCK_MONOTONIC`
//! through the vDSO, measured at about 25 ns on the 2-vCPU KVM development
//! VM. A [`Stamp`] is a raw reading of the CPU's time-stamp counter through
//! `quanta`, about 10 ns there.
//! It is scaled to nanoseconds only when two are subtracted. Where the
//! counter is not invariant, `quanta` reads the monotonic clock instead.
//! Only differences of stamps leave the crate, as nanoseconds.

use std::sync::OnceLock;
use std::time::Duration;

/// A point in time, as a raw counter reading. `UNSET` is earlier than every
/// reading and is never one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// The value of a stamp that is not set yet.
    pub(crate) const UNSET: Stamp = Stamp(0);

    /// Reads the counter.
    pub(crate) fn now() -> Stamp {
        Stamp(source().raw().max(1))
    }

    /// Returns the nanoseconds from `earlier` to `self`, or zero if
    /// `earlier` is not earlier (as when two CPUs' counters disagree).
    pub(crate) fn nanos_since(self, earlier: Stamp) -> u64 {
        source().delta_as_nanos(earlier.0, self.0)
    }

    /// Returns the time from `earlier` to `self`, as `nanos_since`.
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.nanos_since(earlier))
    }

    /// Returns the time from `self` to now.
    pub(crate) fn elapsed(self) -> Duration {
        Stamp::now().since(self)
    }
}

/// Calibrates the counter against the monotonic clock, which takes most of
/// a millisecond once per process. Building a queue calls it, so that no
/// queueing pays for it.
pub(crate) fn calibrate() {
    let _ = source();
}

fn source() -> &'static quanta::Clock {
    static SOURCE: OnceLock<quanta::Clock> = OnceLock::new();
    SOURCE.get_or_init(quanta::Clock::new)
}

#[cfg(all(test, not(wq_loom)))]
mod tests {
    use super::*;

    #[test]
    fn stamps_measure_a_sleep() {
        // The stamps lie between two pairs of std readings, so the span they
        // measure lies between the inner and the outer std span, whatever
        // preemption falls between the readings.
        let outer_start = std::time::Instant::now();
        let start = Stamp::now();
        let inner_start = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let inner_end = std::time::Instant::now();
        let end = Stamp::now();
        let outer_end = std::time::Instant::now();

        let measured = end.since(start);
        let inner = inner_end - inner_start;
        let outer = outer_end - outer_start;
        // The counter is scaled to the monotonic clock by a calibration:
        // allow it 5 % either way.
        assert!(
            measured >= inner * 19 / 20,
            "{measured:?} against at least {inner:?}"
        );
        assert!(
            measured <= outer * 21 / 20,
            "{measured:?} against at most {outer:?}"
        );
    }

    #[test]
    fn unset_is_before_every_reading() {
        let now = Stamp::now();
        assert!(Stamp::UNSET < now);
        assert_eq!(Stamp::UNSET.nanos_since(now), 0);
    }
}
