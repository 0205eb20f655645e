//! The UART demo driver: the top half drains the FIFO, a work item
//! assembles lines.
//!
//! The UART's 16-byte FIFO asserts its output on a level line while it
//! contains at least the trigger level, or when bytes below it sat unread
//! for four character times (a character timeout). The top half reads the
//! FIFO empty into a ring buffer, which deasserts the output, and queues
//! the line-assembly work item. The item takes the bytes off the ring in
//! task context and splits them into lines at `\n`. With
//! [`UartDriver::shared`] the line may be shared with other devices.
//!
//! A top half that is too slow lets the FIFO overflow: the device counts
//! each lost byte as an overrun, and irq-sim's budget check reports the
//! slow handler by line and name. Bytes that find the ring full are
//! dropped and counted too, so no byte is lost silently.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use irq_sim::clock::Timestamp;
use irq_sim::device::Uart;
use irq_sim::{Controller, HardIrqContext, IrqFlags, IrqRequest, IrqReturn};
use wq::{Work, Workqueue};

use crate::bus::{Device, Driver};
use crate::demo::EndToEnd;
use crate::error::ProbeError;
use crate::irq::IrqRegistration;
use crate::module::ModuleContext;
use crate::printk;
use crate::printk::KernLevel;

/// The handler name of the UART driver's top half.
pub const HANDLER: &str = "uart_rx";

/// Bytes the ring between the top half and the work item holds.
pub const RING_SIZE: usize = 4096;

/// A function the top half calls first, to inject a fault (a slow top
/// half, for instance). It runs in hard-IRQ context.
pub type TopHalfHook = Arc<dyn Fn() + Send + Sync>;

/// The UART driver: binds devices with `compatible = "irqlab,uart"` whose
/// resource is an [`irq_sim::device::Uart`].
pub struct UartDriver {
    /// The queue the line-assembly item runs on.
    queue: Workqueue,
    /// Fault injection: called at the start of every top half.
    hook: Option<TopHalfHook>,
    /// Whether the line is requested as shared (`IRQF_SHARED`).
    shared: bool,
}

impl UartDriver {
    /// Makes a driver whose line-assembly work runs on `queue`.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(queue: &Workqueue) -> Self {
        Self {
            queue: queue.clone(),
            hook: None,
            shared: false,
        }
    }

    /// Requests the line as shared (`IRQF_SHARED`), so that other devices'
    /// drivers may join it. The top half returns `IrqReturn::None` when
    /// the FIFO was empty, as a shared handler must when its device did
    /// not interrupt, and the UART drives the line through its own output
    /// of the line's wired OR.
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Calls `hook` at the start of every top half, before the FIFO is
    /// drained: a slow hook makes a slow top half.
    pub fn with_top_half_hook(mut self, hook: TopHalfHook) -> Self {
        self.hook = Some(hook);
        self
    }
}

impl std::fmt::Debug for UartDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UartDriver")
            .field("queue", &self.queue.name())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// The counters of one bound UART, as the CLI reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UartStats {
    /// Bytes the UART took into its FIFO.
    pub received: u64,
    /// Bytes lost because the FIFO was full: the top half was too slow.
    pub fifo_overruns: u64,
    /// Bytes the top half moved from the FIFO to the ring.
    pub drained: u64,
    /// Bytes dropped because the ring was full: the work item was too slow.
    pub ring_overruns: u64,
    /// Complete lines assembled.
    pub lines: u64,
    /// Interrupts the top half handled: those that found bytes in the
    /// FIFO.
    pub interrupts: u64,
    /// Character timeouts the UART signalled: interrupts for bytes below
    /// its trigger level that sat unread for four character times.
    pub char_timeouts: u64,
    /// Top halves that ran over the line's budget, as irq-sim counted them.
    pub budget_overruns: u64,
}

/// A single-producer, single-consumer byte ring without locks: the top
/// half pushes, the work item pops. Each byte carries the time it reached
/// the UART, in nanoseconds on irq-sim's clock.
///
/// The top halves of one line never run concurrently, and a work item
/// never runs concurrently with itself, so each side has one writer.
struct ByteRing {
    slots: Box<[AtomicU8]>,
    arrived: Box<[AtomicU64]>,
    /// Bytes popped so far; written only by the consumer.
    head: AtomicUsize,
    /// Bytes pushed so far; written only by the producer.
    tail: AtomicUsize,
}

