//! Loading and unloading modules: what the tracker reports and releases
//! when a module's exit leaves work or handlers behind.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driver::ModuleError;
use driver::irq::{IrqRegistration, ThreadedIrq};
use driver::module::{
    self, InitResult, Leftover, LoadedModule, Module, ModuleContext, UnloadError,
};
use irq_sim::{Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};
use wq::{DelayedWork, Work, Workqueue};

/// Generous hang guard for waits on real conditions.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// A module that queues the item it is given and cancels it in its exit.
struct Tidy {
    work: Arc<Work>,
}

impl Module for Tidy {
    const NAME: &'static str = "tidy";
    type Params = Arc<Work>;

    fn init(ctx: &ModuleContext, work: Arc<Work>) -> InitResult<Self> {
        ctx.schedule_work(&work)?;
        Ok(Tidy { work })
    }

    fn exit(&mut self, _ctx: &ModuleContext) {
        wq::blocking::cancel_work_sync(&self.work).expect("exit runs in task context");
    }
}

fn tidy_work() -> Arc<Work> {
    Work::from_fn("tidy_work", || {})
}

#[test]
fn clean_unload_reports_nothing() {
    let loaded = module::load::<Tidy>(tidy_work()).expect("init succeeds");
    let report = loaded.unload().expect("unload from a plain thread");

    assert_eq!(report.module, "tidy");
    assert_eq!(report.leftovers, []);
    assert!(report.is_clean());
}

/// What the test gives the leaky module: a queue, and its work items.
struct LeakyParams {
    queue: Workqueue,
    items: Vec<Arc<Work>>,
}

/// A module whose init queues every item it is given and whose exit does
/// nothing: the classic bug of the original examples.
struct Leaky {
    _items: Vec<Arc<Work>>,
}

impl Module for Leaky {
    const NAME: &'static str = "leaky";
    type Params = LeakyParams;

