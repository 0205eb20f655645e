//! The result of `irqlab latency`: its JSON form, the summary, the
//! histogram table in the layout of `rtla timerlat hist`, and the ratios to
//! the baseline.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::measure::Counts;

/// The value of [`LatencyReport::format`].
pub const FORMAT: &str = "irqlab-latency/1";

/// The tag of the baseline's columns (`IRQ-base`, `Thr-base`).
pub const BASELINE_TAG: &str = "base";

/// The `mechanism` of the baseline's column set.
pub const BASELINE: &str = "baseline";

/// A whole result, as `--json` writes it. Times are in nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Always [`FORMAT`].
    pub format: String,
    /// The host.
    pub machine: MachineInfo,
    /// The options of the run.
    pub settings: Settings,
    /// The noise-floor probe, if it ran.
    pub noise_floor: Option<NoiseFloor>,
    /// One column set per mechanism, then the baseline's.
    pub column_sets: Vec<ColumnSet>,
    /// Each mechanism column's p50 and p99 against its baseline column.
    pub ratios: Vec<Ratio>,
    /// Warnings about the run's figures, one sentence each, as the text
    /// report prints them after the ratios.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Wall time of the whole measurement, noise probe included, in
    /// seconds; 0 in results written before it was recorded.
    #[serde(default)]
    pub elapsed_s: f64,
}

/// The host the run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// CPUs available to the process.
    pub cpus: usize,
    /// The first `model name` of /proc/cpuinfo.
    pub model: String,
}

/// The options of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Timer rate.
    pub rate_hz: u32,
    /// Measuring time of each column set, in seconds.
    pub duration_s: f64,
    /// Rounds.
    pub rounds: u32,
    /// `blocking` or `busy-poll`.
    pub cpu_mode: String,
    /// Background NIC packets per second.
    pub load_hz: u32,
    /// Unit of the printed tables: `us` or `ns`.
    pub unit: String,
    /// Width of a histogram bucket, in nanoseconds.
    pub bucket_ns: u64,
    /// Number of histogram buckets.
    pub entries: u64,
    /// Busy time of each bottom half, in nanoseconds.
    pub work_ns: u64,
    /// Activations that could wait for their bottom half at once. Results
    /// written before the option existed had 64.
    #[serde(default = "slots_before_option")]
    pub slots: usize,
    /// The baseline, too, kept at most `slots` deadlines waiting. False in
    /// results written before it did, whose baseline took every one.
    #[serde(default)]
    pub baseline_slots: bool,
}

/// Thr-base p50, in timer periods, past which the baseline counts as
/// backlogged, unless it is under [`BACKLOG_MIN_NS`]. A task that keeps up
/// starts within a wake-up, tens of microseconds on a loaded host.
const BACKLOG_PERIODS: f64 = 10.0;

/// Thr-base p50 under which the baseline never counts as backlogged, so
/// that a wake-up longer than ten short periods is not taken for one.
const BACKLOG_MIN_NS: f64 = 1e6;

/// `--slots` of a result written before the option existed.
fn slots_before_option() -> usize {
    64
}

/// The noise-floor probe's findings: one thread a vCPU, each pinned to
/// its vCPU, spinning on the clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseFloor {
    /// Percent of each probe thread's time lost in gaps over 1 us.
    pub lost_percent: Vec<f64>,
    /// True when a thread lost more than 2 %: tails are then untrustworthy.
    pub untrustworthy: bool,
    /// The vCPU each thread was pinned to, in the order of
    /// `lost_percent`; `None` for a thread the kernel did not pin. Empty
    /// in results written before the probe pinned its threads.
    #[serde(default)]
    pub cpus: Vec<Option<usize>>,
}

