//! Errors of the driver framework, one enum per family of operations.
//!
//! Every variant names the module, or the line and the handler, and the fix
//! where there is one.

use std::error::Error;
use std::fmt;

use irq_sim::{FreeError, InvalidContext, LineError, RequestError};

use crate::module::Leftover;

/// The reason a `request_irq`, `request_threaded_irq`, `free_irq` or a line
/// operation on a registration failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// The controller rejected the request.
    Request {
        /// Requested line.
        irq: u32,
        /// Name of the rejected handler.
        handler: &'static str,
        /// The controller's reason.
        source: RequestError,
    },
    /// A threaded request with neither a top half nor ONESHOT: the line
    /// would be unmasked before the thread function ran, and a level line
    /// would fire again at once, forever.
    ThreadedWithoutTopHalf {
        /// Requested line.
        irq: u32,
        /// Name of the rejected handler.
        handler: &'static str,
    },
    /// The IRQ thread of a threaded request could not be spawned.
    ThreadSpawn {
        /// Requested line.
        irq: u32,
        /// Name of the handler.
        handler: &'static str,
        /// The operating system's reason.
        reason: String,
    },
    /// The controller could not free the handler.
    Free {
        /// The line.
        irq: u32,
        /// Name of the handler.
        handler: &'static str,
        /// The controller's reason.
        source: FreeError,
    },
    /// A line operation (`enable_irq`, `disable_irq`, ...) failed.
    Line {
        /// The line.
        irq: u32,
        /// Name of the handler whose registration was used.
        handler: &'static str,
        /// The controller's reason.
        source: LineError,
    },
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The context error names the call, the line and the handler
            // of the top half that made it.
            Self::Request {
                source: irq_sim::RequestError::InvalidContext(source),
                ..
            } => source.fmt(f),
            Self::Request {
                irq,
                handler,
                source,
            } => write!(
                f,
                "request for handler {handler:?} on irq {irq} rejected: {source}"
            ),
            Self::ThreadedWithoutTopHalf { irq, handler } => write!(
                f,
                "threaded request for handler {handler:?} on irq {irq} has no top half and no \
                 ONESHOT, so the line would fire again before the thread runs; set ONESHOT \
                 or give a top half"
            ),
            Self::ThreadSpawn {
                irq,
                handler,
                reason,
            } => write!(
                f,
                "failed to spawn the IRQ thread of handler {handler:?} on irq {irq}: {reason}"
            ),
            // These reasons name the call, the handler and the line.
            Self::Free { source, .. } => source.fmt(f),
            Self::Line {
                source: LineError::InvalidContext(source),
                ..
            } => source.fmt(f),
            // Every other line error names the line itself.
            Self::Line {
                handler, source, ..
            } => write!(f, "handler {handler:?}: {source}"),
        }
    }
}

// The messages above embed the message of the wrapped reason, so `source`
// returns the reason below it, because a reporter that prints the chain
// (anyhow's `{:#}`) would otherwise print the wrapped text twice. The
// errors below follow the same rule.
impl Error for IrqError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Request { source, .. } => source.source(),
            Self::Free { source, .. } => source.source(),
            Self::Line { source, .. } => source.source(),
            _ => None,
        }
    }
}

