//! Criterion bench of the whole deferral path, beside its baseline in one
//! group, `end_to_end_latency_ns`:
//!
//! - `irqlab_raise_to_work_start`: a plain thread raises an edge line of a
//!   simulated CPU (blocking mode), and the top half queues an idle work
//!   item. The time counts from the raise to the first line of the work
//!   function.
//! - `baseline_send_to_task_start`: a plain thread sends an empty message
//!   over a tokio unbounded channel to a task waiting in `recv` on an
//!   identically built runtime. The time counts from just before the send
//!   to the task's return from `recv`.
//!
//! Each iteration is one event; the raiser waits (yielding) until the
//! event's bottom half started before it raises the next, so nothing
//! coalesces. Criterion reports the mean time per event; distributions
//! and tails come from `irqlab latency`, which criterion cannot give.
//!
//! A second group, `end_to_end_events_per_s`, measures saturated
//! throughput, each sample 100,000 events:
//!
//! - `irqlab_raise_through_work`: one interrupt per event. A plain thread
//!   raises the line as fast as the simulated CPU (busy-poll) takes the
//!   deliveries, each top half queues a work item, and the sample ends when
//!   every bottom half has run. A raise that coalesces into a pending
//!   delivery is repeated, so every counted event went through its own top
//!   half.
//! - `irqlab_nic_through_work` and `irqlab_nic_napi_through_work`: events
//!   as a NIC delivers them. A plain thread, the device, puts packets in a
//!   simulated NIC's RX ring of 1,024 descriptors, waiting while the ring is
//!   full, so that nothing is dropped. The CPU is in blocking mode (the
//!   default), and the queue has one worker. In the first, every packet
//!   raises the line; a raise while the last one is still pending
//!   coalesces, as an edge does in hardware. The top half queues a work
//!   item that empties the ring. In the second, the top half calls
//!   `napi_schedule`, which masks the NIC's interrupt and queues the poll.
//!   The poll takes at most 64 packets and queues itself again until the
//!   ring is empty, then unmasks. Each prints how many interrupts its
//!   packets took.
//! - `baseline_mpsc_stream`: a plain thread streams the same number of
//!   messages to a tokio task over an unbounded channel. Each message is
//!   the clock's time, as each packet carries its arrival time.
//! - `baseline_bounded_mpsc_stream`: the same over a channel of 1,024
//!   messages, whose sender waits while it is full, as the NIC's device
//!   thread waits for room in its ring.
//!
//! Run with `cargo bench --bench end_to_end`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use driver::napi::Napi;
use irq_sim::clock;
use irq_sim::device::Nic;
use irq_sim::{
    Config, CpuMode, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine, RaiseOutcome,
};
use wq::{Work, Workqueue};

const LINE: u32 = 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("bench runtime")
}

/// The bottom half's start time (ns on the irq-sim clock) and a count of
/// starts, written by the work function or the baseline task.
#[derive(Default)]
struct Started {
    at_ns: AtomicU64,
    count: AtomicU64,
}

impl Started {
    fn mark(&self) {
        // Release, paired with `wait_past`'s Acquire: the time is stored
        // before the count that announces it.
        self.at_ns.store(clock::now().as_nanos(), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Waits until the count passes `before`, yielding so that the CPU
    /// thread and the workers get the vCPUs; returns the start time.
    fn wait_past(&self, before: u64) -> u64 {
        while self.count.load(Ordering::Acquire) == before {
            std::thread::yield_now();
        }
        self.at_ns.load(Ordering::Relaxed)
    }
}

fn bench_end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end_latency_ns");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(8));

    // irqlab: raise -> top half -> queue_work -> work start.
    let wq_runtime = runtime();
    let queue = Workqueue::builder("end-to-end")
        .max_active(1)
        .runtime(wq_runtime.handle().clone())
        .build();
    let started = Arc::new(Started::default());
    let item = {
        let started = started.clone();
        Work::from_fn("end-to-end", move || started.mark())
    };
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .expect("valid machine config");
    let controller = machine.controller();
    {
        let (queue, item) = (queue.clone(), item.clone());
        controller
            .request_irq(
                LINE,
                IrqRequest::new(
                    "end-to-end",
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        let _ = wq::queue_work(&queue, &item);
                        IrqReturn::Handled
                    },
                ),
            )
            .expect("free line");
    }
    group.bench_function("irqlab_raise_to_work_start", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let before = started.count.load(Ordering::Acquire);
                let raised = clock::now().as_nanos();
                let _ = controller.raise(LINE).expect("line exists");
                let at = started.wait_past(before);
                total += Duration::from_nanos(at.saturating_sub(raised));
            }
            total
        });
    });

    // Baseline: send -> task return from recv.
    let base_runtime = runtime();
    let base_started = Arc::new(Started::default());
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<()>();
    {
        let started = base_started.clone();
        base_runtime.spawn(async move {
            while receiver.recv().await.is_some() {
                started.mark();
            }
        });
    }
    group.bench_function("baseline_send_to_task_start", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let before = base_started.count.load(Ordering::Acquire);
                let sent = clock::now().as_nanos();
                sender.send(()).expect("the task is alive");
                let at = base_started.wait_past(before);
                total += Duration::from_nanos(at.saturating_sub(sent));
            }
            total
        });
    });
    group.finish();

    drop(sender);
    let report = machine.shutdown();
    if !report.is_clean() {
        println!("machine shutdown: {report:?}");
    }
}