impl NoiseFloor {
    /// Returns each thread's loss, labelled with its vCPU where it was
    /// pinned to one: "vCPU 0 0.50 %, vCPU 1 3.00 %".
    pub fn describe(&self) -> String {
        self.lost_percent
            .iter()
            .enumerate()
            .map(
                |(index, percent)| match self.cpus.get(index).copied().flatten() {
                    Some(cpu) => format!("vCPU {cpu} {percent:.2} %"),
                    None => format!("thread {index} (unpinned) {percent:.2} %"),
                },
            )
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The two columns of one mechanism (or of the baseline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnSet {
    /// The mechanism's option value, or `baseline`.
    pub mechanism: String,
    /// The column tag: `IRQ-<tag>`, `Thr-<tag>`.
    pub tag: String,
    /// Activation counts over all rounds.
    pub counts: Counts,
    /// Programmed expiry to top-half entry.
    pub irq: Column,
    /// Programmed expiry to bottom-half start.
    pub thr: Column,
    /// Top-half duration (all zeros for the baseline).
    pub top_half: Summary,
}

/// One latency column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// `IRQ-<tag>` or `Thr-<tag>`.
    pub name: String,
    /// Count and percentiles.
    pub summary: Summary,
    /// The bucketed distribution.
    pub histogram: Buckets,
}

/// Count and percentiles of a column, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Smallest sample.
    pub min_ns: u64,
    /// Mean.
    pub avg_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile; 0 in results written before it was recorded.
    #[serde(default)]
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
}

/// A histogram with fixed-width buckets, as rtla prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    /// Width of a bucket, in nanoseconds.
    pub bucket_ns: u64,
    /// Number of buckets.
    pub entries: u64,
    /// `[bucket index, samples]` of every non-empty bucket, in order.
    pub nonzero: Vec<[u64; 2]>,
    /// Samples at or past `entries * bucket_ns`.
    pub over: u64,
}

/// One column's p50 and p99 as a ratio to its baseline column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// The measured column, e.g. `Thr-wq`.
    pub column: String,
    /// Its baseline column, e.g. `Thr-base`.
    pub baseline: String,
    /// Median over rounds of the per-round p50 ratio.
    pub p50: f64,
    /// Per-round p50 ratios.
    pub p50_rounds: Vec<f64>,
    /// Median over rounds of the per-round p99 ratio.
    pub p99: f64,
    /// Per-round p99 ratios.
    pub p99_rounds: Vec<f64>,
    /// The largest p50 ratio the goal allows; `None` for the comparison
    /// mechanism (tokio-spawn), which has no goal.
    pub p50_goal: Option<f64>,
    /// The goal for p99.
    pub p99_goal: Option<f64>,
    /// The minimum over rounds of the samples in the column or its
    /// baseline.
    #[serde(default)]
    pub round_samples: u64,
    /// Whether the p50 meets its goal; `None` without a goal, and in
    /// results written before verdicts were recorded.
    #[serde(default)]
    pub p50_verdict: Option<Verdict>,
    /// Whether the p99 meets its goal.
    #[serde(default)]
    pub p99_verdict: Option<Verdict>,
}

/// Whether a ratio meets its goal, as [`LatencyReport::judge`] decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// At most the goal.
    Met,
    /// Over the goal.
    Missed,
    /// The run cannot support a verdict, for `reason`.
    NotJudged {
        /// Why, e.g. "12 lost".
        reason: String,
    },
}

/// Samples a round must have in both columns for its p50 to be judged.
pub const MIN_ROUND_SAMPLES_P50: u64 = 100;

/// Samples a round must have in both columns for its p99 to be judged:
/// ten beyond the percentile.
pub const MIN_ROUND_SAMPLES_P99: u64 = 1_000;

/// Share of a column set's periods, in percent, past which its timer
/// overruns leave its ratios unjudged: the periods the timer skipped are
/// the late ones a percentile would have counted.
pub const MAX_OVERRUN_PERCENT: f64 = 1.0;

