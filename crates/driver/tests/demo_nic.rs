//! The NIC demo driver: NAPI mitigation under load, and packet accounting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use driver::bus::{BoundDriver, Bus, Device};
use driver::demo::nic::{NicDriver, NicStats};
use driver::module::{self, InitResult, LoadedModule, Module, ModuleContext};
use irq_sim::device::Nic;
use irq_sim::{Config, Controller, Machine};
use wq::{Work, Workqueue};

mod common;

use common::{HANG_GUARD, wait_until};

/// A module with no work of its own, whose context the driver uses.
struct Host;

impl Module for Host {
    const NAME: &'static str = "nic_host";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A NIC on one line, bound to the NIC driver through a loaded host module.
/// Fields drop in reverse order, as the test's locals would.
struct Rig {
    machine: Machine,
    controller: Controller,
    runtime: tokio::runtime::Runtime,
    queue: Workqueue,
    nic: Arc<Nic>,
    bus: Bus,
    host: LoadedModule<Host>,
    bound: BoundDriver<NicDriver>,
}

impl Rig {
    /// Builds a one-CPU machine with NIC `device` on `line`, whose driver
    /// polls on the ordered queue `queue_name`.
    fn new(queue_name: &'static str, device: &'static str, line: u32) -> Self {
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
        let queue = wq::alloc_ordered_workqueue(queue_name, wq::WqFlags::NONE);
        let nic = Arc::new(Nic::new(&controller, line, 16).unwrap());
        let bus = Bus::new();
        bus.add_device(Device::new(
            device,
            "irqlab,nic",
            &controller,
            line,
            nic.clone(),
        ))
        .unwrap();
        let host = module::load::<Host>(()).unwrap();
        let bound = runtime.block_on(bus.bind(NicDriver::new(&queue, 4), host.context()));
        Self {
            machine,
            controller,
            runtime,
            queue,
            nic,
            bus,
            host,
            bound,
        }
    }
}

/// An item that holds an ordered queue's only worker until opened.
struct QueueGate {
    state: Arc<(Mutex<bool>, Condvar)>,
}

impl QueueGate {
    /// Lets the held worker go.
    fn open(&self) {
        *self.state.0.lock().unwrap() = true;
        self.state.1.notify_all();
    }
}

/// Queues a busy item on `queue` and waits until it holds the worker, so
/// that work queued after it waits.
fn hold_queue(queue: &Workqueue) -> QueueGate {
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    let busy_started = Arc::new(AtomicBool::new(false));
    let busy = {
        let (state, busy_started) = (state.clone(), busy_started.clone());
        Work::from_fn("busy", move || {
            busy_started.store(true, Ordering::SeqCst);
            let (open, opened) = &*state;
            let guard = open.lock().unwrap();
            let _ = opened.wait_timeout_while(guard, HANG_GUARD, |open| !*open);
        })
    };
    assert!(wq::queue_work(queue, &busy).unwrap());
    wait_until("the busy item runs", || busy_started.load(Ordering::SeqCst));
    QueueGate { state }
}

/// Light load costs one interrupt per packet. Under a burst that lands while
/// the poll waits for its queue, one interrupt covers the whole burst: the
/// interrupt rate falls while the packets handled per interrupt rise. A
/// burst larger than the ring is dropped by the device and counted, so
/// arrived = processed + dropped.
#[test]
fn napi_mitigates_burst_and_counts_drops() {
    let Rig {
        machine: _machine,
        controller,
        runtime,
        queue,
        nic,
        bus: _bus,
        host,
        bound,
    } = Rig::new("nic_napi", "nic0", 40);
    let state = bound.state("nic0").expect("nic0 is bound");
    let receive = || nic.receive(64, irq_sim::clock::now());

    // Light load: each packet is handled before the next arrives.
    for packet in 1..=8 {
        assert!(receive());
        wait_until("the packet is processed", || {
            state.stats().processed == packet && !state.napi().is_scheduled()
        });
    }
    let light = state.stats();
    assert_eq!(light.interrupts, 8);
    assert_eq!(light.processed, 8);

    // Heavy load: the poll waits behind a busy item on its ordered queue
    // while a burst of 32 packets lands on the 16-descriptor ring.
    let gate = hold_queue(&queue);
    assert!(receive());
    wait_until("the top half runs", || state.stats().interrupts == 9);
    // Once its chain has returned, the top half has masked the NIC.
    controller.synchronize_irq(40).unwrap();
    let accepted = (0..31).filter(|_| receive()).count();
    gate.open();
    wait_until("the burst is drained", || {
        state.stats().in_ring == 0 && !state.napi().is_scheduled()
    });

    let total = state.stats();
    let heavy = NicStats {
        arrived: total.arrived - light.arrived,
        processed: total.processed - light.processed,
        dropped: total.dropped - light.dropped,
        interrupts: total.interrupts - light.interrupts,
        ..total
    };
    assert_eq!(accepted, 15, "the ring takes 16 packets, one already in it");
    assert_eq!(heavy.interrupts, 1);
    assert_eq!(heavy.processed, 16);
    assert_eq!(heavy.dropped, 16);
    assert_eq!(total.arrived, 40);
    assert_eq!(total.arrived, total.processed + total.dropped);
    assert!(
        heavy.processed / heavy.interrupts > light.processed / light.interrupts,
        "packets per interrupt did not rise: light {light:?}, heavy {heavy:?}"
    );

    runtime.block_on(bound.unbind());
    assert!(controller.line_stats(40).unwrap().handlers.is_empty());
    assert!(host.unload().unwrap().is_clean());
}

/// A module unloaded in the middle of a burst, its driver still bound:
/// the unload reports the binding, the handler and the pending poll by
/// name, frees and cancels them, and no poll runs after it returns.
#[test]
fn unload_mid_burst_stops_polling() {
    let Rig {
        machine: _machine,
        controller,
        runtime: _runtime,
        queue,
        nic,
        bus: _bus,
        host,
        bound,
    } = Rig::new("nic_unload", "nic1", 41);
    let state = bound.state("nic1").expect("nic1 is bound");

    // A burst whose poll waits behind a busy item.
    let gate = hold_queue(&queue);
    for _ in 0..6 {
        assert!(nic.receive(64, irq_sim::clock::now()));
    }
    wait_until("the poll is scheduled", || state.napi().is_scheduled());

    let report = host.unload().unwrap();
    gate.open();
    wq::blocking::flush_workqueue(&queue).unwrap();

    assert_eq!(
        report.leftovers,
        [
            driver::module::Leftover::Bound {
                driver: "irqlab_nic",
                device: "nic1".into()
            },
            driver::module::Leftover::Handler {
                irq: 41,
                handler: "nic_rx"
            },
            driver::module::Leftover::PendingWork {
                work: "nic1/poll".into()
            },
        ]
    );
    let stats = state.stats();
    assert_eq!(stats.polls, 0, "a poll ran after the unload");
    assert_eq!(stats.processed, 0);
    assert_eq!(
        stats.arrived,
        stats.processed + stats.dropped + stats.in_ring
    );
    assert!(controller.line_stats(41).unwrap().handlers.is_empty());
}
