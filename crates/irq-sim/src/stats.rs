//! Interrupt statistics: counters, latency histograms, and a
//! `/proc/interrupts`-style table.
//!
//! Counters are atomics updated with `Relaxed` ordering: they order nothing
//! and are read only for reports. Histograms are recorded by the CPU that
//! dispatches a line, under the line's chain lock (per-line histograms) or
//! the CPU's histogram lock (per-CPU histograms), so readers take a copy
//! under the same lock.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::handler::Trigger;

/// Largest latency or duration a histogram tracks; larger values are
/// recorded as this value.
pub const HISTOGRAM_MAX: Duration = Duration::from_secs(10);

/// Significant digits of per-line histograms (1 % resolution, about 30 KB
/// each, so that 1024 lines stay affordable).
const LINE_SIGFIG: u8 = 2;

/// Significant digits of per-CPU histograms (0.1 % resolution).
const CPU_SIGFIG: u8 = 3;

fn new_histogram(sigfig: u8) -> Histogram<u64> {
    let max = u64::try_from(HISTOGRAM_MAX.as_nanos()).unwrap_or(u64::MAX);
    Histogram::new_with_bounds(1, max, sigfig).expect("histogram bounds are valid constants")
}

/// Raise-to-entry latency and top-half duration, in nanoseconds. Its
/// `Debug` form gives each histogram's [`Summary`], not its buckets, so
/// that a failed assertion on a [`LineStats`] stays readable.
#[derive(Clone)]
pub struct LatencyHistograms {
    /// Raise (or programmed timer expiry) to top-half entry.
    pub latency: Histogram<u64>,
    /// Top-half duration: the whole handler chain of one delivery.
    pub duration: Histogram<u64>,
}

impl fmt::Debug for LatencyHistograms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistograms")
            .field("latency", &Summary::of(&self.latency))
            .field("duration", &Summary::of(&self.duration))
            .finish()
    }
}

impl LatencyHistograms {
    /// Makes the pair used per line (2 significant digits).
    ///
    /// # Context
    ///
    /// Any; allocates, so not on the interrupt path.
    pub fn for_line() -> Self {
        Self {
            latency: new_histogram(LINE_SIGFIG),
            duration: new_histogram(LINE_SIGFIG),
        }
    }

    /// Makes the pair used per CPU (3 significant digits).
    ///
    /// # Context
    ///
    /// Any; allocates, so not on the interrupt path.
    pub fn for_cpu() -> Self {
        Self {
            latency: new_histogram(CPU_SIGFIG),
            duration: new_histogram(CPU_SIGFIG),
        }
    }

    /// Adds every sample of `other`.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn add(&mut self, other: &LatencyHistograms) {
        // Both sides use the same bounds, so adding cannot fail; a value
        // out of range would only be dropped.
        let _ = self.latency.add(&other.latency);
        let _ = self.duration.add(&other.duration);
    }

    /// Records one delivery's latency (if any) and duration, in
    /// nanoseconds; never allocates.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    #[inline]
    pub fn record(&mut self, latency_ns: Option<u64>, duration_ns: u64) {
        if let Some(latency) = latency_ns {
            self.latency.saturating_record(latency.max(1));
        }
        self.duration.saturating_record(duration_ns.max(1));
    }
}

/// A summary of a histogram in the kernel tools' vocabulary, in
/// nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Summary {
    /// Summarizes `histogram`.
    ///
    /// Every figure is the middle of its bucket's range, as the histogram's
    /// mean counts each sample, so that one sample gives one value for the
    /// minimum, each percentile and the maximum. Values below 2,048 ns are
    /// exact; above, within 0.05 %.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let middle = |value: u64| histogram.median_equivalent(value);
        let quantile = |quantile: f64| middle(histogram.value_at_quantile(quantile));
        Self {
            count: histogram.len(),
            min: middle(histogram.min()),
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            p999: quantile(0.999),
            max: middle(histogram.max()),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "count {} min {} p50 {} p90 {} p99 {} p99.9 {} max {} (ns)",
            self.count, self.min, self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

/// Counters of one line. `repr(C)` keeps the four that every raise and
/// delivery bumps at the start, in the line's first cache line (see
/// `controller::Line`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct LineCounters {
    /// Raises by devices and timers, whatever became of them.
    pub(crate) raised: AtomicU64,
    /// Edges folded into an already pending delivery.
    pub(crate) coalesced: AtomicU64,
    /// Raises of a level line that found it already asserted.
    pub(crate) already_asserted: AtomicU64,
    /// Deliveries judged handled (see `LineStats::handled`).
    pub(crate) handled: AtomicU64,
    /// Deliveries no handler claimed.
    pub(crate) unhandled: AtomicU64,
    /// Deliveries per CPU (the `/proc/interrupts` columns).
    pub(crate) per_cpu: Box<[AtomicU64]>,
    /// Queued deliveries dropped at dispatch because the line was lowered,
    /// masked or disabled meanwhile.
    pub(crate) skipped: AtomicU64,
    /// Polls of the line while disabled as spurious.
    pub(crate) polls: AtomicU64,
    /// Calls that overran the budget in CPU time.
    pub(crate) overruns: AtomicU64,
    /// Calls that overran in wall time only (the thread was preempted).
    pub(crate) preempted: AtomicU64,
    /// Panics caught.
    pub(crate) panics: AtomicU64,
    /// `WakeThread` returns.
    pub(crate) wake_thread: AtomicU64,
    /// Thread-function runs that returned `Handled` (Linux's
    /// `threads_handled`), reported by the driver layer; spurious
    /// detection judges by it the deliveries that only woke threads.
    pub(crate) threads_handled: AtomicU64,
    /// Times the line was disabled as spurious.
    pub(crate) spurious_disables: AtomicU64,
}

