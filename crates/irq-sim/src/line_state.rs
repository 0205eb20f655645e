//! The delivery state of one IRQ line, in one atomic word.
//!
//! Devices raise lines from any thread, CPUs dispatch them, and drivers
//! disable and enable them, all without a lock: every change is one
//! compare-and-swap on a `u64` through a named transition that returns a
//! `#[must_use]` outcome. The caller acts on the outcome (most often: push
//! the line onto its CPU's pending queue when the outcome is `Queue`).
//!
//! # Layout
//!
//! ```text
//!  63    58 57    52 51    44 43     38 37                            0
//! +--------+--------+--------+---------+-------------------------------+
//! | depth  | oneshot| flags  | outputs | pending since (ns, mod 2^38)  |
//! +--------+--------+--------+---------+-------------------------------+
//! ```
//!
//! - `depth`: the disable depth (`disable_irq` nesting, plus one while the
//!   line has no handler or is disabled as spurious), at most
//!   [`MAX_DEPTH`].
//! - `oneshot`: threaded handlers of a ONESHOT line woken and not yet
//!   finished, at most [`MAX_ONESHOT`]; the line stays masked while this
//!   is above zero.
//! - flags: [`PENDING`], [`IN_PROGRESS`], [`QUEUED`], [`MASKED`], [`POLL`],
//!   [`SPURIOUS`], [`LEVEL`], [`SHUT_DOWN`].
//! - `outputs`: one bit per device output that asserts the line, the
//!   inputs of the line's wired OR (at most [`MAX_OUTPUTS`]). A level line
//!   is high while its own level ([`PENDING`]) or any of these bits is set.
//!   So is a line with no handler, which has no trigger type yet. On an
//!   edge line, the OR going from low to high is an edge.
//! - pending since: when the pending delivery became deliverable, so that
//!   the CPU can measure raise-to-entry latency without a second atomic.
//!   Latencies are taken modulo 2^38 ns (4.6 minutes), which is exact for
//!   any latency shorter than that. A longer one is recorded modulo 2^38 ns,
//!   and so below the 10 s cap of a latency histogram instead of at it.
//!
//! A line is *deliverable* when it has a handler ([`SHUT_DOWN`] is clear),
//! is not masked, its depth is zero and no ONESHOT thread is outstanding.
//! An `enable` of a line with no handler takes its depth to zero but
//! delivers nothing: what is pending waits for `startup`, as Linux's
//! `handle_level_irq` (kernel/irq/chip.c) keeps a line with no action
//! masked and marks it pending.
//!
//! # Transitions
//!
//! ```text
//!              raise (edge, or level going high)
//!   idle ─────────────────────────────────────► pending ──┐
//!    ▲                                     (+QUEUED when  │ begin_dispatch
//!    │                                      deliverable)  ▼
//!    │          end_dispatch (nothing pending)       in progress
//!    └───────────────────────────────────────────────────┤
//!                end_dispatch (edge pending again,       │
//!                level still high, or poll requested)    │
//!                      pending + QUEUED ◄────────────────┘
//!
//!   disable / mask / ONESHOT thread running: pending stays latched,
//!   enable / unmask / unmask_oneshot: a latched pending line is QUEUED.
//! ```
//!
//! # Invariants
//!
//! 1. A line is on at most one CPU queue: only the transition that sets
//!    [`QUEUED`] returns `Queue`, and only `begin_dispatch` clears it.
//! 2. A handler chain of a line never runs twice at once: `begin_dispatch`
//!    runs the chain only after setting [`IN_PROGRESS`], which only
//!    `end_dispatch` clears.
//! 3. No delivery starts while the line is not deliverable, except a poll of
//!    a line disabled as spurious.
//! 4. An edge is either the one that sets [`PENDING`] or is counted as
//!    coalesced into it; none is lost.
//!
//! # Context
//!
//! Every transition is one compare-and-swap loop: callable from any
//! context, including a top half; none sleeps or allocates.
//!
//! # Memory ordering
//!
//! Every transition is an `AcqRel` compare-and-swap. The release half of a
//! raise pairs with the acquire half of `begin_dispatch`, so what a device
//! wrote before raising (an RX descriptor, a FIFO byte) is visible to the
//! top half. The release half of `end_dispatch` pairs with the acquire load
//! in [`LineState::is_in_progress`], so what a handler wrote is visible to a
//! thread returning from `synchronize_irq`.

use crate::sync::{AtomicU64, Ordering};

const STAMP_BITS: u32 = 38;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;

