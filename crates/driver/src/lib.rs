//! The driver model of irqlab.
//!
//! So far it holds [`printk`]: kernel-style logging on top of `tracing`.
//! Modules, `request_irq`, threaded IRQs and the demo drivers build on it.

pub mod printk;
