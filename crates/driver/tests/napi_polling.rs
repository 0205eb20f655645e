//! NAPI-style polling: budgets, completion, and fewer interrupts under load.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use driver::irq;
use driver::napi::{IrqMask, Napi};
use irq_sim::device::Nic;
use irq_sim::{Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};

mod common;

use common::{HANG_GUARD, wait_until};

/// An interrupt-enable register that records its state.
#[derive(Default)]
struct MockMask {
    masked: AtomicBool,
    masks: AtomicU32,
    unmasks: AtomicU32,
}

impl IrqMask for MockMask {
    fn mask(&self) {
        self.masked.store(true, Ordering::SeqCst);
        self.masks.fetch_add(1, Ordering::SeqCst);
    }

    fn unmask(&self) {
        self.masked.store(false, Ordering::SeqCst);
        self.unmasks.fetch_add(1, Ordering::SeqCst);
    }
}

/// One call of a poll function, as the test saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PollCall {
    handled: usize,
    masked: bool,
    schedule_started_cycle: bool,
}

/// A poll handles at most `budget` events. A poll that used its whole
/// budget is followed by another. Only the poll that handled fewer
/// completes the cycle and unmasks the interrupt.
#[test]
fn poll_respects_budget_and_completes() {
    let queue = wq::alloc_workqueue("napi_budget", wq::WqFlags::NONE, 1);
    let mask = Arc::new(MockMask::default());
    let remaining = Arc::new(AtomicUsize::new(10));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let napi_slot: Arc<OnceLock<Napi>> = Arc::default();
    let napi = {
        let mask = mask.clone();
        let remaining = remaining.clone();
        let calls = calls.clone();
        let napi_slot = napi_slot.clone();
        Napi::new("mock", &queue, 4, mask.clone(), move |budget| {
            let available = remaining.load(Ordering::SeqCst);
            let handled = available.min(budget);
            remaining.fetch_sub(handled, Ordering::SeqCst);
            let napi = napi_slot.get().expect("set before the first schedule");
            calls.lock().unwrap().push(PollCall {
                handled,
                masked: mask.masked.load(Ordering::SeqCst),
                schedule_started_cycle: napi.schedule(),
            });
            handled
        })
    };
    napi_slot.set(napi.clone()).unwrap();

    assert!(napi.schedule(), "an idle context starts a cycle");
    // A cycle is counted as complete just before the unmask.
    wait_until("the cycle completes and unmasks", || {
        napi.stats().completions == 1 && mask.unmasks.load(Ordering::SeqCst) >= 1
    });

    let expected = [4, 4, 2].map(|handled| PollCall {
        handled,
        masked: true,
        schedule_started_cycle: false,
    });
    assert_eq!(*calls.lock().unwrap(), expected);
    assert!(!mask.masked.load(Ordering::SeqCst), "still masked");
    assert_eq!(mask.masks.load(Ordering::SeqCst), 1);
    assert_eq!(mask.unmasks.load(Ordering::SeqCst), 1);
    let stats = napi.stats();
    assert_eq!(stats.polls, 3);
    assert_eq!(stats.full_polls, 2);
    assert_eq!(stats.events, 10);
    assert_eq!(stats.over_budget, 0);
    assert!(!napi.is_scheduled());
}

/// A poll that reports more events than its budget is counted as a driver
/// bug and clamped to the budget, so it is polled again.
#[test]
fn over_budget_poll_clamped() {
    let queue = wq::alloc_workqueue("napi_over", wq::WqFlags::NONE, 1);
    let polls = Arc::new(AtomicU32::new(0));
    let napi = {
        let polls = polls.clone();
        Napi::new(
            "greedy",
            &queue,
            2,
            Arc::new(MockMask::default()),
            move |budget| {
                if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                    budget + 5
                } else {
                    0
                }
            },
        )
    };

    assert!(napi.schedule());
    wait_until("the cycle completes", || napi.stats().completions == 1);

    let stats = napi.stats();
    assert_eq!(stats.over_budget, 1);
    assert_eq!(stats.events, 2);
    assert_eq!(stats.polls, 2);
}

/// While a poll runs, the NIC's interrupt is off: a burst that lands then
/// raises no interrupt and is handled by polls, so 21 packets cost two
/// interrupts, and every packet is accounted for.
#[test]
fn nic_burst_handled_by_polling() {
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap();
    let controller = machine.controller();
    let queue = wq::alloc_workqueue("napi_nic", wq::WqFlags::NONE, 1);
    let nic = Arc::new(Nic::new(&controller, 20, 64).unwrap());
    let processed = Arc::new(AtomicU32::new(0));
    let interrupts = Arc::new(AtomicU32::new(0));
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let waiting_tx = Mutex::new(waiting_tx);
    let polls = AtomicU32::new(0);

    let napi = {
        let nic = nic.clone();
        let processed = processed.clone();
        let gate = gate.clone();
        Napi::new("nic0", &queue, 4, nic.clone(), move |budget| {
            // The first poll of the second cycle waits for the burst.
            if polls.fetch_add(1, Ordering::SeqCst) == 1 {
                let _ = waiting_tx.lock().unwrap().send(());
                let (open, opened) = &*gate;
                let guard = open.lock().unwrap();
                let _ = opened.wait_timeout_while(guard, HANG_GUARD, |open| !*open);
            }
            let mut handled = 0;
            while handled < budget && nic.pop().is_some() {
                handled += 1;
            }
            processed.fetch_add(handled as u32, Ordering::SeqCst);
            handled
        })
    };
    let _registration = {
        let napi = napi.clone();
        let interrupts = interrupts.clone();
        irq::request_irq(
            &controller,
            20,
            IrqRequest::new("nic0", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                interrupts.fetch_add(1, Ordering::SeqCst);
                napi.schedule();
                IrqReturn::Handled
            }),
        )
        .unwrap()
    };

    // A lone packet: one interrupt, one cycle.
    assert!(nic.receive(64, irq_sim::clock::now()));
    wait_until("the first cycle completes", || {
        napi.stats().completions == 1
    });

    // The next packet starts a cycle whose poll waits while a burst lands.
    assert!(nic.receive(64, irq_sim::clock::now()));
    waiting_rx.recv_timeout(HANG_GUARD).expect("the poll waits");
    for _ in 0..20 {
        assert!(nic.receive(64, irq_sim::clock::now()));
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    wait_until("the second cycle completes", || {
        napi.stats().completions == 2
    });

    assert_eq!(interrupts.load(Ordering::SeqCst), 2);
    assert_eq!(processed.load(Ordering::SeqCst), 22);
    assert_eq!(nic.received(), 22);
    assert_eq!(nic.dropped(), 0);
    assert_eq!(nic.ring_len(), 0);
    assert_eq!(napi.stats().full_polls, 5);
}

