//! Delayed work on tokio's paused clock: the delays are exact and the tests
//! take no real time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::test_queue;
use tokio::time::Instant;
use wq::DelayedWork;

/// Timer granularity of delayed work: tokio's timer wheel ticks in
/// milliseconds.
const GRANULARITY: Duration = Duration::from_millis(1);

/// A delayed item that records the instant of each run.
fn recording_item(name: &'static str) -> (Arc<DelayedWork>, Arc<Mutex<Vec<Instant>>>) {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let recorder = runs.clone();
    let item = DelayedWork::from_fn(name, move || recorder.lock().unwrap().push(Instant::now()));
    (item, runs)
}

/// A delayed item never runs before its delay, and at most one timer
/// granularity after it.
#[tokio::test(start_paused = true)]
async fn delay_is_met_within_granularity() {
    let queue = test_queue("delay", 4);
    for delay_ms in [1, 7, 50, 1000] {
        let (item, runs) = recording_item("delayed");
        let delay = Duration::from_millis(delay_ms);
        let queued_at = Instant::now();

        assert!(wq::queue_delayed_work(&queue, &item, delay).unwrap());
        wq::flush_work(&item).await.unwrap();

        let ran_at = runs.lock().unwrap()[0];
        let waited = ran_at - queued_at;
        assert!(waited >= delay, "ran after {waited:?}, delay {delay:?}");
        assert!(
            waited <= delay + GRANULARITY,
            "ran after {waited:?}, delay {delay:?}"
        );
    }
}

/// queue_delayed_work on a pending item changes nothing and returns false.
#[tokio::test(start_paused = true)]
async fn queue_delayed_pending_keeps_deadline() {
    let queue = test_queue("delay-pending", 4);
    let (item, runs) = recording_item("delayed");
    let queued_at = Instant::now();

    assert!(wq::queue_delayed_work(&queue, &item, Duration::from_millis(100)).unwrap());
    assert!(!wq::queue_delayed_work(&queue, &item, Duration::from_millis(5)).unwrap());
    assert!(!wq::queue_work(&queue, &item).unwrap());
    wq::flush_work(&item).await.unwrap();

    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0] - queued_at >= Duration::from_millis(100));
}

/// mod_delayed_work replaces the deadline of a pending item, earlier or
/// later, and queues an idle one.
#[tokio::test(start_paused = true)]
async fn mod_delayed_work_replaces_deadline() {
    let queue = test_queue("delay-mod", 4);
    let (item, runs) = recording_item("debounced");
    let start = Instant::now();

    assert!(!wq::mod_delayed_work(&queue, &item, Duration::from_millis(1000)).unwrap());
    assert!(wq::mod_delayed_work(&queue, &item, Duration::from_millis(10)).unwrap());
    wq::flush_work(&item).await.unwrap();
    let first = runs.lock().unwrap()[0] - start;
    assert!(
        first >= Duration::from_millis(10) && first <= Duration::from_millis(11),
        "{first:?}"
    );

    // Pushed later, as a debounce does on every bounce.
    let start = Instant::now();
    assert!(!wq::mod_delayed_work(&queue, &item, Duration::from_millis(5)).unwrap());
    for _ in 0..3 {
        tokio::time::advance(Duration::from_millis(3)).await;
        assert!(wq::mod_delayed_work(&queue, &item, Duration::from_millis(5)).unwrap());
    }
    wq::flush_work(&item).await.unwrap();
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 2);
    let second = runs[1] - start;
    assert!(
        second >= Duration::from_millis(14) && second <= Duration::from_millis(15),
        "{second:?}"
    );
    // Two pending periods, each run once; the four moves are counted apart.
    let stats = queue.stats();
    assert_eq!(
        (stats.queued, stats.executed, stats.modified),
        (2, 2, 4),
        "{stats:?}"
    );
}

/// A zero delay queues at once, without the timer.
#[tokio::test(start_paused = true)]
async fn zero_delay_queues_at_once() {
    let queue = test_queue("delay-zero", 4);
    let (item, runs) = recording_item("now");
    let start = Instant::now();

    assert!(wq::queue_delayed_work(&queue, &item, Duration::ZERO).unwrap());
    assert_eq!(queue.stats().delayed, 0);
    assert_eq!(queue.stats().pending + queue.stats().in_flight, 1);
    wq::flush_work(&item).await.unwrap();
    assert_eq!(runs.lock().unwrap()[0], start);
}

/// A delay too long for the clock waits `MAX_DELAY` instead of failing,
/// from `queue_delayed_work` and from `mod_delayed_work` alike.
#[tokio::test(start_paused = true)]
async fn longest_delay_is_capped() {
    let queue = test_queue("delay-max", 4);
    let (item, runs) = recording_item("never");

    assert!(wq::queue_delayed_work(&queue, &item, Duration::MAX).unwrap());
    assert!(wq::mod_delayed_work(&queue, &item, Duration::from_secs(u64::MAX)).unwrap());
    assert_eq!(queue.stats().delayed, 1);
    tokio::time::sleep(Duration::from_secs(3600)).await;

    assert!(runs.lock().unwrap().is_empty());
    assert!(wq::cancel_delayed_work(&item));
}

/// Items with different delays run in deadline order, whatever the order in
/// which they were queued.
#[tokio::test(start_paused = true)]
async fn deadlines_run_in_order() {
    let queue = test_queue("delay-order", 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let delays = [30_u64, 10, 20, 5, 25];
    let items: Vec<_> = delays
        .iter()
        .map(|&delay| {
            let order = order.clone();
            let item = DelayedWork::from_fn(format!("after-{delay}ms"), move || {
                order.lock().unwrap().push(delay)
            });
            (item, delay)
        })
        .collect();
    for (item, delay) in &items {
        wq::queue_delayed_work(&queue, item, Duration::from_millis(*delay)).unwrap();
    }
    for (item, _) in &items {
        wq::flush_work(item).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![5, 10, 20, 25, 30]);
}
