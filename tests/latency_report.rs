//! The report of `irqlab latency`: the rtla-style histogram table, the
//! JSON keys, and a short real run through every mechanism.

use std::time::{Duration, Instant};

use clap::Parser;
use irqlab::latency::{
    Buckets, Column, ColumnSet, Counts, CpuModeArg, FORMAT, LatencyArgs, LatencyError,
    LatencyReport, MachineInfo, Mechanism, NoiseFloor, Ratio, RunSettings, Runtimes, Session,
    Settings, Summary, Verdict, measure, new_histogram, plot_svg, run_baseline,
};

#[derive(Parser, Debug)]
struct Wrapper {
    #[command(flatten)]
    args: LatencyArgs,
}

fn parse(arguments: &[&str]) -> LatencyArgs {
    Wrapper::try_parse_from(std::iter::once("latency").chain(arguments.iter().copied()))
        .unwrap()
        .args
}

/// Returns a report with two columns of known samples: IRQ-a contains 1.2,
/// 1.7, 3.1 and 900 us, and Thr-a contains 5.5 us twice.
fn known_report() -> LatencyReport {
    let mut irq = new_histogram();
    for nanos in [1_200, 1_700, 3_100, 900_000] {
        irq.record(nanos).unwrap();
    }
    let mut thr = new_histogram();
    thr.record_n(5_500, 2).unwrap();
    LatencyReport {
        format: FORMAT.to_owned(),
        machine: MachineInfo {
            cpus: 2,
            model: "test CPU".to_owned(),
        },
        settings: Settings {
            rate_hz: 1000,
            duration_s: 75.0,
            rounds: 1,
            cpu_mode: "blocking".to_owned(),
            load_hz: 0,
            unit: "us".to_owned(),
            bucket_ns: 1_000,
            entries: 10,
            work_ns: 0,
            slots: 1024,
            baseline_slots: true,
        },
        // A quiet host, so that tails are judged.
        noise_floor: Some(NoiseFloor {
            lost_percent: vec![0.5, 0.4],
            untrustworthy: false,
            cpus: vec![Some(0), Some(1)],
        }),
        column_sets: vec![ColumnSet {
            mechanism: "system-wq".to_owned(),
            tag: "a".to_owned(),
            counts: Counts {
                activations: 4,
                timer_overruns: 0,
                lost: 2,
                started: 2,
            },
            irq: Column::of("IRQ-a".to_owned(), &irq, 1_000, 10),
            thr: Column::of("Thr-a".to_owned(), &thr, 1_000, 10),
            top_half: Summary::of(&irq),
        }],
        ratios: Vec::new(),
        warnings: Vec::new(),
        elapsed_s: 75.0,
    }
}

/// Draws `report` and returns the SVG text.
fn drawn(report: &LatencyReport, name: &str) -> String {
    let folder = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let svg_path = folder.join("plot.svg");
    plot_svg(report, &svg_path).unwrap();
    std::fs::read_to_string(&svg_path).unwrap()
}

/// The plot's titles and legends read as the text report does: a work
/// time as a duration, whole nanoseconds in nanoseconds, and slots on the
/// baseline only where it had them.
#[test]
fn plot_labels_read_as_text() {
    let mut report = known_report();
    report.settings.unit = "ns".to_owned();
    report.settings.work_ns = 1_000_000_000;
    let mut baseline = report.column_sets[0].clone();
    baseline.mechanism = "baseline".to_owned();
    report.column_sets.push(baseline);
    let mut spawn = report.column_sets[0].clone();
    spawn.mechanism = "tokio-spawn".to_owned();
    report.column_sets.push(spawn);

    let svg = drawn(&report, "plot_labels_read_as_text");
    assert!(
        svg.contains("system-wq (1000 Hz, blocking, work 1s, 1024 slots,"),
        "{svg}"
    );
    assert!(svg.contains("Thr-a: p50 5502 ns"), "{svg}");
    assert!(
        svg.contains("baseline (1000 Hz, blocking, work 1s, 1024 slots,"),
        "{svg}"
    );
    // A task spawned an activation has no slot to wait for.
    assert!(
        svg.contains("tokio-spawn (1000 Hz, blocking, work 1s, 2 of 4 lost)"),
        "{svg}"
    );

    report.settings.baseline_slots = false;
    let svg = drawn(&report, "plot_labels_read_as_text_older");
    assert!(
        svg.contains("baseline (1000 Hz, blocking, work 1s, 2 of 4 lost)"),
        "{svg}"
    );
}

