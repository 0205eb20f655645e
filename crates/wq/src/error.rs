//! Errors of the workqueue API, one enum per family of operations.

use std::fmt;

pub use irq_sim::InvalidContext;

/// A queueing rejected by the queue itself.
///
/// A queueing that returns `Ok(false)` (already pending, or disabled) is not
/// an error: it is the kernel's `false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue was destroyed with `destroy_workqueue`.
    Destroyed {
        /// Queue name.
        queue: String,
        /// Work item name.
        work: String,
    },
    /// The queue is draining: only its own work items may queue on it.
    Draining {
        /// Queue name.
        queue: String,
        /// Work item name.
        work: String,
    },
    /// Delayed work on a queue whose tokio runtime has no time driver.
    NoTimeDriver {
        /// Queue name.
        queue: String,
        /// Work item name.
        work: String,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Destroyed { queue, work } => write!(
                f,
                "cannot queue {work:?} on workqueue {queue:?}: the queue was destroyed; \
                 queue it on a live queue"
            ),
            QueueError::Draining { queue, work } => write!(
                f,
                "cannot queue {work:?} on workqueue {queue:?}: the queue is draining and \
                 accepts only work queued by its own work items; queue it after \
                 drain_workqueue returns"
            ),
            QueueError::NoTimeDriver { queue, work } => write!(
                f,
                "cannot delay {work:?} on workqueue {queue:?}: its tokio runtime has no time \
                 driver; build the runtime with enable_time() or enable_all()"
            ),
        }
    }
}

impl std::error::Error for QueueError {}

/// A waiting API (flush, cancel_sync, drain, destroy) that could not wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// Called in hard-IRQ context, where sleeping is a bug.
    InvalidContext(InvalidContext),
    /// A work function waited for its own item, which would never return.
    SelfWait {
        /// The waiting API, e.g. `"flush_work"`.
        api: &'static str,
        /// Work item name.
        work: String,
    },
    /// A work function flushed, drained or destroyed a queue on which its
    /// own item was queued while it ran. That queueing cannot start before
    /// the caller's run ends.
    SelfQueued {
        /// The waiting API, e.g. `"flush_workqueue"`.
        api: &'static str,
        /// Queue name.
        queue: String,
        /// Name of the work item that made the call.
        work: String,
    },
    /// A work function waited for the queue it runs on, which would never
    /// return.
    SelfFlush {
        /// The waiting API, e.g. `"flush_workqueue"`.
        api: &'static str,
        /// Queue name.
        queue: String,
        /// Name of the work item that made the call.
        work: String,
    },
    /// A work function flushed an item that cannot start before the caller
    /// returns. On a queue that runs one item at a time, the item waits
    /// behind the caller's run, or behind a queueing of the caller's own
    /// item. A cancel of that item is no error, because it takes the item
    /// off the queue.
    QueuedBehind {
        /// The waiting API, e.g. `"flush_work"`.
        api: &'static str,
        /// Name of the item waited for.
        work: String,
        /// Queue name.
        queue: String,
        /// Name of the work item that made the call.
        waiter: String,
    },
    /// A blocking wait was called on a thread that drives a current-thread
    /// tokio runtime, which would stop that runtime.
    BlockingInRuntime {
        /// The waiting API.
        api: &'static str,
    },
    /// `destroy_workqueue` of a system queue, which `schedule_work` and
    /// every user of the queue rely on for the life of the program.
    SystemQueue {
        /// The waiting API, `"destroy_workqueue"`.
        api: &'static str,
        /// Queue name.
        queue: String,
    },
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::InvalidContext(error) => error.fmt(f),
            WaitError::SelfWait { api, work } => write!(
                f,
                "{api} called by work item {work:?} on itself would wait forever; \
                 return from the work function instead, or re-queue the item"
            ),
            WaitError::SelfQueued { api, queue, work } => write!(
                f,
                "{api} of workqueue {queue:?} called by work item {work:?} would wait forever: \
                 {work:?} was queued on {queue:?} while it ran, and that queueing cannot start \
                 before the caller returns; wait from outside, or queue the item after the wait"
            ),
            WaitError::SelfFlush { api, queue, work } => write!(
                f,
                "{api} called by work item {work:?} on its own workqueue {queue:?} would wait \
                 forever for the caller; wait from outside the queue"
            ),
            WaitError::QueuedBehind {
                api,
                work,
                queue,
                waiter,
            } => write!(
                f,
                "{api} of {work:?} called by work item {waiter:?} would wait forever: {work:?} is \
                 queued behind it on workqueue {queue:?}, which runs one item at a time; wait \
                 from outside the queue, or queue {work:?} elsewhere"
            ),
            WaitError::BlockingInRuntime { api } => write!(
                f,
                "blocking {api} called inside a current-thread tokio runtime would stop it; \
                 use the async {api} instead"
            ),
            WaitError::SystemQueue { api, queue } => write!(
                f,
                "{api} of system workqueue {queue:?} rejected: the system queues serve every \
                 user for the life of the program; destroy only queues you allocated"
            ),
        }
    }
}

// `InvalidContext` shows the message of the context error it wraps, so
// `source` returns what is below that error, not the error itself, which a
// reporter that prints the chain would print twice.
impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WaitError::InvalidContext(error) => error.source(),
            _ => None,
        }
    }
}

impl From<InvalidContext> for WaitError {
    fn from(error: InvalidContext) -> Self {
        WaitError::InvalidContext(error)
    }
}

/// The system workqueues could not be moved to a caller's runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The system workqueues already exist, on their own or another runtime.
    AlreadyInitialized,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::AlreadyInitialized => write!(
                f,
                "the system workqueues are already running; call init_system_workqueues \
                 before the first use of any system queue"
            ),
        }
    }
}

impl std::error::Error for InitError {}
