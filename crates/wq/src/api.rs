//! The Linux workqueue API, under the Linux names.
//!
//! Functions that never sleep (queueing, non-waiting cancel, enable and
//! disable) may be called from anywhere, a top half included. The waiting
//! functions are async, and check their context when they are called, not
//! when they are first polled: in hard-IRQ context, or waiting for
//! themselves, they return a future that resolves at once to the error.

use std::future::Future;
use std::ptr;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use irq_sim::context::{self, might_sleep};

use crate::core::{self, Claim, IntakeClaim, Linked, Modified, Rejected, WorkCore, lock_pool};
use crate::error::{QueueError, WaitError};
use crate::queue::{self, RunId, Workqueue, WqFlags};
use crate::system::system_wq;
use crate::work::{DelayedWorkRef, ItemRef, WorkRef};

/// Queues `work` on `wq` (`queue_work`).
///
/// Returns `Ok(true)` when the item was idle and is now pending, and
/// `Ok(false)` when it was already pending (it keeps its place and runs
/// once) or is disabled. An item that is running is queued to run again
/// after the current run, on `wq`, even when the run is on another queue.
///
/// # Errors
///
/// [`QueueError::Destroyed`] after `destroy_workqueue`, and
/// [`QueueError::Draining`] while `drain_workqueue` runs, unless the caller
/// is a work function of `wq`.
///
/// # Context
///
/// Any, including a top half; never sleeps and does not allocate. In a top
/// half, the wake-up of a sleeping worker is deferred to the end of the
/// handler chain.
pub fn queue_work(wq: &Workqueue, work: impl WorkRef) -> Result<bool, QueueError> {
    queue_at(wq, &work, None, None)
}

/// Queues `work` on `wq`, naming the CPU that asked (`queue_work_on`).
///
/// irqlab's workers are tokio tasks, not per-CPU threads, so `cpu` is kept
/// only in the `workqueue_queue_work` trace event; the item runs on any
/// worker of `wq`, as it would on an unbound queue.
///
/// # Errors
///
/// As [`queue_work`].
///
/// # Context
///
/// As [`queue_work`].
pub fn queue_work_on(cpu: usize, wq: &Workqueue, work: impl WorkRef) -> Result<bool, QueueError> {
    queue_at(wq, &work, None, Some(cpu))
}

/// Queues `work` on [`system_wq`] (`schedule_work`).
///
/// # Errors
///
/// As [`queue_work`]; the system queues are never destroyed.
///
/// # Context
///
/// As [`queue_work`].
pub fn schedule_work(work: impl WorkRef) -> Result<bool, QueueError> {
    queue_work(system_wq(), work)
}

/// Queues `dwork` on `wq` after `delay` (`queue_delayed_work`).
///
/// Returns `Ok(false)`, changing nothing, when the item is already pending
/// (use [`mod_delayed_work`] to change its delay). A zero delay queues at
/// once, and a delay over [`MAX_DELAY`] waits [`MAX_DELAY`], as Linux cuts
/// a delay to `MAX_JIFFY_OFFSET`.
///
/// # Errors
///
/// As [`queue_work`].
///
/// # Context
///
/// As [`queue_work`]; the timer task's wake-up is deferred in a top half too.
pub fn queue_delayed_work(
    wq: &Workqueue,
    dwork: impl DelayedWorkRef,
    delay: Duration,
) -> Result<bool, QueueError> {
    queue_at(wq, &dwork, deadline_after(delay), None)
}

/// Queues `dwork` on [`system_wq`] after `delay` (`schedule_delayed_work`).
///
/// # Errors
///
/// As [`queue_work`].
///
/// # Context
///
/// As [`queue_work`].
pub fn schedule_delayed_work(
    dwork: impl DelayedWorkRef,
    delay: Duration,
) -> Result<bool, QueueError> {
    queue_delayed_work(system_wq(), dwork, delay)
}

