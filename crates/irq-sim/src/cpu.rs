//! A simulated CPU: an OS thread that takes pending lines off its queue,
//! highest priority first, and runs their handler chains in hard-IRQ
//! context, one chain at a time.
//!
//! # One delivery, step by step
//!
//! 1. Move the lines raised since the last look from the intake to the
//!    CPU's own priority queue, take the first line off it, and
//!    `begin_dispatch` (mask and ack). A line lowered, masked or disabled
//!    since it was queued is skipped.
//! 2. Lock the line's chain, read the clock (entry), enter hard-IRQ context.
//! 3. For each handler: publish it for the watchdog, call it under
//!    `catch_unwind`, read the clock, and check the call against the budget.
//! 4. Count, record the line's histograms, buffer the sample for the CPU's
//!    histograms, and feed spurious detection.
//! 5. `end_dispatch` (unmask): an edge that arrived meanwhile, a level still
//!    high, or a poll request queues the line again.
//! 6. Drop the hard-IRQ guard: the wake-ups the handlers deferred run now.
//!
//! Nothing on this path allocates. Nothing above TRACE is logged except
//! anomalies: overruns (throttled per line), and panics and spurious lines
//! (each disables its line, so each is reported once per enable).

use std::collections::BinaryHeap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::{self, Timestamp};
use crate::context;
use crate::contract::{
    self, Budget, CallTime, CpuClock, FIRST_CALL_ALLOWANCE, OverrunPolicy, Throttle, panic_message,
};
use crate::controller::{Action, Chain, Controller, CpuShared, Line, QueueEntry, lock};
use crate::error::ContractViolation;
use crate::handler::{HardIrqContext, IrqReturn};
use crate::line_state::{Dispatch, MAX_ONESHOT, RaiseOutcome, stamp_latency};
use crate::machine::{CpuMode, ExitBoard};
use crate::stats::bump;

/// State only the CPU thread touches.
struct CpuLocal {
    clock: CpuClock,
    samples: SampleBuffer,
    pending: Pending,
}

impl CpuLocal {
    fn new(accounting: crate::contract::CpuTimeAccounting, nr_irqs: usize) -> Self {
        Self {
            clock: CpuClock::new(accounting),
            samples: SampleBuffer::default(),
            pending: Pending::with_capacity(nr_irqs),
        }
    }
}

/// The lines due on this CPU, taken from its intake: highest priority
/// first, equal priorities in the order they were pushed.
///
/// A line is queued at most once (its state's QUEUED bit), so the capacity
/// reserved for every line means that nothing here allocates, which
/// `tests/irq_alloc.rs` checks.
struct Pending {
    heap: BinaryHeap<QueueEntry>,
    next_seq: u64,
    /// Lines just taken from the intake, before they enter the heap.
    arrivals: Vec<u32>,
}

impl Pending {
    fn with_capacity(nr_irqs: usize) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(nr_irqs),
            next_seq: 0,
            arrivals: Vec::with_capacity(nr_irqs),
        }
    }

    fn is_empty(&self, shared: &CpuShared) -> bool {
        self.heap.is_empty() && !shared.intake.has_lines()
    }

    /// Moves the lines on the intake to the heap, with the priorities they
    /// have now.
    fn take_intake(&mut self, lines: &[Line], shared: &CpuShared) {
        shared
            .intake
            .take_all(|irq| &lines[irq as usize].intake_link, &mut self.arrivals);
        for irq in self.arrivals.drain(..) {
            let priority = lines[irq as usize].priority.load(Ordering::Relaxed);
            self.heap.push(QueueEntry {
                priority,
                seq: self.next_seq,
                irq,
            });
            self.next_seq += 1;
        }
    }

    /// Takes the intake, then returns the first line due.
    fn pop(&mut self, lines: &[Line], shared: &CpuShared) -> Option<QueueEntry> {
        self.take_intake(lines, shared);
        self.heap.pop()
    }
}

/// Samples for the CPU's histograms, recorded under the histogram lock in
/// batches: when the buffer is full and whenever the CPU goes idle.
/// `Controller::cpu_stats` waits for a CPU between chains to record what it
/// buffered. A reader of a CPU in a top half misses at most
/// [`SAMPLE_BATCH`] samples.
const SAMPLE_BATCH: usize = 32;

#[derive(Default)]
struct SampleBuffer {
    /// (latency in ns or `u64::MAX` for none, duration in ns).
    samples: [(u64, u64); SAMPLE_BATCH],
    len: usize,
}

