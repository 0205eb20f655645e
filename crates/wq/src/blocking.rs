//! Blocking forms of the waiting APIs, for callers outside async code: a
//! plain `main`, a module's exit function, a test, a synchronous work
//! function.
//!
//! Each one checks its context when called, exactly as its async form does,
//! and whether the thread may block, before it cancels, disables or starts
//! anything; then it parks the thread until the wait is over. Inside a multi-threaded
//! tokio runtime the worker thread is handed over with
//! `tokio::task::block_in_place` first; inside a current-thread runtime the
//! call fails with [`WaitError::BlockingInRuntime`], since blocking would
//! stop that runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::error::WaitError;
use crate::queue::Workqueue;
use crate::work::{DelayedWorkRef, WorkRef};

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Checks that this thread may block for `api`, before anything else
/// happens: a waiting API in hard-IRQ context fails as its async form does,
/// and one on a thread that drives a current-thread runtime fails with
/// [`WaitError::BlockingInRuntime`]. Either way nothing was cancelled,
/// disabled or started.
fn check_may_block(api: &'static str) -> Result<(), WaitError> {
    use tokio::runtime::{Handle, RuntimeFlavor};

    irq_sim::might_sleep(api)?;
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::CurrentThread) => Err(WaitError::BlockingInRuntime { api }),
        _ => Ok(()),
    }
}

/// Drives `future` to completion on this thread, which `check_may_block`
/// accepted.
fn block_on<T>(future: impl Future<Output = Result<T, WaitError>>) -> Result<T, WaitError> {
    let run = move || {
        let mut future = pin!(future);
        let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
        let mut context = Context::from_waker(&waker);
        loop {
            match future.as_mut().poll(&mut context) {
                Poll::Ready(output) => return output,
                Poll::Pending => thread::park(),
            }
        }
    };

    if tokio::runtime::Handle::try_current().is_ok() {
        // A multi-threaded runtime's worker: hand its other tasks over first.
        crate::queue::note_handed_over();
        tokio::task::block_in_place(run)
    } else {
        run()
    }
}

/// Blocking [`flush_work`](crate::flush_work).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn flush_work(work: impl WorkRef) -> Result<bool, WaitError> {
    check_may_block("flush_work")?;
    block_on(crate::flush_work(work))
}

/// Blocking [`flush_delayed_work`](crate::flush_delayed_work).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn flush_delayed_work(dwork: impl DelayedWorkRef) -> Result<bool, WaitError> {
    check_may_block("flush_delayed_work")?;
    block_on(crate::flush_delayed_work(dwork))
}

/// Blocking [`cancel_work_sync`](crate::cancel_work_sync).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn cancel_work_sync(work: impl WorkRef) -> Result<bool, WaitError> {
    check_may_block("cancel_work_sync")?;
    block_on(crate::cancel_work_sync(work))
}

/// Blocking [`cancel_delayed_work_sync`](crate::cancel_delayed_work_sync).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn cancel_delayed_work_sync(dwork: impl DelayedWorkRef) -> Result<bool, WaitError> {
    check_may_block("cancel_delayed_work_sync")?;
    block_on(crate::cancel_delayed_work_sync(dwork))
}

/// Blocking [`disable_work_sync`](crate::disable_work_sync).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn disable_work_sync(work: impl WorkRef) -> Result<bool, WaitError> {
    check_may_block("disable_work_sync")?;
    block_on(crate::disable_work_sync(work))
}

/// Blocking [`flush_workqueue`](crate::flush_workqueue).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn flush_workqueue(wq: &Workqueue) -> Result<(), WaitError> {
    check_may_block("flush_workqueue")?;
    block_on(crate::flush_workqueue(wq))
}

/// Blocking [`drain_workqueue`](crate::drain_workqueue).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn drain_workqueue(wq: &Workqueue) -> Result<(), WaitError> {
    check_may_block("drain_workqueue")?;
    block_on(crate::drain_workqueue(wq))
}

/// Blocking [`destroy_workqueue`](crate::destroy_workqueue).
///
/// # Errors
///
/// As the async form, plus [`WaitError::BlockingInRuntime`].
pub fn destroy_workqueue(wq: &Workqueue) -> Result<(), WaitError> {
    check_may_block("destroy_workqueue")?;
    block_on(crate::destroy_workqueue(wq))
}
