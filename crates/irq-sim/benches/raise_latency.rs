//! Raise -> top-half entry on another thread, against a bare hand-off with
//! the same thread placement: the raiser pinned to one vCPU, the thread it
//! wakes (the simulated CPU, or the baseline's waiter) to another.
//!
//! - Blocking CPU mode against a bare condvar wake: a thread sleeping on a
//!   condvar, woken by `notify_one` after the waker stores a timestamp.
//! - Busy-poll CPU mode against a bare spinning hand-off: a thread spinning
//!   on an atomic timestamp.
//!
//! Events are paced open-loop every `IRQ_BENCH_PERIOD_US` (default 200 us)
//! so that a blocking CPU is asleep at each raise. Rounds and events per
//! round: `IRQ_BENCH_ROUNDS` (5), `IRQ_BENCH_EVENTS` (10,000).
//!
//! `cargo bench -p irq-sim --bench raise_latency`

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{Placement, Side, env_or, histogram};
use hdrhistogram::Histogram;
use irq_sim::clock;
use irq_sim::{
    Config, CpuMode, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine, WatchdogConfig,
};

const LINE: u32 = 1;

/// Sleeps to each paced deadline and calls `fire`.
fn pace(events: u64, period: Duration, mut fire: impl FnMut()) {
    let start = clock::now() + Duration::from_millis(1);
    for i in 0..events {
        clock::sleep_until(start + period * (i as u32));
        fire();
    }
}

fn candidate(
    mode: CpuMode,
    events: u64,
    period: Duration,
    placement: Option<&Placement>,
) -> Histogram<u64> {
    let start = || {
        Machine::new(Config {
            nr_irqs: 64,
            nr_cpus: 1,
            cpu_mode: mode,
            watchdog: WatchdogConfig {
                enabled: false,
                ..WatchdogConfig::default()
            },
            ..Config::default()
        })
        .expect("valid config")
    };
    let machine = placement.map_or_else(start, |placement| placement.start_woken(start));
    let irq = machine.controller();
    let recorded = Arc::new(Mutex::new(histogram()));
    let done = Arc::new(AtomicU64::new(0));
    let (sink, counter) = (recorded.clone(), done.clone());
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "bench",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                if let Some(latency) = ctx.latency() {
                    sink.lock()
                        .unwrap()
                        .saturating_record(latency.as_nanos() as u64);
                }
                counter.fetch_add(1, Ordering::Release);
                IrqReturn::Handled
            },
        ),
    )
    .expect("free line");

    pace(events, period, || {
        let _ = irq.raise(LINE).expect("valid line");
    });
    // An edge raised while the previous one is still pending is coalesced:
    // it has no delivery of its own, so it is counted, not waited for.
    let coalesced = loop {
        let coalesced = irq.line_stats(LINE).expect("valid line").coalesced;
        if done.load(Ordering::Acquire) + coalesced >= events {
            break coalesced;
        }
        std::thread::yield_now();
    };
    if coalesced > 0 {
        println!("{mode:?}: {coalesced} of {events} raises coalesced (the CPU was still busy)");
    }
    machine.shutdown();
    recorded.lock().unwrap().clone()
}

fn condvar_baseline(
    events: u64,
    period: Duration,
    placement: Option<&Placement>,
) -> Histogram<u64> {
    let shared = Arc::new((Mutex::new((0u64, 0u64)), Condvar::new()));
    let spawn = || {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut recorded = histogram();
            let (lock, condvar) = &*shared;
            let mut seen = 0;
            let mut slot = lock.lock().unwrap();
            while seen < events {
                while slot.0 == seen {
                    slot = condvar.wait(slot).unwrap();
                }
                let now = clock::now().as_nanos();
                recorded.saturating_record(now.saturating_sub(slot.1).max(1));
                seen = slot.0;
            }
            recorded
        })
    };
    let waiter = placement.map_or_else(spawn, |placement| placement.start_woken(spawn));
    pace(events, period, || {
        let (lock, condvar) = &*shared;
        let stamp = clock::now().as_nanos();
        let mut slot = lock.lock().unwrap();
        slot.0 += 1;
        slot.1 = stamp;
        drop(slot);
        condvar.notify_one();
    });
    waiter.join().unwrap()
}

fn spin_baseline(events: u64, period: Duration, placement: Option<&Placement>) -> Histogram<u64> {
    let stamp = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let spawn = || {
        let (stamp, finished) = (stamp.clone(), finished.clone());
        std::thread::spawn(move || {
            let mut recorded = histogram();
            let mut last = 0;
            // A stamp overwritten before the spinner saw it is missed, as a
            // coalesced edge is on the candidate side.
            while !finished.load(Ordering::Acquire) {
                let value = stamp.load(Ordering::Acquire);
                if value == last {
                    std::hint::spin_loop();
                    continue;
                }
                let now = clock::now().as_nanos();
                recorded.saturating_record(now.saturating_sub(value).max(1));
                last = value;
            }
            recorded
        })
    };
    let spinner = placement.map_or_else(spawn, |placement| placement.start_woken(spawn));
    pace(events, period, || {
        stamp.store(clock::now().as_nanos(), Ordering::Release)
    });
    std::thread::sleep(Duration::from_millis(1));
    finished.store(true, Ordering::Release);
    spinner.join().unwrap()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let rounds = env_or("IRQ_BENCH_ROUNDS", 5);
    let events = env_or("IRQ_BENCH_EVENTS", 10_000);
    let period = Duration::from_micros(env_or("IRQ_BENCH_PERIOD_US", 200));
    println!("raise -> top-half entry: {rounds} rounds of {events} events, one every {period:?}");
    let mut json = String::from("{");
    common::print_noise_floor(&mut json);
    let placement = Placement::new();
    match &placement {
        Some(placement) => println!("{}", placement.describe()),
        None => println!("threads not pinned: fewer than two vCPUs"),
    }
    json.push_str(",\"results\":[");

    let (mut blocking, mut condvar) = (Side::default(), Side::default());
    let (mut busy, mut spin) = (Side::default(), Side::default());
    for round in 0..rounds {
        let placed = placement.as_ref();
        blocking
            .rounds
            .push(candidate(CpuMode::Blocking, events, period, placed));
        condvar
            .rounds
            .push(condvar_baseline(events, period, placed));
        busy.rounds
            .push(candidate(CpuMode::BusyPoll, events, period, placed));
        spin.rounds.push(spin_baseline(events, period, placed));
        println!("round {} of {rounds} done", round + 1);
    }
    if let Some(placement) = &placement {
        placement.release();
    }
    common::report(
        &mut json,
        "blocking raise vs condvar wake",
        &blocking,
        &condvar,
        &[(0.5, 1.1), (0.99, 1.3)],
    );
    json.push(',');
    common::report(
        &mut json,
        "busy-poll raise vs spinning hand-off",
        &busy,
        &spin,
        &[(0.5, 1.5), (0.99, 2.0)],
    );
    json.push_str("]}");
    common::write_json("raise_latency", &json);
}
