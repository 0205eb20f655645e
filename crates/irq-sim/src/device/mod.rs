//! Device models that raise lines as real devices do.
//!
//! | device | line | what it models |
//! |---|---|---|
//! | [`Nic`] | edge (MSI-like) | a bounded RX ring; packets arriving to a full ring are dropped and counted |
//! | [`Uart`] | level | a 16-byte RX FIFO; the line is high while the FIFO holds at least the trigger level; bytes arriving to a full FIFO are overruns |
//! | [`BlockDevice`] | edge | requests complete after a service time, one at a time, and each completion raises the line |
//! | [`GpioButton`] | edge | a press or release bounces: several edges a few microseconds apart |
//!
//! Device state sits behind a short mutex of the device's own (its
//! registers); no device lock is held while a CPU's queue lock is taken
//! except across a raise or a lower, and a CPU never takes a device lock
//! while holding its queue lock, so the order is always device, then queue.

mod block;
mod gpio;
mod nic;
mod uart;

use crate::controller::Controller;

pub use block::{BlockDevice, BlockRequestError, Completion};
pub use gpio::{GpioButton, MAX_BOUNCES};
pub use nic::{Nic, Packet};
pub use uart::{UART_FIFO_SIZE, Uart};

/// Warns when a device model is made for a line that the controller does
/// not have: every raise of it fails, and a device has no caller to tell.
fn check_line(controller: &Controller, device: &'static str, irq: u32) {
    let lines = controller.nr_irqs();
    if irq >= lines {
        tracing::warn!(
            target: "irq",
            irq,
            device,
            "{device} on irq {irq}: the controller has lines 0 to {}; its interrupts go nowhere",
            lines - 1
        );
    }
}
