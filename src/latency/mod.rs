//! `irqlab latency`: latency distributions of the top-half/bottom-half
//! split, as rtla timerlat and cyclictest give them for a kernel.
//!
//! A local timer of a simulated CPU fires periodically. Its top half defers
//! to a bottom half through one deferral mechanism ([`Mechanism`]): a
//! workqueue (system_wq, system_highpri_wq, an ordered queue), a threaded
//! IRQ, or a `tokio` spawn. Per activation, two latencies are recorded from
//! the programmed expiry, as timerlat records them:
//!
//! - **IRQ latency** (`IRQ-<tag>`): to the top half's entry;
//! - **thread latency** (`Thr-<tag>`): to the start of the bottom half.
//!
//! The baseline columns (`IRQ-base`, `Thr-base`) come from the same run. A
//! cyclictest-like plain thread sleeps to absolute deadlines: the floor
//! for timer lateness on the host. It hands each deadline to a tokio task
//! waiting in `recv` on an identically built runtime: the floor for thread
//! latency. Mechanisms and baseline are interleaved in rounds, and
//! each ratio is the median of the per-round ratios.
//!
//! # Limitations
//!
//! - Each column set is measured in its own time slot, not at the same
//!   time as the others, so a burst of host noise lands in one of them.
//!   Rounds spread that, and the noise-floor probe flags a noisy host.
//! - The workqueue mechanisms use irqlab's system runtimes; their worker
//!   thread count (one per available CPU) is the same as the baseline's.

mod args;
mod error;
mod measure;
mod plot;
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::output::{self, PendingFile};

pub use args::{
    CpuModeArg, DEFAULT_SLOTS, LatencyArgs, LatencyCommand, MAX_DURATION, MAX_ENTRIES, MAX_RATE_HZ,
    MAX_SLOTS, Mechanism, Unit,
};
pub use error::LatencyError;
pub use measure::{
    ColumnSamples, Counts, RunSettings, Runtimes, Session, new_histogram, run_baseline,
    run_mechanism,
};
pub use plot::plot_svg;
pub use report::{
    BASELINE, BASELINE_TAG, Buckets, Column, ColumnSet, FORMAT, LatencyReport, MAX_OVERRUN_PERCENT,
    MIN_ROUND_SAMPLES_P50, MIN_ROUND_SAMPLES_P99, MachineInfo, NoiseFloor, Ratio, Settings,
    Summary, Verdict,
};

/// Goal for the IRQ latency p50 and p99 against the cyclictest baseline.
const IRQ_GOAL: f64 = 1.2;
/// Goal for the thread latency p50 against the bare hand-off.
const THR_P50_GOAL: f64 = 1.2;
/// Goal for the thread latency p99 against the bare hand-off.
const THR_P99_GOAL: f64 = 1.5;

/// Checks `latency plot --out` before anything is read or written: the
/// plot is SVG (or `-`, standard output), and it must not overwrite the
/// result it reads.
fn check_plot_out(result: &Path, out: &Path) -> Result<(), LatencyError> {
    if plot::is_stdout(out) {
        return Ok(());
    }
    // The result first: naming the input is the likelier slip, and its
    // own reason explains more than the extension does.
    if output::same_file(result, out) {
        return Err(LatencyError::PlotOut {
            path: out.to_path_buf(),
            reason: "it is the result being plotted; give another file",
        });
    }
    let is_svg = out
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("svg"));
    if !is_svg {
        return Err(LatencyError::PlotOut {
            path: out.to_path_buf(),
            reason: "the plot is SVG; give a file name ending in .svg, or - for standard output",
        });
    }
    Ok(())
}

