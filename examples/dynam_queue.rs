//! The classic "dynamic queue" module: a work item allocated and
//! initialized when the module loads, then queued on the system workqueue.
//!
//! Expected output (checked by `tests/examples_golden.rs`):
//!
//! ```text
//! [alert] Hello, dynamic queue
//! [warn] call function from queue
//! [alert] Goodbye, dynamic queue
//! ```
//!
//! Run it with `cargo run --example dynam_queue`.

use std::sync::Arc;

use driver::printk;
use driver::printk::KernLevel;
use wq::Work;

/// Prints the work's message. It runs later, in task context on a worker
/// of `system_wq`.
fn my_function() {
    printk!("call function from queue");
}

/// The module's state between init and exit.
struct DynamQueue {
    /// The allocated work item. The original module kept no pointer to its
    /// `kmalloc`ed item, so it could never free it: a leak on every load.
    tst_queue_struct: Arc<Work>,
}

/// Module init: allocate and initialize the item (`kmalloc` + `INIT_WORK`),
/// then queue it.
fn init_dynam_queue() -> DynamQueue {
    printk!(KernLevel::Alert, "Hello, dynamic queue");

    let tst_queue_struct = Work::from_fn("tst_queue_struct", my_function);
    let queued = wq::schedule_work(&tst_queue_struct).expect("system_wq is never destroyed");
    debug_assert!(queued);

    DynamQueue { tst_queue_struct }
}

/// Module exit.
fn cleanup_dynam_queue(module: DynamQueue) {
    // Unlike the original module, wait until the item is neither pending
    // nor running before the module goes away.
    wq::blocking::cancel_work_sync(&module.tst_queue_struct).expect("called in task context");
    printk!(KernLevel::Alert, "Goodbye, dynamic queue");

    // The item cannot leak: it is freed when its last reference goes, and
    // the queue gives up its own when the run ends, so dropping `module`
    // leaves nothing behind.
    drop(module);
}

pub fn main() {
    printk::init_console();
    let module = init_dynam_queue();
    // The module stays loaded until the work has run.
    wq::blocking::flush_work(&module.tst_queue_struct).expect("called in task context");
    cleanup_dynam_queue(module);
}
