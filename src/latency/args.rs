//! The options of `irqlab latency` and their parsers.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::error::LatencyError;

/// Highest timer or load rate accepted. A period under 1 us is shorter than
/// one top half that queues work plus its clock reads, so every expiry would
/// find the previous one still running and the run would measure its own
/// backlog.
pub const MAX_RATE_HZ: u32 = 1_000_000;

/// Longest `--duration` accepted (one day).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Largest `--entries`: the histogram table prints one row per non-empty
/// bucket, and rtla caps its own at 10,000,000 too.
pub const MAX_ENTRIES: u64 = 10_000_000;

/// Default `--slots`.
pub const DEFAULT_SLOTS: usize = 1024;

/// Largest `--slots`: 65,536 preallocated work items add about 30 MB of
/// memory.
pub const MAX_SLOTS: usize = 65_536;

/// Measure the latency of the top-half/bottom-half split: a periodic timer
/// interrupt whose top half defers to a bottom half, per deferral
/// mechanism, beside same-run baselines (like rtla timerlat hist).
#[derive(Args, Clone, Debug, PartialEq)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LatencyArgs {
    /// Draw a result instead of measuring.
    #[command(subcommand)]
    pub command: Option<LatencyCommand>,

    /// Timer interrupt rate, in hertz (expiries per second), 1 to 1000000.
    #[arg(long, value_name = "HZ", default_value = "1000", value_parser = for_clap(parse_rate), allow_negative_numbers = true)]
    pub rate: u32,

    /// Measuring time of each column set (each mechanism and the
    /// baseline), split evenly over the rounds, as 10s, 500ms or 1min
    /// (1ms to 24h).
    #[arg(long, short = 'd', value_name = "DURATION", default_value = "10s", value_parser = for_clap(parse_duration), allow_hyphen_values = true)]
    pub duration: Duration,

    /// Deferral mechanisms to measure, comma-separated; the baseline is
    /// always measured.
    #[arg(
        long,
        short = 'm',
        value_enum,
        value_delimiter = ',',
        default_value = "system-wq,highpri-wq,ordered-wq,threaded-irq,tokio-spawn"
    )]
    pub mechanism: Vec<Mechanism>,

    /// Rounds to interleave the mechanisms and the baseline in (A, B, A,
    /// B, ...), 1 to 1000; ratios are the median over rounds.
    #[arg(long, value_name = "N", default_value = "5", value_parser = for_clap(parse_rounds), allow_hyphen_values = true)]
    pub rounds: u32,

    /// Wait method of the simulated CPU and of the cyclictest-like baseline
    /// thread until the next expiry.
    #[arg(long, value_enum, default_value = "blocking")]
    pub cpu_mode: CpuModeArg,

    /// Background interrupt load, in hertz: Poisson packet arrivals of a
    /// simulated NIC on the timer's CPU, served by a work item on
    /// system_wq; 0 turns it off, at most 1000000.
    #[arg(long, value_name = "HZ", default_value = "0", value_parser = for_clap(parse_load), allow_negative_numbers = true)]
    pub load: u32,

    /// Time each bottom half stays busy (spinning) after it started, as 0s,
    /// 50us or 1ms. One worker then serves at most 1/work-time activations
    /// a second, so a rate above that overloads the bottom half. At most
    /// 1s.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = for_clap(parse_work_time), allow_hyphen_values = true)]
    pub work_time: Duration,

    /// Activations that may wait for their bottom half at once: the work
    /// items a workqueue mechanism uses in turn, the entries of the
    /// threaded IRQ's ring, or the deadlines the baseline's task has yet
    /// to receive (tokio-spawn has no limit). One more is counted as lost.
    /// 1 to 65536; the default covers 20 ms of backlog at 50 kHz.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SLOTS, value_parser = for_clap(parse_slots), allow_hyphen_values = true)]
    pub slots: usize,

    /// Unit of the summary and the histogram table.
    #[arg(long, value_enum, default_value = "us")]
    pub unit: Unit,

    /// Width of one histogram bucket, in --unit (as rtla's --bucket-size),
    /// 1 to 1000000000.
    #[arg(long, short = 'b', value_name = "N", default_value = "1", value_parser = for_clap(parse_bucket_size), allow_hyphen_values = true)]
    pub bucket_size: u64,

    /// Number of histogram buckets (as rtla's --entries), 1 to 10000000;
    /// samples past the last bucket are counted in the `over:` row.
    #[arg(long, short = 'E', value_name = "N", default_value = "256", value_parser = for_clap(parse_entries), allow_hyphen_values = true)]
    pub entries: u64,

    /// Length of the noise-floor probe run before measuring (a thread
    /// pinned to each vCPU, spinning on the clock): 0s skips it, otherwise
    /// 100ms to 24h.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = for_clap(parse_probe), allow_hyphen_values = true)]
    pub noise_probe: Duration,

    /// Also write the result as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Subcommands of `irqlab latency`.
