//! The work item state machine and the queues' lists.
//!
//! # Model
//!
//! A work item has an atomic `state` word and a `Node`. A queue has a
//! `QueueState`. Every `Node` and every `QueueState` is protected by one
//! lock, the pool lock, as the kernel protects its worklists with the worker
//! pool's lock. Work functions never run with the pool lock held, so queueing
//! never waits for a lock that a running work function can hold.
//!
//! The `state` word packs three fields:
//!
//! ```text
//!  63                      24 23           8 7      2    1        0
//! +--------------------------+--------------+--------+---------+--------+
//! | ticket                   | disable depth| unused |IN_INTAKE| PENDING|
//! +--------------------------+--------------+--------+---------+--------+
//! ```
//!
//! - `PENDING` is the right to link the item. Whoever sets it with a CAS
//!   owns the new *pending period* and links the item; the period ends when
//!   a worker starts the item (`take_next` clears the bit before the function
//!   runs, so the function may re-queue its own item) or when a cancel clears
//!   the bit.
//! - `ticket` counts pending periods. `WorkCore::done` holds the ticket of the
//!   last period that ended in a finished run or a cancel, so a flush waits
//!   until `done` reaches the ticket it read.
//! - `disable depth` above zero makes every claim fail.
//!
//! # States and transitions
//!
//! ```text
//!            claim + link_pending                take_next
//!   IDLE ----------------------------> PENDING ------------> RUNNING
//!    ^  ^        (queue_work)          |  ^    (worker)       |   |
//!    |  |                              |  |                   |   | claim + link_pending
//!    |  +-------- cancel --------------+  |                   |   v (queue_work while running)
//!    |          (cancel_work)             |                   | RUNNING+PENDING
//!    |                                    +---- take_next ----+---+ (after finish)
//!    +--------------------- finish (worker) ------------------+
//!
//!   PENDING is either on a queue's worklist or on its timer list
//!   (queue_delayed_work); expire_timers and activate move an item from the
//!   timer list to the worklist.
//! ```
//!
//! A pending item whose previous run has not finished stays on the worklist
//! and is skipped by `take_next` until that run finishes, so an item never
//! runs concurrently with itself, on one queue or across queues. On a queue
//! that runs one item at a time it is not skipped but waited for, so the
//! order holds. When the run ends on another queue, `finish` wakes a worker
//! of the queue that waits (`release_waiting_elsewhere`). The kernel keeps
//! an item from running twice at once within one workqueue only.
//!
//! # The intake stack
//!
//! Most queueings do not take the pool lock. The queuer claims the item with
//! `claim_for_intake`, which also takes the `IN_INTAKE` bit, writes the
//! item's reference and ticket into the item's intake slot, and pushes the
//! item on its queue's lock-free stack (`push_intake`). A worker, under the
//! lock, moves the stack to the worklist in push order (`drain_intake`) and
//! checks each ticket there: a queueing cancelled meanwhile is dropped, so a
//! cancel never has to touch the stack. Only the drain clears `IN_INTAKE`;
//! until then a new queueing of the same item links under the lock instead.
//! A pusher that finds a worker parked claims and wakes it through the
//! queue's idle set (`crate::idle`), without the lock too.
//!
//! A destroy closes the stack for good (`close_intake`): under the lock it
//! drains the stack and swaps in a closed mark, which a push's
//! compare-exchange then finds. So the push alone decides a queueing that
//! races with the destroy: one that lands is drained and runs, and one that
//! finds the mark is rejected and never runs.
//!
//! # The claim race
//!
//! Claiming happens before the pool lock is taken, so a cancel can end a
//! period whose queuer has not linked it yet. The queuer (or, for the intake
//! stack, the drain) then finds, under the lock, that the state no longer
//! carries its ticket with `PENDING`, and does not link; it counts the
//! queueing as queued and cancelled.

use std::borrow::Cow;
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::task::Waker;

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use tokio::sync::Notify;

use crate::clock::Stamp;
use crate::idle::IdleSet;
use crate::stats::{Counters, Tallies};
use crate::sync::{
    AtomicU64, Ordering, RawLock, RawLockGuard, UnsafeCell, const_unless_loom, dekker_fence,
};
use crate::work::ItemRef;

/// The item is pending: queued or on a timer, not started.
const PENDING: u64 = 1;
/// The item's node is on a queue's intake stack (see `push_intake`).
const IN_INTAKE: u64 = 2;
const DISABLE_SHIFT: u32 = 8;
const DISABLE_ONE: u64 = 1 << DISABLE_SHIFT;
const DISABLE_MASK: u64 = 0xFFFF << DISABLE_SHIFT;
const TICKET_SHIFT: u32 = 24;
const TICKET_ONE: u64 = 1 << TICKET_SHIFT;

/// Largest disable depth; one more `disable_work` is rejected.
pub(crate) const MAX_DISABLE_DEPTH: u64 = DISABLE_MASK >> DISABLE_SHIFT;

const fn ticket_of(state: u64) -> u64 {
    state >> TICKET_SHIFT
}

const fn disable_depth_of(state: u64) -> u64 {
    (state & DISABLE_MASK) >> DISABLE_SHIFT
}

/// The part of a work item that queues see: the `work_struct` of irqlab.
///
/// A queueing writes `state`, `intake_next`, `slot` and `intake_queue`,
/// and the worker that drains and starts the item reads and writes the
/// first three. They come first and share one cache line, so that an item
/// costs each side one transfer of that line instead of one per field. A
/// compile-time check below keeps them there.
#[repr(C, align(64))]
pub struct WorkCore {
    /// `PENDING`, disable depth and ticket; see the module docs.
    state: AtomicU64,
    /// Next node on the intake stack. Written by the pusher before the push,
    /// read by the drainer after it.
    intake_next: crate::sync::AtomicPtr<WorkCore>,
    /// The queueing the pusher hands to the drainer. Written only by the owner of
    /// `IN_INTAKE` before its push, read only by the drainer after the
    /// swap that took the node; see `push_intake`.
    slot: UnsafeCell<IntakeSlot>,
    /// The queue whose intake stack the node is being pushed on or waits
    /// on, while `IN_INTAKE` is set. It is null otherwise, or until the push
    /// that set the bit writes it. It is cleared under the pool lock before
    /// the bit. So a reader under the lock that finds the bit set reads null
    /// or the current push's queue, which lives, and never the queue of an
    /// earlier push, which may be freed.
    intake_queue: crate::sync::AtomicPtr<QueueCore>,
    /// Name for diagnostics, statistics and traces. Immutable.
    name: Cow<'static, str>,
    /// Ticket of the last pending period that ended (finished or cancelled).
    /// Written under the pool lock, read by flushers without it.
    done: AtomicU64,
    /// Number of flushers waiting on `completion`. Atomic.
    flushers: AtomicUsize,
    /// Notified when `done` advances while `flushers` is non-zero.
    completion: Notify,
    /// The item's links and run state. Pool lock.
    node: UnsafeCell<Node>,
}

// The fields that a queueing writes fit in the first cache line of
// `WorkCore`.
#[cfg(not(wq_loom))]
const _: () = assert!(std::mem::offset_of!(WorkCore, intake_queue) + 8 <= 64);

/// A queueing in flight on an intake stack.
struct IntakeSlot {
    item: Option<ItemRef>,
    ticket: u64,
    /// Set by every push.
    queued_at: Stamp,
}

// SAFETY: `node` is only reached through `PoolGuard::node`, which requires
// the pool lock. `slot` has one writer at a time, the owner of `IN_INTAKE`,
// and is read only by the drainer that took the node off the stack. Every
// other field is immutable, atomic or `Sync`.
unsafe impl Sync for WorkCore {}
// SAFETY: the `NonNull` links inside `node` point to items kept alive by their
// own `Node::held`; they are only followed under the pool lock.
unsafe impl Send for WorkCore {}

impl std::fmt::Debug for WorkCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.load(Ordering::Relaxed);
        f.debug_struct("WorkCore")
            .field("name", &self.name)
            .field("pending", &(state & PENDING != 0))
            .field("disable_depth", &disable_depth_of(state))
            .finish()
    }
}

/// Outcome of `WorkCore::claim_for_intake`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntakeClaim {
    /// A new pending period: push the item with `push_intake`.
    Push(u64),
    /// A new pending period, but the node is still on an intake stack: link
    /// it under the pool lock with `link_pending`.
    Locked(u64),
    /// The item was already pending; nothing changed.
    AlreadyPending,
    /// The item is disabled; nothing changed.
    Disabled,
}

