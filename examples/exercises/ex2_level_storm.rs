//! Exercise 2: a level interrupt that the top half never clears.
//!
//! A temperature sensor keeps its level line high while its interrupt
//! status bit is set. Reading the data register hands over the sample but
//! does not clear the status bit: only a write to the status register
//! (`ack`) does, and only then does the line go low. The top half below
//! reads the sample and forgets the acknowledgement. The line stays high,
//! the controller delivers it again and again, and the top half finds no
//! new sample and returns `IrqReturn::None` each time. After 999 unhandled
//! interrupts of 1,000, irq-sim's spurious detector ("nobody cared")
//! disables the line, and this program fails.
//!
//! Your task: clear the device in the top half, as a real driver must. Then
//! run
//!
//! ```sh
//! cargo run --example ex2_level_storm
//! ```
//!
//! until it prints `ok:`. The solution is in
//! `examples/solutions/ex2_level_storm.rs`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use driver::irq;
use driver::printk;
use irq_sim::{
    Config, Controller, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine, SpuriousConfig,
};

/// The sensor's IRQ line.
const IRQ: u32 = 50;

/// Samples the sensor produces.
const SAMPLES: u32 = 3;

/// A sensor with a data register and an interrupt status bit that drives a
/// level line.
struct TempSensor {
    controller: Controller,
    /// The last sample; reading it clears `fresh`.
    sample: AtomicU32,
    /// A sample waits in the data register.
    fresh: AtomicBool,
}

impl TempSensor {
    /// Latches `value` as a new sample, sets the status bit and raises the
    /// line, as the device does when it measures.
    fn measure(&self, value: u32) {
        self.sample.store(value, Ordering::SeqCst);
        self.fresh.store(true, Ordering::SeqCst);
        let _ = self.controller.raise(IRQ).expect("line 50 exists");
    }

    /// Reads the data register: the sample, if a fresh one waits.
    fn read_sample(&self) -> Option<u32> {
        self.fresh
            .swap(false, Ordering::SeqCst)
            .then(|| self.sample.load(Ordering::SeqCst))
    }

    /// Writes the status register: clears the interrupt, so the line goes
    /// low.
    fn ack(&self) {
        self.controller.lower(IRQ).expect("line 50 exists");
    }
}

fn main() -> ExitCode {
    printk::init_console();
    let machine = Machine::new(Config {
        nr_cpus: 1,
        // Linux disables a line after 99,900 unhandled interrupts of
        // 100,000; the same ratio on a smaller window trips sooner.
        spurious: SpuriousConfig {
            window: 1_000,
            threshold: 999,
            poll_interval: Duration::from_secs(3600),
            ..SpuriousConfig::default()
        },
        ..Config::default()
    })
    .expect("the machine starts");
    let controller = machine.controller();
    let sensor = Arc::new(TempSensor {
        controller: controller.clone(),
        sample: AtomicU32::new(0),
        fresh: AtomicBool::new(false),
    });
    let received = Arc::new(AtomicU32::new(0));
    // Probe: clear an interrupt left over from before the driver loaded.
    sensor.ack();

    // EXERCISE: the top half takes the sample but never clears the
    // device's interrupt, so the level line stays high.
    let top_half = {
        let (sensor, received) = (sensor.clone(), received.clone());
        move |_: &mut HardIrqContext<'_>| {
            let Some(_celsius) = sensor.read_sample() else {
                return IrqReturn::None;
            };
            received.fetch_add(1, Ordering::SeqCst);
            IrqReturn::Handled
        }
    };

    let _registration = irq::request_irq(
        &controller,
        IRQ,
        IrqRequest::new("temp_sensor", IrqFlags::LEVEL, top_half),
    )
    .expect("line 50 is free");

    // Each sample must be taken, and the line must go quiet (low, nothing
    // pending), before the next one. A line disabled as spurious ends the
    // run.
    for value in 0..SAMPLES {
        sensor.measure(20 + value);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = controller.line_state(IRQ).expect("line 50 exists");
            if state.spurious {
                let stats = controller.line_stats(IRQ).expect("line 50 exists");
                println!(
                    "FAIL: irq {IRQ} was disabled as spurious after {} interrupts \
                     (samples taken: {}); clear the device in the top half",
                    stats.total(),
                    received.load(Ordering::SeqCst)
                );
                return ExitCode::FAILURE;
            }
            let quiet = !state.pending && !state.in_progress && !state.queued;
            if quiet && received.load(Ordering::SeqCst) == value + 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sample {value} not taken in 30 s"
            );
            std::thread::yield_now();
        }
    }

    let stats = controller.line_stats(IRQ).expect("line 50 exists");
    println!(
        "ok: {} samples in {} interrupts",
        received.load(Ordering::SeqCst),
        stats.total()
    );
    ExitCode::SUCCESS
}
