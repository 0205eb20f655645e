//! The atomics of the line state machine, from `std` or from loom.
//!
//! `--cfg loom` swaps in loom's types so that `tests/loom_line_state.rs`
//! can explore every interleaving of raise, dispatch, disable and enable.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