/// Outcome of `WorkCore::claim`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A new pending period with this ticket: the caller must link the item.
    Claimed(u64),
    /// The item was already pending; nothing changed.
    AlreadyPending,
    /// The item is disabled; nothing changed.
    Disabled,
}

impl WorkCore {
    const_unless_loom! {
        pub(crate) fn new(name: Cow<'static, str>) -> Self {
            Self {
                name,
                state: AtomicU64::new(0),
                done: AtomicU64::new(0),
                node: UnsafeCell::new(Node::new()),
                flushers: AtomicUsize::new(0),
                completion: Notify::const_new(),
                intake_next: crate::sync::AtomicPtr::new(std::ptr::null_mut()),
                intake_queue: crate::sync::AtomicPtr::new(std::ptr::null_mut()),
                slot: UnsafeCell::new(IntakeSlot {
                    item: None,
                    ticket: 0,
                    queued_at: Stamp::UNSET,
                }),
            }
        }
    }

    /// Returns the item's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the item's identity in trace events: its address, as the
    /// kernel's workqueue tracepoints print `work struct %p`. It
    /// distinguishes items that share a name, and pairs a `workqueue_queue_work`
    /// with the `workqueue_execute_start` it leads to.
    pub fn trace_id(&self) -> u64 {
        std::ptr::from_ref(self) as usize as u64
    }

    /// Returns true while the item is pending (queued or on a timer).
    pub fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) & PENDING != 0
    }

    /// Returns the disable depth: queueing fails while it is above zero.
    pub fn disable_depth(&self) -> u64 {
        disable_depth_of(self.state.load(Ordering::Acquire))
    }

    /// Starts a pending period unless the item is pending or disabled.
    ///
    /// Every outcome is a read-modify-write with `AcqRel`, even "already
    /// pending": the worker clears `PENDING` with an `AcqRel` RMW later in
    /// the same modification order, so whatever the caller wrote before a
    /// coalesced queueing is visible to the run that serves it.
    pub(crate) fn claim(&self) -> Claim {
        // The load and the compare-and-swap below would fetch the line
        // twice from the worker that wrote it last: shared, then to upgrade.
        crate::sync::prefetch_for_write(&self.state);
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (next, outcome) = if state & DISABLE_MASK != 0 {
                return Claim::Disabled;
            } else if state & PENDING != 0 {
                (state, Claim::AlreadyPending)
            } else {
                let next = (state | PENDING).wrapping_add(TICKET_ONE);
                (next, Claim::Claimed(ticket_of(next)))
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return outcome,
                Err(actual) => state = actual,
            }
        }
    }

    /// Starts a pending period for a queueing through the intake stack:
    /// like `claim`, and also takes `IN_INTAKE` when the node is free to be
    /// pushed.
    #[inline]
    pub(crate) fn claim_for_intake(&self) -> IntakeClaim {
        // As in `claim`: one fetch of the line, for writing.
        crate::sync::prefetch_for_write(&self.state);
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (next, outcome) = if state & DISABLE_MASK != 0 {
                return IntakeClaim::Disabled;
            } else if state & PENDING != 0 {
                (state, IntakeClaim::AlreadyPending)
            } else if state & IN_INTAKE != 0 {
                // A cancelled queueing's node still waits on a stack: link
                // this one under the lock instead.
                let next = (state | PENDING).wrapping_add(TICKET_ONE);
                (next, IntakeClaim::Locked(ticket_of(next)))
            } else {
                let next = (state | PENDING | IN_INTAKE).wrapping_add(TICKET_ONE);
                (next, IntakeClaim::Push(ticket_of(next)))
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return outcome,
                Err(actual) => state = actual,
            }
        }
    }

    /// Raises the disable depth. Returns false, changing nothing, at
    /// [`MAX_DISABLE_DEPTH`].
    pub(crate) fn disable(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if disable_depth_of(state) == MAX_DISABLE_DEPTH {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state + DISABLE_ONE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// Lowers the disable depth and returns the new depth, or `None` when it
    /// was already zero (an unbalanced enable).
    pub(crate) fn enable(&self) -> Option<u64> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if disable_depth_of(state) == 0 {
                return None;
            }
            let next = state - DISABLE_ONE;
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(disable_depth_of(next)),
                Err(actual) => state = actual,
            }
        }
    }

    /// Returns the ticket of the latest pending period (0 if never queued).
    pub(crate) fn latest_ticket(&self) -> u64 {
        ticket_of(self.state.load(Ordering::Acquire))
    }

    /// Returns true once the period with `ticket` has finished or been
    /// cancelled.
    pub(crate) fn is_done(&self, ticket: u64) -> bool {
        self.done.load(Ordering::SeqCst) >= ticket
    }

    /// Waits until the period with `ticket` has finished or been cancelled.
    pub(crate) async fn wait_done(&self, ticket: u64) {
        if self.is_done(ticket) {
            return;
        }
        // SeqCst on `flushers` and `done`, here and in `advance_done`, puts
        // both in one total order: either the finisher reads our count and
        // notifies, or we read its `done` below.
        self.flushers.fetch_add(1, Ordering::SeqCst);
        let _unregister = DecrementOnDrop(&self.flushers);
        loop {
            let notified = self.completion.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_done(ticket) {
                return;
            }
            notified.await;
        }
    }

    /// Records that the period with `ticket` ended and wakes flushers.
    fn advance_done(&self, ticket: u64) {
        if self.done.load(Ordering::Relaxed) < ticket {
            self.done.store(ticket, Ordering::SeqCst);
        }
        if self.flushers.load(Ordering::SeqCst) > 0 {
            self.completion.notify_waiters();
        }
    }
}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The place of a work item on a list, and its run in progress. Pool lock.
pub(crate) struct Node {
    prev: Option<NonNull<WorkCore>>,
    next: Option<NonNull<WorkCore>>,
    place: Place,
    /// Keeps the item alive while it is linked.
    held: Option<ItemRef>,
    /// When the item was put on a worklist, for queue-to-start latency.
    queued_at: Option<Stamp>,
    /// When a delayed item is due, while it is on a timer list.
    deadline: Option<tokio::time::Instant>,
    /// The timer was armed while its queue drained, which only the queue's
    /// own work may do: see `expire_timers`.
    armed_while_draining: bool,
    /// A drain cancelled such a timer; cleared by `take_cancelled_by_drain`.
    cancelled_by_drain: bool,
    /// The queue the item is running on, and the run's ticket.
    running: Option<(NonNull<QueueCore>, u64)>,
    /// Ticket of a period cancelled while an earlier run was in progress;
    /// `done` advances to it when that run finishes.
    cancelled_ticket: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Unlinked,
    Worklist(NonNull<QueueCore>),
    Timer(NonNull<QueueCore>),
}

impl Node {
    const fn new() -> Self {
        Self {
            prev: None,
            next: None,
            place: Place::Unlinked,
            held: None,
            queued_at: None,
            deadline: None,
            armed_while_draining: false,
            cancelled_by_drain: false,
            running: None,
            cancelled_ticket: 0,
        }
    }
}

/// The one lock that protects every `Node` and `QueueState`.
pub(crate) struct Pool {
    lock: RawLock<()>,
}

#[cfg(not(wq_loom))]
static POOL: Pool = Pool {
    lock: RawLock::new(()),
};

#[cfg(wq_loom)]
loom::lazy_static! {
    static ref POOL: Pool = Pool { lock: RawLock::new(()) };
}

/// Takes the pool lock.
///
/// The lock is held for a few list operations at a time and never while user
/// code runs. In the loom build it is a mutex, which a panic inside this
/// module could poison. The data is consistent at every unlock point, so a
/// poisoned lock is used as is.
pub(crate) fn lock_pool() -> PoolGuard<'static> {
    let pool: &'static Pool = &POOL;
    #[cfg(not(wq_loom))]
    let guard = pool.lock.lock();
    #[cfg(wq_loom)]
    let guard = pool
        .lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    PoolGuard { _guard: guard }
}

/// Proof that the pool lock is held; the only way to reach nodes and queue
/// states.
pub(crate) struct PoolGuard<'a> {
    _guard: RawLockGuard<'a, ()>,
}

impl PoolGuard<'_> {
    /// Returns the node of `core`.
    fn node<'g>(&'g mut self, core: &'g WorkCore) -> &'g mut Node {
        // SAFETY: every access to a node goes through this method, which needs
        // the pool lock (held by `self`), and `&mut self` ends any earlier
        // reference it returned, so this is the only live reference.
        core.node.with_mut(|node| unsafe { &mut *node })
    }

    /// Returns the state of `queue`.
    fn queue<'g>(&'g mut self, queue: &'g QueueCore) -> &'g mut QueueState {
        // SAFETY: as in `node`: the pool lock is held and `&mut self` makes
        // this the only live reference into any queue state.
        queue.state.with_mut(|state| unsafe { &mut *state })
    }
}

