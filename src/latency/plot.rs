//! The SVG plot of a result: one panel per column set, IRQ and thread
//! latency histograms drawn as steps on a logarithmic count axis.

use std::path::Path;

use plotters::prelude::*;

use super::error::LatencyError;
use super::report::{BASELINE, Column, FORMAT, LatencyReport};
use crate::output::PendingFile;

const PANEL_HEIGHT: u32 = 260;
const WIDTH: u32 = 900;

/// Draws the IRQ and thread latency histograms of every column set of
/// `report` into the SVG file `out`, or to standard output when `out` is
/// `-`. An existing file stays as it is until the drawing replaces it
/// whole.
///
/// # Errors
///
/// [`LatencyError::WritePlot`] when `out` cannot be written, checked
/// before drawing; [`LatencyError::Stdout`] when standard output fails;
/// [`LatencyError::Plot`] when drawing fails.
pub fn plot_svg(report: &LatencyReport, out: &Path) -> Result<(), LatencyError> {
    if is_stdout(out) {
        let mut svg = String::new();
        draw(report, out, &mut svg)?;
        return crate::output::stdout(&svg).map_err(LatencyError::Stdout);
    }
    let write_failed = |source| LatencyError::WritePlot {
        path: out.to_path_buf(),
        source,
    };
    let file = PendingFile::create(out).map_err(write_failed)?;
    let mut svg = String::new();
    draw(report, out, &mut svg)?;
    file.write_all_and_commit(svg.as_bytes())
        .map_err(write_failed)
}

/// Returns true when `out` is `-`, which `latency plot --out` takes for
/// standard output.
pub(crate) fn is_stdout(out: &Path) -> bool {
    out.as_os_str() == "-"
}

/// Draws the plot of `report` into `svg`. Errors name the file `out`.
fn draw(report: &LatencyReport, out: &Path, svg: &mut String) -> Result<(), LatencyError> {
    let failed = |error: &dyn std::fmt::Display| LatencyError::Plot {
        path: out.to_path_buf(),
        message: error.to_string(),
    };
    let panels = report.column_sets.len().max(1) as u32;
    let root = SVGBackend::with_string(svg, (WIDTH, PANEL_HEIGHT * panels)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| failed(&error))?;
    let areas = root.split_evenly((panels as usize, 1));

    // One x range for all panels, so that they compare at a glance: up to
    // twice the largest p99 of any column, within the histogram's range
    // (samples past it are the `over` count of the legend).
    let unit_ns = if report.settings.unit == "ns" {
        1.0
    } else {
        1_000.0
    };
    // `check_plottable` keeps this product within 64 bits.
    let range = (report.settings.bucket_ns * report.settings.entries) as f64 / unit_ns;
    let p99_max = report
        .column_sets
        .iter()
        .flat_map(|set| [set.irq.summary.p99_ns, set.thr.summary.p99_ns])
        .max()
        .unwrap_or(1) as f64
        / unit_ns;
    // Ten buckets at least, and never past the histogram's end.
    let x_max = (2.0 * p99_max)
        .max(10.0 * report.settings.bucket_ns as f64 / unit_ns)
        .min(range);
    let y_max = report
        .column_sets
        .iter()
        .flat_map(|set| [&set.irq, &set.thr])
        .flat_map(|column| column.histogram.nonzero.iter().map(|[_, count]| *count))
        .max()
        .unwrap_or(1) as f64
        // Headroom of more than a decade on the log scale, so that the
        // legend in the upper right sits above the tallest bucket.
        * 30.0;

    for (set, area) in report.column_sets.iter().zip(&areas) {
        let work = match report.settings.work_ns {
            0 => String::new(),
            nanos => format!(
                ", work {}",
                crate::report::format_duration(std::time::Duration::from_nanos(nanos))
            ),
        };
        // The baseline of results written before it had slots took every
        // deadline, so no slot count applies there.
        // tokio-spawn spawns a task an activation, with no slots to run out of.
        let slots = if (set.mechanism == BASELINE && !report.settings.baseline_slots)
            || set.mechanism == super::args::Mechanism::TokioSpawn.name()
        {
            String::new()
        } else {
            format!(
                ", {}",
                crate::report::counted(report.settings.slots, "slot")
            )
        };
        let lost = match set.counts.lost {
            0 => String::new(),
            lost => format!(", {lost} of {} lost", set.counts.activations),
        };
        let title = format!(
            "{} ({} Hz, {}{work}{slots}{lost}): IRQ and thread latency",
            set.mechanism, report.settings.rate_hz, report.settings.cpu_mode
        );
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            // Room for the last x label, which is centred on the axis end.
            .margin_right(28)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, (0.8f64..y_max).log_scale())
            .map_err(|error| failed(&error))?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "latency from programmed expiry ({})",
                report.settings.unit
            ))
            .y_desc("samples per bucket")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|error| failed(&error))?;
        for (column, color) in [(&set.irq, BLUE), (&set.thr, RED)] {
            chart
                .draw_series(LineSeries::new(
                    steps(column, unit_ns, x_max),
                    color.stroke_width(2),
                ))
                .map_err(|error| failed(&error))?
                .label(format!(
                    "{}: p50 {:.decimals$} {unit}, p99 {:.decimals$} {unit}, past the axis {}",
                    column.name,
                    column.summary.p50_ns as f64 / unit_ns,
                    column.summary.p99_ns as f64 / unit_ns,
                    beyond(column, unit_ns, x_max),
                    // Nanoseconds are whole; microseconds keep one decimal.
                    decimals = usize::from(unit_ns > 1.0),
                    unit = report.settings.unit,
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|error| failed(&error))?;
    }
    root.present().map_err(|error| failed(&error))?;
    Ok(())
}