impl Summary {
    /// Summarizes a histogram of nanoseconds; all zeros when it is empty.
    /// The figures are irq-sim's (`irq_sim::Summary`): bucket middles, so
    /// that one sample gives one value for the minimum, each percentile and
    /// the maximum.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let summary = irq_sim::Summary::of(histogram);
        Self {
            count: summary.count,
            min_ns: summary.min,
            avg_ns: if histogram.is_empty() {
                0.0
            } else {
                histogram.mean()
            },
            p50_ns: summary.p50,
            p90_ns: summary.p90,
            p99_ns: summary.p99,
            p999_ns: summary.p999,
            max_ns: summary.max,
        }
    }
}

impl Buckets {
    /// Buckets a histogram of nanoseconds into `entries` buckets of
    /// `bucket_ns`. A sample goes to bucket `value / bucket_ns`, where the
    /// value is the middle of the HDR histogram's equivalent range (exact
    /// below 2,048 ns, within 0.05 % above), as in [`Summary`], so that the
    /// minimum and the maximum fall in the buckets that hold them.
    pub fn of(histogram: &Histogram<u64>, bucket_ns: u64, entries: u64) -> Self {
        let bucket_ns = bucket_ns.max(1);
        let mut nonzero: Vec<[u64; 2]> = Vec::new();
        let mut over = 0;
        for value in histogram.iter_recorded() {
            let nanos = histogram.median_equivalent(value.value_iterated_to());
            let index = nanos / bucket_ns;
            let count = value.count_at_value();
            if index >= entries {
                over += count;
                continue;
            }
            match nonzero.last_mut() {
                Some(last) if last[0] == index => last[1] += count,
                _ => nonzero.push([index, count]),
            }
        }
        Self {
            bucket_ns,
            entries,
            nonzero,
            over,
        }
    }

    /// Returns the samples in the buckets and past them.
    pub fn total(&self) -> u64 {
        self.nonzero.iter().map(|[_, count]| count).sum::<u64>() + self.over
    }
}

impl Column {
    /// Builds a column from its merged histogram.
    pub fn of(name: String, histogram: &Histogram<u64>, bucket_ns: u64, entries: u64) -> Self {
        Self {
            name,
            summary: Summary::of(histogram),
            histogram: Buckets::of(histogram, bucket_ns, entries),
        }
    }
}

/// Returns the median of `values` (the mean of the middle two for an even
/// count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 0 => (sorted[middle - 1] + sorted[middle]) / 2.0,
        _ => sorted[middle],
    }
}

/// Returns `nanos` in whole units, truncated as rtla truncates, so that a
/// value falls in the bucket whose row index is at or below it (the same
/// index when a bucket is one unit wide).
fn truncated(nanos: f64, unit_ns: u64) -> u64 {
    (nanos / unit_ns as f64) as u64
}

fn in_unit(nanos: f64, unit_ns: u64) -> String {
    if unit_ns == 1 {
        format!("{nanos:.0}")
    } else {
        format!("{:.1}", nanos / unit_ns as f64)
    }
}

/// Formats a length in seconds as rtla's header does, `DAYS HH:MM:SS`,
/// rounded to whole seconds, so that a parser of rtla's output reads it.
fn rtla_duration(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    format!(
        "{:>3} {:02}:{:02}:{:02}",
        whole / 86_400,
        whole / 3_600 % 24,
        whole / 60 % 60,
        whole % 60
    )
}

impl LatencyReport {
    fn unit_ns(&self) -> u64 {
        if self.settings.unit == "ns" { 1 } else { 1_000 }
    }

    fn columns(&self) -> impl Iterator<Item = &Column> {
        self.column_sets.iter().flat_map(|set| [&set.irq, &set.thr])
    }

