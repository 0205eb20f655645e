//! The timeline of a real run: a machine whose top halves queue work on a
//! real workqueue, written as a Chrome trace and read back.
//!
//! The CPU threads and the tokio workers only see a global subscriber, so
//! this binary has one test, which installs it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use irq_sim::{Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};
use irqlab::timeline::Timeline;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;
use wq::{Work, Workqueue};

/// Raises per line.
const RAISES: u32 = 40;

/// Waits until `condition` holds, failing after a generous deadline.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A slice of the trace: its track, start and end in microseconds, name
/// and kind.
#[derive(Clone, Debug)]
struct Slice {
    track: (u64, u64),
    start: f64,
    end: f64,
    name: String,
    kind: &'static str,
}

/// The kinds of slices: top halves, work executions, and the zero-length
/// markers where an item was queued.
const TOP_HALF: &str = "top half";
const EXECUTION: &str = "execution";
const MARKER: &str = "queue_work";

/// Timestamps are microseconds printed from whole nanoseconds; this
/// absorbs the rounding of the float sum `ts + dur`.
const EPSILON_US: f64 = 0.000_5;

fn track(event: &Value) -> (u64, u64) {
    (
        event["pid"].as_u64().unwrap(),
        event["tid"].as_u64().unwrap(),
    )
}

