//! irqlab as a library: the parts of the `irqlab` command that other code
//! and tests can call.
//!
//! [`latency`] measures the latency of the top-half/bottom-half split per
//! deferral mechanism beside same-run baselines (`irqlab latency`).
//!
//! [`record`] reads what real machines recorded: `/proc/interrupts`
//! snapshots and ftrace text output, so that simulated load can be seeded
//! with real interrupt rates, handler names and work durations.

#![warn(missing_docs)]

pub mod latency;
pub mod record;