/// Sets `dwork` to run on `wq` after `delay` from now, whether or not it is
/// pending (`mod_delayed_work`).
///
/// Returns `Ok(true)` when the item was pending and only its delay changed,
/// and `Ok(false)` when it was idle and is now queued (or is disabled). A
/// delay over [`MAX_DELAY`] waits [`MAX_DELAY`].
///
/// # Errors
///
/// As [`queue_work`].
///
/// # Context
///
/// As [`queue_work`]. It may spin for the few instructions another thread
/// needs to finish linking the same item.
pub fn mod_delayed_work(
    wq: &Workqueue,
    dwork: impl DelayedWorkRef,
    delay: Duration,
) -> Result<bool, QueueError> {
    let deadline = deadline_after(delay);
    let core_ref = dwork.work_core();
    let queue = &wq.shared().core;
    check_timer(wq, core_ref, deadline)?;
    loop {
        let modified = {
            let mut pool = lock_pool();
            check_accepts(&mut pool, wq, core_ref)?;
            check_timer(wq, core_ref, deadline)?;
            core::modify_deadline(&mut pool, core_ref, queue, deadline)
        };
        match modified {
            Modified::Moved(wake, leftovers) => {
                wake.into_iter().for_each(context::wake_or_defer);
                leftovers.settle();
                return Ok(true);
            }
            Modified::NotPending => match queue_at(wq, &dwork, deadline, None)? {
                true => return Ok(false),
                // Someone queued it meanwhile: modify that pending period.
                false if core_ref.is_pending() => continue,
                false => return Ok(false),
            },
            Modified::Busy => std::hint::spin_loop(),
            Modified::Drained(leftovers) => leftovers.settle(),
        }
    }
}

/// The maximum delay of delayed work: 100 years. A longer one, up to
/// `Duration::MAX`, waits this long.
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

fn deadline_after(delay: Duration) -> Option<tokio::time::Instant> {
    if delay.is_zero() {
        None
    } else {
        Some(tokio::time::Instant::now() + delay.min(MAX_DELAY))
    }
}

fn check_accepts(
    pool: &mut core::PoolGuard<'_>,
    wq: &Workqueue,
    work: &WorkCore,
) -> Result<(), QueueError> {
    let queue = &wq.shared().core;
    let from_own_work = || queue::current_run().is_some_and(|run| ptr::eq(run.queue, queue));
    core::check_accepts(pool, queue, from_own_work).map_err(|rejected| {
        let (queue, work) = (queue.name.to_string(), work.name().to_string());
        match rejected {
            Rejected::Draining => QueueError::Draining { queue, work },
            Rejected::Destroyed => QueueError::Destroyed { queue, work },
        }
    })
}

/// Claims and links one queueing; the shared body of every queueing API.
fn queue_at(
    wq: &Workqueue,
    work: &impl WorkRef,
    deadline: Option<tokio::time::Instant>,
    cpu: Option<usize>,
) -> Result<bool, QueueError> {
    let core_ref = work.work_core();
    let queue = &wq.shared().core;
    check_timer(wq, core_ref, deadline)?;

    // Step 1: the lock-free claim; most repeated queueings end here.
    let claim = if deadline.is_some() {
        match core_ref.claim() {
            Claim::Claimed(ticket) => IntakeClaim::Locked(ticket),
            Claim::AlreadyPending => IntakeClaim::AlreadyPending,
            Claim::Disabled => IntakeClaim::Disabled,
        }
    } else {
        core_ref.claim_for_intake()
    };
    let ticket = match claim {
        IntakeClaim::Push(ticket) | IntakeClaim::Locked(ticket) => ticket,
        IntakeClaim::AlreadyPending => {
            queue.counters.count_coalesced();
            return Ok(false);
        }
        IntakeClaim::Disabled => {
            queue.counters.count_rejected_disabled();
            return Ok(false);
        }
    };
    tracing::trace!(
        target: "workqueue",
        work = core_ref.name(),
        work_struct = core_ref.trace_id(),
        ticket,
        workqueue = %queue.name,
        cpu,
        "workqueue_queue_work"
    );

    // Step 2: hand the item over, on the intake stack or under the lock.
    let wake = match claim {
        IntakeClaim::Push(_) => push(wq, work, core_ref, ticket)?,
        _ => link_locked(wq, work, core_ref, ticket, deadline)?,
    };

    // Step 3: wake a worker or the timer task, deferred in a top half.
    if deadline.is_none() {
        tracing::trace!(
            target: "workqueue",
            work = core_ref.name(),
            work_struct = core_ref.trace_id(),
            workqueue = %queue.name,
            "workqueue_activate_work"
        );
    }
    if let Some(waker) = wake {
        context::wake_or_defer(waker);
    }
    Ok(true)
}

