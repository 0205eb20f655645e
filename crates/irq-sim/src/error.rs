//! Errors of irq-sim, one enum per family of operations.
//!
//! Every variant names the line (and the handler where there is one) and,
//! where there is one, the fix. Nothing in irq-sim panics on a bad request.

use std::fmt;
use std::time::Duration;

use crate::context::InvalidContext;
use crate::handler::{IrqRequest, Trigger};

/// The reason a machine could not be built from its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The controller needs at least one line.
    NoLines,
    /// More lines than a controller accepts.
    TooManyLines {
        /// Requested lines.
        requested: u32,
        /// Largest accepted count.
        max: u32,
    },
    /// The machine needs at least one CPU.
    NoCpus,
    /// More CPUs than the per-CPU counters can address.
    TooManyCpus {
        /// Requested CPUs.
        requested: usize,
        /// Largest accepted count.
        max: usize,
    },
    /// The spurious threshold is 0, which would trip on handled interrupts,
    /// or larger than its window, so that it could never trip.
    SpuriousThreshold {
        /// Unhandled interrupts that trip detection.
        threshold: u32,
        /// Interrupts per window.
        window: u32,
    },
    /// The spurious-detection window is 0 interrupts.
    SpuriousWindow,
    /// The lockup watchdog is enabled with a threshold of 0, which would
    /// report every top half as a lockup.
    WatchdogThreshold,
    /// A CPU thread could not be spawned.
    Spawn {
        /// The CPU whose thread failed.
        cpu: usize,
        /// The operating system's reason.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLines => write!(
                f,
                "invalid config: nr_irqs is 0; give the controller at least one line"
            ),
            Self::TooManyLines { requested, max } => {
                write!(
                    f,
                    "invalid config: nr_irqs is {requested}, the maximum is {max}"
                )
            }
            Self::NoCpus => write!(
                f,
                "invalid config: nr_cpus is 0; give the machine at least one CPU"
            ),
            Self::TooManyCpus { requested, max } => {
                write!(
                    f,
                    "invalid config: nr_cpus is {requested}, the maximum is {max}"
                )
            }
            Self::SpuriousThreshold { threshold, window } => write!(
                f,
                "invalid config: spurious threshold {threshold} with a window of {window} interrupts; \
                 use a threshold from 1 to the window (0 would disable lines whose interrupts \
                 were all handled)"
            ),
            Self::SpuriousWindow => write!(
                f,
                "invalid config: spurious window of 0 interrupts; use at least 1 (Linux's is 100000)"
            ),
            Self::WatchdogThreshold => write!(
                f,
                "invalid config: watchdog threshold of 0s would report every top half as a \
                 lockup; give a threshold above 0, or set `enabled: false` to turn the watchdog \
                 off (Linux turns it off with watchdog_thresh=0)"
            ),
            Self::Spawn { cpu, reason } => {
                write!(f, "failed to spawn the thread of CPU {cpu}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The reason `request_irq` rejected a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The line number is not below the controller's line count.
    OutOfRange {
        /// Requested line.
        irq: u32,
        /// The controller's line count.
        nr_irqs: u32,
    },
    /// The line has a handler that did not ask for sharing.
    Busy {
        /// Requested line.
        irq: u32,
        /// Name of the handler holding the line.
        holder: &'static str,
    },
    /// The line has sharing handlers, but the new request does not ask to
    /// share.
    NotShared {
        /// Requested line.
        irq: u32,
        /// Name of the rejected handler.
        handler: &'static str,
    },
    /// The request's trigger type differs from the line's.
    TriggerMismatch {
        /// Requested line.
        irq: u32,
        /// The trigger type the line's handlers use.
        line: Trigger,
        /// The trigger type requested.
        requested: Trigger,
    },
    /// The request's ONESHOT flag differs from the line's handlers'.
    OneshotMismatch {
        /// Requested line.
        irq: u32,
        /// Whether the line's handlers use ONESHOT.
        line: bool,
    },
    /// The request sets both sharing and `IRQF_NO_AUTOEN`, which
    /// Linux rejects with `-EINVAL`.
    SharedNoAutoen {
        /// Requested line.
        irq: u32,
        /// Name of the rejected handler.
        handler: &'static str,
    },
    /// `request_irq` may sleep and was called in a top half.
    InvalidContext(InvalidContext),
    /// The machine is shutting down.
    ShuttingDown {
        /// Requested line.
        irq: u32,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { irq, nr_irqs } => {
                write!(
                    f,
                    "irq {irq} is out of range: the controller has lines 0 to {}",
                    nr_irqs - 1
                )
            }
            Self::Busy { irq, holder } => write!(
                f,
                "irq {irq} is busy: handler {holder:?} holds it without sharing; \
                 both handlers must request it as shared"
            ),
            Self::NotShared { irq, handler } => write!(
                f,
                "irq {irq} is shared, but handler {handler:?} did not ask to share; \
                 request it with shared flags"
            ),
            Self::TriggerMismatch {
                irq,
                line,
                requested,
            } => write!(
                f,
                "irq {irq} trigger mismatch: the line's handlers use {line}, the request asks for {requested}"
            ),
            Self::OneshotMismatch { irq, line } => write!(
                f,
                "irq {irq} ONESHOT mismatch: the line's handlers {} ONESHOT; every sharer must agree",
                if *line { "use" } else { "do not use" }
            ),
            Self::SharedNoAutoen { irq, handler } => write!(
                f,
                "irq {irq}: handler {handler:?} requests both sharing and NO_AUTOEN; a shared \
                 line left disabled would keep its other handlers waiting, so Linux rejects \
                 this too; drop one of the two flags"
            ),
            Self::InvalidContext(error) => write!(f, "request_irq rejected: {error}"),
            Self::ShuttingDown { irq } => write!(f, "irq {irq}: the machine is shutting down"),
        }
    }
}