impl LineCounters {
    pub(crate) fn new(nr_cpus: usize) -> Self {
        Self {
            raised: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            already_asserted: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            unhandled: AtomicU64::new(0),
            per_cpu: (0..nr_cpus).map(|_| AtomicU64::new(0)).collect(),
            skipped: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            preempted: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            wake_thread: AtomicU64::new(0),
            threads_handled: AtomicU64::new(0),
            spurious_disables: AtomicU64::new(0),
        }
    }
}

/// Adds one to a statistics counter.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A copy of one line's statistics.
#[derive(Clone, Debug)]
pub struct LineStats {
    /// The line.
    pub irq: u32,
    /// Trigger type of the line's handlers.
    pub trigger: Trigger,
    /// Handler names in chain order.
    pub handlers: Vec<&'static str>,
    /// Deliveries each handler's top half claimed, in the order of
    /// `handlers`: its calls, polls aside, that returned `Handled` or
    /// `WakeThread`. On a shared line, how the deliveries split among the
    /// devices. A thread function's own verdict, which spurious detection
    /// uses, is the line's, not a handler's, so a `WakeThread` counts here
    /// whatever its thread returns. A freed handler's count goes with it.
    pub claimed_by: Vec<u64>,
    /// Raises by devices and timers: each one became a delivery, was
    /// coalesced into a pending one, was skipped, or found a level line
    /// already asserted or latched.
    pub raised: u64,
    /// Deliveries per CPU.
    pub per_cpu: Vec<u64>,
    /// Deliveries that some handler claimed. One whose handlers only woke
    /// threads counts as spurious detection judges it: by whether a thread
    /// function returned `Handled` since the previous such delivery.
    pub handled: u64,
    /// Deliveries no handler claimed, judged as for `handled`.
    pub unhandled: u64,
    /// Edges folded into an already pending delivery.
    pub coalesced: u64,
    /// Raises and output asserts that found the line already high, so
    /// they add no delivery. A level line stays high until a top half
    /// clears the device. On an edge line, an output asserted while
    /// another output keeps the wired OR high makes no edge.
    pub already_asserted: u64,
    /// Queued deliveries of a level line dropped because the device
    /// lowered the line before dispatch. A delivery that finds the line
    /// masked or disabled stays pending instead, and is counted when it is
    /// delivered.
    pub skipped: u64,
    /// Polls while disabled as spurious.
    pub polls: u64,
    /// Calls over budget in CPU time.
    pub overruns: u64,
    /// Calls over budget in wall time only (the CPU thread was preempted).
    pub preempted: u64,
    /// Panics caught.
    pub panics: u64,
    /// `WakeThread` returns.
    pub wake_thread: u64,
    /// Times disabled as spurious.
    pub spurious_disables: u64,
    /// Unhandled deliveries in the current spurious-detection window.
    pub spurious_window_unhandled: u32,
    /// Deliveries in the current spurious-detection window.
    pub spurious_window_count: u32,
    /// The line is disabled as spurious and polled.
    pub spurious: bool,
    /// Disable depth.
    pub depth: u8,
    /// Masked at the controller, by `mask_irq` or a ONESHOT thread's run.
    pub masked: bool,
    /// Latency and duration histograms, if the line was ever requested.
    pub histograms: Option<LatencyHistograms>,
}

impl LineStats {
    /// Returns the deliveries on all CPUs.
    pub fn total(&self) -> u64 {
        self.per_cpu.iter().sum()
    }

