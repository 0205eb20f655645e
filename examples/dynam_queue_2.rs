//! The classic "dynamic queue with a parameter" module: the work item is
//! embedded in a structure together with the data its function needs.
//!
//! In C the function receives only the `work_struct` pointer and recovers
//! the enclosing structure with `container_of`. Here the item is a
//! [`DataWork`] that owns the data, and the function receives the item, so
//! it reaches the data directly, with no pointer arithmetic.
//!
//! Expected output (checked by `tests/examples_golden.rs`):
//!
//! ```text
//! [alert] Hello, dynamic queue
//! [warn] call function from queue
//! [warn] function param: data=99
//! [alert] Goodbye, dynamic queue
//! ```
//!
//! Run it with `cargo run --example dynam_queue_2`.

use std::sync::Arc;

use driver::printk;
use driver::printk::KernLevel;
use wq::DataWork;

/// The data passed to the deferred function.
struct QueueData {
    data: i32,
}

/// Prints the item's data. It runs later, in task context on a worker of
/// `system_wq`, and reaches the data through the item.
fn my_function(item: &Arc<DataWork<QueueData>>) {
    printk!("call function from queue");
    printk!("function param: data={}", item.data);
    // The C function ends with `kfree` of the structure. Here the structure
    // is freed when the last of two references goes: the queue's, dropped
    // when this run returns, or the module's, dropped at exit.
}

/// The module's state between init and exit.
struct DynamQueue2 {
    tst_queue_struct: Arc<DataWork<QueueData>>,
}

/// Module init: allocate the structure with its data, then queue its item.
fn init_dynam_queue() -> DynamQueue2 {
    printk!(KernLevel::Alert, "Hello, dynamic queue");

    let tst_queue_struct = DataWork::new("tst_queue_struct", QueueData { data: 99 }, my_function);
    let queued = wq::schedule_work(&tst_queue_struct).expect("system_wq is never destroyed");
    debug_assert!(queued);

    DynamQueue2 { tst_queue_struct }
}

/// Module exit.
fn cleanup_dynam_queue(module: DynamQueue2) {
    // Unlike the original module, wait until the item is neither pending
    // nor running before the module goes away. The structure cannot leak
    // either, because dropping `module` gives up the last reference the
    // module holds.
    wq::blocking::cancel_work_sync(&module.tst_queue_struct).expect("called in task context");
    printk!(KernLevel::Alert, "Goodbye, dynamic queue");
    drop(module);
}

pub fn main() {
    printk::init_console();
    let module = init_dynam_queue();
    // The module stays loaded until the work has run.
    wq::blocking::flush_work(&module.tst_queue_struct).expect("called in task context");
    cleanup_dynam_queue(module);
}
