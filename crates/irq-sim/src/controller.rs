//! The interrupt controller: lines, their handler chains, and the API
//! drivers and devices call.
//!
//! A [`Controller`] is a cheap handle (an `Arc`) shared by the machine's CPU
//! threads, the devices that raise lines and the drivers that request them.
//!
//! # Locks and who holds them
//!
//! | data | protected by | held by |
//! |---|---|---|
//! | a line's delivery state | one atomic word (`line_state`) | nobody: compare-and-swap |
//! | a line's handler chain, budget, spurious counts, recent histograms | the line's chain mutex | the dispatching CPU for one chain; `request_irq`, `free_irq`, `set_budget`, and readers of statistics for a swap of the histograms |
//! | a line's older histograms | the line's archive mutex | readers of statistics only |
//! | lines raised for a CPU | the CPU's intake: one atomic head (`intake`) | no lock: compare-and-swap to push, swap to take all |
//! | a CPU's pending queue | the CPU thread alone | no lock |
//! | a CPU's local timers and sleep flag | the CPU's queue mutex | timer calls for one change; the CPU to look and to sleep; a raiser that must wake a sleeping CPU |
//! | counters | atomics | nobody |
//!
//! No lock is held across a call into a top half except the chain mutex of
//! the line being handled, which only task-context APIs take, so a top half
//! cannot deadlock on it. No API that takes a chain mutex may be called from
//! a top half: each checks `might_sleep()` first.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use irq_sim::{Config, IrqFlags, IrqRequest, IrqReturn, Machine};
//!
//! let machine = Machine::new(Config::default()).unwrap();
//! let irq = machine.controller();
//! let seen = Arc::new(AtomicU32::new(0));
//! let counter = seen.clone();
//! let id = irq
//!     .request_irq(5, IrqRequest::new("demo", IrqFlags::EDGE, move |_ctx: &mut irq_sim::HardIrqContext<'_>| {
//!         counter.fetch_add(1, Ordering::Relaxed);
//!         IrqReturn::Handled
//!     }))
//!     .unwrap();
//! irq.raise(5).unwrap();
//! irq.synchronize_irq(5).unwrap();
//! irq.free_irq(id).unwrap();
//! let report = machine.shutdown();
//! assert!(report.hung.is_empty());
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use crate::clock::{self, Timestamp};
use crate::context::{self, InvalidContext};
use crate::contract::{Budget, RateLimit};
use crate::error::{ContractViolation, FreeError, LineError, RequestError, RequestRejected};
use crate::handler::{
    HandlerId, IrqFlags, IrqRequest, SynchronizeHook, TopHalf, Trigger, WakeThreadHook,
};
use crate::intake::{Intake, IntakeLink};
use crate::line_state::{EnableOutcome, LineSnapshot, LineState, MAX_OUTPUTS, RaiseOutcome, Rearm};
use crate::machine::Config;
use crate::output::IrqOutput;
use crate::stats::{self, CpuCounters, CpuStats, LatencyHistograms, LineCounters, LineStats};
use crate::timer::TimerTable;

/// The priority of a line unless `set_priority` changes it. Higher values
/// are delivered first.
pub const DEFAULT_PRIORITY: u8 = 128;

/// Locks `mutex`, ignoring poison: a top half's panic is caught inside the
/// lock scope, so poison only follows a bug in irq-sim itself, and the data
/// stays consistent either way.
///
/// A lock found taken may block the thread, a voluntary context switch
/// that is irq-sim's own and not a top half's sleep, so it is counted for
/// the sleep check (see `contract`).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            CONTENDED.with(|count| count.set(count.get() + 1));
            mutex.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

thread_local! {
    /// Locks this thread found taken, through [`lock`].
    static CONTENDED: Cell<u64> = const { Cell::new(0) };
}

/// Returns how many locks this thread found taken so far.
pub(crate) fn contended_locks() -> u64 {
    CONTENDED.with(Cell::get)
}

/// A handle to the simulated interrupt controller.
#[derive(Clone)]
pub struct Controller {
    pub(crate) shared: Arc<Shared>,
}

/// State shared by the controller handles and the CPU threads.
pub(crate) struct Shared {
    /// Immutable after construction.
    pub(crate) config: Config,
    /// One per line; immutable length.
    pub(crate) lines: Box<[Line]>,
    /// One per CPU; immutable length.
    pub(crate) cpus: Box<[CpuShared]>,
    /// Handler names by index, for the watchdog (which cannot take a chain
    /// lock held by a stuck CPU); append-only, under its mutex.
    pub(crate) names: Mutex<Vec<&'static str>>,
    /// Contract violations recorded for `Machine::check`; under its mutex.
    pub(crate) violations: Mutex<Vec<ContractViolation>>,
    /// Set once by `Machine::shutdown`.
    pub(crate) stopping: AtomicBool,
}

