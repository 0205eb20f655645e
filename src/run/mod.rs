//! Runs a scenario: builds the simulated machine, loads the drivers,
//! drives the devices with their arrival processes, then stops, lets the
//! bottom halves finish, and collects the [`Report`].
//!
//! # The order of a run
//!
//! 1. The machine, the queues and a host module are made; each timer and
//!    device is added to a bus and bound to its driver, whose probe
//!    requests the line. Lines get their budgets before any request.
//! 2. One feeder thread per device sleeps to each arrival's intended time
//!    and hands the event to the device model, which raises the line.
//! 3. At the end of the duration the feeders stop once they have handed
//!    over every event due before it, late ones included; Ctrl-C stops
//!    them at once. The run waits until every device has handled what
//!    arrived (rings, FIFOs and requests empty, no work pending), with a
//!    deadline.
//! 4. Counters and histograms are read, then the drivers are unbound, the
//!    queues flushed, the host module unloaded and the machine shut down.
//!    Anything left behind becomes a warning in the report.

mod feed;
mod generic;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use driver::bus::{BoundDriver, Bus, Device, Driver};
use driver::demo::block::BlockDriver;
use driver::demo::gpio::ButtonDriver;
use driver::demo::nic::NicDriver;
use driver::demo::tick::TickDriver;
use driver::demo::uart::UartDriver;
use driver::module::{self, InitResult, LoadedModule, Module, ModuleContext};
use hdrhistogram::Histogram;
use irq_sim::clock::{self, Timestamp};
use irq_sim::device::{BlockDevice, GpioButton, Nic, Uart};
use irq_sim::{Budget, Config, Controller, LocalTimer, Machine};
use wq::{Workqueue, WqFlags};

use crate::report::{DeviceRow, HandlerRow, IrqRow, LatencyRow, QueueRow, ReplayRow, Report};
use crate::scenario::{ArrivalSpec, CpuMode, DeviceKind, DeviceSpec, Scenario, TimerKind};
use feed::FeedStats;
use generic::{GenericDevice, GenericStats, OneshotTimer};

/// How long the run waits for bottom halves to finish after arrivals stop.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// How long the run waits, per line, for a delivery still pending after the
/// drain.
const LAST_DELIVERY_WAIT: Duration = Duration::from_millis(100);

/// How often the progress callback is called.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Resolves once `condition` holds, looking every millisecond.
async fn wait_for(condition: impl Fn() -> bool) {
    while !condition() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// An error that kept a run from starting.
#[derive(Debug)]
pub enum RunError {
    /// The machine could not be built from the scenario.
    Machine(irq_sim::ConfigError),
    /// A driver or device could not be set up.
    Setup {
        /// The timer or device.
        what: String,
        /// What failed.
        error: String,
    },
    /// The tokio runtime for the drivers could not be built.
    Runtime(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Machine(error) => write!(f, "cannot build the simulated machine: {error}"),
            Self::Setup { what, error } => write!(f, "cannot set up {what}: {error}"),
            Self::Runtime(error) => write!(f, "cannot start the tokio runtime: {error}"),
        }
    }
}

impl std::error::Error for RunError {}

/// How far a run has got, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time since arrivals started.
    pub elapsed: Duration,
    /// The run's duration.
    pub duration: Duration,
    /// Events handed to devices so far.
    pub events: u64,
}

/// Options of a run besides the scenario.
pub struct RunOptions<'a> {
    /// Set to stop arrivals early (Ctrl-C); the report still follows.
    pub stop: Arc<AtomicBool>,
    /// Called about every 100 ms while arrivals run.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
}

/// The module the run's drivers belong to; it has no state of its own.
struct Host;

