//! Arrival processes that drive devices: periodic, Poisson, bursts, and
//! replay of recorded timestamps.
//!
//! An [`Arrival`] yields event times as offsets from a start; the same
//! process with the same seed yields the same sequence. [`drive`] runs an
//! open-loop feeder thread: it sleeps to each intended time (absolute
//! deadlines, timer slack 1 ns) and hands the *intended* time to the
//! device, so that latency is measured from when the event should have
//! happened, even when the feeder itself runs late (no coordinated
//! omission).

use std::thread::JoinHandle;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::{self, Timestamp};
use crate::error::ArrivalError;

/// An arrival process.
#[derive(Clone, Debug, PartialEq)]
pub enum Arrival {
    /// One event every `period`, the first at offset zero.
    Periodic {
        /// Time between events.
        period: Duration,
    },
    /// Exponentially distributed gaps with mean `1 / rate_hz`, from a
    /// ChaCha8 generator seeded with `seed`.
    Poisson {
        /// Mean events per second.
        rate_hz: f64,
        /// Generator seed: the same seed gives the same sequence.
        seed: u64,
    },
    /// Periodic events every `period` for `on`, then silence for `off`,
    /// repeated.
    Bursts {
        /// Length of a burst.
        on: Duration,
        /// Silence between bursts.
        off: Duration,
        /// Time between events inside a burst.
        period: Duration,
    },
    /// Events at the given offsets, in order (a recording replayed).
    Replay {
        /// Offsets from the start; they must not decrease.
        offsets: Vec<Duration>,
    },
}

impl Arrival {
    /// Checks that this process yields a sequence of events: a period
    /// above zero, a Poisson rate that is finite and above zero, a burst
    /// of some length, replay offsets that never decrease.
    ///
    /// # Errors
    ///
    /// The [`ArrivalError`] naming the first fault.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn check(&self) -> Result<(), ArrivalError> {
        match self {
            Self::Periodic { period } if period.is_zero() => Err(ArrivalError::ZeroPeriod {
                process: "periodic",
            }),
            Self::Bursts { period, .. } if period.is_zero() => {
                Err(ArrivalError::ZeroPeriod { process: "bursts" })
            }
            Self::Bursts { on, .. } if on.is_zero() => Err(ArrivalError::EmptyBurst),
            // The mean gap, 1e9 / rate nanoseconds, must be finite too.
            Self::Poisson { rate_hz, .. }
                if !(rate_hz.is_finite() && *rate_hz > 0.0 && (1e9 / rate_hz).is_finite()) =>
            {
                Err(ArrivalError::Rate { rate_hz: *rate_hz })
            }
            Self::Replay { offsets } => match offsets.windows(2).position(|pair| pair[1] < pair[0])
            {
                Some(index) => Err(ArrivalError::ReplayDecreases {
                    index: index + 1,
                    offset: offsets[index + 1],
                    previous: offsets[index],
                }),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Returns the event offsets of this process, from the start.
    ///
    /// A process that [`check`](Self::check) rejects still yields
    /// something: a zero period counts as 1 ns, a rate that is not above
    /// zero (or so small that its mean gap overflows) or an empty burst
    /// yields no events, and replay offsets come in the order given.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn offsets(&self) -> Offsets {
        let state = match self {
            Self::Periodic { period } => State::Periodic {
                period: nonzero(*period),
                next: Duration::ZERO,
            },
            Self::Poisson { rate_hz, seed } => State::Poisson {
                mean_ns: if *rate_hz > 0.0 {
                    1e9 / rate_hz
                } else {
                    f64::INFINITY
                },
                rng: Box::new(ChaCha8Rng::seed_from_u64(*seed)),
                at_ns: 0.0,
            },
            Self::Bursts { on, off, period } => State::Bursts {
                on: *on,
                cycle: on.saturating_add(*off),
                period: nonzero(*period),
                burst_start: Duration::ZERO,
                next: Duration::ZERO,
            },
            Self::Replay { offsets } => State::Replay {
                offsets: offsets.clone(),
                index: 0,
            },
        };
        Offsets { state }
    }
}

fn nonzero(period: Duration) -> Duration {
    period.max(Duration::from_nanos(1))
}

/// The event offsets of an [`Arrival`].
#[derive(Clone, Debug)]
pub struct Offsets {
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    Periodic {
        period: Duration,
        next: Duration,
    },
    Poisson {
        mean_ns: f64,
        rng: Box<ChaCha8Rng>,
        at_ns: f64,
    },
    Bursts {
        on: Duration,
        cycle: Duration,
        period: Duration,
        burst_start: Duration,
        next: Duration,
    },
    Replay {
        offsets: Vec<Duration>,
        index: usize,
    },
}

impl Iterator for Offsets {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        match &mut self.state {
            State::Periodic { period, next } => {
                // Offsets saturate at `Duration::MAX`, which ends the
                // sequence: no run lasts that long.
                let at = *next;
                if at == Duration::MAX {
                    return None;
                }
                *next = next.saturating_add(*period);
                Some(at)
            }
            State::Poisson {
                mean_ns,
                rng,
                at_ns,
            } => {
                if !mean_ns.is_finite() {
                    return None;
                }
                // Inverse transform sampling: 1 - u lies in (0, 1], so the
                // logarithm is finite.
                let u: f64 = rng.random();
                *at_ns += -(1.0 - u).ln() * *mean_ns;
                Some(Duration::from_nanos(*at_ns as u64))
            }
            State::Bursts {
                on,
                cycle,
                period,
                burst_start,
                next,
            } => {
                if on.is_zero() {
                    return None;
                }
                if *next >= burst_start.saturating_add(*on) {
                    *burst_start = burst_start.saturating_add((*cycle).max(*period));
                    *next = *burst_start;
                }
                let at = *next;
                if at == Duration::MAX {
                    return None;
                }
                *next = next.saturating_add(*period);
                Some(at)
            }
            State::Replay { offsets, index } => {
                let at = offsets.get(*index).copied()?;
                *index += 1;
                Some(at)
            }
        }
    }
}