/// The plot's x axis ends where the histogram does, even when it has
/// fewer than ten buckets.
#[test]
fn plot_axis_stays_within_histogram() {
    let mut report = known_report();
    report.settings.entries = 5;
    for set in &mut report.column_sets {
        for column in [&mut set.irq, &mut set.thr] {
            column.histogram.entries = 5;
            column.histogram.nonzero.retain(|[index, _]| *index < 5);
        }
    }
    let folder = std::env::temp_dir().join(format!("irqlab-plot-axis-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let svg_path = folder.join("axis.svg");
    plot_svg(&report, &svg_path).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    std::fs::remove_dir_all(&folder).unwrap();
    // The x tick labels, centred under their ticks where the count axis's
    // are right-aligned, are whole microseconds.
    let labels: Vec<u64> = svg
        .split("<text")
        .filter(|element| element.contains(r#"text-anchor="middle""#))
        .filter_map(|element| {
            element
                .split('>')
                .nth(1)?
                .split('<')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    assert!(labels.contains(&5), "{labels:?}");
    assert!(labels.iter().all(|&label| label <= 5), "{labels:?}");
}

#[test]
fn histogram_table_layout() {
    let table = known_report().histogram_table();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "# irqlab latency histogram");
    assert_eq!(lines[1], "# Time unit is microseconds (us)");
    assert_eq!(lines[2], "# Duration:   0 00:01:15");
    assert_eq!(
        lines[3],
        "# Settings: 1000 Hz timer, 1.25min per column set, blocking CPU, background load 0 Hz, work \
         time 0s, 1024 slots, 1 round"
    );
    assert_eq!(lines[4], "# Columns: a = system-wq");
    assert_eq!(lines[5], "Index     IRQ-a     Thr-a");
    // Buckets 1, 3 and 5 hold samples; 0, 2, 4 and 6..9 are skipped.
    assert_eq!(lines[6], "1             2         0");
    assert_eq!(lines[7], "3             1         0");
    assert_eq!(lines[8], "5             0         2");
    assert_eq!(lines[9], "over:         1         0");
    assert_eq!(lines[10], "count:        4         2");
    // Truncated to the unit, as rtla truncates, so that 5.5 us reads as
    // bucket 5, where it is counted. The HDR histogram stores 900 us as
    // 899.8 us (within 0.05 %), which truncates to 899.
    assert_eq!(lines[11], "min:          1         5");
    assert_eq!(lines[12], "avg:        226         5");
    assert_eq!(lines[13], "max:        899         5");
    assert_eq!(lines.len(), 14);
}

/// Returns `known_report` in nanoseconds, with a Thr column whose two
/// samples are a backlogged bottom half's 38 s.
fn backlogged_report() -> LatencyReport {
    let mut report = known_report();
    report.settings.unit = "ns".to_owned();
    let mut thr = new_histogram();
    thr.record_n(38_000_394_000, 2).unwrap();
    report.column_sets[0].thr = Column::of("Thr-a".to_owned(), &thr, 1, 10);
    report
}

/// A figure wider than the default column, such as a backlogged bottom
/// half's 38 s in nanoseconds, widens its column instead of running into
/// the figure beside it.
#[test]
fn summary_table_widens_for_long_figures() {
    let report = backlogged_report();

    let table = report.summary_table();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[2].split_whitespace().count(), 9, "{table}");
    assert!(lines[2].ends_with(" 38000394240"), "{table}");
    // The rows stay aligned with each other and with the header, whose
    // unit follows its last column.
    assert_eq!(lines[1].len(), lines[2].len(), "{table}");
    assert_eq!(
        lines[0].trim_end_matches("   (ns)").len(),
        lines[2].len(),
        "{table}"
    );
}

/// The histogram's columns widen in the same way, and its rows, header
/// and trailer stay aligned.
#[test]
fn histogram_table_widens_for_long_figures() {
    let report = backlogged_report();

    let table = report.histogram_table();
    let rows: Vec<&str> = table
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect();
    let max = rows.iter().find(|row| row.starts_with("max:")).unwrap();
    assert!(max.ends_with(" 38000394240"), "{table}");
    // Every row ends where the header does: the last column is as wide as
    // its widest figure, and no figure runs into the one beside it.
    for row in &rows {
        assert_eq!(row.len(), rows[0].len(), "{table}");
        assert_eq!(row.split_whitespace().count(), 3, "{table}");
    }
}

/// Returns an IRQ and a Thr ratio of 0.5 for column set `a` of
/// `known_report`, with the tool's goals.
fn half_ratios() -> Vec<Ratio> {
    let ratio = |column: &str, baseline: &str| Ratio {
        column: column.to_owned(),
        baseline: baseline.to_owned(),
        p50: 0.5,
        p50_rounds: vec![0.5],
        p99: 0.5,
        p99_rounds: vec![0.5],
        p50_goal: Some(1.2),
        p99_goal: Some(1.5),
        round_samples: 2_000,
        p50_verdict: None,
        p99_verdict: None,
    };
    vec![ratio("IRQ-a", "IRQ-base"), ratio("Thr-a", "Thr-base")]
}

/// A Thr ratio leaves out lost activations, so with any lost it judges no
/// goal; the IRQ ratio of the same mechanism still does.
#[test]
fn ratio_with_losses_not_judged() {
    let mut report = known_report();
    report.ratios = half_ratios();
    report.judge();
    let table = report.ratio_table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].contains("goal 1.2x met"), "{table}");
    assert!(lines[2].contains("goal 1.2x not judged: 2 lost"), "{table}");
    assert!(lines[2].contains("goal 1.5x not judged: 2 lost"), "{table}");
    assert!(!lines[2].contains(" met"), "{table}");
    assert!(
        lines[3].contains("WARNING: system-wq lost 2 of 4"),
        "{table}"
    );
}

/// The baseline has no Thr ratio of its own, so its loss warning names
/// the column that leaves the lost activations out.
#[test]
fn baseline_loss_names_its_column() {
    let report = judged(|report| {
        let baseline = &mut report.column_sets[1];
        baseline.thr.name = "Thr-base".to_owned();
        baseline.counts.lost = 1;
    });
    assert_eq!(
        report.warnings,
        vec![
            "baseline lost 1 of 4 activations: they started no bottom half of their own, so \
             Thr-base leaves them out"
                .to_owned()
        ]
    );
}

/// A baseline whose bottom half starts more than ten periods late measures
/// its own backlog, so no Thr ratio is judged against it; IRQ ratios are.
#[test]
fn backlogged_baseline_not_judged() {
    let mut report = known_report();
    report.column_sets[0].counts.lost = 0;

    let mut late = new_histogram();
    late.record_n(500_000_000, 3).unwrap();
    let mut baseline = report.column_sets[0].clone();
    baseline.mechanism = "baseline".to_owned();
    baseline.tag = "base".to_owned();
    baseline.thr = Column::of("Thr-base".to_owned(), &late, 1_000, 10);
    report.column_sets.push(baseline);
    report.ratios = half_ratios();
    report.judge();

    let table = report.ratio_table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].contains("goal 1.2x met"), "{table}");
    assert!(
        lines[2].contains("goal 1.2x not judged: the baseline fell behind"),
        "{table}"
    );
    assert!(
        lines[3].contains("WARNING: the baseline's bottom half ran"),
        "{table}"
    );
}

