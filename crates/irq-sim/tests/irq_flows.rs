//! Flow handling: edge coalescing, level re-fire, nested disable, mask.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{Gate, TIMEOUT, flush_cpu, machine, probe, wait_until};
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn, LineError, RaiseOutcome};

const LINE: u32 = 10;
const PROBE: u32 = 99;

fn counting(
    calls: &Arc<AtomicU32>,
) -> impl FnMut(&mut HardIrqContext<'_>) -> IrqReturn + Send + 'static {
    let calls = calls.clone();
    move |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        IrqReturn::Handled
    }
}

/// Edges that arrive while the handler runs fold into one pending delivery,
/// which runs after the handler; the folded edges are counted.
#[test]
fn edges_during_handler_coalesce() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "gated",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                held.hold();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    assert_eq!(irq.raise(LINE).unwrap(), RaiseOutcome::Queue);
    gate.wait_entered(1);
    assert_eq!(irq.raise(LINE).unwrap(), RaiseOutcome::Latched);
    for _ in 0..4 {
        assert_eq!(irq.raise(LINE).unwrap(), RaiseOutcome::Coalesced);
    }
    gate.open();
    wait_until("the replayed edge", || gate.entered() == 2);
    irq.synchronize_irq(LINE).unwrap();

    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.total(), 2);
    assert_eq!(stats.coalesced, 4);
    assert!(!irq.line_state(LINE).unwrap().pending);
}

/// Edges that arrive while the line is disabled fold into one delivery
/// that runs on enable.
#[test]
fn disabled_edges_fire_once_on_enable() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    irq.request_irq(
        LINE,
        IrqRequest::new("counter", IrqFlags::EDGE, counting(&calls)),
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);

    assert_eq!(irq.disable_irq(LINE).unwrap(), 1);
    for _ in 0..3 {
        let _ = irq.raise(LINE).unwrap();
    }
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    irq.enable_irq(LINE).unwrap();
    wait_until("the delivery on enable", || {
        calls.load(Ordering::SeqCst) == 1
    });
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(irq.line_stats(LINE).unwrap().coalesced, 2);
}

/// A level line still high after its handler fires again, until the device
/// lowers it.
#[test]
fn level_refires_while_high() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "level",
            IrqFlags::LEVEL,
            move |ctx: &mut HardIrqContext<'_>| {
                // The device deasserts once it has been serviced three times.
                if counter.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                    ctx.controller().lower(ctx.irq()).unwrap();
                }
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);

    assert_eq!(irq.raise(LINE).unwrap(), RaiseOutcome::Queue);
    wait_until("three level deliveries", || {
        calls.load(Ordering::SeqCst) >= 3
    });
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(!irq.line_state(LINE).unwrap().pending);
}

/// A level line raised while masked fires as soon as it is unmasked.
#[test]
fn masked_level_fires_on_unmask() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "level",
            IrqFlags::LEVEL,
            move |ctx: &mut HardIrqContext<'_>| {
                counter.fetch_add(1, Ordering::SeqCst);
                ctx.controller().lower(ctx.irq()).unwrap();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);

    irq.mask_irq(LINE).unwrap();
    assert_eq!(irq.raise(LINE).unwrap(), RaiseOutcome::Latched);
    // The line is already high: the raise adds nothing, and is counted.
    assert_eq!(irq.raise(LINE).unwrap(), RaiseOutcome::AlreadyAsserted);
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    irq.unmask_irq(LINE).unwrap();
    wait_until("the delivery on unmask", || {
        calls.load(Ordering::SeqCst) == 1
    });
    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.raised, 2);
    assert_eq!(stats.already_asserted, 1);
    assert_eq!(stats.total(), 1);
}

/// A level line lowered before its CPU takes it is not delivered.
#[test]
fn lowered_level_is_skipped() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.request_irq(
        PROBE + 1,
        IrqRequest::new(
            "gated",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                held.hold();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    irq.request_irq(
        LINE,
        IrqRequest::new("level", IrqFlags::LEVEL, counting(&calls)),
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);

    let _ = irq.raise(PROBE + 1).unwrap();
    gate.wait_entered(1);
    assert_eq!(irq.raise(LINE).unwrap(), RaiseOutcome::Queue);
    assert!(irq.lower(LINE).unwrap());
    gate.open();
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(irq.line_stats(LINE).unwrap().skipped, 1);
}

/// Disables nest: only the enable that brings the depth back to zero
/// delivers.
#[test]
fn disable_depth_nests() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    irq.request_irq(
        LINE,
        IrqRequest::new("counter", IrqFlags::EDGE, counting(&calls)),
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);

    assert_eq!(irq.disable_irq(LINE).unwrap(), 1);
    assert_eq!(irq.disable_irq_nosync(LINE).unwrap(), 2);
    let _ = irq.raise(LINE).unwrap();
    irq.enable_irq(LINE).unwrap();
    assert_eq!(irq.line_state(LINE).unwrap().depth, 1);
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    irq.enable_irq(LINE).unwrap();
    wait_until("the delivery at depth 0", || {
        calls.load(Ordering::SeqCst) == 1
    });
}

