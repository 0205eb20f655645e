//! The irqlab command.
//!
//! NOTE: until the scenario runner exists, `cargo run` runs the three
//! classic workqueue modules in sequence, each as its example does.

#[path = "../examples/stat_queue.rs"]
mod stat_queue;

#[path = "../examples/dynam_queue.rs"]
mod dynam_queue;

#[path = "../examples/dynam_queue_2.rs"]
mod dynam_queue_2;

/// `irqlab scenario ...`, until the real command line replaces it.
#[derive(clap::Parser)]
#[command(name = "irqlab")]
struct ScenarioCli {
    #[command(subcommand)]
    command: TopCommand,
}

#[derive(clap::Subcommand)]
enum TopCommand {
    /// Make scenario files from recordings of real machines.
    #[command(subcommand)]
    Scenario(irqlab::scenario::convert::ScenarioCommand),
}

fn main() {
    // TODO: the lead's clap `Cli` replaces this dispatch.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "scenario")
    {
        let cli = <ScenarioCli as clap::Parser>::parse();
        let TopCommand::Scenario(command) = cli.command;
        if let Err(error) = irqlab::scenario::convert::run(&command) {
            eprintln!("irqlab: {error}");
            std::process::exit(error.exit_code());
        }
        return;
    }

    println!("irqlab: the three classic workqueue modules, loaded and unloaded in turn\n");
    println!("-- stat_queue: a static work item (DECLARE_WORK)");
    stat_queue::main();
    println!("\n-- dynam_queue: an allocated work item (INIT_WORK)");
    dynam_queue::main();
    println!("\n-- dynam_queue_2: a work item that carries data (container_of)");
    dynam_queue_2::main();
}
