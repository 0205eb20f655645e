//! Modules: an init and an exit, loaded and unloaded by the framework, with
//! a tracker that catches what a module leaves behind.
//!
//! | kernel | irqlab |
//! |---|---|
//! | `module_init(fn)` | [`Module::init`], run by [`load`] |
//! | `module_exit(fn)` | [`Module::exit`], run by [`LoadedModule::unload`] |
//! | `insmod`, `rmmod` | [`load`], [`LoadedModule::unload`] |
//!
//! # The tracker
//!
//! A module registers its work items ([`ModuleContext::track_work`], or by
//! queueing through its context) and requests its IRQs through its context.
//! At unload, after [`Module::exit`] has returned and before the module's
//! state is dropped, the tracker looks at each of them. What is still
//! registered, pending or running is a bug of the module's exit: the
//! tracker reports each one by name, with a `printk` warning and in the
//! returned [`UnloadReport`], and releases it:
//!
//! 1. each handler still registered is freed, which waits for its running
//!    top half and thread function;
//! 2. each work item is disabled, which cancels it if pending, so that no
//!    item can queue another one any more; an item that a drain had to
//!    cancel, because the module left it re-arming itself, is reported too;
//! 3. each item still running is waited for;
//! 4. each workqueue allocated through the context
//!    ([`ModuleContext::alloc_workqueue`]) and not destroyed is destroyed,
//!    which runs what is still on it;
//! 5. the module's state is dropped;
//! 6. the items' disable depths are restored, so that a static item can be
//!    queued again by the next load.
//!
//! A driver still bound to its devices is reported first
//! ([`Leftover::Bound`]): its `remove` never ran.
//!
//! So the classic bug of unloading a module with work still queued neither
//! crashes nor passes silently. No tracked item or handler runs after
//! [`LoadedModule::unload`] returns, unless code outside the module queues
//! a static item again. Work queued with `wq` directly on an item the
//! module never tracked is outside the tracker's view.
//!
//! # Example
//!
//! ```
//! use driver::module::{self, Module, ModuleContext, InitResult};
//! use wq::Work;
//!
//! static HELLO: Work = Work::new("hello", || {});
//!
//! struct Hello;
//!
//! impl Module for Hello {
//!     const NAME: &'static str = "hello";
//!     type Params = ();
//!
//!     fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
//!         ctx.schedule_work(&HELLO)?;
//!         Ok(Hello)
//!     }
//!
//!     fn exit(&mut self, _ctx: &ModuleContext) {
//!         wq::blocking::cancel_work_sync(&HELLO).unwrap();
//!     }
//! }
//!
//! let loaded = module::load::<Hello>(()).unwrap();
//! let report = loaded.unload().unwrap();
//! assert!(report.is_clean());
//! ```

use std::error::Error;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use irq_sim::{Controller, IrqRequest};
use wq::{DataWork, DelayedWork, Work, Workqueue};

use crate::error::ModuleError;
use crate::irq::{self, Freer, IrqRegistration, Registration, ThreadedIrq};
use crate::printk;
use crate::printk::KernLevel;

/// The result of [`Module::init`]: the module's state, or its reason for
/// failing.
pub type InitResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// A loadable module: its init and its exit.
pub trait Module: Sized + Send + 'static {
    /// The module's name, as `lsmod` shows it; reports and warnings use it.
    const NAME: &'static str;

    /// The module's parameters (`module_param`), given to [`load`]; `()`
    /// for none.
    type Params: Send;

    /// Initializes the module (`module_init`) and returns its state.
    ///
    /// Work items and IRQs registered through `ctx` are tracked. If init
    /// fails, what it registered is released as at unload.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    fn init(ctx: &ModuleContext, params: Self::Params) -> InitResult<Self>;

    /// Cleans up before the state is dropped (`module_exit`): free the
    /// IRQs, cancel or flush the work items.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    fn exit(&mut self, ctx: &ModuleContext);
}