/// Pushes a claimed queueing on the queue's intake stack, without the pool
/// lock. Returns the parked worker to wake, if one was claimed, or in a top
/// half the queue's waker, which claims one when the handler has returned.
fn push(
    wq: &Workqueue,
    work: &impl WorkRef,
    core_ref: &WorkCore,
    ticket: u64,
) -> Result<Option<Waker>, QueueError> {
    let queue = &wq.shared().core;
    core::prefetch_intake(queue);
    let from_own_work = || queue::current_run().is_some_and(|run| ptr::eq(run.queue, queue));
    if let Err(rejected) = core::accepts_unlocked(queue, from_own_work) {
        core::abandon_intake(core_ref, ticket, &mut lock_pool());
        return Err(rejection(rejected, queue, core_ref));
    }

    match core::push_intake(core_ref, work.item_ref(), ticket, queue) {
        // In a top half even the check for a parked worker waits for the
        // handler to return: waking the queue's waker claims one, if any.
        // The check reads the idle bitmap, which a worker writes when it
        // parks. With the check in the top half, `queue_work` there measured
        // 2.3 and 2.4 times as slow with the worker asleep as awake, and
        // 1.0 to 1.7 without it (`cargo bench --bench top_half_queue`).
        core::Pushed::Queued if context::in_hardirq() => {
            Ok(Some(Waker::from(Arc::clone(wq.shared()))))
        }
        core::Pushed::Queued => Ok(core::claim_idle(queue)),
        core::Pushed::Destroyed => {
            let released = core::withdraw_push(&mut lock_pool(), core_ref, ticket);
            drop(released);
            Err(rejection(Rejected::Destroyed, queue, core_ref))
        }
    }
}

/// Links a claimed queueing under the pool lock: delayed work, and an item
/// whose node still waits on an intake stack. Returns the task to wake.
fn link_locked(
    wq: &Workqueue,
    work: &impl WorkRef,
    core_ref: &WorkCore,
    ticket: u64,
    deadline: Option<tokio::time::Instant>,
) -> Result<Option<Waker>, QueueError> {
    let queue = &wq.shared().core;
    let item: ItemRef = work.item_ref();
    let linked = {
        let mut pool = lock_pool();
        // Checked again under the lock, which orders it after the timer
        // task's store and its cancel of the timer list.
        let accepted = check_accepts(&mut pool, wq, core_ref)
            .and_then(|()| check_timer(wq, core_ref, deadline));
        match accepted {
            Ok(()) => Ok(core::link_pending(
                &mut pool, core_ref, item, ticket, queue, deadline,
            )),
            Err(error) => {
                // End the claimed period: nothing was linked, and the
                // queueing fails, so it must not count as pending.
                core::abandon(&mut pool, core_ref, ticket);
                Err(error)
            }
        }
    };
    match linked? {
        Linked::Queued(wake, leftovers) => {
            leftovers.settle();
            Ok(wake)
        }
        // Dropped here, after unlocking: it may be the last reference.
        Linked::Cancelled(item) => {
            drop(item);
            Ok(None)
        }
    }
}

/// Rejects delayed work on a queue whose runtime has no time driver.
fn check_timer(
    wq: &Workqueue,
    work: &WorkCore,
    deadline: Option<tokio::time::Instant>,
) -> Result<(), QueueError> {
    // Relaxed: under the pool lock the lock orders it; outside, a stale
    // `true` only sends the caller on to the check under the lock.
    if deadline.is_some()
        && !wq
            .shared()
            .timer_ok
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(QueueError::NoTimeDriver {
            queue: wq.name().to_string(),
            work: work.name().to_string(),
        });
    }
    Ok(())
}

fn rejection(rejected: Rejected, queue: &core::QueueCore, work: &WorkCore) -> QueueError {
    let (queue, work) = (queue.name.to_string(), work.name().to_string());
    match rejected {
        Rejected::Draining => QueueError::Draining { queue, work },
        Rejected::Destroyed => QueueError::Destroyed { queue, work },
    }
}