/// Dereferences a link.
///
/// # Safety
///
/// `link` must come from a list or `Node::running` read under the pool lock
/// that is still held, so that the item it names is still linked or running
/// and thus kept alive by its `held` or running reference.
unsafe fn item<'a>(link: NonNull<WorkCore>) -> &'a WorkCore {
    // SAFETY: the caller guarantees the item is alive (see above).
    unsafe { link.as_ref() }
}

/// Dereferences a queue pointer stored in a node.
///
/// # Safety
///
/// The pointer must come from a node read under the pool lock that is still
/// held: a queue outlives every item linked on it or running on it, because
/// its workers and timer task hold it until its lists are empty.
unsafe fn queue_of<'a>(queue: NonNull<QueueCore>) -> &'a QueueCore {
    // SAFETY: the caller guarantees the queue is alive (see above).
    unsafe { queue.as_ref() }
}

/// An intrusive FIFO of work items, threaded through their nodes.
#[derive(Clone, Copy, Debug, Default)]
struct List {
    head: Option<NonNull<WorkCore>>,
    tail: Option<NonNull<WorkCore>>,
    len: usize,
}

impl List {
    fn push_back(&mut self, guard: &mut PoolGuard<'_>, core: &WorkCore) {
        let link = NonNull::from(core);
        let node = guard.node(core);
        node.prev = self.tail;
        node.next = None;

        match self.tail {
            // SAFETY: `tail` was read from this list under the held pool lock.
            Some(tail) => guard.node(unsafe { item(tail) }).next = Some(link),
            None => self.head = Some(link),
        }
        self.tail = Some(link);
        self.len += 1;
    }

    /// Unlinks `core`, which must be on this list.
    fn remove(&mut self, guard: &mut PoolGuard<'_>, core: &WorkCore) {
        let node = guard.node(core);
        let (prev, next) = (node.prev.take(), node.next.take());

        match prev {
            // SAFETY: `prev` was read from a linked node under the held lock.
            Some(prev) => guard.node(unsafe { item(prev) }).next = next,
            None => self.head = next,
        }
        match next {
            // SAFETY: `next` was read from a linked node under the held lock.
            Some(next) => guard.node(unsafe { item(next) }).prev = prev,
            None => self.tail = prev,
        }
        self.len -= 1;
    }
}

/// Lifecycle of a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Accepts all queueing.
    Live,
    /// `drain_workqueue` runs: only the queue's own work may queue on it.
    Draining,
    /// Destroyed: all queueing is rejected; workers exit once idle.
    Destroyed,
    /// Every handle was dropped without `destroy_workqueue`: pending work
    /// still runs, then the workers exit.
    Orphaned,
}

/// The part of a queue that the state machine uses.
///
/// Fields that queueings write, fields that workers write, and the
/// read-mostly rest sit on separate cache lines (`CachePadded`), so that a
/// write by one side does not evict the other's lines. perf had placed most
/// of a streaming producer's time on the coalesced-queueing counter.
/// NOTE: the `work_items_per_s` bench varies too much on a 2-vCPU host to
/// show what the padding gains.
pub(crate) struct QueueCore {
    /// Name for diagnostics. Immutable.
    pub(crate) name: Cow<'static, str>,
    /// Maximum number of items that may run at once. Immutable.
    pub(crate) max_active: usize,
    /// Parked workers, which pushers claim and wake without the pool lock.
    idle: IdleSet,
    /// `QueueState::phase`, for pushers. Written under the pool lock.
    phase_hint: std::sync::atomic::AtomicU8,
    /// Counters bumped without the pool lock, by queueings. Atomic.
    pub(crate) counters: CachePadded<Counters>,
    /// Length of the worklist, for workers that spin before they park.
    /// Written under the pool lock, read without it.
    pub(crate) worklist_hint: CachePadded<std::sync::atomic::AtomicUsize>,
    /// Head of the intake stack: queueings pushed without the pool lock,
    /// moved to the worklist by `drain_intake`; [`CLOSED`] once the queue
    /// is destroyed. Atomic.
    intake: CachePadded<crate::sync::AtomicPtr<WorkCore>>,
    /// Lists, workers, tallies and histograms. Pool lock.
    state: CachePadded<UnsafeCell<QueueState>>,
}

// SAFETY: `state` is only reached through `PoolGuard::queue`, under the pool
// lock; the other fields are immutable or atomic.
unsafe impl Sync for QueueCore {}
// SAFETY: the links inside `state` are only followed under the pool lock.
unsafe impl Send for QueueCore {}

struct QueueState {
    phase: Phase,
    /// Drains running now (`nr_drainers`): the phase goes back to live
    /// when the last one ends.
    drainers: usize,
    worklist: List,
    timers: List,
    /// Items running now, with their run tickets.
    running: Vec<(ItemRef, u64)>,
    /// Workers alive (idle, running or between the two).
    workers: usize,
    /// Slots of `QueueCore::idle` that no worker owns.
    free_slots: Vec<usize>,
    timer: TimerState,
    tallies: Tallies,
    /// References to items whose intake queueing was cancelled, to be
    /// dropped after unlocking.
    graveyard: Vec<ItemRef>,
    /// Queue-to-start latency, nanoseconds.
    latency: Histogram<u64>,
    /// Work function run time, nanoseconds.
    run_time: Histogram<u64>,
}

#[derive(Default)]
struct TimerState {
    waker: Option<Waker>,
    kicked: bool,
    armed_until: Option<tokio::time::Instant>,
}

/// Upper bound of the latency histograms: one minute, in nanoseconds.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3)
        .expect("histogram bounds are valid constants")
}

/// A run handed to a worker by `take_next`.
pub(crate) struct Started {
    pub(crate) item: ItemRef,
    pub(crate) ticket: u64,
    /// When the item was queued, if known.
    pub(crate) queued_at: Option<Stamp>,
    /// The queue was left without a parked worker: spawn one in this slot,
    /// it may be needed before this run ends.
    pub(crate) spawn_worker: Option<usize>,
    /// Items are left on the worklist and a worker was parked: wake it to
    /// take them. One wake-up in a top half may stand for several
    /// queueings, so workers pass it on, as the kernel's do.
    pub(crate) wake_worker: Option<Waker>,
}

/// Outcome of `link_pending`.
#[derive(Debug)]
pub(crate) enum Linked {
    /// Linked; wake this worker or timer task, and settle what draining
    /// the intake stack left (after unlocking).
    Queued(Option<Waker>, Leftovers),
    /// The period was cancelled before it could be linked; the reference is
    /// handed back, to be dropped after unlocking.
    Cancelled(ItemRef),
}

/// The reason a queue rejected a queueing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    Draining,
    Destroyed,
}

impl QueueCore {
    pub(crate) fn new(name: Cow<'static, str>, max_active: usize) -> Self {
        Self {
            name,
            max_active,
            counters: CachePadded::new(Counters::default()),
            worklist_hint: CachePadded::new(std::sync::atomic::AtomicUsize::new(0)),
            intake: CachePadded::new(crate::sync::AtomicPtr::new(std::ptr::null_mut())),
            idle: IdleSet::new(max_active),
            phase_hint: std::sync::atomic::AtomicU8::new(Phase::Live as u8),
            state: CachePadded::new(UnsafeCell::new(QueueState {
                phase: Phase::Live,
                drainers: 0,
                worklist: List::default(),
                timers: List::default(),
                running: Vec::new(),
                workers: 0,
                free_slots: (0..max_active).rev().collect(),
                timer: TimerState::default(),
                tallies: Tallies::default(),
                graveyard: Vec::new(),
                latency: new_histogram(),
                run_time: new_histogram(),
            })),
        }
    }
}

/// Checks whether `queue` accepts a queueing.
///
/// `from_own_work` returns true when the caller runs inside a work function
/// of this queue, which a draining queue still accepts; it is only called
/// while the queue drains.
pub(crate) fn check_accepts(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    from_own_work: impl FnOnce() -> bool,
) -> Result<(), Rejected> {
    match guard.queue(queue).phase {
        Phase::Live | Phase::Orphaned => Ok(()),
        Phase::Draining if from_own_work() => Ok(()),
        Phase::Draining => Err(Rejected::Draining),
        Phase::Destroyed => Err(Rejected::Destroyed),
    }
}

