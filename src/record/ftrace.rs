//! ftrace text output (`cat trace`): parsing, IRQ entries per line and
//! workqueue executions.
//!
//! An event line has these columns, the optional ones depending on the
//! kernel version and the trace options:
//!
//! ```text
//!  kworker/u4:1-31907 (31907) [001] d.h3 14063.748288: irq_handler_entry: irq=27 name=arch_timer
//!  TASK-PID           (TGID)  [CPU] FLAGS TIMESTAMP:   EVENT:             FIELDS
//! ```
//!
//! - `TASK` may contain `-`, so the PID is the part after the last `-`.
//! - `(TGID)` is present with the `record-tgid` option. `(-------)` means
//!   the TGID is unknown.
//! - `FLAGS` is absent in the oldest format. Newer kernels print 4 to 7
//!   characters: `d.h3` on older ones, `d.h1.` with the migrate-disable
//!   count on current mainline, and up to 7 where more preemption state is
//!   printed (`dNLh1..`).
//! - `TIMESTAMP` is seconds with 1 to 9 fraction digits.
//!
//! Known events get typed fields ([`EventKind`]). Every other well-formed
//! event (`NAME: FIELDS`) is kept as [`EventKind::Other`], so a trace with
//! events this module does not know still parses. The timerlat tracer's
//! samples (`#1 context irq timer_latency 932 ns`) carry no event name and
//! are kept as `Other` named `timerlat`.
//!
//! Skipped without error: blank lines, comment lines (`#`), `<stack trace>`
//! and `<user stack trace>` events, and their `=>` continuation lines.
//!
//! `trace-cmd report` prints the same event lines after a preamble:
//! `version = 6`, `cpus=4` (kept as [`Trace::cpus`]) and `CPU 2 is empty`
//! lines. Both tools mark the events a full buffer lost, tracefs as
//! `CPU:1 [LOST 12 EVENTS]` and trace-cmd as `CPU:1 [12 EVENTS DROPPED]`
//! or `CPU:1 [EVENTS DROPPED]`; the marks are kept as [`Trace::lost`].
//!
//! The events are sorted by timestamp, because per-CPU buffers make file
//! order differ from time order. Events with equal timestamps keep their
//! file order. Within one CPU, file order must be time order: a timestamp
//! earlier than the CPU's previous one is rejected.
//!
//! ```
//! use std::time::Duration;
//! use irqlab::record::ftrace::Trace;
//!
//! let trace = Trace::parse(
//!     " kworker/0:3-6880  [000]  2784.771958: workqueue_execute_start: work struct ffff8800a5083a20: function fn_a\n\
//!      kworker/0:3-6880  [000]  2784.771966: workqueue_execute_end: work struct ffff8800a5083a20\n",
//! )?;
//! let executions = trace.work_executions();
//! assert_eq!(executions[0].function, "fn_a");
//! assert_eq!(executions[0].duration, Some(Duration::from_micros(8)));
//! # Ok::<(), irqlab::record::FtraceError>(())
//! ```
//!
//! NOTE: lines of the function tracers (`func <-caller`, no colon after the
//! name) are rejected as [`FtraceError::MissingEventColon`].

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::error::{FtraceError, shorten};

/// The name under which timerlat tracer samples are kept.
pub const TIMERLAT_EVENT: &str = "timerlat";

/// The return value of an IRQ handler, from `irq_handler_exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqReturn {
    /// `ret=handled`: the handler serviced its device.
    Handled,
    /// `ret=unhandled`: the interrupt was not from the handler's device.
    Unhandled,
}

