//! The top-half contract: budgets, sleeping, panics, lockups, shutdown.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{Gate, flush_cpu, probe, wait_until};
use irq_sim::clock::{self, Timestamp};
use irq_sim::{
    Budget, Config, ContractViolation, CpuTimeAccounting, DeviceError, FIRST_CALL_ALLOWANCE,
    HardIrqContext, InvalidContext, IrqFlags, IrqRequest, IrqReturn, LineError, Machine,
    OverrunPolicy, WatchdogConfig,
};

const LINE: u32 = 40;
const PROBE: u32 = 99;

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

fn log_text() -> String {
    String::from_utf8(log().lock().unwrap().clone()).unwrap()
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

fn machine(config: Config) -> Machine {
    let _ = log();
    Machine::new(config).unwrap()
}

/// The default 100 us budget under the fail policy, so that an overrun is
/// recorded for `Machine::check`.
fn strict_budget() -> Budget {
    Budget {
        limit: Duration::from_micros(100),
        policy: OverrunPolicy::Fail,
    }
}

/// A top half that burns `cpu` of CPU time (however long the host keeps
/// its thread off the vCPU), then returns.
fn spinner(cpu: Duration) -> impl FnMut(&mut HardIrqContext<'_>) -> IrqReturn + Send + 'static {
    move |_| {
        let target = clock::thread_cpu_time() + cpu;
        while clock::thread_cpu_time() < target {
            std::hint::spin_loop();
        }
        IrqReturn::Handled
    }
}

/// Requests `LINE` with `top_half` and `budget`, raises it once and waits
/// for the chain to finish. Returns the calls of the probe line, for
/// `flush_cpu` after a later raise.
fn run_once(
    machine: &Machine,
    name: &'static str,
    budget: Budget,
    top_half: impl irq_sim::TopHalf,
) -> Arc<AtomicU32> {
    let irq = machine.controller();
    irq.request_irq(LINE, IrqRequest::new(name, IrqFlags::EDGE, top_half))
        .unwrap();
    irq.set_budget(LINE, budget).unwrap();
    let probe_calls = probe(&irq, PROBE, 0);
    let _ = irq.raise(LINE).unwrap();
    flush_cpu(&irq, PROBE, &probe_calls);
    probe_calls
}

/// A call that pays a one-time cost it names, such as a runtime's start,
/// is not reported as an overrun, even under the fail policy. The mark
/// lasts for that call only.
#[test]
fn excused_one_time_cost_not_an_overrun() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let budget = strict_budget();
    let mut slow = spinner(Duration::from_millis(3));
    let mut first = true;
    let probe_calls = run_once(
        &machine,
        "first_use",
        budget,
        move |ctx: &mut HardIrqContext<'_>| {
            if std::mem::take(&mut first) {
                irq_sim::context::excuse_one_time_cost("a test's one-time cost");
            }
            slow(ctx)
        },
    );

    assert_eq!(machine.check(), Ok(()));
    let controller = machine.controller();
    assert_eq!(controller.line_stats(LINE).unwrap().overruns, 0);
    assert_eq!(controller.line_state(LINE).unwrap().depth, 0);

    let _ = controller.raise(LINE).unwrap();
    flush_cpu(&controller, PROBE, &probe_calls);
    assert!(
        matches!(
            machine.check(),
            Err(ContractViolation::BudgetOverrun { .. })
        ),
        "the second call was excused too: {:?}",
        machine.check()
    );
}

/// A mark set by a call that stayed within its budget ends with that call:
/// it does not excuse a later overrun of another handler.
#[test]
fn excuse_mark_ends_with_its_call() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let controller = machine.controller();
    let cheap = LINE + 10;
    controller
        .request_irq(
            cheap,
            IrqRequest::new("cheap", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
                irq_sim::context::excuse_one_time_cost("a start that was fast");
                IrqReturn::Handled
            }),
        )
        .unwrap();
    let _ = controller.raise(cheap).unwrap();
    let budget = strict_budget();

    run_once(
        &machine,
        "slowpoke",
        budget,
        spinner(Duration::from_millis(3)),
    );

    assert!(
        matches!(
            machine.check(),
            Err(ContractViolation::BudgetOverrun { .. })
        ),
        "{:?}",
        machine.check()
    );
}

