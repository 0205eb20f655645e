//! The steady-state loop of `irqlab latency` (timer expiry, top half,
//! `queue_work` or WakeThread, bottom-half start, both histogram records)
//! allocates no heap memory per activation.
//!
//! A counting global allocator counts the allocations of every thread of
//! the process while a session runs in steady state: the simulated CPU,
//! the workers, the IRQ thread and the waiting test thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use irqlab::latency::{CpuModeArg, Mechanism, RunSettings, Runtimes, Session};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Held by each test: the counter is process-wide.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn note_allocation() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged; counting touches only two atomics, which never
// allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Polls `session` until it reaches `target` activations, sleeping between
/// polls (a sleep does not allocate), with a generous deadline.
fn wait_for(session: &Session, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while session.activations() < target {
        assert!(
            Instant::now() < deadline,
            "timed out at {} of {target} activations",
            session.activations()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Counts the allocations of the whole process over 1,000 activations of
/// `mechanism` after 300 of warm-up. Returns the allocations, the worker
/// tasks the queue added meanwhile, and the activations.
fn steady_state_allocations(mechanism: Mechanism, runtimes: &Runtimes) -> (u64, u64, u64) {
    let settings = RunSettings {
        period: Duration::from_micros(500),
        cpu_mode: CpuModeArg::Blocking,
        load_hz: 0,
        work_time: Duration::ZERO,
        slots: irqlab::latency::DEFAULT_SLOTS,
    };
    let session = Session::start(mechanism, &settings, runtimes).unwrap();
    wait_for(&session, 300);

    // A system queue adds a worker task whenever it starts an item with no
    // worker parked, up to max_active (256): that growth is counted apart.
    let queue = match mechanism {
        Mechanism::SystemWq => Some(wq::system_wq()),
        Mechanism::HighpriWq => Some(wq::system_highpri_wq()),
        _ => None,
    };
    let workers = || queue.map_or(0, |queue| queue.stats().workers);
    let workers_before = workers();

    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let first = session.activations();
    wait_for(&session, first + 1_000);
    COUNTING.store(false, Ordering::SeqCst);
    let counted = session.activations() - first;
    let workers_added = workers() - workers_before;

    let samples = session.finish().unwrap();
    assert!(
        samples.counts.started > 0,
        "{mechanism:?}: no bottom half ran"
    );
    (ALLOCATIONS.load(Ordering::SeqCst), workers_added, counted)
}

/// The workqueue and threaded-IRQ loops allocate nothing per activation:
/// the only allocations are those of a system queue's pool growing to
/// max_active (a task per new worker, and now and then a larger list of
/// running items), which stop once the pool is full.
/// tokio-spawn is left out: it allocates a task per activation by design.
#[test]
fn steady_state_loop_allocates_nothing() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtimes = Runtimes::new().unwrap();
    for mechanism in [
        Mechanism::SystemWq,
        Mechanism::HighpriWq,
        Mechanism::OrderedWq,
        Mechanism::ThreadedIrq,
    ] {
        let (allocations, workers_added, activations) =
            steady_state_allocations(mechanism, &runtimes);
        // A new worker is its task, and now and then a larger list of
        // running items (`Vec::reserve` grows it by doubling).
        assert!(
            allocations <= 2 * workers_added,
            "{mechanism:?}: {allocations} allocations in {activations} activations, \
             while the pool added {workers_added} worker tasks"
        );
    }
}

/// The counter registers the per-activation task of tokio-spawn, so a
/// zero above does not come from a counter that never counts.
#[test]
fn counter_sees_spawn_allocations() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtimes = Runtimes::new().unwrap();
    let (allocations, _, activations) = steady_state_allocations(Mechanism::TokioSpawn, &runtimes);
    assert!(
        allocations >= activations,
        "{allocations} allocations in {activations} activations"
    );
}
