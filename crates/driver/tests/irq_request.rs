//! `request_irq` and `request_threaded_irq`: sharing, threaded handlers,
//! ONESHOT, and what freeing a registration waits for.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use driver::IrqError;
use driver::irq::{self, ThreadedIrq};
use irq_sim::{
    Config, Controller, FreeError, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine,
    RequestError, SpuriousConfig, Trigger,
};

mod common;

use common::{HANG_GUARD, wait_until};

fn machine() -> Machine {
    Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap()
}

/// A top half that counts its calls and returns `result`.
fn counting(
    calls: &Arc<AtomicU32>,
    result: IrqReturn,
) -> impl FnMut(&mut HardIrqContext<'_>) -> IrqReturn + Send + 'static {
    let calls = calls.clone();
    move |_: &mut HardIrqContext<'_>| {
        calls.fetch_add(1, Ordering::SeqCst);
        result
    }
}

/// A gate a thread function waits on until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        let guard = self.0.0.lock().unwrap();
        let (_guard, timeout) = self
            .0
            .1
            .wait_timeout_while(guard, HANG_GUARD, |open| !*open)
            .unwrap();
        assert!(!timeout.timed_out(), "the gate never opened");
    }
}

fn raise(controller: &Controller, irq: u32) {
    let _ = controller.raise(irq).unwrap();
}

#[test]
fn drop_frees_the_handler() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let registration = irq::request_irq(
        &controller,
        5,
        IrqRequest::new(
            "dropped",
            IrqFlags::EDGE,
            counting(&calls, IrqReturn::Handled),
        ),
    )
    .unwrap();
    raise(&controller, 5);
    wait_until("the handler ran", || calls.load(Ordering::SeqCst) == 1);

    drop(registration);

    assert_eq!(
        controller.line_stats(5).unwrap().handlers,
        Vec::<&str>::new()
    );
    raise(&controller, 5);
    controller.synchronize_irq(5).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a freed handler ran");
    let again = irq::request_irq(
        &controller,
        5,
        IrqRequest::new(
            "again",
            IrqFlags::EDGE,
            counting(&calls, IrqReturn::Handled),
        ),
    );
    assert!(again.is_ok(), "the line stayed busy: {again:?}");
}

