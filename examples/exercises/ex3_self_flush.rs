//! Exercise 3: a work item that flushes itself.
//!
//! A logger's work item copies the readings collected so far into its
//! log. Its author worried that two runs could overlap, so the work
//! function first waits for "the previous run" with `flush_work` on its own
//! item. But the run in progress is the one calling: in the kernel that
//! flush would wait forever and hang the worker. irqlab returns
//! `WaitError::SelfWait` at once instead; the function logs the error and
//! returns without logging anything, and this program fails.
//!
//! Your task: remove the wait. The logger is queued only on `system_wq`,
//! and a work item queued on one workqueue never runs concurrently with
//! itself, so there is nothing to wait for. The kernel promises that within
//! one workqueue only, but irqlab keeps it across queues too. Then run
//!
//! ```sh
//! cargo run --example ex3_self_flush
//! ```
//!
//! until it prints `ok:`. The solution is in
//! `examples/solutions/ex3_self_flush.rs`.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use driver::printk;
use driver::printk::KernLevel;
use wq::DataWork;

/// Readings queued for the log.
const READINGS: u32 = 3;

/// The logger's data, carried by its work item.
#[derive(Default)]
struct Logger {
    /// Readings collected, not yet logged.
    collected: Mutex<Vec<u32>>,
    /// Readings written to the log.
    logged: AtomicU32,
}

/// The work function: moves the collected readings into the log.
fn write_log(item: &std::sync::Arc<DataWork<Logger>>) {
    // EXERCISE: this waits for the run that is making the call.
    if let Err(error) = wq::blocking::flush_work(item) {
        printk!(KernLevel::Err, "logger: {error}");
        return;
    }

    let readings = std::mem::take(&mut *item.collected.lock().expect("lock not poisoned"));
    for reading in readings {
        printk!(KernLevel::Info, "logger: reading {reading}");
        item.logged.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() -> ExitCode {
    printk::init_console();
    let logger = DataWork::new("logger", Logger::default(), write_log);

    for reading in 1..=READINGS {
        logger
            .collected
            .lock()
            .expect("lock not poisoned")
            .push(reading);
        wq::schedule_work(&logger).expect("system_wq accepts work");
        wq::blocking::flush_work(&logger).expect("main runs in task context");
    }

    let logged = logger.logged.load(Ordering::SeqCst);
    if logged == READINGS {
        println!("ok: {logged} readings logged");
        ExitCode::SUCCESS
    } else {
        println!("FAIL: {logged} of {READINGS} readings logged");
        ExitCode::FAILURE
    }
}
