//! A latency histogram for the terminal, in the spirit of
//! `rtla timerlat hist`: one row per bucket, empty rows left out, a column
//! per measure, and count, min, avg and max below.
//!
//! Latencies here span nanoseconds to milliseconds, so the buckets grow
//! on a 1-2-5 scale (1, 2, 5, 10, 20, 50 ... nanoseconds) rather than
//! rtla's fixed microseconds, and every bound is a round number of its
//! unit. Each column also gets a bar, scaled to its own fullest bucket, so
//! that the shape of each distribution reads at a glance.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::format_ns;

/// Buckets: bounds from 1 ns to 10^19 ns, the last that fits in a `u64`.
const BUCKETS: usize = 58;

/// Returns the lower bound of bucket `k`, in nanoseconds: 1, 2 or 5 times
/// a power of ten. The bound past the last bucket saturates.
fn lower_bound(k: usize) -> u64 {
    let mantissa = [1u64, 2, 5][k % 3];
    10u64
        .checked_pow((k / 3) as u32)
        .and_then(|power| power.checked_mul(mantissa))
        .unwrap_or(u64::MAX)
}

/// Returns the bucket of a value: bucket `k` covers
/// `[lower_bound(k), lower_bound(k + 1))` nanoseconds.
fn bucket(value: u64) -> usize {
    let value = value.max(1);
    let decade = value.ilog10();
    let leading = value / 10u64.pow(decade);
    let step = match leading {
        1 => 0,
        2..=4 => 1,
        _ => 2,
    };
    decade as usize * 3 + step
}

/// Counts per bucket of `histogram`. A sample counts in the bucket of the
/// middle of the values its HDR bucket stands for: with 3 significant
/// digits, a sample within 0.1 % of a bound may land on its other side.
fn counts(histogram: &Histogram<u64>) -> [u64; BUCKETS] {
    let mut counts = [0u64; BUCKETS];
    for value in histogram.iter_recorded() {
        let middle = histogram.median_equivalent(value.value_iterated_to());
        counts[bucket(middle)] += value.count_at_value();
    }
    counts
}

/// Returns the label of bucket `k`: its lower and upper bound.
fn label(k: usize) -> String {
    format!("{} - {}", short(lower_bound(k)), short(lower_bound(k + 1)))
}

/// Formats a bound of the 1-2-5 scale in the largest unit that keeps it
/// whole.
fn short(ns: u64) -> String {
    match ns {
        u64::MAX => "max".to_owned(),
        1_000_000_000.. => format!("{} s", ns / 1_000_000_000),
        1_000_000.. => format!("{} ms", ns / 1_000_000),
        1_000.. => format!("{} us", ns / 1_000),
        _ => format!("{ns} ns"),
    }
}

