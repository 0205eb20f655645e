//! The synchronization primitives of the work item state machine, swapped
//! for loom's when the crate is built with `--cfg wq_loom`.
//!
//! Only the state machine (`core`) uses this facade: it is what the loom
//! model checks. Statistics counters, tokio's `Notify` and the item
//! reference counts stay on `std`, because loom does not model them.
//!
//! The cfg is `wq_loom`, not `loom`, so that building the model does not
//! switch tokio and other dependencies into their own loom modes.

#[cfg(not(wq_loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64};

#[cfg(wq_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64};

/// Orders a SeqCst write before a SeqCst read of another location, for the
/// store-then-load pairings (Dekker's pattern) of the intake stack.
///
/// The accesses around it are SeqCst in every build, which is what the C++
/// memory model needs: all SeqCst operations share one total order, so of
/// two threads that each write one location and then read the other, at
/// least one reads the other's write. loom models SeqCst accesses only as
/// acquire and release, so the model build adds a SeqCst fence, which loom
/// does model. The normal build adds nothing: on x86 the SeqCst write is
/// already a locked instruction, and an `mfence` measured 125 ns there.
#[inline]
pub(crate) fn dekker_fence() {
    #[cfg(wq_loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}
#[cfg(wq_loom)]
pub(crate) use loom::sync::{Mutex as RawLock, MutexGuard as RawLockGuard};

pub(crate) use std::sync::atomic::Ordering;

/// A lock for critical sections of a few list operations: the userspace
/// form of the kernel's raw spinlock around a worker pool.
///
/// Waiters spin, and yield the CPU after a thousand spins, so that a holder
/// preempted by the host is not starved. It never puts a waiter to sleep in
/// the kernel, so a contended lock costs no system call, which a futex-based
/// mutex pays as soon as its short spin fails. It protects no data of its
/// own; what it protects lives in `UnsafeCell`s that only its guard reaches.
#[cfg(not(wq_loom))]
#[derive(Debug)]
pub(crate) struct RawLock<T> {
    locked: std::sync::atomic::AtomicBool,
    _marker: std::marker::PhantomData<T>,
}

#[cfg(not(wq_loom))]
impl RawLock<()> {
    pub(crate) const fn new(_: ()) -> Self {
        Self {
            locked: std::sync::atomic::AtomicBool::new(false),
            _marker: std::marker::PhantomData,
        }
    }

    /// Takes the lock.
    pub(crate) fn lock(&self) -> RawLockGuard<'_, ()> {
        loop {
            // Acquire pairs with the Release store in `RawLockGuard::drop`,
            // so the previous holder's writes are visible here.
            if !self.locked.swap(true, Ordering::Acquire) {
                return RawLockGuard { lock: self };
            }
            let mut spins = 0_u32;
            // Relaxed: only a hint to retry the swap, which orders.
            while self.locked.load(Ordering::Relaxed) {
                if spins < 1_000 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// Holds a [`RawLock`] until dropped.
#[cfg(not(wq_loom))]
#[derive(Debug)]
pub(crate) struct RawLockGuard<'a, T> {
    lock: &'a RawLock<T>,
}

#[cfg(not(wq_loom))]
impl<T> Drop for RawLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// An `UnsafeCell` with loom's closure API, so that loom can check every
/// access in the model build.
#[cfg(not(wq_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(wq_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(wq_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// A slot for one task's waker that a waker can be registered in and taken
/// from concurrently, without a lock: the `atomic-waker` crate, or loom's
/// model of the same primitive.
#[derive(Debug)]
pub(crate) struct AtomicWaker {
    #[cfg(not(wq_loom))]
    inner: atomic_waker::AtomicWaker,
    #[cfg(wq_loom)]
    inner: loom::future::AtomicWaker,
}

impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(wq_loom))]
            inner: atomic_waker::AtomicWaker::new(),
            #[cfg(wq_loom)]
            inner: loom::future::AtomicWaker::new(),
        }
    }

    /// Stores `waker`, replacing the one stored before. If a `take` runs at
    /// the same time, `waker` is woken at once instead.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        #[cfg(not(wq_loom))]
        self.inner.register(waker);
        #[cfg(wq_loom)]
        self.inner.register_by_ref(waker);
    }

    /// Takes the stored waker, if one was registered since the last take.
    pub(crate) fn take(&self) -> Option<std::task::Waker> {
        #[cfg(not(wq_loom))]
        return self.inner.take();
        #[cfg(wq_loom)]
        return self.inner.take_waker();
    }
}

/// Marks a `fn` as `const` except in the loom build, whose primitives have no
/// const constructors.
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        #[cfg(not(wq_loom))]
        $(#[$attr])* $vis const fn $name $($rest)*

        #[cfg(wq_loom)]
        $(#[$attr])* $vis fn $name $($rest)*
    };
}

pub(crate) use const_unless_loom;

/// Asks the CPU to fetch the cache line of `target` for writing, without
/// waiting for it: irq-sim's hint ([`irq_sim::prefetch_for_write`]), left
/// out of the loom build.
#[inline]
pub(crate) fn prefetch_for_write<T>(target: &T) {
    #[cfg(not(wq_loom))]
    irq_sim::prefetch_for_write(target);
    #[cfg(wq_loom)]
    let _ = target;
}
