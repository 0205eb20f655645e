//! Measurement helpers shared by the latency bench binaries: percentile
//! tables and the noise-floor probe every latency run prints.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Returns a histogram of nanoseconds from 1 ns to 10 s, 3 significant
/// digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds")
}

/// Records `duration` in nanoseconds, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(nanos);
}

/// Formats nanoseconds with a unit a reader takes in at a glance.
pub fn format_ns(nanos: u64) -> String {
    if nanos >= 10_000_000 {
        format!("{:.1} ms", nanos as f64 / 1e6)
    } else if nanos >= 10_000 {
        format!("{:.1} us", nanos as f64 / 1e3)
    } else {
        format!("{nanos} ns")
    }
}

/// Prints the header of a percentile table.
pub fn print_table_header() {
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "measure", "count", "min", "p50", "p90", "p99", "p99.9", "max"
    );
}

/// Prints one row of a percentile table.
pub fn print_row(name: &str, histogram: &Histogram<u64>) {
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        name,
        histogram.len(),
        format_ns(histogram.min()),
        format_ns(histogram.value_at_quantile(0.50)),
        format_ns(histogram.value_at_quantile(0.90)),
        format_ns(histogram.value_at_quantile(0.99)),
        format_ns(histogram.value_at_quantile(0.999)),
        format_ns(histogram.max()),
    );
}

/// Returns the median of `values` (which it sorts), and the spread as
/// (min, max).
pub fn median_and_spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    (median, values[0], values[values.len() - 1])
}

/// Findings of the noise-floor probe.
pub struct NoiseFloor {
    /// Share of the probe's time lost in gaps over 1 us, per vCPU.
    pub lost_share: Vec<f64>,
    /// Gaps over 1 us, per vCPU.
    pub gaps: Vec<Histogram<u64>>,
}

impl NoiseFloor {
    /// True when any vCPU lost more than 2 % of its time, which makes tail
    /// figures of this run untrustworthy.
    pub fn untrustworthy(&self) -> bool {
        self.lost_share.iter().any(|share| *share > 0.02)
    }
}

/// Spins on the clock for `duration` on each vCPU at once and records every
/// gap over 1 us: time the host or the kernel took from this thread.
pub fn probe_noise_floor(duration: Duration) -> NoiseFloor {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let threads: Vec<_> = (0..cpus)
        .map(|_| {
            std::thread::spawn(move || {
                let mut gaps = histogram();
                let mut lost = Duration::ZERO;
                let start = Instant::now();
                let mut last = start;
                while last - start < duration {
                    let now = Instant::now();
                    let gap = now - last;
                    if gap > Duration::from_micros(1) {
                        record(&mut gaps, gap);
                        lost += gap;
                    }
                    last = now;
                }
                // The last gap can end past `duration`, so divide by the
                // time the loop ran. That keeps the share at or under 1.
                let elapsed = last - start;
                (lost.as_secs_f64() / elapsed.as_secs_f64(), gaps)
            })
        })
        .collect();
    let (lost_share, gaps) = threads
        .into_iter()
        .map(|thread| thread.join().expect("probe thread"))
        .unzip();
    NoiseFloor { lost_share, gaps }
}

/// Runs the probe and prints its findings.
pub fn print_noise_floor(duration: Duration) -> NoiseFloor {
    let floor = probe_noise_floor(duration);
    println!(
        "noise floor ({:?} of clock spinning per vCPU, gaps over 1 us):",
        duration
    );
    for (cpu, (share, gaps)) in floor.lost_share.iter().zip(&floor.gaps).enumerate() {
        println!(
            "  vcpu {cpu}: {:.2} % lost in {} gaps, p50 {}, max {}",
            share * 100.0,
            gaps.len(),
            format_ns(gaps.value_at_quantile(0.5)),
            format_ns(gaps.max())
        );
    }
    if floor.untrustworthy() {
        println!(
            "  WARNING: more than 2 % of a vCPU was lost; tail figures of this run are untrustworthy"
        );
    }
    floor
}

/// Prints the machine line every report starts with.
pub fn print_machine() {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!("machine: {cpus} vCPUs, {model}");
}

/// Returns the bench's positional arguments, or `None` when `cargo bench
/// -- --list` requests the bench ids: these benches have none, so they
/// return before they measure anything.
pub fn positional_arguments() -> Option<Vec<String>> {
    if std::env::args().any(|argument| argument == "--list") {
        return None;
    }
    let arguments = std::env::args()
        .skip(1)
        .filter(|argument| !argument.starts_with("--"))
        .collect();
    Some(arguments)
}

/// Returns the positive integer at `index` of `arguments`, or `default`
/// when there is none. Any other value ends the bench with an error that
/// names the argument `what`.
pub fn positive_argument(arguments: &[String], index: usize, default: u64, what: &str) -> u64 {
    let Some(text) = arguments.get(index) else {
        return default;
    };
    text.parse()
        .ok()
        .filter(|&value| value > 0)
        .unwrap_or_else(|| {
            eprintln!("error: invalid {what} {text:?}: expected a positive integer");
            std::process::exit(2);
        })
}
