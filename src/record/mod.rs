//! Parsers of input recorded on real Linux machines.
//!
//! - [`proc_interrupts`] reads `/proc/interrupts` snapshots of any layout
//!   (ARM, x86, s390x, one or many CPUs), diffs two of them and turns the
//!   deltas into per-second rates.
//! - [`ftrace`] reads the text output of the ftrace ring buffer (`cat
//!   trace`): IRQ handler, softirq and workqueue events, with every other
//!   well-formed event kept by name.
//!
//! Both parsers take the whole text and reject malformed lines with an error
//! from [`error`] that names the 1-based line number, the offending text and
//! what was expected there. Proptest cases feed both parsers arbitrary text
//! to check that they return an error rather than panic.
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
pub mod ftrace;
pub mod proc_interrupts;

pub use error::{DiffError, FtraceError, ProcInterruptsError, RateError};
