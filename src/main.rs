//! The irqlab command.
//!
//! NOTE: until the scenario runner exists, `cargo run` runs the three
//! classic workqueue modules in sequence, each as its example does, and
//! `irqlab latency` is the one subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use irqlab::latency::LatencyArgs;

#[path = "../examples/stat_queue.rs"]
mod stat_queue;

#[path = "../examples/dynam_queue.rs"]
mod dynam_queue;

#[path = "../examples/dynam_queue_2.rs"]
mod dynam_queue_2;

/// Simulate interrupt-driven device drivers in userspace.
#[derive(Parser)]
#[command(name = "irqlab", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Measure IRQ and thread latency per deferral mechanism (like rtla
    /// timerlat hist), or plot a result.
    Latency(LatencyArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Some(Command::Latency(args)) => match irqlab::latency::run(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        None => {
            run_classic_modules();
            ExitCode::SUCCESS
        }
    }
}

fn run_classic_modules() {
    println!("irqlab: the three classic workqueue modules, loaded and unloaded in turn\n");
    println!("-- stat_queue: a static work item (DECLARE_WORK)");
    stat_queue::main();
    println!("\n-- dynam_queue: an allocated work item (INIT_WORK)");
    dynam_queue::main();
    println!("\n-- dynam_queue_2: a work item that carries data (container_of)");
    dynam_queue_2::main();
}
