//! `/proc/interrupts` snapshots: parsing, diffing and rates.
//!
//! A snapshot is a header of CPU columns and one row per interrupt source:
//!
//! ```text
//!            CPU0       CPU1
//!  16:         13          4  IR-IO-APIC  16-fasteoi   ehci_hcd:usb3, mmc0
//! 103:          1          0       GIC  ehci_hcd:usb1, ohci_hcd:usb2
//! LOC:   18017794    5791007   Local timer interrupts
//! ERR:          0
//! ```
//!
//! The parser takes the CPU count from the header and never from column
//! widths. A row starts with `LABEL:`, a numeric IRQ or a name. One count per
//! CPU follows, except on single-value rows (`ERR:`, `MIS:`, `Err:`): a named
//! row with exactly one count and no text after it. On a numeric row the text
//! after the counts is the chip, an optional hwirq and trigger (`2-edge`,
//! `9-fasteoi`, or `27 Level` on newer ARM kernels), then the handler names,
//! separated by `", "`. On a named row that text is a free description. A row
//! may also end right after its counts (`EXT:` and `I/O:` on s390x).
//!
//! Blank lines are skipped. Labels must be unique within a snapshot, because
//! [`Snapshot::diff`] matches rows by label.

use std::collections::HashMap;
use std::fmt;

use super::error::{DiffError, ProcInterruptsError, RateError, shorten};

/// The label of a row: a numeric IRQ or a name such as `LOC`, `IPI1` or `I/O`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// A Linux IRQ number (`16:`).
    Irq(u32),
    /// An architecture or controller row (`NMI:`, `IPI0:`, `Err:`).
    Name(String),
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Irq(irq) => write!(f, "{irq}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// The counters of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counts {
    /// One count per CPU, in header order.
    PerCpu(Vec<u64>),
    /// One machine-wide count, as on `ERR:` and `MIS:`.
    Total(u64),
}

impl Counts {
    /// Returns the sum over all CPUs, saturating at `u64::MAX`.
    pub fn total(&self) -> u64 {
        match self {
            Self::PerCpu(counts) => counts.iter().fold(0u64, |sum, &c| sum.saturating_add(c)),
            Self::Total(total) => *total,
        }
    }
}

/// The flow type that the kernel prints after the hwirq (`edge` in `2-edge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered (`edge`, `Edge`).
    Edge,
    /// Level-triggered (`level`, `Level`).
    Level,
    /// The fast end-of-interrupt flow (`fasteoi`).
    FastEoi,
    /// Any other flow name, as printed.
    Other(String),
}

impl Trigger {
    fn from_name(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "edge" => Self::Edge,
            "level" => Self::Level,
            "fasteoi" => Self::FastEoi,
            _ => Self::Other(name.to_owned()),
        }
    }
}

/// One row of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line number in the input.
    pub line: usize,
    /// The label, without its colon.
    pub label: Label,
    /// The counters.
    pub counts: Counts,
    /// The interrupt chip (`GIC`, `IR-PCI-MSI`) of a numeric row.
    pub chip: Option<String>,
    /// The hardware IRQ number within the chip's domain, when printed.
    pub hwirq: Option<u64>,
    /// The flow type, when printed.
    pub trigger: Option<Trigger>,
    /// The handler (action) names of a numeric row, several on a shared line.
    pub handlers: Vec<String>,
    /// The free text of a named row (`Local timer interrupts`).
    pub description: Option<String>,
}

/// A parsed `/proc/interrupts` snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Number of CPU columns in the header.
    pub cpu_count: usize,
    /// The rows, in input order.
    pub rows: Vec<Row>,
}