/// Something a module left behind at unload (or at a failed init), found
/// and released by the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// A work item still pending; it was cancelled and did not run.
    PendingWork {
        /// The item's name.
        work: String,
    },
    /// A delayed work item still pending, on its timer or already queued;
    /// it was cancelled and did not run.
    DelayedWork {
        /// The item's name.
        work: String,
    },
    /// A work item still running; the unload waited for it to finish.
    RunningWork {
        /// The item's name.
        work: String,
    },
    /// A delayed work item whose own run re-armed it while its queue
    /// drained (a queue the module destroyed, say), so that the drain
    /// cancelled it: the module did not cancel it first.
    RearmedDuringDrain {
        /// The item's name.
        work: String,
    },
    /// A handler still registered; it was freed.
    Handler {
        /// The line.
        irq: u32,
        /// The handler's name.
        handler: &'static str,
    },
    /// A workqueue the module allocated through its context and did not
    /// destroy; the tracker destroyed it, which ran what it held.
    Workqueue {
        /// The queue's name.
        queue: String,
    },
    /// A driver still bound to a device: its `BoundDriver` was dropped, or
    /// kept, without `unbind`, so the driver's `remove` never ran for it.
    Bound {
        /// `Driver::NAME`.
        driver: &'static str,
        /// The device's name.
        device: String,
    },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PendingWork { work } => write!(
                f,
                "work {work:?} still pending; cancelled: cancel it with cancel_work_sync in \
                 the module's exit"
            ),
            Self::DelayedWork { work } => write!(
                f,
                "delayed work {work:?} still pending; cancelled: cancel it with \
                 cancel_delayed_work_sync in the module's exit"
            ),
            // The item may be delayed or not, so the fix names both cancels.
            Self::RunningWork { work } => write!(
                f,
                "work {work:?} still running; waited for it: cancel it with cancel_work_sync, \
                 or cancel_delayed_work_sync for delayed work, in the module's exit"
            ),
            Self::RearmedDuringDrain { work } => {
                write!(
                    f,
                    "delayed work {work:?} was armed by its queue's own work while the queue \
                     drained, and the drain cancelled it; cancel it before destroying or \
                     draining its queue"
                )
            }
            Self::Handler { irq, handler } => {
                write!(
                    f,
                    "handler {handler:?} still registered on irq {irq}; freed: call free_irq \
                     in the module's exit"
                )
            }
            Self::Workqueue { queue } => write!(
                f,
                "workqueue {queue:?} not destroyed; destroyed it, which ran the work still on \
                 it: call destroy_workqueue in the module's exit"
            ),
            Self::Bound { driver, device } => write!(
                f,
                "driver {driver:?} still bound to device {device:?}, so its remove never ran; \
                 unbind the driver before unloading its module"
            ),
        }
    }
}

/// The findings of an unload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnloadReport {
    /// The module.
    pub module: &'static str,
    /// The resources the module's exit left behind, in the order found:
    /// handlers first, then work items in registration order.
    pub leftovers: Vec<Leftover>,
    /// The panic message, if the module's exit panicked. The tracker
    /// released the module's resources all the same.
    pub exit_panic: Option<String>,
}

impl UnloadReport {
    /// Returns true when the exit released everything and did not panic.
    pub fn is_clean(&self) -> bool {
        self.leftovers.is_empty() && self.exit_panic.is_none()
    }
}

mod tracked {
    use std::future::Future;
    use std::pin::Pin;

    /// The future of a `flush_work`.
    pub type FlushFuture = Pin<Box<dyn Future<Output = Result<bool, wq::WaitError>> + Send>>;

