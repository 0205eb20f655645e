//! Criterion benches of queueing, each beside its baseline in one group:
//!
//! - `queue_work_idle_ns`: `queue_work` of an idle item from a plain thread,
//!   against `UnboundedSender::send`, both with the consumer awake so that
//!   neither pays a wake-up. Two pairs: the consumer held busy elsewhere
//!   (nothing is consumed while the producer runs), and the consumer
//!   consuming at the same time (a busy-poll worker, and a task spinning on
//!   `try_recv`), which moves cache lines between the cores on both sides.
//!   The held pair also runs with `&'static` items (`DECLARE_WORK`), which
//!   take no reference: an `Arc` item's queueing increments its reference
//!   count, on a cache line of its own that the worker wrote last.
//!   Each sample makes 512 calls, so criterion's time is that of 512 calls
//!   and its throughput is in calls per second. docs/benchmarks.md quotes
//!   the time divided by 512: the ns per call.
//! - `queue_work_pending_ns`: `queue_work` of an item that is already
//!   pending: the coalesced path.
//! - `work_items_per_s`: trivial work items queued from a plain thread and
//!   run on a worker, against a plain-thread-to-tokio-task mpsc stream.
//!
//! Run with `cargo bench --bench wq_queue`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wq::{Work, Workqueue};

/// Items per timed batch of the idle-queueing bench.
const BATCH: usize = 512;

/// An ordered queue on its own runtime, with a "busy" item that holds its
/// only worker until released: queueing then only links, with no wake-up.
struct BusyQueue {
    _runtime: tokio::runtime::Runtime,
    queue: Workqueue,
    busy: Arc<Work>,
    hold: Arc<AtomicBool>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("bench runtime")
}

impl BusyQueue {
    fn new() -> Self {
        let runtime = runtime();
        let queue = Workqueue::builder("bench")
            .ordered()
            .runtime(runtime.handle().clone())
            .build();
        let hold = Arc::new(AtomicBool::new(false));
        let busy = {
            let hold = hold.clone();
            Work::from_fn("busy", move || {
                while hold.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            })
        };
        Self {
            _runtime: runtime,
            queue,
            busy,
            hold,
        }
    }

    /// Occupies the worker with the busy item.
    fn occupy(&self) {
        self.hold.store(true, Ordering::Release);
        wq::queue_work(&self.queue, &self.busy).unwrap();
        while !self.busy_started() {
            std::hint::spin_loop();
        }
    }

    fn busy_started(&self) -> bool {
        !self.busy.is_pending() && self.queue.stats().in_flight == 1
    }

    /// Releases the worker and waits until the queue is empty.
    fn release(&self) {
        self.hold.store(false, Ordering::Release);
        wq::blocking::flush_workqueue(&self.queue).unwrap();
    }
}

