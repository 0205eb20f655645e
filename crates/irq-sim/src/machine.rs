//! The simulated machine: configuration, CPU threads, the housekeeping
//! thread (lockup watchdog and spurious-line polling), and shutdown.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::{self, Timestamp};
use crate::contract::{Budget, CpuTimeAccounting};
use crate::controller::{Controller, lock};
use crate::error::{ConfigError, ContractViolation};

/// Largest CPU count a machine accepts.
pub const MAX_CPUS: usize = 64;

/// Largest line count a controller accepts (Linux's `NR_IRQS` is in the
/// thousands on large x86 servers; each idle line costs about 200 bytes).
pub const MAX_IRQS: u32 = 65_536;

/// The way an idle CPU thread waits for work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuMode {
    /// Sleep on a condition variable (or until the next local timer
    /// deadline); a raise wakes the thread with a system call.
    #[default]
    Blocking,
    /// Spin on the pending queue and the timer deadline: the lowest latency,
    /// at the cost of one host CPU per simulated CPU.
    BusyPoll,
}

/// Spurious-interrupt detection, as Linux's `note_interrupt`.
///
/// A line's deliveries are counted in windows of `window`. When at least
/// `threshold` of a window were unhandled ("nobody cared"), the line is
/// disabled, its handlers are logged, and it is polled every
/// `poll_interval`. The unhandled count restarts at one when an unhandled
/// delivery follows the previous one after more than `quiet`.
///
/// Linux disables a line when more than 99,900 of 100,000 are unhandled,
/// and uses 100 ms for both times. The defaults are the same, so the
/// threshold is 99,901. To trip sooner, scale the window down: Linux's
/// ratio is then 1,000 of 1,000, or 9,991 of 10,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpuriousConfig {
    /// Deliveries per window.
    pub window: u32,
    /// Unhandled deliveries in a window that disable the line: at least
    /// this many.
    pub threshold: u32,
    /// Quiet time after which the unhandled count restarts.
    pub quiet: Duration,
    /// Poll period of a line disabled as spurious.
    pub poll_interval: Duration,
}

impl Default for SpuriousConfig {
    fn default() -> Self {
        Self {
            window: 100_000,
            threshold: 99_901,
            quiet: Duration::from_millis(100),
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// The lockup watchdog, like the kernel's hard-lockup detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// A CPU that stays in one top half longer than this is reported.
    /// Linux's `watchdog_thresh` is 10 s; a simulated top half has a budget
    /// of microseconds, so 1 s is already five orders of magnitude over.
    pub threshold: Duration,
    /// Whether the watchdog runs.
    pub enabled: bool,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            threshold: Duration::from_secs(1),
            enabled: true,
        }
    }
}

/// The configuration of a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Lines of the controller.
    pub nr_irqs: u32,
    /// Simulated CPUs (one OS thread each).
    pub nr_cpus: usize,
    /// The way idle CPUs wait.
    pub cpu_mode: CpuMode,
    /// Spurious detection.
    pub spurious: SpuriousConfig,
    /// Lockup watchdog.
    pub watchdog: WatchdogConfig,
    /// The method that finds the CPU time of an overrunning call.
    pub cpu_time: CpuTimeAccounting,
    /// Budget of every line until `set_budget` changes it.
    pub default_budget: Budget,
    /// Record latency and duration histograms. Off only to measure what
    /// they cost; the budget and the watchdog work either way.
    pub histograms: bool,
    /// Timer slack of the CPU threads (Linux's default is 50 us; 1 ns makes
    /// local timers and idle timeouts precise).
    pub timer_slack: Duration,
    /// How long `shutdown` waits for a CPU thread before reporting it hung.
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nr_irqs: 1024,
            nr_cpus: 2,
            cpu_mode: CpuMode::Blocking,
            spurious: SpuriousConfig::default(),
            watchdog: WatchdogConfig::default(),
            cpu_time: CpuTimeAccounting::Window,
            default_budget: Budget::default(),
            histograms: true,
            timer_slack: Duration::from_nanos(1),
            shutdown_timeout: Duration::from_secs(2),
        }
    }
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.nr_irqs == 0 {
            return Err(ConfigError::NoLines);
        }
        if self.nr_irqs > MAX_IRQS {
            return Err(ConfigError::TooManyLines {
                requested: self.nr_irqs,
                max: MAX_IRQS,
            });
        }
        if self.nr_cpus == 0 {
            return Err(ConfigError::NoCpus);
        }
        if self.nr_cpus > MAX_CPUS {
            return Err(ConfigError::TooManyCpus {
                requested: self.nr_cpus,
                max: MAX_CPUS,
            });
        }
        if self.spurious.window == 0 {
            return Err(ConfigError::SpuriousWindow);
        }
        if self.watchdog.enabled && self.watchdog.threshold.is_zero() {
            return Err(ConfigError::WatchdogThreshold);
        }
        if self.spurious.threshold == 0 || self.spurious.threshold > self.spurious.window {
            return Err(ConfigError::SpuriousThreshold {
                threshold: self.spurious.threshold,
                window: self.spurious.window,
            });
        }
        Ok(())
    }
}