/// One IRQ line.
///
/// `repr(C)` and the alignment put everything a raise touches in the first
/// cache line: the state, the routing it reads, and the counters it bumps.
/// The dispatching CPU writes the same line (the state and the delivery
/// counts), so a raise and the delivery that follows pass one line between
/// cores instead of three, and neighbouring lines share none.
#[repr(C, align(64))]
pub(crate) struct Line {
    /// Delivery state; atomic.
    pub(crate) state: LineState,
    /// The CPU that takes the line; atomic, `Relaxed` (a delivery already
    /// queued stays on its old CPU, as on real hardware).
    pub(crate) affinity: AtomicUsize,
    /// The next line on the intake this line waits on.
    pub(crate) intake_link: IntakeLink,
    /// Delivery priority, higher first; atomic, `Relaxed`.
    pub(crate) priority: AtomicU8,
    /// Counters; atomics. The ones a raise or a delivery bumps come first.
    pub(crate) counters: LineCounters,
    /// `free_irq` calls that have begun and not yet removed their handler.
    /// A CPU about to run the chain lets them take it first, so that no
    /// handler is called again once its free has begun, as Linux's flow
    /// handler waits on the descriptor lock that `__free_irq` holds.
    /// Next to the chain's lock, which the CPU takes just before.
    pub(crate) freeing: AtomicU32,
    /// Serials of the handlers those `free_irq` calls remove, so that a
    /// chain already running skips them. A CPU takes this mutex only while
    /// `freeing` is non-zero.
    pub(crate) freeing_serials: Mutex<Vec<u64>>,
    /// Handlers and per-line contract state; see the module docs.
    pub(crate) chain: Mutex<Chain>,
    /// Throttle of budget-overrun and wake-thread reports.
    pub(crate) reports: RateLimit,
    /// Samples a reader of statistics has moved out of the chain; see
    /// [`Controller::line_stats`]. Only readers take this lock.
    pub(crate) archive: Mutex<Option<LatencyHistograms>>,
    /// The device outputs connected to the line, one bit each: the inputs
    /// of its wired OR taken by an [`IrqOutput`] each.
    pub(crate) outputs: AtomicU8,
}

/// A `free_irq` in progress on a line, counted in [`Line::freeing`] and
/// listed in [`Line::freeing_serials`] from its start until its handler is
/// removed, or it fails.
struct Freeing<'a> {
    line: &'a Line,
    serial: u64,
}

impl<'a> Freeing<'a> {
    fn begin(line: &'a Line, serial: u64) -> Self {
        // Listed before it is counted, so that a CPU that reads a non-zero
        // count finds the serial.
        lock(&line.freeing_serials).push(serial);
        // SeqCst, paired with the CPU's loads of the count.
        line.freeing.fetch_add(1, Ordering::SeqCst);
        Self { line, serial }
    }
}

impl Drop for Freeing<'_> {
    fn drop(&mut self) {
        self.line.freeing.fetch_sub(1, Ordering::SeqCst);
        let mut serials = lock(&self.line.freeing_serials);
        if let Some(position) = serials.iter().position(|&serial| serial == self.serial) {
            serials.swap_remove(position);
        }
    }
}

impl Line {
    /// Returns whether a `free_irq` of the handler numbered `serial` has
    /// begun. One load while no free runs.
    pub(crate) fn is_freeing(&self, serial: u64) -> bool {
        self.freeing.load(Ordering::SeqCst) > 0 && lock(&self.freeing_serials).contains(&serial)
    }
}

/// The part of a line the dispatching CPU needs exclusive access to.
pub(crate) struct Chain {
    pub(crate) actions: Vec<Action>,
    pub(crate) trigger: Trigger,
    pub(crate) budget: Budget,
    pub(crate) spurious: SpuriousWindow,
    /// Allocated when the line is first requested, so that 1024 idle lines
    /// cost no histogram memory.
    pub(crate) histograms: Option<LatencyHistograms>,
}

/// One registered handler.
pub(crate) struct Action {
    pub(crate) serial: u64,
    pub(crate) name: &'static str,
    pub(crate) name_index: u32,
    pub(crate) flags: IrqFlags,
    pub(crate) top_half: Box<dyn TopHalf>,
    pub(crate) wake_thread: Option<WakeThreadHook>,
    pub(crate) synchronize: Option<SynchronizeHook>,
    /// The top half has been called once: later calls get no
    /// `FIRST_CALL_ALLOWANCE`.
    pub(crate) called: bool,
    /// Deliveries (not polls) whose call returned `Handled` or
    /// `WakeThread`.
    pub(crate) claimed: u64,
    /// The thread's voluntary switches are read around each call, as the
    /// window around a suspect call showed some that nothing explains
    /// (see `contract`).
    pub(crate) watched: bool,
}

/// The spurious-detection counts of a line, as Linux's `note_interrupt`.
#[derive(Debug, Default)]
pub(crate) struct SpuriousWindow {
    /// Deliveries in the current window.
    pub(crate) count: u32,
    /// Unhandled deliveries in the current window (restarts after a quiet
    /// period).
    pub(crate) unhandled: u32,
    /// When the last unhandled delivery happened.
    pub(crate) last_unhandled: Option<Timestamp>,
    /// A delivery that only woke threads has been seen: Linux's
    /// `SPURIOUS_DEFERRED` bit.
    pub(crate) threads_deferred: bool,
    /// The line's `threads_handled` count when a delivery that only woke
    /// threads was last judged (Linux's `threads_handled_last`).
    pub(crate) threads_handled_last: u64,
}

impl SpuriousWindow {
    /// Restarts the counts for a new handler, as Linux's `__setup_irq`
    /// resets `irq_count` and `irqs_unhandled`. The threads' baseline
    /// stays, as Linux's does.
    pub(crate) fn restart(&mut self) {
        self.count = 0;
        self.unhandled = 0;
        self.last_unhandled = None;
    }
}

/// One entry of a CPU's pending queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueEntry {
    pub(crate) priority: u8,
    /// Arrival order within the CPU; lower is earlier.
    pub(crate) seq: u64,
    pub(crate) irq: u32,
}

