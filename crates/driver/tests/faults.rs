//! Faults the framework survives: an interrupt storm from a stuck level
//! line, and a panicking poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use driver::bus::{Bus, Device};
use driver::demo::nic::NicDriver;
use driver::irq;
use driver::module::{self, InitResult, Module, ModuleContext};
use driver::napi::{LineMask, Napi};
use irq_sim::device::Nic;
use irq_sim::{Config, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine, SpuriousConfig};

mod common;

use common::{capture_logs, log_text, wait_until};

/// A module with no work of its own, whose context the driver uses.
struct Host;

impl Module for Host {
    const NAME: &'static str = "fault_host";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A level line whose driver never clears its device fires without end.
/// The spurious detector disables it, the message names the line and its
/// handler, and a NIC on the same CPU keeps working.
#[test]
fn stuck_level_line_disabled_as_spurious() {
    capture_logs();
    let machine = Machine::new(Config {
        nr_cpus: 1,
        spurious: SpuriousConfig {
            window: 1_000,
            threshold: 999,
            poll_interval: Duration::from_secs(3600),
            ..SpuriousConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    let controller = machine.controller();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();

    // A working NIC on line 40.
    let queue = wq::alloc_workqueue("storm_napi", wq::WqFlags::NONE, 1);
    let nic = Arc::new(Nic::new(&controller, 40, 16).unwrap());
    let bus = Bus::new();
    bus.add_device(Device::new(
        "nic0",
        "irqlab,nic",
        &controller,
        40,
        nic.clone(),
    ))
    .unwrap();
    let host = module::load::<Host>(()).unwrap();
    let bound = runtime.block_on(bus.bind(NicDriver::new(&queue, 4), host.context()));

    // A device on line 50 that its driver never clears: the top half reads
    // a status register that shows nothing and returns IRQ_NONE.
    let stuck_calls = Arc::new(AtomicU32::new(0));
    let _stuck = {
        let stuck_calls = stuck_calls.clone();
        irq::request_irq(
            &controller,
            50,
            IrqRequest::new(
                "stuck_dev",
                IrqFlags::LEVEL,
                move |_: &mut HardIrqContext<'_>| {
                    stuck_calls.fetch_add(1, Ordering::SeqCst);
                    IrqReturn::None
                },
            ),
        )
        .unwrap()
    };
    let _ = controller.raise(50).unwrap();

    wait_until("the line is disabled as spurious", || {
        controller.line_state(50).unwrap().spurious
    });
    // The CPU thread logs the report just after it disables the line.
    wait_until("the detector logs the line", || {
        log_text().contains("nobody cared")
    });

    let log = log_text();
    let message = log
        .lines()
        .find(|line| line.contains("nobody cared"))
        .expect("the detector logs the line");
    assert!(message.contains("irq 50"), "{message}");
    assert!(message.contains("stuck_dev"), "{message}");
    assert!(stuck_calls.load(Ordering::SeqCst) >= 999);

    assert!(nic.receive(64, irq_sim::clock::now()));
    let state = bound.state("nic0").unwrap();
    wait_until("the NIC's packet is processed", || {
        state.stats().processed == 1
    });
    runtime.block_on(bound.unbind());
}

/// A poll that panics is reported and ends its cycle, so the interrupt is
/// unmasked and the next event is polled as usual.
#[test]
fn panicking_poll_contained() {
    capture_logs();
    let machine = Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap();
    let controller = machine.controller();
    let queue = wq::alloc_workqueue("panic_napi", wq::WqFlags::NONE, 1);
    let polls = Arc::new(AtomicU32::new(0));
    let napi = {
        let polls = polls.clone();
        Napi::new(
            "fragile",
            &queue,
            4,
            Arc::new(LineMask {
                controller: controller.clone(),
                irq: 60,
            }),
            move |_budget| {
                if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("bad descriptor");
                }
                1
            },
        )
    };
    let _registration = {
        let napi = napi.clone();
        irq::request_irq(
            &controller,
            60,
            IrqRequest::new(
                "fragile",
                IrqFlags::EDGE,
                move |_: &mut HardIrqContext<'_>| {
                    napi.schedule();
                    IrqReturn::Handled
                },
            ),
        )
        .unwrap()
    };

    let _ = controller.raise(60).unwrap();
    wait_until("the panicking cycle ends", || napi.stats().completions == 1);
    let _ = controller.raise(60).unwrap();
    // A cycle is counted as complete just before the line is enabled.
    wait_until("the next cycle ends and enables the line", || {
        napi.stats().completions == 2 && controller.line_state(60).unwrap().depth == 0
    });

    let stats = napi.stats();
    assert_eq!(stats.panics, 1);
    assert_eq!(stats.events, 1);
    assert_eq!(controller.line_state(60).unwrap().depth, 0);
    assert!(
        log_text().contains("napi fragile: poll panicked: bad descriptor"),
        "the panic was not reported"
    );
}

/// A module whose work function panics on its first run.
struct Fragile {
    work: Arc<wq::Work>,
}

impl Module for Fragile {
    const NAME: &'static str = "fragile";
    type Params = Arc<AtomicU32>;

    fn init(ctx: &ModuleContext, runs: Arc<AtomicU32>) -> InitResult<Self> {
        let work = wq::Work::from_fn("fragile_work", move || {
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("corrupt buffer");
            }
        });
        ctx.track_work(&work)?;
        Ok(Fragile { work })
    }

    fn exit(&mut self, _ctx: &ModuleContext) {
        wq::blocking::cancel_work_sync(&self.work).unwrap();
    }
}

/// A work function that panics is contained and reported with its name;
/// the item runs again when queued again, and the module unloads cleanly.
#[test]
fn panicking_work_contained() {
    capture_logs();
    let runs = Arc::new(AtomicU32::new(0));
    let loaded = module::load::<Fragile>(runs.clone()).unwrap();
    let work = loaded.state().work.clone();

    assert!(wq::schedule_work(&work).unwrap());
    wq::blocking::flush_work(&work).unwrap();
    assert!(wq::schedule_work(&work).unwrap());
    wq::blocking::flush_work(&work).unwrap();

    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let log = log_text();
    assert!(
        log.lines()
            .any(|line| line.contains("fragile_work") && line.contains("corrupt buffer")),
        "the panic was not reported: {log}"
    );
    assert!(loaded.unload().unwrap().is_clean());
}
