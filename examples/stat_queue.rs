//! The classic "static queue" module: a work item declared at compile time
//! and queued on the system workqueue when the module loads.
//!
//! Expected output (checked by `tests/examples_golden.rs`):
//!
//! ```text
//! [alert] Hello, static queue
//! [warn] call function from queue
//! [alert] Goodbye, static queue
//! ```
//!
//! Run it with `cargo run --example stat_queue`.

use driver::printk;
use driver::printk::KernLevel;
use wq::Work;

/// Prints the work's message. It runs later, in task context on a worker
/// of `system_wq`, where it could sleep.
fn my_function() {
    printk!("call function from queue");
}

/// The work item, made at compile time as `DECLARE_WORK` makes one.
static TST_QUEUE_STRUCT: Work = Work::new("tst_queue_struct", my_function);

/// Module init: greet, then defer `my_function` to the system workqueue.
fn init_stat_queue() {
    printk!(KernLevel::Alert, "Hello, static queue");

    // Queueing only links the item; it returns at once, before the function
    // runs. `true`: the item was idle and is now pending.
    let queued = wq::schedule_work(&TST_QUEUE_STRUCT).expect("system_wq is never destroyed");
    debug_assert!(queued);
}

/// Module exit.
fn cleanup_stat_queue() {
    // Unlike the original module, wait for the work before unloading: a
    // module whose code is unloaded while its work item is still queued
    // leaves the kernel to call into freed memory.
    wq::blocking::cancel_work_sync(&TST_QUEUE_STRUCT).expect("called in task context");
    printk!(KernLevel::Alert, "Goodbye, static queue");
}

pub fn main() {
    printk::init_console();
    init_stat_queue();
    // The module stays loaded until the work has run, as it would while a
    // user waits before `rmmod`.
    wq::blocking::flush_work(&TST_QUEUE_STRUCT).expect("called in task context");
    cleanup_stat_queue();
}
