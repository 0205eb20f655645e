//! Two `/proc/interrupts` snapshots to a scenario that reproduces each
//! line's rate, handler names and trigger type.
//!
//! The rules, row by row of the diff:
//!
//! 1. A numbered row that counted interrupts in the interval becomes one
//!    generic device per handler on its own line number, at
//!    `rate = delta / interval`. A shared line (`ehci_hcd:usb1,
//!    ohci_hcd:usb2`) becomes one device per handler with `shared = true`,
//!    each at an equal part of the line's rate, because the snapshot does
//!    not say which device raised which interrupt.
//! 2. The line goes to the CPU that took most of its interrupts (the lowest
//!    on a tie), because a simulated line has one affinity.
//! 3. The trigger comes from the hwirq-trigger column (`9-fasteoi`) or an
//!    old x86 chip name (`IO-APIC-edge`): `edge` stays edge, `fasteoi` and
//!    `level` become level. Without either the line is edge, with a comment.
//! 4. Arrivals are Poisson at the measured rate, except on a per-CPU local
//!    timer ([`is_local_timer`]) counted on one CPU, which is periodic.
//! 5. A per-CPU interrupt counted on several CPUs under one number (`LOC`,
//!    or an `arch_timer` PPI) cannot be one simulated line, so it becomes
//!    one periodic `[[timer]]` per CPU, on new lines above the largest
//!    recorded one.
//! 6. Every other named row (IPIs, NMIs, error counters) is listed in a
//!    comment with its rate: irqlab simulates device lines and timers only.
//! 7. A line with no interrupts in the interval, a line found only in the
//!    earlier snapshot (its count over the interval is unknown) and a line
//!    numbered beyond irq-sim's lines are left out and listed. A line found
//!    only in the later snapshot was registered during the interval, so its
//!    counter started at zero and its raw count is the interval's count.
//! 8. A rate above [`MAX_RATE_HZ`] is clamped to it, and one below
//!    [`MIN_RATE_HZ`] raised to it, with a comment.

use std::time::Duration;

use irq_sim::machine::{MAX_CPUS, MAX_IRQS};

use super::ConvertError;
use super::render::{
    Note, Plan, PlannedArrival, PlannedDevice, PlannedTimer, counted, format_rate,
};
use crate::record::proc_interrupts::{Counts, Label, Presence, RowDiff, Snapshot, Trigger as Flow};
use crate::scenario::{MAX_RATE_HZ, MIN_RATE_HZ, Trigger};

/// The inputs and options of a `/proc/interrupts` conversion.
#[derive(Debug, Clone)]
pub struct ProcInterruptsInput<'a> {
    /// The earlier snapshot.
    pub before: &'a Snapshot,
    /// The later snapshot of the same machine.
    pub after: &'a Snapshot,
    /// The earlier snapshot's name in the header comment (its path).
    pub before_name: &'a str,
    /// The later snapshot's name in the header comment.
    pub after_name: &'a str,
    /// Seconds between the two reads.
    pub interval_secs: f64,
    /// How long the scenario runs.
    pub duration: Duration,
    /// Simulated CPUs; `None` takes the snapshots' count, at most
    /// [`MAX_CPUS`].
    pub cpus: Option<usize>,
}

/// Returns whether `handler` is the name of a per-CPU local timer: the ARM
/// generic timer (`arch_timer`), the Cortex-A9 private timer (`twd`), old
/// ARM kernels' `local_timer`, or a Samsung Exynos MCT tick (`mct_tick0`).
pub fn is_local_timer(handler: &str) -> bool {
    let mct_cpu = handler.strip_prefix("mct_tick");
    matches!(handler, "arch_timer" | "twd" | "local_timer")
        || mct_cpu.is_some_and(|cpu| !cpu.is_empty() && cpu.bytes().all(|b| b.is_ascii_digit()))
}

/// The reason a row found only in the earlier snapshot is left out.
const ONLY_BEFORE: &str = "only in the earlier snapshot, so it went away during the interval \
                           (or was edited out) and its count over the interval is unknown";

/// Returns the comment on a row found in one snapshot only, or on one whose
/// counter wrapped.
fn presence_comment(row: &RowDiff) -> Option<String> {
    if row.presence == Presence::OnlyAfter {
        return Some(
            "Only in the later snapshot: the row appeared during the interval (a driver \
             loaded or a CPU came online). Its raw count is taken as the interval's, which \
             is too high if it had counted before it was hidden."
                .to_owned(),
        );
    }
    row.wrapped.then(|| {
        "A 32-bit counter of this row wrapped between the snapshots (Linux prints \
         32-bit counts), so its count assumes one wrap: 2^32 more interrupts would look \
         the same."
            .to_owned()
    })
}

