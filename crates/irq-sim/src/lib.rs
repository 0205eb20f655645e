//! The simulated hardware of irqlab.
//!
//! So far this crate holds only [`context`]: which context (hard IRQ or task)
//! the current thread runs in, and `might_sleep()`, the check every waiting
//! API makes. The interrupt controller, CPUs, timers and devices will build
//! on it.

pub mod context;

pub use context::{InvalidContext, in_hardirq, in_interrupt, in_task, might_sleep};