    fn init(ctx: &ModuleContext, params: LeakyParams) -> InitResult<Self> {
        for item in &params.items {
            ctx.queue_work(&params.queue, item)?;
        }
        Ok(Leaky {
            _items: params.items,
        })
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// After an unload nothing of the module's work stays allocated: the
/// module's and the tracker's references are gone, and the queue gives up
/// its own when the run ends.
#[test]
fn unload_frees_tracked_items() {
    let work = tidy_work();
    let weak = Arc::downgrade(&work);
    let loaded = module::load::<Tidy>(work).expect("init succeeds");

    loaded.unload().expect("unload from a plain thread");

    // NOTE: a flush can return just before the queue drops its reference,
    // so the last drop is waited for, not asserted at once.
    wait_until(|| weak.upgrade().is_none());
}

/// Unloading with one item running and one pending behind it reports both
/// by name, waits for the running one, and cancels the pending one, which
/// never runs, not even after the unload.
#[test]
fn leftover_work_reported_and_released() {
    let queue = Workqueue::builder("leaky_wq").ordered().build();
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let blocker_done = Arc::new(AtomicBool::new(false));
    let victim_runs = Arc::new(AtomicU32::new(0));

    let blocker = {
        let started_tx = Mutex::new(started_tx);
        let gate = gate.clone();
        let blocker_done = blocker_done.clone();
        Work::from_fn("blocker", move || {
            let _ = started_tx.lock().unwrap().send(());
            let (open, opened) = &*gate;
            let guard = open.lock().unwrap();
            let (_guard, timeout) = opened
                .wait_timeout_while(guard, HANG_GUARD, |open| !*open)
                .unwrap();
            assert!(!timeout.timed_out(), "the gate never opened");
            blocker_done.store(true, Ordering::SeqCst);
        })
    };
    let victim = {
        let victim_runs = victim_runs.clone();
        Work::from_fn("victim", move || {
            victim_runs.fetch_add(1, Ordering::SeqCst);
        })
    };

    let loaded = module::load::<Leaky>(LeakyParams {
        queue: queue.clone(),
        items: vec![blocker, victim],
    })
    .expect("init succeeds");
    started_rx
        .recv_timeout(HANG_GUARD)
        .expect("the blocker starts");

    // Open the gate only once the unload has found the blocker running.
    let report = loaded
        .unload_with(|leftover| {
            if matches!(leftover, Leftover::RunningWork { .. }) {
                *gate.0.lock().unwrap() = true;
                gate.1.notify_all();
            }
        })
        .expect("unload from a plain thread");

    assert_eq!(
        report.leftovers,
        [
            Leftover::PendingWork {
                work: "victim".into()
            },
            Leftover::RunningWork {
                work: "blocker".into()
            },
        ]
    );
    assert!(
        blocker_done.load(Ordering::SeqCst),
        "unload returned before the running item finished"
    );
    wq::blocking::flush_workqueue(&queue).expect("flush from a plain thread");
    assert_eq!(
        victim_runs.load(Ordering::SeqCst),
        0,
        "a cancelled item ran"
    );
}

static SLOW_TIMER: DelayedWork = DelayedWork::new("slow_timer", || {});

/// A module that arms a delayed item an hour away and never cancels it.
struct ForgetsTimer;

impl Module for ForgetsTimer {
    const NAME: &'static str = "forgets_timer";
    type Params = ();

    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        ctx.queue_delayed_work(wq::system_wq(), &SLOW_TIMER, Duration::from_secs(3600))?;
        Ok(ForgetsTimer)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A delayed item left on its timer is reported as delayed work and
/// cancelled. Afterwards the static item can be queued again, as the next
/// load of the module would do.
#[test]
fn delayed_work_reported_then_reusable() {
    let report = module::load::<ForgetsTimer>(())
        .expect("init succeeds")
        .unload()
        .expect("unload from a plain thread");

    assert_eq!(
        report.leftovers,
        [Leftover::DelayedWork {
            work: "slow_timer".into()
        }]
    );
    assert!(!wq::work_pending(&SLOW_TIMER));
    assert!(
        wq::schedule_delayed_work(&SLOW_TIMER, Duration::from_secs(3600)).unwrap(),
        "the unload left the item disabled"
    );
    assert!(wq::cancel_delayed_work(&SLOW_TIMER));
}

/// What the test gives the module that keeps its IRQ.
struct KeepsIrqParams {
    machine: Arc<Machine>,
    calls: Arc<AtomicU32>,
}

/// A module that requests a line and never frees it.
struct KeepsIrq {
    _registration: IrqRegistration,
}

impl Module for KeepsIrq {
    const NAME: &'static str = "keeps_irq";
    type Params = KeepsIrqParams;

    fn init(ctx: &ModuleContext, params: KeepsIrqParams) -> InitResult<Self> {
        let calls = params.calls;
        let registration = ctx.request_irq(
            &params.machine.controller(),
            9,
            IrqRequest::new("kept", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                calls.fetch_add(1, Ordering::SeqCst);
                IrqReturn::Handled
            }),
        )?;
        Ok(KeepsIrq {
            _registration: registration,
        })
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A handler still registered at unload is reported by line and name, and
/// freed: afterwards its line has no handler and a raise does not call it.
#[test]
fn registered_handler_reported_and_freed() {
    let machine = Arc::new(
        Machine::new(Config {
            nr_cpus: 1,
            ..Config::default()
        })
        .unwrap(),
    );
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let loaded = module::load::<KeepsIrq>(KeepsIrqParams {
        machine: machine.clone(),
        calls: calls.clone(),
    })
    .expect("init succeeds");
    let _ = controller.raise(9).unwrap();
    controller.synchronize_irq(9).unwrap();
    wait_until(|| calls.load(Ordering::SeqCst) == 1);

    let report = loaded.unload().expect("unload from a plain thread");

    assert_eq!(
        report.leftovers,
        [Leftover::Handler {
            irq: 9,
            handler: "kept"
        }]
    );
    assert_eq!(
        controller.line_stats(9).unwrap().handlers,
        Vec::<&str>::new()
    );
    let _ = controller.raise(9).unwrap();
    controller.synchronize_irq(9).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a freed handler ran");
}

/// A device whose only owner is its own top half: the registration lives
/// in the device, and the handler keeps the device.
struct SelfOwnedDevice {
    registration: Mutex<Option<IrqRegistration>>,
}

/// A module that leaves a handler whose drop frees its own registration.
struct HandlerOwnsIrq;

impl Module for HandlerOwnsIrq {
    const NAME: &'static str = "handler_owns_irq";
    type Params = Arc<Machine>;

    fn init(ctx: &ModuleContext, machine: Arc<Machine>) -> InitResult<Self> {
        let device = Arc::new(SelfOwnedDevice {
            registration: Mutex::new(None),
        });
        let held = device.clone();
        let registration = ctx.request_irq(
            &machine.controller(),
            11,
            IrqRequest::new(
                "self_owned",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    let _ = &held;
                    IrqReturn::Handled
                },
            ),
        )?;
        *device.registration.lock().unwrap() = Some(registration);
        Ok(HandlerOwnsIrq)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// The tracker's free of a leftover handler drops the handler, which drops
/// the last owner of the registration being freed: that nested free must
/// not wait for the one in progress.
#[test]
fn leftover_handler_owning_its_registration_freed() {
    let machine = Arc::new(
        Machine::new(Config {
            nr_cpus: 1,
            ..Config::default()
        })
        .unwrap(),
    );
    let loaded = module::load::<HandlerOwnsIrq>(machine.clone()).expect("init succeeds");

    assert_eq!(
        leftovers_of_unload(loaded),
        [Leftover::Handler {
            irq: 11,
            handler: "self_owned"
        }]
    );
    assert_eq!(
        machine.controller().line_stats(11).unwrap().handlers,
        Vec::<&str>::new()
    );
}

/// A module whose threaded handler owns its own registration: the
/// registration sits in a slot that only the thread function holds.
struct ThreadOwnsIrq;

impl Module for ThreadOwnsIrq {
    const NAME: &'static str = "qa_thread_owns_irq";
    type Params = Arc<Machine>;

    fn init(ctx: &ModuleContext, machine: Arc<Machine>) -> InitResult<Self> {
        let slot: Arc<Mutex<Option<IrqRegistration>>> = Arc::new(Mutex::new(None));
        let held = slot.clone();
        let registration = ctx.request_threaded_irq(
            &machine.controller(),
            12,
            ThreadedIrq::new("thread_owned", IrqFlags::EDGE.oneshot(), move || {
                let _ = &held;
                IrqReturn::Handled
            }),
        )?;
        *slot.lock().unwrap() = Some(registration);
        Ok(ThreadOwnsIrq)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// The tracker's free of a leftover threaded handler joins its IRQ thread.
/// That thread then drops the thread function, and with it the last owner
/// of the registration being freed: its nested free runs on the IRQ
/// thread, not on the freeing one, and must not wait for the free lock.
#[test]
fn leftover_thread_fn_owning_registration_freed() {
    let machine = Arc::new(
        Machine::new(Config {
            nr_cpus: 1,
            ..Config::default()
        })
        .unwrap(),
    );
    let loaded = module::load::<ThreadOwnsIrq>(machine.clone()).expect("init succeeds");

    assert_eq!(
        leftovers_of_unload(loaded),
        [Leftover::Handler {
            irq: 12,
            handler: "thread_owned"
        }]
    );
}

/// Unloads `loaded` on a plain thread and returns what it left, failing
/// when the unload does not end within the hang guard.
fn leftovers_of_unload<M: Module + Send>(loaded: LoadedModule<M>) -> Vec<Leftover> {
    let (done, unloaded) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(loaded.unload().map(|report| report.leftovers));
    });
    unloaded
        .recv_timeout(HANG_GUARD)
        .expect("the unload deadlocked")
        .unwrap_or_else(|error| panic!("unload from a plain thread: {}", error.error))
}

/// A module whose init arms a timer and then fails.
struct FailsInit;

static FAILED_TIMER: DelayedWork = DelayedWork::new("failed_timer", || {});

impl Module for FailsInit {
    const NAME: &'static str = "fails_init";
    type Params = ();

    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        ctx.queue_delayed_work(wq::system_wq(), &FAILED_TIMER, Duration::from_secs(3600))?;
        Err("no such device".into())
    }

    fn exit(&mut self, _ctx: &ModuleContext) {
        unreachable!("a module whose init failed is never exited");
    }
}

/// A failed init is an error naming the module, and what the init had
/// registered is released and listed.
#[test]
fn failed_init_releases_work() {
    let error = module::load::<FailsInit>(()).unwrap_err();

    let ModuleError::InitFailed {
        module,
        source,
        leftovers,
    } = error
    else {
        panic!("expected InitFailed, got {error:?}");
    };
    assert_eq!(module, "fails_init");
    assert_eq!(source.to_string(), "no such device");
    assert_eq!(
        leftovers,
        [Leftover::DelayedWork {
            work: "failed_timer".into()
        }]
    );
    assert!(!wq::work_pending(&FAILED_TIMER));
}

/// A module whose init requests a line another driver holds.
struct BusyLine;

impl Module for BusyLine {
    const NAME: &'static str = "busy_line";
    type Params = irq_sim::Controller;

    fn init(ctx: &ModuleContext, controller: irq_sim::Controller) -> InitResult<Self> {
        let _registration = ctx.request_irq(
            &controller,
            12,
            IrqRequest::new("second", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
                IrqReturn::Handled
            }),
        )?;
        Ok(BusyLine)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// An init that fails on its own context's request names the module once:
/// the context's error already carries the name.
#[test]
fn failed_init_names_module_once() {
    let machine = Machine::new(Config::default()).unwrap();
    let _holder = driver::irq::request_irq(
        &machine.controller(),
        12,
        IrqRequest::new("first", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
            IrqReturn::Handled
        }),
    )
    .unwrap();

    let message = module::load::<BusyLine>(machine.controller())
        .unwrap_err()
        .to_string();

    assert_eq!(message.matches("busy_line").count(), 1, "{message}");
    assert!(
        message.starts_with("module busy_line failed to initialize: "),
        "{message}"
    );
    assert!(message.contains("busy"), "{message}");
}

/// A module whose init passes its context's error on inside a
/// `ProbeError`, as a helper shared with a driver's probe returns it.
struct BusyLineInProbeError;

impl Module for BusyLineInProbeError {
    const NAME: &'static str = "busy_probe";
    type Params = irq_sim::Controller;

    fn init(ctx: &ModuleContext, controller: irq_sim::Controller) -> InitResult<Self> {
        let request = IrqRequest::new("second", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
            IrqReturn::Handled
        });
        let _registration = ctx
            .request_irq(&controller, 13, request)
            .map_err(driver::ProbeError::Module)?;
        Ok(BusyLineInProbeError)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A `ProbeError` shows its context error unchanged, so an init failing
/// with one names the module once too.
#[test]
fn failed_init_in_probe_error_names_module_once() {
    let machine = Machine::new(Config::default()).unwrap();
    let _holder = driver::irq::request_irq(
        &machine.controller(),
        13,
        IrqRequest::new("first", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
            IrqReturn::Handled
        }),
    )
    .unwrap();

    let message = module::load::<BusyLineInProbeError>(machine.controller())
        .unwrap_err()
        .to_string();

    assert_eq!(message.matches("busy_probe").count(), 1, "{message}");
    assert!(message.contains("irq 13 is busy"), "{message}");
}

/// A module whose exit panics with its timer still armed.
struct PanicsInExit;

static PANIC_TIMER: DelayedWork = DelayedWork::new("panic_timer", || {});

impl Module for PanicsInExit {
    const NAME: &'static str = "panics_in_exit";
    type Params = ();

    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        ctx.queue_delayed_work(wq::system_wq(), &PANIC_TIMER, Duration::from_secs(3600))?;
        Ok(PanicsInExit)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {
        panic!("exit went wrong");
    }
}

/// A panicking exit is reported, and the tracker still releases the
/// module's work.
#[test]
fn exit_panic_contained() {
    let report = module::load::<PanicsInExit>(())
        .expect("init succeeds")
        .unload()
        .expect("unload from a plain thread");

    assert_eq!(report.exit_panic.as_deref(), Some("exit went wrong"));
    assert_eq!(
        report.leftovers,
        [Leftover::DelayedWork {
            work: "panic_timer".into()
        }]
    );
    assert!(!wq::work_pending(&PANIC_TIMER));
}

/// A module that keeps its context, to queue through it later.
struct KeepsContext {
    ctx: ModuleContext,
}

static LATE_WORK: Work = Work::new("late_work", || {});

impl Module for KeepsContext {
    const NAME: &'static str = "keeps_context";
    type Params = ();

    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(KeepsContext { ctx: ctx.clone() })
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// Queueing through the context of an unloaded module is rejected with an
/// error naming the module and the item, and queues nothing.
#[test]
fn context_rejects_after_unload() {
    let loaded = module::load::<KeepsContext>(()).expect("init succeeds");
    let ctx = loaded.state().ctx.clone();
    loaded.unload().expect("unload from a plain thread");

    let error = ctx.schedule_work(&LATE_WORK).unwrap_err();

    assert!(
        matches!(
            &error,
            ModuleError::Unloaded { module: "keeps_context", what }
                if what == "work item \"late_work\""
        ),
        "unexpected error: {error:?}"
    );
    assert_eq!(
        error.to_string(),
        "module keeps_context is unloading or unloaded, so its context takes nothing new: \
         work item \"late_work\" was refused"
    );
    assert!(!wq::work_pending(&LATE_WORK));
}

/// Unloading in a top half is rejected through `might_sleep`, naming the
/// line and the handler, and hands the module back still loaded.
#[test]
fn unload_in_top_half_rejected() {
    let loaded = module::load::<Tidy>(tidy_work()).expect("init succeeds");

    let (error, loaded) = {
        let _irq = irq_sim::context::enter_hardirq(4, "sleepy");
        loaded.unload().unwrap_err().into_parts()
    };

    let ModuleError::InvalidContext { module, source } = &error else {
        panic!("expected InvalidContext, got {error:?}");
    };
    assert_eq!(*module, "tidy");
    assert_eq!(source.irq, 4);
    assert_eq!(source.handler, "sleepy");
    assert!(loaded.unload().expect("unload in task context").is_clean());
}

/// Unloading on the thread of a current-thread runtime is rejected rather
/// than stopping that runtime.
#[test]
fn unload_in_current_thread_runtime_rejected() {
    let loaded = module::load::<Tidy>(tidy_work()).expect("init succeeds");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let rejected = runtime.block_on(async move { loaded.unload().unwrap_err() });
    assert_eq!(
        rejected.to_string(),
        ModuleError::BlockingInRuntime { module: "tidy" }.to_string()
    );
    let (error, loaded) = rejected.into_parts();

    assert!(
        matches!(error, ModuleError::BlockingInRuntime { module: "tidy" }),
        "unexpected error: {error:?}"
    );
    assert!(
        loaded
            .unload()
            .expect("unload on a plain thread")
            .is_clean()
    );
}

/// Waits until `condition` holds, failing after the hang guard.
fn wait_until(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A module with its own queue and a poll that re-arms itself, whose exit
/// destroys the queue without cancelling the poll first.
struct ForgetsPoll {
    queue: Workqueue,
}

impl Module for ForgetsPoll {
    const NAME: &'static str = "forgets_poll";
    type Params = Arc<AtomicU32>;

    fn init(ctx: &ModuleContext, runs: Arc<AtomicU32>) -> InitResult<Self> {
        let queue = Workqueue::builder("poll_wq").build();
        let poll = {
            let queue = queue.clone();
            DelayedWork::from_fn_cyclic("sensor/poll", move |me| {
                let me = me.clone();
                move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if let Some(me) = me.upgrade() {
                        let _ = wq::queue_delayed_work(&queue, &me, Duration::from_millis(1));
                    }
                }
            })
        };
        ctx.queue_delayed_work(&queue, &poll, Duration::from_millis(1))?;
        Ok(ForgetsPoll { queue })
    }

    fn exit(&mut self, _ctx: &ModuleContext) {
        // Wrong: the poll re-arms itself during the drain.
        wq::blocking::destroy_workqueue(&self.queue).expect("exit runs in task context");
    }
}

/// The destroy ends, as the drain cancels the re-armed poll, and the
/// unload reports the poll that the exit should have cancelled.
#[test]
fn rearm_cancelled_by_a_drain_reported() {
    let runs = Arc::new(AtomicU32::new(0));
    let loaded = module::load::<ForgetsPoll>(runs.clone()).expect("init succeeds");
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while runs.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the poll never ran twice"
        );
        std::thread::yield_now();
    }
    let report = loaded.unload().expect("unload from a plain thread");

    assert_eq!(
        report.leftovers,
        [Leftover::RearmedDuringDrain {
            work: "sensor/poll".into()
        }]
    );
    assert!(!report.is_clean());
    assert_eq!(
        report.leftovers[0].to_string(),
        "delayed work \"sensor/poll\" was armed by its queue's own work while the queue \
         drained, and the drain cancelled it; cancel it before destroying or draining its queue"
    );
}

/// A module that allocates a queue through its context, queues an
/// untracked item on it, and destroys the queue in its exit only when
/// `tidy` is set.
struct QueueOwner {
    queue: Workqueue,
    tidy: bool,
}

impl Module for QueueOwner {
    const NAME: &'static str = "queue_owner";
    type Params = (bool, Arc<Work>);

    fn init(ctx: &ModuleContext, (tidy, work): (bool, Arc<Work>)) -> InitResult<Self> {
        let queue = ctx.alloc_ordered_workqueue("owned", wq::WqFlags::NONE)?;
        wq::queue_work(&queue, &work).expect("a new queue accepts work");
        Ok(QueueOwner { queue, tidy })
    }

    fn exit(&mut self, _ctx: &ModuleContext) {
        if self.tidy {
            wq::blocking::destroy_workqueue(&self.queue).expect("exit runs in task context");
        }
    }
}

/// A queue the exit forgot is reported and destroyed, which runs what it
/// still held; one the exit destroyed leaves the report clean.
#[test]
fn undestroyed_queue_reported_and_destroyed() {
    for tidy in [false, true] {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let work = Work::from_fn("on_owned_queue", move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let loaded = module::load::<QueueOwner>((tidy, work)).expect("init succeeds");
        let queue = loaded.state().queue.clone();

        let report = loaded.unload().expect("unload from a plain thread");

        assert!(queue.is_destroyed(), "tidy: {tidy}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "tidy: {tidy}");
        if tidy {
            assert!(report.is_clean(), "{report:?}");
        } else {
            assert_eq!(
                report.leftovers,
                [Leftover::Workqueue {
                    queue: "owned".into()
                }]
            );
        }
    }
}

/// A rejected unload converts with `?` into the boxed error that anyhow
/// and most applications use, even for a module that is not `Sync`.
#[test]
fn unload_error_is_send_and_sync() {
    fn boxed<M: Module>(error: UnloadError<M>) -> Box<dyn std::error::Error + Send + Sync> {
        error.into()
    }
    struct Unshared(std::cell::Cell<u32>);
    impl Module for Unshared {
        const NAME: &'static str = "unshared";
        type Params = ();
        fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
            Ok(Unshared(std::cell::Cell::new(0)))
        }
        fn exit(&mut self, _ctx: &ModuleContext) {
            self.0.set(1);
        }
    }
    let loaded = module::load::<Unshared>(()).expect("init succeeds");
    let rejected = {
        let _irq = irq_sim::context::enter_hardirq(4, "sleepy");
        loaded.unload().unwrap_err()
    };
    let message = rejected.error.to_string();
    let boxed = boxed(rejected);
    assert_eq!(boxed.to_string(), message);
    assert!(boxed.source().is_none());
    // Dropping the box drops the module, which unloads it.
}

#[test]
fn leftover_messages_name_the_fix() {
    let work = || "rx".to_string();
    let cases = [
        (
            Leftover::PendingWork { work: work() },
            "work \"rx\" still pending; cancelled: cancel it with cancel_work_sync in the \
             module's exit",
        ),
        (
            Leftover::DelayedWork { work: work() },
            "delayed work \"rx\" still pending; cancelled: cancel it with \
             cancel_delayed_work_sync in the module's exit",
        ),
        (
            Leftover::RunningWork { work: work() },
            "work \"rx\" still running; waited for it: cancel it with cancel_work_sync, or \
             cancel_delayed_work_sync for delayed work, in the module's exit",
        ),
        (
            Leftover::Handler {
                irq: 41,
                handler: "nic_rx",
            },
            "handler \"nic_rx\" still registered on irq 41; freed: call free_irq in the \
             module's exit",
        ),
    ];
    for (leftover, expected) in cases {
        assert_eq!(leftover.to_string(), expected, "{leftover:?}");
    }
}
