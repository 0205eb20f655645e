//! The block device demo driver: async requests completed through the
//! completion interrupt.

use std::sync::Arc;
use std::time::Duration;

use driver::BlockError;
use driver::bus::{Bus, Device};
use driver::demo::block::BlockDriver;
use driver::module::{self, InitResult, LoadedModule, Module, ModuleContext};
use irq_sim::device::BlockDevice;
use irq_sim::{Config, Machine};

/// Generous hang guard for waits on real conditions.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// A module with no work of its own, whose context the driver uses.
struct Host;

impl Module for Host {
    const NAME: &'static str = "block_host";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A machine, a runtime, a bus with one block device, and a host module.
struct Fixture {
    _machine: Machine,
    runtime: tokio::runtime::Runtime,
    bus: Bus,
    host: LoadedModule<Host>,
    queue: wq::Workqueue,
}

fn fixture(service_time: Duration, depth: usize) -> Fixture {
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap();
    let controller = machine.controller();
    let bus = Bus::new();
    let device = Arc::new(BlockDevice::new(&controller, 80, service_time, depth).unwrap());
    bus.add_device(Device::new("blk0", "irqlab,block", &controller, 80, device))
        .unwrap();
    Fixture {
        _machine: machine,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap(),
        bus,
        host: module::load::<Host>(()).unwrap(),
        queue: wq::alloc_workqueue("blk_complete", wq::WqFlags::NONE, 1),
    }
}

/// Requests submitted from async code complete through the completion
/// interrupt: the bottom half wakes each waiting future with its own
/// completion.
#[test]
fn requests_complete_through_interrupt() {
    let Fixture {
        _machine,
        runtime,
        bus,
        host,
        queue,
    } = fixture(Duration::from_micros(500), 8);
    let bound = runtime.block_on(bus.bind(BlockDriver::new(&queue), host.context()));
    let state = bound.state("blk0").expect("blk0 is bound");

    let completions = runtime.block_on(async {
        let pending: Vec<_> = (0..8)
            .map(|sector| state.submit(sector * 8).expect("the queue has room"))
            .collect();
        let ids: Vec<u64> = pending.iter().map(|request| request.id()).collect();
        let mut completions = Vec::new();
        for request in pending {
            let completion = tokio::time::timeout(HANG_GUARD, request)
                .await
                .expect("the request completes")
                .expect("the device is bound");
            completions.push(completion);
        }
        assert_eq!(
            completions.iter().map(|c| c.id).collect::<Vec<_>>(),
            ids,
            "a future got another request's completion"
        );
        completions
    });

    let sectors: Vec<u64> = completions.iter().map(|c| c.sector).collect();
    assert_eq!(sectors, [0, 8, 16, 24, 32, 40, 48, 56]);
    let stats = state.stats();
    assert_eq!(stats.submitted, 8);
    assert_eq!(stats.completed, 8);
    assert_eq!(stats.abandoned, 0);
    assert!((1..=8).contains(&stats.interrupts), "{stats:?}");
    runtime.block_on(bound.unbind());
    assert!(host.unload().unwrap().is_clean());
}

/// A request beyond the device's queue depth is rejected with an error
/// naming the device and the depth; the others still complete.
#[test]
fn full_queue_rejected() {
    let Fixture {
        _machine: machine,
        runtime,
        bus,
        host,
        queue,
    } = fixture(Duration::from_millis(20), 2);
    let bound = runtime.block_on(bus.bind(BlockDriver::new(&queue), host.context()));
    let state = bound.state("blk0").expect("blk0 is bound");

    // A request keeps its slot until the top half takes its completion, so
    // with the line disabled no slot frees, however slow the test thread.
    let controller = machine.controller();
    controller.disable_irq(80).unwrap();
    let first = state.submit(1).unwrap();
    let second = state.submit(2).unwrap();
    let error = state.submit(3).unwrap_err();
    controller.enable_irq(80).unwrap();

    assert_eq!(
        error,
        BlockError::QueueFull {
            device: "blk0".into(),
            depth: 2
        }
    );
    runtime.block_on(async {
        tokio::time::timeout(HANG_GUARD, first)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(HANG_GUARD, second)
            .await
            .unwrap()
            .unwrap();
    });
    assert_eq!(state.stats().rejected, 1);
    runtime.block_on(bound.unbind());
}

/// Removing the device resolves a request still in flight to an error
/// instead of leaving its future waiting forever.
#[test]
fn removal_fails_pending_request() {
    let Fixture {
        _machine,
        runtime,
        bus,
        host,
        queue,
    } = fixture(Duration::from_secs(3600), 1);
    let bound = runtime.block_on(bus.bind(BlockDriver::new(&queue), host.context()));
    let pending = bound.state("blk0").unwrap().submit(7).unwrap();
    let id = pending.id();

    runtime.block_on(bound.unbind());
    let outcome = runtime.block_on(async { tokio::time::timeout(HANG_GUARD, pending).await });

    assert_eq!(
        outcome.expect("the future resolves"),
        Err(BlockError::Removed {
            device: "blk0".into(),
            id
        })
    );
}
