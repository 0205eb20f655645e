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

/// Starts fetching the cache line of `target` for writing, so that its
/// transfer from another core overlaps with other work. A hint only: it
/// changes no value, and it does nothing on a CPU without the PREFETCHW
/// instruction, or in the loom build. The `wq` crate uses it too.
#[inline]
pub fn prefetch_for_write<T>(target: &T) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if has_prefetchw() {
        // SAFETY: the CPU has PREFETCHW (checked above), which Intel's manual
        // describes as a hint that does not affect program behavior. The
        // asm writes no register or flag.
        unsafe {
            std::arch::asm!(
                "prefetchw [{line}]",
                line = in(reg) std::ptr::from_ref(target),
                options(nostack, preserves_flags, readonly),
            );
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = target;
}

/// Returns true when the CPU has PREFETCHW: CPUID leaf 0x8000_0001, bit 8
/// of ECX (AMD's 3DNowPrefetch, Intel's PRFCHW).
#[cfg(all(target_arch = "x86_64", not(loom)))]
fn has_prefetchw() -> bool {
    use std::arch::x86_64::__cpuid;
    static HAS_PREFETCHW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    #[allow(unused_unsafe)]
    // SAFETY: every x86_64 CPU has CPUID, and leaf 0x8000_0001 is read only
    // when the highest extended leaf reaches it.
    *HAS_PREFETCHW.get_or_init(|| unsafe {
        let highest_extended_leaf = __cpuid(0x8000_0000).eax;
        highest_extended_leaf >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
    })
}

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
