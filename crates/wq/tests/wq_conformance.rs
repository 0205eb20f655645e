//! The kernel's workqueue semantics, one test (or a few) per rule.
//!
//! Work functions that must stay in progress wait at a [`Gate`]; nothing
//! here sleeps for luck, and every wait has a hang guard.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Concurrency, Gate, guarded, ordered_queue, test_queue};
use wq::{DataWork, DelayedWork, QueueError, WaitError, Work, Workqueue};

/// An async item that waits at `gate` on every run.
fn gated_item(name: &'static str, gate: &Gate, runs: &Arc<AtomicUsize>) -> Arc<Work> {
    let (gate, runs) = (gate.clone(), runs.clone());
    Work::from_async_fn(name, move || {
        let (gate, runs) = (gate.clone(), runs.clone());
        async move {
            gate.pass().await;
            runs.fetch_add(1, Ordering::SeqCst);
        }
    })
}

fn counting_item(name: &'static str, runs: &Arc<AtomicUsize>) -> Arc<Work> {
    let runs = runs.clone();
    Work::from_fn(name, move || {
        runs.fetch_add(1, Ordering::SeqCst);
    })
}

/// An async item whose function gets the item itself, to queue or cancel:
/// `run(me)` makes each run's future. The function holds the item weakly,
/// so the item does not keep itself alive.
fn self_aware_item<F, Fut>(name: &'static str, run: F) -> Arc<Work>
where
    F: Fn(Arc<Work>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let me: Arc<std::sync::OnceLock<std::sync::Weak<Work>>> = Arc::default();
    let item = {
        let me = me.clone();
        Work::from_async_fn(name, move || {
            let run = me.get().and_then(std::sync::Weak::upgrade).map(&run);
            async move {
                if let Some(run) = run {
                    run.await;
                }
            }
        })
    };
    me.set(Arc::downgrade(&item))
        .expect("the item is made once");
    item
}

/// Queueing an idle item returns true; queueing it again before it starts
/// returns false and it runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_pending_item_coalesces() {
    let queue = ordered_queue("w1");
    let gate = Gate::new();
    let blocker_runs = Arc::new(AtomicUsize::new(0));
    let blocker = gated_item("blocker", &gate, &blocker_runs);
    let runs = Arc::new(AtomicUsize::new(0));
    let item = counting_item("item", &runs);

    assert!(wq::queue_work(&queue, &blocker).unwrap());
    gate.wait_arrivals(1).await;
    assert!(wq::queue_work(&queue, &item).unwrap());
    assert!(!wq::queue_work(&queue, &item).unwrap());
    assert!(!wq::queue_work(&queue, &item).unwrap());
    assert!(item.is_pending());

    let flush = tokio::spawn(wq::flush_work(&item));
    gate.open(1);
    assert!(guarded("flush", flush).await.unwrap().unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = queue.stats();
    assert_eq!(stats.queued, 2);
    assert_eq!(stats.coalesced, 2);
}

/// A work function may re-queue its own item: the re-queue returns true and
/// gives exactly one more run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_requeues_itself_once() {
    let queue = test_queue("w2", 4);
    let requeued = Arc::new(Mutex::new(Vec::new()));
    let item = {
        let (queue, requeued) = (queue.clone(), requeued.clone());
        DataWork::new("self-requeue", AtomicUsize::new(0), move |item| {
            if item.fetch_add(1, Ordering::SeqCst) == 0 {
                requeued.lock().unwrap().push(wq::queue_work(&queue, item));
            }
        })
    };

    assert!(wq::queue_work(&queue, &item).unwrap());
    // Either flush may find its run already over, so only the runs count.
    guarded("first flush", wq::flush_work(&item)).await.unwrap();
    guarded("second flush", wq::flush_work(&item))
        .await
        .unwrap();
    assert_eq!(item.load(Ordering::SeqCst), 2);
    assert_eq!(*requeued.lock().unwrap(), vec![Ok(true)]);
    assert!(!wq::flush_work(&item).await.unwrap());
}

/// An item queued while it runs, from another thread and onto another
/// queue, runs again only after the current run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_while_running_never_overlaps() {
    let first = test_queue("w3-a", 8);
    let second = test_queue("w3-b", 8);
    let gate = Gate::new();
    let concurrency = Arc::new(Concurrency::default());
    let item = {
        let (gate, concurrency) = (gate.clone(), concurrency.clone());
        Work::from_async_fn("no-overlap", move || {
            let (gate, concurrency) = (gate.clone(), concurrency.clone());
            async move {
                concurrency.enter();
                gate.pass().await;
                concurrency.exit();
            }
        })
    };

    assert!(wq::queue_work(&first, &item).unwrap());
    gate.wait_arrivals(1).await;
    let from_thread = {
        let (second, item) = (second.clone(), item.clone());
        std::thread::spawn(move || wq::queue_work(&second, &item))
            .join()
            .unwrap()
    };
    assert_eq!(from_thread, Ok(true));
    assert!(item.is_pending());
    assert_eq!(concurrency.running(), 1);

    gate.open(2);
    guarded("flush", wq::flush_work(&item)).await.unwrap();
    assert_eq!(concurrency.runs(), 2);
    assert_eq!(concurrency.max(), 1);
    // The second run goes to the queue the item was still running on when
    // the queueing was taken in, or to the second queue if the first run
    // had ended by then.
    assert_eq!(first.stats().executed + second.stats().executed, 2);
}

/// Many threads queueing one item on a wide queue never make it run
/// concurrently with itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queueing_never_overlaps() {
    let queue = test_queue("w3-stress", 16);
    let concurrency = Arc::new(Concurrency::default());
    let item = {
        let concurrency = concurrency.clone();
        Work::from_async_fn("stress", move || {
            let concurrency = concurrency.clone();
            async move {
                concurrency.enter();
                tokio::task::yield_now().await;
                concurrency.exit();
            }
        })
    };

    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (queue, item) = (queue.clone(), item.clone());
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    wq::queue_work(&queue, &item).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();

    assert_eq!(concurrency.max(), 1);
    let stats = queue.stats();
    assert_eq!(stats.queued + stats.coalesced, 20_000);
    assert_eq!(stats.executed, stats.queued);
    assert_eq!(concurrency.runs() as u64, stats.executed);
}

/// Items on one queue start in queueing order; an ordered queue runs one
/// at a time, strictly in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_queue_runs_fifo_one_at_a_time() {
    let queue = ordered_queue("w4");
    let order = Arc::new(Mutex::new(Vec::new()));
    let concurrency = Arc::new(Concurrency::default());
    let items: Vec<_> = (0..200)
        .map(|index| {
            let (order, concurrency) = (order.clone(), concurrency.clone());
            Work::from_async_fn(format!("fifo-{index}"), move || {
                let (order, concurrency) = (order.clone(), concurrency.clone());
                async move {
                    concurrency.enter();
                    order.lock().unwrap().push(index);
                    tokio::task::yield_now().await;
                    concurrency.exit();
                }
            })
        })
        .collect();

    for item in &items {
        assert!(wq::queue_work(&queue, item).unwrap());
    }
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();

    let expected: Vec<usize> = (0..200).collect();
    assert_eq!(*order.lock().unwrap(), expected);
    assert_eq!(concurrency.max(), 1);
    assert_eq!(queue.max_active(), 1);
}

