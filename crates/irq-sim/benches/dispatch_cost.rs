//! Cost per interrupt on the CPU, and what the instrumentation adds.
//!
//! 1. Scaling: one busy-poll CPU; the raiser raises batches of 8 distinct
//!    lines and waits for them, cycling through all N registered lines, for
//!    N = 8, 64 and 1024. Cost per interrupt = wall time / interrupts; the
//!    ratio to N = 8 should stay within 10 %.
//! 2. Instrumentation: the per-interrupt sequence of clock reads (raise,
//!    entry, exit) and histogram records (line and CPU, latency and
//!    duration, the CPU pair under its mutex), timed in a loop; and the
//!    same scaling run with histograms on and off.
//!
//! `IRQ_BENCH_ROUNDS` (5) rounds of `IRQ_BENCH_EVENTS` (200,000)
//! interrupts.
//!
//! `cargo bench -p irq-sim --bench dispatch_cost`

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use common::env_or;
use irq_sim::clock;
use irq_sim::{
    Config, CpuMode, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, LatencyHistograms, Machine,
    WatchdogConfig,
};

const BATCH: u32 = 8;

/// Returns nanoseconds per interrupt with `lines` registered lines.
fn cost_per_interrupt(lines: u32, events: u64, histograms: bool) -> f64 {
    let machine = Machine::new(Config {
        nr_irqs: 1024,
        nr_cpus: 1,
        cpu_mode: CpuMode::BusyPoll,
        histograms,
        watchdog: WatchdogConfig {
            enabled: false,
            ..WatchdogConfig::default()
        },
        ..Config::default()
    })
    .expect("valid config");
    let irq = machine.controller();
    let done = Arc::new(AtomicU64::new(0));
    for line in 0..lines {
        let counter = done.clone();
        irq.request_irq(
            line,
            IrqRequest::new(
                "bench",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    counter.fetch_add(1, Ordering::Release);
                    IrqReturn::Handled
                },
            ),
        )
        .expect("free line");
    }

    let batches = events / u64::from(BATCH);
    let start = clock::now();
    let mut next = 0u32;
    for batch in 1..=batches {
        for _ in 0..BATCH {
            let _ = irq.raise(next).expect("valid line");
            next = (next + 1) % lines;
        }
        let target = batch * u64::from(BATCH);
        while done.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
    }
    let elapsed = clock::now().saturating_since(start);
    machine.shutdown();
    elapsed.as_nanos() as f64 / (batches * u64::from(BATCH)) as f64
}

/// Times the instrumentation of one interrupt as the CPU thread does it:
/// the entry and exit clock reads, the line's two histogram records, and
/// the CPU's two records, made in batches of 32 under the CPU's histogram
/// mutex. Returns nanoseconds per interrupt.
fn instrumentation_cost(iterations: u64) -> f64 {
    let mut line = LatencyHistograms::for_line();
    let cpu = Mutex::new(LatencyHistograms::for_cpu());
    let mut batch = [(0u64, 0u64); 32];
    let mut len = 0;
    let raised = clock::now();
    let start = clock::now();
    for _ in 0..iterations {
        let entry = clock::now();
        let exit = clock::now();
        let latency = entry.as_nanos() - raised.as_nanos();
        let duration = exit.as_nanos() - entry.as_nanos() + 500;
        line.record(Some(black_box(latency)), black_box(duration));
        batch[len] = (latency, duration);
        len += 1;
        if len == batch.len() {
            let mut histograms = cpu.lock().unwrap();
            for &(latency, duration) in &batch {
                histograms.record(Some(latency), duration);
            }
            len = 0;
        }
    }
    let elapsed = clock::now().saturating_since(start);
    black_box(&line);
    elapsed.as_nanos() as f64 / iterations as f64
}

/// Times one clock read (the raiser's, on the device thread).
fn clock_read_cost(iterations: u64) -> f64 {
    let start = clock::now();
    for _ in 0..iterations {
        black_box(clock::now());
    }
    clock::now().saturating_since(start).as_nanos() as f64 / iterations as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let rounds = env_or("IRQ_BENCH_ROUNDS", 5);
    let events = env_or("IRQ_BENCH_EVENTS", 200_000);
    println!("dispatch cost: {rounds} rounds of {events} interrupts, batches of {BATCH}");
    let mut json = String::from("{");
    common::print_noise_floor(&mut json);

    // Scaling with the number of registered lines, interleaved per round.
    let sizes = [8u32, 64, 1024];
    let mut costs = vec![Vec::new(); sizes.len()];
    let (mut with_histograms, mut without_histograms) = (Vec::new(), Vec::new());
    let mut instrumentation = Vec::new();
    let mut clock_reads = Vec::new();
    for _ in 0..rounds {
        for (index, &lines) in sizes.iter().enumerate() {
            costs[index].push(cost_per_interrupt(lines, events, true));
        }
        with_histograms.push(cost_per_interrupt(8, events, true));
        without_histograms.push(cost_per_interrupt(8, events, false));
        instrumentation.push(instrumentation_cost(1_000_000));
        clock_reads.push(clock_read_cost(1_000_000));
    }

    println!(
        "\n== cost per interrupt by registered lines (wall ns per interrupt, median of rounds)"
    );
    json.push_str(",\"scaling\":[");
    for (index, &lines) in sizes.iter().enumerate() {
        let ratios: Vec<f64> = costs[index]
            .iter()
            .zip(&costs[0])
            .map(|(c, b)| c / b)
            .collect();
        let (min, max) = ratios.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
        let cost = median(costs[index].clone());
        let ratio = median(ratios);
        println!(
            "{lines:>5} lines: {cost:8.1} ns, ratio to 8 lines {ratio:.3} (rounds {min:.3}..{max:.3}), limit 1.10"
        );
        if index > 0 {
            json.push(',');
        }
        let _ = write!(
            json,
            "{{\"lines\":{lines},\"ns_per_interrupt\":{cost:.1},\"ratio\":{ratio:.3},\"min\":{min:.3},\"max\":{max:.3}}}"
        );
    }
    json.push(']');

    let on = median(with_histograms);
    let off = median(without_histograms);
    let micro = median(instrumentation);
    let read = median(clock_reads);
    println!("\n== instrumentation per interrupt");
    println!(
        "CPU side, 2 clock reads + 4 histogram records (CPU pair batched): {micro:.1} ns (limit 60 ns)"
    );
    println!(
        "raiser side, 1 clock read: {read:.1} ns; both sides: {:.1} ns",
        micro + read
    );
    println!(
        "8 lines, histograms on {on:.1} ns, off {off:.1} ns: records cost {:.1} ns in place",
        on - off
    );
    let _ = write!(
        json,
        ",\"instrumentation_cpu_ns\":{micro:.1},\"clock_read_ns\":{read:.1},\"histograms_on_ns\":{on:.1},\"histograms_off_ns\":{off:.1}}}"
    );
    common::write_json("dispatch_cost", &json);
}
