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

fn main() {
    println!("irqlab: the three classic workqueue modules, loaded and unloaded in turn\n");
    println!("-- stat_queue: a static work item (DECLARE_WORK)");
    stat_queue::main();
    println!("\n-- dynam_queue: an allocated work item (INIT_WORK)");
    dynam_queue::main();
    println!("\n-- dynam_queue_2: a work item that carries data (container_of)");
    dynam_queue_2::main();
}
