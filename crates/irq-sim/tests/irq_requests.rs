//! Handler registration: shared lines and rejected requests.

mod common;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{flush_cpu, machine, probe, wait_until};
use irq_sim::{
    Config, ConfigError, Controller, FreeError, HandlerId, HardIrqContext, IrqFlags, IrqRequest,
    IrqReturn, LineError, Machine, RequestError, Trigger,
};

const LINE: u32 = 20;
const PROBE: u32 = 99;

fn handled(_: &mut HardIrqContext<'_>) -> IrqReturn {
    IrqReturn::Handled
}

fn request(name: &'static str, flags: IrqFlags) -> IrqRequest {
    IrqRequest::new(name, flags, handled)
}

/// Every handler of a shared line is called for each interrupt, in
/// registration order.
#[test]
fn shared_line_calls_every_handler() {
    let machine = machine(1);
    let irq = machine.controller();
    let order = Arc::new(Mutex::new(Vec::new()));
    for name in ["eth0", "uart"] {
        let order = order.clone();
        irq.request_irq(
            LINE,
            IrqRequest::new(
                name,
                IrqFlags::LEVEL.shared(),
                move |ctx: &mut HardIrqContext<'_>| {
                    assert_eq!(ctx.handler(), name);
                    order.lock().unwrap().push(name);
                    ctx.controller().lower(ctx.irq()).unwrap();
                    if name == "uart" {
                        IrqReturn::Handled
                    } else {
                        IrqReturn::None
                    }
                },
            ),
        )
        .unwrap();
    }

    let _ = irq.raise(LINE).unwrap();
    wait_until("both handlers", || order.lock().unwrap().len() == 2);
    // The second handler lowers the line after it records its call: a
    // raise before the lower would be undone by it.
    irq.synchronize_irq(LINE).unwrap();
    let _ = irq.raise(LINE).unwrap();
    wait_until("both handlers again", || order.lock().unwrap().len() == 4);
    assert_eq!(*order.lock().unwrap(), ["eth0", "uart", "eth0", "uart"]);
    irq.synchronize_irq(LINE).unwrap();
    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.handled, 2);
    assert_eq!(stats.unhandled, 0);
    assert_eq!(stats.handlers, ["eth0", "uart"]);
    assert_eq!(stats.claimed_by, [0, 2]);
}

/// A second handler on a line held without sharing is rejected, naming the
/// line and the holder, and the request is handed back.
#[test]
fn busy_line_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    irq.request_irq(LINE, request("first", IrqFlags::EDGE))
        .unwrap();

    let rejected = irq
        .request_irq(LINE, request("second", IrqFlags::EDGE.shared()))
        .unwrap_err();
    assert_eq!(
        rejected.error,
        RequestError::Busy {
            irq: LINE,
            holder: "first"
        }
    );
    assert_eq!(rejected.request.name(), "second");
    let message = rejected.to_string();
    assert!(message.contains("irq 20"), "{message}");
    assert!(message.contains("\"first\""), "{message}");
}

/// A request that does not ask to share is rejected on a shared line.
#[test]
fn unshared_request_on_shared_line_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    irq.request_irq(LINE, request("first", IrqFlags::EDGE.shared()))
        .unwrap();

    let rejected = irq
        .request_irq(LINE, request("second", IrqFlags::EDGE))
        .unwrap_err();
    assert_eq!(
        rejected.error,
        RequestError::NotShared {
            irq: LINE,
            handler: "second"
        }
    );
}

/// Sharers must agree on the trigger type; the error names both, and the
/// rejected handler.
#[test]
fn trigger_mismatch_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    irq.request_irq(LINE, request("first", IrqFlags::EDGE.shared()))
        .unwrap();

    let rejected = irq
        .request_irq(LINE, request("second", IrqFlags::LEVEL.shared()))
        .unwrap_err();
    assert_eq!(
        rejected.error,
        RequestError::TriggerMismatch {
            irq: LINE,
            line: Trigger::Edge,
            requested: Trigger::Level
        }
    );
    assert_eq!(
        rejected.to_string(),
        "request_irq for handler \"second\": irq 20 trigger mismatch: the line's handlers \
         use edge, the request asks for level"
    );
}

