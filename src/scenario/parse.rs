//! TOML to [`Scenario`]: deserialization into raw tables that keep each
//! value's position, then checks that name the file, line and key.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::{
    ArrivalSpec, CpuMode, DeviceKind, DeviceSpec, LineSpec, MachineSpec, Overrides, SYSTEM_QUEUES,
    Scenario, TimerKind, TimerSpec, Trigger, WorkqueueSpec,
};
use crate::record::ftrace::Trace;

/// Maximum duration of a run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Highest event rate of one timer or device, per second.
pub const MAX_RATE_HZ: f64 = 1_000_000.0;

/// Most devices in one scenario. Each runs an arrival thread and has its
/// line's histograms, about 370 KB of memory in all, and a large server's
/// `/proc/interrupts` lists a few thousand lines at most.
pub const MAX_DEVICES: usize = 4096;

/// Lowest event rate of one device, per second: one event a day, so that
/// every gap fits a run.
pub const MIN_RATE_HZ: f64 = 1.0 / 86_400.0;

/// Longest CPU time a generic device's bottom half may spend per run.
const MAX_WORK: Duration = Duration::from_secs(1);

/// The arrival processes a device may use.
const PROCESSES: [&str; 4] = ["periodic", "poisson", "bursts", "replay"];

/// Largest top-half budget of a line: a thousand times the default, far
/// beyond any top half, so that a larger value is a unit slip ("2s" for
/// "2us").
const MAX_BUDGET: Duration = Duration::from_millis(100);

/// Shortest housekeeping period of a tick, the kernel's jiffy at HZ=1000.
const MIN_HOUSEKEEPING: Duration = Duration::from_millis(1);

/// Maximum service time of a block request.
const MAX_SERVICE_TIME: Duration = Duration::from_secs(10);

/// The kernel names of the system queues, which reports show and which no
/// scenario queue may take.
const SYSTEM_QUEUE_NAMES: [&str; 4] = ["events", "events_highpri", "events_long", "events_unbound"];

/// Largest `max_active` of a queue, as the kernel's `WQ_MAX_ACTIVE`.
const MAX_ACTIVE: i64 = 512;

/// An error that rejects a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScenarioError {
    /// The file could not be read.
    Read {
        /// The path.
        source_name: String,
        /// The operating system's error message.
        error: String,
    },
    /// An override from the command line is out of range.
    Override {
        /// The option, as `--cpus`.
        option: &'static str,
        /// The value given.
        value: String,
        /// The values that are allowed.
        allowed: String,
    },
    /// The text is not a valid scenario.
    Invalid {
        /// The path, or the built-in demo's name.
        source_name: String,
        /// 1-based line of the offending value.
        line: usize,
        /// 1-based column of the offending value.
        column: usize,
        /// The key's path, as `device[2].arrival.rate`; empty when the
        /// TOML itself does not parse.
        key: String,
        /// The problem, and the values that are allowed.
        message: String,
        /// The offending line of the file, for the message.
        excerpt: String,
    },
    /// Several problems of one file, each an `Invalid`, in file order.
    Several(Vec<ScenarioError>),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { source_name, error } => {
                write!(f, "cannot read scenario {source_name}: {error}")
            }
            Self::Override {
                option,
                value,
                allowed,
            } => write!(f, "{option} {value}: out of range; expected {allowed}"),
            Self::Invalid {
                source_name,
                line,
                column,
                key,
                message,
                excerpt,
            } => {
                write!(f, "{source_name}:{line}:{column}: ")?;
                if !key.is_empty() {
                    write!(f, "{key}: ")?;
                }
                write!(f, "{message}")?;
                if !excerpt.is_empty() {
                    write!(f, "\n  {line:>4} | {excerpt}")?;
                }
                Ok(())
            }
            Self::Several(errors) => {
                for error in errors {
                    writeln!(f, "{error}")?;
                }
                let source = errors.iter().find_map(|error| match error {
                    Self::Invalid { source_name, .. } => Some(source_name.as_str()),
                    _ => None,
                });
                write!(
                    f,
                    "{} errors in {}",
                    errors.len(),
                    source.unwrap_or("the scenario")
                )
            }
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A text that [`parse_duration`] rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    /// The text, trimmed.
    pub value: String,
    /// The fault and the accepted forms, without the value. A command-line
    /// parser that names the value prints this part alone.
    pub problem: String,
    /// The text is a duration, but a negative one or one too long for any
    /// clock: a caller gives the range it accepts.
    pub out_of_range: bool,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" is {}", self.value, self.problem)
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration written with a unit: `500ns`, `20us` (or `20µs`),
/// `1.5ms`, `10s`, `2min` (or `2m`), `1h`, or a sum of them: `1m30s`.
/// Every duration of the command line and of scenario files goes through
/// it.
///
/// # Errors
///
/// [`DurationError`], which names the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let rejected = |problem: &str| DurationError {
        value: text.to_owned(),
        problem: problem.to_owned(),
        out_of_range: false,
    };
    let out_of_range = |problem: &str| DurationError {
        out_of_range: true,
        ..rejected(problem)
    };
    let not_a_duration = || {
        rejected(
            "not a duration; write a number and a unit: ns, us, ms, s, min or h \
             (\"250ms\", \"1.5s\", \"2min\", \"1m30s\")",
        )
    };
    if text.is_empty() {
        return Err(not_a_duration());
    }
    if text.starts_with('-') {
        return Err(out_of_range("a negative duration"));
    }
    if text.contains(',') {
        return Err(rejected(
            "not a duration; write decimals with a dot, as in \"1.5s\"",
        ));
    }
    let mut seconds = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(not_a_duration)?;
        let (number, tail) = rest.split_at(number_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "min" | "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(not_a_duration()),
        };
        let value: f64 = number.trim().parse().map_err(|_| not_a_duration())?;
        seconds += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| out_of_range("too long a duration"))
}

