//! `irqlab scenario ...`: scenarios made from what real machines recorded.
//!
//! - `from-proc-interrupts BEFORE AFTER --interval SECS` diffs two
//!   `/proc/interrupts` snapshots and writes a scenario whose devices raise
//!   each line at its measured rate, with its handler names and trigger type
//!   (rules in [`proc`]).
//! - `from-ftrace TRACE` writes a scenario whose devices replay the
//!   recorded `irq_handler_entry` times of each line, with the median
//!   recorded work time where the trace has workqueue events (rules in
//!   [`trace`]).
//!
//! The output is commented TOML: a comment gives the source of every value,
//! and every recorded row that did not become a device or timer is listed
//! with the reason. [`generate`] checks that the text parses with
//! [`Scenario::parse`] before anything is written.
//!
//! ```
//! use std::time::Duration;
//! use irqlab::record::proc_interrupts::Snapshot;
//! use irqlab::scenario::convert::{ProcInterruptsInput, scenario_from_proc_interrupts};
//!
//! let before = Snapshot::parse("      CPU0  CPU1\n 16:  10  4  IO-APIC  16-fasteoi  ehci_hcd:usb3\n")?;
//! let after = Snapshot::parse("      CPU0  CPU1\n 16:  25  4  IO-APIC  16-fasteoi  ehci_hcd:usb3\n")?;
//! let text = scenario_from_proc_interrupts(&ProcInterruptsInput {
//!     before: &before,
//!     after: &after,
//!     before_name: "before.txt",
//!     after_name: "after.txt",
//!     interval_secs: 5.0,
//!     duration: Duration::from_secs(5),
//!     cpus: None,
//! })?;
//! assert!(text.contains("arrival = { process = \"poisson\", rate = 3.0 }"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod proc;
mod render;
pub mod trace;

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::output::{PendingFile, StdoutError};
use crate::record::ftrace::Trace;
use crate::record::proc_interrupts::{Label, Snapshot};
use crate::record::{DiffError, FtraceError, ProcInterruptsError};
use crate::scenario::{
    ArrivalSpec, MAX_DURATION, Scenario, ScenarioError, TimerKind, parse_duration,
};

pub use proc::{ProcInterruptsInput, is_local_timer};
pub use trace::FtraceInput;

/// Exit status for invalid input: an unreadable or malformed recording, or
/// an invalid option. clap uses the same status for usage errors.
pub const EXIT_INVALID_INPUT: i32 = 2;

/// Exit status when the scenario cannot be written, or when irqlab made a
/// scenario that does not parse (a bug).
pub const EXIT_FAILURE: i32 = 1;

/// `irqlab scenario <subcommand>`.
#[derive(Clone, Debug, PartialEq, clap::Subcommand)]
pub enum ScenarioCommand {
    /// Write a scenario that reproduces the interrupt rates between two
    /// /proc/interrupts snapshots of one machine.
    ///
    /// Each numbered line that counted interrupts becomes a generic device
    /// on its own line number, with its handler names, trigger type and
    /// busiest CPU. The device raises the line at delta / interval per
    /// second: Poisson, or periodic for per-CPU local timers. LOC becomes
    /// one periodic timer per CPU. Every other row is listed in a comment
    /// with the reason.
    FromProcInterrupts {
        /// The earlier snapshot (a copy of /proc/interrupts).
        before: PathBuf,
        /// The later snapshot of the same machine.
        after: PathBuf,
        /// Time between the two reads: seconds, such as 10 or 0.5, or a
        /// duration with a unit, such as 10s or 500ms (required).
        #[arg(long, value_name = "SECS", value_parser = parse_interval, allow_hyphen_values = true)]
        interval: f64,
        /// Write the scenario to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// How long the scenario runs, with a unit: ns, us, ms, s, min or h
        /// (at most 24 hours).
        #[arg(long, value_name = "D", default_value = "5s", value_parser = parse_run_duration, allow_hyphen_values = true)]
        duration: Duration,
        /// Simulated CPUs [default: the snapshots' CPU count, at most 64].
        #[arg(long, value_name = "N", value_parser = parse_cpus, allow_hyphen_values = true)]
        cpus: Option<usize>,
    },
    /// Write a scenario that replays the IRQ lines of an ftrace text file
    /// (the `trace` file of tracefs).
    ///
    /// Each line with irq_handler_entry events becomes a generic device
    /// whose arrival replays the recorded times. Work queued from a line's
    /// top half sets the device's work to the median recorded execution
    /// time.
    FromFtrace {
        /// The ftrace text file, with irq_handler_entry events.
        trace: PathBuf,
        /// Write the scenario to FILE instead of standard output. The
        /// replay paths are then relative to FILE's folder; on standard
        /// output they are absolute.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// How long the scenario runs, with a unit: ns, us, ms, s, min or h
        /// (at most 24 hours) [default: the trace's length, rounded up to the
        /// next millisecond past its last event].
        #[arg(long, value_name = "D", value_parser = parse_run_duration, allow_hyphen_values = true)]
        duration: Option<Duration>,
        /// Simulated CPUs [default: the highest CPU in the trace plus one,
        /// at most 64].
        #[arg(long, value_name = "N", value_parser = parse_cpus, allow_hyphen_values = true)]
        cpus: Option<usize>,
    },
}

