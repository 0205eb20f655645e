//! Top halves and their registration.
//!
//! A top half is a synchronous function called on a simulated CPU in
//! hard-IRQ context with a [`HardIrqContext`]. It acknowledges its device,
//! queues work, and returns an [`IrqReturn`]. It must not sleep and should
//! return within its line's budget (see `contract`).

use std::fmt;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::controller::Controller;
use crate::error::LineError;

/// The result a top half returns, as the kernel's `irqreturn_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqReturn {
    /// The interrupt was not from this handler's device (`IRQ_NONE`).
    None,
    /// The handler serviced its device (`IRQ_HANDLED`).
    Handled,
    /// The handler serviced its device and requests its threaded handler
    /// (`IRQ_WAKE_THREAD`). The registration's wake-thread hook is
    /// called, and the delivery is judged by the thread functions' results
    /// (see [`IrqRequest::on_wake_thread`]).
    WakeThread,
}

impl IrqReturn {
    /// Returns the kernel's name of the value, as the `irq_handler_exit`
    /// tracepoint prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "unhandled",
            Self::Handled => "handled",
            Self::WakeThread => "wake_thread",
        }
    }
}

/// The trigger type of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Trigger {
    /// Edge-triggered: each raise is one event; events that arrive while one
    /// is pending fold into it.
    #[default]
    Edge,
    /// Level-triggered: the line interrupts as long as the device keeps it
    /// high.
    Level,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Edge => "edge",
            Self::Level => "level",
        })
    }
}

/// Request flags, as the kernel's `IRQF_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IrqFlags {
    /// `IRQF_SHARED`: the line may hold other handlers that also ask for
    /// sharing.
    pub shared: bool,
    /// `IRQF_TRIGGER_*`: every handler of a line must use the same type.
    /// `None` is `IRQF_TRIGGER_NONE`: the request takes the type of the
    /// line's handlers, or edge on a line with none (the simulated lines
    /// have no firmware-configured type), as Linux's `__setup_irq` keeps
    /// the line's configured type.
    pub trigger: Option<Trigger>,
    /// `IRQF_ONESHOT`: after a [`IrqReturn::WakeThread`] (with a wake-thread
    /// hook installed), the line stays masked until the driver calls
    /// [`Controller::unmask_oneshot`]. The mask is taken before the hook
    /// runs, so the thread may finish at any time after.
    pub oneshot: bool,
    /// `IRQF_NO_AUTOEN`: the request leaves the line disabled, at depth
    /// one, until the driver calls [`Controller::enable_irq`], so that no
    /// interrupt arrives before the driver is ready for it. A request that
    /// also sets `shared` is rejected, as Linux rejects it: another
    /// sharer would wait on a line that no driver enables.
    pub no_autoen: bool,
}

impl IrqFlags {
    /// An exclusive edge-triggered line.
    pub const EDGE: IrqFlags = IrqFlags {
        shared: false,
        trigger: Some(Trigger::Edge),
        oneshot: false,
        no_autoen: false,
    };

    /// An exclusive level-triggered line.
    pub const LEVEL: IrqFlags = IrqFlags {
        shared: false,
        trigger: Some(Trigger::Level),
        oneshot: false,
        no_autoen: false,
    };

    /// Returns these flags with sharing allowed.
    pub const fn shared(self) -> IrqFlags {
        IrqFlags {
            shared: true,
            ..self
        }
    }

    /// Returns these flags with ONESHOT set.
    pub const fn oneshot(self) -> IrqFlags {
        IrqFlags {
            oneshot: true,
            ..self
        }
    }

    /// Returns these flags with `IRQF_NO_AUTOEN` set.
    pub const fn no_autoen(self) -> IrqFlags {
        IrqFlags {
            no_autoen: true,
            ..self
        }
    }
}

