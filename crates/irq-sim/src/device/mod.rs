//! Device models that raise lines as real devices do.
//!
//! | device | line | what it models |
//! |---|---|---|
//! | [`Nic`] | edge (MSI-like) | a bounded RX ring; packets arriving to a full ring are dropped and counted |
//! | [`Uart`] | level | a 16-byte RX FIFO; its output asserts the line while the FIFO contains at least the trigger level, or after a character timeout; bytes arriving to a full FIFO are overruns |
//! | [`BlockDevice`] | edge | requests complete after a service time, one at a time, and each completion raises the line |
//! | [`GpioButton`] | edge | a press or release bounces: several edges a few microseconds apart |
//!
//! Device state sits behind a short mutex of the device's own (its
//! registers); no device lock is held while a CPU's queue lock is taken
//! except across a raise or a lower, and a CPU never takes a device lock
//! while holding its queue lock, so the order is always device, then queue.
//!
//! The UART drives its level line through an [`IrqOutput`], so it can
//! share the line with other devices: dropping its own output leaves
//! theirs standing, as on a wired OR. The edge-triggered models raise
//! their lines; an edge is not held, so there is nothing to share.

mod block;
mod gpio;
mod nic;
mod uart;

use std::ops::RangeInclusive;
use std::sync::{Mutex, MutexGuard};

use crate::controller::Controller;
use crate::error::{DeviceError, LineError};
use crate::output::IrqOutput;

pub use block::{BlockDevice, BlockRequestError, Completion, MAX_QUEUE_DEPTH};
pub use gpio::{GpioButton, MAX_BOUNCES};
pub use nic::{MAX_RX_RING, Nic, Packet};
pub use uart::{MAX_BAUD, MIN_BAUD, UART_FIFO_SIZE, Uart};

/// Locks the registers of a device model, as the shipped models do.
///
/// A top half that reads a model's registers may find their mutex taken
/// by a device thread that the host has preempted, and block. On real
/// hardware a register access does not wait for another thread, so this
/// wait is counted as the simulator's own. With `Mutex::lock` it would be
/// reported as the top half sleeping (`ContractViolation::Slept`). A
/// poisoned mutex is taken as it is.
///
/// # Context
///
/// Any, including a top half; waits only while another thread holds the
/// mutex.
pub fn lock_registers<T>(registers: &Mutex<T>) -> MutexGuard<'_, T> {
    crate::controller::lock(registers)
}

/// Checks that the controller has line `irq`: a device made for a line it
/// lacks could raise nothing, and a device has no caller to tell.
fn check_line(controller: &Controller, device: &'static str, irq: u32) -> Result<(), DeviceError> {
    let nr_irqs = controller.nr_irqs();
    if irq < nr_irqs {
        Ok(())
    } else {
        Err(DeviceError::NoSuchLine {
            device,
            irq,
            nr_irqs,
        })
    }
}

/// Connects a device's output to line `irq`, which [`check_line`] has
/// accepted.
fn connect(
    controller: &Controller,
    device: &'static str,
    irq: u32,
) -> Result<IrqOutput, DeviceError> {
    controller.irq_output(irq).map_err(|error| match error {
        LineError::NoFreeOutput { max, .. } => DeviceError::NoFreeOutput { device, irq, max },
        LineError::OutOfRange { nr_irqs, .. } => DeviceError::NoSuchLine {
            device,
            irq,
            nr_irqs,
        },
        other => unreachable!("irq_output fails only for the line or its outputs: {other}"),
    })
}

/// Checks a constructor's size or count against `range`.
fn check_range(
    device: &'static str,
    irq: u32,
    parameter: &'static str,
    value: u64,
    range: RangeInclusive<u64>,
) -> Result<(), DeviceError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(DeviceError::OutOfRange {
            device,
            irq,
            parameter,
            value,
            min: *range.start(),
            max: *range.end(),
        })
    }
}
