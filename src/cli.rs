//! The command line: `irqlab [OPTIONS]` runs a scenario; subcommands do
//! the rest.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Simulate interrupt-driven drivers in userspace: top halves, workqueues
/// and their latency.
///
/// With no arguments, runs the built-in demo scenario (scenarios/demo.toml:
/// a timer tick, a NIC, a UART, a block device and a GPIO button) for 4
/// seconds and prints the report.
#[derive(Debug, Parser)]
#[command(name = "irqlab", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// The subcommand; a scenario run when left out.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of a scenario run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario (the default when no subcommand is given).
    Run(RunArgs),
    /// Measure IRQ and thread latency per deferral mechanism beside
    /// same-run baselines (like rtla timerlat hist), or plot a result.
    Latency(irqlab::latency::LatencyArgs),
    /// Make a scenario from recordings of a real machine.
    Scenario {
        /// The kind of recording.
        #[command(subcommand)]
        command: irqlab::scenario::convert::ScenarioCommand,
    },
    /// Load and unload the three classic workqueue modules (a static work
    /// item, an allocated one, one that carries data), each printing what
    /// its C original prints.
    Classic,
}

/// Options of a scenario run.
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    /// Scenario file (TOML; see docs/scenarios.md). Default: the built-in
    /// demo, scenarios/demo.toml.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,

    /// How long arrivals run, with a unit: 500ms, 10s, 1.5s. Default: the
    /// scenario's `duration` (4s for the demo).
    #[arg(long, value_name = "DURATION", value_parser = irqlab::scenario::convert::parse_run_duration, allow_hyphen_values = true)]
    pub duration: Option<std::time::Duration>,

    /// Seed of every random arrival process and device, so that a run can
    /// be repeated (0 to 2^63-1, as in a scenario file). Default: the
    /// scenario's `seed` (1 for the demo).
    #[arg(long, value_name = "N", value_parser = parse_seed, allow_hyphen_values = true)]
    pub seed: Option<u64>,

    /// Number of simulated CPUs, each an OS thread (1 to 64). Default: the
    /// scenario's `machine.cpus` (2 for the demo).
    #[arg(long, value_name = "N", value_parser = parse_cpus, allow_hyphen_values = true)]
    pub cpus: Option<usize>,

    /// Also write the report as JSON to FILE; "-" writes it to standard
    /// output instead of the text report.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write a timeline of the run to FILE in the Chrome trace event
    /// format, for the Performance panel of Chromium's or Chrome's
    /// DevTools (docs/timeline.md).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Print no progress line and no text report; errors still go to
    /// standard error. Useful with --json.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Parses `--seed`: a whole number from 0 to 2^63-1, as a scenario file
/// takes.
fn parse_seed(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|seed| *seed <= i64::MAX as u64)
        .ok_or_else(|| "expected a whole number from 0 to 2^63-1".to_owned())
}

/// Parses `--cpus`: a whole number from 1 to 64. The scenario's checks
/// then hold its timers and devices against it (`Scenario::load_with`).
fn parse_cpus(value: &str) -> Result<usize, String> {
    let max = irq_sim::machine::MAX_CPUS;
    value
        .trim()
        .parse()
        .ok()
        .filter(|cpus| (1..=max).contains(cpus))
        .ok_or_else(|| format!("expected a whole number from 1 to {max}"))
}
