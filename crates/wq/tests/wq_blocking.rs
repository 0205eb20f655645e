//! The blocking forms refuse before acting, and a queue whose runtime has no
//! time driver rejects delayed work instead of losing it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Gate, HANG_GUARD, guarded, ordered_queue};
use wq::{DelayedWork, QueueError, WaitError, Work, Workqueue};

/// In a current-thread runtime, a blocking cancel, disable or flush fails
/// before it cancels, disables or starts anything.
#[tokio::test(flavor = "current_thread")]
async fn blocking_refused_changes_nothing() {
    let queue = ordered_queue("refused");
    let gate = Gate::new();
    let blocker = {
        let gate = gate.clone();
        Work::from_async_fn("blocker", move || {
            let gate = gate.clone();
            async move { gate.pass().await }
        })
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let item = {
        let runs = runs.clone();
        Work::from_fn("item", move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    };
    let dwork = DelayedWork::from_fn("delayed", || {});

    wq::queue_work(&queue, &blocker).unwrap();
    gate.wait_arrivals(1).await;
    wq::queue_work(&queue, &item).unwrap();
    wq::queue_delayed_work(&queue, &dwork, Duration::from_secs(3600)).unwrap();

    let refused = |api| Err(WaitError::BlockingInRuntime { api });
    assert_eq!(
        wq::blocking::cancel_work_sync(&item),
        refused("cancel_work_sync")
    );
    assert_eq!(
        wq::blocking::disable_work_sync(&item),
        refused("disable_work_sync")
    );
    assert_eq!(
        wq::blocking::flush_delayed_work(&dwork),
        refused("flush_delayed_work")
    );
    assert!(item.is_pending(), "the refused cancel left the item queued");
    assert_eq!(
        queue.stats().delayed,
        1,
        "the refused flush left the delay running"
    );

    gate.open(1);
    guarded("flush", wq::flush_work(&item)).await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the item was neither cancelled nor disabled"
    );
    assert!(wq::cancel_delayed_work(&dwork));
}

/// A blocking wait in a top half reports the hard-IRQ context, not the
/// runtime, even inside a current-thread runtime.
#[tokio::test(flavor = "current_thread")]
async fn blocking_in_top_half_names_context() {
    let item = Work::from_fn("item", || {});
    let guard = irq_sim::context::enter_hardirq(5, "uart");
    let result = wq::blocking::flush_work(&item);
    drop(guard);
    assert!(matches!(result, Err(WaitError::InvalidContext(context)) if context.irq == 5));
}

/// Delayed work on a queue whose runtime was built without `enable_time`
/// is rejected with an error that says how to fix the runtime; an item
/// delayed before the queue found out is cancelled, not lost.
#[test]
fn no_time_driver_rejects_delays() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let queue = Workqueue::builder("no-timer")
        .runtime(runtime.handle().clone())
        .build();
    let dwork = DelayedWork::from_fn("delayed", || {});

    let start = Instant::now();
    let error = loop {
        assert!(
            start.elapsed() < HANG_GUARD,
            "delayed work was never rejected"
        );
        match wq::queue_delayed_work(&queue, &dwork, Duration::from_millis(10)) {
            Err(error) => break error,
            // Queued before the timer task found out: it must be cancelled.
            Ok(_) => {
                while dwork.is_pending() {
                    assert!(
                        start.elapsed() < HANG_GUARD,
                        "a delayed item was left pending"
                    );
                    std::thread::yield_now();
                }
            }
        }
    };

    assert_eq!(
        error,
        QueueError::NoTimeDriver {
            queue: "no-timer".into(),
            work: "delayed".into()
        }
    );
    assert!(error.to_string().contains("enable_time"));
    // Work without a delay still runs.
    let item = Work::from_fn("now", || {});
    assert!(wq::queue_work(&queue, &item).unwrap());
    wq::blocking::flush_work(&item).unwrap();
    let stats = queue.stats();
    assert_eq!(stats.queued, stats.executed + stats.cancelled);
}