/// An overrun under the fail policy is recorded with the line, handler,
/// measured time and budget, and the line is disabled.
#[test]
fn overrun_fail_policy_records() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let budget = strict_budget();
    run_once(
        &machine,
        "slowpoke",
        budget,
        spinner(Duration::from_millis(3)),
    );

    let Err(ContractViolation::BudgetOverrun {
        irq,
        handler,
        wall,
        cpu,
        budget: limit,
    }) = machine.check()
    else {
        panic!("expected an overrun, got {:?}", machine.check());
    };
    assert_eq!(
        (irq, handler, limit),
        (LINE, "slowpoke", Duration::from_micros(100))
    );
    assert!(wall >= Duration::from_millis(3));
    assert!(cpu > limit);
    assert_eq!(machine.controller().line_state(LINE).unwrap().depth, 1);
    assert_eq!(machine.controller().line_stats(LINE).unwrap().overruns, 1);
    assert!(!machine.shutdown().is_clean());
}

/// A first call gets `FIRST_CALL_ALLOWANCE` beyond the budget for its
/// one-time costs; the same time on a later call is an overrun.
#[test]
fn first_call_allowance_then_overrun() {
    // Exact CPU time: in window mode, preemption just before a call lowers
    // the bound on the call's CPU time, and the margins here are small.
    let machine = machine(Config {
        nr_cpus: 1,
        cpu_time: CpuTimeAccounting::PerCall,
        ..Config::default()
    });
    let budget = Budget {
        limit: Duration::from_micros(50),
        policy: OverrunPolicy::Fail,
    };
    let spin = budget.limit + FIRST_CALL_ALLOWANCE / 2;
    run_once(&machine, "warming-up", budget, spinner(spin));
    assert!(machine.check().is_ok(), "{:?}", machine.check());
    assert_eq!(machine.controller().line_stats(LINE).unwrap().overruns, 0);

    let irq = machine.controller();
    let probe_calls = probe(&irq, PROBE + 1, 0);
    let _ = irq.raise(LINE).unwrap();
    flush_cpu(&irq, PROBE + 1, &probe_calls);
    assert!(matches!(
        machine.check(),
        Err(ContractViolation::BudgetOverrun { .. })
    ));
    assert_eq!(irq.line_stats(LINE).unwrap().overruns, 1);
    assert!(!machine.shutdown().is_clean());
}

/// An overrun under the warn policy is logged with line, handler, time and
/// budget, counted, and the line stays enabled.
#[test]
fn overrun_warn_policy_logs() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    run_once(
        &machine,
        "warned-handler",
        Budget::default(),
        spinner(Duration::from_millis(2)),
    );

    let irq = machine.controller();
    assert_eq!(irq.line_stats(LINE).unwrap().overruns, 1);
    assert_eq!(irq.line_state(LINE).unwrap().depth, 0);
    assert!(machine.check().is_ok());
    let text = log_text();
    let line = text
        .lines()
        .find(|line| line.contains("\"warned-handler\""))
        .unwrap_or_else(|| panic!("no overrun report in {text}"));
    assert!(line.contains("irq 40"), "{line}");
    assert!(line.contains("budget 100 us"), "{line}");
}

/// Overruns beyond the rate limit are counted, and the reports held back
/// are summed up at shutdown, as a run may end before the limit's
/// interval does.
#[test]
fn suppressed_reports_summed_at_shutdown() {
    const RATE_LIMITED: u32 = 41;
    // Exact CPU time: in window mode, a loaded host's preemption just
    // before one of the eight calls can hide its overrun.
    let machine = machine(Config {
        nr_cpus: 1,
        cpu_time: CpuTimeAccounting::PerCall,
        ..Config::default()
    });
    let irq = machine.controller();
    irq.request_irq(
        RATE_LIMITED,
        IrqRequest::new(
            "chatty",
            IrqFlags::EDGE,
            spinner(Duration::from_micros(500)),
        ),
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);
    for _ in 0..8 {
        let _ = irq.raise(RATE_LIMITED).unwrap();
        flush_cpu(&irq, PROBE, &probe_calls);
    }
    assert_eq!(irq.line_stats(RATE_LIMITED).unwrap().overruns, 8);
    let reported = |text: &str| {
        text.lines()
            .filter(|line| line.contains("handler \"chatty\" took"))
            .count()
    };
    assert_eq!(reported(&log_text()), 5);

    assert!(machine.shutdown().is_clean());
    let text = log_text();
    assert!(
        text.contains(
            "irq 41: 3 more reports of its handlers were suppressed by the rate limit (5 per \
             line per 5 s); the line's counters hold them all"
        ),
        "{text}"
    );
}

/// An overrun under the disable policy disables the line.
#[test]
fn overrun_disable_policy_disables() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let budget = Budget {
        limit: Duration::from_micros(50),
        policy: OverrunPolicy::Disable,
    };
    run_once(
        &machine,
        "disabled-handler",
        budget,
        spinner(Duration::from_millis(2)),
    );

    assert_eq!(machine.controller().line_state(LINE).unwrap().depth, 1);
    assert!(machine.check().is_ok());
}