impl SampleBuffer {
    #[inline]
    fn push(&mut self, shared: &CpuShared, latency_ns: Option<u64>, duration_ns: u64) {
        self.samples[self.len] = (latency_ns.unwrap_or(u64::MAX), duration_ns);
        self.len += 1;
        if self.len == SAMPLE_BATCH {
            self.flush(shared);
        }
    }

    fn flush(&mut self, shared: &CpuShared) {
        if self.len == 0 {
            return;
        }
        let mut histograms = lock(&shared.histograms);
        for &(latency, duration) in &self.samples[..self.len] {
            histograms.record((latency != u64::MAX).then_some(latency), duration);
        }
        self.len = 0;
    }
}

/// The next job of the CPU thread.
enum Work {
    Line(QueueEntry),
    /// A local timer expired: raise its line as of the programmed time.
    Timer(u32, Timestamp),
    Stop,
}

/// Marks the CPU as exited when the thread ends, even by a panic in
/// irq-sim itself.
struct ExitSignal {
    board: ExitBoard,
    cpu: usize,
}

impl Drop for ExitSignal {
    fn drop(&mut self) {
        let (exited, condvar) = &*self.board;
        lock(exited)[self.cpu] = true;
        condvar.notify_all();
    }
}

/// Runs CPU thread `cpu` until the machine stops.
pub(crate) fn run(controller: Controller, cpu: usize, board: ExitBoard) {
    let _exit = ExitSignal { board, cpu };
    let config = controller.shared.config;
    if !clock::set_timer_slack(config.timer_slack) {
        // A target of its own, which `irqlab latency` keeps showing while it
        // hides the other `irq` warnings: the slack changes what it measures.
        tracing::warn!(target: "irq::clock", cpu, "failed to set the timer slack of CPU {cpu}; timer latency will include the default slack");
    }
    let mut local = CpuLocal::new(config.cpu_time, controller.shared.lines.len());
    let lines = &controller.shared.lines[..];
    let shared = &controller.shared.cpus[cpu];

    loop {
        let work = match config.cpu_mode {
            CpuMode::Blocking => next_blocking(lines, shared, &mut local),
            CpuMode::BusyPoll => next_spinning(lines, shared, &mut local),
        };
        match work {
            Work::Line(entry) => dispatch(&controller, cpu, entry.irq, &mut local),
            Work::Timer(irq, programmed) => {
                bump(&shared.counters.timer_expiries);
                fire_timer(&controller, cpu, irq, programmed, &mut local);
            }
            Work::Stop => {
                local.samples.flush(shared);
                return;
            }
        }
    }
}

/// Raises the line of an expired local timer as of its programmed time.
///
/// When the line is routed to this CPU and nothing else is queued here, the
/// CPU dispatches it at once instead of pushing it onto its own queue and
/// popping it again: nothing could be delivered before it anyway.
fn fire_timer(
    controller: &Controller,
    cpu: usize,
    irq: u32,
    programmed: Timestamp,
    local: &mut CpuLocal,
) {
    let shared = &*controller.shared;
    let line = &shared.lines[irq as usize];
    let routed_here = line.affinity.load(Ordering::Relaxed) == cpu;
    if !routed_here || !local.pending.is_empty(&shared.cpus[cpu]) {
        // The timer's line number was validated when the timer was made.
        let _ = controller.raise_at(irq, programmed);
        return;
    }
    bump(&line.counters.raised);
    match line.state.raise(programmed.as_nanos()) {
        RaiseOutcome::Queue => dispatch(controller, cpu, irq, local),
        // Counted as a raise from another thread counts them.
        other => shared.deliver(irq, line, other),
    }
}

