//! irqlab as a library: the parts of the `irqlab` command that other code
//! and tests can call.
//!
//! [`record`] reads what real machines recorded: `/proc/interrupts`
//! snapshots and ftrace text output, so that simulated load can be seeded
//! with real interrupt rates, handler names and work durations.

#![warn(missing_docs)]

pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
