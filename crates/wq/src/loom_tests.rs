//! A loom model of the work item state machine: queueing (claim and link),
//! a worker's start and finish, re-queueing while running, and cancel, run
//! under every interleaving loom explores.
//!
//! Run with `RUSTFLAGS="--cfg wq_loom" cargo test --release -p wq --lib loom`.

use std::sync::Arc;
use std::task::{Wake, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use crate::core::{self, IntakeClaim, Linked, QueueCore, lock_pool};
use crate::work::{ItemRef, Runnable, Work};

/// Pushes the claimed queueing `ticket` of `item` and claims a parked
/// worker, as `queue_work` does from a plain thread. Returns the claimed
/// worker's waker.
fn push(item: &ItemRef, ticket: u64, queue: &QueueCore) -> Option<Waker> {
    match core::push_intake(item.core(), item.clone(), ticket, queue) {
        core::Pushed::Queued => core::claim_idle(queue),
        core::Pushed::Destroyed => unreachable!("the modelled queue is never destroyed"),
    }
}

/// Claims and pushes an item that is not pending; see `push`.
fn push_idle_item(item: &ItemRef, queue: &QueueCore) -> Option<Waker> {
    let IntakeClaim::Push(ticket) = item.core().claim_for_intake() else {
        panic!("a fresh item is idle");
    };
    push(item, ticket, queue)
}

/// Claims and pushes or links one queueing, as `queue_work` does; returns
/// whether it started a new pending period.
fn queue_item(item: &ItemRef, queue: &QueueCore) -> bool {
    match item.core().claim_for_intake() {
        IntakeClaim::Push(ticket) => {
            drop(push(item, ticket, queue));
            true
        }
        IntakeClaim::Locked(ticket) => {
            let linked = core::link_pending(
                &mut lock_pool(),
                item.core(),
                item.clone(),
                ticket,
                queue,
                None,
            );
            if let Linked::Queued(_, leftovers) = linked {
                leftovers.settle();
            }
            true
        }
        IntakeClaim::AlreadyPending | IntakeClaim::Disabled => false,
    }
}

/// Moves the intake stack to the worklist and takes the next item, as a
/// worker does under one lock hold.
fn take(queue: &QueueCore) -> Option<core::Started> {
    let mut pool = lock_pool();
    let leftovers = core::drain_intake(&mut pool, queue);
    let mut next = core::take_next(&mut pool, queue, crate::clock::Stamp::now());
    drop(pool);
    leftovers.settle();
    if let Some(worker) = next.as_mut().and_then(|started| started.wake_worker.take()) {
        worker.wake();
    }
    next
}

/// Runs every startable item of `queue` once, as a worker does; returns how
/// many runs it made.
fn work(queue: &QueueCore) -> usize {
    let mut runs = 0;
    loop {
        let Some(started) = take(queue) else {
            return runs;
        };
        let mut leftovers = core::Leftovers::default();
        let released = core::finish(
            &mut lock_pool(),
            queue,
            started.item.core(),
            started.ticket,
            1,
            &mut leftovers,
        );
        drop(released);
        leftovers.settle();
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
        let tallies = core::snapshot(&mut lock_pool(), &queue).tallies;
        assert_eq!(tallies.queued, tallies.executed + tallies.cancelled);
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

        let started = take(&queue).expect("the item is queued");
        let requeuer = {
            let (queue, item) = (queue.clone(), item.clone());
            thread::spawn(move || queue_item(&item, &queue))
        };
        let second_worker = {
            let queue = queue.clone();
            thread::spawn(move || {
                // The item is running: a second worker must not start it.
                take(&queue).map(|started| started.ticket)
            })
        };

        let overlapped = second_worker.join().unwrap();
        let mut leftovers = core::Leftovers::default();
        let released = core::finish(
            &mut lock_pool(),
            &queue,
            started.item.core(),
            started.ticket,
            1,
            &mut leftovers,
        );
        drop(released);
        leftovers.settle();
        assert!(
            requeuer.join().unwrap(),
            "an item is not pending while it runs"
        );

        assert_eq!(overlapped, None, "the item started while running");
        assert_eq!(work(&queue), 1);
        assert!(item.core().is_done(item.core().latest_ticket()));
    });
}

