//! Workqueues: the handle, its flags, and the tokio tasks that run it.
//!
//! Each queue has up to `max_active` worker tasks and one timer task on its
//! tokio runtime. A worker takes items from the queue's worklist in order
//! and runs them; while it runs one, the queue keeps one more worker idle
//! (spawned from the worker, in task context) as long as `max_active`
//! allows, so that a queueing from a top half never has to spawn anything.
//! The timer task moves delayed items to the worklist when they are due.

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::future::{Future, poll_fn};
use std::ops::BitOr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use irq_sim::clock::duration_nanos;

use crate::clock::{self, Stamp};
use crate::core::{self, QueueCore, Started, WorkCore, lock_pool};
use crate::stats::WorkqueueStats;
use crate::work::{Call, ItemRef};

/// Maximum `max_active` of a queue (`WQ_MAX_ACTIVE`). Larger requests are
/// clamped with a warning.
///
/// 512 and half of it for the default are Linux's values from 2010 until
/// October 2024, when it raised them to 2048 and 1024. The kernels of
/// the classic module examples, and of most courses, have the old ones.
pub const WQ_MAX_ACTIVE: usize = 512;

/// `max_active` of a queue allocated with 0 (`WQ_DFL_ACTIVE`).
pub const WQ_DFL_ACTIVE: usize = WQ_MAX_ACTIVE / 2;

/// Flags of [`alloc_workqueue`](crate::alloc_workqueue), as in the kernel.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WqFlags(u32);

impl WqFlags {
    /// No flags: a per-CPU queue of normal priority, in kernel terms.
    pub const NONE: WqFlags = WqFlags(0);
    /// Runs on the high-priority runtime, whose threads normal work cannot
    /// occupy, unless the queue is given a runtime or is built after
    /// `init_system_workqueues` (`WQ_HIGHPRI`; docs/workqueue.md).
    pub const HIGHPRI: WqFlags = WqFlags(1);
    /// Not bound to a CPU (`WQ_UNBOUND`). tokio's workers are never bound, so
    /// this only labels the queue.
    pub const UNBOUND: WqFlags = WqFlags(1 << 1);
    /// Synchronous work functions run on tokio's blocking threads, so that
    /// long or blocking work does not stall the runtime. Named after
    /// `WQ_CPU_INTENSIVE`, which in Linux only leaves the items out of
    /// their pool's concurrency management.
    pub const CPU_INTENSIVE: WqFlags = WqFlags(1 << 2);

    /// Returns true when every flag of `other` is set.
    pub const fn contains(self, other: WqFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for WqFlags {
    type Output = WqFlags;

    fn bitor(self, other: WqFlags) -> WqFlags {
        WqFlags(self.0 | other.0)
    }
}

impl fmt::Debug for WqFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (WqFlags::HIGHPRI, "HIGHPRI"),
            (WqFlags::UNBOUND, "UNBOUND"),
            (WqFlags::CPU_INTENSIVE, "CPU_INTENSIVE"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect();
        if set.is_empty() {
            write!(f, "WqFlags(NONE)")
        } else {
            write!(f, "WqFlags({})", set.join(" | "))
        }
    }
}

/// A workqueue (`struct workqueue_struct *`).
///
/// Clones are handles to the same queue. When the last handle is dropped
/// without [`destroy_workqueue`](crate::destroy_workqueue), the queue still
/// runs every item it holds, then its tasks exit.
#[derive(Clone)]
pub struct Workqueue {
    handle: Arc<Handle>,
}

/// Orphans the queue when the last user handle goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let leftovers = {
            let mut guard = lock_pool();
            if core::phase(&mut guard, &self.shared.core) == core::Phase::Destroyed {
                return;
            }
            core::set_phase(&mut guard, &self.shared.core, core::Phase::Orphaned)
        };
        leftovers.settle();
    }
}

/// The state a queue's tasks share with its handles.
pub(crate) struct Shared {
    pub(crate) core: QueueCore,
    /// Immutable.
    flags: WqFlags,
    /// Immutable.
    ordered: bool,
    /// The runtime the queue's tasks run on. Immutable.
    runtime: tokio::runtime::Handle,
    /// How long an idle worker polls before it parks. Immutable.
    idle_spin: Duration,
    /// False once the timer task found that the runtime has no time driver;
    /// delayed queueing is then rejected. Atomic.
    pub(crate) timer_ok: std::sync::atomic::AtomicBool,
}

