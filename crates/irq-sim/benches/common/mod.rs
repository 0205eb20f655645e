//! Shared parts of the irq-sim latency benches: rounds, summaries, ratios,
//! the noise-floor probe and the JSON record.
//!
//! Method: candidate and baseline run interleaved in rounds (A, B, A, B,
//! ...) with the same thread placement; each round records one HDR
//! histogram per side; the report gives each side's percentiles over all
//! rounds and the median of the per-round ratios with their spread.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use irq_sim::Summary;
use irq_sim::clock;

/// Reads a positive integer from the environment variable `name`, or
/// returns `default` when it is unset. Any other value ends the bench with
/// an error that names the variable.
pub fn env_or(name: &str, default: u64) -> u64 {
    let Some(text) = std::env::var_os(name) else {
        return default;
    };
    text.to_str()
        .and_then(|text| text.parse().ok())
        .filter(|&value| value > 0)
        .unwrap_or_else(|| {
            eprintln!("error: invalid {name}={text:?}: expected a positive integer");
            std::process::exit(2);
        })
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

/// One side's histograms, one per round.
#[derive(Default)]
pub struct Side {
    pub rounds: Vec<Histogram<u64>>,
}

impl Side {
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for round in &self.rounds {
            all.add(round).expect("same bounds");
        }
        all
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Per-round ratio of candidate to baseline at quantile `q`: median, min,
/// max.
pub fn ratio(candidate: &Side, baseline: &Side, q: f64) -> (f64, f64, f64) {
    let ratios: Vec<f64> = candidate
        .rounds
        .iter()
        .zip(&baseline.rounds)
        .map(|(c, b)| c.value_at_quantile(q) as f64 / b.value_at_quantile(q).max(1) as f64)
        .collect();
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    (median(ratios), min, max)
}

/// Prints one comparison and appends it to `json`.
pub fn report(
    json: &mut String,
    name: &str,
    candidate: &Side,
    baseline: &Side,
    limits: &[(f64, f64)],
) {
    let c = Summary::of(&candidate.merged());
    let b = Summary::of(&baseline.merged());
    println!("\n== {name}");
    println!("candidate: {c}");
    println!("baseline:  {b}");
    let _ = write!(
        json,
        "{{\"name\":\"{name}\",\"candidate\":{},\"baseline\":{},\"ratios\":[",
        summary_json(&c),
        summary_json(&b)
    );
    for (index, &(q, limit)) in limits.iter().enumerate() {
        let (median, min, max) = ratio(candidate, baseline, q);
        let verdict = if median <= limit { "ok" } else { "OVER" };
        println!(
            "p{:<5} ratio: median {median:.2} (rounds {min:.2}..{max:.2}), limit {limit:.2}: {verdict}",
            q * 100.0
        );
        if index > 0 {
            json.push(',');
        }
        let _ = write!(
            json,
            "{{\"quantile\":{q},\"median\":{median:.3},\"min\":{min:.3},\"max\":{max:.3},\"limit\":{limit}}}"
        );
    }
    json.push_str("]}");
}

pub fn summary_json(s: &Summary) -> String {
    format!(
        "{{\"count\":{},\"min\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
        s.count, s.min, s.p50, s.p90, s.p99, s.p999, s.max
    )
}

/// Spins on the clock on every vCPU for `length` and returns the share of
/// time lost in gaps over 1 us (host steal, interrupts, other processes).
pub fn noise_floor(length: Duration) -> Vec<f64> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..cpus)
        .map(|_| {
            std::thread::spawn(move || {
                let start = clock::now();
                let end = start + length;
                let mut last = start;
                let mut lost = 0u64;
                while last < end {
                    let now = clock::now();
                    let gap = now.as_nanos() - last.as_nanos();
                    if gap > 1_000 {
                        lost += gap;
                    }
                    last = now;
                }
                // The last gap can end past `end`, so divide by the time
                // the loop ran. That keeps the share at or under 1.
                let elapsed = last.as_nanos() - start.as_nanos();
                lost as f64 / elapsed as f64
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect()
}

/// Prints the noise floor and says whether the run can be trusted.
pub fn print_noise_floor(json: &mut String) {
    let lost = noise_floor(Duration::from_secs(1));
    // Judged per vCPU, as `irqlab latency` judges it: a stall of one vCPU
    // spoils the tails even when the other is quiet.
    let trusted = lost.iter().all(|lost| *lost <= 0.02);
    let per_cpu: Vec<String> = lost
        .iter()
        .enumerate()
        .map(|(cpu, lost)| format!("vCPU {cpu} {:.2} %", lost * 100.0))
        .collect();
    println!(
        "noise floor: lost in gaps over 1 us: {}{}",
        per_cpu.join(", "),
        if trusted {
            ""
        } else {
            " -- UNTRUSTWORTHY RUN (a vCPU over 2 %)"
        }
    );
    let mean = lost.iter().sum::<f64>() / lost.len().max(1) as f64;
    let per_cpu_json: Vec<String> = lost.iter().map(|lost| format!("{lost:.5}")).collect();
    let _ = write!(
        json,
        "\"noise_floor_lost\":{mean:.5},\"noise_floor_lost_per_cpu\":[{}],\"trusted\":{trusted}",
        per_cpu_json.join(",")
    );
}

/// Writes `json` to target/irq-sim-bench/<name>.json.
pub fn write_json(name: &str, json: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/irq-sim-bench");
    let _ = std::fs::create_dir_all(&dir);
    // Printed without the `..` steps, as a reader would type it.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let path = dir.join(format!("{name}.json"));
    match std::fs::write(&path, json) {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(error) => println!("\nfailed to write {}: {error}", path.display()),
    }
}

/// The vCPUs a hand-off bench pins its threads to: the raiser on one, and
/// the thread it wakes on another. The candidate and its baseline get the
/// same placement, so neither side's wake-up depends on the scheduler.
pub struct Placement {
    raiser: usize,
    woken: usize,
    allowed: libc::cpu_set_t,
}

impl Placement {
    /// Returns the first two vCPUs the process may run on, or `None` with
    /// fewer than two.
    pub fn new() -> Option<Self> {
        // SAFETY: an all-zero cpu_set_t is an empty set, and the call
        // writes only the set whose size it is given.
        let allowed = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut set) != 0 {
                return None;
            }
            set
        };
        // SAFETY: CPU_ISSET reads the set within its size.
        let mut cpus = (0..libc::CPU_SETSIZE as usize)
            .filter(|cpu| unsafe { libc::CPU_ISSET(*cpu, &allowed) });
        let (raiser, woken) = (cpus.next()?, cpus.next()?);
        Some(Self {
            raiser,
            woken,
            allowed,
        })
    }

    /// Describes the placement for the bench's header.
    pub fn describe(&self) -> String {
        format!(
            "threads pinned: raiser on vCPU {}, woken thread on vCPU {}",
            self.raiser, self.woken
        )
    }

    /// Runs `start` pinned to the woken thread's vCPU, so that every
    /// thread it spawns stays there, then pins the caller to the raiser's.
    pub fn start_woken<T>(&self, start: impl FnOnce() -> T) -> T {
        pin(&single(self.woken));
        let started = start();
        pin(&single(self.raiser));
        started
    }

    /// Lets the caller run on every vCPU it could before.
    pub fn release(&self) {
        pin(&self.allowed);
    }
}

fn single(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: an all-zero cpu_set_t is an empty set; CPU_SET writes within
    // its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

fn pin(set: &libc::cpu_set_t) {
    // SAFETY: the call reads only the set whose size it is given.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    assert_eq!(rc, 0, "sched_setaffinity failed");
}
