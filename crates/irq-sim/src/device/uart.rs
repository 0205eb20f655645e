//! A UART with a 16-byte RX FIFO, like a 16550.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::{self, Timestamp};
use crate::controller::{Controller, lock};
use crate::error::DeviceError;
use crate::output::IrqOutput;

/// Bytes the RX FIFO holds.
pub const UART_FIFO_SIZE: usize = 16;

/// The lowest line speed [`Uart::with_baud`] accepts, in baud.
pub const MIN_BAUD: u32 = 50;

/// The highest line speed [`Uart::with_baud`] accepts, in baud (USB serial
/// adapters reach 12 Mbaud).
pub const MAX_BAUD: u32 = 12_000_000;

/// Bits on the wire per received byte: a start bit, 8 data bits and a stop
/// bit (8N1).
const BITS_PER_CHAR: u64 = 10;

/// Character times without FIFO activity before a 16550 signals a
/// character timeout.
const TIMEOUT_CHARS: u64 = 4;

#[derive(Debug)]
struct Fifo {
    bytes: [u8; UART_FIFO_SIZE],
    /// When each byte arrived, for the driver's latency samples.
    arrived: [Timestamp; UART_FIFO_SIZE],
    head: usize,
    len: usize,
    /// A character timeout is signalled: it keeps the line high until the
    /// driver reads a byte.
    timeout_pending: bool,
    /// The last byte received or read; the timeout counts from here.
    last_activity: Timestamp,
    /// The timeout thread waits with no deadline, because no timeout could
    /// be signalled when it last looked.
    watcher_parked: bool,
    /// The timeout thread must exit.
    stop: bool,
}

#[derive(Debug)]
struct Inner {
    /// The UART's input of its line's wired OR, so that the UART shares a
    /// level line without dropping the other devices' requests.
    output: IrqOutput,
    trigger_level: usize,
    /// Four character times, or `None` for a UART without the timeout.
    char_timeout: Option<Duration>,
    fifo: Mutex<Fifo>,
    /// Wakes a parked timeout thread when a timeout becomes possible, or to
    /// stop it.
    armed: Condvar,
    received: AtomicU64,
    overruns: AtomicU64,
    timeouts: AtomicU64,
}

/// A UART: received bytes fill a 16-byte FIFO, and the (level) line is high
/// while the FIFO contains at least the trigger level. A byte arriving to a
/// full FIFO is lost and counted as an overrun.
///
/// A UART made with [`Uart::with_baud`] also signals a character timeout,
/// as a 16550 does. When bytes below the trigger level have sat in the FIFO
/// for four character times with none received or read, it raises the
/// line, which stays high until the driver reads a byte. So the tail of a
/// burst reaches the driver without waiting for more bytes. A UART made
/// with [`Uart::new`] has no timeout: with a trigger level above 1, the
/// last bytes of a burst wait in the FIFO until more arrive.
///
/// A 16550 also reports a timeout in its IIR when the FIFO is at or above
/// the trigger level, where the line is already high. The model signals
/// and counts only the timeouts that raise the line.
///
/// The timeout thread of a UART with a baud rate stops when the `Uart` is
/// dropped. NOTE: a top half that holds an `Arc<Uart>` keeps the UART, and
/// so its thread, alive until `free_irq` drops the handler; a machine's
/// shutdown alone does not.
#[derive(Debug)]
pub struct Uart {
    inner: Arc<Inner>,
    watcher: Option<JoinHandle<()>>,
}