impl ByteRing {
    fn new(size: usize) -> Self {
        Self {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            arrived: (0..size).map(|_| AtomicU64::new(0)).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Pushes `byte`, which arrived at `arrived`; returns false when the
    /// ring is full.
    fn push(&self, byte: u8, arrived: Timestamp) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        // Acquire pairs with the consumer's Release store of `head`: the
        // slot it freed has been read.
        let head = self.head.load(Ordering::Acquire);
        if tail - head == self.slots.len() {
            return false;
        }
        let slot = tail % self.slots.len();
        self.slots[slot].store(byte, Ordering::Relaxed);
        self.arrived[slot].store(arrived.as_nanos(), Ordering::Relaxed);
        // Release publishes the slot's byte to the consumer's Acquire load.
        self.tail.store(tail + 1, Ordering::Release);
        true
    }

    fn pop(&self) -> Option<(u8, Timestamp)> {
        let head = self.head.load(Ordering::Relaxed);
        // Acquire pairs with the producer's Release store of `tail`.
        let tail = self.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let slot = head % self.slots.len();
        let byte = self.slots[slot].load(Ordering::Relaxed);
        let arrived = Timestamp::from_nanos(self.arrived[slot].load(Ordering::Relaxed));
        // Release lets the producer reuse the slot only after this read.
        self.head.store(head + 1, Ordering::Release);
        Some((byte, arrived))
    }
}

/// State shared by the top half, the work item and readers.
struct Shared {
    ring: ByteRing,
    /// The line being assembled; only the work item locks it.
    partial: Mutex<Vec<u8>>,
    /// Lines assembled and not yet taken; the work item and readers lock
    /// it, the top half never does.
    lines: Mutex<Vec<String>>,
    /// Counters; atomics, `Relaxed`: read only for reports.
    interrupts: AtomicU64,
    drained: AtomicU64,
    ring_overruns: AtomicU64,
    line_count: AtomicU64,
    /// Each byte's wait from reaching the UART to the work item.
    end_to_end: EndToEnd,
}

/// The per-device state of the UART driver.
pub struct UartState {
    uart: Arc<Uart>,
    controller: Controller,
    irq: u32,
    registration: IrqRegistration,
    assemble: Arc<Work>,
    shared: Arc<Shared>,
}

impl UartState {
    /// Returns true when the FIFO is empty and no line assembly is
    /// pending: every byte received so far has been handled.
    ///
    /// # Context
    ///
    /// Any; never sleeps beyond the FIFO's short lock.
    pub fn is_idle(&self) -> bool {
        self.uart.fifo_len() == 0 && !self.assemble.is_pending()
    }

    /// Returns the latency from each byte's arrival at the UART to the work
    /// item that took it off the ring.
    pub fn end_to_end(&self) -> &EndToEnd {
        &self.shared.end_to_end
    }

    /// Takes the lines assembled so far, without their `\n`.
    ///
    /// # Context
    ///
    /// Task context; takes a short lock that the work item also takes.
    pub fn take_lines(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .shared
                .lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Returns the UART's counters.
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly (it reads the line's statistics).
    pub fn stats(&self) -> UartStats {
        let shared = &self.shared;
        let budget_overruns = self
            .controller
            .line_stats(self.irq)
            .map_or(0, |stats| stats.overruns);
        UartStats {
            received: self.uart.received(),
            fifo_overruns: self.uart.overruns(),
            drained: shared.drained.load(Ordering::Relaxed),
            ring_overruns: shared.ring_overruns.load(Ordering::Relaxed),
            lines: shared.line_count.load(Ordering::Relaxed),
            interrupts: shared.interrupts.load(Ordering::Relaxed),
            char_timeouts: self.uart.timeouts(),
            budget_overruns,
        }
    }
}

impl Driver for UartDriver {
    const NAME: &'static str = "irqlab_uart";
    const COMPATIBLE: &'static str = "irqlab,uart";
    type State = UartState;

    async fn probe(&self, device: &Device, ctx: &ModuleContext) -> Result<UartState, ProbeError> {
        let uart: Arc<Uart> = device.resource()?;
        let shared = Arc::new(Shared {
            ring: ByteRing::new(RING_SIZE),
            partial: Mutex::new(Vec::new()),
            lines: Mutex::new(Vec::new()),
            interrupts: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            ring_overruns: AtomicU64::new(0),
            line_count: AtomicU64::new(0),
            end_to_end: EndToEnd::new(),
        });

        // The bottom half: take the bytes off the ring, split them into
        // lines.
        let assemble = {
            let shared = shared.clone();
            Work::from_fn(format!("{}/lines", device.name()), move || {
                let mut partial = shared
                    .partial
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                while let Some((byte, arrived)) = shared.ring.pop() {
                    shared.end_to_end.record([arrived]);
                    if byte != b'\n' {
                        partial.push(byte);
                        continue;
                    }
                    let line = String::from_utf8_lossy(&partial).into_owned();
                    partial.clear();
                    shared
                        .lines
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                    shared.line_count.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        ctx.track_work(&assemble)?;

        // The top half: drain the FIFO into the ring, which deasserts the
        // UART's output, and queue the assembly.
        let registration = {
            let (uart, shared) = (uart.clone(), shared.clone());
            let (queue, work, hook) = (self.queue.clone(), assemble.clone(), self.hook.clone());
            let flags = if self.shared {
                IrqFlags::LEVEL.shared()
            } else {
                IrqFlags::LEVEL
            };
            ctx.request_irq(
                device.controller(),
                device.irq(),
                IrqRequest::new(HANDLER, flags, move |_: &mut HardIrqContext<'_>| {
                    if let Some(hook) = &hook {
                        hook();
                    }
                    let (mut read, mut drained) = (0, 0);
                    while let Some((byte, arrived)) = uart.read_timed() {
                        read += 1;
                        if shared.ring.push(byte, arrived) {
                            drained += 1;
                        } else {
                            shared.ring_overruns.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if read == 0 {
                        // Another device of a shared line interrupted.
                        return IrqReturn::None;
                    }
                    shared.interrupts.fetch_add(1, Ordering::Relaxed);
                    shared.drained.fetch_add(drained, Ordering::Relaxed);
                    // NOTE: an error means the queue was destroyed under
                    // a bound driver; logging here would flood.
                    let _ = wq::queue_work(&queue, &work);
                    IrqReturn::Handled
                }),
            )?
        };

        Ok(UartState {
            uart,
            controller: device.controller().clone(),
            irq: device.irq(),
            registration,
            assemble,
            shared,
        })
    }

    async fn remove(&self, device: &Device, state: UartState, _ctx: &ModuleContext) {
        if let Err(error) = state.registration.free() {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
        if let Err(error) = wq::cancel_work_sync(&state.assemble).await {
            printk!(KernLevel::Err, "{}: {error}", device.name());
        }
    }
}
