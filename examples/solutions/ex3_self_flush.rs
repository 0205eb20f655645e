//! Solution of exercise 3: the work function does its work without
//! waiting for itself. Its item never runs concurrently with itself, and
//! the caller that needs the log complete flushes from outside, in `main`.
//!
//! ```sh
//! cargo run --example ex3_self_flush_solution
//! ```

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