/// Waits on the condvar for a queued line, a due timer or stop.
fn next_blocking(lines: &[Line], shared: &CpuShared, local: &mut CpuLocal) -> Work {
    let mut anchor_checked = false;
    let mut queue = lock(&shared.queue);
    loop {
        if queue.stop {
            return Work::Stop;
        }

        // Due timers first: a timer line competes by priority only once
        // raised.
        let mut timeout = None;
        if let Some(deadline) = queue.timers.next_deadline() {
            let now = clock::now();
            if let Some((irq, programmed)) = queue.timers.take_due(now) {
                let next = queue
                    .timers
                    .next_deadline()
                    .map_or(u64::MAX, Timestamp::as_nanos);
                shared.next_timer.store(next, Ordering::Release);
                return Work::Timer(irq, programmed);
            }
            timeout = Some(deadline.saturating_since(now));
        }

        if let Some(entry) = local.pending.pop(lines, shared) {
            return Work::Line(entry);
        }

        // Going idle: refresh an old CPU-time anchor now, outside the lock,
        // where the system call delays no delivery; then look again.
        if !anchor_checked {
            anchor_checked = true;
            drop(queue);
            local.samples.flush(shared);
            local.clock.refresh_if_old(clock::now());
            queue = lock(&shared.queue);
            continue;
        }

        // Announced under the lock: a pusher that finds the announcement
        // takes the lock before it notifies (`Shared::enqueue`).
        if !shared.intake.announce_sleep() {
            continue;
        }
        queue.sleeping = true;
        let slept_from = clock::now();
        queue = match timeout {
            Some(timeout) => {
                shared
                    .wakeup
                    .wait_timeout(queue, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
            None => shared
                .wakeup
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
        queue.sleeping = false;
        shared.intake.end_sleep();
        local
            .clock
            .add_idle(clock::now().saturating_since(slept_from));
    }
}

/// Spins on the intake and the timer deadline until work arrives.
fn next_spinning(lines: &[Line], shared: &CpuShared, local: &mut CpuLocal) -> Work {
    let mut spins: u32 = 0;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Work::Stop;
        }

        if let Some(entry) = local.pending.pop(lines, shared) {
            return Work::Line(entry);
        }

        let next_timer = shared.next_timer.load(Ordering::Acquire);
        let now = if next_timer == u64::MAX {
            None
        } else {
            Some(clock::now())
        };
        if let Some(now) = now.filter(|now| now.as_nanos() >= next_timer) {
            let mut queue = lock(&shared.queue);
            if let Some((irq, programmed)) = queue.timers.take_due(now) {
                let next = queue
                    .timers
                    .next_deadline()
                    .map_or(u64::MAX, Timestamp::as_nanos);
                shared.next_timer.store(next, Ordering::Release);
                return Work::Timer(irq, programmed);
            }
        }

        // Spinning idle is CPU time, so the anchor stays valid; it is
        // refreshed now and then only to keep the window short.
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(16_384) {
            local.samples.flush(shared);
            local.clock.refresh_if_old(clock::now());
        }
        std::hint::spin_loop();
    }
}

/// Runs one delivery (or poll) of line `irq` on CPU `cpu`.
fn dispatch(controller: &Controller, cpu: usize, irq: u32, local: &mut CpuLocal) {
    let shared = &*controller.shared;
    let line = &shared.lines[irq as usize];
    let me = &shared.cpus[cpu];

    // Step 1: mask and ack.
    let (stamp, poll) = match line.state.begin_dispatch() {
        Dispatch::Run { stamp } => (Some(stamp), false),
        Dispatch::Poll => (None, true),
        Dispatch::Skip => {
            bump(&line.counters.skipped);
            return;
        }
        // Counted when the enable or unmask delivers it.
        Dispatch::Postpone => return,
    };

    // Step 2: enter hard-IRQ context, once no free_irq waits for the chain.
    let mut chain_lock = lock(&line.chain);
    while line.freeing.load(Ordering::SeqCst) > 0 {
        drop(chain_lock);
        std::thread::yield_now();
        chain_lock = lock(&line.chain);
    }
    if chain_lock.actions.is_empty() {
        // The last handler was freed after the line was queued.
        drop(chain_lock);
        let rearm = line.state.end_dispatch(clock::now().as_nanos());
        controller.apply(irq, rearm);
        return;
    }
    let entry = clock::now();
    let latency_ns = stamp.map(|stamp| stamp_latency(stamp, entry.as_nanos()));
    let guard = context::enter_hardirq(irq, chain_lock.actions[0].name);

    // Step 3: the handler chain.
    let chain = &mut *chain_lock;
    let budget = chain.budget;
    let mut outcome = ChainOutcome::default();
    // The policies disable the line once a delivery, however many of its
    // handlers overrun or panic, so that one `enable_irq` undoes it.
    let mut disabled = DisableOnce::default();
    let mut start = entry;
    for (index, action) in chain.actions.iter_mut().enumerate() {
        // Skip a handler whose free began while an earlier handler ran.
        // Linux's walk of the action list does not reach an action that
        // `__free_irq` has already unlinked either.
        if index > 0 && line.is_freeing(action.serial) {
            continue;
        }
        if index > 0 {
            guard.set_handler(action.name);
            me.running_since.store(0, Ordering::Release);
        }
        me.running_what.store(
            u64::from(irq) << 32 | u64::from(action.name_index),
            Ordering::Release,
        );
        me.running_since.store(start.as_nanos(), Ordering::Release);
        tracing::trace!(name: "irq_handler_entry", target: "irq", irq, handler = action.name, "irq_handler_entry");

        let cpu_start = local.clock.call_start();
        let watched = action.watched || local.clock.per_call();
        let switches_start = watched.then(contract::unexplained_switches);
        let call = Call {
            controller,
            line,
            irq,
            cpu,
            entry,
            latency_ns,
            poll,
        };
        let result = call.run(action);
        let end = clock::now();

        match result {
            Ok(ret) => {
                tracing::trace!(name: "irq_handler_exit", target: "irq", irq, handler = action.name, ret = ret.as_str(), "irq_handler_exit");
                outcome.note(ret, action, line, irq);
                // A poll is no delivery, so it claims nothing.
                if !poll && ret != IrqReturn::None {
                    action.claimed += 1;
                }
            }
            Err(message) => {
                handle_panic(controller, line, irq, action.name, message, &mut disabled);
            }
        }
        let wall = end.saturating_since(start);
        let allowance = if action.called {
            Duration::ZERO
        } else {
            FIRST_CALL_ALLOWANCE
        };
        action.called = true;
        // Taken after every call, so that a mark never outlives its call.
        let excused = context::take_excused_cost();
        if wall > budget.limit + allowance
            && let Some(cost) = excused
        {
            tracing::debug!(
                target: "irq",
                irq,
                handler = action.name,
                wall_ns = wall.as_nanos() as u64,
                cost,
                "over budget in a call that paid a one-time cost; not counted"
            );
            let _ = local.clock.call_time(cpu_start, None, wall, end);
        } else if wall > budget.limit + allowance {
            let time = local.clock.call_time(cpu_start, switches_start, wall, end);
            action.watched = check_budget(
                controller,
                line,
                irq,
                action.name,
                budget,
                allowance,
                wall,
                time,
                &mut disabled,
            );
            // A report written meanwhile may have blocked on its output.
            local.clock.rebase_switches();
        } else if !allowance.is_zero() {
            // A first call within its allowance may still have blocked on
            // one-time costs: restart the window, so that a later call is
            // not blamed for them.
            let _ = local.clock.call_time(cpu_start, None, wall, end);
        } else if let Some(start) = switches_start
            && action.watched
            && contract::unexplained_switches() == start
        {
            // A watched call that did not block ends the watch, so that a
            // handler suspected once does not pay for it on every call.
            action.watched = false;
        }
        start = end;
    }
    me.running_since.store(0, Ordering::Release);
    let end = start;
    if let Some(error) = context::take_invalid_context() {
        controller
            .shared
            .record_violation(ContractViolation::InvalidContext(error));
    }

    // Step 4: statistics and spurious detection. A poll is no interrupt:
    // as in Linux's /proc/interrupts, only deliveries count per CPU.
    bump(&me.counters.chains);
    if poll {
        bump(&line.counters.polls);
    } else {
        bump(&line.counters.per_cpu[cpu]);
        // Counted by spurious detection's verdict, so that a delivery
        // that only woke a thread function returning `None` shows as
        // unhandled, as the "nobody cared" report counts it.
        let handled = note_interrupt(controller, line, irq, chain, &outcome, end);
        bump(if handled {
            &line.counters.handled
        } else {
            &line.counters.unhandled
        });
    }
    if shared.config.histograms {
        let duration_ns = end.as_nanos().saturating_sub(entry.as_nanos());
        if let Some(histograms) = chain.histograms.as_mut() {
            histograms.record(latency_ns, duration_ns);
        }
        local.samples.push(me, latency_ns, duration_ns);
    }

    // Step 5: unmask; requeue what arrived meanwhile.
    let rearm = line.state.end_dispatch(end.as_nanos());
    controller.apply(irq, rearm);

    // Step 6: release the chain lock, then leave hard-IRQ context, which
    // runs the deferred wake-ups. No free or request of the line waits
    // behind their system calls.
    drop(chain_lock);
    drop(guard);
}

/// One call of one handler.
struct Call<'a> {
    controller: &'a Controller,
    line: &'a Line,
    irq: u32,
    cpu: usize,
    entry: Timestamp,
    latency_ns: Option<u64>,
    poll: bool,
}

