//! Workqueues.
