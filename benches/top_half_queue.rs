//! The cost of `queue_work` inside a top half, on a simulated CPU, against a
//! bare channel send made by the same kind of top half on the same thread,
//! with the bottom-half worker awake and asleep.
//!
//! - Each top half times its one operation (`queue_work` of an idle item, or
//!   `UnboundedSender::send` to a receiver that is not waiting) with two
//!   clock reads, so both sides carry the same instrumentation.
//! - Events come every 200 us in both modes, and the worker runs every item
//!   in both, so the same cache lines move between the CPUs. "Worker awake":
//!   the queue's worker never parks (`idle_spin(Duration::MAX)`), so
//!   `queue_work` finds nobody to wake. "Worker asleep": the worker parks as
//!   soon as it is idle (`idle_spin(Duration::ZERO)`), so each `queue_work`
//!   must arrange a wake-up; the top-half contract says it only records it,
//!   for the CPU thread to make after the handler chain.
//! - A second pass wraps each `queue_work` in `getrusage(RUSAGE_THREAD)` and
//!   counts voluntary context switches inside the handler: any is a wake-up
//!   or a sleep that the top half should not make.
//!
//! Usage: `cargo bench --bench top_half_queue -- [ROUNDS] [EVENTS]`
//! (defaults: 5 rounds of 2,000 events per side and mode, one every 200 us).

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    histogram, median_and_spread, print_machine, print_noise_floor, print_row, print_table_header,
    record,
};
use hdrhistogram::Histogram;
use irq_sim::{Config, Controller, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};
use wq::{Work, Workqueue};

const WQ_LINE: u32 = 10;
const SEND_LINE: u32 = 11;
const RUSAGE_LINE: u32 = 12;
/// Index of the queue the timed top half uses: 0 awake, 1 asleep.
static MODE: AtomicUsize = AtomicUsize::new(0);

/// Items used in turn, so that each event queues an idle item.
const ITEMS: usize = 4096;

fn voluntary_switches() -> i64 {
    // SAFETY: `usage` is a valid, writable `rusage`; RUSAGE_THREAD reads the
    // calling thread's counters and has no other effect.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage.ru_nvcsw
    }
}

/// Top halves run so far, per line, so that the driver can wait for each
/// delivery before the next raise and no edge coalesces.
static DELIVERED: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

fn delivered(irq: u32) -> &'static AtomicU64 {
    &DELIVERED[(irq - WQ_LINE) as usize]
}

