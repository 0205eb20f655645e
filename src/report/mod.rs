//! The report of a run: what each line, queue and device did, and how
//! long each step of the top-half / bottom-half split took.
//!
//! [`Report`] contains the numbers; [`Report::render`] prints them as tables
//! for a terminal, and `serde_json` writes them as JSON with the same
//! names (the keys are listed in docs/scenarios.md).

mod histogram;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

pub use histogram::render_histogram;

/// The latency measures, in the order the report prints them: a key for
/// JSON, a label for the tables, and what it measures.
pub const MEASURES: [(&str, &str, &str); 5] = [
    (
        "raise_to_top_half",
        "raise -> top half",
        "a device raising its line (or a timer's programmed expiry) to its top half's entry",
    ),
    (
        "top_half_duration",
        "top half",
        "one delivery's handler chain, entry to return",
    ),
    (
        "queue_to_start",
        "queue -> work start",
        "queue_work returning true to the work function's start",
    ),
    ("work_duration", "work", "one run of a work function"),
    (
        "raise_to_bottom_half",
        "raise -> bottom half",
        "an event's raise to the bottom half taking that event, where the device records it",
    ),
];

/// Returns the table label of the measure keyed `key` in [`MEASURES`], or
/// the key itself if it is not one.
fn measure_label(key: &str) -> &str {
    MEASURES
        .iter()
        .find(|(name, _, _)| *name == key)
        .map_or(key, |(_, label, _)| label)
}

/// The report of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's source: a path, or the built-in demo.
    pub source: String,
    /// The seed of the random processes.
    pub seed: u64,
    /// Simulated CPUs.
    pub cpus: usize,
    /// `blocking` or `busy-poll`.
    pub cpu_mode: String,
    /// The duration asked for, in seconds.
    pub duration_s: f64,
    /// How long arrivals actually ran, in seconds.
    pub elapsed_s: f64,
    /// True when Ctrl-C stopped the run before its duration.
    pub stopped_early: bool,
    /// Lines with handlers, by line number.
    pub irqs: Vec<IrqRow>,
    /// Queues the scenario used.
    pub workqueues: Vec<QueueRow>,
    /// Timers and devices.
    pub devices: Vec<DeviceRow>,
    /// Latency summaries keyed by measure (see [`MEASURES`]).
    pub latency: BTreeMap<String, LatencyRow>,
    /// Replayed recordings: recorded and simulated counts side by side.
    pub replay: Vec<ReplayRow>,
    /// Budget overruns, lines disabled, drops, leftovers, hung CPUs.
    pub warnings: Vec<String>,
    /// The histograms behind `latency`, for the terminal histogram.
    #[serde(skip)]
    pub histograms: BTreeMap<String, Histogram<u64>>,
    /// Budget overruns on lines whose policy is `fail`. The run fails
    /// when there is one, because that policy requests it.
    #[serde(skip)]
    pub failed_budgets: usize,
}

/// One handler of a line, and the deliveries its top half claimed.
#[derive(Clone, Debug, Serialize)]
pub struct HandlerRow {
    /// The handler's name.
    pub handler: String,
    /// Deliveries whose call returned `Handled` or `WakeThread`.
    pub claimed: u64,
}

/// One line, as `/proc/interrupts` shows it, with the flow counters.
#[derive(Clone, Debug, Serialize)]
pub struct IrqRow {
    /// The line.
    pub irq: u32,
    /// Handler names in chain order, comma-separated.
    pub name: String,
    /// Each handler in chain order, with the deliveries its top half
    /// claimed: on a shared line, how they split among the devices.
    pub claimed_by: Vec<HandlerRow>,
    /// `edge` or `level`.
    pub trigger: String,
    /// Deliveries per CPU.
    pub per_cpu: Vec<u64>,
    /// Raises by the device or timer.
    pub raised: u64,
    /// Deliveries some handler claimed.
    pub handled: u64,
    /// Deliveries no handler claimed.
    pub unhandled: u64,
    /// Edges folded into a delivery already pending.
    pub coalesced: u64,
    /// Raises of a level line that was already high, which add no
    /// delivery.
    pub already_asserted: u64,
    /// Deliveries dropped before dispatch because the line was lowered,
    /// masked or disabled.
    pub skipped: u64,
    /// Top halves over the line's budget in CPU time.
    pub budget_overruns: u64,
    /// The line's budget, in nanoseconds.
    pub budget_ns: u64,
    /// Times the line was disabled as spurious.
    pub spurious_disables: u64,
    /// Panics caught in its top halves.
    pub panics: u64,
}

