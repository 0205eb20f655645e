//! The statistics snapshot: the latency and run-time histograms measure
//! from the queueing and from the start, not from when a worker parked.

use std::time::{Duration, Instant};

use wq::{Work, Workqueue};

/// How long the queue sits idle with its worker parked before the item is
/// queued: far longer than a no-op item runs or a wake-up takes.
const IDLE_GAP: Duration = Duration::from_millis(200);

#[test]
fn parked_worker_times_from_queueing() {
    let queue = Workqueue::builder("stats_parked")
        .idle_spin(Duration::ZERO)
        .build();
    let item = Work::from_fn("noop", || {});

    // Run once, then wait until the worker is parked again.
    assert!(wq::queue_work(&queue, &item).unwrap());
    wq::blocking::flush_work(&item).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.stats().idle_workers == 0 {
        assert!(Instant::now() < deadline, "the worker never parked");
        std::thread::yield_now();
    }

    // The gap is the point of the test: a clock read before parking would
    // count it in the run time and record the start before the queueing.
    std::thread::sleep(IDLE_GAP);
    assert!(wq::queue_work(&queue, &item).unwrap());
    wq::blocking::flush_work(&item).unwrap();

    let stats = queue.stats();
    assert_eq!(stats.executed, 2);
    assert!(
        stats.run_time_ns.max() < IDLE_GAP.as_nanos() as u64 / 2,
        "a no-op ran for {} ns: the park was counted",
        stats.run_time_ns.max()
    );
    assert!(
        stats.latency_ns.max() > 1,
        "the start was recorded before the queueing"
    );
}