/// A number that TOML may write as an integer or a float.
#[derive(Clone, Copy, Debug)]
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;

        impl Visitor<'_> for NumberVisitor {
            type Value = Number;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
                Ok(Number(value as f64))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
                Ok(Number(value as f64))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Number, E> {
                Ok(Number(value))
            }
        }

        deserializer.deserialize_any(NumberVisitor)
    }
}

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<S<String>>,
    description: Option<String>,
    duration: Option<S<String>>,
    seed: Option<S<i64>>,
    machine: Option<RawMachine>,
    #[serde(default)]
    workqueue: Vec<S<RawWorkqueue>>,
    #[serde(default)]
    timer: Vec<S<RawTimer>>,
    #[serde(default)]
    device: Vec<S<RawDevice>>,
    #[serde(default)]
    line: Vec<S<RawLine>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    cpus: Option<S<i64>>,
    cpu_mode: Option<S<String>>,
    irqs: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkqueue {
    name: S<String>,
    max_active: Option<S<i64>>,
    ordered: Option<bool>,
    highpri: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimer {
    name: S<String>,
    irq: S<i64>,
    cpu: Option<S<i64>>,
    period: Option<S<String>>,
    housekeeping: Option<S<String>>,
    at: Option<S<Vec<S<String>>>>,
    workqueue: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: S<String>,
    kind: S<String>,
    irq: S<i64>,
    cpu: Option<S<i64>>,
    trigger: Option<S<String>>,
    shared: Option<S<bool>>,
    workqueue: Option<S<String>>,
    arrival: S<RawArrival>,
    // nic
    ring: Option<S<i64>>,
    napi_budget: Option<S<i64>>,
    // uart
    line_length: Option<S<i64>>,
    trigger_level: Option<S<i64>>,
    baud: Option<S<i64>>,
    // block
    service_time: Option<S<String>>,
    depth: Option<S<i64>>,
    // gpio
    bounces: Option<S<i64>>,
    bounce_gap: Option<S<String>>,
    debounce: Option<S<String>>,
    // generic
    handler: Option<S<String>>,
    work: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrival {
    process: S<String>,
    rate: Option<S<Number>>,
    period: Option<S<String>>,
    on: Option<S<String>>,
    off: Option<S<String>>,
    file: Option<S<String>>,
    irq: Option<S<i64>>,
    handler: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    irq: S<i64>,
    budget: Option<S<String>>,
    overrun: Option<S<String>>,
}

/// The errors found so far in one scenario file.
#[derive(Default)]
struct Errors(Vec<ScenarioError>);

impl Errors {
    /// Returns the value of `result`, or keeps its error and returns `None`.
    fn keep<T>(&mut self, result: Result<T, ScenarioError>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// Keeps `error`, or each error of a `Several`.
    fn push(&mut self, error: ScenarioError) {
        match error {
            ScenarioError::Several(errors) => self.0.extend(errors),
            error => self.0.push(error),
        }
    }

    /// Returns `value`, or the errors kept.
    fn into_result<T>(self, value: T) -> Result<T, ScenarioError> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self.into_error())
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the one error, or all of them in file order.
    ///
    /// # Panics
    ///
    /// If no error was kept: call it only after one was.
    fn into_error(mut self) -> ScenarioError {
        self.0.sort_by_key(|error| match error {
            ScenarioError::Invalid { line, column, .. } => (*line, *column),
            _ => (0, 0),
        });
        if self.0.len() == 1 {
            return self.0.remove(0);
        }
        assert!(!self.0.is_empty(), "into_error called with no error kept");
        ScenarioError::Several(self.0)
    }
}

/// Builds errors that point into one text.
struct Checker<'a> {
    text: &'a str,
    source: &'a str,
}

impl Checker<'_> {
    fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let excerpt = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_owned();
        ScenarioError::Invalid {
            source_name: self.source.to_owned(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            excerpt,
        }
    }

    fn duration(&self, value: &S<String>, key: &str) -> Result<Duration, ScenarioError> {
        let duration = parse_duration(value.get_ref()).map_err(|error| {
            self.duration_error(value, key, &error, "longer than 0s and at most 24h")
        })?;
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "\"{}\" is out of range; expected a duration longer than 0s and at most 24h",
                    value.get_ref()
                ),
            ));
        }
        Ok(duration)
    }

    /// Returns the error for a value that is no duration. A negative or
    /// overlong one is a number out of range, so its message gives the
    /// `range`.
    fn duration_error(
        &self,
        value: &S<String>,
        key: &str,
        error: &DurationError,
        range: &str,
    ) -> ScenarioError {
        let mut message = error.to_string();
        if error.out_of_range {
            message.push_str(&format!("; expected a duration {range}"));
        }
        self.error(value.span(), key, message)
    }

    /// Reads an optional duration that must lie in `range`; no value means
    /// `default`.
    fn bounded_duration(
        &self,
        value: Option<&S<String>>,
        key: &str,
        range: std::ops::RangeInclusive<Duration>,
        default: Duration,
    ) -> Result<Duration, ScenarioError> {
        let Some(value) = value else {
            return Ok(default);
        };
        // One range in the message, whichever bound the value breaks.
        let duration = parse_duration(value.get_ref()).map_err(|error| {
            let range = format!(
                "from {} to {}",
                crate::report::format_duration(*range.start()),
                crate::report::format_duration(*range.end())
            );
            self.duration_error(value, key, &error, &range)
        })?;
        if range.contains(&duration) {
            return Ok(duration);
        }
        Err(self.error(
            value.span(),
            key,
            format!(
                "\"{}\" is out of range; expected a duration from {} to {}",
                value.get_ref(),
                crate::report::format_duration(*range.start()),
                crate::report::format_duration(*range.end())
            ),
        ))
    }

    fn optional_duration(
        &self,
        value: Option<&S<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ScenarioError> {
        value.map_or(Ok(default), |value| self.duration(value, key))
    }

    fn integer(
        &self,
        value: &S<i64>,
        key: &str,
        range: Range<i64>,
        what: &str,
    ) -> Result<i64, ScenarioError> {
        let number = *value.get_ref();
        if range.contains(&number) {
            Ok(number)
        } else {
            Err(self.error(
                value.span(),
                key,
                format!(
                    "{number} is out of range; {what} must be from {} to {}",
                    range.start,
                    range.end - 1
                ),
            ))
        }
    }

    /// Checks a reference to a queue; no value means `system_wq`.
    fn queue(
        &self,
        value: Option<&S<String>>,
        key: &str,
        names: &[&str],
    ) -> Result<String, ScenarioError> {
        let Some(value) = value else {
            return Ok("system_wq".to_owned());
        };
        if names.contains(&value.get_ref().as_str()) {
            return Ok(value.get_ref().clone());
        }
        let queue = value.get_ref().as_str();
        let hint = closest_name(queue, names)
            .map_or(String::new(), |name| format!(" (did you mean \"{name}\"?)"));
        Err(self.error(
            value.span(),
            key,
            format!(
                "no workqueue is named \"{queue}\"{hint}; use one of {}, or declare it \
                 in a [[workqueue]] table",
                names.join(", ")
            ),
        ))
    }

    fn choice<'v>(
        &self,
        value: &'v S<String>,
        key: &str,
        allowed: &[&str],
    ) -> Result<&'v str, ScenarioError> {
        let text = value.get_ref().as_str();
        if allowed.contains(&text) {
            Ok(text)
        } else {
            let hint = closest_name(text, allowed)
                .map_or(String::new(), |name| format!(" (did you mean \"{name}\"?)"));
            let allowed: Vec<String> = allowed.iter().map(|name| format!("\"{name}\"")).collect();
            Err(self.error(
                value.span(),
                key,
                format!(
                    "\"{text}\" is not allowed{hint}; use one of {}",
                    allowed.join(", ")
                ),
            ))
        }
    }
}

/// Returns the key path of the key or value at `offset`, in the form the
/// other messages use (`device[0].arrival.rate`). The path joins the table
/// from the headers above it, the key of its line and, inside an inline
/// table, the inner key at or before it. An offset on a table header gives
/// the table.
fn key_path_at(text: &str, offset: usize) -> String {
    let offset = (0..=offset.min(text.len()))
        .rev()
        .find(|at| text.is_char_boundary(*at))
        .unwrap_or(0);
    let line_start = text[..offset].rfind('\n').map_or(0, |at| at + 1);
    let line_end = text[offset..]
        .find('\n')
        .map_or(text.len(), |at| offset + at);

    let mut table = String::new();
    let mut arrays: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text[..line_end].lines() {
        let line = line.trim();
        // Up to the first `]`, so that an unclosed header still names its
        // table.
        if let Some(name) = line
            .strip_prefix("[[")
            .and_then(|rest| rest.split(']').next())
        {
            let count = arrays.entry(name.trim()).or_default();
            table = format!("{}[{count}]", name.trim());
            *count += 1;
        } else if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.split(']').next())
        {
            // `[device.arrival]` is a table of the last `[[device]]`.
            let name = name.trim();
            let (first, rest) = name.split_once('.').unwrap_or((name, ""));
            table = match arrays.get(first) {
                Some(count) if *count > 0 && !rest.is_empty() => {
                    format!("{first}[{}].{rest}", count - 1)
                }
                _ => name.to_owned(),
            };
        }
    }
    let line = &text[line_start..line_end];
    if line.trim_start().starts_with('[') {
        return table;
    }

    let is_key = |key: &str| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let mut keys: Vec<&str> = Vec::new();
    if let Some((key, _)) = line.split_once('=')
        && is_key(key.trim())
    {
        keys.push(key.trim());
    }
    let before = &text[line_start..offset];
    if let Some(open) = before.find('{') {
        // The entry of the inline table that the offset is in: its key is
        // written before the offset, or starts at it.
        let entry = before[open + 1..].rsplit([',', '{']).next().unwrap_or("");
        let inner = match entry.split_once('=') {
            Some((key, _)) => key.trim(),
            None => text[offset..line_end]
                .split(|c: char| c == '=' || c.is_whitespace())
                .next()
                .unwrap_or(""),
        };
        if is_key(inner) {
            keys.push(inner);
        }
    }
    std::iter::once(table.as_str())
        .chain(keys)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// Returns the range of an integer key, by the last part of its path, for
