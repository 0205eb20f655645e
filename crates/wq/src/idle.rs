//! The parked workers of one queue, which a queueing can claim and wake
//! without the pool lock.
//!
//! Each worker owns a slot for its whole life. A worker that finds nothing
//! to do registers its waker in its slot, then sets the slot's bit in a
//! bitmap, then looks at the intake stack once more (the Dekker pairing with
//! `push_intake`). A queueing that finds a bit set clears it with a
//! compare-exchange, which makes it the one claimant of that parked worker,
//! and takes the slot's waker. Every poll of a worker starts by clearing its
//! own bit, so a worker that was polled for another reason is not left
//! marked idle while it runs.
//!
//! Before this set existed, picking a worker took the pool lock, and a
//! top half that queued work for a parked worker could wait for a worker
//! that the host had preempted while it held that lock.
//!
//! # Why no wake-up is lost
//!
//! A claimant clears the bit that the worker set in its last park, so the
//! worker's next clear of its own bit comes later in that bitmap word's
//! modification order, and the worker's next look at the intake stack finds
//! the claimant's item. That next poll happens because the claimant takes
//! the waker registered before the bit was set and wakes it. Or, if the
//! take finds the slot empty, because another claimant took that waker
//! first and its wake-up makes the worker poll again, after that take. A
//! worker registers before it sets its bit, so a take never finds the slot
//! empty for a park that nobody else claimed.

use std::task::Waker;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, AtomicWaker, Ordering};

/// Worker slots per bitmap word.
const WORD_BITS: usize = u64::BITS as usize;

/// The parked workers of one queue; see the module documentation.
pub(crate) struct IdleSet {
    /// Bit `slot % 64` of word `slot / 64` is set while the worker in
    /// `slot` is parked and may be claimed. Every queueing reads the words,
    /// so each has a cache line of its own.
    words: Box<[CachePadded<AtomicU64>]>,
    /// The waker each slot's worker registered when it last parked.
    wakers: Box<[AtomicWaker]>,
}

impl IdleSet {
    /// Returns a set with room for `capacity` workers, none of them parked.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            words: (0..capacity.div_ceil(WORD_BITS))
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            wakers: (0..capacity).map(|_| AtomicWaker::new()).collect(),
        }
    }

    /// Marks the worker in `slot` as parked, to be woken through `waker`.
    ///
    /// The caller must look for work again afterwards, after a
    /// `dekker_fence`: a queueing that pushed before the bit was set may
    /// have seen no parked worker.
    pub(crate) fn park(&self, slot: usize, waker: &Waker) {
        self.wakers[slot].register(waker);
        let (word, bit) = position(slot);
        // SeqCst: the write of the pairing with `push_intake`. It also
        // releases the registration above to the claimant's take.
        self.words[word].fetch_or(bit, Ordering::SeqCst);
    }

    /// Marks the worker in `slot` as not parked. Returns false when it was
    /// not parked, or when a queueing claimed it first (and will wake it).
    pub(crate) fn withdraw(&self, slot: usize) -> bool {
        let (word, bit) = position(slot);
        // SeqCst: ordered after a claimant's clear (see the module
        // documentation), so the look for work that follows finds its item.
        // The load spares an awake worker a write to the word on every
        // poll, which would cost each pusher's `is_empty` a cache miss.
        if self.words[word].load(Ordering::SeqCst) & bit == 0 {
            return false;
        }
        self.words[word].fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// Claims one parked worker and returns its waker, which the caller
    /// must wake. Returns `None` when no worker is parked, or when the
    /// claimed worker's waker was already taken by an earlier claimant
    /// whose wake-up makes it look for work again.
    pub(crate) fn claim(&self) -> Option<Waker> {
        for (index, word) in self.words.iter().enumerate() {
            // SeqCst: the read of the pairing with `park`.
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                match word.compare_exchange_weak(
                    bits,
                    bits & !(1 << bit),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => return self.wakers[index * WORD_BITS + bit].take(),
                    Err(actual) => bits = actual,
                }
            }
        }
        None
    }

    /// Claims every parked worker and returns their wakers.
    pub(crate) fn claim_all(&self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for (index, word) in self.words.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::SeqCst);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                wakers.extend(self.wakers[index * WORD_BITS + bit].take());
            }
        }
        wakers
    }

    /// Returns the number of parked workers.
    pub(crate) fn count(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.load(Ordering::SeqCst).count_ones() as usize)
            .sum()
    }

    /// Returns true when no worker is parked.
    pub(crate) fn is_empty(&self) -> bool {
        self.words
            .iter()
            .all(|word| word.load(Ordering::SeqCst) == 0)
    }
}

/// Returns the word index and bit mask of `slot`.
fn position(slot: usize) -> (usize, u64) {
    (slot / WORD_BITS, 1 << (slot % WORD_BITS))
}

#[cfg(all(test, not(wq_loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    #[test]
    fn claim_takes_each_parked_worker_once() {
        let idle = IdleSet::new(130);
        let (first, first_waker) = counter();
        let (last, last_waker) = counter();
        idle.park(3, &first_waker);
        idle.park(129, &last_waker);
        assert_eq!(idle.count(), 2);

        idle.claim().expect("a worker is parked").wake();
        idle.claim().expect("a second worker is parked").wake();
        assert!(idle.claim().is_none());
        assert!(idle.is_empty());
        assert_eq!(first.0.load(Ordering::SeqCst), 1);
        assert_eq!(last.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn withdraw_reports_whether_the_worker_was_still_parked() {
        let idle = IdleSet::new(1);
        let (_, waker) = counter();
        idle.park(0, &waker);
        assert!(idle.withdraw(0));
        assert!(!idle.withdraw(0), "a withdrawn worker is not parked");

        idle.park(0, &waker);
        assert!(idle.claim().is_some());
        assert!(!idle.withdraw(0), "a claimed worker is not parked");
    }

    #[test]
    fn claim_all_empties_the_set() {
        let idle = IdleSet::new(200);
        let (counter, waker) = counter();
        for slot in [0, 63, 64, 199] {
            idle.park(slot, &waker);
        }
        idle.claim_all().into_iter().for_each(Waker::wake);
        assert!(idle.is_empty());
        assert_eq!(counter.0.load(Ordering::SeqCst), 4);
    }
}