    /// A work item as the tracker holds it: a static item, or a reference
    /// count that keeps it alive until the unload. Public only inside this
    /// private module, so that `Trackable` stays sealed.
    pub trait TrackedWork: Send + Sync {
        fn name(&self) -> &str;
        /// Returns true for a delayed work item.
        fn is_delayed(&self) -> bool;
        /// Returns the item's address, which identifies it.
        fn address(&self) -> *const ();
        /// `disable_work`: returns true when the item was pending.
        fn disable(&self) -> bool;
        /// `enable_work`.
        fn enable(&self) -> bool;
        /// `flush_work`.
        fn flush(&self) -> FlushFuture;
        /// `wq::blocking::flush_work`.
        fn flush_blocking(&self) -> Result<bool, wq::WaitError>;
        /// `wq::take_cancelled_by_drain`.
        fn take_cancelled_by_drain(&self) -> bool;
    }
}

use tracked::{FlushFuture, TrackedWork};

/// A reference to a work item that a module can track: a `&'static` or an
/// `&Arc` of [`Work`] or [`DelayedWork`], or an `&Arc` of a [`DataWork`].
/// The same references `wq` queues.
pub trait Trackable: Copy {
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn tracked(self) -> Box<dyn TrackedWork>;
}

/// A tracked item: a `&'static` reference or an `Arc`.
struct TrackedRef<R>(R);

macro_rules! track {
    // `$ref` turns `self.0` into the reference `wq` takes.
    ($item:ty, $holder:ty, $delayed:expr, |$this:ident| $ref:expr) => {
        impl TrackedWork for TrackedRef<$holder> {
            fn name(&self) -> &str {
                self.0.name()
            }

            fn is_delayed(&self) -> bool {
                $delayed
            }

            fn address(&self) -> *const () {
                std::ptr::from_ref::<$item>(&*self.0).cast()
            }

            fn disable(&self) -> bool {
                let $this = self;
                wq::disable_work($ref)
            }

            fn enable(&self) -> bool {
                let $this = self;
                wq::enable_work($ref)
            }

            fn flush(&self) -> FlushFuture {
                let $this = self;
                Box::pin(wq::flush_work($ref))
            }

            fn flush_blocking(&self) -> Result<bool, wq::WaitError> {
                let $this = self;
                wq::blocking::flush_work($ref)
            }

            fn take_cancelled_by_drain(&self) -> bool {
                let $this = self;
                wq::take_cancelled_by_drain($ref)
            }
        }
    };
}

track!(Work, &'static Work, false, |this| this.0);
track!(Work, Arc<Work>, false, |this| &this.0);
track!(DelayedWork, &'static DelayedWork, true, |this| this.0);
track!(DelayedWork, Arc<DelayedWork>, true, |this| &this.0);

impl<T: Send + Sync + 'static> TrackedWork for TrackedRef<Arc<DataWork<T>>> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn is_delayed(&self) -> bool {
        false
    }

    fn address(&self) -> *const () {
        Arc::as_ptr(&self.0).cast()
    }

    fn disable(&self) -> bool {
        wq::disable_work(&self.0)
    }

    fn enable(&self) -> bool {
        wq::enable_work(&self.0)
    }

    fn flush(&self) -> FlushFuture {
        Box::pin(wq::flush_work(&self.0))
    }

    fn flush_blocking(&self) -> Result<bool, wq::WaitError> {
        wq::blocking::flush_work(&self.0)
    }

    fn take_cancelled_by_drain(&self) -> bool {
        wq::take_cancelled_by_drain(&self.0)
    }
}

impl Trackable for &'static Work {
    #[allow(private_interfaces)]
    fn tracked(self) -> Box<dyn TrackedWork> {
        Box::new(TrackedRef(self))
    }
}

impl Trackable for &Arc<Work> {
    #[allow(private_interfaces)]
    fn tracked(self) -> Box<dyn TrackedWork> {
        Box::new(TrackedRef(Arc::clone(self)))
    }
}

impl Trackable for &'static DelayedWork {
    #[allow(private_interfaces)]
    fn tracked(self) -> Box<dyn TrackedWork> {
        Box::new(TrackedRef(self))
    }
}

impl Trackable for &Arc<DelayedWork> {
    #[allow(private_interfaces)]
    fn tracked(self) -> Box<dyn TrackedWork> {
        Box::new(TrackedRef(Arc::clone(self)))
    }
}