/// A second explicit free is a double free, as `free_irq` calls it, and
/// the drop after an explicit free stays silent.
#[test]
fn second_free_is_a_double_free() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let registration = irq::request_irq(
        &controller,
        6,
        IrqRequest::new(
            "twice",
            IrqFlags::EDGE,
            counting(&calls, IrqReturn::Handled),
        ),
    )
    .unwrap();

    registration.free().unwrap();
    let error = registration.free().unwrap_err();

    assert!(
        matches!(
            error,
            IrqError::Free {
                irq: 6,
                handler: "twice",
                source: FreeError::NotRegistered { irq: 6, .. },
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("double free"), "{error}");
    drop(registration);
    assert!(controller.line_stats(6).unwrap().handlers.is_empty());
}

/// Fails if an error's message contains the message of its `source()`,
/// which a reporter that prints the chain (anyhow's `{:#}`) prints twice.
fn assert_chain_not_repeated(error: &dyn std::error::Error) {
    let mut outer = error.to_string();
    let mut next = error.source();
    while let Some(inner) = next {
        let text = inner.to_string();
        assert!(
            !outer.contains(&text),
            "{outer:?} repeats the message of its source {text:?}"
        );
        outer = text;
        next = inner.source();
    }
}

/// The request, free, line, module and probe errors embed the message of
/// the reason they wrap, so `source()` does not return that reason again.
#[test]
fn error_chain_names_each_reason_once() {
    let machine = machine();
    let controller = machine.controller();
    let handled = |_: &mut HardIrqContext<'_>| IrqReturn::Handled;
    let holder = irq::request_irq(
        &controller,
        8,
        IrqRequest::new("holder", IrqFlags::EDGE, handled),
    )
    .unwrap();

    let busy = irq::request_irq(
        &controller,
        8,
        IrqRequest::new("second", IrqFlags::EDGE, handled),
    )
    .unwrap_err();
    assert_chain_not_repeated(&busy);

    let unbalanced = holder.enable_irq().unwrap_err();
    assert_chain_not_repeated(&unbalanced);

    holder.free().unwrap();
    let double_free = holder.free().unwrap_err();
    assert_chain_not_repeated(&double_free);

    let in_module = driver::ModuleError::Irq {
        module: "chained",
        source: busy,
    };
    assert_chain_not_repeated(&in_module);

    let in_probe = driver::ProbeError::Module(in_module);
    assert_chain_not_repeated(&in_probe);
}

/// Two handlers share a line only if both ask to share with the same
/// trigger type, and then each is called for every interrupt.
#[test]
fn shared_line_calls_every_handler() {
    let machine = machine();
    let controller = machine.controller();
    let first_calls = Arc::new(AtomicU32::new(0));
    let second_calls = Arc::new(AtomicU32::new(0));
    let shared_edge = IrqFlags::EDGE.shared();
    let _first = irq::request_irq(
        &controller,
        6,
        IrqRequest::new(
            "first",
            shared_edge,
            counting(&first_calls, IrqReturn::None),
        ),
    )
    .unwrap();
    let _second = irq::request_irq(
        &controller,
        6,
        IrqRequest::new(
            "second",
            shared_edge,
            counting(&second_calls, IrqReturn::Handled),
        ),
    )
    .unwrap();

    raise(&controller, 6);

    wait_until("both handlers ran", || {
        first_calls.load(Ordering::SeqCst) == 1 && second_calls.load(Ordering::SeqCst) == 1
    });
}

/// A sharing request with another trigger type is rejected with an error
/// naming the line, the handler and both trigger types.
#[test]
fn shared_trigger_mismatch_rejected() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let _edge = irq::request_irq(
        &controller,
        7,
        IrqRequest::new(
            "edge",
            IrqFlags::EDGE.shared(),
            counting(&calls, IrqReturn::Handled),
        ),
    )
    .unwrap();

    let error = irq::request_irq(
        &controller,
        7,
        IrqRequest::new(
            "level",
            IrqFlags::LEVEL.shared(),
            counting(&calls, IrqReturn::Handled),
        ),
    )
    .unwrap_err();

    assert_eq!(
        error,
        IrqError::Request {
            irq: 7,
            handler: "level",
            source: RequestError::TriggerMismatch {
                irq: 7,
                line: Trigger::Edge,
                requested: Trigger::Level,
            },
        }
    );
    assert!(error.to_string().contains("irq 7"), "{error}");
    assert!(error.to_string().contains("\"level\""), "{error}");
}

/// A second request on a line held without sharing is rejected, naming the
/// holder.
#[test]
fn exclusive_line_busy() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let _holder = irq::request_irq(
        &controller,
        8,
        IrqRequest::new(
            "holder",
            IrqFlags::EDGE,
            counting(&calls, IrqReturn::Handled),
        ),
    )
    .unwrap();

    let error = irq::request_irq(
        &controller,
        8,
        IrqRequest::new(
            "late",
            IrqFlags::EDGE.shared(),
            counting(&calls, IrqReturn::Handled),
        ),
    )
    .unwrap_err();

    assert!(
        matches!(
            error,
            IrqError::Request {
                irq: 8,
                handler: "late",
                source: RequestError::Busy {
                    irq: 8,
                    holder: "holder"
                },
            }
        ),
        "unexpected error: {error:?}"
    );
}

