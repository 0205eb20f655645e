//! irqlab as a library: the parts of the `irqlab` command that other code
//! and tests can call.
//!
//! [`scenario`] reads scenario files, [`run`] runs one, and [`report`]
//! prints and encodes what happened.
//!
//! [`latency`] measures the latency of the top-half/bottom-half split per
//! deferral mechanism beside same-run baselines (`irqlab latency`).
//!
//! [`record`] reads what real machines recorded: `/proc/interrupts`
//! snapshots and ftrace text output, so that simulated load can be seeded
//! with real interrupt rates, handler names and work durations.
//!
//! [`timeline`] records the `irq` and `workqueue` tracepoints of a run and
//! writes them as a Chrome trace for Chrome's DevTools.

#![warn(missing_docs)]

pub mod latency;
pub mod output;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod timeline;

/// The guide's pages, so that `cargo test` compiles and runs every Rust
/// block in them as a doc test. `tests/guide_outputs.rs` checks that every
/// page is listed here.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../docs/guide/README.md")]
    struct Contents;

    #[doc = include_str!("../docs/guide/01-why-split.md")]
    struct WhySplit;

    #[doc = include_str!("../docs/guide/02-hardirq.md")]
    struct HardIrq;

    #[doc = include_str!("../docs/guide/03-classic-examples.md")]
    struct ClassicExamples;

    #[doc = include_str!("../docs/guide/04-threaded-napi.md")]
    struct ThreadedNapi;

    #[doc = include_str!("../docs/guide/05-delayed-work.md")]
    struct DelayedWork;

    #[doc = include_str!("../docs/guide/06-flush-cancel.md")]
    struct FlushCancel;

    #[doc = include_str!("../docs/guide/07-reading-the-report.md")]
    struct ReadingTheReport;

    #[doc = include_str!("../docs/guide/exercises.md")]
    struct Exercises;

    #[doc = include_str!("../docs/guide/cheatsheet.md")]
    struct Cheatsheet;

    #[doc = include_str!("../docs/guide/ru/01-why-split.md")]
    struct WhySplitRu;

    #[doc = include_str!("../docs/guide/ru/02-hardirq.md")]
    struct HardIrqRu;

    #[doc = include_str!("../docs/guide/ru/03-classic-examples.md")]
    struct ClassicExamplesRu;

    #[doc = include_str!("../docs/guide/ru/04-threaded-napi.md")]
    struct ThreadedNapiRu;

    #[doc = include_str!("../docs/guide/ru/05-delayed-work.md")]
    struct DelayedWorkRu;

    #[doc = include_str!("../docs/guide/ru/06-flush-cancel.md")]
    struct FlushCancelRu;

    #[doc = include_str!("../docs/guide/ru/07-reading-the-report.md")]
    struct ReadingTheReportRu;

    #[doc = include_str!("../docs/guide/ru/exercises.md")]
    struct ExercisesRu;

    #[doc = include_str!("../docs/guide/ru/cheatsheet.md")]
    struct CheatsheetRu;
}
