//! The timer tick demo driver: jiffies in the top half, housekeeping as
//! self-re-arming delayed work.

use std::sync::Arc;
use std::time::Duration;

use driver::bus::{Bus, Device};
use driver::demo::tick::TickDriver;
use driver::module::{self, InitResult, Module, ModuleContext};
use irq_sim::{Config, Machine};

mod common;

use common::wait_until;

/// A module with no work of its own, whose context the driver uses.
struct Host;

impl Module for Host {
    const NAME: &'static str = "tick_host";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// The top half counts jiffies and the housekeeping item runs again and
/// again, each run seeing more jiffies. The unbind frees the tick's
/// handler and cancels the self-re-arming housekeeping item for good.
#[test]
fn ticks_and_housekeeping_then_stop() {
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
    let queue = wq::alloc_workqueue("tick_housekeeping", wq::WqFlags::NONE, 1);
    let timer = Arc::new(controller.local_timer(0, 100).unwrap());
    let bus = Bus::new();
    bus.add_device(Device::new(
        "timer0",
        "irqlab,local-timer",
        &controller,
        100,
        timer.clone(),
    ))
    .unwrap();
    let host = module::load::<Host>(()).unwrap();
    let driver = TickDriver::new(&queue, Duration::from_millis(1), Duration::from_millis(5));
    let bound = runtime.block_on(bus.bind(driver, host.context()));
    let state = bound.state("timer0").expect("timer0 is bound");

    wait_until("the first housekeeping run", || {
        state.stats().housekeeping_runs >= 1
    });
    let first = state.stats();
    wait_until("a later housekeeping run sees more jiffies", || {
        let now = state.stats();
        now.housekeeping_runs > first.housekeeping_runs
            && now.jiffies_at_housekeeping > first.jiffies_at_housekeeping
    });
    assert!(state.stats().jiffies >= state.stats().jiffies_at_housekeeping);

    let last = state.stats();
    runtime.block_on(bound.unbind());

    assert!(last.housekeeping_runs >= 2);
    assert!(controller.line_stats(100).unwrap().handlers.is_empty());
    // A housekeeping item still pending or running would be a leftover.
    assert!(host.unload().unwrap().is_clean());
}