impl Snapshot {
    /// Parses the whole text of a `/proc/interrupts` snapshot.
    ///
    /// # Errors
    ///
    /// Returns a [`ProcInterruptsError`] naming the first invalid line: an
    /// empty input, a missing header, a row without a label, a count that is
    /// not a decimal `u64`, too few or too many counts, or a repeated label.
    pub fn parse(text: &str) -> Result<Self, ProcInterruptsError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line))
            .filter(|(_, line)| !line.trim().is_empty());

        let (header_line, header) = lines.next().ok_or(ProcInterruptsError::Empty)?;
        let cpu_count = parse_header(header_line, header)?;

        let mut rows = Vec::new();
        let mut first_line_of: HashMap<Label, usize> = HashMap::new();
        for (line, content) in lines {
            let row = parse_row(line, content, cpu_count)?;
            if let Some(&first_line) = first_line_of.get(&row.label) {
                return Err(ProcInterruptsError::DuplicateLabel {
                    line,
                    first_line,
                    label: shorten(&row.label.to_string()),
                });
            }
            first_line_of.insert(row.label.clone(), line);
            rows.push(row);
        }
        Ok(Self { cpu_count, rows })
    }

    /// Returns the row with `label`, if any.
    pub fn row(&self, label: &Label) -> Option<&Row> {
        self.rows.iter().find(|row| &row.label == label)
    }

    /// Computes what changed from `self` (earlier) to `later`.
    ///
    /// The result lists the rows of `later` in their order, then the rows
    /// found only in `self`. A row in both snapshots carries `later - self`
    /// per CPU. A row in only one snapshot keeps its raw counts, flagged by
    /// its [`Presence`]: a line can appear between two reads when a driver
    /// is loaded or a CPU comes online.
    ///
    /// # Errors
    ///
    /// Returns a [`DiffError`] when the CPU counts differ, when fewer than
    /// half of the earlier snapshot's lines keep their number and handlers
    /// (two machines, not one), when a row is
    /// single-value in one snapshot and per-CPU in the other, or when any
    /// counter of `later` is lower than in `self`, naming the row and CPU.
    pub fn diff(&self, later: &Snapshot) -> Result<SnapshotDiff, DiffError> {
        if self.cpu_count != later.cpu_count {
            return Err(DiffError::CpuCountChanged {
                before: self.cpu_count,
                after: later.cpu_count,
            });
        }

        let is_prefix = later
            .rows
            .iter()
            .zip(&self.rows)
            .all(|(after, before)| after.label == before.label);
        if later.rows.len() < self.rows.len() && is_prefix {
            return Err(DiffError::LaterCutShort {
                rows: later.rows.len(),
                before_rows: self.rows.len(),
            });
        }

        let earlier_by_label: HashMap<&Label, &Row> =
            self.rows.iter().map(|row| (&row.label, row)).collect();

        // Lines keep their numbers and handlers between two reads of one
        // machine, except the few a driver load or a CPU hotplug changes.
        let later_by_label: HashMap<&Label, &Row> =
            later.rows.iter().map(|row| (&row.label, row)).collect();
        let lines: Vec<&Row> = self
            .rows
            .iter()
            .filter(|row| !row.handlers.is_empty())
            .collect();
        let kept = lines
            .iter()
            .filter(|row| {
                later_by_label
                    .get(&row.label)
                    .is_some_and(|after| after.handlers == row.handlers)
            })
            .count();
        if lines.len() >= 2 && kept * 2 < lines.len() {
            return Err(DiffError::MachineChanged {
                lines: lines.len(),
                kept,
            });
        }
        let mut rows = Vec::with_capacity(later.rows.len());
        for after in &later.rows {
            let diff = match earlier_by_label.get(&after.label) {
                Some(before) => {
                    let (counts, wrapped) = subtract(before, after)?;
                    RowDiff {
                        presence: Presence::Both,
                        counts,
                        wrapped,
                        row: after.clone(),
                    }
                }
                None => RowDiff {
                    presence: Presence::OnlyAfter,
                    counts: after.counts.clone(),
                    wrapped: false,
                    row: after.clone(),
                },
            };
            rows.push(diff);
        }

        let later_labels: HashMap<&Label, ()> =
            later.rows.iter().map(|row| (&row.label, ())).collect();
        for before in &self.rows {
            if !later_labels.contains_key(&before.label) {
                rows.push(RowDiff {
                    presence: Presence::OnlyBefore,
                    counts: before.counts.clone(),
                    wrapped: false,
                    row: before.clone(),
                });
            }
        }
        Ok(SnapshotDiff {
            cpu_count: later.cpu_count,
            rows,
        })
    }
}

/// The snapshots of a diff that contain a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Both snapshots: the counts are deltas.
    Both,
    /// Only the earlier snapshot: the counts are its raw values.
    OnlyBefore,
    /// Only the later snapshot: the counts are its raw values.
    OnlyAfter,
}

/// One row of a [`SnapshotDiff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDiff {
    /// The snapshots that contain the row.
    pub presence: Presence,
    /// Deltas for [`Presence::Both`], raw counts otherwise.
    pub counts: Counts,
    /// A 32-bit counter of the row wrapped between the snapshots, and its
    /// delta assumes one wrap; see [`COUNTER_WRAP`].
    pub wrapped: bool,
    /// The row as parsed from the later snapshot, or from the earlier one
    /// for [`Presence::OnlyBefore`].
    pub row: Row,
}

