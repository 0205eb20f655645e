//! A UART and a device model of a user's own on one shared level line,
//! driven through `IrqOutput`s as docs/drivers.md describes.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{TIMEOUT, machine, wait_until};
use irq_sim::device::{UART_FIFO_SIZE, Uart, lock_registers};
use irq_sim::line_state::MAX_OUTPUTS;
use irq_sim::{
    Config, Controller, DeviceError, HandlerId, HardIrqContext, IrqFlags, IrqOutput, IrqRequest,
    IrqReturn, LineError, Machine, RaiseOutcome, SpuriousConfig,
};

const LINE: u32 = 21;

/// A PCI-style device: a status register counting completions, cleared by
/// a read, and an output asserted while the register is not zero.
struct StatusDevice {
    /// The status register, under the device's own mutex so that the
    /// output follows it exactly. Its top half takes the mutex with
    /// `lock_registers`, as the shipped models do.
    status: Mutex<u64>,
    output: IrqOutput,
}

impl StatusDevice {
    fn new(controller: &Controller, irq: u32) -> Result<Self, LineError> {
        Ok(Self {
            status: Mutex::new(0),
            output: controller.irq_output(irq)?,
        })
    }

    /// Completes one request: sets the status and asserts the output.
    fn complete(&self) {
        let mut status = lock_registers(&self.status);
        *status += 1;
        let _ = self.output.assert();
    }

    /// Reads and clears the status register, which deasserts the output.
    fn read_clear(&self) -> u64 {
        let mut status = lock_registers(&self.status);
        let events = std::mem::take(&mut *status);
        let _ = self.output.deassert();
        events
    }
}

/// Requests the status device's handler, which counts what it serves.
fn request_status(
    irq: &Controller,
    device: &Arc<StatusDevice>,
    served: &Arc<AtomicU64>,
) -> HandlerId {
    let (device, served) = (device.clone(), served.clone());
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "status-dev",
            IrqFlags::LEVEL.shared(),
            move |_: &mut HardIrqContext<'_>| {
                let events = device.read_clear();
                if events == 0 {
                    return IrqReturn::None;
                }
                served.fetch_add(events, Ordering::SeqCst);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap()
}

/// Requests the UART's handler, which drains the FIFO.
fn request_uart(irq: &Controller, uart: &Arc<Uart>, read: &Arc<AtomicU64>) -> HandlerId {
    let (uart, read) = (uart.clone(), read.clone());
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "ttyS1",
            IrqFlags::LEVEL.shared(),
            move |_: &mut HardIrqContext<'_>| {
                let mut bytes = 0;
                while uart.read().is_some() {
                    bytes += 1;
                }
                if bytes == 0 {
                    return IrqReturn::None;
                }
                read.fetch_add(bytes, Ordering::SeqCst);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap()
}

/// Requests a handler on `LINE` that counts its calls and returns `ret`;
/// returns the count.
fn request_counting(
    irq: &Controller,
    name: &'static str,
    flags: IrqFlags,
    ret: IrqReturn,
) -> Arc<AtomicU32> {
    let calls = Arc::new(AtomicU32::new(0));
    let count = calls.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(name, flags, move |_: &mut HardIrqContext<'_>| {
            count.fetch_add(1, Ordering::SeqCst);
            ret
        }),
    )
    .unwrap();
    calls
}

/// Two feeders load both devices at once: every request is served, the
/// line ends low and its counters add up.
#[test]
fn shared_level_loses_no_request() {
    const COMPLETIONS: u64 = 2000;
    const BYTES: u64 = 2000;
    let machine = machine(2);
    let irq = machine.controller();
    let uart = Arc::new(Uart::new(&irq, LINE, 1).unwrap());
    let device = Arc::new(StatusDevice::new(&irq, LINE).unwrap());
    let (served, read) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    request_status(&irq, &device, &served);
    request_uart(&irq, &uart, &read);

    let feeder = device.clone();
    let completions = thread::spawn(move || {
        for _ in 0..COMPLETIONS {
            feeder.complete();
        }
    });
    let line = uart.clone();
    let bytes = thread::spawn(move || {
        for byte in 0..BYTES {
            // Only this thread fills the FIFO, so a free slot stays free.
            wait_until("room in the FIFO", || line.fifo_len() < UART_FIFO_SIZE);
            assert!(line.receive(byte as u8));
        }
    });
    completions.join().unwrap();
    bytes.join().unwrap();

    wait_until("every request to be served", || {
        served.load(Ordering::SeqCst) == COMPLETIONS && read.load(Ordering::SeqCst) == BYTES
    });
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    assert_eq!(uart.overruns(), 0);
    assert!(!irq.line_state(LINE).unwrap().pending, "the line ends low");
    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.raised, COMPLETIONS + BYTES, "one assert per request");
    assert!(stats.already_asserted < stats.raised);
    assert_eq!(stats.coalesced, 0, "a level line coalesces nothing");
    assert_eq!(stats.handled + stats.unhandled, stats.total());
    assert_eq!(stats.unhandled, 0, "the outputs follow the registers");
    assert_eq!(stats.skipped, 0, "only top halves deassert");
    assert_eq!(stats.handlers, ["status-dev", "ttyS1"]);
    let claimed: u64 = stats.claimed_by.iter().sum();
    assert!(claimed >= stats.handled, "{stats:?}");
    assert!(stats.claimed_by.iter().all(|&claims| claims > 0));
    let report = machine.shutdown();
    assert!(report.is_clean(), "{report:?}");
}