/// Waking a queue claims one of its parked workers and wakes it. A
/// queueing in a top half defers its claim this way (see `api::push`).
impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(worker) = core::claim_idle(&self.core) {
            worker.wake();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Only reached with items still linked when the runtime dropped the
        // queue's tasks; otherwise the tasks exit with empty lists.
        let (released, wake) = core::detach_all(&mut lock_pool(), &self.core);
        wake.into_iter().for_each(irq_sim::context::wake_or_defer);
        if !released.is_empty() {
            tracing::warn!(
                target: "workqueue",
                workqueue = %self.core.name,
                items = released.len(),
                "workqueue freed with work still pending or running: its runtime shut down; \
                 the pending items were cancelled"
            );
        }
        drop(released);
    }
}

/// Options of a new queue; see [`Workqueue::builder`].
#[derive(Debug)]
pub struct WorkqueueBuilder {
    name: Cow<'static, str>,
    flags: WqFlags,
    max_active: usize,
    ordered: bool,
    runtime: Option<tokio::runtime::Handle>,
    idle_spin: Duration,
}

impl WorkqueueBuilder {
    /// Sets the flags.
    pub fn flags(mut self, flags: WqFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the maximum number of items that may run at once; 0 means [`WQ_DFL_ACTIVE`],
    /// and values above [`WQ_MAX_ACTIVE`] are clamped with a warning.
    pub fn max_active(mut self, max_active: usize) -> Self {
        self.max_active = max_active;
        self
    }

    /// Makes the queue ordered: one item at a time, in queueing order.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// Sets how long an idle worker keeps polling for work before it parks
    /// ([`DEFAULT_IDLE_SPIN`] unless set). A worker spins only while its
    /// recent idle gaps averaged no longer than this, and parks at once when
    /// work comes more rarely. `Duration::ZERO` parks at once, so every
    /// queueing onto an idle queue pays a wake-up; `Duration::MAX` never
    /// parks: the lowest latency, at the cost of a busy runtime thread per
    /// idle worker.
    pub fn idle_spin(mut self, idle_spin: Duration) -> Self {
        self.idle_spin = idle_spin;
        self
    }

    /// Runs the queue's tasks on `runtime` instead of the system runtime.
    /// The runtime needs its time driver (`enable_time`) for delayed work.
    pub fn runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Creates the queue and spawns its first worker and its timer task.
    ///
    /// # Context
    ///
    /// Task context: it allocates and spawns tasks. In a top half it is
    /// reported as a sleeping call (`might_sleep`), because Linux's
    /// `alloc_workqueue` allocates with `GFP_KERNEL`. The queue is made all
    /// the same.
    pub fn build(self) -> Workqueue {
        let _reported = irq_sim::might_sleep("alloc_workqueue");
        self.build_unchecked()
    }

    /// Creates the queue, as `build` does, without the context check: the
    /// system queues are made on their first use, which may be a top half.
    pub(crate) fn build_unchecked(self) -> Workqueue {
        let max_active = if self.ordered {
            if self.max_active > 1 {
                tracing::warn!(
                    target: "workqueue",
                    workqueue = %self.name,
                    requested = self.max_active,
                    "an ordered workqueue runs one item at a time: max_active ignored"
                );
            }
            1
        } else {
            clamp_max_active(&self.name, self.max_active)
        };
        let runtime = self.runtime.unwrap_or_else(|| {
            crate::system::default_runtime(self.flags.contains(WqFlags::HIGHPRI))
        });
        clock::calibrate();

        let shared = Arc::new(Shared {
            core: QueueCore::new(self.name, max_active),
            flags: self.flags,
            ordered: self.ordered,
            runtime,
            idle_spin: self.idle_spin,
            timer_ok: std::sync::atomic::AtomicBool::new(true),
        });
        let slot = core::add_worker(&mut lock_pool(), &shared.core)
            .expect("a new queue has room for its first worker");
        spawn_worker(&shared, slot);
        shared.runtime.spawn(timer_task(Arc::clone(&shared)));
        tracing::debug!(
            target: "workqueue",
            workqueue = %shared.core.name,
            flags = ?shared.flags,
            max_active,
            ordered = shared.ordered,
            "workqueue allocated"
        );

        Workqueue {
            handle: Arc::new(Handle { shared }),
        }
    }
}

/// Applies the kernel's rule: 0 is the default, too large is clamped.
fn clamp_max_active(name: &str, requested: usize) -> usize {
    match requested {
        0 => WQ_DFL_ACTIVE,
        n if n > WQ_MAX_ACTIVE => {
            tracing::warn!(
                target: "workqueue",
                workqueue = name,
                requested = n,
                clamped = WQ_MAX_ACTIVE,
                "max_active out of range, clamped to {WQ_MAX_ACTIVE}"
            );
            WQ_MAX_ACTIVE
        }
        n => n,
    }
}

impl Workqueue {
    /// Starts describing a new queue named `name`.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> WorkqueueBuilder {
        WorkqueueBuilder {
            name: name.into(),
            flags: WqFlags::NONE,
            max_active: 0,
            ordered: false,
            runtime: None,
            idle_spin: DEFAULT_IDLE_SPIN,
        }
    }

