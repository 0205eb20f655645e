//! Errors of `irqlab latency`.

use std::path::PathBuf;
use std::time::Duration;

/// Error of `irqlab latency`: an invalid option value, a simulated machine
/// that cannot be set up, or a file that cannot be written or read.
#[derive(Debug)]
pub enum LatencyError {
    /// `--rate` or `--load` is not a whole number of hertz in range.
    InvalidRate {
        /// The option the value came from.
        option: &'static str,
        /// The value as given.
        value: String,
        /// The smallest rate allowed: 1, or 0 where 0 turns the option off.
        min_hz: u32,
        /// The largest rate allowed.
        max_hz: u32,
    },
    /// `--duration` or `--noise-probe` does not parse as a duration.
    InvalidDuration {
        /// The option the value came from.
        option: &'static str,
        /// The value as given.
        value: String,
        /// The fault and the accepted forms, from the duration parser.
        problem: String,
    },
    /// A duration is outside what the option accepts.
    DurationOutOfRange {
        /// The option the value came from.
        option: &'static str,
        /// The value given.
        value: Duration,
        /// The smallest value allowed.
        min: Duration,
        /// The largest value allowed.
        max: Duration,
    },
    /// A count option (`--bucket-size`, `--entries`, `--rounds`,
    /// `--slots`) is not a whole number in range.
    InvalidCount {
        /// The option the value came from.
        option: &'static str,
        /// The value as given.
        value: String,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A round (the duration divided by the rounds) is shorter than ten
    /// timer periods, so a round cannot give a distribution.
    RoundTooShort {
        /// The length of one round.
        round: Duration,
        /// The timer period.
        period: Duration,
        /// The changes the settings leave room for, as
        /// [`round_remedies`](super::args::round_remedies) lists them.
        remedies: String,
    },
    /// The simulated machine could not be built.
    Machine(irq_sim::ConfigError),
    /// A handler could not be registered on the timer or load line.
    Request(String),
    /// The NIC of `--load` could not be made.
    Load(irq_sim::DeviceError),
    /// A tokio runtime could not be started.
    Runtime(std::io::Error),
    /// Bottom halves were still running long after the timer stopped.
    DrainTimedOut {
        /// The deferral mechanism.
        mechanism: &'static str,
        /// Bottom halves started so far.
        started: u64,
        /// Bottom halves queued.
        queued: u64,
        /// How long the bottom halves had to start after the timer stopped.
        timeout: Duration,
    },
    /// The JSON result could not be written.
    WriteJson {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON result could not be read.
    ReadJson {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a JSON result of `irqlab latency`.
    ParseJson {
        /// The file.
        path: PathBuf,
        /// The serde_json error.
        source: serde_json::Error,
    },
    /// The report could not be written to standard output.
    Stdout(crate::output::StdoutError),
    /// A JSON result parses but cannot be plotted: another format version,
    /// or no column set.
    NotAResult {
        /// The file.
        path: PathBuf,
        /// The problem, naming the field.
        reason: String,
    },
    /// `latency plot --out` names a file that the plot must not write: not
    /// an `.svg` file, or the result it reads.
    PlotOut {
        /// The `--out` path.
        path: PathBuf,
        /// Why, and what is allowed.
        reason: &'static str,
    },
    /// `latency plot --out` cannot be written.
    WritePlot {
        /// The `--out` path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The SVG plot could not be drawn.
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// The plotters error message.
        message: String,
    },
}

impl LatencyError {
    /// Returns true for bad input: an option out of range, or a file that
    /// is not a latency result. The command exits with status 2 for these,
    /// and 1 for a run that failed.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidRate { .. }
                | Self::InvalidDuration { .. }
                | Self::DurationOutOfRange { .. }
                | Self::InvalidCount { .. }
                | Self::RoundTooShort { .. }
                | Self::ReadJson { .. }
                | Self::ParseJson { .. }
                | Self::NotAResult { .. }
                | Self::PlotOut { .. }
        )
    }

    /// Returns what is wrong with an option's value and what is allowed,
    /// without the option and the value: clap prints those before it.
    pub fn problem(&self) -> String {
        match self {
            Self::InvalidRate { min_hz, max_hz, .. } => {
                let off = if *min_hz == 0 {
                    " (0 turns it off)"
                } else {
                    ""
                };
                format!("expected a whole number of hertz from {min_hz} to {max_hz}{off}")
            }
            Self::InvalidDuration { problem, .. } => problem.clone(),
            Self::DurationOutOfRange { min, max, .. } => format!(
                "out of range; expected a duration from {} to {}",
                crate::report::format_duration(*min),
                crate::report::format_duration(*max)
            ),
            Self::InvalidCount { min, max, .. } => {
                format!("expected a whole number from {min} to {max}")
            }
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for LatencyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidRate { option, value, .. } => {
                write!(f, "invalid rate {value:?} for {option}: {}", self.problem())
            }
            Self::InvalidDuration { option, value, .. } => {
                write!(
                    f,
                    "invalid duration {value:?} for {option}: {}",
                    self.problem()
                )
            }
            Self::DurationOutOfRange { option, value, .. } => write!(
                f,
                "duration {} for {option} is {}",
                crate::report::format_duration(*value),
                self.problem()
            ),
            Self::InvalidCount { option, value, .. } => {
                write!(
                    f,
                    "invalid value {value:?} for {option}: {}",
                    self.problem()
                )
            }
            Self::RoundTooShort {
                round,
                period,
                remedies,
            } => write!(
                f,
                "a round of {} contains fewer than ten timer periods of {}: give each round more \
                 periods with {remedies}",
                crate::report::format_duration(*round),
                crate::report::format_duration(*period)
            ),
            Self::Machine(error) => write!(f, "cannot build the simulated machine: {error}"),
            Self::Request(message) => write!(f, "cannot register a handler: {message}"),
            Self::Load(error) => write!(f, "cannot set up the --load NIC: {error}"),
            Self::Runtime(error) => write!(f, "cannot start a tokio runtime: {error}"),
            Self::DrainTimedOut {
                mechanism,
                started,
                queued,
                timeout,
            } => write!(
                f,
                "{mechanism}: only {started} of {queued} bottom halves started within {} of \
                 the timer's stop; lower --rate or --work-time, or use fewer --slots, so that \
                 the backlog drains",
                crate::report::format_duration(*timeout)
            ),
            Self::WriteJson { path, source } => {
                write!(f, "--json {}: cannot write it: {source}", path.display())
            }
            Self::ReadJson { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            Self::ParseJson { path, source } => write!(
                f,
                "{} is not a result of `irqlab latency --json`: {source}",
                path.display()
            ),
            Self::Stdout(error) => write!(f, "{error}"),
            Self::NotAResult { path, reason } => {
                write!(f, "{}: {reason}; nothing to plot", path.display())
            }
            Self::PlotOut { path, reason } => {
                write!(f, "invalid --out {}: {reason}", path.display())
            }
            Self::WritePlot { path, source } => {
                write!(f, "--out {}: cannot write it: {source}", path.display())
            }
            Self::Plot { path, message } => {
                write!(f, "cannot draw {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for LatencyError {
    /// Returns the wrapped error's own source: every message above already
    /// contains the wrapped error's, so a reporter that prints the chain
    /// would repeat it.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Machine(error) => error.source(),
            Self::Runtime(source)
            | Self::WriteJson { source, .. }
            | Self::WritePlot { source, .. }
            | Self::ReadJson { source, .. } => source.source(),
            Self::ParseJson { source, .. } => source.source(),
            Self::Stdout(error) => error.source(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LatencyError;

    /// An error whose message contains the wrapped error's does not return
    /// that error as its source, so a printed chain names it once.
    #[test]
    fn source_not_repeated() {
        let error = LatencyError::ReadJson {
            path: "result.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(error.to_string().contains("not found"), "{error}");
        assert!(std::error::Error::source(&error).is_none());
    }
}