/// The error of a `scenario` subcommand.
#[derive(Debug)]
pub enum ConvertError {
    /// An input file could not be read.
    Read {
        /// The path.
        path: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A `/proc/interrupts` snapshot is malformed.
    ProcInterrupts {
        /// The path.
        path: String,
        /// The line and the reason.
        error: ProcInterruptsError,
    },
    /// Two snapshots cannot be diffed.
    Diff {
        /// The earlier snapshot's path.
        before: String,
        /// The later snapshot's path.
        after: String,
        /// The row and the reason.
        error: DiffError,
    },
    /// The interval between two snapshots is not a positive finite number.
    InvalidInterval(f64),
    /// An ftrace text file is malformed.
    Ftrace {
        /// The path.
        path: String,
        /// The line and the reason.
        error: FtraceError,
    },
    /// An ftrace text file has no `irq_handler_entry` event to replay.
    NoIrqEntries {
        /// The path.
        path: String,
    },
    /// The recording has more lines to simulate than a scenario takes
    /// devices.
    TooManyDevices {
        /// The recording: the trace, or the later snapshot.
        path: String,
        /// The devices the recording would need.
        devices: usize,
        /// The rows or lines to remove from the recording.
        advice: &'static str,
    },
    /// Every line the trace recorded is numbered beyond irq-sim's lines.
    LinesBeyondSimulator {
        /// The path.
        path: String,
        /// The lowest line number recorded.
        lowest: u32,
    },
    /// No line counted an interrupt between the two snapshots.
    NothingToSimulate {
        /// The earlier snapshot's path.
        before: String,
        /// The later snapshot's path.
        after: String,
    },
    /// `--out` names an input of the command, which the scenario would
    /// replace.
    OutIsInput {
        /// The `--out` path.
        out: String,
        /// The input it names: "the trace", "the earlier snapshot", ...
        input: &'static str,
    },
    /// The scenario could not be written.
    Write {
        /// The path.
        path: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The scenario could not be written to standard output.
    Stdout(StdoutError),
    /// The generated scenario does not parse: a bug in the converter.
    Generated(ScenarioError),
}

impl ConvertError {
    /// Returns the process exit status for this error:
    /// [`EXIT_INVALID_INPUT`] for bad input, [`EXIT_FAILURE`] otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Write { .. } | Self::Stdout(_) | Self::Generated(_) => EXIT_FAILURE,
            _ => EXIT_INVALID_INPUT,
        }
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } if error.kind() == std::io::ErrorKind::InvalidData => {
                write!(
                    f,
                    "cannot read {path}: it is not UTF-8 text; expected the text of \
                     /proc/interrupts or of an ftrace `trace` file"
                )
            }
            Self::Read { path, error } => write!(f, "cannot read {path}: {error}"),
            Self::ProcInterrupts { path, error } => {
                write!(f, "{path}: {error}")
            }
            Self::Diff {
                before,
                after,
                error,
            } => write!(f, "cannot diff {before} and {after}: {error}"),
            Self::InvalidInterval(secs) => write!(
                f,
                "invalid interval {secs} s, expected a positive number of seconds between the snapshots"
            ),
            Self::Ftrace { path, error } => write!(f, "{path}: {error}"),
            Self::NoIrqEntries { path } => write!(
                f,
                "{path}: no irq_handler_entry events to replay; enable the irq events in \
                 tracefs (events/irq/irq_handler_entry and irq_handler_exit) and save the \
                 trace file, as docs/scenarios-from-recordings.md shows"
            ),
            Self::TooManyDevices {
                path,
                devices,
                advice,
            } => write!(
                f,
                "{path}: its lines would make {devices} devices, more than the {} a scenario \
                 takes (each runs an arrival thread); {advice}",
                crate::scenario::MAX_DEVICES
            ),
            Self::LinesBeyondSimulator { path, lowest } => write!(
                f,
                "{path}: every recorded line is numbered {lowest} or above, beyond the {} \
                 lines irq-sim has, so none can be replayed",
                irq_sim::machine::MAX_IRQS
            ),
            Self::OutIsInput { out, input } => write!(
                f,
                "--out {out}: it is {input} being read, which the scenario would replace; \
                 give another file"
            ),
            Self::Write { path, error } => write!(f, "--out {path}: cannot write it: {error}"),
            Self::NothingToSimulate { before, after } => write!(
                f,
                "no device line or local timer counted an interrupt between {before} and {after}; \
                 expected two reads of /proc/interrupts some seconds apart (the same file twice, \
                 or /proc/softirqs, gives nothing to simulate)"
            ),
            Self::Stdout(error) => write!(f, "{error}"),
            Self::Generated(error) => write!(
                f,
                "the generated scenario does not parse, a bug in irqlab: {error}"
            ),
        }
    }
}