/// Cancels `work` if it is pending, without waiting (`cancel_work`).
///
/// Returns true when the item was pending; its function then does not run
/// for that queueing. A run already in progress may still be running on
/// return.
///
/// # Context
///
/// Any, including a top half; never sleeps.
pub fn cancel_work(work: impl WorkRef) -> bool {
    let outcome = core::cancel(&mut lock_pool(), work.work_core());
    drop(outcome.released);
    outcome.was_pending
}

/// Cancels `dwork` if it is pending, on its timer or queued, without waiting
/// (`cancel_delayed_work`).
///
/// # Context
///
/// Any, including a top half; never sleeps.
pub fn cancel_delayed_work(dwork: impl DelayedWorkRef) -> bool {
    cancel_work(dwork)
}

/// Cancels `work` and waits until it is neither pending nor running
/// (`cancel_work_sync`).
///
/// While it waits, the item is disabled, so a run in progress cannot
/// re-queue it. Resolves to true when the item was pending.
///
/// # Errors
///
/// [`WaitError::InvalidContext`] in hard-IRQ context and
/// [`WaitError::SelfWait`] from the item's own function.
///
/// # Cancel safety
///
/// The cancel happens when the function is called. Dropping the future
/// before it resolves re-enables the item without waiting for a run in
/// progress.
///
/// # Context
///
/// Task context; sleeps.
pub fn cancel_work_sync(
    work: impl WorkRef,
) -> impl Future<Output = Result<bool, WaitError>> + Send + 'static {
    cancel_and_wait("cancel_work_sync", work.item_ref(), true)
}

/// Cancels `dwork` and waits until it is neither pending nor running
/// (`cancel_delayed_work_sync`).
///
/// # Errors
///
/// As [`cancel_work_sync`].
///
/// # Context
///
/// Task context; sleeps.
pub fn cancel_delayed_work_sync(
    dwork: impl DelayedWorkRef,
) -> impl Future<Output = Result<bool, WaitError>> + Send + 'static {
    cancel_and_wait("cancel_delayed_work_sync", dwork.item_ref(), true)
}

/// Checks the context, then at once disables and cancels `item`; the
/// returned future waits for the run in progress and re-enables the item
/// unless `enable_after` is false. It resolves to true when the item was
/// pending.
fn cancel_and_wait(
    api: &'static str,
    item: ItemRef,
    enable_after: bool,
) -> impl Future<Output = Result<bool, WaitError>> + Send + 'static {
    let started = check_not_self_wait(api, item.core()).map(|_| {
        let core_ref = item.core();
        let disabled = core_ref.disable();
        let enable = enable_after.then(|| EnableOnDrop {
            item: item.clone(),
            armed: disabled,
        });
        let outcome = core::cancel(&mut lock_pool(), core_ref);
        drop(outcome.released);
        let ticket = core_ref.latest_ticket();
        (item, ticket, outcome.was_pending, enable)
    });
    async move {
        let (item, ticket, was_pending, enable) = started?;
        item.core().wait_done(ticket).await;
        drop(enable);
        Ok(was_pending)
    }
}

/// Lowers the disable depth raised by a cancel, when the cancel ends or is
/// dropped.
struct EnableOnDrop {
    item: ItemRef,
    armed: bool,
}

impl Drop for EnableOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.item.core().enable();
        }
    }
}

/// Waits until the last queueing of `work` has finished (`flush_work`).
///
/// Resolves to true when it had to wait, and to false at once when the item
/// was idle. A delayed item on its timer is waited for, delay included; use
/// [`flush_delayed_work`] to cut the delay short.
///
/// # Errors
///
/// [`WaitError::InvalidContext`] in hard-IRQ context,
/// [`WaitError::SelfWait`] from the item's own function, and
/// [`WaitError::QueuedBehind`] from a work function the item waits behind
/// on a queue that runs one item at a time.
///
/// # Cancel safety
///
/// Cancel safe: dropping the future changes nothing.
///
/// # Context
///
/// Task context; sleeps.
pub fn flush_work(
    work: impl WorkRef,
) -> impl Future<Output = Result<bool, WaitError>> + Send + 'static {
    let checked =
        check_may_wait("flush_work", work.work_core()).map(|()| start_flush(work.item_ref()));
    async move { Ok(checked?.wait().await) }
}

/// A flush whose target was fixed when the waiting API was called: the
/// latest queueing at the call, and whether it had already finished then.
/// Fixing both at the call, not at the first poll, keeps the result from
/// depending on how soon the caller polls.
struct Flush {
    item: ItemRef,
    ticket: u64,
    idle_at_call: bool,
}

