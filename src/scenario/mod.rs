//! Scenarios: what a run simulates, read from TOML.
//!
//! A scenario names the simulated CPUs, the workqueues, the timers and the
//! devices with their IRQ lines and arrival processes, and the per-line
//! top-half budgets. [`Scenario::parse`] reads one from TOML text and
//! checks it whole before anything runs, so that a bad file never starts a
//! partial run. docs/scenarios.md describes every key.
//!
//! The built-in demo is `scenarios/demo.toml`, compiled in: `irqlab` with
//! no `--scenario` runs exactly the file a user can read and copy.

pub mod convert;
mod parse;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use parse::{
    DurationError, MAX_DEVICES, MAX_DURATION, MAX_RATE_HZ, MIN_RATE_HZ, ScenarioError,
    parse_duration,
};

/// The text of the built-in demo scenario, `scenarios/demo.toml`.
pub const DEMO: &str = include_str!("../../scenarios/demo.toml");

/// The name a scenario's source is shown by when it is the built-in demo.
pub const DEMO_SOURCE: &str = "scenarios/demo.toml (built in)";

/// The names of the system workqueues, which every scenario may use
/// without declaring them.
pub const SYSTEM_QUEUES: [&str; 4] = [
    "system_wq",
    "system_highpri_wq",
    "system_long_wq",
    "system_unbound_wq",
];

/// A whole scenario, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The source: a path, or [`DEMO_SOURCE`].
    pub source: String,
    /// Short name, for the report's title.
    pub name: String,
    /// One or two sentences on what the scenario shows.
    pub description: String,
    /// How long arrivals run.
    pub duration: Duration,
    /// Seed of every random arrival process and device.
    pub seed: u64,
    /// The simulated machine.
    pub machine: MachineSpec,
    /// Workqueues the scenario creates, besides the system ones.
    pub workqueues: Vec<WorkqueueSpec>,
    /// Timers: periodic ticks and one-shot expiries.
    pub timers: Vec<TimerSpec>,
    /// Devices with their lines and arrival processes.
    pub devices: Vec<DeviceSpec>,
    /// Per-line top-half budgets and overrun policies.
    pub lines: Vec<LineSpec>,
}

/// The simulated machine.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineSpec {
    /// Simulated CPUs, each an OS thread.
    pub cpus: usize,
    /// The wait method of an idle simulated CPU.
    pub cpu_mode: CpuMode,
    /// Number of IRQ lines.
    pub irqs: u32,
}

/// The wait method of an idle simulated CPU until its next interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// Sleeps; a raise wakes it (a system call per wake-up).
    Blocking,
    /// Spins: the lowest latency, a whole host core per CPU.
    BusyPoll,
}

/// A workqueue the scenario creates.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkqueueSpec {
    /// Name, as devices refer to it.
    pub name: String,
    /// Work items of this queue that may run at once.
    pub max_active: u32,
    /// One item at a time, in queueing order (`alloc_ordered_workqueue`).
    pub ordered: bool,
    /// `WQ_HIGHPRI`: its own high-priority workers.
    pub highpri: bool,
}

/// A timer: a CPU's local timer on a line.
#[derive(Clone, Debug, PartialEq)]
pub struct TimerSpec {
    /// Name, shown in reports.
    pub name: String,
    /// The line the timer raises.
    pub irq: u32,
    /// The CPU whose local timer it is.
    pub cpu: usize,
    /// Periodic or one-shot.
    pub kind: TimerKind,
    /// The queue its bottom half runs on.
    pub workqueue: String,
}

/// The behaviour of a timer.
#[derive(Clone, Debug, PartialEq)]
pub enum TimerKind {
    /// A periodic tick, as the kernel's tick: the top half counts
    /// jiffies, and a housekeeping item runs every `housekeeping` on the
    /// timer's queue.
    Periodic {
        /// Time between ticks.
        period: Duration,
        /// Time between housekeeping runs.
        housekeeping: Duration,
    },
    /// One-shot expiries at the given offsets from the start; each one's
    /// top half queues a work item.
    Oneshot {
        /// Expiry offsets from the start, increasing.
        at: Vec<Duration>,
    },
}

/// A device: a model of a kind, on a line, driven by an arrival process.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSpec {
    /// Name, shown in reports; unique.
    pub name: String,
    /// The line the device raises.
    pub irq: u32,
    /// The CPU the line is routed to.
    pub cpu: usize,
    /// The line's trigger type.
    pub trigger: Trigger,
    /// The line may be shared with other devices (`IRQF_SHARED`).
    pub shared: bool,
    /// The queue the device's bottom half runs on.
    pub workqueue: String,
    /// The device model.
    pub kind: DeviceKind,
    /// When events reach the device.
    pub arrival: ArrivalSpec,
}

