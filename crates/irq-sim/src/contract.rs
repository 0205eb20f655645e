//! The top-half contract: budgets, overrun policies, and rate-limited
//! reports.
//!
//! # What is measured
//!
//! Every call of a top half is timed with the wall clock (two reads of
//! [`crate::clock::now`], shared with the latency measurement). Wall time
//! includes the time the CPU thread spent preempted by the host, which is
//! not the handler's fault. So **the budget is held against CPU time**:
//!
//! 1. A call whose wall time is within the budget is within budget (CPU
//!    time never exceeds wall time), and costs nothing more.
//! 2. A call whose wall time exceeds the budget is judged by its CPU time.
//!    With [`CpuTimeAccounting::PerCall`] the thread's CPU time is read
//!    around every call (exact, about 0.8 us per call on a KVM guest). With
//!    the default [`CpuTimeAccounting::Window`], the CPU thread keeps an
//!    anchor: a pair of wall time and thread CPU time. It refreshes the
//!    anchor after each overrun check, and when the anchor is older than a
//!    millisecond (before an idle wait, or while spinning idle). It also
//!    adds up the wall time it slept idle since the anchor. Any other time
//!    off its vCPU since the anchor was preemption, so it is subtracted from
//!    the call's wall time. That gives a lower bound on the call's CPU
//!    time, which never blames a preempted handler, for one system call per
//!    overrun instead of two per interrupt. The bound is loose when the host
//!    preempted the thread elsewhere in the window: a marginal overrun can
//!    then go unreported.
//! 3. Off-CPU time is either the host's preemption or the handler's own
//!    sleep (`std::thread::sleep`, a contended lock, blocking I/O), which a
//!    top half must never do. The two differ in the thread's voluntary
//!    context switches: blocking adds one, preemption does not. The check
//!    of a call over budget in wall time also reads them.
//!
//!    In window mode the count covers the window since the anchor, where
//!    the CPU thread may also have blocked on its own account, in a
//!    wake-up it performed for example. So a count above what its idle
//!    waits and irq-sim's contended locks explain only puts the handler
//!    under watch. From then on the switches are read around each of its
//!    calls, at two more system calls a call, until a watched call shows
//!    none. In per-call mode every call is watched.
//!
//!    A watched call over budget that blocked is reported as a
//!    [`crate::ContractViolation::Slept`], the kernel's "scheduling while
//!    atomic". A sleep that keeps a call within its budget goes unseen.
//!    So does one in a handler's first call, which may block on one-time
//!    costs that are not its own (see [`FIRST_CALL_ALLOWANCE`]).
//!
//! # Default budget
//!
//! [`DEFAULT_BUDGET`] is 100 us: one period of a 10 kHz timer. A top half
//! that runs longer on a CPU delays every other line of that CPU by more
//! than a 10 kHz tick, and Linux driver guidance likewise keeps hard-IRQ
//! work to tens of microseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{self, Timestamp};

/// The budget of a line unless `set_budget` changes it.
pub const DEFAULT_BUDGET: Duration = Duration::from_micros(100);

/// Time a handler's first call may take beyond its budget before it counts
/// as an overrun.
///
/// A first call pays one-time costs that are not the handler's work. The
/// likely ones, not profiled: page faults on code and data touched for the
/// first time, and the registration of the trace events it emits. First
/// calls of a demo top half took 26 to 48 us on the development VM
/// against 0.2 to 6 us for later ones. A handler that is slow on every
/// call is still caught, from its first call when it runs this much over.
pub const FIRST_CALL_ALLOWANCE: Duration = Duration::from_micros(200);

/// Reports of overruns per line and per [`REPORT_INTERVAL`].
pub const REPORTS_PER_INTERVAL: u32 = 5;

/// The rate-limit interval of overrun reports per line.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// The action taken when a top half overruns its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverrunPolicy {
    /// Log a warning (rate-limited) and count the overrun.
    #[default]
    Warn,
    /// Log, count, and disable the line (`disable_irq_nosync`).
    Disable,
    /// Log, count, disable the line, and record a
    /// [`crate::ContractViolation`] that `Machine::check` and
    /// `Machine::shutdown` return, so that a test fails.
    Fail,
}

/// A line's budget and what an overrun does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The longest CPU time a call may take.
    pub limit: Duration,
    /// The action taken on an overrun.
    pub policy: OverrunPolicy,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            limit: DEFAULT_BUDGET,
            policy: OverrunPolicy::Warn,
        }
    }
}

/// The method a CPU thread uses to find the CPU time of a call that overran
/// in wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuTimeAccounting {
    /// Subtract the off-CPU time since a recent anchor (see the module
    /// docs); no system call unless the wall time overran.
    #[default]
    Window,
    /// Read the thread's CPU time before and after every call: exact, but
    /// two system calls per call.
    PerCall,
}