/// Links the pending period `ticket` of `item`, whose core is `core`, onto
/// `queue`'s worklist, or onto its timer list when `deadline` is given.
///
/// An item that is running somewhere waits on the worklist until that run
/// ends, so that it cannot run concurrently with itself.
pub(crate) fn link_pending(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    item: ItemRef,
    ticket: u64,
    queue: &QueueCore,
    deadline: Option<tokio::time::Instant>,
) -> Linked {
    debug_assert!(std::ptr::eq(core, item.core()));
    let state = core.state.load(Ordering::Acquire);
    if state & PENDING == 0 || ticket_of(state) != ticket {
        // A cancel ended this period before we got the lock.
        let tallies = &mut guard.queue(queue).tallies;
        tallies.queued += 1;
        tallies.cancelled += 1;
        return Linked::Cancelled(item);
    }

    let node = guard.node(core);
    debug_assert_eq!(node.place, Place::Unlinked);
    node.held = Some(item);

    let mut leftovers = Leftovers::default();
    let wake = match deadline {
        Some(deadline) => link_timer(guard, core, queue, deadline),
        None => link_worklist_in_order(guard, core, queue, &mut leftovers),
    };
    Linked::Queued(wake, leftovers)
}

/// Puts `core` on `queue`'s worklist behind the queueings already pushed
/// on its intake stack, which it moves there first, and picks an idle
/// worker to wake. An item linked under the lock (an expired timer,
/// `mod_delayed_work`, `flush_delayed_work`) thus keeps the queueing
/// order that an ordered queue promises, as Linux appends it to the tail.
fn link_worklist_in_order(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    queue: &QueueCore,
    leftovers: &mut Leftovers,
) -> Option<Waker> {
    leftovers.absorb(drain_intake(guard, queue));
    link_worklist(guard, core, queue)
}

/// Puts `core` on `queue`'s worklist and picks an idle worker to wake.
fn link_worklist(guard: &mut PoolGuard<'_>, core: &WorkCore, queue: &QueueCore) -> Option<Waker> {
    link_worklist_at(guard, core, queue, Stamp::now(), true)
}

/// Puts `core`, queued at `queued_at`, on `queue`'s worklist, and with
/// `pick_idle` picks an idle worker to wake.
fn link_worklist_at(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    queue: &QueueCore,
    queued_at: Stamp,
    pick_idle: bool,
) -> Option<Waker> {
    let mut list = guard.queue(queue).worklist;
    list.push_back(guard, core);
    guard.queue(queue).worklist = list;

    let node = guard.node(core);
    node.place = Place::Worklist(NonNull::from(queue));
    node.queued_at = Some(queued_at);
    node.deadline = None;
    let blocked = node.running.is_some();
    let state = guard.queue(queue);
    state.tallies.queued += 1;
    // Relaxed: a hint for spinning workers, which re-check under the lock.
    queue
        .worklist_hint
        .store(state.worklist.len, Ordering::Relaxed);

    // An item still running cannot start, so waking a worker for it would
    // only cost a wake-up. The end of that run wakes one: the running
    // worker looks again, or `release_waiting_elsewhere` wakes one here.
    if blocked || !pick_idle {
        return None;
    }
    queue.idle.claim()
}

/// Starts fetching the line of `queue`'s intake stack head, which a push
/// writes, so that its transfer from the worker that last drained the stack
/// overlaps with the queueing's reference count increment.
#[inline]
pub(crate) fn prefetch_intake(queue: &QueueCore) {
    crate::sync::prefetch_for_write(&*queue.intake);
}

/// Returns true when `queue` accepts a queueing, read without the pool
/// lock; `from_own_work` as in `check_accepts`.
#[inline]
pub(crate) fn accepts_unlocked(
    queue: &QueueCore,
    from_own_work: impl FnOnce() -> bool,
) -> Result<(), Rejected> {
    match queue.phase_hint.load(Ordering::SeqCst) {
        phase if phase == Phase::Live as u8 || phase == Phase::Orphaned as u8 => Ok(()),
        phase if phase == Phase::Draining as u8 => {
            if from_own_work() {
                Ok(())
            } else {
                Err(Rejected::Draining)
            }
        }
        _ => Err(Rejected::Destroyed),
    }
}

/// Outcome of `push_intake`.
#[must_use]
pub(crate) enum Pushed {
    /// Queued. Call `claim_idle` next, at once or after a top half returns:
    /// a parked worker may need a wake-up.
    Queued,
    /// The queue is destroyed: its intake stack is closed, and the item
    /// was not pushed. Call `withdraw_push`.
    Destroyed,
}

/// Pushes the pending period `ticket` of `item` on `queue`'s intake stack,
/// without the pool lock. The caller owns `IN_INTAKE` (from
/// `claim_for_intake`).
///
/// A worker about to sleep marks itself parked in `QueueCore::idle` and
/// then looks at the stack. A pusher pushes and then claims a parked worker
/// with `claim_idle`. Both steps are SeqCst on each side (see
/// `sync::dekker_fence`), so at least one side finds the other's write:
/// either the worker finds the item, or the pusher claims the worker.
/// Neither side takes the pool lock.
#[inline]
pub(crate) fn push_intake(
    core: &WorkCore,
    item: ItemRef,
    ticket: u64,
    queue: &QueueCore,
) -> Pushed {
    debug_assert!(std::ptr::eq(core, item.core()));
    // SAFETY: the caller owns `IN_INTAKE`, so no drainer reads the slot
    // until the push below publishes it, and no other pusher writes it.
    core.slot.with_mut(|slot| unsafe {
        *slot = IntakeSlot {
            item: Some(item),
            ticket,
            queued_at: Stamp::now(),
        };
    });
    let queue_ptr = std::ptr::from_ref(queue).cast_mut();
    core.intake_queue.store(queue_ptr, Ordering::Relaxed);

    let node = std::ptr::from_ref(core).cast_mut();
    let mut head = queue.intake.load(Ordering::Relaxed);
    loop {
        if head == CLOSED {
            return Pushed::Destroyed;
        }
        core.intake_next.store(head, Ordering::Relaxed);
        // SeqCst: a release for the slot written above, which the drainer's
        // swap acquires, and the write of the pairing described above.
        match queue
            .intake
            .compare_exchange_weak(head, node, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(actual) => head = actual,
        }
    }
    // Pairs with `park_worker` (see above).
    dekker_fence();
    Pushed::Queued
}

/// Undoes a push that found the intake stack closed: takes the item's
/// reference back out of the slot, gives up `IN_INTAKE` and ends the
/// period `ticket`, which never reached a list. Returns the reference, to
/// be dropped after unlocking.
pub(crate) fn withdraw_push(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    ticket: u64,
) -> Option<ItemRef> {
    // SAFETY: the caller still owns `IN_INTAKE` and the push published
    // nothing, so no drainer reads the slot.
    let item = core.slot.with_mut(|slot| unsafe { (*slot).item.take() });
    abandon_intake(core, ticket, guard);
    item
}

/// Claims one parked worker of `queue` and returns its waker; the second
/// step of a push. The fence of `push_intake` must come before it in
/// program order, as it does when the same thread calls the two.
#[inline]
pub(crate) fn claim_idle(queue: &QueueCore) -> Option<Waker> {
    queue.idle.claim()
}

/// The head of a destroyed queue's intake stack: a push that finds it
/// fails. An address no allocation has, and never dereferenced.
const CLOSED: *mut WorkCore = NonNull::<WorkCore>::dangling().as_ptr();

/// Returns true when an intake head read without the lock stands for an
/// empty stack: null, or closed.
fn intake_is_empty(head: *mut WorkCore) -> bool {
    head.is_null() || head == CLOSED
}

