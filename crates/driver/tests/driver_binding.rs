//! Binding drivers to devices: probe, remove, and what a module's unload
//! releases when a driver is still bound.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Waker};

use driver::bus::{Bus, Device, Driver};
use driver::irq::IrqRegistration;
use driver::module::{self, InitResult, Leftover, LoadedModule, Module, ModuleContext};
use driver::{BusError, ProbeError};
use irq_sim::device::Nic;
use irq_sim::{Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};

mod common;

use common::wait_until;

/// A module with no work of its own, whose context the drivers use.
struct Host;

impl Module for Host {
    const NAME: &'static str = "host";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A driver that counts the interrupts of each NIC it binds.
struct CountingNic;

/// The state of one bound NIC.
struct NicState {
    registration: IrqRegistration,
    interrupts: Arc<AtomicU32>,
}

impl Driver for CountingNic {
    const NAME: &'static str = "counting_nic";
    const COMPATIBLE: &'static str = "irqlab,nic";
    type State = NicState;

    async fn probe(&self, device: &Device, ctx: &ModuleContext) -> Result<NicState, ProbeError> {
        let _nic: Arc<Nic> = device.resource()?;
        let interrupts = Arc::new(AtomicU32::new(0));
        let counter = interrupts.clone();
        let registration = ctx.request_irq(
            device.controller(),
            device.irq(),
            IrqRequest::new(
                "counting_nic",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    IrqReturn::Handled
                },
            ),
        )?;
        Ok(NicState {
            registration,
            interrupts,
        })
    }

    async fn remove(&self, _device: &Device, state: NicState, _ctx: &ModuleContext) {
        state
            .registration
            .free()
            .expect("remove runs in task context");
    }
}

/// A resource that is not a NIC.
struct NotANic;

/// A machine, a bus with two NICs and one other device, and a loaded host
/// module.
struct Fixture {
    machine: Machine,
    bus: Bus,
    host: LoadedModule<Host>,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap();
    let controller = machine.controller();
    let bus = Bus::new();
    for (name, irq) in [("nic0", 30), ("nic1", 31)] {
        let nic = Arc::new(Nic::new(&controller, irq, 16).unwrap());
        bus.add_device(Device::new(name, "irqlab,nic", &controller, irq, nic))
            .unwrap();
    }
    bus.add_device(Device::new(
        "uart0",
        "irqlab,uart",
        &controller,
        32,
        Arc::new(NotANic),
    ))
    .unwrap();
    Fixture {
        machine,
        bus,
        host: module::load::<Host>(()).unwrap(),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap(),
    }
}

/// A driver binds every compatible device and only those; its interrupts
/// reach the probed state; unbinding removes each device and frees its
/// line.
#[test]
fn bind_probes_compatible_devices() {
    let Fixture {
        machine,
        bus,
        host,
        runtime,
    } = fixture();
    let controller = machine.controller();
    let bound = runtime.block_on(bus.bind(CountingNic, host.context()));

    let names: Vec<&str> = bound.devices().map(|(device, _)| device.name()).collect();
    assert_eq!(names, ["nic0", "nic1"]);
    assert!(bound.probe_failures().is_empty());
    let devices = bus.devices();
    assert_eq!(devices[0].driver(), Some("counting_nic"));
    assert_eq!(devices[2].driver(), None);

    let _ = controller.raise(31).unwrap();
    let nic1 = bound.state("nic1").expect("nic1 is bound");
    wait_until("nic1's interrupt is counted", || {
        nic1.interrupts.load(Ordering::SeqCst) == 1
    });
    assert_eq!(
        bound
            .state("nic0")
            .unwrap()
            .interrupts
            .load(Ordering::SeqCst),
        0
    );

    runtime.block_on(bound.unbind());

    assert_eq!(devices[0].driver(), None);
    assert!(controller.line_stats(30).unwrap().handlers.is_empty());
    assert!(controller.line_stats(31).unwrap().handlers.is_empty());
    assert!(host.unload().unwrap().is_clean());
}

