//! `request_irq` and `request_threaded_irq`: registrations that free their
//! handler when dropped.
//!
//! | kernel | irqlab |
//! |---|---|
//! | `request_irq(irq, handler, flags, name, dev)` | [`request_irq`]`(&controller, irq, IrqRequest::new(name, flags, top_half))` |
//! | `request_threaded_irq(irq, handler, thread_fn, flags, name, dev)` | [`request_threaded_irq`]`(&controller, irq, ThreadedIrq::new(name, flags, thread_fn).top_half(handler))` |
//! | `free_irq(irq, dev)` | drop the [`IrqRegistration`], or [`IrqRegistration::free`] to see errors |
//! | `enable_irq`, `disable_irq`, `disable_irq_nosync`, `synchronize_irq` | the methods of the same names |
//!
//! # Threaded handlers
//!
//! A threaded registration owns one OS thread, named `irq/<line>-<handler>`
//! as the kernel names its IRQ threads, that runs the thread function in
//! task context. The top half requests a run by returning
//! [`IrqReturn::WakeThread`]: irq-sim then calls the registration's
//! wake-thread hook, still in hard-IRQ context, and the hook only counts the
//! request and defers the thread's wake-up to the end of the handler chain
//! (`HardIrqContext::wake_deferred`). It neither allocates nor locks.
//!
//! Requests that arrive while the thread function runs fold into one more
//! run, as the kernel's `IRQTF_RUNTHREAD` bit folds them. With ONESHOT the
//! line stays masked from the top half's return until the thread function
//! returns: the thread calls `unmask_oneshot` once per request it served.
//!
//! # Freeing
//!
//! [`IrqRegistration::free`] (and the drop) removes the handler, which waits
//! for a running handler chain of the line. It then stops the IRQ thread,
//! which first serves the requests already made, and joins it. Once it
//! returns, neither the top half nor the thread function runs again.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};
use std::thread::{self, JoinHandle, Thread, ThreadId};

use irq_sim::{
    Controller, FreeError, HandlerId, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, LineError,
    TopHalf,
};

use crate::error::IrqError;
use crate::printk;
use crate::printk::KernLevel;
use crate::sync::{self, AtomicBool, AtomicU32, AtomicU64, Condvar};

/// A registered handler: the kernel's `(irq, dev_id)` pair.
///
/// Dropping it frees the handler as [`IrqRegistration::free`] does, and logs
/// an error if that fails. It cannot be cloned. A module keeps it in its
/// state, and the module's tracker keeps a second handle, to free the
/// handler at unload if the module's exit did not.
///
/// NOTE: dropped in a top half, the free fails through `might_sleep` and the
/// handler stays registered until its module's unload frees it.
pub struct IrqRegistration {
    inner: Arc<Registration>,
}

/// The shared part of a registration.
pub(crate) struct Registration {
    /// Immutable after construction.
    controller: Controller,
    /// Immutable after construction.
    irq: u32,
    /// Immutable after construction.
    name: &'static str,
    /// The controller's handle; `None` once freed. Under its mutex.
    id: Mutex<Option<HandlerId>>,
    /// Serializes frees, held across a whole free, thread join included.
    /// It contains whether the owner ([`Freer::Owner`]) has freed the
    /// registration: a free by a module's tracker does not count.
    freed_by_owner: Mutex<bool>,
    /// The thread inside [`Registration::free`], if any. Freeing drops the
    /// handler and joins the IRQ thread, which drops the thread function,
    /// and either may own the `IrqRegistration` itself. Its drop then frees
    /// again, on this thread or on the IRQ thread, and must not wait for
    /// the lock the free in progress holds. Under its mutex.
    freeing: Mutex<Option<ThreadId>>,
    /// The IRQ thread of a threaded registration. Immutable after
    /// construction, apart from the join handle under its own mutex.
    thread: Option<IrqThread>,
}