/// Runs `irqlab latency` with `args`: measures and prints the report, or
/// draws a JSON result with the `plot` subcommand. Returns the report of a
/// measurement, `None` for a plot.
///
/// # Errors
///
/// [`LatencyError`] for an invalid option, a machine that cannot be set up,
/// bottom halves that never start, or a file that cannot be read or
/// written.
pub fn run(args: &LatencyArgs) -> Result<Option<LatencyReport>, LatencyError> {
    if let Some(LatencyCommand::Plot { result, out }) = &args.command {
        check_plot_out(result, out)?;
        let text = std::fs::read_to_string(result).map_err(|source| LatencyError::ReadJson {
            path: result.clone(),
            source,
        })?;
        // A run report (`irqlab --json`) is the likely mix-up: name it.
        match serde_json::from_str(&text) {
            Ok(serde_json::Value::Object(fields))
                if !fields.contains_key("format") && fields.contains_key("scenario") =>
            {
                return Err(LatencyError::NotAResult {
                    path: result.clone(),
                    reason: "it is a run report of `irqlab --json`; plot the JSON that \
                             `irqlab latency --json FILE` writes"
                        .to_owned(),
                });
            }
            Ok(serde_json::Value::Object(_)) | Err(_) => {}
            // Serde would name its struct and field count here.
            Ok(other) => {
                let kind = match other {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                };
                return Err(LatencyError::NotAResult {
                    path: result.clone(),
                    reason: format!(
                        "it holds {kind}, not the object that `irqlab latency --json FILE` writes"
                    ),
                });
            }
        }
        // A file of another format is named as such, not by the first
        // field that it lacks.
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&text)
            && let Some(format) = fields.get("format").and_then(serde_json::Value::as_str)
            && format != report::FORMAT
        {
            return Err(LatencyError::NotAResult {
                path: result.clone(),
                reason: plot::format_mismatch(format),
            });
        }
        let report: LatencyReport =
            serde_json::from_str(&text).map_err(|source| LatencyError::ParseJson {
                path: result.clone(),
                source,
            })?;
        plot::check_plottable(&report).map_err(|reason| LatencyError::NotAResult {
            path: result.clone(),
            reason,
        })?;
        plot_svg(&report, out)?;
        if !plot::is_stdout(out) {
            output::stderr_line(format_args!("irqlab: wrote the plot to {}", out.display()));
        }
        return Ok(None);
    }

    // The options and the output file are checked before the minute of
    // measuring, not after. An existing file stays as it is until the
    // new result replaces it whole.
    args.validate()?;
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LatencyError::WriteJson { path, source }
    };
    let json_out = match &args.json {
        Some(path) => Some(PendingFile::create(path).map_err(write_error(path))?),
        None => None,
    };
    // Progress goes to standard error, so that standard output carries
    // only the report.
    let report = measure(args, |line| output::stderr_line(format_args!("{line}")))?;
    // A blank line between tables, none before the first, so that a
    // saved report starts with its first table.
    let text = [
        report.summary_table(),
        report.counts_table(),
        report.histogram_table(),
        report.ratio_table(),
    ]
    .join("\n");
    // The JSON file is written even when standard output fails, so that
    // the measurement is not lost.
    let printed = output::stdout(&text).map_err(LatencyError::Stdout);
    if let (Some(path), Some(out)) = (&args.json, json_out) {
        let json = serde_json::to_string_pretty(&report).expect("a report always serializes");
        out.write_all_and_commit((json + "\n").as_bytes())
            .map_err(write_error(path))?;
        output::stderr_line(format_args!(
            "irqlab: wrote the JSON result to {}",
            path.display()
        ));
    }
    printed?;
    Ok(Some(report))
}

