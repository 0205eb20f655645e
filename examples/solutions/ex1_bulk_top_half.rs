//! Solution of exercise 1: the top half only queues a work item, and the
//! work item checksums the buffer in task context, on `system_long_wq`,
//! where it may take as long as it needs.
//!
//! ```sh
//! cargo run --example ex1_bulk_top_half_solution
//! ```

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
use wq::Work;

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

    // The bottom half. A CRC of 256 KiB computes for milliseconds,
    // so it goes on `system_long_wq`, whose synchronous work functions run
    // on blocking threads instead of holding a tokio worker.
    let checksum_work = {
        let sensor = sensor.clone();
        Work::from_fn("sensor_checksum", move || {
            let sum = checksum(&sensor.samples);
            sensor.checksum.store(sum, Ordering::Relaxed);
        })
    };
    // Start the system workqueues now, in task context, so that the first
    // queueing from the top half finds their workers running.
    let long_wq = wq::system_long_wq();

    // The top half: only defer; the sensor has no status to clear.
    // Queueing never sleeps and does not allocate.
    let top_half = move |_: &mut HardIrqContext<'_>| {
        let _ = wq::queue_work(long_wq, &checksum_work);
        IrqReturn::Handled
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