    /// Renders the summary: count, min, avg, p50, p90, p99, p99.9 and max
    /// of every column, in the report's unit.
    ///
    /// A figure column is 10 characters wide, or one more than its longest
    /// figure, so that a latency of seconds printed in nanoseconds stays
    /// apart from the figure before it.
    pub fn summary_table(&self) -> String {
        const HEADER: [&str; 8] = ["count", "min", "avg", "p50", "p90", "p99", "p99.9", "max"];
        let unit = self.unit_ns();
        let rows: Vec<(&str, [String; 8])> = self
            .columns()
            .map(|column| {
                let s = &column.summary;
                let figures = [
                    s.count.to_string(),
                    in_unit(s.min_ns as f64, unit),
                    in_unit(s.avg_ns, unit),
                    in_unit(s.p50_ns as f64, unit),
                    in_unit(s.p90_ns as f64, unit),
                    in_unit(s.p99_ns as f64, unit),
                    in_unit(s.p999_ns as f64, unit),
                    in_unit(s.max_ns as f64, unit),
                ];
                (column.name.as_str(), figures)
            })
            .collect();
        let widths: [usize; 8] = std::array::from_fn(|index| {
            rows.iter()
                .map(|(_, figures)| figures[index].len() + 1)
                .fold(10, usize::max)
        });

        let mut out = format!("{:<11}", "column");
        for (name, width) in HEADER.iter().zip(widths) {
            let _ = write!(out, "{name:>width$}");
        }
        let _ = writeln!(out, "   ({})", self.settings.unit);
        for (name, figures) in &rows {
            let _ = write!(out, "{name:<11}");
            for (figure, width) in figures.iter().zip(widths) {
                let _ = write!(out, "{figure:>width$}");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "IRQ: programmed expiry to top-half entry; Thr: to the start of the bottom \
             half (as rtla timerlat's columns); base: the same-run baselines"
        );
        out
    }

    /// Renders the activation counts of every column set.
    pub fn counts_table(&self) -> String {
        let mut out = String::new();
        let unit = self.unit_ns();
        let _ = writeln!(
            out,
            "{:<14}{:>12}{:>16}{:>10}{:>12}{:>20}{:>22}",
            "mechanism",
            "activations",
            "timer overruns",
            "lost",
            "started",
            format!("top half p50 ({})", self.settings.unit),
            format!("top half p99.9 ({})", self.settings.unit)
        );
        for set in &self.column_sets {
            let c = &set.counts;
            // The baseline has no top half.
            let top_half = |nanos: u64| {
                if set.top_half.count == 0 {
                    "-".to_owned()
                } else {
                    in_unit(nanos as f64, unit)
                }
            };
            let _ = writeln!(
                out,
                "{:<14}{:>12}{:>16}{:>10}{:>12}{:>20}{:>22}",
                set.mechanism,
                c.activations,
                c.timer_overruns,
                c.lost,
                c.started,
                top_half(set.top_half.p50_ns),
                top_half(set.top_half.p999_ns),
            );
        }
        out
    }

    /// Renders the histogram in the layout of `rtla timerlat hist`.
    ///
    /// The layout: `#` comment lines, a header `Index IRQ-<tag> Thr-<tag>
    /// ...`, and one row per bucket with a sample in any column, indexed by
    /// the bucket's lower bound in the unit. The `over:`, `count:`, `min:`,
    /// `avg:` and `max:` rows follow.
    pub fn histogram_table(&self) -> String {
        let unit = self.unit_ns();
        let columns: Vec<&Column> = self.columns().collect();
        let trailer = Self::trailer(&columns, unit);
        // Columns are as wide as their widest figure, at least rtla's 9
        // characters, so that a long count or maximum shifts no row.
        let digits = |value: u64| value.to_string().len();
        let width = columns
            .iter()
            .map(|column| {
                let counts = column
                    .histogram
                    .nonzero
                    .iter()
                    .map(|[_, count]| digits(*count));
                counts.fold(column.name.len(), usize::max)
            })
            .chain(
                trailer
                    .iter()
                    .flat_map(|(_, values)| values.iter().map(|&value| digits(value))),
            )
            .fold(9, usize::max);
        let mut out = String::new();

        let unit_name = if unit == 1 {
            "nanoseconds (ns)"
        } else {
            "microseconds (us)"
        };
        let _ = writeln!(out, "# irqlab latency histogram");
        let _ = writeln!(out, "# Time unit is {unit_name}");
        // rtla's Duration is the whole run; the measuring time of each
        // column set follows in the settings.
        let _ = writeln!(out, "# Duration: {}", rtla_duration(self.elapsed_s));
        let legend: Vec<String> = self
            .column_sets
            .iter()
            .map(|set| format!("{} = {}", set.tag, set.mechanism))
            .collect();
        let _ = writeln!(
            out,
            "# Settings: {} Hz timer, {} per column set, {} CPU, background load {} Hz, work time \
             {}, {}, {}",
            self.settings.rate_hz,
            crate::report::format_duration(
                Duration::try_from_secs_f64(self.settings.duration_s).unwrap_or_default()
            ),
            self.settings.cpu_mode,
            self.settings.load_hz,
            crate::report::format_duration(Duration::from_nanos(self.settings.work_ns)),
            crate::report::counted(self.settings.slots, "slot"),
            crate::report::counted(self.settings.rounds as usize, "round")
        );
        let _ = writeln!(out, "# Columns: {}", legend.join(", "));

        // Merge the non-empty buckets of every column by index.
        let mut indices: Vec<u64> = columns
            .iter()
            .flat_map(|column| column.histogram.nonzero.iter().map(|[index, _]| *index))
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let bucket_ns = self.settings.bucket_ns;
        // The index column is rtla's six characters, wider for an index
        // that would otherwise touch the first count.
        let index_width = indices
            .iter()
            .map(|index| digits(index * bucket_ns / unit) + 1)
            .fold(6, usize::max);
        let mut header = format!("{:<index_width$}", "Index");
        for column in &columns {
            let _ = write!(header, "{:>width$} ", column.name);
        }
        let _ = writeln!(out, "{}", header.trim_end());
        for index in indices {
            let mut row = format!("{:<index_width$}", index * bucket_ns / unit);
            for column in &columns {
                let count = column
                    .histogram
                    .nonzero
                    .iter()
                    .find(|[bucket, _]| *bucket == index)
                    .map_or(0, |[_, count]| *count);
                let _ = write!(row, "{count:>width$} ");
            }
            let _ = writeln!(out, "{}", row.trim_end());
        }

        for (label, values) in trailer {
            let mut row = format!("{label:<index_width$}");
            for value in values {
                let _ = write!(row, "{value:>width$} ");
            }
            let _ = writeln!(out, "{}", row.trim_end());
        }
        out
    }

    /// Returns the rows under the histogram, as rtla prints them: `over:`,
    /// `count:`, and `min:`, `avg:` and `max:` truncated to `unit`
    /// nanoseconds.
    fn trailer(columns: &[&Column], unit: u64) -> [(&'static str, Vec<u64>); 5] {
        [
            (
                "over:",
                columns.iter().map(|c| c.histogram.over).collect::<Vec<_>>(),
            ),
            ("count:", columns.iter().map(|c| c.summary.count).collect()),
            (
                "min:",
                columns
                    .iter()
                    .map(|c| truncated(c.summary.min_ns as f64, unit))
                    .collect(),
            ),
            (
                "avg:",
                columns
                    .iter()
                    .map(|c| truncated(c.summary.avg_ns, unit))
                    .collect(),
            ),
            (
                "max:",
                columns
                    .iter()
                    .map(|c| truncated(c.summary.max_ns as f64, unit))
                    .collect(),
            ),
        ]
    }

    /// Judges every ratio against its goal, and collects the run's
    /// warnings. A verdict needs figures that can carry it:
    ///
    /// - a Thr ratio, no lost activation (the ratio leaves them out) and a
    ///   baseline task that keeps up with the timer;
    /// - [`MIN_ROUND_SAMPLES_P50`] or [`MIN_ROUND_SAMPLES_P99`] samples in
    ///   each round of both columns;
    /// - timer overruns in at most [`MAX_OVERRUN_PERCENT`] of the periods
    ///   of either column set;
    /// - a p99, a noise floor under 2 %.
    ///
    /// Otherwise the verdict is [`Verdict::NotJudged`] with the reason.
    pub fn judge(&mut self) {
        let mut warnings = Vec::new();
        let noisy = self
            .noise_floor
            .as_ref()
            .is_some_and(|floor| floor.untrustworthy);
        // Without a probe, a quiet host cannot be distinguished from a
        // noisy one.
        let unprobed = self.noise_floor.is_none();
        if let Some(floor) = self
            .noise_floor
            .as_ref()
            .filter(|floor| floor.untrustworthy)
        {
            warnings.push(format!(
                "the noise floor lost more than 2 % of a vCPU ({}): tails are untrustworthy, \
                 and no p99 ratio is judged",
                floor.describe()
            ));
        }
        if unprobed {
            warnings.push(
                "no noise-floor probe ran (--noise-probe 0s): nothing shows whether the host \
                 was quiet, so no p99 ratio is judged"
                    .to_owned(),
            );
        }
        // A baseline whose bottom half runs far behind the timer measures its
        // own backlog, and a Thr ratio against it judges nothing.
        let period_ns = 1e9 / f64::from(self.settings.rate_hz.max(1));
        let baseline = self
            .column_sets
            .iter()
            .find(|set| set.mechanism == BASELINE);
        let backlogged = baseline
            .map(|set| set.thr.summary.p50_ns)
            .filter(|&p50_ns| p50_ns as f64 > (BACKLOG_PERIODS * period_ns).max(BACKLOG_MIN_NS));
        if let Some(p50_ns) = backlogged {
            warnings.push(format!(
                "the baseline's bottom half ran {} behind its expiries at the median, over \
                 {BACKLOG_PERIODS} timer periods and 1 ms: its task cannot keep up, so Thr-base \
                 measures its backlog and no Thr ratio is judged",
                crate::report::format_ns(p50_ns)
            ));
        }
        let overrun_share = |set: &ColumnSet| {
            let periods = set.counts.activations + set.counts.timer_overruns;
            100.0 * set.counts.timer_overruns as f64 / periods.max(1) as f64
        };
        let baseline_overruns = baseline.map_or(0.0, overrun_share);
        if baseline_overruns > MAX_OVERRUN_PERCENT {
            warnings.push(format!(
                "the baseline's timer overran {baseline_overruns:.1} % of its periods: the host \
                 cannot keep this rate, and no ratio is judged"
            ));
        }
        for set in &self.column_sets {
            let share = overrun_share(set);
            if set.mechanism != BASELINE && share > MAX_OVERRUN_PERCENT {
                // The comparison mechanism has no goal and so no verdict.
                // Its warning gives the effect of the skipped periods.
                let suffix = format!("-{}", set.tag);
                let has_goal = self
                    .ratios
                    .iter()
                    .any(|ratio| ratio.column.ends_with(&suffix) && ratio.p50_goal.is_some());
                let consequence = if has_goal {
                    "so its ratios are not judged"
                } else {
                    "so its ratios leave out those late periods"
                };
                warnings.push(format!(
                    "{}'s timer overran {share:.1} % of its periods, {consequence}",
                    set.mechanism
                ));
            }
        }
        // A ratio covers only the activations whose bottom half ran.
        for set in self.column_sets.iter().filter(|set| set.counts.lost > 0) {
            // The baseline has no ratios of its own. Its losses are missing
            // from its Thr column, which every Thr ratio divides by.
            let consequence = if set.mechanism == BASELINE {
                format!("{} leaves them out", set.thr.name)
            } else {
                "its Thr ratios leave them out".to_owned()
            };
            warnings.push(format!(
                "{} lost {} of {} activations: they started no bottom half of their own, so \
                 {consequence}",
                set.mechanism, set.counts.lost, set.counts.activations
            ));
        }

        for ratio in &mut self.ratios {
            let Some(set) = self
                .column_sets
                .iter()
                .find(|set| ratio.column == set.irq.name || ratio.column == set.thr.name)
            else {
                continue;
            };
            let thr = ratio.column == set.thr.name;
            let share = overrun_share(set);
            let reason = |minimum: u64, tail: bool| -> Option<String> {
                if thr && set.counts.lost > 0 {
                    Some(format!("{} lost", set.counts.lost))
                } else if thr && backlogged.is_some() {
                    Some("the baseline fell behind".to_owned())
                } else if ratio.round_samples < minimum {
                    Some(format!(
                        "{} in a round, under {minimum}",
                        crate::report::counted(ratio.round_samples as usize, "sample")
                    ))
                } else if baseline_overruns > MAX_OVERRUN_PERCENT {
                    Some(format!(
                        "the baseline overran {baseline_overruns:.1} % of periods"
                    ))
                } else if share > MAX_OVERRUN_PERCENT {
                    Some(format!("{share:.1} % of periods overran"))
                } else if tail && noisy {
                    Some("noisy host".to_owned())
                } else if tail && unprobed {
                    Some("no noise-floor probe".to_owned())
                } else {
                    None
                }
            };
            let verdict = |value: f64, goal: Option<f64>, reason: Option<String>| {
                goal.map(|goal| match reason {
                    Some(reason) => Verdict::NotJudged { reason },
                    None if value <= goal => Verdict::Met,
                    None => Verdict::Missed,
                })
            };
            ratio.p50_verdict = verdict(
                ratio.p50,
                ratio.p50_goal,
                reason(MIN_ROUND_SAMPLES_P50, false),
            );
            ratio.p99_verdict = verdict(
                ratio.p99,
                ratio.p99_goal,
                reason(MIN_ROUND_SAMPLES_P99, true),
            );
        }
        // A run too short for its verdicts gets a hint to lengthen it.
        let fewest = self.ratios.iter().map(|ratio| ratio.round_samples).min();
        if let Some(fewest) = fewest.filter(|&fewest| fewest < MIN_ROUND_SAMPLES_P99) {
            let duration =
                Duration::try_from_secs_f64(self.settings.duration_s).unwrap_or_default();
            let remedies =
                super::args::round_remedies(duration, self.settings.rate_hz, self.settings.rounds);
            warnings.push(format!(
                "a round had as few as {} in a column; a p99 verdict needs \
                 {MIN_ROUND_SAMPLES_P99} and a p50 verdict {MIN_ROUND_SAMPLES_P50}: give each \
                 round more periods with {remedies}",
                crate::report::counted(fewest as usize, "sample")
            ));
        }
        self.warnings = warnings;
    }

    /// Renders the ratios to the baseline with their verdicts, then the
    /// warnings.
    pub fn ratio_table(&self) -> String {
        let mut out = String::new();
        if self.settings.rounds == 1 {
            let _ = writeln!(out, "ratio to baseline, of 1 round:");
        } else {
            let _ = writeln!(
                out,
                "ratio to baseline, median of {} rounds (min..max):",
                self.settings.rounds
            );
        }
        // The parenthesis after a ratio: its spread over rounds, if more
        // than one, and its verdict.
        let note = |rounds: &[f64], goal: Option<f64>, verdict: &Option<Verdict>| {
            let mut parts = Vec::new();
            if rounds.len() > 1 {
                let min = rounds.iter().copied().fold(f64::INFINITY, f64::min);
                let max = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                parts.push(format!("{}..{}", format_ratio(min), format_ratio(max)));
            }
            parts.push(match (goal, verdict) {
                (None, _) => "no goal".to_owned(),
                (Some(goal), Some(Verdict::Met)) => format!("goal {goal}x met"),
                (Some(goal), Some(Verdict::Missed)) => format!("goal {goal}x MISSED"),
                (Some(goal), Some(Verdict::NotJudged { reason })) => {
                    format!("goal {goal}x not judged: {reason}")
                }
                (Some(goal), None) => format!("goal {goal}x"),
            });
            format!("({})", parts.join(", "))
        };
        let rows: Vec<[String; 6]> = self
            .ratios
            .iter()
            .map(|ratio| {
                [
                    ratio.column.clone(),
                    ratio.baseline.clone(),
                    format_ratio(ratio.p50),
                    note(&ratio.p50_rounds, ratio.p50_goal, &ratio.p50_verdict),
                    format_ratio(ratio.p99),
                    note(&ratio.p99_rounds, ratio.p99_goal, &ratio.p99_verdict),
                ]
            })
            .collect();

        // Columns as wide as their widest entry, so that a long column
        // name, a seven-character ratio (0.00045) or a long p50 verdict
        // shifts no row.
        let width = |field: usize, least: usize| {
            rows.iter()
                .map(|row| row[field].len())
                .fold(least, usize::max)
        };
        let column_width = width(0, 10);
        let baseline_width = width(1, 9);
        let p50_width = width(2, 6);
        let p50_note_width = width(3, 0);
        let p99_width = width(4, 6);
        for [column, baseline, p50, p50_note, p99, p99_note] in &rows {
            let _ = writeln!(
                out,
                "  {column:<column_width$} / {baseline:<baseline_width$} p50 {p50:>p50_width$}x \
                 {p50_note:<p50_note_width$}   p99 {p99:>p99_width$}x {p99_note}",
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "  WARNING: {warning}");
        }
        out
    }
}

/// Formats a ratio with two decimals, or with two significant digits when
/// it is under 0.01, which two decimals would print as 0.00.
fn format_ratio(ratio: f64) -> String {
    if ratio == 0.0 || !ratio.is_finite() || ratio.abs() >= 0.01 {
        return format!("{ratio:.2}");
    }
    let mut decimals = (-ratio.abs().log10()).floor() as usize + 2;

    // Rounding can carry into the next power of ten (0.00999 to 0.0100),
    // which needs one decimal fewer. Both sides are parsed from decimal
    // text, so the same value compares equal.
    let rounded: f64 = format!("{:.decimals$}", ratio.abs()).parse().unwrap_or(0.0);
    let next_power: f64 = format!("1e-{}", decimals - 2).parse().unwrap_or(f64::MAX);
    if rounded >= next_power {
        decimals -= 1;
    }
    format!("{ratio:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::{format_ratio, rtla_duration};

    #[test]
    fn small_ratio_keeps_two_digits() {
        assert_eq!(format_ratio(1.234), "1.23");
        assert_eq!(format_ratio(0.05), "0.05");
        assert_eq!(format_ratio(0.00045), "0.00045");
        assert_eq!(format_ratio(0.0012), "0.0012");
        assert_eq!(format_ratio(0.0), "0.00");
    }

    /// A ratio that rounds up to the next power of ten keeps two
    /// significant digits, not three.
    #[test]
    fn small_ratio_rounding_up_keeps_two_digits() {
        assert_eq!(format_ratio(0.00999), "0.010");
        assert_eq!(format_ratio(0.000996), "0.0010");
        assert_eq!(format_ratio(0.00994), "0.0099");
    }

    #[test]
    fn duration_reads_as_rtla_in_whole_seconds() {
        assert_eq!(rtla_duration(75.0), "  0 00:01:15");
        assert_eq!(rtla_duration(90_061.0), "  1 01:01:01");
        assert_eq!(rtla_duration(0.4), "  0 00:00:00");
        assert_eq!(rtla_duration(2.5), "  0 00:00:03");
        assert_eq!(rtla_duration(13.115), "  0 00:00:13");
    }
}