/// A top half that returns `WakeThread` has the thread function run in task
/// context, on the registration's IRQ thread.
#[test]
fn wake_thread_runs_thread_fn_in_task_context() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let (ran_tx, ran_rx) = mpsc::channel();
    let ran_tx = Mutex::new(ran_tx);
    let registration = irq::request_threaded_irq(
        &controller,
        10,
        ThreadedIrq::new("threaded", IrqFlags::EDGE, move || {
            let name = std::thread::current().name().map(str::to_string);
            let _ = ran_tx.lock().unwrap().send((irq_sim::in_task(), name));
            IrqReturn::Handled
        })
        .top_half(counting(&calls, IrqReturn::WakeThread)),
    )
    .unwrap();

    raise(&controller, 10);

    let (in_task, name) = ran_rx.recv_timeout(HANG_GUARD).expect("the thread ran");
    assert!(in_task, "the thread function ran in hard-IRQ context");
    assert_eq!(name.as_deref(), Some("irq/10-threaded"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    wait_until("the run is counted", || registration.thread_runs() == 1);
}

/// With ONESHOT the line stays masked from the top half's return until the
/// thread function returns: a raise meanwhile is held back and delivered
/// only afterwards.
#[test]
fn oneshot_masks_until_thread_returns() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let gate = Gate::default();
    let (started_tx, started_rx) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    let thread_gate = gate.clone();
    let _registration = irq::request_threaded_irq(
        &controller,
        11,
        ThreadedIrq::new("oneshot", IrqFlags::EDGE.oneshot(), move || {
            let _ = started_tx.lock().unwrap().send(());
            thread_gate.wait();
            IrqReturn::Handled
        })
        .top_half(counting(&calls, IrqReturn::WakeThread)),
    )
    .unwrap();

    raise(&controller, 11);
    started_rx.recv_timeout(HANG_GUARD).expect("the thread ran");
    assert_eq!(controller.line_state(11).unwrap().oneshot, 1);
    raise(&controller, 11);
    // The top halves only: the thread function waits for the gate.
    controller.synchronize_hardirq(11).unwrap();

    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the top half ran again while the thread function ran"
    );
    gate.open();
    wait_until("the held-back raise is delivered", || {
        calls.load(Ordering::SeqCst) == 2
    });
    started_rx
        .recv_timeout(HANG_GUARD)
        .expect("the thread ran again");
}

/// A threaded request with neither a top half nor ONESHOT is rejected, and
/// leaves the line free.
#[test]
fn threaded_without_top_half_or_oneshot_rejected() {
    let machine = machine();
    let controller = machine.controller();

    let error = irq::request_threaded_irq(
        &controller,
        12,
        ThreadedIrq::new("bare", IrqFlags::LEVEL, || IrqReturn::Handled),
    )
    .unwrap_err();

    assert_eq!(
        error,
        IrqError::ThreadedWithoutTopHalf {
            irq: 12,
            handler: "bare"
        }
    );
    assert_eq!(
        controller.line_stats(12).unwrap().handlers,
        Vec::<&str>::new()
    );
}

/// A threaded request with no top half but ONESHOT runs the thread function
/// for every interrupt.
#[test]
fn oneshot_without_top_half_wakes_thread() {
    let machine = machine();
    let controller = machine.controller();
    let runs = Arc::new(AtomicU32::new(0));
    let thread_runs = runs.clone();
    let _registration = irq::request_threaded_irq(
        &controller,
        13,
        ThreadedIrq::new("thread_only", IrqFlags::EDGE.oneshot(), move || {
            thread_runs.fetch_add(1, Ordering::SeqCst);
            IrqReturn::Handled
        }),
    )
    .unwrap();

    for expected in 1..=3 {
        raise(&controller, 13);
        wait_until("the thread function ran", || {
            runs.load(Ordering::SeqCst) == expected
        });
    }
}

/// Freeing waits for a running thread function, and afterwards neither the
/// top half nor the thread function runs again.
#[test]
fn free_waits_for_thread_fn() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let gate = Gate::default();
    let freed = Arc::new(AtomicBool::new(false));
    let freed_seen_by_thread = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    let registration = {
        let gate = gate.clone();
        let freed = freed.clone();
        let freed_seen_by_thread = freed_seen_by_thread.clone();
        irq::request_threaded_irq(
            &controller,
            14,
            ThreadedIrq::new("slow_thread", IrqFlags::EDGE, move || {
                let _ = started_tx.lock().unwrap().send(());
                gate.wait();
                freed_seen_by_thread.store(freed.load(Ordering::SeqCst), Ordering::SeqCst);
                IrqReturn::Handled
            })
            .top_half(counting(&calls, IrqReturn::WakeThread)),
        )
        .unwrap()
    };
    raise(&controller, 14);
    started_rx.recv_timeout(HANG_GUARD).expect("the thread ran");

    let freer = {
        let freed = freed.clone();
        std::thread::spawn(move || {
            registration.free().unwrap();
            freed.store(true, Ordering::SeqCst);
            registration
        })
    };
    // Once the top half is gone, the free is waiting for the thread.
    wait_until("the top half is freed", || {
        controller.line_stats(14).unwrap().handlers.is_empty()
    });
    assert!(
        !freed.load(Ordering::SeqCst),
        "free returned during the run"
    );
    gate.open();
    let registration = freer.join().unwrap();

    assert!(
        !freed_seen_by_thread.load(Ordering::SeqCst),
        "free returned before the thread function did"
    );
    raise(&controller, 14);
    controller.synchronize_irq(14).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a freed top half ran");
    assert_eq!(registration.thread_runs(), 1, "a freed thread function ran");
    assert!(!registration.is_registered());
}