/// A driver whose probe wants a NIC, bound to a device that is not one.
struct WrongType;

impl Driver for WrongType {
    const NAME: &'static str = "wrong_type";
    const COMPATIBLE: &'static str = "irqlab,uart";
    type State = ();

    async fn probe(&self, device: &Device, _ctx: &ModuleContext) -> Result<(), ProbeError> {
        let _nic: Arc<Nic> = device.resource()?;
        Ok(())
    }

    async fn remove(&self, _device: &Device, _state: (), _ctx: &ModuleContext) {}
}

/// A failed probe leaves its device unbound and is listed with the device
/// and the reason.
#[test]
fn failed_probe_leaves_device_unbound() {
    // The machine must outlive the test: dropping it shuts it down.
    let Fixture {
        machine: _machine,
        bus,
        host,
        runtime,
    } = fixture();

    let bound = runtime.block_on(bus.bind(WrongType, host.context()));

    assert_eq!(bound.devices().count(), 0);
    let [(device, error)] = bound.probe_failures() else {
        panic!("expected one failure, got {:?}", bound.probe_failures());
    };
    assert_eq!(device, "uart0");
    assert!(
        matches!(error, ProbeError::MissingResource { device, .. } if device == "uart0"),
        "unexpected error: {error:?}"
    );
    assert_eq!(
        error.to_string(),
        "device \"uart0\" has a model of type driver_binding::NotANic, but the driver asks \
         for irq_sim::device::nic::Nic; bind the driver to devices with that model"
    );
    assert_eq!(bus.devices()[2].driver(), None);
    runtime.block_on(bound.unbind());
}

/// A device bound to one driver is not probed by a second.
#[test]
fn bound_device_not_probed_again() {
    // The machine must outlive the test: dropping it shuts it down.
    let Fixture {
        machine: _machine,
        bus,
        host,
        runtime,
    } = fixture();
    let first = runtime.block_on(bus.bind(CountingNic, host.context()));

    let second = runtime.block_on(bus.bind(CountingNic, host.context()));

    assert_eq!(first.devices().count(), 2);
    assert_eq!(second.devices().count(), 0);
    runtime.block_on(second.unbind());
    runtime.block_on(first.unbind());
}

#[test]
fn duplicate_device_rejected() {
    let Fixture { machine, bus, .. } = fixture();

    let error = bus
        .add_device(Device::new(
            "nic0",
            "irqlab,nic",
            &machine.controller(),
            33,
            Arc::new(NotANic),
        ))
        .unwrap_err();

    assert_eq!(
        error,
        BusError::DuplicateDevice {
            device: "nic0".into()
        }
    );
}

/// Unloading the module while its driver is still bound reports each
/// binding, and each handler the probes requested, which it frees; the
/// driver's remove can still free its registration afterwards.
#[test]
fn unload_frees_bound_driver_irqs() {
    let Fixture {
        machine,
        bus,
        host,
        runtime,
    } = fixture();
    let bound = runtime.block_on(bus.bind(CountingNic, host.context()));

    let report = host.unload().unwrap();

    assert_eq!(
        report.leftovers,
        [
            Leftover::Bound {
                driver: "counting_nic",
                device: "nic0".into()
            },
            Leftover::Bound {
                driver: "counting_nic",
                device: "nic1".into()
            },
            Leftover::Handler {
                irq: 30,
                handler: "counting_nic"
            },
            Leftover::Handler {
                irq: 31,
                handler: "counting_nic"
            },
        ]
    );
    let controller = machine.controller();
    assert!(controller.line_stats(30).unwrap().handlers.is_empty());
    assert!(!bound.state("nic0").unwrap().registration.is_registered());

    // The driver's own free in its remove, after the unload freed the
    // handler, is no double free: the remove expects it to succeed.
    runtime.block_on(bound.unbind());
}

