//! Queue-to-start latency of a trivial work item, against a bare tokio
//! mpsc hand-off from a plain thread to a task, on identically built
//! runtimes, interleaved in rounds. Three pairs: a worker that parks at
//! once and the default worker, each against a task sleeping in `recv`, and
//! a busy-poll worker against a task spinning on `try_recv`.
//!
//! Open loop: a plain thread raises events at fixed intended times and every
//! latency is measured from the intended time of its event, so an event
//! that starts late because the previous one was slow is counted late, not
//! skipped. The queue-to-start latency is measured from the `queue_work`
//! call (as `Workqueue::stats` does), the bare one from the `send` call; the
//! lateness of the producer thread is printed apart.
//!
//! Usage: `cargo bench --bench wq_latency -- [ROUNDS] [EVENTS_PER_ROUND]
//! [PERIOD_US]` (defaults: 5 rounds, 10,000 events, 100 us period).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    histogram, median_and_spread, positional_arguments, positive_argument, print_machine,
    print_noise_floor, print_row, print_table_header, record,
};
use hdrhistogram::Histogram;
use wq::{DataWork, Workqueue};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("bench runtime")
}

/// Sleeps until `deadline`, spinning the last 50 us so that the producer's
/// own lateness stays small.
fn wait_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(50) {
            std::thread::sleep(left - Duration::from_micros(50));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Per-round results of one side.
struct Round {
    latency: Histogram<u64>,
    producer_lateness: Histogram<u64>,
}

/// Work items used in turn, so that each event queues an idle item.
const ITEMS: usize = 64;

/// An item that records its queue-to-start latency; it carries the time it
/// was queued, in nanoseconds since `EPOCH`.
type TimedItem = Arc<DataWork<AtomicU64>>;

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn wq_round(
    queue: &Workqueue,
    items: &[TimedItem],
    latencies: &Arc<Mutex<Histogram<u64>>>,
    events: usize,
    period: Duration,
) -> Round {
    latencies.lock().unwrap().reset();
    let mut coalesced = 0_u64;
    let mut producer_lateness = histogram();
    let start = Instant::now() + Duration::from_millis(5);
    for event in 0..events {
        let intended = start + period * event as u32;
        wait_until(intended);
        let now = Instant::now();
        record(&mut producer_lateness, now - intended);
        let item = &items[event % ITEMS];
        item.store(nanos_since(*EPOCH), Ordering::Release);
        if !wq::queue_work(queue, item).unwrap() {
            coalesced += 1;
        }
    }
    wq::blocking::flush_workqueue(queue).unwrap();
    if coalesced > 0 {
        println!("  {coalesced} events found their item still pending and were not measured");
    }
    Round {
        latency: latencies.lock().unwrap().clone(),
        producer_lateness,
    }
}

/// Runs one baseline round; with `spin`, the consumer task polls
/// `try_recv` instead of sleeping in `recv`, as a busy-poll worker does.
fn mpsc_round(
    runtime: &tokio::runtime::Runtime,
    events: usize,
    period: Duration,
    spin: bool,
) -> Round {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let consumer = runtime.spawn(async move {
        let mut latency = histogram();
        loop {
            let sent_at = if spin {
                match receiver.try_recv() {
                    Ok(sent_at) => sent_at,
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match receiver.recv().await {
                    Some(sent_at) => sent_at,
                    None => break,
                }
            };
            let now = nanos_since(*EPOCH);
            latency.saturating_record(now.saturating_sub(sent_at).max(1));
        }
        latency
    });
    // Let the consumer reach its first `recv` and park.
    std::thread::sleep(Duration::from_millis(5));

    let mut producer_lateness = histogram();
    let start = Instant::now();
    for event in 0..events {
        let intended = start + period * event as u32;
        wait_until(intended);
        record(&mut producer_lateness, Instant::now() - intended);
        sender.send(nanos_since(*EPOCH)).unwrap();
    }
    drop(sender);
    Round {
        latency: runtime.block_on(consumer).expect("consumer task"),
        producer_lateness,
    }
}

static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn main() {
    let Some(arguments) = positional_arguments() else {
        return;
    };
    let rounds = positive_argument(&arguments, 0, 5, "ROUNDS") as usize;
    let events = positive_argument(&arguments, 1, 10_000, "EVENTS_PER_ROUND") as usize;
    let period = Duration::from_micros(positive_argument(&arguments, 2, 100, "PERIOD_US"));

    print_machine();
    println!(
        "queue-to-start latency: {rounds} rounds x {events} events, one every {period:?}, open loop\n"
    );
    let floor = print_noise_floor(Duration::from_secs(1));

    // Identically built runtimes, one per side.
    let latencies = Arc::new(Mutex::new(histogram()));
    let items: Vec<TimedItem> = (0..ITEMS)
        .map(|_| {
            let latencies = latencies.clone();
            DataWork::new("trivial", AtomicU64::new(0), move |item| {
                let now = nanos_since(*EPOCH);
                let queued_at = item.load(Ordering::Acquire);
                latencies
                    .lock()
                    .unwrap()
                    .saturating_record(now.saturating_sub(queued_at).max(1));
            })
        })
        .collect();

    // Three pairs, each interleaved in every round, against a consumer
    // sleeping in `recv` or spinning on `try_recv`: a worker that parks at
    // once (the same mechanism as the baseline), the default worker (parks
    // after a 50 us spin), and a busy-poll worker. Each pair gets its own two
    // identically built runtimes, so that a spinning pair cannot keep the
    // runtime threads of another pair awake.
    let pairs = [
        (
            "parking worker (idle_spin 0) vs sleeping",
            Duration::ZERO,
            false,
        ),
        (
            "default worker (idle_spin 50 us) vs sleeping",
            wq::DEFAULT_IDLE_SPIN,
            false,
        ),
        ("busy-poll worker vs spinning", Duration::MAX, true),
    ];
    for (name, idle_spin, spin) in pairs {
        let wq_runtime = runtime();
        let mpsc_runtime = runtime();
        let queue = Workqueue::builder("latency")
            .max_active(1)
            .idle_spin(idle_spin)
            .runtime(wq_runtime.handle().clone())
            .build();
        let queue = &queue;
        let (mut wq_total, mut mpsc_total) = (histogram(), histogram());
        let (mut wq_lateness, mut mpsc_lateness) = (histogram(), histogram());
        let (mut p50_ratios, mut p99_ratios) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let wq = wq_round(queue, &items, &latencies, events, period);
            let bare = mpsc_round(&mpsc_runtime, events, period, spin);
            p50_ratios.push(
                wq.latency.value_at_quantile(0.5) as f64
                    / bare.latency.value_at_quantile(0.5) as f64,
            );
            p99_ratios.push(
                wq.latency.value_at_quantile(0.99) as f64
                    / bare.latency.value_at_quantile(0.99) as f64,
            );
            wq_total.add(&wq.latency).expect("same bounds");
            mpsc_total.add(&bare.latency).expect("same bounds");
            wq_lateness.add(&wq.producer_lateness).expect("same bounds");
            mpsc_lateness
                .add(&bare.producer_lateness)
                .expect("same bounds");
        }

        println!("\n{name} consumer:");
        print_table_header();
        print_row("wq queue_work -> work start", &wq_total);
        print_row("baseline mpsc send -> task recv", &mpsc_total);
        print_row("producer lateness (wq rounds)", &wq_lateness);
        print_row("producer lateness (mpsc rounds)", &mpsc_lateness);

        let (p50, p50_min, p50_max) = median_and_spread(&mut p50_ratios);
        let (p99, p99_min, p99_max) = median_and_spread(&mut p99_ratios);
        println!("ratio wq / baseline, median of {rounds} rounds (min..max):");
        println!("  p50 {p50:.2}x ({p50_min:.2}..{p50_max:.2}), goal at most 1.2x");
        println!("  p99 {p99:.2}x ({p99_min:.2}..{p99_max:.2}), goal at most 1.5x");
    }
    if floor.untrustworthy() {
        println!("  (noise floor above 2 %: treat the tails with suspicion)");
    }
}
