//! First-contact checks: the system queues work with no setup.

use std::sync::atomic::{AtomicUsize, Ordering};

use wq::Work;

static RUNS: AtomicUsize = AtomicUsize::new(0);
static SMOKE: Work = Work::new("smoke", || {
    RUNS.fetch_add(1, Ordering::SeqCst);
});

/// A static item queued from a plain thread, with no runtime set up, runs.
#[test]
fn system_queue_without_setup() {
    assert!(wq::schedule_work(&SMOKE).unwrap());
    // The run may be over before the flush is called; either way it waits
    // for the run.
    wq::blocking::flush_work(&SMOKE).unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert!(!wq::blocking::flush_work(&SMOKE).unwrap());
}
