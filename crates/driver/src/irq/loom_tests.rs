//! A loom model of the IRQ thread's protocol: the wake-thread hook's
//! requests, the free's stop and join, and `synchronize_irq`'s wait for the
//! served requests, run in every interleaving loom explores.
//!
//! Run with
//! `RUSTFLAGS="--cfg driver_loom" cargo test --release -p driver --lib loom`.

use std::sync::Arc;

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread::{self, JoinHandle};

use super::ThreadShared;

/// Starts an IRQ thread that counts, in the returned counter, the requests
/// its runs served.
///
/// The model's thread parks by yielding (see `sync::park`), so the hook and
/// the free below do not unpark it.
fn spawn_irq_thread(shared: &Arc<ThreadShared>) -> (JoinHandle<()>, Arc<AtomicU64>) {
    let served = Arc::new(AtomicU64::new(0));
    let handle = thread::spawn({
        let shared = shared.clone();
        let served = served.clone();
        move || {
            shared.serve_until_stopped(|requests| {
                served.fetch_add(requests, Ordering::Relaxed);
            })
        }
    });
    (handle, served)
}

/// Stops the thread and joins it, as the free's second step does.
fn stop_and_join(shared: &ThreadShared, handle: JoinHandle<()>) {
    shared.request_stop();
    handle.join().expect("the IRQ thread does not panic");
}

/// A free serves every request that a top half made before it: the free
/// stops the thread only after the handler chain has returned, and the
/// thread may be anywhere in its loop at that moment.
#[test]
fn loom_free_serves_requests_made_before_it() {
    loom::model(|| {
        let shared = Arc::new(ThreadShared::new(false));
        let (handle, served) = spawn_irq_thread(&shared);

        let top_half = thread::spawn({
            let shared = shared.clone();
            move || shared.request()
        });
        // The free removes the handler, which waits for the running chain.
        top_half.join().expect("the top half does not panic");
        stop_and_join(&shared, handle);

        assert_eq!(served.load(Ordering::Relaxed), 1, "the request was lost");
        assert_eq!(shared.runs.load(Ordering::Acquire), 1);
    });
}

/// `synchronize_irq` returns only once the thread function has served the
/// requests made before the call, and returns even when a free stops the
/// thread meanwhile.
#[test]
fn loom_wait_served_returns_after_the_run() {
    loom::model(|| {
        let shared = Arc::new(ThreadShared::new(false));
        let (handle, served) = spawn_irq_thread(&shared);
        shared.request();

        let waiter = thread::spawn({
            let shared = shared.clone();
            let served = served.clone();
            move || {
                shared.wait_served();
                assert_eq!(
                    served.load(Ordering::Relaxed),
                    1,
                    "the wait returned before the run"
                );
            }
        });
        stop_and_join(&shared, handle);
        waiter.join().expect("the waiter's check holds");
    });
}

/// Two requests while the thread function runs fold into at most one more
/// run, and each request is served exactly once.
#[test]
fn loom_requests_fold_and_are_served_once() {
    loom::model(|| {
        let shared = Arc::new(ThreadShared::new(false));
        let (handle, served) = spawn_irq_thread(&shared);

        let top_half = thread::spawn({
            let shared = shared.clone();
            move || {
                shared.request();
                shared.request();
            }
        });
        top_half.join().expect("the top half does not panic");
        stop_and_join(&shared, handle);

        assert_eq!(served.load(Ordering::Relaxed), 2);
        let runs = shared.runs.load(Ordering::Acquire);
        assert!((1..=2).contains(&runs), "{runs} runs for two requests");
    });
}