/// The reason a module could not be loaded or unloaded, or a request made
/// through its context failed.
#[derive(Debug)]
pub enum ModuleError {
    /// The module's init returned an error. What it had registered before
    /// failing was cancelled or freed and is listed in `leftovers`.
    InitFailed {
        /// The module.
        module: &'static str,
        /// The module's own reason.
        source: Box<dyn Error + Send + Sync>,
        /// Resources still registered when init failed, now released.
        leftovers: Vec<Leftover>,
    },
    /// Loading or unloading may sleep and was called in a top half.
    InvalidContext {
        /// The module.
        module: &'static str,
        /// The line and handler of the top half that made the call.
        source: InvalidContext,
    },
    /// Loading or unloading blocks the calling thread, which drives a
    /// current-thread tokio runtime that would stop.
    BlockingInRuntime {
        /// The module.
        module: &'static str,
    },
    /// A request through the context of a module that is unloading or
    /// unloaded.
    Unloaded {
        /// The module.
        module: &'static str,
        /// The request, e.g. `work item "rx"` or `the
        /// binding of nic to eth0`.
        what: String,
    },
    /// A queueing through the module's context was rejected by the queue.
    Queue {
        /// The module.
        module: &'static str,
        /// The queue's reason.
        source: wq::QueueError,
    },
    /// An IRQ request through the module's context failed.
    Irq {
        /// The module.
        module: &'static str,
        /// The reason.
        source: IrqError,
    },
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InitFailed {
                module,
                source,
                leftovers,
            } => {
                write!(f, "module {module} failed to initialize: ")?;
                // An error of this module's own context already names the
                // module: give only its reason, so the name comes once. A
                // `ProbeError::Module` shows that error unchanged.
                let context_error = source.downcast_ref::<ModuleError>().or_else(|| {
                    match source.downcast_ref::<ProbeError>() {
                        Some(ProbeError::Module(inner)) => Some(inner),
                        _ => None,
                    }
                });
                match context_error {
                    Some(Self::InvalidContext {
                        module: inner,
                        source,
                    }) if inner == module => write!(f, "{source}")?,
                    Some(Self::Queue {
                        module: inner,
                        source,
                    }) if inner == module => write!(f, "{source}")?,
                    Some(Self::Irq {
                        module: inner,
                        source,
                    }) if inner == module => write!(f, "{source}")?,
                    _ => write!(f, "{source}")?,
                }
                if !leftovers.is_empty() {
                    write!(f, " ({} leftover resources released)", leftovers.len())?;
                }
                Ok(())
            }
            Self::InvalidContext { module, source } => {
                write!(f, "module {module}: {source}")
            }
            Self::BlockingInRuntime { module } => write!(
                f,
                "loading or unloading module {module} blocks, which would stop the \
                 current-thread tokio runtime of this thread; call it from a plain thread, \
                 spawn_blocking or a multi-threaded runtime"
            ),
            Self::Unloaded { module, what } => write!(
                f,
                "module {module} is unloading or unloaded, so its context takes nothing new: \
                 {what} was refused"
            ),
            Self::Queue { module, source } => write!(f, "module {module}: {source}"),
            Self::Irq { module, source } => write!(f, "module {module}: {source}"),
        }
    }
}

impl Error for ModuleError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::InitFailed { source, .. } => source.source(),
            Self::InvalidContext { source, .. } => source.source(),
            Self::Queue { source, .. } => source.source(),
            Self::Irq { source, .. } => source.source(),
            _ => None,
        }
    }
}

/// The reason a driver's probe failed for one device.
#[derive(Debug)]
pub enum ProbeError {
    /// The device has no resource of the type the driver needs.
    MissingResource {
        /// The device.
        device: String,
        /// The type the driver expected, as `std::any::type_name` gives it.
        expected: &'static str,
        /// The type of the device's model, the same way.
        found: &'static str,
    },
    /// A request through the module's context failed: an IRQ or a
    /// queueing.
    Module(ModuleError),
    /// The driver's own reason.
    Other(Box<dyn Error + Send + Sync>),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingResource {
                device,
                expected,
                found,
            } => write!(
                f,
                "device {device:?} has a model of type {found}, but the driver asks for \
                 {expected}; bind the driver to devices with that model"
            ),
            Self::Module(error) => error.fmt(f),
            Self::Other(error) => error.fmt(f),
        }
    }
}

impl Error for ProbeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::MissingResource { .. } => None,
            Self::Module(error) => error.source(),
            Self::Other(error) => error.source(),
        }
    }
}

impl From<ModuleError> for ProbeError {
    fn from(error: ModuleError) -> Self {
        Self::Module(error)
    }
}

/// The reason a device could not be added to a bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// A device of that name is already on the bus.
    DuplicateDevice {
        /// The device's name.
        device: String,
    },
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateDevice { device } => write!(
                f,
                "device {device:?} is already on the bus; give each device a unique name"
            ),
        }
    }
}

impl Error for BusError {}

/// The reason a block request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The device has as many requests in flight as its queue depth.
    QueueFull {
        /// The device.
        device: String,
        /// The device's queue depth.
        depth: usize,
    },
    /// The device was removed before the request completed.
    Removed {
        /// The device.
        device: String,
        /// The request's id.
        id: u64,
    },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::QueueFull { device, depth } => write!(
                f,
                "block device {device:?}: queue full ({depth} requests in flight); \
                 retry after a completion"
            ),
            Self::Removed { device, id } => write!(
                f,
                "block device {device:?} was removed before request {id} completed"
            ),
        }
    }
}

impl Error for BlockError {}