/// The policies disable a shared line once a delivery, however many of
/// its handlers overrun or panic, so that one `enable_irq` brings it back.
#[test]
fn shared_chain_disabled_once_per_delivery() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let irq = machine.controller();
    let shared = IrqFlags::EDGE.shared();
    for name in ["slow-a", "slow-b"] {
        irq.request_irq(
            LINE,
            IrqRequest::new(name, shared, spinner(Duration::from_millis(2))),
        )
        .unwrap();
    }
    for name in ["buggy-a", "buggy-b"] {
        irq.request_irq(
            LINE,
            IrqRequest::new(name, shared, |_: &mut HardIrqContext<'_>| -> IrqReturn {
                panic!("device register read returned garbage")
            }),
        )
        .unwrap();
    }
    irq.set_budget(
        LINE,
        Budget {
            limit: Duration::from_micros(50),
            policy: OverrunPolicy::Disable,
        },
    )
    .unwrap();
    let probe_calls = probe(&irq, PROBE, 0);
    let _ = irq.raise(LINE).unwrap();
    flush_cpu(&irq, PROBE, &probe_calls);

    // A panic's unwinding may overrun the budget too.
    let stats = irq.line_stats(LINE).unwrap();
    assert!(stats.overruns >= 2, "{stats:?}");
    assert_eq!(stats.panics, 2);
    assert_eq!(irq.line_state(LINE).unwrap().depth, 1);
    irq.enable_irq(LINE).unwrap();
    assert_eq!(irq.line_state(LINE).unwrap().depth, 0);
}

/// A device model cannot be made for a line the controller does not have,
/// since its raises would fail where no caller sees them.
#[test]
fn device_on_missing_line_rejected() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let irq = machine.controller();
    let error = irq_sim::device::Nic::new(&irq, 5_000, 4).unwrap_err();
    assert_eq!(
        error,
        DeviceError::NoSuchLine {
            device: "NIC",
            irq: 5_000,
            nr_irqs: 1_024
        }
    );
    assert_eq!(
        error.to_string(),
        "NIC on irq 5000: the controller has lines 0 to 1023"
    );
    assert!(irq_sim::device::Uart::new(&irq, 1_024, 8).is_err());
    assert!(irq_sim::device::BlockDevice::new(&irq, 1_024, Duration::from_micros(1), 1).is_err());
    assert!(irq_sim::device::GpioButton::new(&irq, 1_024, 0, Duration::ZERO, 1).is_err());
    assert!(irq_sim::device::Uart::new(&irq, 1_023, 8).is_ok());
}

/// Pins the calling thread, and every thread it spawns from now on, to
/// the first CPU it may run on.
fn pin_to_one_cpu() {
    // SAFETY: an all-zero cpu_set_t is an empty set; the calls read and
    // write only the set given, whose size is passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(libc::sched_getaffinity(0, size, &mut set), 0);
        let first = (0..libc::CPU_SETSIZE as usize)
            .find(|cpu| libc::CPU_ISSET(*cpu, &set))
            .expect("the thread may run on some CPU");
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(first, &mut set);
        assert_eq!(libc::sched_setaffinity(0, size, &set), 0);
    }
}

/// A top half whose thread the kernel preempts is not blamed for the wall
/// time it lost, in either CPU-time accounting mode. A busy thread pinned
/// to the same CPU takes turns with it, so the handler's 20 ms of wall
/// time hold well under its 15 ms budget of CPU time.
#[test]
fn preempted_handler_not_blamed() {
    for accounting in [CpuTimeAccounting::Window, CpuTimeAccounting::PerCall] {
        // A thread of its own, so that the pinning stays out of other tests.
        std::thread::spawn(move || {
            pin_to_one_cpu();
            let machine = machine(Config {
                nr_cpus: 1,
                cpu_time: accounting,
                ..Config::default()
            });
            let stop = Arc::new(AtomicBool::new(false));
            let burner = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            };
            let budget = Budget {
                limit: Duration::from_millis(15),
                policy: OverrunPolicy::Fail,
            };
            run_once(
                &machine,
                "preempted",
                budget,
                |_: &mut HardIrqContext<'_>| {
                    let end = clock::now() + Duration::from_millis(20);
                    while clock::now() < end {
                        std::hint::spin_loop();
                    }
                    IrqReturn::Handled
                },
            );
            stop.store(true, Ordering::Relaxed);
            burner.join().unwrap();

            let stats = machine.controller().line_stats(LINE).unwrap();
            assert_eq!(stats.overruns, 0, "{accounting:?}");
            assert_eq!(stats.preempted, 1, "{accounting:?}");
            let report = machine.shutdown();
            assert!(report.is_clean(), "{accounting:?}: {:?}", report.violations);
        })
        .join()
        .unwrap();
    }
}

