//! The two small drivers the runner writes itself: generic devices (a
//! status register, a top half that claims it, a bottom half that spends
//! CPU time) and one-shot timers.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use driver::ModuleError;
use driver::demo::EndToEnd;
use driver::irq::IrqRegistration;
use driver::module::ModuleContext;
use irq_sim::clock::{self, Timestamp};
use irq_sim::{
    Controller, HardIrqContext, IrqFlags, IrqOutput, IrqRequest, IrqReturn, LocalTimer, Trigger,
};
use wq::{DataWork, Workqueue};

/// A line's registration, made after the top half that needs the device
/// exists, and freed on demand.
#[derive(Debug, Default)]
struct Registration(Mutex<Option<IrqRegistration>>);

impl Registration {
    fn set(&self, registration: IrqRegistration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(registration);
    }

    /// Frees the line (`free_irq`), waiting for a running top half.
    fn free(&self) {
        let registration = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(registration);
    }
}

/// Events handed from a top half to its bottom half.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// Events claimed by top halves, not yet taken by the bottom half.
    events: AtomicU64,
    /// Raise time (ns) of the oldest event in `events`; 0 when none.
    oldest: AtomicU64,
    /// Events handed over and not yet processed. A top half counts them here
    /// before it clears them from its status register, so that the
    /// end-of-run drain always finds them in one of the two.
    unfinished: AtomicU64,
    /// Events the bottom half finished.
    processed: AtomicU64,
    /// CPU time each run spends.
    work: Duration,
    /// Raise to bottom half, per batch's oldest event.
    end_to_end: EndToEnd,
}

impl Handoff {
    /// Adds `events` raised from `oldest` on (0: unknown): top-half side.
    fn give(&self, events: u64, oldest: u64) {
        // A top half can claim an event whose raise time went to the batch
        // before it, and then has none to give.
        if oldest != 0 {
            let _ = self
                .oldest
                .compare_exchange(0, oldest, Ordering::AcqRel, Ordering::Acquire);
        }
        self.unfinished.fetch_add(events, Ordering::AcqRel);
        self.events.fetch_add(events, Ordering::AcqRel);
    }

    /// Takes every event handed over and spends the work time: the bottom
    /// half.
    fn take(&self) {
        let events = self.events.swap(0, Ordering::AcqRel);
        let oldest = self.oldest.swap(0, Ordering::AcqRel);
        if oldest != 0 {
            self.end_to_end.record([Timestamp::from_nanos(oldest)]);
        }
        if !self.work.is_zero() {
            clock::spin_until(clock::now() + self.work);
        }
        self.processed.fetch_add(events, Ordering::Relaxed);
        self.unfinished.fetch_sub(events, Ordering::AcqRel);
    }

    /// Returns the events handed over and not finished: waiting for the
    /// bottom half or in its current run.
    fn unfinished(&self) -> u64 {
        self.unfinished.load(Ordering::Acquire)
    }
}

/// A device whose status register counts events: the top half reads and
/// clears it, so it can tell whether its device interrupted on a shared
/// line, and a level line stays high until it does.
#[derive(Debug)]
pub(crate) struct GenericDevice {
    controller: Controller,
    irq: u32,
    /// The status register: events not yet claimed by the top half.
    status: AtomicU64,
    /// On a level line, the device's input of the line's wired OR: high
    /// while the status register contains an event, so that the line stays
    /// high while any device on it has one. `None` on an edge line.
    output: Option<IrqOutput>,
    /// Raise time (ns) of the oldest unclaimed event; 0 when none.
    oldest: AtomicU64,
    arrived: AtomicU64,
    handoff: Arc<DataWork<Handoff>>,
    registration: Registration,
}

/// Counters of a generic device or one-shot timer.
#[derive(Clone, Debug)]
pub(crate) struct GenericStats {
    pub(crate) arrived: u64,
    pub(crate) processed: u64,
    pub(crate) unclaimed: u64,
    pub(crate) end_to_end: hdrhistogram::Histogram<u64>,
}