/// Returns the reason a result of format `found` is not plotted.
pub fn format_mismatch(found: &str) -> String {
    format!(
        "\"format\" is {found:?}; this irqlab reads {FORMAT:?}, the output of `irqlab latency --json`"
    )
}

/// Checks that a result can be plotted: its format, its column sets, and
/// the fields that the plot computes with, which a hand edit may have
/// broken (the unit and every histogram's buckets).
///
/// # Errors
///
/// The first invalid field, with its value and what is allowed.
pub fn check_plottable(report: &LatencyReport) -> Result<(), String> {
    if report.format != FORMAT {
        return Err(format_mismatch(&report.format));
    }
    if report.column_sets.is_empty() {
        return Err("\"column_sets\" is empty; a result has at least the baseline's".to_owned());
    }
    let settings = &report.settings;
    if settings.unit != "us" && settings.unit != "ns" {
        return Err(format!(
            "\"settings.unit\" is {:?}; expected \"us\" or \"ns\"",
            settings.unit
        ));
    }
    check_buckets("settings", settings.bucket_ns, settings.entries)?;
    for set in &report.column_sets {
        for column in [&set.irq, &set.thr] {
            let histogram = &column.histogram;
            let field = format!("histogram of {}", column.name);
            check_buckets(&field, histogram.bucket_ns, histogram.entries)?;
            let mut previous = None;
            for &[index, _] in &histogram.nonzero {
                if index >= histogram.entries || previous.is_some_and(|previous| index <= previous)
                {
                    return Err(format!(
                        "{field}: bucket {index} is out of order or past its {} entries; \
                         expected increasing indices below the entries",
                        histogram.entries
                    ));
                }
                previous = Some(index);
            }
            // Summed with a check: a hand edit may hold any u64.
            let total = histogram
                .nonzero
                .iter()
                .try_fold(histogram.over, |sum, [_, count]| sum.checked_add(*count));
            if total != Some(column.summary.count) {
                return Err(format!(
                    "{field}: {} samples in the buckets, {} in the summary; expected the \
                     same count",
                    total.map_or_else(|| "more than 2^64".to_owned(), |total| total.to_string()),
                    column.summary.count
                ));
            }
        }
    }
    Ok(())
}

/// Checks a bucket width and count: each at least 1, and their product, the
/// histogram's range in nanoseconds, within 64 bits.
fn check_buckets(field: &str, bucket_ns: u64, entries: u64) -> Result<(), String> {
    if bucket_ns == 0 || entries == 0 || bucket_ns.checked_mul(entries).is_none() {
        return Err(format!(
            "{field}: bucket_ns {bucket_ns} and entries {entries}; expected each at least 1, \
             with a product below 2^64"
        ));
    }
    Ok(())
}

/// Returns the samples of a column that the plot does not show: past
/// `x_max` or past the histogram's last bucket.
fn beyond(column: &Column, unit_ns: f64, x_max: f64) -> u64 {
    let width = column.histogram.bucket_ns as f64 / unit_ns;
    let past_axis: u64 = column
        .histogram
        .nonzero
        .iter()
        .filter(|[index, _]| *index as f64 * width >= x_max)
        .map(|[_, count]| count)
        .sum();
    column.histogram.over + past_axis
}

/// Returns the outline of a column's histogram as step points, dropping to
/// the axis between non-adjacent buckets, up to `x_max`.
fn steps(column: &Column, unit_ns: f64, x_max: f64) -> Vec<(f64, f64)> {
    let width = column.histogram.bucket_ns as f64 / unit_ns;
    let floor = 0.8;
    let mut points = Vec::new();
    let mut previous: Option<u64> = None;
    for &[index, count] in &column.histogram.nonzero {
        let left = index as f64 * width;
        if left >= x_max {
            break;
        }
        if previous.is_none_or(|previous| previous + 1 != index) {
            if let Some(previous) = previous {
                points.push(((previous + 1) as f64 * width, floor));
            }
            points.push((left, floor));
        }
        points.push((left, count as f64));
        points.push((left + width, count as f64));
        previous = Some(index);
    }
    if let Some(last) = previous {
        points.push(((last + 1) as f64 * width, floor));
    }
    points
}