fn start_flush(item: ItemRef) -> Flush {
    let ticket = item.core().latest_ticket();
    let idle_at_call = item.core().is_done(ticket);
    Flush {
        item,
        ticket,
        idle_at_call,
    }
}

impl Flush {
    /// Waits for the target queueing; returns true unless the item was idle
    /// at the call.
    async fn wait(self) -> bool {
        if self.idle_at_call {
            return false;
        }
        self.item.core().wait_done(self.ticket).await;
        true
    }
}

/// Queues `dwork` now if it waits on its timer, then waits for it
/// (`flush_delayed_work`).
///
/// # Errors
///
/// As [`flush_work`].
///
/// # Context
///
/// Task context; sleeps.
pub fn flush_delayed_work(
    dwork: impl DelayedWorkRef,
) -> impl Future<Output = Result<bool, WaitError>> + Send + 'static {
    let api = "flush_delayed_work";
    let checked = check_not_self_wait(api, dwork.work_core()).and_then(|run| {
        check_not_behind_run(api, dwork.work_core(), run)?;
        // Cut the delay short now, at the call. The target is taken under
        // the same lock, before any worker is woken: a worker that started
        // the item first would make the flush find it idle.
        let mut leftovers = core::Leftovers::default();
        let mut pool = lock_pool();
        let wake = core::activate(&mut pool, dwork.work_core(), &mut leftovers);
        let flush = start_flush(dwork.item_ref());
        drop(pool);
        leftovers.settle();
        if let Some(waker) = wake {
            waker.wake();
        }
        // Moved off its timer, the item may now wait behind the caller's
        // own item on a queue that runs one item at a time.
        check_not_behind_own_item(api, dwork.work_core(), run)?;
        Ok(flush)
    });
    async move { Ok(checked?.wait().await) }
}

/// Waits for every item queued on `wq` before the call to finish
/// (`flush_workqueue`). Items queued later do not extend the wait, and
/// delayed items still on their timers are not waited for.
///
/// # Errors
///
/// [`WaitError::InvalidContext`] in hard-IRQ context,
/// [`WaitError::SelfFlush`] from a work function of `wq`, and
/// [`WaitError::SelfQueued`] from a work function whose own item was
/// queued on `wq` while it ran (found when the future runs).
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Context
///
/// Task context; sleeps.
pub fn flush_workqueue(
    wq: &Workqueue,
) -> impl Future<Output = Result<(), WaitError>> + Send + 'static {
    let api = "flush_workqueue";
    let checked = check_may_wait_queue(api, wq).map(|()| wq.clone());
    async move {
        let wq = checked?;
        flush_queue(&wq, false, api).await
    }
}

/// Waits for what is queued on `wq` now, as `flush_workqueue` does, timer
/// lists included if `with_timers`.
async fn flush_queue(
    wq: &Workqueue,
    with_timers: bool,
    api: &'static str,
) -> Result<(), WaitError> {
    let queue = &wq.shared().core;
    let (targets, leftovers) = {
        let mut pool = lock_pool();
        let leftovers = core::drain_intake(&mut pool, queue);
        let targets = core::flush_targets(&mut pool, queue, with_timers);
        (targets, leftovers)
    };
    leftovers.settle();
    // A work function whose own item was queued on `wq` while it ran would
    // wait for a run that cannot start before it returns: that queueing
    // waits on `wq` for the caller's run to end. The caller is the run that
    // polls this future, which need not be the one that made it.
    if let Some(run) = queue::current_run()
        && let Some((item, _)) = targets
            .iter()
            .find(|(item, _)| ptr::eq(item.core(), run.item))
    {
        return Err(WaitError::SelfQueued {
            api,
            queue: queue.name.to_string(),
            work: item.core().name().to_string(),
        });
    }
    for (item, ticket) in targets {
        item.core().wait_done(ticket).await;
    }
    Ok(())
}

