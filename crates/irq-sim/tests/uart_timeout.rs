//! UART character timeout: hard cases of `Uart::with_baud`.
//!
//! Each test uses its own line, so the timeout thread it looks for in
//! `/proc/self/task` (named `uart-irq<line>`) is its own even when tests run
//! in parallel.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{machine, wait_until};
use irq_sim::clock::{self, Timestamp};
use irq_sim::device::{MAX_BAUD, MIN_BAUD, UART_FIFO_SIZE, Uart};
use irq_sim::{Controller, HardIrqContext, IrqFlags, IrqRequest, IrqReturn};

/// Finds the task id of the timeout thread of the UART on `irq`, if it runs.
fn watcher_tid(irq: u32) -> Option<String> {
    let name = format!("uart-irq{irq}");
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .find_map(|entry| {
            let path = entry.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim() == name).then(|| path.file_name()?.to_str().map(str::to_owned))?
        })
}

/// Voluntary context switches of task `tid`: one per sleep that ended.
fn voluntary_switches(tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// CPU time task `tid` has run, from `/proc/.../schedstat`.
fn cpu_time(tid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap();
    Duration::from_nanos(stat.split_whitespace().next().unwrap().parse().unwrap())
}

/// One call of a reading top half: when it entered, and the bytes it read.
type Entry = (Timestamp, Vec<u8>);

/// Registers a level handler on `irq` that reads at most `per_entry` bytes
/// per call and records each entry's time and the bytes it read.
fn reader(
    irq: &Controller,
    line: u32,
    uart: &Arc<Uart>,
    per_entry: usize,
) -> Arc<Mutex<Vec<Entry>>> {
    let entries = Arc::new(Mutex::new(Vec::new()));
    let (device, seen) = (uart.clone(), entries.clone());
    irq.request_irq(
        line,
        IrqRequest::new(
            "ttyS",
            IrqFlags::LEVEL,
            move |_: &mut HardIrqContext<'_>| {
                let entered = clock::now();
                let bytes: Vec<u8> = std::iter::from_fn(|| device.read())
                    .take(per_entry)
                    .collect();
                seen.lock().unwrap().push((entered, bytes));
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();
    entries
}

/// Measures what the timeout thread of `irq` does over `window` while the
/// test changes nothing: (wake-ups, CPU time).
fn idle_cost(irq: u32, window: Duration) -> (u64, Duration) {
    wait_until("the timeout thread to start", || watcher_tid(irq).is_some());
    let tid = watcher_tid(irq).unwrap();
    let (switches, cpu) = (voluntary_switches(&tid), cpu_time(&tid));
    std::thread::sleep(window);
    (
        voluntary_switches(&tid) - switches,
        cpu_time(&tid).saturating_sub(cpu),
    )
}

/// The timeout lasts four 10-bit characters, at both ends of the range.
#[test]
fn baud_limits_timeout_length() {
    let machine = machine(1);
    let irq = machine.controller();
    let slow = Uart::with_baud(&irq, 40, 2, MIN_BAUD).unwrap();
    let fast = Uart::with_baud(&irq, 41, 2, MAX_BAUD).unwrap();
    assert_eq!(slow.char_timeout(), Some(Duration::from_millis(800)));
    assert_eq!(fast.char_timeout(), Some(Duration::from_nanos(3_333)));
}

/// At trigger level 1 every byte raises the line, so `with_baud` starts no
/// timeout thread and reports no timeout.
#[test]
fn trigger_one_reports_no_timeout() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Uart::with_baud(&irq, 42, 1, 9_600).unwrap();
    assert!(watcher_tid(42).is_none());
    assert_eq!(uart.char_timeout(), None);
}

/// At 12 Mbaud the timeout still reaches the driver, once per tail.
#[test]
fn max_baud_delivers_tail() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::with_baud(&irq, 43, 8, MAX_BAUD).unwrap());
    let entries = reader(&irq, 43, &uart, UART_FIFO_SIZE);

    for round in 1..=50u64 {
        assert!(uart.receive(1));
        assert!(uart.receive(2));
        wait_until("the tail to be read", || uart.fifo_len() == 0);
        wait_until("the timeout count", || uart.timeouts() >= round);
        irq.wait_delivered(43, Duration::from_secs(10)).unwrap();
    }
    let read: usize = entries.lock().unwrap().iter().map(|(_, b)| b.len()).sum();
    assert_eq!(read, 100);
}

/// A 16550 clears the timeout with one read and restarts the timer, so a
/// driver that reads one byte per interrupt gets one timeout per byte, each
/// a full timeout after the previous read.
#[test]
fn timeout_repeats_per_byte_read() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::with_baud(&irq, 44, 8, 115_200).unwrap());
    let timeout = uart.char_timeout().unwrap();
    let entries = reader(&irq, 44, &uart, 1);

    for byte in 0..5 {
        assert!(uart.receive(byte));
    }
    wait_until("five one-byte reads", || entries.lock().unwrap().len() >= 5);
    irq.wait_delivered(44, Duration::from_secs(10)).unwrap();

    let entries = entries.lock().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(uart.timeouts(), 5);
    for pair in entries.windows(2) {
        assert!(
            pair[1].0 >= pair[0].0 + timeout,
            "{:?}",
            pair[1].0.saturating_since(pair[0].0)
        );
    }
}

