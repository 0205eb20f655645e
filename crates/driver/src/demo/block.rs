//! The block device demo driver: async requests completed by interrupt.
//!
//! [`BlockState::submit`] hands a request to the device and returns a
//! future. When the device finishes a request, it puts a completion on its
//! completion queue and raises its line. The top half only queues the
//! completion work item. The item, in task context, drains the completion
//! queue and wakes the future of each request.
//!
//! Completions that land while the line is pending fold into one
//! interrupt, and an interrupt that arrives while the item runs queues it
//! again, so the drain never leaves a completion behind.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use irq_sim::device::{BlockDevice, BlockRequestError, Completion};
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};
use tokio::sync::oneshot;
use wq::{Work, Workqueue};

use crate::bus::{Device, Driver};
use crate::demo::EndToEnd;
use crate::error::{BlockError, ProbeError};
use crate::irq::IrqRegistration;
use crate::module::ModuleContext;
use crate::printk;
use crate::printk::KernLevel;

/// The handler name of the block driver's top half.
pub const HANDLER: &str = "blk_complete";

/// The block driver: binds devices with `compatible = "irqlab,block"` whose
/// resource is an [`irq_sim::device::BlockDevice`].
#[derive(Debug)]
pub struct BlockDriver {
    /// The queue the completion item runs on.
    queue: Workqueue,
}

impl BlockDriver {
    /// Makes a driver whose completion work runs on `queue`.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(queue: &Workqueue) -> Self {
        Self {
            queue: queue.clone(),
        }
    }
}

/// The counters of one bound block device, as the CLI reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Requests the device accepted.
    pub submitted: u64,
    /// Requests rejected because the device's queue was full.
    pub rejected: u64,
    /// Completions the bottom half delivered to a waiting future.
    pub completed: u64,
    /// Completions whose future had been dropped.
    pub abandoned: u64,
    /// Interrupts the top half handled.
    pub interrupts: u64,
}

/// The futures waiting for their completions, by request id.
type Waiters = HashMap<u64, oneshot::Sender<Completion>>;

/// The per-device state of the block driver.
pub struct BlockState {
    name: String,
    device: Arc<BlockDevice>,
    registration: IrqRegistration,
    completion_work: Arc<Work>,
    shared: Arc<Shared>,
}

/// State shared by submitters and the completion item.
struct Shared {
    /// Under its mutex, which submitters and the completion item take and
    /// the top half never does.
    waiters: Mutex<Waiters>,
    /// Counters; atomics, `Relaxed`: read only for reports.
    submitted: AtomicU64,
    rejected: AtomicU64,
    completed: AtomicU64,
    abandoned: AtomicU64,
    interrupts: AtomicU64,
    /// Completion (the device's raise) to the completion item taking it.
    end_to_end: EndToEnd,
}

fn lock(waiters: &Mutex<Waiters>) -> MutexGuard<'_, Waiters> {
    waiters.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The future of one block request; resolves to its completion.
#[derive(Debug)]
pub struct PendingRequest {
    device: String,
    id: u64,
    receiver: oneshot::Receiver<Completion>,
}

impl PendingRequest {
    /// Returns the request's id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Future for PendingRequest {
    type Output = Result<Completion, BlockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver).poll(cx).map(|received| {
            received.map_err(|_| BlockError::Removed {
                device: self.device.clone(),
                id: self.id,
            })
        })
    }
}