/// A top half: called in hard-IRQ context for every interrupt of its line.
///
/// Closures `FnMut(&mut HardIrqContext<'_>) -> IrqReturn + Send` implement
/// it.
pub trait TopHalf: Send + 'static {
    /// Services one interrupt. Must not sleep; every irqlab API that may
    /// sleep fails here through `might_sleep()`.
    fn handle(&mut self, ctx: &mut HardIrqContext<'_>) -> IrqReturn;
}

impl<F> TopHalf for F
where
    F: FnMut(&mut HardIrqContext<'_>) -> IrqReturn + Send + 'static,
{
    fn handle(&mut self, ctx: &mut HardIrqContext<'_>) -> IrqReturn {
        self(ctx)
    }
}

/// Called in hard-IRQ context right after a top half returned
/// [`IrqReturn::WakeThread`]; the driver layer wakes its IRQ thread here,
/// through `context::wake_or_defer` so that the wake-up system call runs
/// after the handler chain.
pub type WakeThreadHook = Box<dyn FnMut(&mut HardIrqContext<'_>) + Send + 'static>;

/// Called in task context by `synchronize_irq` and `disable_irq` once the
/// line's handler chain has returned. The driver layer waits there for its
/// IRQ thread.
pub type SynchronizeHook = Arc<dyn Fn() + Send + Sync + 'static>;

/// A request for a line: the handler's name, flags, top half and hooks.
pub struct IrqRequest {
    pub(crate) name: &'static str,
    pub(crate) flags: IrqFlags,
    pub(crate) top_half: Box<dyn TopHalf>,
    pub(crate) wake_thread: Option<WakeThreadHook>,
    pub(crate) synchronize: Option<SynchronizeHook>,
}

impl IrqRequest {
    /// Makes a request for handler `name` with `flags`.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(name: &'static str, flags: IrqFlags, top_half: impl TopHalf) -> Self {
        Self {
            name,
            flags,
            top_half: Box::new(top_half),
            wake_thread: None,
            synchronize: None,
        }
    }

    /// Installs the hook called after the top half returns
    /// [`IrqReturn::WakeThread`]. Without one, such a return is logged
    /// (rate-limited), and the delivery counts as unhandled, as in Linux:
    /// no thread function runs to handle it.
    ///
    /// With a hook, spurious detection judges a delivery whose handlers
    /// only woke threads by the thread functions' results, as Linux does:
    /// the thread that the hook wakes must call
    /// [`Controller::note_thread_handled`] after each run that handled an
    /// interrupt, or the line is disabled as spurious once nearly all of a
    /// window went unhandled. The driver crate's threaded IRQs do.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn on_wake_thread(
        mut self,
        hook: impl FnMut(&mut HardIrqContext<'_>) + Send + 'static,
    ) -> Self {
        self.wake_thread = Some(Box::new(hook));
        self
    }

    /// Installs the hook that `synchronize_irq` and `disable_irq` of the
    /// line call after its handler chain has returned. A threaded driver
    /// waits there for its thread function, so that these calls wait for
    /// the line's IRQ threads as they do in Linux.
    ///
    /// # Context
    ///
    /// Any; never sleeps. The hook runs in task context and may sleep.
    pub fn on_synchronize(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.synchronize = Some(Arc::new(hook));
        self
    }

    /// Returns the handler's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Returns the request's flags.
    pub fn flags(&self) -> IrqFlags {
        self.flags
    }
}

impl fmt::Debug for IrqRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IrqRequest")
            .field("name", &self.name)
            .field("flags", &self.flags)
            .field("wake_thread", &self.wake_thread.is_some())
            .field("synchronize", &self.synchronize.is_some())
            .finish()
    }
}

/// The handle `request_irq` returns; `free_irq` takes it back (the kernel's
/// `dev_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandlerId {
    pub(crate) irq: u32,
    pub(crate) serial: u64,
    pub(crate) name: &'static str,
}

