//! Drivers and devices: a bus of devices, and drivers that probe and
//! remove them.
//!
//! | kernel | irqlab |
//! |---|---|
//! | `struct platform_device` with an IRQ resource | [`Device`]: a name, a `compatible` string, a line and a device model |
//! | `platform_device_register` | [`Bus::add_device`] |
//! | `struct platform_driver` with `probe` and `remove` | [`Driver`] |
//! | `platform_driver_register`, matching by name | [`Bus::bind`], matching [`Driver::COMPATIBLE`] |
//! | `dev_set_drvdata` / `dev_get_drvdata` | [`Driver::State`], returned by probe and handed back to remove |
//! | `platform_driver_unregister` | [`BoundDriver::unbind`] |
//!
//! Probe and remove are async, so that a driver can wait for its device
//! (a reset, a first completion) without blocking a runtime thread. Each
//! gets the [`ModuleContext`] of the module the driver belongs to, so the
//! module tracks the IRQs and work items a probe requests through it. If
//! the module is unloaded before the driver is unbound, the unload still
//! frees and cancels them.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use irq_sim::Controller;

use crate::error::{BusError, ProbeError};
use crate::module::ModuleContext;
use crate::printk;
use crate::printk::KernLevel;

/// A device on a bus: a simulated device model, the line it raises, and the
/// `compatible` string drivers match.
pub struct Device {
    /// Immutable after construction.
    name: String,
    /// Immutable after construction.
    compatible: &'static str,
    /// Immutable after construction.
    controller: Controller,
    /// Immutable after construction.
    irq: u32,
    /// The device model, for the driver to downcast. Immutable.
    resource: Arc<dyn Any + Send + Sync>,
    /// The model's type, as `std::any::type_name` gives it. Immutable.
    resource_type: &'static str,
    /// The driver bound to the device, if any. Under its mutex.
    driver: Mutex<Option<&'static str>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Device {
    /// Makes a device named `name` that drivers with `compatible` bind,
    /// raising line `irq` of `controller`, with `resource` as its device
    /// model.
    ///
    /// NOTE: `irq` must be the line the model raises (its `irq()`), because
    /// a driver requests the device's line. The bus does not compare them:
    /// with another line the driver binds and never gets an interrupt.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new<T: Any + Send + Sync>(
        name: impl Into<String>,
        compatible: &'static str,
        controller: &Controller,
        irq: u32,
        resource: Arc<T>,
    ) -> Self {
        Self {
            name: name.into(),
            compatible,
            controller: controller.clone(),
            irq,
            resource,
            resource_type: std::any::type_name::<T>(),
            driver: Mutex::new(None),
        }
    }

    /// Returns the device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the `compatible` string drivers match.
    pub fn compatible(&self) -> &'static str {
        self.compatible
    }

    /// Returns the controller of the device's line.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Returns the device's line.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Returns the device model as a `T`.
    ///
    /// # Errors
    ///
    /// [`ProbeError::MissingResource`] when the model is not a `T`.
    pub fn resource<T: Any + Send + Sync>(&self) -> Result<Arc<T>, ProbeError> {
        Arc::clone(&self.resource)
            .downcast::<T>()
            .map_err(|_| ProbeError::MissingResource {
                device: self.name.clone(),
                expected: std::any::type_name::<T>(),
                found: self.resource_type,
            })
    }

    /// Returns the name of the driver bound to the device, if any.
    ///
    /// # Context
    ///
    /// Any but a top half; takes a short lock.
    pub fn driver(&self) -> Option<&'static str> {
        *lock(&self.driver)
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("compatible", &self.compatible)
            .field("irq", &self.irq)
            .field("driver", &self.driver())
            .finish()
    }
}

