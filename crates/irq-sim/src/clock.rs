//! The one clock of irq-sim.
//!
//! Every timestamp in the crate comes from [`now()`], and every wait for a
//! deadline goes through [`sleep_until`] or a deadline given to a CPU's
//! idle wait. A virtual-time mode can replace these functions without
//! touching the controller, the CPUs or the drivers.
//!
//! Real time is `CLOCK_MONOTONIC` in nanoseconds, read through the vDSO
//! (about 20 ns). A thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) is a
//! system call (about 400 ns on a KVM guest), so the hot path never reads it
//! on every interrupt; see `contract` for how it is used.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the monotonic clock, in nanoseconds since an unspecified
/// origin (the host's boot, for real time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Makes a timestamp from nanoseconds on the clock.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Returns the nanoseconds on the clock.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Returns the time from `earlier` to `self`, or zero if `earlier` is
    /// later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_nanos(rhs)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_nanos(rhs)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Returns a duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Reads the monotonic clock.
///
/// # Context
///
/// Any; never sleeps, never allocates.
#[inline]
pub fn now() -> Timestamp {
    Timestamp(read_clock(libc::CLOCK_MONOTONIC))
}

/// Reads the CPU time the calling thread has consumed.
///
/// This is a system call (hundreds of nanoseconds), not a vDSO read.
///
/// # Context
///
/// Any; never sleeps, never allocates.
pub fn thread_cpu_time() -> Duration {
    Duration::from_nanos(read_clock(libc::CLOCK_THREAD_CPUTIME_ID))
}

/// Returns how many times the calling thread has blocked: its voluntary
/// context switches (`ru_nvcsw` of `getrusage(RUSAGE_THREAD)`), which a
/// sleep, a wait on a futex or blocking I/O adds to, and preemption or
/// `sched_yield` do not.
///
/// This is a system call (hundreds of nanoseconds).
///
/// # Context
///
/// Any; never sleeps, never allocates.
pub fn thread_voluntary_switches() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the duration of the
    // call, and RUSAGE_THREAD exists on every Linux since 2.6.26.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    debug_assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD) failed");
    u64::try_from(usage.ru_nvcsw).unwrap_or(0)
}

/// Sleeps until the monotonic clock reaches `deadline` (an absolute sleep,
/// so that a periodic caller does not drift).
///
/// # Context
///
/// Task context only: it sleeps. It does not check `might_sleep()` because
/// it is the clock's primitive, used by simulated devices and timers, never
/// offered to a top half.
pub fn sleep_until(deadline: Timestamp) {
    let target = to_timespec(deadline.0);
    loop {
        // SAFETY: `target` is a valid timespec that outlives the call, and a
        // null remainder pointer is allowed with TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &target,
                std::ptr::null_mut(),
            )
        };
        // clock_nanosleep returns the error number instead of setting errno;
        // EINTR means a signal arrived before the deadline, so sleep again.
        if rc != libc::EINTR {
            return;
        }
    }
}

/// Spins until the monotonic clock reaches `deadline`.
///
/// # Context
///
/// Any; never sleeps, but burns the CPU until the deadline.
pub fn spin_until(deadline: Timestamp) {
    while now() < deadline {
        std::hint::spin_loop();
    }
}

/// Sets the calling thread's timer slack, the time the kernel may add to its
/// timed sleeps to batch wake-ups (50 us by default on Linux).
///
/// Returns false if the kernel rejected the request.
///
/// # Context
///
/// Any; never sleeps (one `prctl` system call on the calling thread).
pub fn set_timer_slack(slack: Duration) -> bool {
    let nanos = libc::c_ulong::try_from(duration_nanos(slack).max(1)).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no
    // memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, nanos, 0, 0, 0) };
    rc == 0
}

fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call, and both clocks used here exist on every Linux since 2.6.12.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    // Both clocks count from a non-negative origin, so the casts are exact.
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

fn to_timespec(nanos: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic() {
        let a = now();
        let b = now();
        assert!(b >= a);
    }

    #[test]
    fn sleep_until_reaches_deadline() {
        let deadline = now() + Duration::from_micros(200);
        sleep_until(deadline);
        assert!(now() >= deadline);
    }

    #[test]
    fn thread_cpu_time_grows_while_spinning() {
        let before = thread_cpu_time();
        spin_until(now() + Duration::from_millis(2));
        assert!(thread_cpu_time() > before);
    }

    #[test]
    fn timer_slack_accepted() {
        assert!(set_timer_slack(Duration::from_nanos(1)));
    }
}
