//! The guide's exercises: each shipped exercise fails with the diagnostic
//! its chapter promises, and each solution passes.

mod common;

use common::run_example;

/// Runs the exercise and its solution, and checks that the exercise fails
/// with `diagnostic` in its output while the solution succeeds.
fn check_exercise(name: &str, diagnostic: &str) {
    let exercise = run_example(name);
    let stdout = String::from_utf8_lossy(&exercise.stdout);
    assert!(
        !exercise.status.success(),
        "the shipped exercise {name} passed; it must fail until fixed. If \
         examples/exercises is as shipped, the binary is stale: run `cargo build \
         --examples` or the whole `cargo test`:\n{stdout}"
    );
    assert!(
        stdout.contains(diagnostic),
        "{name} did not report {diagnostic:?}:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("FAIL: ")),
        "{name} printed no FAIL line:\n{stdout}"
    );

    let solution_name = format!("{name}_solution");
    let solution = run_example(&solution_name);
    let stdout = String::from_utf8_lossy(&solution.stdout);
    assert!(
        solution.status.success(),
        "the solution {solution_name} failed with {}:\n{stdout}",
        solution.status
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("ok: ")),
        "{solution_name} printed no ok line:\n{stdout}"
    );
}

#[test]
fn bulk_top_half_overruns_budget() {
    check_exercise("ex1_bulk_top_half", "FAIL: irq 40: handler \"sensor\" took");
}

#[test]
fn uncleared_level_line_is_spurious() {
    check_exercise(
        "ex2_level_storm",
        "irq 50: nobody cared (999 of 1000 interrupts unhandled); handlers: temp_sensor",
    );
}

#[test]
fn self_flush_is_caught() {
    check_exercise(
        "ex3_self_flush",
        "flush_work called by work item \"logger\" on itself would wait forever",
    );
}

#[test]
fn unload_with_running_work_reported() {
    check_exercise(
        "ex4_unload_pending",
        "[warn] heartbeat: work \"heartbeat\" still running; waited for it",
    );
}

#[test]
fn shared_line_claimed_by_all_caught() {
    check_exercise(
        "ex5_shared_claim_all",
        "FAIL: the door driver counted 5 door events, but the door opened 2 times",
    );
}