    /// Returns the queue's name.
    pub fn name(&self) -> &str {
        &self.shared().core.name
    }

    /// Returns the flags the queue was allocated with.
    pub fn flags(&self) -> WqFlags {
        self.shared().flags
    }

    /// Returns the maximum number of items that may run at once.
    pub fn max_active(&self) -> usize {
        self.shared().core.max_active
    }

    /// Returns true once [`crate::destroy_workqueue`] has destroyed the
    /// queue. A destroy still draining it reads false, though the queue
    /// already rejects new work.
    ///
    /// # Context
    ///
    /// Any but a top half; takes the pool lock briefly.
    pub fn is_destroyed(&self) -> bool {
        core::phase(&mut lock_pool(), &self.shared().core) == core::Phase::Destroyed
    }

    /// Returns true for an ordered queue.
    pub fn is_ordered(&self) -> bool {
        self.shared().ordered
    }

    /// Takes a snapshot of the queue's statistics.
    ///
    /// # Context
    ///
    /// Task context: it copies two histograms, which allocates.
    pub fn stats(&self) -> WorkqueueStats {
        let core = &self.shared().core;
        let (snapshot, leftovers) = {
            let mut pool = lock_pool();
            let leftovers = core::drain_intake(&mut pool, core);
            (core::snapshot(&mut pool, core), leftovers)
        };
        leftovers.settle();
        let counters = &core.counters;
        WorkqueueStats {
            name: core.name.to_string(),
            queued: snapshot.tallies.queued,
            coalesced: counters.coalesced(),
            modified: snapshot.tallies.modified,
            rejected_disabled: counters.rejected_disabled(),
            executed: snapshot.tallies.executed,
            cancelled: snapshot.tallies.cancelled,
            panicked: counters.panicked(),
            hogged: counters.hogged(),
            in_flight: snapshot.in_flight as u64,
            max_in_flight: snapshot.tallies.max_in_flight,
            pending: snapshot.pending as u64,
            delayed: snapshot.delayed as u64,
            workers: snapshot.workers as u64,
            idle_workers: snapshot.idle_workers as u64,
            latency_ns: snapshot.latency,
            run_time_ns: snapshot.run_time,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Returns true when both handles name the same queue.
    pub fn same_queue(&self, other: &Workqueue) -> bool {
        Arc::ptr_eq(&self.handle.shared, &other.handle.shared)
    }
}

impl fmt::Debug for Workqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workqueue")
            .field("name", &self.name())
            .field("flags", &self.flags())
            .field("max_active", &self.max_active())
            .field("ordered", &self.is_ordered())
            .finish()
    }
}

/// The addresses of a running item and of its queue, which identify a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunId {
    pub(crate) item: *const WorkCore,
    pub(crate) queue: *const QueueCore,
}

// SAFETY: a `RunId` is only compared with addresses of live items and
// queues; the one place that follows `item` (`check_may_wait_queue`) runs on
// the thread whose stack holds that item's run.
unsafe impl Send for RunId {}

thread_local! {
    /// The run whose work function is on this thread's stack now.
    static CURRENT_RUN: Cell<Option<RunId>> = const { Cell::new(None) };

    /// Set when a blocking wait of `wq::blocking` handed this runtime
    /// thread's tasks over to another thread.
    static HANDED_OVER: Cell<bool> = const { Cell::new(false) };
}

/// Records that a blocking wait handed this runtime thread over, so that
/// the run it is part of is not reported as holding the thread.
pub(crate) fn note_handed_over() {
    HANDED_OVER.with(|handed_over| handed_over.set(true));
}