/// A worker going to sleep and a queueing that pushes at the same time: the
/// worker either sees the item before it sleeps, or the queueing sees the
/// sleeping worker and wakes it. No item is left with every worker asleep.
#[test]
fn loom_push_meets_parking_worker() {
    loom::model(|| {
        let queue = Arc::new(QueueCore::new("loom".into(), 1));
        let slot = core::add_worker(&mut lock_pool(), &queue).expect("room for one worker");
        let item = new_item();

        let pusher = {
            let (queue, item) = (queue.clone(), item.clone());
            thread::spawn(move || push_idle_item(&item, &queue).is_some())
        };

        // The worker: look for work, and sleep if there is none.
        let parked = loop {
            let mut pool = lock_pool();
            let mut leftovers = core::drain_intake(&mut pool, &queue);
            let started = core::take_next(&mut pool, &queue, crate::clock::Stamp::now());
            if let Some(started) = started {
                let released = core::finish(
                    &mut pool,
                    &queue,
                    started.item.core(),
                    started.ticket,
                    1,
                    &mut leftovers,
                );
                drop(pool);
                drop(released);
                leftovers.settle();
                break false;
            }
            let park = core::park_worker(&mut pool, &queue, slot, std::task::Waker::noop());
            drop(pool);
            leftovers.settle();
            match park {
                core::Park::Parked => break true,
                core::Park::Retry => continue,
                core::Park::Exit => unreachable!("the modelled queue is live"),
            }
        };
        let woke_worker = pusher.join().unwrap();

        if parked {
            assert!(
                woke_worker,
                "the worker sleeps and nobody woke it for the pushed item"
            );
        }
    });
}

