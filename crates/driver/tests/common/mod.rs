//! Helpers shared by the driver integration tests.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Generous hang guard for waits on real conditions.
pub const HANG_GUARD: Duration = Duration::from_secs(10);

/// Waits until `condition` holds, failing after the hang guard.
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