impl std::error::Error for ConvertError {
    /// Returns the wrapped error where the message leaves it out (a file
    /// that is not text), and its own source where the message contains
    /// it, so that a reporter that prints the chain names each reason once.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { error, .. } if error.kind() == std::io::ErrorKind::InvalidData => {
                Some(error)
            }
            Self::Read { error, .. } | Self::Write { error, .. } => error.source(),
            Self::ProcInterrupts { error, .. } => error.source(),
            Self::Diff { error, .. } => error.source(),
            Self::Ftrace { error, .. } => error.source(),
            Self::Generated(error) => error.source(),
            Self::Stdout(error) => error.source(),
            Self::InvalidInterval(_)
            | Self::OutIsInput { .. }
            | Self::NoIrqEntries { .. }
            | Self::LinesBeyondSimulator { .. }
            | Self::TooManyDevices { .. }
            | Self::NothingToSimulate { .. } => None,
        }
    }
}

/// Returns the scenario TOML of two snapshots.
///
/// # Errors
///
/// [`ConvertError::InvalidInterval`] unless the interval is positive and
/// finite; [`ConvertError::Diff`] when the snapshots are not of one machine
/// in order.
pub fn scenario_from_proc_interrupts(
    input: &ProcInterruptsInput<'_>,
) -> Result<String, ConvertError> {
    Ok(proc::plan(input)?.render())
}

/// Returns the scenario TOML that replays a trace.
///
/// # Errors
///
/// [`ConvertError::NoIrqEntries`] when the trace records no IRQ line.
pub fn scenario_from_ftrace(input: &FtraceInput<'_>) -> Result<String, ConvertError> {
    Ok(trace::plan(input)?.render())
}

/// A generated scenario and where it goes.
#[derive(Debug)]
pub struct Generated {
    /// The scenario TOML.
    pub text: String,
    /// The file to write, or `None` for standard output.
    pub out: Option<PathBuf>,
    /// The scenario as [`Scenario::parse`] reads it back.
    pub scenario: Scenario,
    /// Warnings about the input, such as the events a trace lost, which
    /// the scenario's comments repeat.
    pub warnings: Vec<String>,
}