/// Flushes `wq` until it is empty (`drain_workqueue`).
///
/// While it drains, only work functions of `wq` may queue on it; other
/// queueing fails with [`QueueError::Draining`]. Delayed items armed before
/// the drain are waited for until they have run, with a warning when one
/// is due a second or more later, because Linux would not wait for them. A
/// delayed item that the queue's own work arms during the drain is
/// cancelled with a warning, as Linux turns it away when its timer fires,
/// and [`take_cancelled_by_drain`] reports it. Draining an idle queue returns at once. Drains may overlap;
/// the queue is live again when the last one ends.
///
/// # Errors
///
/// As [`flush_workqueue`]. After a [`WaitError::SelfQueued`] the drain has
/// ended and the queue is live.
///
/// # Context
///
/// Task context; sleeps.
pub fn drain_workqueue(
    wq: &Workqueue,
) -> impl Future<Output = Result<(), WaitError>> + Send + 'static {
    let api = "drain_workqueue";
    let checked = check_may_wait_queue(api, wq).map(|()| wq.clone());
    async move {
        let wq = checked?;
        drain(&wq, core::Phase::Live, api).await
    }
}

/// Counts a drain out when it ends, or when its future is dropped first.
struct DrainEnd<'a> {
    queue: &'a core::QueueCore,
    after: core::Phase,
}

impl Drop for DrainEnd<'_> {
    fn drop(&mut self) {
        let leftovers = core::end_drain(&mut lock_pool(), self.queue, self.after);
        leftovers.settle();
    }
}

/// The wait for delayed items, armed before a drain, past which the drain
/// warns: a driver's remove that forgot to cancel its delayed work blocks
/// that long, where Linux's would return.
const LONG_DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Drains `wq`, then leaves it in `after` (live once no other drain runs),
/// or live if the drain fails.
async fn drain(wq: &Workqueue, after: core::Phase, api: &'static str) -> Result<(), WaitError> {
    let queue = &wq.shared().core;
    let began = tokio::time::Instant::now();
    let long_after = began + LONG_DRAIN_WAIT;
    let (leftovers, (armed, latest)) = {
        let mut pool = lock_pool();
        let leftovers = core::begin_drain(&mut pool, queue);
        (
            leftovers,
            core::timers_due_after(&mut pool, queue, long_after),
        )
    };
    leftovers.settle();
    let mut end = DrainEnd { queue, after };
    if let Some(latest) = latest {
        // Measured from the cutoff's instant, so that it is never under a
        // second. "Up to", because a cancel during the drain ends it sooner.
        let wait_ms = latest.saturating_duration_since(began).as_millis();
        tracing::warn!(
            target: "workqueue",
            workqueue = %queue.name,
            delayed = armed,
            wait_ms,
            "{api} may wait up to {wait_ms} ms for {armed} delayed item(s) armed before it \
             and due in a second or more; Linux would not wait, and their timers would fire on \
             a drained or freed queue: cancel them first with cancel_delayed_work_sync"
        );
    }

    let mut rounds = 0_u64;
    loop {
        if let Err(error) = flush_queue(wq, true, api).await {
            end.after = core::Phase::Live;
            return Err(error);
        }
        let mut cancels = Vec::new();
        let (empty, leftovers) = {
            let mut pool = lock_pool();
            let leftovers = core::drain_intake(&mut pool, queue);
            core::cancel_drain_rearms(&mut pool, queue, &mut cancels);
            (core::is_empty(&mut pool, queue), leftovers)
        };
        leftovers.settle();
        crate::queue::report_drain_cancels(queue, cancels.into_iter());
        if empty {
            return Ok(());
        }
        // An item being cancelled elsewhere may still sit on the timer
        // list, with nothing to wait for: let the canceller run.
        tokio::task::yield_now().await;
        rounds += 1;
        if rounds.is_power_of_two() && rounds >= 16 {
            tracing::warn!(
                target: "workqueue",
                workqueue = %queue.name,
                rounds,
                "drain_workqueue is still flushing: work items keep re-queueing themselves"
            );
        }
    }
}

