//! The primitives of the IRQ thread's protocol (its requests, its stop and
//! the waits for served requests), swapped for loom's when the crate is
//! built with `--cfg driver_loom`.
//!
//! Only `ThreadShared` in [`crate::irq`] uses this facade: it is what the
//! loom model checks. The rest of the crate stays on `std`. The cfg is
//! `driver_loom`, not `loom`, so that building the model does not switch
//! tokio and irq-sim into their own loom modes.

#[cfg(not(driver_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
#[cfg(not(driver_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(driver_loom))]
pub(crate) use std::thread::park;

#[cfg(driver_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
#[cfg(driver_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
/// Parks the IRQ thread. The model yields instead, because loom 0.7's
/// `unpark` also wakes a thread that waits for a mutex, which then fails
/// the model. A yield lets every other thread run first. std's park token
/// keeps a wake-up from being lost, so the model need not check it.
#[cfg(driver_loom)]
pub(crate) fn park() {
    loom::thread::yield_now();
}

/// Orders a SeqCst write before a SeqCst read of another location, for
/// the store-then-load pairing (Dekker's pattern) of a served mark and a
/// waiter's count.
///
/// The accesses around it are SeqCst in every build, which is all the C++
/// memory model needs. All SeqCst operations share one total order, so of
/// two threads that each write one location and then read the other, at
/// least one reads the other's write. loom models SeqCst accesses only as
/// acquire and release, so the model build adds a SeqCst fence, which loom
/// models. The normal build adds nothing.
#[inline]
pub(crate) fn dekker_fence() {
    #[cfg(driver_loom)]
    loom::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

/// Locks `mutex`, taking over the data of a holder that panicked: the data
/// it guards is `()` or a plain flag, valid at every step.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
