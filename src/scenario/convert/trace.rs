//! An ftrace text file to a scenario that replays its recorded IRQ lines.
//!
//! The rules:
//!
//! 1. Each line with `irq_handler_entry` events becomes one generic device
//!    on that line number, whose arrival replays the line's entries from
//!    the file. On a shared line each interrupt records one entry per
//!    handler, so the device replays the entries of the handler that
//!    returned `handled` most often (on a tie, the one recorded most
//!    often), and names the others in a comment.
//! 2. The line goes to the CPU that ran most of the replayed entries.
//! 3. ftrace does not record trigger types: every line is edge, with a
//!    comment.
//! 4. A `workqueue_queue_work` recorded on a CPU between a line's
//!    `irq_handler_entry` and `irq_handler_exit` was queued by that line's
//!    top half. The device's `work` is the median duration of the completed
//!    executions of those work items (matched by work-struct address).
//!    Executions the trace cannot tie to a line are listed in a comment.
//! 5. The scenario lasts as long as the trace, rounded up to the next
//!    millisecond past its last event, which a run replays only before its
//!    end.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use irq_sim::machine::{MAX_CPUS, MAX_IRQS};

use super::ConvertError;
use super::proc::unique_names;
use super::render::{Note, Plan, PlannedArrival, PlannedDevice, counted, format_duration};
use crate::record::ftrace::{EventKind, IrqReturn, Trace, WorkExecution};
use crate::scenario::{MAX_DURATION, Trigger};

/// The input and options of an ftrace conversion.
#[derive(Debug, Clone)]
pub struct FtraceInput<'a> {
    /// The parsed trace.
    pub trace: &'a Trace,
    /// The trace's name in the header comment (its path).
    pub trace_name: &'a str,
    /// The trace's path as the scenario's `file` keys give it: relative to
    /// the scenario file's folder, or absolute.
    pub replay_path: &'a str,
    /// How long the scenario runs; `None` takes the trace's length.
    pub duration: Option<Duration>,
    /// Simulated CPUs; `None` takes the highest CPU in the trace plus one,
    /// at most [`MAX_CPUS`].
    pub cpus: Option<usize>,
}

/// The work items one line's top half queued: work-struct address to
/// function.
type QueuedWork = BTreeMap<u64, String>;