/// The IRQ thread of a threaded registration.
struct IrqThread {
    shared: Arc<ThreadShared>,
    /// Taken by the free that joins the thread.
    handle: Mutex<Option<JoinHandle<()>>>,
    /// Immutable after construction.
    id: ThreadId,
}

/// State shared by the wake-thread hook and the IRQ thread.
struct ThreadShared {
    /// `WakeThread` returns so far. Atomic. The hook adds with `Release`
    /// and the thread reads with `Acquire`, so that the run reads what the
    /// top half wrote.
    requests: AtomicU64,
    /// Requests whose run of the thread function has finished; written by
    /// the thread. `SeqCst`, paired with `waiters` (see `wait_served`).
    served: AtomicU64,
    /// Threads in `wait_served`; `SeqCst`. Changed under `served_lock`.
    waiters: AtomicU32,
    /// Guards the wait for `served`, with `served_changed`.
    served_lock: sync::Mutex<()>,
    served_changed: Condvar,
    /// Set once by the free; `Release`, paired with the thread's `Acquire`.
    stop: AtomicBool,
    /// Completed runs of the thread function. Added with `Release` after
    /// the ONESHOT unmask, read with `Acquire`.
    runs: AtomicU64,
    /// Whether the line uses ONESHOT. Immutable.
    oneshot: bool,
}

/// Unparks the IRQ thread; the waker that the hook defers.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The thread function of a threaded request: runs in task context, where
/// it may sleep.
pub trait ThreadFn: Send + 'static {
    /// Serves the requests made since its last run. Returns `Handled` if
    /// it found work for its device and `None` if not: as in Linux, a line
    /// whose interrupts only wake threads that return `None` is disabled as
    /// spurious ("nobody cared").
    fn run(&mut self) -> IrqReturn;
}

impl<F> ThreadFn for F
where
    F: FnMut() -> IrqReturn + Send + 'static,
{
    fn run(&mut self) -> IrqReturn {
        self()
    }
}

/// A request for a threaded handler: name, flags, optional top half and
/// thread function.
pub struct ThreadedIrq {
    name: &'static str,
    flags: IrqFlags,
    top_half: Option<Box<dyn TopHalf>>,
    thread_fn: Box<dyn ThreadFn>,
}

impl ThreadedIrq {
    /// Makes a threaded request with no top half. Such a request must set
    /// ONESHOT; [`ThreadedIrq::top_half`] adds a top half.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(name: &'static str, flags: IrqFlags, thread_fn: impl ThreadFn) -> Self {
        Self {
            name,
            flags,
            top_half: None,
            thread_fn: Box::new(thread_fn),
        }
    }

    /// Returns the handler's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Sets the top half, which returns [`IrqReturn::WakeThread`] to run the
    /// thread function.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn top_half(mut self, top_half: impl TopHalf) -> Self {
        self.top_half = Some(Box::new(top_half));
        self
    }
}

/// Registers a top half on line `irq` (`request_irq`).
///
/// # Errors
///
/// [`IrqError::Request`] with the controller's reason: out of range, busy,
/// sharing or trigger mismatch, called in a top half, or shutting down.
///
/// # Context
///
/// Task context; may sleep (it takes the line's chain lock).
pub fn request_irq(
    controller: &Controller,
    irq: u32,
    request: IrqRequest,
) -> Result<IrqRegistration, IrqError> {
    let name = request.name();
    let id = controller
        .request_irq(irq, request)
        .map_err(|rejected| IrqError::Request {
            irq,
            handler: name,
            source: rejected.error,
        })?;
    Ok(IrqRegistration::new(controller, id, None))
}