/// One workqueue's counters.
#[derive(Clone, Debug, Serialize)]
pub struct QueueRow {
    /// The queue.
    pub name: String,
    /// Queueings that returned true.
    pub queued: u64,
    /// Queueings that found the item already pending.
    pub coalesced: u64,
    /// `mod_delayed_work` calls that moved a pending item's deadline.
    pub modified: u64,
    /// Runs started.
    pub executed: u64,
    /// Pending items cancelled before their run.
    pub cancelled: u64,
    /// Items pending, delayed or running when the report was taken.
    pub pending_at_exit: u64,
    /// Maximum number of runs in progress at once.
    pub max_in_flight: u64,
    /// Runs whose work function panicked.
    pub panicked: u64,
    /// Queue-to-start latency of this queue's runs.
    pub queue_to_start: LatencyRow,
    /// Run time of this queue's work functions.
    pub work_duration: LatencyRow,
}

impl IrqRow {
    /// Returns the handler names, each followed on a shared line by the
    /// deliveries it claimed: `ahci (1520), snd_hda (3010)`.
    fn handlers_cell(&self) -> String {
        if self.claimed_by.len() < 2 {
            return self.name.clone();
        }
        let handlers: Vec<String> = self
            .claimed_by
            .iter()
            .map(|row| format!("{} ({})", row.handler, row.claimed))
            .collect();
        handlers.join(", ")
    }
}

/// One timer's or device's counters.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceRow {
    /// The name in the scenario.
    pub name: String,
    /// `timer`, `nic`, `uart`, `block`, `gpio` or `generic`.
    pub kind: String,
    /// The line it raises.
    pub irq: u32,
    /// Events that reached the device.
    pub arrived: u64,
    /// Events its driver finished.
    pub processed: u64,
    /// Events lost, each counted by the device or driver (see `dropped_as`).
    pub dropped: u64,
    /// The cause of this device's drops; empty when it dropped nothing.
    pub dropped_as: String,
    /// The device's own counters, by the label the text report prints. The
    /// JSON writes each label in snake case (`unfinished_at_exit`).
    #[serde(serialize_with = "snake_case_keys")]
    pub counters: BTreeMap<String, u64>,
    /// How far its arrival feeder fell behind the intended times at most,
    /// in nanoseconds; 0 for timers.
    pub max_arrival_lateness_ns: u64,
    /// Events its feeder handed over more than 1 ms after their intended
    /// time.
    pub late_arrivals: u64,
    /// Its own latency summaries, keyed as [`Report::latency`]: those of
    /// its line (`raise_to_top_half`, `top_half_duration`), which on a
    /// shared line cover every device of the line, and its events'
    /// `raise_to_bottom_half`.
    pub latency: BTreeMap<String, LatencyRow>,
}

/// Serializes `counters` with each label in snake case, the form of the
/// report's other JSON keys.
fn snake_case_keys<S: serde::Serializer>(
    counters: &BTreeMap<String, u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(
        counters
            .iter()
            .map(|(label, value)| (label.to_lowercase().replace([' ', '-'], "_"), value)),
    )
}

/// A latency summary in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencyRow {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_ns: u64,
    /// Mean, which rtla calls `avg`.
    pub avg_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

/// Formats a row's p99, or a dash when it has no samples, as the latency
/// table does.
fn p99_or_dash(row: &LatencyRow) -> String {
    if row.count == 0 {
        "-".to_owned()
    } else {
        format_ns(row.p99_ns)
    }
}

impl LatencyRow {
    /// Summarizes `histogram`, with irq-sim's percentiles and its mean.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let summary = irq_sim::Summary::of(histogram);
        Self {
            count: summary.count,
            min_ns: summary.min,
            avg_ns: if histogram.is_empty() {
                0
            } else {
                histogram.mean().round() as u64
            },
            p50_ns: summary.p50,
            p99_ns: summary.p99,
            p999_ns: summary.p999,
            max_ns: summary.max,
        }
    }
}

