//! A UART with a 16-byte RX FIFO, like a 16550.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::controller::{Controller, lock};
use crate::error::DeviceError;

/// Bytes the RX FIFO holds.
pub const UART_FIFO_SIZE: usize = 16;

#[derive(Debug)]
struct Fifo {
    bytes: [u8; UART_FIFO_SIZE],
    head: usize,
    len: usize,
}

/// A UART: received bytes fill a 16-byte FIFO; the (level) line is high
/// while the FIFO contains at least the trigger level, and reading below it
/// lowers the line. A byte arriving to a full FIFO is lost and counted as
/// an overrun.
#[derive(Debug)]
pub struct Uart {
    controller: Controller,
    irq: u32,
    trigger_level: usize,
    fifo: Mutex<Fifo>,
    received: AtomicU64,
    overruns: AtomicU64,
}

impl Uart {
    /// Makes a UART on line `irq` whose line rises when the FIFO contains
    /// `trigger_level` bytes, 1 to [`UART_FIFO_SIZE`] (a 16550 offers 1, 4,
    /// 8 and 14).
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
        super::check_line(controller, "UART", irq)?;
        super::check_range(
            "UART",
            irq,
            "trigger_level",
            trigger_level as u64,
            1..=UART_FIFO_SIZE as u64,
        )?;
        Ok(Self {
            controller: controller.clone(),
            irq,
            trigger_level,
            fifo: Mutex::new(Fifo {
                bytes: [0; UART_FIFO_SIZE],
                head: 0,
                len: 0,
            }),
            received: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
        })
    }

    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Receives a byte from the wire (device side). Returns false on an overrun (FIFO full,
    /// byte lost).
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn receive(&self, byte: u8) -> bool {
        let mut fifo = lock(&self.fifo);
        if fifo.len == UART_FIFO_SIZE {
            drop(fifo);
            self.overruns.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let tail = (fifo.head + fifo.len) % UART_FIFO_SIZE;
        fifo.bytes[tail] = byte;
        fifo.len += 1;
        self.received.fetch_add(1, Ordering::Relaxed);
        if fifo.len >= self.trigger_level {
            let _ = self.controller.raise(self.irq);
        }
        true
    }

    /// Reads one byte from the FIFO (the driver reads the RX register);
    /// lowers the line when the FIFO falls below the trigger level.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn read(&self) -> Option<u8> {
        let mut fifo = lock(&self.fifo);
        if fifo.len == 0 {
            return None;
        }
        let byte = fifo.bytes[fifo.head];
        fifo.head = (fifo.head + 1) % UART_FIFO_SIZE;
        fifo.len -= 1;
        if fifo.len < self.trigger_level {
            let _ = self.controller.lower(self.irq);
        }
        Some(byte)
    }

    /// Returns the bytes in the FIFO.
    pub fn fifo_len(&self) -> usize {
        lock(&self.fifo).len
    }

    /// Returns the bytes received into the FIFO.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Returns the bytes lost because the FIFO was full.
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }
}