/// Bytes read before their timeout never cause one, and no interrupt finds
/// the FIFO empty.
///
/// A wrong timeout for these bytes could only be counted before the
/// watcher looks at the sentinel byte. So once the sentinel's own timeout
/// has delivered it, any wrong timeout shows in the count or as an
/// interrupt that read nothing.
#[test]
fn no_timeout_for_read_bytes() {
    let machine = machine(1);
    let irq = machine.controller();
    // 9,600 baud: a 4.2 ms timeout, so a pair normally takes far less.
    let uart = Arc::new(Uart::with_baud(&irq, 45, 8, 9_600).unwrap());
    let timeout = uart.char_timeout().unwrap();
    irq.mask_irq(45).unwrap();

    let mut slow_pairs = 0;
    for byte in 0..2_000u32 {
        let start = clock::now();
        assert!(uart.receive(byte as u8));
        assert!(uart.read().is_some());
        // A pair that sat a whole timeout may rightly time out.
        if clock::now().saturating_since(start) >= timeout {
            slow_pairs += 1;
        }
    }
    irq.unmask_irq(45).unwrap();
    let entries = reader(&irq, 45, &uart, UART_FIFO_SIZE);
    let before = uart.timeouts();
    let sentinel_at = clock::now();
    assert!(uart.receive(0xff));
    wait_until("the sentinel to be read", || {
        uart.fifo_len() == 0 && uart.timeouts() > before
    });
    irq.wait_delivered(45, Duration::from_secs(10)).unwrap();

    assert!(
        before <= slow_pairs,
        "{before} timeouts for {slow_pairs} slow pairs"
    );
    assert_eq!(uart.timeouts(), before + 1);
    let entries = entries.lock().unwrap();
    assert!(
        entries.iter().all(|(_, bytes)| !bytes.is_empty()),
        "{entries:?}"
    );
    assert!(entries.last().unwrap().0 >= sentinel_at + timeout);
}

/// A byte received on the watcher's idle wait wakes it: a burst of
/// single bytes, each read by its own timeout, never stalls.
#[test]
fn byte_after_idle_wakes_watcher() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::with_baud(&irq, 46, 4, 921_600).unwrap());
    let entries = reader(&irq, 46, &uart, UART_FIFO_SIZE);

    for round in 1..=300u64 {
        assert!(uart.receive(round as u8));
        // Waiting for the top half's entry, not only for an empty FIFO:
        // a byte received while the top half still reads would be read
        // with the previous one, and never time out.
        wait_until("the lone byte's timeout and read", || {
            uart.timeouts() >= round && entries.lock().unwrap().len() as u64 >= round
        });
    }
    irq.wait_delivered(46, Duration::from_secs(10)).unwrap();
    assert_eq!(uart.timeouts(), 300);
    assert_eq!(entries.lock().unwrap().len(), 300);
}

/// Trigger level 16: 15 bytes time out, the 16th raises the line, the
/// 17th is an overrun.
#[test]
fn trigger_sixteen_times_out_below_full() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::with_baud(&irq, 47, 16, 115_200).unwrap());
    irq.mask_irq(47).unwrap();

    for byte in 0..15 {
        assert!(uart.receive(byte));
    }
    wait_until("the timeout", || uart.timeouts() == 1);
    assert!(irq.line_state(47).unwrap().pending);
    assert!(uart.receive(15));
    assert!(!uart.receive(16));
    assert_eq!(uart.overruns(), 1);

    let entries = reader(&irq, 47, &uart, UART_FIFO_SIZE);
    irq.unmask_irq(47).unwrap();
    wait_until("the FIFO to be read", || uart.fifo_len() == 0);
    irq.wait_delivered(47, Duration::from_secs(10)).unwrap();
    let read: usize = entries.lock().unwrap().iter().map(|(_, b)| b.len()).sum();
    assert_eq!(read, 16);
    assert_eq!(uart.timeouts(), 1);
}

/// A timeout signalled while the line is disabled is delivered on
/// `enable_irq`, because the level line stays high.
#[test]
fn disabled_line_gets_timeout_on_enable() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Arc::new(Uart::with_baud(&irq, 48, 8, 115_200).unwrap());
    let entries = reader(&irq, 48, &uart, UART_FIFO_SIZE);
    irq.disable_irq(48).unwrap();

    assert!(uart.receive(7));
    wait_until("the timeout", || uart.timeouts() == 1);
    assert!(entries.lock().unwrap().is_empty());
    irq.enable_irq(48).unwrap();
    wait_until("the byte to be read", || uart.fifo_len() == 0);
    assert_eq!(entries.lock().unwrap()[0].1, [7]);
}

