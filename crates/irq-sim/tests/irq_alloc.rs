//! The raise -> dispatch -> top half path allocates no heap memory.
//!
//! A counting global allocator counts allocations made by the threads that
//! opt in: the raising test thread and, from their first top half on, the
//! CPU threads. Everything is set up and warmed up first, then counting
//! starts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use irq_sim::clock;
use irq_sim::{Config, CpuMode, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

fn watch_this_thread() {
    WATCHED.with(|watched| watched.set(true));
}

fn note_allocation() {
    if COUNTING.load(Ordering::Relaxed) && WATCHED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged; counting touches only atomics and a const-initialized
// thread-local without a destructor, which never allocate.
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

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

const EDGE: u32 = 5;
const LEVEL: u32 = 6;
const SHARED: u32 = 7;
const TIMER: u32 = 8;
const OUTPUTS: u32 = 9;

fn wait_for(counter: &AtomicU64, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::SeqCst) < target {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for deliveries"
        );
        // Yield rather than spin: busy-poll CPU threads already occupy the
        // host's cores.
        std::thread::yield_now();
    }
}

fn run(mode: CpuMode, nr_cpus: usize) {
    let machine = Machine::new(Config {
        nr_cpus,
        cpu_mode: mode,
        ..Config::default()
    })
    .unwrap();
    let irq = machine.controller();
    let delivered = Arc::new(AtomicU64::new(0));
    let waker = Waker::from(Arc::new(NoopWake));

    let counter = delivered.clone();
    irq.set_affinity(EDGE, nr_cpus - 1).unwrap();
    irq.request_irq(
        EDGE,
        IrqRequest::new(
            "edge",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                watch_this_thread();
                ctx.wake_deferred(waker.clone());
                counter.fetch_add(1, Ordering::SeqCst);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let counter = delivered.clone();
    irq.request_irq(
        LEVEL,
        IrqRequest::new(
            "level",
            IrqFlags::LEVEL.oneshot(),
            move |ctx: &mut HardIrqContext<'_>| {
                watch_this_thread();
                ctx.controller().lower(ctx.irq()).unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                IrqReturn::WakeThread
            },
        )
        .on_wake_thread(|ctx| ctx.controller().unmask_oneshot(ctx.irq()).unwrap()),
    )
    .unwrap();
    for name in ["shared-a", "shared-b"] {
        let counter = delivered.clone();
        irq.request_irq(
            SHARED,
            IrqRequest::new(
                name,
                IrqFlags::EDGE.shared(),
                move |_: &mut HardIrqContext<'_>| {
                    watch_this_thread();
                    if name == "shared-b" {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
    }
    let counter = delivered.clone();
    irq.request_irq(
        TIMER,
        IrqRequest::new("tick", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            watch_this_thread();
            counter.fetch_add(1, Ordering::SeqCst);
            IrqReturn::Handled
        }),
    )
    .unwrap();
    // Two devices on a shared level line, each through its own output.
    let outputs = Arc::new([
        irq.irq_output(OUTPUTS).unwrap(),
        irq.irq_output(OUTPUTS).unwrap(),
    ]);
    for (index, name) in ["output-a", "output-b"].into_iter().enumerate() {
        let (outputs, counter) = (outputs.clone(), delivered.clone());
        irq.request_irq(
            OUTPUTS,
            IrqRequest::new(
                name,
                IrqFlags::LEVEL.shared(),
                move |_: &mut HardIrqContext<'_>| {
                    watch_this_thread();
                    if !outputs[index].deassert() {
                        return IrqReturn::None;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
    }
    let timer = irq.local_timer(0, TIMER).unwrap();

    let mut expected = 0;
    let round = |expected: &mut u64| {
        for line in [EDGE, LEVEL, SHARED] {
            let _ = irq.raise(line).unwrap();
            *expected += 1;
            wait_for(&delivered, *expected);
        }
        for output in outputs.iter() {
            let _ = output.assert();
            *expected += 1;
            wait_for(&delivered, *expected);
        }
        timer.arm_oneshot(clock::now() + Duration::from_micros(50));
        *expected += 1;
        wait_for(&delivered, *expected);
    };

    // Warm up: every thread's first top half marks it watched, and lazy
    // thread-local and histogram state is touched once.
    for _ in 0..10 {
        round(&mut expected);
    }
    watch_this_thread();
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        round(&mut expected);
    }
    COUNTING.store(false, Ordering::SeqCst);

    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations on the interrupt path in {mode:?} mode"
    );
    assert!(machine.shutdown().is_clean());
}

/// Raising, dispatching and running top halves (edge, level with ONESHOT,
/// shared, device outputs on a shared level line, timer, deferred
/// wake-up) allocates nothing, in both CPU modes.
#[test]
fn interrupt_path_allocates_nothing() {
    run(CpuMode::Blocking, 2);
    // One spinning CPU, so that the test thread keeps a host core.
    run(CpuMode::BusyPoll, 1);
}
