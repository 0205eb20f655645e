//! The cost of recording a tracepoint into a [`Timeline`], paid by the
//! thread that emits it, beside the same event with no timeline installed.
//!
//! Each bench emits `workqueue_queue_work` with the fields and message of
//! the real tracepoint, on the current thread, under a subscriber like the
//! CLI's: a fmt layer filtered to INFO (writing nowhere), plus:
//!
//! - `no_timeline`: nothing else; the event's callsite is disabled, so this
//!   is the floor.
//! - `recording`: a timeline with room for every event of the sample.
//! - `recording_contended`: the same, while a second thread records into
//!   the same timeline without pause, so that the mutex is contended as it
//!   is, at worst, between a CPU thread and a busy worker.
//! - `full_buffer`: a timeline with no room, so each event is only counted
//!   as dropped.
//!
//! Run with `cargo bench --bench timeline_record`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use irqlab::timeline::Timeline;
use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Emits one `workqueue_queue_work` as `wq` does.
fn queue_work_event(work_struct: u64) {
    let queue_name = "events";
    let cpu: Option<usize> = None;
    tracing::trace!(
        target: "workqueue",
        work = "bench_item",
        work_struct,
        workqueue = %queue_name,
        cpu,
        "workqueue_queue_work"
    );
}

fn fmt_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::sink)
        .with_filter(EnvFilter::new("info"))
}

/// Times `iters` events under `subscriber`.
fn time_events(subscriber: impl Subscriber + Send + Sync + 'static, iters: u64) -> Duration {
    tracing::subscriber::with_default(subscriber, || {
        let start = Instant::now();
        for work_struct in 0..iters {
            queue_work_event(black_box(work_struct));
        }
        start.elapsed()
    })
}

fn record_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeline_record_ns");
    group.bench_function("no_timeline", |b| {
        b.iter_custom(|iters| time_events(tracing_subscriber::registry().with(fmt_layer()), iters))
    });
    group.bench_function("recording", |b| {
        b.iter_custom(|iters| {
            let capacity = usize::try_from(iters).expect("iteration count fits in memory");
            let timeline = Timeline::new(capacity);
            let subscriber = tracing_subscriber::registry()
                .with(fmt_layer())
                .with(timeline.layer());
            let elapsed = time_events(subscriber, iters);
            assert_eq!(timeline.counts().1, 0, "the sample overflowed the timeline");
            elapsed
        })
    });
    group.bench_function("recording_contended", |b| {
        b.iter_custom(|iters| {
            let capacity = usize::try_from(iters).expect("iteration count fits in memory");
            // Room for the other thread too, which stops before it could
            // fill the buffer, so that no event of this thread is dropped.
            let other_limit = capacity.saturating_mul(3).saturating_add(1 << 16);
            let timeline = Timeline::new(other_limit.saturating_add(capacity));
            let dispatch = tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(fmt_layer())
                    .with(timeline.layer()),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let other = {
                let (dispatch, stop) = (dispatch.clone(), stop.clone());
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for work_struct in 0..other_limit as u64 {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            queue_work_event(black_box(u64::MAX - work_struct));
                        }
                    })
                })
            };
            let elapsed = tracing::dispatcher::with_default(&dispatch, || {
                let start = Instant::now();
                for work_struct in 0..iters {
                    queue_work_event(black_box(work_struct));
                }
                start.elapsed()
            });
            stop.store(true, Ordering::Relaxed);
            other
                .join()
                .expect("the other recording thread does not panic");
            assert_eq!(timeline.counts().1, 0, "the sample overflowed the timeline");
            elapsed
        })
    });
    group.bench_function("full_buffer", |b| {
        b.iter_custom(|iters| {
            let timeline = Timeline::new(0);
            let subscriber = tracing_subscriber::registry()
                .with(fmt_layer())
                .with(timeline.layer());
            time_events(subscriber, iters)
        })
    });
    group.finish();
}

criterion_group!(benches, record_cost);
criterion_main!(benches);