/// How often the window anchor is refreshed while a CPU stays busy.
const ANCHOR_MAX_AGE: Duration = Duration::from_millis(1);

/// The CPU-time anchor of one CPU thread. Touched only by that thread.
#[derive(Debug)]
pub(crate) struct CpuClock {
    accounting: CpuTimeAccounting,
    anchor_wall: Timestamp,
    anchor_cpu: Duration,
    /// The thread's voluntary context switches at the anchor, less the
    /// locks it had found taken by then (see `controller::lock`).
    anchor_switches: u64,
    /// Wall time spent in idle waits since the anchor: off-CPU, but not
    /// preemption.
    idle: Duration,
    /// Idle waits since the anchor; each may block the thread once.
    idle_waits: u64,
}

/// The CPU time of a call, and how often its thread blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallTime {
    /// The call's CPU time: exact in per-call mode, a lower bound in window
    /// mode.
    pub(crate) cpu: Duration,
    /// Voluntary context switches that no idle wait and no contended lock
    /// of irq-sim explains: the call's own when `exact`, else those of the
    /// window since the anchor.
    pub(crate) blocked: u64,
    /// Flag: `blocked` was counted around the call itself.
    pub(crate) exact: bool,
}

/// Returns the thread's voluntary context switches less the locks it found
/// taken: the switches that irq-sim's own locks do not explain.
pub(crate) fn unexplained_switches() -> u64 {
    clock::thread_voluntary_switches().saturating_sub(crate::controller::contended_locks())
}

impl CpuClock {
    pub(crate) fn new(accounting: CpuTimeAccounting) -> Self {
        Self {
            accounting,
            anchor_wall: clock::now(),
            anchor_cpu: clock::thread_cpu_time(),
            anchor_switches: unexplained_switches(),
            idle: Duration::ZERO,
            idle_waits: 0,
        }
    }

    /// Re-reads the anchor.
    pub(crate) fn refresh(&mut self) {
        self.anchor_wall = clock::now();
        self.anchor_cpu = clock::thread_cpu_time();
        self.anchor_switches = unexplained_switches();
        self.idle = Duration::ZERO;
        self.idle_waits = 0;
    }

    /// Adds the wall time of one idle wait.
    pub(crate) fn add_idle(&mut self, slept: Duration) {
        self.idle += slept;
        self.idle_waits += 1;
    }

    /// Refreshes the anchor if it is older than a millisecond at `now`.
    pub(crate) fn refresh_if_old(&mut self, now: Timestamp) {
        if now.saturating_since(self.anchor_wall) > ANCHOR_MAX_AGE {
            self.refresh();
        }
    }

    /// Returns true in per-call mode, where every call is watched for
    /// blocking.
    pub(crate) fn per_call(&self) -> bool {
        self.accounting == CpuTimeAccounting::PerCall
    }

    /// Returns the thread CPU time before a call, or `None` in window mode.
    #[inline]
    pub(crate) fn call_start(&self) -> Option<Duration> {
        match self.accounting {
            CpuTimeAccounting::Window => None,
            CpuTimeAccounting::PerCall => Some(clock::thread_cpu_time()),
        }
    }

    /// Returns the CPU time of a call that took `wall` and ended at `end`,
    /// exactly (per-call mode) or as a lower bound (window mode), and the
    /// times its thread blocked. Those are counted from `start_switches`, a
    /// reading of [`unexplained_switches`] taken before a watched call, or
    /// else over the window since the anchor.
    pub(crate) fn call_time(
        &mut self,
        start_cpu: Option<Duration>,
        start_switches: Option<u64>,
        wall: Duration,
        end: Timestamp,
    ) -> CallTime {
        let cpu_now = clock::thread_cpu_time();
        let switches_now = unexplained_switches();
        let cpu = match start_cpu {
            Some(start) => cpu_now.saturating_sub(start),
            None => {
                let window_wall = end.saturating_since(self.anchor_wall);
                let window_cpu = cpu_now.saturating_sub(self.anchor_cpu);
                let preempted = window_wall
                    .saturating_sub(window_cpu)
                    .saturating_sub(self.idle);
                wall.saturating_sub(preempted)
            }
        };
        let blocked = match start_switches {
            Some(start) => switches_now.saturating_sub(start),
            None => switches_now
                .saturating_sub(self.anchor_switches)
                .saturating_sub(self.idle_waits),
        };
        self.anchor_wall = end;
        self.anchor_cpu = cpu_now;
        self.anchor_switches = switches_now;
        self.idle = Duration::ZERO;
        self.idle_waits = 0;
        CallTime {
            cpu,
            blocked,
            exact: start_switches.is_some(),
        }
    }

    /// Moves the switch anchor to now, after a report that may have blocked
    /// the thread on its output.
    pub(crate) fn rebase_switches(&mut self) {
        self.anchor_switches = unexplained_switches();
    }
}