/// A request with no trigger type (`IRQF_TRIGGER_NONE`) takes the line's,
/// as Linux's `request_irq(irq, handler, IRQF_SHARED, ...)` joins a level
/// line. On a line with no handler it is edge.
#[test]
fn no_trigger_takes_the_lines() {
    let machine = machine(1);
    let irq = machine.controller();
    let untyped = IrqFlags {
        shared: true,
        ..IrqFlags::default()
    };
    irq.request_irq(LINE, request("first", IrqFlags::LEVEL.shared()))
        .unwrap();

    irq.request_irq(LINE, request("second", untyped)).unwrap();

    assert_eq!(irq.line_stats(LINE).unwrap().trigger, Trigger::Level);
    irq.request_irq(LINE + 1, request("alone", untyped))
        .unwrap();
    assert_eq!(irq.line_stats(LINE + 1).unwrap().trigger, Trigger::Edge);
}

/// Sharers must agree on ONESHOT.
#[test]
fn oneshot_mismatch_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    irq.request_irq(LINE, request("first", IrqFlags::LEVEL.shared().oneshot()))
        .unwrap();

    let rejected = irq
        .request_irq(LINE, request("second", IrqFlags::LEVEL.shared()))
        .unwrap_err();
    assert_eq!(
        rejected.error,
        RequestError::OneshotMismatch {
            irq: LINE,
            line: true
        }
    );
}

/// A line number past the controller's lines is an error naming the line,
/// for every operation.
#[test]
fn out_of_range_line_rejected() {
    let machine = Machine::new(Config {
        nr_irqs: 32,
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap();
    let irq = machine.controller();

    let rejected = irq
        .request_irq(32, request("late", IrqFlags::EDGE))
        .unwrap_err();
    assert_eq!(
        rejected.error,
        RequestError::OutOfRange {
            irq: 32,
            nr_irqs: 32
        }
    );
    assert!(rejected.to_string().contains("irq 32"));
    let out_of_range = LineError::OutOfRange {
        irq: 32,
        nr_irqs: 32,
    };
    assert_eq!(irq.raise(32).unwrap_err(), out_of_range);
    assert_eq!(irq.lower(32).unwrap_err(), out_of_range);
    assert_eq!(irq.disable_irq(32).unwrap_err(), out_of_range);
    assert_eq!(irq.disable_irq_nosync(32).unwrap_err(), out_of_range);
    assert_eq!(irq.enable_irq(32).unwrap_err(), out_of_range);
    assert_eq!(irq.synchronize_irq(32).unwrap_err(), out_of_range);
    assert_eq!(irq.mask_irq(32).unwrap_err(), out_of_range);
    assert_eq!(
        irq.set_priority(u32::MAX, 1).unwrap_err(),
        LineError::OutOfRange {
            irq: u32::MAX,
            nr_irqs: 32
        }
    );
    assert_eq!(
        irq.set_affinity(3, 7).unwrap_err(),
        LineError::NoSuchCpu {
            irq: 3,
            cpu: 7,
            nr_cpus: 1
        }
    );
}

/// Freeing a handler twice is an error naming the line and handler.
#[test]
fn double_free_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    let id = irq
        .request_irq(LINE, request("once", IrqFlags::EDGE))
        .unwrap();

    irq.free_irq(id).unwrap();
    let error = irq.free_irq(id).unwrap_err();
    assert_eq!(
        error,
        FreeError::NotRegistered {
            irq: LINE,
            handler: "once"
        }
    );
    assert!(error.to_string().contains("irq 20"));
}

/// After `free_irq` returns the handler never runs again, and the line is
/// free for a new, different request.
#[test]
fn freed_handler_never_runs() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let id = irq
        .request_irq(
            LINE,
            IrqRequest::new("gone", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                counter.fetch_add(1, Ordering::SeqCst);
                IrqReturn::Handled
            }),
        )
        .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);
    irq.free_irq(id).unwrap();

    let _ = irq.raise(LINE).unwrap();
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    irq.request_irq(LINE, request("level now", IrqFlags::LEVEL))
        .unwrap();
}

