//! The measuring runs: one column set per deferral mechanism, and the
//! baseline.
//!
//! Every run is open loop and timed from the **programmed** expiry, as
//! rtla timerlat does: the IRQ latency runs from the expiry to the top
//! half's entry, the thread latency from the expiry to the start of the
//! bottom half. An expiry that fires more than a period late skips the
//! missed periods and counts them as timer overruns. An activation whose
//! bottom half cannot be queued, because its slot is still pending, is
//! counted as lost. Nothing is dropped silently.
//!
//! The steady-state loop of the workqueue and threaded mechanisms
//! allocates nothing per activation: each activation uses one of
//! `--slots` preallocated work items (or ring entries), the histograms have
//! fixed bounds, and the locks around them are uncontended.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use driver::irq::{IrqRegistration, ThreadedIrq, request_irq, request_threaded_irq};
use hdrhistogram::Histogram;
use irq_sim::arrival::Arrival;
use irq_sim::clock::{self, Timestamp};
use irq_sim::device::Nic;
use irq_sim::{Config, CpuMode, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};
use wq::{DataWork, Work, Workqueue};

use super::args::{CpuModeArg, Mechanism};
use super::error::LatencyError;

/// The line of the measured timer.
const TIMER_IRQ: u32 = 32;

/// The line of the background NIC.
const LOAD_IRQ: u32 = 33;

/// How much longer than a period a round waits for the first expiry past
/// its end, which proves every earlier expiry delivered or skipped.
const PAST_CUTOFF_GRACE: Duration = Duration::from_millis(100);

/// How long the bottom halves may take to catch up after the timer stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Returns a histogram of nanoseconds from 1 ns to 100 s, 3 significant
/// digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("the bounds are valid")
}

fn record(histogram: &Mutex<Histogram<u64>>, nanos: u64) {
    histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .saturating_record(nanos.max(1));
}

fn take(histogram: &Mutex<Histogram<u64>>) -> Histogram<u64> {
    histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Activation counts of one column set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Timer expiries that reached the top half (or woke the baseline
    /// thread).
    pub activations: u64,
    /// Periods skipped because an expiry fired more than a period late.
    pub timer_overruns: u64,
    /// Activations whose bottom half was not queued because its slot was
    /// still pending.
    pub lost: u64,
    /// Bottom halves started.
    pub started: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Counts) {
        self.activations += other.activations;
        self.timer_overruns += other.timer_overruns;
        self.lost += other.lost;
        self.started += other.started;
    }
}

/// The samples of one column set in one round.
#[derive(Clone, Debug)]
pub struct ColumnSamples {
    /// Programmed expiry to top-half entry (baseline: to the thread's
    /// wake-up), in nanoseconds.
    pub irq: Histogram<u64>,
    /// Programmed expiry to bottom-half start (baseline: to the tokio
    /// task's return from `recv`), in nanoseconds.
    pub thr: Histogram<u64>,
    /// Top-half durations from the line's statistics, in nanoseconds (2
    /// significant digits); empty for the baseline, which has none.
    pub top_half: Histogram<u64>,
    /// The activation counts.
    pub counts: Counts,
}

/// State shared by a run's top half and its bottom halves.
struct Probe {
    /// Written by the top half only.
    irq: Mutex<Histogram<u64>>,
    /// Written by the bottom halves only.
    thr: Mutex<Histogram<u64>>,
    /// Atomics, `Relaxed`: counters read after the run has drained.
    activations: AtomicU64,
    lost: AtomicU64,
    queued: AtomicU64,
    started: AtomicU64,
    /// Programmed expiries from this one on are no activations, so that a
    /// column set counts the periods of its round as the baseline does.
    /// `u64::MAX` until `Session::count_for` sets it.
    cutoff_ns: AtomicU64,
    /// The last programmed expiry the top half saw, or the one a period
    /// before the first; written by the top half, then by `finish`.
    previous_ns: AtomicU64,
    /// Periods before the cutoff that the timer skipped: the timer
    /// overruns of the round.
    skipped: AtomicU64,
    /// An expiry at or past the cutoff reached the top half, so every
    /// period before it is counted (`Release`, read with `Acquire`).
    past_cutoff: AtomicBool,
    /// The timer, which the first top half past the cutoff stops, so that
    /// the line's top-half statistics count one expiry past the round
    /// instead of every one until `Session::finish`.
    timer: OnceLock<Weak<irq_sim::LocalTimer>>,
    /// Immutable.
    period_ns: u64,
    /// Immutable.
    work_time: Duration,
    /// A flag that `Session::finish_within` sets when the backlog misses
    /// its drain timeout. The bottom halves still queued then return at
    /// once, so that tearing the run down does not wait out their work
    /// time. `Relaxed`, because it publishes no data.
    abandoned: AtomicBool,
}