/// Plans the scenario of two snapshots.
pub(super) fn plan(input: &ProcInterruptsInput<'_>) -> Result<Plan, ConvertError> {
    let interval = input.interval_secs;
    if !(interval.is_finite() && interval > 0.0) {
        return Err(ConvertError::InvalidInterval(interval));
    }
    let diff = input
        .before
        .diff(input.after)
        .map_err(|error| ConvertError::Diff {
            before: input.before_name.to_owned(),
            after: input.after_name.to_owned(),
            error,
        })?;

    let recorded_cpus = diff.cpu_count;
    let cpus = input.cpus.unwrap_or(recorded_cpus.min(MAX_CPUS));
    let largest_line = diff
        .rows
        .iter()
        .filter_map(|row| match row.row.label {
            Label::Irq(irq) if irq < MAX_IRQS => Some(irq),
            _ => None,
        })
        .max();
    let layout_has_triggers = diff.rows.iter().any(|row| {
        row.row.trigger.is_some() || row.row.chip.as_deref().and_then(chip_flow).is_some()
    });
    let mut builder = Builder {
        interval,
        layout_has_triggers,
        cpus,
        next_new_line: largest_line.map_or(0, |irq| irq + 1),
        devices: Vec::new(),
        timers: Vec::new(),
        zero: Vec::new(),
        left_out: Vec::new(),
        named: Vec::new(),
    };
    for row in &diff.rows {
        match &row.row.label {
            Label::Irq(irq) => builder.numbered_row(*irq, row),
            Label::Name(name) if name == "LOC" && matches!(row.counts, Counts::PerCpu(_)) => {
                let row_text = match &row.row.description {
                    Some(description) => format!("LOC ({description})"),
                    None => "LOC".to_owned(),
                };
                builder.per_cpu_timers(row, "LOC", &row_text);
            }
            Label::Name(_) => builder.named_row(row),
        }
    }
    if builder.devices.len() > crate::scenario::MAX_DEVICES {
        return Err(ConvertError::TooManyDevices {
            path: input.after_name.to_owned(),
            devices: builder.devices.len(),
            advice: "remove the rows you need not simulate from both snapshots",
        });
    }
    unique_names(&mut builder.devices, &builder.timers);

    let mut header = vec![
        "Generated by `irqlab scenario from-proc-interrupts` from two /proc/interrupts snapshots:"
            .to_owned(),
        format!("  before:   {}", input.before_name),
        format!("  after:    {}", input.after_name),
        format!("  interval: {interval} s between the two reads (--interval)"),
        "Every rate below is the line's count in the interval divided by the interval,".to_owned(),
        "so the rates are only as right as the interval. The rules are in".to_owned(),
        "docs/scenarios-from-recordings.md, and a comment gives the source of each value."
            .to_owned(),
        "The devices' work is left at zero: a snapshot records no bottom-half time.".to_owned(),
    ];
    if cpus != recorded_cpus {
        header.push(format!(
            "The snapshots have {recorded_cpus} CPUs and the scenario {cpus}: recorded CPU c \
             runs on simulated CPU c mod {cpus}."
        ));
    }
    if !layout_has_triggers && !builder.devices.is_empty() {
        header.push(
            "The snapshots have no hwirq-trigger column, so every line is edge: assumed, not \
             recorded."
                .to_owned(),
        );
    }

    let lines_where = |keep: fn(&PlannedDevice) -> bool| {
        let mut lines: Vec<u32> = builder
            .devices
            .iter()
            .filter(|device| keep(device))
            .map(|device| device.irq)
            .collect();
        lines.dedup();
        lines.len()
    };
    let device_lines = lines_where(|_| true);
    let timer_lines = lines_where(|device| is_local_timer(&device.handler));
    let of_them = match timer_lines {
        0 => String::new(),
        1 => " (1 of them a local timer)".to_owned(),
        count => format!(" ({count} of them local timers)"),
    };
    let description = format!(
        "Interrupt rates of a real machine, from two /proc/interrupts snapshots {interval} s \
         apart: {}{of_them} and {} from per-CPU rows such as LOC.",
        counted(device_lines, "device line"),
        counted(builder.timers.len(), "timer")
    );
    if builder.devices.is_empty() && builder.timers.is_empty() {
        return Err(ConvertError::NothingToSimulate {
            before: input.before_name.to_owned(),
            after: input.after_name.to_owned(),
        });
    }
    let notes = builder.notes();
    Ok(Plan {
        header,
        description,
        duration: input.duration,
        cpus,
        irqs: builder.next_new_line.max(1),
        devices: builder.devices,
        timers: builder.timers,
        notes,
    })
}