/// An event and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `irq_handler_entry: irq=N name=X`.
    IrqHandlerEntry {
        /// Linux IRQ number.
        irq: u32,
        /// Handler (action) name, which may contain spaces.
        name: String,
    },
    /// `irq_handler_exit: irq=N ret=handled|unhandled`.
    IrqHandlerExit {
        /// Linux IRQ number.
        irq: u32,
        /// Handler return value.
        ret: IrqReturn,
    },
    /// `softirq_entry: vec=N [action=X]`.
    SoftirqEntry {
        /// Softirq vector number.
        vec: u32,
        /// Vector name (`RCU`, `TIMER`), when printed.
        action: Option<String>,
    },
    /// `softirq_exit: vec=N [action=X]`.
    SoftirqExit {
        /// Softirq vector number.
        vec: u32,
        /// Vector name, when printed.
        action: Option<String>,
    },
    /// `workqueue_queue_work: work struct=ADDR function=FN workqueue=WQ
    /// req_cpu=N cpu=N`.
    WorkqueueQueueWork {
        /// Address of the `work_struct`.
        work: u64,
        /// Work function.
        function: String,
        /// Workqueue name (an address on old kernels), when printed.
        workqueue: Option<String>,
        /// CPU requested by the caller, when printed.
        req_cpu: Option<u32>,
        /// CPU the work was queued on, when printed.
        cpu: Option<u32>,
    },
    /// `workqueue_activate_work: work struct ADDR`.
    WorkqueueActivateWork {
        /// Address of the `work_struct`.
        work: u64,
    },
    /// `workqueue_execute_start: work struct ADDR: function FN`.
    WorkqueueExecuteStart {
        /// Address of the `work_struct`.
        work: u64,
        /// Work function.
        function: String,
    },
    /// `workqueue_execute_end: work struct ADDR [: function FN]`.
    WorkqueueExecuteEnd {
        /// Address of the `work_struct`.
        work: u64,
        /// Work function, printed only by newer kernels.
        function: Option<String>,
    },
    /// Any other well-formed event, including timerlat samples.
    Other {
        /// Event name, or [`TIMERLAT_EVENT`] for timerlat samples.
        name: String,
        /// Text after the event name, trimmed.
        fields: String,
    },
}

/// One event line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// 1-based line number in the input.
    pub line: usize,
    /// Task name (`<idle>`, or `<...>` when the name was not recorded).
    pub task: String,
    /// Thread ID.
    pub pid: u32,
    /// Thread group ID, when the `(TGID)` column is present and known.
    pub tgid: Option<u32>,
    /// CPU whose buffer recorded the event.
    pub cpu: u32,
    /// The flags column of 4 to 7 characters, absent in the oldest format.
    pub flags: Option<String>,
    /// Timestamp in nanoseconds of the trace clock.
    pub timestamp_ns: u64,
    /// The event and its fields.
    pub kind: EventKind,
}

/// A parsed ftrace text output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The events, sorted by timestamp.
    pub events: Vec<Event>,
    /// The marks of lost events, in file order.
    pub lost: Vec<LostEvents>,
    /// The CPU count from a `trace-cmd report` preamble (`cpus=4`), which
    /// includes CPUs that recorded nothing; the converter names it and
    /// simulates only the CPUs with events.
    pub cpus: Option<u32>,
}

/// A mark of events that a CPU's full buffer lost: the trace is missing
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostEvents {
    /// 1-based line number of the mark.
    pub line: usize,
    /// The CPU whose buffer lost them.
    pub cpu: u32,
    /// The number of events lost, when the mark gives it
    /// (`CPU:1 [EVENTS DROPPED]` does not).
    pub count: Option<u64>,
}

/// The content of one line of a trace.
enum Line {
    /// An event.
    Event(Event),
    /// A mark of lost events.
    Lost(LostEvents),
    /// The CPU count of a `trace-cmd report` preamble.
    Cpus(u32),
    /// Nothing to keep: a blank line, a comment, a stack trace or a
    /// preamble line.
    Skipped,
}

/// One `irq_handler_entry` of an IRQ line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqEntry {
    /// Handler name.
    pub name: String,
    /// CPU that ran the handler.
    pub cpu: u32,
    /// Time since the first event of the trace.
    pub since_start: Duration,
}

