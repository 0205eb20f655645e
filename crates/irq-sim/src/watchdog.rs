//! The housekeeping thread: the lockup watchdog and the polling of lines
//! disabled as spurious.
//!
//! The watchdog reads each CPU's `running_since` / `running_what` pair as a
//! seqlock: the CPU zeroes `running_since`, stores `running_what`, then
//! stores the new `running_since`, all with `Release`. The watchdog loads
//! `running_since` (`Acquire`), `running_what` (`Acquire`) and
//! `running_since` again; if both reads agree and are non-zero, the pair
//! belongs to one top half. A torn read is skipped and retried at the next
//! period.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clock::{self, Timestamp};
use crate::controller::{Controller, lock};
use crate::error::ContractViolation;
use crate::line_state::Rearm;

/// Runs until `stop` is set.
pub(crate) fn run(controller: Controller, stop: Arc<(Mutex<bool>, Condvar)>) {
    let config = controller.shared.config;
    let watchdog_period = (config.watchdog.threshold / 4).max(Duration::from_millis(1));
    let poll_interval = config.spurious.poll_interval.max(Duration::from_millis(1));
    let period = if config.watchdog.enabled {
        watchdog_period.min(poll_interval)
    } else {
        poll_interval
    };
    let mut next_poll = clock::now() + poll_interval;

    let (stopped, condvar) = &*stop;
    let mut guard = lock(stopped);
    loop {
        if *guard {
            return;
        }
        guard = condvar
            .wait_timeout(guard, period)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        if *guard {
            return;
        }

        let now = clock::now();
        if config.watchdog.enabled {
            check_lockups(&controller, now);
        }
        if now >= next_poll {
            poll_spurious(&controller);
            next_poll = now + poll_interval;
        }
    }
}

/// Reports each CPU that has been in one top half longer than the
/// threshold, once per stuck call.
fn check_lockups(controller: &Controller, now: Timestamp) {
    let shared = &controller.shared;
    let threshold = shared.config.watchdog.threshold;
    for (cpu, cpu_shared) in shared.cpus.iter().enumerate() {
        let since = cpu_shared.running_since.load(Ordering::Acquire);
        if since == 0 {
            continue;
        }
        let what = cpu_shared.running_what.load(Ordering::Acquire);
        if cpu_shared.running_since.load(Ordering::Acquire) != since {
            continue;
        }
        let stuck_for = now.saturating_since(Timestamp::from_nanos(since));
        if stuck_for < threshold {
            continue;
        }
        // Relaxed: only this thread reads and writes the reported value.
        if cpu_shared.lockup_reported.swap(since, Ordering::Relaxed) == since {
            continue;
        }

        let irq = (what >> 32) as u32;
        let handler = lock(&shared.names)
            .get((what & u64::from(u32::MAX)) as usize)
            .copied()
            .unwrap_or("?");
        let violation = ContractViolation::Lockup {
            cpu,
            irq,
            handler,
            stuck_for,
        };
        tracing::error!(target: "irq", cpu, irq, handler, stuck_ms = stuck_for.as_millis() as u64, "watchdog: {violation}");
        shared.record_violation(violation);
    }
}

/// Asks for one poll of each line disabled as spurious.
fn poll_spurious(controller: &Controller) {
    for (irq, line) in controller.shared.lines.iter().enumerate() {
        if line.state.snapshot().spurious && line.state.request_poll() == Rearm::Queue {
            controller.apply(irq as u32, Rearm::Queue);
        }
    }
}