#[derive(Subcommand, Clone, Debug, PartialEq)]
pub enum LatencyCommand {
    /// Draw the IRQ and thread latency histograms of a JSON result as SVG.
    Plot {
        /// A file written by `irqlab latency --json`.
        #[arg(value_name = "RESULT.json")]
        result: PathBuf,
        /// The SVG file to write, or - for standard output.
        #[arg(long, short = 'o', value_name = "FILE.svg")]
        out: PathBuf,
    },
}

/// A way for a top half to defer its work to a bottom half.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// `queue_work(system_wq)`: the default system queue.
    SystemWq,
    /// `queue_work(system_highpri_wq)`: runs on its own runtime.
    HighpriWq,
    /// `queue_work` on an ordered queue (`alloc_ordered_workqueue`).
    OrderedWq,
    /// `request_threaded_irq`: the top half returns WakeThread.
    ThreadedIrq,
    /// `tokio::runtime::Handle::spawn` called in the top half.
    TokioSpawn,
}

impl Mechanism {
    /// Returns the option value naming the mechanism.
    pub fn name(self) -> &'static str {
        match self {
            Self::SystemWq => "system-wq",
            Self::HighpriWq => "highpri-wq",
            Self::OrderedWq => "ordered-wq",
            Self::ThreadedIrq => "threaded-irq",
            Self::TokioSpawn => "tokio-spawn",
        }
    }

    /// Returns the short tag of its histogram columns (`IRQ-<tag>`).
    pub fn tag(self) -> &'static str {
        match self {
            Self::SystemWq => "wq",
            Self::HighpriWq => "hipri",
            Self::OrderedWq => "ord",
            Self::ThreadedIrq => "thrd",
            Self::TokioSpawn => "spawn",
        }
    }
}

/// The way the simulated CPU and the baseline thread wait for an expiry.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuModeArg {
    /// Sleep to the deadline (timer slack 1 ns).
    Blocking,
    /// Spin to the deadline: lowest latency, one busy host CPU.
    BusyPoll,
}

/// The unit of printed figures.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds, as rtla prints by default.
    Us,
    /// Nanoseconds, as rtla prints with --nano.
    Ns,
}

impl Unit {
    /// Returns nanoseconds per unit.
    pub fn nanos(self) -> u64 {
        match self {
            Self::Us => 1_000,
            Self::Ns => 1,
        }
    }

    /// Returns the unit's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Ns => "ns",
        }
    }
}

/// Wraps a parser for clap, which names the option and the value itself:
/// the error keeps only what is wrong and what is allowed.
fn for_clap<T: 'static>(
    parse: fn(&str) -> Result<T, LatencyError>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |value| parse(value).map_err(|error| error.problem())
}