/// a message about a value of the wrong type.
fn allowed_integers(key: &str) -> Option<String> {
    let last = key.rsplit('.').next()?;
    Some(match last {
        "cpus" => format!("1 to {}", irq_sim::machine::MAX_CPUS),
        "irqs" => format!("1 to {}", irq_sim::machine::MAX_IRQS),
        "cpu" => "a CPU number from 0".to_owned(),
        "irq" => "a line number from 0".to_owned(),
        "seed" => "0 to 2^63-1".to_owned(),
        "trigger_level" => format!("1 to {}", irq_sim::device::UART_FIFO_SIZE),
        "baud" => format!(
            "{} to {}",
            irq_sim::device::MIN_BAUD,
            irq_sim::device::MAX_BAUD
        ),
        "max_active" | "ring" | "napi_budget" | "line_length" | "depth" | "bounces" => {
            "a whole number".to_owned()
        }
        _ => return None,
    })
}

/// Returns the name in `names` that a typo of `written` could explain: the
/// nearest, within one edit in three characters (at least one edit).
fn closest_name<'a>(written: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|name| (strsim::damerau_levenshtein(written, name), *name))
        .filter(|(edits, name)| *edits <= (name.len() / 3).max(1))
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, name)| name)
}

/// Rewords serde's complaint about an unknown key: the closest allowed key
/// when one is close, then all of them.
fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let allowed: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let hint = closest_name(field, &allowed)
        .map_or(String::new(), |key| format!("; did you mean `{key}`?"));
    let kind_keys = || KIND_KEYS.iter().flat_map(|(_, keys)| keys.iter());
    let is_device = kind_keys().all(|key| allowed.contains(key));
    let listing = if allowed.is_empty() {
        "this table takes no keys".to_owned()
    } else if is_device {
        // A device's keys depend on its kind, which serde does not know
        // here: list the common keys, then each kind's own.
        let common: Vec<&str> = allowed
            .iter()
            .copied()
            .filter(|key| !kind_keys().any(|own| own == key))
            .collect();
        let per_kind: Vec<String> = KIND_KEYS
            .iter()
            .map(|(kind, keys)| format!("{kind}: {}", keys.join(", ")))
            .collect();
        format!(
            "every device takes {}, and its kind adds its own; {}",
            common.join(", "),
            per_kind.join("; ")
        )
    } else {
        format!("the keys here are {}", allowed.join(", "))
    };
    Some(format!("unknown key `{field}`{hint} ({listing})"))
}