/// One execution of a work item, from `workqueue_execute_start` to its
/// `workqueue_execute_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkExecution {
    /// Address of the `work_struct`.
    pub work: u64,
    /// Work function.
    pub function: String,
    /// CPU of the worker.
    pub cpu: u32,
    /// Time from the first event of the trace to the start.
    pub since_start: Duration,
    /// Time from start to end, or `None` when the trace has no end for it.
    pub duration: Option<Duration>,
}

impl Trace {
    /// Parses the whole text of an ftrace output and sorts its events by
    /// timestamp.
    ///
    /// # Errors
    ///
    /// Returns an [`FtraceError`] naming the first invalid line. A line is
    /// invalid when its `[CPU]` column is missing, its task-PID or TGID is
    /// invalid, or its flags are not 4 to 7 characters long. It is also
    /// invalid when its timestamp is invalid or earlier than the one before
    /// it on the same CPU, its event name has no colon, or a known event
    /// has invalid fields.
    pub fn parse(text: &str) -> Result<Self, FtraceError> {
        let mut events: Vec<Event> = Vec::new();
        let mut lost = Vec::new();
        let mut cpus = None;
        let mut last_of_cpu: HashMap<u32, (u64, usize)> = HashMap::new();
        for (index, content) in text.lines().enumerate() {
            let event = match parse_line(index + 1, content)? {
                Line::Event(event) => event,
                Line::Lost(mark) => {
                    lost.push(mark);
                    continue;
                }
                Line::Cpus(count) => {
                    cpus = Some(count);
                    continue;
                }
                Line::Skipped => continue,
            };

            // One CPU's buffer is in time order; a step back means two
            // traces were joined or the file was reordered.
            let previous = last_of_cpu.insert(event.cpu, (event.timestamp_ns, event.line));
            if let Some((previous_ns, previous_line)) = previous
                && event.timestamp_ns < previous_ns
            {
                return Err(FtraceError::TimestampWentBackwards {
                    line: event.line,
                    cpu: event.cpu,
                    previous_line,
                });
            }
            events.push(event);
        }
        events.sort_by_key(|event| event.timestamp_ns);
        Ok(Self { events, lost, cpus })
    }

    /// Returns the timestamp of the first event, or `None` for an empty trace.
    pub fn start_ns(&self) -> Option<u64> {
        self.events.first().map(|event| event.timestamp_ns)
    }

    /// Returns the time from the first event to the last, zero for a trace
    /// with one event or none.
    pub fn span(&self) -> Duration {
        let first = self.start_ns().unwrap_or(0);
        let last = self.events.last().map_or(first, |event| event.timestamp_ns);
        Duration::from_nanos(last.saturating_sub(first))
    }

    /// Collects the `irq_handler_entry` events per IRQ number, in time order.
    pub fn irq_entries(&self) -> BTreeMap<u32, Vec<IrqEntry>> {
        let start = self.start_ns().unwrap_or(0);
        let mut lines: BTreeMap<u32, Vec<IrqEntry>> = BTreeMap::new();
        for event in &self.events {
            if let EventKind::IrqHandlerEntry { irq, name } = &event.kind {
                lines.entry(*irq).or_default().push(IrqEntry {
                    name: name.clone(),
                    cpu: event.cpu,
                    since_start: Duration::from_nanos(event.timestamp_ns - start),
                });
            }
        }
        lines
    }

    /// Pairs each `workqueue_execute_start` with the next
    /// `workqueue_execute_end` of the same work-struct address, in start order.
    ///
    /// An end without a start (the trace began during the execution) is
    /// ignored. A start without an end, or followed by another start of the
    /// same address, gets a `duration` of `None`.
    pub fn work_executions(&self) -> Vec<WorkExecution> {
        let start = self.start_ns().unwrap_or(0);
        let mut executions: Vec<WorkExecution> = Vec::new();
        let mut running: HashMap<u64, (usize, u64)> = HashMap::new();
        for event in &self.events {
            match &event.kind {
                EventKind::WorkqueueExecuteStart { work, function } => {
                    running.insert(*work, (executions.len(), event.timestamp_ns));
                    executions.push(WorkExecution {
                        work: *work,
                        function: function.clone(),
                        cpu: event.cpu,
                        since_start: Duration::from_nanos(event.timestamp_ns - start),
                        duration: None,
                    });
                }
                EventKind::WorkqueueExecuteEnd { work, .. } => {
                    if let Some((index, started_ns)) = running.remove(work) {
                        let elapsed = event.timestamp_ns - started_ns;
                        executions[index].duration = Some(Duration::from_nanos(elapsed));
                    }
                }
                _ => {}
            }
        }
        executions
    }
}