/// A disabled context starts no cycle; enabling it again does.
#[test]
fn disabled_napi_does_not_schedule() {
    let queue = wq::alloc_workqueue("napi_disable", wq::WqFlags::NONE, 1);
    let mask = Arc::new(MockMask::default());
    let napi = Napi::new("off", &queue, 4, mask.clone(), |_| 0);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(napi.disable()).unwrap();

    assert!(!napi.schedule(), "a disabled context started a cycle");
    assert_eq!(mask.masks.load(Ordering::SeqCst), 0);
    napi.enable();
    assert!(napi.schedule(), "an enabled context did not start a cycle");
    wait_until("the cycle completes and unmasks", || {
        napi.stats().completions == 1 && mask.unmasks.load(Ordering::SeqCst) >= 1
    });
}

/// Disables do not nest: after two, one enable lets the next interrupt
/// start a cycle that polls and unmasks. An enable with no disable before
/// it changes nothing.
#[test]
fn double_disable_one_enable_polls() {
    let queue = wq::alloc_workqueue("napi_disable_twice", wq::WqFlags::NONE, 1);
    let mask = Arc::new(MockMask::default());
    let napi = Napi::new("twice", &queue, 4, mask.clone(), |_| 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    runtime.block_on(napi.disable()).unwrap();
    runtime.block_on(napi.disable()).unwrap();
    napi.enable();

    assert!(napi.schedule(), "an enabled context did not start a cycle");
    wait_until("the cycle completes", || napi.stats().completions == 1);
    assert_eq!(napi.stats().polls, 1);
    assert_eq!(mask.unmasks.load(Ordering::SeqCst), 1);

    // A stray enable: the next cycle runs as before.
    napi.enable();
    assert!(napi.schedule());
    wait_until("the next cycle completes", || napi.stats().completions == 2);
}

/// `synchronize` returns once the whole cycle has ended, through every
/// full poll, where one flush of the poll item waits for one poll only.
#[test]
fn synchronize_waits_for_whole_cycle() {
    let queue = wq::alloc_workqueue("napi_sync", wq::WqFlags::NONE, 1);
    let mask = Arc::new(MockMask::default());
    let remaining = Arc::new(AtomicUsize::new(40));
    let napi = {
        let remaining = remaining.clone();
        Napi::new("sync", &queue, 4, mask.clone(), move |budget| {
            // Each poll takes a while, so a wait that ends after the first
            // poll finds the cycle unfinished.
            irq_sim::clock::spin_until(irq_sim::clock::now() + Duration::from_micros(500));
            let handled = remaining.load(Ordering::SeqCst).min(budget);
            remaining.fetch_sub(handled, Ordering::SeqCst);
            handled
        })
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    assert!(napi.schedule());
    runtime.block_on(napi.synchronize()).unwrap();

    assert!(!napi.is_scheduled(), "the cycle still runs");
    let stats = napi.stats();
    assert_eq!(stats.events, 40);
    // Ten full polls of 4, then one that finds nothing and completes.
    assert_eq!(stats.polls, 11);
    assert_eq!(stats.completions, 1);
    assert!(!mask.masked.load(Ordering::SeqCst));

    // An idle context returns at once, and so does one disabled in a
    // cycle, whose interrupt stays masked until the enable.
    runtime.block_on(napi.synchronize()).unwrap();
    remaining.store(40, Ordering::SeqCst);
    assert!(napi.schedule());
    runtime.block_on(napi.disable()).unwrap();
    let waited =
        runtime.block_on(async { tokio::time::timeout(HANG_GUARD, napi.synchronize()).await });
    assert!(
        waited.is_ok(),
        "synchronize on a disabled context still waits"
    );
}

/// `synchronize` in a top half is rejected through `might_sleep`, naming
/// the NAPI call, the line and the handler.
#[test]
fn synchronize_in_top_half_rejected() {
    let queue = wq::alloc_workqueue("napi_sync_irq", wq::WqFlags::NONE, 1);
    let napi = Napi::new("sync", &queue, 4, Arc::new(MockMask::default()), |_| 0);
    let waiting = {
        let _irq = irq_sim::context::enter_hardirq(9, "eth0");
        napi.synchronize()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let error = runtime.block_on(waiting).unwrap_err().to_string();
    assert!(error.contains("napi_synchronize"), "{error}");
    assert!(error.contains("irq 9"), "{error}");
    assert!(error.contains("eth0"), "{error}");
}
