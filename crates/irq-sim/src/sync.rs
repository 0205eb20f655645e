//! The atomics of the line state machine and the CPU intake, from `std` or
//! from loom.
//!
//! `--cfg loom` swaps in loom's types so that `tests/loom_line_state.rs`
//! can explore every interleaving of raise, dispatch, disable and enable,
//! and `tests/loom_intake.rs` every interleaving of a push with a CPU going
//! to sleep.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Orders a SeqCst write before a SeqCst read of another location, for the
/// store-then-load pairing of the intake (see `intake`).
///
/// The accesses around it are SeqCst in every build, which is what the C++
/// memory model needs. loom models SeqCst accesses only as acquire and
/// release, so the model build adds a SeqCst fence, which loom does model.
/// The normal build adds nothing: on x86 a SeqCst write or swap is already
/// a locked instruction.
#[inline]
pub(crate) fn dekker_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}
