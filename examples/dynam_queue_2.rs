//! The classic "dynamic queue with a parameter" module: the work item is
//! embedded in a structure together with the data its function needs.
//!
//! In C the function receives only the `work_struct` pointer and recovers
//! the enclosing structure with `container_of`. Here the item is a
//! [`DataWork`] that owns the data, and the function receives the item, so
//! it reaches the data directly, with no pointer arithmetic.
//!
//! The module runs on irqlab's module lifecycle: [`module::load`] runs its
//! init and [`LoadedModule::unload`](module::LoadedModule::unload) its exit.
//! The item is queued through the module's context, so the unload would
//! report and cancel it if the exit left it queued.
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

use driver::module::{self, InitResult, Module, ModuleContext};
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
    // is freed when the last reference goes: the queue's, dropped when this
    // run returns, or the module's and its tracker's, dropped at unload.
}

/// The module's state between init and exit.
struct DynamQueue2 {
    tst_queue_struct: Arc<DataWork<QueueData>>,
}

impl Module for DynamQueue2 {
    const NAME: &'static str = "dynam_queue_2";
    type Params = ();

    /// Module init: allocate the structure with its data, then queue its
    /// item.
    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        printk!(KernLevel::Alert, "Hello, dynamic queue");

        let tst_queue_struct =
            DataWork::new("tst_queue_struct", QueueData { data: 99 }, my_function);
        let queued = ctx.schedule_work(&tst_queue_struct)?;
        debug_assert!(queued);

        Ok(DynamQueue2 { tst_queue_struct })
    }

    /// Module exit.
    fn exit(&mut self, _ctx: &ModuleContext) {
        // Unlike the original module, wait until the item is neither pending
        // nor running before the module goes away. The structure cannot
        // leak either: the unload drops the last references the module and
        // its tracker hold after this exit.
        wq::blocking::cancel_work_sync(&self.tst_queue_struct).expect("called in task context");
        printk!(KernLevel::Alert, "Goodbye, dynamic queue");
    }
}

pub fn main() {
    printk::init_console();
    let loaded = module::load::<DynamQueue2>(()).expect("dynam_queue_2 loads");
    // The module stays loaded until the work has run.
    wq::blocking::flush_work(&loaded.state().tst_queue_struct).expect("called in task context");
    let report = loaded.unload().expect("unloaded in task context");
    debug_assert!(report.is_clean(), "the exit left {report:?}");
}
