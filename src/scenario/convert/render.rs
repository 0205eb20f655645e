//! The scenario a conversion plans, and its TOML text with comments.

use std::fmt::Write as _;
use std::time::Duration;

use crate::scenario::Trigger;

/// A scenario to write: the values and the comments that explain them.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Comment lines at the top of the file, without the `# `.
    pub header: Vec<String>,
    pub description: String,
    pub duration: Duration,
    pub cpus: usize,
    pub irqs: u32,
    pub devices: Vec<PlannedDevice>,
    pub timers: Vec<PlannedTimer>,
    /// Comment blocks at the end of the file: what was not simulated and why.
    pub notes: Vec<Note>,
}

/// A generic device.
#[derive(Debug)]
pub(super) struct PlannedDevice {
    /// Comment lines above the table, without the `# `.
    pub comments: Vec<String>,
    pub name: String,
    pub handler: String,
    pub irq: u32,
    pub cpu: usize,
    pub trigger: Trigger,
    pub shared: bool,
    /// CPU time of each bottom-half run; `None` leaves the key out (zero).
    pub work: Option<Duration>,
    pub arrival: PlannedArrival,
}

/// The arrival process of a planned device.
#[derive(Clone, Debug)]
pub(super) enum PlannedArrival {
    /// Exponential gaps at a mean rate, in events per second.
    Poisson { rate_hz: f64 },
    /// Even gaps at a rate, in events per second.
    Periodic { rate_hz: f64 },
    /// The entries of `irq` in an ftrace file, of one handler when given.
    Replay {
        file: String,
        irq: u32,
        handler: Option<String>,
    },
}

/// A periodic local timer.
#[derive(Debug)]
pub(super) struct PlannedTimer {
    pub comments: Vec<String>,
    pub name: String,
    pub irq: u32,
    pub cpu: usize,
    pub period: Duration,
}

/// A titled comment block.
#[derive(Debug)]
pub(super) struct Note {
    pub title: String,
    pub lines: Vec<String>,
}

/// Returns `text` as a TOML string literal.
pub(super) fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Returns `value` as a TOML float that parses back to the same `f64`.
pub(super) fn toml_float(value: f64) -> String {
    toml::Value::Float(value).to_string()
}

/// Formats a duration in the largest of s, ms, us and ns that keeps it
/// exact, in the form [`crate::scenario::parse_duration`] reads.
pub(super) fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0ns".to_owned();
    }
    for (unit, scale) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
        if nanos.is_multiple_of(scale) {
            return format!("{}{unit}", nanos / scale);
        }
    }
    format!("{nanos}ns")
}

pub(super) use crate::report::counted;

/// Formats events per second for a comment: whole numbers from 100 up,
/// at most four significant digits below.
pub(super) fn format_rate(rate_hz: f64) -> String {
    if rate_hz >= 100.0 || rate_hz == 0.0 {
        format!("{rate_hz:.0}/s")
    } else {
        let digits = (3 - rate_hz.log10().floor() as i32).clamp(0, 12) as usize;
        let fixed = format!("{rate_hz:.digits$}");
        let trimmed = if fixed.contains('.') {
            fixed.trim_end_matches('0').trim_end_matches('.')
        } else {
            &fixed
        };
        format!("{trimmed}/s")
    }
}

impl Plan {
    /// Writes the plan as scenario TOML.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            push_comment(&mut out, line);
        }
        out.push('\n');

        // `name` is left out, so that the scenario is named after its file.
        writeln!(out, "description = {}", toml_string(&self.description)).unwrap();
        writeln!(
            out,
            "duration = {}",
            toml_string(&format_duration(self.duration))
        )
        .unwrap();
        out.push_str("\n[machine]\n");
        writeln!(out, "cpus = {}", self.cpus).unwrap();
        writeln!(out, "irqs = {}", self.irqs).unwrap();

        for timer in &self.timers {
            out.push('\n');
            for line in &timer.comments {
                push_comment(&mut out, line);
            }
            out.push_str("[[timer]]\n");
            writeln!(out, "name = {}", toml_string(&timer.name)).unwrap();
            writeln!(out, "irq = {}", timer.irq).unwrap();
            writeln!(out, "cpu = {}", timer.cpu).unwrap();
            writeln!(
                out,
                "period = {}",
                toml_string(&format_duration(timer.period))
            )
            .unwrap();
        }

        for device in &self.devices {
            out.push('\n');
            render_device(&mut out, device);
        }

        for note in &self.notes {
            out.push('\n');
            push_comment(&mut out, &note.title);
            for line in &note.lines {
                push_comment(&mut out, &format!("  {line}"));
            }
        }
        out
    }
}

fn render_device(out: &mut String, device: &PlannedDevice) {
    for line in &device.comments {
        push_comment(out, line);
    }

    out.push_str("[[device]]\n");
    writeln!(out, "name = {}", toml_string(&device.name)).unwrap();
    out.push_str("kind = \"generic\"\n");
    writeln!(out, "handler = {}", toml_string(&device.handler)).unwrap();
    writeln!(out, "irq = {}", device.irq).unwrap();
    writeln!(out, "cpu = {}", device.cpu).unwrap();
    writeln!(out, "trigger = \"{}\"", device.trigger.as_str()).unwrap();
    if device.shared {
        out.push_str("shared = true\n");
    }
    if let Some(work) = device.work {
        writeln!(out, "work = {}", toml_string(&format_duration(work))).unwrap();
    }

    let arrival = match &device.arrival {
        PlannedArrival::Poisson { rate_hz } => {
            format!(
                "{{ process = \"poisson\", rate = {} }}",
                toml_float(*rate_hz)
            )
        }
        PlannedArrival::Periodic { rate_hz } => {
            format!(
                "{{ process = \"periodic\", rate = {} }}",
                toml_float(*rate_hz)
            )
        }
        PlannedArrival::Replay { file, irq, handler } => {
            let handler = handler
                .as_ref()
                .map(|name| format!(", handler = {}", toml_string(name)))
                .unwrap_or_default();
            format!(
                "{{ process = \"replay\", file = {}, irq = {irq}{handler} }}",
                toml_string(file)
            )
        }
    };
    writeln!(out, "arrival = {arrival}").unwrap();
}

/// Appends `text` as comment lines, one per line of `text`. Control
/// characters, which recorded names may carry and TOML comments may not,
/// are written escaped.
fn push_comment(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            for c in line.chars() {
                if c.is_control() {
                    out.extend(c.escape_default());
                } else {
                    out.push(c);
                }
            }
            out.push('\n');
        }
    }
    if text.is_empty() {
        out.push_str("#\n");
    }
}