/// Raises `irq` `events` times, one every `period`, waiting for each
/// delivery before the next.
fn drive(controller: &Controller, irq: u32, events: usize, period: Duration) {
    let start = Instant::now();
    for event in 0..events {
        let intended = start + period * event as u32;
        while Instant::now() < intended {
            std::hint::spin_loop();
        }
        let before = delivered(irq).load(Ordering::Acquire);
        let _outcome = controller.raise(irq).expect("line exists");
        while delivered(irq).load(Ordering::Acquire) == before {
            std::hint::spin_loop();
        }
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args()
        .skip(1)
        .filter(|argument| !argument.starts_with("--"))
        .collect();
    let parse = |index: usize, default: usize, what: &str| -> usize {
        match arguments.get(index) {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                eprintln!("error: invalid {what} {text:?}: expected a positive integer");
                std::process::exit(2);
            }),
        }
    };
    let rounds = parse(0, 5, "ROUNDS").max(1);
    // Each event of a round must find its item idle, so a round uses each
    // item at most once.
    let events = parse(1, 2_000, "EVENTS").clamp(1, ITEMS);

    print_machine();
    println!(
        "top-half cost of one queue_work vs a bare channel send: {rounds} rounds x {events} events\n"
    );
    let floor = print_noise_floor(Duration::from_secs(1));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("bench runtime");
    // Index 0: the worker never parks; index 1: it parks at once.
    let queues: Arc<[Workqueue; 2]> = Arc::new([Duration::MAX, Duration::ZERO].map(|idle_spin| {
        Workqueue::builder("top-half-bench")
            .max_active(1)
            .idle_spin(idle_spin)
            .runtime(runtime.handle().clone())
            .build()
    }));
    let items: Arc<Vec<Arc<Work>>> = Arc::new(
        (0..ITEMS)
            .map(|_| Work::from_fn("trivial", || {}))
            .collect(),
    );
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .expect("valid machine config");
    let controller = machine.controller();

    // Top half 1: one queue_work, timed.
    let wq_costs = Arc::new(Mutex::new(histogram()));
    {
        let (queues, items, costs) = (queues.clone(), items.clone(), wq_costs.clone());
        let mut next = 0;
        controller
            .request_irq(
                WQ_LINE,
                IrqRequest::new(
                    "wq-top-half",
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        let item = &items[next % ITEMS];
                        next += 1;
                        let queue = &queues[MODE.load(Ordering::Relaxed)];
                        let start = Instant::now();
                        let queued = wq::queue_work(queue, item);
                        let cost = start.elapsed();
                        record(&mut costs.lock().unwrap(), cost);
                        std::hint::black_box(queued.ok());
                        delivered(WQ_LINE).fetch_add(1, Ordering::Release);
                        IrqReturn::Handled
                    },
                ),
            )
            .expect("free line");
    }

    // Top half 2: one channel send to a receiver that is not waiting, timed.
    let send_costs = Arc::new(Mutex::new(histogram()));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
    {
        let costs = send_costs.clone();
        let mut value = 0_u64;
        controller
            .request_irq(
                SEND_LINE,
                IrqRequest::new(
                    "send-top-half",
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        value += 1;
                        let start = Instant::now();
                        let sent = sender.send(value);
                        let cost = start.elapsed();
                        record(&mut costs.lock().unwrap(), cost);
                        std::hint::black_box(sent.is_ok());
                        delivered(SEND_LINE).fetch_add(1, Ordering::Release);
                        IrqReturn::Handled
                    },
                ),
            )
            .expect("free line");
    }

    // Top half 3: queue_work between two getrusage calls.
    let switches = Arc::new(AtomicU64::new(0));
    {
        let (queues, items, switches) = (queues.clone(), items.clone(), switches.clone());
        let mut next = 0;
        controller
            .request_irq(
                RUSAGE_LINE,
                IrqRequest::new(
                    "rusage-top-half",
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        let item = &items[next % ITEMS];
                        next += 1;
                        let before = voluntary_switches();
                        let queued = wq::queue_work(&queues[1], item);
                        let after = voluntary_switches();
                        switches.fetch_add((after - before).max(0) as u64, Ordering::Relaxed);
                        std::hint::black_box(queued.ok());
                        delivered(RUSAGE_LINE).fetch_add(1, Ordering::Release);
                        IrqReturn::Handled
                    },
                ),
            )
            .expect("free line");
    }

    let period = Duration::from_micros(200);
    let modes = ["worker awake", "worker asleep"];
    let mut totals: Vec<(Histogram<u64>, Histogram<u64>)> =
        modes.iter().map(|_| (histogram(), histogram())).collect();
    let mut ratios: Vec<(Vec<f64>, Vec<f64>)> =
        modes.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for _ in 0..rounds {
        for (mode, _) in modes.iter().enumerate() {
            MODE.store(mode, Ordering::Relaxed);
            wq_costs.lock().unwrap().reset();
            send_costs.lock().unwrap().reset();
            drive(&controller, WQ_LINE, events, period);
            drive(&controller, SEND_LINE, events, period);
            wq::blocking::flush_workqueue(&queues[mode]).expect("task context");

            let (wq_round, send_round) = (
                wq_costs.lock().unwrap().clone(),
                send_costs.lock().unwrap().clone(),
            );
            ratios[mode].0.push(
                wq_round.value_at_quantile(0.5) as f64 / send_round.value_at_quantile(0.5) as f64,
            );
            ratios[mode]
                .1
                .push(wq_round.value_at_quantile(0.999) as f64);
            totals[mode].0.add(&wq_round).expect("same bounds");
            totals[mode].1.add(&send_round).expect("same bounds");
        }
    }
    drop(receiver);

    drive(&controller, RUSAGE_LINE, events, period);
    wq::blocking::flush_workqueue(&queues[1]).expect("task context");
    let rusage_events = events;

    println!();
    print_table_header();
    for (name, (wq_total, send_total)) in modes.iter().zip(&totals) {
        print_row(&format!("queue_work, {name}"), wq_total);
        print_row(&format!("channel send, {name}"), send_total);
    }

    println!();
    for (name, (p50_ratios, p999s)) in modes.iter().zip(ratios.iter_mut()) {
        let (p50, p50_min, p50_max) = median_and_spread(p50_ratios);
        let (p999, _, p999_max) = median_and_spread(p999s);
        println!(
            "{name}: p50 queue_work / send {p50:.2}x ({p50_min:.2}..{p50_max:.2}), goal at most 3x; p99.9 {} (worst round {}), goal under 1 us",
            common::format_ns(p999 as u64),
            common::format_ns(p999_max as u64)
        );
    }
    let awake = totals[0].0.value_at_quantile(0.5) as f64;
    let asleep = totals[1].0.value_at_quantile(0.5) as f64;
    println!(
        "asleep / awake, queue_work p50: {:.2}x, goal at most 1.2x",
        asleep / awake
    );
    println!(
        "voluntary context switches inside {rusage_events} top halves with queue_work (worker asleep): {}",
        switches.load(Ordering::Relaxed)
    );
    for (name, queue) in modes.iter().zip(queues.iter()) {
        let stats = queue.stats();
        println!(
            "queue ({name}): queued {}, executed {}, coalesced {}",
            stats.queued, stats.executed, stats.coalesced
        );
    }
    if floor.untrustworthy() {
        println!("(noise floor above 2 %: treat the tails with suspicion)");
    }
    let report = machine.shutdown();
    if !report.is_clean() {
        println!("machine shutdown: {report:?}");
    }
}