impl Probe {
    fn new(period: Duration, work_time: Duration) -> Arc<Self> {
        Arc::new(Self {
            irq: Mutex::new(new_histogram()),
            thr: Mutex::new(new_histogram()),
            activations: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            started: AtomicU64::new(0),
            cutoff_ns: AtomicU64::new(u64::MAX),
            previous_ns: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            past_cutoff: AtomicBool::new(false),
            timer: OnceLock::new(),
            period_ns: clock::duration_nanos(period).max(1),
            work_time,
            abandoned: AtomicBool::new(false),
        })
    }

    /// Counts the periods the timer skipped between the last expiry seen
    /// and the one programmed for `expiry_ns`, as far as they lie before
    /// the cutoff, and makes `expiry_ns` the last one seen. Returns false
    /// for an expiry already counted, as skipped by `finish`.
    fn count_skipped(&self, expiry_ns: u64) -> bool {
        let previous_ns = self.previous_ns.fetch_max(expiry_ns, Ordering::Relaxed);
        if expiry_ns <= previous_ns {
            return false;
        }
        let first_skipped = previous_ns.saturating_add(self.period_ns);
        let until = expiry_ns.min(self.cutoff_ns.load(Ordering::Relaxed));
        if until > first_skipped {
            let skipped = (until - first_skipped).div_ceil(self.period_ns);
            self.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        true
    }

    /// Records the IRQ latency of one delivery and returns its programmed
    /// expiry; `None` for a poll or an expiry past the round, which are no
    /// activations.
    fn enter(&self, ctx: &HardIrqContext<'_>) -> Option<Timestamp> {
        let raised = ctx.raise_time()?;
        if !self.count_skipped(raised.as_nanos()) {
            // Late past the round's end: counted as skipped already.
            return None;
        }
        if raised.as_nanos() >= self.cutoff_ns.load(Ordering::Relaxed) {
            if !self.past_cutoff.swap(true, Ordering::AcqRel)
                && let Some(timer) = self.timer.get().and_then(Weak::upgrade)
            {
                timer.cancel();
            }
            return None;
        }
        let latency = ctx.latency().unwrap_or_default();
        record(&self.irq, clock::duration_nanos(latency));
        self.activations.fetch_add(1, Ordering::Relaxed);
        Some(raised)
    }

    /// Records the thread latency of a bottom half that starts now, then
    /// keeps it busy for the work time, unless the run was abandoned.
    fn start(&self, raised_ns: u64) {
        if self.abandoned.load(Ordering::Relaxed) {
            return;
        }
        let now = clock::now();
        record(&self.thr, now.as_nanos().saturating_sub(raised_ns));
        self.started.fetch_add(1, Ordering::Relaxed);
        if !self.work_time.is_zero() {
            let end = now + self.work_time;
            while clock::now() < end && !self.abandoned.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
    }
}

/// The work item of one activation slot: the programmed expiry it serves.
struct Slot {
    /// Nanoseconds on the clock; stored by the top half before it queues
    /// the item (`Release`), read by the work function (`Acquire`).
    raised_ns: AtomicU64,
    probe: Arc<Probe>,
}

/// The tokio runtimes the runs share, built once and identically: the
/// spawn mechanism's and the baseline's, like irqlab's system runtime.
pub struct Runtimes {
    spawn: tokio::runtime::Runtime,
    baseline: tokio::runtime::Runtime,
}

impl Runtimes {
    /// Builds the runtimes: multi-threaded, one worker per available CPU,
    /// with the time driver, as `wq` builds its system runtime.
    ///
    /// # Errors
    ///
    /// [`LatencyError::Runtime`] when a runtime cannot start.
    pub fn new() -> Result<Self, LatencyError> {
        Ok(Self {
            spawn: build_runtime("latency-spawn")?,
            baseline: build_runtime("latency-base")?,
        })
    }
}

fn build_runtime(name: &str) -> Result<tokio::runtime::Runtime, LatencyError> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_time()
        .build()
        .map_err(LatencyError::Runtime)
}

/// Settings shared by every run of a measurement.
#[derive(Clone, Copy, Debug)]
pub struct RunSettings {
    /// Timer period.
    pub period: Duration,
    /// Wait method of the simulated CPU and the baseline thread.
    pub cpu_mode: CpuModeArg,
    /// Background NIC packets per second; 0 for none.
    pub load_hz: u32,
    /// Time each bottom half spins after it started.
    pub work_time: Duration,
    /// Activations that may be queued and not yet started at once. One more
    /// is counted as lost.
    pub slots: usize,
}

/// The simulated machine of one run, with its optional background load.
struct Bench {
    machine: Machine,
    load: Option<Load>,
}

/// The background NIC: a Poisson feeder and the registration of its
/// driver's top half.
struct Load {
    /// Set by `Bench::finish`; the feeder stops at its next arrival.
    stop: Arc<AtomicBool>,
    feeder: std::thread::JoinHandle<()>,
    registration: IrqRegistration,
    work: Arc<Work>,
}

impl Bench {
    fn new(settings: &RunSettings) -> Result<Self, LatencyError> {
        let cpu_mode = match settings.cpu_mode {
            CpuModeArg::Blocking => CpuMode::Blocking,
            CpuModeArg::BusyPoll => CpuMode::BusyPoll,
        };
        let machine = Machine::new(Config {
            nr_cpus: 1,
            cpu_mode,
            ..Config::default()
        })
        .map_err(LatencyError::Machine)?;
        let load = match settings.load_hz {
            0 => None,
            hz => Some(start_load(&machine, hz)?),
        };
        Ok(Self { machine, load })
    }

