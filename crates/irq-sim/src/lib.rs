//! The simulated hardware of irqlab: an interrupt controller, CPUs, local
//! timers, device models and the interrupt context.
//!
//! # The model
//!
//! - A [`Machine`] owns a [`Controller`] with numbered lines (1024 by
//!   default) and one OS thread per simulated CPU.
//! - A device raises a line from any thread ([`Controller::raise`]). The
//!   line's CPU wakes (or, in busy-poll mode, notices) and runs the line's
//!   handler chain in hard-IRQ context, where [`context::in_hardirq`] is
//!   true. Hard IRQs never nest; pending lines are delivered highest
//!   priority first, equal priorities in arrival order.
//! - Edge lines fold edges that arrive while pending, in progress or
//!   disabled into one delivery and count them as coalesced. Level lines are
//!   masked during their handlers and fire again while still high. Devices
//!   that share a level line drive it through outputs ([`IrqOutput`]), as
//!   the wired OR of real hardware: the line is high while any of them
//!   asserts it.
//! - Top halves ([`TopHalf`]) return [`IrqReturn`]. Each call is timed
//!   against its line's budget ([`contract`]). Panics are caught and disable
//!   the line. A lockup watchdog reports a CPU stuck in a top half, and
//!   unhandled storms disable the line as spurious.
//! - [`timer`] gives each CPU local timers; [`device`] has a NIC, a UART, a
//!   block device and a GPIO button; [`arrival`] drives devices with
//!   periodic, Poisson, burst and replayed arrivals.
//!
//! docs/interrupts.md maps every Linux function to its irq-sim counterpart.
//!
//! # Context
//!
//! Each public function that acts says in a `# Context` section whether a
//! top half may call it and whether it may sleep; the ones that may sleep
//! check `might_sleep()` and fail with `InvalidContext` in a top half.
//! Accessors that only read a field, a counter or an atomic (`irq()`,
//! `received()`, `overruns()`, `nr_irqs()`, ...) may be called from any
//! context and never sleep.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use irq_sim::{Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};
//!
//! let machine = Machine::new(Config { nr_cpus: 1, ..Config::default() }).unwrap();
//! let irq = machine.controller();
//! irq.request_irq(3, IrqRequest::new("button", IrqFlags::EDGE, |ctx: &mut HardIrqContext<'_>| {
//!     assert!(irq_sim::in_hardirq());
//!     assert!(ctx.latency().is_some());
//!     IrqReturn::Handled
//! }))
//! .unwrap();
//! let _ = irq.raise(3).unwrap();
//! // `synchronize_irq` waits only for a top half that is running, as in
//! // Linux; this waits for the delivery the raise caused.
//! irq.wait_delivered(3, Duration::from_secs(10)).unwrap();
//! assert_eq!(irq.line_stats(3).unwrap().handled, 1);
//! // A failed assertion in the top half is a caught panic, which the
//! // shutdown report lists.
//! assert!(machine.shutdown().is_clean());
//! ```

pub mod arrival;
pub mod clock;
pub mod context;
pub mod contract;
pub mod controller;
mod cpu;
pub mod device;
pub mod error;
pub mod handler;
#[doc(hidden)]
pub mod intake;
pub mod line_state;
pub mod machine;
pub mod output;
pub mod stats;
mod sync;
pub mod timer;
mod watchdog;

pub use context::{InvalidContext, in_hardirq, in_interrupt, in_task, might_sleep};
pub use contract::{
    Budget, CpuTimeAccounting, DEFAULT_BUDGET, FIRST_CALL_ALLOWANCE, OverrunPolicy,
};
pub use controller::{Controller, DEFAULT_PRIORITY};
pub use error::{
    ArrivalError, ConfigError, ContractViolation, DeviceError, FreeError, LineError, RequestError,
    RequestRejected,
};
pub use handler::{HandlerId, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, TopHalf, Trigger};
pub use line_state::{LineSnapshot, RaiseOutcome};
pub use machine::{
    Config, CpuMode, HungCpu, Machine, ShutdownReport, SpuriousConfig, WatchdogConfig,
};
pub use output::IrqOutput;
pub use stats::{CpuStats, LatencyHistograms, LineStats, Summary};
// Shared with the workspace's `wq` crate; not part of the simulation.
#[doc(hidden)]
pub use sync::prefetch_for_write;
pub use timer::LocalTimer;
