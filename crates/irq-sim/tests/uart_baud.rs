//! `Uart::with_baud`: its checks and its timeout thread's
//! shutdown.

mod common;

use std::time::Instant;

use common::machine;
use irq_sim::DeviceError;
use irq_sim::device::{MIN_BAUD, Uart};

/// A top half may not make a UART with a timeout thread.
#[test]
fn with_baud_in_top_half_rejected() {
    let machine = machine(1);
    let result = {
        let _irq = irq_sim::context::enter_hardirq(9, "qa_top");
        Uart::with_baud(&machine.controller(), 30, 14, 115_200)
    };
    let error = result.expect_err("a top half made a UART with a thread");
    assert!(matches!(error, DeviceError::InvalidContext(_)), "{error}");
    assert!(error.to_string().contains("Uart::with_baud"), "{error}");
}

/// A missing line is named before a bad speed.
#[test]
fn with_baud_missing_line_first() {
    let machine = machine(1);
    let error = Uart::with_baud(&machine.controller(), 100_000, 14, 1).unwrap_err();
    assert!(matches!(error, DeviceError::NoSuchLine { .. }), "{error}");
}

/// Dropping a UART whose thread waits for a slow timeout (0.8 s at 50
/// baud) stops the thread at once instead of waiting for the deadline.
#[test]
fn drop_during_slow_timeout_is_prompt() {
    let machine = machine(1);
    let uart = Uart::with_baud(&machine.controller(), 31, 14, MIN_BAUD).unwrap();
    let timeout = uart.char_timeout().unwrap();
    assert!(uart.receive(1));

    let started = Instant::now();
    drop(uart);
    let took = started.elapsed();
    assert!(
        took < timeout / 2,
        "the drop waited {took:?}, close to the {timeout:?} timeout"
    );
}

/// An out-of-range trigger level is rejected by `with_baud` too, whatever
/// the speed.
#[test]
fn with_baud_trigger_level_checked() {
    let machine = machine(1);
    for level in [0, 17] {
        let error = Uart::with_baud(&machine.controller(), 32, level, 9_600).unwrap_err();
        assert!(matches!(error, DeviceError::OutOfRange { .. }), "{error}");
    }
    assert!(Uart::with_baud(&machine.controller(), 32, 1, 9_600).is_ok());
    assert!(
        Uart::with_baud(&machine.controller(), 32, 1, 9_600)
            .unwrap()
            .char_timeout()
            .is_none()
    );
}