/// The largest number of device outputs ([`crate::IrqOutput`]s) connected
/// to one line.
pub const MAX_OUTPUTS: u32 = 6;
const OUTPUTS_SHIFT: u32 = STAMP_BITS;
const OUTPUTS_MASK: u64 = ((1 << MAX_OUTPUTS) - 1) << OUTPUTS_SHIFT;

const FLAGS_SHIFT: u32 = OUTPUTS_SHIFT + MAX_OUTPUTS;
/// The line has a pending delivery: an edge latched, or the level that
/// [`LineState::raise`] and [`LineState::lower`] set on a level line.
pub const PENDING: u64 = 1 << FLAGS_SHIFT;
/// A CPU runs the line's handler chain.
pub const IN_PROGRESS: u64 = 1 << (FLAGS_SHIFT + 1);
/// The line sits on a CPU's pending queue.
pub const QUEUED: u64 = 1 << (FLAGS_SHIFT + 2);
/// The line is masked at the controller (`mask_irq`).
pub const MASKED: u64 = 1 << (FLAGS_SHIFT + 3);
/// A poll of a line disabled as spurious was requested.
pub const POLL: u64 = 1 << (FLAGS_SHIFT + 4);
/// The line was disabled as spurious ("nobody cared") and is polled.
pub const SPURIOUS: u64 = 1 << (FLAGS_SHIFT + 5);
/// The line is level-triggered (otherwise edge-triggered).
pub const LEVEL: u64 = 1 << (FLAGS_SHIFT + 6);
/// The line has no handler: it was never started, or was shut down.
pub const SHUT_DOWN: u64 = 1 << (FLAGS_SHIFT + 7);

const COUNT_BITS: u32 = 6;
const ONESHOT_SHIFT: u32 = FLAGS_SHIFT + 8;
const ONESHOT_ONE: u64 = 1 << ONESHOT_SHIFT;
const ONESHOT_MASK: u64 = ((1 << COUNT_BITS) - 1) << ONESHOT_SHIFT;
const DEPTH_SHIFT: u32 = ONESHOT_SHIFT + COUNT_BITS;
const DEPTH_ONE: u64 = 1 << DEPTH_SHIFT;
const DEPTH_MASK: u64 = ((1 << COUNT_BITS) - 1) << DEPTH_SHIFT;
const _: () = assert!(DEPTH_SHIFT + COUNT_BITS == 64, "the fields fill the word");

/// The deepest disable nesting a line accepts (Linux counts further, but
/// a driver that nests more than a few disables has lost an enable).
pub const MAX_DEPTH: u8 = (1 << COUNT_BITS) - 1;

/// The most ONESHOT threads a line can have outstanding: one per threaded
/// handler of the line.
pub const MAX_ONESHOT: u8 = (1 << COUNT_BITS) - 1;

/// Returns the raise-to-entry latency in nanoseconds from a pending stamp
/// and the entry time, both on the clock of [`crate::clock::now`].
pub fn stamp_latency(stamp: u64, entry_nanos: u64) -> u64 {
    entry_nanos.wrapping_sub(stamp) & STAMP_MASK
}

/// Returns the stamp stored for a timestamp in nanoseconds.
pub fn stamp_of(nanos: u64) -> u64 {
    nanos & STAMP_MASK
}

/// The state word of one line. See the module docs for its layout.
#[derive(Debug)]
pub struct LineState {
    word: AtomicU64,
}

/// The outcome of `raise`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaiseOutcome {
    /// The line became pending and deliverable: push it on its CPU's queue.
    Queue,
    /// The line became pending but is in progress, masked or disabled; it is
    /// delivered later by `end_dispatch`, `enable` or `unmask`.
    Latched,
    /// An edge found the line already pending and folded into it.
    Coalesced,
    /// The line was already high, so no delivery was added: a level line,
    /// or an edge line whose device outputs already held their wired OR
    /// high, where an assert makes no edge.
    AlreadyAsserted,
}

/// The decision of `begin_dispatch`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Run the handler chain; `stamp` is when the delivery became pending.
    Run {
        /// Pending stamp, for [`stamp_latency`].
        stamp: u64,
    },
    /// Run the handler chain as a poll of a line disabled as spurious.
    Poll,
    /// Nothing to deliver: the level line was lowered after it was queued,
    /// so its delivery is lost.
    Skip,
    /// Not now: the line was disabled or masked after it was queued. The
    /// delivery stays pending, and the enable or unmask queues it again.
    Postpone,
}

/// The outcome of a transition that can make a line deliverable again.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rearm {
    /// A pending delivery is due: push the line on its CPU's queue.
    Queue,
    /// Nothing to deliver now.
    Idle,
}