/// A top half that sleeps is caught by the voluntary context switch its
/// thread makes, as the kernel catches "scheduling while atomic", in
/// either CPU-time accounting mode and under the default warn policy. Its
/// first call is judged by CPU time alone, because it may block on one-time
/// costs. In window mode a suspicion puts it under watch first.
#[test]
fn sleeping_top_half_is_reported() {
    for accounting in [CpuTimeAccounting::Window, CpuTimeAccounting::PerCall] {
        let machine = machine(Config {
            nr_cpus: 1,
            cpu_time: accounting,
            ..Config::default()
        });
        let probe_calls = run_once(
            &machine,
            "napper",
            Budget::default(),
            |_: &mut HardIrqContext<'_>| {
                std::thread::sleep(Duration::from_millis(2));
                IrqReturn::Handled
            },
        );
        assert!(machine.check().is_ok(), "{accounting:?}: the first call");
        let irq = machine.controller();
        for _ in 0..2 {
            let _ = irq.raise(LINE).unwrap();
            flush_cpu(&irq, PROBE, &probe_calls);
        }

        // Per-call mode reads the switches around every call, so both later
        // calls are sleeps. Window mode only suspects the second, whose
        // window may hold the CPU thread's own blocking, and watches the
        // third. Either way one violation is recorded.
        let stats = irq.line_stats(LINE).unwrap();
        let expected = match accounting {
            CpuTimeAccounting::PerCall => (2, 1),
            CpuTimeAccounting::Window => (1, 2),
        };
        assert_eq!(
            (stats.overruns, stats.preempted),
            expected,
            "{accounting:?}"
        );
        let report = machine.shutdown();
        let [
            ContractViolation::Slept {
                irq,
                handler,
                switches,
                ..
            },
        ] = report.violations.as_slice()
        else {
            panic!("{accounting:?}: {:?}", report.violations);
        };
        assert_eq!((*irq, *handler), (LINE, "napper"));
        assert!(*switches >= 1);
        let message = report.violations[0].to_string();
        assert!(
            message.starts_with("BUG: scheduling while atomic: irq 40: handler \"napper\" blocked"),
            "{message}"
        );
        assert!(log_text().contains("scheduling while atomic"));
    }
}

/// In window mode a suspicion alone records nothing: a watched call that
/// does not block clears it, whatever else it costs.
#[test]
fn window_suspicion_alone_records_nothing() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let probe_calls = run_once(
        &machine,
        "once-napper",
        Budget::default(),
        move |_: &mut HardIrqContext<'_>| {
            match counter.fetch_add(1, Ordering::SeqCst) {
                // The second call sleeps once: a suspicion.
                1 => std::thread::sleep(Duration::from_millis(2)),
                // The third spins over its budget without blocking.
                2 => {
                    let target = clock::thread_cpu_time() + Duration::from_millis(1);
                    while clock::thread_cpu_time() < target {
                        std::hint::spin_loop();
                    }
                }
                _ => {}
            }
            IrqReturn::Handled
        },
    );
    let irq = machine.controller();
    for _ in 0..2 {
        let _ = irq.raise(LINE).unwrap();
        flush_cpu(&irq, PROBE, &probe_calls);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stats = irq.line_stats(LINE).unwrap();
    assert_eq!((stats.overruns, stats.preempted), (1, 1));
    let report = machine.shutdown();
    assert!(report.is_clean(), "{:?}", report.violations);
}

