//! irqlab as a library: the parts of the `irqlab` command that other code
//! and tests can call.
//!
//! [`record`] reads what real machines recorded: `/proc/interrupts`
//! snapshots and ftrace text output. The scenario generator builds on it to
//! seed simulated load with real interrupt rates and handler names.

#![warn(missing_docs)]

pub mod record;