/// Registers a threaded handler on line `irq` (`request_threaded_irq`).
///
/// The top half runs in hard-IRQ context and returns
/// [`IrqReturn::WakeThread`] to have the thread function run on the
/// registration's IRQ thread. Without a top half, every interrupt wakes the
/// thread, and the request must set ONESHOT, as in Linux.
///
/// # Errors
///
/// [`IrqError::ThreadedWithoutTopHalf`] for a request with no top half and
/// no ONESHOT; [`IrqError::ThreadSpawn`]; [`IrqError::Request`] as for
/// [`request_irq`].
///
/// # Context
///
/// Task context; may sleep (it spawns a thread and takes the line's chain
/// lock).
pub fn request_threaded_irq(
    controller: &Controller,
    irq: u32,
    request: ThreadedIrq,
) -> Result<IrqRegistration, IrqError> {
    let ThreadedIrq {
        name,
        flags,
        top_half,
        thread_fn,
    } = request;
    irq_sim::might_sleep("request_threaded_irq").map_err(|error| IrqError::Request {
        irq,
        handler: name,
        source: irq_sim::RequestError::InvalidContext(error),
    })?;
    if top_half.is_none() && !flags.oneshot {
        return Err(IrqError::ThreadedWithoutTopHalf { irq, handler: name });
    }

    // The thread first, so that the hook can hold its waker.
    let shared = Arc::new(ThreadShared::new(flags.oneshot));
    let handle = spawn_irq_thread(controller.clone(), irq, name, shared.clone(), thread_fn)?;
    let thread = IrqThread {
        shared: shared.clone(),
        id: handle.thread().id(),
        handle: Mutex::new(Some(handle)),
    };
    let waker = Waker::from(Arc::new(ThreadWaker(
        thread.handle_thread().expect("the handle was just stored"),
    )));

    let top_half: Box<dyn TopHalf> = match top_half {
        Some(top_half) => top_half,
        None => Box::new(|_: &mut HardIrqContext<'_>| IrqReturn::WakeThread),
    };
    let hook_shared = shared.clone();
    let thread_id = thread.id;
    let request = IrqRequest::new(name, flags, BoxedTopHalf(top_half))
        .on_wake_thread(move |ctx: &mut HardIrqContext<'_>| {
            hook_shared.request();
            // Cloning the waker bumps a reference count; it does not
            // allocate.
            ctx.wake_deferred(waker.clone());
        })
        .on_synchronize(move || {
            // The thread function cannot wait for itself.
            if thread::current().id() != thread_id {
                shared.wait_served();
            }
        });

    match controller.request_irq(irq, request) {
        Ok(id) => Ok(IrqRegistration::new(controller, id, Some(thread))),
        Err(rejected) => {
            thread.stop_and_join();
            Err(IrqError::Request {
                irq,
                handler: name,
                source: rejected.error,
            })
        }
    }
}

/// Adapts a boxed top half to the `impl TopHalf` that `IrqRequest::new`
/// takes.
struct BoxedTopHalf(Box<dyn TopHalf>);

impl TopHalf for BoxedTopHalf {
    fn handle(&mut self, ctx: &mut HardIrqContext<'_>) -> IrqReturn {
        self.0.handle(ctx)
    }
}

fn spawn_irq_thread(
    controller: Controller,
    irq: u32,
    name: &'static str,
    shared: Arc<ThreadShared>,
    mut thread_fn: Box<dyn ThreadFn>,
) -> Result<JoinHandle<()>, IrqError> {
    thread::Builder::new()
        .name(format!("irq/{irq}-{name}"))
        .spawn(move || {
            shared.serve_until_stopped(|requests| {
                // Counted before the ONESHOT unmask, as Linux counts
                // `threads_handled`, so that the delivery the unmask lets
                // through finds the count raised.
                if run_thread_fn(irq, name, &mut *thread_fn) == Some(IrqReturn::Handled) {
                    // The line exists: the handler was registered on it.
                    let _ = controller.note_thread_handled(irq);
                }
                if shared.oneshot {
                    finalize_oneshot(&controller, irq, name, requests);
                }
            });
        })
        .map_err(|error| IrqError::ThreadSpawn {
            irq,
            handler: name,
            reason: error.to_string(),
        })
}

