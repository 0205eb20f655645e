//! A device's interrupt output: one input of a line's wired OR.
//!
//! On real hardware, devices that share a level-triggered line each drive
//! it through their own output, and the line is high while any of them
//! asserts it. A device that has been served drops only its own output,
//! so the line stays high for the others and no request is lost.
//! [`Controller::raise`] and [`Controller::lower`] drive a line as a single
//! device would; a model that may share its line takes an [`IrqOutput`]
//! instead.
//!
//! ```
//! use irq_sim::{Config, Machine};
//!
//! let machine = Machine::new(Config { nr_cpus: 1, ..Config::default() }).unwrap();
//! let irq = machine.controller();
//! let disk = irq.irq_output(11).unwrap();
//! let nic = irq.irq_output(11).unwrap();
//! let _ = disk.assert();
//! let _ = nic.assert();
//! // The disk's driver has served it, and the disk drops its output: the
//! // NIC still keeps the line high.
//! assert!(disk.deassert());
//! assert!(irq.line_state(11).unwrap().pending);
//! drop(nic);
//! assert!(!irq.line_state(11).unwrap().pending);
//! # assert!(machine.shutdown().is_clean());
//! ```

use std::sync::atomic::Ordering;

use crate::clock::{self, Timestamp};
use crate::controller::Controller;
use crate::line_state::RaiseOutcome;
use crate::stats;

/// A device's interrupt output on one line, from
/// [`Controller::irq_output`]: one input of the line's wired OR. Dropping
/// it deasserts it and disconnects it.
#[derive(Debug)]
pub struct IrqOutput {
    pub(crate) controller: Controller,
    pub(crate) irq: u32,
    /// The output's input of the wired OR, below
    /// [`crate::line_state::MAX_OUTPUTS`].
    pub(crate) output: u32,
}

impl IrqOutput {
    /// Returns the line the output drives.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Returns the output's place in the line's wired OR: bit `index` of
    /// [`crate::LineSnapshot::asserted_outputs`] shows it asserted.
    pub fn index(&self) -> u32 {
        self.output
    }

    /// Asserts the output now. See [`IrqOutput::assert_at`].
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps, never allocates.
    #[inline]
    pub fn assert(&self) -> RaiseOutcome {
        self.assert_at(clock::now())
    }

    /// Asserts the output as of `at`, the time the delivery's raise-to-entry
    /// latency counts from. When it is the first input of the wired OR to
    /// go high, a level line goes high and an edge line latches an edge, with
    /// the outcomes of [`Controller::raise`]. An output already asserted,
    /// or a line already high, gives `AlreadyAsserted`.
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps, never allocates.
    pub fn assert_at(&self, at: Timestamp) -> RaiseOutcome {
        let shared = &self.controller.shared;
        let line = &shared.lines[self.irq as usize];
        stats::bump(&line.counters.raised);
        let outcome = line.state.assert_output(self.output, at.as_nanos());
        shared.deliver(self.irq, line, outcome);
        outcome
    }

    /// Deasserts the output. Returns true if it was asserted. A level line
    /// goes low when no other output asserts it and no
    /// [`Controller::raise`] keeps it high.
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn deassert(&self) -> bool {
        self.controller.shared.lines[self.irq as usize]
            .state
            .deassert_output(self.output)
    }

    /// Returns true while the output asserts the line.
    ///
    /// # Context
    ///
    /// Any, including a top half; never sleeps.
    pub fn is_asserted(&self) -> bool {
        self.controller.shared.lines[self.irq as usize]
            .state
            .is_output_asserted(self.output)
    }
}

impl Drop for IrqOutput {
    fn drop(&mut self) {
        // Deasserted before it is freed, so that the next output to take
        // this input of the wired OR finds it low.
        let _ = self.deassert();
        let line = &self.controller.shared.lines[self.irq as usize];
        line.outputs
            .fetch_and(!(1 << self.output), Ordering::AcqRel);
    }
}