/// An enable at depth zero warns ("unbalanced enable") and changes nothing.
#[test]
fn unbalanced_enable_rejected() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    irq.request_irq(
        LINE,
        IrqRequest::new("counter", IrqFlags::EDGE, counting(&calls)),
    )
    .unwrap();
    let before = irq.line_state(LINE).unwrap();

    assert_eq!(
        irq.enable_irq(LINE),
        Err(LineError::UnbalancedEnable { irq: LINE })
    );
    assert_eq!(irq.line_state(LINE).unwrap(), before);
    assert_eq!(irq.line_state(LINE).unwrap().depth, 0);
}

/// `disable_irq` returns only after the running handler has returned.
#[test]
fn disable_irq_waits_for_handler() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "gated",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                held.hold();
                done.store(true, Ordering::SeqCst);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let _ = irq.raise(LINE).unwrap();
    gate.wait_entered(1);

    let disabler = {
        let irq = irq.clone();
        let finished = finished.clone();
        std::thread::spawn(move || {
            irq.disable_irq(LINE).unwrap();
            finished.load(Ordering::SeqCst)
        })
    };
    wait_until("the disable to take effect", || {
        irq.line_state(LINE).unwrap().depth == 1
    });
    // Give a disable that does not wait the chance to return early.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(
        !disabler.is_finished(),
        "disable_irq returned while the handler ran"
    );
    gate.open();
    assert!(
        disabler.join().unwrap(),
        "handler still running when disable_irq returned"
    );
}

/// `disable_irq_nosync` returns at once, even while the handler runs.
#[test]
fn disable_nosync_does_not_wait() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "gated",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                held.hold();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let _ = irq.raise(LINE).unwrap();
    gate.wait_entered(1);

    assert_eq!(irq.disable_irq_nosync(LINE).unwrap(), 1);
    assert!(gate.is_inside());
    gate.open();
}

/// `synchronize_irq` waits for the running handler and leaves the depth
/// alone.
#[test]
fn synchronize_irq_only_waits() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "gated",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                held.hold();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let _ = irq.raise(LINE).unwrap();
    gate.wait_entered(1);

    let syncer = {
        let irq = irq.clone();
        let gate = gate.clone();
        std::thread::spawn(move || {
            irq.synchronize_irq(LINE).unwrap();
            gate.is_inside()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(
        !syncer.is_finished(),
        "synchronize_irq returned while the handler ran"
    );
    gate.open();
    assert!(!syncer.join().unwrap());
    assert_eq!(irq.line_state(LINE).unwrap().depth, 0);
}

/// A ONESHOT line stays masked from the top half's `WakeThread` until the
/// driver reports its thread done.
#[test]
fn oneshot_masks_until_thread_done() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let woken = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let wakes = woken.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "threaded",
            IrqFlags::EDGE.oneshot(),
            move |_: &mut HardIrqContext<'_>| {
                counter.fetch_add(1, Ordering::SeqCst);
                IrqReturn::WakeThread
            },
        )
        .on_wake_thread(move |ctx| {
            assert!(irq_sim::in_hardirq());
            assert_eq!(ctx.handler(), "threaded");
            wakes.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);

    let _ = irq.raise(LINE).unwrap();
    wait_until("the first delivery", || woken.load(Ordering::SeqCst) == 1);
    let _ = irq.raise(LINE).unwrap();
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(irq.line_state(LINE).unwrap().oneshot, 1);

    irq.unmask_oneshot(LINE).unwrap();
    wait_until("the delivery after the thread", || {
        calls.load(Ordering::SeqCst) == 2
    });
    assert_eq!(irq.line_stats(LINE).unwrap().wake_thread, 2);
}

