//! Errors of the record parsers, one enum per family of operations.
//!
//! Every parse error names the 1-based line number of the input and the
//! offending text, shortened to [`MAX_SHOWN_CHARS`] characters.

use std::fmt;

/// Maximum number of characters of offending input that an error keeps.
pub const MAX_SHOWN_CHARS: usize = 40;

/// Returns `text` cut to [`MAX_SHOWN_CHARS`] characters, with `...` appended
/// when it was cut.
pub(crate) fn shorten(text: &str) -> String {
    let mut chars = text.chars();
    // Control characters (a NUL of a binary file, an escape sequence) are
    // shown escaped, so that they reach the terminal as text.
    let kept: String = chars
        .by_ref()
        .take(MAX_SHOWN_CHARS)
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if chars.next().is_some() {
        format!("{kept}...")
    } else {
        kept
    }
}

/// An invalid `/proc/interrupts` snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcInterruptsError {
    /// The input has no line other than blank ones.
    Empty,
    /// The first non-blank line is not a `CPU0 CPU1 ...` header.
    MissingHeader {
        /// 1-based line number.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// A row has no `label:` at its start.
    MissingLabel {
        /// 1-based line number.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// A count column contains something other than a decimal `u64`.
    InvalidCount {
        /// 1-based line number.
        line: usize,
        /// The offending cell, shortened.
        text: String,
    },
    /// A count is a decimal number past `u64::MAX`.
    CountTooLarge {
        /// 1-based line number.
        line: usize,
        /// The offending cell, shortened.
        text: String,
    },
    /// A row has fewer counts than the header has CPUs, and is not a
    /// single-value row (a named row with one count and no text after it).
    TooFewCounts {
        /// 1-based line number.
        line: usize,
        /// CPUs in the header.
        expected: usize,
        /// Counts found on the row.
        found: usize,
    },
    /// A row has a number where its text columns should start, so it has
    /// more counts than the header has CPUs.
    TooManyCounts {
        /// 1-based line number.
        line: usize,
        /// CPUs in the header.
        expected: usize,
        /// The first extra cell, shortened.
        text: String,
    },
    /// Two rows of one snapshot carry the same label.
    DuplicateLabel {
        /// 1-based line number of the second row.
        line: usize,
        /// 1-based line number of the first row.
        first_line: usize,
        /// The label, without its colon.
        label: String,
    },
}

impl fmt::Display for ProcInterruptsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty input, expected a `CPU0 ...` header line"),
            Self::MissingHeader { line, text } => write!(
                f,
                "line {line}: missing header, found `{text}`, expected `CPU0 CPU1 ...`"
            ),
            Self::MissingLabel { line, text } => write!(
                f,
                "line {line}: missing row label in `{text}`, expected `LABEL:` first"
            ),
            Self::InvalidCount { line, text } => write!(
                f,
                "line {line}: invalid count `{text}`, expected a decimal number"
            ),
            Self::CountTooLarge { line, text } => write!(
                f,
                "line {line}: count `{text}` is out of range; expected at most {}, though \
                 Linux prints 32-bit counts",
                u64::MAX
            ),
            Self::TooFewCounts {
                line,
                expected,
                found,
            } => write!(
                f,
                "line {line}: too few counts, found {found}, expected {expected} (one per CPU)"
            ),
            Self::TooManyCounts {
                line,
                expected,
                text,
            } => write!(
                f,
                "line {line}: too many counts, extra `{text}` after {expected} (one per CPU)"
            ),
            Self::DuplicateLabel {
                line,
                first_line,
                label,
            } => write!(
                f,
                "line {line}: duplicate label `{label}`, first seen on line {first_line}"
            ),
        }
    }
}

impl std::error::Error for ProcInterruptsError {}

