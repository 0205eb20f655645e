//! The classic "static queue" module: a work item declared at compile time
//! and queued on the system workqueue when the module loads.
//!
//! The module runs on irqlab's module lifecycle: [`module::load`] runs its
//! init and [`LoadedModule::unload`](module::LoadedModule::unload) its exit.
//! The item is queued through the module's context, so the unload would
//! report and cancel it if the exit left it queued.
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

use driver::module::{self, InitResult, Module, ModuleContext};
use driver::printk;
use driver::printk::KernLevel;
use wq::Work;

/// Prints the work's message. It runs later, in task context on a worker
/// of `system_wq`, not in the module's init.
fn my_function() {
    printk!("call function from queue");
}

/// The work item, made at compile time as `DECLARE_WORK` makes one.
static TST_QUEUE_STRUCT: Work = Work::new("tst_queue_struct", my_function);

/// The module. It keeps no state: its work item is a `static`.
struct StatQueue;

impl Module for StatQueue {
    const NAME: &'static str = "stat_queue";
    type Params = ();

    /// Module init: greet, then defer `my_function` to the system workqueue.
    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        printk!(KernLevel::Alert, "Hello, static queue");

        // Queueing only links the item; it returns at once, before the
        // function runs. `true`: the item was idle and is now pending.
        let queued = ctx.schedule_work(&TST_QUEUE_STRUCT)?;
        debug_assert!(queued);
        Ok(StatQueue)
    }

    /// Module exit.
    fn exit(&mut self, _ctx: &ModuleContext) {
        // Unlike the original module, wait for the work before unloading: a
        // module whose code is unloaded while its work item is still queued
        // leaves the kernel to call into freed memory.
        wq::blocking::cancel_work_sync(&TST_QUEUE_STRUCT).expect("called in task context");
        printk!(KernLevel::Alert, "Goodbye, static queue");
    }
}

pub fn main() {
    printk::init_console();
    let loaded = module::load::<StatQueue>(()).expect("stat_queue loads");
    // The module stays loaded until the work has run, as it would while a
    // user waits before `rmmod`.
    wq::blocking::flush_work(&TST_QUEUE_STRUCT).expect("called in task context");
    let report = loaded.unload().expect("unloaded in task context");
    debug_assert!(report.is_clean(), "the exit left {report:?}");
}