/// Reads the command's inputs and returns the scenario, checked by
/// parsing it back, without writing it.
///
/// # Errors
///
/// A [`ConvertError`] naming the file and, for malformed input, the line
/// and the reason.
pub fn generate(command: &ScenarioCommand) -> Result<Generated, ConvertError> {
    let mut warnings = Vec::new();
    let (text, out, scenario) = generate_noting(command, &mut warnings)?;
    Ok(Generated {
        text,
        out,
        scenario,
        warnings,
    })
}

/// Does the work of [`generate`], adding its warnings to `warnings` as it
/// finds them, so that a caller still has them when a later step fails.
fn generate_noting(
    command: &ScenarioCommand,
    warnings: &mut Vec<String>,
) -> Result<(String, Option<PathBuf>, Scenario), ConvertError> {
    check_out(command)?;
    let (text, out) = match command {
        ScenarioCommand::FromProcInterrupts {
            before,
            after,
            interval,
            out,
            duration,
            cpus,
        } => {
            let before_name = before.display().to_string();
            let after_name = after.display().to_string();
            let before_snapshot = read_snapshot(before)?;
            let after_snapshot = read_snapshot(after)?;
            warnings.extend(missing_rows_warning(
                &before_snapshot,
                &after_snapshot,
                &after_name,
            ));
            let text = scenario_from_proc_interrupts(&ProcInterruptsInput {
                before: &before_snapshot,
                after: &after_snapshot,
                before_name: &before_name,
                after_name: &after_name,
                interval_secs: *interval,
                duration: *duration,
                cpus: *cpus,
            })?;
            (text, out.clone())
        }
        ScenarioCommand::FromFtrace {
            trace,
            out,
            duration,
            cpus,
        } => {
            let trace_name = trace.display().to_string();
            let text = read(trace)?;
            let parsed = Trace::parse(&text).map_err(|error| ConvertError::Ftrace {
                path: trace_name.clone(),
                error,
            })?;
            if let Some(lost) = self::trace::lost_summary(&parsed) {
                warnings.push(format!(
                    "{trace_name} lost events ({lost}): the scenario does not replay the \
                     interrupts among them"
                ));
            }
            if duration.is_none() && parsed.span() >= MAX_DURATION {
                warnings.push(format!(
                    "{trace_name} spans more than a run may last: the scenario replays its \
                     first {}",
                    crate::report::format_duration(MAX_DURATION)
                ));
            }
            let replay_path = replay_path(trace, out.as_deref())?;
            let text = scenario_from_ftrace(&FtraceInput {
                trace: &parsed,
                trace_name: &trace_name,
                replay_path: &replay_path,
                duration: *duration,
                cpus: *cpus,
            })?;
            (text, out.clone())
        }
    };

    // Replay paths are relative to the output file's folder.
    let (source, base) = match &out {
        Some(path) => (
            path.display().to_string(),
            path.parent().unwrap_or(Path::new("")).to_path_buf(),
        ),
        None => ("<standard output>".to_owned(), PathBuf::from(".")),
    };
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let scenario = Scenario::parse(&text, &source, &base).map_err(ConvertError::Generated)?;
    if let ScenarioCommand::FromProcInterrupts { interval, .. } = command {
        let fastest = Duration::from_secs_f64(1.0 / crate::scenario::MAX_RATE_HZ);
        let clamped = scenario
            .devices
            .iter()
            .filter(|device| match device.arrival {
                ArrivalSpec::Poisson { rate_hz } => rate_hz >= crate::scenario::MAX_RATE_HZ,
                ArrivalSpec::Periodic { period } => period <= fastest,
                _ => false,
            })
            .count()
            + scenario
                .timers
                .iter()
                .filter(|timer| {
                    matches!(timer.kind, TimerKind::Periodic { period, .. } if period <= fastest)
                })
                .count();
        if clamped > 0 {
            warnings.push(format!(
                "--interval {}: {} counted faster than the 1 MHz a device or timer may ask \
                 for, and were clamped (the scenario's comments name them); is the interval \
                 right?",
                format_interval(*interval),
                render::counted(clamped, "line")
            ));
        }
    }
    Ok((text, out, scenario))
}