    fn finish(self) {
        if let Some(load) = self.load {
            load.stop.store(true, Ordering::Relaxed);
            let _ = load.feeder.join();
            let _ = load.registration.free();
            let _ = wq::blocking::flush_work(&load.work);
        }
        let report = self.machine.shutdown();
        if !report.is_clean() {
            tracing::warn!(target: "irqlab", ?report, "simulated machine shut down unclean");
        }
    }
}

/// Starts NIC packet arrivals at `hz` (Poisson) on the timer's CPU. Its
/// top half disables the NIC's interrupt and queues a work item on
/// system_wq that empties the RX ring and enables it again, the NAPI
/// pattern in its simplest form.
fn start_load(machine: &Machine, hz: u32) -> Result<Load, LatencyError> {
    let controller = machine.controller();
    let nic = Arc::new(Nic::new(&controller, LOAD_IRQ, 256).map_err(LatencyError::Load)?);
    let ring = nic.clone();
    let work = Work::from_fn("nic-rx", move || {
        while ring.pop().is_some() {}
        ring.set_irq_enabled(true);
    });
    let device = nic.clone();
    let item = work.clone();
    let registration = request_irq(
        &controller,
        LOAD_IRQ,
        IrqRequest::new(
            "nic-load",
            IrqFlags::EDGE,
            move |_: &mut HardIrqContext<'_>| {
                device.set_irq_enabled(false);
                let _ = wq::queue_work(wq::system_wq(), &item);
                IrqReturn::Handled
            },
        ),
    )
    .map_err(|error| LatencyError::Request(error.to_string()))?;

    // A feeder of our own rather than `arrival::drive`, because the load
    // runs until `Bench::finish` stops it, not for a known count or time.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let arrivals = Arrival::Poisson {
        rate_hz: f64::from(hz),
        seed: 1,
    };
    let start = clock::now() + Duration::from_millis(1);
    let feeder = std::thread::Builder::new()
        .name("nic-load".into())
        .spawn(move || {
            clock::set_timer_slack(Duration::from_nanos(1));
            for offset in arrivals.offsets() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let arrived = start + offset;
                clock::sleep_until(arrived);
                nic.receive(64, arrived);
            }
        })
        .map_err(LatencyError::Runtime)?;
    Ok(Load {
        stop,
        feeder,
        registration,
        work,
    })
}