impl GenericDevice {
    /// Makes the device, requests its line through `ctx`, and tracks its
    /// work item. `handler` is leaked: a line's handler names live as long
    /// as the process, as `request_irq` keeps the caller's pointer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn probe(
        ctx: &ModuleContext,
        controller: &Controller,
        name: &str,
        handler: &str,
        irq: u32,
        trigger: Trigger,
        shared: bool,
        output: Option<IrqOutput>,
        queue: &Workqueue,
        work: Duration,
    ) -> Result<Arc<Self>, ModuleError> {
        let handoff = DataWork::new(
            format!("{name}/work"),
            Handoff {
                work,
                ..Handoff::default()
            },
            |item| item.take(),
        );
        ctx.track_work(&handoff)?;
        let device = Arc::new(Self {
            controller: controller.clone(),
            irq,
            status: AtomicU64::new(0),
            output,
            oldest: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            handoff,
            registration: Registration::default(),
        });
        let flags = match (trigger, shared) {
            (Trigger::Edge, false) => IrqFlags::EDGE,
            (Trigger::Edge, true) => IrqFlags::EDGE.shared(),
            (Trigger::Level, false) => IrqFlags::LEVEL,
            (Trigger::Level, true) => IrqFlags::LEVEL.shared(),
        };
        let handler: &'static str = Box::leak(handler.to_owned().into_boxed_str());
        let top_half = {
            let (device, queue) = (device.clone(), queue.clone());
            move |_: &mut HardIrqContext<'_>| device.top_half(&queue)
        };
        let registration =
            ctx.request_irq(controller, irq, IrqRequest::new(handler, flags, top_half))?;
        device.registration.set(registration);
        Ok(device)
    }

    /// Delivers an event that reached the device at `at`: sets the status
    /// register and raises the line, or asserts the device's output on a
    /// level line.
    pub(crate) fn event(&self, at: Timestamp) {
        self.arrived.fetch_add(1, Ordering::Relaxed);
        let _ = self.oldest.compare_exchange(
            0,
            at.as_nanos().max(1),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.status.fetch_add(1, Ordering::AcqRel);
        match &self.output {
            Some(output) => {
                let _ = output.assert_at(at);
            }
            None => {
                let _ = self.controller.raise_at(self.irq, at);
            }
        }
    }

    /// Runs the top half: claims the status, deasserts the device's output
    /// on a level line and hands the events to the bottom half. Returns
    /// `None` when this device did not interrupt (another device of a
    /// shared line did).
    fn top_half(&self, queue: &Workqueue) -> IrqReturn {
        // Deassert first, then read: an event between the two asserts the
        // output again, so it is never left unannounced. Another device's
        // output keeps the line high for that device.
        if let Some(output) = &self.output {
            let _ = output.deassert();
        }
        let events = self.status.load(Ordering::Acquire);
        if events == 0 {
            return IrqReturn::None;
        }
        let oldest = self.oldest.swap(0, Ordering::AcqRel);
        // Hand the events over before clearing them from the status
        // register: `is_idle` reads the register first, so it finds them
        // in one place or the other. Only this top half lowers the
        // register, and an event arriving meanwhile stays in it.
        self.handoff.data().give(events, oldest);
        self.status.fetch_sub(events, Ordering::AcqRel);
        let _ = wq::queue_work(queue, &self.handoff);
        IrqReturn::Handled
    }

    /// Frees the line (`free_irq`).
    pub(crate) fn free(&self) {
        self.registration.free();
    }

    /// Returns true when no event waits in the status register or the
    /// hand-off.
    pub(crate) fn is_idle(&self) -> bool {
        self.status.load(Ordering::Acquire) == 0
            && self.handoff.data().unfinished() == 0
            && !self.handoff.is_pending()
    }

    pub(crate) fn stats(&self) -> GenericStats {
        let handoff = self.handoff.data();
        GenericStats {
            arrived: self.arrived.load(Ordering::Relaxed),
            processed: handoff.processed.load(Ordering::Relaxed),
            // Exact once the device is idle, as after the end-of-run drain.
            // During a top half's hand-over its events count twice.
            unclaimed: self.status.load(Ordering::Relaxed) + handoff.unfinished(),
            end_to_end: handoff.end_to_end.snapshot(),
        }
    }
}