impl Ord for QueueEntry {
    /// Highest priority first; equal priorities in arrival order.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for QueueEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A CPU's local timers and sleep state, under the CPU's queue mutex.
pub(crate) struct CpuQueue {
    /// The CPU thread sleeps on the condvar and must be notified.
    pub(crate) sleeping: bool,
    /// The CPU thread must exit.
    pub(crate) stop: bool,
    pub(crate) timers: TimerTable,
}

/// The state the machine shares with one CPU thread.
///
/// `repr(C)` and the alignment give the first cache line to what a raise
/// writes and a spinning CPU polls: the intake, the stop flag and the next
/// timer deadline. The queue mutex, which a raise takes only to wake a
/// sleeping CPU, lives on other lines.
#[repr(C, align(64))]
pub(crate) struct CpuShared {
    /// Lines raised for this CPU and not yet taken; see `intake`.
    pub(crate) intake: Intake,
    /// Set with `queue.stop`, for busy-poll mode.
    pub(crate) stop: AtomicBool,
    /// Earliest armed local timer in clock nanoseconds (`u64::MAX`: none),
    /// for busy-poll mode. Written under the queue lock.
    pub(crate) next_timer: AtomicU64,
    pub(crate) queue: Mutex<CpuQueue>,
    pub(crate) wakeup: Condvar,
    /// When the running top half started (clock nanoseconds), 0 when idle.
    /// With `running_what`, a seqlock read by the watchdog; see `cpu`.
    pub(crate) running_since: AtomicU64,
    /// `irq << 32 | handler name index` of the running top half.
    pub(crate) running_what: AtomicU64,
    /// The `running_since` value already reported as a lockup.
    pub(crate) lockup_reported: AtomicU64,
    pub(crate) counters: CpuCounters,
    /// Recorded by the CPU thread after each chain.
    pub(crate) histograms: Mutex<LatencyHistograms>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        let nr_irqs = config.nr_irqs as usize;
        let lines = (0..nr_irqs)
            .map(|_| Line {
                state: LineState::new(),
                affinity: AtomicUsize::new(0),
                intake_link: IntakeLink::new(),
                priority: AtomicU8::new(DEFAULT_PRIORITY),
                counters: LineCounters::new(config.nr_cpus),
                freeing: AtomicU32::new(0),
                freeing_serials: Mutex::new(Vec::new()),
                chain: Mutex::new(Chain {
                    actions: Vec::new(),
                    trigger: Trigger::Edge,
                    budget: config.default_budget,
                    spurious: SpuriousWindow::default(),
                    histograms: None,
                }),
                reports: RateLimit::default(),
                archive: Mutex::new(None),
                outputs: AtomicU8::new(0),
            })
            .collect();
        let cpus = (0..config.nr_cpus)
            .map(|_| CpuShared {
                intake: Intake::new(),
                stop: AtomicBool::new(false),
                next_timer: AtomicU64::new(u64::MAX),
                queue: Mutex::new(CpuQueue {
                    sleeping: false,
                    stop: false,
                    timers: TimerTable::default(),
                }),
                wakeup: Condvar::new(),
                running_since: AtomicU64::new(0),
                running_what: AtomicU64::new(0),
                lockup_reported: AtomicU64::new(0),
                counters: CpuCounters::default(),
                histograms: Mutex::new(LatencyHistograms::for_cpu()),
            })
            .collect();
        Self {
            config,
            lines,
            cpus,
            names: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Acts on the outcome of a raise of `line`, number `irq`: pushes the
    /// line on its CPU's intake, or counts the raise as coalesced or as
    /// finding the line already high.
    #[inline]
    pub(crate) fn deliver(&self, irq: u32, line: &Line, outcome: RaiseOutcome) {
        match outcome {
            RaiseOutcome::Queue => self.enqueue(irq),
            RaiseOutcome::Coalesced => stats::bump(&line.counters.coalesced),
            RaiseOutcome::AlreadyAsserted => stats::bump(&line.counters.already_asserted),
            RaiseOutcome::Latched => {}
        }
    }

    /// Pushes `irq` on the intake of its CPU and wakes that CPU if it
    /// sleeps. The caller has just set the line's QUEUED bit.
    pub(crate) fn enqueue(&self, irq: u32) {
        let line = &self.lines[irq as usize];
        let cpu = &self.cpus[line.affinity.load(Ordering::Relaxed)];
        if !cpu.intake.push(irq, &line.intake_link) {
            return;
        }
        // The CPU announced a sleep. It holds the queue lock from its
        // announcement until its wait releases it, so taking the lock here
        // waits until the notification can reach it.
        let notify = std::mem::take(&mut lock(&cpu.queue).sleeping);
        // The wake-up system call runs after the lock is released.
        if notify {
            cpu.wakeup.notify_one();
        }
    }

    /// Records `violation`. A sleep or a waiting call repeats on every
    /// interrupt of a line whatever its policy, so only the first of each
    /// (line, handler, kind) is kept. The log and the line's counters count
    /// them all.
    pub(crate) fn record_violation(&self, violation: ContractViolation) {
        let mut violations = lock(&self.violations);
        let repeated = |known: &ContractViolation| match (known, &violation) {
            (
                ContractViolation::Slept { irq, handler, .. },
                ContractViolation::Slept {
                    irq: new_irq,
                    handler: new_handler,
                    ..
                },
            ) => irq == new_irq && handler == new_handler,
            (ContractViolation::InvalidContext(known), ContractViolation::InvalidContext(new)) => {
                known == new
            }
            _ => false,
        };
        if !violations.iter().any(repeated) {
            violations.push(violation);
        }
    }
}

impl Controller {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// Returns the number of lines.
    pub fn nr_irqs(&self) -> u32 {
        self.shared.config.nr_irqs
    }