/// Measures what `args` selects and returns the report, calling `progress`
/// with a line before each step.
///
/// # Errors
///
/// As [`run`], except the file errors.
pub fn measure(
    args: &LatencyArgs,
    mut progress: impl FnMut(&str),
) -> Result<LatencyReport, LatencyError> {
    args.validate()?;
    let started = Instant::now();
    let mechanisms = args.mechanisms();
    let settings = RunSettings {
        period: args.period(),
        cpu_mode: args.cpu_mode,
        load_hz: args.load,
        work_time: args.work_time,
        slots: args.slots,
    };
    let machine = machine_info();
    progress(&format!(
        "machine: {}, {}; {} Hz for {} per column set, {}, {} column sets (about {} in all); \
         {} CPU, background load {} Hz, work time {}, {}",
        crate::report::counted(machine.cpus, "vCPU"),
        machine.model,
        args.rate,
        crate::report::format_duration(args.duration),
        crate::report::counted(args.rounds as usize, "round"),
        mechanisms.len() + 1,
        // The noise probe runs first; draining the backlog afterwards is not
        // counted, because only an overloaded run has one.
        crate::report::format_duration(
            args.duration * (mechanisms.len() as u32 + 1) + args.noise_probe
        ),
        match args.cpu_mode {
            CpuModeArg::Blocking => "blocking",
            CpuModeArg::BusyPoll => "busy-poll",
        },
        args.load,
        crate::report::format_duration(args.work_time),
        crate::report::counted(args.slots, "slot"),
    ));

    let noise_floor = (!args.noise_probe.is_zero()).then(|| {
        let floor = probe_noise_floor(args.noise_probe);
        progress(&format!(
            "noise floor: lost in gaps over 1 us: {}",
            floor.describe()
        ));
        floor
    });

    // The rounds: every mechanism, then the baseline, in each.
    let runtimes = Runtimes::new()?;
    let round_length = args.round_length();
    let mut rounds: Vec<Vec<ColumnSamples>> = Vec::new();
    for round in 0..args.rounds {
        let mut sets = Vec::new();
        for &mechanism in &mechanisms {
            progress(&format!(
                "round {}/{}: {}",
                round + 1,
                args.rounds,
                mechanism.name()
            ));
            sets.push(run_mechanism(
                mechanism,
                &settings,
                &runtimes,
                round_length,
            )?);
        }
        progress(&format!("round {}/{}: baseline", round + 1, args.rounds));
        sets.push(run_baseline(&settings, &runtimes, round_length)?);
        rounds.push(sets);
    }

    let tags: Vec<(String, &str)> = mechanisms
        .iter()
        .map(|mechanism| (mechanism.name().to_owned(), mechanism.tag()))
        .chain([(BASELINE.to_owned(), BASELINE_TAG)])
        .collect();
    let mut report = build_report(args, machine, noise_floor, &tags, &mechanisms, &rounds);
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn build_report(
    args: &LatencyArgs,
    machine: MachineInfo,
    noise_floor: Option<NoiseFloor>,
    tags: &[(String, &str)],
    mechanisms: &[Mechanism],
    rounds: &[Vec<ColumnSamples>],
) -> LatencyReport {
    let bucket_ns = args.bucket_size.saturating_mul(args.unit.nanos());
    let baseline = tags.len() - 1;

    let column_sets = tags
        .iter()
        .enumerate()
        .map(|(index, (name, tag))| {
            let mut irq = new_histogram();
            let mut thr = new_histogram();
            let mut top_half = new_histogram();
            let mut counts = Counts::default();
            for round in rounds {
                top_half
                    .add(&round[index].top_half)
                    .expect("the line's histogram fits in ours");
                irq.add(&round[index].irq).expect("equal bounds");
                thr.add(&round[index].thr).expect("equal bounds");
                counts.add(round[index].counts);
            }
            ColumnSet {
                mechanism: name.clone(),
                tag: (*tag).to_owned(),
                counts,
                irq: Column::of(format!("IRQ-{tag}"), &irq, bucket_ns, args.entries),
                thr: Column::of(format!("Thr-{tag}"), &thr, bucket_ns, args.entries),
                top_half: Summary::of(&top_half),
            }
        })
        .collect();

    let mut ratios = Vec::new();
    for (index, mechanism) in mechanisms.iter().enumerate() {
        // The spawn mechanism is the comparison, not a part of irqlab.
        let goals = *mechanism != Mechanism::TokioSpawn;
        let tag = mechanism.tag();
        let irq_of: fn(&ColumnSamples) -> &Histogram<u64> = |samples| &samples.irq;
        let thr_of: fn(&ColumnSamples) -> &Histogram<u64> = |samples| &samples.thr;
        for (kind, pick, p50_goal, p99_goal) in [
            ("IRQ", irq_of, IRQ_GOAL, IRQ_GOAL),
            ("Thr", thr_of, THR_P50_GOAL, THR_P99_GOAL),
        ] {
            // The percentile of a round as the summary prints it: the
            // middle of its HDR bucket, not the bucket's top.
            let percentile = |histogram: &Histogram<u64>, quantile: f64| {
                histogram.median_equivalent(histogram.value_at_quantile(quantile))
            };
            let per_round = |quantile: f64| -> Vec<f64> {
                rounds
                    .iter()
                    .map(|round| {
                        let candidate = pick(&round[index]);
                        let base = pick(&round[baseline]);
                        percentile(candidate, quantile) as f64
                            / percentile(base, quantile).max(1) as f64
                    })
                    .collect()
            };
            let (p50_rounds, p99_rounds) = (per_round(0.50), per_round(0.99));
            let round_samples = rounds
                .iter()
                .map(|round| pick(&round[index]).len().min(pick(&round[baseline]).len()))
                .min()
                .unwrap_or(0);
            ratios.push(Ratio {
                column: format!("{kind}-{tag}"),
                baseline: format!("{kind}-{BASELINE_TAG}"),
                p50: report::median(&p50_rounds),
                p50_rounds,
                p99: report::median(&p99_rounds),
                p99_rounds,
                p50_goal: goals.then_some(p50_goal),
                p99_goal: goals.then_some(p99_goal),
                round_samples,
                p50_verdict: None,
                p99_verdict: None,
            });
        }
    }

    let mut report = LatencyReport {
        format: FORMAT.to_owned(),
        machine,
        settings: Settings {
            rate_hz: args.rate,
            duration_s: args.duration.as_secs_f64(),
            rounds: args.rounds,
            cpu_mode: match args.cpu_mode {
                CpuModeArg::Blocking => "blocking",
                CpuModeArg::BusyPoll => "busy-poll",
            }
            .to_owned(),
            load_hz: args.load,
            unit: args.unit.symbol().to_owned(),
            bucket_ns,
            entries: args.entries,
            work_ns: u64::try_from(args.work_time.as_nanos()).unwrap_or(u64::MAX),
            slots: args.slots,
            baseline_slots: true,
        },
        noise_floor,
        column_sets,
        ratios,
        warnings: Vec::new(),
        elapsed_s: 0.0,
    };
    report.judge();
    report
}

/// Returns the CPU count and the first `model name` of /proc/cpuinfo.
fn machine_info() -> MachineInfo {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    MachineInfo {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        model,
    }
}

/// Spins on the clock for `length` on each vCPU at once and adds up every
/// gap over 1 us: time the host or the kernel took from the thread.
fn probe_noise_floor(length: Duration) -> NoiseFloor {
    // As many threads as the process may run at once, which a cgroup's CPU
    // quota can make fewer than the CPUs it may run on: more would take
    // each other's time and flag a quiet host.
    let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
    let allowed = allowed_cpus();
    // Unpinned threads where the process cannot read its CPUs.
    let targets: Vec<Option<usize>> = if allowed.is_empty() {
        vec![None; parallelism]
    } else {
        allowed.into_iter().take(parallelism).map(Some).collect()
    };
    let threads: Vec<_> = targets
        .into_iter()
        .map(|target| {
            std::thread::spawn(move || {
                let cpu = target.filter(|&cpu| pin_current_thread(cpu));
                let mut lost = Duration::ZERO;
                let start = Instant::now();
                let mut last = start;
                while last - start < length {
                    let now = Instant::now();
                    let gap = now - last;
                    if gap > Duration::from_micros(1) {
                        lost += gap;
                    }
                    last = now;
                }
                // The last gap can end past `length`, so divide by the time
                // the loop ran. That keeps the share at or under 100 %.
                let elapsed = last - start;
                (cpu, 100.0 * lost.as_secs_f64() / elapsed.as_secs_f64())
            })
        })
        .collect();
    let (cpus, lost_percent): (Vec<Option<usize>>, Vec<f64>) = threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or((None, 100.0)))
        .unzip();
    NoiseFloor {
        untrustworthy: lost_percent.iter().any(|percent| *percent > 2.0),
        lost_percent,
        cpus,
    }
}