impl<T: Send + Sync + 'static> Trackable for &Arc<DataWork<T>> {
    #[allow(private_interfaces)]
    fn tracked(self) -> Box<dyn TrackedWork> {
        Box::new(TrackedRef(Arc::clone(self)))
    }
}

/// The tracker's lists, under its mutex.
#[derive(Default)]
struct Tracked {
    /// Set when the unload starts; later requests are rejected.
    closed: bool,
    /// In registration order, each item once.
    work: Vec<Box<dyn TrackedWork>>,
    /// In request order.
    irqs: Vec<Arc<Registration>>,
    /// The devices the module's drivers are bound to, as (driver, device),
    /// in bind order.
    bound: Vec<(&'static str, String)>,
    /// The workqueues allocated through the context, in allocation order.
    queues: Vec<Workqueue>,
}

/// The handle a module gets in its init and exit: it tracks the module's
/// work items and IRQs, and queues and requests on the module's behalf.
///
/// It is cheap to clone, and a module may keep a clone in its state.
#[derive(Clone)]
pub struct ModuleContext {
    name: &'static str,
    tracked: Arc<Mutex<Tracked>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ModuleContext {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            tracked: Arc::default(),
        }
    }

    /// Returns the module's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records that `driver` is bound to `device`, until
    /// [`ModuleContext::untrack_bound`].
    ///
    /// # Errors
    ///
    /// [`ModuleError::Unloaded`] once the unload has started: it would not
    /// report the binding any more.
    pub(crate) fn track_bound(
        &self,
        driver: &'static str,
        device: &str,
    ) -> Result<(), ModuleError> {
        let mut tracked = self.open_tracker(|| format!("the binding of {driver} to {device}"))?;
        tracked.bound.push((driver, device.to_owned()));
        Ok(())
    }

    /// Records that `driver` was unbound from `device`.
    pub(crate) fn untrack_bound(&self, driver: &'static str, device: &str) {
        let mut tracked = lock(&self.tracked);
        if let Some(index) = tracked
            .bound
            .iter()
            .position(|(bound, name)| *bound == driver && name == device)
        {
            tracked.bound.remove(index);
        }
    }

