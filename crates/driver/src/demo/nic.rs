//! The NIC demo driver: RX interrupts with NAPI mitigation.
//!
//! The top half counts the interrupt and calls [`Napi::schedule`], which
//! turns the NIC's interrupt off and queues a poll. The poll takes at most
//! `budget` packets off the RX ring per call. Under light load each packet
//! costs one interrupt. Under heavy load the interrupt stays off while
//! polls drain the ring, so the interrupt rate falls while throughput
//! rises.
//!
//! Every packet is accounted for: a packet that arrives to a full ring is
//! dropped by the device and counted, so `arrived = processed + dropped`
//! once the ring is empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use irq_sim::device::Nic;
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};
use wq::Workqueue;

use crate::bus::{Device, Driver};
use crate::demo::EndToEnd;
use crate::error::ProbeError;
use crate::irq::IrqRegistration;
use crate::module::ModuleContext;
use crate::napi::Napi;
use crate::printk;
use crate::printk::KernLevel;

/// The handler name of the NIC driver's top half.
pub const HANDLER: &str = "nic_rx";

/// The NIC driver: binds devices with `compatible = "irqlab,nic"` whose
/// resource is an [`irq_sim::device::Nic`].
#[derive(Debug)]
pub struct NicDriver {
    /// The queue the polls run on.
    queue: Workqueue,
    /// Packets per poll.
    budget: usize,
}

impl NicDriver {
    /// Makes a driver whose polls run on `queue` and take at most `budget`
    /// packets each (the kernel's `NAPI_POLL_WEIGHT` is 64).
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(queue: &Workqueue, budget: usize) -> Self {
        Self {
            queue: queue.clone(),
            budget,
        }
    }
}

/// The counters of one bound NIC, as the CLI reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Packets that reached the device: taken into the ring or dropped.
    pub arrived: u64,
    /// Packets the driver took off the ring.
    pub processed: u64,
    /// Packets the device dropped because the ring was full.
    pub dropped: u64,
    /// Packets still in the ring.
    pub in_ring: u64,
    /// Interrupts the top half handled.
    pub interrupts: u64,
    /// Calls of the poll function.
    pub polls: u64,
    /// Polling cycles, each started by one interrupt.
    pub cycles: u64,
}

/// The per-device state of the NIC driver.
pub struct NicState {
    nic: Arc<Nic>,
    napi: Napi,
    registration: IrqRegistration,
    counters: Arc<Counters>,
    end_to_end: EndToEnd,
}

/// Driver-side counters; atomics, `Relaxed`: read only for reports.
#[derive(Default)]
struct Counters {
    interrupts: AtomicU64,
    processed: AtomicU64,
}

impl NicState {
    /// Returns the device's counters.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn stats(&self) -> NicStats {
        let napi = self.napi.stats();
        let dropped = self.nic.dropped();
        NicStats {
            arrived: self.nic.received() + dropped,
            processed: self.counters.processed.load(Ordering::Relaxed),
            dropped,
            in_ring: self.nic.ring_len() as u64,
            interrupts: self.counters.interrupts.load(Ordering::Relaxed),
            polls: napi.polls,
            cycles: napi.scheduled,
        }
    }

    /// Returns the latency from each packet's arrival, which raised the
    /// line, to the poll that took it off the ring.
    pub fn end_to_end(&self) -> &EndToEnd {
        &self.end_to_end
    }

    /// Returns true when the ring is empty and no poll is pending: every
    /// packet so far has been handled.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn is_idle(&self) -> bool {
        self.nic.ring_len() == 0 && !self.napi.work().is_pending()
    }

    /// Returns the NAPI context, for its own counters.
    pub fn napi(&self) -> &Napi {
        &self.napi
    }
}

impl Driver for NicDriver {
    const NAME: &'static str = "irqlab_nic";
    const COMPATIBLE: &'static str = "irqlab,nic";
    type State = NicState;

    async fn probe(&self, device: &Device, ctx: &ModuleContext) -> Result<NicState, ProbeError> {
        let nic: Arc<Nic> = device.resource()?;
        let counters = Arc::new(Counters::default());
        let end_to_end = EndToEnd::new();

        // The bottom half: take at most `budget` packets off the ring.
        let napi = {
            let (nic, counters, end_to_end) = (nic.clone(), counters.clone(), end_to_end.clone());
            Napi::new(
                device.name(),
                &self.queue,
                self.budget,
                nic.clone(),
                move |budget| {
                    let mut handled = 0;
                    while handled < budget {
                        let Some(packet) = nic.pop() else { break };
                        end_to_end.record([packet.arrived]);
                        handled += 1;
                    }
                    counters
                        .processed
                        .fetch_add(handled as u64, Ordering::Relaxed);
                    handled
                },
            )
        };
        ctx.track_work(napi.work())?;

        // The top half: count, mask the NIC and schedule the poll.
        let registration = {
            let (napi, counters) = (napi.clone(), counters.clone());
            ctx.request_irq(
                device.controller(),
                device.irq(),
                IrqRequest::new(
                    HANDLER,
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        counters.interrupts.fetch_add(1, Ordering::Relaxed);
                        napi.schedule();
                        IrqReturn::Handled
                    },
                ),
            )?
        };

        Ok(NicState {
            nic,
            napi,
            registration,
            counters,
            end_to_end,
        })
    }

    async fn remove(&self, device: &Device, state: NicState, _ctx: &ModuleContext) {
        // The top half first, so that nothing schedules a poll any more.
        if let Err(error) = state.registration.free() {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
        if let Err(error) = state.napi.disable().await {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
    }
}