/// Rewords serde's messages in the words of a scenario file: TOML types
/// rather than Rust ones, keys rather than fields, and the table syntax a
/// sequence needs.
fn plain_message(message: &str) -> String {
    if let Some(text) = unknown_key(message) {
        return text;
    }
    if let Some(number) = message
        .strip_prefix("invalid type: integer `")
        .and_then(|rest| rest.split_once("` as i128"))
        .map(|(number, _)| number)
    {
        let bound = if number.starts_with('-') {
            "at least -2^63"
        } else {
            "at most 2^63-1"
        };
        return format!("{number} is out of range; integers here are {bound}");
    }
    // An integer past 2^63-1, which TOML cannot hold.
    if let Some(number) = message
        .strip_prefix("invalid value: integer `")
        .and_then(|rest| rest.split_once("`, expected i64"))
        .map(|(number, _)| number)
    {
        return format!("{number} is out of range; integers here are at most 2^63-1");
    }
    // A value where a table of keys is expected: serde names our struct.
    if let Some((found, _)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected struct Raw"))
    {
        return format!("invalid type: {found}, expected a table of keys");
    }
    if let Some(key) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return match key {
            "process" => format!(
                "missing key `process`: one of \"{}\"",
                PROCESSES.join("\", \"")
            ),
            "kind" => format!(
                "missing key `kind`: one of \"{}\"",
                KIND_KEYS.map(|(kind, _)| kind).join("\", \"")
            ),
            "irq" => {
                "missing key `irq`: the line number, from 0 to one below `machine.irqs`".to_owned()
            }
            "arrival" => "missing key `arrival`: an inline table such as \
                          { process = \"poisson\", rate = 100 }"
                .to_owned(),
            _ => format!("missing key `{key}`"),
        };
    }
    let mut text = message
        .replace("expected i64", "expected an integer")
        .replace("expected u64", "expected an integer")
        .replace("expected u32", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false");
    if text.contains("invalid type: map, expected a sequence") {
        text = "a table where an array of tables is expected: write [[device]], [[timer]], \
                [[workqueue]] or [[line]] with double brackets"
            .to_owned();
    }
    if text.starts_with("duplicate key") {
        text.push_str(": a key appears twice in one table; keep one");
    }
    if text.starts_with("invalid type") && text.contains("expected a string") {
        text.push_str(" (durations and names are quoted strings, like \"250ms\")");
    }
    text
}

/// Reads the top-half budget of a `[[line]]` table.
fn line_budget(
    checker: &Checker<'_>,
    value: &S<String>,
    key: &str,
) -> Result<Duration, ScenarioError> {
    const RANGE: &str = "longer than 0s and at most 100ms";
    let budget = parse_duration(value.get_ref())
        .map_err(|error| checker.duration_error(value, key, &error, RANGE))?;
    if budget.is_zero() || budget > MAX_BUDGET {
        let hint = if budget.is_zero() {
            ""
        } else {
            "; the default is 100us: did you mean us or ms?"
        };
        return Err(checker.error(
            value.span(),
            key,
            format!(
                "\"{}\" is out of range; a top half's budget is {RANGE}{hint}",
                value.get_ref()
            ),
        ));
    }
    Ok(budget)
}

pub(super) fn parse(
    text: &str,
    source: &str,
    base: &Path,
    overrides: Overrides,
) -> Result<Scenario, ScenarioError> {
    let checker = Checker { text, source };
    let raw: RawScenario = toml::from_str(text).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let key = key_path_at(text, span.start);
        let mut message = plain_message(error.message().trim_end());
        let table = key.split(['[', '.']).next().unwrap_or_default();
        if message.starts_with("duplicate key") && table == "machine" {
            message = "the file has two machine tables; keep one [machine]".to_owned();
        } else if key.starts_with("machine[") {
            // serde reads a struct from a sequence too, field by field, so
            // `[[machine]]` fails on the first field's type.
            message = "[[machine]] makes an array of tables, and a scenario has one machine: \
                       write [machine] with single brackets"
                .to_owned();
        } else if message.starts_with("duplicate key")
            && ARRAYS.contains(&table)
            && !key.contains('.')
        {
            message = format!(
                "[{table}] and [[{table}]] mixed: write [[{table}]] with double brackets for \
                 every {table}"
            );
        } else if message.starts_with("missing key `name`") {
            let example = match table {
                "workqueue" => "nic_rx",
                "timer" => "tick",
                _ => "eth0",
            };
            message = format!("missing key `name`: a name for the report, such as \"{example}\"");
        } else if let Some(top) = TOP_LEVEL
            .iter()
            .find(|top| message.starts_with(&format!("unknown key `{top}`")))
            .filter(|_| !key.is_empty())
        {
            message.push_str(&format!(
                "; `{top}` is a top-level key: put it above the first [table] or [[table]]"
            ));
        } else if let Some(allowed) =
            allowed_integers(&key).filter(|allowed| allowed.contains(" to "))
            && let Some((number, _)) = message.split_once(" is out of range; integers here")
        {
            message = format!("{number} is out of range; expected {allowed}");
        } else if key.ends_with("arrival") && message.ends_with("expected a table of keys") {
            message = format!(
                "{message}: an inline table such as {{ process = \"poisson\", rate = 100 }}, \
                 with `process` one of \"{}\"",
                PROCESSES.join("\", \"")
            );
        } else if message.starts_with("invalid type")
            && let Some(allowed) = allowed_integers(&key)
        {
            let quotes = if message.starts_with("invalid type: string") {
                ", written without quotes"
            } else {
                ""
            };
            message.push_str(&format!(" ({allowed}{quotes})"));
        } else if message.starts_with("invalid type: string") && message.ends_with("a number") {
            message.push_str(", written without quotes");
        }
        checker.error(span, key, message)
    })?;

    let name = raw
        .name
        .as_ref()
        .map(|name| name.get_ref().clone())
        .unwrap_or_else(|| {
            Path::new(source).file_stem().map_or_else(
                || source.to_owned(),
                |stem| stem.to_string_lossy().into_owned(),
            )
        });
    if let Some(cpus) = overrides.cpus
        && !(1..=irq_sim::machine::MAX_CPUS).contains(&cpus)
    {
        return Err(ScenarioError::Override {
            option: "--cpus",
            value: cpus.to_string(),
            allowed: format!("1 to {}", irq_sim::machine::MAX_CPUS),
        });
    }

    // Errors past the TOML's own are gathered, so that a file with several
    // mistakes gets them all in one run. The gathering stops where later
    // checks depend on a section that failed: the machine, the workqueues,
    // the device count, and each timer and device for the checks of names
    // and lines.
    let mut errors = Errors::default();
    let duration = match &raw.duration {
        // `Checker::duration` bounds it to 24 hours.
        Some(value) => errors.keep(checker.duration(value, "duration")),
        None => Some(Duration::from_secs(5)),
    };
    let seed = match &raw.seed {
        Some(value) => errors.keep(u64::try_from(*value.get_ref()).map_err(|_| {
            checker.error(
                value.span(),
                "seed",
                format!("{} is out of range; expected 0 to 2^63-1", value.get_ref()),
            )
        })),
        None => Some(1),
    };
    let machine = errors.keep(machine(&checker, raw.machine.as_ref()));
    let workqueues = errors.keep(workqueues(&checker, &raw.workqueue));
    let (Some(mut machine), Some(workqueues)) = (machine, workqueues) else {
        return Err(errors.into_error());
    };
    let cpus = CpuCount {
        count: overrides.cpus.unwrap_or(machine.cpus),
        from_command_line: overrides.cpus.is_some(),
    };
    machine.cpus = cpus.count;
    let queue_names: Vec<&str> = SYSTEM_QUEUES
        .iter()
        .copied()
        .chain(workqueues.iter().map(|queue| queue.name.as_str()))
        .collect();
    let timers: Vec<TimerSpec> = raw
        .timer
        .iter()
        .enumerate()
        .filter_map(|(index, timer)| {
            let timer = self::timer(
                &checker,
                index,
                timer.get_ref(),
                &machine,
                cpus,
                &queue_names,
            );
            errors.keep(timer)
        })
        .collect();
    if let Some(first_over) = raw.device.get(MAX_DEVICES) {
        errors.push(checker.error(
            first_over.span(),
            format!("device[{MAX_DEVICES}]"),
            format!(
                "{} devices, but a scenario takes at most {MAX_DEVICES}: each device runs an \
                 arrival thread of its own",
                raw.device.len()
            ),
        ));
        return Err(errors.into_error());
    }
    let devices: Vec<DeviceSpec> = raw
        .device
        .iter()
        .enumerate()
        .filter_map(|(index, device)| {
            let device = self::device(
                &checker,
                index,
                device.get_ref(),
                &machine,
                cpus,
                base,
                &queue_names,
            );
            errors.keep(device)
        })
        .collect();
    let (Some(duration), Some(seed)) = (duration, seed) else {
        return Err(errors.into_error());
    };
    if !errors.is_empty() {
        return Err(errors.into_error());
    }

    check_names(&checker, &raw)?;
    check_line_users(&checker, &raw, &timers, &devices)?;
    let lines = lines(&checker, &raw.line, &timers, &devices, machine.irqs)?;
    if timers.is_empty() && devices.is_empty() {
        return Err(checker.error(
            0..0,
            "",
            "the scenario has no [[timer]] and no [[device]], so nothing would interrupt; \
             add at least one (docs/scenarios.md shows how)",
        ));
    }

    Ok(Scenario {
        source: source.to_owned(),
        name,
        description: raw.description.clone().unwrap_or_default(),
        duration,
        seed,
        machine,
        workqueues,
        timers,
        devices,
        lines,
    })
}

/// Checks the timer at `index` of the file.
fn timer(
    checker: &Checker<'_>,
    index: usize,
    timer: &RawTimer,
    machine: &MachineSpec,
    cpus: CpuCount,
    queue_names: &[&str],
) -> Result<TimerSpec, ScenarioError> {
    let key = |field: &str| format!("timer[{index}].{field}");
    let irq = line_number(checker, &timer.irq, &key("irq"), machine.irqs)?;
    let cpu = cpu_number(checker, timer.cpu.as_ref(), &key("cpu"), cpus)?;
    let kind = match (&timer.period, &timer.at) {
        (Some(period), None) => {
            let period = checker.duration(period, &key("period"))?;
            if period.as_secs_f64() < 1.0 / MAX_RATE_HZ {
                return Err(checker.error(
                    timer.period.as_ref().map_or(0..0, Spanned::span),
                    key("period"),
                    "must be at least 1us (a tick faster than 1 MHz)",
                ));
            }
            let housekeeping = checker.bounded_duration(
                timer.housekeeping.as_ref(),
                &key("housekeeping"),
                MIN_HOUSEKEEPING..=MAX_DURATION,
                Duration::from_millis(100),
            )?;
            TimerKind::Periodic {
                period,
                housekeeping,
            }
        }
        (None, Some(at)) => {
            if let Some(housekeeping) = &timer.housekeeping {
                return Err(checker.error(
                    housekeeping.span(),
                    key("housekeeping"),
                    "is for periodic timers (with `period`); a one-shot timer queues one \
                         work item per expiry",
                ));
            }
            let mut offsets = Vec::new();
            for (at_index, value) in at.get_ref().iter().enumerate() {
                let offset = parse_duration(value.get_ref()).map_err(|error| {
                    checker.error(
                        value.span(),
                        format!("{}[{at_index}]", key("at")),
                        error.to_string(),
                    )
                })?;
                if offsets.last().is_some_and(|last| offset <= *last) {
                    return Err(checker.error(
                        value.span(),
                        format!("{}[{at_index}]", key("at")),
                        "expiries must increase",
                    ));
                }
                offsets.push(offset);
            }
            if offsets.is_empty() {
                return Err(checker.error(at.span(), key("at"), "needs at least one expiry"));
            }
            TimerKind::Oneshot { at: offsets }
        }
        (Some(period), Some(_)) => {
            return Err(checker.error(
                period.span(),
                key("period"),
                "a timer has either `period` (periodic) or `at` (one-shot), not both",
            ));
        }
        (None, None) => {
            return Err(checker.error(
                timer.name.span(),
                format!("timer[{index}]"),
                "needs `period = \"4ms\"` (periodic) or `at = [\"10ms\", ...]` (one-shot)",
            ));
        }
    };
    Ok(TimerSpec {
        name: timer.name.get_ref().clone(),
        irq,
        cpu,
        kind,
        workqueue: checker.queue(timer.workqueue.as_ref(), &key("workqueue"), queue_names)?,
    })
}