/// The scenario as the rows are walked.
struct Builder {
    interval: f64,
    /// Some row records a trigger. Without any, the header notes it once.
    layout_has_triggers: bool,
    cpus: usize,
    /// The first line above every recorded one not yet given to a timer.
    next_new_line: u32,
    devices: Vec<PlannedDevice>,
    timers: Vec<PlannedTimer>,
    /// Rows with no interrupts in the interval, as `label (name)`.
    zero: Vec<String>,
    /// Rows left out for another reason, with the reason.
    left_out: Vec<String>,
    /// Named rows that counted something, with their rates.
    named: Vec<(&'static str, String)>,
}

impl Builder {
    /// Turns a numbered row into devices, per-CPU timers or a note.
    fn numbered_row(&mut self, irq: u32, row: &RowDiff) {
        let handlers = &row.row.handlers;
        let row_text = format!("line {irq} ({})", handlers.join(", "));
        if row.presence == Presence::OnlyBefore {
            self.left_out.push(format!("{row_text}: {ONLY_BEFORE}"));
            return;
        }
        let total = row.counts.total();
        if total == 0 {
            self.zero.push(row_text);
            return;
        }
        if irq >= MAX_IRQS {
            self.left_out.push(format!(
                "{row_text}: beyond the {MAX_IRQS} lines irq-sim has"
            ));
            return;
        }
        let per_cpu = match &row.counts {
            Counts::PerCpu(counts) => counts.as_slice(),
            Counts::Total(_) => &[],
        };
        let cpus_counting = per_cpu.iter().filter(|&&count| count > 0).count();
        let timer = match handlers.as_slice() {
            [handler] if is_local_timer(handler) => Some(handler.as_str()),
            _ => None,
        };
        if let Some(handler) = timer
            && cpus_counting > 1
        {
            let row_text = format!("line {irq} ({handler}, a per-CPU interrupt)");
            self.per_cpu_timers(row, &format!("{handler}@{irq}"), &row_text);
            return;
        }

        // Rule 2: the busiest CPU, the lowest on a tie.
        let busiest = per_cpu
            .iter()
            .enumerate()
            .max_by(|(a_cpu, a), (b_cpu, b)| a.cmp(b).then(b_cpu.cmp(a_cpu)))
            .map_or(0, |(cpu, _)| cpu);
        let mut comments = vec![self.count_comment(irq, row, total, per_cpu, busiest)];
        comments.extend(presence_comment(row));
        let (trigger, trigger_note) = trigger(row);
        if let Some(note) = trigger_note.filter(|_| self.layout_has_triggers) {
            comments.push(note);
        }

        let names: Vec<String> = if handlers.is_empty() {
            comments.push(format!(
                "No handler name recorded; the device is named irq{irq}."
            ));
            vec![format!("irq{irq}")]
        } else {
            handlers.clone()
        };
        let shared = names.len() > 1;
        if shared {
            comments.push(format!(
                "Shared by {} handlers: each device raises an equal part of the line's rate.",
                names.len()
            ));
        }
        let mut rate_hz = total as f64 / self.interval / names.len() as f64;
        if rate_hz > MAX_RATE_HZ {
            comments.push(format!(
                "Recorded {} per device, above the {} a device may ask for: clamped, so this \
                 line runs slower than recorded.",
                format_rate(rate_hz),
                format_rate(MAX_RATE_HZ)
            ));
            rate_hz = MAX_RATE_HZ;
        }
        if rate_hz < MIN_RATE_HZ {
            comments.push(format!(
                "Recorded {} per device, below the one a day a device may ask for: raised to \
                 it, so this line runs faster than recorded.",
                format_rate(rate_hz)
            ));
            rate_hz = MIN_RATE_HZ;
        }
        let arrival = if timer.is_some() {
            comments.push(
                "A per-CPU local timer: periodic at its mean rate (a tickless kernel skips \
                 idle ticks, so the real gaps vary)."
                    .to_owned(),
            );
            PlannedArrival::Periodic { rate_hz }
        } else {
            PlannedArrival::Poisson { rate_hz }
        };

        for (index, handler) in names.into_iter().enumerate() {
            self.devices.push(PlannedDevice {
                comments: if index == 0 {
                    std::mem::take(&mut comments)
                } else {
                    Vec::new()
                },
                name: handler.clone(),
                handler,
                irq,
                cpu: busiest % self.cpus,
                trigger,
                shared,
                work: None,
                arrival: arrival.clone(),
            });
        }
    }