/// Requesting or freeing a line from a top half fails through the
/// sleeping-context check instead of deadlocking.
#[test]
fn request_from_top_half_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "nested",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                let error = ctx
                    .controller()
                    .request_irq(LINE + 1, request("inner", IrqFlags::EDGE))
                    .unwrap_err()
                    .error;
                seen.lock().unwrap().push(error);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    let _ = irq.raise(LINE).unwrap();
    wait_until("the handler", || !errors.lock().unwrap().is_empty());
    let RequestError::InvalidContext(context) = errors.lock().unwrap()[0].clone() else {
        panic!("expected InvalidContext, got {:?}", errors.lock().unwrap());
    };
    assert_eq!(
        (context.api, context.irq, context.handler),
        ("request_irq", LINE, "nested")
    );
}

/// Invalid machine configurations are errors, not panics.
#[test]
fn invalid_config_rejected() {
    let error = Machine::new(Config {
        nr_irqs: 0,
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(error, ConfigError::NoLines);
    let error = Machine::new(Config {
        nr_cpus: 0,
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(error, ConfigError::NoCpus);
    let error = Machine::new(Config {
        nr_irqs: u32::MAX,
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(
        error,
        ConfigError::TooManyLines {
            requested: u32::MAX,
            max: irq_sim::machine::MAX_IRQS
        }
    );
    let error = Machine::new(Config {
        nr_cpus: 1000,
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(
        error,
        ConfigError::TooManyCpus {
            requested: 1000,
            max: irq_sim::machine::MAX_CPUS
        }
    );
    let mut config = Config::default();
    config.spurious.threshold = config.spurious.window + 1;
    assert!(matches!(
        Machine::new(config).unwrap_err(),
        ConfigError::SpuriousThreshold { .. }
    ));
    // A threshold of 0 would disable lines whose interrupts were all
    // handled.
    config.spurious.threshold = 0;
    let error = Machine::new(config).unwrap_err();
    assert_eq!(
        error,
        ConfigError::SpuriousThreshold {
            threshold: 0,
            window: 100_000
        }
    );
    assert!(
        error.to_string().contains("from 1 to the window"),
        "{error}"
    );
    config.spurious.window = 0;
    assert_eq!(
        Machine::new(config).unwrap_err(),
        ConfigError::SpuriousWindow
    );

    // A watchdog threshold of 0 would call every top half a lockup; the
    // watchdog is turned off with `enabled` instead.
    let mut config = Config::default();
    config.watchdog.threshold = std::time::Duration::ZERO;
    let error = Machine::new(config).unwrap_err();
    assert_eq!(error, ConfigError::WatchdogThreshold);
    assert!(error.to_string().contains("enabled: false"), "{error}");
    config.watchdog.enabled = false;
    assert!(Machine::new(config).is_ok());
}

/// A handler id of another machine frees nothing here, even where the
/// line and the handler's place in its chain are the same.
#[test]
fn id_from_another_machine_rejected() {
    let (first, second) = (machine(1), machine(1));
    let mine = first
        .controller()
        .request_irq(LINE, request("dev", IrqFlags::EDGE))
        .unwrap();
    let theirs = second
        .controller()
        .request_irq(LINE, request("dev", IrqFlags::EDGE))
        .unwrap();
    assert_ne!(mine, theirs);
    assert!(matches!(
        first.controller().free_irq(theirs),
        Err(FreeError::NotRegistered { irq: LINE, .. })
    ));
    assert_eq!(
        first.controller().line_stats(LINE).unwrap().handlers,
        ["dev"]
    );
    first.controller().free_irq(mine).unwrap();
}

/// Returns the scheduler state of task `tid` of this process (`R`, `S`,
/// `D`, ...), as `/proc` gives it.
fn task_state(tid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // The command name in brackets may contain spaces; the state follows it.
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name.trim_start().chars().next().unwrap()
}

/// Starts `free_irq(id)` on a thread of its own and returns once the free
/// has begun: once that thread sleeps on the line, which a running handler
/// holds.
fn free_on_other_thread(
    irq: &Controller,
    id: HandlerId,
) -> std::thread::JoinHandle<Result<(), FreeError>> {
    let (tid_sender, tid_receiver) = std::sync::mpsc::channel();
    let freer = {
        let irq = irq.clone();
        std::thread::spawn(move || {
            // SAFETY: gettid takes no arguments and touches no memory.
            tid_sender.send(unsafe { libc::gettid() }).unwrap();
            irq.free_irq(id)
        })
    };
    let tid = tid_receiver.recv().unwrap();
    wait_until("free_irq to wait for the running handler", || {
        task_state(tid) == 'S'
    });
    freer
}

/// Once `free_irq` has begun, the handler it frees is not called again,
/// even for an edge that was latched while it ran: Linux's `__free_irq`
/// removes the action under the descriptor lock, which the flow handler
/// drops while actions run.
#[test]
fn free_started_while_running_blocks_rerun() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(common::Gate::default());
    let calls = Arc::new(AtomicU32::new(0));
    let (handler_gate, handler_calls) = (gate.clone(), calls.clone());
    let id = irq
        .request_irq(
            LINE,
            IrqRequest::new(
                "freed",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    handler_calls.fetch_add(1, Ordering::SeqCst);
                    handler_gate.hold();
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
    let _ = irq.raise(LINE).unwrap();
    gate.wait_entered(1);
    // An edge latched while the handler runs.
    let _ = irq.raise(LINE).unwrap();

    let freer = free_on_other_thread(&irq, id);
    gate.open();

    freer.join().unwrap().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Nothing is left to call: the latched edge finds no handler.
    assert!(irq.line_stats(LINE).unwrap().handlers.is_empty());
}

/// On a shared line, a handler whose free began while an earlier handler
/// of the same chain ran is not called in that chain.
#[test]
fn free_started_mid_chain_skips_handler() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(common::Gate::default());
    let later_calls = Arc::new(AtomicU32::new(0));
    let first_gate = gate.clone();
    let _first = irq
        .request_irq(
            LINE,
            IrqRequest::new(
                "first",
                IrqFlags::EDGE.shared(),
                move |_: &mut HardIrqContext<'_>| {
                    first_gate.hold();
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
    let counted = later_calls.clone();
    let later = irq
        .request_irq(
            LINE,
            IrqRequest::new(
                "later",
                IrqFlags::EDGE.shared(),
                move |_: &mut HardIrqContext<'_>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
    let _ = irq.raise(LINE).unwrap();
    gate.wait_entered(1);

    let freer = free_on_other_thread(&irq, later);
    gate.open();

    freer.join().unwrap().unwrap();
    assert_eq!(later_calls.load(Ordering::SeqCst), 0);
    assert_eq!(irq.line_stats(LINE).unwrap().handlers, ["first"]);
}

/// `IRQF_NO_AUTOEN` leaves the line disabled at depth one: an interrupt
/// raised before the driver's `enable_irq` waits for it, and a level held
/// high since before the request fires only then.
#[test]
fn no_autoen_waits_for_enable() {
    let machine = machine(1);
    let irq = machine.controller();
    let probe_calls = probe(&irq, PROBE, 0);
    for (line, flags) in [(LINE, IrqFlags::EDGE), (LINE + 1, IrqFlags::LEVEL)] {
        let calls = Arc::new(AtomicU32::new(0));
        let count = calls.clone();
        if flags == IrqFlags::LEVEL {
            let _ = irq.raise(line).unwrap();
        }
        irq.request_irq(
            line,
            IrqRequest::new(
                "late",
                flags.no_autoen(),
                move |ctx: &mut HardIrqContext<'_>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = ctx.controller().lower(ctx.irq());
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
        let _ = irq.raise(line).unwrap();
        flush_cpu(&irq, PROBE, &probe_calls);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "irq {line}");
        let state = irq.line_state(line).unwrap();
        assert_eq!(state.depth, 1, "irq {line}");
        assert!(state.pending, "irq {line}");

        irq.enable_irq(line).unwrap();
        wait_until("the delivery after enable_irq", || {
            calls.load(Ordering::SeqCst) == 1
        });
        assert_eq!(irq.line_state(line).unwrap().depth, 0, "irq {line}");
        assert_eq!(
            irq.enable_irq(line).unwrap_err(),
            LineError::UnbalancedEnable { irq: line }
        );
    }
}

/// A request for both sharing and `IRQF_NO_AUTOEN` is rejected, as Linux
/// rejects it, and leaves the line free.
#[test]
fn shared_no_autoen_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    let rejected = irq
        .request_irq(LINE, request("both", IrqFlags::LEVEL.shared().no_autoen()))
        .unwrap_err();
    assert_eq!(
        rejected.error,
        RequestError::SharedNoAutoen {
            irq: LINE,
            handler: "both"
        }
    );
    let message = rejected.error.to_string();
    assert!(
        message.contains("requests both sharing and NO_AUTOEN"),
        "{message}"
    );
    assert!(message.contains("drop one of the two flags"), "{message}");
    irq.request_irq(LINE, request("shared", IrqFlags::LEVEL.shared()))
        .unwrap();
}

/// An `enable_irq` on a line with no handler, never requested or freed,
/// delivers nothing while a device output keeps the line high. The request
/// stays pending for the next handler, instead of being dispatched to an
/// empty chain again and again.
#[test]
fn enable_without_handler_stays_pending() {
    let machine = machine(1);
    let irq = machine.controller();
    let probe_calls = probe(&irq, PROBE, 0);
    let freed = irq
        .request_irq(LINE + 1, request("gone", IrqFlags::EDGE))
        .unwrap();
    irq.free_irq(freed).unwrap();
    for line in [LINE, LINE + 1] {
        let output = irq.irq_output(line).unwrap();
        let _ = output.assert();
        irq.enable_irq(line).unwrap();
        flush_cpu(&irq, PROBE, &probe_calls);
        let state = irq.line_state(line).unwrap();
        assert!(!state.queued, "irq {line}: {state:?}");
        assert!(!state.in_progress, "irq {line}: {state:?}");
        assert!(state.pending, "irq {line}: the output keeps it high");
        assert_eq!(
            irq.wait_delivered(line, common::TIMEOUT).unwrap_err(),
            LineError::Unrequested { irq: line }
        );

        let calls = Arc::new(AtomicU32::new(0));
        let count = calls.clone();
        let late = IrqRequest::new(
            "late",
            IrqFlags::LEVEL,
            move |_: &mut HardIrqContext<'_>| {
                count.fetch_add(1, Ordering::SeqCst);
                IrqReturn::Handled
            },
        );
        irq.request_irq(line, late).unwrap();
        wait_until("the delivery to the new handler", || {
            calls.load(Ordering::SeqCst) > 0
        });
        drop(output);
        irq.wait_delivered(line, common::TIMEOUT).unwrap();
    }
}

/// A line with no handler has no trigger type yet, so a `lower` undoes a
/// `raise` made before the request, as a deassert undoes an assert: the
/// first level handler finds the line low.
#[test]
fn lower_before_request_undoes_raise() {
    let machine = machine(1);
    let irq = machine.controller();
    let probe_calls = probe(&irq, PROBE, 0);
    let _ = irq.raise(LINE).unwrap();
    assert!(irq.lower(LINE).unwrap(), "the raise set the level");
    assert!(!irq.line_state(LINE).unwrap().pending);

    let calls = Arc::new(AtomicU32::new(0));
    let count = calls.clone();
    let level = IrqRequest::new(
        "level",
        IrqFlags::LEVEL,
        move |_: &mut HardIrqContext<'_>| {
            count.fetch_add(1, Ordering::SeqCst);
            IrqReturn::Handled
        },
    );
    irq.request_irq(LINE, level).unwrap();
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