/// Runs the thread function once and returns its result, containing a
/// panic: it is reported, the thread goes on, and the result is `None`.
fn run_thread_fn(irq: u32, name: &'static str, thread_fn: &mut dyn ThreadFn) -> Option<IrqReturn> {
    match catch_unwind(AssertUnwindSafe(|| thread_fn.run())) {
        Ok(ret) => Some(ret),
        Err(payload) => {
            let message = crate::module::panic_message(payload.as_ref());
            printk!(
                KernLevel::Err,
                "irq {irq}: thread function of handler {name:?} panicked: {message}"
            );
            None
        }
    }
}

/// Ends the ONESHOT masking of each served request.
fn finalize_oneshot(controller: &Controller, irq: u32, name: &'static str, requests: u64) {
    for _ in 0..requests {
        if let Err(error) = controller.unmask_oneshot(irq) {
            printk!(
                KernLevel::Err,
                "irq {irq}: handler {name:?} could not end its ONESHOT masking: {error}"
            );
            return;
        }
    }
}

/// Marks every request served when the IRQ thread ends, so that a wait
/// for it returns.
struct ReleaseWaiters<'a>(&'a ThreadShared);

impl Drop for ReleaseWaiters<'_> {
    fn drop(&mut self) {
        self.0.mark_served(u64::MAX);
    }
}

impl ThreadShared {
    fn new(oneshot: bool) -> Self {
        Self {
            requests: AtomicU64::new(0),
            served: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            served_lock: sync::Mutex::new(()),
            served_changed: Condvar::new(),
            stop: AtomicBool::new(false),
            runs: AtomicU64::new(0),
            oneshot,
        }
    }