fn machine(checker: &Checker<'_>, raw: Option<&RawMachine>) -> Result<MachineSpec, ScenarioError> {
    let mut machine = MachineSpec {
        cpus: 2,
        cpu_mode: CpuMode::Blocking,
        irqs: 1024,
    };
    let Some(raw) = raw else {
        return Ok(machine);
    };
    if let Some(cpus) = &raw.cpus {
        let max = i64::try_from(irq_sim::machine::MAX_CPUS).unwrap_or(i64::MAX);
        machine.cpus = checker.integer(
            cpus,
            "machine.cpus",
            1..max + 1,
            "the number of simulated CPUs",
        )? as usize;
    }
    if let Some(mode) = &raw.cpu_mode {
        machine.cpu_mode =
            match checker.choice(mode, "machine.cpu_mode", &["blocking", "busy-poll"])? {
                "blocking" => CpuMode::Blocking,
                _ => CpuMode::BusyPoll,
            };
    }
    if let Some(irqs) = &raw.irqs {
        let max = i64::from(irq_sim::machine::MAX_IRQS);
        machine.irqs =
            checker.integer(irqs, "machine.irqs", 1..max + 1, "the number of IRQ lines")? as u32;
    }
    Ok(machine)
}

fn workqueues(
    checker: &Checker<'_>,
    raw: &[S<RawWorkqueue>],
) -> Result<Vec<WorkqueueSpec>, ScenarioError> {
    let mut queues: Vec<WorkqueueSpec> = Vec::new();
    let mut errors = Errors::default();
    for (index, queue) in raw.iter().enumerate() {
        if let Some(queue) = errors.keep(workqueue(checker, index, queue.get_ref(), &queues)) {
            queues.push(queue);
        }
    }
    errors.into_result(queues)
}

/// Checks the `[[workqueue]]` at `index` of the file, against the queues
/// checked before it.
fn workqueue(
    checker: &Checker<'_>,
    index: usize,
    queue: &RawWorkqueue,
    earlier: &[WorkqueueSpec],
) -> Result<WorkqueueSpec, ScenarioError> {
    let key = |field: &str| format!("workqueue[{index}].{field}");
    let name = queue.name.get_ref();
    if name.is_empty() {
        return Err(checker.error(queue.name.span(), key("name"), "must not be empty"));
    }
    if SYSTEM_QUEUES.contains(&name.as_str()) || SYSTEM_QUEUE_NAMES.contains(&name.as_str()) {
        return Err(checker.error(
            queue.name.span(),
            key("name"),
            format!(
                "\"{name}\" is a system queue's name (reports show system_wq as \"events\", \
                 as the kernel does); choose another name"
            ),
        ));
    }
    if earlier.iter().any(|other| other.name == *name) {
        return Err(checker.error(
            queue.name.span(),
            key("name"),
            format!("a workqueue named \"{name}\" is declared twice"),
        ));
    }
    let ordered = queue.ordered.unwrap_or(false);
    let max_active = match &queue.max_active {
        Some(value) => {
            let max_active =
                checker.integer(value, &key("max_active"), 1..MAX_ACTIVE + 1, "max_active")?;
            if ordered && max_active != 1 {
                return Err(checker.error(
                    value.span(),
                    key("max_active"),
                    "an ordered queue runs one item at a time; leave max_active out or set it to 1",
                ));
            }
            max_active as u32
        }
        None if ordered => 1,
        None => 4,
    };
    Ok(WorkqueueSpec {
        name: name.clone(),
        max_active,
        ordered,
        highpri: queue.highpri.unwrap_or(false),
    })
}

fn line_number(
    checker: &Checker<'_>,
    value: &S<i64>,
    key: &str,
    irqs: u32,
) -> Result<u32, ScenarioError> {
    let irq = *value.get_ref();
    if (0..i64::from(irqs)).contains(&irq) {
        Ok(irq as u32)
    } else {
        Err(checker.error(
            value.span(),
            key,
            format!(
                "line {irq} does not exist; the machine has lines 0 to {} (raise machine.irqs for more)",
                irqs - 1
            ),
        ))
    }
}

/// The machine's CPU count and where it comes from.
#[derive(Clone, Copy)]
struct CpuCount {
    count: usize,
    /// Set by `--cpus` rather than by the file.
    from_command_line: bool,
}

fn cpu_number(
    checker: &Checker<'_>,
    value: Option<&S<i64>>,
    key: &str,
    cpus: CpuCount,
) -> Result<usize, ScenarioError> {
    let Some(value) = value else {
        return Ok(0);
    };
    let cpu = *value.get_ref();
    if (0..cpus.count as i64).contains(&cpu) {
        return Ok(cpu as usize);
    }
    let has = match cpus.count {
        1 => "CPU 0 only".to_owned(),
        count => format!("CPUs 0 to {}", count - 1),
    };
    let machine = if cpus.from_command_line {
        format!("--cpus {} gives the machine {has}", cpus.count)
    } else {
        format!("the machine has {has}")
    };
    Err(checker.error(
        value.span(),
        key,
        format!("CPU {cpu} does not exist; {machine}"),
    ))
}

/// The keys of the file itself, which TOML puts in the last table opened
/// above them.
const TOP_LEVEL: [&str; 4] = ["name", "description", "duration", "seed"];

/// The keys that hold arrays of tables.
const ARRAYS: [&str; 4] = ["workqueue", "timer", "device", "line"];

/// The keys each device kind takes besides the common ones.
const KIND_KEYS: [(&str, &[&str]); 5] = [
    ("nic", &["ring", "napi_budget"]),
    ("uart", &["line_length", "trigger_level", "baud"]),
    ("block", &["service_time", "depth"]),
    ("gpio", &["bounces", "bounce_gap", "debounce"]),
    ("generic", &["handler", "work"]),
];