/// The difference between two snapshots of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// Number of CPU columns of both snapshots.
    pub cpu_count: usize,
    /// The rows of the later snapshot in its order, then the earlier-only rows.
    pub rows: Vec<RowDiff>,
}

/// The interrupt rate of one row over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct LineRate {
    /// The row's label.
    pub label: Label,
    /// Interrupts per second on each CPU, empty for a single-value row.
    pub per_cpu: Vec<f64>,
    /// Interrupts per second on all CPUs together.
    pub total: f64,
}

impl SnapshotDiff {
    /// Returns the row with `label`, if any.
    pub fn row(&self, label: &Label) -> Option<&RowDiff> {
        self.rows.iter().find(|diff| &diff.row.label == label)
    }

    /// Computes delta / `interval_secs` for every row found in both
    /// snapshots, in diff order.
    ///
    /// Rows found in only one snapshot are left out, because their raw
    /// counts cover an unknown span of time.
    ///
    /// # Errors
    ///
    /// Returns [`RateError::InvalidInterval`] unless `interval_secs` is
    /// positive and finite.
    pub fn rates(&self, interval_secs: f64) -> Result<Vec<LineRate>, RateError> {
        if !(interval_secs.is_finite() && interval_secs > 0.0) {
            return Err(RateError::InvalidInterval(interval_secs));
        }

        let per_second = |count: u64| count as f64 / interval_secs;
        let rates = self
            .rows
            .iter()
            .filter(|diff| diff.presence == Presence::Both)
            .map(|diff| LineRate {
                label: diff.row.label.clone(),
                per_cpu: match &diff.counts {
                    Counts::PerCpu(counts) => counts.iter().map(|&c| per_second(c)).collect(),
                    Counts::Total(_) => Vec::new(),
                },
                total: per_second(diff.counts.total()),
            })
            .collect();
        Ok(rates)
    }
}

/// The range of the counters Linux prints in `/proc/interrupts`: each is a
/// 32-bit `unsigned int`, so a busy line wraps it within hours (2^32
/// interrupts at 100,000 a second take 12 hours).
pub const COUNTER_WRAP: u64 = 1 << 32;

/// Returns the delta of one counter, and whether it wrapped.
///
/// A 32-bit counter that is lower in the later snapshot wrapped if it fell
/// by more than half its range: its delta is then under 2^31. A smaller
/// fall is an error, because swapped snapshots or snapshots of two boots
/// show one.
fn counter_delta(old: u64, new: u64) -> Option<(u64, bool)> {
    if let Some(delta) = new.checked_sub(old) {
        return Some((delta, false));
    }
    if old >= COUNTER_WRAP {
        return None;
    }
    let wrapped = (new + COUNTER_WRAP).checked_sub(old)?;
    (wrapped < COUNTER_WRAP / 2).then_some((wrapped, true))
}

/// Returns `after - before` per counter of a row present in both
/// snapshots, and whether a counter wrapped, or an error naming the first
/// counter that went backwards.
fn subtract(before: &Row, after: &Row) -> Result<(Counts, bool), DiffError> {
    let backwards = |cpu: Option<usize>, old: u64, new: u64| DiffError::CounterWentBackwards {
        label: after.label.to_string(),
        line: after.line,
        cpu,
        before: old,
        after: new,
    };
    match (&before.counts, &after.counts) {
        (Counts::PerCpu(old), Counts::PerCpu(new)) => {
            let mut deltas = Vec::with_capacity(new.len());
            let mut any_wrapped = false;
            for (cpu, (&o, &n)) in old.iter().zip(new).enumerate() {
                let (delta, wrapped) =
                    counter_delta(o, n).ok_or_else(|| backwards(Some(cpu), o, n))?;
                deltas.push(delta);
                any_wrapped |= wrapped;
            }
            Ok((Counts::PerCpu(deltas), any_wrapped))
        }
        (&Counts::Total(o), &Counts::Total(n)) => counter_delta(o, n)
            .map(|(delta, wrapped)| (Counts::Total(delta), wrapped))
            .ok_or_else(|| backwards(None, o, n)),
        _ => Err(DiffError::ShapeChanged {
            label: after.label.to_string(),
            line: after.line,
        }),
    }
}