/// A CPU stuck in a top half at shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HungCpu {
    /// The CPU.
    pub cpu: usize,
    /// The line it was handling.
    pub irq: u32,
    /// The handler it was in.
    pub handler: &'static str,
    /// How long it had been in that handler.
    pub stuck_for: Duration,
}

/// The findings of `Machine::shutdown`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// CPUs that did not stop within the shutdown timeout. Their threads are
    /// detached, not joined.
    pub hung: Vec<HungCpu>,
    /// Every contract violation recorded during the run.
    pub violations: Vec<ContractViolation>,
}

impl ShutdownReport {
    /// Returns true when no CPU hung and no violation was recorded.
    pub fn is_clean(&self) -> bool {
        self.hung.is_empty() && self.violations.is_empty()
    }
}

/// The exit flags of the CPU threads, under the mutex and signalled on the
/// condvar.
pub(crate) type ExitBoard = Arc<(Mutex<Vec<bool>>, Condvar)>;

/// A running simulated machine: a controller and its CPU threads.
///
/// Dropping it shuts it down as [`Machine::shutdown`] does and logs a
/// warning when the report is not clean.
pub struct Machine {
    controller: Controller,
    cpu_threads: Vec<Option<JoinHandle<()>>>,
    exited: ExitBoard,
    housekeeping: Option<JoinHandle<()>>,
    housekeeping_stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Machine {
    /// Builds the controller and starts one thread per CPU, plus the
    /// housekeeping thread.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an invalid configuration or a thread that could
    /// not be spawned.
    ///
    /// # Context
    ///
    /// Task context.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let controller = Controller::new(config);
        let exited: ExitBoard = Arc::new((Mutex::new(vec![false; config.nr_cpus]), Condvar::new()));
        let housekeeping_stop = Arc::new((Mutex::new(false), Condvar::new()));
        let mut machine = Machine {
            controller: controller.clone(),
            cpu_threads: Vec::with_capacity(config.nr_cpus),
            exited: exited.clone(),
            housekeeping: None,
            housekeeping_stop: housekeeping_stop.clone(),
        };

        for cpu in 0..config.nr_cpus {
            let controller = controller.clone();
            let exited = exited.clone();
            let handle = std::thread::Builder::new()
                .name(format!("irq-cpu{cpu}"))
                .spawn(move || crate::cpu::run(controller, cpu, exited))
                .map_err(|error| ConfigError::Spawn {
                    cpu,
                    reason: error.to_string(),
                })?;
            machine.cpu_threads.push(Some(handle));
        }

        let handle = std::thread::Builder::new()
            .name("irq-housekeeping".to_owned())
            .spawn(move || crate::watchdog::run(controller, housekeeping_stop))
            .map_err(|error| ConfigError::Spawn {
                cpu: config.nr_cpus,
                reason: error.to_string(),
            })?;
        machine.housekeeping = Some(handle);
        tracing::debug!(target: "irq", nr_irqs = config.nr_irqs, nr_cpus = config.nr_cpus, mode = ?config.cpu_mode, "machine started");
        Ok(machine)
    }

    /// Returns a handle to the controller.
    pub fn controller(&self) -> Controller {
        self.controller.clone()
    }

