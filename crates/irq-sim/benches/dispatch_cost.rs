//! Cost per interrupt on the CPU, and what the instrumentation adds.
//!
//! 1. Scaling: N lines are registered (N = 8, 64, 1024). For each batch, a
//!    gate line holds the CPU while the raiser raises 8 distinct lines,
//!    then the gate opens and the CPU drains the 8 back to back. The lines
//!    raised cycle through the first 8 ("8 active") or through all N ("all
//!    active", which adds the cache misses of a working set of N lines). The CPU thread itself stamps the gate's exit and the
//!    last handler's entry, so the measured interval contains no
//!    cross-thread hand-off. Cost per interrupt = interval / 8; the median
//!    over all batches resists host preemption. The ratio of each N to
//!    N = 8 should stay within 10 %.
//! 2. Instrumentation: the CPU's per-interrupt clock reads and histogram
//!    records, timed in a loop, plus the raiser's clock read. The scaling
//!    run with histograms on and off gives the records' cost in place.
//!
//! `IRQ_BENCH_ROUNDS` (5) rounds of `IRQ_BENCH_EVENTS` (40,000)
//! interrupts per configuration.
//!
//! `cargo bench -p irq-sim --bench dispatch_cost`

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{env_or, histogram};
use irq_sim::clock;
use irq_sim::{
    Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, LatencyHistograms, Machine,
    WatchdogConfig,
};

const BATCH: u32 = 8;
const GATE: u32 = 1024;

fn spin_until_set(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
}

/// Returns the median cost per interrupt, in nanoseconds, with `lines`
/// registered lines of which the first `active` are raised in turn.
fn cost_per_interrupt(lines: u32, active: u32, events: u64, histograms: bool) -> f64 {
    let machine = Machine::new(Config {
        nr_irqs: GATE + 1,
        nr_cpus: 1,
        histograms,
        watchdog: WatchdogConfig {
            enabled: false,
            ..WatchdogConfig::default()
        },
        ..Config::default()
    })
    .expect("valid config");
    let irq = machine.controller();

    // The gate holds the CPU until the batch is queued, then stamps its exit.
    let entered = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicBool::new(false));
    let gate_exit = Arc::new(AtomicU64::new(0));
    let (gate_entered, gate_open, exit_stamp) = (entered.clone(), open.clone(), gate_exit.clone());
    irq.request_irq(
        GATE,
        IrqRequest::new("gate", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            gate_entered.store(true, Ordering::Release);
            spin_until_set(&gate_open);
            exit_stamp.store(clock::now().as_nanos(), Ordering::Release);
            IrqReturn::Handled
        }),
    )
    .expect("free line");

    // Each handler counts; the batch's last one stamps the end.
    let done = Arc::new(AtomicU64::new(0));
    let last_entry = Arc::new(AtomicU64::new(0));
    for line in 0..lines {
        let (counter, stamp) = (done.clone(), last_entry.clone());
        irq.request_irq(
            line,
            IrqRequest::new(
                "bench",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    // Only this CPU thread writes the counter; the stamp is
                    // stored before the count that the raiser waits for.
                    let count = counter.load(Ordering::Relaxed) + 1;
                    if count % u64::from(BATCH) == 0 {
                        stamp.store(clock::now().as_nanos(), Ordering::Release);
                    }
                    counter.store(count, Ordering::Release);
                    IrqReturn::Handled
                },
            ),
        )
        .expect("free line");
    }

    let mut costs = histogram();
    let mut next = 0u32;
    for batch in 1..=events / u64::from(BATCH) {
        entered.store(false, Ordering::Release);
        open.store(false, Ordering::Release);
        let _ = irq.raise(GATE).expect("valid line");
        spin_until_set(&entered);
        for _ in 0..BATCH {
            let _ = irq.raise(next).expect("valid line");
            next = (next + 1) % active;
        }
        open.store(true, Ordering::Release);
        while done.load(Ordering::Acquire) < batch * u64::from(BATCH) {
            std::hint::spin_loop();
        }
        let interval = last_entry
            .load(Ordering::Acquire)
            .saturating_sub(gate_exit.load(Ordering::Acquire));
        costs.saturating_record((interval / u64::from(BATCH)).max(1));
    }
    machine.shutdown();
    costs.value_at_quantile(0.5) as f64
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
    let events = env_or("IRQ_BENCH_EVENTS", 40_000);
    println!("dispatch cost: {rounds} rounds of {events} interrupts, batches of {BATCH}");
    let mut json = String::from("{");
    common::print_noise_floor(&mut json);

    // Scaling with the number of registered lines, interleaved per round:
    // (registered, active) pairs.
    let cases = [(8u32, 8u32), (64, 8), (1024, 8), (64, 64), (1024, 1024)];
    let mut costs = vec![Vec::new(); cases.len()];
    let (mut with_histograms, mut without_histograms) = (Vec::new(), Vec::new());
    let mut instrumentation = Vec::new();
    let mut clock_reads = Vec::new();
    for _ in 0..rounds {
        for (index, &(lines, active)) in cases.iter().enumerate() {
            costs[index].push(cost_per_interrupt(lines, active, events, true));
        }
        with_histograms.push(cost_per_interrupt(8, 8, events, true));
        without_histograms.push(cost_per_interrupt(8, 8, events, false));
        instrumentation.push(instrumentation_cost(1_000_000));
        clock_reads.push(clock_read_cost(1_000_000));
    }

    println!("\n== CPU cost per interrupt (median of batches, median of rounds)");
    json.push_str(",\"scaling\":[");
    for (index, &(lines, active)) in cases.iter().enumerate() {
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
            "{lines:>5} registered, {active:>5} active: {cost:7.1} ns, ratio to 8/8 {ratio:.3} (rounds {min:.3}..{max:.3}), limit 1.10"
        );
        if index > 0 {
            json.push(',');
        }
        let _ = write!(
            json,
            "{{\"lines\":{lines},\"active\":{active},\"ns_per_interrupt\":{cost:.1},\"ratio\":{ratio:.3},\"min\":{min:.3},\"max\":{max:.3}}}"
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
