//! Local timers: a periodic tick and one-shot expiries, like a CPU's local
//! APIC timer.
//!
//! A timer belongs to one CPU, and that CPU's thread waits for the timer's
//! deadline itself: in blocking mode its idle wait times out at the
//! deadline (a futex wait with the thread's timer slack at 1 ns), in
//! busy-poll mode it spins to the deadline. At expiry the CPU raises the
//! timer's line with the **programmed** expiry time as the raise time, so
//! the line's raise-to-entry latency is the timer IRQ latency as rtla
//! timerlat measures it (programmed expiry to handler entry).
//!
//! A separate timer thread would add a cross-thread wake-up (about 45 us
//! on an idle vCPU here) to every expiry, which is why the timer is local.
//!
//! A periodic timer that expires late by more than a period does not fire
//! the missed periods: it fires once, counts them as overruns, and moves its
//! next deadline past now (the kernel's `hrtimer_forward`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{self, Timestamp};
use crate::controller::{Controller, CpuShared, lock};
use crate::error::LineError;

/// Counters of one timer; atomics written by its CPU.
#[derive(Debug, Default)]
pub(crate) struct TimerCounters {
    expiries: AtomicU64,
    overruns: AtomicU64,
}

/// One timer of a CPU.
#[derive(Debug)]
pub(crate) struct TimerSlot {
    irq: u32,
    next: Option<Timestamp>,
    period: Option<Duration>,
    counters: Arc<TimerCounters>,
}

/// The timers of one CPU, under the CPU's queue lock.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    slots: Vec<TimerSlot>,
}

impl TimerTable {
    /// Returns the earliest armed deadline.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.slots.iter().filter_map(|slot| slot.next).min()
    }

    /// Takes the earliest expiry due at `now`, advancing its timer. Returns
    /// the line to raise and the programmed expiry time.
    pub(crate) fn take_due(&mut self, now: Timestamp) -> Option<(u32, Timestamp)> {
        let slot = self
            .slots
            .iter_mut()
            .filter(|slot| slot.next.is_some_and(|next| next <= now))
            .min_by_key(|slot| slot.next)?;
        let programmed = slot.next?;
        slot.counters.expiries.fetch_add(1, Ordering::Relaxed);
        slot.next = slot.period.map(|period| {
            let next = programmed + period;
            if next > now {
                return next;
            }
            // Late by more than a period: skip the missed expiries.
            let period_ns = clock::duration_nanos(period).max(1);
            let missed = now.as_nanos().saturating_sub(next.as_nanos()) / period_ns + 1;
            slot.counters.overruns.fetch_add(missed, Ordering::Relaxed);
            next + Duration::from_nanos(missed.saturating_mul(period_ns))
        });
        Some((slot.irq, programmed))
    }
}

/// A handle to one local timer of a CPU.
#[derive(Debug)]
pub struct LocalTimer {
    controller: Controller,
    cpu: usize,
    slot: usize,
    irq: u32,
    counters: Arc<TimerCounters>,
}

impl Controller {
    /// Creates a local timer on `cpu` that raises line `irq` (which is
    /// routed to `cpu`). The timer starts disarmed.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`] or [`LineError::NoSuchCpu`].
    ///
    /// # Context
    ///
    /// Any; never sleeps (takes the CPU's queue lock briefly).
    pub fn local_timer(&self, cpu: usize, irq: u32) -> Result<LocalTimer, LineError> {
        self.set_affinity(irq, cpu)?;
        let counters = Arc::new(TimerCounters::default());
        let shared = &self.shared.cpus[cpu];
        let mut queue = lock(&shared.queue);
        queue.timers.slots.push(TimerSlot {
            irq,
            next: None,
            period: None,
            counters: counters.clone(),
        });
        let slot = queue.timers.slots.len() - 1;
        drop(queue);
        Ok(LocalTimer {
            controller: self.clone(),
            cpu,
            slot,
            irq,
            counters,
        })
    }
}

impl LocalTimer {
    /// Returns the line the timer raises.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Returns the CPU the timer belongs to.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Starts a periodic tick: expiries at `first`, `first + period`, ...
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn start_periodic(&self, first: Timestamp, period: Duration) {
        self.program(Some(first), Some(period.max(Duration::from_nanos(1))));
    }

    /// Arms a one-shot expiry at `at`, replacing any armed expiry.
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn arm_oneshot(&self, at: Timestamp) {
        self.program(Some(at), None);
    }

    /// Disarms the timer.
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn cancel(&self) {
        self.program(None, None);
    }

    /// Returns the expiries fired so far.
    pub fn expiries(&self) -> u64 {
        self.counters.expiries.load(Ordering::Relaxed)
    }

    /// Returns the periods missed because an expiry fired more than a
    /// period late.
    pub fn overruns(&self) -> u64 {
        self.counters.overruns.load(Ordering::Relaxed)
    }

    fn program(&self, next: Option<Timestamp>, period: Option<Duration>) {
        let shared: &CpuShared = &self.controller.shared.cpus[self.cpu];
        let mut queue = lock(&shared.queue);
        let slot = &mut queue.timers.slots[self.slot];
        slot.next = next;
        slot.period = period;
        let deadline = queue
            .timers
            .next_deadline()
            .map_or(u64::MAX, Timestamp::as_nanos);
        shared.next_timer.store(deadline, Ordering::Release);
        // A sleeping CPU recomputes its timeout.
        let notify = std::mem::take(&mut queue.sleeping);
        drop(queue);
        if notify {
            shared.wakeup.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(next: u64, period: Option<u64>) -> (TimerTable, Arc<TimerCounters>) {
        let counters = Arc::new(TimerCounters::default());
        let table = TimerTable {
            slots: vec![TimerSlot {
                irq: 7,
                next: Some(Timestamp::from_nanos(next)),
                period: period.map(Duration::from_nanos),
                counters: counters.clone(),
            }],
        };
        (table, counters)
    }

    #[test]
    fn periodic_advances_by_period() {
        let (mut table, counters) = table(1000, Some(100));
        assert_eq!(table.take_due(Timestamp::from_nanos(999)), None);
        assert_eq!(
            table.take_due(Timestamp::from_nanos(1010)),
            Some((7, Timestamp::from_nanos(1000)))
        );
        assert_eq!(table.next_deadline(), Some(Timestamp::from_nanos(1100)));
        assert_eq!(counters.overruns.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn late_periodic_counts_overruns() {
        let (mut table, counters) = table(1000, Some(100));
        assert_eq!(
            table.take_due(Timestamp::from_nanos(1350)),
            Some((7, Timestamp::from_nanos(1000)))
        );
        assert_eq!(counters.overruns.load(Ordering::Relaxed), 3);
        assert_eq!(table.next_deadline(), Some(Timestamp::from_nanos(1400)));
    }

    #[test]
    fn oneshot_fires_once() {
        let (mut table, counters) = table(1000, None);
        assert!(table.take_due(Timestamp::from_nanos(2000)).is_some());
        assert_eq!(table.take_due(Timestamp::from_nanos(3000)), None);
        assert_eq!(table.next_deadline(), None);
        assert_eq!(counters.expiries.load(Ordering::Relaxed), 1);
    }
}