fn parse_hz(option: &'static str, value: &str, min: u32) -> Result<u32, LatencyError> {
    let invalid = || LatencyError::InvalidRate {
        option,
        value: value.to_owned(),
        min_hz: min,
        max_hz: MAX_RATE_HZ,
    };
    let hz: u32 = value.trim().parse().map_err(|_| invalid())?;
    if hz < min || hz > MAX_RATE_HZ {
        return Err(invalid());
    }
    Ok(hz)
}

/// Parses `--rate`: whole hertz from 1 to [`MAX_RATE_HZ`].
pub fn parse_rate(value: &str) -> Result<u32, LatencyError> {
    parse_hz("--rate", value, 1)
}

/// Parses `--load`: whole hertz from 0 (off) to [`MAX_RATE_HZ`].
pub fn parse_load(value: &str) -> Result<u32, LatencyError> {
    parse_hz("--load", value, 0)
}

fn parse_duration_in(
    option: &'static str,
    value: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, LatencyError> {
    let duration =
        crate::scenario::parse_duration(value).map_err(|error| LatencyError::InvalidDuration {
            option,
            value: value.to_owned(),
            // A negative or overlong value is out of range: give the range.
            problem: if error.out_of_range {
                format!(
                    "{}; expected a duration from {} to {}",
                    error.problem,
                    crate::report::format_duration(min),
                    crate::report::format_duration(max)
                )
            } else {
                error.problem
            },
        })?;
    if duration < min || duration > max {
        return Err(LatencyError::DurationOutOfRange {
            option,
            value: duration,
            min,
            max,
        });
    }
    Ok(duration)
}

/// Lists the changes that give each round more timer periods, leaving out
/// those the settings have no room for: a longer `--duration` at
/// [`MAX_DURATION`], a higher `--rate` at [`MAX_RATE_HZ`], fewer `--rounds`
/// with one round. `duration` is the measuring time of a column set.
pub fn round_remedies(duration: Duration, rate_hz: u32, rounds: u32) -> String {
    let mut remedies = Vec::new();
    if duration < MAX_DURATION {
        remedies.push("a longer --duration");
    }
    if rate_hz < MAX_RATE_HZ {
        remedies.push("a higher --rate");
    }
    if rounds > 1 {
        remedies.push("fewer --rounds");
    }
    match remedies.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        // NOTE: only a 24-hour run at 1 MHz in one round gets here.
        None => "no setting left to raise".to_owned(),
    }
}

/// Parses `--duration`: at least 1 ms, at most [`MAX_DURATION`].
pub fn parse_duration(value: &str) -> Result<Duration, LatencyError> {
    parse_duration_in("--duration", value, Duration::from_millis(1), MAX_DURATION)
}

/// Parses `--work-time`: 0s to 1 s.
pub fn parse_work_time(value: &str) -> Result<Duration, LatencyError> {
    parse_duration_in("--work-time", value, Duration::ZERO, Duration::from_secs(1))
}

/// The shortest noise-floor probe. A probe measures the host's noise only
/// over several scheduler ticks (4 ms with Linux's default HZ=250) and
/// several of a vCPU's time slices.
pub const MIN_NOISE_PROBE: Duration = Duration::from_millis(100);

/// Parses `--noise-probe`: 0s (off), or [`MIN_NOISE_PROBE`] to
/// [`MAX_DURATION`]. Every rejection names both, since a range from 0s
/// would include the probes too short to measure.
pub fn parse_probe(value: &str) -> Result<Duration, LatencyError> {
    let allowed = format!(
        "expected 0s (no probe) or a duration from {} to {}",
        crate::report::format_duration(MIN_NOISE_PROBE),
        crate::report::format_duration(MAX_DURATION)
    );
    let invalid = |problem: String| LatencyError::InvalidDuration {
        option: "--noise-probe",
        value: value.to_owned(),
        problem,
    };

    let probe = crate::scenario::parse_duration(value).map_err(|error| {
        invalid(if error.out_of_range {
            format!("{}; {allowed}", error.problem)
        } else {
            error.problem
        })
    })?;
    if probe > MAX_DURATION {
        return Err(invalid(format!("out of range; {allowed}")));
    }
    if !probe.is_zero() && probe < MIN_NOISE_PROBE {
        return Err(invalid(format!(
            "too short to see the host's noise; {allowed}"
        )));
    }
    Ok(probe)
}

