//! Device models: NIC, UART, block device, GPIO button.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{machine, wait_until};
use irq_sim::clock;
use irq_sim::device::{
    BlockDevice, BlockRequestError, GpioButton, MAX_BAUD, MAX_BOUNCES, MAX_QUEUE_DEPTH,
    MAX_RX_RING, MIN_BAUD, Nic, UART_FIFO_SIZE, Uart,
};
use irq_sim::{DeviceError, HardIrqContext, IrqFlags, IrqRequest, IrqReturn};

/// A NIC drops and counts packets that find its RX ring full, and their
/// sequence numbers leave a gap. Enabling its interrupt with packets
/// waiting raises the line.
#[test]
fn nic_ring_drops_when_full() {
    let machine = machine(1);
    let irq = machine.controller();
    let nic = Arc::new(Nic::new(&irq, 11, 4).unwrap());
    let popped = Arc::new(Mutex::new(Vec::new()));
    let (device, seen) = (nic.clone(), popped.clone());
    irq.request_irq(
        11,
        IrqRequest::new("eth0", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            while let Some(packet) = device.pop() {
                seen.lock().unwrap().push(packet.seq);
            }
            IrqReturn::Handled
        }),
    )
    .unwrap();

    nic.set_irq_enabled(false);
    let accepted = (0..10).filter(|_| nic.receive(64, clock::now())).count();
    assert_eq!(accepted, 4);
    assert_eq!(nic.dropped(), 6);
    assert_eq!(nic.ring_len(), 4);

    nic.set_irq_enabled(true);
    wait_until("the ring to drain", || popped.lock().unwrap().len() == 4);
    assert_eq!(*popped.lock().unwrap(), [0, 1, 2, 3]);
    assert!(nic.receive(64, clock::now()));
    wait_until("the next packet", || popped.lock().unwrap().len() == 5);
    assert_eq!(nic.received(), 5);
    // The six drops took sequence numbers 4 to 9, so the gap shows them.
    assert_eq!(popped.lock().unwrap()[4], 10);
}

/// A UART's FIFO holds 16 bytes; more while the line is masked are
/// overruns. Its level line fires again until the FIFO is drained.
#[test]
fn uart_fifo_overruns_and_level() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::new(&irq, 4, 1).unwrap());
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let (device, seen) = (uart.clone(), bytes.clone());
    irq.request_irq(
        4,
        IrqRequest::new(
            "ttyS0",
            IrqFlags::LEVEL,
            move |_: &mut HardIrqContext<'_>| {
                // One byte per interrupt: the level line re-fires for the rest.
                if let Some(byte) = device.read() {
                    seen.lock().unwrap().push(byte);
                }
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    irq.mask_irq(4).unwrap();
    let accepted = (0..20u8).filter(|&byte| uart.receive(byte)).count();
    assert_eq!(accepted, UART_FIFO_SIZE);
    assert_eq!(uart.overruns(), 4);

    irq.unmask_irq(4).unwrap();
    wait_until("the FIFO to drain", || {
        bytes.lock().unwrap().len() == UART_FIFO_SIZE
    });
    irq.synchronize_irq(4).unwrap();
    assert_eq!(*bytes.lock().unwrap(), (0..16u8).collect::<Vec<_>>());
    assert_eq!(uart.fifo_len(), 0);
    assert!(!irq.line_state(4).unwrap().pending);
    assert_eq!(irq.line_stats(4).unwrap().handled, 16);
}

/// A UART sharing a level line drops only its own output when its FIFO is
/// read, so a request another device makes while the chain runs is
/// delivered, as on a wired OR.
#[test]
fn uart_on_shared_level_line_keeps_other_request() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::new(&irq, 5, 1).unwrap());
    let other = irq.irq_output(5).unwrap();
    let pending = Arc::new(AtomicU32::new(0));
    let served = Arc::new(AtomicU32::new(0));
    let first_call = Arc::new(AtomicBool::new(true));
    let (requests, done, first) = (pending.clone(), served.clone(), first_call.clone());
    // The other device's handler runs first in the chain. On its first
    // call it finds no request of its own, and its device makes one just
    // after that check, while the chain goes on to the UART.
    irq.request_irq(
        5,
        IrqRequest::new(
            "other",
            IrqFlags::LEVEL.shared(),
            move |_: &mut HardIrqContext<'_>| {
                let _ = other.deassert();
                let mine = requests.swap(0, Ordering::SeqCst);
                if mine > 0 {
                    done.fetch_add(mine, Ordering::SeqCst);
                    return IrqReturn::Handled;
                }
                if first.swap(false, Ordering::SeqCst) {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let _ = other.assert();
                }
                IrqReturn::None
            },
        ),
    )
    .unwrap();
    let device = uart.clone();
    irq.request_irq(
        5,
        IrqRequest::new(
            "ttyS0",
            IrqFlags::LEVEL.shared(),
            move |_: &mut HardIrqContext<'_>| {
                let mut read = false;
                while device.read().is_some() {
                    read = true;
                }
                if read {
                    IrqReturn::Handled
                } else {
                    IrqReturn::None
                }
            },
        ),
    )
    .unwrap();

    assert!(uart.receive(b'x'));
    wait_until("the other device's request", || {
        served.load(Ordering::SeqCst) == 1
    });
    assert!(!first_call.load(Ordering::SeqCst));
    assert_eq!(pending.load(Ordering::SeqCst), 0);
    irq.synchronize_irq(5).unwrap();
    assert!(!irq.line_state(5).unwrap().pending);
}

