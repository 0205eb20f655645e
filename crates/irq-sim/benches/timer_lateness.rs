//! Timer IRQ latency (programmed expiry -> top-half entry, as rtla timerlat
//! measures it) against a cyclictest-like baseline in the same run.
//!
//! - Sleep mode: a blocking CPU's local periodic timer, against a plain
//!   thread sleeping to absolute deadlines with timer slack 1 ns.
//! - Spin mode: a busy-poll CPU's local timer, against a loop spinning to
//!   each deadline.
//!
//! At 1 kHz and 10 kHz. Overruns (periods missed because an expiry fired
//! more than a period late) are counted on both sides.
//! `IRQ_BENCH_ROUNDS` (5) rounds of `IRQ_BENCH_TIMER_MS` (2000) ms per
//! side and rate.
//!
//! `cargo bench -p irq-sim --bench timer_lateness`

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Side, env_or, histogram};
use hdrhistogram::Histogram;
use irq_sim::clock;
use irq_sim::{
    Config, CpuMode, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine, WatchdogConfig,
};

const TIMER: u32 = 0;

/// Returns the lateness histogram, the overruns and the expiries.
fn candidate(mode: CpuMode, period: Duration, length: Duration) -> (Histogram<u64>, u64, u64) {
    let machine = Machine::new(Config {
        nr_irqs: 64,
        nr_cpus: 1,
        cpu_mode: mode,
        watchdog: WatchdogConfig {
            enabled: false,
            ..WatchdogConfig::default()
        },
        ..Config::default()
    })
    .expect("valid config");

    let irq = machine.controller();
    let recorded = Arc::new(Mutex::new(histogram()));
    let ticks = Arc::new(AtomicU64::new(0));
    let (sink, counter) = (recorded.clone(), ticks.clone());
    irq.request_irq(
        TIMER,
        IrqRequest::new(
            "tick",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                if let Some(latency) = ctx.latency() {
                    sink.lock()
                        .unwrap()
                        .saturating_record((latency.as_nanos() as u64).max(1));
                }
                counter.fetch_add(1, Ordering::Release);
                IrqReturn::Handled
            },
        ),
    )
    .expect("free line");

    let timer = irq.local_timer(0, TIMER).expect("valid timer");
    let start = clock::now() + Duration::from_millis(2);
    timer.start_periodic(start, period);
    clock::sleep_until(start + length);
    timer.cancel();
    let (overruns, expiries) = (timer.overruns(), timer.expiries());
    while ticks.load(Ordering::Acquire) < expiries {
        std::thread::yield_now();
    }
    machine.shutdown();
    let histogram = recorded.lock().unwrap().clone();
    (histogram, overruns, expiries)
}

/// Runs the cyclictest-like loop: sleep (or spin) to absolute deadlines and
/// record the lateness. A deadline passed by more than a period counts the
/// missed periods as overruns and skips them, as the candidate's timer does.
fn baseline(spin: bool, period: Duration, length: Duration) -> (Histogram<u64>, u64, u64) {
    std::thread::spawn(move || {
        clock::set_timer_slack(Duration::from_nanos(1));
        let mut recorded = histogram();
        let (mut overruns, mut expiries) = (0, 0);
        let start = clock::now() + Duration::from_millis(2);
        let end = start + length;
        let mut deadline = start;
        while deadline < end {
            if spin {
                clock::spin_until(deadline);
            } else {
                clock::sleep_until(deadline);
            }
            let now = clock::now();
            recorded.saturating_record(now.as_nanos().saturating_sub(deadline.as_nanos()).max(1));
            expiries += 1;
            deadline = deadline + period;
            while deadline <= now {
                deadline = deadline + period;
                overruns += 1;
            }
        }
        (recorded, overruns, expiries)
    })
    .join()
    .unwrap()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let rounds = env_or("IRQ_BENCH_ROUNDS", 5);
    let length = Duration::from_millis(env_or("IRQ_BENCH_TIMER_MS", 2000));
    println!("timer lateness: {rounds} rounds of {length:?} per side and rate");
    let mut json = String::from("{");
    common::print_noise_floor(&mut json);
    json.push_str(",\"results\":[");

    let mut first = true;
    for hz in [1_000u64, 10_000] {
        let period = Duration::from_nanos(1_000_000_000 / hz);
        for (mode, spin, label) in [
            (CpuMode::Blocking, false, "sleep"),
            (CpuMode::BusyPoll, true, "spin"),
        ] {
            let (mut timer_side, mut base_side) = (Side::default(), Side::default());
            let (mut timer_overruns, mut timer_expiries, mut base_overruns, mut base_expiries) =
                (0, 0, 0, 0);
            for _ in 0..rounds {
                let (h, o, e) = candidate(mode, period, length);
                timer_side.rounds.push(h);
                timer_overruns += o;
                timer_expiries += e;
                let (h, o, e) = baseline(spin, period, length);
                base_side.rounds.push(h);
                base_overruns += o;
                base_expiries += e;
            }
            if !first {
                json.push(',');
            }
            first = false;
            let name = format!("{hz} Hz {label} mode: local timer vs cyclictest-like loop");
            common::report(
                &mut json,
                &name,
                &timer_side,
                &base_side,
                &[(0.5, 1.2), (0.99, 1.2)],
            );
            let share = |o: u64, e: u64| 100.0 * o as f64 / (o + e).max(1) as f64;
            println!(
                "overruns: timer {timer_overruns} of {} periods ({:.3} %), baseline {base_overruns} of {} periods ({:.3} %)",
                timer_overruns + timer_expiries,
                share(timer_overruns, timer_expiries),
                base_overruns + base_expiries,
                share(base_overruns, base_expiries)
            );
            // Splice the overrun counts into the record just written.
            json.pop();
            let _ = write!(
                json,
                ",\"timer_overruns\":{timer_overruns},\"timer_periods\":{},\"baseline_overruns\":{base_overruns},\"baseline_periods\":{}}}",
                timer_overruns + timer_expiries,
                base_overruns + base_expiries
            );
        }
    }
    json.push_str("]}");
    common::write_json("timer_lateness", &json);
}
