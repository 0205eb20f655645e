//! The driver model of irqlab: modules, `request_irq` and threaded IRQs.
//!
//! - [`printk`](mod@printk): kernel-style logging on top of `tracing`.
//! - [`module`]: a module's init and exit, loaded and unloaded by
//!   [`module::load`] and [`module::LoadedModule::unload`], with a tracker
//!   that reports and releases the work items and IRQs an exit left behind.
//! - [`irq`]: [`irq::request_irq`] and [`irq::request_threaded_irq`],
//!   returning an [`irq::IrqRegistration`] whose drop frees the handler.
//! - [`napi`]: NAPI-style polling, [`napi::Napi`]: the top half masks the
//!   device interrupt and schedules a poll of at most `budget` events, and
//!   the interrupt is unmasked only when a poll completes.
//! - [`bus`]: devices on a [`bus::Bus`], and the [`bus::Driver`] trait
//!   whose async probe and remove bind and unbind them.
//! - [`demo`]: the demo drivers: [`demo::tick`], [`demo::nic`],
//!   [`demo::uart`], [`demo::gpio`] and [`demo::block`].
//! - [`error`]: the typed errors of modules, IRQ requests, probes and the
//!   bus.
//!
//! # Context
//!
//! Each public function states in a `# Context` section whether a top half
//! may call it and whether it may sleep; the ones that may sleep check
//! `irq_sim::might_sleep()` and fail in a top half.

pub mod bus;
pub mod demo;
pub mod error;
pub mod irq;
pub mod module;
pub mod napi;
pub mod printk;
mod sync;

pub use error::{BlockError, BusError, IrqError, ModuleError, ProbeError};
