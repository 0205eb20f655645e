//! A latency histogram for the terminal, in the spirit of
//! `rtla timerlat hist`: one row per bucket, empty rows left out, a column
//! per measure, and count, min, avg and max below.
//!
//! Latencies here span nanoseconds to milliseconds, so the buckets are
//! powers of two of nanoseconds rather than rtla's fixed microseconds.
//! Each column also gets a bar, scaled to its own fullest bucket, so that
//! the shape of each distribution reads at a glance.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::format_ns;

/// Returns the bucket of a value: `k` covers `[2^k, 2^(k+1))` nanoseconds.
fn bucket(value: u64) -> u32 {
    63 - value.max(1).leading_zeros()
}

/// Counts per bucket of `histogram`.
fn counts(histogram: &Histogram<u64>) -> [u64; 64] {
    let mut counts = [0u64; 64];
    for value in histogram.iter_recorded() {
        counts[bucket(value.value_iterated_to()) as usize] += value.count_at_value();
    }
    counts
}

/// Returns the label of bucket `k`: its lower and upper bound.
fn label(k: u32) -> String {
    let low = 1u64 << k;
    let high = low.saturating_mul(2);
    format!("{} - {}", short(low), short(high))
}

/// Formats a bound in the largest unit that keeps it whole.
fn short(ns: u64) -> String {
    if ns >= 1_000_000_000 && ns.is_multiple_of(1_000_000) {
        format!("{}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1}us", ns as f64 / 1e3)
    } else {
        format!("{ns}ns")
    }
}

/// Renders `columns` (a title and a histogram each) side by side, with
/// bars of at most `bar_width` characters.
pub fn render_histogram(columns: &[(&str, &Histogram<u64>)], bar_width: usize) -> String {
    let per_column: Vec<[u64; 64]> = columns
        .iter()
        .map(|(_, histogram)| counts(histogram))
        .collect();
    let fullest: Vec<u64> = per_column
        .iter()
        .map(|counts| counts.iter().copied().max().unwrap_or(0))
        .collect();
    let rows: Vec<u32> = (0..64u32)
        .filter(|k| per_column.iter().any(|counts| counts[*k as usize] > 0))
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Latency histogram (buckets double in width; a full bar is the column's fullest bucket)"
    );
    let label_width = rows
        .iter()
        .map(|k| label(*k).len())
        .max()
        .unwrap_or(0)
        .max("bucket".len());
    let count_width = 9;
    let _ = write!(out, "  {:<label_width$}", "bucket");
    for (title, _) in columns {
        let _ = write!(
            out,
            "  {:<width$}",
            title,
            width = count_width + 1 + bar_width
        );
    }
    let _ = writeln!(out);
    for k in &rows {
        let mut line = format!("  {:<label_width$}", label(*k));
        for (counts, fullest) in per_column.iter().zip(&fullest) {
            let count = counts[*k as usize];
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
    fn buckets_double() {
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(1023), 9);
        assert_eq!(bucket(1024), 10);
        assert_eq!(label(10), "1.0us - 2.0us");
    }

    #[test]
    fn histogram_skips_empty_rows_keeps_counts() {
        let fast = histogram(&[1_500, 1_600, 1_700, 100_000]);
        let slow = histogram(&[5_000, 6_000]);
        let text = render_histogram(&[("fast", &fast), ("slow", &slow)], 10);
        let rows: Vec<&str> = text.lines().filter(|line| line.contains(" - ")).collect();
        // 1.0-2.0us, 4.1-8.2us, 65.5-131.1us; nothing between.
        assert_eq!(rows.len(), 3, "{text}");
        let total: u64 = rows
            .iter()
            .map(|row| {
                row.split_whitespace()
                    .nth(3)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(total, 4, "{text}");
        assert!(text.contains("count:"), "{text}");
        // The fullest bucket of a column gets the full bar.
        assert!(rows[0].contains(&"#".repeat(10)), "{text}");
    }
}
