//! Helpers shared by the wq integration tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use wq::Workqueue;

/// Upper bound for any single wait in a test: a guard against a hang, far
/// above how long the wait takes when the code is right.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test if it takes longer than [`HANG_GUARD`].
pub async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {HANG_GUARD:?}"))
}

/// Builds a queue whose tasks run on the test's runtime.
pub fn test_queue(name: &'static str, max_active: usize) -> Workqueue {
    Workqueue::builder(name)
        .max_active(max_active)
        .runtime(tokio::runtime::Handle::current())
        .build()
}

/// Builds an ordered queue whose tasks run on the test's runtime.
pub fn ordered_queue(name: &'static str) -> Workqueue {
    Workqueue::builder(name)
        .ordered()
        .runtime(tokio::runtime::Handle::current())
        .build()
}

/// A gate that work functions wait at until the test opens it; it counts
/// the callers that arrived.
#[derive(Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    arrived: Arc<AtomicUsize>,
    arrivals: Arc<tokio::sync::Notify>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(0)),
            arrived: Arc::default(),
            arrivals: Arc::default(),
        }
    }

    /// Waits at the gate (from a work function) until it opens.
    pub async fn pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.arrivals.notify_waiters();
        self.permits
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
    }

    /// Waits until `count` callers have arrived at the gate in total.
    pub async fn wait_arrivals(&self, count: usize) {
        guarded("arrivals at the gate", async {
            loop {
                let notified = self.arrivals.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.arrived.load(Ordering::SeqCst) >= count {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }

    /// Lets `count` callers through.
    pub fn open(&self, count: usize) {
        self.permits.add_permits(count);
    }

    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }
}

/// Tracks how many runs of an item are in progress, and the most at once.
#[derive(Default)]
pub struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
    runs: AtomicUsize,
}

impl Concurrency {
    pub fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
    }

    pub fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    pub fn running(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }
}