/// The trigger type of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered.
    Edge,
    /// Level-triggered.
    Level,
}

impl Trigger {
    /// Returns the name used in scenario files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::Level => "level",
        }
    }
}

/// A device model and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceKind {
    /// A NIC with an RX ring, polled NAPI-style.
    Nic {
        /// RX ring entries.
        ring: usize,
        /// Packets per poll (NAPI weight).
        napi_budget: usize,
    },
    /// A UART with a 16-byte FIFO; each event is one byte of a text line.
    Uart {
        /// Bytes per line; the last one is a newline.
        line_length: usize,
        /// FIFO bytes that raise the line, 1 to 16.
        trigger_level: usize,
        /// Line speed, which sets the character timeout (four character
        /// times of 10 bits).
        baud: u32,
    },
    /// A block device: each event submits a request that completes after
    /// the service time.
    Block {
        /// Time each request takes; the device serves one at a time, so a
        /// request waits for those queued before it.
        service_time: Duration,
        /// Requests queued, in service or completed and not yet read, at
        /// most; more are rejected and counted.
        depth: usize,
    },
    /// A GPIO button: each event is a press or a release, which bounces.
    Gpio {
        /// Extra edges per press or release, at most.
        bounces: u32,
        /// Time between bounce edges.
        bounce_gap: Duration,
        /// Quiet time before the level counts.
        debounce: Duration,
    },
    /// A device with a status register: the top half reads and clears it
    /// and queues a work item that spends `work` of CPU time. Recordings
    /// of real machines become generic devices.
    Generic {
        /// Name of its handler, as `/proc/interrupts` shows it.
        handler: String,
        /// CPU time each bottom-half run spends (a busy loop).
        work: Duration,
    },
}

impl DeviceKind {
    /// Returns the kind's name in scenario files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Nic { .. } => "nic",
            Self::Uart { .. } => "uart",
            Self::Block { .. } => "block",
            Self::Gpio { .. } => "gpio",
            Self::Generic { .. } => "generic",
        }
    }
}

/// When events reach a device.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrivalSpec {
    /// One event every `period`.
    Periodic {
        /// Time between events.
        period: Duration,
    },
    /// Exponential gaps with a mean rate.
    Poisson {
        /// Mean events per second.
        rate_hz: f64,
    },
    /// Periodic events for `on`, then silence for `off`, repeated.
    Bursts {
        /// Time between events inside a burst.
        period: Duration,
        /// Length of a burst.
        on: Duration,
        /// Silence between bursts.
        off: Duration,
    },
    /// The recorded entries of one line in an ftrace text file, at their
    /// recorded times relative to the trace's first event. On a shared
    /// line the file's `handler` key keeps the entries of one handler, one
    /// per interrupt.
    Replay {
        /// The ftrace file, resolved against the scenario's folder.
        file: PathBuf,
        /// The recorded line whose entries are replayed.
        irq: u32,
        /// The offsets read from the file.
        offsets: Vec<Duration>,
    },
}

impl ArrivalSpec {
    /// Returns the process's name in scenario files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Periodic { .. } => "periodic",
            Self::Poisson { .. } => "poisson",
            Self::Bursts { .. } => "bursts",
            Self::Replay { .. } => "replay",
        }
    }

    /// Returns the irq-sim arrival process, seeded with `seed`.
    pub fn to_arrival(&self, seed: u64) -> irq_sim::arrival::Arrival {
        use irq_sim::arrival::Arrival;
        match self {
            Self::Periodic { period } => Arrival::Periodic { period: *period },
            Self::Poisson { rate_hz } => Arrival::Poisson {
                rate_hz: *rate_hz,
                seed,
            },
            Self::Bursts { period, on, off } => Arrival::Bursts {
                on: *on,
                off: *off,
                period: *period,
            },
            Self::Replay { offsets, .. } => Arrival::Replay {
                offsets: offsets.clone(),
            },
        }
    }

    /// Returns the mean events per second the process requests, averaged
    /// over `duration` for a replay.
    pub fn mean_rate_hz(&self, duration: Duration) -> f64 {
        match self {
            Self::Periodic { period } => 1.0 / period.as_secs_f64(),
            Self::Poisson { rate_hz } => *rate_hz,
            Self::Bursts { period, on, off } => {
                let per_burst = (on.as_secs_f64() / period.as_secs_f64()).ceil();
                per_burst / (*on + *off).as_secs_f64()
            }
            Self::Replay { offsets, .. } => {
                let within = offsets.iter().filter(|at| **at <= duration).count();
                within as f64 / duration.as_secs_f64().max(f64::MIN_POSITIVE)
            }
        }
    }
}