/// Returns `--interval` as a duration, or in seconds when it is below a
/// nanosecond and a duration would print as zero.
fn format_interval(secs: f64) -> String {
    let interval = Duration::from_secs_f64(secs);
    if interval.is_zero() {
        format!("{secs} s")
    } else {
        crate::report::format_duration(interval)
    }
}

/// Returns a warning naming the rows of `before` that `after` lacks. Each
/// is left out of the scenario. (A later snapshot cut short, whose rows are
/// the first of the earlier's, is an error of the diff instead.)
fn missing_rows_warning(before: &Snapshot, after: &Snapshot, after_name: &str) -> Option<String> {
    let after_labels: HashSet<&Label> = after.rows.iter().map(|row| &row.label).collect();
    let missing: Vec<String> = before
        .rows
        .iter()
        .filter(|row| !after_labels.contains(&row.label))
        .map(|row| crate::record::error::shorten(&row.label.to_string()))
        .collect();
    const NAMED: usize = 5;
    let listed = match missing.len() {
        0 => return None,
        count if count <= NAMED => missing.join(", "),
        count => format!(
            "{}, and {} more",
            missing[..NAMED].join(", "),
            count - NAMED
        ),
    };
    Some(format!(
        "{after_name} lacks {} of the earlier snapshot ({listed}): left out, because the \
         count of each over the interval is unknown; was a driver unloaded, or the file edited?",
        render::counted(missing.len(), "row")
    ))
}

impl ScenarioCommand {
    /// Returns the `--out` file, if any.
    fn out(&self) -> Option<&Path> {
        match self {
            Self::FromProcInterrupts { out, .. } | Self::FromFtrace { out, .. } => out.as_deref(),
        }
    }
}

/// Returns an error when `--out` names one of the command's inputs.
fn check_out(command: &ScenarioCommand) -> Result<(), ConvertError> {
    let Some(out) = command.out() else {
        return Ok(());
    };
    let inputs = match command {
        ScenarioCommand::FromProcInterrupts { before, after, .. } => vec![
            (before, "the earlier snapshot"),
            (after, "the later snapshot"),
        ],
        ScenarioCommand::FromFtrace { trace, .. } => vec![(trace, "the trace")],
    };
    match inputs
        .into_iter()
        .find(|(input, _)| crate::output::same_file(out, input))
    {
        Some((_, input)) => Err(ConvertError::OutIsInput {
            out: out.display().to_string(),
            input,
        }),
        None => Ok(()),
    }
}

