//! Records a timeline of three demo drivers and writes it as a Chrome trace.
//!
//! A two-CPU machine runs three drivers:
//!
//! - the timer tick on CPU 0: a 1 ms tick, and housekeeping every 10 ms as
//!   delayed work;
//! - a NIC with NAPI polling on CPU 1: Poisson arrivals at 2,000 packets
//!   per second;
//! - a UART on CPU 1: one 12-byte line every 2 ms.
//!
//! Each top half runs on its CPU's track and queues its
//! bottom half, which runs on a `kworker` thread; the trace draws an arrow
//! from each queueing to the run it caused.
//!
//! Run it with `cargo run --release --example trace_demo -- FILE [SECONDS]`
//! (default `irqlab-trace.json` and 1 s), then open FILE in Perfetto or
//! `chrome://tracing`; docs/timeline.md explains what the picture shows.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use driver::bus::{Bus, Device};
use driver::demo::nic::NicDriver;
use driver::demo::tick::TickDriver;
use driver::demo::uart::UartDriver;
use driver::module::{self, InitResult, Module, ModuleContext};
use irq_sim::arrival::{self, Arrival};
use irq_sim::device::{Nic, Uart};
use irq_sim::{Config, Machine, clock};
use irqlab::timeline::{DEFAULT_CAPACITY, Timeline};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The module whose context the drivers use.
struct Host;

impl Module for Host {
    const NAME: &'static str = "trace_demo";
    type Params = ();

    fn init(_ctx: &ModuleContext, _params: ()) -> InitResult<Self> {
        Ok(Host)
    }

    fn exit(&mut self, _ctx: &ModuleContext) {}
}

/// Reads the output file and the run time from the command line.
fn parse_args() -> Result<(String, Duration), String> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "irqlab-trace.json".to_owned());
    let seconds = match args.next() {
        None => 1.0,
        Some(text) => match text.parse::<f64>() {
            Ok(seconds) if seconds > 0.0 && seconds <= 60.0 => seconds,
            _ => {
                return Err(format!(
                    "invalid run time {text:?} (second argument): expected seconds, \
                     more than 0 and at most 60"
                ));
            }
        },
    };
    if let Some(extra) = args.next() {
        return Err(format!(
            "unexpected argument {extra:?}: usage: trace_demo [FILE] [SECONDS]"
        ));
    }
    Ok((path, Duration::from_secs_f64(seconds)))
}

fn main() -> ExitCode {
    let (path, run_time) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };

    // Create the file first, so that a bad path fails before the run.
    let mut file = match std::fs::File::create(&path) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("error: cannot create the trace file {path}: {error}");
            return ExitCode::FAILURE;
        }
    };

    // The CPU threads and the workers record too, so the subscriber is
    // global. The fmt layer has a filter of its own, so the timeline's
    // TRACE interest does not reach it.
    let timeline = Timeline::new(DEFAULT_CAPACITY);
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(log_filter))
        .with(timeline.layer());
    tracing::subscriber::set_global_default(subscriber).expect("no subscriber is installed yet");

    // The machine and the devices.
    let machine = Machine::new(Config::default()).expect("the default machine config is valid");
    let controller = machine.controller();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a tokio runtime starts");
    let timer = Arc::new(controller.local_timer(0, 100).expect("line 100 exists"));
    let nic = Arc::new(Nic::new(&controller, 11, 64));
    let uart = Arc::new(Uart::new(&controller, 12, 8));
    controller.set_affinity(11, 1).expect("CPU 1 exists");
    controller.set_affinity(12, 1).expect("CPU 1 exists");

    // The drivers, each on its own queue.
    let bus = Bus::new();
    let devices = [
        Device::new("timer0", "irqlab,local-timer", &controller, 100, timer),
        Device::new("eth0", "irqlab,nic", &controller, 11, nic.clone()),
        Device::new("ttyS0", "irqlab,uart", &controller, 12, uart.clone()),
    ];
    for device in devices {
        bus.add_device(device).expect("device names are unique");
    }
    let host = module::load::<Host>(()).expect("the host module loads");
    let tick_queue = wq::alloc_workqueue("tick_housekeeping", wq::WqFlags::NONE, 1);
    let nic_queue = wq::alloc_ordered_workqueue("nic_napi", wq::WqFlags::NONE);
    let uart_queue = wq::alloc_workqueue("uart_lines", wq::WqFlags::NONE, 1);
    let tick = TickDriver::new(
        &tick_queue,
        Duration::from_millis(1),
        Duration::from_millis(10),
    );
    let tick = runtime.block_on(bus.bind(tick, host.context()));
    let nic_driver = runtime.block_on(bus.bind(NicDriver::new(&nic_queue, 16), host.context()));
    let uart_driver = runtime.block_on(bus.bind(UartDriver::new(&uart_queue), host.context()));

    // The arrivals, until the run time is up.
    let start = clock::now();
    let until = start + run_time;
    let packets = arrival::drive(
        "nic-arrivals",
        &Arrival::Poisson {
            rate_hz: 2_000.0,
            seed: 1,
        },
        start,
        u64::MAX,
        until,
        move |at| {
            let _ = nic.receive(64, at);
        },
    );
    let lines = arrival::drive(
        "uart-arrivals",
        &Arrival::Periodic {
            period: Duration::from_millis(2),
        },
        start,
        u64::MAX,
        until,
        move |_| {
            for &byte in b"hello ttyS0\n" {
                let _ = uart.receive(byte);
            }
        },
    );
    let packets = packets.join().expect("the NIC feeder does not panic");
    let lines = lines.join().expect("the UART feeder does not panic");

    // Stop everything, then write what was recorded.
    runtime.block_on(async {
        uart_driver.unbind().await;
        nic_driver.unbind().await;
        tick.unbind().await;
    });
    let _ = host.unload();
    let _ = machine.shutdown();

    match timeline.write_chrome_trace(&mut file) {
        Ok(summary) => {
            println!(
                "{} packets and {} UART lines in {:.1} s; wrote {} top halves, {} work runs \
                 and {} arrows to {path} ({} events dropped)",
                packets.events,
                lines.events,
                run_time.as_secs_f64(),
                summary.top_halves,
                summary.executions,
                summary.flows,
                summary.dropped,
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot write the trace to {path}: {error}");
            ExitCode::FAILURE
        }
    }
}