impl Call<'_> {
    /// Calls the top half, then its wake-thread hook if it asked for one
    /// (after holding the line masked for a ONESHOT handler). A panic is
    /// caught and returned as its message.
    fn run(&self, action: &mut Action) -> Result<IrqReturn, String> {
        let mut ctx = HardIrqContext {
            controller: self.controller,
            irq: self.irq,
            cpu: self.cpu,
            handler: action.name,
            entry: self.entry,
            latency: self.latency_ns.map(Duration::from_nanos),
            poll: self.poll,
        };
        let Action {
            top_half,
            wake_thread,
            flags,
            name,
            ..
        } = action;
        let (line, irq) = (self.line, self.irq);
        panic::catch_unwind(AssertUnwindSafe(|| {
            let ret = top_half.handle(&mut ctx);
            if ret == IrqReturn::WakeThread
                && let Some(hook) = wake_thread.as_mut()
            {
                if flags.oneshot && !line.state.hold_oneshot() {
                    tracing::warn!(target: "irq", irq, handler = *name, "irq {irq}: {MAX_ONESHOT} ONESHOT threads outstanding, the most a line counts; handler {name:?} woke another without masking");
                }
                hook(&mut ctx);
            }
            ret
        }))
        .map_err(|payload| panic_message(&*payload))
    }
}