/// A request made before any handler is requested fires at the first
/// `request_irq`, as an asserted level line does when Linux starts it.
#[test]
fn shared_level_assert_before_request() {
    let machine = machine(1);
    let irq = machine.controller();
    let device = Arc::new(StatusDevice::new(&irq, LINE).unwrap());
    device.complete();
    assert!(irq.line_state(LINE).unwrap().pending);

    let served = Arc::new(AtomicU64::new(0));
    request_status(&irq, &device, &served);
    wait_until("the early request", || served.load(Ordering::SeqCst) == 1);
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    assert!(!irq.line_state(LINE).unwrap().pending);
    assert!(machine.shutdown().is_clean());
}

/// Freeing one sharer while the other device asserts leaves the other's
/// requests delivered.
#[test]
fn shared_level_free_one_sharer() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::new(&irq, LINE, 1).unwrap());
    let device = Arc::new(StatusDevice::new(&irq, LINE).unwrap());
    let (served, read) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let status_id = request_status(&irq, &device, &served);
    request_uart(&irq, &uart, &read);

    // The UART asserts while the other handler is freed.
    let line = uart.clone();
    let feeder = thread::spawn(move || {
        for byte in 0..200u32 {
            wait_until("room in the FIFO", || line.fifo_len() < UART_FIFO_SIZE);
            assert!(line.receive(byte as u8));
        }
    });
    irq.free_irq(status_id).unwrap();
    feeder.join().unwrap();
    wait_until("every byte", || read.load(Ordering::SeqCst) == 200);
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    assert_eq!(irq.line_stats(LINE).unwrap().handlers, ["ttyS1"]);
    assert!(!irq.line_state(LINE).unwrap().pending);

    drop(uart);
    assert!(machine.shutdown().is_clean());
}

/// Requests made while the line is disabled are delivered by the enable,
/// and each device's handler serves its own request.
#[test]
fn shared_level_disable_enable() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::new(&irq, LINE, 1).unwrap());
    let device = Arc::new(StatusDevice::new(&irq, LINE).unwrap());
    let (served, read) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    request_status(&irq, &device, &served);
    request_uart(&irq, &uart, &read);

    assert_eq!(irq.disable_irq(LINE).unwrap(), 1);
    assert_eq!(irq.disable_irq(LINE).unwrap(), 2);
    device.complete();
    assert!(uart.receive(b'a'));
    assert!(irq.line_state(LINE).unwrap().pending);
    let error = irq.wait_delivered(LINE, TIMEOUT);
    assert!(
        matches!(error, Err(LineError::Undeliverable { irq: LINE, .. })),
        "{error:?}"
    );
    irq.enable_irq(LINE).unwrap();
    assert_eq!(irq.line_stats(LINE).unwrap().total(), 0, "still depth 1");
    irq.enable_irq(LINE).unwrap();
    wait_until("both requests", || {
        served.load(Ordering::SeqCst) == 1 && read.load(Ordering::SeqCst) == 1
    });
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.total(), 1, "one delivery serves both");
    assert_eq!(stats.already_asserted, 1);
    drop(uart);
    assert!(machine.shutdown().is_clean());
}

/// An output dropped while it asserts the line deasserts it: a delivery
/// already queued is skipped, and the freed place is handed out low.
#[test]
fn shared_level_drop_asserted_output() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = request_counting(&irq, "counter", IrqFlags::LEVEL.shared(), IrqReturn::None);
    irq.disable_irq(LINE).unwrap();
    let output = irq.irq_output(LINE).unwrap();
    assert_eq!(output.assert(), RaiseOutcome::Latched);
    drop(output);
    assert!(!irq.line_state(LINE).unwrap().pending);
    irq.enable_irq(LINE).unwrap();
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let again = irq.irq_output(LINE).unwrap();
    assert!(!again.is_asserted());
    drop(again);
    assert!(machine.shutdown().is_clean());
}