/// How a test makes a delayed item due while an ordered queue's worker is
/// busy.
#[derive(Clone, Copy, Debug)]
enum Release {
    /// `mod_delayed_work` with no delay.
    ModifyToZero,
    /// `flush_delayed_work`, which queues the item at once.
    Flush,
    /// The item's own timer, which expires.
    Expiry,
}

/// A delayed item that becomes due goes behind the items queued before it,
/// however it becomes due: Linux appends it to the tail of the worklist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_queue_keeps_order_of_due_delayed_work() {
    for release in [Release::ModifyToZero, Release::Flush, Release::Expiry] {
        let queue = ordered_queue("w4-delayed");
        let order = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate::new();
        let blocker = {
            let gate = gate.clone();
            Work::from_async_fn("blocker", move || {
                let gate = gate.clone();
                async move { gate.pass().await }
            })
        };
        let plain = {
            let order = order.clone();
            Work::from_fn("plain", move || order.lock().unwrap().push("plain"))
        };
        let delayed = {
            let order = order.clone();
            DelayedWork::from_fn("delayed", move || order.lock().unwrap().push("delayed"))
        };

        wq::queue_work(&queue, &blocker).unwrap();
        gate.wait_arrivals(1).await;
        wq::queue_work(&queue, &plain).unwrap();
        let delay = match release {
            Release::Expiry => Duration::from_millis(1),
            Release::ModifyToZero | Release::Flush => Duration::from_secs(60),
        };
        wq::queue_delayed_work(&queue, &delayed, delay).unwrap();
        let flush = match release {
            Release::ModifyToZero => {
                assert!(wq::mod_delayed_work(&queue, &delayed, Duration::ZERO).unwrap());
                None
            }
            Release::Flush => Some(tokio::spawn(wq::flush_delayed_work(&delayed))),
            Release::Expiry => None,
        };
        // Due means off the timer list, whichever way it went.
        guarded("the delayed item falls due", async {
            while queue.stats().delayed > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        gate.open(1);
        guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
        if let Some(flush) = flush {
            guarded("flush_delayed_work", flush).await.unwrap().unwrap();
        }

        assert_eq!(*order.lock().unwrap(), ["plain", "delayed"], "{release:?}");
    }
}

/// A queue with max_active 1 starts its items in queueing order too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_active_queue_starts_fifo() {
    let queue = test_queue("w4-single", 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let items: Vec<_> = (0..100)
        .map(|index| {
            let order = order.clone();
            Work::from_fn(format!("item-{index}"), move || {
                order.lock().unwrap().push(index)
            })
        })
        .collect();
    for item in &items {
        wq::queue_work(&queue, item).unwrap();
    }
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    assert_eq!(*order.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

/// At most max_active items of a queue run at once; the rest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_limits_concurrency() {
    let queue = test_queue("w5", 3);
    let gate = Gate::new();
    let concurrency = Arc::new(Concurrency::default());
    let order = Arc::new(Mutex::new(Vec::new()));
    let items: Vec<_> = (0..10)
        .map(|index| {
            let (gate, concurrency, order) = (gate.clone(), concurrency.clone(), order.clone());
            Work::from_async_fn(format!("limited-{index}"), move || {
                let (gate, concurrency, order) = (gate.clone(), concurrency.clone(), order.clone());
                async move {
                    order.lock().unwrap().push(index);
                    concurrency.enter();
                    gate.pass().await;
                    concurrency.exit();
                }
            })
        })
        .collect();
    for item in &items {
        wq::queue_work(&queue, item).unwrap();
    }

    gate.wait_arrivals(3).await;
    let stats = queue.stats();
    assert_eq!(stats.in_flight, 3);
    assert_eq!(stats.pending, 7);
    assert!(
        stats.workers <= 3,
        "{} workers for max_active 3",
        stats.workers
    );

    gate.open(10);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    assert_eq!(concurrency.max(), 3);
    assert_eq!(concurrency.runs(), 10);
    // Workers take items off the worklist in order, but two workers may
    // reach their functions in either order, so only the first three,
    // which started before the gate opened, are checked here.
    let mut first_three = order.lock().unwrap()[..3].to_vec();
    first_three.sort_unstable();
    assert_eq!(first_three, [0, 1, 2]);
}

/// max_active 0 means the default; values above the maximum are clamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_default_and_clamp() {
    assert_eq!(test_queue("w5-default", 0).max_active(), wq::WQ_DFL_ACTIVE);
    assert_eq!(
        test_queue("w5-huge", 1_000_000).max_active(),
        wq::WQ_MAX_ACTIVE
    );
    assert_eq!(test_queue("w5-seven", 7).max_active(), 7);
}

/// flush_work waits until the last queueing has finished and returns true;
/// on an idle item it returns false at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_work_waits_for_last_queueing() {
    let queue = test_queue("w6", 4);
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let item = gated_item("flushed", &gate, &runs);

    assert!(!wq::flush_work(&item).await.unwrap());

    wq::queue_work(&queue, &item).unwrap();
    let flush = tokio::spawn(wq::flush_work(&item));
    gate.wait_arrivals(1).await;
    assert!(!flush.is_finished());
    gate.open(1);

    assert!(guarded("flush", flush).await.unwrap().unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!wq::flush_work(&item).await.unwrap());
}

/// flush_delayed_work starts a delayed item now and waits for it; it does
/// not wait out the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_delayed_work_skips_delay() {
    let queue = test_queue("w7", 4);
    let runs = Arc::new(AtomicUsize::new(0));
    let dwork = {
        let runs = runs.clone();
        DelayedWork::from_fn("an-hour-later", move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    };

    assert!(wq::queue_delayed_work(&queue, &dwork, Duration::from_secs(3600)).unwrap());
    assert!(dwork.is_pending());
    assert!(
        guarded("flush_delayed_work", wq::flush_delayed_work(&dwork))
            .await
            .unwrap()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!dwork.is_pending());
}

/// cancel_work_sync of a pending item returns true, and its function never
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sync_pending_never_runs() {
    let queue = ordered_queue("w8-pending");
    let gate = Gate::new();
    let blocker_runs = Arc::new(AtomicUsize::new(0));
    let blocker = gated_item("blocker", &gate, &blocker_runs);
    let runs = Arc::new(AtomicUsize::new(0));
    let item = counting_item("cancelled", &runs);

    wq::queue_work(&queue, &blocker).unwrap();
    gate.wait_arrivals(1).await;
    wq::queue_work(&queue, &item).unwrap();
    assert!(
        guarded("cancel", wq::cancel_work_sync(&item))
            .await
            .unwrap()
    );
    assert!(!item.is_pending());

    gate.open(1);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let stats = queue.stats();
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.queued, stats.executed + stats.cancelled);
}