    /// Describes a row's count and where it fell.
    fn count_comment(
        &self,
        irq: u32,
        row: &RowDiff,
        total: u64,
        per_cpu: &[u64],
        busiest: usize,
    ) -> String {
        let chip = row.row.chip.as_deref().unwrap_or("no chip");
        let busiest_count = per_cpu.get(busiest).copied().unwrap_or(total);
        let share = if busiest_count == total {
            format!("all on CPU{busiest}")
        } else {
            format!(
                "{:.0}% on CPU{busiest}, the rest on {}; all go to CPU{busiest} here",
                100.0 * busiest_count as f64 / total as f64,
                crate::report::counted(
                    per_cpu.iter().filter(|&&count| count > 0).count() - 1,
                    "other CPU"
                )
            )
        };
        let folded = if busiest >= self.cpus {
            format!(", simulated CPU{}", busiest % self.cpus)
        } else {
            String::new()
        };
        format!(
            "Line {irq} ({chip}): {} in {} s = {}, {share}{folded}.",
            crate::report::counted(usize::try_from(total).unwrap_or(usize::MAX), "interrupt"),
            self.interval,
            format_rate(total as f64 / self.interval)
        )
    }

    /// Turns a per-CPU interrupt counted on several CPUs into one periodic
    /// timer per CPU that counted, on new lines (rule 5).
    fn per_cpu_timers(&mut self, row: &RowDiff, name: &str, row_text: &str) {
        let Counts::PerCpu(per_cpu) = &row.counts else {
            return;
        };
        if row.presence == Presence::OnlyBefore {
            self.left_out.push(format!("{row_text}: {ONLY_BEFORE}"));
            return;
        }
        if per_cpu.iter().all(|&count| count == 0) {
            self.zero.push(row_text.to_owned());
            return;
        }
        let mut first = true;
        for (cpu, &count) in per_cpu.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if self.next_new_line >= MAX_IRQS {
                self.left_out.push(format!(
                    "{row_text} on CPU{cpu}: no line left below {MAX_IRQS} for its timer"
                ));
                continue;
            }
            let irq = self.next_new_line;
            self.next_new_line += 1;

            let mut comments = Vec::new();
            if first {
                comments.push(format!(
                    "{row_text}: one number counted on every CPU, but a simulated line has one \
                     CPU, so each CPU gets a periodic timer of its own, on a new line."
                ));
                comments.extend(presence_comment(row));
                first = false;
            }
            let mut rate_hz = count as f64 / self.interval;
            comments.push(format!(
                "CPU{cpu}: {count} in {} s = {}.",
                self.interval,
                format_rate(rate_hz)
            ));
            if rate_hz > MAX_RATE_HZ {
                comments.push(format!(
                    "Above the {} a timer may tick at: clamped to a 1us period.",
                    format_rate(MAX_RATE_HZ)
                ));
                rate_hz = MAX_RATE_HZ;
            }
            if rate_hz < MIN_RATE_HZ {
                comments.push("Below one tick a day: raised to one a day.".to_owned());
                rate_hz = MIN_RATE_HZ;
            }
            if cpu >= self.cpus {
                comments.push(format!("Runs on simulated CPU{}.", cpu % self.cpus));
            }
            let period = Duration::from_secs_f64(1.0 / rate_hz).max(Duration::from_micros(1));
            self.timers.push(PlannedTimer {
                comments,
                name: format!("{name}/cpu{cpu}"),
                irq,
                cpu: cpu % self.cpus,
                period,
            });
        }
    }

    /// Lists a named row in the notes (rule 6).
    fn named_row(&mut self, row: &RowDiff) {
        let label = row.row.label.to_string();
        let total = row.counts.total();
        let row_text = match &row.row.description {
            Some(description) => format!("{label} ({description})"),
            None => label.clone(),
        };
        if row.presence == Presence::OnlyBefore {
            self.left_out.push(format!("{row_text}: {ONLY_BEFORE}"));
            return;
        }
        if total == 0 {
            self.zero.push(row_text);
            return;
        }
        let mut text = format!(
            "{row_text}: {total} in {} s = {}",
            self.interval,
            format_rate(total as f64 / self.interval)
        );
        if row.presence == Presence::OnlyAfter {
            text.push_str(", the raw count of a row found in the later snapshot only");
        }
        if row.wrapped {
            text.push_str(", a 32-bit counter that wrapped once");
        }
        self.named.push((named_kind(&label), text));
    }