/// A replayed recording beside what the simulation did with it.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayRow {
    /// The device that replayed it.
    pub device: String,
    /// The recording.
    pub file: String,
    /// The recorded line.
    pub recorded_irq: u32,
    /// The simulated line.
    pub irq: u32,
    /// `irq_handler_entry` events recorded within the run's duration.
    pub recorded: u64,
    /// Events the device raised.
    pub simulated_arrived: u64,
    /// Top halves of the device that ran (deliveries of its line).
    pub simulated_handled: u64,
}

/// Width the report's prose lines are wrapped at.
const WRAP_WIDTH: usize = 96;

/// Wraps `text` at spaces to lines of at most `width` characters, the first
/// starting with `first` and the others with `rest`.
fn wrap(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// Returns `count` and `noun`, with an `s` unless the count is 1.
pub fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Formats a duration as an option takes it: a number with up to three
/// decimals and the largest unit that keeps it at 1 or more, such as
/// `24h`, `1.5s` or `990.099us`.
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let nanos = duration.as_nanos() as f64;
    let (value, unit) = [
        (3.6e12, "h"),
        (6e10, "min"),
        (1e9, "s"),
        (1e6, "ms"),
        (1e3, "us"),
    ]
    .into_iter()
    .find(|(scale, _)| nanos >= *scale)
    .map_or((nanos, "ns"), |(scale, unit)| (nanos / scale, unit));
    let number = format!("{value:.3}");
    let number = number.trim_end_matches('0').trim_end_matches('.');
    format!("{number}{unit}")
}

/// Formats nanoseconds with a unit that keeps three or four digits.
pub fn format_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// Renders rows as a table: a header, then columns padded to their widest
/// cell. Numbers are right-aligned; the first column, and the last when
/// `text_last` (names, as `/proc/interrupts` prints them), are
/// left-aligned.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], text_last: bool) {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[&str]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index == 0 || (text_last && index + 1 == cells.len()) {
                let _ = write!(text, "  {cell:<width$}");
            } else {
                let _ = write!(text, "  {cell:>width$}");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(out, header);
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &cells);
    }
}