/// A level line that a device keeps high before any handler is requested
/// fires as soon as one is, as Linux's startup unmasks an asserted line.
/// It also stays high across a free while disabled, for the next handler.
#[test]
fn level_held_high_fires_on_request() {
    let machine = machine(1);
    let controller = machine.controller();
    assert_eq!(controller.raise(LINE).unwrap(), RaiseOutcome::Latched);

    // The handler clears the device, as a real one would.
    let calls = Arc::new(AtomicU32::new(0));
    let request = |calls: &Arc<AtomicU32>| {
        let (calls, device) = (calls.clone(), controller.clone());
        IrqRequest::new(
            "sensor",
            IrqFlags::LEVEL,
            move |_: &mut HardIrqContext<'_>| {
                calls.fetch_add(1, Ordering::SeqCst);
                device.lower(LINE).unwrap();
                IrqReturn::Handled
            },
        )
    };
    let id = controller.request_irq(LINE, request(&calls)).unwrap();
    wait_until("the delivery of the held level", || {
        calls.load(Ordering::SeqCst) == 1
    });

    // Held high while disabled, then the handler leaves: the next one
    // still finds the line high.
    controller.disable_irq(LINE).unwrap();
    assert_eq!(controller.raise(LINE).unwrap(), RaiseOutcome::Latched);
    controller.free_irq(id).unwrap();
    let next_calls = Arc::new(AtomicU32::new(0));
    let _id = controller.request_irq(LINE, request(&next_calls)).unwrap();
    wait_until("the delivery to the next handler", || {
        next_calls.load(Ordering::SeqCst) == 1
    });
    assert!(
        !controller.line_state(LINE).unwrap().pending,
        "the handler lowered it"
    );
}

/// `wait_delivered` returns once the raise's top half has run, names a
/// pending delivery that a disable holds back, and gives up on a level
/// line that no top half lowers.
#[test]
fn wait_delivered_after_raise() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    irq.request_irq(
        LINE,
        IrqRequest::new("edge", IrqFlags::EDGE, counting(&calls)),
    )
    .unwrap();
    for round in 1..=200 {
        let _ = irq.raise(LINE).unwrap();
        irq.wait_delivered(LINE, TIMEOUT).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), round);
    }

    irq.disable_irq(LINE).unwrap();
    let _ = irq.raise(LINE).unwrap();
    let error = irq.wait_delivered(LINE, TIMEOUT).unwrap_err();
    assert_eq!(
        error,
        LineError::Undeliverable {
            irq: LINE,
            depth: 1,
            masked: false
        }
    );
    assert_eq!(
        error.to_string(),
        "irq 10: a delivery is pending but the line is disabled (depth 1); \
         call enable_irq to let it through"
    );
    irq.enable_irq(LINE).unwrap();
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 201);

    // A level line whose top half never lowers it stays pending.
    const STUCK: u32 = 11;
    irq.request_irq(
        STUCK,
        IrqRequest::new("stuck", IrqFlags::LEVEL, |_: &mut HardIrqContext<'_>| {
            IrqReturn::Handled
        }),
    )
    .unwrap();
    let _ = irq.raise(STUCK).unwrap();
    let timeout = Duration::from_millis(20);
    assert_eq!(
        irq.wait_delivered(STUCK, timeout),
        Err(LineError::TimedOut {
            irq: STUCK,
            timeout
        })
    );
    irq.lower(STUCK).unwrap();
    irq.wait_delivered(STUCK, Duration::MAX).unwrap();

    // A raise of a line with no handler waits for a request_irq.
    const UNREQUESTED: u32 = 12;
    let _ = irq.raise(UNREQUESTED).unwrap();
    assert_eq!(
        irq.wait_delivered(UNREQUESTED, TIMEOUT),
        Err(LineError::Unrequested { irq: UNREQUESTED })
    );

    // An edge line's ONESHOT thread, still out, keeps the line busy.
    const ONESHOT: u32 = 13;
    irq.request_irq(
        ONESHOT,
        IrqRequest::new(
            "threaded",
            IrqFlags::EDGE.oneshot(),
            |_: &mut HardIrqContext<'_>| IrqReturn::WakeThread,
        )
        .on_wake_thread(|_: &mut HardIrqContext<'_>| {}),
    )
    .unwrap();
    let _ = irq.raise(ONESHOT).unwrap();
    assert_eq!(
        irq.wait_delivered(ONESHOT, timeout),
        Err(LineError::TimedOut {
            irq: ONESHOT,
            timeout
        })
    );
    irq.unmask_oneshot(ONESHOT).unwrap();
    irq.wait_delivered(ONESHOT, TIMEOUT).unwrap();
}