/// Parses the header and returns its number of CPU columns.
fn parse_header(line: usize, header: &str) -> Result<usize, ProcInterruptsError> {
    let is_cpu_column = |cell: &str| {
        cell.strip_prefix("CPU")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let cpu_count = header.split_whitespace().count();
    if cpu_count == 0 || !header.split_whitespace().all(is_cpu_column) {
        return Err(ProcInterruptsError::MissingHeader {
            line,
            text: shorten(header.trim()),
        });
    }
    Ok(cpu_count)
}

/// Splits `text` (already trimmed at the start) into its first
/// whitespace-delimited token and the rest, untrimmed.
fn split_token(text: &str) -> Option<(&str, &str)> {
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some(text.split_at(end))
}

fn is_decimal(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// Parses one row of a snapshot with `cpu_count` CPU columns.
fn parse_row(line: usize, content: &str, cpu_count: usize) -> Result<Row, ProcInterruptsError> {
    let missing_label = || ProcInterruptsError::MissingLabel {
        line,
        text: shorten(content.trim()),
    };
    let (label, mut rest) = content.split_once(':').ok_or_else(missing_label)?;
    let label = label.trim();
    if label.is_empty() || label.contains(char::is_whitespace) {
        return Err(missing_label());
    }
    let label = match label.parse::<u32>() {
        Ok(irq) if is_decimal(label) => Label::Irq(irq),
        _ => Label::Name(label.to_owned()),
    };

    // Counts: up to one per CPU, stopping at the first non-decimal cell.
    let mut counts = Vec::with_capacity(cpu_count);
    while counts.len() < cpu_count {
        let Some((token, after)) = split_token(rest.trim_start()) else {
            break;
        };
        if !is_decimal(token) {
            let next_is_count = split_token(after.trim_start()).is_some_and(|(t, _)| is_decimal(t));
            let looks_numeric =
                token.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
            if counts.is_empty() || looks_numeric || next_is_count {
                return Err(ProcInterruptsError::InvalidCount {
                    line,
                    text: shorten(token),
                });
            }
            break;
        }
        // `is_decimal` held, so only a count past `u64::MAX` fails.
        let count = token
            .parse::<u64>()
            .map_err(|_| ProcInterruptsError::CountTooLarge {
                line,
                text: shorten(token),
            })?;
        counts.push(count);
        rest = after;
    }
    let tail = rest.trim();

    // NOTE: on a one-CPU machine a named row without text, such as
    // `EXT: 5`, is taken as single-value too, because the layout is the same.
    let single_value = matches!(label, Label::Name(_)) && counts.len() == 1 && tail.is_empty();
    let counts = if single_value {
        Counts::Total(counts[0])
    } else if counts.len() < cpu_count {
        return Err(ProcInterruptsError::TooFewCounts {
            line,
            expected: cpu_count,
            found: counts.len(),
        });
    } else {
        Counts::PerCpu(counts)
    };

    if let Some((extra, _)) = split_token(tail).filter(|(token, _)| is_decimal(token)) {
        return Err(ProcInterruptsError::TooManyCounts {
            line,
            expected: cpu_count,
            text: shorten(extra),
        });
    }

    let mut row = Row {
        line,
        label,
        counts,
        chip: None,
        hwirq: None,
        trigger: None,
        handlers: Vec::new(),
        description: None,
    };
    match row.label {
        Label::Irq(_) => parse_irq_columns(tail, &mut row),
        Label::Name(_) => row.description = (!tail.is_empty()).then(|| tail.to_owned()),
    }
    Ok(row)
}

/// Fills the chip, hwirq, trigger and handlers of a numeric row from the
/// text after its counts.
fn parse_irq_columns(tail: &str, row: &mut Row) {
    let Some((chip, mut rest)) = split_token(tail) else {
        return;
    };
    row.chip = Some(chip.to_owned());
    rest = rest.trim_start();

    if let Some((token, after)) = split_token(rest) {
        let hwirq_trigger = token.split_once('-').filter(|(hwirq, trigger)| {
            is_decimal(hwirq) && trigger.starts_with(|c: char| c.is_ascii_alphabetic())
        });
        if let Some((hwirq, trigger)) = hwirq_trigger {
            // x86 style: `9-fasteoi`.
            row.hwirq = hwirq.parse().ok();
            row.trigger = Some(Trigger::from_name(trigger));
            rest = after.trim_start();
        } else if is_decimal(token) {
            // ARM GICv2/GICv3 style: `27 Level`.
            row.hwirq = token.parse().ok();
            rest = after.trim_start();
            let trigger = split_token(rest).filter(|(trigger, _)| {
                trigger.eq_ignore_ascii_case("level") || trigger.eq_ignore_ascii_case("edge")
            });
            if let Some((trigger, after)) = trigger {
                row.trigger = Some(Trigger::from_name(trigger));
                rest = after.trim_start();
            }
        }
    }

    row.handlers = rest
        .split(", ")
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
}

#[cfg(test)]
mod tests;