    /// Returns the number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.shared.config.nr_cpus
    }

    fn line(&self, irq: u32) -> Result<&Line, LineError> {
        self.shared
            .lines
            .get(irq as usize)
            .ok_or(LineError::OutOfRange {
                irq,
                nr_irqs: self.nr_irqs(),
            })
    }

    fn check_sleep(api: &'static str) -> Result<(), InvalidContext> {
        context::might_sleep(api)
    }

    /// Registers a top half on line `irq` (`request_irq`).
    ///
    /// The first handler starts the line with the request's trigger type,
    /// or edge when the request gives none. A second handler joins only if
    /// both ask for sharing and agree on ONESHOT, and on the trigger type
    /// unless the new request gives none, which takes the line's. Every
    /// handler of a shared line is called for each interrupt, in
    /// registration order.
    ///
    /// # Errors
    ///
    /// The request is handed back in [`RequestRejected`] with a
    /// [`RequestError`]: out of range, busy, not shared, trigger or ONESHOT
    /// mismatch, sharing with `no_autoen`, called in a top half, or
    /// shutting down.
    ///
    /// # Context
    ///
    /// Task context; may sleep (waits for the line's running handlers).
    pub fn request_irq(&self, irq: u32, request: IrqRequest) -> Result<HandlerId, RequestRejected> {
        let reject = |error, request| Err(RequestRejected { error, request });
        if let Err(error) = Self::check_sleep("request_irq") {
            return reject(RequestError::InvalidContext(error), request);
        }
        let Ok(line) = self.line(irq) else {
            return reject(
                RequestError::OutOfRange {
                    irq,
                    nr_irqs: self.nr_irqs(),
                },
                request,
            );
        };
        if self.shared.stopping.load(Ordering::Acquire) {
            return reject(RequestError::ShuttingDown { irq }, request);
        }

        if request.flags.shared && request.flags.no_autoen {
            let handler = request.name;
            return reject(RequestError::SharedNoAutoen { irq, handler }, request);
        }
        let mut chain = lock(&line.chain);
        if let Some(existing) = chain.actions.first() {
            let error = if !existing.flags.shared {
                Some(RequestError::Busy {
                    irq,
                    holder: existing.name,
                })
            } else if !request.flags.shared {
                Some(RequestError::NotShared {
                    irq,
                    handler: request.name,
                })
            } else if let Some(requested) = request.flags.trigger
                && requested != chain.trigger
            {
                Some(RequestError::TriggerMismatch {
                    irq,
                    line: chain.trigger,
                    requested,
                })
            } else if existing.flags.oneshot != request.flags.oneshot {
                Some(RequestError::OneshotMismatch {
                    irq,
                    line: existing.flags.oneshot,
                })
            } else {
                None
            };
            if let Some(error) = error {
                drop(chain);
                return reject(error, request);
            }
        }

        let first = chain.actions.is_empty();
        // One sequence for the process, so that an id of another machine
        // never matches a handler of this one.
        static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
        let name_index = {
            let mut names = lock(&self.shared.names);
            names.push(request.name);
            u32::try_from(names.len() - 1).unwrap_or(u32::MAX)
        };
        let IrqRequest {
            name,
            mut flags,
            top_half,
            wake_thread,
            synchronize,
        } = request;
        let trigger = if first {
            flags.trigger.unwrap_or(Trigger::Edge)
        } else {
            chain.trigger
        };
        flags.trigger = Some(trigger);
        chain.actions.push(Action {
            serial,
            name,
            name_index,
            flags,
            top_half,
            wake_thread,
            synchronize,
            called: false,
            claimed: 0,
            watched: false,
        });
        // As Linux's `__setup_irq`, every new handler restarts spurious
        // detection, and one joining a line disabled as spurious enables
        // it again: the new handler may be the one that was missing.
        chain.spurious.restart();
        let now = clock::now().as_nanos();
        let rearm = if first {
            chain.trigger = trigger;
            chain
                .histograms
                .get_or_insert_with(LatencyHistograms::for_line);
            if flags.no_autoen {
                line.state.startup_disabled(trigger == Trigger::Level);
                Rearm::Idle
            } else {
                line.state.startup(trigger == Trigger::Level, now)
            }
        } else if let Some(rearm) = line.state.end_spurious(now) {
            tracing::info!(target: "irq", irq, handler = name, "irq {irq}: handler {name:?} joined the line disabled as spurious; enabling it again");
            rearm
        } else {
            Rearm::Idle
        };
        drop(chain);
        // A level line held high fires now, as does a spurious line enabled
        // again with an interrupt latched.
        self.apply(irq, rearm);

        tracing::debug!(target: "irq", irq, handler = name, ?flags, "request_irq");
        Ok(HandlerId { irq, serial, name })
    }

    /// Removes a handler (`free_irq`). Waits for the line's running handler
    /// chain; once this returns, the handler never runs again. The last
    /// handler's removal shuts the line down (depth one, nothing pending).
    ///
    /// # Errors
    ///
    /// [`FreeError::NotRegistered`] for a handler already freed (double
    /// free); [`FreeError::InvalidContext`] in a top half.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn free_irq(&self, id: HandlerId) -> Result<(), FreeError> {
        Self::check_sleep("free_irq").map_err(FreeError::InvalidContext)?;
        let not_registered = FreeError::NotRegistered {
            irq: id.irq,
            handler: id.name,
        };
        let line = self.line(id.irq).map_err(|_| not_registered.clone())?;