/// A running measurement of one mechanism: the timer fires until
/// [`Session::finish`].
pub struct Session {
    mechanism: Mechanism,
    bench: Bench,
    timer: Arc<irq_sim::LocalTimer>,
    registration: IrqRegistration,
    probe: Arc<Probe>,
    ordered: Option<Workqueue>,
    /// The timer's first programmed expiry.
    first_expiry: Timestamp,
}

impl Session {
    /// Builds a machine, registers the mechanism's top half on a local
    /// timer line, and starts the timer.
    ///
    /// # Errors
    ///
    /// [`LatencyError::Machine`], [`LatencyError::Request`].
    pub fn start(
        mechanism: Mechanism,
        settings: &RunSettings,
        runtimes: &Runtimes,
    ) -> Result<Self, LatencyError> {
        let bench = Bench::new(settings)?;
        let controller = bench.machine.controller();
        let probe = Probe::new(settings.period, settings.work_time);
        let mut ordered = None;

        let registration = match mechanism {
            Mechanism::SystemWq => {
                register_wq(&controller, wq::system_wq().clone(), &probe, settings.slots)?
            }
            Mechanism::HighpriWq => register_wq(
                &controller,
                wq::system_highpri_wq().clone(),
                &probe,
                settings.slots,
            )?,
            Mechanism::OrderedWq => {
                let queue = wq::alloc_ordered_workqueue("latency-ordered", wq::WqFlags::NONE);
                ordered = Some(queue.clone());
                register_wq(&controller, queue, &probe, settings.slots)?
            }
            Mechanism::ThreadedIrq => register_threaded(&controller, &probe, settings.slots)?,
            Mechanism::TokioSpawn => {
                register_spawn(&controller, runtimes.spawn.handle().clone(), &probe)?
            }
        };

        let timer = controller
            .local_timer(0, TIMER_IRQ)
            .map(Arc::new)
            .map_err(|error| LatencyError::Request(error.to_string()))?;
        let _ = probe.timer.set(Arc::downgrade(&timer));
        let first_expiry = clock::now() + Duration::from_millis(2);
        probe.previous_ns.store(
            first_expiry.as_nanos().saturating_sub(probe.period_ns),
            Ordering::Relaxed,
        );
        timer.start_periodic(first_expiry, settings.period);
        Ok(Self {
            mechanism,
            bench,
            timer,
            registration,
            probe,
            ordered,
            first_expiry,
        })
    }

    /// Counts only the expiries programmed within `length` of the first,
    /// as the baseline counts the periods of its round, and returns the
    /// end of that time.
    pub fn count_for(&self, length: Duration) -> Timestamp {
        let end = self.first_expiry + length;
        self.probe
            .cutoff_ns
            .store(end.as_nanos(), Ordering::Relaxed);
        end
    }