    /// Tracks `work`: at unload, the tracker reports and cancels it if
    /// still pending, and waits for it if still running. Tracking an item
    /// twice tracks it once.
    ///
    /// Track an item before it can be queued, and queue it from top halves
    /// with `wq` directly: tracking locks and allocates, so it is not for a
    /// top half.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Unloaded`] once the unload has started.
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly (it takes the tracker's lock).
    pub fn track_work(&self, work: impl Trackable) -> Result<(), ModuleError> {
        irq_sim::might_sleep("track_work").map_err(|source| ModuleError::InvalidContext {
            module: self.name,
            source,
        })?;
        let item = work.tracked();
        let mut tracked = self.open_tracker(|| format!("work item {:?}", item.name()))?;
        if !tracked
            .work
            .iter()
            .any(|known| std::ptr::eq(known.address(), item.address()))
        {
            // A mark left by an earlier owner's drain is not this module's.
            let _ = item.take_cancelled_by_drain();
            tracked.work.push(item);
        }
        Ok(())
    }

    /// Tracks `work`, then queues it on `wq` (`queue_work`). Returns true
    /// when the item was idle and is now pending.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Unloaded`] once the unload has started;
    /// [`ModuleError::Queue`] when `wq` rejects the item.
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly.
    pub fn queue_work<W>(&self, wq: &Workqueue, work: W) -> Result<bool, ModuleError>
    where
        W: Trackable + wq::WorkRef,
    {
        self.track_work(work)?;
        wq::queue_work(wq, work).map_err(|source| self.queue_error(source))
    }

    /// Tracks `work`, then queues it on `system_wq` (`schedule_work`).
    ///
    /// # Errors
    ///
    /// As [`ModuleContext::queue_work`].
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly.
    pub fn schedule_work<W>(&self, work: W) -> Result<bool, ModuleError>
    where
        W: Trackable + wq::WorkRef,
    {
        self.queue_work(wq::system_wq(), work)
    }

    /// Tracks `dwork`, then queues it on `wq` after `delay`
    /// (`queue_delayed_work`).
    ///
    /// # Errors
    ///
    /// As [`ModuleContext::queue_work`].
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly.
    pub fn queue_delayed_work<W>(
        &self,
        wq: &Workqueue,
        dwork: W,
        delay: Duration,
    ) -> Result<bool, ModuleError>
    where
        W: Trackable + wq::DelayedWorkRef,
    {
        self.track_work(dwork)?;
        wq::queue_delayed_work(wq, dwork, delay).map_err(|source| self.queue_error(source))
    }

    /// Tracks `dwork`, then sets it to run on `wq` after `delay`, whether or
    /// not it is pending (`mod_delayed_work`).
    ///
    /// # Errors
    ///
    /// As [`ModuleContext::queue_work`].
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly.
    pub fn mod_delayed_work<W>(
        &self,
        wq: &Workqueue,
        dwork: W,
        delay: Duration,
    ) -> Result<bool, ModuleError>
    where
        W: Trackable + wq::DelayedWorkRef,
    {
        self.track_work(dwork)?;
        wq::mod_delayed_work(wq, dwork, delay).map_err(|source| self.queue_error(source))
    }

    /// Requests line `irq` ([`irq::request_irq`]) and tracks the
    /// registration: at unload, a handler still registered is reported and
    /// freed.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Unloaded`] once the unload has started;
    /// [`ModuleError::Irq`] as [`irq::request_irq`].
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn request_irq(
        &self,
        controller: &Controller,
        irq: u32,
        request: IrqRequest,
    ) -> Result<IrqRegistration, ModuleError> {
        let name = request.name();
        self.check_open(|| format!("IRQ handler {name:?}"))?;
        let registration =
            irq::request_irq(controller, irq, request).map_err(|source| ModuleError::Irq {
                module: self.name,
                source,
            })?;
        self.track_registration(&registration)?;
        Ok(registration)
    }

    /// Requests a threaded handler on line `irq`
    /// ([`irq::request_threaded_irq`]) and tracks the registration.
    ///
    /// # Errors
    ///
    /// As [`ModuleContext::request_irq`].
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn request_threaded_irq(
        &self,
        controller: &Controller,
        irq: u32,
        request: ThreadedIrq,
    ) -> Result<IrqRegistration, ModuleError> {
        self.check_open(|| format!("IRQ handler {:?}", request.name()))?;
        let registration =
            irq::request_threaded_irq(controller, irq, request).map_err(|source| {
                ModuleError::Irq {
                    module: self.name,
                    source,
                }
            })?;
        self.track_registration(&registration)?;
        Ok(registration)
    }

    fn check_open(&self, what: impl FnOnce() -> String) -> Result<(), ModuleError> {
        self.open_tracker(what).map(drop)
    }

    /// Locks the tracker, unless the unload has started: then returns
    /// [`ModuleError::Unloaded`] for the request that `what` names.
    fn open_tracker(
        &self,
        what: impl FnOnce() -> String,
    ) -> Result<MutexGuard<'_, Tracked>, ModuleError> {
        let tracked = lock(&self.tracked);
        if tracked.closed {
            return Err(ModuleError::Unloaded {
                module: self.name,
                what: what(),
            });
        }
        Ok(tracked)
    }

    /// Allocates a workqueue (`alloc_workqueue`, see [`wq::alloc_workqueue`])
    /// that the tracker watches: a queue the module's exit leaves
    /// undestroyed is reported as [`Leftover::Workqueue`] and destroyed.
    ///
    /// # Errors
    ///
    /// [`ModuleError::Unloaded`] once the unload has started.
    ///
    /// # Context
    ///
    /// Task context; allocates and spawns tasks.
    pub fn alloc_workqueue(
        &self,
        name: &'static str,
        flags: wq::WqFlags,
        max_active: usize,
    ) -> Result<Workqueue, ModuleError> {
        self.track_queue(name, || wq::alloc_workqueue(name, flags, max_active))
    }