impl Module for Host {
    const NAME: &'static str = "irqlab";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A timer or device, with the driver bound to it.
enum Unit {
    Tick(BoundDriver<TickDriver>),
    Oneshot(Arc<OneshotTimer>),
    Nic(BoundDriver<NicDriver>),
    Uart(BoundDriver<UartDriver>),
    Block(Arc<BoundDriver<BlockDriver>>),
    Gpio(BoundDriver<ButtonDriver>),
    Generic(Arc<GenericDevice>),
}

/// One timer or device: its name, kind, line and the driver holding it.
struct Entry {
    name: String,
    kind: &'static str,
    irq: u32,
    unit: Unit,
    /// Its feeder's counters.
    fed: Arc<FeedStats>,
    /// The replayed recording, if any: file, recorded line, offsets.
    replay: Option<(String, u32, Vec<Duration>)>,
}

impl Entry {
    /// Returns true when the device has handled everything that arrived.
    fn is_idle(&self, runtime: &tokio::runtime::Runtime) -> bool {
        let _guard = runtime.enter();
        match &self.unit {
            Unit::Tick(_) => true,
            Unit::Oneshot(timer) => timer.is_idle(),
            Unit::Nic(bound) => state(bound).is_idle(),
            Unit::Uart(bound) => state(bound).is_idle(),
            Unit::Block(bound) => state(bound).in_flight() == 0,
            Unit::Gpio(bound) => state(bound).is_idle(),
            Unit::Generic(device) => device.is_idle(),
        }
    }
}

/// Builds the queue of each name the scenario uses.
fn queues(scenario: &Scenario) -> BTreeMap<String, Workqueue> {
    let mut queues = BTreeMap::new();
    for name in scenario.queue_names() {
        let queue = match name {
            "system_wq" => wq::system_wq().clone(),
            "system_highpri_wq" => wq::system_highpri_wq().clone(),
            "system_long_wq" => wq::system_long_wq().clone(),
            "system_unbound_wq" => wq::system_unbound_wq().clone(),
            _ => {
                let spec = scenario
                    .workqueues
                    .iter()
                    .find(|queue| queue.name == name)
                    .expect("the scenario checks every queue reference");
                let flags = if spec.highpri {
                    WqFlags::HIGHPRI
                } else {
                    WqFlags::NONE
                };
                let builder = Workqueue::builder(spec.name.clone()).flags(flags);
                if spec.ordered {
                    builder.ordered().build()
                } else {
                    builder.max_active(spec.max_active as usize).build()
                }
            }
        };
        queues.insert(name.to_owned(), queue);
    }
    queues
}

fn setup_error(what: &str, error: impl std::fmt::Display) -> RunError {
    RunError::Setup {
        what: what.to_owned(),
        error: error.to_string(),
    }
}

/// Adds `device` to `bus` and binds `driver` to it alone.
fn bind<D: Driver>(
    runtime: &tokio::runtime::Runtime,
    bus: &Bus,
    host: &LoadedModule<Host>,
    device: Device,
    driver: D,
) -> Result<BoundDriver<D>, RunError> {
    let name = device.name().to_owned();
    bus.add_device(device)
        .map_err(|error| setup_error(&name, error))?;
    let bound = runtime.block_on(bus.bind(driver, host.context()));
    if let Some((_, error)) = bound.probe_failures().first() {
        return Err(setup_error(&name, error));
    }
    Ok(bound)
}

/// Runs `scenario` and returns its report.
///
/// # Errors
///
/// [`RunError`] when the machine, a queue or a driver cannot be set up.
/// Once arrivals have started, every problem becomes a warning in the
/// report instead.
///
/// # Context
///
/// Task context on a plain thread: it builds its own tokio runtime.
pub fn run(scenario: &Scenario, options: RunOptions<'_>) -> Result<Report, RunError> {
    let RunOptions { stop, mut progress } = options;
    let machine = Machine::new(Config {
        nr_irqs: scenario.machine.irqs,
        nr_cpus: scenario.machine.cpus,
        cpu_mode: match scenario.machine.cpu_mode {
            CpuMode::Blocking => irq_sim::CpuMode::Blocking,
            CpuMode::BusyPoll => irq_sim::CpuMode::BusyPoll,
        },
        ..Config::default()
    })
    .map_err(RunError::Machine)?;
    let controller = machine.controller();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("irqlab-drivers")
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let queues = queues(scenario);
    let host = module::load::<Host>(()).map_err(|error| setup_error("the host module", error))?;
    let bus = Bus::new();

    // Budgets first, so that no top half runs under the default one.
    for line in &scenario.lines {
        controller
            .set_budget(
                line.irq,
                Budget {
                    limit: line.budget,
                    policy: line.overrun,
                },
            )
            .map_err(|error| setup_error(&format!("line {}", line.irq), error))?;
    }

    let mut entries = Vec::new();
    for timer in &scenario.timers {
        let queue = &queues[&timer.workqueue];
        let local = controller
            .local_timer(timer.cpu, timer.irq)
            .map_err(|error| setup_error(&timer.name, error))?;
        let unit = match &timer.kind {
            TimerKind::Periodic {
                period,
                housekeeping,
            } => {
                let device = Device::new(
                    timer.name.clone(),
                    "irqlab,local-timer",
                    &controller,
                    timer.irq,
                    Arc::new(local),
                );
                let driver = TickDriver::new(queue, *period, *housekeeping);
                Unit::Tick(bind(&runtime, &bus, &host, device, driver)?)
            }
            TimerKind::Oneshot { at } => Unit::Oneshot(
                OneshotTimer::probe(host.context(), &controller, &timer.name, local, at, queue)
                    .map_err(|error| setup_error(&timer.name, error))?,
            ),
        };
        entries.push(Entry {
            name: timer.name.clone(),
            kind: "timer",
            irq: timer.irq,
            unit,
            fed: Arc::new(FeedStats::default()),
            replay: None,
        });
    }
    for (index, spec) in scenario.devices.iter().enumerate() {
        entries.push(add_device(
            &runtime,
            &controller,
            &bus,
            &host,
            &queues,
            spec,
            scenario.seed.wrapping_add(index as u64),
        )?);
    }

    // Arrivals start a little later, so that the first ones are not late.
    let start = clock::now() + Duration::from_millis(2);
    let until = start + scenario.duration;
    let started = Instant::now();
    let mut feeders = Vec::new();
    let mut spawn_failure = None;
    for entry in &entries {
        if let Unit::Oneshot(timer) = &entry.unit {
            timer.start(start);
        }
    }
    for (spec, entry) in scenario
        .devices
        .iter()
        .zip(entries.iter().skip(scenario.timers.len()))
    {
        let arrival = spec
            .arrival
            .to_arrival(arrival_seed(scenario, spec.irq, &spec.name));
        let event = event_fn(entry, &runtime, spec);
        let spawned = feed::spawn(
            &format!("feed-{}", spec.name),
            &arrival,
            start,
            until,
            stop.clone(),
            entry.fed.clone(),
            event,
        );
        match spawned {
            Ok(feeder) => feeders.push(feeder),
            Err(error) => {
                spawn_failure = Some(RunError::Setup {
                    what: spec.name.clone(),
                    error: format!(
                        "cannot spawn its arrival feeder thread: {error}; the host may limit \
                         threads or memory (ulimit -u, ulimit -v, /proc/sys/kernel/threads-max)"
                    ),
                });
                break;
            }
        }
    }
    if let Some(failure) = spawn_failure {
        // The feeders already running stop, and the drivers unbind, before
        // the error returns: no thread feeds a machine being torn down, and
        // the unload finds no handler left to warn about.
        stop.store(true, Ordering::Relaxed);
        for feeder in feeders {
            let _ = feeder.join();
        }
        for entry in entries {
            unbind(entry, &runtime);
        }
        return Err(failure);
    }

    // Arrivals run; the main thread reports progress and watches for a stop.
    loop {
        let now = clock::now();
        if now >= until || stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(progress) = progress.as_mut() {
            progress(Progress {
                elapsed: now.saturating_since(start),
                duration: scenario.duration,
                events: entries
                    .iter()
                    .map(|entry| entry.fed.events.load(Ordering::Relaxed))
                    .sum(),
            });
        }
        // The UART driver keeps assembled lines for a reader, and the run has
        // none, so they are dropped as they come.
        for entry in &entries {
            if let Unit::Uart(bound) = &entry.unit {
                drop(state(bound).take_lines());
            }
        }
        let next = (now + PROGRESS_INTERVAL).min(until);
        clock::sleep_until(next);
    }
    // At the end of the duration the feeders finish on their own: a feeder
    // that the host delayed still hands over, late, every event due before
    // the end. Only Ctrl-C, through `stop`, cuts them short.
    let stopped_early = clock::now() < until;
    let mut warnings = Vec::new();
    for feeder in feeders {
        if let Err(panic) = feeder.join() {
            warnings.push(format!(
                "an arrival feeder panicked: {}",
                panic_text(&panic)
            ));
        }
    }
    let elapsed = started.elapsed().min(scenario.duration);
    warnings.extend(entries.iter().filter_map(|entry| {
        late_arrivals_warning(
            &entry.name,
            entry.fed.late_events.load(Ordering::Relaxed),
            entry.fed.events.load(Ordering::Relaxed),
            entry.fed.max_lateness_ns.load(Ordering::Relaxed),
        )
    }));
    if !stopped_early {
        warnings.extend(scenario.timers.iter().filter_map(|timer| {
            let TimerKind::Oneshot { at } = &timer.kind else {
                return None;
            };
            let past: Vec<_> = at.iter().filter(|at| **at > scenario.duration).collect();
            let first = past.first()?;
            Some(format!(
                "timer {}: {} of its {} one-shot expiries came after the run's end at {} (the \
                 first at {}) and never fired; raise --duration to see them",
                timer.name,
                past.len(),
                at.len(),
                crate::report::format_duration(scenario.duration),
                crate::report::format_duration(**first)
            ))
        }));
    }
    // Timers are arrivals too: they stop with the feeders, so that their
    // counts cover the run's duration and nothing more.
    for entry in &entries {
        match &entry.unit {
            Unit::Oneshot(timer) => timer.disarm(),
            Unit::Tick(bound) => model::<_, LocalTimer>(bound).cancel(),
            _ => {}
        }
    }

    // Let the bottom halves finish what arrived.
    let busy_entries = || -> Vec<&str> {
        // A disabled line's raises stay pending, so its devices cannot
        // finish, and the report warns about that instead of waiting for them.
        entries
            .iter()
            .filter(|entry| {
                controller
                    .line_state(entry.irq)
                    .is_ok_and(|line| line.depth == 0)
            })
            .filter(|entry| !entry.is_idle(&runtime))
            .map(|entry| entry.name.as_str())
            .collect()
    };
    let deadline = Instant::now() + DRAIN_DEADLINE;
    let mut busy: Vec<&str> = Vec::new();
    // A Ctrl-C during the drain ends it. One that ended the arrivals early
    // still lets the bottom halves finish what arrived.
    let interrupted = || !stopped_early && stop.load(Ordering::Relaxed);
    let mut drain_cut_short = false;
    while Instant::now() < deadline {
        if interrupted() {
            drain_cut_short = true;
            break;
        }
        busy = busy_entries();
        if busy.is_empty() {
            // Idle at a glance, but a running top half or work function may
            // hold events that it took and has not counted yet: wait for
            // them, then look again.
            for entry in &entries {
                let _ = controller.synchronize_irq(entry.irq);
            }
            for queue in queues.values() {
                // A flush waits for every queued item, which may take long:
                // a Ctrl-C ends the wait.
                let flush = wq::flush_workqueue(queue);
                runtime.block_on(async {
                    tokio::select! {
                        _ = flush => {}
                        () = wait_for(&interrupted) => {}
                    }
                });
            }
            busy = busy_entries();
            if busy.is_empty() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if drain_cut_short {
        busy = busy_entries();
    }
    if drain_cut_short && !busy.is_empty() {
        warnings.push(format!(
            "Ctrl-C cut short the wait for the bottom halves, so the counts may miss events \
             that {} still handling: {}",
            if busy.len() == 1 {
                "a device was"
            } else {
                "devices were"
            },
            busy.join(", ")
        ));
    } else if !drain_cut_short && !busy.is_empty() {
        warnings.push(format!(
            "{} still had events to handle {} s after arrivals stopped: {}",
            if busy.len() == 1 {
                "a device"
            } else {
                "devices"
            },
            DRAIN_DEADLINE.as_secs(),
            busy.join(", ")
        ));
    }

    // An edge latched during a line's last top half, or a tick expiry
    // raised just before the cancel, is delivered after the drain: wait for
    // it, so that the lines' and the CPUs' statistics hold the same
    // deliveries. A line disabled or held high returns early or times out.
    if !drain_cut_short {
        for entry in &entries {
            let _ = controller.wait_delivered(entry.irq, LAST_DELIVERY_WAIT);
        }
    }

    // Read the machine's side before the drivers let go of their lines.
    let lines = controller.all_line_stats().unwrap_or_default();
    let cpu_stats: Vec<_> = (0..scenario.machine.cpus)
        .filter_map(|cpu| controller.cpu_stats(cpu))
        .collect();
    let mut end_to_end = new_histogram();
    let devices: Vec<DeviceRow> = entries
        .iter()
        .map(|entry| device_row(entry, &runtime, &lines, &mut end_to_end))
        .collect();
    let replay = replay_rows(&entries, &devices, scenario.duration);

    // Unbind, flush, unload, shut down; whatever is left is a warning.
    for entry in entries {
        unbind(entry, &runtime);
    }
    // After a Ctrl-C that cut the wait short, the flushes are skipped too.
    if !drain_cut_short {
        for queue in queues.values() {
            if let Err(error) = runtime.block_on(wq::flush_workqueue(queue)) {
                warnings.push(format!("flushing workqueue {}: {error}", queue.name()));
            }
        }
    }
    let queue_stats: Vec<_> = queues.values().map(Workqueue::stats).collect();
    match host.unload() {
        Ok(report) => {
            for leftover in &report.leftovers {
                warnings.push(format!("unload found a leftover: {leftover:?}"));
            }
        }
        Err(rejected) => warnings.push(format!("unloading the drivers: {}", rejected.error)),
    }
    let shutdown = machine.shutdown();
    for hung in &shutdown.hung {
        warnings.push(format!(
            "CPU {} hung in the top half {} of line {} for {:?}",
            hung.cpu, hung.handler, hung.irq, hung.stuck_for
        ));
    }
    for violation in &shutdown.violations {
        warnings.push(format!("contract violation: {violation}"));
    }
    // Only a line with the `fail` policy records an overrun.
    let failed_budgets = shutdown
        .violations
        .iter()
        .filter(|violation| matches!(violation, irq_sim::ContractViolation::BudgetOverrun { .. }))
        .count();

    let mut report = Report {
        scenario: scenario.name.clone(),
        source: scenario.source.clone(),
        seed: scenario.seed,
        cpus: scenario.machine.cpus,
        cpu_mode: match scenario.machine.cpu_mode {
            CpuMode::Blocking => "blocking".to_owned(),
            CpuMode::BusyPoll => "busy-poll".to_owned(),
        },
        duration_s: scenario.duration.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        stopped_early,
        irqs: Vec::new(),
        workqueues: Vec::new(),
        devices,
        latency: BTreeMap::new(),
        replay,
        warnings,
        histograms: BTreeMap::new(),
        failed_budgets,
    };
    collect_lines(&mut report, &controller, &lines);
    collect_queues(&mut report, &queue_stats);
    collect_latency(&mut report, &cpu_stats, &queue_stats, end_to_end);
    collect_device_warnings(&mut report);
    drop(runtime);
    Ok(report)
}

/// Returns the likely cause of a line's overruns when the usual duration
/// of its top halves (a p50 under a tenth of the budget) shows that the
/// handler is not slow: the host ran its own work inside those calls. A kernel
/// without `CONFIG_IRQ_TIME_ACCOUNTING` charges its interrupt and softirq
/// work to the interrupted thread as CPU time.
fn overrun_cause(durations: Option<&Histogram<u64>>, budget_ns: u64, overruns: u64) -> String {
    let Some(durations) = durations.filter(|durations| !durations.is_empty()) else {
        return String::new();
    };
    let p50 = durations.value_at_quantile(0.5);
    if p50.saturating_mul(10) >= budget_ns {
        return String::new();
    }
    let (whose, calls) = if overruns == 1 {
        ("the line's", "that call")
    } else {
        ("their", "those calls")
    };
    format!(
        "; {whose} p50 is {}, so the host, not the handler, most likely made {calls} slow \
         (its own interrupt work, or a preempted vCPU)",
        crate::report::format_ns(p50)
    )
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds are valid constants")
}

/// Returns a warning when over 1 % of a device's events reached it late.
/// Many late events mean the host cannot keep up with the rate, and a few
/// mean that it delayed the feeder thread now and then.
fn late_arrivals_warning(device: &str, late: u64, events: u64, max_ns: u64) -> Option<String> {
    if late * 100 <= events {
        return None;
    }
    let cause = if late * 10 > events {
        "the host could not keep up with the scenario's rate"
    } else {
        "the host delayed the feeder thread now and then, and latencies count from the \
         intended times, so they include those delays"
    };
    Some(format!(
        "the arrivals of {device} fell behind: {late} of {events} events reached the device \
         over {} ms late (at most {}); {cause}",
        feed::LATE.as_millis(),
        crate::report::format_ns(max_ns)
    ))
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}

/// Makes the model of `spec`, adds it to the bus and binds its driver.
#[allow(clippy::too_many_arguments)]
fn add_device(
    runtime: &tokio::runtime::Runtime,
    controller: &Controller,
    bus: &Bus,
    host: &LoadedModule<Host>,
    queues: &BTreeMap<String, Workqueue>,
    spec: &DeviceSpec,
    seed: u64,
) -> Result<Entry, RunError> {
    let queue = &queues[&spec.workqueue];
    controller
        .set_affinity(spec.irq, spec.cpu)
        .map_err(|error| setup_error(&spec.name, error))?;
    let unit = match &spec.kind {
        DeviceKind::Nic { ring, napi_budget } => {
            let model = Arc::new(
                Nic::new(controller, spec.irq, *ring)
                    .map_err(|error| setup_error(&spec.name, error))?,
            );
            let device = Device::new(spec.name.clone(), "irqlab,nic", controller, spec.irq, model);
            Unit::Nic(bind(
                runtime,
                bus,
                host,
                device,
                NicDriver::new(queue, *napi_budget),
            )?)
        }
        DeviceKind::Uart {
            trigger_level,
            baud,
            ..
        } => {
            let model = Arc::new(
                Uart::with_baud(controller, spec.irq, *trigger_level, *baud)
                    .map_err(|error| setup_error(&spec.name, error))?,
            );
            let device = Device::new(
                spec.name.clone(),
                "irqlab,uart",
                controller,
                spec.irq,
                model,
            );
            let driver = if spec.shared {
                UartDriver::new(queue).shared()
            } else {
                UartDriver::new(queue)
            };
            Unit::Uart(bind(runtime, bus, host, device, driver)?)
        }
        DeviceKind::Block {
            service_time,
            depth,
        } => {
            let model = Arc::new(
                BlockDevice::new(controller, spec.irq, *service_time, *depth)
                    .map_err(|error| setup_error(&spec.name, error))?,
            );
            let device = Device::new(
                spec.name.clone(),
                "irqlab,block",
                controller,
                spec.irq,
                model,
            );
            Unit::Block(Arc::new(bind(
                runtime,
                bus,
                host,
                device,
                BlockDriver::new(queue),
            )?))
        }
        DeviceKind::Gpio {
            bounces,
            bounce_gap,
            debounce,
        } => {
            let model = Arc::new(
                GpioButton::new(controller, spec.irq, *bounces, *bounce_gap, seed)
                    .map_err(|error| setup_error(&spec.name, error))?,
            );
            let device = Device::new(
                spec.name.clone(),
                "irqlab,gpio-button",
                controller,
                spec.irq,
                model,
            );
            Unit::Gpio(bind(
                runtime,
                bus,
                host,
                device,
                ButtonDriver::new(queue, *debounce),
            )?)
        }
        DeviceKind::Generic { handler, work } => {
            let (trigger, output) = match spec.trigger {
                crate::scenario::Trigger::Edge => (irq_sim::Trigger::Edge, None),
                crate::scenario::Trigger::Level => (
                    irq_sim::Trigger::Level,
                    Some(
                        controller
                            .irq_output(spec.irq)
                            .map_err(|error| setup_error(&spec.name, error))?,
                    ),
                ),
            };
            Unit::Generic(
                GenericDevice::probe(
                    host.context(),
                    controller,
                    &spec.name,
                    handler,
                    spec.irq,
                    trigger,
                    spec.shared,
                    output,
                    queue,
                    *work,
                )
                .map_err(|error| setup_error(&spec.name, error))?,
            )
        }
    };
    let replay = match &spec.arrival {
        ArrivalSpec::Replay { file, irq, offsets } => {
            Some((file.display().to_string(), *irq, offsets.clone()))
        }
        _ => None,
    };
    Ok(Entry {
        name: spec.name.clone(),
        kind: spec.kind.as_str(),
        irq: spec.irq,
        unit,
        fed: Arc::new(FeedStats::default()),
        replay,
    })
}

/// Returns the device model of the one device `bound` holds.
fn model<D: Driver, T: std::any::Any + Send + Sync>(bound: &BoundDriver<D>) -> Arc<T> {
    bound
        .devices()
        .next()
        .and_then(|(device, _)| device.resource().ok())
        .expect("each unit binds one device with its model")
}

/// Returns the driver state of the one device `bound` holds.
fn state<D: Driver>(bound: &BoundDriver<D>) -> &D::State {
    bound
        .devices()
        .next()
        .map(|(_, state)| state)
        .expect("each unit binds one device, or the run failed to set up")
}

/// Returns what the feeder of `entry` does with each event.
fn event_fn(
    entry: &Entry,
    runtime: &tokio::runtime::Runtime,
    spec: &DeviceSpec,
) -> Box<dyn FnMut(Timestamp) + Send> {
    match &entry.unit {
        Unit::Nic(bound) => {
            let nic: Arc<Nic> = model(bound);
            Box::new(move |at| {
                nic.receive(1500, at);
            })
        }
        Unit::Uart(bound) => {
            let uart: Arc<Uart> = model(bound);
            let line_length = match spec.kind {
                DeviceKind::Uart { line_length, .. } => line_length as u64,
                _ => 64,
            };
            let mut sent = 0u64;
            Box::new(move |at| {
                let position = sent % line_length;
                let byte = if position + 1 == line_length {
                    b'\n'
                } else {
                    b'a' + (position % 26) as u8
                };
                sent += 1;
                uart.receive_at(byte, at);
            })
        }
        Unit::Block(bound) => {
            let (bound, handle) = (bound.clone(), runtime.handle().clone());
            let mut sector = 0u64;
            Box::new(move |_at| {
                sector = sector.wrapping_add(8);
                if let Ok(request) = state(&bound).submit(sector) {
                    // Someone waits for every request, as a filesystem
                    // would; a full queue is counted by the driver.
                    handle.spawn(async move {
                        let _ = request.await;
                    });
                }
            })
        }
        Unit::Gpio(bound) => {
            let button: Arc<GpioButton> = model(bound);
            Box::new(move |_at| {
                // Task context: the feeder thread sleeps through the bounces.
                let _ = if button.is_pressed() {
                    button.release()
                } else {
                    button.press()
                };
            })
        }
        Unit::Generic(device) => {
            let device = device.clone();
            Box::new(move |at| device.event(at))
        }
        Unit::Tick(_) | Unit::Oneshot(_) => Box::new(|_| {}),
    }
}

fn counters<const N: usize>(pairs: [(&str, u64); N]) -> BTreeMap<String, u64> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Reads the counters of one timer or device into a report row, with the
/// latency of its line in `lines` and its own end-to-end samples, which it
/// also adds to `end_to_end`.
fn device_row(
    entry: &Entry,
    runtime: &tokio::runtime::Runtime,
    lines: &[irq_sim::LineStats],
    end_to_end: &mut Histogram<u64>,
) -> DeviceRow {
    let _guard = runtime.enter();
    let mut own_end_to_end = new_histogram();
    let row = |arrived, processed, dropped, dropped_as: &str, counters| DeviceRow {
        name: entry.name.clone(),
        kind: entry.kind.to_owned(),
        irq: entry.irq,
        arrived,
        processed,
        dropped,
        // A cause only where something was lost.
        dropped_as: if dropped > 0 {
            dropped_as.to_owned()
        } else {
            String::new()
        },
        counters,
        max_arrival_lateness_ns: entry.fed.max_lateness_ns.load(Ordering::Relaxed),
        late_arrivals: entry.fed.late_events.load(Ordering::Relaxed),
        latency: BTreeMap::new(),
    };
    let generic = |stats: GenericStats, end_to_end: &mut Histogram<u64>| {
        let _ = end_to_end.add(&stats.end_to_end);
        (stats.arrived, stats.processed, stats.unclaimed)
    };
    let mut device = match &entry.unit {
        Unit::Tick(bound) => {
            let stats = state(bound).stats();
            row(
                stats.jiffies + stats.missed_ticks,
                stats.jiffies,
                stats.missed_ticks,
                "ticks missed: an expiry fired over a period late",
                counters([
                    ("jiffies", stats.jiffies),
                    ("housekeeping runs", stats.housekeeping_runs),
                ]),
            )
        }
        Unit::Oneshot(timer) => {
            let (arrived, processed, unclaimed) = generic(timer.stats(), &mut own_end_to_end);
            row(
                arrived,
                processed,
                0,
                "",
                counters([("unfinished at exit", unclaimed)]),
            )
        }
        Unit::Nic(bound) => {
            let state = state(bound);
            let stats = state.stats();
            let _ = own_end_to_end.add(state.end_to_end().snapshot());
            row(
                stats.arrived,
                stats.processed,
                stats.dropped,
                "RX ring full",
                counters([
                    ("interrupts", stats.interrupts),
                    ("polls", stats.polls),
                    ("poll cycles", stats.cycles),
                    ("in ring", stats.in_ring),
                ]),
            )
        }
        Unit::Uart(bound) => {
            let state = state(bound);
            let stats = state.stats();
            let _ = own_end_to_end.add(state.end_to_end().snapshot());
            row(
                stats.received + stats.fifo_overruns,
                stats.drained,
                stats.fifo_overruns + stats.ring_overruns,
                "FIFO or ring overrun",
                counters([
                    ("interrupts", stats.interrupts),
                    ("lines", stats.lines),
                    ("char timeouts", stats.char_timeouts),
                    ("fifo overruns", stats.fifo_overruns),
                    ("ring overruns", stats.ring_overruns),
                ]),
            )
        }
        Unit::Block(bound) => {
            let state = state(bound);
            let stats = state.stats();
            let _ = own_end_to_end.add(state.end_to_end().snapshot());
            row(
                stats.submitted + stats.rejected,
                stats.completed + stats.abandoned,
                stats.rejected,
                "queue full: rejected at submission",
                counters([
                    ("interrupts", stats.interrupts),
                    ("in flight", state.in_flight() as u64),
                ]),
            )
        }
        Unit::Gpio(bound) => {
            let state = state(bound);
            let stats = state.stats();
            let arrived = entry.fed.events.load(Ordering::Relaxed);
            let processed = stats.presses + stats.releases;
            // A debounce still waiting at the end never judged the last
            // toggles, so they were not merged: the run ended first.
            let waiting = !state.is_idle();
            row(
                arrived,
                processed,
                arrived.saturating_sub(processed),
                if waiting {
                    "toggles merged by debouncing, or left undebounced at exit"
                } else {
                    "toggles merged by debouncing"
                },
                counters([
                    ("interrupts", stats.interrupts),
                    ("presses", stats.presses),
                    ("releases", stats.releases),
                    ("debounce runs", stats.debounce_runs),
                    ("debounce pending at exit", u64::from(waiting)),
                ]),
            )
        }
        Unit::Generic(device) => {
            let (arrived, processed, unclaimed) = generic(device.stats(), &mut own_end_to_end);
            row(
                arrived,
                processed,
                0,
                "",
                counters([("unfinished at exit", unclaimed)]),
            )
        }
    };
    let _ = end_to_end.add(&own_end_to_end);
    device.latency = device_latency(entry.irq, lines, &own_end_to_end);
    device
}

/// Returns the latency summaries of one device: its line's top-half
/// measures from `lines`, and `end_to_end`, its own raise -> bottom half.
/// A line with no histograms gets empty summaries, so that every device
/// has the same keys.
fn device_latency(
    irq: u32,
    lines: &[irq_sim::LineStats],
    end_to_end: &Histogram<u64>,
) -> BTreeMap<String, LatencyRow> {
    let histograms = lines
        .iter()
        .find(|line| line.irq == irq)
        .and_then(|line| line.histograms.as_ref());
    let of_line = |pick: fn(&irq_sim::LatencyHistograms) -> &Histogram<u64>| {
        histograms
            .map(|histograms| LatencyRow::of(pick(histograms)))
            .unwrap_or_default()
    };
    BTreeMap::from([
        (
            "raise_to_top_half".to_owned(),
            of_line(|histograms| &histograms.latency),
        ),
        (
            "top_half_duration".to_owned(),
            of_line(|histograms| &histograms.duration),
        ),
        (
            "raise_to_bottom_half".to_owned(),
            LatencyRow::of(end_to_end),
        ),
    ])
}

fn replay_rows(entries: &[Entry], devices: &[DeviceRow], duration: Duration) -> Vec<ReplayRow> {
    entries
        .iter()
        .zip(devices)
        .filter_map(|(entry, row)| {
            let (file, recorded_irq, offsets) = entry.replay.as_ref()?;
            Some(ReplayRow {
                device: entry.name.clone(),
                file: file.clone(),
                recorded_irq: *recorded_irq,
                irq: entry.irq,
                // Arrivals stop before the end, as the feeders do.
                recorded: offsets.iter().filter(|at| **at < duration).count() as u64,
                simulated_arrived: row.arrived,
                simulated_handled: row.processed,
            })
        })
        .collect()
}

/// Frees a timer's or device's driver.
fn unbind(entry: Entry, runtime: &tokio::runtime::Runtime) {
    match entry.unit {
        Unit::Tick(bound) => runtime.block_on(bound.unbind()),
        Unit::Oneshot(timer) => timer.stop(),
        Unit::Nic(bound) => runtime.block_on(bound.unbind()),
        Unit::Uart(bound) => runtime.block_on(bound.unbind()),
        Unit::Block(bound) => {
            // The feeders, which held clones, have been joined. Were one
            // still alive, the module unload would free the line instead.
            if let Ok(bound) = Arc::try_unwrap(bound) {
                runtime.block_on(bound.unbind());
            }
        }
        Unit::Gpio(bound) => runtime.block_on(bound.unbind()),
        Unit::Generic(device) => device.free(),
    }
}

fn collect_lines(report: &mut Report, controller: &Controller, lines: &[irq_sim::LineStats]) {
    for line in lines {
        let budget = controller
            .budget(line.irq)
            .map(|budget| budget.limit)
            .unwrap_or_default();
        report.irqs.push(IrqRow {
            irq: line.irq,
            name: line.handlers.join(", "),
            claimed_by: line
                .handlers
                .iter()
                .zip(&line.claimed_by)
                .map(|(handler, claimed)| HandlerRow {
                    handler: (*handler).to_owned(),
                    claimed: *claimed,
                })
                .collect(),
            trigger: match line.trigger {
                irq_sim::Trigger::Edge => "edge".to_owned(),
                irq_sim::Trigger::Level => "level".to_owned(),
            },
            per_cpu: line.per_cpu.clone(),
            raised: line.raised,
            handled: line.handled,
            unhandled: line.unhandled,
            coalesced: line.coalesced,
            already_asserted: line.already_asserted,
            skipped: line.skipped,
            budget_overruns: line.overruns,
            budget_ns: clock::duration_nanos(budget),
            spurious_disables: line.spurious_disables,
            panics: line.panics,
        });
        if line.overruns > 0 {
            let budget_ns = clock::duration_nanos(budget);
            report.warnings.push(format!(
                "line {} ({}): {} overran the {} budget{}",
                line.irq,
                line.handlers.join(", "),
                if line.overruns == 1 {
                    "1 top half".to_owned()
                } else {
                    format!("{} top halves", line.overruns)
                },
                crate::report::format_ns(budget_ns),
                overrun_cause(
                    line.histograms
                        .as_ref()
                        .map(|histograms| &histograms.duration),
                    budget_ns,
                    line.overruns
                )
            ));
        }
        if line.depth > 0 && line.spurious_disables == 0 && line.panics == 0 {
            report.warnings.push(format!(
                "line {} ({}) was still disabled when the run ended{}; raises on it were left \
                 pending, so its devices could not finish",
                line.irq,
                line.handlers.join(", "),
                if line.overruns > 0 {
                    " (its overrun policy disables it at an overrun)"
                } else {
                    ""
                }
            ));
        }
        if line.spurious_disables > 0 {
            report.warnings.push(format!(
                "line {} ({}): disabled {} time(s) as spurious (nobody cared)",
                line.irq,
                line.handlers.join(", "),
                line.spurious_disables
            ));
        }
        if line.panics > 0 {
            report.warnings.push(format!(
                "line {} ({}): {} top half panic(s) caught; the line was disabled",
                line.irq,
                line.handlers.join(", "),
                line.panics
            ));
        }
    }
}

fn collect_queues(report: &mut Report, stats: &[wq::WorkqueueStats]) {
    for queue in stats {
        let pending_at_exit = queue.pending + queue.delayed + queue.in_flight;
        report.workqueues.push(QueueRow {
            name: queue.name.clone(),
            queued: queue.queued,
            coalesced: queue.coalesced,
            modified: queue.modified,
            executed: queue.executed,
            cancelled: queue.cancelled,
            pending_at_exit,
            max_in_flight: queue.max_in_flight,
            panicked: queue.panicked,
            queue_to_start: LatencyRow::of(&queue.latency_ns),
            work_duration: LatencyRow::of(&queue.run_time_ns),
        });
        if pending_at_exit > 0 {
            report.warnings.push(format!(
                "workqueue {}: {pending_at_exit} item(s) still pending or running at exit",
                queue.name
            ));
        }
        if queue.panicked > 0 {
            report.warnings.push(format!(
                "workqueue {}: {} work function panic(s) caught",
                queue.name, queue.panicked
            ));
        }
    }
}

fn collect_latency(
    report: &mut Report,
    cpus: &[irq_sim::CpuStats],
    queues: &[wq::WorkqueueStats],
    end_to_end: Histogram<u64>,
) {
    let mut raise = new_histogram();
    let mut top_half = new_histogram();
    for cpu in cpus {
        let _ = raise.add(&cpu.histograms.latency);
        let _ = top_half.add(&cpu.histograms.duration);
    }
    let mut queue_to_start = new_histogram();
    let mut work = new_histogram();
    for queue in queues {
        let _ = queue_to_start.add(&queue.latency_ns);
        let _ = work.add(&queue.run_time_ns);
    }
    for (key, histogram) in [
        ("raise_to_top_half", raise),
        ("top_half_duration", top_half),
        ("queue_to_start", queue_to_start),
        ("work_duration", work),
        ("raise_to_bottom_half", end_to_end),
    ] {
        report
            .latency
            .insert(key.to_owned(), LatencyRow::of(&histogram));
        report.histograms.insert(key.to_owned(), histogram);
    }
}

fn collect_device_warnings(report: &mut Report) {
    for device in &report.devices {
        if device.dropped > 0 {
            report.warnings.push(format!(
                "{} {}: {} of {} events dropped ({})",
                device.kind, device.name, device.dropped, device.arrived, device.dropped_as
            ));
        }
    }
}

/// Returns the seed of the arrival process of the device named `name` on
/// line `irq`.
///
/// It mixes the line into the scenario's seed, so that devices on their own
/// lines get different arrivals, and then the device's rank among the
/// devices on its line, so that devices sharing a line do too. The first
/// device of a line keeps the seed that earlier versions gave it, so that a
/// scenario without shared lines repeats the arrivals it had.
fn arrival_seed(scenario: &Scenario, irq: u32, name: &str) -> u64 {
    let rank = scenario
        .devices
        .iter()
        .filter(|device| device.irq == irq)
        .position(|device| device.name == name)
        .unwrap_or(0);
    scenario.seed ^ u64::from(irq) << 32 ^ (rank as u64) << 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_arrivals_warned_with_their_cause() {
        assert_eq!(late_arrivals_warning("btn", 1, 100, 2_000_000), None);
        let few = late_arrivals_warning("btn", 1, 20, 1_360_000).unwrap();
        assert_eq!(
            few,
            "the arrivals of btn fell behind: 1 of 20 events reached the device over 1 ms \
             late (at most 1.36 ms); the host delayed the feeder thread now and then, and \
             latencies count from the intended times, so they include those delays"
        );
        let many = late_arrivals_warning("eth0", 300, 1000, 9_000_000).unwrap();
        assert!(
            many.ends_with("the host could not keep up with the scenario's rate"),
            "{many}"
        );
    }

    #[test]
    fn overrun_blamed_on_host_for_short_handlers() {
        let mut short = new_histogram();
        for _ in 0..99 {
            short.record(140).unwrap();
        }
        short.record(600_000).unwrap();
        let cause = overrun_cause(Some(&short), 100_000, 2);
        assert!(
            cause.starts_with("; their p50 is 140 ns, so the host"),
            "{cause}"
        );
        assert!(cause.contains("made those calls slow"), "{cause}");
        let one = overrun_cause(Some(&short), 100_000, 1);
        assert!(one.starts_with("; the line's p50 is 140 ns"), "{one}");
        assert!(one.contains("made that call slow"), "{one}");

        let mut slow = new_histogram();
        slow.record(80_000).unwrap();
        assert_eq!(overrun_cause(Some(&slow), 100_000, 1), "");
        assert_eq!(overrun_cause(Some(&new_histogram()), 100_000, 1), "");
        assert_eq!(overrun_cause(None, 100_000, 1), "");
    }

    #[test]
    fn shared_line_devices_get_own_arrivals() {
        let text = r#"
            duration = "1s"
            [[device]]
            name = "a"
            kind = "generic"
            irq = 40
            shared = true
            arrival = { process = "poisson", rate = 200.0 }
            [[device]]
            name = "b"
            kind = "generic"
            irq = 40
            shared = true
            arrival = { process = "poisson", rate = 200.0 }
            [[device]]
            name = "c"
            kind = "generic"
            irq = 41
            arrival = { process = "poisson", rate = 200.0 }
        "#;
        let scenario = Scenario::parse(text, "test.toml", std::path::Path::new("."))
            .expect("a valid scenario");
        let first_offsets = |device: &crate::scenario::DeviceSpec| -> Vec<Duration> {
            device
                .arrival
                .to_arrival(arrival_seed(&scenario, device.irq, &device.name))
                .offsets()
                .take(20)
                .collect()
        };
        let [a, b, c] = [0, 1, 2].map(|index| first_offsets(&scenario.devices[index]));
        assert_ne!(a, b, "two devices on line 40 got the same arrivals");
        assert_ne!(a, c);
        // The first device of each line keeps the seed of earlier versions.
        assert_eq!(arrival_seed(&scenario, 40, "a"), scenario.seed ^ 40 << 32);
        assert_eq!(arrival_seed(&scenario, 41, "c"), scenario.seed ^ 41 << 32);
    }
}