/// The combined result of the handlers of one delivery.
#[derive(Default)]
struct ChainOutcome {
    /// Some handler returned `Handled`.
    claimed: bool,
    /// Some handler returned `WakeThread`.
    woke: bool,
}

impl ChainOutcome {
    /// Returns true if some handler returned `Handled` or `WakeThread`.
    fn handled(&self) -> bool {
        self.claimed || self.woke
    }

    /// Returns true if the handlers only woke threads: spurious detection
    /// then judges by the thread functions' results.
    fn only_woke(&self) -> bool {
        self.woke && !self.claimed
    }

    fn note(&mut self, ret: IrqReturn, action: &Action, line: &Line, irq: u32) {
        match ret {
            IrqReturn::None => {}
            IrqReturn::Handled => self.claimed = true,
            IrqReturn::WakeThread => {
                bump(&line.counters.wake_thread);
                // Without a thread the delivery is judged by threads that
                // never run, so it counts as unhandled, as in Linux.
                self.woke = true;
                if action.wake_thread.is_none()
                    && let Throttle::Report { suppressed } = line.reports.check(clock::now())
                {
                    tracing::warn!(target: "irq", irq, handler = action.name, suppressed, "irq {irq}: handler {:?} returned WakeThread but has no thread function; the delivery counts as unhandled, as in Linux: return Handled or request a threaded IRQ", action.name);
                }
            }
        }
    }
}

/// Disables a line at most once during one delivery.
#[derive(Default)]
struct DisableOnce {
    done: bool,
}

impl DisableOnce {
    /// Disables `line` unless this delivery did already. Returns true
    /// when this call took the disable depth from 0 to 1.
    fn disable(&mut self, line: &Line) -> bool {
        if std::mem::replace(&mut self.done, true) {
            return false;
        }
        line.state.disable() == Some(1)
    }
}

/// Disables the line of a panicking top half, logs, and records it.
fn handle_panic(
    controller: &Controller,
    line: &Line,
    irq: u32,
    handler: &'static str,
    message: String,
    disabled: &mut DisableOnce,
) {
    bump(&line.counters.panics);
    let _first = disabled.disable(line);
    let violation = ContractViolation::Panic {
        irq,
        handler,
        message,
    };
    tracing::error!(target: "irq", irq, handler, "{violation}");
    controller.shared.record_violation(violation);
}