    /// Lists in comment blocks what was not simulated.
    fn notes(&self) -> Vec<Note> {
        let mut notes = Vec::new();
        let kinds = [
            (
                IPI,
                "Inter-processor interrupts, not simulated (irqlab has no IPIs):",
            ),
            (
                NMI,
                "Non-maskable and performance-monitoring interrupts, not simulated (top halves \
                 here are maskable):",
            ),
            (
                ERROR,
                "Error counters, not interrupt sources (spurious or lost interrupts on the real \
                 machine):",
            ),
            (
                OTHER,
                "Other architecture rows, not device lines, so not simulated:",
            ),
        ];
        for (kind, title) in kinds {
            let lines: Vec<String> = self
                .named
                .iter()
                .filter(|(row_kind, _)| *row_kind == kind)
                .map(|(_, text)| text.clone())
                .collect();
            if !lines.is_empty() {
                notes.push(Note {
                    title: title.to_owned(),
                    lines,
                });
            }
        }
        if !self.left_out.is_empty() {
            notes.push(Note {
                title: "Left out:".to_owned(),
                lines: self.left_out.clone(),
            });
        }
        if !self.zero.is_empty() {
            notes.push(Note {
                title: "No interrupts in the interval, so not simulated (a rate must be above \
                        zero):"
                    .to_owned(),
                lines: wrap(&self.zero, "; ", 76),
            });
        }
        notes
    }
}

/// Joins `items` with `separator` into lines of at most `width`
/// characters, or one item per line where an item is longer.
fn wrap(items: &[String], separator: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty() && current.len() + separator.len() + item.len() > width {
            current.push_str(separator.trim_end());
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str(separator);
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

const IPI: &str = "ipi";
const NMI: &str = "nmi";
const ERROR: &str = "error";
const OTHER: &str = "other";

/// Sorts a named row into a kind of the notes.
fn named_kind(label: &str) -> &'static str {
    match label {
        "NMI" | "PMI" => NMI,
        "ERR" | "MIS" | "Err" | "SPU" => ERROR,
        "RES" | "CAL" | "TLB" | "IWI" => IPI,
        _ if label.starts_with("IPI") => IPI,
        _ => OTHER,
    }
}

/// Returns the scenario trigger of a row (rule 3), and a comment when it
/// was not read off the row as edge or level.
fn trigger(row: &RowDiff) -> (Trigger, Option<String>) {
    match (
        &row.row.trigger,
        row.row.chip.as_deref().and_then(chip_flow),
    ) {
        (Some(Flow::Edge), _) => (Trigger::Edge, None),
        (Some(Flow::Level | Flow::FastEoi), _) => (Trigger::Level, None),
        (Some(Flow::Other(flow)), _) => (
            Trigger::Edge,
            Some(format!(
                "Flow `{flow}` is neither edge nor level: edge assumed."
            )),
        ),
        (None, Some("edge")) => (Trigger::Edge, None),
        (None, Some(_)) => (Trigger::Level, None),
        (None, None) => (
            Trigger::Edge,
            Some("Trigger type not recorded: edge assumed.".to_owned()),
        ),
    }
}

/// Returns the flow at the end of an old x86 chip name (`IO-APIC-edge`,
/// `PCI-MSI-fasteoi`), which kernels printed before the hwirq-trigger column.
fn chip_flow(chip: &str) -> Option<&'static str> {
    let chip = chip.to_ascii_lowercase();
    ["edge", "fasteoi", "level"]
        .into_iter()
        .find(|flow| chip.ends_with(&format!("-{flow}")))
}

/// Renames devices whose handler name another device or timer also has to
/// `handler@irq`, and adds `-2`, `-3`, ... to names still repeated.
pub(super) fn unique_names(devices: &mut [PlannedDevice], timers: &[PlannedTimer]) {
    let count = |name: &str, devices: &[PlannedDevice]| {
        devices.iter().filter(|device| device.name == name).count()
            + timers.iter().filter(|timer| timer.name == name).count()
    };
    let repeated: Vec<bool> = devices
        .iter()
        .map(|device| count(&device.name, devices) > 1)
        .collect();
    for (device, repeated) in devices.iter_mut().zip(repeated) {
        if repeated {
            device.name = format!("{}@{}", device.handler, device.irq);
        }
    }

    let mut seen: Vec<String> = timers.iter().map(|timer| timer.name.clone()).collect();
    for device in devices.iter_mut() {
        let mut candidate = device.name.clone();
        let mut suffix = 2;
        while seen.contains(&candidate) {
            candidate = format!("{}-{suffix}", device.name);
            suffix += 1;
        }
        device.name = candidate.clone();
        seen.push(candidate);
    }
}