/// A ratio of seven characters and a long column name widen their
/// columns for every row, so the `p50` and `p99` ratios stay aligned.
#[test]
fn ratio_columns_align_for_long_entries() {
    let mut report = known_report();
    let mut ratios = half_ratios();
    ratios[0].p50 = 0.00045;
    ratios[1].column = "Thr-ordered-long".to_owned();
    report.ratios = ratios;
    let table = report.ratio_table();
    let lines: Vec<&str> = table.lines().skip(1).take(2).collect();
    assert!(lines[0].contains("p50 0.00045x"), "{table}");
    assert!(lines[1].contains("p50    0.50x"), "{table}");
    let p50 = |line: &str| line.find(" p50 ").unwrap();
    assert_eq!(p50(lines[0]), p50(lines[1]), "{table}");
    let ratio_end = |line: &str| line.find("x (").unwrap();
    assert_eq!(ratio_end(lines[0]), ratio_end(lines[1]), "{table}");
}

/// Returns `known_report` with no loss, a baseline column set like its
/// own, and the half ratios, judged.
fn judged(change: impl FnOnce(&mut LatencyReport)) -> LatencyReport {
    let mut report = known_report();
    report.column_sets[0].counts.lost = 0;
    let mut baseline = report.column_sets[0].clone();
    baseline.mechanism = "baseline".to_owned();
    baseline.tag = "base".to_owned();
    report.column_sets.push(baseline);
    report.ratios = half_ratios();
    change(&mut report);
    report.judge();
    report
}

