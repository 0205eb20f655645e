//! A GPIO button that bounces.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock;
use crate::context::{self, InvalidContext};
use crate::controller::{Controller, lock};
use crate::error::DeviceError;

/// The maximum number of bounces a button makes per press or release.
pub const MAX_BOUNCES: u32 = 1000;

/// A push button on an edge line. Each press or release toggles the pin
/// `1 + 2k` times, with `k` bounces drawn from a seeded generator in
/// `0..=max_bounces` (at most [`MAX_BOUNCES`]) and `bounce_gap` between
/// edges, so the pin ends in the new state and each toggle raises the line.
#[derive(Debug)]
pub struct GpioButton {
    controller: Controller,
    irq: u32,
    max_bounces: u32,
    bounce_gap: Duration,
    rng: Mutex<ChaCha8Rng>,
    pressed: AtomicBool,
    edges: AtomicU64,
}

impl GpioButton {
    /// Makes a button on line `irq` that bounces up to `max_bounces`
    /// times per press or release, `bounce_gap` apart, drawn from a
    /// generator seeded with `seed`.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchLine`] if the controller has no line `irq`;
    /// [`DeviceError::OutOfRange`] if `max_bounces` is over
    /// [`MAX_BOUNCES`].
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(
        controller: &Controller,
        irq: u32,
        max_bounces: u32,
        bounce_gap: Duration,
        seed: u64,
    ) -> Result<Self, DeviceError> {
        const DEVICE: &str = "GPIO button";
        super::check_line(controller, DEVICE, irq)?;
        super::check_range(
            DEVICE,
            irq,
            "max_bounces",
            u64::from(max_bounces),
            0..=u64::from(MAX_BOUNCES),
        )?;
        Ok(Self {
            controller: controller.clone(),
            irq,
            max_bounces,
            bounce_gap,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            pressed: AtomicBool::new(false),
            edges: AtomicU64::new(0),
        })
    }

    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Presses the button: bounces, then stays pressed. Returns the edges
    /// raised.
    ///
    /// # Errors
    ///
    /// [`InvalidContext`] in a top half: pressing sleeps between bounces.
    ///
    /// # Context
    ///
    /// Task context; sleeps for the bounces.
    pub fn press(&self) -> Result<u32, InvalidContext> {
        self.toggle_to(true, "GpioButton::press")
    }

    /// Releases the button: bounces, then stays released. Returns the
    /// edges raised.
    ///
    /// # Errors
    ///
    /// [`InvalidContext`] in a top half.
    ///
    /// # Context
    ///
    /// Task context; sleeps for the bounces.
    pub fn release(&self) -> Result<u32, InvalidContext> {
        self.toggle_to(false, "GpioButton::release")
    }

    /// Returns the pin level: true while pressed (after the bounces).
    pub fn is_pressed(&self) -> bool {
        self.pressed.load(Ordering::Acquire)
    }

    /// Returns the edges raised so far.
    pub fn edges(&self) -> u64 {
        self.edges.load(Ordering::Relaxed)
    }

    fn toggle_to(&self, pressed: bool, api: &'static str) -> Result<u32, InvalidContext> {
        context::might_sleep(api)?;
        let bounces = lock(&self.rng).random_range(0..=self.max_bounces);
        let toggles = 1 + 2 * bounces;
        let start = clock::now();
        for toggle in 0..toggles {
            if toggle > 0 {
                clock::sleep_until(start + self.bounce_gap * toggle);
            }
            // The pin flips on every toggle; an odd count ends on `pressed`.
            let level = if toggle % 2 == 0 { pressed } else { !pressed };
            self.pressed.store(level, Ordering::Release);
            self.edges.fetch_add(1, Ordering::Relaxed);
            let _ = self.controller.raise(self.irq);
        }
        Ok(toggles)
    }
}