/// Closes `queue`'s intake stack for good: drains it, then swaps in the
/// closed mark, draining again whenever a push landed in between. A later
/// push finds the mark and fails; every push that landed is linked. Does
/// nothing on a closed stack.
fn close_intake(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> Leftovers {
    let mut leftovers = Leftovers::default();
    loop {
        leftovers.absorb(drain_intake(guard, queue));
        match queue.intake.compare_exchange(
            std::ptr::null_mut(),
            CLOSED,
            Ordering::SeqCst,
            Ordering::Relaxed,
        ) {
            Ok(_) => return leftovers,
            Err(head) if head == CLOSED => return leftovers,
            // A push landed after the drain: drain it too.
            Err(_) => {}
        }
    }
}

/// Wake-ups and references left by a drain, to be handled after unlocking:
/// waking runs scheduler code, and dropping a last reference runs the item's
/// destructor, neither of which may run under the pool lock.
#[must_use = "call `settle` after unlocking"]
#[derive(Debug, Default)]
pub(crate) struct Leftovers {
    wake: Vec<Waker>,
    released: Vec<ItemRef>,
}

impl Leftovers {
    /// Wakes and drops what the drain left. Call it after unlocking.
    pub(crate) fn settle(self) {
        self.wake
            .into_iter()
            .for_each(irq_sim::context::wake_or_defer);
        drop(self.released);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.wake.is_empty() && self.released.is_empty()
    }

    /// Adds what another drain left.
    pub(crate) fn absorb(&mut self, other: Leftovers) {
        self.wake.extend(other.wake);
        self.released.extend(other.released);
    }
}

/// Returns the length of `queue`'s worklist as last written under the pool
/// lock: exact under the lock, a hint without it.
pub(crate) fn worklist_hint(queue: &QueueCore) -> usize {
    queue.worklist_hint.load(Ordering::Relaxed)
}

/// Returns true when `queue` may have work to take: a hint for spinning
/// workers, read without the pool lock.
pub(crate) fn has_work_hint(queue: &QueueCore) -> bool {
    // Relaxed: the worker re-checks under the pool lock before it sleeps.
    queue.worklist_hint.load(Ordering::Relaxed) != 0
        || !intake_is_empty(queue.intake.load(Ordering::Relaxed))
}

/// Moves every item of `queue`'s intake stack to its worklist, in push
/// order. A queueing cancelled while on the stack is counted as queued and
/// cancelled, and its reference goes to the graveyard.
///
/// Returns the graveyard's references, to drop after unlocking.
pub(crate) fn drain_intake(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> Leftovers {
    // A look before the swap spares a worker that finds the stack empty a
    // locked instruction. A push that the look misses is caught as a push
    // after the swap would be. A closed stack stays closed: only
    // `close_intake` writes the mark, under the lock held here.
    if intake_is_empty(queue.intake.load(Ordering::Relaxed)) {
        return Leftovers::default();
    }
    // Acquire pairs with the pushers' SeqCst compare-exchange: their slots
    // are visible.
    let mut head = queue.intake.swap(std::ptr::null_mut(), Ordering::SeqCst);

    // Step 1: reverse the stack into push order.
    let mut ordered: *mut WorkCore = std::ptr::null_mut();
    while let Some(link) = NonNull::new(head) {
        // SAFETY: a node on the stack belongs to a live item, because its
        // slot holds a reference to it until this drain takes the slot.
        let core = unsafe { item(link) };
        head = core.intake_next.load(Ordering::Relaxed);
        core.intake_next.store(ordered, Ordering::Relaxed);
        ordered = link.as_ptr();
    }

    // Step 2: validate and link each queueing.
    let mut cursor = ordered;
    while let Some(link) = NonNull::new(cursor) {
        // SAFETY: as in step 1; the slot still holds the item's reference.
        let core = unsafe { item(link) };
        cursor = core.intake_next.load(Ordering::Relaxed);
        // SAFETY: this drain took the node off the stack, so it is the only
        // reader, and no pusher writes the slot until `IN_INTAKE` is
        // cleared below.
        let slot = core.slot.with_mut(|slot| unsafe {
            let slot = &mut *slot;
            (slot.item.take(), slot.ticket, slot.queued_at)
        });
        core.intake_queue
            .store(std::ptr::null_mut(), Ordering::Relaxed);
        // Release: the slot is read, and the queue forgotten, before
        // another pusher may write them.
        core.state.fetch_and(!IN_INTAKE, Ordering::Release);
        let (Some(item_ref), ticket, queued_at) = slot else {
            continue;
        };

        let state = core.state.load(Ordering::Acquire);
        if state & PENDING == 0 || ticket_of(state) != ticket {
            // Cancelled while on the stack.
            let tallies = &mut guard.queue(queue).tallies;
            tallies.queued += 1;
            tallies.cancelled += 1;
            guard.queue(queue).graveyard.push(item_ref);
            continue;
        }

        guard.node(core).held = Some(item_ref);
        // The pusher already woke a worker of `queue` if one slept.
        let _no_wake = link_worklist_at(guard, core, queue, queued_at, false);
    }

    let released = std::mem::take(&mut guard.queue(queue).graveyard);
    Leftovers {
        wake: Vec::new(),
        released,
    }
}

/// Puts `core` on `queue`'s timer list and kicks the timer task if the new
/// deadline is earlier than the one it sleeps to.
fn link_timer(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    queue: &QueueCore,
    deadline: tokio::time::Instant,
) -> Option<Waker> {
    let mut list = guard.queue(queue).timers;
    list.push_back(guard, core);
    guard.queue(queue).timers = list;

    let draining = guard.queue(queue).phase == Phase::Draining;
    let node = guard.node(core);
    node.place = Place::Timer(NonNull::from(queue));
    node.deadline = Some(deadline);
    node.armed_while_draining = draining;
    guard.queue(queue).tallies.queued += 1;

    kick_timer(guard.queue(queue), deadline)
}

fn kick_timer(state: &mut QueueState, deadline: tokio::time::Instant) -> Option<Waker> {
    let timer = &mut state.timer;
    if timer.armed_until.is_some_and(|armed| armed <= deadline) {
        return None;
    }
    timer.kicked = true;
    timer.waker.take()
}

/// Unlinks `core` from whatever list it is on and returns the queue it was
/// on. The caller owns what happens to the item's `held` reference.
fn unlink(guard: &mut PoolGuard<'_>, core: &WorkCore) -> Option<NonNull<QueueCore>> {
    let place = guard.node(core).place;
    let queue_link = match place {
        Place::Unlinked => return None,
        Place::Worklist(queue) | Place::Timer(queue) => queue,
    };
    // SAFETY: `place` was read under the held pool lock.
    let queue = unsafe { queue_of(queue_link) };

    let state = guard.queue(queue);
    let mut list = match place {
        Place::Worklist(_) => state.worklist,
        _ => state.timers,
    };
    list.remove(guard, core);
    let state = guard.queue(queue);
    match place {
        Place::Worklist(_) => {
            state.worklist = list;
            queue.worklist_hint.store(list.len, Ordering::Relaxed);
        }
        _ => state.timers = list,
    }

    let node = guard.node(core);
    node.place = Place::Unlinked;
    node.deadline = None;
    Some(queue_link)
}

/// Hands the first startable item of `queue`'s worklist to the calling
/// worker, clearing its `PENDING` bit before its function runs.
///
/// Returns `None` when nothing can start.
pub(crate) fn take_next(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    now: Stamp,
) -> Option<Started> {
    // Step 1: the first item whose earlier run, if any, has ended. On a
    // queue that runs one item at a time the order is strict: an item
    // still running elsewhere holds back the items behind it. The end of
    // that run wakes a worker here (`finish`).
    let strict = queue.max_active == 1;
    let mut cursor = guard.queue(queue).worklist.head;
    let core = loop {
        let link = cursor?;
        // SAFETY: `link` was read from the worklist under the held lock.
        let core = unsafe { item(link) };
        let node = guard.node(core);
        if node.running.is_none() {
            break core;
        }
        if strict {
            return None;
        }
        cursor = node.next;
    };

    // Step 2: unlink it and end its pending period.
    unlink(guard, core);
    let state = core.state.fetch_and(!PENDING, Ordering::AcqRel);
    debug_assert!(state & PENDING != 0, "a linked item is pending");
    let ticket = ticket_of(state);

    // Step 3: it is running now.
    let node = guard.node(core);
    let item = node.held.take().expect("a linked item holds its reference");
    let queued_at = node.queued_at.take();
    node.running = Some((NonNull::from(queue), ticket));

    let state = guard.queue(queue);
    if let Some(queued_at) = queued_at {
        let latency = now.nanos_since(queued_at);
        state.latency.saturating_record(latency.max(1));
    }
    state.running.push((item.clone(), ticket));
    state.tallies.executed += 1;
    state.tallies.max_in_flight = state.tallies.max_in_flight.max(state.running.len() as u64);

    // Step 4: keep a parked worker in reserve while max_active allows one,
    // and pass the wake-up on while items wait.
    let spawn_worker = if queue.idle.is_empty() {
        claim_worker_slot(state)
    } else {
        None
    };
    let wake_worker = if state.worklist.len > 0 {
        queue.idle.claim()
    } else {
        None
    };
    Some(Started {
        item,
        ticket,
        queued_at,
        spawn_worker,
        wake_worker,
    })
}

/// Counts a new worker and gives it a slot of the queue's idle set, unless
/// the queue already has `max_active` workers.
fn claim_worker_slot(state: &mut QueueState) -> Option<usize> {
    let slot = state.free_slots.pop()?;
    state.workers += 1;
    state.running.reserve(1);
    Some(slot)
}

/// Marks the worker in `slot` as parked, to be woken through `waker`, unless
/// the worker should exit (the queue is shutting down and has nothing left
/// that could reach it) or look again (an item arrived on the intake stack).
///
/// The worker must have withdrawn from the idle set (`unpark_worker`) since
/// it last parked.
pub(crate) fn park_worker(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    slot: usize,
    waker: &Waker,
) -> Park {
    let intake_empty = intake_is_empty(queue.intake.load(Ordering::SeqCst));
    let state = guard.queue(queue);
    let shutting_down = matches!(state.phase, Phase::Destroyed | Phase::Orphaned);
    if shutting_down && intake_empty && state.worklist.len == 0 && state.timers.len == 0 {
        release_worker_slot(state, slot);
        return Park::Exit;
    }
    queue.idle.park(slot, waker);

    // The other half of the pairing in `push_intake`: a push that missed our
    // park is visible here.
    dekker_fence();
    if intake_is_empty(queue.intake.load(Ordering::SeqCst)) {
        Park::Parked
    } else {
        unpark_worker(queue, slot);
        Park::Retry
    }
}

/// Outcome of `park_worker`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Park {
    /// Registered as idle: sleep until woken.
    Parked,
    /// Work arrived on the intake stack meanwhile: look again.
    Retry,
    /// The queue is shutting down and empty: the worker exits.
    Exit,
}

/// Marks the worker in `slot` as not parked; a no-op when it was not, or
/// when a pusher claimed it first. Every poll of a worker starts with it.
pub(crate) fn unpark_worker(queue: &QueueCore, slot: usize) {
    let _was_parked = queue.idle.withdraw(slot);
}

/// Forgets the worker in `slot`, whose task ended without `park_worker`
/// returning `Exit` (its runtime shut down).
pub(crate) fn remove_worker(guard: &mut PoolGuard<'_>, queue: &QueueCore, slot: usize) {
    unpark_worker(queue, slot);
    release_worker_slot(guard.queue(queue), slot);
}

/// Uncounts an exiting worker and frees its slot.
fn release_worker_slot(state: &mut QueueState, slot: usize) {
    state.workers -= 1;
    state.free_slots.push(slot);
}

/// Ends the run with `ticket` of `core` on `queue`: records its run time,
/// advances `done` and wakes flushers.
///
/// Returns the queue's reference to the item, which the caller must drop
/// after unlocking: dropping the last reference runs the item's destructor.
pub(crate) fn finish(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    core: &WorkCore,
    ticket: u64,
    run_time_ns: u64,
    leftovers: &mut Leftovers,
) -> Option<ItemRef> {
    let node = guard.node(core);
    debug_assert_eq!(node.running.map(|(_, t)| t), Some(ticket));
    node.running = None;
    let done = ticket.max(node.cancelled_ticket);
    leftovers
        .wake
        .extend(release_waiting_elsewhere(guard, core, queue));

    let state = guard.queue(queue);
    let released = state
        .running
        .iter()
        .position(|(running, t)| *t == ticket && std::ptr::eq(running.core(), core))
        .map(|index| state.running.swap_remove(index).0);
    state.run_time.saturating_record(run_time_ns.max(1));

    core.advance_done(done);
    released
}

/// Returns a worker to wake on the queue whose worklist has `core`, queued
/// there while it ran on `ran_on`: now that the run has ended, the item may
/// start. A worker of `ran_on` itself looks at its worklist anyway.
fn release_waiting_elsewhere(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    ran_on: &QueueCore,
) -> Option<Waker> {
    let Place::Worklist(waiting_on) = guard.node(core).place else {
        return None;
    };
    if std::ptr::eq(waiting_on.as_ptr(), ran_on) {
        return None;
    }
    // SAFETY: read under the held pool lock. A queue with an item on its
    // worklist is alive, because its workers keep it until the list is empty.
    unsafe { queue_of(waiting_on) }.idle.claim()
}

/// Outcome of `cancel`.
#[must_use]
pub(crate) struct Cancelled {
    /// The item was pending.
    pub(crate) was_pending: bool,
    /// The queue's reference to the item, to drop after unlocking.
    pub(crate) released: Option<ItemRef>,
}

/// Ends the pending period of `core`, if any, and unlinks it.
///
/// This is the "grab pending" step of every cancel: the function of a
/// period ended here never runs.
pub(crate) fn cancel(guard: &mut PoolGuard<'_>, core: &WorkCore) -> Cancelled {
    let state = core.state.fetch_and(!PENDING, Ordering::AcqRel);
    if state & PENDING == 0 {
        return Cancelled {
            was_pending: false,
            released: None,
        };
    }
    let released = end_period(guard, core, ticket_of(state));
    Cancelled {
        was_pending: true,
        released,
    }
}

/// Ends the pending period `ticket` that its own queuer claimed but may not
/// link, because the queue rejected it. Does nothing if a cancel already
/// ended that period.
pub(crate) fn abandon(guard: &mut PoolGuard<'_>, core: &WorkCore, ticket: u64) {
    let mut state = core.state.load(Ordering::Acquire);
    loop {
        if state & PENDING == 0 || ticket_of(state) != ticket {
            return;
        }
        match core.state.compare_exchange_weak(
            state,
            state & !PENDING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break,
            Err(actual) => state = actual,
        }
    }
    let released = end_period(guard, core, ticket);
    debug_assert!(released.is_none(), "an abandoned period was never linked");
}

/// Ends the pending period `ticket` claimed by `claim_for_intake` for a
/// push that the queue rejected before it happened: clears `IN_INTAKE`,
/// which the push would have used, and settles the period as `abandon` does.
pub(crate) fn abandon_intake(core: &WorkCore, ticket: u64, guard: &mut PoolGuard<'_>) {
    // A push that found the stack closed wrote the queue.
    core.intake_queue
        .store(std::ptr::null_mut(), Ordering::Relaxed);
    // Release: a later pusher's claim must see the bit cleared before it
    // writes the slot.
    core.state.fetch_and(!IN_INTAKE, Ordering::Release);
    abandon(guard, core, ticket);
}

/// Unlinks an item whose pending period `ticket` was just ended by clearing
/// `PENDING`, and settles `done` for that period.
fn end_period(guard: &mut PoolGuard<'_>, core: &WorkCore, ticket: u64) -> Option<ItemRef> {
    // A period that is not linked yet belongs to a queuer waiting for the
    // lock, or waits on an intake stack: the queuer, or the drain, finds the
    // cleared bit, skips linking and counts the cancel.
    let released = match unlink(guard, core) {
        Some(queue_link) => {
            // SAFETY: `queue_link` was read under the held pool lock, and the
            // item was linked on that queue until just now.
            let queue = unsafe { queue_of(queue_link) };
            guard.queue(queue).tallies.cancelled += 1;
            guard.node(core).held.take()
        }
        None => None,
    };

    let node = guard.node(core);
    if node.running.is_some() {
        // An earlier run is in progress: a flush of this period must still
        // wait for it, so `done` advances when it finishes.
        node.cancelled_ticket = ticket;
    } else {
        core.advance_done(ticket);
    }
    released
}

/// Moves `core` from a timer list to the worklist it is due on, now.
/// Returns a worker to wake. Used by `flush_delayed_work`.
pub(crate) fn activate(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    leftovers: &mut Leftovers,
) -> Option<Waker> {
    let Place::Timer(queue_link) = guard.node(core).place else {
        return None;
    };
    unlink(guard, core);
    // SAFETY: the item was on this queue's timer list until just now.
    let queue = unsafe { queue_of(queue_link) };
    activate_unlinked(guard, core, queue, leftovers)
}

/// Puts an item just taken off `queue`'s timer list on its worklist.
fn activate_unlinked(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    queue: &QueueCore,
    leftovers: &mut Leftovers,
) -> Option<Waker> {
    // `link_worklist` counts a queueing; the timer link already did.
    let wake = link_worklist_in_order(guard, core, queue, leftovers);
    guard.queue(queue).tallies.queued -= 1;
    wake
}

/// A delayed item that its queue's own work armed while the queue
/// drained, cancelled by the drain. Drop it after unlocking.
pub(crate) struct DrainCancel {
    /// The item, for its name.
    pub(crate) item: ItemRef,
    /// The reference the timer list held.
    pub(crate) released: Option<ItemRef>,
}

/// Returns true when `core` was armed during a drain of a queue that
/// still drains, and may be cancelled for it: an item that is being
/// disabled is left to the cancel in progress, which must find it pending.
fn cancellable_by_drain(guard: &mut PoolGuard<'_>, core: &WorkCore, draining: bool) -> bool {
    draining
        && guard.node(core).armed_while_draining
        && disable_depth_of(core.state.load(Ordering::Acquire)) == 0
}

/// Cancels the timer-list item `core` for a drain (see `expire_timers`).
fn cancel_for_drain(guard: &mut PoolGuard<'_>, core: &WorkCore) -> DrainCancel {
    let node = guard.node(core);
    node.cancelled_by_drain = true;
    let item = node
        .held
        .clone()
        .expect("a linked item holds its reference");
    let cancelled = cancel(guard, core);
    DrainCancel {
        item,
        released: cancelled.released,
    }
}

/// Cancels every item on `queue`'s timer list that the queue's own work
/// armed during the drain that runs now, into `cancels`, so that the drain
/// need not wait out their delays. Linux's drain does not wait for timers
/// either; it turns their queueing away when they fire.
pub(crate) fn cancel_drain_rearms(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    cancels: &mut Vec<DrainCancel>,
) {
    let draining = guard.queue(queue).phase == Phase::Draining;
    let mut cursor = guard.queue(queue).timers.head;
    while let Some(link) = cursor {
        // SAFETY: `link` was read from the timer list under the held lock.
        let core = unsafe { item(link) };
        cursor = guard.node(core).next;
        if cancellable_by_drain(guard, core, draining) {
            cancels.push(cancel_for_drain(guard, core));
        }
    }
}

/// Returns how many items on `queue`'s timer list are due at or after
/// `after`, and the latest of their deadlines.
pub(crate) fn timers_due_after(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    after: tokio::time::Instant,
) -> (usize, Option<tokio::time::Instant>) {
    let mut count = 0;
    let mut latest: Option<tokio::time::Instant> = None;
    let mut cursor = guard.queue(queue).timers.head;
    while let Some(link) = cursor {
        // SAFETY: `link` was read from the timer list under the held lock.
        let core = unsafe { item(link) };
        let node = guard.node(core);
        cursor = node.next;
        if node.deadline.is_some_and(|deadline| deadline >= after) {
            count += 1;
            latest = latest.max(node.deadline);
        }
    }
    (count, latest)
}

/// Moves every item of `queue`'s timer list that is due at `now` to its
/// worklist, pushing the workers to wake into `wake`. Returns the earliest
/// deadline left, and arms the timer to it.
///
/// An item whose timer the queue's own work armed while the queue drains
/// is cancelled instead, into `cancels`, as Linux turns away a queueing from a
/// timer on a draining queue (`__queue_work` takes only chained work then).
/// Without that, an item that re-arms itself on every run would keep the
/// drain going forever. The drain itself cancels such items after each of
/// its rounds (`cancel_drain_rearms`); this catches a timer that fires first.
pub(crate) fn expire_timers(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    now: tokio::time::Instant,
    wake: &mut Vec<Waker>,
    cancels: &mut Vec<DrainCancel>,
    leftovers: &mut Leftovers,
) -> Option<tokio::time::Instant> {
    let draining = guard.queue(queue).phase == Phase::Draining;
    let mut next_deadline: Option<tokio::time::Instant> = None;
    let mut cursor = guard.queue(queue).timers.head;
    while let Some(link) = cursor {
        // SAFETY: `link` was read from the timer list under the held lock.
        let core = unsafe { item(link) };
        let node = guard.node(core);
        cursor = node.next;
        let deadline = node.deadline.expect("a timer-list item has a deadline");
        if deadline <= now && cancellable_by_drain(guard, core, draining) {
            cancels.push(cancel_for_drain(guard, core));
        } else if deadline <= now {
            unlink(guard, core);
            wake.extend(activate_unlinked(guard, core, queue, leftovers));
        } else if next_deadline.is_none_or(|next| deadline < next) {
            next_deadline = Some(deadline);
        }
    }

    let timer = &mut guard.queue(queue).timer;
    timer.armed_until = next_deadline;
    timer.kicked = false;
    next_deadline
}

/// Returns whether a drain cancelled `core` (see `cancel_drain_rearms`) since the
/// last call, and clears the mark.
pub(crate) fn take_cancelled_by_drain(guard: &mut PoolGuard<'_>, core: &WorkCore) -> bool {
    std::mem::take(&mut guard.node(core).cancelled_by_drain)
}

/// Registers the timer task's waker. Returns true if a kick arrived since
/// the last `expire_timers`, so the task must not sleep.
pub(crate) fn park_timer(guard: &mut PoolGuard<'_>, queue: &QueueCore, waker: &Waker) -> bool {
    let timer = &mut guard.queue(queue).timer;
    if timer.kicked {
        return true;
    }
    match &mut timer.waker {
        Some(registered) => registered.clone_from(waker),
        None => timer.waker = Some(waker.clone()),
    }
    false
}

/// Returns true when the timer task should exit: the queue is shutting down
/// and its timer list is empty.
pub(crate) fn timer_done(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> bool {
    let state = guard.queue(queue);
    matches!(state.phase, Phase::Destroyed | Phase::Orphaned) && state.timers.len == 0
}

/// Outcome of `modify_deadline`.
pub(crate) enum Modified {
    /// The pending item now waits for the new deadline (or is on the
    /// worklist if none); wake this task and settle the leftovers.
    Moved(Option<Waker>, Leftovers),
    /// The item is not pending: queue it as usual.
    NotPending,
    /// A queuer owns the period but has not linked it yet: retry.
    Busy,
    /// The item's intake stack was drained, which left work for after the
    /// unlock: settle it, then retry.
    Drained(Leftovers),
}

/// Gives a pending item a new deadline on `queue` (`None`: run now). Used by
/// `mod_delayed_work`.
pub(crate) fn modify_deadline(
    guard: &mut PoolGuard<'_>,
    core: &WorkCore,
    queue: &QueueCore,
    deadline: Option<tokio::time::Instant>,
) -> Modified {
    if !core.is_pending() {
        return Modified::NotPending;
    }
    let leftovers = drain_intake_of(guard, core);
    if !leftovers.is_empty() {
        return Modified::Drained(leftovers);
    }
    let Some(old_queue) = unlink(guard, core) else {
        return Modified::Busy;
    };
    // SAFETY: the item was linked on `old_queue` until just now.
    let old_queue = unsafe { queue_of(old_queue) };
    guard.queue(old_queue).tallies.queued -= 1;

    let mut leftovers = Leftovers::default();
    let wake = match deadline {
        Some(deadline) => link_timer(guard, core, queue, deadline),
        None => link_worklist_in_order(guard, core, queue, &mut leftovers),
    };
    guard.queue(queue).tallies.modified += 1;
    Modified::Moved(wake, leftovers)
}

/// Returns the items pending on `queue`'s worklist or running on it, each
/// with the ticket a flush must wait for. Timer-list items are left out
/// unless `with_timers`, as `flush_workqueue` does not wait for delays.
///
/// NOTE: this walks the whole worklist under the pool lock, about 10 ns an
/// item, so flushing a queue that holds many thousands of items delays
/// every queueing, top halves included, for that long.
pub(crate) fn flush_targets(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
    with_timers: bool,
) -> Vec<(ItemRef, u64)> {
    let mut targets = Vec::new();
    let state = guard.queue(queue);
    // The run's own ticket: a queueing that the run made since is waited
    // for where it is linked (this worklist), and not at all when it is
    // on a timer, as the doc of `flush_workqueue` promises.
    for (item, run_ticket) in &state.running {
        targets.push((item.clone(), *run_ticket));
    }

    let lists = [
        Some(state.worklist.head),
        with_timers.then_some(state.timers.head),
    ];
    for head in lists.into_iter().flatten() {
        let mut cursor = head;
        while let Some(link) = cursor {
            // SAFETY: `link` was read from a list under the held lock.
            let core = unsafe { item(link) };
            let node = guard.node(core);
            cursor = node.next;
            if node.place == Place::Timer(NonNull::from(queue)) && node.armed_while_draining {
                // The drain cancels it instead of waiting out its delay.
                continue;
            }
            let item = node
                .held
                .clone()
                .expect("a linked item holds its reference");
            targets.push((item, core.latest_ticket()));
        }
    }
    targets
}

/// Returns true when nothing is pending or running on `queue`.
pub(crate) fn is_empty(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> bool {
    let state = guard.queue(queue);
    state.worklist.len == 0 && state.timers.len == 0 && state.running.is_empty()
}

/// Moves `queue` to `phase`, closing its intake stack when the phase is
/// `Destroyed`, and returns every parked worker and the timer task, to be
/// woken so that they notice, with what the close drained. Settle them
/// after unlocking.
pub(crate) fn set_phase(guard: &mut PoolGuard<'_>, queue: &QueueCore, phase: Phase) -> Leftovers {
    let mut leftovers = Leftovers::default();
    if phase == Phase::Destroyed {
        // The close links what was pushed before it, so the workers woken
        // below still run it.
        leftovers = close_intake(guard, queue);
    }
    let state = guard.queue(queue);
    state.phase = phase;
    queue.phase_hint.store(phase as u8, Ordering::SeqCst);
    leftovers.wake.extend(queue.idle.claim_all());
    state.timer.kicked = true;
    leftovers.wake.extend(state.timer.waker.take());
    leftovers
}

/// Counts a drain in, and moves a live queue to `Draining`. Returns the
/// tasks to wake, as `set_phase` does.
pub(crate) fn begin_drain(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> Leftovers {
    let state = guard.queue(queue);
    state.drainers += 1;
    match state.phase {
        Phase::Live | Phase::Orphaned => set_phase(guard, queue, Phase::Draining),
        Phase::Draining | Phase::Destroyed => Leftovers::default(),
    }
}

/// Counts a drain out. A destroy leaves the queue destroyed at once; a
/// drain leaves it live again once no other drain runs. Returns the tasks
/// to wake, as `set_phase` does.
pub(crate) fn end_drain(guard: &mut PoolGuard<'_>, queue: &QueueCore, after: Phase) -> Leftovers {
    let state = guard.queue(queue);
    state.drainers -= 1;
    match (after, state.phase) {
        (_, Phase::Destroyed) => Leftovers::default(),
        (Phase::Destroyed, _) => set_phase(guard, queue, Phase::Destroyed),
        (_, Phase::Draining) if state.drainers == 0 => set_phase(guard, queue, after),
        _ => Leftovers::default(),
    }
}

pub(crate) fn phase(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> Phase {
    guard.queue(queue).phase
}

/// Counts a new worker and returns its slot, reserving room so that later
/// bookkeeping does not allocate. Returns `None` when the queue already has
/// `max_active` workers.
pub(crate) fn add_worker(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> Option<usize> {
    claim_worker_slot(guard.queue(queue))
}

/// A snapshot of what the pool lock protects in a queue.
pub(crate) struct QueueSnapshot {
    pub(crate) tallies: Tallies,
    pub(crate) in_flight: usize,
    pub(crate) pending: usize,
    pub(crate) delayed: usize,
    pub(crate) workers: usize,
    pub(crate) idle_workers: usize,
    pub(crate) latency: Histogram<u64>,
    pub(crate) run_time: Histogram<u64>,
}

pub(crate) fn snapshot(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> QueueSnapshot {
    let state = guard.queue(queue);
    QueueSnapshot {
        tallies: state.tallies,
        in_flight: state.running.len(),
        pending: state.worklist.len,
        delayed: state.timers.len,
        workers: state.workers,
        idle_workers: queue.idle.count(),
        latency: state.latency.clone(),
        run_time: state.run_time.clone(),
    }
}

/// Detaches every item from `queue`, which is being freed because its
/// runtime stopped its workers: pending items are cancelled, running ones
/// are marked finished, and flushers of either are released.
///
/// Returns the queue's references to the items, and the workers of other
/// queues to wake for queueings that waited for these runs, to drop and
/// wake after unlocking.
pub(crate) fn detach_all(
    guard: &mut PoolGuard<'_>,
    queue: &QueueCore,
) -> (Vec<ItemRef>, Vec<Waker>) {
    let leftovers = drain_intake(guard, queue);
    let mut released = leftovers.released;
    for head in [
        guard.queue(queue).worklist.head,
        guard.queue(queue).timers.head,
    ] {
        let mut cursor = head;
        while let Some(link) = cursor {
            // SAFETY: `link` was read from a list under the held lock, and
            // the item is kept alive by its `held` reference until `cancel`
            // hands that reference to `released`.
            let core = unsafe { item(link) };
            cursor = guard.node(core).next;
            let outcome = cancel(guard, core);
            released.extend(outcome.released);
        }
    }

    let mut wake = Vec::new();
    let running = std::mem::take(&mut guard.queue(queue).running);
    for (item, ticket) in running {
        let core = item.core();
        let node = guard.node(core);
        node.running = None;
        let done = ticket.max(node.cancelled_ticket);
        core.advance_done(done);
        // A queueing of it waiting on another queue may start now.
        wake.extend(release_waiting_elsewhere(guard, core, queue));
        released.push(item);
    }
    (released, wake)
}

/// Cancels every item on `queue`'s timer list, for a queue whose runtime
/// has no time driver. Returns the references to drop after unlocking.
pub(crate) fn cancel_timers(guard: &mut PoolGuard<'_>, queue: &QueueCore) -> Vec<ItemRef> {
    let mut released = Vec::new();
    let mut cursor = guard.queue(queue).timers.head;
    while let Some(link) = cursor {
        // SAFETY: `link` was read from the timer list under the held lock,
        // and the item is kept alive by its `held` reference until `cancel`
        // hands that reference to `released`.
        let core = unsafe { item(link) };
        cursor = guard.node(core).next;
        released.extend(cancel(guard, core).released);
    }
    released
}

/// Drains the intake stack that `core` waits on, if it waits on one, so
/// that its queueing is linked. Returns what the drain left.
fn drain_intake_of(guard: &mut PoolGuard<'_>, core: &WorkCore) -> Leftovers {
    if guard.node(core).place != Place::Unlinked
        || core.state.load(Ordering::Acquire) & IN_INTAKE == 0
    {
        return Leftovers::default();
    }
    let Some(intake_queue) = NonNull::new(core.intake_queue.load(Ordering::Acquire)) else {
        return Leftovers::default();
    };
    // SAFETY: with the bit set, `intake_queue` is null or the current
    // push's queue (see the field), which its pusher, or its workers until
    // they drain the stack, keep alive.
    drain_intake(guard, unsafe { queue_of(intake_queue) })
}

/// Returns the name of the queue on which `target` waits behind a
/// queueing of `waiter`, when that queue runs one item at a time. That
/// queueing cannot start before `waiter`'s current run ends, so a wait of
/// that run for `target` would never end. A `target` still on an intake
/// stack is drained onto its worklist first, into `leftovers`, so that the
/// order checked is the order the queue will run.
///
/// NOTE: a `target` whose push has not yet named its queue is not
/// checked, and neither is a longer chain (the waiter's queueing behind
/// an item whose run waits for the waiter).
pub(crate) fn waits_behind_item(
    guard: &mut PoolGuard<'_>,
    target: &WorkCore,
    waiter: &WorkCore,
    leftovers: &mut Leftovers,
) -> Option<String> {
    if !target.is_pending() {
        return None;
    }
    leftovers.absorb(drain_intake_of(guard, target));
    let Place::Worklist(queue_link) = guard.node(target).place else {
        return None;
    };
    // SAFETY: read under the held pool lock; the item is on its worklist.
    let queue = unsafe { queue_of(queue_link) };
    if queue.max_active != 1 {
        return None;
    }
    let mut cursor = guard.queue(queue).worklist.head;
    while let Some(link) = cursor {
        // SAFETY: `link` was read from the worklist under the held lock.
        let core = unsafe { item(link) };
        if std::ptr::eq(core, target) {
            return None;
        }
        if std::ptr::eq(core, waiter) {
            return Some(queue.name.to_string());
        }
        cursor = guard.node(core).next;
    }
    None
}

/// Returns true when `core` is pending on `queue`: on its worklist or timer
/// list, or pushed on its intake stack.
pub(crate) fn is_pending_on(guard: &mut PoolGuard<'_>, core: &WorkCore, queue: &QueueCore) -> bool {
    let state = core.state.load(Ordering::Acquire);
    if state & PENDING == 0 {
        return false;
    }
    let queue_link = NonNull::from(queue);
    match guard.node(core).place {
        Place::Worklist(on) | Place::Timer(on) => on == queue_link,
        Place::Unlinked => {
            state & IN_INTAKE != 0 && std::ptr::eq(core.intake_queue.load(Ordering::Acquire), queue)
        }
    }
}