/// A waiting API called in a top half fails with the kernel's message,
/// naming the API, the line and the handler.
#[test]
fn might_sleep_in_top_half_fails() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let errors = Arc::new(Mutex::new(Vec::<InvalidContext>::new()));
    let seen = errors.clone();
    let line_errors = Arc::new(Mutex::new(Vec::<LineError>::new()));
    let line_seen = line_errors.clone();
    run_once(
        &machine,
        "sleeper",
        Budget::default(),
        move |ctx: &mut HardIrqContext<'_>| {
            seen.lock()
                .unwrap()
                .push(irq_sim::might_sleep("msleep").unwrap_err());
            let controller = ctx.controller();
            line_seen
                .lock()
                .unwrap()
                .push(controller.disable_irq(ctx.irq()).unwrap_err());
            line_seen
                .lock()
                .unwrap()
                .push(controller.synchronize_irq(ctx.irq()).unwrap_err());
            IrqReturn::Handled
        },
    );

    let error = errors.lock().unwrap()[0];
    assert_eq!(
        (error.api, error.irq, error.handler),
        ("msleep", LINE, "sleeper")
    );
    let message = error.to_string();
    assert!(
        message.contains("sleeping function called from invalid context"),
        "{message}"
    );
    assert!(
        message.contains("msleep") && message.contains("irq 40") && message.contains("\"sleeper\"")
    );
    let apis: Vec<&str> = line_errors
        .lock()
        .unwrap()
        .iter()
        .map(|error| match error {
            LineError::InvalidContext(context) => context.api,
            other => panic!("expected InvalidContext, got {other:?}"),
        })
        .collect();
    assert_eq!(apis, ["disable_irq", "synchronize_irq"]);
    assert_eq!(machine.controller().line_state(LINE).unwrap().depth, 0);

    // The first such call of the chain is a contract violation, so that a
    // test of the driver fails.
    let violations = machine.shutdown().violations;
    let [ContractViolation::InvalidContext(recorded)] = violations.as_slice() else {
        panic!("{violations:?}");
    };
    assert_eq!(recorded.api, "msleep");
    assert!(
        violations[0]
            .to_string()
            .starts_with("BUG: sleeping function called")
    );
}

/// A panicking top half is caught: its line is disabled, the panic is
/// recorded with line and handler, and other lines keep working.
#[test]
fn panic_disables_only_its_line() {
    let machine = machine(Config {
        nr_cpus: 1,
        ..Config::default()
    });
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    run_once(
        &machine,
        "buggy",
        Budget::default(),
        move |_: &mut HardIrqContext<'_>| {
            counter.fetch_add(1, Ordering::SeqCst);
            panic!("device register read returned garbage");
        },
    );

    let irq = machine.controller();
    let Err(ContractViolation::Panic {
        irq: line,
        handler,
        message,
    }) = machine.check()
    else {
        panic!("expected a panic violation");
    };
    assert_eq!((line, handler), (LINE, "buggy"));
    assert!(message.contains("garbage"));
    assert_eq!(irq.line_state(LINE).unwrap().depth, 1);
    assert!(log_text().contains("irq 40: handler \"buggy\" panicked"));

    let probe_calls = probe(&irq, PROBE + 1, 0);
    let _ = irq.raise(LINE).unwrap();
    flush_cpu(&irq, PROBE + 1, &probe_calls);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(irq.line_stats(LINE).unwrap().panics, 1);
}

/// A CPU stuck in a top half is reported by the watchdog with CPU, line
/// and handler. Other CPUs keep working, and shutdown reports the hung CPU
/// instead of hanging.
#[test]
fn lockup_reported_and_shutdown_returns() {
    let machine = machine(Config {
        nr_cpus: 2,
        watchdog: WatchdogConfig {
            threshold: Duration::from_millis(50),
            enabled: true,
        },
        shutdown_timeout: Duration::from_millis(100),
        ..Config::default()
    });
    let irq = machine.controller();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    irq.set_affinity(LINE, 1).unwrap();
    irq.request_irq(
        LINE,
        IrqRequest::new(
            "stuck",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                held.hold();
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    let _ = irq.raise(LINE).unwrap();
    gate.wait_entered(1);

    wait_until("the lockup report", || !irq.violations().is_empty());
    let violation = irq.violations()[0].clone();
    let ContractViolation::Lockup {
        cpu,
        irq: line,
        handler,
        stuck_for,
    } = violation.clone()
    else {
        panic!("expected a lockup, got {violation:?}");
    };
    assert_eq!((cpu, line, handler), (1, LINE, "stuck"));
    assert!(stuck_for >= Duration::from_millis(50));
    assert!(violation.to_string().contains("hard LOCKUP on CPU 1"));
    assert_eq!(irq.cpu_running(1).map(|(line, _)| line), Some(LINE));

    let probe_calls = probe(&irq, PROBE, 0);
    flush_cpu(&irq, PROBE, &probe_calls);

    let started = Timestamp::from_nanos(clock::now().as_nanos());
    let report = machine.shutdown();
    gate.open();
    assert!(clock::now().saturating_since(started) < Duration::from_secs(5));
    assert_eq!(report.hung.len(), 1);
    assert_eq!(
        (
            report.hung[0].cpu,
            report.hung[0].irq,
            report.hung[0].handler
        ),
        (1, LINE, "stuck")
    );
    assert_eq!(report.violations.len(), 1);
}