/// Plans the replay scenario of a trace.
pub(super) fn plan(input: &FtraceInput<'_>) -> Result<Plan, ConvertError> {
    let trace = input.trace;
    let entries = trace.irq_entries();
    if entries.is_empty() {
        return Err(ConvertError::NoIrqEntries {
            path: input.trace_name.to_owned(),
        });
    }

    let recorded_cpus = trace
        .events
        .iter()
        .map(|event| event.cpu as usize + 1)
        .max()
        .unwrap_or(1);
    let cpus = input.cpus.unwrap_or(recorded_cpus.min(MAX_CPUS));
    let queued = queued_by_line(trace);
    let handled = handled_by_handler(trace);
    let executions = trace.work_executions();

    // Rules 1 to 4, line by line.
    let mut devices = Vec::new();
    let mut left_out = Vec::new();
    for (&irq, line_entries) in &entries {
        if irq >= MAX_IRQS {
            left_out.push(format!(
                "line {irq}: beyond the {MAX_IRQS} lines irq-sim has"
            ));
            continue;
        }
        let mut names: Vec<(&str, usize)> = Vec::new();
        for entry in line_entries {
            match names.iter_mut().find(|(name, _)| *name == entry.name) {
                Some((_, count)) => *count += 1,
                None => names.push((&entry.name, 1)),
            }
        }
        // Every handler of a shared line records one entry per interrupt,
        // give or take one where the trace starts or ends in the middle of
        // an interrupt. The device takes the name of the handler that
        // handled the most, because its device raised the line, and on a
        // tie the one recorded most.
        let handled_by = |name: &str| handled.get(&(irq, name)).copied().unwrap_or(0);
        let (handler, replayed) = names
            .iter()
            .copied()
            .reduce(|best, next| {
                let next_key = (handled_by(next.0), next.1);
                if next_key > (handled_by(best.0), best.1) {
                    next
                } else {
                    best
                }
            })
            .expect("a line in irq_entries has an entry");

        let mut per_cpu: BTreeMap<u32, usize> = BTreeMap::new();
        for entry in line_entries.iter().filter(|entry| entry.name == handler) {
            *per_cpu.entry(entry.cpu).or_default() += 1;
        }
        let (busiest, busiest_count) = per_cpu
            .iter()
            .map(|(&cpu, &count)| (cpu as usize, count))
            .reduce(|best, next| if next.1 > best.1 { next } else { best })
            .unwrap_or((0, 0));

        let mut comments = vec![format!(
            "Line {irq}: {} recorded, {busiest_count} on CPU{busiest}{}; the trigger type is \
             not recorded, edge assumed.",
            counted(replayed, "interrupt"),
            if busiest >= cpus {
                format!(" (simulated CPU{})", busiest % cpus)
            } else {
                String::new()
            }
        )];
        let shared = names.len() > 1;
        if shared {
            let all: Vec<String> = names
                .iter()
                .map(|(name, count)| format!("{name} ({count})"))
                .collect();
            comments.push(format!(
                "Handlers recorded: {}. Each interrupt calls every handler of a shared line, \
                 so the entries of {handler} are replayed, one per interrupt.",
                all.join(", ")
            ));
        }

        let work = queued
            .get(&irq)
            .and_then(|queued| line_work(queued, &executions, &mut comments));
        devices.push(PlannedDevice {
            comments,
            name: handler.to_owned(),
            handler: handler.to_owned(),
            irq,
            cpu: busiest % cpus,
            trigger: Trigger::Edge,
            shared: false,
            work,
            arrival: PlannedArrival::Replay {
                file: input.replay_path.to_owned(),
                irq,
                handler: shared.then(|| handler.to_owned()),
            },
        });
    }
    if devices.len() > crate::scenario::MAX_DEVICES {
        return Err(ConvertError::TooManyDevices {
            path: input.trace_name.to_owned(),
            devices: devices.len(),
            advice: "keep the lines you need (grep their irq= in the trace)",
        });
    }
    unique_names(&mut devices, &[]);

    let notes = notes(trace, &queued, &executions, left_out);
    let length = trace.span();
    // Past the last event, which a run replays only before its end.
    let duration = input.duration.unwrap_or_else(|| {
        let millis = length.as_nanos() / 1_000_000 + 1;
        Duration::from_millis(millis as u64).min(MAX_DURATION)
    });

    let mut header = vec![
        "Generated by `irqlab scenario from-ftrace` from an ftrace text file:".to_owned(),
        format!("  trace: {}", input.trace_name),
        format!(
            "  {} over {}, on {}",
            counted(trace.events.len(), "event"),
            format_duration(length),
            counted(entries.len(), "IRQ line")
        ),
        "Each device replays its line's recorded irq_handler_entry times, relative to the"
            .to_owned(),
        "trace's first event. The rules are in docs/scenarios-from-recordings.md.".to_owned(),
    ];
    if let Some(host_cpus) = trace.cpus.filter(|cpus| *cpus as usize > recorded_cpus) {
        header.push(format!(
            "The trace's host had {host_cpus} CPUs; events were recorded on the first \
             {recorded_cpus}, and the scenario simulates those."
        ));
    }
    if input.duration.is_none() && length >= MAX_DURATION {
        header.push(format!(
            "The trace spans {}, longer than a run may last: the scenario replays its first \
             {}.",
            crate::report::format_duration(length),
            crate::report::format_duration(MAX_DURATION)
        ));
    }
    if let Some(lost) = lost_summary(trace) {
        header.push(format!(
            "The trace lost events ({lost}): the interrupts among them are not replayed."
        ));
    }
    if cpus != recorded_cpus {
        header.push(format!(
            "The trace has {recorded_cpus} CPUs and the scenario {cpus}: recorded CPU c runs \
             on simulated CPU c mod {cpus}."
        ));
    }
    if input.duration.is_none() {
        header.push(format!(
            "The run lasts as long as the trace, rounded up to the next millisecond past \
             its last event (at most 24 hours): {}.",
            format_duration(duration)
        ));
    }

    let largest_line = devices.iter().map(|device| device.irq).max().unwrap_or(0);
    if devices.is_empty() {
        return Err(ConvertError::LinesBeyondSimulator {
            path: input.trace_name.to_owned(),
            lowest: entries.keys().copied().min().unwrap_or(MAX_IRQS),
        });
    }
    Ok(Plan {
        header,
        description: if devices.len() == entries.len() {
            format!(
                "Replay of {} from an ftrace recording of a real machine.",
                counted(devices.len(), "IRQ line")
            )
        } else {
            format!(
                "Replay of {} of the {} IRQ lines of an ftrace recording of a real machine.",
                devices.len(),
                entries.len()
            )
        },
        duration,
        cpus,
        irqs: largest_line + 1,
        devices,
        timers: Vec::new(),
        notes,
    })
}