/// Maximum time a synchronous work function keeps a runtime thread before
/// its run is reported: the default of Linux's
/// `workqueue.cpu_intensive_thresh_us`, past which Linux takes a work item
/// for CPU-intensive.
pub const HOG_THRESHOLD: Duration = Duration::from_millis(10);

/// Counts a synchronous run that held its runtime thread `held_ns`, past
/// [`HOG_THRESHOLD`], and warns: for the first such run of the queue and
/// then at the 2nd, 4th, 8th ... so that a queue of slow items does not
/// flood the log. Out of line, so that the worker loop stays small.
#[cold]
#[inline(never)]
fn report_held_thread(queue: &QueueCore, item: &WorkCore, held_ns: u64) {
    let count = queue.counters.count_hogged();
    if count.is_power_of_two() {
        tracing::warn!(
            target: "workqueue",
            work = item.name(),
            workqueue = %queue.name,
            held_ms = held_ns / 1_000_000,
            runs = count,
            "work function held a runtime thread over 10ms without handing it over, which delays \
             every task on it; put blocking or long work on system_long_wq or a queue with \
             WqFlags::CPU_INTENSIVE, or await in an async work function"
        );
    }
}

/// Returns the run whose work function is on this thread's stack, if any.
pub(crate) fn current_run() -> Option<RunId> {
    CURRENT_RUN.with(Cell::get)
}

/// Runs `f` with `run` recorded as this thread's current work run.
fn with_current_run<R>(run: RunId, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_RUN.with(|current| current.replace(Some(run)));
    let _restore = RestoreRun(previous);
    f()
}

struct RestoreRun(Option<RunId>);

impl Drop for RestoreRun {
    fn drop(&mut self) {
        CURRENT_RUN.with(|current| current.set(self.0));
    }
}

/// Spawns one worker task in `slot` of the queue's idle set; the caller
/// counted it and took the slot with `add_worker` (or `take_next` did).
fn spawn_worker(shared: &Arc<Shared>, slot: usize) {
    shared.runtime.spawn(worker(Arc::clone(shared), slot));
}

/// Forgets the worker if its task is dropped before it exits by itself.
struct WorkerGuard<'a> {
    shared: &'a Shared,
    slot: usize,
    exited: bool,
}

impl Drop for WorkerGuard<'_> {
    fn drop(&mut self) {
        if !self.exited {
            core::remove_worker(&mut lock_pool(), &self.shared.core, self.slot);
        }
    }
}

/// How long an idle worker keeps polling its worklist before it parks,
/// unless the queue was built with [`WorkqueueBuilder::idle_spin`].
///
/// Waking a parked worker costs the waker a system call of about 15 us and
/// the worker a scheduling delay of tens of microseconds, so a worker that
/// just ran an item stays awake, yielding to other tokio tasks, for about as
/// long as one wake-up would cost. Under a steady stream of work it then
/// never parks, and queueing never has to wake it. A worker whose recent
/// idle gaps were longer than the spin parks at once instead (see
/// [`WorkqueueBuilder::idle_spin`]).
pub const DEFAULT_IDLE_SPIN: Duration = Duration::from_micros(50);

/// Decides how long an idle worker spins before it parks.
///
/// A spin pays off only when work comes before it ends. A worker spins for
/// the queue's idle spin while its recent idle gaps were no longer than
/// that on average, and parks at once otherwise. There a spin only takes a
/// CPU from other threads, the simulated CPUs among them. With 100 us
/// between items, always spinning 50 us made the thread latency p50 of
/// `irqlab latency --rate 10000` 1.20 to 1.34 times the baseline's.
/// Parking at once brought it to 1.01 to 1.05. The average is exponential, with
/// weight 1/8 for the newest gap, and each gap counts as at most twice the
/// spin, so that one long pause is forgotten after a few short gaps.
#[derive(Debug)]
struct SpinPolicy {
    /// The queue's idle spin; `Duration::MAX` spins always.
    spin: Duration,
    /// Average of recent idle gaps, in nanoseconds.
    average_gap_ns: u64,
}

impl SpinPolicy {
    fn new(spin: Duration) -> Self {
        Self {
            spin,
            average_gap_ns: 0,
        }
    }