fn reason(verdict: &Option<Verdict>) -> &str {
    match verdict {
        Some(Verdict::NotJudged { reason }) => reason,
        other => panic!("judged: {other:?}"),
    }
}

/// A p99 rests on the samples past it: a round of 200 samples has two, so
/// it judges the p50 but not the p99, and 50 judge neither.
#[test]
fn few_samples_a_round_not_judged() {
    let report = judged(|report| report.ratios[0].round_samples = 200);
    assert_eq!(report.ratios[0].p50_verdict, Some(Verdict::Met));
    assert_eq!(
        reason(&report.ratios[0].p99_verdict),
        "200 samples in a round, under 1000"
    );
    assert_eq!(report.ratios[1].p99_verdict, Some(Verdict::Met));

    let report = judged(|report| report.ratios[0].round_samples = 50);
    assert_eq!(
        reason(&report.ratios[0].p50_verdict),
        "50 samples in a round, under 100"
    );
    assert!(
        report.warnings[0].starts_with("a round had as few as 50 samples in a column"),
        "{:?}",
        report.warnings
    );
    assert!(
        report.warnings[0].ends_with("with a longer --duration or a higher --rate"),
        "{:?}",
        report.warnings
    );

    // At the highest rate and with several rounds, the advice is the other
    // two remedies.
    let report = judged(|report| {
        report.ratios[0].round_samples = 50;
        report.settings.rate_hz = irqlab::latency::MAX_RATE_HZ;
        report.settings.rounds = 5;
    });
    assert!(
        report.warnings[0].ends_with("with a longer --duration or fewer --rounds"),
        "{:?}",
        report.warnings
    );

    // At the longest duration, a longer one is not offered.
    let report = judged(|report| {
        report.ratios[0].round_samples = 50;
        report.settings.duration_s = irqlab::latency::MAX_DURATION.as_secs_f64();
        report.settings.rounds = 5;
    });
    assert!(
        report.warnings[0].ends_with("with a higher --rate or fewer --rounds"),
        "{:?}",
        report.warnings
    );
}

/// The few-samples warning counts a single sample in the singular, as the
/// verdict's reason does.
#[test]
fn few_samples_warning_counts_one() {
    let report = judged(|report| report.ratios[0].round_samples = 1);
    assert!(
        report.warnings[0].starts_with("a round had as few as 1 sample in a column"),
        "{:?}",
        report.warnings
    );
}

/// Skipped periods are the late ones a percentile would have counted: past
/// 1 % of a column set's periods, its ratios are not judged, nor are any
/// when the baseline skipped them.
#[test]
fn timer_overruns_not_judged() {
    let report = judged(|report| report.column_sets[0].counts.timer_overruns = 1);
    assert_eq!(
        reason(&report.ratios[0].p50_verdict),
        "20.0 % of periods overran"
    );
    assert!(
        report.warnings[0].contains("system-wq's timer overran 20.0 % of its periods"),
        "{:?}",
        report.warnings
    );

    let report = judged(|report| report.column_sets[1].counts.timer_overruns = 1);
    assert_eq!(
        reason(&report.ratios[1].p99_verdict),
        "the baseline overran 20.0 % of periods"
    );
}