impl std::error::Error for RequestError {}

/// A rejected `request_irq`: the reason, and the request handed back.
pub struct RequestRejected {
    /// The reason for the rejection.
    pub error: RequestError,
    /// The rejected request, with its handler, for another try.
    pub request: IrqRequest,
}

impl fmt::Debug for RequestRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRejected")
            .field("error", &self.error)
            .field("handler", &self.request.name())
            .finish()
    }
}

impl fmt::Display for RequestRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request_irq for handler {:?}: {}",
            self.request.name(),
            self.error
        )
    }
}

// The message contains the reason's, so the reason is no `source` as
// well: a report that walks the chain would print it twice.
impl std::error::Error for RequestRejected {}

/// The reason `free_irq` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The handler id is not (or no longer) registered on its line: a double
    /// free, or an id from another machine.
    NotRegistered {
        /// The line the id names.
        irq: u32,
        /// The handler name the id was issued for.
        handler: &'static str,
    },
    /// `free_irq` may sleep and was called in a top half.
    InvalidContext(InvalidContext),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRegistered { irq, handler } => write!(
                f,
                "free_irq: handler {handler:?} is not registered on irq {irq} (double free?)"
            ),
            Self::InvalidContext(error) => write!(f, "free_irq rejected: {error}"),
        }
    }
}

impl std::error::Error for FreeError {}

/// The reason an arrival process cannot drive a device.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrivalError {
    /// A periodic or burst process has a period of zero.
    ZeroPeriod {
        /// `"periodic"` or `"bursts"`.
        process: &'static str,
    },
    /// A burst process has bursts of zero length, so it yields no event.
    EmptyBurst,
    /// A Poisson process has a rate that is not finite and above zero, or
    /// so small that its mean gap overflows.
    Rate {
        /// The rate given, in events per second.
        rate_hz: f64,
    },
    /// A replay offset is before the one it follows.
    ReplayDecreases {
        /// Its place in the list, from 0.
        index: usize,
        /// The offset.
        offset: Duration,
        /// The offset before it.
        previous: Duration,
    },
    /// The feeder thread could not be spawned.
    Spawn {
        /// The feeder's name.
        feeder: String,
        /// The operating system's reason.
        reason: String,
    },
}