fn bench_queue_idle(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_work_idle_ns");
    group.throughput(Throughput::Elements(BATCH as u64));

    let busy = BusyQueue::new();
    let items: Vec<Arc<Work>> = (0..BATCH)
        .map(|_| Work::from_fn("trivial", || {}))
        .collect();
    group.bench_function("wq_queue_work_worker_held", |b| {
        b.iter_batched(
            || {
                // Run the previous batch's items, then hold the worker again.
                busy.release();
                busy.occupy();
            },
            |()| {
                for item in &items {
                    black_box(wq::queue_work(&busy.queue, item).unwrap());
                }
            },
            BatchSize::PerIteration,
        );
    });
    busy.release();

    // Static items as `DECLARE_WORK` makes them, leaked from the heap so
    // that there can be 512 of them.
    let static_items: Vec<&'static Work> = (0..BATCH)
        .map(|_| &*Box::leak(Box::new(Work::new("trivial", || {}))))
        .collect();
    group.bench_function("wq_queue_work_static_worker_held", |b| {
        b.iter_batched(
            || {
                busy.release();
                busy.occupy();
            },
            |()| {
                for item in &static_items {
                    black_box(wq::queue_work(&busy.queue, *item).unwrap());
                }
            },
            BatchSize::PerIteration,
        );
    });
    busy.release();

    let runtime = runtime();
    group.bench_function("baseline_mpsc_send_receiver_idle", |b| {
        b.iter_batched(
            || {
                // The receiver lives on the runtime but is not waiting: like
                // the busy worker, it needs no wake-up.
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
                (sender, receiver)
            },
            |(sender, receiver)| {
                for value in 0..BATCH as u64 {
                    sender.send(black_box(value)).unwrap();
                }
                (sender, receiver)
            },
            BatchSize::PerIteration,
        );
    });

    let consuming = Workqueue::builder("bench-consuming")
        .max_active(1)
        .idle_spin(Duration::MAX)
        .runtime(runtime.handle().clone())
        .build();
    group.bench_function("wq_queue_work_worker_consuming", |b| {
        b.iter_batched(
            // The previous batch has run: every item is idle again.
            || wq::blocking::flush_work(items.last().unwrap()).unwrap(),
            |_| {
                for item in &items {
                    black_box(wq::queue_work(&consuming, item).unwrap());
                }
            },
            BatchSize::PerIteration,
        );
    });
    wq::blocking::flush_workqueue(&consuming).unwrap();

    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let stop = stop.clone();
        runtime.spawn(async move {
            let mut sum = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                match receiver.try_recv() {
                    Ok(value) => sum = sum.wrapping_add(value),
                    Err(_) => tokio::task::yield_now().await,
                }
            }
            sum
        })
    };
    group.bench_function("baseline_mpsc_send_receiver_consuming", |b| {
        b.iter(|| {
            for value in 0..BATCH as u64 {
                sender.send(black_box(value)).unwrap();
            }
        });
    });
    stop.store(true, Ordering::Relaxed);
    black_box(runtime.block_on(consumer).unwrap());
    drop(runtime);
    group.finish();
}

fn bench_queue_pending(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_work_pending_ns");
    let busy = BusyQueue::new();
    let item = Work::from_fn("pending", || {});
    busy.occupy();
    wq::queue_work(&busy.queue, &item).unwrap();

    group.bench_function("wq_queue_work_coalesced", |b| {
        b.iter(|| black_box(wq::queue_work(&busy.queue, &item).unwrap()));
    });
    group.bench_function("baseline_atomic_fetch_or", |b| {
        let flag = AtomicU64::new(1);
        b.iter(|| black_box(flag.fetch_or(1, Ordering::AcqRel)));
    });
    busy.release();
    group.finish();
}

/// Trivial items per batch of the throughput bench.
const STREAM: u64 = 200_000;

fn bench_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("work_items_per_s");
    group.throughput(Throughput::Elements(STREAM));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    let runtime = runtime();
    let queue = Workqueue::builder("throughput")
        .max_active(1)
        .runtime(runtime.handle().clone())
        .build();
    let items: Vec<Arc<Work>> = (0..4096).map(|_| Work::from_fn("trivial", || {})).collect();
    group.bench_function("wq_queue_and_run", |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                let mut queued = 0;
                let mut index = 0;
                while queued < STREAM {
                    // An item still pending from the last lap coalesces; go
                    // on to the next one, so every counted queueing runs.
                    if wq::queue_work(&queue, &items[index % items.len()]).unwrap() {
                        queued += 1;
                    }
                    index += 1;
                }
                wq::blocking::flush_workqueue(&queue).unwrap();
            }
            start.elapsed()
        });
    });

    group.bench_function("baseline_mpsc_stream", |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
                let consumer = runtime.spawn(async move {
                    let mut sum = 0_u64;
                    while let Some(value) = receiver.recv().await {
                        sum = sum.wrapping_add(value);
                    }
                    sum
                });
                for value in 0..STREAM {
                    sender.send(value).unwrap();
                }
                drop(sender);
                black_box(runtime.block_on(consumer).unwrap());
            }
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_queue_idle,
    bench_queue_pending,
    bench_throughput
);
criterion_main!(benches);