    /// Allocates an ordered workqueue (`alloc_ordered_workqueue`) that the
    /// tracker watches, as [`ModuleContext::alloc_workqueue`] does.
    ///
    /// # Errors
    ///
    /// As [`ModuleContext::alloc_workqueue`].
    ///
    /// # Context
    ///
    /// Task context; allocates and spawns tasks.
    pub fn alloc_ordered_workqueue(
        &self,
        name: &'static str,
        flags: wq::WqFlags,
    ) -> Result<Workqueue, ModuleError> {
        self.track_queue(name, || wq::alloc_ordered_workqueue(name, flags))
    }

    fn track_queue(
        &self,
        name: &'static str,
        alloc: impl FnOnce() -> Workqueue,
    ) -> Result<Workqueue, ModuleError> {
        let mut tracked = self.open_tracker(|| format!("workqueue {name:?}"))?;
        let queue = alloc();
        tracked.queues.push(queue.clone());
        Ok(queue)
    }

    /// Adds `registration` to the tracker. If the unload started while the
    /// request was made, the registration is dropped, which frees it.
    fn track_registration(&self, registration: &IrqRegistration) -> Result<(), ModuleError> {
        let mut tracked = self.open_tracker(|| format!("IRQ handler {:?}", registration.name()))?;
        tracked.irqs.push(registration.shared());
        Ok(())
    }

    fn queue_error(&self, source: wq::QueueError) -> ModuleError {
        ModuleError::Queue {
            module: self.name,
            source,
        }
    }

    /// Releases what the module left behind and reports it; see the module
    /// docs for the steps. `found` is called for each leftover before it is
    /// released. Returns the leftovers and the items to re-enable after the
    /// module's state is dropped.
    fn release_leftovers(
        &self,
        found: &mut dyn FnMut(&Leftover),
    ) -> (Vec<Leftover>, Vec<Box<dyn TrackedWork>>) {
        let (work, irqs, bound, queues) = {
            let mut tracked = lock(&self.tracked);
            tracked.closed = true;
            (
                std::mem::take(&mut tracked.work),
                std::mem::take(&mut tracked.irqs),
                std::mem::take(&mut tracked.bound),
                std::mem::take(&mut tracked.queues),
            )
        };
        let mut leftovers = Vec::new();
        let mut report = |leftover: Leftover| {
            found(&leftover);
            printk!(KernLevel::Warning, "{}: {leftover}", self.name);
            leftovers.push(leftover);
        };

        // Bindings first: what follows releases what their removes left.
        for (driver, device) in bound {
            report(Leftover::Bound { driver, device });
        }

        // Step 1: free the handlers, which may queue work, first.
        for registration in &irqs {
            if registration.is_registered() {
                report(Leftover::Handler {
                    irq: registration.irq(),
                    handler: registration.name(),
                });
                if let Err(error) = registration.free(Freer::Tracker) {
                    printk!(KernLevel::Err, "{}: {error}", self.name);
                }
            }
        }

        // Step 2: disable every item, cancelling the pending ones, so that
        // no item can queue another any more. An item a drain had to
        // cancel was left re-arming itself too.
        for item in &work {
            if item.take_cancelled_by_drain() {
                report(Leftover::RearmedDuringDrain {
                    work: item.name().to_string(),
                });
            }
            if item.disable() {
                let work = item.name().to_string();
                report(if item.is_delayed() {
                    Leftover::DelayedWork { work }
                } else {
                    Leftover::PendingWork { work }
                });
            }
        }

        // Step 3: wait for the items still running. One poll of the flush
        // shows whether there is a run to wait for.
        for item in &work {
            let mut flush = item.flush();
            let mut context = Context::from_waker(std::task::Waker::noop());
            let running = match flush.as_mut().poll(&mut context) {
                Poll::Pending | Poll::Ready(Ok(true)) => true,
                Poll::Ready(Ok(false)) => false,
                Poll::Ready(Err(error)) => {
                    printk!(KernLevel::Err, "{}: {error}", self.name);
                    false
                }
            };
            drop(flush);
            if running {
                report(Leftover::RunningWork {
                    work: item.name().to_string(),
                });
                if let Err(error) = item.flush_blocking() {
                    printk!(KernLevel::Err, "{}: {error}", self.name);
                }
            }
        }

        // Step 4: destroy the queues the exit left, which drains them.
        // Steps 5 and 6 are the caller's.
        for queue in queues {
            if !queue.is_destroyed() {
                report(Leftover::Workqueue {
                    queue: queue.name().to_owned(),
                });
                if let Err(error) = wq::blocking::destroy_workqueue(&queue) {
                    printk!(KernLevel::Err, "{}: {error}", self.name);
                }
            }
        }

        (leftovers, work)
    }
}

