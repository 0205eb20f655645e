//! Hard cases of `Napi::synchronize` and of the re-entrant free of an IRQ
//! registration: cases that should neither hang nor warn falsely.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use driver::irq::ThreadedIrq;
use driver::module::{self, InitResult, Module, ModuleContext};
use driver::napi::{IrqMask, Napi};
use irq_sim::{Config, IrqFlags, IrqReturn, Machine};

mod common;

use common::{HANG_GUARD, capture_logs, log_text, runtime};

/// Counts the "lost its poll" warnings of the NAPI context `name`.
fn lost_poll_warnings(name: &str) -> usize {
    let log = log_text();
    let needle = format!("napi {name}: the polling cycle lost its poll");
    log.matches(&needle).count()
}

/// A mask whose first `mask` call panics, as a driver bug in a custom
/// `IrqMask` would.
#[derive(Default)]
struct PanicsOnFirstMask {
    masked_once: AtomicBool,
}

impl IrqMask for PanicsOnFirstMask {
    fn mask(&self) {
        if !self.masked_once.swap(true, Ordering::SeqCst) {
            panic!("mask register write failed");
        }
    }

    fn unmask(&self) {}
}

/// A mask that does nothing.
#[derive(Default)]
struct NoMask;

impl IrqMask for NoMask {
    fn mask(&self) {}

    fn unmask(&self) {}
}

/// A `schedule` whose mask panics leaves `schedules_begun` one above
/// `schedules_ended` for ever, with the cycle scheduled and no poll queued.
/// `synchronize` must still return, as it does for a cancelled poll.
#[test]
fn synchronize_after_mask_panic_returns() {
    let queue = wq::alloc_workqueue("qa_mask_panic", wq::WqFlags::NONE, 1);
    let napi = Napi::new(
        "qa_mask_panic",
        &queue,
        4,
        Arc::new(PanicsOnFirstMask::default()),
        |_| 0,
    );
    let scheduled = catch_unwind(AssertUnwindSafe(|| napi.schedule()));
    assert!(scheduled.is_err(), "the mask did not panic");
    assert!(napi.is_scheduled());

    let runtime = runtime();
    let synchronized =
        runtime.block_on(async { tokio::time::timeout(HANG_GUARD, napi.synchronize()).await });
    assert!(
        synchronized.is_ok(),
        "synchronize spins for ever after a schedule that panicked"
    );
}

/// `disable` racing `synchronize` on a cycle that keeps polling: the
/// disable cancels the queued poll, which is no lost poll, so
/// `synchronize` must return without the "lost its poll" warning.
#[test]
fn synchronize_racing_disable_no_false_warning() {
    capture_logs();
    let runtime = runtime();
    let queue = wq::alloc_workqueue("qa_race_disable", wq::WqFlags::NONE, 1);
    // QA_ROUNDS raises the count for a longer hunt.
    let rounds: usize = std::env::var("QA_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(300);
    let name = "qa_race_disable";
    for _ in 0..rounds {
        // Every poll uses its whole budget, so the cycle never ends by
        // itself and `synchronize` loops until the disable.
        let napi = Napi::new(name, &queue, 4, Arc::new(NoMask), |budget| budget);
        assert!(napi.schedule());
        let synchronizing = runtime.spawn(napi.synchronize());
        // Let synchronize go round its loop for a moment.
        let polls = napi.stats().polls;
        let deadline = std::time::Instant::now() + HANG_GUARD;
        while napi.stats().polls < polls + 20 {
            assert!(std::time::Instant::now() < deadline, "the polls stopped");
            std::thread::yield_now();
        }
        runtime.block_on(napi.disable()).unwrap();
        runtime
            .block_on(async { tokio::time::timeout(HANG_GUARD, synchronizing).await })
            .expect("synchronize hung after the disable")
            .unwrap()
            .unwrap();
        napi.enable();
        runtime.block_on(napi.disable()).unwrap();
    }
    assert_eq!(
        lost_poll_warnings(name),
        0,
        "a disable racing synchronize was reported as a lost poll"
    );
}

/// Two threads free the same registration at once, one as its owner and
/// one as a module's tracker: both return, and the handler is gone.
#[test]
fn concurrent_owner_and_tracker_frees_return() {
    struct Holder;
    impl Module for Holder {
        const NAME: &'static str = "qa_concurrent_free";
        type Params = ();
        fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
            Ok(Holder)
        }
        fn exit(&mut self, _ctx: &ModuleContext) {}
    }
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap();
    for round in 0..50 {
        let loaded = module::load::<Holder>(()).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let registration = {
            let calls = calls.clone();
            loaded
                .context()
                .request_threaded_irq(
                    &machine.controller(),
                    13,
                    ThreadedIrq::new("qa_both_free", IrqFlags::EDGE.oneshot(), move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        IrqReturn::Handled
                    }),
                )
                .unwrap()
        };
        let (done, finished) = mpsc::channel();
        let owner = {
            let done = done.clone();
            std::thread::spawn(move || {
                let freed = registration.free().map_err(|error| error.to_string());
                let _ = done.send(("owner", freed.is_ok()));
            })
        };
        let tracker = std::thread::spawn(move || {
            let report = loaded.unload().map_err(|error| error.to_string());
            let _ = done.send(("tracker", report.is_ok()));
        });
        for _ in 0..2 {
            let (who, ok) = finished
                .recv_timeout(HANG_GUARD)
                .unwrap_or_else(|_| panic!("round {round}: a free deadlocked"));
            assert!(ok, "round {round}: the {who} free failed");
        }
        owner.join().unwrap();
        tracker.join().unwrap();
        assert_eq!(
            machine.controller().line_stats(13).unwrap().handlers,
            Vec::<&str>::new()
        );
    }
}

