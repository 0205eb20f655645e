//! `Napi::synchronize` (`napi_synchronize`) under a NIC burst: it returns
//! once the polling cycle has ended, so the counters read afterwards are
//! settled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use driver::irq::IrqRegistration;
use driver::module::{self, InitResult, Module, ModuleContext};
use driver::napi::Napi;
use irq_sim::device::Nic;
use irq_sim::{Config, Controller, HardIrqContext, IrqFlags, IrqRequest, IrqReturn, Machine};

mod common;

use common::{HANG_GUARD, runtime, wait_until};

/// The NIC's line.
const IRQ: u32 = 40;

/// Packets per poll.
const BUDGET: usize = 16;

/// A module with no state, whose context tracks the handler and the poll.
struct NicModule;

impl Module for NicModule {
    const NAME: &'static str = "nic_sync";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(NicModule)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A bound NIC: its NAPI context, its registration and its counters.
struct Port {
    nic: Arc<Nic>,
    napi: Napi,
    registration: IrqRegistration,
    interrupts: Arc<AtomicU64>,
    processed: Arc<AtomicU64>,
}

/// Binds a NIC whose top half schedules a NAPI poll that takes `BUDGET`
/// packets per call, each costing `cost` of CPU time.
fn probe(
    controller: &Controller,
    ctx: &ModuleContext,
    queue: &wq::Workqueue,
    cost: Duration,
) -> Port {
    let nic = Arc::new(Nic::new(controller, IRQ, 256).unwrap());
    let processed = Arc::new(AtomicU64::new(0));
    let napi = {
        let (nic, processed) = (nic.clone(), processed.clone());
        Napi::new("eth0", queue, BUDGET, nic.clone(), move |budget| {
            let mut handled = 0;
            while handled < budget && nic.pop().is_some() {
                irq_sim::clock::spin_until(irq_sim::clock::now() + cost);
                handled += 1;
            }
            processed.fetch_add(handled as u64, Ordering::SeqCst);
            handled
        })
    };
    ctx.track_work(napi.work()).unwrap();

    let interrupts = Arc::new(AtomicU64::new(0));
    let registration = {
        let (napi, interrupts) = (napi.clone(), interrupts.clone());
        ctx.request_irq(
            controller,
            IRQ,
            IrqRequest::new("eth0", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                interrupts.fetch_add(1, Ordering::Relaxed);
                napi.schedule();
                IrqReturn::Handled
            }),
        )
        .unwrap()
    };
    Port {
        nic,
        napi,
        registration,
        interrupts,
        processed,
    }
}

impl Port {
    /// Frees the line and disables the NAPI context, as a driver's remove
    /// does.
    fn remove(self, runtime: &tokio::runtime::Runtime) {
        drop(self.registration);
        runtime.block_on(self.napi.disable()).unwrap();
    }
}

/// Runs `napi.synchronize()` under the hang guard.
fn synchronize(
    runtime: &tokio::runtime::Runtime,
    napi: &Napi,
) -> Result<Result<(), wq::WaitError>, tokio::time::error::Elapsed> {
    runtime.block_on(async { tokio::time::timeout(HANG_GUARD, napi.synchronize()).await })
}

fn machine() -> Machine {
    Machine::new(Config {
        nr_cpus: 1,
        ..Config::default()
    })
    .unwrap()
}

/// After a burst of 200 packets, `synchronize` returns once the cycle has
/// ended: every packet is processed, the ring is empty, the interrupt is
/// on again, and the NAPI counters agree with the driver's.
#[test]
fn synchronize_settles_counters_after_burst() {
    let machine = machine();
    let controller = machine.controller();
    let runtime = runtime();
    let queue = wq::alloc_workqueue("nic_rx", wq::WqFlags::NONE, 1);
    let module = module::load::<NicModule>(()).unwrap();
    let port = probe(
        &controller,
        module.context(),
        &queue,
        Duration::from_micros(20),
    );

    for _ in 0..200 {
        assert!(
            port.nic.receive(64, irq_sim::clock::now()),
            "the ring overflowed"
        );
    }
    // As in Linux, a cycle not yet scheduled is not waited for: let the
    // top half run first.
    controller.wait_delivered(IRQ, HANG_GUARD).unwrap();
    assert!(port.napi.is_scheduled() || port.processed.load(Ordering::SeqCst) == 200);
    synchronize(&runtime, &port.napi)
        .expect("synchronize timed out")
        .unwrap();

    let stats = port.napi.stats();
    assert!(!port.napi.is_scheduled());
    assert_eq!(port.processed.load(Ordering::SeqCst), 200);
    assert_eq!(port.nic.ring_len(), 0);
    assert_eq!(stats.events, 200);
    assert_eq!(stats.scheduled, stats.completions, "{stats:?}");
    assert_eq!(
        stats.polls,
        stats.full_polls + stats.completions,
        "{stats:?}"
    );
    assert!(stats.full_polls >= 200 / BUDGET as u64 - 1, "{stats:?}");
    // A raise that crosses the mask costs one extra top half at most, as
    // the NIC model documents, so each cycle took one or two interrupts.
    let interrupts = port.interrupts.load(Ordering::Relaxed);
    assert!(
        interrupts <= 2 * stats.scheduled,
        "{interrupts} interrupts for {} cycles",
        stats.scheduled
    );

    port.remove(&runtime);
    assert!(module.unload().unwrap().is_clean());
}