/// The comparison mechanism has no goal, so its overrun warning gives the
/// effect of the skipped periods on its ratios instead of a withheld verdict.
#[test]
fn timer_overruns_without_goal_explained() {
    let report = judged(|report| {
        report.column_sets[0].counts.timer_overruns = 1;
        for ratio in &mut report.ratios {
            ratio.p50_goal = None;
            ratio.p99_goal = None;
        }
    });
    assert!(
        report.warnings[0].ends_with(
            "timer overran 20.0 % of its periods, so its ratios leave out those late periods"
        ),
        "{:?}",
        report.warnings
    );
}

/// A noisy host spoils the tails, not the medians.
#[test]
fn noisy_host_judges_only_p50() {
    let report = judged(|report| {
        report.noise_floor = Some(NoiseFloor {
            lost_percent: vec![0.5, 3.0],
            untrustworthy: true,
            cpus: vec![Some(0), Some(1)],
        });
    });
    assert_eq!(report.ratios[0].p50_verdict, Some(Verdict::Met));
    assert_eq!(reason(&report.ratios[0].p99_verdict), "noisy host");
    let table = report.ratio_table();
    assert!(
        table.contains(
            "WARNING: the noise floor lost more than 2 % of a vCPU (vCPU 0 0.50 %, vCPU 1 3.00 %)"
        ),
        "{table}"
    );
}

/// A run without a noise-floor probe cannot vouch for its tails either.
#[test]
fn missing_probe_judges_only_p50() {
    let report = judged(|report| report.noise_floor = None);
    assert_eq!(report.ratios[0].p50_verdict, Some(Verdict::Met));
    assert_eq!(
        reason(&report.ratios[0].p99_verdict),
        "no noise-floor probe"
    );
    let table = report.ratio_table();
    assert!(
        table.contains("WARNING: no noise-floor probe ran (--noise-probe 0s)"),
        "{table}"
    );
}

/// The JSON carries each verdict and warning, so a script finds what the
/// text prints.
#[test]
fn json_carries_verdicts_and_warnings() {
    let report = judged(|report| report.column_sets[0].counts.lost = 3);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["ratios"][0]["p50_verdict"]["verdict"], "met");
    assert_eq!(json["ratios"][1]["p50_verdict"]["verdict"], "not_judged");
    assert_eq!(json["ratios"][1]["p50_verdict"]["reason"], "3 lost");
    assert!(
        json["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("system-wq lost 3 of 4"),
        "{json}"
    );
}

/// One round has no spread to print, and a ratio without a goal prints
/// "no goal".
#[test]
fn single_round_and_no_goal_read_plainly() {
    let report = judged(|report| {
        report.ratios[0].p50_goal = None;
        report.ratios[0].p99_goal = None;
    });
    let table = report.ratio_table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].contains("p50   0.50x (no goal)"), "{table}");
    assert!(lines[2].contains("p50   0.50x (goal 1.2x met)"), "{table}");
}

/// A result written before `--slots` existed reads as 64 slots, the count
/// those runs used.
#[test]
fn result_without_slots_reads_64() {
    let mut json = serde_json::to_value(known_report()).unwrap();
    json["settings"].as_object_mut().unwrap().remove("slots");
    let report: LatencyReport = serde_json::from_value(json).unwrap();
    assert_eq!(report.settings.slots, 64);
}

#[test]
fn histogram_rows_sum_to_count() {
    let report = known_report();
    for set in &report.column_sets {
        for column in [&set.irq, &set.thr] {
            assert_eq!(
                column.histogram.total(),
                column.summary.count,
                "{}: buckets + over != count",
                column.name
            );
        }
    }
}

#[test]
fn buckets_honour_width_and_entries() {
    let mut histogram = new_histogram();
    for nanos in [10, 19, 20, 55, 99, 100, 5_000] {
        histogram.record(nanos).unwrap();
    }
    let buckets = Buckets::of(&histogram, 20, 5);
    assert_eq!(buckets.nonzero, [[0, 2], [1, 1], [2, 1], [4, 1]]);
    assert_eq!(buckets.over, 2);
    assert_eq!(buckets.total(), 7);
}