/// A UART with a baud rate delivers bytes below its trigger level once they
/// have sat four character times unread, and each read clears the timeout.
#[test]
fn uart_char_timeout_delivers_tail() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::with_baud(&irq, 4, 8, 115_200).unwrap());
    let timeout = uart.char_timeout().unwrap();
    assert_eq!(timeout, Duration::from_nanos(347_222));
    // The entry and exit time of each call.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let (device, seen, timed) = (uart.clone(), bytes.clone(), calls.clone());
    irq.request_irq(
        4,
        IrqRequest::new(
            "ttyS0",
            IrqFlags::LEVEL,
            move |_: &mut HardIrqContext<'_>| {
                let entered = clock::now();
                let mut seen = seen.lock().unwrap();
                while let Some(byte) = device.read() {
                    seen.push(byte);
                }
                timed.lock().unwrap().push((entered, clock::now()));
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    for round in 1..=2u8 {
        let timeouts_before = uart.timeouts();
        let calls_before = calls.lock().unwrap().len();
        let first = clock::now();
        for byte in 0..4 {
            assert!(uart.receive(round * 10 + byte));
        }
        let before_last = clock::now();
        assert!(uart.receive(round * 10 + 4));
        let burst = clock::now().saturating_since(first);
        wait_until("the timeout to deliver the bytes", || {
            bytes.lock().unwrap().len() == 5 * usize::from(round)
        });
        irq.wait_delivered(4, Duration::from_secs(10)).unwrap();
        let round_calls = calls.lock().unwrap()[calls_before..].to_vec();
        let (entered, _) = *round_calls.last().unwrap();
        assert!(
            entered >= before_last + timeout,
            "round {round}: the top half ran {:?} after the last byte, before the timeout",
            entered.saturating_since(before_last)
        );
        // A pause longer than the timeout, of the test thread between two
        // bytes or of the CPU thread between two reads, leaves bytes unread
        // that long, and they get a timeout of their own.
        let paused = burst >= timeout
            || round_calls
                .iter()
                .any(|(entered, left)| left.saturating_since(*entered) >= timeout);
        let timeouts = uart.timeouts() - timeouts_before;
        if !paused {
            assert_eq!(timeouts, 1, "round {round}");
        } else {
            assert!(timeouts >= 1, "round {round}");
        }
        assert_eq!(uart.fifo_len(), 0);
        assert!(!irq.line_state(4).unwrap().pending);
    }
    let expected: Vec<u8> = [10, 11, 12, 13, 14, 20, 21, 22, 23, 24].into();
    assert_eq!(*bytes.lock().unwrap(), expected);
}

/// Bytes that reach the trigger level raise the line at once, with no
/// character timeout.
#[test]
fn uart_trigger_level_raises_without_timeout() {
    let machine = machine(1);
    let irq = machine.controller();
    // 50 baud: a timeout would take 0.8 s, far longer than the drain.
    let uart = Arc::new(Uart::with_baud(&irq, 4, 8, 50).unwrap());
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let (device, seen) = (uart.clone(), bytes.clone());
    irq.request_irq(
        4,
        IrqRequest::new(
            "ttyS0",
            IrqFlags::LEVEL,
            move |_: &mut HardIrqContext<'_>| {
                let mut seen = seen.lock().unwrap();
                while let Some(byte) = device.read() {
                    seen.push(byte);
                }
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    for byte in 0..8 {
        assert!(uart.receive(byte));
    }
    wait_until("the trigger level to deliver the bytes", || {
        bytes.lock().unwrap().len() == 8
    });
    irq.wait_delivered(4, Duration::from_secs(10)).unwrap();
    assert_eq!(uart.timeouts(), 0);
    assert_eq!(irq.line_stats(4).unwrap().handled, 1);
}

/// A block device completes each request one service time after the
/// previous one and raises its line; a full queue is an error.
#[test]
fn block_device_completes_in_order() {
    let machine = machine(1);
    let irq = machine.controller();
    let service = Duration::from_millis(50);
    let disk = Arc::new(BlockDevice::new(&irq, 14, service, 3).unwrap());
    let done = Arc::new(Mutex::new(Vec::new()));
    let (device, seen) = (disk.clone(), done.clone());
    irq.request_irq(
        14,
        IrqRequest::new("sda", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            // Completions that land together share one interrupt.
            while let Some(completion) = device.take_completion() {
                seen.lock().unwrap().push(completion);
            }
            IrqReturn::Handled
        }),
    )
    .unwrap();

    // A request keeps its slot until the top half takes its completion, so
    // with the line disabled no slot frees, however slow the test thread.
    irq.disable_irq(14).unwrap();
    let ids: Vec<u64> = (0..3)
        .map(|sector| disk.submit(sector * 8).unwrap())
        .collect();
    assert_eq!(
        disk.submit(99),
        Err(BlockRequestError::QueueFull { irq: 14, depth: 3 })
    );
    irq.enable_irq(14).unwrap();
    wait_until("three completions", || done.lock().unwrap().len() == 3);

    let completions = done.lock().unwrap().clone();
    assert_eq!(completions.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    assert!(
        completions[0]
            .completed
            .saturating_since(completions[0].submitted)
            >= service
    );
    assert!(
        completions[2]
            .completed
            .saturating_since(completions[0].submitted)
            >= service * 3
    );
    assert_eq!(disk.completions(), 3);
    assert!(disk.submit(1).is_ok());
}

/// A bouncing button raises an odd number of edges per press, the same
/// ones for the same seed; every edge is either delivered or coalesced.
#[test]
fn gpio_button_bounces() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    irq.request_irq(
        3,
        IrqRequest::new(
            "button",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                counter.fetch_add(1, Ordering::SeqCst);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let button = GpioButton::new(&irq, 3, 4, Duration::from_micros(20), 7).unwrap();
    let twin = GpioButton::new(&irq, 3, 4, Duration::from_micros(20), 7).unwrap();
    let mut edges = 0;
    for _ in 0..5 {
        let pressed = button.press().unwrap();
        assert_eq!(pressed % 2, 1);
        assert!(pressed <= 9);
        assert!(button.is_pressed());
        assert_eq!(twin.press().unwrap(), pressed);
        let released = button.release().unwrap();
        assert!(!button.is_pressed());
        assert_eq!(twin.release().unwrap(), released);
        edges += 2 * u64::from(pressed + released);
    }
    assert_eq!(button.edges() + twin.edges(), edges);

    // An edge latched while the top half ran is delivered after it.
    irq.wait_delivered(3, Duration::from_secs(10)).unwrap();
    let stats = irq.line_stats(3).unwrap();
    assert_eq!(stats.total() + stats.coalesced, edges);
    assert_eq!(u64::from(calls.load(Ordering::SeqCst)), stats.total());
}

/// A size or count a model cannot honour is an error naming the device,
/// the parameter and its range, not a silent clamp.
#[test]
fn device_parameters_out_of_range_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    let error = GpioButton::new(&irq, 3, u32::MAX, Duration::ZERO, 1).unwrap_err();
    assert_eq!(
        error.to_string(),
        "GPIO button on irq 3: max_bounces 4294967295 is out of range; it must be 0 to 1000"
    );
    let button = GpioButton::new(&irq, 3, MAX_BOUNCES, Duration::ZERO, 1).unwrap();
    let toggles = button.press().unwrap();
    assert!(toggles <= 1 + 2 * MAX_BOUNCES);
    assert_eq!(toggles % 2, 1);

    assert_eq!(
        Nic::new(&irq, 11, 0).unwrap_err().to_string(),
        "NIC on irq 11: ring_capacity 0 is out of range; it must be 1 to 65536"
    );
    assert!(Nic::new(&irq, 11, MAX_RX_RING + 1).is_err());
    assert_eq!(
        Uart::new(&irq, 4, 17).unwrap_err(),
        DeviceError::OutOfRange {
            device: "UART",
            irq: 4,
            parameter: "trigger_level",
            value: 17,
            min: 1,
            max: 16
        }
    );
    assert!(Uart::new(&irq, 4, 0).is_err());
    assert_eq!(
        Uart::with_baud(&irq, 4, 8, MIN_BAUD - 1)
            .unwrap_err()
            .to_string(),
        "UART on irq 4: baud 49 is out of range; it must be 50 to 12000000"
    );
    assert!(Uart::with_baud(&irq, 4, 8, MAX_BAUD + 1).is_err());
    assert!(Uart::with_baud(&irq, 4, 0, 9600).is_err());
    // The missing line is named before a bad speed.
    assert!(matches!(
        Uart::with_baud(&irq, 5000, 8, 0),
        Err(DeviceError::NoSuchLine { irq: 5000, .. })
    ));
    assert_eq!(
        BlockDevice::new(&irq, 14, Duration::from_micros(1), 0)
            .unwrap_err()
            .to_string(),
        "block device on irq 14: depth 0 is out of range; it must be 1 to 65536"
    );
    assert!(BlockDevice::new(&irq, 14, Duration::from_micros(1), MAX_QUEUE_DEPTH + 1).is_err());
}

/// The constructors that start a thread are rejected in a top half, as
/// every call that may sleep is.
#[test]
fn threaded_devices_rejected_in_top_half() {
    let machine = machine(1);
    let irq = machine.controller();
    let _top_half = irq_sim::context::enter_hardirq(9, "probe_in_irq");

    let uart = Uart::with_baud(&irq, 4, 8, 115_200).unwrap_err();
    assert!(matches!(uart, DeviceError::InvalidContext(_)), "{uart:?}");
    assert!(uart.to_string().contains("Uart::with_baud"), "{uart}");
    assert!(uart.to_string().contains("probe_in_irq"), "{uart}");
    let block = BlockDevice::new(&irq, 14, Duration::from_micros(1), 4).unwrap_err();
    assert!(matches!(block, DeviceError::InvalidContext(_)), "{block:?}");
}