        let action = {
            let _announced = Freeing::begin(line, id.serial);
            let mut chain = lock(&line.chain);
            let Some(position) = chain
                .actions
                .iter()
                .position(|action| action.serial == id.serial)
            else {
                return Err(not_registered);
            };
            let action = chain.actions.remove(position);
            if chain.actions.is_empty() {
                line.state.shutdown();
            }
            action
        };
        // The top half is dropped outside the lock, and after the CPUs may
        // run the chain again: its destructor is driver code, which may
        // wait for them.
        drop(action);

        tracing::debug!(target: "irq", irq = id.irq, handler = id.name, "free_irq");
        Ok(())
    }

    /// Raises line `irq` now for a device: an edge, or a level line going
    /// high.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps, never allocates.
    #[inline]
    pub fn raise(&self, irq: u32) -> Result<RaiseOutcome, LineError> {
        self.raise_at(irq, clock::now())
    }

    /// Raises line `irq` as of `at`: the timestamp its raise-to-entry
    /// latency counts from. Timers pass their programmed expiry; replayed
    /// recordings pass the intended time.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps, never allocates.
    pub fn raise_at(&self, irq: u32, at: Timestamp) -> Result<RaiseOutcome, LineError> {
        let line = self.line(irq)?;
        stats::bump(&line.counters.raised);
        let outcome = line.state.raise(at.as_nanos());
        self.shared.deliver(irq, line, outcome);
        Ok(outcome)
    }

