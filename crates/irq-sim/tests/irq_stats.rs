//! Statistics and the `/proc/interrupts` rendering.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Gate, machine, probe, wait_until};
use irq_sim::{
    Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine, SpuriousConfig, Summary,
};

/// A line whose handler keeps its CPU busy while the test arranges what
/// comes next.
const GATE_LINE: u32 = 30;
const LINE: u32 = 31;

/// The table lists each requested line with per-CPU counts, trigger type
/// and handler names, as `/proc/interrupts` does.
#[test]
fn proc_interrupts_table() {
    let machine = machine(2);
    let irq = machine.controller();
    let handled = |_: &mut HardIrqContext<'_>| IrqReturn::Handled;
    irq.request_irq(0, IrqRequest::new("timer", IrqFlags::EDGE, handled))
        .unwrap();
    irq.set_affinity(11, 1).unwrap();
    irq.request_irq(
        11,
        IrqRequest::new("eth0", IrqFlags::LEVEL.shared(), handled),
    )
    .unwrap();
    irq.request_irq(
        11,
        IrqRequest::new(
            "uart",
            IrqFlags::LEVEL.shared(),
            |ctx: &mut HardIrqContext<'_>| {
                ctx.controller().lower(ctx.irq()).unwrap();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    for _ in 0..3 {
        let _ = irq.raise(0).unwrap();
        irq.synchronize_irq(0).unwrap();
        wait_until("the timer line to be idle", || {
            !irq.line_state(0).unwrap().queued
        });
    }
    let _ = irq.raise(11).unwrap();
    wait_until("the shared line", || {
        irq.line_stats(11).unwrap().total() == 1
    });

    let text = irq.render_interrupts().unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows[0].contains("CPU0") && rows[0].contains("CPU1"),
        "{text}"
    );
    assert!(rows[1].trim_start().starts_with("0:"), "{text}");
    assert!(
        rows[1].contains("edge") && rows[1].ends_with("timer"),
        "{text}"
    );
    let columns: Vec<&str> = rows[2].split_whitespace().collect();
    assert_eq!(&columns[..3], ["11:", "0", "1"], "{text}");
    assert!(
        rows[2].contains("level") && rows[2].ends_with("eth0, uart"),
        "{text}"
    );

    let stats = irq.line_stats(0).unwrap();
    assert_eq!(stats.per_cpu, [3, 0]);
    let latency = Summary::of(&stats.histograms.as_ref().unwrap().latency);
    assert_eq!(latency.count, 3);
    assert!(latency.min <= latency.p50);
    assert!(latency.p50 <= latency.max);
    // The CPU adds its samples to its histograms when it goes idle.
    wait_until("CPU 0's histograms", || {
        irq.cpu_stats(0).unwrap().histograms.duration.len() == 3
    });
    let cpu = irq.cpu_stats(0).unwrap();
    assert_eq!(cpu.chains, 3);
    assert_eq!(cpu.histograms.latency.len(), 3);
    assert!(irq.cpu_stats(2).is_none());
}

/// Reading statistics moves the recent samples aside without losing them:
/// each read reports every delivery so far.
#[test]
fn repeated_reads_accumulate() {
    let machine = machine(1);
    let irq = machine.controller();
    irq.request_irq(
        5,
        IrqRequest::new("dev", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
            IrqReturn::Handled
        }),
    )
    .unwrap();

    for expected in 1..=4u64 {
        let _ = irq.raise(5).unwrap();
        wait_until("the delivery", || {
            irq.line_stats(5).unwrap().total() == expected
        });
        let histograms = irq.line_stats(5).unwrap().histograms.unwrap();
        assert_eq!(histograms.latency.len(), expected);
        assert_eq!(histograms.duration.len(), expected);
    }
}

/// Once a line's top half has returned, the CPU's statistics hold its
/// samples, as the line's do: the two views agree after every delivery.
#[test]
fn cpu_stats_agree_with_line_after_delivery() {
    let machine = machine(1);
    let irq = machine.controller();
    let _calls = probe(&irq, 5, 0);

    for expected in 1..=500u64 {
        let _ = irq.raise(5).unwrap();
        // Read as soon as the top half is done, without the sleeps of
        // `wait_delivered`.
        while irq.line_state(5).unwrap().queued {
            std::hint::spin_loop();
        }
        irq.synchronize_irq(5).unwrap();
        let cpu = irq.cpu_stats(0).unwrap();
        let line = irq.line_stats(5).unwrap().histograms.unwrap();
        assert_eq!(line.duration.len(), expected);
        assert_eq!(
            cpu.histograms.duration.len(),
            expected,
            "delivery {expected}: the CPU had not recorded its samples"
        );
        assert_eq!(cpu.histograms.latency.len(), expected);
    }
}

/// A delivery that finds its line disabled waits for the enable and is
/// counted once, as delivered: raised = delivered + coalesced + skipped.
#[test]
fn postponed_delivery_counted_once() {
    let machine = machine(1);
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    {
        let gate = gate.clone();
        irq.request_irq(
            GATE_LINE,
            IrqRequest::new("gate", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                gate.hold();
                IrqReturn::Handled
            }),
        )
        .unwrap();
    }
    let calls = Arc::new(AtomicU32::new(0));
    {
        let calls = calls.clone();
        irq.request_irq(
            LINE,
            IrqRequest::new("nic", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                calls.fetch_add(1, Ordering::SeqCst);
                IrqReturn::Handled
            }),
        )
        .unwrap();
    }

    // The line is queued behind the gate, then disabled before its turn.
    let _ = irq.raise(GATE_LINE).unwrap();
    gate.wait_entered(1);
    let _ = irq.raise(LINE).unwrap();
    irq.disable_irq_nosync(LINE).unwrap();
    gate.open();
    wait_until("the queued line to be taken", || {
        !irq.line_state(LINE).unwrap().queued
    });
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    irq.enable_irq(LINE).unwrap();
    wait_until("the postponed delivery", || {
        calls.load(Ordering::SeqCst) == 1
    });
    irq.synchronize_irq(LINE).unwrap();

    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!(stats.raised, 1);
    assert_eq!(stats.total(), 1);
    assert_eq!(stats.skipped, 0);
}

/// Polls of a line disabled as spurious are no interrupts: they are
/// counted as polls, not per CPU, as in Linux's /proc/interrupts.
#[test]
fn spurious_polls_not_counted_per_cpu() {
    let machine = Machine::new(Config {
        nr_cpus: 1,
        spurious: SpuriousConfig {
            window: 10,
            threshold: 9,
            quiet: Duration::from_secs(60),
            poll_interval: Duration::from_millis(5),
        },
        ..Config::default()
    })
    .unwrap();
    let irq = machine.controller();
    irq.request_irq(
        LINE,
        IrqRequest::new("deaf", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
            IrqReturn::None
        }),
    )
    .unwrap();
    for _ in 0..10 {
        let _ = irq.raise(LINE).unwrap();
        wait_until("the delivery", || {
            let state = irq.line_state(LINE).unwrap();
            !state.queued && !state.in_progress
        });
    }
    wait_until("two polls", || irq.line_stats(LINE).unwrap().polls >= 2);

    let stats = irq.line_stats(LINE).unwrap();
    assert!(stats.spurious);
    assert_eq!(stats.total(), 10);
    assert_eq!(stats.handled + stats.unhandled, 10);
}