/// cancel_work_sync returns with the item neither pending nor running, even
/// when the item re-queues itself on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sync_stops_self_requeue() {
    let queue = test_queue("w8-requeue", 4);
    let concurrency = Arc::new(Concurrency::default());
    let item = {
        let (queue, concurrency) = (queue.clone(), concurrency.clone());
        DataWork::new_async("forever", (), move |item| {
            let (queue, concurrency) = (queue.clone(), concurrency.clone());
            async move {
                concurrency.enter();
                tokio::task::yield_now().await;
                let _ = wq::queue_work(&queue, &item);
                concurrency.exit();
            }
        })
    };

    wq::queue_work(&queue, &item).unwrap();
    while concurrency.runs() < 50 {
        tokio::task::yield_now().await;
    }
    guarded("cancel", wq::cancel_work_sync(&item))
        .await
        .unwrap();

    assert!(!item.is_pending());
    assert_eq!(concurrency.running(), 0);
    let runs_after_cancel = concurrency.runs();
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    assert_eq!(concurrency.runs(), runs_after_cancel);
    // The item is enabled again after the cancel.
    assert!(wq::queue_work(&queue, &item).unwrap());
    guarded("cancel", wq::cancel_work_sync(&item))
        .await
        .unwrap();
}

/// cancel_work_sync returns false for an item that was running but not
/// pending, after the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sync_running_waits() {
    let queue = test_queue("w8-running", 4);
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let item = gated_item("running", &gate, &runs);

    wq::queue_work(&queue, &item).unwrap();
    gate.wait_arrivals(1).await;
    let cancel = tokio::spawn(wq::cancel_work_sync(&item));
    tokio::task::yield_now().await;
    assert!(!cancel.is_finished());
    gate.open(1);

    assert!(!guarded("cancel", cancel).await.unwrap().unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// cancel_work does not wait: it reports whether the item was pending, and
/// the function may still be running on return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_work_does_not_wait() {
    let queue = test_queue("w9", 4);
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let item = gated_item("running", &gate, &runs);

    wq::queue_work(&queue, &item).unwrap();
    gate.wait_arrivals(1).await;
    assert!(!wq::cancel_work(&item));
    assert_eq!(runs.load(Ordering::SeqCst), 0, "still running at return");

    assert!(wq::queue_work(&queue, &item).unwrap());
    assert!(wq::cancel_work(&item));
    gate.open(1);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// cancel_delayed_work takes an item off its timer without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_delayed_work_removes_timer() {
    let queue = test_queue("w9-delayed", 4);
    let runs = Arc::new(AtomicUsize::new(0));
    let dwork = {
        let runs = runs.clone();
        DelayedWork::from_fn("later", move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    };
    assert!(wq::queue_delayed_work(&queue, &dwork, Duration::from_secs(3600)).unwrap());
    assert!(wq::cancel_delayed_work(&dwork));
    assert!(!wq::cancel_delayed_work(&dwork));
    assert!(!dwork.is_pending());
    assert_eq!(queue.stats().delayed, 0);
    assert_eq!(queue.stats().cancelled, 1);
}

/// A work function that flushes or cancel_syncs its own item, or flushes its
/// own queue, gets an immediate error instead of a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_wait_is_an_error() {
    let queue = ordered_queue("w11");
    let results = Arc::new(Mutex::new(Vec::new()));
    let item = {
        let (queue, results) = (queue.clone(), results.clone());
        DataWork::new_async("waits-for-itself", (), move |item| {
            let (queue, results) = (queue.clone(), results.clone());
            async move {
                let flush = wq::flush_work(&item).await;
                let cancel = wq::cancel_work_sync(&item).await;
                let flush_queue = wq::flush_workqueue(&queue).await.map(|()| false);
                let blocking = wq::blocking::flush_work(&item);
                results
                    .lock()
                    .unwrap()
                    .extend([flush, cancel, flush_queue, blocking]);
            }
        })
    };

    wq::queue_work(&queue, &item).unwrap();
    guarded("flush", wq::flush_work(&item)).await.unwrap();

    let results = results.lock().unwrap();
    let self_wait = |api| {
        Err(WaitError::SelfWait {
            api,
            work: "waits-for-itself".into(),
        })
    };
    assert_eq!(results[0], self_wait("flush_work"));
    assert_eq!(results[1], self_wait("cancel_work_sync"));
    assert_eq!(
        results[2],
        Err(WaitError::SelfFlush {
            api: "flush_workqueue",
            queue: "w11".into(),
            work: "waits-for-itself".into(),
        })
    );
    assert_eq!(results[3], self_wait("flush_work"));
    assert!(
        results[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("would wait forever")
    );
}

/// flush, cancel_sync, drain and destroy called in hard-IRQ context fail
/// with a message naming the API, the line and the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_in_hardirq_fails() {
    let queue = test_queue("w12", 4);
    let runs = Arc::new(AtomicUsize::new(0));
    let item = counting_item("item", &runs);
    let dwork = DelayedWork::from_fn("delayed", || {});

    let guard = irq_sim::context::enter_hardirq(42, "nic-rx");
    let futures = vec![
        (
            "flush_work",
            Box::pin(wq::flush_work(&item))
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<bool, WaitError>> + Send>,
                >,
        ),
        ("cancel_work_sync", Box::pin(wq::cancel_work_sync(&item))),
        (
            "flush_delayed_work",
            Box::pin(wq::flush_delayed_work(&dwork)),
        ),
        (
            "cancel_delayed_work_sync",
            Box::pin(wq::cancel_delayed_work_sync(&dwork)),
        ),
        ("disable_work_sync", Box::pin(wq::disable_work_sync(&item))),
    ];
    let queue_futures = vec![
        (
            "flush_workqueue",
            Box::pin(wq::flush_workqueue(&queue))
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<(), WaitError>> + Send>,
                >,
        ),
        ("drain_workqueue", Box::pin(wq::drain_workqueue(&queue))),
        ("destroy_workqueue", Box::pin(wq::destroy_workqueue(&queue))),
    ];
    let blocking = wq::blocking::flush_work(&item);
    // Queueing is allowed in a top half.
    assert!(wq::queue_work(&queue, &item).unwrap());
    drop(guard);

    let check = |api: &str, error: WaitError| {
        let WaitError::InvalidContext(context) = &error else {
            panic!("{api}: expected InvalidContext, got {error:?}");
        };
        assert_eq!(context.api, api);
        assert_eq!(context.irq, 42);
        assert_eq!(context.handler, "nic-rx");
        let message = error.to_string();
        assert!(message.contains(api), "{message}");
        assert!(message.contains("irq 42"), "{message}");
        assert!(message.contains("\"nic-rx\""), "{message}");
    };
    for (api, future) in futures {
        check(api, future.await.unwrap_err());
    }
    for (api, future) in queue_futures {
        check(api, future.await.unwrap_err());
    }
    check("flush_work", blocking.unwrap_err());

    // The queue was neither drained nor destroyed by the failed calls.
    guarded("flush", wq::flush_work(&item)).await.unwrap();
    assert!(wq::queue_work(&queue, &item).is_ok());
}

