//! Parsers of input recorded on real Linux machines.
//!
//! - [`proc_interrupts`] reads `/proc/interrupts` snapshots of any layout
//!   (ARM, x86, s390x, one or many CPUs), diffs two of them and turns the
//!   deltas into per-second rates.
//!
//! The parser takes the whole text and rejects
//! malformed lines with an error from [`error`] that names the 1-based line
//! number, the offending text and what was expected there. Proptest cases
//! feed the parser arbitrary text to check that it returns an error
//! rather than panic.
//!
//! ```
//! use irqlab::record::proc_interrupts::Snapshot;
//!
//! let before = Snapshot::parse("      CPU0  CPU1\n 16:  10  4  IO-APIC  16-fasteoi  ehci_hcd:usb3, mmc0\n")?;
//! let after = Snapshot::parse("      CPU0  CPU1\n 16:  25  4  IO-APIC  16-fasteoi  ehci_hcd:usb3, mmc0\n")?;
//! let diff = before.diff(&after)?;
//! assert_eq!(diff.rows[0].counts.total(), 15);
//! assert_eq!(diff.rates(5.0)?[0].total, 3.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod proc_interrupts;

pub use error::{DiffError, ProcInterruptsError, RateError};