fn parse_count(option: &'static str, value: &str, min: u64, max: u64) -> Result<u64, LatencyError> {
    let invalid = || LatencyError::InvalidCount {
        option,
        value: value.to_owned(),
        min,
        max,
    };
    let count: u64 = value.trim().parse().map_err(|_| invalid())?;
    if count < min || count > max {
        return Err(invalid());
    }
    Ok(count)
}

/// Parses `--bucket-size`: at least 1 (in the chosen unit), at most one
/// second in nanoseconds.
pub fn parse_bucket_size(value: &str) -> Result<u64, LatencyError> {
    parse_count("--bucket-size", value, 1, 1_000_000_000)
}

/// Parses `--entries`: 1 to [`MAX_ENTRIES`].
pub fn parse_entries(value: &str) -> Result<u64, LatencyError> {
    parse_count("--entries", value, 1, MAX_ENTRIES)
}

/// Parses `--slots`: 1 to [`MAX_SLOTS`].
pub fn parse_slots(value: &str) -> Result<usize, LatencyError> {
    parse_count("--slots", value, 1, MAX_SLOTS as u64).map(|slots| slots as usize)
}

/// Parses `--rounds`: 1 to 1,000.
pub fn parse_rounds(value: &str) -> Result<u32, LatencyError> {
    parse_count("--rounds", value, 1, 1_000).map(|rounds| rounds as u32)
}

impl LatencyArgs {
    /// Checks what the parsers cannot check alone: the values of a
    /// `LatencyArgs` built in code, and that a round contains at least ten
    /// timer periods.
    ///
    /// # Errors
    ///
    /// The [`LatencyError`] naming the first invalid option.
    pub fn validate(&self) -> Result<(), LatencyError> {
        parse_rate(&self.rate.to_string())?;
        parse_load(&self.load.to_string())?;
        parse_rounds(&self.rounds.to_string())?;
        parse_slots(&self.slots.to_string())?;
        parse_bucket_size(&self.bucket_size.to_string())?;
        parse_entries(&self.entries.to_string())?;
        parse_work_time(&format!("{}ns", self.work_time.as_nanos()))?;
        if self.duration < Duration::from_millis(1) || self.duration > MAX_DURATION {
            return Err(LatencyError::DurationOutOfRange {
                option: "--duration",
                value: self.duration,
                min: Duration::from_millis(1),
                max: MAX_DURATION,
            });
        }
        let round = self.round_length();
        let period = self.period();
        if round < period * 10 {
            return Err(LatencyError::RoundTooShort {
                round,
                period,
                remedies: round_remedies(self.duration, self.rate, self.rounds),
            });
        }
        Ok(())
    }

    /// Returns the timer period.
    pub fn period(&self) -> Duration {
        // Rounded up, so that a round of `length` counts `length` x `rate`
        // expiries. Rounded down, a period between two nanoseconds fits one
        // more: 15 at 7 Hz for 2 s, with a period of 142,857,142 ns.
        Duration::from_nanos(1_000_000_000_u64.div_ceil(u64::from(self.rate.max(1))))
    }

    /// Returns the measuring time of one column set in one round.
    pub fn round_length(&self) -> Duration {
        self.duration / self.rounds.max(1)
    }

    /// Returns the mechanisms to measure, each once, in the order given.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        let mut chosen = Vec::new();
        for mechanism in &self.mechanism {
            if !chosen.contains(mechanism) {
                chosen.push(*mechanism);
            }
        }
        chosen
    }
}
