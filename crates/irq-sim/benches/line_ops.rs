//! Per-operation means (criterion): the line state machine, a coalesced
//! raise through the controller, and one clock read.
//!
//! `cargo bench -p irq-sim --bench line_ops`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use irq_sim::clock;
use irq_sim::line_state::LineState;
use irq_sim::{Config, Machine};

fn line_ops(c: &mut Criterion) {
    let mut group = c.benchmark_group("line");
    group.throughput(Throughput::Elements(1));

    let state = LineState::new();
    let _nothing_due = state.startup(false, 0);
    group.bench_function("raise_dispatch_cycle", |b| {
        b.iter(|| {
            let _ = black_box(state.raise(black_box(1)));
            let _ = black_box(state.begin_dispatch());
            let _ = black_box(state.end_dispatch(2));
        })
    });

    // A disabled line latches the first raise; every later one coalesces
    // without touching a CPU queue.
    let machine = Machine::new(Config {
        nr_irqs: 64,
        nr_cpus: 1,
        ..Config::default()
    })
    .expect("valid config");
    let irq = machine.controller();
    let _ = irq.raise(3).expect("valid line");
    group.bench_function("controller_raise_coalesced", |b| {
        b.iter(|| black_box(irq.raise(black_box(3))))
    });

    group.bench_function("clock_now", |b| b.iter(|| black_box(clock::now())));
    group.finish();
    drop(machine);
}

criterion_group!(benches, line_ops);
criterion_main!(benches);
