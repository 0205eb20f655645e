//! Writing to the terminal without panicking.
//!
//! `println!` and `eprintln!` panic when their stream is closed or full, as
//! in `irqlab | head -1` or `irqlab > /dev/full`. Reports go through
//! [`stdout`], which returns the error for the caller to report before it
//! exits with status 1. Messages go through [`stderr_line`], which drops a
//! line that standard error cannot take: there is nowhere left to report
//! that failure.

use std::fmt;
use std::io::{self, Write};

/// A failed write to standard output.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write <standard output>: {}", self.0)
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Writes `text` to standard output and flushes it.
///
/// # Errors
///
/// [`StdoutError`] when standard output is closed (a pipe whose reader
/// exited), full, or otherwise fails.
pub fn stdout(text: &str) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Writes one line to standard error, or nothing if it cannot take it.
pub fn stderr_line(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
