//! The UART demo driver: lines assembled in a bottom half, and what a slow
//! top half costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use driver::bus::{Bus, Device};
use driver::demo::uart::{UartDriver, UartState};
use driver::module::{self, InitResult, LoadedModule, Module, ModuleContext};
use irq_sim::device::Uart;
use irq_sim::{Config, Machine};

mod common;

use common::{HANG_GUARD, capture_logs, log_text, wait_until};

/// A module with no work of its own, whose context the driver uses.
struct Host;

impl Module for Host {
    const NAME: &'static str = "uart_host";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// A machine, a runtime, a UART bound to the driver, and a host module.
struct Fixture {
    machine: Machine,
    runtime: tokio::runtime::Runtime,
    uart: Arc<Uart>,
    host: LoadedModule<Host>,
    bound: Option<driver::bus::BoundDriver<UartDriver>>,
}

impl Fixture {
    fn state(&self) -> &UartState {
        self.bound.as_ref().unwrap().state("ttyS0").unwrap()
    }
}

fn fixture(driver: impl FnOnce(&wq::Workqueue) -> UartDriver) -> Fixture {
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
    let uart = Arc::new(Uart::new(&controller, 90, 1).unwrap());
    let bus = Bus::new();
    bus.add_device(Device::new(
        "ttyS0",
        "irqlab,uart",
        &controller,
        90,
        uart.clone(),
    ))
    .unwrap();
    let host = module::load::<Host>(()).unwrap();
    let queue = wq::alloc_workqueue("uart_lines", wq::WqFlags::NONE, 1);
    let bound = runtime.block_on(bus.bind(driver(&queue), host.context()));
    Fixture {
        machine,
        runtime,
        uart,
        host,
        bound: Some(bound),
    }
}

/// Bytes drained by the top half become lines in the bottom half.
#[test]
fn bytes_become_lines() {
    let mut fixture = fixture(UartDriver::new);

    for &byte in b"hello\nworld\n" {
        assert!(fixture.uart.receive(byte), "the FIFO overflowed");
    }
    wait_until("both lines are assembled", || {
        fixture.state().stats().lines == 2
    });

    assert_eq!(fixture.state().take_lines(), ["hello", "world"]);
    let stats = fixture.state().stats();
    assert_eq!(stats.received, 12);
    assert_eq!(stats.drained, 12);
    assert_eq!(stats.fifo_overruns, 0);
    assert_eq!(stats.ring_overruns, 0);
    let bound = fixture.bound.take().unwrap();
    fixture.runtime.block_on(bound.unbind());
    assert!(fixture.host.unload().unwrap().is_clean());
}

/// The bottom half records each byte's wait from its arrival at the UART,
/// the intended time a late feeder passes, to the work item.
#[test]
fn byte_latency_counts_from_arrival() {
    let mut fixture = fixture(UartDriver::new);
    let arrived = irq_sim::clock::now() - std::time::Duration::from_millis(1);

    for &byte in b"ab\n" {
        assert!(
            fixture.uart.receive_at(byte, arrived),
            "the FIFO overflowed"
        );
    }
    wait_until("the line is assembled", || {
        fixture.state().stats().lines == 1
    });

    let waits = fixture.state().end_to_end().snapshot();
    assert_eq!(waits.len(), 3);
    // The histogram keeps 3 significant digits: compare in its buckets.
    assert!(
        waits.min() >= waits.lowest_equivalent(1_000_000),
        "a byte waited {} ns, less than since its arrival",
        waits.min()
    );
    let bound = fixture.bound.take().unwrap();
    fixture.runtime.block_on(bound.unbind());
    assert!(fixture.host.unload().unwrap().is_clean());
}

/// A top half that is still busy while 64 bytes arrive lets the 16-byte
/// FIFO overflow: the lost bytes are counted as FIFO overruns, and the
/// budget check reports the slow top half by line and name.
#[test]
fn slow_top_half_overruns_fifo() {
    capture_logs();
    let burst_sent = Arc::new(AtomicBool::new(false));
    let hook = {
        let burst_sent = burst_sent.clone();
        // Busy until the burst is sent, and for at least 5 ms: fifty times
        // the default budget of 100 us.
        Arc::new(move || {
            let start = Instant::now();
            while !burst_sent.load(Ordering::SeqCst) || start.elapsed() < Duration::from_millis(5) {
                assert!(start.elapsed() < HANG_GUARD, "the burst was never sent");
                std::hint::spin_loop();
            }
        })
    };
    let mut fixture = fixture(|queue| UartDriver::new(queue).with_top_half_hook(hook));

    let accepted = (0..64u8)
        .filter(|&i| fixture.uart.receive(b'a' + i % 26))
        .count();
    burst_sent.store(true, Ordering::SeqCst);
    wait_until("the FIFO is drained", || {
        fixture.state().stats().drained == 16
    });

    let stats = fixture.state().stats();
    assert_eq!(accepted, 16);
    assert_eq!(stats.received, 16);
    assert_eq!(stats.fifo_overruns, 48);
    assert_eq!(stats.received + stats.fifo_overruns, 64);
    assert!(stats.budget_overruns >= 1, "{stats:?}");
    let line = fixture.machine.controller().line_stats(90).unwrap();
    assert_eq!(line.handlers, ["uart_rx"]);
    let log = log_text();
    let diagnostic = log
        .lines()
        .find(|line| line.contains("budget"))
        .unwrap_or_else(|| panic!("no budget diagnostic in the log: {log}"));
    assert!(diagnostic.contains("irq 90"), "{diagnostic}");
    assert!(diagnostic.contains("\"uart_rx\""), "{diagnostic}");
    let bound = fixture.bound.take().unwrap();
    fixture.runtime.block_on(bound.unbind());
}

/// A shared UART driver joins its line with another device's handler.
/// Interrupts of the other device find the FIFO empty: the UART's top
/// half returns "not mine" and counts only the interrupts it handled.
#[test]
fn shared_driver_counts_only_its_interrupts() {
    let mut fixture = fixture(|queue| UartDriver::new(queue).shared());
    let controller = fixture.machine.controller();
    let other = Arc::new(controller.irq_output(90).unwrap());
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (output, counted) = (other.clone(), calls.clone());
    let pending = Arc::new(AtomicBool::new(false));
    let request = pending.clone();
    let sharer = controller
        .request_irq(
            90,
            irq_sim::IrqRequest::new(
                "other",
                irq_sim::IrqFlags::LEVEL.shared(),
                move |_: &mut irq_sim::HardIrqContext<'_>| {
                    let _ = output.deassert();
                    if request.swap(false, Ordering::SeqCst) {
                        counted.fetch_add(1, Ordering::SeqCst);
                        irq_sim::IrqReturn::Handled
                    } else {
                        irq_sim::IrqReturn::None
                    }
                },
            ),
        )
        .unwrap();

    for &byte in b"ok\n" {
        assert!(fixture.uart.receive(byte), "the FIFO overflowed");
        controller.wait_delivered(90, HANG_GUARD).unwrap();
    }
    pending.store(true, Ordering::SeqCst);
    let _ = other.assert();
    wait_until("the other device's interrupt", || {
        calls.load(Ordering::SeqCst) == 1
    });
    controller.wait_delivered(90, HANG_GUARD).unwrap();
    wait_until("the line is assembled", || {
        fixture.state().stats().lines == 1
    });

    let stats = fixture.state().stats();
    assert_eq!(stats.interrupts, 3);
    assert_eq!(controller.line_stats(90).unwrap().total(), 4);
    controller.free_irq(sharer).unwrap();
    let bound = fixture.bound.take().unwrap();
    fixture.runtime.block_on(bound.unbind());
    assert!(fixture.host.unload().unwrap().is_clean());
}