    /// Records the time from the worker becoming idle to the queueing of
    /// its next item; zero for an item queued before. The wake-up of a
    /// parked worker is left out, because it is time that a spin would have
    /// saved, not time without work.
    fn record_gap(&mut self, gap: Duration) {
        let cap = duration_nanos(self.spin.saturating_mul(2));
        let gap = duration_nanos(gap).min(cap);
        self.average_gap_ns = self.average_gap_ns - self.average_gap_ns / 8 + gap / 8;
    }

    /// Returns how long to spin in the idle period that starts now.
    fn spin_time(&self) -> Duration {
        if self.spin == Duration::MAX || self.average_gap_ns <= duration_nanos(self.spin) {
            self.spin
        } else {
            Duration::ZERO
        }
    }
}

/// Runs one worker task: takes the next item, runs it, and repeats. With
/// nothing to take, it spins briefly, then sleeps.
async fn worker(shared: Arc<Shared>, slot: usize) {
    let queue = &shared.core;
    let mut guard = WorkerGuard {
        shared: &shared,
        slot,
        exited: false,
    };
    let mut finished: Option<Finished> = None;
    let mut spin_policy = SpinPolicy::new(shared.idle_spin);
    // When the worker became idle, and how long it spins in this idle period.
    let mut idle: Option<(Stamp, Duration)> = None;

    loop {
        let now = Stamp::now();
        // The clock read ends the last run, if any: its run time.
        let run_time_ns = finished
            .as_ref()
            .map(|done| now.nanos_since(done.started_at));
        if let (Some(done), Some(run_time_ns)) = (&finished, run_time_ns)
            && done.held_thread
            && run_time_ns > HOG_THRESHOLD.as_nanos() as u64
        {
            report_held_thread(queue, done.item.core(), run_time_ns);
        }
        let may_park = idle.is_some_and(|(since, spin)| now.since(since) >= spin);
        let next = poll_fn(|cx| {
            let mut released: [Option<ItemRef>; 2] = [None, None];
            let mut leftovers = core::Leftovers::default();
            let poll = {
                let mut pool = lock_pool();
                if let (Some(done), Some(run_time_ns)) = (finished.take(), run_time_ns) {
                    let queue_ref = core::finish(
                        &mut pool,
                        queue,
                        done.item.core(),
                        done.ticket,
                        run_time_ns,
                        &mut leftovers,
                    );
                    released = [queue_ref, Some(done.item)];
                }
                core::unpark_worker(queue, slot);
                loop {
                    leftovers.absorb(core::drain_intake(&mut pool, queue));
                    // Read now, not at the top of the loop: this closure is
                    // polled again when a parked worker wakes, and an item
                    // drained here may have been queued after the loop's
                    // clock read. A stale time would record a start before
                    // the queueing (latency 0) and count the park in the
                    // item's run time.
                    let started_at = Stamp::now();
                    if let Some(started) = core::take_next(&mut pool, queue, started_at) {
                        break Poll::Ready(Step::Run(started, started_at));
                    }
                    if !may_park {
                        // What is left on the worklist cannot start yet.
                        let blocked = core::worklist_hint(queue) != 0;
                        break Poll::Ready(Step::Spin { blocked });
                    }
                    match core::park_worker(&mut pool, queue, slot, cx.waker()) {
                        core::Park::Parked => break Poll::Pending,
                        core::Park::Exit => break Poll::Ready(Step::Exit),
                        core::Park::Retry => continue,
                    }
                }
            };
            // Dropping the last reference to an item runs its destructor,
            // which must happen after unlocking, and before sleeping so
            // that an owner waiting for the item to be released is not
            // kept waiting.
            drop(released);
            leftovers.settle();
            poll
        })
        .await;

        match next {
            Step::Run(mut started, started_at) => {
                let queued_at = started.queued_at.unwrap_or(started_at);
                let gap = idle
                    .take()
                    .map_or(Duration::ZERO, |(since, _)| queued_at.since(since));
                spin_policy.record_gap(gap);
                if let Some(slot) = started.spawn_worker {
                    spawn_worker(&shared, slot);
                }
                if let Some(worker) = started.wake_worker.take() {
                    worker.wake();
                }
                finished = Some(run(&shared, started, started_at).await);
            }
            Step::Spin { blocked } => {
                let (since, spin) = *idle.get_or_insert_with(|| (now, spin_policy.spin_time()));
                // An item left on the worklist because its earlier run goes
                // on elsewhere keeps the hint set: yield once, so that the
                // runtime's other tasks, that run among them, go on.
                if blocked {
                    tokio::task::yield_now().await;
                }
                // Poll the hint, not the lock, until work appears or the
                // spin ends; yield so that other tasks of the runtime run.
                while !core::has_work_hint(queue) && since.elapsed() < spin {
                    tokio::task::yield_now().await;
                }
            }
            Step::Exit => {
                guard.exited = true;
                return;
            }
        }
    }
}

