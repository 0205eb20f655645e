//! Workqueues with the Linux API, whose bottom halves run on tokio.
//!
//! A top half that must not sleep defers its work: it queues a [`Work`]
//! item, and a worker runs the item's function later in task context, where
//! it may `.await`, or block on a queue made for blocking work
//! ([`WqFlags::CPU_INTENSIVE`], [`system_long_wq`]). The names are
//! the kernel's, so that its documentation reads across:
//!
//! ```
//! use wq::{Work, schedule_work};
//!
//! static HELLO: Work = Work::new("hello", || println!("call function from queue"));
//!
//! assert!(schedule_work(&HELLO).unwrap()); // idle -> pending: true
//! wq::blocking::flush_work(&HELLO).unwrap(); // wait for the run
//! ```
//!
//! # Model
//!
//! - **Work items** come three ways: [`Work::new`] in a `static`
//!   (`DECLARE_WORK`), [`Work::from_fn`] allocated at run time (`INIT_WORK`),
//!   and [`DataWork`], which carries data its function reaches (a struct
//!   embedding a `work_struct`). [`DelayedWork`] adds a timer.
//! - **States.** An item is idle, pending (on a worklist or a timer),
//!   running, or running and pending again. Queueing a pending item returns
//!   false and changes nothing; an item never runs concurrently with itself;
//!   a running item may re-queue itself. The diagram, with each edge named
//!   after the function that takes it, is in `docs/workqueue.md`.
//! - **Queues.** [`alloc_workqueue`] with [`WqFlags`] and `max_active`,
//!   [`alloc_ordered_workqueue`], and the system queues ([`system_wq`],
//!   [`system_highpri_wq`], [`system_long_wq`], [`system_unbound_wq`]), which
//!   need no setup.
//! - **Waiting** ([`flush_work`], [`cancel_work_sync`], [`drain_workqueue`],
//!   ...) is async, with blocking forms in [`blocking`]. Each waiting API
//!   calls `might_sleep()`: in hard-IRQ context, or when a work function
//!   would wait for itself, it fails at once instead of hanging.
//!
//! # Context
//!
//! Every public function documents where it may be called. Queueing, the
//! non-waiting cancels and enable/disable may be called from a top half:
//! they never sleep, never allocate, and defer the wake-up of a sleeping
//! worker to the end of the handler chain (through
//! `irq_sim::context::wake_or_defer`).
//!
//! # Observability
//!
//! Trace events under target `workqueue`, at TRACE level:
//! `workqueue_queue_work`, `workqueue_activate_work`,
//! `workqueue_execute_start`, `workqueue_execute_end`. Lifecycle events
//! (allocation, destruction) are at DEBUG; anomalies (a panicking work
//! function, a clamped `max_active`, an unbalanced enable) at WARN or
//! ERROR. [`Workqueue::stats`] returns the counters and latency histograms.
//!
//! # Limitations
//!
//! - Workers are tokio tasks, not per-CPU kernel threads: `queue_work_on`
//!   records its CPU only in traces, and a high-priority queue is one whose
//!   tasks run on a separate runtime (when it gets one: see
//!   `WqFlags::HIGHPRI`), not one with a higher OS priority.
//! - One lock protects every queue's lists, as one worker pool's lock does
//!   in the kernel; queues of many busy simulated CPUs contend on it.

mod api;
pub mod blocking;
mod clock;
mod core;
mod error;
mod idle;
#[cfg(all(test, wq_loom))]
mod loom_tests;
mod queue;
mod stats;
mod sync;
mod system;
mod work;

pub use api::{
    MAX_DELAY, alloc_ordered_workqueue, alloc_workqueue, cancel_delayed_work,
    cancel_delayed_work_sync, cancel_work, cancel_work_sync, destroy_workqueue, disable_work,
    disable_work_sync, drain_workqueue, enable_work, flush_delayed_work, flush_work,
    flush_workqueue, mod_delayed_work, queue_delayed_work, queue_work, queue_work_on,
    schedule_delayed_work, schedule_work, take_cancelled_by_drain, work_pending,
};
pub use core::WorkCore;
pub use error::{InitError, InvalidContext, QueueError, WaitError};
pub use queue::{
    DEFAULT_IDLE_SPIN, HOG_THRESHOLD, WQ_DFL_ACTIVE, WQ_MAX_ACTIVE, Workqueue, WorkqueueBuilder,
    WqFlags,
};
pub use stats::WorkqueueStats;
pub use system::{
    init_system_workqueues, system_highpri_wq, system_long_wq, system_unbound_wq, system_wq,
};
pub use work::{BoxFuture, DataWork, DelayedWork, DelayedWorkRef, Work, WorkRef};