/// `synchronize_irq` and `disable_irq` return only after the thread
/// function has served the request made before them, as Linux waits for
/// the IRQ threads of a line. That holds on the threaded registration, on
/// the controller, and on another handler of the shared line.
#[test]
fn synchronize_and_disable_wait_for_thread_fn() {
    let ops = [
        "registration.synchronize_irq",
        "registration.disable_irq",
        "controller.synchronize_irq",
        "controller.disable_irq",
        "co-sharer.synchronize_irq",
        "co-sharer.disable_irq",
    ];
    for op in ops {
        let machine = machine();
        let controller = machine.controller();
        let calls = Arc::new(AtomicU32::new(0));
        let served = Arc::new(AtomicU32::new(0));
        let gate = Gate::default();
        let (started_tx, started_rx) = mpsc::channel();
        let started_tx = Mutex::new(started_tx);
        let registration = {
            let gate = gate.clone();
            let served = served.clone();
            irq::request_threaded_irq(
                &controller,
                15,
                ThreadedIrq::new("slow_thread", IrqFlags::EDGE.shared(), move || {
                    let _ = started_tx.lock().unwrap().send(());
                    gate.wait();
                    served.fetch_add(1, Ordering::SeqCst);
                    IrqReturn::Handled
                })
                .top_half(counting(&calls, IrqReturn::WakeThread)),
            )
            .unwrap()
        };
        let co_sharer = irq::request_irq(
            &controller,
            15,
            IrqRequest::new(
                "co_sharer",
                IrqFlags::EDGE.shared(),
                |_: &mut HardIrqContext<'_>| IrqReturn::None,
            ),
        )
        .unwrap();
        raise(&controller, 15);
        started_rx.recv_timeout(HANG_GUARD).expect("the thread ran");

        let (returned_tx, returned_rx) = mpsc::channel();
        let waiter = {
            let controller = controller.clone();
            let served = served.clone();
            std::thread::spawn(move || {
                match op {
                    "registration.synchronize_irq" => registration.synchronize_irq().unwrap(),
                    "registration.disable_irq" => {
                        assert_eq!(registration.disable_irq().unwrap(), 1);
                    }
                    "controller.synchronize_irq" => controller.synchronize_irq(15).unwrap(),
                    "controller.disable_irq" => {
                        assert_eq!(controller.disable_irq(15).unwrap(), 1);
                    }
                    "co-sharer.synchronize_irq" => co_sharer.synchronize_irq().unwrap(),
                    _ => assert_eq!(co_sharer.disable_irq().unwrap(), 1),
                }
                returned_tx.send(()).unwrap();
                // The thread function counts its run before it returns, so
                // a wait that returned early reads 0.
                (served.load(Ordering::SeqCst), registration, co_sharer)
            })
        };
        // A wait that does not wait for the thread function returns at
        // once; one that does cannot return before the gate opens.
        let early = returned_rx.recv_timeout(Duration::from_millis(100));
        assert!(
            early.is_err(),
            "{op} returned while the thread function ran"
        );
        gate.open();
        let (served_at_return, registration, co_sharer) = waiter.join().unwrap();

        assert_eq!(
            served_at_return, 1,
            "{op} returned before the thread function"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{op}");
        drop(co_sharer);
        drop(registration);
    }
}

/// A ONESHOT hold outlives the free of its handler until the thread
/// function returns: the line stays masked for the next handler meanwhile,
/// and the old thread's end of its hold does not end the new handler's.
#[test]
fn oneshot_hold_survives_free_and_request() {
    let machine = machine();
    let controller = machine.controller();
    let (old_gate, new_gate) = (Gate::default(), Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let old_started = Mutex::new(started_tx.clone());
    let new_started = Mutex::new(started_tx);
    let old = {
        let gate = old_gate.clone();
        irq::request_threaded_irq(
            &controller,
            20,
            ThreadedIrq::new("old", IrqFlags::EDGE.oneshot(), move || {
                let _ = old_started.lock().unwrap().send("old");
                gate.wait();
                IrqReturn::Handled
            }),
        )
        .unwrap()
    };
    raise(&controller, 20);
    assert_eq!(started_rx.recv_timeout(HANG_GUARD), Ok("old"));
    // The free removes the top half, then waits for the thread function.
    let freer = std::thread::spawn(move || old.free());
    wait_until("the old handler is removed", || {
        controller.line_stats(20).unwrap().handlers.is_empty()
    });
    assert_eq!(controller.line_state(20).unwrap().oneshot, 1);

    let new_calls = Arc::new(AtomicU32::new(0));
    let _new = {
        let gate = new_gate.clone();
        irq::request_threaded_irq(
            &controller,
            20,
            ThreadedIrq::new("new", IrqFlags::EDGE.oneshot(), move || {
                let _ = new_started.lock().unwrap().send("new");
                gate.wait();
                IrqReturn::Handled
            })
            .top_half(counting(&new_calls, IrqReturn::WakeThread)),
        )
        .unwrap()
    };
    raise(&controller, 20);
    controller.synchronize_hardirq(20).unwrap();
    assert_eq!(
        new_calls.load(Ordering::SeqCst),
        0,
        "the line fired while the old thread function held it"
    );

    old_gate.open();
    freer.join().unwrap().unwrap();
    assert_eq!(started_rx.recv_timeout(HANG_GUARD), Ok("new"));
    assert_eq!(new_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        controller.line_state(20).unwrap().oneshot,
        1,
        "the old thread ended the new handler's hold"
    );
    new_gate.open();
    wait_until("the new hold ends", || {
        controller.line_state(20).unwrap().oneshot == 0
    });
}

/// A thread function that panics is reported, and the thread serves the
/// next interrupt.
#[test]
fn thread_fn_panic_contained() {
    let machine = machine();
    let controller = machine.controller();
    let runs = Arc::new(AtomicU32::new(0));
    let thread_runs = runs.clone();
    let registration = irq::request_threaded_irq(
        &controller,
        15,
        ThreadedIrq::new("panicky", IrqFlags::EDGE.oneshot(), move || {
            if thread_runs.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first run fails");
            }
            IrqReturn::Handled
        }),
    )
    .unwrap();

    raise(&controller, 15);
    wait_until("the panicking run is over", || {
        registration.thread_runs() == 1
    });
    raise(&controller, 15);

    wait_until("the second run is over", || registration.thread_runs() == 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(controller.line_state(15).unwrap().oneshot, 0);
}

/// `disable_irq` and `enable_irq` on a registration pass through to its
/// line: a raise while disabled is held back until the enable.
#[test]
fn disable_and_enable_pass_through() {
    let machine = machine();
    let controller = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let registration = irq::request_irq(
        &controller,
        16,
        IrqRequest::new(
            "toggled",
            IrqFlags::EDGE,
            counting(&calls, IrqReturn::Handled),
        ),
    )
    .unwrap();

    assert_eq!(registration.disable_irq().unwrap(), 1);
    raise(&controller, 16);
    controller.synchronize_irq(16).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0, "delivered while disabled");
    registration.enable_irq().unwrap();

    wait_until("the held-back raise is delivered", || {
        calls.load(Ordering::SeqCst) == 1
    });
    assert!(matches!(
        registration.enable_irq(),
        Err(IrqError::Line {
            irq: 16,
            handler: "toggled",
            ..
        })
    ));
}

/// A top half that calls a sleeping API gets an error from `might_sleep`
/// that names the API, the line and the handler, and nothing is requested.
#[test]
fn sleeping_call_in_top_half_rejected() {
    let machine = machine();
    let controller = machine.controller();
    let outcome = Arc::new(Mutex::new(None));
    let _registration = {
        let outcome = outcome.clone();
        irq::request_irq(
            &controller,
            17,
            IrqRequest::new(
                "sleepy",
                IrqFlags::EDGE,
                move |ctx: &mut HardIrqContext<'_>| {
                    let nested = irq::request_threaded_irq(
                        ctx.controller(),
                        18,
                        ThreadedIrq::new("nested", IrqFlags::EDGE.oneshot(), || IrqReturn::Handled),
                    );
                    *outcome.lock().unwrap() = Some(nested.map(|_| ()));
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap()
    };

    raise(&controller, 17);
    wait_until("the top half ran", || outcome.lock().unwrap().is_some());

    let error = outcome.lock().unwrap().take().unwrap().unwrap_err();
    let IrqError::Request {
        irq: 18,
        handler: "nested",
        source: RequestError::InvalidContext(context),
    } = &error
    else {
        panic!("expected an InvalidContext rejection, got {error:?}");
    };
    assert_eq!(context.api, "request_threaded_irq");
    assert_eq!(context.irq, 17);
    assert_eq!(context.handler, "sleepy");
    assert!(controller.line_stats(18).unwrap().handlers.is_empty());
}

/// On a shared ONESHOT line, the line stays masked until the thread
/// function of every handler that asked for its thread has returned.
#[test]
fn shared_oneshot_waits_for_every_thread() {
    let machine = machine();
    let controller = machine.controller();
    let flags = IrqFlags::LEVEL.shared().oneshot();
    let gates = [Gate::default(), Gate::default()];
    let (started_tx, started_rx) = mpsc::channel();
    let mut registrations = Vec::new();
    for (name, gate) in ["first_dev", "second_dev"].into_iter().zip(gates.clone()) {
        let started_tx = Mutex::new(started_tx.clone());
        let lower = controller.clone();
        let registration = irq::request_threaded_irq(
            &controller,
            19,
            ThreadedIrq::new(name, flags, move || {
                let _ = started_tx.lock().unwrap().send(name);
                gate.wait();
                // The thread function clears its device, which lowers the
                // shared level line.
                let _ = lower.lower(19);
                IrqReturn::Handled
            })
            .top_half(|_: &mut HardIrqContext<'_>| IrqReturn::WakeThread),
        )
        .unwrap();
        registrations.push(registration);
    }

    raise(&controller, 19);
    let mut started = [
        started_rx.recv_timeout(HANG_GUARD).unwrap(),
        started_rx.recv_timeout(HANG_GUARD).unwrap(),
    ];
    started.sort_unstable();
    assert_eq!(started, ["first_dev", "second_dev"]);
    assert_eq!(controller.line_state(19).unwrap().oneshot, 2);

    gates[0].open();
    wait_until("the first thread returns", || {
        registrations[0].thread_runs() == 1
    });
    assert_eq!(
        controller.line_state(19).unwrap().oneshot,
        1,
        "the line must stay masked for the second thread"
    );

    gates[1].open();
    wait_until("both threads have returned", || {
        controller.line_state(19).unwrap().oneshot == 0
    });
    assert_eq!(registrations[1].thread_runs(), 1);
}

/// A line whose interrupts only wake a thread function that never handles
/// them is disabled as spurious, because Linux judges such interrupts by
/// the thread functions' results. One whose thread function handles them
/// stays enabled.
#[test]
fn deaf_thread_fn_makes_line_spurious() {
    for (returns, spurious) in [(IrqReturn::None, true), (IrqReturn::Handled, false)] {
        let machine = Machine::new(Config {
            nr_cpus: 1,
            spurious: SpuriousConfig {
                window: 100,
                threshold: 99,
                quiet: Duration::from_secs(10),
                poll_interval: Duration::from_secs(10),
            },
            ..Config::default()
        })
        .unwrap();
        let controller = machine.controller();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let registration = irq::request_threaded_irq(
            &controller,
            21,
            ThreadedIrq::new("deaf", IrqFlags::LEVEL.oneshot(), move || {
                counter.fetch_add(1, Ordering::SeqCst);
                returns
            }),
        )
        .unwrap();
        // The level stays high, so each run unmasks a line that fires
        // again, as an unserviced device's line does.
        let _ = controller.raise(21).unwrap();
        wait_until("200 thread runs or a spurious disable", || {
            runs.load(Ordering::SeqCst) >= 200 || controller.line_state(21).unwrap().spurious
        });

        assert_eq!(
            controller.line_state(21).unwrap().spurious,
            spurious,
            "thread function returning {returns:?}"
        );
        // The counters follow the same verdict: all but the first delivery
        // unhandled, or next to none. A thread run that ends before the CPU
        // judges the delivery that woke it is credited to that delivery, as
        // in Linux, and the next one then counts as unhandled.
        let stats = controller.line_stats(21).unwrap();
        if spurious {
            assert_eq!((stats.handled, stats.unhandled), (1, 100), "{stats:?}");
        } else {
            assert!(stats.unhandled * 50 <= stats.handled, "{stats:?}");
        }
        controller.lower(21).unwrap();
        drop(registration);
    }
}
