//! A NIC with a bounded RX ring.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use crate::clock::Timestamp;
use crate::controller::Controller;
use crate::error::DeviceError;

/// The largest RX ring a [`Nic`] accepts, in descriptors; real NICs offer
/// up to a few thousand.
pub const MAX_RX_RING: usize = 65_536;

/// A received packet, as its RX descriptor describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Arrival sequence number, from 0, counting dropped packets too. With
    /// one device thread, a gap between two popped packets is a drop.
    pub seq: u64,
    /// Length in bytes.
    pub len: u16,
    /// When the packet arrived on the wire (the intended arrival time).
    pub arrived: Timestamp,
}

/// The counters the device side bumps on every packet, on a cache line of
/// their own so that the driver's pops do not pull it away.
#[derive(Debug, Default)]
struct Arrivals {
    next_seq: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
}

/// A NIC: packets land in a bounded RX ring, and each landing raises the
/// line while the device's interrupt is enabled (NAPI disables it and polls
/// the ring).
///
/// The ring is a lock-free bounded queue, so neither side takes a lock,
/// as a real RX ring is a block of descriptors with a producer index the
/// device advances and a consumer index the driver advances. A `pop` that
/// meets a push in flight waits for it, for a few instructions.
#[derive(Debug)]
pub struct Nic {
    controller: Controller,
    irq: u32,
    ring: ArrayQueue<Packet>,
    arrivals: CachePadded<Arrivals>,
    /// The interrupt-enable register: read on every packet, written by the
    /// driver once per polling cycle.
    irq_enabled: CachePadded<AtomicBool>,
}

impl Nic {
    /// Makes a NIC on line `irq` with an RX ring of `ring_capacity`
    /// descriptors. Its interrupt starts enabled.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchLine`] if the controller has no line `irq`;
    /// [`DeviceError::OutOfRange`] if `ring_capacity` is not 1 to
    /// [`MAX_RX_RING`].
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn new(
        controller: &Controller,
        irq: u32,
        ring_capacity: usize,
    ) -> Result<Self, DeviceError> {
        super::check_line(controller, "NIC", irq)?;
        super::check_range(
            "NIC",
            irq,
            "ring_capacity",
            ring_capacity as u64,
            1..=MAX_RX_RING as u64,
        )?;
        Ok(Self {
            controller: controller.clone(),
            irq,
            ring: ArrayQueue::new(ring_capacity),
            arrivals: CachePadded::new(Arrivals::default()),
            irq_enabled: CachePadded::new(AtomicBool::new(true)),
        })
    }

    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Receives a packet of `len` bytes that arrived at `arrived` (device
    /// side). Returns false if the ring was full and the packet was
    /// dropped.
    ///
    /// # Context
    ///
    /// Any; never sleeps, never allocates. Packets received from several
    /// threads at once enter the ring in the order their pushes land, which
    /// may differ from the order of their sequence numbers.
    pub fn receive(&self, len: u16, arrived: Timestamp) -> bool {
        let arrivals = &self.arrivals;
        let seq = arrivals.next_seq.fetch_add(1, Ordering::Relaxed);
        if self.ring.push(Packet { seq, len, arrived }).is_err() {
            arrivals.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        arrivals.received.fetch_add(1, Ordering::Relaxed);
        // The device writes the ring, then reads the enable bit. An unmask
        // writes the bit, then reads the ring. With a SeqCst fence on both
        // sides, at least one reads the other's write, so a packet that
        // lands during an unmask is announced. A raise that crosses a mask
        // costs one extra top half at most: NAPI ignores a schedule while
        // it polls, and a driver without NAPI finds the ring drained.
        fence(Ordering::SeqCst);
        if self.irq_enabled.load(Ordering::Relaxed) {
            // `new` checked the line, the only cause of a failed raise.
            let _ = self.controller.raise_at(self.irq, arrived);
        }
        true
    }

    /// Takes the oldest packet off the ring (driver side).
    ///
    /// # Context
    ///
    /// Any; never sleeps, never allocates.
    pub fn pop(&self) -> Option<Packet> {
        self.ring.pop()
    }

    /// Enables or disables the device's interrupt. Enabling it with packets
    /// in the ring raises the line, so none is left unannounced.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn set_irq_enabled(&self, enabled: bool) {
        self.irq_enabled.store(enabled, Ordering::Relaxed);
        if enabled {
            // Pairs with the fence in `receive`.
            fence(Ordering::SeqCst);
            if !self.ring.is_empty() {
                let _ = self.controller.raise(self.irq);
            }
        }
    }

    /// Returns the packets in the ring.
    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }

    /// Returns the number of descriptors in the ring.
    pub fn ring_capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Returns the packets received into the ring so far.
    pub fn received(&self) -> u64 {
        self.arrivals.received.load(Ordering::Relaxed)
    }

    /// Returns the packets dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.arrivals.dropped.load(Ordering::Relaxed)
    }
}
