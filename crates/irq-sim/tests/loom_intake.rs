//! Loom model of a CPU's intake: raises push lines while the CPU takes
//! them and goes to sleep when it finds none. A lost wake-up leaves the CPU
//! waiting forever, which loom reports as a deadlock.
//!
//! Run with:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p irq-sim --test loom_intake`

#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use irq_sim::intake::{Intake, IntakeLink};

/// The CPU's side of the handshake, as `controller` and `cpu` have it: the
/// intake, each line's link, and the sleep flag and condvar under the
/// queue lock.
struct Cpu {
    intake: Intake,
    links: [IntakeLink; 2],
    sleeping: Mutex<bool>,
    wakeup: Condvar,
}

impl Cpu {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            intake: Intake::new(),
            links: [IntakeLink::new(), IntakeLink::new()],
            sleeping: Mutex::new(false),
            wakeup: Condvar::new(),
        })
    }

    /// Queues line `irq` as a raise does (`Shared::enqueue`).
    fn raise(&self, irq: u32) {
        if self.intake.push(irq, &self.links[irq as usize]) {
            let notify = std::mem::take(&mut *self.sleeping.lock().unwrap());
            if notify {
                self.wakeup.notify_one();
            }
        }
    }

    /// Runs the CPU thread (`next_blocking`) until it has taken `expected`
    /// lines, and returns them.
    fn take(&self, expected: usize) -> Vec<u32> {
        let mut taken = Vec::new();
        let mut sleeping = self.sleeping.lock().unwrap();
        loop {
            self.intake
                .take_all(|irq| &self.links[irq as usize], &mut taken);
            if taken.len() == expected {
                return taken;
            }
            if !self.intake.announce_sleep() {
                continue;
            }
            *sleeping = true;
            sleeping = self.wakeup.wait(sleeping).unwrap();
            *sleeping = false;
            self.intake.end_sleep();
        }
    }
}

#[test]
fn raise_wakes_a_sleeping_cpu() {
    loom::model(|| {
        let cpu = Cpu::new();
        let raiser = {
            let cpu = cpu.clone();
            thread::spawn(move || cpu.raise(0))
        };
        assert_eq!(cpu.take(1), [0]);
        raiser.join().unwrap();
    });
}

#[test]
fn two_raisers_each_line_once() {
    loom::model(|| {
        let cpu = Cpu::new();
        let raisers: Vec<_> = [0, 1]
            .into_iter()
            .map(|irq| {
                let cpu = cpu.clone();
                thread::spawn(move || cpu.raise(irq))
            })
            .collect();
        let mut taken = cpu.take(2);
        taken.sort_unstable();
        assert_eq!(taken, [0, 1]);
        for raiser in raisers {
            raiser.join().unwrap();
        }
    });
}

#[test]
fn lines_come_out_in_push_order() {
    loom::model(|| {
        let cpu = Cpu::new();
        let raiser = {
            let cpu = cpu.clone();
            thread::spawn(move || {
                cpu.raise(1);
                cpu.raise(0);
            })
        };
        assert_eq!(cpu.take(2), [1, 0]);
        raiser.join().unwrap();
    });
}