/// Parses one line.
fn parse_line(line: usize, content: &str) -> Result<Line, FtraceError> {
    let trimmed = content.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("=>") {
        return Ok(Line::Skipped);
    }
    if let Some(status) = parse_status(line, trimmed.trim_end()) {
        return Ok(status);
    }

    // Columns before the timestamp.
    let (task_column, after_cpu, cpu) =
        split_at_cpu(content).ok_or_else(|| FtraceError::MissingCpu {
            line,
            text: shorten(trimmed),
        })?;
    let (task, pid, tgid) = parse_task(line, task_column)?;
    let (flags, after_flags) = parse_flags(line, after_cpu.trim_start())?;

    // The timestamp.
    let (stamp, event_text) = split_token(after_flags.trim_start()).unwrap_or(("", ""));
    let timestamp_ns = parse_timestamp(stamp).ok_or_else(|| FtraceError::InvalidTimestamp {
        line,
        text: shorten(stamp),
    })?;

    // The event.
    let event_text = event_text.trim();
    if event_text.starts_with("<stack trace>") || event_text.starts_with("<user stack trace>") {
        return Ok(Line::Skipped);
    }
    let kind = parse_event(line, event_text)?;
    Ok(Line::Event(Event {
        line,
        task,
        pid,
        tgid,
        cpu,
        flags,
        timestamp_ns,
        kind,
    }))
}

/// Parses the lines around the events that `trace-cmd report` and tracefs
/// print: `version = 6`, `cpus=4`, `CPU 2 is empty`, and the marks of lost
/// events. Returns `None` for any other line.
fn parse_status(line: usize, text: &str) -> Option<Line> {
    if let Some(version) = text.strip_prefix("version = ") {
        return is_decimal(version).then_some(Line::Skipped);
    }
    if let Some(count) = text.strip_prefix("cpus=") {
        return parse_decimal(count).map(Line::Cpus);
    }
    if let Some(cpu) = text
        .strip_prefix("CPU ")
        .and_then(|rest| rest.strip_suffix(" is empty"))
    {
        return is_decimal(cpu).then_some(Line::Skipped);
    }
    let (cpu, mark) = text.strip_prefix("CPU:")?.split_once(" [")?;
    let cpu = parse_decimal(cpu)?;
    let mark = mark.strip_suffix(']')?;
    let count = if mark == "EVENTS DROPPED" {
        None
    } else {
        let digits = mark
            .strip_prefix("LOST ")
            .and_then(|rest| rest.strip_suffix(" EVENTS"))
            .or_else(|| mark.strip_suffix(" EVENTS DROPPED"))?;
        Some(parse_decimal(digits)?)
    };
    Some(Line::Lost(LostEvents { line, cpu, count }))
}

/// Finds the first `[CPU]` cell surrounded by whitespace and returns the
/// text before it, the text after it and the CPU number.
fn split_at_cpu(content: &str) -> Option<(&str, &str, u32)> {
    for (open, _) in content.match_indices('[') {
        let before = &content[..open];
        let Some((digits, after)) = content[open + 1..].split_once(']') else {
            continue;
        };
        let spaced_before = before.ends_with(char::is_whitespace);
        let spaced_after = after.is_empty() || after.starts_with(char::is_whitespace);
        if spaced_before
            && spaced_after
            && is_decimal(digits)
            && let Ok(cpu) = digits.parse()
        {
            return Some((before, after, cpu));
        }
    }
    None
}