/// What a feeder thread did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriveReport {
    /// Events handed to the device.
    pub events: u64,
    /// Largest delay between an intended time and the hand-off.
    pub max_lateness: Duration,
}

/// Runs `arrival` from `start` on a feeder thread named `name`, calling
/// `event` with each intended time, until `count` events or `until`.
///
/// # Errors
///
/// The fault [`Arrival::check`] finds, or [`ArrivalError::Spawn`] if the
/// thread cannot be spawned.
///
/// # Context
///
/// Task context; spawns a thread.
pub fn drive<F>(
    name: &str,
    arrival: &Arrival,
    start: Timestamp,
    count: u64,
    until: Timestamp,
    mut event: F,
) -> Result<JoinHandle<DriveReport>, ArrivalError>
where
    F: FnMut(Timestamp) + Send + 'static,
{
    arrival.check()?;
    if name.contains('\0') {
        return Err(ArrivalError::Spawn {
            feeder: name.escape_default().to_string(),
            reason: "a thread name cannot contain a NUL byte".to_owned(),
        });
    }
    let offsets = arrival.offsets();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            clock::set_timer_slack(Duration::from_nanos(1));
            let mut report = DriveReport::default();
            for offset in offsets.take(usize::try_from(count).unwrap_or(usize::MAX)) {
                let intended = start + offset;
                if intended > until {
                    break;
                }
                clock::sleep_until(intended);
                let lateness = clock::now().saturating_since(intended);
                report.max_lateness = report.max_lateness.max(lateness);
                event(intended);
                report.events += 1;
            }
            report
        })
        .map_err(|error| ArrivalError::Spawn {
            feeder: name.to_owned(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(arrival: &Arrival, n: usize) -> Vec<Duration> {
        arrival.offsets().take(n).collect()
    }

    #[test]
    fn periodic_spacing() {
        let offsets = first(
            &Arrival::Periodic {
                period: Duration::from_micros(10),
            },
            3,
        );
        assert_eq!(offsets, [0, 10, 20].map(Duration::from_micros));
    }

    #[test]
    fn poisson_same_seed_same_sequence() {
        let arrival = Arrival::Poisson {
            rate_hz: 1000.0,
            seed: 42,
        };
        assert_eq!(first(&arrival, 100), first(&arrival, 100));
        let other = Arrival::Poisson {
            rate_hz: 1000.0,
            seed: 43,
        };
        assert_ne!(first(&arrival, 100), first(&other, 100));
    }

    #[test]
    fn poisson_mean_rate() {
        let offsets = first(
            &Arrival::Poisson {
                rate_hz: 10_000.0,
                seed: 7,
            },
            20_000,
        );
        let span = offsets.last().unwrap().as_secs_f64();
        let rate = offsets.len() as f64 / span;
        assert!((9_500.0..10_500.0).contains(&rate), "rate {rate}");
        assert!(offsets.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn bursts_on_off() {
        let arrival = Arrival::Bursts {
            on: Duration::from_micros(30),
            off: Duration::from_micros(70),
            period: Duration::from_micros(10),
        };
        let offsets = first(&arrival, 6);
        assert_eq!(
            offsets,
            [0, 10, 20, 100, 110, 120].map(Duration::from_micros)
        );
    }

    #[test]
    fn check_names_the_fault() {
        let zero = Duration::ZERO;
        let ms = Duration::from_millis;
        let faults = [
            (
                Arrival::Periodic { period: zero },
                ArrivalError::ZeroPeriod {
                    process: "periodic",
                },
            ),
            (
                Arrival::Bursts {
                    on: ms(1),
                    off: ms(1),
                    period: zero,
                },
                ArrivalError::ZeroPeriod { process: "bursts" },
            ),
            (
                Arrival::Bursts {
                    on: zero,
                    off: ms(1),
                    period: ms(1),
                },
                ArrivalError::EmptyBurst,
            ),
            (
                Arrival::Poisson {
                    rate_hz: -1.0,
                    seed: 0,
                },
                ArrivalError::Rate { rate_hz: -1.0 },
            ),
            (
                Arrival::Replay {
                    offsets: vec![ms(1), ms(5), ms(5), ms(2)],
                },
                ArrivalError::ReplayDecreases {
                    index: 3,
                    offset: ms(2),
                    previous: ms(5),
                },
            ),
        ];
        for (arrival, fault) in faults {
            assert_eq!(arrival.check(), Err(fault), "{arrival:?}");
        }
        for rate_hz in [0.0, f64::NAN, f64::INFINITY, 1e-300] {
            let arrival = Arrival::Poisson { rate_hz, seed: 0 };
            assert!(arrival.check().is_err(), "{arrival:?}");
        }
        assert_eq!(
            ArrivalError::ReplayDecreases {
                index: 3,
                offset: ms(2),
                previous: ms(5)
            }
            .to_string(),
            "replay offset 3 (2ms) is before offset 2 (5ms); offsets must not decrease"
        );
        let fine = Arrival::Replay {
            offsets: vec![ms(1), ms(1), ms(2)],
        };
        assert_eq!(fine.check(), Ok(()));
    }

    #[test]
    fn offsets_end_instead_of_overflowing() {
        let long = Arrival::Periodic {
            period: Duration::MAX,
        };
        assert_eq!(first(&long, 5), [Duration::ZERO]);
        let endless_burst = Arrival::Bursts {
            on: Duration::MAX,
            off: Duration::MAX,
            period: Duration::from_secs(u64::MAX / 2),
        };
        assert_eq!(first(&endless_burst, 5).len(), 3);
        assert!(
            Arrival::Poisson {
                rate_hz: 1e-299,
                seed: 1
            }
            .check()
            .is_ok()
        );
    }

    #[test]
    fn drive_rejects_a_faulty_process() {
        let start = clock::now();
        let rejected = |name: &str, period: Duration| {
            drive(
                name,
                &Arrival::Periodic { period },
                start,
                5,
                start + Duration::from_secs(1),
                |_| panic!("no event may be handed over"),
            )
            .expect_err("drive rejects the feeder")
        };

        let zero_period = rejected("test-feeder", Duration::ZERO);
        assert_eq!(
            zero_period.to_string(),
            "periodic arrivals: the period is 0; give a period of at least 1 ns"
        );

        let bad_name = rejected("feeder\0", Duration::from_millis(1));
        assert!(matches!(bad_name, ArrivalError::Spawn { .. }));
    }

    #[test]
    fn replay_ends() {
        let arrival = Arrival::Replay {
            offsets: [5, 7].map(Duration::from_millis).to_vec(),
        };
        assert_eq!(first(&arrival, 10), [5, 7].map(Duration::from_millis));
    }

    #[test]
    fn drive_hands_intended_times() {
        let start = clock::now();
        let (sender, receiver) = std::sync::mpsc::channel();
        let feeder = drive(
            "test-feeder",
            &Arrival::Periodic {
                period: Duration::from_micros(200),
            },
            start,
            5,
            start + Duration::from_secs(10),
            move |intended| sender.send(intended).unwrap(),
        )
        .unwrap();
        let report = feeder.join().unwrap();
        assert_eq!(report.events, 5);
        let times: Vec<Timestamp> = receiver.iter().collect();
        assert_eq!(times[4], start + Duration::from_micros(800));
    }
}