/// Drains `wq` and destroys it (`destroy_workqueue`). Later queueing on any
/// handle of it fails with [`QueueError::Destroyed`].
///
/// # Errors
///
/// As [`flush_workqueue`], and [`WaitError::SystemQueue`] for a system
/// queue. On an error the queue is not destroyed: it is live, and the call
/// may be repeated from outside the queue's work. It takes the queue by
/// reference, as the blocking form does, so that the caller keeps it to
/// retry. Once it is destroyed, queueing through any handle fails.
///
/// # Context
///
/// Task context; sleeps.
pub fn destroy_workqueue(
    wq: &Workqueue,
) -> impl Future<Output = Result<(), WaitError>> + Send + 'static {
    let api = "destroy_workqueue";
    let checked = check_may_wait_queue(api, wq).and_then(|()| {
        if crate::system::is_system_queue(wq) {
            return Err(WaitError::SystemQueue {
                api,
                queue: wq.name().to_string(),
            });
        }
        Ok(wq.clone())
    });
    async move {
        let wq = checked?;
        drain(&wq, core::Phase::Destroyed, api).await?;
        tracing::debug!(target: "workqueue", workqueue = wq.name(), "workqueue destroyed");
        Ok(())
    }
}

/// Allocates a workqueue (`alloc_workqueue`) on irqlab's own runtime, or on
/// the runtime given to [`init_system_workqueues`](crate::init_system_workqueues).
///
/// `max_active` 0 means [`WQ_DFL_ACTIVE`](crate::WQ_DFL_ACTIVE); larger than
/// [`WQ_MAX_ACTIVE`](crate::WQ_MAX_ACTIVE) is clamped with a warning. Use
/// [`Workqueue::builder`] to pick the runtime.
///
/// # Context
///
/// Task context; allocates and spawns tasks. In a top half it is reported
/// through `might_sleep`, and the queue is made all the same.
pub fn alloc_workqueue(
    name: impl Into<std::borrow::Cow<'static, str>>,
    flags: WqFlags,
    max_active: usize,
) -> Workqueue {
    Workqueue::builder(name)
        .flags(flags)
        .max_active(max_active)
        .build()
}

/// Allocates an ordered workqueue: one item at a time, in queueing order
/// (`alloc_ordered_workqueue`).
///
/// # Context
///
/// Task context; allocates and spawns tasks. In a top half it is reported
/// through `might_sleep`, and the queue is made all the same.
pub fn alloc_ordered_workqueue(
    name: impl Into<std::borrow::Cow<'static, str>>,
    flags: WqFlags,
) -> Workqueue {
    Workqueue::builder(name).flags(flags).ordered().build()
}

/// Returns true, once, if a drain cancelled `work` since the last call: the
/// queue's own work, usually the item itself, armed its timer while the
/// queue drained (see [`drain_workqueue`]). That is a bug of the item's
/// owner, who should have cancelled it first; a module's unload reports it.
///
/// # Context
///
/// Task context; takes the pool lock.
pub fn take_cancelled_by_drain(work: impl WorkRef) -> bool {
    core::take_cancelled_by_drain(&mut lock_pool(), work.work_core())
}

/// Disables `work` (`disable_work`): raises its disable depth and cancels it
/// if pending. Until [`enable_work`] brings the depth back to zero,
/// queueing it returns false. Returns true when the item was pending.
///
/// A depth of 65,535 is the limit; one more disable logs a warning and
/// changes nothing but the cancel.
///
/// # Context
///
/// Any, including a top half; never sleeps.
pub fn disable_work(work: impl WorkRef) -> bool {
    let core_ref = work.work_core();
    if !core_ref.disable() {
        tracing::warn!(
            target: "workqueue",
            work = core_ref.name(),
            "disable_work: disable depth at its limit of {}, not raised",
            core::MAX_DISABLE_DEPTH
        );
    }
    cancel_work(work)
}

/// Disables `work` and waits for a run in progress (`disable_work_sync`).
///
/// # Errors
///
/// As [`cancel_work_sync`].
///
/// # Context
///
/// Task context; sleeps.
pub fn disable_work_sync(
    work: impl WorkRef,
) -> impl Future<Output = Result<bool, WaitError>> + Send + 'static {
    cancel_and_wait("disable_work_sync", work.item_ref(), false)
}

/// Lowers the disable depth of `work` (`enable_work`). Returns true when the
/// depth reached zero, so the item can be queued again.
///
/// An enable at depth zero is unbalanced: it logs a warning, leaves the
/// depth at zero and returns true, as Linux 6.10's `enable_work` warns of
/// an underflow and returns true.
///
/// # Context
///
/// Any, including a top half; never sleeps.
pub fn enable_work(work: impl WorkRef) -> bool {
    let core_ref = work.work_core();
    match core_ref.enable() {
        Some(depth) => depth == 0,
        None => {
            tracing::warn!(
                target: "workqueue",
                work = core_ref.name(),
                "unbalanced enable_work: the item is not disabled"
            );
            true
        }
    }
}

