//! Exercise 4: a module unloaded while its work runs.
//!
//! The `heartbeat` module queues a delayed work item that sends a beat to
//! a slow device, 200 ms of blocking work, and then queues itself again.
//! The program unloads the module while the first beat runs. Its exit
//! prints goodbye and returns, and the beat goes on, about to queue the
//! next one. In the kernel the beat would run code that `rmmod` has
//! already freed. irqlab's unload finds the running item, warns, waits for
//! it and lists it in the `UnloadReport`, and this program fails because
//! the report is not clean.
//!
//! Your task: make the exit cancel the heartbeat and wait until it is
//! neither pending nor running. Then run
//!
//! ```sh
//! cargo run --example ex4_unload_pending
//! ```
//!
//! until it prints `ok:`. The solution is in
//! `examples/solutions/ex4_unload_pending.rs`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use driver::module::{self, InitResult, Module, ModuleContext};
use driver::printk;
use driver::printk::KernLevel;
use wq::DelayedWork;

/// Time between two beats.
const PERIOD: Duration = Duration::from_millis(100);

/// Time a beat takes: the slow device's write.
const BEAT_TIME: Duration = Duration::from_millis(200);

/// Beats logged so far.
static BEATS: AtomicU32 = AtomicU32::new(0);

/// The work function: sends a beat, then queues the next one.
fn beat() {
    let count = BEATS.fetch_add(1, Ordering::SeqCst) + 1;
    printk!(KernLevel::Info, "heartbeat: beat {count}");
    std::thread::sleep(BEAT_TIME);
    // A disabled item (during a cancel or an unload) is not queued: false.
    let _ = wq::queue_delayed_work(wq::system_long_wq(), &HEARTBEAT, PERIOD);
}

/// The heartbeat's work item, made at compile time (`DECLARE_DELAYED_WORK`).
static HEARTBEAT: DelayedWork = DelayedWork::new("heartbeat", beat);

/// The module. It keeps no state: its work item is a `static`.
struct Heartbeat;

impl Module for Heartbeat {
    const NAME: &'static str = "heartbeat";
    type Params = ();

    fn init(ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        printk!(KernLevel::Info, "heartbeat: loaded");
        // The first beat in one period, on the queue for blocking work.
        // Queued through the context, so the unload tracks the item.
        ctx.queue_delayed_work(wq::system_long_wq(), &HEARTBEAT, PERIOD)?;
        Ok(Heartbeat)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {
        // EXERCISE: a beat may be running, and it queues the next one.
        printk!(KernLevel::Info, "heartbeat: goodbye");
    }
}

fn main() -> ExitCode {
    printk::init_console();
    let loaded = module::load::<Heartbeat>(()).expect("heartbeat loads");

    // A module must survive `rmmod` at any moment: unload it while the
    // first beat runs.
    while BEATS.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let report = loaded.unload().expect("main may block");

    if report.is_clean() {
        println!("ok: the module left nothing behind");
        ExitCode::SUCCESS
    } else {
        let leftovers: Vec<String> = report.leftovers.iter().map(ToString::to_string).collect();
        println!("FAIL: the exit left {}", leftovers.join(", "));
        ExitCode::FAILURE
    }
}
