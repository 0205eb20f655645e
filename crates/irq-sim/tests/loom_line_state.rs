//! Loom model of a line's pending/mask/in-progress state under concurrent
//! raise, dispatch, disable and enable.
//!
//! Run with:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p irq-sim --test loom_line_state`

#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use irq_sim::line_state::{Dispatch, EnableOutcome, LineState, RaiseOutcome, Rearm};

/// One line, its CPU queue (a count: the line is queued at most once) and
/// what happened to it.
struct Model {
    state: LineState,
    queue: Mutex<usize>,
    deliveries: AtomicUsize,
    coalesced: AtomicUsize,
    running: AtomicUsize,
}

impl Model {
    fn new(level: bool) -> Arc<Self> {
        let state = LineState::new();
        let _nothing_due = state.startup(level, 0);
        Arc::new(Self {
            state,
            queue: Mutex::new(0),
            deliveries: AtomicUsize::new(0),
            coalesced: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        })
    }

    fn push(&self) {
        let mut queued = self.queue.lock().unwrap();
        assert_eq!(*queued, 0, "a line was queued twice");
        *queued += 1;
    }

    fn raise(&self, now: u64) {
        match self.state.raise(now) {
            RaiseOutcome::Queue => self.push(),
            RaiseOutcome::Coalesced => {
                self.coalesced.fetch_add(1, Ordering::SeqCst);
            }
            RaiseOutcome::Latched | RaiseOutcome::AlreadyAsserted => {}
        }
    }

    fn rearm(&self, rearm: Rearm) {
        if rearm == Rearm::Queue {
            self.push();
        }
    }

    /// Runs one CPU step: takes the line off the queue if it is there and
    /// runs it, with a handler that lowers a level line if
    /// `lower_in_handler`.
    fn dispatch_once(&self, lower_in_handler: bool) -> bool {
        self.dispatch_with(&|model: &Self| {
            if lower_in_handler {
                let _ = model.state.lower();
            }
        })
    }

    /// Runs one CPU step: takes the line off the queue if it is there and
    /// runs it with `handler`.
    fn dispatch_with(&self, handler: &dyn Fn(&Self)) -> bool {
        {
            let mut queued = self.queue.lock().unwrap();
            if *queued == 0 {
                return false;
            }
            *queued -= 1;
        }
        match self.state.begin_dispatch() {
            Dispatch::Run { .. } => {
                assert_eq!(
                    self.running.fetch_add(1, Ordering::SeqCst),
                    0,
                    "handler chain ran twice at once"
                );
                self.deliveries.fetch_add(1, Ordering::SeqCst);
                handler(self);
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.rearm(self.state.end_dispatch(100));
            }
            Dispatch::Poll => panic!("no poll was requested"),
            Dispatch::Skip | Dispatch::Postpone => {}
        }
        true
    }

    fn drain(&self, lower_in_handler: bool) {
        while self.dispatch_once(lower_in_handler) {}
    }
}

/// Every edge is delivered or counted as coalesced, never lost, and the
/// chain never runs twice at once, whatever the interleaving of two
/// raisers and a dispatching CPU.
#[test]
fn edges_delivered_or_coalesced() {
    loom::model(|| {
        let model = Model::new(false);
        let raisers: Vec<_> = (0..2)
            .map(|i| {
                let model = model.clone();
                thread::spawn(move || model.raise(10 + i))
            })
            .collect();
        model.dispatch_once(false);
        for raiser in raisers {
            raiser.join().unwrap();
        }
        model.drain(false);

        let deliveries = model.deliveries.load(Ordering::SeqCst);
        let coalesced = model.coalesced.load(Ordering::SeqCst);
        assert!(deliveries >= 1);
        assert_eq!(deliveries + coalesced, 2);
        let end = model.state.snapshot();
        assert!(!end.pending);
        assert!(!end.queued);
        assert!(!end.in_progress);
    });
}