#[test]
fn machine_run_trace() {
    let timeline = Timeline::new(1 << 16);
    let subscriber = tracing_subscriber::registry().with(timeline.layer());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // Step 1: a queue on a runtime of our own, and three items. The top
    // half of line 10 queues `rx_bottom`, which queues `rx_refill`; line
    // 11 queues `async_poll`, which yields to the scheduler between steps.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("test-worker")
        .build()
        .unwrap();
    let queue = Workqueue::builder("timeline_test")
        .runtime(runtime.handle().clone())
        .build();
    let refills = Arc::new(AtomicU32::new(0));
    let rx_refill = {
        let refills = refills.clone();
        Work::from_fn("rx_refill", move || {
            refills.fetch_add(1, Ordering::Relaxed);
        })
    };
    let rx_bottom = {
        let (queue, rx_refill) = (queue.clone(), rx_refill.clone());
        Work::from_fn("rx_bottom", move || {
            wq::queue_work(&queue, &rx_refill).unwrap();
        })
    };
    let polls = Arc::new(AtomicU32::new(0));
    let async_poll = {
        let polls = polls.clone();
        Work::from_async_fn("async_poll", move || {
            let polls = polls.clone();
            async move {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                polls.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Step 2: two lines on two CPUs.
    let machine = Machine::new(Config::default()).unwrap();
    let irq = machine.controller();
    let request = |name: &'static str, work: Arc<Work>| {
        let queue = queue.clone();
        IrqRequest::new(name, IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            let _ = wq::queue_work(&queue, &work);
            IrqReturn::Handled
        })
    };
    irq.request_irq(10, request("nic_irq", rx_bottom.clone()))
        .unwrap();
    irq.request_irq(11, request("uart_irq", async_poll.clone()))
        .unwrap();
    irq.set_affinity(10, 0).unwrap();
    irq.set_affinity(11, 1).unwrap();

    // Step 3: raise each line once the work of its previous delivery has
    // run, so that no queueing coalesces, and queue one item from this
    // plain thread.
    for round in 1..=RAISES {
        let _ = irq.raise(10).unwrap();
        let _ = irq.raise(11).unwrap();
        wait_until("both deliveries", || {
            irq.line_stats(10).unwrap().handled == u64::from(round)
                && irq.line_stats(11).unwrap().handled == u64::from(round)
        });
        wait_until("the work of both deliveries", || {
            refills.load(Ordering::Relaxed) == round && polls.load(Ordering::Relaxed) == round
        });
    }
    let from_test = Work::from_fn("from_test", || {});
    assert!(wq::queue_work(&queue, &from_test).unwrap());
    wq::blocking::drain_workqueue(&queue).unwrap();
    drop(machine);

    // Step 4: write and parse.
    let mut json = Vec::new();
    let summary = timeline.write_chrome_trace(&mut json).unwrap();
    let trace: Value = serde_json::from_slice(&json).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    assert_eq!(summary.dropped, 0);
    assert_eq!(summary.unmatched_begins, 0);
    assert_eq!(summary.unmatched_ends, 0);

    let names: HashMap<(u64, u64), &str> = events
        .iter()
        .filter(|event| event["ph"] == "M" && event["name"] == "thread_name")
        .map(|event| (track(event), event["args"]["name"].as_str().unwrap()))
        .collect();
    let slices: Vec<Slice> = events
        .iter()
        .filter(|event| event["ph"] == "X")
        .map(|event| {
            let start = event["ts"].as_f64().unwrap();
            Slice {
                track: track(event),
                start,
                end: start + event["dur"].as_f64().unwrap(),
                name: event["name"].as_str().unwrap().to_owned(),
                kind: match (
                    event["cat"].as_str().unwrap(),
                    event["name"].as_str().unwrap(),
                ) {
                    ("irq", _) => TOP_HALF,
                    ("workqueue", "queue_work") => MARKER,
                    ("workqueue", _) => EXECUTION,
                    (cat, _) => panic!("slice of unknown category {cat}: {event}"),
                },
            }
        })
        .collect();

    // Tracks: one per CPU, one per worker that ran work, all named.
    let track_names: HashSet<&str> = names.values().copied().collect();
    assert!(track_names.contains("CPU 0"), "{track_names:?}");
    assert!(track_names.contains("CPU 1"), "{track_names:?}");
    for slice in &slices {
        assert!(
            names.contains_key(&slice.track),
            "unnamed track of {slice:?}"
        );
    }
    let worker_tracks: HashSet<(u64, u64)> = slices
        .iter()
        .filter(|slice| slice.kind == EXECUTION && names[&slice.track].starts_with("test-worker"))
        .map(|slice| slice.track)
        .collect();
    assert!(!worker_tracks.is_empty(), "{track_names:?}");

    // Slices: every top half, every execution; none overlap on a track.
    let count = |name: &str| slices.iter().filter(|slice| slice.name == name).count();
    assert_eq!(count("nic_irq"), RAISES as usize);
    assert_eq!(count("uart_irq"), RAISES as usize);
    assert_eq!(count("rx_bottom (timeline_test)"), RAISES as usize);
    assert_eq!(count("rx_refill (timeline_test)"), RAISES as usize);
    assert_eq!(count("async_poll (timeline_test)"), RAISES as usize);
    assert_eq!(count("from_test (timeline_test)"), 1);
    for slice in slices.iter().filter(|slice| slice.kind == TOP_HALF) {
        assert!(names[&slice.track].starts_with("CPU "), "{slice:?}");
    }
    let mut by_track: BTreeMap<(u64, u64), Vec<&Slice>> = BTreeMap::new();
    for slice in slices.iter().filter(|slice| slice.kind != MARKER) {
        by_track.entry(slice.track).or_default().push(slice);
    }
    for track_slices in by_track.values_mut() {
        track_slices.sort_by(|a, b| a.start.total_cmp(&b.start));
        for pair in track_slices.windows(2) {
            assert!(
                pair[1].start + EPSILON_US >= pair[0].end,
                "overlap: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    // Flows: each id has one start at a queue_work marker, inside a top
    // half, an execution or on a plain thread, and one end at the start of
    // an execution.
    let mut flow_starts: HashMap<u64, &Value> = HashMap::new();
    let mut flow_ends: HashMap<u64, &Value> = HashMap::new();
    for event in events {
        let id = event["id"].as_u64();
        match event["ph"].as_str() {
            Some("s") => assert!(flow_starts.insert(id.unwrap(), event).is_none()),
            Some("f") => assert!(flow_ends.insert(id.unwrap(), event).is_none()),
            _ => {}
        }
    }
    assert_eq!(flow_starts.len() as u64, summary.flows);
    assert_eq!(flow_ends.len(), flow_starts.len());
    let mut sources_by_work: HashMap<String, Vec<String>> = HashMap::new();
    for (id, start) in &flow_starts {
        let end = flow_ends[id];
        let (at, end_at) = (start["ts"].as_f64().unwrap(), end["ts"].as_f64().unwrap());
        let marker = slices
            .iter()
            .find(|slice| slice.track == track(start) && slice.kind == MARKER && slice.start == at);
        assert!(marker.is_some(), "flow {id} starts at no queue_work marker");
        let source = slices
            .iter()
            .find(|slice| {
                slice.track == track(start)
                    && slice.kind != MARKER
                    && slice.start - EPSILON_US <= at
                    && at <= slice.end + EPSILON_US
            })
            .or(marker)
            .unwrap();
        let target = slices
            .iter()
            .find(|slice| {
                slice.track == track(end)
                    && slice.kind == EXECUTION
                    && (slice.start - end_at).abs() < EPSILON_US
            })
            .unwrap_or_else(|| panic!("flow {id} ends at no execution start: {end}"));
        assert!(at <= end_at, "flow {id} goes back in time");
        sources_by_work
            .entry(target.name.clone())
            .or_default()
            .push(format!("{}:{}", source.kind, source.name));
    }

    // Pairing: each item's arrows come from the slice that queued it.
    let expect_sources = |work: &str, source: &str| {
        let sources = &sources_by_work[work];
        assert!(!sources.is_empty(), "no arrow ends at {work}");
        assert!(sources.iter().all(|s| s == source), "{work}: {sources:?}");
    };
    expect_sources("rx_bottom (timeline_test)", "top half:nic_irq");
    expect_sources("async_poll (timeline_test)", "top half:uart_irq");
    expect_sources(
        "rx_refill (timeline_test)",
        "execution:rx_bottom (timeline_test)",
    );
    expect_sources("from_test (timeline_test)", "queue_work:queue_work");
    for work in ["rx_bottom", "rx_refill", "async_poll"] {
        let arrows = sources_by_work[&format!("{work} (timeline_test)")].len();
        assert_eq!(arrows, RAISES as usize, "arrows to {work}");
    }
}