/// A one-shot timer: a local timer armed for each expiry of a list in turn.
/// Its top half re-arms the next expiry and queues a work item.
#[derive(Debug)]
pub(crate) struct OneshotTimer {
    timer: LocalTimer,
    /// Expiry offsets from `start`, increasing.
    offsets: Vec<Duration>,
    /// The run's start (ns), set once before the first expiry is armed.
    start: AtomicU64,
    /// Index of the expiry armed now.
    next: AtomicUsize,
    /// Set by [`OneshotTimer::disarm`]: top halves re-arm nothing.
    disarmed: AtomicBool,
    controller: Controller,
    handoff: Arc<DataWork<Handoff>>,
    registration: Registration,
}

impl OneshotTimer {
    /// Makes the timer that will fire at each of `offsets` from the start,
    /// and requests its line; [`OneshotTimer::start`] arms the first
    /// expiry.
    pub(crate) fn probe(
        ctx: &ModuleContext,
        controller: &Controller,
        name: &str,
        timer: LocalTimer,
        offsets: &[Duration],
        queue: &Workqueue,
    ) -> Result<Arc<Self>, ModuleError> {
        let handoff = DataWork::new(format!("{name}/expiry"), Handoff::default(), |item| {
            item.take()
        });
        ctx.track_work(&handoff)?;
        let irq = timer.irq();
        let oneshot = Arc::new(Self {
            timer,
            offsets: offsets.to_vec(),
            start: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            disarmed: AtomicBool::new(false),
            controller: controller.clone(),
            handoff,
            registration: Registration::default(),
        });
        // Leaked as a generic device's handler name is.
        let handler: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let top_half = {
            let (oneshot, queue) = (oneshot.clone(), queue.clone());
            move |_: &mut HardIrqContext<'_>| oneshot.top_half(&queue)
        };
        let registration = ctx.request_irq(
            controller,
            irq,
            IrqRequest::new(handler, IrqFlags::EDGE, top_half),
        )?;
        oneshot.registration.set(registration);
        Ok(oneshot)
    }

    /// Arms the first expiry, counting offsets from `start`.
    pub(crate) fn start(&self, start: Timestamp) {
        // Stored before arming: the top half reads it.
        self.start.store(start.as_nanos(), Ordering::Release);
        if let Some(first) = self.offsets.first() {
            self.timer.arm_oneshot(start + *first);
        }
    }

    fn top_half(&self, queue: &Workqueue) -> IrqReturn {
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        let Some(offset) = self.offsets.get(index) else {
            return IrqReturn::None;
        };
        let start = Timestamp::from_nanos(self.start.load(Ordering::Acquire));
        if let Some(next) = self.offsets.get(index + 1)
            && !self.disarmed.load(Ordering::Acquire)
        {
            self.timer.arm_oneshot(start + *next);
        }
        self.handoff.data().give(1, (start + *offset).as_nanos());
        let _ = wq::queue_work(queue, &self.handoff);
        IrqReturn::Handled
    }

    /// Disarms the timer: no expiry fires after this returns.
    ///
    /// # Context
    ///
    /// Task context; waits for a running top half of the timer's line.
    pub(crate) fn disarm(&self) {
        // A top half running now may re-arm the next expiry. The flag stops
        // that, the synchronize waits for it, and the cancel comes after.
        self.disarmed.store(true, Ordering::Release);
        let _ = self.controller.synchronize_irq(self.timer.irq());
        self.timer.cancel();
    }

    /// Disarms the timer and frees its line.
    pub(crate) fn stop(&self) {
        self.disarm();
        self.registration.free();
    }

    /// Returns true when every fired expiry's work has run.
    pub(crate) fn is_idle(&self) -> bool {
        self.handoff.data().unfinished() == 0 && !self.handoff.is_pending()
    }