impl Report {
    /// Renders the report for a terminal: the title, the interrupt table,
    /// the latency table and histogram, the workqueue and device tables,
    /// and the warnings.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "irqlab: scenario \"{}\" ({}), {} simulated CPU{} ({}), seed {}",
            self.scenario,
            self.source,
            self.cpus,
            if self.cpus == 1 { "" } else { "s" },
            self.cpu_mode,
            self.seed
        );
        let _ = writeln!(
            out,
            "arrivals ran {:.2} s of {:.2} s{}\n",
            self.elapsed_s,
            self.duration_s,
            if self.stopped_early {
                " (stopped by Ctrl-C)"
            } else {
                ""
            }
        );
        self.render_interrupts(&mut out);
        self.render_latency(&mut out);
        self.render_queues(&mut out);
        self.render_devices(&mut out);
        self.render_device_latency(&mut out);
        self.render_replay(&mut out);
        self.render_warnings(&mut out);
        out
    }

    fn render_interrupts(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "Interrupts (as /proc/interrupts, with the raises of each line)"
        );
        let cpu_names: Vec<String> = (0..self.cpus).map(|cpu| format!("CPU{cpu}")).collect();
        let mut header: Vec<&str> = vec!["IRQ"];
        header.extend(cpu_names.iter().map(String::as_str));
        header.extend(["type", "raised", "coalesced", "unhandled", "handlers"]);
        // Line numbers right-aligned, as /proc/interrupts prints them.
        let digits = self
            .irqs
            .iter()
            .map(|irq| irq.irq.to_string().len())
            .max()
            .unwrap_or(1);
        let rows: Vec<Vec<String>> = self
            .irqs
            .iter()
            .map(|irq| {
                let mut row = vec![format!("{:>digits$}:", irq.irq)];
                row.extend(irq.per_cpu.iter().map(u64::to_string));
                row.extend([
                    irq.trigger.clone(),
                    irq.raised.to_string(),
                    irq.coalesced.to_string(),
                    irq.unhandled.to_string(),
                    irq.handlers_cell(),
                ]);
                row
            })
            .collect();
        table(out, &header, &rows, true);
        out.push('\n');
    }

    fn render_latency(&self, out: &mut String) {
        let _ = writeln!(out, "Latency");
        let header = ["measure", "count", "min", "p50", "p99", "p99.9", "max"];
        let rows: Vec<Vec<String>> = MEASURES
            .iter()
            .map(|(key, label, _)| {
                let row = self.latency.get(*key).copied().unwrap_or_default();
                if row.count == 0 {
                    let mut cells = vec![(*label).to_owned(), "0".to_owned()];
                    cells.extend(std::iter::repeat_n("-".to_owned(), 5));
                    return cells;
                }
                vec![
                    (*label).to_owned(),
                    row.count.to_string(),
                    format_ns(row.min_ns),
                    format_ns(row.p50_ns),
                    format_ns(row.p99_ns),
                    format_ns(row.p999_ns),
                    format_ns(row.max_ns),
                ]
            })
            .collect();
        table(out, &header, &rows, false);
        out.push('\n');
        let columns: Vec<(&str, &Histogram<u64>)> = ["raise_to_top_half", "raise_to_bottom_half"]
            .iter()
            .filter_map(|key| Some((measure_label(key), self.histograms.get(*key)?)))
            .collect();
        if !columns.is_empty() {
            out.push_str(&render_histogram(&columns, 40));
            out.push('\n');
        }
    }

    fn render_queues(&self, out: &mut String) {
        let _ = writeln!(out, "Workqueues");
        let header = [
            "queue",
            "queued",
            "coalesced",
            "modified",
            "executed",
            "cancelled",
            "pending at exit",
            "max in flight",
            "start p99",
            "work p99",
        ];
        let rows: Vec<Vec<String>> = self
            .workqueues
            .iter()
            .map(|queue| {
                vec![
                    queue.name.clone(),
                    queue.queued.to_string(),
                    queue.coalesced.to_string(),
                    queue.modified.to_string(),
                    queue.executed.to_string(),
                    queue.cancelled.to_string(),
                    queue.pending_at_exit.to_string(),
                    queue.max_in_flight.to_string(),
                    p99_or_dash(&queue.queue_to_start),
                    p99_or_dash(&queue.work_duration),
                ]
            })
            .collect();
        table(out, &header, &rows, false);
        out.push('\n');
    }

    fn render_devices(&self, out: &mut String) {
        let _ = writeln!(out, "Devices");
        let header = [
            "device",
            "kind",
            "IRQ",
            "arrived",
            "processed",
            "dropped",
            "counters",
        ];
        let rows: Vec<Vec<String>> = self
            .devices
            .iter()
            .map(|device| {
                let counters: Vec<String> = device
                    .counters
                    .iter()
                    .map(|(name, value)| format!("{name} {value}"))
                    .collect();
                vec![
                    device.name.clone(),
                    device.kind.clone(),
                    device.irq.to_string(),
                    device.arrived.to_string(),
                    device.processed.to_string(),
                    device.dropped.to_string(),
                    counters.join(", "),
                ]
            })
            .collect();
        table(out, &header, &rows, true);
        out.push('\n');
    }

    /// Renders the p50 and p99 of each device's line and events, which the
    /// latency table mixes with those of every other device.
    fn render_device_latency(&self, out: &mut String) {
        const COLUMNS: [&str; 3] = [
            "raise_to_top_half",
            "top_half_duration",
            "raise_to_bottom_half",
        ];
        let shares_a_line = self.devices.iter().enumerate().any(|(index, device)| {
            self.devices[..index]
                .iter()
                .any(|earlier| earlier.irq == device.irq)
        });
        let _ = writeln!(
            out,
            "Latency by device (p50 / p99{})",
            if shares_a_line {
                "; the top-half columns of a shared line cover all of its devices"
            } else {
                ""
            }
        );
        let mut header = vec!["device", "IRQ"];
        header.extend(COLUMNS.iter().map(|key| measure_label(key)));
        let rows: Vec<Vec<String>> = self
            .devices
            .iter()
            .map(|device| {
                let mut row = vec![device.name.clone(), device.irq.to_string()];
                row.extend(COLUMNS.iter().map(|key| {
                    match device.latency.get(*key).filter(|summary| summary.count > 0) {
                        Some(summary) => format!(
                            "{} / {}",
                            format_ns(summary.p50_ns),
                            format_ns(summary.p99_ns)
                        ),
                        None => "-".to_owned(),
                    }
                }));
                row
            })
            .collect();
        table(out, &header, &rows, false);
        out.push('\n');
    }

    fn render_replay(&self, out: &mut String) {
        if self.replay.is_empty() {
            return;
        }
        let _ = writeln!(out, "Replayed recordings (recorded beside simulated)");
        let header = [
            "device",
            "recorded IRQ",
            "recorded",
            "arrived",
            "handled",
            "file",
        ];
        let rows: Vec<Vec<String>> = self
            .replay
            .iter()
            .map(|row| {
                vec![
                    row.device.clone(),
                    row.recorded_irq.to_string(),
                    row.recorded.to_string(),
                    row.simulated_arrived.to_string(),
                    row.simulated_handled.to_string(),
                    row.file.clone(),
                ]
            })
            .collect();
        table(out, &header, &rows, true);
        out.push('\n');
    }

    fn render_warnings(&self, out: &mut String) {
        if self.warnings.is_empty() {
            let _ = writeln!(out, "No warnings.");
            return;
        }
        let _ = writeln!(out, "Warnings");
        for warning in &self.warnings {
            out.push_str(&wrap(warning, "  - ", "    ", WRAP_WIDTH));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_within_width() {
        let text = wrap("one two three four five", "- ", "  ", 11);
        assert_eq!(text, "- one two\n  three\n  four five\n");
    }

    #[test]
    fn wrap_keeps_a_long_word_whole() {
        assert_eq!(wrap("abcdefghijkl", "- ", "  ", 5), "- abcdefghijkl\n");
    }

    fn device(name: &str, irq: u32, end_to_end: Option<(u64, u64)>) -> DeviceRow {
        let line = LatencyRow {
            count: 10,
            p50_ns: 1_000,
            p99_ns: 2_000,
            ..LatencyRow::default()
        };
        let (p50_ns, p99_ns) = end_to_end.unwrap_or_default();
        let own = LatencyRow {
            count: u64::from(end_to_end.is_some()),
            p50_ns,
            p99_ns,
            ..LatencyRow::default()
        };
        DeviceRow {
            name: name.to_owned(),
            kind: "generic".to_owned(),
            irq,
            arrived: 0,
            processed: 0,
            dropped: 0,
            dropped_as: String::new(),
            counters: BTreeMap::new(),
            max_arrival_lateness_ns: 0,
            late_arrivals: 0,
            latency: BTreeMap::from([
                ("raise_to_top_half".to_owned(), line),
                ("top_half_duration".to_owned(), line),
                ("raise_to_bottom_half".to_owned(), own),
            ]),
        }
    }

    fn device_latency_table(devices: Vec<DeviceRow>) -> String {
        let report = Report {
            scenario: String::new(),
            source: String::new(),
            seed: 1,
            cpus: 1,
            cpu_mode: "blocking".to_owned(),
            duration_s: 1.0,
            elapsed_s: 1.0,
            stopped_early: false,
            irqs: Vec::new(),
            workqueues: Vec::new(),
            devices,
            latency: BTreeMap::new(),
            replay: Vec::new(),
            warnings: Vec::new(),
            histograms: BTreeMap::new(),
            failed_budgets: 0,
        };
        let mut out = String::new();
        report.render_device_latency(&mut out);
        out
    }

    #[test]
    fn device_latency_dashes_missing_samples() {
        let table = device_latency_table(vec![
            device("uart", 4, Some((3_000_000, 4_000_000))),
            device("button", 60, None),
        ]);
        assert_eq!(
            table,
            "Latency by device (p50 / p99)\n\
             \x20 device  IRQ  raise -> top half         top half  raise -> bottom half\n\
             \x20 uart      4    1.0 us / 2.0 us  1.0 us / 2.0 us     3.00 ms / 4.00 ms\n\
             \x20 button   60    1.0 us / 2.0 us  1.0 us / 2.0 us                     -\n\n"
        );
    }

    #[test]
    fn device_latency_title_names_shared_line() {
        let table = device_latency_table(vec![
            device("ehci", 19, Some((1_000, 2_000))),
            device("mmc0", 19, Some((1_000, 2_000))),
        ]);
        assert!(
            table.starts_with(
                "Latency by device (p50 / p99; the top-half columns of a shared line cover all \
                 of its devices)\n"
            ),
            "{table}"
        );
    }
}