/// The outcome of `enable`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableOutcome {
    /// The depth was already zero; nothing changed.
    Unbalanced,
    /// The depth dropped but is still above zero.
    StillDisabled {
        /// Depth after the call.
        depth: u8,
    },
    /// The depth reached zero.
    Enabled(Rearm),
}

/// A decoded copy of the state word, for statistics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineSnapshot {
    /// A delivery is pending (edge latched or level high).
    pub pending: bool,
    /// A CPU runs the handler chain.
    pub in_progress: bool,
    /// The line sits on a CPU queue.
    pub queued: bool,
    /// Masked at the controller: by `mask_irq`, or while a ONESHOT thread
    /// runs (`oneshot` above 0), as Linux masks a ONESHOT line.
    pub masked: bool,
    /// Disabled as spurious and polled.
    pub spurious: bool,
    /// Level-triggered.
    pub level: bool,
    /// Disable depth.
    pub depth: u8,
    /// Outstanding ONESHOT threads.
    pub oneshot: u8,
    /// The device outputs asserting the line, one bit each: bit `n` is the
    /// output whose [`crate::IrqOutput::index`] is `n`. On a level line
    /// that stays high, zero means that the level of `raise` keeps it so.
    pub asserted_outputs: u8,
}

fn depth_of(word: u64) -> u8 {
    ((word & DEPTH_MASK) >> DEPTH_SHIFT) as u8
}

fn oneshot_of(word: u64) -> u8 {
    ((word & ONESHOT_MASK) >> ONESHOT_SHIFT) as u8
}

/// Returns true when a delivery is pending: an edge latched, or a level
/// line held high by its own level or by a device output. On a line with
/// no handler, an asserted output counts as pending whatever the trigger
/// type, as a `raise` does there. A line never requested has no type yet,
/// and a freed one keeps its old type only until the next request.
fn pending(word: u64) -> bool {
    word & PENDING != 0 || (word & (LEVEL | SHUT_DOWN) != 0 && word & OUTPUTS_MASK != 0)
}

/// Returns the bit of device output `output` (below [`MAX_OUTPUTS`]).
fn output_bit(output: u32) -> u64 {
    debug_assert!(output < MAX_OUTPUTS, "output {output} out of range");
    1 << (OUTPUTS_SHIFT + output)
}

fn deliverable(word: u64) -> bool {
    word & (SHUT_DOWN | MASKED | DEPTH_MASK | ONESHOT_MASK) == 0
}

fn with_stamp(word: u64, stamp: u64) -> u64 {
    (word & !STAMP_MASK) | (stamp & STAMP_MASK)
}

/// Sets [`QUEUED`] on `word` if a delivery is due and no other transition
/// will queue it, and tells whether the caller must push the line.
fn rearm(word: u64) -> (u64, Rearm) {
    let due = (pending(word) && deliverable(word)) || word & POLL != 0;
    if due && word & (IN_PROGRESS | QUEUED) == 0 {
        (word | QUEUED, Rearm::Queue)
    } else {
        (word, Rearm::Idle)
    }
}

impl Default for LineState {
    fn default() -> Self {
        Self::new()
    }
}

impl LineState {
    /// Makes the state of a line with no handler: edge, depth one.
    pub fn new() -> Self {
        Self {
            word: AtomicU64::new(DEPTH_ONE | SHUT_DOWN),
        }
    }