fn device(
    checker: &Checker<'_>,
    index: usize,
    device: &RawDevice,
    machine: &MachineSpec,
    cpus: CpuCount,
    base: &Path,
    queue_names: &[&str],
) -> Result<DeviceSpec, ScenarioError> {
    let key = |field: &str| format!("device[{index}].{field}");
    let name = device.name.get_ref();
    if name.is_empty() {
        return Err(checker.error(device.name.span(), key("name"), "must not be empty"));
    }
    let kinds: Vec<&str> = KIND_KEYS.iter().map(|(kind, _)| *kind).collect();
    let kind_name = checker.choice(&device.kind, &key("kind"), &kinds)?;

    // A key of another kind is a mistake worth naming.
    let present: [(&str, Option<Range<usize>>); 12] = [
        ("ring", device.ring.as_ref().map(Spanned::span)),
        (
            "napi_budget",
            device.napi_budget.as_ref().map(Spanned::span),
        ),
        (
            "line_length",
            device.line_length.as_ref().map(Spanned::span),
        ),
        (
            "trigger_level",
            device.trigger_level.as_ref().map(Spanned::span),
        ),
        ("baud", device.baud.as_ref().map(Spanned::span)),
        (
            "service_time",
            device.service_time.as_ref().map(Spanned::span),
        ),
        ("depth", device.depth.as_ref().map(Spanned::span)),
        ("bounces", device.bounces.as_ref().map(Spanned::span)),
        ("bounce_gap", device.bounce_gap.as_ref().map(Spanned::span)),
        ("debounce", device.debounce.as_ref().map(Spanned::span)),
        ("handler", device.handler.as_ref().map(Spanned::span)),
        ("work", device.work.as_ref().map(Spanned::span)),
    ];
    let own: &[&str] = KIND_KEYS
        .iter()
        .find(|(kind, _)| *kind == kind_name)
        .map_or(&[], |(_, keys)| keys);
    for (field, span) in present {
        if let Some(span) = span
            && !own.contains(&field)
        {
            let owner = KIND_KEYS
                .iter()
                .find(|(_, keys)| keys.contains(&field))
                .map_or("another kind", |(kind, _)| kind);
            return Err(checker.error(
                span,
                key(field),
                format!(
                    "only {owner} devices take `{field}`; device \"{name}\" is a {kind_name}, \
                     which takes {}",
                    if own.is_empty() {
                        "no extra keys".to_owned()
                    } else {
                        own.join(", ")
                    }
                ),
            ));
        }
    }

    let positive = |value: Option<&S<i64>>,
                    field: &str,
                    default: i64,
                    max: i64|
     -> Result<i64, ScenarioError> {
        value.map_or(Ok(default), |value| {
            checker.integer(value, &key(field), 1..max + 1, field)
        })
    };
    let kind = match kind_name {
        "nic" => {
            let ring = positive(
                device.ring.as_ref(),
                "ring",
                256,
                irq_sim::device::MAX_RX_RING as i64,
            )? as usize;
            let napi_budget =
                positive(device.napi_budget.as_ref(), "napi_budget", 64, 65_536)? as usize;
            DeviceKind::Nic { ring, napi_budget }
        }
        "uart" => DeviceKind::Uart {
            line_length: positive(device.line_length.as_ref(), "line_length", 64, 4096)? as usize,
            trigger_level: positive(
                device.trigger_level.as_ref(),
                "trigger_level",
                1,
                irq_sim::device::UART_FIFO_SIZE as i64,
            )? as usize,
            baud: match &device.baud {
                Some(value) => checker.integer(
                    value,
                    &key("baud"),
                    i64::from(irq_sim::device::MIN_BAUD)..i64::from(irq_sim::device::MAX_BAUD) + 1,
                    "baud",
                )? as u32,
                None => 115_200,
            },
        },
        "block" => DeviceKind::Block {
            service_time: checker.bounded_duration(
                device.service_time.as_ref(),
                &key("service_time"),
                Duration::from_nanos(1)..=MAX_SERVICE_TIME,
                Duration::from_micros(200),
            )?,
            depth: positive(device.depth.as_ref(), "depth", 32, 4096)? as usize,
        },
        "gpio" => DeviceKind::Gpio {
            bounces: match &device.bounces {
                Some(value) => checker.integer(
                    value,
                    &key("bounces"),
                    0..i64::from(irq_sim::device::MAX_BOUNCES) + 1,
                    "bounces",
                )? as u32,
                None => 4,
            },
            bounce_gap: checker.optional_duration(
                device.bounce_gap.as_ref(),
                &key("bounce_gap"),
                Duration::from_micros(100),
            )?,
            debounce: checker.optional_duration(
                device.debounce.as_ref(),
                &key("debounce"),
                Duration::from_millis(5),
            )?,
        },
        _ => DeviceKind::Generic {
            handler: device
                .handler
                .as_ref()
                .map_or_else(|| name.clone(), |handler| handler.get_ref().clone()),
            work: match &device.work {
                Some(value) => {
                    let work = parse_duration(value.get_ref()).map_err(|error| {
                        checker.duration_error(value, &key("work"), &error, "from 0s to 1s")
                    })?;
                    if work > MAX_WORK {
                        return Err(checker.error(
                            value.span(),
                            key("work"),
                            format!(
                                "\"{}\" is out of range; a bottom half spends at most 1s of CPU \
                                 time per run (did you mean us or ms?)",
                                value.get_ref()
                            ),
                        ));
                    }
                    work
                }
                None => Duration::ZERO,
            },
        },
    };

    // The models' own trigger types; only a generic device chooses.
    let native = match kind_name {
        "uart" => Some(Trigger::Level),
        "generic" => None,
        _ => Some(Trigger::Edge),
    };
    let trigger = match &device.trigger {
        Some(value) => {
            let trigger = match checker.choice(value, &key("trigger"), &["edge", "level"])? {
                "edge" => Trigger::Edge,
                _ => Trigger::Level,
            };
            if let Some(native) = native
                && native != trigger
            {
                return Err(checker.error(
                    value.span(),
                    key("trigger"),
                    format!(
                        "a {kind_name} raises {} interrupts; leave trigger out or set it to \"{}\" \
                         (only generic devices choose)",
                        native.as_str(),
                        native.as_str()
                    ),
                ));
            }
            trigger
        }
        None => native.unwrap_or(Trigger::Edge),
    };
    let shared = device
        .shared
        .as_ref()
        .is_some_and(|shared| *shared.get_ref());
    if shared && !matches!(kind_name, "generic" | "uart") {
        let span = device.shared.as_ref().map_or(0..0, Spanned::span);
        return Err(checker.error(
            span,
            key("shared"),
            format!(
                "the {kind_name} driver does not share its line (its top half claims every \
                 interrupt); only uart and generic devices, whose top halves check their \
                 device, may set shared = true"
            ),
        ));
    }

    let arrival = arrival(checker, index, &device.arrival, *device.irq.get_ref(), base)?;
    // Only a speed the file gives binds the rate: files written before
    // `baud` existed keep working with the default.
    if let (DeviceKind::Uart { baud, .. }, Some(_)) = (&kind, &device.baud) {
        check_wire_speed(checker, device, &key, &arrival, *baud)?;
    }
    Ok(DeviceSpec {
        name: name.clone(),
        irq: line_number(checker, &device.irq, &key("irq"), machine.irqs)?,
        cpu: cpu_number(checker, device.cpu.as_ref(), &key("cpu"), cpus)?,
        trigger,
        shared,
        workqueue: checker.queue(device.workqueue.as_ref(), &key("workqueue"), queue_names)?,
        kind,
        arrival,
    })
}

