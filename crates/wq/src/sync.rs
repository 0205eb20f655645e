//! The synchronization primitives of the work item state machine, swapped
//! for loom's when the crate is built with `--cfg wq_loom`.
//!
//! Only the state machine (`core`) uses this facade: it is what the loom
//! model checks. Statistics counters, tokio's `Notify` and the item
//! reference counts stay on `std`, because loom does not model them.
//!
//! The cfg is `wq_loom`, not `loom`, so that building the model does not
//! switch tokio and other dependencies into their own loom modes.

#[cfg(not(wq_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
#[cfg(not(wq_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(wq_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(wq_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

pub(crate) use std::sync::atomic::Ordering;

/// An `UnsafeCell` with loom's closure API, so that loom can check every
/// access in the model build.
#[cfg(not(wq_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(wq_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(wq_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Marks a `fn` as `const` except in the loom build, whose primitives have no
/// const constructors.
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        #[cfg(not(wq_loom))]
        $(#[$attr])* $vis const fn $name $($rest)*

        #[cfg(wq_loom)]
        $(#[$attr])* $vis fn $name $($rest)*
    };
}

pub(crate) use const_unless_loom;
