//! Spurious-interrupt detection ("nobody cared").

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{TIMEOUT, wait_until};
use irq_sim::{
    Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, LineError, Machine, SpuriousConfig,
};

const LINE: u32 = 30;

/// Everything logged in this test binary.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn spurious_machine() -> Machine {
    Machine::new(Config {
        nr_cpus: 1,
        spurious: SpuriousConfig {
            window: 1000,
            threshold: 999,
            quiet: Duration::from_secs(10),
            poll_interval: Duration::from_millis(5),
        },
        ..Config::default()
    })
    .unwrap()
}

/// Registers two shared handlers that claim one interrupt in `claim_every`
/// (never when 0), and returns the calls and polls they saw.
fn register(machine: &Machine, claim_every: u32) -> (Arc<AtomicU32>, Arc<AtomicU32>) {
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let polls = Arc::new(AtomicU32::new(0));
    let (counter, poll_counter) = (calls.clone(), polls.clone());
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "dev-a",
            IrqFlags::EDGE.shared(),
            move |ctx: &mut HardIrqContext<'_>| {
                if ctx.is_poll() {
                    poll_counter.fetch_add(1, Ordering::SeqCst);
                    return IrqReturn::None;
                }
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                if claim_every != 0 && n % claim_every == 0 {
                    IrqReturn::Handled
                } else {
                    IrqReturn::None
                }
            },
        ),
    )
    .unwrap();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "dev-b",
            IrqFlags::EDGE.shared(),
            |_: &mut HardIrqContext<'_>| IrqReturn::None,
        ),
    )
    .unwrap();
    (calls, polls)
}

/// Raises the line `count` times, one delivery at a time.
fn storm(machine: &Machine, calls: &AtomicU32, count: u32) {
    let irq = machine.controller();
    for i in 1..=count {
        let _ = irq.raise(LINE).unwrap();
        wait_until("the delivery", || calls.load(Ordering::SeqCst) >= i);
    }
    irq.synchronize_irq(LINE).unwrap();
}

/// When nearly all interrupts of a window are unhandled the line is
/// disabled as spurious, the handlers are logged, and the line is polled.
#[test]
fn unhandled_storm_disables_and_polls() {
    let log = log();
    let machine = spurious_machine();
    let (calls, polls) = register(&machine, 0);
    storm(&machine, &calls, 1000);

    let irq = machine.controller();
    let stats = irq.line_stats(LINE).unwrap();
    assert!(stats.spurious);
    assert_eq!(stats.depth, 1);
    assert_eq!(stats.unhandled, 1000);
    assert_eq!(stats.spurious_disables, 1);
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert!(text.contains("irq 30: nobody cared"), "{text}");
    assert!(text.contains("dev-a, dev-b"), "{text}");

    wait_until("polls of the disabled line", || {
        polls.load(Ordering::SeqCst) >= 2
    });
    let _ = irq.raise(LINE).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1000);
    assert!(irq.render_interrupts().unwrap().contains("spurious"));
    // The edge waits for an enable, and the error names the cause.
    let error = irq.wait_delivered(LINE, TIMEOUT).unwrap_err();
    assert_eq!(error, LineError::DisabledAsSpurious { irq: LINE });
    let message = error.to_string();
    assert!(message.contains("disabled as spurious"), "{message}");
    assert!(message.contains("call enable_irq"), "{message}");
}

/// A window with fewer unhandled interrupts than the threshold leaves the
/// line enabled.
#[test]
fn below_threshold_stays_enabled() {
    let _ = log();
    let machine = spurious_machine();
    // One in 500 handled: 998 of 1000 unhandled, one below the threshold.
    let (calls, _) = register(&machine, 500);
    storm(&machine, &calls, 1000);

    let stats = machine.controller().line_stats(LINE).unwrap();
    assert!(!stats.spurious);
    assert_eq!(stats.depth, 0);
    assert_eq!(stats.handled, 2);
    assert_eq!(stats.spurious_window_count, 0);
}