    /// Applies `f` to the word until the compare-and-swap succeeds, and
    /// returns `f`'s outcome. `f` returns `None` for "no change".
    fn update<T>(&self, mut f: impl FnMut(u64) -> (Option<u64>, T)) -> T {
        let mut old = self.word.load(Ordering::Acquire);
        loop {
            let (new, outcome) = f(old);
            let Some(new) = new else {
                return outcome;
            };
            if new == old {
                return outcome;
            }
            match self
                .word
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return outcome,
                Err(actual) => old = actual,
            }
        }
    }

    /// Raises the line at `now_nanos` for a device: an edge, or a level
    /// line's own level going high.
    pub fn raise(&self, now_nanos: u64) -> RaiseOutcome {
        self.update(|old| {
            if old & LEVEL != 0 && pending(old) {
                // Already high, by its own level or a device output: the
                // delivery under way keeps its stamp.
                return (Some(old | PENDING), RaiseOutcome::AlreadyAsserted);
            }
            if old & PENDING != 0 {
                return (None, RaiseOutcome::Coalesced);
            }
            Self::rise(old | PENDING, now_nanos)
        })
    }

    /// Stamps `word`, whose line has just become pending, and queues it if
    /// it is deliverable.
    fn rise(word: u64, now_nanos: u64) -> (Option<u64>, RaiseOutcome) {
        match rearm(with_stamp(word, stamp_of(now_nanos))) {
            (new, Rearm::Queue) => (Some(new), RaiseOutcome::Queue),
            (new, Rearm::Idle) => (Some(new), RaiseOutcome::Latched),
        }
    }

    /// Lowers a level line's own level, the one [`LineState::raise`] set.
    /// Returns true if it was set. The line stays high while a device
    /// output asserts it. An edge line has nothing to lower, so this returns
    /// false for it. A line with no handler has no trigger type yet, and
    /// this undoes a raise on it, as a deassert undoes an assert.
    pub fn lower(&self) -> bool {
        self.update(|old| {
            if old & (LEVEL | SHUT_DOWN) == 0 || old & PENDING == 0 {
                return (None, false);
            }
            (Some(old & !PENDING), true)
        })
    }

    /// Device output `output` (below [`MAX_OUTPUTS`]) asserts the line at
    /// `now_nanos`. When it is the first input of the wired OR to do so, a
    /// level line goes high and an edge line latches an edge. Otherwise the
    /// line is already high, and the outcome is `AlreadyAsserted`.
    pub fn assert_output(&self, output: u32, now_nanos: u64) -> RaiseOutcome {
        let bit = output_bit(output);
        self.update(|old| {
            if old & bit != 0 {
                return (None, RaiseOutcome::AlreadyAsserted);
            }
            let word = old | bit;
            if old & LEVEL != 0 {
                if pending(old) {
                    return (Some(word), RaiseOutcome::AlreadyAsserted);
                }
                return Self::rise(word, now_nanos);
            }
            if old & OUTPUTS_MASK != 0 {
                // The OR was already high: no edge.
                return (Some(word), RaiseOutcome::AlreadyAsserted);
            }
            if old & SHUT_DOWN != 0 {
                // No handler listens, and the first request drops edges
                // latched before it. Should it make the line level, the
                // output keeps it high.
                return (Some(word), RaiseOutcome::Latched);
            }
            if old & PENDING != 0 {
                return (Some(word), RaiseOutcome::Coalesced);
            }
            Self::rise(word | PENDING, now_nanos)
        })
    }

    /// Device output `output` stops asserting the line. Returns true if it
    /// was asserting it. A level line whose inputs are now all low goes
    /// low; a delivery already queued for it is then skipped.
    pub fn deassert_output(&self, output: u32) -> bool {
        let bit = output_bit(output);
        self.update(|old| {
            if old & bit == 0 {
                return (None, false);
            }
            (Some(old & !bit), true)
        })
    }

    /// The CPU takes the line off its queue and decides whether to run the
    /// handler chain (mask and ack, in the kernel's words).
    pub fn begin_dispatch(&self) -> Dispatch {
        self.update(|old| {
            let word = old & !QUEUED;
            if pending(word) && deliverable(word) {
                let stamp = word & STAMP_MASK;
                // An edge is consumed by its delivery; a level line stays
                // high until the device lowers it.
                let mut new = (word | IN_PROGRESS) & !POLL;
                if word & LEVEL == 0 {
                    new &= !PENDING;
                }
                return (Some(new), Dispatch::Run { stamp });
            }
            if word & POLL != 0 {
                return (Some((word | IN_PROGRESS) & !POLL), Dispatch::Poll);
            }
            if pending(word) {
                return (Some(word), Dispatch::Postpone);
            }
            (Some(word), Dispatch::Skip)
        })
    }

    /// A ONESHOT handler returned `WakeThread`: the line stays masked
    /// until `unmask_oneshot`. Taken before the driver's thread is woken, so
    /// that a thread finishing at once finds the count raised. Returns false,
    /// changing nothing, when [`MAX_ONESHOT`] threads are already
    /// outstanding.
    pub fn hold_oneshot(&self) -> bool {
        self.update(|old| {
            if oneshot_of(old) == MAX_ONESHOT {
                return (None, false);
            }
            (Some(old + ONESHOT_ONE), true)
        })
    }

    /// Ends a dispatch after the CPU has run the chain (unmask). A level line still high has its
    /// stamp moved to `now_nanos`, so that a re-fire's latency counts from
    /// the unmask.
    pub fn end_dispatch(&self, now_nanos: u64) -> Rearm {
        self.update(|old| {
            let mut word = old & !IN_PROGRESS;
            if word & LEVEL != 0 && pending(word) {
                word = with_stamp(word, stamp_of(now_nanos));
            }
            let (new, outcome) = rearm(word);
            (Some(new), outcome)
        })
    }

    /// Raises the disable depth by one. Returns the new depth, or `None`
    /// when the depth is already [`MAX_DEPTH`].
    pub fn disable(&self) -> Option<u8> {
        self.update(|old| {
            let depth = depth_of(old);
            if depth == MAX_DEPTH {
                return (None, None);
            }
            (Some(old + DEPTH_ONE), Some(depth + 1))
        })
    }

    /// Lowers the disable depth by one; at zero, a latched delivery becomes
    /// due and its latency counts from `now_nanos`.
    pub fn enable(&self, now_nanos: u64) -> EnableOutcome {
        self.update(|old| {
            let depth = depth_of(old);
            if depth == 0 {
                return (None, EnableOutcome::Unbalanced);
            }
            let mut word = old - DEPTH_ONE;
            if depth > 1 {
                return (
                    Some(word),
                    EnableOutcome::StillDisabled { depth: depth - 1 },
                );
            }
            word &= !SPURIOUS;
            let (new, rearm) = rearm(restamp_if_due(word, now_nanos));
            (Some(new), EnableOutcome::Enabled(rearm))
        })
    }

    /// Masks the line at the controller. Returns false if it was masked.
    pub fn mask(&self) -> bool {
        self.update(|old| {
            if old & MASKED != 0 {
                return (None, false);
            }
            (Some(old | MASKED), true)
        })
    }

    /// Unmasks the line; a latched delivery becomes due.
    pub fn unmask(&self, now_nanos: u64) -> Rearm {
        self.update(|old| {
            if old & MASKED == 0 {
                return (None, Rearm::Idle);
            }
            let (new, rearm) = rearm(restamp_if_due(old & !MASKED, now_nanos));
            (Some(new), rearm)
        })
    }

    /// Ends one ONESHOT masking because its thread has finished. Returns
    /// `None` if none was outstanding.
    pub fn unmask_oneshot(&self, now_nanos: u64) -> Option<Rearm> {
        self.update(|old| {
            if oneshot_of(old) == 0 {
                return (None, None);
            }
            let word = old - ONESHOT_ONE;
            let (new, rearm) = rearm(restamp_if_due(word, now_nanos));
            (Some(new), Some(rearm))
        })
    }

    /// Disables the line as spurious: one more depth, and the flag that
    /// makes the housekeeping thread poll it. Returns false, changing
    /// nothing, if the depth is already at [`MAX_DEPTH`].
    pub fn disable_spurious(&self) -> bool {
        self.update(|old| {
            if depth_of(old) == MAX_DEPTH {
                return (None, false);
            }
            (Some((old + DEPTH_ONE) | SPURIOUS), true)
        })
    }

    /// Ends a disable as spurious because a handler joined the line, as
    /// Linux's `__setup_irq` does for a shared line: clears the flag and
    /// undoes the depth it added. At depth zero a latched delivery becomes
    /// due. Returns `None` if the line was not disabled as spurious.
    pub fn end_spurious(&self, now_nanos: u64) -> Option<Rearm> {
        self.update(|old| {
            if old & SPURIOUS == 0 {
                return (None, None);
            }
            // A spurious line has a depth of at least one: the enable that
            // takes the depth to zero also clears the flag.
            let word = (old & !SPURIOUS) - DEPTH_ONE;
            if depth_of(word) > 0 {
                return (Some(word), Some(Rearm::Idle));
            }
            let (new, rearm) = rearm(restamp_if_due(word, now_nanos));
            (Some(new), Some(rearm))
        })
    }

    /// Asks for one poll of a line disabled as spurious.
    pub fn request_poll(&self) -> Rearm {
        self.update(|old| {
            if old & SPURIOUS == 0 || old & POLL != 0 {
                return (None, Rearm::Idle);
            }
            let (new, rearm) = rearm(old | POLL);
            (Some(new), rearm)
        })
    }

    /// Starts a line for its first handler at `now_nanos`: depth zero,
    /// unmasked unless a ONESHOT hold remains, with the given trigger type.
    /// A level line that a device keeps high is due at once, as an asserted
    /// line fires when Linux's `irq_startup` unmasks it. An edge latched
    /// before any handler listened is dropped. Returns whether the caller
    /// must push the line.
    ///
    /// ONESHOT holds are kept, as `shutdown` keeps them: each belongs to a
    /// thread of a freed handler that is still finishing its run, and that
    /// thread ends it. Clearing one would let that thread end a hold of the
    /// new handler's instead.
    pub fn startup(&self, level: bool, now_nanos: u64) -> Rearm {
        self.update(|old| {
            let mut word = old & (IN_PROGRESS | QUEUED | ONESHOT_MASK | OUTPUTS_MASK);
            if level {
                // A raise before the first request set PENDING, whatever
                // trigger the line had then: the device asserted it. The
                // device outputs asserting it make it high too.
                word |= LEVEL | (old & PENDING);
            }
            let (new, rearm) = rearm(restamp_if_due(word, now_nanos));
            (Some(new), rearm)
        })
    }

    /// Starts a line for its first handler as [`LineState::startup`] does,
    /// but leaves it disabled at depth one (`IRQF_NO_AUTOEN`): the enable
    /// that takes the depth to zero delivers what is pending then.
    pub fn startup_disabled(&self, level: bool) {
        self.update(|old| {
            let mut word = old & (IN_PROGRESS | QUEUED | ONESHOT_MASK | OUTPUTS_MASK) | DEPTH_ONE;
            if level {
                word |= LEVEL | (old & (PENDING | STAMP_MASK));
            }
            (Some(word), ())
        });
    }

    /// Shuts a line down after its last handler left: depth one and no edge
    /// latched. A level line kept high stays high, the device outputs keep
    /// asserting it, and the ONESHOT holds stay for the threads that will
    /// end them.
    pub fn shutdown(&self) {
        self.update(|old| {
            let mut keep = old & (IN_PROGRESS | QUEUED | LEVEL | ONESHOT_MASK | OUTPUTS_MASK);
            if old & LEVEL != 0 {
                keep |= old & (PENDING | STAMP_MASK);
            }
            (Some(keep | DEPTH_ONE | SHUT_DOWN), ())
        })
    }

    /// Returns true while device output `output` asserts the line.
    pub fn is_output_asserted(&self, output: u32) -> bool {
        self.word.load(Ordering::Acquire) & output_bit(output) != 0
    }

    /// Returns true while a CPU runs the line's handler chain.
    pub fn is_in_progress(&self) -> bool {
        self.word.load(Ordering::Acquire) & IN_PROGRESS != 0
    }

    /// Decodes the current word.
    pub fn snapshot(&self) -> LineSnapshot {
        let word = self.word.load(Ordering::Acquire);
        LineSnapshot {
            pending: pending(word),
            in_progress: word & IN_PROGRESS != 0,
            queued: word & QUEUED != 0,
            masked: word & MASKED != 0 || oneshot_of(word) > 0,
            spurious: word & SPURIOUS != 0,
            level: word & LEVEL != 0,
            depth: depth_of(word),
            oneshot: oneshot_of(word),
            asserted_outputs: ((word & OUTPUTS_MASK) >> OUTPUTS_SHIFT) as u8,
        }
    }
}