/// Checks that a UART's arrivals fit the `baud` the file gives: with 10
/// bits a byte, bytes come at most baud / 10 a second. A replay keeps its
/// recorded times and is not checked.
fn check_wire_speed(
    checker: &Checker<'_>,
    device: &RawDevice,
    key: &dyn Fn(&str) -> String,
    arrival: &ArrivalSpec,
    baud: u32,
) -> Result<(), ScenarioError> {
    let bytes_per_sec = f64::from(baud) / 10.0;
    let rate_hz = match arrival {
        ArrivalSpec::Periodic { period } | ArrivalSpec::Bursts { period, .. } => {
            1.0 / period.as_secs_f64()
        }
        ArrivalSpec::Poisson { rate_hz } => *rate_hz,
        ArrivalSpec::Replay { .. } => return Ok(()),
    };
    // The period was rounded up to a whole nanosecond, so a rate written
    // as exactly baud / 10 comes out a hair below it.
    if rate_hz <= bytes_per_sec * (1.0 + 1e-9) {
        return Ok(());
    }
    let span = device
        .baud
        .as_ref()
        .map_or_else(|| device.arrival.span(), Spanned::span);
    Err(checker.error(
        span,
        key("baud"),
        format!(
            "{rate_hz:.0} bytes a second do not fit a {baud}-baud line, which carries \
             {bytes_per_sec:.0} at 10 bits a byte; lower the arrival rate or raise `baud`"
        ),
    ))
}

fn rate(checker: &Checker<'_>, value: &S<Number>, key: &str) -> Result<f64, ScenarioError> {
    let Number(rate) = *value.get_ref();
    let shown = if rate != 0.0 && !(1e-3..=1e7).contains(&rate.abs()) {
        format!("{rate:e}")
    } else {
        rate.to_string()
    };
    if rate.is_finite() && (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate) {
        Ok(rate)
    } else {
        Err(checker.error(
            value.span(),
            key,
            format!(
                "{shown} is not allowed; a rate is events per second, from one a day \
                 ({MIN_RATE_HZ:.2e}) to {MAX_RATE_HZ}"
            ),
        ))
    }
}

/// Reads the period of a periodic or bursts process from `rate` or
/// `period`.
fn period(
    checker: &Checker<'_>,
    raw: &RawArrival,
    key: &dyn Fn(&str) -> String,
    span: Range<usize>,
) -> Result<Duration, ScenarioError> {
    match (&raw.rate, &raw.period) {
        // Rounded up to a whole nanosecond: rounded down, a run of length
        // d would get one event more than rate x d, or one more a burst.
        (Some(rate_value), None) => Ok(Duration::from_nanos(
            (1e9 / rate(checker, rate_value, &key("rate"))?).ceil() as u64,
        )),
        (None, Some(period)) => {
            let period = checker.duration(period, &key("period"))?;
            if period.as_secs_f64() < 1.0 / MAX_RATE_HZ {
                return Err(checker.error(
                    raw.period.as_ref().map_or(0..0, Spanned::span),
                    key("period"),
                    "must be at least 1us (events faster than 1 MHz)",
                ));
            }
            Ok(period)
        }
        (Some(rate), Some(_)) => Err(checker.error(
            rate.span(),
            key("rate"),
            "give `rate` (events per second) or `period` (time between events), not both",
        )),
        (None, None) => Err(checker.error(
            span,
            key("rate"),
            "is missing; give `rate` (events per second) or `period` (time between events)",
        )),
    }
}

