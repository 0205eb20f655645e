//! Interrupt context: what the current thread may do.
//!
//! A simulated CPU thread runs a top half inside [`enter_hardirq`]; while the
//! returned [`HardIrqGuard`] lives, the thread is in hard-IRQ context. Every
//! other thread (a tokio worker, `main`, a test) is in task context.
//!
//! | question | hard-IRQ context | task context |
//! |---|---|---|
//! | [`in_hardirq()`] | true | false |
//! | [`in_interrupt()`] | true | false |
//! | [`in_task()`] | false | true |
//! | [`might_sleep()`] | `Err(InvalidContext)` | `Ok(())` |
//!
//! irqlab has no softirq context: bottom halves run in task context on tokio,
//! so `in_interrupt()` equals `in_hardirq()`.
//!
//! # Deferred wake-ups
//!
//! Waking a sleeping thread is a system call that costs microseconds in
//! userspace. So in hard-IRQ context [`wake_or_defer`] only records the
//! [`Waker`]; the CPU thread performs the recorded wake-ups when the guard
//! is dropped, after the handler chain has returned, which keeps the
//! system call out of the top half's measured time. Linux has no such
//! step: waking a task is cheap there and allowed in hard-IRQ context.
//! Recording clones the waker into a fixed per-thread array and does not
//! allocate.
//!
//! # Example
//!
//! ```
//! use irq_sim::context::{self, enter_hardirq};
//!
//! assert!(context::in_task());
//! {
//!     let _irq = enter_hardirq(17, "uart");
//!     assert!(context::in_hardirq());
//!     let err = context::might_sleep("flush_work").unwrap_err();
//!     assert_eq!(err.irq, 17);
//! }
//! assert!(context::might_sleep("flush_work").is_ok());
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

/// Number of wake-ups one handler chain can defer before further ones are
/// performed at once (and counted by [`inline_wake_count`]).
pub const DEFERRED_WAKE_CAPACITY: usize = 32;

/// The interrupt a thread is handling: its line and the handler now running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqFrame {
    /// IRQ line number.
    pub irq: u32,
    /// Name of the handler now running, as given to `request_irq`.
    pub handler: &'static str,
}

thread_local! {
    /// The frame of the top half running on this thread, if any.
    static CURRENT: Cell<Option<IrqFrame>> = const { Cell::new(None) };

    /// Wake-ups recorded by the running handler chain.
    static DEFERRED: RefCell<DeferredWakes> = const { RefCell::new(DeferredWakes::new()) };

    /// The first `might_sleep()` failure of the running handler chain, for
    /// the simulated CPU to record as a contract violation.
    static FIRST_INVALID: Cell<Option<InvalidContext>> = const { Cell::new(None) };

    /// A one-time cost paid by the running top half's call, which its
    /// budget does not count; see [`excuse_one_time_cost`].
    static EXCUSED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Count of `might_sleep()` calls made in hard-IRQ context, process-wide.
static SLEEP_VIOLATIONS: AtomicU64 = AtomicU64::new(0);

/// Count of wake-ups performed inside a handler because the deferred array
/// was full, process-wide.
static INLINE_WAKES: AtomicU64 = AtomicU64::new(0);

/// Returns true when the current thread runs a top half.
///
/// # Context
///
/// Any; never sleeps.
pub fn in_hardirq() -> bool {
    CURRENT.with(|current| current.get().is_some())
}

/// Returns true when the current thread runs in any interrupt context.
///
/// irqlab has no softirq context, so this equals [`in_hardirq()`].
///
/// # Context
///
/// Any; never sleeps.
pub fn in_interrupt() -> bool {
    in_hardirq()
}

/// Returns true when the current thread runs in task context, where it may
/// sleep.
///
/// # Context
///
/// Any; never sleeps.
pub fn in_task() -> bool {
    !in_interrupt()
}

/// Returns the interrupt the current thread is handling, if any.
///
/// # Context
///
/// Any; never sleeps.
pub fn current_irq() -> Option<IrqFrame> {
    CURRENT.with(Cell::get)
}

/// Checks that the caller may sleep, as the kernel's `might_sleep()` does.
///
/// Every irqlab API that can wait calls this first, with its own name.
///
/// # Errors
///
/// In hard-IRQ context, returns [`InvalidContext`] naming `api`, the IRQ line
/// and the handler, and logs it at ERROR level (target `irq`; the first ten
/// and then every power-of-two count, so that a storm cannot flood the log).
///
/// # Context
///
/// Any; never sleeps.
pub fn might_sleep(api: &'static str) -> Result<(), InvalidContext> {
    let Some(frame) = current_irq() else {
        return Ok(());
    };

    let error = InvalidContext {
        api,
        irq: frame.irq,
        handler: frame.handler,
    };
    FIRST_INVALID.with(|first| {
        if first.get().is_none() {
            first.set(Some(error));
        }
    });
    // Relaxed: the counter orders nothing, it is only read for reports.
    let count = SLEEP_VIOLATIONS.fetch_add(1, Ordering::Relaxed) + 1;
    if count <= 10 || count.is_power_of_two() {
        tracing::error!(
            target: "irq",
            api,
            irq = frame.irq,
            handler = frame.handler,
            violations = count,
            "BUG: {error}"
        );
    }
    Err(error)
}

/// Returns the first `might_sleep()` failure since the current handler
/// chain entered hard-IRQ context, and clears it.
///
/// # Context
///
/// Any; never sleeps.
pub fn take_invalid_context() -> Option<InvalidContext> {
    FIRST_INVALID.with(Cell::take)
}

/// Marks the running top half's call as paying `cost`, a one-time cost
/// that is not the handler's work, such as the start of a runtime on the
/// first use of a queue. If the call runs over its budget, it is logged
/// with the cost at debug level, not reported as an overrun. Outside a
/// top half it does nothing.
///
/// # Context
///
/// Any; never sleeps.
pub fn excuse_one_time_cost(cost: &'static str) {
    if in_hardirq() {
        EXCUSED.with(|excused| excused.set(Some(cost)));
    }
}

/// Returns the cost marked by [`excuse_one_time_cost`] in the call that
/// just ended, and clears it.
pub(crate) fn take_excused_cost() -> Option<&'static str> {
    EXCUSED.with(Cell::take)
}