/// A queue destroyed in mid-cycle drains the cycle to its end, and a
/// schedule after the destroy cannot queue its poll: `synchronize` returns
/// both times and the cycle is over.
#[test]
fn synchronize_after_queue_destroyed_returns() {
    let runtime = runtime();
    let queue = wq::alloc_workqueue("qa_destroyed", wq::WqFlags::NONE, 1);
    let full_polls_left = Arc::new(AtomicUsize::new(200));
    let napi = {
        let left = full_polls_left.clone();
        Napi::new("qa_destroyed", &queue, 4, Arc::new(NoMask), move |budget| {
            let full = left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if full { budget } else { 0 }
        })
    };
    assert!(napi.schedule());
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while napi.stats().polls < 5 {
        assert!(std::time::Instant::now() < deadline, "the polls stopped");
        std::thread::yield_now();
    }
    wq::blocking::destroy_workqueue(&queue).unwrap();
    let synchronized =
        runtime.block_on(async { tokio::time::timeout(HANG_GUARD, napi.synchronize()).await });
    assert!(synchronized.is_ok(), "synchronize hangs after the destroy");
    assert!(!napi.is_scheduled(), "the cycle outlived its queue");

    assert!(!napi.schedule(), "a poll was queued on a destroyed queue");
    let synchronized =
        runtime.block_on(async { tokio::time::timeout(HANG_GUARD, napi.synchronize()).await });
    assert!(
        synchronized.is_ok(),
        "synchronize hangs on a destroyed queue"
    );
    assert!(!napi.is_scheduled());
}

/// A poll that panics mid-cycle ends the cycle, so `synchronize` returns
/// and a new cycle can start.
#[test]
fn synchronize_after_poll_panic_returns() {
    let runtime = runtime();
    let queue = wq::alloc_workqueue("qa_poll_panic", wq::WqFlags::NONE, 1);
    let calls = Arc::new(AtomicUsize::new(0));
    let napi = {
        let calls = calls.clone();
        Napi::new(
            "qa_poll_panic",
            &queue,
            4,
            Arc::new(NoMask),
            move |budget| {
                if calls.fetch_add(1, Ordering::SeqCst) == 3 {
                    panic!("poll bug");
                }
                budget
            },
        )
    };
    assert!(napi.schedule());
    let synchronized =
        runtime.block_on(async { tokio::time::timeout(HANG_GUARD, napi.synchronize()).await });
    assert!(synchronized.is_ok(), "synchronize hangs after a poll panic");
    assert_eq!(napi.stats().panics, 1);
    assert!(!napi.is_scheduled());
}