/// Events per sample of the throughput group.
const STREAM: u64 = 100_000;

/// Work items the throughput top half uses in turn.
const ITEMS: usize = 4096;

fn bench_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end_events_per_s");
    group.throughput(Throughput::Elements(STREAM));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    let wq_runtime = runtime();
    let queue = Workqueue::builder("throughput")
        .max_active(1)
        .runtime(wq_runtime.handle().clone())
        .build();
    let items: Arc<Vec<Arc<Work>>> = Arc::new(
        (0..ITEMS)
            .map(|_| Work::from_fn("trivial", || {}))
            .collect(),
    );
    let machine = Machine::new(Config {
        nr_cpus: 1,
        cpu_mode: CpuMode::BusyPoll,
        ..Config::default()
    })
    .expect("valid machine config");
    let controller = machine.controller();
    {
        let (queue, items) = (queue.clone(), items.clone());
        let mut next = 0;
        controller
            .request_irq(
                LINE,
                IrqRequest::new(
                    "throughput",
                    IrqFlags::EDGE,
                    move |_: &mut HardIrqContext<'_>| {
                        // An item still pending from the last lap is
                        // skipped, so that every event queues one.
                        while !wq::queue_work(&queue, &items[next % ITEMS]).unwrap_or(true) {
                            next += 1;
                        }
                        next += 1;
                        IrqReturn::Handled
                    },
                ),
            )
            .expect("free line");
    }
    group.bench_function("irqlab_raise_through_work", |b| {
        b.iter_custom(|iterations| {
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                for _ in 0..STREAM {
                    while controller.raise(LINE).expect("line exists") == RaiseOutcome::Coalesced {
                        std::hint::spin_loop();
                    }
                }
                controller.synchronize_irq(LINE).expect("task context");
                wq::blocking::flush_workqueue(&queue).expect("task context");
            }
            start.elapsed()
        });
    });
    let report = machine.shutdown();
    if !report.is_clean() {
        println!("machine shutdown: {report:?}");
    }

    nic_through_work(&mut group, Deferral::WorkItem);
    nic_through_work(&mut group, Deferral::Napi);

    // Each message is the time of its event, as each packet of the NIC
    // benches carries its arrival time.
    let base_runtime = runtime();
    group.bench_function("baseline_mpsc_stream", |b| {
        b.iter_custom(|iterations| {
            time_streams(&base_runtime, iterations, || {
                let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
                let consumer = base_runtime.spawn(async move {
                    let mut sum = 0_u64;
                    while let Some(value) = receiver.recv().await {
                        sum = sum.wrapping_add(value);
                    }
                    sum
                });
                let send = move |value| sender.send(value).expect("the task is alive");
                (send, consumer)
            })
        });
    });
    group.bench_function("baseline_bounded_mpsc_stream", |b| {
        b.iter_custom(|iterations| {
            time_streams(&base_runtime, iterations, || {
                let (sender, mut receiver) = tokio::sync::mpsc::channel::<u64>(RX_RING);
                let consumer = base_runtime.spawn(async move {
                    let mut sum = 0_u64;
                    while let Some(value) = receiver.recv().await {
                        sum = sum.wrapping_add(value);
                    }
                    sum
                });
                let send = move |value| sender.blocking_send(value).expect("the task is alive");
                (send, consumer)
            })
        });
    });
    group.finish();
}