/// Renders `columns` (a title and a histogram each) side by side, with
/// bars of at most `bar_width` characters.
pub fn render_histogram(columns: &[(&str, &Histogram<u64>)], bar_width: usize) -> String {
    let per_column: Vec<[u64; BUCKETS]> = columns
        .iter()
        .map(|(_, histogram)| counts(histogram))
        .collect();
    let fullest: Vec<u64> = per_column
        .iter()
        .map(|counts| counts.iter().copied().max().unwrap_or(0))
        .collect();
    let rows: Vec<usize> = (0..BUCKETS)
        .filter(|k| per_column.iter().any(|counts| counts[*k] > 0))
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Latency histogram (bucket bounds on a 1-2-5 scale; a full bar is the column's fullest bucket)"
    );
    let label_width = rows
        .iter()
        .map(|k| label(*k).len())
        .max()
        .unwrap_or(0)
        .max("bucket".len());
    let count_width = 9;
    let mut header = format!("  {:<label_width$}", "bucket");
    for (title, _) in columns {
        let _ = write!(
            header,
            "  {:<width$}",
            title,
            width = count_width + 1 + bar_width
        );
    }
    let _ = writeln!(out, "{}", header.trim_end());
    for k in &rows {
        let mut line = format!("  {:<label_width$}", label(*k));
        for (counts, fullest) in per_column.iter().zip(&fullest) {
            let count = counts[*k];
            let filled = if *fullest == 0 || count == 0 {
                0
            } else {
                // At least one character for any sample, so that rare
                // outliers stay visible.
                ((count as f64 / *fullest as f64) * bar_width as f64).ceil() as usize
            };
            let _ = write!(
                line,
                "  {count:>count_width$} {:<bar_width$}",
                "#".repeat(filled.min(bar_width))
            );
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    type Stat = fn(&Histogram<u64>) -> String;
    let trailer: [(&str, Stat); 4] = [
        ("count:", |histogram| histogram.len().to_string()),
        // Bucket middles, as the mean counts samples (see `Summary::of`).
        ("min:", |histogram| {
            format_ns(histogram.median_equivalent(histogram.min()))
        }),
        ("avg:", |histogram| {
            format_ns(histogram.mean().round() as u64)
        }),
        ("max:", |histogram| {
            format_ns(histogram.median_equivalent(histogram.max()))
        }),
    ];
    for (name, value) in trailer {
        let mut line = format!("  {name:<label_width$}");
        for (_, histogram) in columns {
            let text = if histogram.is_empty() {
                "-".to_owned()
            } else {
                value(histogram)
            };
            let _ = write!(line, "  {text:>count_width$} {:<bar_width$}", "");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut histogram = Histogram::new_with_bounds(1, 10_000_000_000, 3).unwrap();
        for value in values {
            histogram.record(*value).unwrap();
        }
        histogram
    }

    #[test]
    fn buckets_step_one_two_five() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(1_999), 9);
        assert_eq!(bucket(2_000), 10);
        assert_eq!(bucket(4_999), 10);
        assert_eq!(bucket(5_000), 11);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for k in 0..BUCKETS {
            assert_eq!(bucket(lower_bound(k)), k, "bucket {k}");
            assert_eq!(bucket(lower_bound(k + 1) - 1), k, "bucket {k}");
        }
        assert_eq!(label(9), "1 us - 2 us");
        assert_eq!(label(17), "500 us - 1 ms");
        assert_eq!(label(BUCKETS - 1), "10000000000 s - max");
    }

    #[test]
    fn histogram_skips_empty_rows_keeps_counts() {
        let fast = histogram(&[1_500, 1_600, 1_700, 100_000]);
        let slow = histogram(&[5_000, 6_000]);
        let text = render_histogram(&[("fast", &fast), ("slow", &slow)], 10);
        let rows: Vec<&str> = text.lines().filter(|line| line.contains(" - ")).collect();
        // 1-2 us, 5-10 us, 100-200 us; nothing between.
        assert_eq!(rows.len(), 3, "{text}");
        let total: u64 = rows
            .iter()
            .map(|row| {
                row.split_whitespace()
                    .nth(5)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(total, 4, "{text}");
        assert!(text.contains("count:"), "{text}");
        assert!(text.lines().all(|line| line == line.trim_end()), "{text}");
        // The fullest bucket of a column gets the full bar.
        assert!(rows[0].contains(&"#".repeat(10)), "{text}");
    }

    #[test]
    fn samples_near_a_bound_count_on_their_side() {
        // Exact up to 2,048 ns: a sample at a bound counts above it.
        let counts_exact = counts(&histogram(&[1_999, 2_000]));
        assert_eq!((counts_exact[9], counts_exact[10]), (1, 1));
        // Above, the histogram keeps 3 significant digits: a sample 0.2 %
        // from a bound counts on its own side.
        for bound in [20_000u64, 50_000, 200_000, 500_000, 2_000_000, 5_000_000] {
            let below = bound - bound / 500;
            let above = bound + bound / 500;
            let counts = counts(&histogram(&[below, above]));
            assert_eq!(counts[bucket(below)], 1, "{below} ns");
            assert_eq!(counts[bucket(above)], 1, "{above} ns");
        }
    }
}