/// Moves the stamp of a pending delivery to `now_nanos`: its latency counts
/// from the moment it became deliverable again.
fn restamp_if_due(word: u64, now_nanos: u64) -> u64 {
    if pending(word) && deliverable(word) {
        with_stamp(word, stamp_of(now_nanos))
    } else {
        word
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn started(level: bool) -> LineState {
        let state = LineState::new();
        assert_eq!(state.startup(level, 0), Rearm::Idle);
        state
    }

    #[test]
    fn level_high_before_startup_fires() {
        let state = LineState::new();
        assert_eq!(state.raise(1), RaiseOutcome::Latched);
        assert_eq!(state.startup(true, 2), Rearm::Queue);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 2 });
        // Still high: it fires again until the device lowers it.
        assert_eq!(state.end_dispatch(3), Rearm::Queue);
        assert!(state.lower());
    }

    #[test]
    fn edge_before_startup_dropped() {
        let state = LineState::new();
        assert_eq!(state.raise(1), RaiseOutcome::Latched);
        assert_eq!(state.startup(false, 2), Rearm::Idle);
        assert!(!state.snapshot().pending);
    }

    #[test]
    fn level_high_survives_shutdown() {
        let state = started(true);
        assert_eq!(state.disable(), Some(1));
        assert_eq!(state.raise(1), RaiseOutcome::Latched);
        state.shutdown();
        assert!(state.snapshot().pending);
        assert_eq!(state.startup(true, 5), Rearm::Queue);
        assert_eq!(state.startup(true, 6), Rearm::Idle, "queued once");
    }

    #[test]
    fn new_line_is_disabled() {
        let state = LineState::new();
        assert_eq!(state.snapshot().depth, 1);
        assert_eq!(state.raise(1), RaiseOutcome::Latched);
    }

    #[test]
    fn edge_raise_queues_then_coalesces() {
        let state = started(false);
        assert_eq!(state.raise(10), RaiseOutcome::Queue);
        assert_eq!(state.raise(11), RaiseOutcome::Coalesced);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 10 });
        assert_eq!(state.end_dispatch(20), Rearm::Idle);
    }

    #[test]
    fn edge_during_handler_requeues() {
        let state = started(false);
        assert_eq!(state.raise(10), RaiseOutcome::Queue);
        assert!(matches!(state.begin_dispatch(), Dispatch::Run { .. }));
        assert_eq!(state.raise(12), RaiseOutcome::Latched);
        assert_eq!(state.raise(13), RaiseOutcome::Coalesced);
        assert_eq!(state.end_dispatch(20), Rearm::Queue);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 12 });
    }

    #[test]
    fn level_refires_until_lowered() {
        let state = started(true);
        assert_eq!(state.raise(10), RaiseOutcome::Queue);
        assert_eq!(state.raise(11), RaiseOutcome::AlreadyAsserted);
        assert!(matches!(state.begin_dispatch(), Dispatch::Run { .. }));
        assert_eq!(state.end_dispatch(30), Rearm::Queue);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 30 });
        assert!(state.lower());
        assert_eq!(state.end_dispatch(40), Rearm::Idle);
    }

    #[test]
    fn disabled_edge_fires_on_enable() {
        let state = started(false);
        assert_eq!(state.disable(), Some(1));
        assert_eq!(state.disable(), Some(2));
        assert_eq!(state.raise(10), RaiseOutcome::Latched);
        assert_eq!(state.enable(20), EnableOutcome::StillDisabled { depth: 1 });
        assert_eq!(state.enable(30), EnableOutcome::Enabled(Rearm::Queue));
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 30 });
    }

    #[test]
    fn unbalanced_enable_changes_nothing() {
        let state = started(false);
        let before = state.snapshot();
        assert_eq!(state.enable(1), EnableOutcome::Unbalanced);
        assert_eq!(state.snapshot(), before);
    }

    #[test]
    fn disable_after_queue_postpones() {
        let state = started(false);
        assert_eq!(state.raise(10), RaiseOutcome::Queue);
        assert_eq!(state.disable(), Some(1));
        assert_eq!(state.begin_dispatch(), Dispatch::Postpone);
        assert!(state.snapshot().pending);
    }

    #[test]
    fn lower_after_queue_skips() {
        let state = started(true);
        assert_eq!(state.raise(10), RaiseOutcome::Queue);
        assert!(state.lower());
        assert_eq!(state.begin_dispatch(), Dispatch::Skip);
        assert!(!state.snapshot().pending);
    }

    #[test]
    fn oneshot_keeps_masked() {
        let state = started(true);
        assert_eq!(state.raise(10), RaiseOutcome::Queue);
        assert!(matches!(state.begin_dispatch(), Dispatch::Run { .. }));
        assert!(state.hold_oneshot());
        assert_eq!(state.end_dispatch(20), Rearm::Idle);
        assert!(state.snapshot().masked, "a ONESHOT hold reads as masked");
        assert_eq!(state.unmask_oneshot(30), Some(Rearm::Queue));
        assert!(!state.snapshot().masked);
        assert_eq!(state.unmask_oneshot(40), None);
    }

    #[test]
    fn spurious_line_polls() {
        let state = started(false);
        assert_eq!(state.request_poll(), Rearm::Idle);
        assert!(state.disable_spurious());
        assert_eq!(state.request_poll(), Rearm::Queue);
        assert_eq!(state.begin_dispatch(), Dispatch::Poll);
        assert_eq!(state.end_dispatch(5), Rearm::Idle);
        assert_eq!(state.enable(6), EnableOutcome::Enabled(Rearm::Idle));
        assert!(!state.snapshot().spurious);
    }

    #[test]
    fn end_spurious_undoes_its_depth() {
        let state = started(false);
        assert_eq!(state.end_spurious(1), None);
        assert!(state.disable_spurious());
        assert_eq!(state.end_spurious(2), Some(Rearm::Idle));
        let snapshot = state.snapshot();
        assert!(!snapshot.spurious);
        assert_eq!(snapshot.depth, 0);

        // A disable on top of the spurious one stays.
        assert!(state.disable_spurious());
        assert_eq!(state.disable(), Some(2));
        assert_eq!(state.end_spurious(3), Some(Rearm::Idle));
        let snapshot = state.snapshot();
        assert!(!snapshot.spurious);
        assert_eq!(snapshot.depth, 1);
    }

    #[test]
    fn depth_saturates() {
        let state = started(false);
        for _ in 0..MAX_DEPTH {
            assert!(state.disable().is_some());
        }
        assert_eq!(state.disable(), None);
    }

    #[test]
    fn level_line_is_wired_or_of_outputs() {
        let state = started(true);
        assert_eq!(state.assert_output(0, 10), RaiseOutcome::Queue);
        assert_eq!(state.assert_output(1, 11), RaiseOutcome::AlreadyAsserted);
        assert_eq!(state.snapshot().asserted_outputs, 0b11);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 10 });
        // The first device is served, and the second keeps the line high.
        assert!(state.deassert_output(0));
        assert!(!state.deassert_output(0), "already low");
        assert_eq!(state.end_dispatch(20), Rearm::Queue);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 20 });
        assert!(state.deassert_output(1));
        assert_eq!(state.end_dispatch(30), Rearm::Idle);
        assert!(!state.snapshot().pending);
    }

    #[test]
    fn lower_keeps_outputs_high() {
        let state = started(true);
        assert_eq!(state.raise(10), RaiseOutcome::Queue);
        assert_eq!(state.assert_output(2, 11), RaiseOutcome::AlreadyAsserted);
        assert!(state.lower());
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 10 });
        assert_eq!(state.end_dispatch(20), Rearm::Queue);
        // A raise on a line an output keeps high leaves the pending stamp.
        assert_eq!(state.raise(25), RaiseOutcome::AlreadyAsserted);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 20 });
        assert!(state.deassert_output(2));
        assert_eq!(
            state.end_dispatch(30),
            Rearm::Queue,
            "its own level is high"
        );
        assert!(state.lower());
        assert_eq!(state.begin_dispatch(), Dispatch::Skip);
    }

    #[test]
    fn deassert_after_queue_skips() {
        let state = started(true);
        assert_eq!(state.assert_output(0, 10), RaiseOutcome::Queue);
        assert!(state.deassert_output(0));
        assert_eq!(state.begin_dispatch(), Dispatch::Skip);
    }

    #[test]
    fn edge_line_fires_when_or_rises() {
        let state = started(false);
        assert_eq!(state.assert_output(0, 10), RaiseOutcome::Queue);
        assert_eq!(state.assert_output(1, 11), RaiseOutcome::AlreadyAsserted);
        assert_eq!(state.snapshot().asserted_outputs, 0b11);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 10 });
        assert!(state.deassert_output(0));
        assert_eq!(state.end_dispatch(20), Rearm::Idle, "an edge fires once");
        assert!(state.deassert_output(1));
        assert_eq!(state.assert_output(1, 30), RaiseOutcome::Queue);
        assert!(state.deassert_output(1));
        assert_eq!(state.assert_output(0, 31), RaiseOutcome::Coalesced);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 30 });
        assert_eq!(state.end_dispatch(40), Rearm::Idle);
    }

    #[test]
    fn output_held_before_edge_startup_makes_no_edge() {
        let state = LineState::new();
        assert_eq!(state.assert_output(0, 1), RaiseOutcome::Latched);
        assert_eq!(state.startup(false, 2), Rearm::Idle);
        assert!(!state.snapshot().pending);
        assert!(state.deassert_output(0));
        assert_eq!(state.assert_output(0, 3), RaiseOutcome::Queue);
    }

    #[test]
    fn outputs_survive_shutdown_and_fire_on_startup() {
        let state = LineState::new();
        assert_eq!(state.assert_output(3, 1), RaiseOutcome::Latched);
        assert!(state.snapshot().pending, "the device asserts it");
        assert_eq!(state.startup(true, 2), Rearm::Queue);
        assert!(state.deassert_output(3));
        assert!(!state.snapshot().pending, "the output was the only input");
        // Asserted again while its delivery is still queued: the delivery
        // counts from the new assertion.
        assert_eq!(state.assert_output(3, 3), RaiseOutcome::Latched);
        assert_eq!(state.begin_dispatch(), Dispatch::Run { stamp: 3 });
        assert_eq!(state.end_dispatch(4), Rearm::Queue);
        assert!(matches!(state.begin_dispatch(), Dispatch::Run { .. }));
        state.shutdown();
        assert!(state.snapshot().pending);
        assert_eq!(
            state.end_dispatch(5),
            Rearm::Idle,
            "the line has no handler"
        );
        assert_eq!(state.startup(true, 6), Rearm::Queue);
    }

    #[test]
    fn latency_wraps() {
        let stamp = stamp_of((1 << STAMP_BITS) - 5);
        assert_eq!(stamp_latency(stamp, 1 << STAMP_BITS), 5);
    }
}
