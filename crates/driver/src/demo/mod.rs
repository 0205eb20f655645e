//! The demo drivers: each shows the top-half/bottom-half split on one of
//! irq-sim's device models, and exposes its counters for reports.

pub mod block;
pub mod gpio;
pub mod nic;
pub mod tick;
pub mod uart;
