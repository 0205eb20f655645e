//! Exercise 5: a top half that claims every interrupt of a shared line.
//!
//! A door sensor and a UART share level line 60, as devices share a PCI
//! INTx line. Each device drives the line through its own output, and the
//! line is high while either asserts it (a wired OR). The controller calls
//! both top halves for every interrupt of the line, so each must ask its
//! own device whether it interrupted, and return `IrqReturn::None` when it
//! did not. That is the kernel's `IRQ_NONE`, which a handler on a shared
//! line must return for another device's interrupt.
//!
//! The door driver below skips that question. It reads the sensor's
//! status register but ignores the answer, and counts a door event on
//! every interrupt, the UART's included. The program opens the door twice
//! and sends three bytes, then compares the events the driver counted with
//! the openings, and fails.
//!
//! Your task: make the door's top half return `IrqReturn::None` when the
//! status register says the sensor did not interrupt.
//! Then run
//!
//! ```sh
//! cargo run --example ex5_shared_claim_all
//! ```
//!
//! until it prints `ok:`. The solution is in
//! `examples/solutions/ex5_shared_claim_all.rs`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use driver::irq;
use driver::printk;
use irq_sim::device::Uart;
use irq_sim::{Config, HardIrqContext, IrqFlags, IrqOutput, IrqRequest, IrqReturn, Machine};

/// The shared line.
const IRQ: u32 = 60;

/// A door sensor: a status bit set when the door opens, and an output
/// that asserts the shared line while the bit is set.
struct DoorSensor {
    status: AtomicBool,
    output: IrqOutput,
}

impl DoorSensor {
    /// Sets the status bit and asserts the output, as the sensor does when
    /// the door opens.
    fn open(&self) {
        self.status.store(true, Ordering::SeqCst);
        let _ = self.output.assert();
    }

    /// Reads the status register, which clears when read, as many
    /// devices' interrupt status registers do: returns true if the sensor
    /// was interrupting. The output is deasserted before the bit is taken,
    /// so that an opening in between asserts it again. The line stays high
    /// while the UART still asserts it.
    fn read_status(&self) -> bool {
        let _ = self.output.deassert();
        self.status.swap(false, Ordering::SeqCst)
    }
}

/// The events of the run, in order: the door opening, or a byte for the
/// UART.
const EVENTS: [Option<u8>; 5] = [None, Some(b'o'), Some(b'k'), None, Some(b'\n')];

fn main() -> ExitCode {
    printk::init_console();
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .expect("the machine starts");
    let controller = machine.controller();
    let uart = Arc::new(Uart::new(&controller, IRQ, 1).expect("line 60 exists"));
    let door = Arc::new(DoorSensor {
        status: AtomicBool::new(false),
        output: controller
            .irq_output(IRQ)
            .expect("line 60 has a free output"),
    });
    let door_events = Arc::new(AtomicU32::new(0));
    let bytes = Arc::new(AtomicU32::new(0));
    // Probe: clear an opening left over from before the driver loaded.
    let _ = door.read_status();

    // EXERCISE: the door's top half reads the sensor's status register but
    // ignores the value it returns, so it claims the UART's interrupts too.
    let door_top_half = {
        let (door, door_events) = (door.clone(), door_events.clone());
        move |_: &mut HardIrqContext<'_>| {
            door.read_status();
            door_events.fetch_add(1, Ordering::SeqCst);
            IrqReturn::Handled
        }
    };

    // The UART's driver is right: it claims an interrupt only when its
    // FIFO had a byte.
    let uart_top_half = {
        let (uart, bytes) = (uart.clone(), bytes.clone());
        move |_: &mut HardIrqContext<'_>| {
            let mut read = 0;
            while uart.read().is_some() {
                read += 1;
            }
            bytes.fetch_add(read, Ordering::SeqCst);
            if read > 0 {
                IrqReturn::Handled
            } else {
                IrqReturn::None
            }
        }
    };

    let shared = IrqFlags::LEVEL.shared();
    let _door = irq::request_irq(
        &controller,
        IRQ,
        IrqRequest::new("door", shared, door_top_half),
    )
    .expect("line 60 takes shared handlers");
    let _uart = irq::request_irq(
        &controller,
        IRQ,
        IrqRequest::new("ttyS2", shared, uart_top_half),
    )
    .expect("line 60 takes shared handlers");

    // One event at a time: each is served, and the line goes quiet,
    // before the next.
    let mut openings = 0;
    for (index, event) in EVENTS.iter().enumerate() {
        match event {
            None => {
                openings += 1;
                door.open();
            }
            Some(byte) => assert!(uart.receive(*byte), "the UART's FIFO has room"),
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = controller.line_state(IRQ).expect("line 60 exists");
            let quiet = !state.pending && !state.in_progress && !state.queued;
            if quiet && controller.line_stats(IRQ).expect("line 60 exists").total() > index as u64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "event {index} not served in 30 s"
            );
            std::thread::yield_now();
        }
    }

    let stats = controller.line_stats(IRQ).expect("line 60 exists");
    let claims: Vec<String> = stats
        .handlers
        .iter()
        .zip(&stats.claimed_by)
        .map(|(handler, claimed)| format!("{handler} ({claimed})"))
        .collect();
    println!(
        "irq {IRQ}: {} interrupts, claimed by {}",
        stats.total(),
        claims.join(", ")
    );
    let counted = door_events.load(Ordering::SeqCst);
    if counted != openings {
        println!(
            "FAIL: the door driver counted {counted} door events, but the door opened \
             {openings} times; on a shared line, return IrqReturn::None when your device \
             did not interrupt"
        );
        return ExitCode::FAILURE;
    }
    println!(
        "ok: {openings} door events and {} bytes in {} interrupts",
        bytes.load(Ordering::SeqCst),
        stats.total()
    );
    ExitCode::SUCCESS
}