/// Returns how many times `might_sleep()` failed in this process.
pub fn might_sleep_violations() -> u64 {
    SLEEP_VIOLATIONS.load(Ordering::Relaxed)
}

/// Returns how many wake-ups were performed inside a handler because more
/// than [`DEFERRED_WAKE_CAPACITY`] were requested by one handler chain.
pub fn inline_wake_count() -> u64 {
    INLINE_WAKES.load(Ordering::Relaxed)
}

/// Wakes `waker` now in task context, or records it for the end of the
/// handler chain in hard-IRQ context.
///
/// This is the hook through which a top half's `queue_work` avoids the
/// wake-up system call: the CPU thread performs the wake-up when the
/// [`HardIrqGuard`] is dropped.
///
/// # Context
///
/// Any; never sleeps. In hard-IRQ context it does not allocate, and it makes
/// a system call only when more than [`DEFERRED_WAKE_CAPACITY`] wake-ups are
/// pending.
pub fn wake_or_defer(waker: Waker) {
    if !in_hardirq() {
        waker.wake();
        return;
    }

    let overflow = DEFERRED.with(|deferred| deferred.borrow_mut().push(waker));
    if let Some(waker) = overflow {
        INLINE_WAKES.fetch_add(1, Ordering::Relaxed);
        waker.wake();
    }
}

/// Enters hard-IRQ context on this thread for a handler of line `irq`.
///
/// The context ends, and the deferred wake-ups run, when the guard is
/// dropped. Use [`HardIrqGuard::set_handler`] to move along a shared line's
/// handler chain without leaving the context.
///
/// # Panics
///
/// Panics if the thread is already in hard-IRQ context: hard IRQs never nest,
/// so a nested entry is a bug in the simulated CPU, not in a driver.
///
/// # Context
///
/// Task context only (a simulated CPU thread between handler chains).
pub fn enter_hardirq(irq: u32, handler: &'static str) -> HardIrqGuard {
    CURRENT.with(|current| {
        if let Some(running) = current.get() {
            panic!(
                "hard IRQs never nest: irq {irq} ({handler:?}) entered while irq {} ({:?}) runs",
                running.irq, running.handler
            );
        }
        current.set(Some(IrqFrame { irq, handler }));
    });
    FIRST_INVALID.with(|first| first.set(None));
    HardIrqGuard {
        _not_send: std::marker::PhantomData,
    }
}

/// Proof that this thread is in hard-IRQ context; dropping it leaves the
/// context and performs the deferred wake-ups.
#[must_use = "hard-IRQ context ends when the guard is dropped"]
pub struct HardIrqGuard {
    /// The context is per thread, so the guard must stay on its thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl HardIrqGuard {
    /// Names the handler now running on the line, for diagnostics.
    ///
    /// # Context
    ///
    /// Hard-IRQ context, on the CPU thread that holds the guard; never sleeps.
    pub fn set_handler(&self, handler: &'static str) {
        CURRENT.with(|current| {
            if let Some(frame) = current.get() {
                current.set(Some(IrqFrame { handler, ..frame }));
            }
        });
    }

    /// Leaves hard-IRQ context and returns how many deferred wake-ups ran.
    ///
    /// # Context
    ///
    /// Hard-IRQ context, on the CPU thread that holds the guard; runs the deferred wake-ups.
    pub fn exit(self) -> usize {
        let woken = leave_hardirq();
        std::mem::forget(self);
        woken
    }
}

impl Drop for HardIrqGuard {
    fn drop(&mut self) {
        leave_hardirq();
    }
}