impl HandlerId {
    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Returns the handler's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The context value of a top half, offering only what is allowed in
/// hard-IRQ context.
///
/// It names the interrupt being handled, and offers the non-waiting line
/// operations (`disable_irq_nosync`, `enable_irq`, `mask_irq`, `unmask_irq`,
/// `raise`, `lower`) and deferred wake-ups. The waiting ones
/// (`disable_irq`, `synchronize_irq`, `free_irq`) are not offered; called
/// through a [`Controller`] clone they fail with `InvalidContext`.
pub struct HardIrqContext<'a> {
    pub(crate) controller: &'a Controller,
    pub(crate) irq: u32,
    pub(crate) cpu: usize,
    pub(crate) handler: &'static str,
    pub(crate) entry: Timestamp,
    pub(crate) latency: Option<Duration>,
    pub(crate) poll: bool,
}

impl HardIrqContext<'_> {
    /// Returns the line being handled.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Returns the CPU running the handler.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Returns the name of the handler now running.
    pub fn handler(&self) -> &'static str {
        self.handler
    }

    /// Returns when the handler chain was entered.
    pub fn entry_time(&self) -> Timestamp {
        self.entry
    }

    /// Returns the raise-to-entry latency of this delivery: from the raise
    /// (for a timer, the programmed expiry), or from the moment a latched
    /// delivery was unmasked or enabled. `None` for a poll.
    pub fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// Returns when this delivery was raised: for a local timer, the
    /// programmed expiry; for a latched delivery, the moment the line was
    /// unmasked or enabled. `None` for a poll. Equals
    /// `entry_time() - latency()`; rtla timerlat measures its IRQ and
    /// thread latencies from this point.
    ///
    /// # Context
    ///
    /// Any; never sleeps, never allocates.
    pub fn raise_time(&self) -> Option<Timestamp> {
        self.latency.map(|latency| self.entry - latency)
    }

    /// Returns true when this call is a poll of a line disabled as spurious,
    /// not a delivery.
    pub fn is_poll(&self) -> bool {
        self.poll
    }

    /// Returns the controller, for non-waiting operations on other lines.
    pub fn controller(&self) -> &Controller {
        self.controller
    }

    /// Disables line `irq` without waiting (`disable_irq_nosync`).
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`] or [`LineError::DepthOverflow`].
    ///
    /// # Context
    ///
    /// Hard-IRQ context (this value exists only there); never sleeps.
    pub fn disable_irq_nosync(&self, irq: u32) -> Result<u8, LineError> {
        self.controller.disable_irq_nosync(irq)
    }

    /// Enables line `irq` (`enable_irq`); a latched delivery of the line now
    /// running is delivered after its chain returns.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`] or [`LineError::UnbalancedEnable`].
    ///
    /// # Context
    ///
    /// Hard-IRQ context; never sleeps.
    pub fn enable_irq(&self, irq: u32) -> Result<(), LineError> {
        self.controller.enable_irq(irq)
    }

    /// Masks line `irq` at the controller.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Hard-IRQ context; never sleeps.
    pub fn mask_irq(&self, irq: u32) -> Result<(), LineError> {
        self.controller.mask_irq(irq)
    }

    /// Unmasks line `irq` at the controller.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Hard-IRQ context; never sleeps.
    pub fn unmask_irq(&self, irq: u32) -> Result<(), LineError> {
        self.controller.unmask_irq(irq)
    }

    /// Records `waker` to be woken after the handler chain returns.
    ///
    /// # Context
    ///
    /// Hard-IRQ context; never sleeps, never allocates.
    pub fn wake_deferred(&self, waker: Waker) {
        crate::context::wake_or_defer(waker);
    }
}

impl fmt::Debug for HardIrqContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HardIrqContext")
            .field("irq", &self.irq)
            .field("cpu", &self.cpu)
            .field("handler", &self.handler)
            .field("latency", &self.latency)
            .field("poll", &self.poll)
            .finish()
    }
}
