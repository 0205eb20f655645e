//! A NIC with a bounded RX ring.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Timestamp;
use crate::controller::{Controller, lock};

/// A received packet, as its RX descriptor describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Arrival sequence number, from 0.
    pub seq: u64,
    /// Length in bytes.
    pub len: u16,
    /// When the packet arrived on the wire (the intended arrival time).
    pub arrived: Timestamp,
}

/// The ring and the interrupt-enable register, under the NIC's mutex.
#[derive(Debug)]
struct Registers {
    ring: VecDeque<Packet>,
    capacity: usize,
    irq_enabled: bool,
    next_seq: u64,
}

/// A NIC: packets land in a bounded RX ring, and each landing raises the
/// line while the device's interrupt is enabled (NAPI disables it and polls
/// the ring).
#[derive(Debug)]
pub struct Nic {
    controller: Controller,
    irq: u32,
    registers: Mutex<Registers>,
    received: AtomicU64,
    dropped: AtomicU64,
}

impl Nic {
    /// Makes a NIC on line `irq` with an RX ring of `ring_capacity`
    /// descriptors (at least one). Its interrupt starts enabled.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(controller: &Controller, irq: u32, ring_capacity: usize) -> Self {
        let capacity = ring_capacity.max(1);
        Self {
            controller: controller.clone(),
            irq,
            registers: Mutex::new(Registers {
                ring: VecDeque::with_capacity(capacity),
                capacity,
                irq_enabled: true,
                next_seq: 0,
            }),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Receives a packet of `len` bytes that arrived at `arrived` (device
    /// side). Returns
    /// false if the ring was full and the packet was dropped.
    ///
    /// # Context
    ///
    /// Any; never sleeps, never allocates.
    pub fn receive(&self, len: u16, arrived: Timestamp) -> bool {
        let mut registers = lock(&self.registers);
        if registers.ring.len() == registers.capacity {
            drop(registers);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let seq = registers.next_seq;
        registers.next_seq += 1;
        registers.ring.push_back(Packet { seq, len, arrived });
        self.received.fetch_add(1, Ordering::Relaxed);
        let raise = registers.irq_enabled;
        // Raised after the lock is released: raising may wake a CPU thread
        // (a system call), and its top half takes this lock to mask the
        // NIC. A raise that crosses a mask or an unmask is harmless: NAPI
        // ignores a schedule while it polls, and an unmask with packets in
        // the ring raises again.
        drop(registers);
        if raise {
            // The line number was checked when the driver requested it; a
            // NIC on a line the controller lacks raises nothing.
            let _ = self.controller.raise_at(self.irq, arrived);
        }
        true
    }

    /// Takes the oldest packet off the ring (driver side).
    ///
    /// # Context
    ///
    /// Any; never sleeps (the ring's mutex is held for a few instructions).
    pub fn pop(&self) -> Option<Packet> {
        lock(&self.registers).ring.pop_front()
    }

    /// Enables or disables the device's interrupt. Enabling it with packets
    /// in the ring raises the line, so none is left unannounced.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn set_irq_enabled(&self, enabled: bool) {
        let mut registers = lock(&self.registers);
        registers.irq_enabled = enabled;
        if enabled && !registers.ring.is_empty() {
            let _ = self.controller.raise(self.irq);
        }
    }

    /// Returns the packets in the ring.
    pub fn ring_len(&self) -> usize {
        lock(&self.registers).ring.len()
    }

    /// Returns the packets received into the ring so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Returns the packets dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
