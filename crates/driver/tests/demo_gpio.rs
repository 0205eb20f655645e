//! The GPIO button demo driver: a bouncing press becomes one event.

use std::sync::Arc;
use std::time::Duration;

use driver::bus::{Bus, Device};
use driver::demo::gpio::ButtonDriver;
use driver::module::{self, InitResult, Module, ModuleContext};
use irq_sim::device::GpioButton;
use irq_sim::{Config, Machine};

mod common;

use common::wait_until;

/// A module with no work of its own, whose context the driver uses.
struct Host;

impl Module for Host {
    const NAME: &'static str = "button_host";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A press that bounces raises many edges but is reported as one press,
/// and its release as one release.
#[test]
fn bouncing_press_is_one_event() {
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap();
    let controller = machine.controller();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let queue = wq::alloc_workqueue("button_wq", wq::WqFlags::NONE, 1);
    // Bounces 50 us apart, against a debounce time 1,000 times longer.
    let button =
        Arc::new(GpioButton::new(&controller, 70, 8, Duration::from_micros(50), 7).unwrap());
    let bus = Bus::new();
    bus.add_device(Device::new(
        "button0",
        "irqlab,gpio-button",
        &controller,
        70,
        button.clone(),
    ))
    .unwrap();
    let host = module::load::<Host>(()).unwrap();
    let bound = runtime.block_on(bus.bind(
        ButtonDriver::new(&queue, Duration::from_millis(50)),
        host.context(),
    ));
    let state = bound.state("button0").expect("button0 is bound");

    let press_edges = button.press().unwrap();
    wait_until("the press is reported", || state.stats().presses == 1);
    let release_edges = button.release().unwrap();
    wait_until("the release is reported", || state.stats().releases == 1);

    assert!(press_edges > 1, "the press did not bounce: {press_edges}");
    assert!(
        release_edges > 1,
        "the release did not bounce: {release_edges}"
    );
    let stats = state.stats();
    assert_eq!(stats.presses, 1);
    assert_eq!(stats.releases, 1);
    assert_eq!(stats.debounce_runs, 2);
    // Edges that arrive while the line is pending fold into one delivery,
    // so the interrupts lie between one per event and one per edge.
    assert!(stats.interrupts >= 2, "{stats:?}");
    assert!(
        stats.interrupts <= u64::from(press_edges + release_edges),
        "{stats:?}"
    );
    runtime.block_on(bound.unbind());
    assert!(host.unload().unwrap().is_clean());
}
