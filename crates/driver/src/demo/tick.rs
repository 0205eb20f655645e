//! The timer tick demo driver: jiffies in the top half, housekeeping as
//! delayed work.
//!
//! A CPU's local timer raises its line every tick. The top half only adds
//! one to `jiffies`. Housekeeping that may take long runs as a delayed
//! work item that re-arms itself every period, in task context, where it
//! reads `jiffies`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use irq_sim::timer::LocalTimer;
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};
use wq::{DelayedWork, Workqueue};

use crate::bus::{Device, Driver};
use crate::error::ProbeError;
use crate::irq::IrqRegistration;
use crate::module::ModuleContext;
use crate::printk;
use crate::printk::KernLevel;

/// The handler name of the tick driver's top half.
pub const HANDLER: &str = "timer_tick";

/// The tick driver: binds devices with `compatible = "irqlab,local-timer"`
/// whose resource is an [`irq_sim::timer::LocalTimer`].
#[derive(Debug)]
pub struct TickDriver {
    /// The queue the housekeeping item runs on.
    queue: Workqueue,
    /// Time between ticks.
    tick: Duration,
    /// Time between housekeeping runs.
    housekeeping: Duration,
}

impl TickDriver {
    /// Makes a driver that ticks every `tick` and runs housekeeping on
    /// `queue` every `housekeeping`.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(queue: &Workqueue, tick: Duration, housekeeping: Duration) -> Self {
        Self {
            queue: queue.clone(),
            tick,
            housekeeping,
        }
    }
}

/// The counters of one bound timer, as the CLI reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickStats {
    /// Ticks counted by the top half.
    pub jiffies: u64,
    /// Runs of the housekeeping item.
    pub housekeeping_runs: u64,
    /// `jiffies` as the last housekeeping run read it.
    pub jiffies_at_housekeeping: u64,
    /// Ticks the timer missed because an expiry fired more than a tick
    /// late.
    pub missed_ticks: u64,
}

/// The per-device state of the tick driver.
pub struct TickState {
    timer: Arc<LocalTimer>,
    registration: IrqRegistration,
    housekeeping: Arc<DelayedWork>,
    counters: Arc<Counters>,
}

/// Counters; atomics, `Relaxed`: read only for reports.
#[derive(Default)]
struct Counters {
    jiffies: AtomicU64,
    housekeeping_runs: AtomicU64,
    jiffies_at_housekeeping: AtomicU64,
}

impl TickState {
    /// Returns the timer's counters.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn stats(&self) -> TickStats {
        let counters = &self.counters;
        TickStats {
            jiffies: counters.jiffies.load(Ordering::Relaxed),
            housekeeping_runs: counters.housekeeping_runs.load(Ordering::Relaxed),
            jiffies_at_housekeeping: counters.jiffies_at_housekeeping.load(Ordering::Relaxed),
            missed_ticks: self.timer.overruns(),
        }
    }
}

impl Driver for TickDriver {
    const NAME: &'static str = "irqlab_tick";
    const COMPATIBLE: &'static str = "irqlab,local-timer";
    type State = TickState;

    async fn probe(&self, device: &Device, ctx: &ModuleContext) -> Result<TickState, ProbeError> {
        let timer: Arc<LocalTimer> = device.resource()?;
        let counters = Arc::new(Counters::default());

        // The bottom half: read jiffies, then re-arm for the next period.
        let housekeeping = {
            let (counters, queue, period) =
                (counters.clone(), self.queue.clone(), self.housekeeping);
            let name = format!("{}/housekeeping", device.name());
            DelayedWork::from_fn_cyclic(name, |item| {
                let item = item.clone();
                move || {
                    let jiffies = counters.jiffies.load(Ordering::Relaxed);
                    counters
                        .jiffies_at_housekeeping
                        .store(jiffies, Ordering::Relaxed);
                    counters.housekeeping_runs.fetch_add(1, Ordering::Relaxed);
                    if let Some(item) = item.upgrade() {
                        // A cancel disables the item first, so this re-arm
                        // then returns false instead of escaping it.
                        let _ = wq::queue_delayed_work(&queue, &item, period);
                    }
                }
            })
        };
        ctx.queue_delayed_work(&self.queue, &housekeeping, self.housekeeping)?;

        // The top half: count the tick.
        let registration = {
            let counters = counters.clone();
            ctx.request_irq(
                device.controller(),
                device.irq(),
                IrqRequest::new(
                    HANDLER,
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        counters.jiffies.fetch_add(1, Ordering::Relaxed);
                        IrqReturn::Handled
                    },
                ),
            )?
        };
        timer.start_periodic(irq_sim::clock::now() + self.tick, self.tick);

        Ok(TickState {
            timer,
            registration,
            housekeeping,
            counters,
        })
    }

    async fn remove(&self, device: &Device, state: TickState, _ctx: &ModuleContext) {
        state.timer.cancel();
        if let Err(error) = state.registration.free() {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
        if let Err(error) = wq::cancel_delayed_work_sync(&state.housekeeping).await {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
    }
}