/// An edge raised around a disable/enable pair is delivered exactly once
/// after the enable at the latest, and nothing is left queued or pending.
#[test]
fn disable_enable_keeps_edge() {
    loom::model(|| {
        let model = Model::new(false);
        let driver = {
            let model = model.clone();
            thread::spawn(move || {
                assert_eq!(model.state.disable(), Some(1));
                match model.state.enable(50) {
                    EnableOutcome::Enabled(rearm) => model.rearm(rearm),
                    other => panic!("unexpected enable outcome {other:?}"),
                }
            })
        };
        let device = {
            let model = model.clone();
            thread::spawn(move || model.raise(10))
        };
        model.dispatch_once(false);
        driver.join().unwrap();
        device.join().unwrap();
        model.drain(false);

        assert_eq!(model.deliveries.load(Ordering::SeqCst), 1);
        let end = model.state.snapshot();
        assert!(!end.pending);
        assert!(!end.queued);
        assert!(!end.in_progress);
        assert_eq!(end.depth, 0);
    });
}

/// A dispatch that starts while the line is disabled never runs the
/// chain; the latched edge runs after the enable.
#[test]
fn no_delivery_while_disabled() {
    loom::model(|| {
        let model = Model::new(false);
        model.raise(10);
        let disabled = Arc::new(AtomicUsize::new(0));
        let driver = {
            let (model, disabled) = (model.clone(), disabled.clone());
            thread::spawn(move || {
                assert_eq!(model.state.disable(), Some(1));
                disabled.store(1, Ordering::SeqCst);
            })
        };
        let before = model.deliveries.load(Ordering::SeqCst);
        model.dispatch_once(false);
        driver.join().unwrap();
        let after_disable = model.deliveries.load(Ordering::SeqCst);
        assert!(after_disable - before <= 1);
        model.drain(false);
        assert!(model.state.snapshot().depth == 1);
        if after_disable == 0 {
            assert!(
                model.state.snapshot().pending,
                "the edge was lost while disabled"
            );
            match model.state.enable(60) {
                EnableOutcome::Enabled(rearm) => model.rearm(rearm),
                other => panic!("unexpected enable outcome {other:?}"),
            }
            model.drain(false);
        } else {
            let _ = model.state.enable(60);
        }
        assert_eq!(model.deliveries.load(Ordering::SeqCst), 1);
    });
}

/// A level line masked and unmasked while a device raises it is delivered
/// and, once its handler lowers it, left idle.
#[test]
fn level_mask_unmask_delivers() {
    loom::model(|| {
        let model = Model::new(true);
        let driver = {
            let model = model.clone();
            thread::spawn(move || {
                let _ = model.state.mask();
                let rearm = model.state.unmask(40);
                model.rearm(rearm);
            })
        };
        let device = {
            let model = model.clone();
            thread::spawn(move || model.raise(10))
        };
        model.dispatch_once(true);
        driver.join().unwrap();
        device.join().unwrap();
        model.drain(true);

        assert!(model.deliveries.load(Ordering::SeqCst) >= 1);
        let end = model.state.snapshot();
        assert!(!end.pending);
        assert!(!end.queued);
        assert!(!end.in_progress);
        assert!(!end.masked);
    });
}

/// Two devices share a level line, each through its own output. Each
/// request is served exactly once whatever the interleaving: a handler
/// that drops one device's output never drops the other's request, and
/// the line ends low.
#[test]
fn shared_level_outputs_lose_no_request() {
    loom::model(|| {
        let model = Model::new(true);
        let requests = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let served = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let devices: Vec<_> = (0..2)
            .map(|device| {
                let (model, requests) = (model.clone(), requests.clone());
                thread::spawn(move || {
                    // A swap, not a store: loom can order a store against
                    // the handler's swap wrongly (tokio-rs/loom#254).
                    requests[device].swap(1, Ordering::SeqCst);
                    if model.state.assert_output(device as u32, 10) == RaiseOutcome::Queue {
                        model.push();
                    }
                })
            })
            .collect();
        // The chain: each device's handler drops its output, then takes
        // its request, so a request made between the two raises the line
        // again.
        let chain = {
            let (requests, served) = (requests.clone(), served.clone());
            move |model: &Model| {
                for device in 0..2 {
                    let _ = model.state.deassert_output(device as u32);
                    if requests[device].swap(0, Ordering::SeqCst) == 1 {
                        served[device].fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        };
        model.dispatch_with(&chain);
        for device in devices {
            device.join().unwrap();
        }
        while model.dispatch_with(&chain) {}

        for device in 0..2 {
            assert_eq!(served[device].load(Ordering::SeqCst), 1, "device {device}");
        }
        let end = model.state.snapshot();
        assert!(!end.pending);
        assert!(!end.queued);
        assert!(!end.in_progress);
    });
}