/// Judges a call whose wall time exceeded the budget (plus `allowance`,
/// for a first call) by whether its thread blocked, then by its CPU time.
/// Returns whether the handler's next calls are to be watched for
/// blocking (see `contract`).
#[allow(clippy::too_many_arguments)]
fn check_budget(
    controller: &Controller,
    line: &Line,
    irq: u32,
    handler: &'static str,
    budget: Budget,
    allowance: Duration,
    wall: Duration,
    time: CallTime,
    disabled: &mut DisableOnce,
) -> bool {
    let cpu_time = time.cpu;
    // A first call may block on one-time costs that are not the handler's
    // doing, such as the lazy start of system_wq's runtime, so it is judged
    // by its CPU time alone, as its allowance is. A window count is only a
    // suspicion: the handler is watched from now on.
    let blocked = time.blocked > 0 && allowance.is_zero();
    if blocked && !time.exact {
        tracing::debug!(target: "irq", irq, handler, switches = time.blocked, "irq {irq}: handler {handler:?} may have blocked; watching its calls");
    }
    if blocked && time.exact {
        // Sleeping in hard-IRQ context is a bug whatever the policy, as
        // the kernel's "scheduling while atomic" is.
        bump(&line.counters.overruns);
        let violation = ContractViolation::Slept {
            irq,
            handler,
            wall,
            cpu: cpu_time,
            switches: time.blocked,
        };
        if let Throttle::Report { suppressed } = line.reports.check(clock::now()) {
            tracing::error!(
                target: "irq",
                irq,
                handler,
                wall_ns = wall.as_nanos() as u64,
                cpu_ns = cpu_time.as_nanos() as u64,
                switches = time.blocked,
                suppressed,
                "{violation}"
            );
        }
        controller.shared.record_violation(violation);
        if budget.policy != OverrunPolicy::Warn && disabled.disable(line) {
            tracing::warn!(target: "irq", irq, handler, "irq {irq}: disabled after handler {handler:?} slept");
        }
        return true;
    }
    if cpu_time <= budget.limit + allowance {
        bump(&line.counters.preempted);
        tracing::debug!(target: "irq", irq, handler, wall_ns = wall.as_nanos() as u64, cpu_ns = cpu_time.as_nanos() as u64, "irq {irq}: handler {handler:?} over budget in wall time only; the CPU thread was preempted");
        return blocked;
    }

    bump(&line.counters.overruns);
    let violation = ContractViolation::BudgetOverrun {
        irq,
        handler,
        wall,
        cpu: cpu_time,
        budget: budget.limit,
    };
    if let Throttle::Report { suppressed } = line.reports.check(clock::now()) {
        tracing::warn!(
            target: "irq",
            irq,
            handler,
            wall_ns = wall.as_nanos() as u64,
            cpu_ns = cpu_time.as_nanos() as u64,
            budget_ns = budget.limit.as_nanos() as u64,
            suppressed,
            policy = ?budget.policy,
            "{violation}"
        );
    }
    match budget.policy {
        OverrunPolicy::Warn => {}
        OverrunPolicy::Disable => {
            if disabled.disable(line) {
                tracing::warn!(target: "irq", irq, handler, "irq {irq}: disabled after a budget overrun by handler {handler:?}");
            }
        }
        OverrunPolicy::Fail => {
            let _first = disabled.disable(line);
            controller.shared.record_violation(violation);
        }
    }
    blocked
}

/// Feeds one delivery to spurious detection and disables the line when
/// nobody cared. Returns whether the delivery counts as handled.
fn note_interrupt(
    controller: &Controller,
    line: &Line,
    irq: u32,
    chain: &mut Chain,
    outcome: &ChainOutcome,
    now: Timestamp,
) -> bool {
    let config = controller.shared.config.spurious;
    let window = &mut chain.spurious;
    // A delivery that only woke threads is judged as Linux's
    // `note_interrupt` judges it: handled if a thread function handled an
    // interrupt since the previous such delivery. The first is not counted
    // in the window, and the statistics count it as handled. As in Linux
    // it leaves the baseline alone: its thread may already have run, and
    // that run counts for the next delivery.
    let handled = if outcome.only_woke() {
        if !window.threads_deferred {
            window.threads_deferred = true;
            return true;
        }
        let threads_handled = line.counters.threads_handled.load(Ordering::Acquire);
        let handled = threads_handled != window.threads_handled_last;
        window.threads_handled_last = threads_handled;
        handled
    } else {
        outcome.handled()
    };
    if !handled {
        let recent = window
            .last_unhandled
            .is_some_and(|last| now.saturating_since(last) <= config.quiet);
        window.unhandled = if recent { window.unhandled + 1 } else { 1 };
        window.last_unhandled = Some(now);
    }
    window.count += 1;
    if window.count < config.window {
        return handled;
    }

    let unhandled = window.unhandled;
    window.count = 0;
    window.unhandled = 0;
    if unhandled < config.threshold || !line.state.disable_spurious() {
        return handled;
    }
    bump(&line.counters.spurious_disables);
    let handlers: Vec<&str> = chain.actions.iter().map(|action| action.name).collect();
    tracing::error!(
        target: "irq",
        irq,
        unhandled,
        window = config.window,
        ?handlers,
        "irq {irq}: nobody cared ({unhandled} of {} interrupts unhandled); handlers: {}; disabling the line and polling it every {:?}",
        config.window,
        handlers.join(", "),
        config.poll_interval
    );
    handled
}