impl fmt::Debug for ModuleContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tracked = lock(&self.tracked);
        f.debug_struct("ModuleContext")
            .field("name", &self.name)
            .field("work", &tracked.work.len())
            .field("irqs", &tracked.irqs.len())
            .field("closed", &tracked.closed)
            .finish()
    }
}

/// A loaded module: its state and its context. Unload it with
/// [`LoadedModule::unload`]; dropping it unloads it too, logging the
/// report.
pub struct LoadedModule<M: Module> {
    /// `None` once unloaded.
    state: Option<M>,
    ctx: ModuleContext,
}

/// A rejected unload: the reason, and the module handed back still
/// loaded, to unload from a context that may block. It is `Send` and
/// `Sync` for every module, so that `?` turns it into a
/// `Box<dyn Error + Send + Sync>`.
pub struct UnloadError<M: Module> {
    /// The reason for the rejection.
    pub error: ModuleError,
    /// The module, behind a mutex that nothing locks but `into_parts`, so
    /// that a module that is not `Sync` leaves the error `Sync`.
    module: Mutex<LoadedModule<M>>,
}

impl<M: Module> UnloadError<M> {
    /// Returns the reason and the module, still loaded.
    pub fn into_parts(self) -> (ModuleError, LoadedModule<M>) {
        let module = self
            .module
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        (self.error, module)
    }
}

impl<M: Module> fmt::Debug for UnloadError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnloadError")
            .field("error", &self.error)
            .field("module", &M::NAME)
            .finish()
    }
}

// The message is the reason's, so the reason is no `source` as well: a
// report that walks the chain would print it twice.
impl<M: Module> fmt::Display for UnloadError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<M: Module> Error for UnloadError<M> {}

/// Checks that the caller may block for a load or an unload.
fn check_may_block(module: &'static str, api: &'static str) -> Result<(), ModuleError> {
    use tokio::runtime::{Handle, RuntimeFlavor};

    irq_sim::might_sleep(api).map_err(|source| ModuleError::InvalidContext { module, source })?;
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::CurrentThread) => Err(ModuleError::BlockingInRuntime { module }),
        _ => Ok(()),
    }
}

/// Loads module `M` with `params` (`insmod`): runs its init.
///
/// # Errors
///
/// [`ModuleError::InitFailed`] when init fails, after what it registered
/// was released; [`ModuleError::InvalidContext`] in a top half;
/// [`ModuleError::BlockingInRuntime`] on the thread of a current-thread
/// tokio runtime.
///
/// # Context
///
/// Task context; sleeps.
pub fn load<M: Module>(params: M::Params) -> Result<LoadedModule<M>, ModuleError> {
    check_may_block(M::NAME, "module load")?;
    let ctx = ModuleContext::new(M::NAME);
    printk!(KernLevel::Debug, "{}: loading", M::NAME);

    match M::init(&ctx, params) {
        Ok(state) => Ok(LoadedModule {
            state: Some(state),
            ctx,
        }),
        Err(source) => {
            let (leftovers, work) = ctx.release_leftovers(&mut |_| {});
            restore(work);
            Err(ModuleError::InitFailed {
                module: M::NAME,
                source,
                leftovers,
            })
        }
    }
}