#[test]
fn json_keys_stable() {
    let json = serde_json::to_value(known_report()).unwrap();
    for key in [
        "format",
        "machine",
        "settings",
        "noise_floor",
        "column_sets",
        "ratios",
    ] {
        assert!(json.get(key).is_some(), "missing top-level key {key}");
    }
    let set = &json["column_sets"][0];
    for key in ["mechanism", "tag", "counts", "irq", "thr", "top_half"] {
        assert!(set.get(key).is_some(), "missing column-set key {key}");
    }
    for key in ["activations", "timer_overruns", "lost", "started"] {
        assert!(set["counts"].get(key).is_some(), "missing count {key}");
    }
    for key in [
        "count", "min_ns", "avg_ns", "p50_ns", "p99_ns", "p999_ns", "max_ns",
    ] {
        assert!(
            set["irq"]["summary"].get(key).is_some(),
            "missing summary {key}"
        );
    }
    for key in ["bucket_ns", "entries", "nonzero", "over"] {
        assert!(
            set["irq"]["histogram"].get(key).is_some(),
            "missing histogram {key}"
        );
    }
    let back: LatencyReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, known_report());
}

/// 200 ms at 1 kHz through every mechanism and the baseline: every
/// activation is accounted for and every column has samples.
/// The top-half statistics count the activations and the one expiry past
/// the round that stops the timer, not every expiry until the run ends.
#[test]
fn top_half_counts_stop_at_round_end() {
    let args = parse(&[
        "--rate",
        "20000",
        "-d",
        "100ms",
        "--rounds",
        "1",
        "--noise-probe",
        "0s",
        "-m",
        "system-wq,threaded-irq",
    ]);
    let report = measure(&args, |_| {}).unwrap();
    for set in report
        .column_sets
        .iter()
        .filter(|set| set.mechanism != "baseline")
    {
        let activations = set.counts.activations;
        let top_halves = set.top_half.count;
        assert!(
            (activations..=activations + 2).contains(&top_halves),
            "{}: {top_halves} top halves for {activations} activations",
            set.mechanism
        );
    }
}

#[test]
fn short_run_fills_every_column() {
    let args = parse(&[
        "--rate",
        "1000",
        "-d",
        "200ms",
        "--rounds",
        "1",
        "--noise-probe",
        "0s",
    ]);
    let report = measure(&args, |_| {}).unwrap();

    assert_eq!(report.column_sets.len(), 6);
    assert_eq!(report.column_sets[5].mechanism, "baseline");
    for set in &report.column_sets {
        let counts = set.counts;
        // 200 periods, each an activation or, after a host stall, a timer
        // overrun.
        assert_eq!(
            counts.activations + counts.timer_overruns,
            200,
            "{}: {counts:?}",
            set.mechanism
        );
        assert_eq!(
            set.irq.summary.count, counts.activations,
            "{}: IRQ samples",
            set.mechanism
        );
        assert_eq!(
            set.thr.summary.count, counts.started,
            "{}: thread samples",
            set.mechanism
        );
        assert_eq!(
            counts.started + counts.lost,
            counts.activations,
            "{}: started + lost",
            set.mechanism
        );
        assert!(
            set.irq.summary.count > 0,
            "{}: IRQ column empty",
            set.mechanism
        );
        assert!(
            set.thr.summary.count > 0,
            "{}: Thr column empty",
            set.mechanism
        );
        assert_eq!(set.irq.histogram.total(), set.irq.summary.count);
        assert_eq!(set.thr.histogram.total(), set.thr.summary.count);
        let top_halves = set.top_half.count;
        if set.mechanism == "baseline" {
            assert_eq!(top_halves, 0, "the baseline has no top half");
        } else {
            // The line's statistics also count the deliveries of expiries
            // past the round, which are no activations.
            assert!(
                top_halves >= counts.activations,
                "{}: {top_halves} top halves for {} activations",
                set.mechanism,
                counts.activations
            );
        }
    }
    // Five mechanisms, an IRQ and a Thr ratio each.
    assert_eq!(report.ratios.len(), 10);
    let table = report.histogram_table();
    assert!(table.contains("IRQ-base"), "{table}");
}