/// Times `iterations` streams of [`STREAM`] timestamps from this thread.
/// `open` makes a channel and spawns its consumer, returning a function
/// that sends one message. A stream ends when the sender is dropped and the
/// consumer has taken every message.
fn time_streams<S: FnMut(u64)>(
    runtime: &tokio::runtime::Runtime,
    iterations: u64,
    open: impl Fn() -> (S, tokio::task::JoinHandle<u64>),
) -> Duration {
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        let (mut send, consumer) = open();
        for _ in 0..STREAM {
            send(clock::now().as_nanos());
        }
        drop(send);
        std::hint::black_box(runtime.block_on(consumer).expect("consumer task"));
    }
    start.elapsed()
}

/// Descriptors in the NIC's RX ring.
const RX_RING: usize = 1024;

/// Packets one NAPI poll may take (the kernel's default weight).
const NAPI_BUDGET: usize = 64;

/// The NIC top half's way of handing the ring to its bottom half.
#[derive(Clone, Copy)]
enum Deferral {
    /// Queues a work item that empties the ring. Every packet raises the line.
    WorkItem,
    /// `napi_schedule`: masks the NIC's interrupt and queues the poll.
    Napi,
}

/// Adds `irqlab_nic_through_work` or `irqlab_nic_napi_through_work` to the
/// throughput group.
fn nic_through_work(group: &mut BenchmarkGroup<'_, WallTime>, deferral: Deferral) {
    let wq_runtime = runtime();
    let queue = Workqueue::builder("eth0")
        .max_active(1)
        .runtime(wq_runtime.handle().clone())
        .build();
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .expect("valid machine config");

    let controller = machine.controller();
    let nic = Arc::new(Nic::new(&controller, LINE, RX_RING).expect("the NIC's line exists"));
    // Packets taken off the ring by the bottom half.
    let packets_taken = Arc::new(AtomicU64::new(0));
    let take = {
        let (ring, packets_taken) = (nic.clone(), packets_taken.clone());
        move |budget: usize| {
            let mut count = 0;
            while count < budget && ring.pop().is_some() {
                count += 1;
            }
            packets_taken.fetch_add(count as u64, Ordering::Release);
            count
        }
    };

    let (id, mut top_half): (&str, Box<dyn FnMut() + Send>) = match deferral {
        Deferral::WorkItem => {
            let item = Work::from_fn("eth0-rx", move || {
                take(usize::MAX);
            });
            let queue = queue.clone();
            (
                "irqlab_nic_through_work",
                Box::new(move || {
                    let _ = wq::queue_work(&queue, &item);
                }),
            )
        }
        Deferral::Napi => {
            let napi = Napi::new("eth0", &queue, NAPI_BUDGET, nic.clone(), take);
            (
                "irqlab_nic_napi_through_work",
                Box::new(move || {
                    napi.schedule();
                }),
            )
        }
    };
    controller
        .request_irq(
            LINE,
            IrqRequest::new("eth0", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                top_half();
                IrqReturn::Handled
            }),
        )
        .expect("free line");

    group.bench_function(id, |b| {
        b.iter_custom(|iterations| {
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                let goal = packets_taken.load(Ordering::Acquire) + STREAM;
                for _ in 0..STREAM {
                    // One device thread fills the ring, so a ring with room
                    // takes the packet.
                    while nic.ring_len() == RX_RING {
                        std::hint::spin_loop();
                    }
                    nic.receive(64, clock::now());
                }
                while packets_taken.load(Ordering::Acquire) < goal {
                    std::thread::yield_now();
                }
            }
            start.elapsed()
        });
    });

    // A bench that a filter or `--list` skipped received nothing.
    if nic.received() > 0 {
        let stats = controller.line_stats(LINE).expect("line exists");
        println!(
            "{id}: {} packets, {} interrupts, {} raises coalesced, {} dropped",
            nic.received(),
            stats.handled,
            stats.coalesced,
            nic.dropped()
        );
    }
    let report = machine.shutdown();
    if !report.is_clean() {
        println!("machine shutdown: {report:?}");
    }
}

criterion_group!(benches, bench_end_to_end, bench_throughput);
criterion_main!(benches);
