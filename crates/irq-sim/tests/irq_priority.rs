//! Delivery order on one CPU.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{Gate, machine, wait_until};
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};

const GATE_LINE: u32 = 1;

/// Among pending lines of a CPU the highest priority is delivered first,
/// equal priorities in arrival order, and hard IRQs never nest.
#[test]
fn priority_then_arrival_order() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.request_irq(
        GATE_LINE,
        IrqRequest::new("gate", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            held.hold();
            IrqReturn::Handled
        }),
    )
    .unwrap();

    let order = Arc::new(Mutex::new(Vec::new()));
    let running = Arc::new(AtomicBool::new(false));
    // (line, priority) in raise order.
    let lines = [(10, 10), (11, 200), (12, 200), (13, 10), (14, 128)];
    for (line, priority) in lines {
        irq.set_priority(line, priority).unwrap();
        let order = order.clone();
        let running = running.clone();
        irq.request_irq(
            line,
            IrqRequest::new(
                "recorder",
                IrqFlags::EDGE,
                move |ctx: &mut HardIrqContext<'_>| {
                    assert!(!running.swap(true, Ordering::SeqCst), "hard IRQs nested");
                    order.lock().unwrap().push(ctx.irq());
                    running.store(false, Ordering::SeqCst);
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap();
    }

    let _ = irq.raise(GATE_LINE).unwrap();
    gate.wait_entered(1);
    for (line, _) in lines {
        let _ = irq.raise(line).unwrap();
    }
    assert!(
        order.lock().unwrap().is_empty(),
        "a line ran while the gate handler held the CPU"
    );
    gate.open();

    wait_until("every line", || order.lock().unwrap().len() == lines.len());
    assert_eq!(*order.lock().unwrap(), [11, 12, 14, 10, 13]);
}

/// Lines routed to different CPUs run on those CPUs, and a busy CPU does
/// not delay the other.
#[test]
fn affinity_routes_lines() {
    let machine = machine(2);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.set_affinity(GATE_LINE, 0).unwrap();
    irq.request_irq(
        GATE_LINE,
        IrqRequest::new("gate", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            held.hold();
            IrqReturn::Handled
        }),
    )
    .unwrap();
    let cpus = Arc::new(Mutex::new(Vec::new()));
    let seen = cpus.clone();
    irq.set_affinity(2, 1).unwrap();
    irq.request_irq(
        2,
        IrqRequest::new(
            "cpu1",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                seen.lock().unwrap().push(ctx.cpu());
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    let _ = irq.raise(GATE_LINE).unwrap();
    gate.wait_entered(1);
    let _ = irq.raise(2).unwrap();
    wait_until("the line on CPU 1", || !cpus.lock().unwrap().is_empty());
    assert!(gate.is_inside());
    gate.open();
    assert_eq!(*cpus.lock().unwrap(), [1]);
    irq.synchronize_irq(2).unwrap();
    assert_eq!(irq.line_stats(2).unwrap().per_cpu, [0, 1]);
}
