//! A block device whose requests complete after a service time.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::{self, Timestamp};
use crate::controller::{Controller, lock};
use crate::error::DeviceError;

/// The maximum number of requests a [`BlockDevice`] keeps in flight, the
/// size of NVMe's largest queue.
pub const MAX_QUEUE_DEPTH: usize = 65_536;

/// A finished request, as the device's completion queue reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The id `submit` returned.
    pub id: u64,
    /// First sector.
    pub sector: u64,
    /// When the request was submitted.
    pub submitted: Timestamp,
    /// When the device finished it.
    pub completed: Timestamp,
}

/// The reason `submit` rejected a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRequestError {
    /// The device already has `depth` requests in flight.
    QueueFull {
        /// The device's line.
        irq: u32,
        /// The device's queue depth.
        depth: usize,
    },
}

impl fmt::Display for BlockRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::QueueFull { irq, depth } => write!(
                f,
                "block device on irq {irq}: queue full ({depth} requests in flight); retry after a completion"
            ),
        }
    }
}

impl std::error::Error for BlockRequestError {}

#[derive(Debug)]
struct InFlight {
    id: u64,
    sector: u64,
    submitted: Timestamp,
    due: Timestamp,
}

#[derive(Debug)]
struct Queues {
    in_flight: VecDeque<InFlight>,
    completed: VecDeque<Completion>,
    next_id: u64,
    stop: bool,
}

#[derive(Debug)]
struct Inner {
    controller: Controller,
    irq: u32,
    service_time: Duration,
    depth: usize,
    queues: Mutex<Queues>,
    work: Condvar,
    completions: AtomicU64,
}

/// A block device: requests are served one at a time, each taking
/// `service_time`, and each completion lands in the completion queue and
/// raises the (edge) line. Completions that land while the line is pending
/// coalesce into one interrupt, so the driver drains the queue.
///
/// The device thread stops when the `BlockDevice` is dropped.
#[derive(Debug)]
pub struct BlockDevice {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl BlockDevice {
    /// Makes a device on line `irq` with `depth` requests in flight at most,
    /// and starts its thread.
    ///
    /// # Errors
    ///
    /// [`DeviceError::InvalidContext`] in a top half;
    /// [`DeviceError::NoSuchLine`] if the controller has no line `irq`;
    /// [`DeviceError::OutOfRange`] if `depth` is not 1 to
    /// [`MAX_QUEUE_DEPTH`]; [`DeviceError::Spawn`] if the device's thread
    /// cannot be spawned.
    ///
    /// # Context
    ///
    /// Task context; spawns a thread.
    pub fn new(
        controller: &Controller,
        irq: u32,
        service_time: Duration,
        depth: usize,
    ) -> Result<Self, DeviceError> {
        const DEVICE: &str = "block device";
        crate::context::might_sleep("BlockDevice::new").map_err(DeviceError::InvalidContext)?;
        super::check_line(controller, DEVICE, irq)?;
        super::check_range(
            DEVICE,
            irq,
            "depth",
            depth as u64,
            1..=MAX_QUEUE_DEPTH as u64,
        )?;
        let inner = Arc::new(Inner {
            controller: controller.clone(),
            irq,
            service_time,
            depth,
            queues: Mutex::new(Queues {
                in_flight: VecDeque::with_capacity(depth),
                completed: VecDeque::with_capacity(depth),
                next_id: 0,
                stop: false,
            }),
            work: Condvar::new(),
            completions: AtomicU64::new(0),
        });
        let device = inner.clone();
        let thread = std::thread::Builder::new()
            .name(format!("blk-irq{irq}"))
            .spawn(move || device.serve())
            .map_err(|error| DeviceError::Spawn {
                device: DEVICE,
                irq,
                reason: error.to_string(),
            })?;
        Ok(Self {
            inner,
            thread: Some(thread),
        })
    }

    /// Returns the line.
    pub fn irq(&self) -> u32 {
        self.inner.irq
    }

    /// Submits a request for `sector`; it completes one service time after
    /// the previous request does (or after now, if the device is idle).
    ///
    /// # Errors
    ///
    /// [`BlockRequestError::QueueFull`] when `depth` requests are in flight
    /// or completed but not yet taken.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn submit(&self, sector: u64) -> Result<u64, BlockRequestError> {
        let inner = &*self.inner;
        let mut queues = lock(&inner.queues);
        if queues.in_flight.len() + queues.completed.len() >= inner.depth {
            return Err(BlockRequestError::QueueFull {
                irq: inner.irq,
                depth: inner.depth,
            });
        }
        let now = clock::now();
        let start = queues
            .in_flight
            .back()
            .map_or(now, |last| last.due.max(now));
        let id = queues.next_id;
        queues.next_id += 1;
        queues.in_flight.push_back(InFlight {
            id,
            sector,
            submitted: now,
            due: start + inner.service_time,
        });
        drop(queues);
        inner.work.notify_one();
        Ok(id)
    }

    /// Takes the oldest completion (the driver reads the completion queue).
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn take_completion(&self) -> Option<Completion> {
        lock(&self.inner.queues).completed.pop_front()
    }

    /// Returns the requests completed so far.
    pub fn completions(&self) -> u64 {
        self.inner.completions.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Runs the device thread: completes each request at its due time.
    fn serve(&self) {
        clock::set_timer_slack(Duration::from_nanos(1));
        let mut queues = lock(&self.queues);
        loop {
            if queues.stop {
                return;
            }
            let Some(due) = queues.in_flight.front().map(|request| request.due) else {
                queues = self
                    .work
                    .wait(queues)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            };
            let now = clock::now();
            if now < due {
                queues = self
                    .work
                    .wait_timeout(queues, due.saturating_since(now))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                continue;
            }
            let Some(request) = queues.in_flight.pop_front() else {
                continue;
            };
            queues.completed.push_back(Completion {
                id: request.id,
                sector: request.sector,
                submitted: request.submitted,
                completed: now,
            });
            self.completions.fetch_add(1, Ordering::Relaxed);
            // Raise as of the due time: the interrupt latency counts from
            // when the device finished.
            let _ = self.controller.raise_at(self.irq, request.due);
        }
    }
}

impl Drop for BlockDevice {
    fn drop(&mut self) {
        lock(&self.inner.queues).stop = true;
        self.inner.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
