//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use irq_sim::{Config, Controller, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};

/// Failure guard for waits on real conditions; never reached when the code
/// under test works.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A machine with `nr_cpus` CPUs and the default configuration otherwise.
pub fn machine(nr_cpus: usize) -> Machine {
    Machine::new(Config {
        nr_cpus,
        ..Config::default()
    })
    .expect("valid config")
}

/// Waits until `condition` holds, panicking with `what` after [`TIMEOUT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A handler that holds its CPU until the test opens the gate.
#[derive(Default)]
pub struct Gate {
    entered: AtomicU32,
    inside: AtomicBool,
    open: AtomicBool,
}

impl Gate {
    /// Called from a top half: marks entry and spins until opened.
    pub fn hold(&self) {
        self.inside.store(true, Ordering::SeqCst);
        self.entered.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + TIMEOUT;
        while !self.open.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        self.inside.store(false, Ordering::SeqCst);
    }

    pub fn wait_entered(&self, count: u32) {
        wait_until("the gated handler to be entered", || {
            self.entered.load(Ordering::SeqCst) >= count
        });
    }

    pub fn is_inside(&self) -> bool {
        self.inside.load(Ordering::SeqCst)
    }

    pub fn entered(&self) -> u32 {
        self.entered.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Registers a probe handler on `irq` (routed to `cpu`) that counts calls.
pub fn probe(controller: &Controller, irq: u32, cpu: usize) -> std::sync::Arc<AtomicU32> {
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    controller.set_affinity(irq, cpu).unwrap();
    controller
        .request_irq(
            irq,
            IrqRequest::new(
                "probe",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
    calls
}

/// Raises the probe line and waits for its handler: every delivery queued
/// on the probe's CPU before it at the same or higher priority has run.
pub fn flush_cpu(controller: &Controller, probe_irq: u32, calls: &AtomicU32) {
    let before = calls.load(Ordering::SeqCst);
    let _ = controller.raise(probe_irq).unwrap();
    wait_until("the probe line", || calls.load(Ordering::SeqCst) > before);
}
