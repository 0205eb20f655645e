//! The cost of `queue_work` inside a top half, on a simulated CPU, against a
//! bare channel send made by the same kind of top half on the same thread,
//! with the bottom-half worker awake and asleep.
//!
//! - Each top half times its one operation with two clock reads, so every
//!   side carries the same instrumentation: `queue_work` of an idle work
//!   item, or `UnboundedSender::send` to a receiver that is not waiting.
//!   The work item is either a `static` one (`DECLARE_WORK`, the first
//!   classic example) or an allocated `Arc<Work>`, whose queueing also
//!   takes a reference.
//! - Each side hands its data to another thread after every event, so the
//!   same kind of cache-line traffic crosses the CPUs: the worker runs the
//!   item, and the driver thread takes the value out of the channel with
//!   `try_recv`. The driver waits for the item's run and for the value
//!   before the next raise, so every `queue_work` finds its item idle.
//! - Events come every 200 us, the driver sleeping between them. "Worker
//!   awake": the queue's worker never parks (`idle_spin(Duration::MAX)`),
//!   so `queue_work` finds no worker to wake. "Worker asleep": the worker
//!   parks as soon as it is idle (`idle_spin(Duration::ZERO)`), so each
//!   `queue_work` must arrange a wake-up; the top-half contract says it
//!   only records it, for the CPU thread to make after the handler chain.
//! - A last pass wraps each `queue_work` in `getrusage(RUSAGE_THREAD)` and
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
    histogram, median_and_spread, positional_arguments, positive_argument, print_machine,
    print_noise_floor, print_row, print_table_header, record,
};
use hdrhistogram::Histogram;
use irq_sim::{Config, Controller, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};
use wq::{Work, WorkRef, Workqueue};

/// The lines of the timed top halves, by side: static item, allocated item,
/// channel send. `RUSAGE_LINE` carries the `getrusage` pass.
const LINES: [u32; 3] = [10, 11, 12];
const RUSAGE_LINE: u32 = 13;
const SIDES: [&str; 3] = [
    "queue_work, static item",
    "queue_work, Arc item",
    "channel send",
];
const MODES: [&str; 2] = ["worker awake", "worker asleep"];

/// Index of the queue the timed top halves use: 0 awake, 1 asleep.
static MODE: AtomicUsize = AtomicUsize::new(0);

/// Top halves run so far, per line, so that the driver can wait for each
/// delivery before the next raise and no edge coalesces.
static DELIVERED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn delivered(irq: u32) -> &'static AtomicU64 {
    &DELIVERED[(irq - LINES[0]) as usize]
}

/// Runs of each work item, indexed by `item_index`.
static RUNS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn item_index(allocated: bool, mode: usize) -> usize {
    usize::from(allocated) * 2 + mode
}

fn count_run(index: usize) {
    RUNS[index].fetch_add(1, Ordering::Release);
}

/// The static items, one per queue, as `DECLARE_WORK` makes them.
static STATIC_ITEMS: [Work; 2] = [
    Work::new("static-awake", || count_run(0)),
    Work::new("static-asleep", || count_run(1)),
];

fn voluntary_switches() -> i64 {
    // SAFETY: `usage` is a valid, writable `rusage`; RUSAGE_THREAD reads the
    // calling thread's counters and has no other effect.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage.ru_nvcsw
    }
}

/// Raises `irq` `events` times, one every `period`, waiting for each
/// delivery before the next; `settle` runs before each raise and `collect`
/// after each delivery.
fn drive(
    controller: &Controller,
    irq: u32,
    events: usize,
    period: Duration,
    mut settle: impl FnMut(),
    mut collect: impl FnMut(),
) {
    let start = Instant::now();
    for event in 0..events {
        let intended = start + period * event as u32;
        if let Some(wait) = intended.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        settle();
        let before = delivered(irq).load(Ordering::Acquire);
        let _outcome = controller.raise(irq).expect("line exists");
        while delivered(irq).load(Ordering::Acquire) == before {
            std::hint::spin_loop();
        }
        collect();
    }
}

/// Counts the queueings of each item, so that before a raise the driver can
/// wait until the item has run as often as it was queued.
#[derive(Default)]
struct Settler {
    queued: [u64; 4],
}

impl Settler {
    fn settle(&mut self, index: usize) {
        while RUNS[index].load(Ordering::Acquire) < self.queued[index] {
            std::hint::spin_loop();
        }
        self.queued[index] += 1;
    }
}

/// Registers a top half on `irq` that times `queue_work` of the item that
/// `item` picks for the current mode.
fn register_queue_work<W: WorkRef>(
    controller: &Controller,
    irq: u32,
    queues: &Arc<[Workqueue; 2]>,
    costs: &Arc<Mutex<Histogram<u64>>>,
    item: impl Fn(usize) -> W + Send + 'static,
) {
    let (queues, costs) = (queues.clone(), costs.clone());
    controller
        .request_irq(
            irq,
            IrqRequest::new(
                "wq-top-half",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    let mode = MODE.load(Ordering::Relaxed);
                    let (queue, item) = (&queues[mode], item(mode));
                    let start = Instant::now();
                    let queued = wq::queue_work(queue, item);
                    let cost = start.elapsed();
                    record(&mut costs.lock().unwrap(), cost);
                    std::hint::black_box(queued.ok());
                    delivered(irq).fetch_add(1, Ordering::Release);
                    IrqReturn::Handled
                },
            ),
        )
        .expect("free line");
}