/// Returns the CPUs the process may run on, in ascending order, or none
/// when `sched_getaffinity` fails.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a cpu_set_t of the size passed, which the call
    // fills.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    let size = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: every index is below CPU_SETSIZE, within the set.
    (0..size)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`, and returns whether the kernel
/// accepted it.
fn pin_current_thread(cpu: usize) -> bool {
    // SAFETY: an all-zero cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from `allowed_cpus`, so it is below CPU_SETSIZE,
    // within the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a cpu_set_t of the size passed, which the call
    // only reads.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == 0 }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{
        ColumnSamples, Counts, LatencyArgs, MachineInfo, Mechanism, build_report, new_histogram,
    };

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LatencyArgs,
    }

    /// Returns one column set's samples, each latency recorded once.
    fn samples(irq_ns: &[u64], thr_ns: &[u64]) -> ColumnSamples {
        let mut irq = new_histogram();
        let mut thr = new_histogram();
        for &nanos in irq_ns {
            irq.record(nanos).unwrap();
        }
        for &nanos in thr_ns {
            thr.record(nanos).unwrap();
        }
        ColumnSamples {
            irq,
            thr,
            top_half: new_histogram(),
            counts: Counts::default(),
        }
    }

    /// With one round, a ratio is the quotient of the two p50 and p99
    /// figures that the summary prints. Latencies over 2,048 ns fall in
    /// HDR buckets wider than 1 ns, where the bucket's top and middle
    /// differ.
    #[test]
    fn single_round_ratio_divides_summary() {
        let args = Wrapper::try_parse_from(["latency", "-m", "system-wq", "--rounds", "1"])
            .unwrap()
            .args;
        let machine = MachineInfo {
            cpus: 2,
            model: "test CPU".to_owned(),
        };
        let tags = [
            ("system-wq".to_owned(), "wq"),
            ("baseline".to_owned(), "base"),
        ];
        let rounds = vec![vec![
            samples(&[30_017, 30_017, 30_017], &[61_001, 61_001, 61_001]),
            samples(&[20_003, 20_003, 20_003], &[40_009, 40_009, 40_009]),
        ]];

        let report = build_report(&args, machine, None, &tags, &[Mechanism::SystemWq], &rounds);

        let [candidate, base] = &report.column_sets[..] else {
            panic!("expected two column sets");
        };
        let quotient = |column: u64, baseline: u64| column as f64 / baseline as f64;
        let irq = &report.ratios[0];
        let thr = &report.ratios[1];
        assert_eq!(
            irq.p50,
            quotient(candidate.irq.summary.p50_ns, base.irq.summary.p50_ns)
        );
        assert_eq!(
            irq.p99,
            quotient(candidate.irq.summary.p99_ns, base.irq.summary.p99_ns)
        );
        assert_eq!(
            thr.p50,
            quotient(candidate.thr.summary.p50_ns, base.thr.summary.p50_ns)
        );
        assert_eq!(
            thr.p99,
            quotient(candidate.thr.summary.p99_ns, base.thr.summary.p99_ns)
        );
    }
}