/// Parses `TASK-PID` and an optional `(TGID)` after it.
fn parse_task(line: usize, column: &str) -> Result<(String, u32, Option<u32>), FtraceError> {
    let column = column.trim();
    let invalid = || FtraceError::InvalidTaskPid {
        line,
        text: shorten(column),
    };

    let (task_pid, tgid) = match column.strip_suffix(')') {
        Some(rest) => {
            let (task_pid, tgid) = rest.rsplit_once('(').ok_or_else(invalid)?;
            let tgid = tgid.trim();
            let tgid = if !tgid.is_empty() && tgid.bytes().all(|b| b == b'-') {
                None
            } else if is_decimal(tgid) {
                Some(tgid.parse().map_err(|_| invalid())?)
            } else {
                return Err(invalid());
            };
            (task_pid.trim_end(), tgid)
        }
        None => (column, None),
    };

    let (task, pid) = task_pid.rsplit_once('-').ok_or_else(invalid)?;
    if !is_decimal(pid) {
        return Err(invalid());
    }
    let pid = pid.parse().map_err(|_| invalid())?;
    Ok((task.to_owned(), pid, tgid))
}

/// Splits an optional flags cell off `text` (trimmed at the start).
///
/// A first cell that starts with a digit or ends with `:` is taken as the
/// timestamp, because flags start with a letter or `.` and have no colon.
fn parse_flags(line: usize, text: &str) -> Result<(Option<String>, &str), FtraceError> {
    let Some((cell, rest)) = split_token(text) else {
        return Ok((None, text));
    };
    if cell.starts_with(|c: char| c.is_ascii_digit()) || cell.ends_with(':') {
        return Ok((None, text));
    }
    match cell.chars().count() {
        4..=7 => Ok((Some(cell.to_owned()), rest)),
        _ => Err(FtraceError::InvalidFlags {
            line,
            text: shorten(cell),
        }),
    }
}

/// Parses `SECONDS.FRACTION:` into nanoseconds.
fn parse_timestamp(cell: &str) -> Option<u64> {
    let (secs, fraction) = cell.strip_suffix(':')?.split_once('.')?;
    if !is_decimal(secs) || !is_decimal(fraction) || fraction.len() > 9 {
        return None;
    }
    let scale = 10u64.pow(9 - fraction.len() as u32);
    let fraction_ns = fraction.parse::<u64>().ok()? * scale;
    secs.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(fraction_ns)
}