/// A task's wake-ups, counted for the modelled worker.
struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two queueings meet a worker that parks, is woken and parks again. Each
/// queueing claims the worker if it finds it parked; a later claimant may
/// find the waker already taken by an earlier one (see `crate::idle`).
/// Both items run: no wake-up is lost.
#[test]
fn loom_two_pushers_and_a_parking_worker() {
    loom::model(|| {
        let queue = Arc::new(QueueCore::new("loom".into(), 1));
        let slot = core::add_worker(&mut lock_pool(), &queue).expect("room for one worker");
        let wakes = Arc::new(WakeCount(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        let mut wakes_seen = 0;

        let mut pushers: Vec<_> = (0..2)
            .map(|_| {
                let queue = queue.clone();
                thread::spawn(move || {
                    let item = new_item();
                    if let Some(worker) = push_idle_item(&item, &queue) {
                        worker.wake();
                    }
                })
            })
            .collect();

        // The worker, as `queue::worker` polls: withdraw, run what is there,
        // park, and sleep until woken. Sleeping is modelled without a spin
        // loop: a worker not yet woken waits for both pushers to finish,
        // after which a wake-up that is owed must have been delivered.
        let mut runs = 0;
        loop {
            core::unpark_worker(&queue, slot);
            runs += work(&queue);
            if runs == 2 {
                break;
            }
            let park = core::park_worker(&mut lock_pool(), &queue, slot, &waker);
            match park {
                core::Park::Parked => {
                    if wakes.0.load(Ordering::SeqCst) == wakes_seen {
                        pushers.drain(..).for_each(|pusher| pusher.join().unwrap());
                        assert!(
                            wakes.0.load(Ordering::SeqCst) > wakes_seen,
                            "the worker sleeps with {runs} of 2 items run, and nobody woke it"
                        );
                    }
                    wakes_seen = wakes.0.load(Ordering::SeqCst);
                }
                core::Park::Retry => {}
                core::Park::Exit => unreachable!("the modelled queue is live"),
            }
        }
        pushers.drain(..).for_each(|pusher| pusher.join().unwrap());
    });
}

/// A queueing that races with a destroy is either accepted and runs once,
/// or rejected as destroyed and never runs: the push alone decides, by
/// finding the intake stack open or closed.
#[test]
fn loom_push_races_destroy() {
    loom::model(|| {
        let queue = Arc::new(QueueCore::new("loom".into(), 1));
        let item = new_item();

        let pusher = {
            let (queue, item) = (queue.clone(), item.clone());
            thread::spawn(move || {
                let IntakeClaim::Push(ticket) = item.core().claim_for_intake() else {
                    panic!("a fresh item is idle");
                };
                // As `queue_work`: the unlocked phase check, then the push.
                if core::accepts_unlocked(&queue, || false).is_err() {
                    core::abandon_intake(item.core(), ticket, &mut lock_pool());
                    return false;
                }
                match core::push_intake(item.core(), item.clone(), ticket, &queue) {
                    core::Pushed::Queued => true,
                    core::Pushed::Destroyed => {
                        let released = core::withdraw_push(&mut lock_pool(), item.core(), ticket);
                        drop(released);
                        false
                    }
                }
            })
        };

        // The destroy: a drain whose end moves the queue to Destroyed, with
        // a worker running what it finds before and after. Each settle
        // comes after the unlock, as in `drain`.
        let begun = core::begin_drain(&mut lock_pool(), &queue);
        begun.settle();
        let mut runs = work(&queue);
        let ended = core::end_drain(&mut lock_pool(), &queue, core::Phase::Destroyed);
        ended.settle();
        runs += work(&queue);
        let accepted = pusher.join().unwrap();

        // Nothing can reach the queue after the close: a pass of a worker
        // that the destroy would have let exit finds no work.
        assert_eq!(work(&queue), 0, "a queueing landed after the close");
        assert_eq!(runs, usize::from(accepted), "accepted: {accepted}");
        assert!(!item.core().is_pending());
        let tallies = core::snapshot(&mut lock_pool(), &queue).tallies;
        assert_eq!(tallies.queued, tallies.executed + tallies.cancelled);
    });
}

/// An item queued on one queue while it runs on another waits there for
/// the run to end. The end of the run wakes the waiting queue's worker if
/// it went to sleep meanwhile, so the item is not left behind.
#[test]
fn loom_queued_while_running_elsewhere() {
    loom::model(|| {
        let running_on = Arc::new(QueueCore::new("loom-running".into(), 1));
        let waiting_on = Arc::new(QueueCore::new("loom-waiting".into(), 1));
        let slot = core::add_worker(&mut lock_pool(), &waiting_on).expect("room for one worker");
        let wakes = Arc::new(WakeCount(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        let item = new_item();
        assert!(queue_item(&item, &running_on));
        let started = take(&running_on).expect("the item is queued");
        assert!(queue_item(&item, &waiting_on));

        // The end of the run on the first queue.
        let mut finisher = Some({
            let (running_on, started) = (running_on.clone(), started);
            thread::spawn(move || {
                let mut leftovers = core::Leftovers::default();
                let released = core::finish(
                    &mut lock_pool(),
                    &running_on,
                    started.item.core(),
                    started.ticket,
                    1,
                    &mut leftovers,
                );
                drop(released);
                leftovers.settle();
            })
        });

        // The waiting queue's worker: run the item if it may start, else
        // sleep, and look again once woken.
        let mut wakes_seen = 0;
        let ran = loop {
            let mut pool = lock_pool();
            let leftovers = core::drain_intake(&mut pool, &waiting_on);
            if let Some(started) =
                core::take_next(&mut pool, &waiting_on, crate::clock::Stamp::now())
            {
                drop(pool);
                leftovers.settle();
                break started;
            }
            let park = core::park_worker(&mut pool, &waiting_on, slot, &waker);
            drop(pool);
            leftovers.settle();
            match park {
                core::Park::Parked => {
                    // Asleep: only the end of the run can wake it.
                    let finisher = finisher.take().expect("parked once at most");
                    finisher.join().unwrap();
                    let seen = wakes.0.load(Ordering::SeqCst);
                    assert!(
                        seen > wakes_seen,
                        "the item waits behind a finished run and its worker sleeps"
                    );
                    wakes_seen = seen;
                    core::unpark_worker(&waiting_on, slot);
                }
                core::Park::Retry => {}
                core::Park::Exit => unreachable!("the modelled queue is live"),
            }
        };
        if let Some(finisher) = finisher {
            finisher.join().unwrap();
        }

        assert_eq!(ran.ticket, item.core().latest_ticket());
        let mut leftovers = core::Leftovers::default();
        drop(core::finish(
            &mut lock_pool(),
            &waiting_on,
            ran.item.core(),
            ran.ticket,
            1,
            &mut leftovers,
        ));
        leftovers.settle();
        assert!(item.core().is_done(item.core().latest_ticket()));
    });
}