/// A line's device outputs form a wired OR: a level line fires while any
/// output asserts it, and is quiet once the last one is dropped.
#[test]
fn level_line_fires_while_any_output_asserts() {
    let machine = machine(1);
    let irq = machine.controller();
    let first = irq.irq_output(LINE).unwrap();
    let second = irq.irq_output(LINE).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let count = calls.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "wired-or",
            IrqFlags::LEVEL,
            move |_: &mut HardIrqContext<'_>| {
                count.fetch_add(1, Ordering::SeqCst);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    irq.disable_irq(LINE).unwrap();
    assert_eq!(first.assert(), RaiseOutcome::Latched);
    assert_eq!(second.assert(), RaiseOutcome::AlreadyAsserted);
    assert!(first.deassert());
    let state = irq.line_state(LINE).unwrap();
    assert!(state.pending, "the second keeps it high");
    assert_eq!(state.asserted_outputs, 1 << second.index());
    drop(second);
    assert!(!irq.line_state(LINE).unwrap().pending, "dropping deasserts");
    irq.enable_irq(LINE).unwrap();
    let probe_calls = probe(&irq, PROBE, 0);
    flush_cpu(&irq, PROBE, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // The first output asserts alone: the handler runs until it lets go.
    assert_eq!(first.assert(), RaiseOutcome::Queue);
    wait_until("the line to re-fire", || calls.load(Ordering::SeqCst) >= 2);
    assert!(first.is_asserted());
    assert!(first.deassert());
    irq.synchronize_irq(LINE).unwrap();
    assert!(!irq.line_state(LINE).unwrap().pending);
}

/// A line takes at most `MAX_OUTPUTS` outputs; dropping one frees its
/// place.
#[test]
fn line_outputs_are_limited() {
    let machine = machine(1);
    let irq = machine.controller();
    let mut outputs: Vec<_> = (0..irq_sim::line_state::MAX_OUTPUTS)
        .map(|_| irq.irq_output(LINE).unwrap())
        .collect();
    let full = irq.irq_output(LINE).unwrap_err();
    assert_eq!(
        full,
        LineError::NoFreeOutput {
            irq: LINE,
            max: irq_sim::line_state::MAX_OUTPUTS
        }
    );
    assert!(full.to_string().contains("all 6 device outputs"), "{full}");
    let _ = outputs[2].assert();
    outputs.remove(2);
    let again = irq.irq_output(LINE).unwrap();
    assert!(!again.is_asserted(), "a freed output is handed out low");
    assert_eq!(
        irq.irq_output(irq.nr_irqs()).unwrap_err(),
        LineError::OutOfRange {
            irq: irq.nr_irqs(),
            nr_irqs: irq.nr_irqs()
        }
    );
}

/// A raise dated 20 s back, as a CPU stuck that long leaves a delivery
/// waiting, reads 20 s of latency, because the pending stamp covers
/// minutes.
#[test]
fn long_latency_is_not_wrapped() {
    let machine = machine(1);
    let irq = machine.controller();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let latency = seen.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "late",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                *latency.lock().unwrap() = ctx.latency();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let back = Duration::from_secs(20);
    let raised = irq_sim::clock::now() - back;
    assert!(
        raised.as_nanos() > 0,
        "the monotonic clock starts less than 20 s ago"
    );
    let _ = irq.raise_at(LINE, raised).unwrap();
    irq.wait_delivered(LINE, TIMEOUT).unwrap();
    let latency = seen.lock().unwrap().expect("a delivery has a latency");
    assert!(latency >= back, "{latency:?}");
    assert!(latency < back + Duration::from_secs(10), "{latency:?}");
}

/// Disables nest up to `MAX_DEPTH`; one more is rejected with the limit in
/// its message, and the depth stays.
#[test]
fn disable_depth_is_bounded() {
    let machine = machine(1);
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    irq.request_irq(
        LINE,
        IrqRequest::new("deep", IrqFlags::EDGE, counting(&calls)),
    )
    .unwrap();
    let max = irq_sim::line_state::MAX_DEPTH;
    for depth in 1..=max {
        assert_eq!(irq.disable_irq_nosync(LINE).unwrap(), depth);
    }
    let error = irq.disable_irq_nosync(LINE).unwrap_err();
    assert_eq!(error, LineError::DepthOverflow { irq: LINE });
    assert!(
        error
            .to_string()
            .contains(&format!("({max} nested disables)")),
        "{error}"
    );
    assert_eq!(irq.line_state(LINE).unwrap().depth, max);
}
