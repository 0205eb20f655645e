//! Arrival processes driving devices end to end.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{machine, wait_until};
use irq_sim::arrival::{self, Arrival};
use irq_sim::clock::{self, Timestamp};
use irq_sim::device::Nic;
use irq_sim::{HardIrqContext, IrqFlags, IrqRequest, IrqReturn};

/// A seeded Poisson feeder delivers packets whose arrival times are the
/// process's offsets from the start, so the same seed gives the same run.
#[test]
fn poisson_feeder_reproducible() {
    let machine = machine(1);
    let irq = machine.controller();
    let nic = Arc::new(Nic::new(&irq, 11, 1024).unwrap());
    let arrived = Arc::new(Mutex::new(Vec::new()));
    let (device, seen) = (nic.clone(), arrived.clone());
    irq.request_irq(
        11,
        IrqRequest::new("eth0", IrqFlags::EDGE, move |_: &mut HardIrqContext<'_>| {
            while let Some(packet) = device.pop() {
                seen.lock().unwrap().push(packet.arrived);
            }
            IrqReturn::Handled
        }),
    )
    .unwrap();

    let process = Arrival::Poisson {
        rate_hz: 20_000.0,
        seed: 5,
    };
    let start = clock::now() + Duration::from_millis(1);
    let feeder_nic = nic.clone();
    let report = arrival::drive(
        "nic-feeder",
        &process,
        start,
        200,
        start + Duration::from_secs(10),
        move |at| {
            assert!(feeder_nic.receive(64, at));
        },
    )
    .unwrap()
    .join()
    .unwrap();

    assert_eq!(report.events, 200);
    wait_until("every packet", || arrived.lock().unwrap().len() == 200);
    let expected: Vec<Timestamp> = process
        .offsets()
        .take(200)
        .map(|offset| start + offset)
        .collect();
    assert_eq!(*arrived.lock().unwrap(), expected);
    assert_eq!(nic.dropped(), 0);
}

/// A replayed event raised as of its intended time reports its latency
/// from that time, however late the feeder woke.
#[test]
fn replay_latency_from_intended_time() {
    let machine = machine(1);
    let irq = machine.controller();
    let intended = Arc::new(Mutex::new(Vec::new()));
    let seen = intended.clone();
    irq.request_irq(
        12,
        IrqRequest::new(
            "replay",
            IrqFlags::EDGE,
            move |ctx: &mut HardIrqContext<'_>| {
                seen.lock()
                    .unwrap()
                    .push(ctx.entry_time() - ctx.latency().unwrap());
                IrqReturn::Handled
            },
        ),
    )
    .unwrap();

    let offsets: Vec<Duration> = [1, 3, 6].map(Duration::from_millis).to_vec();
    let process = Arrival::Replay {
        offsets: offsets.clone(),
    };
    let start = clock::now() + Duration::from_millis(1);
    let raiser = irq.clone();
    arrival::drive(
        "replay-feeder",
        &process,
        start,
        u64::MAX,
        start + Duration::from_secs(10),
        move |at| {
            let _ = raiser.raise_at(12, at).unwrap();
        },
    )
    .unwrap()
    .join()
    .unwrap();

    // A feeder that the host delays past a later arrival raises twice in a
    // row, and the second edge folds into the pending delivery, which keeps
    // the first one's time. So every raise is delivered or coalesced, and
    // every delivery carries the intended time of a raise.
    let expected: Vec<Timestamp> = offsets.iter().map(|&offset| start + offset).collect();
    wait_until("every raise delivered or coalesced", || {
        let coalesced = irq.line_stats(12).unwrap().coalesced;
        intended.lock().unwrap().len() as u64 + coalesced == 3
    });
    let intended = intended.lock().unwrap().clone();
    assert_eq!(
        intended.first(),
        expected.first(),
        "the first raise is delivered"
    );
    assert!(
        intended.is_sorted(),
        "deliveries in raise order: {intended:?}"
    );
    for time in &intended {
        assert!(
            expected.contains(time),
            "{time} is not an intended time of {expected:?}"
        );
    }
}