/// Two `/proc/interrupts` snapshots that cannot be diffed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffError {
    /// The snapshots have different numbers of CPU columns.
    CpuCountChanged {
        /// CPUs in the earlier snapshot.
        before: usize,
        /// CPUs in the later snapshot.
        after: usize,
    },
    /// Fewer than half of the earlier snapshot's lines appear in the later
    /// one with the same number and handlers: two machines, not one.
    MachineChanged {
        /// Lines with handlers in the earlier snapshot.
        lines: usize,
        /// Those found in the later snapshot with the same handlers.
        kept: usize,
    },
    /// The later snapshot's rows are the first rows of the earlier one,
    /// in order, and fewer: a file cut short. (A real later snapshot ends
    /// with the same architecture rows, `ERR:` or `Err:`, as the earlier.)
    LaterCutShort {
        /// Rows of the later snapshot.
        rows: usize,
        /// Rows of the earlier snapshot.
        before_rows: usize,
    },
    /// A row is single-value in one snapshot and per-CPU in the other.
    ShapeChanged {
        /// The row's label.
        label: String,
        /// 1-based line number in the later snapshot.
        line: usize,
    },
    /// A counter is lower in the later snapshot, by less than a wrap of its
    /// 32 bits explains: the snapshots are swapped or come from different
    /// boots.
    CounterWentBackwards {
        /// The row's label.
        label: String,
        /// 1-based line number in the later snapshot.
        line: usize,
        /// The CPU column, or `None` for a single-value row.
        cpu: Option<usize>,
        /// The earlier value.
        before: u64,
        /// The later value.
        after: u64,
    },
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CpuCountChanged { before, after } => write!(
                f,
                "cpu count changed from {before} to {after}, expected snapshots of one machine"
            ),
            Self::MachineChanged { lines, kept } => write!(
                f,
                "only {kept} of the earlier snapshot's {lines} lines appear in the later one with \
                 the same handlers, expected snapshots of one machine"
            ),
            Self::LaterCutShort { rows, before_rows } => write!(
                f,
                "the later snapshot ends after {rows} of the earlier's {before_rows} rows, \
                 in the same order; was it cut short?"
            ),
            Self::ShapeChanged { label, line } => write!(
                f,
                "row `{label}` (line {line}): single-value in one snapshot and per-cpu in the other"
            ),
            Self::CounterWentBackwards {
                label,
                line,
                cpu,
                before,
                after,
            } => {
                write!(f, "row `{label}` (line {line})")?;
                if let Some(cpu) = cpu {
                    write!(f, " cpu{cpu}")?;
                }
                write!(
                    f,
                    ": counter went backwards from {before} to {after}, which no wrap of a \
                     32-bit count explains; expected the earlier snapshot first, both from one \
                     boot"
                )
            }
        }
    }
}

impl std::error::Error for DiffError {}

/// A rate requested over an interval that is not a positive finite number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateError {
    /// The interval in seconds is zero, negative, infinite or NaN.
    InvalidInterval(f64),
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInterval(secs) => write!(
                f,
                "invalid interval {secs} s, expected a positive finite number of seconds"
            ),
        }
    }
}

impl std::error::Error for RateError {}

/// An invalid line of ftrace text output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FtraceError {
    /// No `[CPU]` column, such as `[001]`, after the task.
    MissingCpu {
        /// 1-based line number.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// The task column does not end in `-PID`, or its `(TGID)` is invalid.
    InvalidTaskPid {
        /// 1-based line number.
        line: usize,
        /// The task column, shortened.
        text: String,
    },
    /// The flags column is not 4 to 7 characters long.
    InvalidFlags {
        /// 1-based line number.
        line: usize,
        /// The flags cell, shortened.
        text: String,
    },
    /// The timestamp is not `SECONDS.FRACTION:` with 1 to 9 fraction digits.
    InvalidTimestamp {
        /// 1-based line number.
        line: usize,
        /// The timestamp cell, shortened.
        text: String,
    },
    /// The event name is not followed by a colon.
    MissingEventColon {
        /// 1-based line number.
        line: usize,
        /// The text after the timestamp, shortened.
        text: String,
    },
    /// A timestamp is earlier than the previous one of the same CPU.
    TimestampWentBackwards {
        /// 1-based line number.
        line: usize,
        /// The CPU whose events went back in time.
        cpu: u32,
        /// 1-based line number of that CPU's previous event.
        previous_line: usize,
    },
    /// A known event has a field that is missing or invalid.
    InvalidField {
        /// 1-based line number.
        line: usize,
        /// The event name.
        event: String,
        /// The event's fields, shortened.
        text: String,
        /// The expected form of the fields.
        expected: &'static str,
    },
}

impl fmt::Display for FtraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCpu { line, text } => write!(
                f,
                "line {line}: missing cpu column in `{text}`, expected `TASK-PID [CPU] ...`"
            ),
            Self::InvalidTaskPid { line, text } => write!(
                f,
                "line {line}: invalid task `{text}`, expected `NAME-PID` and an optional `(TGID)`"
            ),
            Self::InvalidFlags { line, text } => write!(
                f,
                "line {line}: invalid flags `{text}`, expected 4 to 7 characters"
            ),
            Self::InvalidTimestamp { line, text } => write!(
                f,
                "line {line}: invalid timestamp `{text}`, expected `SECONDS.FRACTION:`"
            ),
            Self::MissingEventColon { line, text } => write!(
                f,
                "line {line}: missing colon after the event name in `{text}`, expected `NAME: FIELDS`"
            ),
            Self::TimestampWentBackwards {
                line,
                cpu,
                previous_line,
            } => write!(
                f,
                "line {line}: timestamp earlier than cpu {cpu}'s event on line {previous_line}, \
                 expected each cpu's events in time order"
            ),
            Self::InvalidField {
                line,
                event,
                text,
                expected,
            } => write!(
                f,
                "line {line}: invalid {event} fields `{text}`, expected {expected}"
            ),
        }
    }
}

impl std::error::Error for FtraceError {}