/// A driver: probes the devices it is compatible with and removes them.
///
/// Implement `probe` and `remove` as `async fn`; their futures must be
/// `Send`, as they are when they hold no `Rc` or `std::sync` guard across
/// an `.await`.
pub trait Driver: Send + Sync + 'static {
    /// The driver's name, for reports.
    const NAME: &'static str;

    /// The `compatible` string of the devices the driver binds.
    const COMPATIBLE: &'static str;

    /// The per-device state the driver keeps (`dev_set_drvdata`): its IRQ
    /// registration, work items, counters.
    type State: Send + Sync + 'static;

    /// Sets up `device`: requests its IRQ and work items through `ctx`, and
    /// returns the device's state.
    ///
    /// # Errors
    ///
    /// A [`ProbeError`]; the device then stays unbound.
    ///
    /// # Context
    ///
    /// Task context, in async code; may sleep.
    fn probe(
        &self,
        device: &Device,
        ctx: &ModuleContext,
    ) -> impl Future<Output = Result<Self::State, ProbeError>> + Send;

    /// Tears `device` down: frees its IRQ and cancels its work before the
    /// state is dropped.
    ///
    /// # Context
    ///
    /// Task context, in async code; may sleep.
    fn remove(
        &self,
        device: &Device,
        state: Self::State,
        ctx: &ModuleContext,
    ) -> impl Future<Output = ()> + Send;
}

/// The devices of a simulated machine, for drivers to bind.
#[derive(Default)]
pub struct Bus {
    /// In registration order. Under its mutex.
    devices: Mutex<Vec<Arc<Device>>>,
}

impl Bus {
    /// Makes an empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `device` (`platform_device_register`) and returns it.
    ///
    /// # Errors
    ///
    /// [`BusError::DuplicateDevice`] when a device of the same name is on
    /// the bus.
    ///
    /// # Context
    ///
    /// Any but a top half; takes a short lock.
    pub fn add_device(&self, device: Device) -> Result<Arc<Device>, BusError> {
        let mut devices = lock(&self.devices);
        if devices.iter().any(|known| known.name == device.name) {
            return Err(BusError::DuplicateDevice {
                device: device.name,
            });
        }
        let device = Arc::new(device);
        devices.push(device.clone());
        Ok(device)
    }

    /// Returns the devices, in registration order.
    ///
    /// # Context
    ///
    /// Any but a top half; takes a short lock.
    pub fn devices(&self) -> Vec<Arc<Device>> {
        lock(&self.devices).clone()
    }

    /// Binds `driver` to every unbound device it is compatible with
    /// (`platform_driver_register`), probing them in registration order. A
    /// device whose probe fails stays unbound. The failure is logged and
    /// listed in [`BoundDriver::probe_failures`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future during a probe (a timeout, a `select!`) leaves
    /// that device unbound, with a warning. The devices already bound are
    /// left as a dropped [`BoundDriver`] leaves them: unbound without their
    /// remove, and reported by the module's unload.
    ///
    /// # Context
    ///
    /// Task context, in async code; sleeps.
    pub async fn bind<D: Driver>(&self, driver: D, ctx: &ModuleContext) -> BoundDriver<D> {
        let mut bound = BoundDriver {
            driver,
            ctx: ctx.clone(),
            devices: Vec::new(),
            probe_failures: Vec::new(),
        };
        for device in self.devices() {
            if device.compatible != D::COMPATIBLE {
                continue;
            }
            // Released on every path but a kept binding, a cancelled bind
            // (the future dropped during the probe) included.
            let Some(claim) = Claim::take(&device, D::NAME) else {
                continue;
            };
            match bound.driver.probe(&device, ctx).await {
                Ok(state) => {
                    if let Err(error) = ctx.track_bound(D::NAME, &device.name) {
                        // The module began to unload during the probe: undo
                        // the binding, which its unload could not report.
                        bound.driver.remove(&device, state, ctx).await;
                        claim.release();
                        printk!(
                            KernLevel::Err,
                            "{}: probe of {}: {error}",
                            D::NAME,
                            device.name
                        );
                        bound
                            .probe_failures
                            .push((device.name.clone(), ProbeError::Module(error)));
                        continue;
                    }
                    printk!(KernLevel::Info, "{}: bound to {}", D::NAME, device.name);
                    claim.keep();
                    bound.devices.push((device, state));
                }
                Err(error) => {
                    claim.release();
                    printk!(
                        KernLevel::Err,
                        "{}: probe of {} failed: {error}",
                        D::NAME,
                        device.name
                    );
                    bound.probe_failures.push((device.name.clone(), error));
                }
            }
        }
        bound
    }
}