/// A worker's next step after one look at its worklist.
enum Step {
    /// Run an item, taken off the worklist at the given time.
    Run(Started, Stamp),
    /// Spin for work; `blocked` when the worklist holds only items that
    /// cannot start yet.
    Spin {
        blocked: bool,
    },
    Exit,
}

/// A run that ended, to be recorded under the next lock.
struct Finished {
    item: ItemRef,
    ticket: u64,
    started_at: Stamp,
    /// A synchronous function ran on the runtime thread and never handed
    /// it over: its run time is how long it held the thread.
    held_thread: bool,
}

/// Runs one item, which `take_next` handed over at `started_at`: traces it
/// and contains a panic.
async fn run(shared: &Arc<Shared>, started: Started, started_at: Stamp) -> Finished {
    let Started { item, ticket, .. } = started;
    let queue = &shared.core;
    let runnable = item.runnable();
    let run_id = RunId {
        item: item.core(),
        queue,
    };
    tracing::trace!(
        target: "workqueue",
        work = item.core().name(),
        work_struct = item.core().trace_id(),
        ticket,
        workqueue = %queue.name,
        "workqueue_execute_start"
    );

    // If the runtime drops this future mid-run, the run still ends. The
    // guard borrows what it needs: a clone of each would cost four atomic
    // read-modify-writes per run.
    let pending_finish = FinishOnDrop {
        shared,
        item: &item,
        ticket,
        armed: true,
    };

    let mut held_thread = false;
    let outcome: Result<(), Box<dyn Any + Send>> = if runnable.is_async() {
        match catch_unwind(AssertUnwindSafe(|| {
            with_current_run(run_id, || runnable.call())
        })) {
            Ok(Call::Future(future)) => {
                CurrentRun {
                    future,
                    run: run_id,
                }
                .await
            }
            Ok(Call::Done) => Ok(()),
            Err(panic) => Err(panic),
        }
    } else if shared.flags.contains(WqFlags::CPU_INTENSIVE) {
        let blocking_item = item.clone();
        let joined = tokio::task::spawn_blocking(move || {
            catch_unwind(AssertUnwindSafe(|| {
                with_current_run(run_id, || {
                    let _ = blocking_item.runnable().call();
                })
            }))
        })
        .await;
        joined.unwrap_or_else(|error| Err(Box::new(error.to_string())))
    } else {
        HANDED_OVER.with(|handed_over| handed_over.set(false));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            with_current_run(run_id, || {
                let _ = runnable.call();
            })
        }));
        held_thread = !HANDED_OVER.with(Cell::get);
        outcome
    };

    if let Err(panic) = outcome {
        queue.counters.count_panicked();
        tracing::error!(
            target: "workqueue",
            work = item.core().name(),
            workqueue = %queue.name,
            panic = panic_message(&*panic),
            "work function panicked; the worker goes on"
        );
    }
    tracing::trace!(
        target: "workqueue",
        work = item.core().name(),
        work_struct = item.core().trace_id(),
        workqueue = %queue.name,
        "workqueue_execute_end"
    );

    pending_finish.disarm();
    Finished {
        item,
        ticket,
        started_at,
        held_thread,
    }
}

/// Ends a run whose worker future was dropped before it could.
struct FinishOnDrop<'a> {
    shared: &'a Shared,
    item: &'a ItemRef,
    ticket: u64,
    armed: bool,
}

impl FinishOnDrop<'_> {
    /// Disarms the guard after a normal end, which the worker records.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut leftovers = core::Leftovers::default();
            let released = core::finish(
                &mut lock_pool(),
                &self.shared.core,
                self.item.core(),
                self.ticket,
                1,
                &mut leftovers,
            );
            drop(released);
            leftovers.settle();
        }
    }
}

/// Drives an async work function's future with the current run recorded
/// during every poll, and turns a panic into an `Err`.
struct CurrentRun {
    future: crate::work::BoxFuture,
    run: RunId,
}