/// flush_workqueue waits for everything queued before the call, and items
/// queued after it cannot make it wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_workqueue_ignores_later_work() {
    let queue = test_queue("w13", 4);
    let runs = Arc::new(AtomicUsize::new(0));
    let items: Vec<_> = (0..20).map(|_| counting_item("before", &runs)).collect();
    let forever = {
        let queue = queue.clone();
        DataWork::new_async("forever", AtomicBool::new(true), move |item| {
            let queue = queue.clone();
            async move {
                tokio::task::yield_now().await;
                if item.load(Ordering::SeqCst) {
                    let _ = wq::queue_work(&queue, &item);
                }
            }
        })
    };

    wq::queue_work(&queue, &forever).unwrap();
    for item in &items {
        wq::queue_work(&queue, item).unwrap();
    }
    guarded("flush_workqueue", wq::flush_workqueue(&queue))
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 20);

    forever.store(false, Ordering::SeqCst);
    guarded("cancel", wq::cancel_work_sync(&forever))
        .await
        .unwrap();
}

/// drain_workqueue repeats until the queue is empty; meanwhile only the
/// queue's own work may queue on it, and other queueing is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_accepts_only_own_work() {
    let queue = test_queue("w14", 4);
    let gate = Gate::new();
    let chain_runs = Arc::new(AtomicUsize::new(0));
    let chain = {
        let (queue, gate, chain_runs) = (queue.clone(), gate.clone(), chain_runs.clone());
        DataWork::new_async("chain", (), move |item| {
            let (queue, gate, chain_runs) = (queue.clone(), gate.clone(), chain_runs.clone());
            async move {
                gate.pass().await;
                if chain_runs.fetch_add(1, Ordering::SeqCst) < 9 {
                    wq::queue_work(&queue, &item).expect("own work may queue while draining");
                }
            }
        })
    };
    let outsider = Work::from_fn("outsider", || {});

    wq::queue_work(&queue, &chain).unwrap();
    gate.wait_arrivals(1).await;
    let drain = tokio::spawn(wq::drain_workqueue(&queue));
    let rejected = guarded("draining starts", async {
        loop {
            match wq::queue_work(&queue, &outsider) {
                Err(error) => return error,
                Ok(_) => {
                    let _ = wq::cancel_work(&outsider);
                    tokio::task::yield_now().await;
                }
            }
        }
    })
    .await;
    assert_eq!(
        rejected,
        QueueError::Draining {
            queue: "w14".into(),
            work: "outsider".into()
        }
    );

    gate.open(10);
    guarded("drain", drain).await.unwrap().unwrap();
    assert_eq!(chain_runs.load(Ordering::SeqCst), 10);
    assert!(
        wq::queue_work(&queue, &outsider).unwrap(),
        "live again after the drain"
    );
    guarded("drain idle", wq::drain_workqueue(&queue))
        .await
        .unwrap();
    guarded("drain idle", wq::drain_workqueue(&queue))
        .await
        .unwrap();
}

/// A delayed item that re-arms itself on every run neither keeps a drain
/// or a destroy going nor makes it wait out the delay. The drain cancels
/// the timer armed during it, as Linux rejects a non-chained queueing on a
/// draining queue, then marks the item and leaves it idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_a_delayed_self_rearm() {
    for destroy in [false, true] {
        let queue = test_queue("w14-rearm", 4);
        let entered = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let poll = {
            let queue = queue.clone();
            let (entered, release) = (entered.clone(), release.clone());
            DelayedWork::from_fn_cyclic("poll", move |me| {
                let me = me.clone();
                move || {
                    // The run waits until the drain has begun, so that the
                    // re-arm falls within the drain. A drain waits for a
                    // timer armed before it began.
                    entered.store(true, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    if let Some(me) = me.upgrade() {
                        let _ = wq::queue_delayed_work(&queue, &me, Duration::from_secs(3600));
                    }
                }
            })
        };
        wq::queue_delayed_work(&queue, &poll, Duration::from_millis(2)).unwrap();
        guarded("the first run", async {
            while !entered.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        })
        .await;

        let drain = async {
            if destroy {
                wq::destroy_workqueue(&queue).await
            } else {
                wq::drain_workqueue(&queue).await
            }
        };
        let mut drain = std::pin::pin!(drain);
        // The first poll begins the drain, which then waits for the run.
        tokio::select! {
            biased;
            result = &mut drain => panic!("the drain ended with the item running: {result:?}"),
            () = std::future::ready(()) => {}
        }
        release.store(true, Ordering::SeqCst);
        guarded("the drain", drain).await.unwrap();

        assert!(!poll.is_pending(), "destroy {destroy}");
        assert!(wq::take_cancelled_by_drain(&poll), "destroy {destroy}");
        assert!(!wq::take_cancelled_by_drain(&poll), "the mark is read once");
        if !destroy {
            // The item is idle, not stuck: it can be queued again.
            assert!(wq::queue_delayed_work(&queue, &poll, Duration::from_millis(2)).unwrap());
            guarded("cancel", wq::cancel_delayed_work_sync(&poll))
                .await
                .unwrap();
        }
    }
}

/// Drains may overlap: the queue is live again only when the last one
/// ends, and a drain whose future is dropped half-way still ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_and_dropped_drains_end() {
    let queue = test_queue("w14-overlap", 4);
    let gate = Gate::new();
    let gated = {
        let gate = gate.clone();
        DataWork::new_async("gated", (), move |_| {
            let gate = gate.clone();
            async move { gate.pass().await }
        })
    };
    let outsider = Work::from_fn("outsider", || {});

    // A drain dropped while it waits for the gated item.
    wq::queue_work(&queue, &gated).unwrap();
    gate.wait_arrivals(1).await;
    let dropped = tokio::time::timeout(Duration::from_millis(20), wq::drain_workqueue(&queue));
    assert!(dropped.await.is_err(), "the drain waits for the gated item");
    assert!(
        wq::queue_work(&queue, &outsider).unwrap(),
        "live again after the dropped drain"
    );
    gate.open(1);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();

    // Two drains at once: the first to end leaves the queue draining.
    wq::queue_work(&queue, &gated).unwrap();
    gate.wait_arrivals(2).await;
    let first = tokio::spawn(wq::drain_workqueue(&queue));
    let second = tokio::spawn(wq::drain_workqueue(&queue));
    gate.open(1);
    guarded("first drain", first).await.unwrap().unwrap();
    guarded("second drain", second).await.unwrap().unwrap();
    assert!(
        wq::queue_work(&queue, &outsider).unwrap(),
        "live again after both drains"
    );
}

/// destroy_workqueue drains first, then rejects any later queueing with an
/// error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_drains_then_rejects() {
    let queue = test_queue("w15", 4);
    let runs = Arc::new(AtomicUsize::new(0));
    let items: Vec<_> = (0..10).map(|_| counting_item("pending", &runs)).collect();
    let dwork = {
        let runs = runs.clone();
        DelayedWork::from_fn("delayed", move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    };
    for item in &items {
        wq::queue_work(&queue, item).unwrap();
    }
    wq::queue_delayed_work(&queue, &dwork, Duration::from_millis(20)).unwrap();
    let handle = queue.clone();

    guarded("destroy", wq::destroy_workqueue(&queue))
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 11);
    assert_eq!(
        wq::queue_work(&handle, &items[0]),
        Err(QueueError::Destroyed {
            queue: "w15".into(),
            work: "pending".into()
        })
    );
    assert!(
        !items[0].is_pending(),
        "a rejected queueing leaves the item idle"
    );
    assert!(wq::queue_delayed_work(&handle, &dwork, Duration::from_millis(1)).is_err());
    let stats = handle.stats();
    assert_eq!(stats.queued, stats.executed + stats.cancelled);
}