    /// Lowers the level that [`Controller::raise`] set on level line `irq`.
    /// Returns true if it was set. An edge line has nothing to lower, so it
    /// returns false. On a line with no handler, it undoes a raise, since
    /// the next request may make the line level.
    ///
    /// `raise` and `lower` drive the line as one device would. The line
    /// stays high while an [`IrqOutput`] asserts it: devices that share a
    /// level line each take an output ([`Controller::irq_output`]), so that
    /// one lowering its output leaves the others' requests standing.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn lower(&self, irq: u32) -> Result<bool, LineError> {
        Ok(self.line(irq)?.state.lower())
    }

    /// Connects a device's interrupt output to line `irq`, as one input of
    /// the line's wired OR. A level line is high while any output asserts
    /// it, or while [`Controller::raise`] has set it. An edge line latches
    /// an edge when the first output asserts it. Dropping the output
    /// deasserts it and disconnects it.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`], or [`LineError::NoFreeOutput`] when the
    /// line already has [`MAX_OUTPUTS`] outputs connected.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn irq_output(&self, irq: u32) -> Result<IrqOutput, LineError> {
        let line = self.line(irq)?;
        let free = |connected: u8| (0..MAX_OUTPUTS).find(|&output| connected & (1 << output) == 0);
        let connected = line
            .outputs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |connected| {
                free(connected).map(|output| connected | (1 << output))
            })
            .map_err(|_| LineError::NoFreeOutput {
                irq,
                max: MAX_OUTPUTS,
            })?;
        let output = free(connected).expect("the update found a free output in the same value");
        Ok(IrqOutput {
            controller: self.clone(),
            irq,
            output,
        })
    }

    /// Disables line `irq` and waits for its running handlers, IRQ threads
    /// included, as `synchronize_irq` does (`disable_irq`). Disables nest: the depth rises by one, and the line
    /// is masked when it goes from 0 to 1. Returns the new depth.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`], [`LineError::DepthOverflow`], or
    /// [`LineError::InvalidContext`] in a top half (use
    /// `disable_irq_nosync` there).
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn disable_irq(&self, irq: u32) -> Result<u8, LineError> {
        Self::check_sleep("disable_irq").map_err(LineError::InvalidContext)?;
        let depth = self.disable_irq_nosync(irq)?;
        self.wait_handlers(irq)?;
        Ok(depth)
    }

    /// Disables line `irq` without waiting for running handlers
    /// (`disable_irq_nosync`). Returns the new depth.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`] or [`LineError::DepthOverflow`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn disable_irq_nosync(&self, irq: u32) -> Result<u8, LineError> {
        let line = self.line(irq)?;
        line.state.disable().ok_or(LineError::DepthOverflow { irq })
    }

    /// Undoes one `disable_irq` (`enable_irq`). At depth zero the line is
    /// unmasked, and an edge latched or a level held high meanwhile is
    /// delivered.
    ///
    /// # Errors
    ///
    /// [`LineError::UnbalancedEnable`] at depth zero, after a warning; the
    /// line is unchanged. [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn enable_irq(&self, irq: u32) -> Result<(), LineError> {
        let line = self.line(irq)?;
        match line.state.enable(clock::now().as_nanos()) {
            EnableOutcome::Unbalanced => {
                tracing::warn!(target: "irq", irq, "unbalanced enable for irq {irq}");
                Err(LineError::UnbalancedEnable { irq })
            }
            EnableOutcome::StillDisabled { .. } => Ok(()),
            EnableOutcome::Enabled(rearm) => {
                self.apply(irq, rearm);
                Ok(())
            }
        }
    }

    /// Waits until no handler of line `irq` runs (`synchronize_irq`), top
    /// halves and IRQ threads: after the handler chain, it calls each
    /// handler's synchronize hook ([`IrqRequest::on_synchronize`]), in
    /// which a threaded driver waits for its thread function. It does not
    /// disable the line, and, as in Linux, it does not wait for a delivery
    /// still queued on its CPU: a test that raises and then wants the top
    /// half to have run calls [`Controller::wait_delivered`].
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`], or [`LineError::InvalidContext`] in a top
    /// half.
    ///
    /// # Context
    ///
    /// Task context; may sleep. A top half that never returns makes this
    /// wait forever, as in Linux; the watchdog reports it.
    pub fn synchronize_irq(&self, irq: u32) -> Result<(), LineError> {
        Self::check_sleep("synchronize_irq").map_err(LineError::InvalidContext)?;
        self.wait_handlers(irq)
    }

    /// Waits until no top half of line `irq` runs, without waiting for IRQ
    /// threads (`synchronize_hardirq`). It does not disable the line.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`], or [`LineError::InvalidContext`] in a top
    /// half.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn synchronize_hardirq(&self, irq: u32) -> Result<(), LineError> {
        Self::check_sleep("synchronize_hardirq").map_err(LineError::InvalidContext)?;
        self.wait_not_in_progress(irq)
    }

    /// Waits until line `irq` has no delivery pending, queued or running,
    /// then for its IRQ threads as [`Controller::synchronize_irq`] does.
    /// After `raise`, it returns once the top half that the raise caused
    /// has run, which `synchronize_irq` does not promise. Linux has no such
    /// call: it is for tests, which otherwise poll a flag of their own.
    ///
    /// # Errors
    ///
    /// - [`LineError::OutOfRange`].
    /// - [`LineError::Undeliverable`], at once, if a delivery is pending on
    ///   a line disabled, or masked by `mask_irq`: only an `enable_irq` or
    ///   an `unmask_irq` lets it through.
    /// - [`LineError::DisabledAsSpurious`], at once, if a delivery is
    ///   pending on a line disabled as spurious.
    /// - [`LineError::Unrequested`], at once, if a delivery is pending on
    ///   a line with no handler.
    /// - [`LineError::TimedOut`] if the line is still busy after
    ///   `timeout`, as a level line that no top half lowers stays, or one
    ///   whose handler raises it again. A ONESHOT thread counts as busy,
    ///   since the line stays masked until it returns. The final wait for
    ///   other IRQ threads has no bound, as `synchronize_irq`'s has none.
    /// - [`LineError::InvalidContext`] in a top half.
    ///
    /// # Context
    ///
    /// Task context; sleeps, polling the line's state every 50 us.
    pub fn wait_delivered(&self, irq: u32, timeout: Duration) -> Result<(), LineError> {
        const POLL: Duration = Duration::from_micros(50);
        Self::check_sleep("wait_delivered").map_err(LineError::InvalidContext)?;
        let line = self.line(irq)?;
        // `Duration::MAX` and the like: no deadline.
        let deadline = std::time::Instant::now().checked_add(timeout);
        loop {
            let state = line.state.snapshot();
            // The line stays masked until its ONESHOT threads return, so
            // waiting for the mask bounds the wait for those threads too.
            if !(state.pending || state.queued || state.in_progress || state.oneshot > 0) {
                break;
            }
            // A ONESHOT thread's mask ends when its thread does; the others
            // need a call that this wait would never make.
            // A line with no handler is never delivered, even at depth
            // zero after an `enable_irq`. A deliverable line with a
            // handler is queued or in progress while it is pending.
            let held_back = state.depth > 0
                || (state.masked && state.oneshot == 0)
                || (state.pending && !state.queued);
            if held_back && !state.in_progress && state.oneshot == 0 {
                if lock(&line.chain).actions.is_empty() {
                    return Err(LineError::Unrequested { irq });
                }
                if state.spurious {
                    return Err(LineError::DisabledAsSpurious { irq });
                }
                return Err(LineError::Undeliverable {
                    irq,
                    depth: state.depth,
                    masked: state.masked,
                });
            }
            if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
                return Err(LineError::TimedOut { irq, timeout });
            }
            std::thread::sleep(POLL);
        }
        self.wait_handlers(irq)
    }

    /// Waits for a running handler chain of line `irq`, then calls the
    /// synchronize hooks of its handlers: the waits for their IRQ threads.
    fn wait_handlers(&self, irq: u32) -> Result<(), LineError> {
        self.wait_not_in_progress(irq)?;
        // The hooks may sleep, so they run outside the chain lock. The
        // list is cloned under it; this path is task context and may
        // allocate.
        let hooks: Vec<SynchronizeHook> = lock(&self.line(irq)?.chain)
            .actions
            .iter()
            .filter_map(|action| action.synchronize.clone())
            .collect();
        for hook in hooks {
            hook();
        }
        Ok(())
    }

    fn wait_not_in_progress(&self, irq: u32) -> Result<(), LineError> {
        let line = self.line(irq)?;
        while line.state.is_in_progress() {
            // The CPU holds the chain lock for the whole chain, so taking it
            // blocks until the chain returns. The CPU takes the lock just
            // after setting IN_PROGRESS; in that window the loop yields.
            drop(lock(&line.chain));
            std::thread::yield_now();
        }
        Ok(())
    }

    /// Masks line `irq` at the controller (`mask_irq`); raises are latched
    /// until `unmask_irq`. Unlike disable, masking does not nest.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn mask_irq(&self, irq: u32) -> Result<(), LineError> {
        let _newly_masked = self.line(irq)?.state.mask();
        Ok(())
    }

    /// Unmasks line `irq`; a latched edge or a level held high is delivered.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn unmask_irq(&self, irq: u32) -> Result<(), LineError> {
        let rearm = self.line(irq)?.state.unmask(clock::now().as_nanos());
        self.apply(irq, rearm);
        Ok(())
    }

    /// Records that a thread function of line `irq` returned
    /// [`IrqReturn::Handled`](crate::IrqReturn::Handled), as Linux's IRQ
    /// thread counts `threads_handled`. Spurious detection judges a
    /// delivery whose handlers only returned `WakeThread` by this count: it
    /// was handled if some thread function handled an interrupt since the
    /// previous such delivery. The driver layer calls it after each run.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn note_thread_handled(&self, irq: u32) -> Result<(), LineError> {
        let line = self.line(irq)?;
        line.counters
            .threads_handled
            .fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Ends one ONESHOT masking of line `irq` (the kernel's
    /// `irq_finalize_oneshot`): the threaded handler woken by a
    /// `WakeThread` return has finished. The line is unmasked when every
    /// such thread has finished.
    ///
    /// # Errors
    ///
    /// [`LineError::UnbalancedOneshot`] when no thread is outstanding;
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn unmask_oneshot(&self, irq: u32) -> Result<(), LineError> {
        let rearm = self
            .line(irq)?
            .state
            .unmask_oneshot(clock::now().as_nanos())
            .ok_or(LineError::UnbalancedOneshot { irq })?;
        self.apply(irq, rearm);
        Ok(())
    }

    pub(crate) fn apply(&self, irq: u32, rearm: Rearm) {
        if rearm == Rearm::Queue {
            self.shared.enqueue(irq);
        }
    }

    /// Routes line `irq` to `cpu` (`irq_set_affinity`). A delivery already
    /// queued is still taken by the old CPU.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`] or [`LineError::NoSuchCpu`].
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn set_affinity(&self, irq: u32, cpu: usize) -> Result<(), LineError> {
        let line = self.line(irq)?;
        if cpu >= self.nr_cpus() {
            return Err(LineError::NoSuchCpu {
                irq,
                cpu,
                nr_cpus: self.nr_cpus(),
            });
        }
        line.affinity.store(cpu, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the delivery priority of line `irq`: among pending lines of a
    /// CPU the highest value is delivered first.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn set_priority(&self, irq: u32, priority: u8) -> Result<(), LineError> {
        self.line(irq)?.priority.store(priority, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the top-half budget of line `irq` and what an overrun does.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`], or [`LineError::InvalidContext`] in a top
    /// half.
    ///
    /// # Context
    ///
    /// Task context; may sleep (waits for the line's running handlers).
    pub fn set_budget(&self, irq: u32, budget: Budget) -> Result<(), LineError> {
        Self::check_sleep("set_budget").map_err(LineError::InvalidContext)?;
        lock(&self.line(irq)?.chain).budget = budget;
        Ok(())
    }

    /// Returns the decoded delivery state of line `irq`.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`].
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn line_state(&self, irq: u32) -> Result<LineSnapshot, LineError> {
        Ok(self.line(irq)?.state.snapshot())
    }

    /// Returns a copy of the statistics of line `irq`.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`], or [`LineError::InvalidContext`] in a top
    /// half.
    ///
    /// # Context
    ///
    /// Task context; may sleep (waits for the line's running handlers).
    /// The line's CPU needs the chain lock for every delivery, so this holds
    /// it only to swap the histograms for empty ones allocated beforehand.
    /// The copy and the merge happen outside it.
    pub fn line_stats(&self, irq: u32) -> Result<LineStats, LineError> {
        Self::check_sleep("line_stats").map_err(LineError::InvalidContext)?;
        let line = self.line(irq)?;
        let mut stats = LineStats::from_counters(irq, &line.counters);
        let mut fresh = Some(LatencyHistograms::for_line());

        // Under the chain lock: names, counts, and a swap of the histograms.
        let mut chain = lock(&line.chain);
        stats.trigger = chain.trigger;
        stats.handlers = chain.actions.iter().map(|action| action.name).collect();
        stats.claimed_by = chain.actions.iter().map(|action| action.claimed).collect();
        stats.spurious_window_count = chain.spurious.count;
        stats.spurious_window_unhandled = chain.spurious.unhandled;
        let recent = match chain.histograms.as_mut() {
            Some(histograms) => fresh
                .take()
                .map(|empty| std::mem::replace(histograms, empty)),
            None => None,
        };
        drop(chain);

        // Outside it: fold the recent samples into the archive and copy.
        let mut archive = lock(&line.archive);
        match (archive.as_mut(), recent) {
            (Some(archive), Some(recent)) => archive.add(&recent),
            (None, recent) => *archive = recent,
            (Some(_), None) => {}
        }
        stats.histograms = archive.clone();
        drop(archive);
        let state = line.state.snapshot();
        stats.spurious = state.spurious;
        stats.depth = state.depth;
        stats.masked = state.masked;
        Ok(stats)
    }

    /// Returns a copy of the statistics of `cpu`, or `None` if it does not
    /// exist.
    ///
    /// The histograms contain every chain the CPU finished before the call,
    /// so after `synchronize_irq` they agree with
    /// [`Controller::line_stats`]. A CPU that is running a top half at the
    /// call may lack up to 32 of its latest chains.
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly. In a top half it returns `None`.
    pub fn cpu_stats(&self, cpu: usize) -> Option<CpuStats> {
        Self::check_sleep("cpu_stats").ok()?;
        let shared = self.shared.cpus.get(cpu)?;
        let histograms = self.recorded_histograms(shared);
        Some(CpuStats::new(cpu, &shared.counters, histograms))
    }

    /// Copies a CPU's histograms once they contain every chain it finished.
    ///
    /// The CPU records its samples in batches, when its buffer fills and when
    /// it goes idle, so a chain that has ended may wait in the buffer for a
    /// few microseconds. A CPU running a top half records nothing until the
    /// top half returns, which may take long, so its histograms are copied
    /// at once.
    fn recorded_histograms(&self, shared: &CpuShared) -> LatencyHistograms {
        /// Bounds the wait should the CPU thread have died with samples
        /// buffered, which only a bug in irq-sim can cause.
        const RECORD_TIMEOUT: Duration = Duration::from_secs(1);
        let finished = shared.counters.chains.load(Ordering::Acquire);
        let deadline = std::time::Instant::now() + RECORD_TIMEOUT;
        loop {
            let histograms = lock(&shared.histograms);
            let recorded = histograms.duration.len() >= finished;
            if recorded
                || !self.shared.config.histograms
                || shared.running_since.load(Ordering::Acquire) != 0
                || std::time::Instant::now() >= deadline
            {
                return histograms.clone();
            }
            drop(histograms);
            std::thread::yield_now();
        }
    }

    /// Returns the statistics of every line that has a handler.
    ///
    /// # Errors
    ///
    /// [`LineError::InvalidContext`] in a top half.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn all_line_stats(&self) -> Result<Vec<LineStats>, LineError> {
        Self::check_sleep("all_line_stats").map_err(LineError::InvalidContext)?;
        let mut all = Vec::new();
        for irq in 0..self.nr_irqs() {
            let registered = !lock(&self.shared.lines[irq as usize].chain)
                .actions
                .is_empty();
            if registered {
                all.push(self.line_stats(irq)?);
            }
        }
        Ok(all)
    }

    /// Renders the lines that have handlers as `/proc/interrupts` does.
    ///
    /// # Errors
    ///
    /// [`LineError::InvalidContext`] in a top half.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn render_interrupts(&self) -> Result<String, LineError> {
        Ok(stats::render_interrupts(
            &self.all_line_stats()?,
            self.nr_cpus(),
        ))
    }

    /// Renders the lines that have handlers as JSON (see
    /// [`stats::render_interrupts_json`]).
    ///
    /// # Errors
    ///
    /// [`LineError::InvalidContext`] in a top half.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn render_interrupts_json(&self) -> Result<String, LineError> {
        Ok(stats::render_interrupts_json(&self.all_line_stats()?))
    }

    /// Returns the contract violations recorded so far (panics, lockups,
    /// and overruns of lines whose policy is `Fail`).
    ///
    /// # Context
    ///
    /// Task context; may sleep briefly.
    pub fn violations(&self) -> Vec<ContractViolation> {
        lock(&self.shared.violations).clone()
    }

    /// Returns the CPU time budget, default and policy of line `irq`.
    ///
    /// # Errors
    ///
    /// [`LineError::OutOfRange`], or [`LineError::InvalidContext`] in a top
    /// half.
    ///
    /// # Context
    ///
    /// Task context; may sleep.
    pub fn budget(&self, irq: u32) -> Result<Budget, LineError> {
        Self::check_sleep("budget").map_err(LineError::InvalidContext)?;
        Ok(lock(&self.line(irq)?.chain).budget)
    }

    /// Returns how long the CPU has been in its current top half, and which
    /// line it handles, or `None` when it is idle or between top halves.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn cpu_running(&self, cpu: usize) -> Option<(u32, Duration)> {
        let shared = self.shared.cpus.get(cpu)?;
        let since = shared.running_since.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let irq = (shared.running_what.load(Ordering::Acquire) >> 32) as u32;
        Some((
            irq,
            clock::now().saturating_since(Timestamp::from_nanos(since)),
        ))
    }
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("nr_irqs", &self.nr_irqs())
            .field("nr_cpus", &self.nr_cpus())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spinning_cpu_polls_one_cache_line() {
        use std::mem::offset_of;
        assert_eq!(offset_of!(CpuShared, intake), 0);
        assert!(offset_of!(CpuShared, stop) < 64);
        assert!(offset_of!(CpuShared, next_timer) + 8 <= 64);
    }

    #[test]
    fn raise_fields_share_first_line() {
        use std::mem::offset_of;
        assert!(offset_of!(Line, affinity) < 64);
        assert!(offset_of!(Line, priority) < 64);
        assert!(offset_of!(Line, intake_link) < 64);
        let counters = offset_of!(Line, counters);
        assert!(counters + offset_of!(LineCounters, unhandled) + 8 <= 64);
        assert_eq!(std::mem::align_of::<Line>(), 64);
    }

    #[test]
    fn queue_entries_by_priority_then_arrival() {
        use std::collections::BinaryHeap;
        let mut heap = BinaryHeap::new();
        for (priority, seq) in [(1, 0), (9, 1), (9, 2), (5, 3)] {
            heap.push(QueueEntry {
                priority,
                seq,
                irq: seq as u32,
            });
        }
        let order: Vec<u32> = std::iter::from_fn(|| heap.pop().map(|entry| entry.irq)).collect();
        assert_eq!(order, [1, 2, 3, 0]);
    }
}
