//! The classic "dynamic queue" module: a work item allocated and
//! initialized when the module loads, then queued on the system workqueue.
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
//! [alert] Goodbye, dynamic queue
//! ```
//!
//! Run it with `cargo run --example dynam_queue`.

use std::sync::Arc;

use driver::module::{self, InitResult, Module, ModuleContext};
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

impl Module for DynamQueue {
    const NAME: &'static str = "dynam_queue";
    type Params = ();

    /// Module init: allocate and initialize the item (`kmalloc` +
    /// `INIT_WORK`), then queue it.
    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        printk!(KernLevel::Alert, "Hello, dynamic queue");

        let tst_queue_struct = Work::from_fn("tst_queue_struct", my_function);
        let queued = ctx.schedule_work(&tst_queue_struct)?;
        debug_assert!(queued);

        Ok(DynamQueue { tst_queue_struct })
    }

    /// Module exit.
    fn exit(&mut self, _ctx: &ModuleContext) {
        // Unlike the original module, wait until the item is neither pending
        // nor running before the module goes away.
        wq::blocking::cancel_work_sync(&self.tst_queue_struct).expect("called in task context");
        printk!(KernLevel::Alert, "Goodbye, dynamic queue");

        // The item cannot leak: it is freed when its last reference goes.
        // The queue gives up its own when the run ends, and the unload drops
        // the module's and the tracker's after this exit.
    }
}

pub fn main() {
    printk::init_console();
    let loaded = module::load::<DynamQueue>(()).expect("dynam_queue loads");
    // The module stays loaded until the work has run.
    wq::blocking::flush_work(&loaded.state().tst_queue_struct).expect("called in task context");
    let report = loaded.unload().expect("unloaded in task context");
    debug_assert!(report.is_clean(), "the exit left {report:?}");
}
