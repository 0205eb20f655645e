//! A loom model of the work item state machine: queueing (claim and link),
//! a worker's start and finish, re-queueing while running, and cancel, run
//! under every interleaving loom explores.
//!
//! Run with `RUSTFLAGS="--cfg wq_loom" cargo test --release -p wq --lib loom`.

use std::sync::Arc;

use loom::thread;

use crate::core::{self, Claim, Linked, QueueCore, lock_pool};
use crate::work::{ItemRef, Runnable, Work};

/// Claims and links one queueing, as `queue_work` does; returns whether it
/// started a new pending period.
fn queue_item(item: &ItemRef, queue: &QueueCore) -> bool {
    match item.core().claim() {
        Claim::Claimed(ticket) => {
            let linked = core::link_pending(
                &mut lock_pool(),
                item.core(),
                item.clone(),
                ticket,
                queue,
                None,
            );
            matches!(linked, Linked::Queued(_) | Linked::Cancelled(_))
        }
        Claim::AlreadyPending | Claim::Disabled => false,
    }
}

/// Runs every startable item of `queue` once, as a worker does; returns how
/// many runs it made.
fn work(queue: &QueueCore) -> usize {
    let mut runs = 0;
    loop {
        let next = core::take_next(&mut lock_pool(), queue, std::time::Instant::now());
        let Some(started) = next else {
            return runs;
        };
        let released = core::finish(
            &mut lock_pool(),
            queue,
            started.item.core(),
            started.ticket,
            1,
        );
        drop(released);
        runs += 1;
    }
}

fn new_item() -> ItemRef {
    let work: Arc<dyn Runnable> = Arc::new(Work::new("modelled", || {}));
    ItemRef::from_arc(work)
}

/// Concurrent queueing, a worker and a cancel: every queueing that
/// returned true ends in exactly one run or one cancel, and the item ends
/// neither pending nor linked.
#[test]
fn loom_queue_work_cancel() {
    loom::model(|| {
        let queue = Arc::new(QueueCore::new("loom".into(), 1));
        let item = new_item();

        let queuer = {
            let (queue, item) = (queue.clone(), item.clone());
            thread::spawn(move || usize::from(queue_item(&item, &queue)))
        };
        let canceller = {
            let item = item.clone();
            thread::spawn(move || {
                let outcome = core::cancel(&mut lock_pool(), item.core());
                drop(outcome.released);
                usize::from(outcome.was_pending)
            })
        };
        let queued_here = usize::from(queue_item(&item, &queue));
        let mut runs = work(&queue);

        let queued = queued_here + queuer.join().unwrap();
        let cancelled = canceller.join().unwrap();
        runs += work(&queue);

        assert_eq!(queued, runs + cancelled);
        assert!(!item.core().is_pending());
        assert!(core::is_empty(&mut lock_pool(), &queue));
        let counters = queue.counters.load();
        assert_eq!(counters.queued, counters.executed + counters.cancelled);
    });
}

/// Re-queueing while the item runs: the re-queue succeeds, the second run
/// starts only after the first finished, and no queueing is lost.
#[test]
fn loom_requeue_while_running() {
    loom::model(|| {
        let queue = Arc::new(QueueCore::new("loom".into(), 2));
        let item = new_item();
        assert!(queue_item(&item, &queue));

        let started = core::take_next(&mut lock_pool(), &queue, std::time::Instant::now())
            .expect("the item is linked");
        let requeuer = {
            let (queue, item) = (queue.clone(), item.clone());
            thread::spawn(move || queue_item(&item, &queue))
        };
        let second_worker = {
            let queue = queue.clone();
            thread::spawn(move || {
                // The item is running: a second worker must not start it.
                let next = core::take_next(&mut lock_pool(), &queue, std::time::Instant::now());
                next.map(|started| started.ticket)
            })
        };

        let overlapped = second_worker.join().unwrap();
        let released = core::finish(
            &mut lock_pool(),
            &queue,
            started.item.core(),
            started.ticket,
            1,
        );
        drop(released);
        assert!(
            requeuer.join().unwrap(),
            "an item is not pending while it runs"
        );

        assert_eq!(overlapped, None, "the item started while running");
        assert_eq!(work(&queue), 1);
        assert!(item.core().is_done(item.core().latest_ticket()));
    });
}