fn arrival(
    checker: &Checker<'_>,
    index: usize,
    raw: &S<RawArrival>,
    device_irq: i64,
    base: &Path,
) -> Result<ArrivalSpec, ScenarioError> {
    let key = |field: &str| format!("device[{index}].arrival.{field}");
    let span = raw.span();
    let raw = raw.get_ref();
    let process = checker.choice(&raw.process, &key("process"), &PROCESSES)?;
    let allowed: &[&str] = match process {
        "periodic" => &["rate", "period"],
        "poisson" => &["rate"],
        "bursts" => &["rate", "period", "on", "off"],
        _ => &["file", "irq", "handler"],
    };
    let given: [(&str, Option<Range<usize>>); 7] = [
        ("rate", raw.rate.as_ref().map(Spanned::span)),
        ("period", raw.period.as_ref().map(Spanned::span)),
        ("on", raw.on.as_ref().map(Spanned::span)),
        ("off", raw.off.as_ref().map(Spanned::span)),
        ("file", raw.file.as_ref().map(Spanned::span)),
        ("irq", raw.irq.as_ref().map(Spanned::span)),
        ("handler", raw.handler.as_ref().map(Spanned::span)),
    ];
    for (field, field_span) in given {
        if let Some(field_span) = field_span
            && !allowed.contains(&field)
        {
            return Err(checker.error(
                field_span,
                key(field),
                format!(
                    "a {process} process does not take `{field}`; it takes {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    match process {
        "periodic" => Ok(ArrivalSpec::Periodic {
            period: period(checker, raw, &key, span)?,
        }),
        "poisson" => {
            let Some(rate_value) = &raw.rate else {
                return Err(checker.error(
                    span,
                    key("rate"),
                    "is missing; a poisson process needs its mean rate in events per second",
                ));
            };
            Ok(ArrivalSpec::Poisson {
                rate_hz: rate(checker, rate_value, &key("rate"))?,
            })
        }
        "bursts" => {
            let period = period(checker, raw, &key, span.clone())?;
            let (Some(on), Some(off)) = (&raw.on, &raw.off) else {
                let missing = if raw.on.is_none() { "on" } else { "off" };
                return Err(checker.error(
                    span,
                    key(missing),
                    "is missing; a bursts process needs `on` (length of a burst) and `off` \
                     (silence between bursts)",
                ));
            };
            Ok(ArrivalSpec::Bursts {
                period,
                on: checker.duration(on, &key("on"))?,
                off: checker.duration(off, &key("off"))?,
            })
        }
        _ => {
            let Some(file) = &raw.file else {
                return Err(checker.error(
                    span,
                    key("file"),
                    "is missing; a replay process needs the ftrace text file to replay",
                ));
            };
            let irq = match &raw.irq {
                Some(value) => u32::try_from(*value.get_ref()).map_err(|_| {
                    checker.error(
                        value.span(),
                        key("irq"),
                        format!(
                            "{} is out of range; a line number is 0 or more",
                            value.get_ref()
                        ),
                    )
                })?,
                None => u32::try_from(device_irq).unwrap_or(0),
            };
            let path = base.join(file.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|error| {
                checker.error(
                    file.span(),
                    key("file"),
                    format!("cannot read {}: {error}", path.display()),
                )
            })?;
            let trace = Trace::parse(&text).map_err(|error| {
                checker.error(
                    file.span(),
                    key("file"),
                    format!("{} is not ftrace text: {error}", path.display()),
                )
            })?;
            let entries = trace.irq_entries();
            let Some(recorded) = entries.get(&irq) else {
                let lines: Vec<String> = entries.keys().map(u32::to_string).collect();
                let (span, at, line) = match &raw.irq {
                    Some(value) => (value.span(), key("irq"), format!("line {irq}")),
                    None => (
                        file.span(),
                        key("file"),
                        format!(
                            "line {irq}, the device's own (set `irq` in the arrival to replay \
                             another)"
                        ),
                    ),
                };
                return Err(checker.error(
                    span,
                    at,
                    format!(
                        "{} records no irq_handler_entry for {line}; it records lines: {}",
                        path.display(),
                        if lines.is_empty() {
                            "none".to_owned()
                        } else {
                            lines.join(", ")
                        }
                    ),
                ));
            };
            // A shared line records one entry per handler for each
            // interrupt, so `handler` picks one entry per interrupt.
            let offsets: Vec<Duration> = match &raw.handler {
                Some(handler) => recorded
                    .iter()
                    .filter(|entry| entry.name == *handler.get_ref())
                    .map(|entry| entry.since_start)
                    .collect(),
                None => recorded.iter().map(|entry| entry.since_start).collect(),
            };
            if let (Some(handler), true) = (&raw.handler, offsets.is_empty()) {
                let mut names: Vec<&str> = Vec::new();
                for entry in recorded {
                    if !names.contains(&entry.name.as_str()) {
                        names.push(&entry.name);
                    }
                }
                return Err(checker.error(
                    handler.span(),
                    key("handler"),
                    format!(
                        "{} records no irq_handler_entry named \"{}\" on line {irq}; it records: {}",
                        path.display(),
                        handler.get_ref(),
                        names.join(", ")
                    ),
                ));
            }
            Ok(ArrivalSpec::Replay {
                file: path,
                irq,
                offsets,
            })
        }
    }
}

fn check_names(checker: &Checker<'_>, raw: &RawScenario) -> Result<(), ScenarioError> {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    let names =
        raw.timer
            .iter()
            .enumerate()
            .map(|(index, timer)| (&timer.get_ref().name, format!("timer[{index}].name")))
            .chain(
                raw.device.iter().enumerate().map(|(index, device)| {
                    (&device.get_ref().name, format!("device[{index}].name"))
                }),
            );
    for (name, key) in names {
        if let Some(first) = seen.get(name.get_ref().as_str()) {
            return Err(checker.error(
                name.span(),
                key,
                format!(
                    "the name \"{}\" is already used by {first}; names must be unique",
                    name.get_ref()
                ),
            ));
        }
        seen.insert(name.get_ref(), key);
    }
    Ok(())
}

/// Checks that lines are shared only by devices that all set `shared`, with one
/// trigger type and CPU, never by a timer, and by at most
/// [`irq_sim::line_state::MAX_OUTPUTS`] level-triggered devices.
fn check_line_users(
    checker: &Checker<'_>,
    raw: &RawScenario,
    timers: &[TimerSpec],
    devices: &[DeviceSpec],
) -> Result<(), ScenarioError> {
    for (index, timer) in timers.iter().enumerate() {
        let other_timer = timers[..index].iter().find(|other| other.irq == timer.irq);
        let device = devices.iter().find(|device| device.irq == timer.irq);
        let other = other_timer
            .map(|other| format!("timer \"{}\"", other.name))
            .or_else(|| device.map(|device| format!("device \"{}\"", device.name)));
        if let Some(other) = other {
            return Err(checker.error(
                raw.timer[index].get_ref().irq.span(),
                format!("timer[{index}].irq"),
                format!(
                    "line {} is already used by {other}; a timer needs a line of its own",
                    timer.irq
                ),
            ));
        }
    }
    for (index, device) in devices.iter().enumerate() {
        let Some(first) = devices[..index]
            .iter()
            .find(|other| other.irq == device.irq)
        else {
            continue;
        };
        let span = raw.device[index].get_ref().irq.span();
        if !(first.shared && device.shared) {
            return Err(checker.error(
                span,
                format!("device[{index}].irq"),
                format!(
                    "line {} is already used by device \"{}\"; to share it, set shared = true on \
                     both (uart and generic devices only)",
                    device.irq, first.name
                ),
            ));
        }
        if first.trigger != device.trigger {
            // Points at the device's `trigger`, or at its line when it left
            // the trigger out. Only a generic device has a default to
            // change; the other kinds have one trigger type.
            let (span, key, default) = match &raw.device[index].get_ref().trigger {
                Some(trigger) => (trigger.span(), "trigger", String::new()),
                None if matches!(device.kind, DeviceKind::Generic { .. }) => {
                    (span, "irq", " (the default)".to_owned())
                }
                None => (
                    span,
                    "irq",
                    format!(" (a {}'s only trigger)", device.kind.as_str()),
                ),
            };
            return Err(checker.error(
                span,
                format!("device[{index}].{key}"),
                format!(
                    "line {} is {} for device \"{}\" and {}{default} here; devices sharing a \
                     line share its trigger type",
                    device.irq,
                    first.trigger.as_str(),
                    first.name,
                    device.trigger.as_str()
                ),
            ));
        }
        if first.cpu != device.cpu {
            // A line is routed to one CPU: the affinity of its devices.
            let (span, key, default) = match &raw.device[index].get_ref().cpu {
                Some(cpu) => (cpu.span(), "cpu", ""),
                None => (span, "irq", " (the default)"),
            };
            return Err(checker.error(
                span,
                format!("device[{index}].{key}"),
                format!(
                    "line {} goes to CPU {} for device \"{}\" and to CPU {}{default} here; \
                     devices sharing a line share its CPU",
                    device.irq, first.cpu, first.name, device.cpu
                ),
            ));
        }
        let before = devices[..index]
            .iter()
            .filter(|other| other.irq == device.irq)
            .count();
        if device.trigger == Trigger::Level && before >= irq_sim::line_state::MAX_OUTPUTS as usize {
            return Err(checker.error(
                span,
                format!("device[{index}].irq"),
                format!(
                    "line {} already has {before} level-triggered devices, and a level line \
                     takes at most {} (each drives one input of the line's wired OR); put this \
                     device on another line",
                    device.irq,
                    irq_sim::line_state::MAX_OUTPUTS
                ),
            ));
        }
    }
    Ok(())
}

fn lines(
    checker: &Checker<'_>,
    raw: &[S<RawLine>],
    timers: &[TimerSpec],
    devices: &[DeviceSpec],
    irqs: u32,
) -> Result<Vec<LineSpec>, ScenarioError> {
    let mut lines: Vec<LineSpec> = Vec::new();
    let mut errors = Errors::default();
    for (index, line) in raw.iter().enumerate() {
        let checked = self::line(
            checker,
            index,
            line.get_ref(),
            timers,
            devices,
            irqs,
            &lines,
        );
        if let Some(line) = errors.keep(checked) {
            lines.push(line);
        }
    }
    errors.into_result(lines)
}

/// Checks the `[[line]]` at `index` of the file, against the timers and
/// devices and the lines checked before it.
fn line(
    checker: &Checker<'_>,
    index: usize,
    line: &RawLine,
    timers: &[TimerSpec],
    devices: &[DeviceSpec],
    irqs: u32,
    earlier: &[LineSpec],
) -> Result<LineSpec, ScenarioError> {
    let key = |field: &str| format!("line[{index}].{field}");
    let irq = line_number(checker, &line.irq, &key("irq"), irqs)?;
    let used = timers.iter().any(|timer| timer.irq == irq)
        || devices.iter().any(|device| device.irq == irq);
    if !used {
        return Err(checker.error(
            line.irq.span(),
            key("irq"),
            format!("no timer or device uses line {irq}, so it has no top half to budget"),
        ));
    }
    if earlier.iter().any(|other| other.irq == irq) {
        return Err(checker.error(
            line.irq.span(),
            key("irq"),
            format!("line {irq} has two [[line]] tables; merge them"),
        ));
    }
    let budget = match &line.budget {
        Some(value) => line_budget(checker, value, &key("budget"))?,
        None => irq_sim::DEFAULT_BUDGET,
    };
    let overrun = match &line.overrun {
        Some(value) => {
            match checker.choice(value, &key("overrun"), &["warn", "disable", "fail"])? {
                "warn" => irq_sim::OverrunPolicy::Warn,
                "disable" => irq_sim::OverrunPolicy::Disable,
                _ => irq_sim::OverrunPolicy::Fail,
            }
        }
        None => irq_sim::OverrunPolicy::Warn,
    };
    Ok(LineSpec {
        irq,
        budget,
        overrun,
    })
}