/// A per-line report throttle: [`REPORTS_PER_INTERVAL`] reports per
/// [`REPORT_INTERVAL`], then one summary with the suppressed count.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    /// Start of the current interval, in clock nanoseconds; 0 before the
    /// first report.
    interval_start: AtomicU64,
    /// Reports made in the current interval.
    reported: AtomicU64,
    /// Reports suppressed since the last one made.
    suppressed: AtomicU64,
}

/// The decision of [`RateLimit::check`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// Report, and mention this many suppressed reports.
    Report {
        /// Reports suppressed since the last one made.
        suppressed: u64,
    },
    /// Stay silent; counted.
    Suppress,
}

impl RateLimit {
    /// Decides whether a report at `now` may be made.
    ///
    /// Called only by the CPU dispatching the line (the line's chain lock
    /// is held), so the relaxed orderings only publish counts to readers.
    pub(crate) fn check(&self, now: Timestamp) -> Throttle {
        let start = self.interval_start.load(Ordering::Relaxed);
        let interval = clock::duration_nanos(REPORT_INTERVAL);
        if start == 0 || now.as_nanos().saturating_sub(start) >= interval {
            self.interval_start
                .store(now.as_nanos().max(1), Ordering::Relaxed);
            self.reported.store(0, Ordering::Relaxed);
        }
        if self.reported.fetch_add(1, Ordering::Relaxed) < u64::from(REPORTS_PER_INTERVAL) {
            Throttle::Report {
                suppressed: self.suppressed.swap(0, Ordering::Relaxed),
            }
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Throttle::Suppress
        }
    }

    /// Returns the reports suppressed since the last one made, and resets
    /// the count; for the summary at shutdown.
    pub(crate) fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Ordering::Relaxed)
    }
}

/// Returns the message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until this thread has used `cpu` more CPU time, however long
    /// the host keeps it off its vCPU.
    fn burn_cpu(cpu: Duration) {
        let target = clock::thread_cpu_time() + cpu;
        while clock::thread_cpu_time() < target {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn rate_limit_allows_burst_then_suppresses() {
        let limit = RateLimit::default();
        let now = clock::now();
        for _ in 0..REPORTS_PER_INTERVAL {
            assert!(matches!(limit.check(now), Throttle::Report { .. }));
        }
        assert_eq!(limit.check(now), Throttle::Suppress);
        let later = now + REPORT_INTERVAL;
        assert_eq!(limit.check(later), Throttle::Report { suppressed: 1 });
    }

    #[test]
    fn window_excludes_off_cpu_time_and_counts_a_sleep() {
        // A sleep inside the call is off-CPU time that is not an idle wait
        // of the CPU thread. Unlike preemption, it also blocks the thread.
        let mut cpu_clock = CpuClock::new(CpuTimeAccounting::Window);
        let start = clock::now();
        std::thread::sleep(Duration::from_millis(5));
        let end = clock::now();
        let time = cpu_clock.call_time(None, None, end.saturating_since(start), end);
        assert!(
            time.cpu < Duration::from_millis(2),
            "cpu time {:?}",
            time.cpu
        );
        assert!(time.blocked >= 1, "{time:?}");
    }

    #[test]
    fn window_idle_is_neither_preemption_nor_blocking() {
        let mut cpu_clock = CpuClock::new(CpuTimeAccounting::Window);
        let idle_start = clock::now();
        std::thread::sleep(Duration::from_millis(5));
        cpu_clock.add_idle(clock::now().saturating_since(idle_start));
        let start = clock::now();
        burn_cpu(Duration::from_millis(2));
        let end = clock::now();
        let time = cpu_clock.call_time(None, None, end.saturating_since(start), end);
        assert!(
            time.cpu >= Duration::from_micros(1500),
            "cpu time {:?}",
            time.cpu
        );
        assert_eq!(time.blocked, 0, "{time:?}");
    }

    #[test]
    fn per_call_counts_spinning_and_sleeping() {
        let mut cpu_clock = CpuClock::new(CpuTimeAccounting::PerCall);
        let start_time = cpu_clock.call_start();
        let start = clock::now();
        burn_cpu(Duration::from_millis(2));
        let end = clock::now();
        let time = cpu_clock.call_time(start_time, None, end.saturating_since(start), end);
        assert!(
            time.cpu >= Duration::from_millis(2),
            "cpu time {:?}",
            time.cpu
        );
        assert_eq!(time.blocked, 0, "{time:?}");

        let start_time = cpu_clock.call_start();
        let start = clock::now();
        std::thread::sleep(Duration::from_millis(1));
        let end = clock::now();
        let time = cpu_clock.call_time(start_time, None, end.saturating_since(start), end);
        assert!(time.blocked >= 1, "{time:?}");
    }
}
