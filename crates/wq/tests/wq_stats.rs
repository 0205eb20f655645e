//! The statistics snapshot: the latency and run-time histograms measure
//! from the queueing and from the start, not from when a worker parked.

use std::time::{Duration, Instant};

use wq::{HOG_THRESHOLD, Work, Workqueue, WqFlags};

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

/// A synchronous work function that keeps a runtime thread past the
/// threshold is counted, unless its queue runs such functions on blocking
/// threads, or it handed the thread over in a blocking wait.
#[test]
fn runs_holding_a_runtime_thread_counted() {
    let hold = HOG_THRESHOLD * 3;
    let normal = Workqueue::builder("stats_hog").build();
    let intensive = Workqueue::builder("stats_hog_intensive")
        .flags(WqFlags::CPU_INTENSIVE)
        .build();
    let sleeper = Work::from_fn("sleeper", move || std::thread::sleep(hold));

    assert!(wq::queue_work(&normal, &sleeper).unwrap());
    wq::blocking::flush_work(&sleeper).unwrap();
    assert_eq!(normal.stats().hogged, 1);

    assert!(wq::queue_work(&intensive, &sleeper).unwrap());
    wq::blocking::flush_work(&sleeper).unwrap();
    assert_eq!(intensive.stats().hogged, 0);

    // The waiter's run lasts as long as the sleeper's, in a blocking wait.
    let waiter = {
        let sleeper = sleeper.clone();
        Work::from_fn("waiter", move || {
            wq::blocking::flush_work(&sleeper).unwrap();
        })
    };
    assert!(wq::queue_work(&intensive, &sleeper).unwrap());
    assert!(wq::queue_work(&normal, &waiter).unwrap());
    wq::blocking::flush_work(&waiter).unwrap();
    let stats = normal.stats();
    assert_eq!(stats.executed, 2);
    assert_eq!(stats.hogged, 1);
}