/// `synchronize` called while the burst still arrives returns at the end
/// of a cycle, not in the middle of one: at least one cycle has completed,
/// and at most the one that the next packet started is still open.
#[test]
fn synchronize_mid_burst_returns_at_cycle_end() {
    let machine = machine();
    let controller = machine.controller();
    let runtime = runtime();
    let queue = wq::alloc_workqueue("nic_rx", wq::WqFlags::NONE, 1);
    let module = module::load::<NicModule>(()).unwrap();
    let port = probe(
        &controller,
        module.context(),
        &queue,
        Duration::from_micros(20),
    );

    let feeder = {
        let nic = port.nic.clone();
        std::thread::spawn(move || {
            for _ in 0..400 {
                nic.receive(64, irq_sim::clock::now());
                irq_sim::clock::spin_until(irq_sim::clock::now() + Duration::from_micros(5));
            }
        })
    };
    wait_until("the first cycle to start", || {
        port.napi.stats().scheduled >= 1
    });
    synchronize(&runtime, &port.napi)
        .expect("synchronize hung")
        .unwrap();

    let stats = port.napi.stats();
    assert!(
        stats.completions >= 1,
        "returned before any cycle ended: {stats:?}"
    );
    assert!(stats.scheduled - stats.completions <= 1, "{stats:?}");
    feeder.join().unwrap();

    port.remove(&runtime);
    assert!(module.unload().unwrap().is_clean());
}

/// A module unloaded while its NAPI poll runs: the unload disables the poll
/// item, so the full poll cannot queue the next one and the cycle can never
/// end. `synchronize` then warns and returns instead of waiting for ever.
#[test]
fn synchronize_returns_after_unload_cut_the_cycle() {
    let machine = machine();
    let controller = machine.controller();
    let runtime = runtime();
    let queue = wq::alloc_workqueue("nic_cut", wq::WqFlags::NONE, 1);
    let module = module::load::<NicModule>(()).unwrap();
    let nic = Arc::new(Nic::new(&controller, IRQ, 64).unwrap());
    let gate = Arc::new(AtomicBool::new(false));
    let polls_entered = Arc::new(AtomicU64::new(0));
    let napi = {
        let (nic, gate, polls_entered) = (nic.clone(), gate.clone(), polls_entered.clone());
        Napi::new("eth0", &queue, 4, nic.clone(), move |budget| {
            polls_entered.fetch_add(1, Ordering::SeqCst);
            while !gate.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let mut handled = 0;
            while handled < budget && nic.pop().is_some() {
                handled += 1;
            }
            handled
        })
    };
    module.context().track_work(napi.work()).unwrap();
    let _registration = {
        let napi = napi.clone();
        module
            .context()
            .request_irq(
                &controller,
                IRQ,
                IrqRequest::new("eth0", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
                    napi.schedule();
                    IrqReturn::Handled
                }),
            )
            .unwrap()
    };

    for _ in 0..32 {
        assert!(nic.receive(64, irq_sim::clock::now()));
    }
    wait_until("the first poll to run", || {
        polls_entered.load(Ordering::SeqCst) == 1
    });
    let unloading = std::thread::spawn(move || module.unload().map_err(|error| error.to_string()));
    wait_until("the unload to disable the poll item", || {
        napi.work().is_disabled()
    });
    gate.store(true, Ordering::SeqCst);
    unloading.join().unwrap().unwrap();
    assert!(napi.is_scheduled(), "the cycle ended, so nothing was cut");
    assert_eq!(napi.stats().polls, 1);

    let synchronized = synchronize(&runtime, &napi);
    assert!(
        synchronized.is_ok(),
        "synchronize still waits for a cycle that lost its poll"
    );
    assert!(synchronized.unwrap().is_ok());
}