/// Restores the disable depth the tracker raised on each item.
fn restore(work: Vec<Box<dyn TrackedWork>>) {
    for item in work {
        item.enable();
    }
}

impl<M: Module> LoadedModule<M> {
    /// Returns the module's state.
    pub fn state(&self) -> &M {
        self.state.as_ref().expect("the state lives until unload")
    }

    /// Returns the module's context.
    pub fn context(&self) -> &ModuleContext {
        &self.ctx
    }

    /// Unloads the module (`rmmod`): runs its exit, then releases and
    /// reports what the exit left behind before dropping the state. Once it
    /// returns, no tracked work item or handler of the module runs.
    ///
    /// # Errors
    ///
    /// [`ModuleError::InvalidContext`] in a top half;
    /// [`ModuleError::BlockingInRuntime`] on the thread of a current-thread
    /// tokio runtime, in an [`UnloadError`] that hands the module back,
    /// still loaded.
    ///
    /// # Context
    ///
    /// Task context; sleeps.
    pub fn unload(self) -> Result<UnloadReport, UnloadError<M>> {
        self.unload_with(|_| {})
    }

    /// Unloads the module as [`LoadedModule::unload`] does, calling `found`
    /// with each leftover as soon as it is found, before it is released:
    /// for a running item, before the unload waits for it.
    ///
    /// # Errors
    ///
    /// As [`LoadedModule::unload`].
    ///
    /// # Context
    ///
    /// Task context; sleeps. `found` runs on the calling thread.
    pub fn unload_with(
        mut self,
        mut found: impl FnMut(&Leftover),
    ) -> Result<UnloadReport, UnloadError<M>> {
        if let Err(error) = check_may_block(M::NAME, "module unload") {
            return Err(UnloadError {
                error,
                module: Mutex::new(self),
            });
        }
        Ok(self.unload_now(&mut found))
    }

    fn unload_now(&mut self, found: &mut dyn FnMut(&Leftover)) -> UnloadReport {
        let Some(mut state) = self.state.take() else {
            return UnloadReport {
                module: M::NAME,
                leftovers: Vec::new(),
                exit_panic: None,
            };
        };
        printk!(KernLevel::Debug, "{}: unloading", M::NAME);

        // The exit runs first; a panic in it is reported, and the tracker
        // still releases what the module holds.
        let exit_panic = catch_unwind(AssertUnwindSafe(|| state.exit(&self.ctx)))
            .err()
            .map(|payload| panic_message(payload.as_ref()));
        if let Some(message) = &exit_panic {
            printk!(
                KernLevel::Err,
                "{}: module exit panicked: {message}",
                M::NAME
            );
        }

        let (leftovers, work) = self.ctx.release_leftovers(found);
        drop(state);
        restore(work);
        UnloadReport {
            module: M::NAME,
            leftovers,
            exit_panic,
        }
    }
}

impl<M: Module> Drop for LoadedModule<M> {
    fn drop(&mut self) {
        if self.state.is_none() {
            return;
        }
        if let Err(error) = check_may_block(M::NAME, "module unload") {
            // NOTE: the state is leaked rather than dropped while its work
            // may still run; the error names the context to fix.
            printk!(KernLevel::Err, "cannot unload on drop: {error}");
            std::mem::forget(self.state.take());
            return;
        }
        let report = self.unload_now(&mut |_| {});
        if !report.is_clean() {
            printk!(
                KernLevel::Warning,
                "{}: unloaded on drop with {} leftovers",
                M::NAME,
                report.leftovers.len()
            );
        }
    }
}

impl<M: Module> fmt::Debug for LoadedModule<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModule")
            .field("name", &M::NAME)
            .field("loaded", &self.state.is_some())
            .finish()
    }
}

/// Returns a panic payload's message, if it was a string.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}