impl Future for CurrentRun {
    type Output = Result<(), Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let future = &mut this.future;
        match catch_unwind(AssertUnwindSafe(|| {
            with_current_run(this.run, || future.as_mut().poll(cx))
        })) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Returns true when the current tokio runtime has a time driver.
///
/// tokio offers no query for it: creating a `Sleep` panics without one, so
/// the probe catches that panic (the panic hook still prints it once).
fn runtime_has_timer() -> bool {
    catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "non-string panic payload"
    }
}

/// Moves a queue's delayed items to its worklist when they are due; the
/// queue's timer task.
async fn timer_task(shared: Arc<Shared>) {
    let queue = &shared.core;
    if !runtime_has_timer() {
        // Relaxed: a queuer that misses the store links an item here, and
        // `cancel_timers` below or a later one cancels it.
        shared.timer_ok.store(false, Ordering::Relaxed);
        tracing::error!(
            target: "workqueue",
            workqueue = %queue.name,
            "the runtime of this workqueue has no time driver (enable_time): delayed work \
             on it is rejected, and items already delayed are cancelled"
        );
        let released = core::cancel_timers(&mut lock_pool(), queue);
        drop(released);
        return;
    }
    let mut wake = Vec::new();
    let mut cancels = Vec::new();
    loop {
        let mut leftovers = core::Leftovers::default();
        let next_deadline = {
            let mut pool = lock_pool();
            if core::timer_done(&mut pool, queue) {
                return;
            }
            core::expire_timers(
                &mut pool,
                queue,
                tokio::time::Instant::now(),
                &mut wake,
                &mut cancels,
                &mut leftovers,
            )
        };
        leftovers.settle();
        wake.drain(..).for_each(Waker::wake);
        report_drain_cancels(queue, cancels.drain(..));

        let mut sleep = next_deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline)));
        poll_fn(|cx| {
            if let Some(sleep) = sleep.as_mut()
                && sleep.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(());
            }
            if core::park_timer(&mut lock_pool(), queue, cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Logs each delayed item a drain of `queue` cancelled, then drops the
/// references; call it after unlocking.
pub(crate) fn report_drain_cancels(
    queue: &QueueCore,
    cancels: impl Iterator<Item = core::DrainCancel>,
) {
    for core::DrainCancel { item, released } in cancels {
        let name = item.core().name();
        tracing::warn!(
            target: "workqueue",
            workqueue = %queue.name,
            work = name,
            "delayed work {name:?} was armed by its queue's own work while workqueue {:?} \
             drains; the drain cancels it, as Linux turns it away when its timer fires: cancel \
             an item that re-arms itself before draining or destroying its queue",
            queue.name
        );
        drop(released);
    }
}

#[cfg(all(test, not(wq_loom)))]
mod tests {
    use super::*;

    const SPIN: Duration = Duration::from_micros(50);

    #[test]
    fn spin_policy_spins_under_steady_work() {
        let mut policy = SpinPolicy::new(SPIN);
        assert_eq!(policy.spin_time(), SPIN, "a new worker spins");
        for _ in 0..100 {
            policy.record_gap(Duration::from_micros(20));
        }
        assert_eq!(policy.spin_time(), SPIN);
    }

    #[test]
    fn spin_policy_parks_when_work_is_rare() {
        let mut policy = SpinPolicy::new(SPIN);
        for _ in 0..100 {
            policy.record_gap(Duration::from_micros(100));
        }
        assert_eq!(policy.spin_time(), Duration::ZERO);
    }

    #[test]
    fn spin_policy_forgets_a_long_pause() {
        let mut policy = SpinPolicy::new(SPIN);
        for _ in 0..100 {
            policy.record_gap(Duration::from_secs(1));
        }
        assert_eq!(policy.spin_time(), Duration::ZERO);

        let mut short_gaps = 0;
        while policy.spin_time() == Duration::ZERO {
            policy.record_gap(Duration::ZERO);
            short_gaps += 1;
        }
        assert!(
            short_gaps <= 6,
            "spinning resumed only after {short_gaps} short gaps"
        );
    }

    #[test]
    fn spin_policy_keeps_the_extremes() {
        let mut busy_poll = SpinPolicy::new(Duration::MAX);
        let mut park_at_once = SpinPolicy::new(Duration::ZERO);
        for _ in 0..100 {
            busy_poll.record_gap(Duration::from_secs(1));
            park_at_once.record_gap(Duration::ZERO);
        }
        assert_eq!(busy_poll.spin_time(), Duration::MAX);
        assert_eq!(park_at_once.spin_time(), Duration::ZERO);
    }
}