    /// Returns the first contract violation recorded so far, if any.
    ///
    /// # Errors
    ///
    /// The first [`ContractViolation`].
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly.
    pub fn check(&self) -> Result<(), ContractViolation> {
        match self.controller.violations().into_iter().next() {
            Some(violation) => Err(violation),
            None => Ok(()),
        }
    }

    /// Stops the CPU threads and the housekeeping thread. A CPU still in a
    /// top half after the shutdown timeout is reported as hung and its
    /// thread is detached, so shutdown itself never hangs.
    ///
    /// # Context
    ///
    /// Task context; sleeps up to the shutdown timeout.
    pub fn shutdown(mut self) -> ShutdownReport {
        self.stop()
    }

    fn stop(&mut self) -> ShutdownReport {
        let shared = &self.controller.shared;
        shared
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);

        // Phase 1: tell every thread to stop.
        for cpu in shared.cpus.iter() {
            lock(&cpu.queue).stop = true;
            cpu.stop.store(true, std::sync::atomic::Ordering::Release);
            cpu.wakeup.notify_one();
        }
        {
            let (stopped, condvar) = &*self.housekeeping_stop;
            *lock(stopped) = true;
            condvar.notify_all();
        }

        // Phase 2: wait for the CPU threads, up to the timeout.
        let deadline = clock::now() + shared.config.shutdown_timeout;
        let (board, condvar) = &*self.exited;
        let mut exited = lock(board);
        while exited.iter().any(|done| !done) {
            let now = clock::now();
            if now >= deadline {
                break;
            }
            exited = condvar
                .wait_timeout(exited, deadline.saturating_since(now))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let exited = exited.clone();

        // Phase 3: join the threads that exited, report the others.
        let mut report = ShutdownReport::default();
        for (cpu, done) in exited.iter().enumerate() {
            let Some(thread) = self.cpu_threads[cpu].take() else {
                continue;
            };
            if *done {
                let _ = thread.join();
                continue;
            }
            let hung = self.hung_cpu(cpu);
            tracing::error!(target: "irq", cpu, irq = hung.irq, handler = hung.handler, "shutdown: CPU {cpu} is hung in handler {:?} of irq {} for {} ms; detaching its thread", hung.handler, hung.irq, hung.stuck_for.as_millis());
            report.hung.push(hung);
        }
        if let Some(thread) = self.housekeeping.take() {
            let _ = thread.join();
        }
        // A run shorter than the rate limit's interval would never print
        // the count of the reports it held back, as the kernel's
        // "callbacks suppressed" does at the next report.
        for (irq, line) in shared.lines.iter().enumerate() {
            let suppressed = line.reports.take_suppressed();
            if suppressed > 0 {
                tracing::warn!(target: "irq", irq, suppressed, "irq {irq}: {suppressed} more reports of its handlers were suppressed by the rate limit ({} per line per {} s); the line's counters hold them all", crate::contract::REPORTS_PER_INTERVAL, crate::contract::REPORT_INTERVAL.as_secs());
            }
        }
        report.violations = self.controller.violations();
        tracing::debug!(target: "irq", hung = report.hung.len(), violations = report.violations.len(), "machine stopped");
        report
    }

    fn hung_cpu(&self, cpu: usize) -> HungCpu {
        let shared = &self.controller.shared;
        let cpu_shared = &shared.cpus[cpu];
        let since = cpu_shared
            .running_since
            .load(std::sync::atomic::Ordering::Acquire);
        let what = cpu_shared
            .running_what
            .load(std::sync::atomic::Ordering::Acquire);
        let handler = lock(&shared.names)
            .get((what & u64::from(u32::MAX)) as usize)
            .copied()
            .unwrap_or("?");
        HungCpu {
            cpu,
            irq: (what >> 32) as u32,
            handler,
            stuck_for: if since == 0 {
                Duration::ZERO
            } else {
                clock::now().saturating_since(Timestamp::from_nanos(since))
            },
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if self.cpu_threads.iter().all(Option::is_none) {
            return;
        }
        let report = self.stop();
        if !report.is_clean() {
            tracing::warn!(target: "irq", hung = report.hung.len(), violations = report.violations.len(), "machine dropped with hung CPUs or contract violations");
        }
    }
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("controller", &self.controller)
            .finish()
    }
}