    /// Requests a run of the thread function: the wake-thread hook's part,
    /// in hard-IRQ context. The caller then wakes the thread.
    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Release);
    }

    /// Asks the thread to stop once it has served every request made so
    /// far. The caller then wakes the thread.
    fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// The IRQ thread's loop: serves the requests with runs of `serve`,
    /// which gets how many requests the run serves, and returns once a stop
    /// is requested and no request is left.
    fn serve_until_stopped(&self, mut serve: impl FnMut(u64)) {
        // Releases the waiters when the thread ends, a panic included.
        let _release_waiters = ReleaseWaiters(self);
        // Requests served or being served by a run.
        let mut seen_requests = 0;
        loop {
            // Step 1: serve every request made so far with one run. The
            // stop flag is read first: a free sets it after the top half is
            // gone, so every request made before the stop is seen below,
            // and served before the thread ends.
            let stopping = self.stop.load(Ordering::Acquire);
            let requested = self.requests.load(Ordering::Acquire);
            if requested > seen_requests {
                serve(requested - seen_requests);
                seen_requests = requested;
                // Counted once the run, and with it the ONESHOT masking,
                // has ended, so that a reader of the count finds the line
                // unmasked.
                self.runs.fetch_add(1, Ordering::Release);
                self.mark_served(seen_requests);
                continue;
            }

            // Step 2: stop only with no request left, so a free serves the
            // requests made before it.
            if stopping {
                return;
            }
            sync::park();
        }
    }

    /// Records that the requests up to `served` are served, and wakes the
    /// threads waiting for them.
    fn mark_served(&self, served: u64) {
        self.served.store(served, Ordering::SeqCst);
        // SeqCst: a waiter counts itself and then reads `served`, and this
        // thread writes `served` and then reads the count, so at least one
        // of the two reads the other's write and the waiter cannot miss it.
        sync::dekker_fence();
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _locked = sync::lock(&self.served_lock);
            self.served_changed.notify_all();
        }
    }

    /// Waits until every request made before the call has been served by a
    /// finished run of the thread function.
    fn wait_served(&self) {
        let target = self.requests.load(Ordering::Acquire);
        let mut locked = sync::lock(&self.served_lock);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        sync::dekker_fence();
        while self.served.load(Ordering::SeqCst) < target {
            locked = self
                .served_changed
                .wait(locked)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl IrqThread {
    fn handle_thread(&self) -> Option<Thread> {
        lock(&self.handle)
            .as_ref()
            .map(|handle| handle.thread().clone())
    }

    /// Stops the thread after it has served the requests already made, and
    /// waits for it.
    fn stop_and_join(&self) {
        self.shared.request_stop();
        let handle = lock(&self.handle).take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            // The thread catches the thread function's panics, so a join
            // error would be a bug here. It is ignored: the thread is gone.
            let _ = handle.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl IrqRegistration {
    fn new(controller: &Controller, id: HandlerId, thread: Option<IrqThread>) -> Self {
        Self {
            inner: Arc::new(Registration {
                controller: controller.clone(),
                irq: id.irq(),
                name: id.name(),
                id: Mutex::new(Some(id)),
                freed_by_owner: Mutex::new(false),
                freeing: Mutex::new(None),
                thread,
            }),
        }
    }

    pub(crate) fn shared(&self) -> Arc<Registration> {
        self.inner.clone()
    }

    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.inner.irq
    }

    /// Returns the handler's name.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// Returns true until the handler is freed.
    ///
    /// # Context
    ///
    /// Task context; may wait for a free in progress.
    pub fn is_registered(&self) -> bool {
        self.inner.is_registered()
    }

    /// Returns how many times the thread function has run; 0 for a handler
    /// without a thread.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn thread_runs(&self) -> u64 {
        self.inner
            .thread
            .as_ref()
            .map_or(0, |thread| thread.shared.runs.load(Ordering::Acquire))
    }

    /// Frees the handler (`free_irq`): waits for a running handler chain of
    /// the line and for the thread function, which first serves the
    /// requests already made. Afterwards neither runs again. Dropping the
    /// registration frees it too, silently; call `free` to see errors, and
    /// call it once. A free by the module's tracker at unload does not
    /// count: the driver's own free after it succeeds.
    ///
    /// # Errors
    ///
    /// [`IrqError::Free`] with the controller's reason: `InvalidContext` in
    /// a top half, or `NotRegistered` when the registration was freed
    /// before (Linux warns "Trying to free already-free IRQ").
    ///
    /// # Context
    ///
    /// Task context; sleeps. Called by the registration's own thread
    /// function, it cannot wait for that function: the thread stops once
    /// the call's run and the requests still outstanding are done.
    pub fn free(&self) -> Result<(), IrqError> {
        match self.inner.free(Freer::Owner)? {
            Freed::Now => Ok(()),
            Freed::Before => Err(IrqError::Free {
                irq: self.inner.irq,
                handler: self.inner.name,
                source: FreeError::NotRegistered {
                    irq: self.inner.irq,
                    handler: self.inner.name,
                },
            }),
        }
    }

    /// Disables the line and waits for its running handlers (`disable_irq`),
    /// as [`IrqRegistration::synchronize_irq`] waits. Returns the new
    /// disable depth.
    ///
    /// # Errors
    ///
    /// [`IrqError::Line`]: depth overflow, or called in a top half.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn disable_irq(&self) -> Result<u8, IrqError> {
        self.line_op(self.inner.controller.disable_irq(self.inner.irq))
    }

    /// Disables the line without waiting (`disable_irq_nosync`). Returns the
    /// new disable depth.
    ///
    /// # Errors
    ///
    /// [`IrqError::Line`]: depth overflow.
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn disable_irq_nosync(&self) -> Result<u8, IrqError> {
        self.line_op(self.inner.controller.disable_irq_nosync(self.inner.irq))
    }

    /// Undoes one disable (`enable_irq`).
    ///
    /// # Errors
    ///
    /// [`IrqError::Line`]: an unbalanced enable.
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn enable_irq(&self) -> Result<(), IrqError> {
        self.line_op(self.inner.controller.enable_irq(self.inner.irq))
    }

    /// Waits until no top half of the line runs and until the thread
    /// function of each threaded handler of the line has served every
    /// request made before the call (`synchronize_irq`, which waits for the
    /// IRQ threads too). `Controller::synchronize_irq` waits the same way.
    ///
    /// # Errors
    ///
    /// [`IrqError::Line`]: called in a top half.
    ///
    /// # Context
    ///
    /// Task context; may sleep. Called by the registration's own thread
    /// function, it does not wait for that function, which could never
    /// finish.
    pub fn synchronize_irq(&self) -> Result<(), IrqError> {
        self.line_op(self.inner.controller.synchronize_irq(self.inner.irq))
    }

    fn line_op<T>(&self, result: Result<T, LineError>) -> Result<T, IrqError> {
        result.map_err(|source| IrqError::Line {
            irq: self.inner.irq,
            handler: self.inner.name,
            source,
        })
    }
}

impl Registration {
    pub(crate) fn irq(&self) -> u32 {
        self.irq
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn is_registered(&self) -> bool {
        lock(&self.id).is_some()
    }

    /// Frees the registration for `by` unless it is freed already, and
    /// returns which. The owner's first free is [`Freed::Now`] even after
    /// the module's tracker freed the registration at unload, so that a
    /// driver's `remove` after the unload is no double free.
    pub(crate) fn free(&self, by: Freer) -> Result<Freed, IrqError> {
        let current = thread::current().id();
        let freeing = *lock(&self.freeing);
        let own_irq_thread = self
            .thread
            .as_ref()
            .is_some_and(|thread| thread.id == current);
        if freeing == Some(current) || (freeing.is_some() && own_irq_thread) {
            // A drop that a free in progress caused: on this thread, below
            // on the stack, or on the IRQ thread that free is joining, as
            // the thread drops its thread function. That free finishes the
            // job, and waiting for it here would wait for ever.
            return Ok(Freed::Before);
        }
        // Held for the whole free, so that a second free returns only when
        // the first has finished.
        let mut freed_by_owner = lock(&self.freed_by_owner);
        if by == Freer::Owner && *freed_by_owner {
            return Ok(Freed::Before);
        }
        *lock(&self.freeing) = Some(current);
        let freed = self.free_registered();
        *lock(&self.freeing) = None;
        let freed = freed?;
        if by == Freer::Owner {
            *freed_by_owner = true;
            return Ok(Freed::Now);
        }
        Ok(freed)
    }

    /// Frees the registration unless it is freed already, under the free
    /// lock.
    fn free_registered(&self) -> Result<Freed, IrqError> {
        // Step 1: remove the top half, which waits for a running chain. The
        // id stays in place if the controller refuses, so that a later free
        // from task context can still succeed.
        let Some(handler) = *lock(&self.id) else {
            return Ok(Freed::Before);
        };
        self.controller
            .free_irq(handler)
            .map_err(|source| IrqError::Free {
                irq: self.irq,
                handler: self.name,
                source,
            })?;
        *lock(&self.id) = None;

        // Step 2: no top half can request the thread any more. Let it serve
        // what was requested, then stop it.
        if let Some(thread) = &self.thread {
            if thread.id == thread::current().id() {
                // NOTE: the thread function is freeing its own registration.
                // It cannot wait for itself, so the thread stops after this
                // run and the requests still outstanding, without a join.
                thread.shared.request_stop();
            } else {
                thread.stop_and_join();
            }
        }
        Ok(Freed::Now)
    }
}

/// The party that frees a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freer {
    /// Its `IrqRegistration`: an explicit free or the drop.
    Owner,
    /// A module's tracker, at unload.
    Tracker,
}

/// The outcome of [`Registration::free`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freed {
    /// This call freed the registration.
    Now,
    /// An earlier free did.
    Before,
}

impl Drop for IrqRegistration {
    fn drop(&mut self) {
        if let Err(error) = self.inner.free(Freer::Owner) {
            printk!(KernLevel::Err, "dropping an IRQ registration: {error}");
        }
    }
}

impl std::fmt::Debug for IrqRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrqRegistration")
            .field("irq", &self.inner.irq)
            .field("name", &self.inner.name)
            .field("threaded", &self.inner.thread.is_some())
            .finish()
    }
}

#[cfg(all(test, driver_loom))]
mod loom_tests;