/// Bytes that sit unread (line masked, handler late or absent) leave the
/// watcher nothing to do until the next byte or read, so it parks.
///
/// A 200 ms window with no FIFO activity is enough. A watcher that looked
/// again every timeout (3.3 us at 12 Mbaud, 347 us at 115,200 baud) would
/// wake hundreds of times in it, and a parked one does not wake at all.
#[test]
fn unread_byte_watcher_sleeps() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Uart::with_baud(&irq, 49, 2, MAX_BAUD).unwrap();
    irq.mask_irq(49).unwrap();

    assert!(uart.receive(1));
    wait_until("the timeout", || uart.timeouts() == 1);
    let (wakeups, cpu) = idle_cost(49, Duration::from_millis(200));
    assert!(wakeups < 10, "{wakeups} wake-ups, {cpu:?} CPU in 200 ms");
    assert!(
        cpu < Duration::from_millis(10),
        "{wakeups} wake-ups, {cpu:?} CPU in 200 ms"
    );
}

/// The same at 115,200 baud, with no handler on the line at all.
#[test]
fn unread_byte_watcher_sleeps_115200() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Uart::with_baud(&irq, 54, 8, 115_200).unwrap();

    assert!(uart.receive(1));
    wait_until("the timeout", || uart.timeouts() == 1);
    let (wakeups, cpu) = idle_cost(54, Duration::from_millis(200));
    assert!(wakeups < 10, "{wakeups} wake-ups, {cpu:?} CPU in 200 ms");
}

/// The same with the FIFO at its trigger level and the top half not run
/// yet (masked): the line is high by the trigger level, not a timeout.
#[test]
fn full_fifo_watcher_sleeps() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Uart::with_baud(&irq, 50, 14, 115_200).unwrap();
    irq.mask_irq(50).unwrap();

    for byte in 0..14 {
        assert!(uart.receive(byte));
    }
    let (wakeups, cpu) = idle_cost(50, Duration::from_millis(200));
    assert!(wakeups < 10, "{wakeups} wake-ups, {cpu:?} CPU in 200 ms");
    assert!(
        cpu < Duration::from_millis(10),
        "{wakeups} wake-ups, {cpu:?} CPU in 200 ms"
    );
}

/// Dropping the UART stops its watcher at once, even mid-timeout at
/// 50 baud, and no timeout is raised after the drop.
///
/// The timeout is 800 ms: a drop that had to wait for the deadline would
/// raise the line first, which `raised` would show.
#[test]
fn drop_stops_watcher_mid_timeout() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Uart::with_baud(&irq, 51, 8, MIN_BAUD).unwrap();
    irq.mask_irq(51).unwrap();
    assert!(uart.receive(1));
    wait_until("the watcher to start", || watcher_tid(51).is_some());

    drop(uart);
    // The join has returned, but Linux removes an exited thread from
    // /proc a moment after it wakes the joiner.
    wait_until("the watcher to leave /proc", || watcher_tid(51).is_none());
    assert_eq!(irq.line_stats(51).unwrap().raised, 0);
}

/// Dropping an idle UART (empty FIFO) stops its watcher.
#[test]
fn drop_stops_idle_watcher() {
    let machine = machine(1);
    let irq = machine.controller();
    let uart = Uart::with_baud(&irq, 52, 8, 9_600).unwrap();
    assert!(uart.receive(1));
    assert!(uart.read().is_some());
    wait_until("the watcher to start", || watcher_tid(52).is_some());
    drop(uart);
    wait_until("the watcher to leave /proc", || watcher_tid(52).is_none());
}

/// Many UARTs receiving at once, with top halves reading everything:
/// every byte is read, and the timeouts never exceed the interrupts.
#[test]
fn many_uarts_stress() {
    let machine = machine(2);
    let irq = machine.controller();
    let mut uarts = Vec::new();
    for line in 60..64u32 {
        let uart = Arc::new(Uart::with_baud(&irq, line, 4, 460_800).unwrap());
        let entries = reader(&irq, line, &uart, UART_FIFO_SIZE);
        uarts.push((line, uart, entries));
    }
    let sent = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for (_, uart, _) in &uarts {
            let sent = sent.clone();
            scope.spawn(move || {
                for i in 0..3_000u32 {
                    // Bursts of 1 to 7 bytes, below and above the trigger.
                    for _ in 0..(i % 7 + 1) {
                        if uart.receive(i as u8) {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::yield_now();
                }
            });
        }
    });
    for (line, uart, entries) in &uarts {
        wait_until("every FIFO to be read", || uart.fifo_len() == 0);
        irq.wait_delivered(*line, Duration::from_secs(10)).unwrap();
        let entries = entries.lock().unwrap();
        assert!(uart.timeouts() <= entries.len() as u64);
        assert_eq!(
            entries.iter().map(|(_, b)| b.len() as u64).sum::<u64>(),
            uart.received()
        );
    }
}