/// A panicking work function is reported with its queue and item; the
/// worker, the queue and other items go on, and a flush of it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_contained() {
    let queue = ordered_queue("w16");
    let sync_panic = Work::from_fn("sync-panic", || panic!("boom"));
    let async_panic = Work::from_async_fn("async-panic", || async {
        tokio::task::yield_now().await;
        panic!("async boom");
    });
    let runs = Arc::new(AtomicUsize::new(0));
    let after = counting_item("after", &runs);

    wq::queue_work(&queue, &sync_panic).unwrap();
    wq::queue_work(&queue, &async_panic).unwrap();
    wq::queue_work(&queue, &after).unwrap();
    // The flush of a panicked run returns (true or false depends only on
    // whether the run was over before the call).
    guarded("flush panicking", wq::flush_work(&sync_panic))
        .await
        .unwrap();
    guarded("flush async panicking", wq::flush_work(&async_panic))
        .await
        .unwrap();
    guarded("flush after", wq::flush_work(&after))
        .await
        .unwrap();

    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = queue.stats();
    assert_eq!(stats.panicked, 2);
    assert_eq!(stats.executed, 3);
    assert!(
        wq::queue_work(&queue, &sync_panic).unwrap(),
        "the item can be queued again"
    );
    guarded("flush again", wq::flush_work(&sync_panic))
        .await
        .unwrap();
}

/// A disabled item cannot be queued until every disable is matched by an
/// enable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_count_nests() {
    let queue = test_queue("w17", 4);
    let runs = Arc::new(AtomicUsize::new(0));
    let item = counting_item("disabled", &runs);

    assert!(!wq::disable_work(&item));
    assert!(!wq::disable_work(&item));
    assert_eq!(wq::queue_work(&queue, &item), Ok(false));
    assert!(!wq::enable_work(&item), "one disable is still in force");
    assert_eq!(wq::queue_work(&queue, &item), Ok(false));
    assert!(wq::enable_work(&item));
    // Linux warns of the underflow and returns true: the item may be
    // queued.
    assert!(wq::enable_work(&item), "unbalanced enable");
    assert_eq!(wq::queue_work(&queue, &item), Ok(true));

    guarded("flush", wq::flush_work(&item)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(queue.stats().rejected_disabled, 2);
}

/// disable_work cancels a pending item and reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_cancels_pending() {
    let queue = test_queue("w17-pending", 4);
    let dwork = DelayedWork::from_fn("delayed", || {});
    wq::queue_delayed_work(&queue, &dwork, Duration::from_secs(3600)).unwrap();
    assert!(wq::disable_work(&dwork));
    assert!(!dwork.is_pending());
    assert!(wq::enable_work(&dwork));
}

/// Every queueing that returned true ends in exactly one of executed or
/// cancelled, and the counters show it, under concurrent queue and cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_under_churn() {
    let queues = [
        test_queue("w18-a", 2),
        test_queue("w18-b", 8),
        ordered_queue("w18-c"),
    ];
    let runs = Arc::new(AtomicUsize::new(0));
    let items: Vec<_> = (0..16).map(|_| counting_item("churn", &runs)).collect();
    let accepted = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));

    let threads: Vec<_> = (0..3)
        .map(|thread| {
            let (queues, items) = (queues.clone(), items.clone());
            let (accepted, cancelled) = (accepted.clone(), cancelled.clone());
            std::thread::spawn(move || {
                let mut seed = thread as u64 + 1;
                for _ in 0..20_000 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let item = &items[(seed % 16) as usize];
                    let queue = &queues[(seed / 16 % 3) as usize];
                    if seed.is_multiple_of(5) {
                        if wq::cancel_work(item) {
                            cancelled.fetch_add(1, Ordering::SeqCst);
                        }
                    } else if wq::queue_work(queue, item).unwrap() {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for queue in &queues {
        guarded("drain", wq::drain_workqueue(queue)).await.unwrap();
    }

    let (mut queued, mut executed, mut cancelled_total) = (0, 0, 0);
    for queue in &queues {
        let stats = queue.stats();
        assert_eq!(
            stats.queued,
            stats.executed + stats.cancelled,
            "{}",
            stats.name
        );
        assert_eq!(
            stats.pending + stats.in_flight + stats.delayed,
            0,
            "{}",
            stats.name
        );
        queued += stats.queued;
        executed += stats.executed;
        cancelled_total += stats.cancelled;
    }
    assert_eq!(queued as usize, accepted.load(Ordering::SeqCst));
    assert_eq!(cancelled_total as usize, cancelled.load(Ordering::SeqCst));
    assert_eq!(executed as usize, runs.load(Ordering::SeqCst));
}

/// A running work function that never returns does not stop other items
/// from being queued and run: queueing waits for no lock a work function
/// can hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_work_does_not_block_queueing() {
    let queue = test_queue("lock-free", 4);
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let stuck = gated_item("stuck", &gate, &runs);
    let other_runs = Arc::new(AtomicUsize::new(0));
    let other = counting_item("other", &other_runs);

    wq::queue_work(&queue, &stuck).unwrap();
    gate.wait_arrivals(1).await;
    for _ in 0..100 {
        wq::queue_work(&queue, &other).unwrap();
        guarded("flush other", wq::flush_work(&other))
            .await
            .unwrap();
    }
    assert_eq!(other_runs.load(Ordering::SeqCst), 100);
    gate.open(1);
    guarded("flush stuck", wq::flush_work(&stuck))
        .await
        .unwrap();
}

/// The same static item works on a queue of the caller's runtime and on the
/// system queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_item_on_any_queue() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    static ITEM: Work = Work::new("static", || {
        RUNS.fetch_add(1, Ordering::SeqCst);
    });
    let queue: Workqueue = test_queue("static", 4);

    wq::queue_work(&queue, &ITEM).unwrap();
    guarded("flush", wq::flush_work(&ITEM)).await.unwrap();
    wq::schedule_work(&ITEM).unwrap();
    guarded("flush", wq::flush_work(&ITEM)).await.unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}