/// Runs a `scenario` subcommand: writes the scenario to its `--out` file or
/// to standard output.
///
/// An `--out` file that cannot be written is reported before the inputs
/// are read, and an existing one stays as it is until the new scenario
/// replaces it whole.
///
/// # Errors
///
/// A [`ConvertError`]; [`ConvertError::exit_code`] gives the exit status.
pub fn run(command: &ScenarioCommand) -> Result<(), ConvertError> {
    let write_error = |path: &Path| {
        let path = path.display().to_string();
        move |error| ConvertError::Write { path, error }
    };
    // The hidden file replaces nothing until its commit, so `generate` may
    // still reject an `--out` that names an input.
    let pending = match command.out() {
        Some(path) => Some(PendingFile::create(path).map_err(write_error(path))?),
        None => None,
    };
    // The warnings come first even when the conversion then fails, since
    // they may explain the failure (a trace that lost its events).
    let mut warnings = Vec::new();
    let generated = generate_noting(command, &mut warnings);
    for warning in &warnings {
        crate::output::stderr_line(format_args!("irqlab: warning: {warning}"));
    }
    let (text, out, scenario) = generated?;
    match (&out, pending) {
        (Some(path), Some(pending)) => {
            pending
                .write_all_and_commit(text.as_bytes())
                .map_err(write_error(path))?;
            crate::output::stderr_line(format_args!(
                "irqlab: wrote {}: {} and {}",
                path.display(),
                render::counted(scenario.devices.len(), "device"),
                render::counted(scenario.timers.len(), "timer")
            ));
        }
        _ => crate::output::stdout(&text).map_err(ConvertError::Stdout)?,
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, ConvertError> {
    std::fs::read_to_string(path).map_err(|error| ConvertError::Read {
        path: path.display().to_string(),
        error,
    })
}

fn read_snapshot(path: &Path) -> Result<Snapshot, ConvertError> {
    Snapshot::parse(&read(path)?).map_err(|error| ConvertError::ProcInterrupts {
        path: path.display().to_string(),
        error,
    })
}

/// Returns how the scenario names `trace`: relative to the folder of `out`,
/// or absolute when the scenario goes to standard output.
fn replay_path(trace: &Path, out: Option<&Path>) -> Result<String, ConvertError> {
    let absolute = |path: &Path| {
        std::fs::canonicalize(path).map_err(|error| ConvertError::Read {
            path: path.display().to_string(),
            error,
        })
    };
    let trace = absolute(trace)?;
    let Some(out) = out else {
        return Ok(trace.display().to_string());
    };
    let folder = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let folder = std::fs::canonicalize(folder).map_err(|error| ConvertError::Write {
        path: out.display().to_string(),
        error,
    })?;
    Ok(relative_path(&trace, &folder).display().to_string())
}

/// Returns `path` relative to `folder`; both are absolute and canonical.
fn relative_path(path: &Path, folder: &Path) -> PathBuf {
    let path_parts: Vec<Component<'_>> = path.components().collect();
    let folder_parts: Vec<Component<'_>> = folder.components().collect();
    let common = path_parts
        .iter()
        .zip(&folder_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut relative = PathBuf::new();
    for _ in common..folder_parts.len() {
        relative.push("..");
    }
    for part in &path_parts[common..] {
        relative.push(part);
    }
    relative
}

/// Longest `--interval`: a year of seconds. Rates from longer intervals
/// would need periods no run can reach.
const MAX_INTERVAL_SECS: f64 = 365.0 * 86_400.0;

/// Parses `--interval`: seconds (`10`, `0.5`) or a duration with a unit
/// (`10s`, `500ms`), positive and at most a year.
fn parse_interval(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let secs = text.parse::<f64>().ok().or_else(|| {
        parse_duration(text)
            .ok()
            .map(|duration| duration.as_secs_f64())
    });
    match secs {
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= MAX_INTERVAL_SECS => Ok(secs),
        _ => Err(format!(
            "expected a positive number of seconds up to {MAX_INTERVAL_SECS} (a year), such as \
             10 or 0.5, or a duration with a unit, such as 10s or 500ms"
        )),
    }
}

/// Parses the `--duration` of `run` and of the converters: a duration with
/// a unit, longer than 0s and at most 24h. The error leaves out the
/// value, which clap prints before it.
pub fn parse_run_duration(text: &str) -> Result<Duration, String> {
    const RANGE: &str = "expected a duration longer than 0s and at most 24h";
    let duration = parse_duration(text).map_err(|error| {
        if error.out_of_range {
            format!("{}; {RANGE}", error.problem)
        } else {
            error.problem
        }
    })?;
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(format!("out of range; {RANGE}"));
    }
    Ok(duration)
}

/// Parses `--cpus`: 1 to irq-sim's maximum.
fn parse_cpus(text: &str) -> Result<usize, String> {
    let max = irq_sim::machine::MAX_CPUS;
    match text.trim().parse::<usize>() {
        Ok(cpus) if (1..=max).contains(&cpus) => Ok(cpus),
        _ => Err(format!(
            "expected a number of simulated CPUs from 1 to {max}"
        )),
    }
}

#[cfg(test)]
mod tests;
