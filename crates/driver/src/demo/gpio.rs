//! The GPIO button demo driver: debouncing with `mod_delayed_work`.
//!
//! A press or release makes the pin bounce, and every edge interrupts. The
//! top half only pushes the debounce work item's deadline back with
//! [`wq::mod_delayed_work`]. The item runs once the pin has been quiet for
//! the debounce time, reads the pin, and reports a press or a release if
//! the level changed. A bouncing press thus becomes one event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use irq_sim::device::GpioButton;
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};
use wq::{DelayedWork, Workqueue};

use crate::bus::{Device, Driver};
use crate::error::ProbeError;
use crate::irq::IrqRegistration;
use crate::module::ModuleContext;
use crate::printk;
use crate::printk::KernLevel;

/// The handler name of the button driver's top half.
pub const HANDLER: &str = "gpio_button";

/// The button driver: binds devices with `compatible = "irqlab,gpio-button"`
/// whose resource is an [`irq_sim::device::GpioButton`].
#[derive(Debug)]
pub struct ButtonDriver {
    /// The queue the debounce item runs on.
    queue: Workqueue,
    /// How long the pin must stay quiet before its level counts.
    debounce: Duration,
}

impl ButtonDriver {
    /// Makes a driver that debounces on `queue`, taking the pin's level
    /// once it has been quiet for `debounce`. The delay's granularity is
    /// that of `wq`'s timer, 1 ms.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(queue: &Workqueue, debounce: Duration) -> Self {
        Self {
            queue: queue.clone(),
            debounce,
        }
    }
}

/// The counters of one bound button, as the CLI reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ButtonStats {
    /// Edges the top half handled, bounces included.
    pub interrupts: u64,
    /// Debounced presses.
    pub presses: u64,
    /// Debounced releases.
    pub releases: u64,
    /// Runs of the debounce item.
    pub debounce_runs: u64,
}

/// The per-device state of the button driver.
pub struct ButtonState {
    registration: IrqRegistration,
    debounce: Arc<DelayedWork>,
    counters: Arc<Counters>,
}

/// Driver-side counters; atomics, `Relaxed`: read only for reports.
#[derive(Default)]
struct Counters {
    interrupts: AtomicU64,
    presses: AtomicU64,
    releases: AtomicU64,
    debounce_runs: AtomicU64,
    /// The last debounced level; touched only by the debounce item, which
    /// never runs concurrently with itself.
    pressed: AtomicBool,
}

impl ButtonState {
    /// Returns true when no debounce is pending: every edge so far has
    /// been judged.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn is_idle(&self) -> bool {
        !self.debounce.is_pending()
    }

    /// Returns the button's counters.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn stats(&self) -> ButtonStats {
        let counters = &self.counters;
        ButtonStats {
            interrupts: counters.interrupts.load(Ordering::Relaxed),
            presses: counters.presses.load(Ordering::Relaxed),
            releases: counters.releases.load(Ordering::Relaxed),
            debounce_runs: counters.debounce_runs.load(Ordering::Relaxed),
        }
    }
}

impl Driver for ButtonDriver {
    const NAME: &'static str = "irqlab_gpio_button";
    const COMPATIBLE: &'static str = "irqlab,gpio-button";
    type State = ButtonState;

    async fn probe(&self, device: &Device, ctx: &ModuleContext) -> Result<ButtonState, ProbeError> {
        let button: Arc<GpioButton> = device.resource()?;
        let counters = Arc::new(Counters::default());

        // The bottom half: take the level once the pin is quiet.
        let debounce = {
            let counters = counters.clone();
            DelayedWork::from_fn(format!("{}/debounce", device.name()), move || {
                counters.debounce_runs.fetch_add(1, Ordering::Relaxed);
                let pressed = button.is_pressed();
                if counters.pressed.swap(pressed, Ordering::Relaxed) == pressed {
                    return;
                }
                if pressed {
                    counters.presses.fetch_add(1, Ordering::Relaxed);
                } else {
                    counters.releases.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        ctx.track_work(&debounce)?;

        // The top half: count the edge and push the debounce deadline back.
        let registration = {
            let (queue, delay) = (self.queue.clone(), self.debounce);
            let (debounce, counters) = (debounce.clone(), counters.clone());
            ctx.request_irq(
                device.controller(),
                device.irq(),
                IrqRequest::new(
                    HANDLER,
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        counters.interrupts.fetch_add(1, Ordering::Relaxed);
                        // NOTE: an error means the queue was destroyed under
                        // a bound driver; the edge is counted but not
                        // debounced, and logging here would flood.
                        let _ = wq::mod_delayed_work(&queue, &debounce, delay);
                        IrqReturn::Handled
                    },
                ),
            )?
        };

        Ok(ButtonState {
            registration,
            debounce,
            counters,
        })
    }

    async fn remove(&self, device: &Device, state: ButtonState, _ctx: &ModuleContext) {
        if let Err(error) = state.registration.free() {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
        if let Err(error) = wq::cancel_delayed_work_sync(&state.debounce).await {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
    }
}