/// Returns true while `work` is pending (`work_pending`).
///
/// # Context
///
/// Any; never sleeps.
pub fn work_pending(work: impl WorkRef) -> bool {
    work.work_core().is_pending()
}

/// Checks that the caller may wait for the run of `item` that a cancel
/// leaves: not in a top half, and not from `item`'s own function. Returns
/// the caller's run, if it is a work function.
///
/// A cancel takes an item pending behind the caller off its list, so it
/// does not wait for it to start, and needs no more checks. Linux's
/// `start_flush_work` likewise skips its one-at-a-time check for a cancel.
fn check_not_self_wait(api: &'static str, item: &WorkCore) -> Result<Option<RunId>, WaitError> {
    might_sleep(api)?;
    let run = queue::current_run();
    if let Some(run) = run
        && ptr::eq(run.item, item)
    {
        return Err(WaitError::SelfWait {
            api,
            work: item.name().to_string(),
        });
    }
    Ok(run)
}

/// Checks that the caller may wait for `item` to be started and finished:
/// as `check_not_self_wait`, and not while `item` waits behind the caller
/// on a queue that runs one item at a time.
fn check_may_wait(api: &'static str, item: &WorkCore) -> Result<(), WaitError> {
    let run = check_not_self_wait(api, item)?;
    check_not_behind_run(api, item, run)?;
    check_not_behind_own_item(api, item, run)
}

/// Checks that `item` is not pending behind `run`, the caller's run, on
/// the caller's queue when that queue runs one item at a time: it could
/// not start before the caller returns.
fn check_not_behind_run(
    api: &'static str,
    item: &WorkCore,
    run: Option<RunId>,
) -> Result<(), WaitError> {
    let Some(run) = run else {
        return Ok(());
    };
    // SAFETY: `run.queue` belongs to the run whose function is on this
    // thread's stack, so it is alive.
    let queue = unsafe { &*run.queue };
    if queue.max_active == 1 && core::is_pending_on(&mut lock_pool(), item, queue) {
        return Err(queued_behind(api, item, queue.name.to_string(), run));
    }
    Ok(())
}

/// Checks that `item` does not wait, on another queue that runs one item
/// at a time, behind a queueing of the item of `run`, the caller's run:
/// that queueing cannot start before the caller returns.
fn check_not_behind_own_item(
    api: &'static str,
    item: &WorkCore,
    run: Option<RunId>,
) -> Result<(), WaitError> {
    let Some(run) = run else {
        return Ok(());
    };
    // SAFETY: `run.item` belongs to the run whose function is on this
    // thread's stack, so it is alive.
    let waiter = unsafe { &*run.item };
    let mut leftovers = core::Leftovers::default();
    let behind = core::waits_behind_item(&mut lock_pool(), item, waiter, &mut leftovers);
    leftovers.settle();
    match behind {
        Some(queue) => Err(queued_behind(api, item, queue, run)),
        None => Ok(()),
    }
}

/// Returns the error of a wait of `run` for `item`, which waits behind it
/// on `queue`.
fn queued_behind(api: &'static str, item: &WorkCore, queue: String, run: RunId) -> WaitError {
    // SAFETY: as in the callers, `run.item` is alive.
    let waiter = unsafe { &*run.item };
    WaitError::QueuedBehind {
        api,
        work: item.name().to_string(),
        queue,
        waiter: waiter.name().to_string(),
    }
}

/// Checks that the caller may wait for all of `wq`.
fn check_may_wait_queue(api: &'static str, wq: &Workqueue) -> Result<(), WaitError> {
    might_sleep(api)?;
    let queue = &wq.shared().core;
    match queue::current_run() {
        Some(run) if ptr::eq(run.queue, queue) => {
            // SAFETY: `run.item` is the item whose function is on this
            // thread's stack right now, so it is alive.
            let work = unsafe { &*run.item }.name().to_string();
            Err(WaitError::SelfFlush {
                api,
                queue: queue.name.to_string(),
                work,
            })
        }
        _ => Ok(()),
    }
}
