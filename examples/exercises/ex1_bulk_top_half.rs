//! Exercise 1: a top half that does its bulk work inline.
//!
//! A sensor fills a 256 KiB sample buffer and raises its edge line. The top
//! half below checksums the whole buffer before it returns. That work takes
//! milliseconds of CPU time, far over the line's 100 us budget, so the
//! budget check reports the handler and this program fails.
//!
//! Your task: keep the top half short. Move the checksum to a work item,
//! and make the top half only queue that item and return
//! `IrqReturn::Handled`. The sensor here has no status register to clear,
//! so queueing is all the top half has to do. Then run
//!
//! ```sh
//! cargo run --example ex1_bulk_top_half
//! ```
//!
//! until it prints `ok:`. The solution is in
//! `examples/solutions/ex1_bulk_top_half.rs`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use driver::irq;
use driver::printk;
use irq_sim::{
    Budget, Config, CpuTimeAccounting, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine,
    OverrunPolicy,
};

/// The sensor's IRQ line.
const IRQ: u32 = 40;

/// Size of one sample buffer.
const SAMPLES: usize = 256 * 1024;

/// Returns the CRC-32 (IEEE 802.3) of `samples`, bit by bit: the bulk work
/// of one interrupt, milliseconds of CPU time even in a release build.
fn checksum(samples: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in samples {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The driver's state, shared by its top half and its bottom half.
struct Sensor {
    samples: Vec<u8>,
    /// The last checksum, 0 until one was computed.
    checksum: AtomicU32,
}

fn main() -> ExitCode {
    printk::init_console();
    let machine = Machine::new(Config {
        nr_cpus: 1,
        cpu_time: CpuTimeAccounting::PerCall,
        ..Config::default()
    })
    .expect("the machine starts");
    let controller = machine.controller();
    let sensor = Arc::new(Sensor {
        samples: (0..SAMPLES).map(|index| (index % 251) as u8).collect(),
        checksum: AtomicU32::new(0),
    });

    // EXERCISE: this top half runs in hard-IRQ context and checksums the
    // whole buffer before it returns. Move that work to a bottom half.
    let top_half = {
        let sensor = sensor.clone();
        move |_: &mut HardIrqContext<'_>| {
            let sum = checksum(&sensor.samples);
            sensor.checksum.store(sum, Ordering::Relaxed);
            IrqReturn::Handled
        }
    };

    let registration = irq::request_irq(
        &controller,
        IRQ,
        IrqRequest::new("sensor", IrqFlags::EDGE, top_half),
    )
    .expect("line 40 is free");
    // Fail: an overrun disables the line and is recorded in the machine's
    // shutdown report.
    controller
        .set_budget(
            IRQ,
            Budget {
                limit: Duration::from_micros(100),
                policy: OverrunPolicy::Fail,
            },
        )
        .expect("line 40 exists");

    // One interrupt, then wait until its checksum is known.
    let _ = controller.raise(IRQ).expect("line 40 exists");
    let expected = checksum(&sensor.samples);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sensor.checksum.load(Ordering::Relaxed) != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "no checksum within 30 s"
        );
        std::thread::yield_now();
    }
    drop(registration);
    // Milliseconds of computing on a system queue other than system_long_wq
    // hold one of the few tokio workers that every driver shares: such work
    // belongs on system_long_wq, whose synchronous work runs on blocking
    // threads.
    let shared_worker_queue = [
        ("system_wq", wq::system_wq()),
        ("system_highpri_wq", wq::system_highpri_wq()),
        ("system_unbound_wq", wq::system_unbound_wq()),
    ]
    .into_iter()
    .find(|(_, queue)| queue.stats().executed > 0)
    .map(|(name, _)| name);

    let report = machine.shutdown();
    match report.violations.first() {
        Some(violation) => {
            println!("FAIL: {violation}");
            ExitCode::FAILURE
        }
        None if let Some(queue) = shared_worker_queue => {
            println!(
                "FAIL: the checksum ran on {queue}, whose few workers every driver \
                 shares; queue work that computes for milliseconds on system_long_wq"
            );
            ExitCode::FAILURE
        }
        None => {
            println!("ok: the checksum is {expected} and the top half kept its budget");
            ExitCode::SUCCESS
        }
    }
}