/// A run with background NIC load stops its load and accounts for every
/// activation.
#[test]
fn load_run_finishes() {
    let args = parse(&[
        "--rate",
        "1000",
        "-d",
        "200ms",
        "--rounds",
        "1",
        "--noise-probe",
        "0s",
        "--load",
        "5000",
        "-m",
        "system-wq",
    ]);
    let report = measure(&args, |_| {}).unwrap();
    assert_eq!(report.settings.load_hz, 5000);
    for set in &report.column_sets {
        let counts = set.counts;
        assert!(counts.activations > 0, "{}: {counts:?}", set.mechanism);
        assert_eq!(
            counts.started + counts.lost,
            counts.activations,
            "{}: started + lost",
            set.mechanism
        );
    }
}

/// A backlog that misses the drain timeout fails the run without waiting
/// for it: here 16 bottom halves of 1 s each wait in the threaded IRQ's
/// ring behind the one running.
#[test]
fn drain_timeout_abandons_backlog() {
    let runtimes = Runtimes::new().unwrap();
    let settings = RunSettings {
        period: Duration::from_millis(1),
        cpu_mode: CpuModeArg::Blocking,
        load_hz: 0,
        work_time: Duration::from_secs(1),
        slots: 16,
    };
    let session = Session::start(Mechanism::ThreadedIrq, &settings, &runtimes).unwrap();
    let end = session.count_for(Duration::from_millis(30));
    irq_sim::clock::sleep_until(end);
    session.wait_past_cutoff(Duration::from_millis(100));

    let stopping = Instant::now();
    let result = session.finish_within(Duration::from_millis(200));
    let waited = stopping.elapsed();

    assert!(
        matches!(result, Err(LatencyError::DrainTimedOut { .. })),
        "{result:?}"
    );
    // Draining the backlog would take about 16 s.
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

/// Each probe thread's loss is labelled with the vCPU it was pinned to, or
/// as an unpinned thread, as in a result written before the probe pinned
/// its threads, which still parses.
#[test]
fn noise_floor_names_pinned_vcpus() {
    let pinned = NoiseFloor {
        lost_percent: vec![0.5, 3.0],
        untrustworthy: true,
        cpus: vec![Some(2), None],
    };
    assert_eq!(
        pinned.describe(),
        "vCPU 2 0.50 %, thread 1 (unpinned) 3.00 %"
    );

    let older: NoiseFloor =
        serde_json::from_str(r#"{"lost_percent": [0.5], "untrustworthy": false}"#).unwrap();
    assert_eq!(older.describe(), "thread 0 (unpinned) 0.50 %");
}

/// A probe too short to see the host's noise is rejected, naming the
/// allowed values; 0s still skips the probe.
#[test]
fn noise_probe_too_short_rejected() {
    let error = Wrapper::try_parse_from(["latency", "--noise-probe", "20us"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("'20us'"), "{error}");
    assert!(
        error.contains("0s (no probe) or a duration from 100ms"),
        "{error}"
    );

    assert_eq!(parse(&["--noise-probe", "0s"]).noise_probe, Duration::ZERO);
    assert_eq!(
        parse(&["--noise-probe", "100ms"]).noise_probe,
        Duration::from_millis(100)
    );
}

/// A negative or overlong probe names the same allowed values as a short
/// one, not a range from 0s that the short values fall in.
#[test]
fn noise_probe_out_of_range_names_minimum() {
    for value in ["-1s", "25h"] {
        let error = Wrapper::try_parse_from(["latency", "--noise-probe", value])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("0s (no probe) or a duration from 100ms to 24h"),
            "{error}"
        );
        assert!(!error.contains("from 0s to"), "{error}");
    }
}

/// A round counts rate x duration expiries, also when the period falls
/// between two nanoseconds: 7 Hz for 2 s programs 14.
#[test]
fn round_counts_rate_times_duration() {
    for (rate, duration, expected) in [("7", "2s", 14), ("3", "1s", 3), ("1000", "1s", 1000)] {
        let args = parse(&["--rate", rate, "-d", duration, "--rounds", "1"]);
        let period = args.period();
        let programmed = (0u32..)
            .take_while(|&index| period * index < args.round_length())
            .count();
        assert_eq!(programmed, expected, "--rate {rate} -d {duration}");
    }
}

/// The baseline keeps at most `--slots` deadlines waiting for its task, as the
/// mechanisms do, and counts the others as lost: here one slot, and a
/// task that spends 20 ms on each of the 1 ms periods.
#[test]
fn baseline_bounded_by_slots() {
    let runtimes = Runtimes::new().unwrap();
    let settings = RunSettings {
        period: Duration::from_millis(1),
        cpu_mode: CpuModeArg::Blocking,
        load_hz: 0,
        work_time: Duration::from_millis(20),
        slots: 1,
    };

    let samples = run_baseline(&settings, &runtimes, Duration::from_millis(60)).unwrap();

    let counts = samples.counts;
    assert!(counts.lost > 0, "{counts:?}");
    assert_eq!(
        counts.started + counts.lost,
        counts.activations,
        "{counts:?}"
    );
    assert_eq!(samples.thr.len(), counts.started, "{counts:?}");
}

/// The simulator's advice about the tool's own bottom halves, which hold a
/// worker on purpose with --work-time, stays out of the output.
#[test]
fn binary_keeps_simulator_advice_out() {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_irqlab"))
        .args([
            "latency",
            "--rate",
            "100",
            "-d",
            "200ms",
            "--rounds",
            "1",
            "-m",
            "system-wq",
            "--work-time",
            "15ms",
            "--noise-probe",
            "0s",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains("system_long_wq"), "{stderr}");
    assert!(!stderr.contains(" WARN "), "{stderr}");
}

/// The binary measures, writes JSON that parses back, and draws an SVG
/// from it with `latency plot`.
#[test]
fn binary_json_then_plot() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("latency_json_then_plot");
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("result.json");
    let svg = dir.join("result.svg");
    let binary = env!("CARGO_BIN_EXE_irqlab");

    let run = std::process::Command::new(binary)
        .args([
            "latency",
            "-d",
            "100ms",
            "--rounds",
            "1",
            "--noise-probe",
            "0s",
        ])
        .args(["-m", "threaded-irq", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("Index  IRQ-thrd  Thr-thrd  IRQ-base  Thr-base"),
        "{stdout}"
    );
    let ratio_row = stdout
        .lines()
        .any(|line| line.trim_start().starts_with("Thr-thrd") && line.contains("/ Thr-base"));
    assert!(ratio_row, "no Thr-thrd ratio row:\n{stdout}");
    let report: LatencyReport =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report.format, FORMAT);
    assert_eq!(report.column_sets[0].mechanism, "threaded-irq");

    let plot = std::process::Command::new(binary)
        .args(["latency", "plot"])
        .arg(&json)
        .arg("--out")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        plot.status.success(),
        "{}",
        String::from_utf8_lossy(&plot.stderr)
    );
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(drawing.starts_with("<svg"), "not an SVG");
    assert!(drawing.contains("Thr-thrd: p50"), "legend missing");
    assert!(
        drawing.contains("baseline (1000 Hz, blocking, 1024 slots)"),
        "panel title missing"
    );
}

/// A p50 verdict longer than another row's, such as "not judged" beside
/// "met", widens the p50 note for every row, so the p99 ratios stay
/// aligned.
#[test]
fn ratio_p99_aligns_across_verdicts() {
    let mut report = known_report();
    report.ratios = half_ratios();
    report.judge();
    let table = report.ratio_table();
    let lines: Vec<&str> = table.lines().skip(1).take(2).collect();
    assert!(lines[0].contains("goal 1.2x met)"), "{table}");
    assert!(
        lines[1].contains("goal 1.2x not judged: 2 lost)"),
        "{table}"
    );
    let p99 = |line: &str| line.find(" p99 ").unwrap();
    assert_eq!(p99(lines[0]), p99(lines[1]), "{table}");
}