    pub(crate) fn stats(&self) -> GenericStats {
        let handoff = self.handoff.data();
        let fired = self.next.load(Ordering::Relaxed).min(self.offsets.len()) as u64;
        GenericStats {
            arrived: fired,
            processed: handoff.processed.load(Ordering::Relaxed),
            unclaimed: handoff.unfinished(),
            end_to_end: handoff.end_to_end.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A level device on `irq` with no handler requested, whose top half
    /// a test calls by hand.
    fn level_device(controller: &Controller, irq: u32) -> GenericDevice {
        GenericDevice {
            controller: controller.clone(),
            irq,
            status: AtomicU64::new(0),
            output: Some(controller.irq_output(irq).unwrap()),
            oldest: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            handoff: DataWork::new("test/work", Handoff::default(), |item| item.take()),
            registration: Registration::default(),
        }
    }

    /// On a shared level line, a top half that finds nothing of its own
    /// deasserts only its own device's output: the other device's event
    /// keeps the line high, or that event would wait for the next one.
    #[test]
    fn shared_level_line_stays_high() {
        const LINE: u32 = 19;
        let machine = irq_sim::Machine::new(irq_sim::Config {
            nr_cpus: 1,
            ..irq_sim::Config::default()
        })
        .expect("valid config");
        let controller = machine.controller();
        // A level handler makes the line level; the disable keeps the CPU
        // from delivering, so the test alone runs the top halves.
        controller
            .request_irq(
                LINE,
                IrqRequest::new(
                    "idle",
                    IrqFlags::LEVEL.shared(),
                    |_: &mut HardIrqContext<'_>| IrqReturn::None,
                ),
            )
            .unwrap();
        controller.disable_irq(LINE).unwrap();
        let first = level_device(&controller, LINE);
        let second = level_device(&controller, LINE);
        let queue = Workqueue::builder("test").build();

        first.event(clock::now());
        assert!(controller.line_state(LINE).unwrap().pending);
        assert_eq!(second.top_half(&queue), IrqReturn::None);
        assert!(
            controller.line_state(LINE).unwrap().pending,
            "the first device's event lost its line"
        );
        assert_eq!(first.top_half(&queue), IrqReturn::Handled);
        assert!(!controller.line_state(LINE).unwrap().pending);
    }

    #[test]
    fn handoff_without_raise_time_records_nothing() {
        let handoff = Handoff::default();
        handoff.give(2, 0);
        handoff.take();
        assert_eq!(handoff.processed.load(Ordering::Relaxed), 2);
        assert!(handoff.end_to_end.snapshot().is_empty());
    }

    #[test]
    fn handoff_shows_every_event_in_flight() {
        // One thread hands events over and takes them, as a top half and a
        // bottom half do. Another checks, as the end-of-run drain needs,
        // that every event handed over so far is unfinished or processed.
        let handoff = Arc::new(Handoff::default());
        let handed_over = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let looking = Arc::new(AtomicBool::new(false));

        let checker = {
            let (handoff, handed_over, stop, looking) = (
                handoff.clone(),
                handed_over.clone(),
                stop.clone(),
                looking.clone(),
            );
            std::thread::spawn(move || {
                let mut looks = 0_u64;
                while !stop.load(Ordering::Acquire) {
                    let handed_over = handed_over.load(Ordering::Acquire);
                    let unfinished = handoff.unfinished();
                    let processed = handoff.processed.load(Ordering::Acquire);
                    assert!(
                        unfinished + processed >= handed_over,
                        "{handed_over} handed over, but {unfinished} unfinished and {processed} processed"
                    );
                    looks += 1;
                    looking.store(true, Ordering::Release);
                }
                looks
            })
        };

        // The hand-offs start once the checker looks, however late the
        // host schedules it.
        while !looking.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        for _ in 0..200_000 {
            handoff.give(1, 0);
            handed_over.fetch_add(1, Ordering::AcqRel);
            handoff.take();
        }
        stop.store(true, Ordering::Release);

        assert!(checker.join().expect("no event went missing") > 0);
        assert_eq!(handoff.unfinished(), 0);
        assert_eq!(handoff.processed.load(Ordering::Relaxed), 200_000);
    }

    #[test]
    fn handoff_records_oldest_event() {
        let handoff = Handoff::default();
        let raised = clock::now();
        handoff.give(1, raised.as_nanos());
        handoff.give(1, (raised + Duration::from_millis(1)).as_nanos());
        handoff.take();
        let histogram = handoff.end_to_end.snapshot();
        assert_eq!(histogram.len(), 1);
        assert!(histogram.max() < 10_000_000_000);
        assert_eq!(handoff.processed.load(Ordering::Relaxed), 2);
    }
}
