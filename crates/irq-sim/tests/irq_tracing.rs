//! Tracepoints: `irq_handler_entry` and `irq_handler_exit` on target `irq`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{machine, wait_until};
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each top-half call emits an entry and an exit event at TRACE level on
/// target `irq`, naming the line and handler, the exit with the return
/// value.
#[test]
fn handler_entry_exit_events() {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || LogWriter(writer.clone()))
        .init();

    let machine = machine(1);
    let irq = machine.controller();
    irq.request_irq(
        7,
        IrqRequest::new("traced", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
            IrqReturn::Handled
        }),
    )
    .unwrap();
    irq.request_irq(
        8,
        IrqRequest::new("ignored", IrqFlags::EDGE, |_: &mut HardIrqContext<'_>| {
            IrqReturn::None
        }),
    )
    .unwrap();
    let _ = irq.raise(7).unwrap();
    let _ = irq.raise(8).unwrap();
    wait_until("both deliveries", || {
        irq.line_stats(7).unwrap().handled == 1 && irq.line_stats(8).unwrap().unhandled == 1
    });
    drop(machine);

    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(" irq: irq_handler_"))
        .collect();
    assert_eq!(events.len(), 4, "{text}");
    assert!(
        events[0].contains("irq_handler_entry irq=7 handler=\"traced\""),
        "{text}"
    );
    assert!(
        events[1].contains("irq_handler_exit irq=7 handler=\"traced\" ret=\"handled\""),
        "{text}"
    );
    assert!(
        events[2].contains("irq_handler_entry irq=8 handler=\"ignored\""),
        "{text}"
    );
    assert!(
        events[3].contains("irq_handler_exit irq=8 handler=\"ignored\" ret=\"unhandled\""),
        "{text}"
    );
    assert!(events.iter().all(|event| event.contains("TRACE")), "{text}");
}
