//! irqlab as a library: the parts of the `irqlab` command that other code
//! and tests can call.
//!
//! [`scenario`] reads scenario files, [`run`] runs one, and [`report`]
//! prints and encodes what happened.
//!
//! [`latency`] measures the latency of the top-half/bottom-half split per
//! deferral mechanism beside same-run baselines (`irqlab latency`).
//!
//! [`record`] reads what real machines recorded: `/proc/interrupts`
//! snapshots and ftrace text output, so that simulated load can be seeded
//! with real interrupt rates, handler names and work durations.
//!
//! [`timeline`] records the `irq` and `workqueue` tracepoints of a run and
//! writes them as a Chrome trace for Perfetto or `chrome://tracing`.

#![warn(missing_docs)]

pub mod latency;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod timeline;