fn main() {
    let Some(arguments) = positional_arguments() else {
        return;
    };
    let rounds = positive_argument(&arguments, 0, 5, "ROUNDS") as usize;
    let events = positive_argument(&arguments, 1, 2_000, "EVENTS") as usize;

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
    // Leaked so that the top half can pass `&Arc<Work>`, as a driver passes
    // the one it keeps.
    let allocated: &'static [Arc<Work>; 2] = Box::leak(Box::new([0, 1].map(|mode| {
        let index = item_index(true, mode);
        Work::from_fn("allocated", move || count_run(index))
    })));
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .expect("valid machine config");
    let controller = machine.controller();

    // One histogram per side, reset every round.
    let costs: [Arc<Mutex<Histogram<u64>>>; 3] =
        [(); 3].map(|()| Arc::new(Mutex::new(histogram())));
    register_queue_work(&controller, LINES[0], &queues, &costs[0], |mode| {
        &STATIC_ITEMS[mode]
    });
    register_queue_work(&controller, LINES[1], &queues, &costs[1], |mode| {
        &allocated[mode]
    });
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
    {
        let costs = costs[2].clone();
        let mut value = 0_u64;
        controller
            .request_irq(
                LINES[2],
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
                        delivered(LINES[2]).fetch_add(1, Ordering::Release);
                        IrqReturn::Handled
                    },
                ),
            )
            .expect("free line");
    }

    // The getrusage pass: queue_work of the static item between two
    // getrusage calls, worker asleep.
    let switches = Arc::new(AtomicU64::new(0));
    {
        let (queues, switches) = (queues.clone(), switches.clone());
        controller
            .request_irq(
                RUSAGE_LINE,
                IrqRequest::new(
                    "rusage-top-half",
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        let before = voluntary_switches();
                        let queued = wq::queue_work(&queues[1], &STATIC_ITEMS[1]);
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
    let mut settler = Settler::default();
    let mut take_value = || {
        receiver
            .try_recv()
            .expect("the send top half sent one value");
    };
    // Per mode and side: all rounds' samples, each round's p50 and p99.9.
    let mut totals = [(); 2].map(|()| [(); 3].map(|()| histogram()));
    let mut p50s = [(); 2].map(|()| [(); 3].map(|()| Vec::new()));
    let mut p999s = [(); 2].map(|()| [(); 3].map(|()| Vec::new()));
    for _ in 0..rounds {
        for mode in 0..MODES.len() {
            MODE.store(mode, Ordering::Relaxed);
            for cost in &costs {
                cost.lock().unwrap().reset();
            }
            for (side, &irq) in LINES.iter().enumerate() {
                match side {
                    2 => drive(&controller, irq, events, period, || {}, &mut take_value),
                    _ => {
                        let index = item_index(side == 1, mode);
                        drive(
                            &controller,
                            irq,
                            events,
                            period,
                            || settler.settle(index),
                            || {},
                        );
                    }
                }
            }
            wq::blocking::flush_workqueue(&queues[mode]).expect("task context");
            for (side, cost) in costs.iter().enumerate() {
                let round = cost.lock().unwrap().clone();
                p50s[mode][side].push(round.value_at_quantile(0.5) as f64);
                p999s[mode][side].push(round.value_at_quantile(0.999) as f64);
                totals[mode][side].add(&round).expect("same bounds");
            }
        }
    }

    drive(
        &controller,
        RUSAGE_LINE,
        events,
        period,
        || settler.settle(item_index(false, 1)),
        || {},
    );
    wq::blocking::flush_workqueue(&queues[1]).expect("task context");

    println!();
    print_table_header();
    for (mode, name) in MODES.iter().enumerate() {
        for (side, side_name) in SIDES.iter().enumerate() {
            print_row(&format!("{side_name}, {name}"), &totals[mode][side]);
        }
    }

    println!();
    for (mode, name) in MODES.iter().enumerate() {
        for side in 0..2 {
            let mut ratios: Vec<f64> = p50s[mode][side]
                .iter()
                .zip(&p50s[mode][2])
                .map(|(queue_work, send)| queue_work / send)
                .collect();
            let (ratio, low, high) = median_and_spread(&mut ratios);
            let (p999, _, worst) = median_and_spread(&mut p999s[mode][side]);
            let (send_p999, _, _) = median_and_spread(&mut p999s[mode][2]);
            println!(
                "{}, {name}: p50 / send {ratio:.2}x ({low:.2}..{high:.2}), goal at most 3x; p99.9 {} (worst round {}; send {}), goal under 1 us",
                SIDES[side],
                common::format_ns(p999 as u64),
                common::format_ns(worst as u64),
                common::format_ns(send_p999 as u64),
            );
        }
    }
    for (side, side_name) in SIDES.iter().enumerate().take(2) {
        let awake = totals[0][side].value_at_quantile(0.5) as f64;
        let asleep = totals[1][side].value_at_quantile(0.5) as f64;
        println!(
            "{side_name}, asleep / awake p50: {:.2}x, goal at most 1.2x",
            asleep / awake
        );
    }
    println!(
        "voluntary context switches inside {events} top halves with queue_work (worker asleep): {}",
        switches.load(Ordering::Relaxed)
    );
    for (name, queue) in MODES.iter().zip(queues.iter()) {
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