/// Re-enabling a spurious line ends the polling.
#[test]
fn enable_clears_spurious() {
    let _ = log();
    let machine = spurious_machine();
    let (calls, _) = register(&machine, 0);
    storm(&machine, &calls, 1000);
    let irq = machine.controller();
    assert!(irq.line_state(LINE).unwrap().spurious);

    irq.enable_irq(LINE).unwrap();
    assert!(!irq.line_state(LINE).unwrap().spurious);
    let _ = irq.raise(LINE).unwrap();
    wait_until("a delivery after enable", || {
        calls.load(Ordering::SeqCst) == 1001
    });
}

/// A handler that joins a shared line disabled as spurious enables it
/// again and restarts the detection, as Linux does: it may be the handler
/// that was missing.
#[test]
fn joining_handler_enables_spurious_line() {
    let _ = log();
    let machine = spurious_machine();
    let (calls, _) = register(&machine, 0);
    storm(&machine, &calls, 1000);
    let irq = machine.controller();
    assert!(irq.line_state(LINE).unwrap().spurious);

    let joined = Arc::new(AtomicU32::new(0));
    let counter = joined.clone();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "dev-c",
            IrqFlags::EDGE.shared(),
            move |ctx: &mut HardIrqContext<'_>| {
                if !ctx.is_poll() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    let state = irq.line_state(LINE).unwrap();
    assert!(!state.spurious);
    assert_eq!(state.depth, 0);
    assert_eq!(irq.line_stats(LINE).unwrap().spurious_window_count, 0);
    let _ = irq.raise(LINE).unwrap();
    wait_until("a delivery to the joined handler", || {
        joined.load(Ordering::SeqCst) == 1
    });
}

/// A top half that returns `WakeThread` with no thread function to wake
/// leaves its deliveries unhandled, as Linux judges them by thread
/// functions that never run, and logs a warning once.
#[test]
fn wake_thread_without_thread_is_unhandled() {
    let log = log();
    let machine = spurious_machine();
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    irq.request_irq(
        LINE + 1,
        IrqRequest::new(
            "threadless",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                counter.fetch_add(1, Ordering::SeqCst);
                IrqReturn::WakeThread
            },
        ),
    )
    .unwrap();
    for i in 1..=5 {
        let _ = irq.raise(LINE + 1).unwrap();
        wait_until("the delivery", || calls.load(Ordering::SeqCst) >= i);
    }
    irq.synchronize_irq(LINE + 1).unwrap();

    // The first delivery that only wakes threads is not judged.
    let stats = irq.line_stats(LINE + 1).unwrap();
    assert_eq!(stats.wake_thread, 5);
    assert_eq!(stats.unhandled, 4);
    assert_eq!(stats.handled, 1);
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains(
            "irq 31: handler \"threadless\" returned WakeThread but has no thread function; \
             the delivery counts as unhandled"
        ),
        "{text}"
    );
}

/// The first delivery that only wakes threads leaves the baseline alone,
/// as Linux's `SPURIOUS_DEFERRED` does, so a thread that ran before that
/// delivery was judged still counts for the next one.
#[test]
fn early_first_thread_run_counts_once() {
    const THREADED: u32 = 32;
    let machine = spurious_machine();
    let irq = machine.controller();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let early = irq.clone();
    let ran_early = AtomicBool::new(false);
    irq.request_irq(
        THREADED,
        IrqRequest::new(
            "threaded",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                counter.fetch_add(1, Ordering::SeqCst);
                IrqReturn::WakeThread
            },
        )
        .on_wake_thread(move |_: &mut HardIrqContext<'_>| {
            // The thread of the first delivery runs before its judgement,
            // as a new IRQ thread that has not parked yet may.
            if !ran_early.swap(true, Ordering::SeqCst) {
                early.note_thread_handled(THREADED).unwrap();
            }
        }),
    )
    .unwrap();
    for i in 1..=4 {
        let _ = irq.raise(THREADED).unwrap();
        wait_until("the delivery", || calls.load(Ordering::SeqCst) >= i);
        irq.synchronize_irq(THREADED).unwrap();
        // The later threads run after their delivery was judged.
        if i > 1 {
            irq.note_thread_handled(THREADED).unwrap();
        }
    }

    let stats = irq.line_stats(THREADED).unwrap();
    assert_eq!((stats.handled, stats.unhandled), (4, 0));
}