    pub(crate) fn from_counters(irq: u32, counters: &LineCounters) -> Self {
        Self {
            irq,
            trigger: Trigger::Edge,
            handlers: Vec::new(),
            claimed_by: Vec::new(),
            raised: read(&counters.raised),
            per_cpu: counters.per_cpu.iter().map(read).collect(),
            handled: read(&counters.handled),
            unhandled: read(&counters.unhandled),
            coalesced: read(&counters.coalesced),
            already_asserted: read(&counters.already_asserted),
            skipped: read(&counters.skipped),
            polls: read(&counters.polls),
            overruns: read(&counters.overruns),
            preempted: read(&counters.preempted),
            panics: read(&counters.panics),
            wake_thread: read(&counters.wake_thread),
            spurious_disables: read(&counters.spurious_disables),
            spurious_window_unhandled: 0,
            spurious_window_count: 0,
            spurious: false,
            depth: 0,
            masked: false,
            histograms: None,
        }
    }
}

/// Counters of one CPU.
#[derive(Debug, Default)]
pub(crate) struct CpuCounters {
    /// Handler chains run (deliveries and polls).
    pub(crate) chains: AtomicU64,
    /// Timer expiries fired by this CPU's local timers.
    pub(crate) timer_expiries: AtomicU64,
}

/// A copy of one CPU's statistics.
#[derive(Clone, Debug)]
pub struct CpuStats {
    /// The CPU.
    pub cpu: usize,
    /// Handler chains run.
    pub chains: u64,
    /// Timer expiries fired.
    pub timer_expiries: u64,
    /// Latency and duration histograms of every delivery on this CPU.
    pub histograms: LatencyHistograms,
}

impl CpuStats {
    pub(crate) fn new(cpu: usize, counters: &CpuCounters, histograms: LatencyHistograms) -> Self {
        Self {
            cpu,
            chains: read(&counters.chains),
            timer_expiries: read(&counters.timer_expiries),
            histograms,
        }
    }
}

/// Renders `lines` (those with handlers) as `/proc/interrupts` does: one
/// column per CPU, then the controller, the line and trigger type, and the
/// handler names.
///
/// # Context
///
/// Any; never sleeps (allocates the text).
pub fn render_interrupts(lines: &[LineStats], nr_cpus: usize) -> String {
    // As Linux aligns it: each `CPUn` label ends where the counts below it
    // do, past the six characters of a row's `NNNN: `.
    let mut out = " ".repeat(12);
    for cpu in 0..nr_cpus {
        let _ = write!(out, "CPU{cpu:<8}");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for line in lines.iter().filter(|line| !line.handlers.is_empty()) {
        let _ = write!(out, "{:>4}: ", line.irq);
        for count in &line.per_cpu {
            let _ = write!(out, "{count:>10} ");
        }
        let flow = match line.trigger {
            Trigger::Edge => "edge",
            Trigger::Level => "level",
        };
        let state = if line.spurious {
            " (spurious, polled)"
        } else if line.depth > 0 {
            " (disabled)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  irq-sim {:>5}-{flow:<6}  {}{state}",
            line.irq,
            line.handlers.join(", ")
        );
    }
    out
}

/// Renders the per-line detail that `/proc/interrupts` lacks: handled,
/// unhandled, coalesced, spurious state, overruns and latency percentiles.
///
/// # Context
///
/// Any; never sleeps (allocates the text).
pub fn render_line_details(lines: &[LineStats]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "irq",
        "handled",
        "unhandled",
        "coalesced",
        "overruns",
        "spurious",
        "lat p50",
        "lat p99",
        "dur p50",
        "dur p99"
    );
    for line in lines.iter().filter(|line| !line.handlers.is_empty()) {
        let (latency, duration) = line
            .histograms
            .as_ref()
            .map(|h| (Summary::of(&h.latency), Summary::of(&h.duration)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>5} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}",
            line.irq,
            line.handled,
            line.unhandled,
            line.coalesced,
            line.overruns,
            if line.spurious { "polled" } else { "no" },
            latency.p50,
            latency.p99,
            duration.p50,
            duration.p99
        );
    }
    out
}

