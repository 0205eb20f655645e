//! The system runtimes and the system workqueues.
//!
//! The classic kernel examples call `schedule_work` from a plain `main`, so
//! the system queues need no setup: the first use builds a multi-threaded
//! tokio runtime (threads named `kworker`) and a second one for high-priority
//! queues (`kworker-H`), each with one worker thread per available CPU, and
//! keeps them for the life of the process. A program that already runs a
//! tokio runtime can call [`init_system_workqueues`] first to run the system
//! queues there instead.

use std::sync::OnceLock;

use crate::error::InitError;
use crate::queue::{Workqueue, WqFlags};

struct System {
    runtime: tokio::runtime::Handle,
    highpri_runtime: tokio::runtime::Handle,
    wq: Workqueue,
    highpri_wq: Workqueue,
    long_wq: Workqueue,
    unbound_wq: Workqueue,
}

static SYSTEM: OnceLock<System> = OnceLock::new();
static RUNTIMES: OnceLock<(tokio::runtime::Runtime, tokio::runtime::Runtime)> = OnceLock::new();

fn build_runtime(thread_name: &str) -> tokio::runtime::Runtime {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(thread_name)
        .enable_time()
        .build()
        .unwrap_or_else(|error| panic!("cannot start the {thread_name} tokio runtime: {error}"))
}

fn own_runtimes() -> (tokio::runtime::Handle, tokio::runtime::Handle) {
    let (normal, highpri) = RUNTIMES.get_or_init(|| {
        // A top half that uses a system queue first pays this start, which
        // spawns threads: not its own work, so not against its budget.
        irq_sim::context::excuse_one_time_cost("the start of the system workqueues' runtimes");
        (build_runtime("kworker"), build_runtime("kworker-H"))
    });
    (normal.handle().clone(), highpri.handle().clone())
}

fn make_system(runtime: tokio::runtime::Handle, highpri_runtime: tokio::runtime::Handle) -> System {
    let queue = |name: &'static str, flags: WqFlags, runtime: &tokio::runtime::Handle| {
        Workqueue::builder(name)
            .flags(flags)
            .runtime(runtime.clone())
            .build_unchecked()
    };
    System {
        wq: queue("events", WqFlags::NONE, &runtime),
        highpri_wq: queue("events_highpri", WqFlags::HIGHPRI, &highpri_runtime),
        long_wq: queue("events_long", WqFlags::CPU_INTENSIVE, &runtime),
        unbound_wq: queue("events_unbound", WqFlags::UNBOUND, &runtime),
        runtime,
        highpri_runtime,
    }
}

fn system() -> &'static System {
    SYSTEM.get_or_init(|| {
        let (normal, highpri) = own_runtimes();
        make_system(normal, highpri)
    })
}

/// Runs the system workqueues, and queues allocated without a runtime, on
/// `runtime` instead of irqlab's own runtimes.
///
/// # Errors
///
/// [`InitError::AlreadyInitialized`] if any system queue was used before.
///
/// # Context
///
/// Task context; never sleeps.
pub fn init_system_workqueues(runtime: tokio::runtime::Handle) -> Result<(), InitError> {
    let mut initialized = false;
    SYSTEM.get_or_init(|| {
        initialized = true;
        make_system(runtime.clone(), runtime)
    });
    if initialized {
        Ok(())
    } else {
        Err(InitError::AlreadyInitialized)
    }
}

/// Returns the runtime for a new queue that names none.
pub(crate) fn default_runtime(highpri: bool) -> tokio::runtime::Handle {
    match SYSTEM.get() {
        Some(system) if highpri => system.highpri_runtime.clone(),
        Some(system) => system.runtime.clone(),
        None => {
            let (normal, highpri_runtime) = own_runtimes();
            if highpri { highpri_runtime } else { normal }
        }
    }
}

/// Returns true when `wq` is one of the system queues.
pub(crate) fn is_system_queue(wq: &Workqueue) -> bool {
    SYSTEM.get().is_some_and(|system| {
        [
            &system.wq,
            &system.highpri_wq,
            &system.long_wq,
            &system.unbound_wq,
        ]
        .into_iter()
        .any(|known| std::sync::Arc::ptr_eq(known.shared(), wq.shared()))
    })
}

/// Returns the system queue `schedule_work` uses (`system_wq`, named
/// `events`).
pub fn system_wq() -> &'static Workqueue {
    &system().wq
}

/// Returns the high-priority system queue (`system_highpri_wq`).
pub fn system_highpri_wq() -> &'static Workqueue {
    &system().highpri_wq
}

/// Returns the system queue for long or blocking work (`system_long_wq`):
/// its synchronous functions run on blocking threads.
pub fn system_long_wq() -> &'static Workqueue {
    &system().long_wq
}

/// Returns the unbound system queue (`system_unbound_wq`).
pub fn system_unbound_wq() -> &'static Workqueue {
    &system().unbound_wq
}
