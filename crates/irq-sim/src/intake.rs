//! A CPU's intake: the lines raised for it since it last looked, handed
//! over without a lock.
//!
//! A raise that queues a delivery pushes the line on the intake of the
//! line's CPU: a stack linked through the lines themselves, one
//! compare-and-swap on one cache line. The CPU takes the whole stack with
//! one swap and moves the lines, oldest first, to a priority queue of its
//! own. A line is on at most one intake at a time (the QUEUED bit of its
//! state). The CPU only ever takes the whole stack, so no node leaves and
//! returns between a pusher's load of the head and its swap (no ABA).
//!
//! # Sleeping
//!
//! A CPU about to sleep announces it and then looks at the intake once
//! more; a pusher pushes and then looks for an announcement. Both sides
//! write their location and then read the other's, with SeqCst accesses,
//! so at least one reads the other's write: the CPU finds the line, or the
//! pusher learns that it must wake the CPU. A CPU that spins never
//! announces, so its pushers never wake anybody.

use crate::sync::{AtomicBool, AtomicU32, Ordering, dekker_fence};

/// The head of a CPU's intake stack and its sleep announcement.
#[derive(Debug)]
pub struct Intake {
    /// The last line pushed, plus one, or 0 when the stack is empty.
    head: AtomicU32,
    /// The CPU is about to sleep or sleeps.
    sleeper: AtomicBool,
}

/// A line's link to the line pushed before it on the same intake.
#[derive(Debug)]
pub struct IntakeLink(AtomicU32);

impl IntakeLink {
    /// Returns an unlinked link.
    pub fn new() -> Self {
        Self(AtomicU32::new(0))
    }
}

impl Default for IntakeLink {
    fn default() -> Self {
        Self::new()
    }
}

/// Encodes a line number as a stack entry. Line numbers are below
/// `u32::MAX`, as `Config` bounds the number of lines.
fn entry(irq: u32) -> u32 {
    irq + 1
}

impl Intake {
    /// Returns an empty intake with no sleeper.
    pub fn new() -> Self {
        Self {
            head: AtomicU32::new(0),
            sleeper: AtomicBool::new(false),
        }
    }

    /// Pushes line `irq`, whose link is `link`. Returns true when the CPU
    /// has announced a sleep: the caller must then wake it.
    ///
    /// The caller owns the line's place on an intake (it has just set the
    /// line's QUEUED bit), so no other thread writes `link` until the CPU
    /// has taken the line.
    pub fn push(&self, irq: u32, link: &IntakeLink) -> bool {
        // First try on an empty stack, as a CPU that keeps up has: the
        // compare-and-swap then fetches the line once, for writing, where a
        // load first would fetch it shared and then again to upgrade it.
        let mut head = 0;
        loop {
            link.0.store(head, Ordering::Relaxed);
            // SeqCst: a release of the link, which the CPU's swap acquires,
            // and the write of the pairing described in the module docs.
            match self.head.compare_exchange_weak(
                head,
                entry(irq),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        dekker_fence();
        self.sleeper.load(Ordering::SeqCst)
    }

    /// Returns true when a line waits on the intake.
    pub fn has_lines(&self) -> bool {
        self.head.load(Ordering::Acquire) != 0
    }

    /// Takes every line on the intake and appends them to `out`, oldest
    /// first. `link_of` returns a line's link.
    pub fn take_all<'a>(&self, link_of: impl Fn(u32) -> &'a IntakeLink, out: &mut Vec<u32>) {
        if !self.has_lines() {
            return;
        }
        let first = out.len();
        // The newest line's first cache line is fetched for writing while
        // the swap below takes the head, not after it.
        let newest = self.head.load(Ordering::Relaxed);
        if newest != 0 {
            crate::sync::prefetch_for_write(link_of(newest - 1));
        }
        let mut next = self.head.swap(0, Ordering::Acquire);
        while next != 0 {
            let irq = next - 1;
            out.push(irq);
            // A swap, not a load: it fetches the line's first cache line
            // for writing, as the dispatch that follows needs it, instead of
            // a shared copy that a second transfer would then upgrade.
            next = link_of(irq).0.swap(0, Ordering::Relaxed);
        }
        // The stack gives the newest first.
        out[first..].reverse();
    }

    /// Announces that the CPU is about to sleep, and looks at the intake
    /// once more. Returns false, withdrawing the announcement, when a line
    /// arrived: the CPU must take it instead of sleeping.
    pub fn announce_sleep(&self) -> bool {
        self.sleeper.store(true, Ordering::SeqCst);
        dekker_fence();
        if self.head.load(Ordering::SeqCst) != 0 {
            self.sleeper.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Withdraws the announcement after the CPU woke.
    pub fn end_sleep(&self) {
        self.sleeper.store(false, Ordering::Relaxed);
    }
}

impl Default for Intake {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn take(intake: &Intake, links: &[IntakeLink]) -> Vec<u32> {
        let mut out = Vec::new();
        intake.take_all(|irq| &links[irq as usize], &mut out);
        out
    }

    #[test]
    fn lines_come_out_in_push_order() {
        let intake = Intake::new();
        let links: Vec<IntakeLink> = (0..4).map(|_| IntakeLink::new()).collect();
        for irq in [2, 0, 3] {
            assert!(!intake.push(irq, &links[irq as usize]));
        }
        assert!(intake.has_lines());
        assert_eq!(take(&intake, &links), [2, 0, 3]);
        assert!(!intake.has_lines());
        assert_eq!(take(&intake, &links), [] as [u32; 0]);

        // A taken line can be pushed again.
        assert!(!intake.push(0, &links[0]));
        assert_eq!(take(&intake, &links), [0]);
    }

    #[test]
    fn push_after_announcement_requests_wake() {
        let intake = Intake::new();
        let links = [IntakeLink::new()];
        assert!(intake.announce_sleep());
        assert!(intake.push(0, &links[0]));
        intake.end_sleep();
        assert!(!intake.announce_sleep(), "a line is waiting");
        assert_eq!(take(&intake, &links), [0]);
        assert!(intake.announce_sleep());
    }
}