impl fmt::Display for ArrivalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroPeriod { process } => write!(
                f,
                "{process} arrivals: the period is 0; give a period of at least 1 ns"
            ),
            Self::EmptyBurst => write!(
                f,
                "burst length `on` is 0, so no event would arrive; give it at least one period"
            ),
            Self::Rate { rate_hz } => write!(
                f,
                "Poisson rate {rate_hz} Hz is out of range; give a finite rate of at least \
                 1e-299 Hz"
            ),
            Self::ReplayDecreases {
                index,
                offset,
                previous,
            } => write!(
                f,
                "replay offset {index} ({offset:?}) is before offset {} ({previous:?}); offsets must not decrease",
                index - 1
            ),
            Self::Spawn { feeder, reason } => {
                write!(f, "cannot spawn the feeder thread {feeder:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for ArrivalError {}

/// The reason a device model could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The line number is not below the controller's line count.
    NoSuchLine {
        /// The kind of device ("NIC", "UART", ...).
        device: &'static str,
        /// Requested line.
        irq: u32,
        /// The controller's line count.
        nr_irqs: u32,
    },
    /// A size or count is outside what the model supports.
    OutOfRange {
        /// The kind of device.
        device: &'static str,
        /// The device's line.
        irq: u32,
        /// The constructor's parameter.
        parameter: &'static str,
        /// The value given.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// The line already has all the device outputs it can have
    /// ([`crate::line_state::MAX_OUTPUTS`]).
    NoFreeOutput {
        /// The kind of device.
        device: &'static str,
        /// The device's line.
        irq: u32,
        /// The outputs a line can have.
        max: u32,
    },
    /// The device's thread could not be spawned.
    Spawn {
        /// The kind of device.
        device: &'static str,
        /// The device's line.
        irq: u32,
        /// The operating system's reason.
        reason: String,
    },
    /// A constructor that starts a thread was called in a top half.
    InvalidContext(crate::context::InvalidContext),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchLine {
                device,
                irq,
                nr_irqs,
            } => write!(
                f,
                "{device} on irq {irq}: the controller has lines 0 to {}",
                nr_irqs - 1
            ),
            Self::OutOfRange {
                device,
                irq,
                parameter,
                value,
                min,
                max,
            } => write!(
                f,
                "{device} on irq {irq}: {parameter} {value} is out of range; it must be {min} to {max}"
            ),
            Self::NoFreeOutput { device, irq, max } => write!(
                f,
                "{device} on irq {irq}: the line already has the maximum of {max} device \
                 outputs connected; drop one first, or put this device on another line"
            ),
            Self::Spawn {
                device,
                irq,
                reason,
            } => write!(
                f,
                "{device} on irq {irq}: cannot spawn its thread: {reason}"
            ),
            Self::InvalidContext(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for DeviceError {}

/// The reason an operation on a line (disable, enable, mask, affinity,
/// budget, ...) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The line number is not below the controller's line count.
    OutOfRange {
        /// Requested line.
        irq: u32,
        /// The controller's line count.
        nr_irqs: u32,
    },
    /// `enable_irq` at depth zero: there was no matching `disable_irq`.
    UnbalancedEnable {
        /// The line.
        irq: u32,
    },
    /// `unmask_oneshot` with no ONESHOT thread outstanding.
    UnbalancedOneshot {
        /// The line.
        irq: u32,
    },
    /// The disable depth is at its maximum,
    /// [`crate::line_state::MAX_DEPTH`].
    DepthOverflow {
        /// The line.
        irq: u32,
    },
    /// The CPU number is not below the machine's CPU count.
    NoSuchCpu {
        /// The line being moved.
        irq: u32,
        /// Requested CPU.
        cpu: usize,
        /// The machine's CPU count.
        nr_cpus: usize,
    },
    /// `wait_delivered` found a delivery pending on a line that is
    /// disabled or masked, which only an enable or unmask releases.
    Undeliverable {
        /// The line.
        irq: u32,
        /// Its disable depth.
        depth: u8,
        /// Masked at the controller.
        masked: bool,
    },
    /// `wait_delivered` found a delivery pending on a line disabled as
    /// spurious ("nobody cared"), which only an enable or a new handler
    /// releases.
    DisabledAsSpurious {
        /// The line.
        irq: u32,
    },
    /// `wait_delivered` found a delivery pending on a line with no
    /// handler.
    Unrequested {
        /// The line.
        irq: u32,
    },
    /// `wait_delivered` gave up: the line was still busy.
    TimedOut {
        /// The line.
        irq: u32,
        /// How long it waited.
        timeout: Duration,
    },
    /// `irq_output` found every input of the line's wired OR taken.
    NoFreeOutput {
        /// The line.
        irq: u32,
        /// The outputs a line can have.
        max: u32,
    },
    /// A waiting API was called in a top half.
    InvalidContext(InvalidContext),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { irq, nr_irqs } => {
                write!(
                    f,
                    "irq {irq} is out of range: the controller has lines 0 to {}",
                    nr_irqs - 1
                )
            }
            Self::UnbalancedEnable { irq } => write!(
                f,
                "unbalanced enable for irq {irq}: depth is already 0; match every enable_irq with a disable_irq"
            ),
            Self::UnbalancedOneshot { irq } => write!(
                f,
                "unbalanced unmask_oneshot for irq {irq}: no ONESHOT thread is running"
            ),
            Self::DepthOverflow { irq } => write!(
                f,
                "irq {irq}: disable depth overflow ({} nested disables); an enable_irq is missing",
                crate::line_state::MAX_DEPTH
            ),
            Self::NoSuchCpu { irq, cpu, nr_cpus } => write!(
                f,
                "irq {irq}: CPU {cpu} does not exist; the machine has CPUs 0 to {}",
                nr_cpus - 1
            ),
            Self::Undeliverable { irq, depth, masked } => {
                let (state, fix) = match (*depth > 0, *masked) {
                    (true, true) => (
                        format!("disabled (depth {depth}) and masked"),
                        "enable_irq and unmask_irq",
                    ),
                    (true, false) => (format!("disabled (depth {depth})"), "enable_irq"),
                    (false, _) => ("masked".to_owned(), "unmask_irq"),
                };
                write!(
                    f,
                    "irq {irq}: a delivery is pending but the line is {state}; \
                     call {fix} to let it through"
                )
            }
            Self::DisabledAsSpurious { irq } => write!(
                f,
                "irq {irq}: a delivery is pending but the line was disabled as spurious \
                 (\"nobody cared\": nearly every interrupt of a window went unhandled); make a \
                 handler return Handled for its device's interrupts, then call enable_irq, \
                 or request a handler that claims them"
            ),
            Self::Unrequested { irq } => write!(
                f,
                "irq {irq}: a delivery is pending but no handler is registered; \
                 request_irq first"
            ),
            Self::TimedOut { irq, timeout } => write!(
                f,
                "irq {irq}: still pending or running after {timeout:?}; a level line \
                 stays pending until a top half lowers it, and a handler that raises \
                 its own line keeps it busy"
            ),
            Self::NoFreeOutput { irq, max } => write!(
                f,
                "irq {irq}: all {max} device outputs of the line are connected; \
                 drop an IrqOutput of the line first, or put the device on another line"
            ),
            Self::InvalidContext(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for LineError {}

/// A breach of the top-half contract, recorded by the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContractViolation {
    /// A top half ran longer than its line's budget.
    BudgetOverrun {
        /// The line.
        irq: u32,
        /// The handler.
        handler: &'static str,
        /// Wall time of the call.
        wall: Duration,
        /// CPU time of the call: exact in per-call mode, a lower bound in
        /// window mode (see `contract`).
        cpu: Duration,
        /// The line's budget.
        budget: Duration,
    },
    /// A top half panicked; the line was disabled.
    Panic {
        /// The line.
        irq: u32,
        /// The handler.
        handler: &'static str,
        /// The panic payload, if it was a string.
        message: String,
    },
    /// A top half called an API that may sleep (`might_sleep()` failed).
    InvalidContext(InvalidContext),
    /// A sleep in a top half: a voluntary context switch of its CPU thread,
    /// outside the CPU's idle waits, during a call over its budget in wall
    /// time. `std::thread::sleep`, a contended lock or blocking I/O cause
    /// one. The kernel reports it as "scheduling while atomic".
    Slept {
        /// The line.
        irq: u32,
        /// The handler.
        handler: &'static str,
        /// Wall time of the call.
        wall: Duration,
        /// CPU time of the call: exact with per-call accounting, an
        /// estimate from above in window mode (see `contract`), which may
        /// read as zero after a long sleep. Left out of the message.
        cpu: Duration,
        /// Voluntary context switches that no idle wait explains.
        switches: u64,
    },
    /// A CPU stayed in one top half past the lockup threshold.
    Lockup {
        /// The stuck CPU.
        cpu: usize,
        /// The line.
        irq: u32,
        /// The handler.
        handler: &'static str,
        /// How long the CPU had been stuck when detected.
        stuck_for: Duration,
    },
}

/// Formats a handler's time. Below 10 us it is in nanoseconds, so that a
/// budget of a microsecond or two reads exactly. Above, it is in whole
/// microseconds rounded up, so that a time over a budget never reads as
/// equal to it (100.4 us is "101 us" beside a budget of "100 us").
fn handler_time(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos < 10_000 {
        format!("{nanos} ns")
    } else {
        format!("{} us", nanos.div_ceil(1_000))
    }
}

impl fmt::Display for ContractViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BudgetOverrun {
                irq,
                handler,
                wall,
                cpu,
                budget,
            } => write!(
                f,
                "irq {irq}: handler {handler:?} took {} (CPU time {}), budget {}; \
                 move the work to a bottom half",
                handler_time(*wall),
                handler_time(*cpu),
                handler_time(*budget)
            ),
            Self::Panic {
                irq,
                handler,
                message,
            } => write!(
                f,
                "irq {irq}: handler {handler:?} panicked: {message}; the line is disabled"
            ),
            Self::InvalidContext(error) => write!(f, "BUG: {error}"),
            Self::Slept {
                irq,
                handler,
                wall,
                switches,
                ..
            } => write!(
                f,
                "BUG: scheduling while atomic: irq {irq}: handler {handler:?} blocked its CPU \
                 thread ({}) in a call of {}; a top half must not sleep (std::thread::sleep, a \
                 contended lock, blocking I/O): move the waiting to a bottom half",
                if *switches == 1 {
                    "1 voluntary context switch".to_owned()
                } else {
                    format!("{switches} voluntary context switches")
                },
                handler_time(*wall)
            ),
            Self::Lockup {
                cpu,
                irq,
                handler,
                stuck_for,
            } => write!(
                f,
                "hard LOCKUP on CPU {cpu}: stuck for {} ms in handler {handler:?} of irq {irq}",
                stuck_for.as_millis()
            ),
        }
    }
}

impl std::error::Error for ContractViolation {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrun_message_exceeds_budget() {
        let violation = ContractViolation::BudgetOverrun {
            irq: 40,
            handler: "nic-rx",
            wall: Duration::from_nanos(100_452),
            cpu: Duration::from_nanos(100_001),
            budget: Duration::from_micros(100),
        };
        let message = violation.to_string();
        assert!(
            message.contains("took 101 us (CPU time 101 us), budget 100 us"),
            "{message}"
        );
    }

    #[test]
    fn overrun_of_a_short_budget_reads_in_nanoseconds() {
        let violation = ContractViolation::BudgetOverrun {
            irq: 40,
            handler: "sensor",
            wall: Duration::from_nanos(1_040),
            cpu: Duration::from_nanos(1_012),
            budget: Duration::from_micros(1),
        };
        let message = violation.to_string();
        assert!(
            message.contains("took 1040 ns (CPU time 1012 ns), budget 1000 ns"),
            "{message}"
        );
    }
}