/// A driver dropped without `unbind` never ran its removes: the unload
/// lists the bindings, so the report is not clean, though the handlers
/// were freed with the dropped states.
#[test]
fn dropped_binding_makes_unload_unclean() {
    let Fixture {
        machine,
        bus,
        host,
        runtime,
    } = fixture();
    let bound = runtime.block_on(bus.bind(CountingNic, host.context()));

    drop(bound);
    let report = host.unload().unwrap();

    assert!(!report.is_clean());
    assert_eq!(
        report.leftovers,
        [
            Leftover::Bound {
                driver: "counting_nic",
                device: "nic0".into()
            },
            Leftover::Bound {
                driver: "counting_nic",
                device: "nic1".into()
            },
        ]
    );
    assert!(
        machine
            .controller()
            .line_stats(30)
            .unwrap()
            .handlers
            .is_empty()
    );
}

/// A driver whose probe requests nothing, and which counts its removes.
struct Passive {
    removes: Arc<AtomicU32>,
}

impl Driver for Passive {
    const NAME: &'static str = "passive";
    const COMPATIBLE: &'static str = "irqlab,nic";
    type State = ();

    async fn probe(&self, _device: &Device, _ctx: &ModuleContext) -> Result<(), ProbeError> {
        Ok(())
    }

    async fn remove(&self, _device: &Device, _state: (), _ctx: &ModuleContext) {
        self.removes.fetch_add(1, Ordering::SeqCst);
    }
}

/// A bind through the context of an unloaded module is undone: the unload
/// could not report it, so each probe that succeeded is removed again and
/// listed as failed.
#[test]
fn bind_after_unload_undone() {
    let Fixture {
        machine: _machine,
        bus,
        host,
        runtime,
    } = fixture();
    let ctx = host.context().clone();
    assert!(host.unload().unwrap().is_clean());
    let removes = Arc::new(AtomicU32::new(0));

    let bound = runtime.block_on(bus.bind(
        Passive {
            removes: removes.clone(),
        },
        &ctx,
    ));

    assert_eq!(bound.devices().count(), 0);
    assert_eq!(bound.probe_failures().len(), 2);
    assert!(matches!(
        bound.probe_failures()[0].1,
        ProbeError::Module(driver::ModuleError::Unloaded { .. })
    ));
    assert_eq!(removes.load(Ordering::SeqCst), 2);
    assert_eq!(bus.devices()[0].driver(), None);
}

/// A driver whose probe never finishes.
struct StuckProbe;

impl Driver for StuckProbe {
    const NAME: &'static str = "stuck_probe";
    const COMPATIBLE: &'static str = "irqlab,nic";
    type State = ();

    async fn probe(&self, _device: &Device, _ctx: &ModuleContext) -> Result<(), ProbeError> {
        std::future::pending().await
    }

    async fn remove(&self, _device: &Device, _state: (), _ctx: &ModuleContext) {}
}

/// A bind cancelled during a probe (its future dropped, as a timeout does)
/// leaves the device unbound, and the next driver binds it.
#[test]
fn cancelled_bind_releases_device() {
    // The machine must outlive the test: dropping it shuts it down.
    let Fixture {
        machine: _machine,
        bus,
        host,
        runtime,
    } = fixture();
    let mut bind = Box::pin(bus.bind(StuckProbe, host.context()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        bind.as_mut().poll(&mut cx).is_pending(),
        "the stuck probe finished"
    );
    assert_eq!(bus.devices()[0].driver(), Some("stuck_probe"));
    drop(bind);

    assert_eq!(bus.devices()[0].driver(), None, "nic0 is still claimed");
    let bound = runtime.block_on(bus.bind(CountingNic, host.context()));
    let names: Vec<&str> = bound.devices().map(|(device, _)| device.name()).collect();
    assert_eq!(names, ["nic0", "nic1"]);
    runtime.block_on(bound.unbind());
    assert!(host.unload().unwrap().is_clean());
}
