//! Queueing an existing item allocates no heap memory, from a plain thread
//! and from a top half. A counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use wq::Work;

/// Counts allocations made by the current thread.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments; the
// counter is a thread-local `Cell` of a `Copy` type, which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded unchanged from our caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged from our caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded unchanged from our caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

static RUNS: AtomicUsize = AtomicUsize::new(0);
static STATIC_ITEM: Work = Work::new("no-alloc-static", || {
    RUNS.fetch_add(1, Ordering::Relaxed);
});

/// Queueing idle and pending items, static and dynamic, from a plain thread
/// and inside a top half, allocates nothing once the queue exists.
///
/// Each round first queues a blocker that holds the ordered queue until the
/// measured queueings are done, so the second queueing of an item always
/// finds it pending and takes the coalesced path.
#[test]
fn queueing_does_not_allocate() {
    let queue = wq::alloc_ordered_workqueue("no-alloc", wq::WqFlags::NONE);
    let dynamic_item = Work::from_fn("no-alloc-dynamic", || {
        RUNS.fetch_add(1, Ordering::Relaxed);
    });
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let blocker = Work::from_fn("blocker", move || {
        released.lock().unwrap().recv().unwrap();
    });

    let round = |in_top_half: bool| {
        wq::queue_work(&queue, &blocker).unwrap();

        let guard = in_top_half.then(|| irq_sim::context::enter_hardirq(9, "no-alloc"));
        let before = allocations();
        let results = [
            wq::queue_work(&queue, &STATIC_ITEM),
            wq::queue_work(&queue, &STATIC_ITEM),
            wq::queue_work(&queue, &dynamic_item),
            wq::queue_work(&queue, &dynamic_item),
        ];
        let allocated = allocations() - before;
        drop(guard);

        release.send(()).unwrap();
        wq::blocking::flush_work(&STATIC_ITEM).unwrap();
        wq::blocking::flush_work(&dynamic_item).unwrap();
        (allocated, results)
    };

    // Warm up: the runtime, its workers and the thread-locals.
    for _ in 0..3 {
        let _ = round(false);
        let _ = round(true);
    }

    for index in 0..2_000 {
        let in_top_half = index % 2 == 1;
        let (allocated, results) = round(in_top_half);
        assert_eq!(
            allocated, 0,
            "round {index} (top half: {in_top_half}): {allocated} allocations"
        );
        assert_eq!(
            results,
            [Ok(true), Ok(false), Ok(true), Ok(false)],
            "round {index}"
        );
    }
    assert_eq!(RUNS.load(Ordering::Relaxed), 2 * 2_006);
}
