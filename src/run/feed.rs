//! Arrival feeders: one thread per device that sleeps to each event's
//! intended time and hands the event to the device model.
//!
//! Each event is handed its *intended* time, so that latency counts from
//! when the event should have happened even when the feeder runs late
//! (no coordinated omission). A feeder stops at the end of the run or as
//! soon as the stop flag is set, checking it at least every
//! [`STOP_CHECK`] while it sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use irq_sim::arrival::Arrival;
use irq_sim::clock::{self, Timestamp};

/// Maximum sleep between two reads of the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Counters of a feeder, updated as it runs.
#[derive(Debug, Default)]
pub(crate) struct FeedStats {
    /// Events handed to the device.
    pub(crate) events: AtomicU64,
    /// Largest delay between an event's intended time and its hand-off, in
    /// nanoseconds: how far the feeder fell behind its arrival process.
    pub(crate) max_lateness_ns: AtomicU64,
    /// Events handed over more than [`LATE`] after their intended time.
    pub(crate) late_events: AtomicU64,
}

/// Lateness above which an event counts as late.
pub(crate) const LATE: Duration = Duration::from_millis(1);

/// Spawns a feeder named `name` that runs `arrival` from `start` until
/// `until` or `stop`, counting events and lateness in `fed`.
///
/// # Errors
///
/// The error of a thread that cannot be spawned.
pub(super) fn spawn(
    name: &str,
    arrival: &Arrival,
    start: Timestamp,
    until: Timestamp,
    stop: Arc<AtomicBool>,
    fed: Arc<FeedStats>,
    mut event: Box<dyn FnMut(Timestamp) + Send>,
) -> std::io::Result<JoinHandle<()>> {
    let offsets = arrival.offsets();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            clock::set_timer_slack(Duration::from_nanos(1));
            for offset in offsets {
                let intended = start + offset;
                if intended >= until {
                    break;
                }
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let now = clock::now();
                    if now >= intended {
                        break;
                    }
                    let wake = if intended.saturating_since(now) > STOP_CHECK {
                        now + STOP_CHECK
                    } else {
                        intended
                    };
                    clock::sleep_until(wake);
                }
                let lateness = clock::now().saturating_since(intended);
                fed.max_lateness_ns
                    .fetch_max(clock::duration_nanos(lateness), Ordering::Relaxed);
                if lateness > LATE {
                    fed.late_events.fetch_add(1, Ordering::Relaxed);
                }
                event(intended);
                fed.events.fetch_add(1, Ordering::Relaxed);
            }
        })
}
