//! The driver model of irqlab: modules, drivers, `request_irq` and the demo
//! drivers.
//!
//! NOTE: this crate is only a place in the workspace so far; it has no API yet.
