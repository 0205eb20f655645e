//! Tests on snapshots recorded on real machines. Values marked "by hand"
//! were read off the data files.

use super::*;
use proptest::prelude::*;

fn read_data(name: &str) -> String {
    let path = format!(
        "{}/data/real/proc-interrupts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn parse_data(name: &str) -> Snapshot {
    Snapshot::parse(&read_data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn irq(n: u32) -> Label {
    Label::Irq(n)
}

fn name(s: &str) -> Label {
    Label::Name(s.to_owned())
}

fn row<'a>(snapshot: &'a Snapshot, label: &Label) -> &'a Row {
    snapshot
        .row(label)
        .unwrap_or_else(|| panic!("no row {label}"))
}

/// Lines of `text` after the header that are not blank.
fn data_line_count(text: &str) -> usize {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn lisa_diff_matches_expected_file() {
    let before = parse_data("lisa-exynos5-before.txt");
    let after = parse_data("lisa-exynos5-after.txt");
    let diff = before.diff(&after).unwrap();
    let expected = read_data("lisa-exynos5-diff-expected.txt");

    let expected_rows: Vec<&str> = expected.lines().skip(1).collect();
    assert_eq!(expected_rows.len(), 97);
    assert_eq!(diff.rows.len(), expected_rows.len());

    for (expected_row, diff_row) in expected_rows.iter().zip(&diff.rows) {
        let (only_after, cells) = match expected_row.trim_start().strip_prefix('>') {
            Some(rest) => (true, rest),
            None => (false, *expected_row),
        };
        let (label, cells) = cells.split_once(':').unwrap();
        let numbers: Vec<u64> = cells
            .split_whitespace()
            .take(after.cpu_count)
            .map_while(|cell| cell.parse().ok())
            .collect();

        assert_eq!(
            diff_row.row.label.to_string(),
            label.trim(),
            "{expected_row}"
        );
        let presence = if only_after {
            Presence::OnlyAfter
        } else {
            Presence::Both
        };
        assert_eq!(diff_row.presence, presence, "{expected_row}");
        let counts = match &diff_row.counts {
            Counts::PerCpu(counts) => counts.clone(),
            Counts::Total(total) => vec![*total],
        };
        assert_eq!(counts, numbers, "{expected_row}");

        // The expected file joins chip and handlers (or the description)
        // into one text column.
        let expected_text: Vec<&str> = cells.split_whitespace().skip(numbers.len()).collect();
        let row = &diff_row.row;
        let text = match &row.description {
            Some(description) => description.clone(),
            None => format!(
                "{} {}",
                row.chip.as_deref().unwrap_or(""),
                row.handlers.join(", ")
            ),
        };
        let text: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(text, expected_text, "{expected_row}");
    }
}

#[test]
fn lisa_diff_flags_new_cpu_timer() {
    let before = parse_data("lisa-exynos5-before.txt");
    let after = parse_data("lisa-exynos5-after.txt");
    let diff = before.diff(&after).unwrap();

    // By hand: `160: 0 0 0 0 8038 0 0 0 GIC mct_tick4` is only in `after`.
    let tick4 = diff.row(&irq(160)).unwrap();
    assert_eq!(tick4.presence, Presence::OnlyAfter);
    assert_eq!(
        tick4.counts,
        Counts::PerCpu(vec![0, 0, 0, 0, 8038, 0, 0, 0])
    );
    assert_eq!(tick4.row.handlers, ["mct_tick4"]);
    let new_rows = diff
        .rows
        .iter()
        .filter(|d| d.presence != Presence::Both)
        .count();
    assert_eq!(new_rows, 1);
}

#[test]
fn lisa_before_layout() {
    let text = read_data("lisa-exynos5-before.txt");
    let snapshot = Snapshot::parse(&text).unwrap();
    assert_eq!(snapshot.cpu_count, 8);
    assert_eq!(snapshot.rows.len(), data_line_count(&text));
    assert_eq!(snapshot.rows.len(), 96);
    assert!(snapshot.row(&irq(160)).is_none());

    // By hand: ` 65: 0 ... 0 GIC dma-pl330.2`, no hwirq-trigger column.
    let dma = row(&snapshot, &irq(65));
    assert_eq!(dma.line, 2);
    assert_eq!(dma.chip.as_deref(), Some("GIC"));
    assert_eq!(dma.hwirq, None);
    assert_eq!(dma.trigger, None);
    assert_eq!(dma.handlers, ["dma-pl330.2"]);

    // By hand: `103: 1 0 ... GIC ehci_hcd:usb1, ohci_hcd:usb2`.
    let usb = row(&snapshot, &irq(103));
    assert_eq!(usb.counts, Counts::PerCpu(vec![1, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(usb.handlers, ["ehci_hcd:usb1", "ohci_hcd:usb2"]);

    // By hand: `512: ... exynos-eint  gpio-keys: KEY_POWER`.
    let key = row(&snapshot, &irq(512));
    assert_eq!(key.chip.as_deref(), Some("exynos-eint"));
    assert_eq!(key.handlers, ["gpio-keys: KEY_POWER"]);

    // By hand: `dw-mci` handles 107, 108 and 109.
    let dw_mci: Vec<&Label> = snapshot
        .rows
        .iter()
        .filter(|r| r.handlers == ["dw-mci"])
        .map(|r| &r.label)
        .collect();
    assert_eq!(dw_mci, [&irq(107), &irq(108), &irq(109)]);
}

#[test]
fn lisa_before_ipi_and_err_rows() {
    let snapshot = parse_data("lisa-exynos5-before.txt");

    // By hand: `IPI1: 8751 7147 4615 5623 2334 2066 1449 1348 Rescheduling interrupts`.
    let ipi1 = row(&snapshot, &name("IPI1"));
    assert_eq!(
        ipi1.counts,
        Counts::PerCpu(vec![8751, 7147, 4615, 5623, 2334, 2066, 1449, 1348])
    );
    assert_eq!(ipi1.description.as_deref(), Some("Rescheduling interrupts"));
    assert_eq!(ipi1.chip, None);
    assert!(ipi1.handlers.is_empty());

    let err = row(&snapshot, &name("Err"));
    assert_eq!(err.counts, Counts::Total(0));
    assert_eq!(err.description, None);
    assert_eq!(snapshot.rows.last().unwrap().label, name("Err"));
}

#[test]
fn x86_8cpu_layout() {
    let text = read_data("interrupts-8cpu-x86_64.txt");
    let snapshot = Snapshot::parse(&text).unwrap();
    assert_eq!(snapshot.cpu_count, 8);
    assert_eq!(snapshot.rows.len(), data_line_count(&text));
    assert_eq!(snapshot.rows.len(), 38);

    // By hand: `  0: 38 0 ... IR-IO-APIC   2-edge      timer`.
    let timer = row(&snapshot, &irq(0));
    assert_eq!(timer.chip.as_deref(), Some("IR-IO-APIC"));
    assert_eq!(timer.hwirq, Some(2));
    assert_eq!(timer.trigger, Some(Trigger::Edge));
    assert_eq!(timer.handlers, ["timer"]);
    assert_eq!(timer.counts.total(), 38);

    // By hand: ` 16: 13 4 2 3 3 3 2 1 IR-IO-APIC  16-fasteoi   ehci_hcd:usb3, mmc0`.
    let shared = row(&snapshot, &irq(16));
    assert_eq!(shared.counts, Counts::PerCpu(vec![13, 4, 2, 3, 3, 3, 2, 1]));
    assert_eq!(shared.hwirq, Some(16));
    assert_eq!(shared.trigger, Some(Trigger::FastEoi));
    assert_eq!(shared.handlers, ["ehci_hcd:usb3", "mmc0"]);

    // By hand: ` 27: 836947 ... IR-PCI-MSI 512000-edge      0000:00:1f.2`.
    let sata = row(&snapshot, &irq(27));
    assert_eq!(sata.chip.as_deref(), Some("IR-PCI-MSI"));
    assert_eq!(sata.hwirq, Some(512_000));
    assert_eq!(sata.trigger, Some(Trigger::Edge));
    assert_eq!(sata.handlers, ["0000:00:1f.2"]);
    assert_eq!(
        sata.counts,
        Counts::PerCpu(vec![
            836947, 368771, 86379, 84935, 71356, 61231, 59367, 47157
        ])
    );
}

#[test]
fn x86_8cpu_architecture_rows() {
    let snapshot = parse_data("interrupts-8cpu-x86_64.txt");

    // By hand: `LOC: 18017794 5791007 ... Local timer interrupts`.
    let loc = row(&snapshot, &name("LOC"));
    assert_eq!(loc.description.as_deref(), Some("Local timer interrupts"));
    match &loc.counts {
        Counts::PerCpu(counts) => assert_eq!(counts[..2], [18017794, 5791007]),
        Counts::Total(_) => panic!("LOC must be per-CPU"),
    }
    assert_eq!(loc.chip, None);

    // ERR and MIS are single-value, and PIN/PIW come after them.
    assert_eq!(row(&snapshot, &name("ERR")).counts, Counts::Total(0));
    assert_eq!(row(&snapshot, &name("MIS")).counts, Counts::Total(0));
    let pin = row(&snapshot, &name("PIN"));
    assert_eq!(pin.counts, Counts::PerCpu(vec![0; 8]));
    assert_eq!(
        pin.description.as_deref(),
        Some("Posted-interrupt notification event")
    );
    assert!(pin.line > row(&snapshot, &name("MIS")).line);
}

#[test]
fn s390x_rows_end_after_counts() {
    let snapshot = parse_data("interrupts-2cpu-s390x.txt");
    assert_eq!(snapshot.cpu_count, 2);
    assert_eq!(snapshot.rows.len(), 2);

    // By hand: `EXT: 31903 57022` and `I/O: 6989 33457`.
    let ext = row(&snapshot, &name("EXT"));
    assert_eq!(ext.counts, Counts::PerCpu(vec![31903, 57022]));
    assert_eq!(ext.description, None);
    let io = row(&snapshot, &name("I/O"));
    assert_eq!(io.counts, Counts::PerCpu(vec![6989, 33457]));
    assert_eq!(io.description, None);
    assert_eq!(io.chip, None);
}

#[test]
fn i686_single_cpu_layout() {
    let text = read_data("interrupts-1cpu-i686.txt");
    let snapshot = Snapshot::parse(&text).unwrap();
    assert_eq!(snapshot.cpu_count, 1);
    assert_eq!(snapshot.rows.len(), data_line_count(&text));
    assert_eq!(snapshot.rows.len(), 33);

    // By hand: `  10:        130   IO-APIC  10-fasteoi   virtio0, qxl`.
    let shared = row(&snapshot, &irq(10));
    assert_eq!(shared.counts, Counts::PerCpu(vec![130]));
    assert_eq!(shared.chip.as_deref(), Some("IO-APIC"));
    assert_eq!(shared.hwirq, Some(10));
    assert_eq!(shared.trigger, Some(Trigger::FastEoi));
    assert_eq!(shared.handlers, ["virtio0", "qxl"]);

    // By hand: `  24:          0   PCI-MSI 81920-edge      ahci[0000:00:05.0]`.
    let ahci = row(&snapshot, &irq(24));
    assert_eq!(ahci.hwirq, Some(81920));
    assert_eq!(ahci.handlers, ["ahci[0000:00:05.0]"]);
    assert_eq!(row(&snapshot, &irq(25)).handlers, ["snd_hda_intel:card0"]);

    // By hand: `LOC:    6651207   Local timer interrupts`; ERR has no text.
    assert_eq!(
        row(&snapshot, &name("LOC")).counts,
        Counts::PerCpu(vec![6651207])
    );
    assert_eq!(row(&snapshot, &name("ERR")).counts, Counts::Total(0));
    let npi = row(&snapshot, &name("NPI"));
    assert_eq!(
        npi.description.as_deref(),
        Some("Nested posted-interrupt event")
    );
}

#[test]
fn softirqs_file_parses_as_named_rows() {
    let snapshot = parse_data("softirqs-8cpu-x86_64.txt");
    assert_eq!(snapshot.cpu_count, 8);
    assert_eq!(snapshot.rows.len(), 10);

    // By hand: `BLOCK_IOPOLL:` is all zeros, `HI: 12 0 1 0 0 0 5 0`.
    assert_eq!(row(&snapshot, &name("BLOCK_IOPOLL")).counts.total(), 0);
    assert_eq!(
        row(&snapshot, &name("HI")).counts,
        Counts::PerCpu(vec![12, 0, 1, 0, 0, 0, 5, 0])
    );
}

#[test]
fn arm_gic_hwirq_and_trigger_words() {
    let text = "           CPU0       CPU1\n 11:        100         20     GICv3  27 Level     arch_timer\n";
    let snapshot = Snapshot::parse(text).unwrap();
    let timer = row(&snapshot, &irq(11));
    assert_eq!(timer.chip.as_deref(), Some("GICv3"));
    assert_eq!(timer.hwirq, Some(27));
    assert_eq!(timer.trigger, Some(Trigger::Level));
    assert_eq!(timer.handlers, ["arch_timer"]);
}

#[test]
fn unknown_trigger_kept_by_name() {
    let text = "  CPU0\n  5:  1  chip  7-percpu_devid  foo\n";
    let snapshot = Snapshot::parse(text).unwrap();
    assert_eq!(
        row(&snapshot, &irq(5)).trigger,
        Some(Trigger::Other("percpu_devid".to_owned()))
    );
}

#[test]
fn rates_divide_deltas_by_interval() {
    let before = parse_data("lisa-exynos5-before.txt");
    let after = parse_data("lisa-exynos5-after.txt");
    let diff = before.diff(&after).unwrap();
    let rates = diff.rates(2.0).unwrap();

    // By hand: row 92 went from 1204 to 1294 on CPU0.
    let i2c = rates.iter().find(|r| r.label == irq(92)).unwrap();
    assert_eq!(i2c.total, 45.0);
    assert_eq!(i2c.per_cpu, [45.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);

    // Rows in only one snapshot have no rate, and single-value rows no per-CPU rates.
    assert!(rates.iter().all(|r| r.label != irq(160)));
    assert_eq!(rates.len(), diff.rows.len() - 1);
    let err = rates.iter().find(|r| r.label == name("Err")).unwrap();
    assert!(err.per_cpu.is_empty());
}

#[test]
fn rates_reject_invalid_interval() {
    let snapshot = parse_data("interrupts-2cpu-s390x.txt");
    let diff = snapshot.diff(&snapshot).unwrap();
    for secs in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(diff.rates(secs), Err(RateError::InvalidInterval(_))),
            "{secs}"
        );
    }
    assert_eq!(diff.rates(1.0).unwrap()[0].total, 0.0);
}

#[test]
fn diff_rejects_counter_going_backwards() {
    let before = parse_data("lisa-exynos5-before.txt");
    let after = parse_data("lisa-exynos5-after.txt");
    let error = after.diff(&before).unwrap_err();

    // By hand: row 92 (line 9) reads 1294 in `after` and 1204 in `before`.
    assert_eq!(
        error,
        DiffError::CounterWentBackwards {
            label: "92".to_owned(),
            line: 9,
            cpu: Some(0),
            before: 1294,
            after: 1204,
        }
    );
    assert!(error.to_string().contains("row `92`"), "{error}");
}

/// A 32-bit counter that fell by more than half its range wrapped; a
/// smaller fall, or one from past 32 bits, is an error.
#[test]
fn diff_counts_32_bit_wrap_once() {
    let before = Snapshot::parse("CPU0 CPU1\n 5: 4294967290 7 chip a\nERR: 4294967295\n").unwrap();
    let after = Snapshot::parse("CPU0 CPU1\n 5: 62 9 chip a\nERR: 3\n").unwrap();
    let diff = before.diff(&after).unwrap();
    assert_eq!(diff.rows[0].counts, Counts::PerCpu(vec![68, 2]));
    assert!(diff.rows[0].wrapped);
    assert_eq!(diff.rows[1].counts, Counts::Total(4));
    assert!(diff.rows[1].wrapped);

    let unwrapped =
        Snapshot::parse("CPU0 CPU1\n 5: 4294967295 9 chip a\nERR: 4294967295\n").unwrap();
    assert!(!before.diff(&unwrapped).unwrap().rows[0].wrapped);

    // Fell by less than 2^31: swapped snapshots, not a wrap.
    let lower = Snapshot::parse("CPU0 CPU1\n 5: 3000000000 9 chip a\nERR: 4294967295\n").unwrap();
    assert!(matches!(
        before.diff(&lower),
        Err(DiffError::CounterWentBackwards { cpu: Some(0), .. })
    ));
    // A count past 32 bits cannot have wrapped at 2^32.
    let wide = Snapshot::parse("CPU0\nERR: 5000000000\n").unwrap();
    let small = Snapshot::parse("CPU0\nERR: 5\n").unwrap();
    assert!(matches!(
        wide.diff(&small),
        Err(DiffError::CounterWentBackwards { cpu: None, .. })
    ));
}

/// A later snapshot whose rows are the first rows of the earlier one was
/// cut short; it is not taken for another machine.
#[test]
fn diff_rejects_later_cut_short() {
    let before = Snapshot::parse("CPU0\n1: 5 chip a\n2: 6 chip b\nERR: 0\n").unwrap();
    for (later, rows) in [("CPU0\n", 0), ("CPU0\n1: 9 chip a\n", 1)] {
        let after = Snapshot::parse(later).unwrap();
        let error = before.diff(&after).unwrap_err();
        assert_eq!(
            error,
            DiffError::LaterCutShort {
                rows,
                before_rows: 3
            }
        );
        assert!(error.to_string().contains("was it cut short?"), "{error}");
    }
}

#[test]
fn diff_keeps_earlier_only_rows_last() {
    let before = Snapshot::parse("CPU0\n1: 5 chip a\n2: 6 chip b\n").unwrap();
    let after = Snapshot::parse("CPU0\n2: 9 chip b\n").unwrap();
    let diff = before.diff(&after).unwrap();
    assert_eq!(diff.rows.len(), 2);
    assert_eq!(diff.rows[0].counts, Counts::PerCpu(vec![3]));
    assert_eq!(diff.rows[1].presence, Presence::OnlyBefore);
    assert_eq!(diff.rows[1].counts, Counts::PerCpu(vec![5]));
}

#[test]
fn diff_rejects_other_machine_shapes() {
    let two = Snapshot::parse("CPU0 CPU1\nERR: 1\n").unwrap();
    let one = Snapshot::parse("CPU0\nERR: 1\n").unwrap();
    assert_eq!(
        two.diff(&one),
        Err(DiffError::CpuCountChanged {
            before: 2,
            after: 1
        })
    );

    let per_cpu = Snapshot::parse("CPU0 CPU1\nERR: 1 2\n").unwrap();
    assert_eq!(
        two.diff(&per_cpu),
        Err(DiffError::ShapeChanged {
            label: "ERR".to_owned(),
            line: 2
        })
    );

    let lower = Snapshot::parse("CPU0 CPU1\nERR: 0\n").unwrap();
    assert!(matches!(
        two.diff(&lower),
        Err(DiffError::CounterWentBackwards {
            cpu: None,
            before: 1,
            after: 0,
            ..
        })
    ));
}

#[test]
fn parse_rejects_empty_input() {
    assert_eq!(Snapshot::parse(""), Err(ProcInterruptsError::Empty));
    assert_eq!(
        Snapshot::parse(" \n\n  \n"),
        Err(ProcInterruptsError::Empty)
    );
}

#[test]
fn parse_rejects_missing_header() {
    let error = Snapshot::parse("\n  0:  38  IO-APIC  2-edge  timer\n").unwrap_err();
    assert!(
        matches!(error, ProcInterruptsError::MissingHeader { line: 2, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with("line 2: missing header"),
        "{error}"
    );

    let error = Snapshot::parse("CPU0 CPUx\n").unwrap_err();
    assert!(matches!(
        error,
        ProcInterruptsError::MissingHeader { line: 1, .. }
    ));
}

#[test]
fn parse_rejects_non_number_count() {
    let error = Snapshot::parse("CPU0 CPU1 CPU2\n 5: 1 x2 3 chip a\n").unwrap_err();
    assert_eq!(
        error,
        ProcInterruptsError::InvalidCount {
            line: 2,
            text: "x2".to_owned()
        }
    );
    assert_eq!(
        error.to_string(),
        "line 2: invalid count `x2`, expected a decimal number"
    );

    for (text, bad) in [
        ("CPU0\n 5: 12x chip a\n", "12x"),
        ("CPU0\n 5: -3 chip a\n", "-3"),
        ("CPU0\nLOC: text only\n", "text"),
    ] {
        assert_eq!(
            Snapshot::parse(text),
            Err(ProcInterruptsError::InvalidCount {
                line: 2,
                text: bad.to_owned()
            }),
            "{text}"
        );
    }
}

#[test]
fn parse_rejects_count_past_u64() {
    let error = Snapshot::parse("CPU0\n 5: 99999999999999999999 chip a\n").unwrap_err();
    assert_eq!(
        error,
        ProcInterruptsError::CountTooLarge {
            line: 2,
            text: "99999999999999999999".to_owned()
        }
    );
    assert_eq!(
        error.to_string(),
        "line 2: count `99999999999999999999` is out of range; expected at most \
         18446744073709551615, though Linux prints 32-bit counts"
    );
}

#[test]
fn parse_rejects_too_few_counts() {
    let text = "CPU0 CPU1 CPU2\n 1: 1 2 3 chip a\n 5: 1 2 chip b\n";
    assert_eq!(
        Snapshot::parse(text),
        Err(ProcInterruptsError::TooFewCounts {
            line: 3,
            expected: 3,
            found: 2
        })
    );
    // A numeric row with one count is never a single-value row.
    assert_eq!(
        Snapshot::parse("CPU0 CPU1\n 5: 1\n"),
        Err(ProcInterruptsError::TooFewCounts {
            line: 2,
            expected: 2,
            found: 1
        })
    );
}

#[test]
fn parse_rejects_too_many_counts() {
    assert_eq!(
        Snapshot::parse("CPU0 CPU1\n 5: 1 2 3 chip a\n"),
        Err(ProcInterruptsError::TooManyCounts {
            line: 2,
            expected: 2,
            text: "3".to_owned()
        })
    );
}

#[test]
fn parse_rejects_missing_label_and_duplicates() {
    assert!(matches!(
        Snapshot::parse("CPU0\n 1 2 3\n"),
        Err(ProcInterruptsError::MissingLabel { line: 2, .. })
    ));
    assert!(matches!(
        Snapshot::parse("CPU0\n: 1\n"),
        Err(ProcInterruptsError::MissingLabel { line: 2, .. })
    ));
    assert_eq!(
        Snapshot::parse("CPU0\n 7: 1 c a\nERR: 0\n 7: 2 c b\n"),
        Err(ProcInterruptsError::DuplicateLabel {
            line: 4,
            first_line: 2,
            label: "7".to_owned()
        })
    );
}

#[test]
fn error_text_is_shortened() {
    let long = "x".repeat(500);
    let error = Snapshot::parse(&long).unwrap_err();
    let ProcInterruptsError::MissingHeader { text, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        text.chars().count(),
        crate::record::error::MAX_SHOWN_CHARS + 3
    );
    assert!(text.ends_with("..."));
}

proptest! {
    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        let _ = Snapshot::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_row_like_text(
        cpus in 1usize..4,
        rows in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    Just("0".to_owned()), Just("123".to_owned()), Just(":".to_owned()),
                    Just("LOC:".to_owned()), Just(" 5:".to_owned()), Just("2-edge".to_owned()),
                    Just("GIC".to_owned()), Just(", ".to_owned()), Just("  ".to_owned()),
                    Just("\u{e9}".to_owned()), Just("-1".to_owned()),
                    Just("18446744073709551616".to_owned()), any::<String>(),
                ],
                0..8,
            ),
            0..6,
        ),
    ) {
        let header: Vec<String> = (0..cpus).map(|i| format!("CPU{i}")).collect();
        let mut text = header.join(" ");
        for cells in rows {
            text.push('\n');
            text.push_str(&cells.join(" "));
        }
        if let Ok(snapshot) = Snapshot::parse(&text) {
            prop_assert_eq!(snapshot.cpu_count, cpus);
            let _ = snapshot.diff(&snapshot);
        }
    }
}