impl BlockState {
    /// Submits a request for `sector` and returns the future of its
    /// completion. The request is with the device when this returns.
    ///
    /// # Errors
    ///
    /// [`BlockError::QueueFull`] when the device already has its queue
    /// depth of requests in flight.
    ///
    /// # Context
    ///
    /// Task context; takes a short lock that the completion item also
    /// takes, so not from a top half.
    pub fn submit(&self, sector: u64) -> Result<PendingRequest, BlockError> {
        let shared = &*self.shared;
        let (sender, receiver) = oneshot::channel();

        // Submit under the lock, so that the completion item cannot look
        // for the waiter before it is registered.
        let mut waiters = lock(&shared.waiters);
        let id = self.device.submit(sector).map_err(|error| {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            match error {
                BlockRequestError::QueueFull { depth, .. } => BlockError::QueueFull {
                    device: self.name.clone(),
                    depth,
                },
            }
        })?;
        waiters.insert(id, sender);
        drop(waiters);

        shared.submitted.fetch_add(1, Ordering::Relaxed);
        Ok(PendingRequest {
            device: self.name.clone(),
            id,
            receiver,
        })
    }

    /// Returns the latency from each completion, which raised the line,
    /// to the completion item taking it.
    pub fn end_to_end(&self) -> &EndToEnd {
        &self.shared.end_to_end
    }

    /// Returns the requests in flight: submitted, not yet completed.
    pub fn in_flight(&self) -> usize {
        lock(&self.shared.waiters).len()
    }

    /// Returns the device's counters.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn stats(&self) -> BlockStats {
        let shared = &self.shared;
        BlockStats {
            submitted: shared.submitted.load(Ordering::Relaxed),
            rejected: shared.rejected.load(Ordering::Relaxed),
            completed: shared.completed.load(Ordering::Relaxed),
            abandoned: shared.abandoned.load(Ordering::Relaxed),
            interrupts: shared.interrupts.load(Ordering::Relaxed),
        }
    }
}

impl Driver for BlockDriver {
    const NAME: &'static str = "irqlab_block";
    const COMPATIBLE: &'static str = "irqlab,block";
    type State = BlockState;

    async fn probe(&self, device: &Device, ctx: &ModuleContext) -> Result<BlockState, ProbeError> {
        let model: Arc<BlockDevice> = device.resource()?;
        let shared = Arc::new(Shared {
            waiters: Mutex::new(HashMap::new()),
            submitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            interrupts: AtomicU64::new(0),
            end_to_end: EndToEnd::new(),
        });

        // The bottom half: drain the completion queue, wake each future.
        let completion_work = {
            let (model, shared) = (model.clone(), shared.clone());
            Work::from_fn(format!("{}/complete", device.name()), move || {
                while let Some(completion) = model.take_completion() {
                    shared.end_to_end.record([completion.completed]);
                    let waiter = lock(&shared.waiters).remove(&completion.id);
                    let Some(sender) = waiter else {
                        shared.abandoned.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    // Counted before the wake-up, so that a woken future
                    // finds its completion counted.
                    shared.completed.fetch_add(1, Ordering::Relaxed);
                    if sender.send(completion).is_err() {
                        // The future was dropped before its completion.
                        shared.completed.fetch_sub(1, Ordering::Relaxed);
                        shared.abandoned.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        ctx.track_work(&completion_work)?;

        // The top half: count and queue the drain.
        let registration = {
            let (queue, work, shared) =
                (self.queue.clone(), completion_work.clone(), shared.clone());
            ctx.request_irq(
                device.controller(),
                device.irq(),
                IrqRequest::new(
                    HANDLER,
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        shared.interrupts.fetch_add(1, Ordering::Relaxed);
                        // NOTE: an error means the queue was destroyed under
                        // a bound driver; logging here would flood.
                        let _ = wq::queue_work(&queue, &work);
                        IrqReturn::Handled
                    },
                ),
            )?
        };

        Ok(BlockState {
            name: device.name().to_string(),
            device: model,
            registration,
            completion_work,
            shared,
        })
    }

    async fn remove(&self, device: &Device, state: BlockState, _ctx: &ModuleContext) {
        if let Err(error) = state.registration.free() {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
        if let Err(error) = wq::cancel_work_sync(&state.completion_work).await {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
        // Dropping the waiters resolves their futures to `Removed`.
        lock(&state.shared.waiters).clear();
    }
}