/// Renders `lines` (those with handlers) as JSON: one object per line with
/// its counters and the latency and duration summaries in nanoseconds.
///
/// # Context
///
/// Any; never sleeps (allocates the text).
pub fn render_interrupts_json(lines: &[LineStats]) -> String {
    let mut out = String::from("[");
    for (index, line) in lines
        .iter()
        .filter(|line| !line.handlers.is_empty())
        .enumerate()
    {
        if index > 0 {
            out.push(',');
        }
        let handlers: Vec<String> = line.handlers.iter().map(|name| json_string(name)).collect();
        let per_cpu: Vec<String> = line.per_cpu.iter().map(u64::to_string).collect();
        let (latency, duration) = line
            .histograms
            .as_ref()
            .map(|h| (Summary::of(&h.latency), Summary::of(&h.duration)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "{{\"irq\":{},\"trigger\":\"{}\",\"handlers\":[{}],\"per_cpu\":[{}],\"raised\":{},\"handled\":{},\
             \"unhandled\":{},\"coalesced\":{},\"already_asserted\":{},\"skipped\":{},\"polls\":{},\"overruns\":{},\"preempted\":{},\"panics\":{},\
             \"wake_thread\":{},\"spurious\":{},\"depth\":{},\"masked\":{},\"latency_ns\":{},\"duration_ns\":{}}}",
            line.irq,
            line.trigger,
            handlers.join(","),
            per_cpu.join(","),
            line.raised,
            line.handled,
            line.unhandled,
            line.coalesced,
            line.already_asserted,
            line.skipped,
            line.polls,
            line.overruns,
            line.preempted,
            line.panics,
            line.wake_thread,
            line.spurious,
            line.depth,
            line.masked,
            summary_json(&latency),
            summary_json(&duration)
        );
    }
    out.push(']');
    out
}

fn summary_json(summary: &Summary) -> String {
    format!(
        "{{\"count\":{},\"min\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
        summary.count,
        summary.min,
        summary.p50,
        summary.p90,
        summary.p99,
        summary.p999,
        summary.max
    )
}

/// Quotes a handler name as a JSON string.
fn json_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(irq: u32, handlers: Vec<&'static str>, per_cpu: Vec<u64>) -> LineStats {
        let mut stats = LineStats::from_counters(irq, &LineCounters::new(per_cpu.len()));
        stats.handlers = handlers;
        stats.per_cpu = per_cpu;
        stats
    }

    #[test]
    fn render_matches_proc_layout() {
        let lines = vec![
            line(0, vec!["timer"], vec![9, 0]),
            line(1, vec![], vec![0, 0]),
            line(11, vec!["eth0", "uart"], vec![307009, 12]),
        ];
        let text = render_interrupts(&lines, 2);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 3, "{text}");
        // Each label ends over the last digit of its column's counts.
        for (cpu, count) in [("CPU0", "307009"), ("CPU1", "12")] {
            let label_end = rows[0].find(cpu).unwrap() + cpu.len();
            let count_end = rows[2].find(count).unwrap() + count.len();
            assert_eq!(label_end, count_end, "{text}");
        }
        assert!(rows[1].starts_with("   0:"));
        assert!(rows[1].contains("0-edge"));
        assert!(rows[2].contains("307009"));
        assert!(rows[2].ends_with("eth0, uart"));
    }

    #[test]
    fn details_list_counts_and_percentiles() {
        let mut stats = line(11, vec!["eth0"], vec![5, 0]);
        stats.handled = 4;
        stats.unhandled = 1;
        stats.coalesced = 7;
        stats.spurious = true;
        let mut histograms = LatencyHistograms::for_line();
        histograms.record(Some(2_000), 500);
        stats.histograms = Some(histograms);
        let text = render_line_details(&[stats, line(12, vec![], vec![0, 0])]);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 2, "{text}");
        let columns: Vec<&str> = rows[1].split_whitespace().collect();
        assert_eq!(
            &columns[..6],
            ["11", "4", "1", "7", "0", "polled"],
            "{text}"
        );
        // Line histograms keep 2 significant digits: 2000 reads back within 1 %.
        let latency_p50: u64 = columns[6].parse().unwrap();
        assert!((2000..=2020).contains(&latency_p50), "{text}");
    }

    #[test]
    fn json_lists_lines_with_handlers() {
        let lines = vec![
            line(0, vec!["timer"], vec![9, 0]),
            line(1, vec![], vec![0, 0]),
            line(11, vec!["a\"b"], vec![1, 2]),
        ];
        let json = render_interrupts_json(&lines);
        assert!(
            json.starts_with(
                "[{\"irq\":0,\"trigger\":\"edge\",\"handlers\":[\"timer\"],\"per_cpu\":[9,0]"
            ),
            "{json}"
        );
        assert!(json.contains("\"handlers\":[\"a\\\"b\"]"), "{json}");
        assert!(!json.contains("\"irq\":1,"), "{json}");
        assert!(json.ends_with("}]"), "{json}");
        assert_eq!(json.matches("\"irq\"").count(), 2);
    }

    #[test]
    fn summary_of_empty_is_zero() {
        assert_eq!(Summary::of(&new_histogram(2)), Summary::default());
    }

    #[test]
    fn record_saturates_above_max() {
        let mut histograms = LatencyHistograms::for_line();
        histograms.record(Some(u64::MAX), 5);
        assert_eq!(histograms.latency.len(), 1);
        assert_eq!(histograms.duration.len(), 1);
    }
}