impl Uart {
    /// Makes a UART on line `irq` whose line rises when the FIFO contains
    /// `trigger_level` bytes, 1 to [`UART_FIFO_SIZE`] (a 16550 offers 1, 4,
    /// 8 and 14). It has no character timeout; see [`Uart::with_baud`].
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchLine`] if the controller has no line `irq`;
    /// [`DeviceError::OutOfRange`] if `trigger_level` is not 1 to 16.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(
        controller: &Controller,
        irq: u32,
        trigger_level: usize,
    ) -> Result<Self, DeviceError> {
        let inner = Inner::new(controller, irq, trigger_level, None)?;
        Ok(Self {
            inner: Arc::new(inner),
            watcher: None,
        })
    }

    /// Makes a UART as [`Uart::new`] does, receiving at `baud` with 10 bits
    /// per byte, that signals a character timeout after four character
    /// times (347 us at 115,200 baud). The baud rate sets only the timeout:
    /// bytes reach the FIFO when [`Uart::receive`] is called.
    ///
    /// With a trigger level of 1 a byte in the FIFO always keeps the line
    /// high, so the UART signals no timeout, starts no thread, and
    /// [`Uart::char_timeout`] returns `None`. Four character times shorter
    /// than a thread's wake-up (tens of microseconds, so above about
    /// 1 Mbaud) make the timeout come late by that wake-up.
    ///
    /// # Errors
    ///
    /// [`DeviceError::InvalidContext`] in a top half;
    /// [`DeviceError::NoSuchLine`] if the controller has no line `irq`;
    /// [`DeviceError::OutOfRange`] if `trigger_level` is not 1 to 16 or
    /// `baud` is not [`MIN_BAUD`] to [`MAX_BAUD`];
    /// [`DeviceError::Spawn`] if the timeout thread cannot be spawned.
    ///
    /// # Context
    ///
    /// Task context; spawns a thread.
    pub fn with_baud(
        controller: &Controller,
        irq: u32,
        trigger_level: usize,
        baud: u32,
    ) -> Result<Self, DeviceError> {
        crate::context::might_sleep("Uart::with_baud").map_err(DeviceError::InvalidContext)?;
        let inner = Arc::new(Inner::new(controller, irq, trigger_level, Some(baud))?);
        let Some(char_timeout) = inner.char_timeout else {
            return Ok(Self {
                inner,
                watcher: None,
            });
        };
        let watched = inner.clone();
        let watcher = std::thread::Builder::new()
            .name(format!("uart-irq{irq}"))
            .spawn(move || watched.watch(char_timeout))
            .map_err(|error| DeviceError::Spawn {
                device: "UART",
                irq,
                reason: error.to_string(),
            })?;
        Ok(Self {
            inner,
            watcher: Some(watcher),
        })
    }

    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.inner.output.irq()
    }

    /// Returns the time without FIFO activity after which the UART signals
    /// a character timeout, or `None` if it signals none (made with
    /// [`Uart::new`], or with a trigger level of 1).
    pub fn char_timeout(&self) -> Option<Duration> {
        self.inner.char_timeout
    }

    /// Receives a byte from the wire (device side), arriving now. Returns
    /// false on an overrun (FIFO full, byte lost).
    ///
    /// # Context
    ///
    /// As [`Uart::receive_at`].
    pub fn receive(&self, byte: u8) -> bool {
        self.receive_at(byte, clock::now())
    }

    /// Receives a byte that arrived at `at`: the time its interrupt latency
    /// and [`Uart::read_timed`] count from, which a feeder running late
    /// sets to the intended time. Returns false on an overrun (FIFO full,
    /// byte lost).
    ///
    /// # Context
    ///
    /// Any; never sleeps. On a UART with a timeout thread, a byte that
    /// makes a timeout possible may wake that thread (a system call).
    pub fn receive_at(&self, byte: u8, at: Timestamp) -> bool {
        let inner = &*self.inner;
        let mut fifo = lock(&inner.fifo);
        if fifo.len == UART_FIFO_SIZE {
            drop(fifo);
            inner.overruns.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let tail = (fifo.head + fifo.len) % UART_FIFO_SIZE;
        fifo.bytes[tail] = byte;
        fifo.arrived[tail] = at;
        fifo.len += 1;
        inner.received.fetch_add(1, Ordering::Relaxed);
        if fifo.len >= inner.trigger_level {
            let _ = inner.output.assert_at(at);
        }
        inner.note_activity(&mut fifo);
        true
    }

    /// Reads one byte from the FIFO (the driver reads the RX register).
    /// Clears a pending character timeout, and lowers the line when the
    /// FIFO falls below the trigger level.
    ///
    /// # Context
    ///
    /// As [`Uart::read_timed`].
    pub fn read(&self) -> Option<u8> {
        self.read_timed().map(|(byte, _)| byte)
    }

    /// Reads one byte as [`Uart::read`] does, with the time it arrived: a
    /// model's extra, for a driver that measures how long bytes wait.
    ///
    /// # Context
    ///
    /// Any; never sleeps. On a UART with a timeout thread, a read that
    /// leaves bytes below the trigger level may wake that thread (a system
    /// call). A driver that reads the FIFO empty, as top halves do, never
    /// wakes it.
    pub fn read_timed(&self) -> Option<(u8, Timestamp)> {
        let inner = &*self.inner;
        let mut fifo = lock(&inner.fifo);
        if fifo.len == 0 {
            return None;
        }
        let byte = fifo.bytes[fifo.head];
        let arrived = fifo.arrived[fifo.head];
        fifo.head = (fifo.head + 1) % UART_FIFO_SIZE;
        fifo.len -= 1;
        fifo.timeout_pending = false;
        inner.note_activity(&mut fifo);
        if fifo.len < inner.trigger_level {
            let _ = inner.output.deassert();
        }
        Some((byte, arrived))
    }

    /// Returns the bytes in the FIFO.
    pub fn fifo_len(&self) -> usize {
        lock(&self.inner.fifo).len
    }

    /// Returns the bytes received into the FIFO.
    pub fn received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// Returns the bytes lost because the FIFO was full.
    pub fn overruns(&self) -> u64 {
        self.inner.overruns.load(Ordering::Relaxed)
    }

    /// Returns the character timeouts signalled: each raised the line for
    /// bytes below the trigger level.
    pub fn timeouts(&self) -> u64 {
        self.inner.timeouts.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Checks the line, the trigger level and `baud`, the speed of a UART
    /// with a character timeout, in that order.
    fn new(
        controller: &Controller,
        irq: u32,
        trigger_level: usize,
        baud: Option<u32>,
    ) -> Result<Self, DeviceError> {
        super::check_line(controller, "UART", irq)?;
        super::check_range(
            "UART",
            irq,
            "trigger_level",
            trigger_level as u64,
            1..=UART_FIFO_SIZE as u64,
        )?;
        if let Some(baud) = baud {
            super::check_range(
                "UART",
                irq,
                "baud",
                u64::from(baud),
                u64::from(MIN_BAUD)..=u64::from(MAX_BAUD),
            )?;
        }
        // At trigger level 1 a byte in the FIFO always keeps the line high,
        // so no timeout can be signalled.
        let char_timeout = baud.filter(|_| trigger_level > 1).map(|baud| {
            Duration::from_nanos(TIMEOUT_CHARS * BITS_PER_CHAR * 1_000_000_000 / u64::from(baud))
        });
        let output = super::connect(controller, "UART", irq)?;
        Ok(Self {
            output,
            trigger_level,
            char_timeout,
            fifo: Mutex::new(Fifo {
                bytes: [0; UART_FIFO_SIZE],
                arrived: [Timestamp::from_nanos(0); UART_FIFO_SIZE],
                head: 0,
                len: 0,
                timeout_pending: false,
                last_activity: clock::now(),
                watcher_parked: false,
                stop: false,
            }),
            armed: Condvar::new(),
            received: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        })
    }

    /// Restarts the timeout after a byte was received or read, and wakes a
    /// parked timeout thread if a timeout has become possible.
    fn note_activity(&self, fifo: &mut Fifo) {
        if self.char_timeout.is_none() {
            return;
        }
        fifo.last_activity = clock::now();
        if fifo.watcher_parked && self.timeout_possible(fifo) {
            fifo.watcher_parked = false;
            self.armed.notify_one();
        }
    }

    /// Returns whether a character timeout could be signalled: bytes below
    /// the trigger level sit in the FIFO, and none is signalled yet.
    fn timeout_possible(&self, fifo: &Fifo) -> bool {
        fifo.len > 0 && fifo.len < self.trigger_level && !fifo.timeout_pending
    }

    /// Runs the timeout thread: signals a character timeout when bytes
    /// below the trigger level have sat `char_timeout` since the last byte
    /// received or read.
    ///
    /// While no timeout is possible (an empty FIFO, one at or above the
    /// trigger level, or a timeout already signalled) the thread parks
    /// until a byte received or read makes one possible. Otherwise it
    /// sleeps to the deadline and looks again, because the deadline moves
    /// with every byte and a wake-up per byte would cost a system call.
    fn watch(&self, char_timeout: Duration) {
        clock::set_timer_slack(Duration::from_nanos(1));
        let mut fifo = lock(&self.fifo);
        loop {
            if fifo.stop {
                return;
            }
            if !self.timeout_possible(&fifo) {
                fifo.watcher_parked = true;
                fifo = self
                    .armed
                    .wait(fifo)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let deadline = fifo.last_activity + char_timeout;
            let now = clock::now();
            if now < deadline {
                fifo = self
                    .armed
                    .wait_timeout(fifo, deadline.saturating_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            fifo.timeout_pending = true;
            self.timeouts.fetch_add(1, Ordering::Relaxed);
            // Raise as of the deadline: the interrupt latency counts from
            // when the UART signalled the timeout.
            let _ = self.output.assert_at(deadline);
        }
    }
}

impl Drop for Uart {
    fn drop(&mut self) {
        let Some(watcher) = self.watcher.take() else {
            return;
        };
        lock(&self.inner.fifo).stop = true;
        self.inner.armed.notify_one();
        let _ = watcher.join();
    }
}
