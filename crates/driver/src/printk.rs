//! Kernel-style logging: `printk!` with the kernel's log levels, carried by
//! `tracing`.
//!
//! Each message becomes a `tracing` event with target `kernel`, at the
//! `tracing` level that matches its kernel level:
//!
//! | kernel level | `KernLevel` | `tracing` level |
//! |---|---|---|
//! | `KERN_EMERG`, `KERN_ALERT`, `KERN_CRIT`, `KERN_ERR` | `Emerg` ... `Err` | `ERROR` |
//! | `KERN_WARNING`, and a `printk` with no level | `Warning` | `WARN` |
//! | `KERN_NOTICE`, `KERN_INFO` | `Notice`, `Info` | `INFO` |
//! | `KERN_DEBUG` | `Debug` | `DEBUG` |
//!
//! A `printk` without a level uses the kernel's default message level, 4
//! (`KERN_WARNING`), as `CONFIG_MESSAGE_LOGLEVEL_DEFAULT` sets it by default.
//!
//! [`init_console`] prints kernel messages as `[level] message`, the level
//! named as `dmesg` names it, and other events in `tracing`'s usual form.
//!
//! ```
//! use driver::printk;
//! use driver::printk::KernLevel;
//!
//! printk::init_console();
//! printk!(KernLevel::Alert, "Hello, {} queue", "static");
//! printk!("call function from queue"); // KERN_DEFAULT: warning
//! ```

use std::fmt;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` target of kernel messages.
pub const TARGET: &str = "kernel";

/// A kernel log level, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernLevel {
    /// `KERN_EMERG`, 0: the system is unusable.
    Emerg,
    /// `KERN_ALERT`, 1: action must be taken at once.
    Alert,
    /// `KERN_CRIT`, 2: critical conditions.
    Crit,
    /// `KERN_ERR`, 3: error conditions.
    Err,
    /// `KERN_WARNING`, 4: warning conditions; the default level.
    Warning,
    /// `KERN_NOTICE`, 5: normal but significant.
    Notice,
    /// `KERN_INFO`, 6: informational.
    Info,
    /// `KERN_DEBUG`, 7: debug messages.
    Debug,
}

impl KernLevel {
    /// The level of a `printk` that names none (`KERN_DEFAULT`).
    pub const DEFAULT: KernLevel = KernLevel::Warning;

    /// Returns the level's number, 0 (`KERN_EMERG`) to 7 (`KERN_DEBUG`).
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// Returns the level's name as `dmesg` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            KernLevel::Emerg => "emerg",
            KernLevel::Alert => "alert",
            KernLevel::Crit => "crit",
            KernLevel::Err => "err",
            KernLevel::Warning => "warn",
            KernLevel::Notice => "notice",
            KernLevel::Info => "info",
            KernLevel::Debug => "debug",
        }
    }

    /// Returns the `tracing` level a message of this level is logged at.
    pub const fn tracing_level(self) -> Level {
        match self {
            KernLevel::Emerg | KernLevel::Alert | KernLevel::Crit | KernLevel::Err => Level::ERROR,
            KernLevel::Warning => Level::WARN,
            KernLevel::Notice | KernLevel::Info => Level::INFO,
            KernLevel::Debug => Level::DEBUG,
        }
    }
}

impl fmt::Display for KernLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Logs a kernel message at `level`; [`printk!`](crate::printk!) calls this.
///
/// # Context
///
/// Any, including a top half: it formats into the subscriber and does not
/// sleep, but formatting may allocate, so keep it off per-interrupt paths.
pub fn log(level: KernLevel, message: fmt::Arguments<'_>) {
    let kern_level = level.name();
    match level.tracing_level() {
        Level::ERROR => tracing::error!(target: TARGET, kern_level, "{message}"),
        Level::WARN => tracing::warn!(target: TARGET, kern_level, "{message}"),
        Level::INFO => tracing::info!(target: TARGET, kern_level, "{message}"),
        Level::DEBUG => tracing::debug!(target: TARGET, kern_level, "{message}"),
        Level::TRACE => tracing::trace!(target: TARGET, kern_level, "{message}"),
    }
}

/// Logs a kernel message, as C's `printk` does.
///
/// `printk!(KernLevel::Alert, "format", args...)` names the level;
/// `printk!("format", args...)` uses [`KernLevel::DEFAULT`].
#[macro_export]
macro_rules! printk {
    ($level:expr, $format:literal $($argument:tt)*) => {
        $crate::printk::log($level, ::std::format_args!($format $($argument)*))
    };
    ($format:literal $($argument:tt)*) => {
        $crate::printk::log(
            $crate::printk::KernLevel::DEFAULT,
            ::std::format_args!($format $($argument)*),
        )
    };
}

/// Installs a subscriber that prints to standard output: kernel messages as
/// `[level] message`, other events as `LEVEL target: message`.
///
/// `RUST_LOG` selects what is printed (`tracing-subscriber`'s `EnvFilter`
/// syntax); without it, everything at INFO and above is. Calling it again,
/// or after another subscriber was installed, changes nothing.
pub fn init_console() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        // A closed standard output loses the messages; reporting each loss
        // on standard error would panic if that is closed too.
        .log_internal_errors(false)
        .with_ansi(false)
        .event_format(ConsoleFormat)
        .try_init();
    // Messages printed before a crash should not sit in a buffer.
    let _ = std::io::stdout().flush();
}

/// The line format of [`init_console`].
struct ConsoleFormat;

impl<S, N> FormatEvent<S, N> for ConsoleFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        if metadata.target() == TARGET {
            let mut fields = KernelFields::default();
            event.record(&mut fields);
            let level = fields.kern_level.unwrap_or("warn");
            return writeln!(writer, "[{level}] {}", fields.message);
        }

        write!(writer, "{} {}: ", metadata.level(), metadata.target())?;
        context.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[derive(Default)]
struct KernelFields {
    kern_level: Option<&'static str>,
    message: String,
}

impl Visit for KernelFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "kern_level" {
            self.kern_level = [
                KernLevel::Emerg,
                KernLevel::Alert,
                KernLevel::Crit,
                KernLevel::Err,
                KernLevel::Warning,
                KernLevel::Notice,
                KernLevel::Info,
                KernLevel::Debug,
            ]
            .into_iter()
            .map(KernLevel::name)
            .find(|name| *name == value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_like_the_kernel() {
        assert_eq!(KernLevel::Alert.tracing_level(), Level::ERROR);
        assert_eq!(KernLevel::Err.tracing_level(), Level::ERROR);
        assert_eq!(KernLevel::Warning.tracing_level(), Level::WARN);
        assert_eq!(KernLevel::Notice.tracing_level(), Level::INFO);
        assert_eq!(KernLevel::Debug.tracing_level(), Level::DEBUG);
        assert_eq!(KernLevel::DEFAULT, KernLevel::Warning);
    }

    #[test]
    fn numbers_and_names() {
        assert_eq!(KernLevel::Emerg.number(), 0);
        assert_eq!(KernLevel::Debug.number(), 7);
        assert_eq!(KernLevel::Warning.name(), "warn");
        assert_eq!(KernLevel::Alert.to_string(), "alert");
    }
}