/// Returns how many `irq_handler_exit` events with `ret=handled` each
/// handler of each line recorded, pairing every exit with the entry before
/// it on its CPU.
fn handled_by_handler(trace: &Trace) -> HashMap<(u32, &str), usize> {
    let mut in_handler: HashMap<u32, (u32, &str)> = HashMap::new();
    let mut handled: HashMap<(u32, &str), usize> = HashMap::new();
    for event in &trace.events {
        match &event.kind {
            EventKind::IrqHandlerEntry { irq, name } => {
                in_handler.insert(event.cpu, (*irq, name.as_str()));
            }
            EventKind::IrqHandlerExit { irq, ret } => {
                let entered = in_handler.remove(&event.cpu);
                if let Some((entered_irq, name)) = entered
                    && entered_irq == *irq
                    && *ret == IrqReturn::Handled
                {
                    *handled.entry((*irq, name)).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    handled
}

/// Finds the work items each line's top half queued (rule 4).
fn queued_by_line(trace: &Trace) -> HashMap<u32, QueuedWork> {
    let mut in_handler: HashMap<u32, u32> = HashMap::new();
    let mut queued: HashMap<u32, QueuedWork> = HashMap::new();
    for event in &trace.events {
        match &event.kind {
            EventKind::IrqHandlerEntry { irq, .. } => {
                in_handler.insert(event.cpu, *irq);
            }
            EventKind::IrqHandlerExit { .. } => {
                in_handler.remove(&event.cpu);
            }
            EventKind::WorkqueueQueueWork { work, function, .. } => {
                if let Some(irq) = in_handler.get(&event.cpu) {
                    queued
                        .entry(*irq)
                        .or_default()
                        .insert(*work, function.clone());
                }
            }
            _ => {}
        }
    }
    queued
}

/// Returns the median duration of the completed executions of `queued`,
/// and adds a comment naming the items it came from.
fn line_work(
    queued: &QueuedWork,
    executions: &[WorkExecution],
    comments: &mut Vec<String>,
) -> Option<Duration> {
    let functions: BTreeSet<&str> = queued.values().map(String::as_str).collect();
    let functions: Vec<&str> = functions.into_iter().collect();
    let durations: Vec<Duration> = executions
        .iter()
        .filter(|execution| queued.contains_key(&execution.work))
        .filter_map(|execution| execution.duration)
        .collect();
    let Some(median) = median(durations.clone()) else {
        comments.push(format!(
            "Its top half queued {}, but the trace has no completed execution of it: work \
             left at zero.",
            functions.join(", ")
        ));
        return None;
    };
    comments.push(format!(
        "work: the median of {} recorded executions of {}, which its top half queued.",
        durations.len(),
        functions.join(", ")
    ));
    Some(median)
}

/// Says how many events each CPU's buffer lost and where the first mark
/// is, as `204 on CPU0, an unknown number on CPU1; first mark on line 7`,
/// or `None` when the trace marks no loss.
pub(super) fn lost_summary(trace: &Trace) -> Option<String> {
    let first = trace.lost.first()?;
    let mut per_cpu: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    for mark in &trace.lost {
        let total = per_cpu.entry(mark.cpu).or_insert(Some(0));
        *total = total
            .zip(mark.count)
            .map(|(sum, count)| sum.saturating_add(count));
    }
    let cpus: Vec<String> = per_cpu
        .iter()
        .map(|(cpu, total)| match total {
            Some(count) => format!("{count} on CPU{cpu}"),
            None => format!("an unknown number on CPU{cpu}"),
        })
        .collect();
    Some(format!(
        "{}; first mark on line {}",
        cpus.join(", "),
        first.line
    ))
}

/// Lists in comment blocks what the scenario does not replay.
fn notes(
    trace: &Trace,
    queued: &HashMap<u32, QueuedWork>,
    executions: &[WorkExecution],
    left_out: Vec<String>,
) -> Vec<Note> {
    let mut notes = Vec::new();

    let tied: BTreeSet<u64> = queued
        .values()
        .flat_map(|items| items.keys())
        .copied()
        .collect();
    let mut untied: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for execution in executions
        .iter()
        .filter(|execution| !tied.contains(&execution.work))
    {
        let durations = untied.entry(&execution.function).or_default();
        durations.extend(execution.duration);
    }
    if !untied.is_empty() {
        notes.push(Note {
            title: "Work executions no top half in the trace queued (no workqueue_queue_work \
                    inside an IRQ handler), so no device's work:"
                .to_owned(),
            lines: untied
                .into_iter()
                .map(|(function, durations)| {
                    let runs = durations.len();
                    match median(durations) {
                        Some(median) => format!(
                            "{function}: {runs} completed, median {}",
                            format_duration(median)
                        ),
                        None => format!("{function}: no completed execution"),
                    }
                })
                .collect(),
        });
    }

    let softirqs = trace
        .events
        .iter()
        .filter(|event| matches!(event.kind, EventKind::SoftirqEntry { .. }))
        .count();
    if softirqs > 0 {
        notes.push(Note {
            title: "Not replayed:".to_owned(),
            lines: vec![format!(
                "{}: irqlab's bottom halves are work items, not softirqs",
                counted(softirqs, "softirq_entry event")
            )],
        });
    }
    if !left_out.is_empty() {
        notes.push(Note {
            title: "Left out:".to_owned(),
            lines: left_out,
        });
    }
    notes
}

/// Returns the median, the mean of the two middle values for an even count.
fn median(mut durations: Vec<Duration>) -> Option<Duration> {
    durations.sort_unstable();
    let middle = durations.len() / 2;
    match durations.len() {
        0 => None,
        len if len % 2 == 1 => Some(durations[middle]),
        _ => Some((durations[middle - 1] + durations[middle]) / 2),
    }
}