/// A seventh output is rejected, for an output taken directly and for a
/// UART, with the line and the limit named.
#[test]
fn shared_level_seventh_output() {
    let machine = machine(1);
    let irq = machine.controller();
    let outputs: Vec<_> = (0..MAX_OUTPUTS)
        .map(|_| irq.irq_output(LINE).unwrap())
        .collect();
    assert_eq!(
        irq.irq_output(LINE).unwrap_err(),
        LineError::NoFreeOutput {
            irq: LINE,
            max: MAX_OUTPUTS
        }
    );
    let error = Uart::new(&irq, LINE, 1).unwrap_err();
    assert!(
        matches!(error, DeviceError::NoFreeOutput { irq: LINE, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("irq 21"), "{message}");
    assert!(message.contains('6'), "{message}");
    drop(outputs);
    assert!(Uart::new(&irq, LINE, 1).is_ok());
    assert!(machine.shutdown().is_clean());
}

/// On an edge line the wired OR makes an edge only when it rises: a second
/// device asserting while the first keeps it high is not delivered.
#[test]
fn shared_edge_outputs_rise_once() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = request_counting(&irq, "edge", IrqFlags::EDGE.shared(), IrqReturn::Handled);
    let first = irq.irq_output(LINE).unwrap();
    let second = irq.irq_output(LINE).unwrap();
    irq.disable_irq(LINE).unwrap();
    assert_eq!(first.assert(), RaiseOutcome::Latched);
    assert_eq!(second.assert(), RaiseOutcome::AlreadyAsserted);
    irq.enable_irq(LINE).unwrap();
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.already_asserted, 1, "{stats:?}");
    assert_eq!(stats.coalesced, 0, "{stats:?}");
    drop((first, second));
    assert!(machine.shutdown().is_clean());
}

/// `synchronize_irq` does not wait for a delivery still queued, so a
/// handler that is mid-run when it is called has finished when it returns.
#[test]
fn shared_level_synchronize_waits_running() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(common::Gate::default());
    let device = Arc::new(StatusDevice::new(&irq, LINE).unwrap());
    let (held, served) = (gate.clone(), Arc::new(AtomicU64::new(0)));
    let (claimer, counter) = (device.clone(), served.clone());
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "gated",
            IrqFlags::LEVEL.shared(),
            move |_: &mut HardIrqContext<'_>| {
                held.hold();
                counter.fetch_add(claimer.read_clear(), Ordering::SeqCst);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    device.complete();
    gate.wait_entered(1);

    // The delay only makes it likely that synchronize_irq waits for the
    // run, and the check below is true either way.
    let opener = gate.clone();
    let open = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        opener.open();
    });
    irq.synchronize_irq(LINE).unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 1, "the run has finished");

    open.join().unwrap();
    assert!(machine.shutdown().is_clean());
}

/// An output left asserted that no handler claims is a screaming line:
/// spurious detection disables it and polls it, and the polls still
/// serve the other device on the line.
#[test]
fn shared_level_nobody_cared() {
    let machine = Machine::new(Config {
        nr_cpus: 1,
        spurious: SpuriousConfig {
            window: 200,
            threshold: 199,
            quiet: Duration::from_secs(10),
            poll_interval: Duration::from_millis(5),
        },
        ..Config::default()
    })
    .unwrap();
    let irq = machine.controller();
    let device = Arc::new(StatusDevice::new(&irq, LINE).unwrap());
    let served = Arc::new(AtomicU64::new(0));
    request_status(&irq, &device, &served);
    // A device with no driver keeps the line high.
    let stuck = irq.irq_output(LINE).unwrap();
    let _ = stuck.assert();
    wait_until("the line to be disabled as spurious", || {
        irq.line_stats(LINE).unwrap().spurious
    });
    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.spurious_disables, 1);
    assert!(stats.unhandled >= 199, "{stats:?}");

    // The polls still serve the claimed device while the line is off.
    device.complete();
    wait_until("a poll to serve the device", || {
        served.load(Ordering::SeqCst) == 1
    });
    drop(stuck);
    irq.enable_irq(LINE).unwrap();
    device.complete();
    wait_until("a delivery after enable", || {
        served.load(Ordering::SeqCst) == 2
    });
    assert!(!irq.line_stats(LINE).unwrap().spurious);
    assert!(machine.shutdown().is_clean());
}