/// A device marked bound to a driver whose probe has not finished. Unless
/// kept, it is unmarked when dropped, so that a bind cancelled during the
/// probe leaves the device free for the next bind.
struct Claim<'a> {
    device: &'a Device,
    driver: &'static str,
    /// Whether the probe finished: the claim was kept or released.
    settled: bool,
}

impl<'a> Claim<'a> {
    /// Marks `device` bound to `driver` unless another driver has it.
    fn take(device: &'a Device, driver: &'static str) -> Option<Self> {
        let mut bound_to = lock(&device.driver);
        if bound_to.is_some() {
            return None;
        }
        *bound_to = Some(driver);
        Some(Self {
            device,
            driver,
            settled: false,
        })
    }

    /// Keeps the mark: the probe bound the device. Forgetting the claim
    /// skips the drop that would unmark it; the claim owns nothing else.
    fn keep(self) {
        std::mem::forget(self);
    }

    /// Unmarks the device: its probe failed or was undone.
    fn release(mut self) {
        self.settled = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        *lock(&self.device.driver) = None;
        if !self.settled {
            printk!(
                KernLevel::Warning,
                "{}: bind cancelled during the probe of {}; the device stays unbound, and \
                 the module's unload releases what the probe requested and did not free",
                self.driver,
                self.device.name
            );
        }
    }
}

/// A driver bound to its devices. Unbind it with [`BoundDriver::unbind`]
/// before its module unloads.
///
/// NOTE: dropping it without `unbind` cannot run the async removes. It
/// logs a warning and drops the states, which frees their IRQ
/// registrations. The module's unload reports each device still bound
/// ([`crate::module::Leftover::Bound`]) and cancels the work they left.
pub struct BoundDriver<D: Driver> {
    driver: D,
    ctx: ModuleContext,
    /// The bound devices and their states, in probe order.
    devices: Vec<(Arc<Device>, D::State)>,
    /// The devices whose probe failed, with the reason.
    probe_failures: Vec<(String, ProbeError)>,
}

impl<D: Driver> BoundDriver<D> {
    /// Returns the driver.
    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// Returns the bound devices with their states, in probe order.
    pub fn devices(&self) -> impl Iterator<Item = (&Device, &D::State)> {
        self.devices
            .iter()
            .map(|(device, state)| (device.as_ref(), state))
    }

    /// Returns the state of the bound device named `name`.
    pub fn state(&self, name: &str) -> Option<&D::State> {
        self.devices
            .iter()
            .find(|(device, _)| device.name == name)
            .map(|(_, state)| state)
    }

    /// Returns the devices whose probe failed, with the reason.
    pub fn probe_failures(&self) -> &[(String, ProbeError)] {
        &self.probe_failures
    }

    /// Removes every bound device, last probed first
    /// (`platform_driver_unregister`), and leaves them unbound.
    ///
    /// # Context
    ///
    /// Task context, in async code; sleeps.
    pub async fn unbind(mut self) {
        while let Some((device, state)) = self.devices.pop() {
            self.driver.remove(&device, state, &self.ctx).await;
            self.ctx.untrack_bound(D::NAME, &device.name);
            *lock(&device.driver) = None;
            printk!(KernLevel::Info, "{}: unbound from {}", D::NAME, device.name);
        }
    }
}

impl<D: Driver> Drop for BoundDriver<D> {
    fn drop(&mut self) {
        for (device, _) in &self.devices {
            printk!(
                KernLevel::Warning,
                "{}: dropped while bound to {} without unbind, so its remove never runs; \
                 its module's unload reports the binding and releases what the probe \
                 requested",
                D::NAME,
                device.name
            );
            *lock(&device.driver) = None;
        }
    }
}

impl<D: Driver> fmt::Debug for BoundDriver<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let devices: Vec<&str> = self.devices.iter().map(|(d, _)| d.name()).collect();
        f.debug_struct("BoundDriver")
            .field("driver", &D::NAME)
            .field("devices", &devices)
            .field("probe_failures", &self.probe_failures.len())
            .finish()
    }
}