impl fmt::Debug for HardIrqGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HardIrqGuard")
            .field("frame", &current_irq())
            .finish()
    }
}

/// Clears the frame, then wakes what the handler chain recorded.
fn leave_hardirq() -> usize {
    CURRENT.with(|current| current.set(None));

    let mut woken = 0;
    loop {
        // Take one waker at a time so that the RefCell is not borrowed while
        // `wake` runs code that could defer again.
        let Some(waker) = DEFERRED.with(|deferred| deferred.borrow_mut().pop()) else {
            return woken;
        };
        waker.wake();
        woken += 1;
    }
}

/// A fixed-capacity stack of wakers; it never allocates.
struct DeferredWakes {
    slots: [Option<Waker>; DEFERRED_WAKE_CAPACITY],
    len: usize,
}

impl DeferredWakes {
    const fn new() -> Self {
        Self {
            slots: [const { None }; DEFERRED_WAKE_CAPACITY],
            len: 0,
        }
    }

    /// Stores `waker`, or hands it back when full. A waker that would wake
    /// the same task as a stored one is dropped, since one wake-up suffices.
    fn push(&mut self, waker: Waker) -> Option<Waker> {
        if self.slots[..self.len]
            .iter()
            .flatten()
            .any(|stored| stored.will_wake(&waker))
        {
            return None;
        }
        if self.len == DEFERRED_WAKE_CAPACITY {
            return Some(waker);
        }
        self.slots[self.len] = Some(waker);
        self.len += 1;
        None
    }

    fn pop(&mut self) -> Option<Waker> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.slots[self.len].take()
    }
}

/// A waiting API was called in hard-IRQ context, where sleeping is a bug.
///
/// The kernel prints "BUG: sleeping function called from invalid context"
/// for the same mistake; this error carries the same facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidContext {
    /// The API that may sleep, e.g. `"flush_work"`.
    pub api: &'static str,
    /// The IRQ line whose top half made the call.
    pub irq: u32,
    /// The handler that made the call.
    pub handler: &'static str,
}

impl fmt::Display for InvalidContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sleeping function called from invalid context: {} called in hard-IRQ context \
             by handler {:?} of irq {}; defer the waiting to a work item or an IRQ thread",
            self.api, self.handler, self.irq
        )
    }
}

impl std::error::Error for InvalidContext {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn task_context_by_default() {
        assert!(in_task());
        assert!(!in_hardirq());
        assert!(!in_interrupt());
        assert_eq!(current_irq(), None);
    }

    #[test]
    fn hardirq_inside_guard_only() {
        let guard = enter_hardirq(5, "timer");
        assert!(in_hardirq());
        assert!(in_interrupt());
        assert!(!in_task());
        drop(guard);
        assert!(in_task());
    }

    /// A waiting API called in a top half fails, naming the API, the line and
    /// the handler.
    #[test]
    fn might_sleep_names_api_line_handler() {
        let guard = enter_hardirq(17, "uart");
        guard.set_handler("uart-rx");
        let error = might_sleep("flush_work").unwrap_err();
        drop(guard);

        assert_eq!(error.api, "flush_work");
        assert_eq!(error.irq, 17);
        assert_eq!(error.handler, "uart-rx");
        let message = error.to_string();
        assert!(message.contains("sleeping function called from invalid context"));
        assert!(message.contains("flush_work"));
        assert!(message.contains("irq 17"));
        assert!(message.contains("\"uart-rx\""));
        assert!(might_sleep("flush_work").is_ok());
    }

    #[test]
    fn wake_deferred_until_exit() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let guard = enter_hardirq(3, "nic");
        wake_or_defer(Waker::from(counter.clone()));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);

        assert_eq!(guard.exit(), 1);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wake_immediate_in_task() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        wake_or_defer(Waker::from(counter.clone()));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn duplicate_wakers_coalesce() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let guard = enter_hardirq(3, "nic");
        wake_or_defer(waker.clone());
        wake_or_defer(waker);
        assert_eq!(guard.exit(), 1);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn overflow_wakes_inline() {
        let wakers: Vec<_> = (0..=DEFERRED_WAKE_CAPACITY)
            .map(|_| Arc::new(CountingWaker(AtomicUsize::new(0))))
            .collect();
        let before = inline_wake_count();
        let guard = enter_hardirq(3, "nic");
        for waker in &wakers {
            wake_or_defer(Waker::from(waker.clone()));
        }
        assert_eq!(wakers[DEFERRED_WAKE_CAPACITY].0.load(Ordering::SeqCst), 1);
        assert!(inline_wake_count() > before);
        assert_eq!(guard.exit(), DEFERRED_WAKE_CAPACITY);
        assert!(wakers.iter().all(|w| w.0.load(Ordering::SeqCst) == 1));
    }

    #[test]
    #[should_panic(expected = "hard IRQs never nest")]
    fn nested_entry_panics() {
        let _outer = enter_hardirq(1, "a");
        let _inner = enter_hardirq(2, "b");
    }
}
