//! Local timers: periodic ticks, one-shot expiries, overruns.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Gate, machine, wait_until};
use irq_sim::clock::{self, Timestamp};
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};

const TIMER: u32 = 0;

/// Registers a tick handler that records each expiry's programmed time
/// (entry time minus latency).
fn recorder(irq: &irq_sim::Controller) -> Arc<Mutex<Vec<Timestamp>>> {
    let programmed = Arc::new(Mutex::new(Vec::new()));
    let seen = programmed.clone();
    irq.request_irq(
        TIMER,
        IrqRequest::new(
            "timer",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                let latency = ctx.latency().expect("a timer delivery has a latency");
                seen.lock().unwrap().push(ctx.entry_time() - latency);
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    programmed
}

/// A periodic tick fires at its programmed times, one period apart, and
/// the latency is measured from the programmed expiry.
#[test]
fn periodic_tick_keeps_period() {
    let machine = machine(1);
    let irq = machine.controller();
    let programmed = recorder(&irq);
    let timer = irq.local_timer(0, TIMER).unwrap();
    let first = clock::now() + Duration::from_millis(1);
    timer.start_periodic(first, Duration::from_micros(500));

    wait_until("ten ticks", || programmed.lock().unwrap().len() >= 10);
    timer.cancel();
    let times = programmed.lock().unwrap().clone();
    assert_eq!(times[0], first);
    for (index, pair) in times.windows(2).enumerate() {
        // A late expiry skips whole periods, so spacing is a multiple.
        let gap = pair[1].saturating_since(pair[0]).as_nanos();
        assert_eq!(gap % 500_000, 0, "gap {gap} ns at expiry {index}");
    }
    assert!(timer.expiries() >= 10);
    let stats = irq.line_stats(TIMER).unwrap();
    assert!(stats.histograms.unwrap().latency.len() >= 10);
}

/// `raise_time()` of a timer delivery is its programmed expiry: the first
/// deadline plus a whole number of periods, never after the entry.
#[test]
fn raise_time_is_programmed_expiry() {
    let machine = machine(1);
    let irq = machine.controller();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    irq.request_irq(
        TIMER,
        IrqRequest::new(
            "timer",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                record
                    .lock()
                    .unwrap()
                    .push((ctx.raise_time(), ctx.entry_time()));
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let timer = irq.local_timer(0, TIMER).unwrap();
    let first = clock::now() + Duration::from_millis(1);
    timer.start_periodic(first, Duration::from_micros(400));

    wait_until("five ticks", || seen.lock().unwrap().len() >= 5);
    timer.cancel();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, Some(first));
    for (index, (raise, entry)) in seen.iter().enumerate() {
        let raise = raise.expect("a timer delivery has a raise time");
        let since_first = raise.saturating_since(first).as_nanos();
        assert_eq!(since_first % 400_000, 0, "expiry {index}: {since_first} ns");
        assert!(raise <= *entry, "expiry {index}: raised after its entry");
    }
}

/// A one-shot expiry fires once, not before its programmed time.
#[test]
fn oneshot_fires_once() {
    let machine = machine(1);
    let irq = machine.controller();
    let programmed = recorder(&irq);
    let timer = irq.local_timer(0, TIMER).unwrap();
    let at = clock::now() + Duration::from_millis(2);
    timer.arm_oneshot(at);

    wait_until("the expiry", || !programmed.lock().unwrap().is_empty());
    assert_eq!(programmed.lock().unwrap()[0], at);
    assert!(clock::now() >= at);
    assert_eq!(timer.expiries(), 1);
    timer.arm_oneshot(clock::now() + Duration::from_millis(1));
    wait_until("the second expiry", || {
        programmed.lock().unwrap().len() == 2
    });
    assert_eq!(timer.expiries(), 2);
}

/// A periodic timer whose CPU is held past several periods counts the
/// missed periods as overruns instead of firing them all.
#[test]
fn held_cpu_counts_overruns() {
    let machine = machine(1);
    let irq = machine.controller();
    let programmed = recorder(&irq);
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.request_irq(
        9,
        IrqRequest::new("hog", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            held.hold();
            IrqReturn::Handled
        }),
    )
    .unwrap();
    let timer = irq.local_timer(0, TIMER).unwrap();

    let _ = irq.raise(9).unwrap();
    gate.wait_entered(1);
    let start = clock::now();
    timer.start_periodic(
        start + Duration::from_micros(200),
        Duration::from_micros(200),
    );
    // Hold the CPU for ten periods.
    clock::spin_until(start + Duration::from_millis(2));
    gate.open();

    wait_until("a tick after the hold", || {
        programmed.lock().unwrap().len() >= 2
    });
    timer.cancel();
    assert!(timer.overruns() >= 5, "overruns {}", timer.overruns());
}