/// A dynamically created item is freed once its owner and the queue have
/// dropped it: it neither leaks nor goes away while queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_item_freed_after_run() {
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    let queue = ordered_queue("freed");
    let gate = Gate::new();
    let blocker_runs = Arc::new(AtomicUsize::new(0));
    let blocker = gated_item("blocker", &gate, &blocker_runs);
    let dropped = Arc::new(AtomicBool::new(false));
    let item = DataWork::new("owned", DropFlag(dropped.clone()), |_| {});

    wq::queue_work(&queue, &blocker).unwrap();
    gate.wait_arrivals(1).await;
    wq::queue_work(&queue, &item).unwrap();
    let weak = Arc::downgrade(&item);
    drop(item);
    assert!(!dropped.load(Ordering::SeqCst), "freed while still queued");

    gate.open(1);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    guarded("release", async {
        while weak.strong_count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(dropped.load(Ordering::SeqCst));
}

/// In a top half, queueing work on a queue whose worker sleeps records the
/// wake-up instead of making it, and leaves the worker parked. The CPU
/// thread claims and wakes the worker when the handler chain ends, and the
/// item then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_half_defers_worker_wake() {
    let queue = test_queue("deferred-wake", 1);
    let runs = Arc::new(AtomicUsize::new(0));
    let item = counting_item("from-top-half", &runs);
    guarded("worker asleep", async {
        while queue.stats().idle_workers == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    let guard = irq_sim::context::enter_hardirq(11, "timer");
    assert_eq!(wq::queue_work(&queue, &item), Ok(true));
    assert_eq!(
        queue.stats().idle_workers,
        1,
        "the worker was claimed inside the handler"
    );
    let woken = guard.exit();

    assert_eq!(woken, 1, "the wake-up waited for the end of the handler");
    guarded("flush", wq::flush_work(&item)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// One deferred wake-up stands for all the queueings of a handler chain, so
/// a woken worker that leaves items on the worklist wakes the next parked
/// worker: three items queued in one top half on a queue with three parked
/// workers all run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_half_queueings_run_in_parallel() {
    let queue = test_queue("parallel-from-top-half", 3);
    let (gate, runs) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    let items: Vec<_> = ["first", "second", "third"]
        .into_iter()
        .map(|name| gated_item(name, &gate, &runs))
        .collect();

    // Grow the pool to three workers, then let all three park.
    for item in &items {
        assert_eq!(wq::queue_work(&queue, item), Ok(true));
    }
    gate.wait_arrivals(3).await;
    gate.open(3);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    guarded("three parked workers", async {
        while queue.stats().idle_workers < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    let guard = irq_sim::context::enter_hardirq(11, "timer");
    for item in &items {
        assert_eq!(wq::queue_work(&queue, item), Ok(true));
    }
    let woken = guard.exit();

    assert_eq!(woken, 1, "the queueings of one handler share a wake-up");
    gate.wait_arrivals(6).await;
    gate.open(3);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 6);
}

/// A work function on a queue that runs one item at a time, waiting for an
/// item queued behind it on that queue, gets an error instead of a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_item_behind_is_error() {
    let queue = ordered_queue("one-at-a-time");
    let gate = Gate::new();
    let second = Work::from_fn("second", || {});
    let result = Arc::new(Mutex::new(None));
    let first = {
        let (gate, second, result) = (gate.clone(), second.clone(), result.clone());
        Work::from_async_fn("first", move || {
            let (gate, second, result) = (gate.clone(), second.clone(), result.clone());
            async move {
                // Wait until "second" is queued behind this item.
                gate.pass().await;
                *result.lock().unwrap() = Some(wq::flush_work(&second).await);
            }
        })
    };

    wq::queue_work(&queue, &first).unwrap();
    gate.wait_arrivals(1).await;
    wq::queue_work(&queue, &second).unwrap();
    gate.open(1);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();

    let result = result.lock().unwrap().take().expect("first ran");
    let error = result.unwrap_err();
    assert_eq!(
        error,
        WaitError::QueuedBehind {
            api: "flush_work",
            work: "second".into(),
            queue: "one-at-a-time".into(),
            waiter: "first".into(),
        }
    );
    assert!(error.to_string().contains("would wait forever"));
}

/// A work function may cancel_work_sync an item pending behind it on its
/// one-at-a-time queue: the cancel takes the item off the list, so there is
/// no start to wait for, and it never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sync_of_item_behind() {
    let queue = ordered_queue("cancel-behind");
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let second = counting_item("second", &runs);
    let result = Arc::new(Mutex::new(None));
    let first = {
        let (gate, second, result) = (gate.clone(), second.clone(), result.clone());
        Work::from_async_fn("first", move || {
            let (gate, second, result) = (gate.clone(), second.clone(), result.clone());
            async move {
                // Wait until "second" is queued behind this item.
                gate.pass().await;
                *result.lock().unwrap() = Some(wq::cancel_work_sync(&second).await);
            }
        })
    };

    wq::queue_work(&queue, &first).unwrap();
    gate.wait_arrivals(1).await;
    wq::queue_work(&queue, &second).unwrap();
    gate.open(1);
    guarded("flush", wq::flush_workqueue(&queue)).await.unwrap();

    let result = result.lock().unwrap().take().expect("first ran");
    assert_eq!(result, Ok(true), "the cancel found the item pending");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the cancelled item ran");
}

/// flush_workqueue waits for the run of a running item, not for a delayed
/// queueing of that item still on its timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_workqueue_skips_rearmed_timer() {
    let queue = test_queue("w13-rearm", 4);
    let gate = Gate::new();
    let dwork = {
        let gate = gate.clone();
        DelayedWork::from_async_fn("poll", move || {
            let gate = gate.clone();
            async move { gate.pass().await }
        })
    };
    wq::queue_work(&queue, &dwork).unwrap();
    gate.wait_arrivals(1).await;
    // Re-armed while it runs, as a polling item re-arms itself.
    let hour = Duration::from_secs(3600);
    assert!(wq::queue_delayed_work(&queue, &dwork, hour).unwrap());

    let flush = tokio::spawn(wq::flush_workqueue(&queue));
    gate.open(1);
    guarded("flush past a re-armed timer", flush)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(queue.stats().delayed, 1, "the re-armed timer was lost");
    assert!(wq::cancel_delayed_work_sync(&dwork).await.unwrap());
}

/// A delayed item that falls due while it runs on another queue waits on
/// its own queue for that run to end, then runs there. Each queue's counts
/// add up: every queueing ends executed or cancelled, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_item_waits_for_run_elsewhere() {
    let runner = test_queue("w18-runner", 4);
    let timer = test_queue("w18-timer", 4);
    let gate = Gate::new();
    let dwork = {
        let gate = gate.clone();
        DelayedWork::from_async_fn("gated", move || {
            let gate = gate.clone();
            async move { gate.pass().await }
        })
    };
    wq::queue_work(&runner, &dwork).unwrap();
    gate.wait_arrivals(1).await;
    assert!(wq::queue_delayed_work(&timer, &dwork, Duration::from_millis(1)).unwrap());
    guarded("the expiry", async {
        while timer.stats().delayed != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    gate.open(2);
    guarded("the second run", wq::flush_work(&dwork))
        .await
        .unwrap();

    for queue in [&runner, &timer] {
        let stats = queue.stats();
        assert_eq!(
            stats.queued,
            stats.executed + stats.cancelled,
            "{}: {stats:?}",
            stats.name
        );
    }
    assert_eq!(runner.stats().executed, 1);
    assert_eq!(timer.stats().executed, 1);
}

/// flush_workqueue waits for an item queued on the queue while the item
/// still runs on another queue: the queueing waits for that run to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_workqueue_waits_for_item_running_elsewhere() {
    let running_on = test_queue("w13-running-on", 4);
    let flushed = test_queue("w13-flushed", 4);
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let item = gated_item("busy-elsewhere", &gate, &runs);
    wq::queue_work(&running_on, &item).unwrap();
    gate.wait_arrivals(1).await;
    assert!(wq::queue_work(&flushed, &item).unwrap());

    // The runs finished when the flush returned: 0 if it did not wait.
    let flush = {
        let (flush, runs) = (wq::flush_workqueue(&flushed), runs.clone());
        tokio::spawn(async move {
            flush.await.unwrap();
            runs.load(Ordering::SeqCst)
        })
    };
    gate.open(2);
    let runs_at_return = guarded("flush", flush).await.unwrap();

    assert_eq!(
        runs_at_return, 2,
        "the flush returned before the queueing ran"
    );
    // The queue keeps no reference to the item once its queueing ran.
    guarded("the queues' references released", async {
        while Arc::strong_count(&item) > 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// A work function that queues its own item on another queue, and then
/// flushes that queue, gets an error instead of a hang: the queueing
/// cannot start before the caller's run ends, and the flush waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_after_own_requeue_is_error() {
    let home = test_queue("home", 4);
    let other = test_queue("other", 4);
    let result = Arc::new(Mutex::new(None));
    let item = {
        let (other, result) = (other.clone(), result.clone());
        self_aware_item("mover", move |me| {
            let (other, result) = (other.clone(), result.clone());
            async move {
                if result.lock().unwrap().is_some() {
                    return;
                }
                wq::queue_work(&other, &me).unwrap();
                let flushed = wq::flush_workqueue(&other).await;
                *result.lock().unwrap() = Some(flushed);
            }
        })
    };

    wq::queue_work(&home, &item).unwrap();
    guarded("the runs", wq::flush_workqueue(&home))
        .await
        .unwrap();
    guarded("the runs", wq::flush_workqueue(&home))
        .await
        .unwrap();

    let result = result.lock().unwrap().take().expect("the item ran");
    let error = result.unwrap_err();
    assert_eq!(
        error,
        WaitError::SelfQueued {
            api: "flush_workqueue",
            queue: "other".into(),
            work: "mover".into(),
        }
    );
    assert!(error.to_string().contains("would wait forever"), "{error}");
}

/// drain_workqueue waits for a queueing that the queue's own work made on
/// it during the drain, while the item ran on another queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_item_running_elsewhere() {
    let elsewhere = test_queue("elsewhere", 4);
    let drained = test_queue("drained", 4);
    let (busy_gate, requeuer_gate) = (Gate::new(), Gate::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let busy = gated_item("busy-elsewhere", &busy_gate, &runs);
    let requeued = Arc::new(AtomicBool::new(false));
    let requeuer = {
        let (drained, busy, gate, requeued) = (
            drained.clone(),
            busy.clone(),
            requeuer_gate.clone(),
            requeued.clone(),
        );
        Work::from_async_fn("requeuer", move || {
            let (drained, busy, gate, requeued) = (
                drained.clone(),
                busy.clone(),
                gate.clone(),
                requeued.clone(),
            );
            async move {
                gate.pass().await;
                wq::queue_work(&drained, &busy).unwrap();
                requeued.store(true, Ordering::SeqCst);
            }
        })
    };
    wq::queue_work(&elsewhere, &busy).unwrap();
    busy_gate.wait_arrivals(1).await;
    wq::queue_work(&drained, &requeuer).unwrap();
    requeuer_gate.wait_arrivals(1).await;

    // The runs of "busy-elsewhere" that had finished when the drain returned.
    let drain = {
        let (drain, runs) = (wq::drain_workqueue(&drained), runs.clone());
        tokio::spawn(async move {
            drain.await.unwrap();
            runs.load(Ordering::SeqCst)
        })
    };
    let probe = Work::from_fn("probe", || {});
    guarded("the drain starts", async {
        while wq::queue_work(&drained, &probe).is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    requeuer_gate.open(1);
    guarded("the requeue", async {
        while !requeued.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    busy_gate.open(2);
    let runs_at_return = guarded("the drain", drain).await.unwrap();

    assert_eq!(
        runs_at_return, 2,
        "the drain returned before the queueing ran"
    );
}

/// A work function that queues its own item on another queue, and cancels
/// that queueing, may flush that queue: nothing of it is queued there any
/// more, and the flush does not wait for the caller's run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_after_cancelled_own_requeue() {
    let home = test_queue("home", 4);
    let other = test_queue("other", 4);
    let result = Arc::new(Mutex::new(None));
    let item = {
        let (other, result) = (other.clone(), result.clone());
        self_aware_item("mover", move |me| {
            let (other, result) = (other.clone(), result.clone());
            async move {
                assert!(wq::queue_work(&other, &me).unwrap());
                // Let the other queue's worker take the queueing in.
                guarded("the intake", async {
                    while other.stats().pending == 0 {
                        tokio::task::yield_now().await;
                    }
                })
                .await;
                assert!(wq::cancel_work(&me));
                *result.lock().unwrap() = Some(wq::flush_workqueue(&other).await);
            }
        })
    };

    wq::queue_work(&home, &item).unwrap();
    guarded("the run", wq::flush_workqueue(&home))
        .await
        .unwrap();

    let result = result.lock().unwrap().take().expect("the item ran");
    assert_eq!(result, Ok(()));
    guarded("destroy", wq::destroy_workqueue(&other))
        .await
        .unwrap();
}

/// A flush of another queue that a work function hands to a task of its
/// own, after queueing its item there, waits for that queueing: the task
/// is not the work function, so no self-wait is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_flush_is_no_self_wait() {
    let home = test_queue("home", 4);
    let other = test_queue("other", 4);
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let flush = Arc::new(Mutex::new(None));
    let item = {
        let (other, gate, runs, flush) = (other.clone(), gate.clone(), runs.clone(), flush.clone());
        self_aware_item("spawner", move |me| {
            let (other, gate, runs, flush) =
                (other.clone(), gate.clone(), runs.clone(), flush.clone());
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    wq::queue_work(&other, &me).unwrap();
                    let task = tokio::spawn(wq::flush_workqueue(&other));
                    *flush.lock().unwrap() = Some(task);
                } else {
                    gate.pass().await;
                }
            }
        })
    };

    wq::queue_work(&home, &item).unwrap();
    gate.wait_arrivals(1).await;
    gate.open(1);
    let task = flush
        .lock()
        .unwrap()
        .take()
        .expect("the first run spawned the flush");
    let flushed = guarded("the spawned flush", task).await.unwrap();

    assert_eq!(flushed, Ok(()));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// A destroy that fails because the caller's own item was queued on the
/// queue leaves the queue live: it still accepts work, and a destroy from
/// outside then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_destroy_leaves_queue_live() {
    let home = test_queue("home", 4);
    let doomed = test_queue("doomed", 4);
    let result = Arc::new(Mutex::new(None));
    let item = {
        let (doomed, result) = (doomed.clone(), result.clone());
        self_aware_item("destroyer", move |me| {
            let (doomed, result) = (doomed.clone(), result.clone());
            async move {
                if result.lock().unwrap().is_some() {
                    return;
                }
                wq::queue_work(&doomed, &me).unwrap();
                let destroyed = wq::destroy_workqueue(&doomed).await;
                *result.lock().unwrap() = Some(destroyed);
            }
        })
    };

    wq::queue_work(&home, &item).unwrap();
    guarded("the runs", wq::flush_workqueue(&home))
        .await
        .unwrap();
    guarded("the runs", wq::flush_workqueue(&home))
        .await
        .unwrap();

    let result = result.lock().unwrap().take().expect("the item ran");
    assert!(
        matches!(
            result,
            Err(WaitError::SelfQueued {
                api: "destroy_workqueue",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(!doomed.is_destroyed());
    let runs = Arc::new(AtomicUsize::new(0));
    assert!(wq::queue_work(&doomed, &counting_item("after", &runs)).unwrap());
    guarded("destroy from outside", wq::destroy_workqueue(&doomed))
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// flush_delayed_work of an item waiting on its timer returns true every
/// time: the flush takes its target before the worker that runs the item
/// is woken, so a fast worker cannot make it look idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_delayed_work_true_when_armed() {
    let queue = test_queue("flush-delayed-armed", 4);
    let dwork = DelayedWork::from_fn("quick", || {});
    let hour = Duration::from_secs(3600);

    let mut idle_results = 0;
    for _ in 0..2_000 {
        assert_eq!(wq::queue_delayed_work(&queue, &dwork, hour), Ok(true));
        if guarded("flush", wq::flush_delayed_work(&dwork)).await == Ok(false) {
            idle_results += 1;
        }
    }
    assert_eq!(idle_results, 0, "flushes that found the armed item idle");
}

/// An ordered queue keeps queueing order when its first item still runs on
/// another queue: the item waits for that run to end, and the items behind
/// it wait for the item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_order_with_item_running_elsewhere() {
    let elsewhere = test_queue("order-elsewhere", 4);
    let ordered = ordered_queue("order-strict");
    let gate = Gate::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let first = {
        let (gate, order) = (gate.clone(), order.clone());
        Work::from_async_fn("first", move || {
            let (gate, order) = (gate.clone(), order.clone());
            async move {
                gate.pass().await;
                order.lock().unwrap().push("first");
            }
        })
    };
    let second = {
        let order = order.clone();
        Work::from_fn("second", move || order.lock().unwrap().push("second"))
    };

    wq::queue_work(&elsewhere, &first).unwrap();
    gate.wait_arrivals(1).await;
    assert!(wq::queue_work(&ordered, &first).unwrap());
    assert!(wq::queue_work(&ordered, &second).unwrap());
    gate.open(2);
    guarded("the ordered queue", wq::flush_workqueue(&ordered))
        .await
        .unwrap();

    assert_eq!(*order.lock().unwrap(), ["first", "first", "second"]);
    assert_eq!(ordered.stats().executed, 2);
}

/// destroy_workqueue of a system queue is rejected, naming the queue, and
/// the queue goes on serving schedule_work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_of_system_queue_rejected() {
    let error = wq::destroy_workqueue(wq::system_wq()).await.unwrap_err();

    assert_eq!(
        error,
        WaitError::SystemQueue {
            api: "destroy_workqueue",
            queue: "events".into(),
        }
    );
    assert!(
        error
            .to_string()
            .contains("destroy only queues you allocated"),
        "{error}"
    );
    assert!(!wq::system_wq().is_destroyed());
    let runs = Arc::new(AtomicUsize::new(0));
    let item = counting_item("after-destroy", &runs);
    assert!(wq::schedule_work(&item).unwrap());
    guarded("the run", wq::flush_work(&item)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Allocating a workqueue in a top half is reported as a sleeping call
/// naming the API, the line and the handler, as Linux reports its
/// alloc_workqueue. The queue is made all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloc_in_top_half_reported() {
    let guard = irq_sim::context::enter_hardirq(7, "probe");
    let queue = wq::alloc_workqueue("made-in-irq", wq::WqFlags::NONE, 1);
    let reported = irq_sim::context::take_invalid_context();
    drop(guard);

    let reported = reported.expect("alloc_workqueue was reported");
    assert_eq!(reported.api, "alloc_workqueue");
    assert_eq!(reported.irq, 7);
    assert_eq!(reported.handler, "probe");
    let runs = Arc::new(AtomicUsize::new(0));
    assert!(wq::queue_work(&queue, &counting_item("runs", &runs)).unwrap());
    guarded("the queue works", wq::flush_workqueue(&queue))
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A work function that queues its own item and then another item on an
/// ordered queue, and flushes the second, gets an error instead of a hang:
/// the second waits behind the caller's own queueing, which waits for the
/// caller. The same holds for a delayed second item that the flush moves
/// off its timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_behind_own_requeue_is_error() {
    for delayed in [false, true] {
        let home = test_queue("home", 4);
        let ordered = ordered_queue("ordered-behind");
        let runs = Arc::new(AtomicUsize::new(0));
        let second = {
            let runs = runs.clone();
            DelayedWork::from_fn("second", move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        };
        let result = Arc::new(Mutex::new(None));
        let item = {
            let (ordered, second, result) = (ordered.clone(), second.clone(), result.clone());
            self_aware_item("first", move |me| {
                let (ordered, second, result) = (ordered.clone(), second.clone(), result.clone());
                async move {
                    if result.lock().unwrap().is_some() {
                        return;
                    }
                    wq::queue_work(&ordered, &me).unwrap();
                    let flushed = if delayed {
                        let hour = Duration::from_secs(3600);
                        wq::queue_delayed_work(&ordered, &second, hour).unwrap();
                        wq::flush_delayed_work(&second).await
                    } else {
                        wq::queue_work(&ordered, &second).unwrap();
                        wq::flush_work(&second).await
                    };
                    *result.lock().unwrap() = Some(flushed);
                }
            })
        };

        wq::queue_work(&home, &item).unwrap();
        guarded("the run on home", wq::flush_workqueue(&home))
            .await
            .unwrap();
        guarded("the ordered queue", wq::flush_workqueue(&ordered))
            .await
            .unwrap();

        let result = result.lock().unwrap().take().expect("first ran");
        assert_eq!(
            result,
            Err(WaitError::QueuedBehind {
                api: if delayed {
                    "flush_delayed_work"
                } else {
                    "flush_work"
                },
                work: "second".into(),
                queue: "ordered-behind".into(),
                waiter: "first".into(),
            }),
            "delayed: {delayed}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1, "delayed: {delayed}");
    }
}

/// A busy-poll worker on a current-thread runtime lets an item's run on
/// another queue of that runtime go on while the item waits for it: the
/// spinning worker yields when the only work left cannot start.
#[tokio::test]
async fn busy_poll_worker_yields_to_run_elsewhere() {
    let runtime = tokio::runtime::Handle::current();
    let elsewhere = Workqueue::builder("spin-elsewhere")
        .runtime(runtime.clone())
        .build();
    let polled = Workqueue::builder("spin-polled")
        .idle_spin(Duration::MAX)
        .runtime(runtime)
        .build();
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let item = gated_item("busy", &gate, &runs);
    wq::queue_work(&elsewhere, &item).unwrap();
    gate.wait_arrivals(1).await;
    assert!(wq::queue_work(&polled, &item).unwrap());
    gate.open(2);
    guarded("both runs", wq::flush_work(&item)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