/// A line's top-half budget and overrun policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineSpec {
    /// The line.
    pub irq: u32,
    /// The longest CPU time one top half may take.
    pub budget: Duration,
    /// The action taken on an overrun.
    pub overrun: irq_sim::OverrunPolicy,
}

/// Values from the command line that replace a scenario's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Simulated CPUs (`--cpus`), instead of `machine.cpus`; 1 to
    /// [`irq_sim::machine::MAX_CPUS`].
    pub cpus: Option<usize>,
}

impl Scenario {
    /// Reads a scenario from TOML `text`. `source` names it in errors and
    /// reports; `base` is the folder relative paths in it (replayed
    /// recordings) are resolved against.
    ///
    /// # Errors
    ///
    /// A [`ScenarioError`] naming the source, the line and the key, for
    /// TOML that does not parse, unknown keys, wrong types, and values that
    /// are out of range or contradict each other.
    pub fn parse(text: &str, source: &str, base: &Path) -> Result<Self, ScenarioError> {
        parse::parse(text, source, base, Overrides::default())
    }

    /// Reads a scenario as [`Scenario::parse`] does, with `overrides`
    /// replacing the text's own values before the checks that depend on
    /// them.
    ///
    /// # Errors
    ///
    /// As [`Scenario::parse`]; a CPU of a timer or device that lies
    /// beyond an overriding CPU count is reported at that timer's or
    /// device's `cpu` key.
    pub fn parse_with(
        text: &str,
        source: &str,
        base: &Path,
        overrides: Overrides,
    ) -> Result<Self, ScenarioError> {
        parse::parse(text, source, base, overrides)
    }

    /// Reads the scenario file at `path`.
    ///
    /// # Errors
    ///
    /// [`ScenarioError`] when the file cannot be read or is not a valid
    /// scenario.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        Self::load_with(path, Overrides::default())
    }

    /// Reads the scenario file at `path` with `overrides`, as
    /// [`Scenario::parse_with`] does.
    ///
    /// # Errors
    ///
    /// [`ScenarioError`] when the file cannot be read or is not a valid
    /// scenario with the overrides.
    pub fn load_with(path: &Path, overrides: Overrides) -> Result<Self, ScenarioError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read {
            source_name: source.clone(),
            error: error.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_with(&text, &source, base, overrides)
    }

    /// Returns the built-in demo.
    pub fn demo() -> Self {
        Self::demo_with(Overrides::default()).expect("scenarios/demo.toml is checked by the tests")
    }

    /// Returns the built-in demo with `overrides`.
    ///
    /// # Errors
    ///
    /// [`ScenarioError`] when an override contradicts the demo, such as a
    /// CPU count that leaves out a device's CPU.
    pub fn demo_with(overrides: Overrides) -> Result<Self, ScenarioError> {
        Self::parse_with(
            DEMO,
            DEMO_SOURCE,
            Path::new(env!("CARGO_MANIFEST_DIR")),
            overrides,
        )
    }

    /// Returns the names of all queues the scenario uses, system queues
    /// first, in the order they appear.
    pub fn queue_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let used = self
            .timers
            .iter()
            .map(|timer| timer.workqueue.as_str())
            .chain(self.devices.iter().map(|device| device.workqueue.as_str()));
        for name in used.chain(self.workqueues.iter().map(|queue| queue.name.as_str())) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Returns the mean interrupts per second the scenario's timers and
    /// devices ask for.
    pub fn mean_rate_hz(&self) -> f64 {
        let timers: f64 = self
            .timers
            .iter()
            .map(|timer| match &timer.kind {
                TimerKind::Periodic { period, .. } => 1.0 / period.as_secs_f64(),
                TimerKind::Oneshot { at } => {
                    at.len() as f64 / self.duration.as_secs_f64().max(f64::MIN_POSITIVE)
                }
            })
            .sum();
        let devices: f64 = self
            .devices
            .iter()
            .map(|device| device.arrival.mean_rate_hz(self.duration))
            .sum();
        timers + devices
    }
}