/// Parses the text after the timestamp into an event.
fn parse_event(line: usize, text: &str) -> Result<EventKind, FtraceError> {
    if text.starts_with('#') {
        return Ok(EventKind::Other {
            name: TIMERLAT_EVENT.to_owned(),
            fields: text.to_owned(),
        });
    }

    let missing_colon = || FtraceError::MissingEventColon {
        line,
        text: shorten(text),
    };
    let (name, fields) = text.split_once(':').ok_or_else(missing_colon)?;
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(missing_colon());
    }
    let fields = fields.trim();

    let invalid = |expected| FtraceError::InvalidField {
        line,
        event: name.to_owned(),
        text: shorten(fields),
        expected,
    };
    let kind = match name {
        "irq_handler_entry" => {
            let (irq, name) = fields
                .strip_prefix("irq=")
                .and_then(|rest| rest.split_once(" name="))
                .and_then(|(irq, name)| Some((parse_decimal(irq)?, name)))
                .ok_or_else(|| invalid("`irq=N name=NAME`"))?;
            EventKind::IrqHandlerEntry {
                irq,
                name: name.to_owned(),
            }
        }
        "irq_handler_exit" => {
            let expected = "`irq=N ret=handled` or `ret=unhandled`";
            let (irq, ret) = fields
                .strip_prefix("irq=")
                .and_then(|rest| rest.split_once(" ret="))
                .ok_or_else(|| invalid(expected))?;
            let irq = parse_decimal(irq).ok_or_else(|| invalid(expected))?;
            let ret = match ret {
                "handled" => IrqReturn::Handled,
                "unhandled" => IrqReturn::Unhandled,
                _ => return Err(invalid(expected)),
            };
            EventKind::IrqHandlerExit { irq, ret }
        }
        "softirq_entry" | "softirq_exit" => {
            let (vec, action) =
                parse_softirq(fields).ok_or_else(|| invalid("`vec=N [action=NAME]`"))?;
            if name == "softirq_entry" {
                EventKind::SoftirqEntry { vec, action }
            } else {
                EventKind::SoftirqExit { vec, action }
            }
        }
        "workqueue_queue_work" => parse_queue_work(fields).ok_or_else(|| {
            invalid("`work struct=ADDR function=FN` and optional `workqueue=`, `req_cpu=`, `cpu=`")
        })?,
        "workqueue_activate_work" => {
            let work = fields
                .strip_prefix("work struct ")
                .and_then(parse_address)
                .ok_or_else(|| invalid("`work struct ADDR`"))?;
            EventKind::WorkqueueActivateWork { work }
        }
        "workqueue_execute_start" => {
            let (work, function) = fields
                .strip_prefix("work struct ")
                .and_then(|rest| rest.split_once(": function "))
                .and_then(|(work, function)| Some((parse_address(work)?, function)))
                .ok_or_else(|| invalid("`work struct ADDR: function FN`"))?;
            EventKind::WorkqueueExecuteStart {
                work,
                function: function.to_owned(),
            }
        }
        "workqueue_execute_end" => {
            let expected = "`work struct ADDR` and an optional `: function FN`";
            let rest = fields
                .strip_prefix("work struct ")
                .ok_or_else(|| invalid(expected))?;
            let (work, function) = match rest.split_once(": function ") {
                Some((work, function)) => (work, Some(function.to_owned())),
                None => (rest, None),
            };
            let work = parse_address(work).ok_or_else(|| invalid(expected))?;
            EventKind::WorkqueueExecuteEnd { work, function }
        }
        _ => EventKind::Other {
            name: name.to_owned(),
            fields: fields.to_owned(),
        },
    };
    Ok(kind)
}

/// Parses `vec=N` and an optional ` [action=NAME]`.
fn parse_softirq(fields: &str) -> Option<(u32, Option<String>)> {
    let rest = fields.strip_prefix("vec=")?;
    let (vec, action) = match rest.split_once(' ') {
        Some((vec, action)) => {
            let action = action.trim().strip_prefix("[action=")?.strip_suffix(']')?;
            (vec, Some(action.to_owned()))
        }
        None => (rest, None),
    };
    Some((parse_decimal(vec)?, action))
}

/// Parses the `key=value` fields of `workqueue_queue_work`.
fn parse_queue_work(fields: &str) -> Option<EventKind> {
    let mut cells = fields.strip_prefix("work struct=")?.split_whitespace();
    let work = parse_address(cells.next()?)?;
    let (mut function, mut workqueue, mut req_cpu, mut cpu) = (None, None, None, None);
    for cell in cells {
        let (key, value) = cell.split_once('=')?;
        match key {
            "function" => function = Some(value.to_owned()),
            "workqueue" => workqueue = Some(value.to_owned()),
            "req_cpu" => req_cpu = Some(parse_decimal(value)?),
            "cpu" => cpu = Some(parse_decimal(value)?),
            _ => {}
        }
    }
    Some(EventKind::WorkqueueQueueWork {
        work,
        function: function?,
        workqueue,
        req_cpu,
        cpu,
    })
}

/// Parses a kernel pointer printed as hexadecimal, with or without `0x`.
fn parse_address(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Parses a number written in decimal digits only, with no sign or
/// spaces.
fn parse_decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if is_decimal(text) {
        text.parse().ok()
    } else {
        None
    }
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `text` (trimmed at the start) into its first whitespace-delimited
/// cell and the rest, untrimmed.
fn split_token(text: &str) -> Option<(&str, &str)> {
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some(text.split_at(end))
}

#[cfg(test)]
mod tests;