    /// Waits until an expiry at or past the end that [`Session::count_for`]
    /// set has reached the top half, for at most a period and `grace`, so
    /// that the expiries due before the end are not cut off on their way.
    pub fn wait_past_cutoff(&self, grace: Duration) {
        let deadline = Instant::now() + Duration::from_nanos(self.probe.period_ns) + grace;
        while !self.probe.past_cutoff.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Returns the activations so far.
    pub fn activations(&self) -> u64 {
        self.probe.activations.load(Ordering::Relaxed)
    }

    /// Stops the timer, waits for the queued bottom halves to start, and
    /// returns the samples.
    ///
    /// # Errors
    ///
    /// [`LatencyError::DrainTimedOut`] when bottom halves are still queued
    /// 10 s after the timer stopped.
    pub fn finish(self) -> Result<ColumnSamples, LatencyError> {
        self.finish_within(DRAIN_TIMEOUT)
    }

    /// As [`Session::finish`], with `drain_timeout` in place of 10 s.
    ///
    /// # Errors
    ///
    /// [`LatencyError::DrainTimedOut`] when bottom halves are still queued
    /// `drain_timeout` after the timer stopped. Those bottom halves, and
    /// the one running, then return without their work time.
    pub fn finish_within(self, drain_timeout: Duration) -> Result<ColumnSamples, LatencyError> {
        self.timer.cancel();
        // The controller's wait, for the top half only: the drain below
        // bounds the wait for the bottom halves, IRQ thread included.
        let _ = self
            .bench
            .machine
            .controller()
            .synchronize_hardirq(TIMER_IRQ);
        let cutoff_ns = self.probe.cutoff_ns.load(Ordering::Relaxed);
        if cutoff_ns != u64::MAX && !self.probe.past_cutoff.load(Ordering::Acquire) {
            // The periods since the last expiry seen never fired before the
            // timer stopped: skipped like any others.
            let _ = self.probe.count_skipped(cutoff_ns);
        }

        let deadline = Instant::now() + drain_timeout;
        let queued = self.probe.queued.load(Ordering::Relaxed);
        loop {
            let started = self.probe.started.load(Ordering::Relaxed);
            if started >= queued {
                break;
            }
            if Instant::now() > deadline {
                self.probe.abandoned.store(true, Ordering::Relaxed);
                return Err(LatencyError::DrainTimedOut {
                    mechanism: self.mechanism.name(),
                    started,
                    queued,
                    timeout: drain_timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }

        let top_half = self
            .bench
            .machine
            .controller()
            .line_stats(TIMER_IRQ)
            .ok()
            .and_then(|stats| stats.histograms)
            .map_or_else(new_histogram, |histograms| histograms.duration);
        let _ = self.registration.free();
        if let Some(queue) = &self.ordered {
            let _ = wq::blocking::destroy_workqueue(queue);
        }
        let counts = Counts {
            activations: self.probe.activations.load(Ordering::Relaxed),
            timer_overruns: self.probe.skipped.load(Ordering::Relaxed),
            lost: self.probe.lost.load(Ordering::Relaxed),
            started: self.probe.started.load(Ordering::Relaxed),
        };
        let samples = ColumnSamples {
            irq: take(&self.probe.irq),
            thr: take(&self.probe.thr),
            top_half,
            counts,
        };
        drop(self.timer);
        self.bench.finish();
        Ok(samples)
    }
}

/// Registers a top half that queues one of `slot_count` work items on
/// `queue`, in turn.
fn register_wq(
    controller: &irq_sim::Controller,
    queue: Workqueue,
    probe: &Arc<Probe>,
    slot_count: usize,
) -> Result<IrqRegistration, LatencyError> {
    let slots: Vec<Arc<DataWork<Slot>>> = (0..slot_count)
        .map(|_| {
            let slot = Slot {
                raised_ns: AtomicU64::new(0),
                probe: probe.clone(),
            };
            DataWork::new("latency-work", slot, |item| {
                item.probe.start(item.raised_ns.load(Ordering::Acquire));
            })
        })
        .collect();
    let probe = probe.clone();
    let mut next = 0;
    let top_half = move |ctx: &mut HardIrqContext<'_>| {
        let Some(raised) = probe.enter(ctx) else {
            return IrqReturn::Handled;
        };
        let slot = &slots[next % slot_count];
        next += 1;

        // NOTE: the top half is the only queuer, so a slot that is not
        // pending stays so until the queueing below. A slot whose previous
        // run is starting may read the new expiry. That takes a backlog of
        // `slot_count` periods, and the next lap counts it as lost.
        if slot.is_pending() {
            probe.lost.fetch_add(1, Ordering::Relaxed);
            return IrqReturn::Handled;
        }
        slot.raised_ns.store(raised.as_nanos(), Ordering::Release);
        match wq::queue_work(&queue, slot) {
            Ok(true) => probe.queued.fetch_add(1, Ordering::Relaxed),
            Ok(false) | Err(_) => probe.lost.fetch_add(1, Ordering::Relaxed),
        };
        IrqReturn::Handled
    };
    request_irq(
        controller,
        TIMER_IRQ,
        IrqRequest::new("latency-timer", IrqFlags::EDGE, top_half),
    )
    .map_err(|error| LatencyError::Request(error.to_string()))
}

/// The ring between the threaded mechanism's top half and its thread.
struct ThreadRing {
    /// Programmed expiries by sequence number modulo their count.
    raised_ns: Box<[AtomicU64]>,
    /// Next sequence number the top half writes; `Release` after the
    /// entry, paired with the thread's `Acquire`.
    requested: AtomicU64,
    /// Next sequence number the thread reads. It is stored with `Release`
    /// after the read and paired with the top half's `Acquire`, so that
    /// an entry is not overwritten before it was read. The thread frees
    /// each entry as its bottom half starts, as a work item may be queued
    /// again once it runs, so that `--slots` means the same for both.
    served: AtomicU64,
}

/// Registers a threaded handler whose top half returns WakeThread.
fn register_threaded(
    controller: &irq_sim::Controller,
    probe: &Arc<Probe>,
    slot_count: usize,
) -> Result<IrqRegistration, LatencyError> {
    let ring = Arc::new(ThreadRing {
        raised_ns: (0..slot_count).map(|_| AtomicU64::new(0)).collect(),
        requested: AtomicU64::new(0),
        served: AtomicU64::new(0),
    });

    let (top_probe, top_ring) = (probe.clone(), ring.clone());
    let top_half = move |ctx: &mut HardIrqContext<'_>| {
        let Some(raised) = top_probe.enter(ctx) else {
            return IrqReturn::Handled;
        };
        let seq = top_ring.requested.load(Ordering::Relaxed);
        if seq - top_ring.served.load(Ordering::Acquire) >= slot_count as u64 {
            top_probe.lost.fetch_add(1, Ordering::Relaxed);
            return IrqReturn::Handled;
        }
        top_ring.raised_ns[seq as usize % slot_count].store(raised.as_nanos(), Ordering::Relaxed);
        top_ring.requested.store(seq + 1, Ordering::Release);
        top_probe.queued.fetch_add(1, Ordering::Relaxed);
        IrqReturn::WakeThread
    };

    let (thread_probe, thread_ring) = (probe.clone(), ring);
    let thread_fn = move || {
        let end = thread_ring.requested.load(Ordering::Acquire);
        let mut seq = thread_ring.served.load(Ordering::Relaxed);
        while seq < end {
            let raised = thread_ring.raised_ns[seq as usize % slot_count].load(Ordering::Relaxed);
            seq += 1;
            thread_ring.served.store(seq, Ordering::Release);
            thread_probe.start(raised);
        }
        IrqReturn::Handled
    };
    request_threaded_irq(
        controller,
        TIMER_IRQ,
        ThreadedIrq::new("latency-timer", IrqFlags::EDGE, thread_fn).top_half(top_half),
    )
    .map_err(|error| LatencyError::Request(error.to_string()))
}

/// Registers a top half that spawns a tokio task per activation.
fn register_spawn(
    controller: &irq_sim::Controller,
    runtime: tokio::runtime::Handle,
    probe: &Arc<Probe>,
) -> Result<IrqRegistration, LatencyError> {
    let probe = probe.clone();
    let top_half = move |ctx: &mut HardIrqContext<'_>| {
        let Some(raised) = probe.enter(ctx) else {
            return IrqReturn::Handled;
        };
        let task_probe = probe.clone();
        let raised_ns = raised.as_nanos();
        // NOTE: this allocates the task and may wake a runtime thread with
        // a system call inside the top half. That cost is what this
        // mechanism is measured for.
        drop(runtime.spawn(async move { task_probe.start(raised_ns) }));
        probe.queued.fetch_add(1, Ordering::Relaxed);
        IrqReturn::Handled
    };
    request_irq(
        controller,
        TIMER_IRQ,
        IrqRequest::new("latency-timer", IrqFlags::EDGE, top_half),
    )
    .map_err(|error| LatencyError::Request(error.to_string()))
}

/// Runs the baseline for `length`.
///
/// A cyclictest-like plain thread sleeps (or spins) to absolute deadlines,
/// and its wake-up lateness is the IRQ baseline. It hands each deadline to
/// a tokio task waiting in `recv` on an identically built runtime, and the
/// task's start is the thread baseline. The background load, if any, runs
/// on a simulated machine meanwhile, as in the mechanisms' rounds. Without
/// load no machine is built, because an idle busy-poll CPU thread would
/// take a vCPU from the baseline that no mechanism round loses.
///
/// # Errors
///
/// [`LatencyError::Machine`] or [`LatencyError::Request`] from the load,
/// and [`LatencyError::DrainTimedOut`] when the task has not received every
/// deadline 10 s after the thread's last one.
pub fn run_baseline(
    settings: &RunSettings,
    runtimes: &Runtimes,
    length: Duration,
) -> Result<ColumnSamples, LatencyError> {
    let work_time = settings.work_time;
    let bench = match settings.load_hz {
        0 => None,
        _ => Some(Bench::new(settings)?),
    };
    // The channel is unbounded, but the thread sends only while fewer than
    // `--slots` deadlines wait for the task, and counts the others as
    // lost, as the mechanisms do with their slots.
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let received = Arc::new(AtomicU64::new(0));
    let abandoned = Arc::new(AtomicBool::new(false));
    let (task_received, task_abandoned, thread_received) =
        (received.clone(), abandoned.clone(), received.clone());
    let consumer = runtimes.baseline.spawn(async move {
        let mut thr = new_histogram();
        while let Some(deadline_ns) = receiver.recv().await {
            let now = clock::now();
            thr.saturating_record(now.as_nanos().saturating_sub(deadline_ns).max(1));
            task_received.fetch_add(1, Ordering::Release);

            // The same busy time as the mechanisms' bottom halves, cut short
            // once the drain timed out.
            let end = now + work_time;
            while clock::now() < end && !task_abandoned.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        thr
    });

    let period = settings.period;
    let spin = settings.cpu_mode == CpuModeArg::BusyPoll;
    let slots = settings.slots as u64;
    let cyclic = std::thread::Builder::new()
        .name("latency-cyclic".into())
        .spawn(move || {
            clock::set_timer_slack(Duration::from_nanos(1));
            let mut irq = new_histogram();
            let mut counts = Counts::default();
            let period_ns = clock::duration_nanos(period).max(1);
            let start = clock::now() + Duration::from_millis(2);
            let end = start + length;
            let mut next = start;
            while next < end {
                if spin {
                    while clock::now() < next {
                        std::hint::spin_loop();
                    }
                } else {
                    clock::sleep_until(next);
                }
                let now = clock::now();
                irq.saturating_record(now.saturating_since(next).as_nanos().max(1) as u64);
                counts.activations += 1;
                let sent = counts.activations - 1 - counts.lost;
                let waiting = sent - thread_received.load(Ordering::Acquire);
                if waiting >= slots {
                    counts.lost += 1;
                } else if sender.send(next.as_nanos()).is_err() {
                    break;
                }

                // Forward past now, counting missed periods, as the
                // simulated timer (and the kernel's hrtimer_forward) does.
                // Only periods before the end count, as for the mechanisms.
                next = next + period;
                if next <= now {
                    let missed = (now.as_nanos() - next.as_nanos()) / period_ns + 1;
                    let before_end = end
                        .as_nanos()
                        .saturating_sub(next.as_nanos())
                        .div_ceil(period_ns);
                    counts.timer_overruns += missed.min(before_end);
                    next = next + Duration::from_nanos(missed * period_ns);
                }
            }
            (irq, counts)
        })
        .map_err(LatencyError::Runtime)?;
    let (irq, mut counts) = cyclic
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let mut consumer = consumer;
    let drained = runtimes
        .baseline
        .block_on(async { tokio::time::timeout(DRAIN_TIMEOUT, &mut consumer).await });
    let thr = match drained {
        Ok(joined) => joined,
        Err(_elapsed) => {
            abandoned.store(true, Ordering::Relaxed);
            let started = received.load(Ordering::Acquire);
            // The rest of the backlog now returns at once.
            let _ = runtimes.baseline.block_on(consumer);
            if let Some(bench) = bench {
                bench.finish();
            }
            return Err(LatencyError::DrainTimedOut {
                mechanism: super::report::BASELINE,
                started,
                queued: counts.activations - counts.lost,
                timeout: DRAIN_TIMEOUT,
            });
        }
    }
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    counts.started = received.load(Ordering::Acquire);
    if let Some(bench) = bench {
        bench.finish();
    }
    Ok(ColumnSamples {
        irq,
        thr,
        top_half: new_histogram(),
        counts,
    })
}

/// Runs one mechanism for `length` and returns its samples.
///
/// # Errors
///
/// As [`Session::start`] and [`Session::finish`].
pub fn run_mechanism(
    mechanism: Mechanism,
    settings: &RunSettings,
    runtimes: &Runtimes,
    length: Duration,
) -> Result<ColumnSamples, LatencyError> {
    let session = Session::start(mechanism, settings, runtimes)?;
    let end = session.count_for(length);
    clock::sleep_until(end);
    session.wait_past_cutoff(PAST_CUTOFF_GRACE);
    session.finish()
}
