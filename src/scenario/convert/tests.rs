//! Conversions of real recordings: every generated scenario is parsed back
//! with [`Scenario::parse`], and the tests check the parsed values.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::scenario::{ArrivalSpec, DeviceKind, DeviceSpec, MAX_RATE_HZ, Trigger};

fn read_data(path: &str) -> String {
    let path = format!("{}/data/real/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn snapshot(text: &str) -> Snapshot {
    Snapshot::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Converts two snapshot texts and parses the result back.
fn convert(
    before: &str,
    after: &str,
    interval_secs: f64,
    cpus: Option<usize>,
) -> (String, Scenario) {
    let (before, after) = (snapshot(before), snapshot(after));
    let text = scenario_from_proc_interrupts(&ProcInterruptsInput {
        before: &before,
        after: &after,
        before_name: "before.txt",
        after_name: "after.txt",
        interval_secs,
        duration: Duration::from_secs(2),
        cpus,
    })
    .unwrap();
    let scenario = Scenario::parse(&text, "generated.toml", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, scenario)
}

fn lisa(interval_secs: f64, cpus: Option<usize>) -> (String, Scenario) {
    convert(
        &read_data("proc-interrupts/lisa-exynos5-before.txt"),
        &read_data("proc-interrupts/lisa-exynos5-after.txt"),
        interval_secs,
        cpus,
    )
}

/// Events per second a device's arrival requests.
fn rate_hz(device: &DeviceSpec) -> f64 {
    match &device.arrival {
        ArrivalSpec::Poisson { rate_hz } => *rate_hz,
        ArrivalSpec::Periodic { period } => 1.0 / period.as_secs_f64(),
        other => panic!("{}: unexpected arrival {other:?}", device.name),
    }
}

/// Sum of the device rates per line.
fn line_rates(scenario: &Scenario) -> BTreeMap<u32, f64> {
    let mut rates = BTreeMap::new();
    for device in &scenario.devices {
        *rates.entry(device.irq).or_insert(0.0) += rate_hz(device);
    }
    rates
}

fn devices_on(scenario: &Scenario, irq: u32) -> Vec<&DeviceSpec> {
    scenario
        .devices
        .iter()
        .filter(|device| device.irq == irq)
        .collect()
}

fn handler(device: &DeviceSpec) -> &str {
    match &device.kind {
        DeviceKind::Generic { handler, .. } => handler,
        other => panic!("{}: not generic: {other:?}", device.name),
    }
}

/// Rewrites every count of a snapshot text with `f`, keeping the rest of
/// each line as it is.
fn map_counts(text: &str, f: impl Fn(u64) -> u64) -> String {
    let parsed = snapshot(text);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for row in &parsed.rows {
        let original = &text.lines().nth(row.line - 1).unwrap();
        let (label, mut rest) = original.split_once(':').unwrap();
        let count_cells = match &row.counts {
            Counts::PerCpu(counts) => counts.len(),
            Counts::Total(_) => 1,
        };
        let mut rebuilt = format!("{label}:");
        for _ in 0..count_cells {
            let trimmed = rest.trim_start();
            let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
            let count: u64 = trimmed[..end].parse().unwrap();
            rebuilt.push_str(&format!(" {:>10}", f(count)));
            rest = &trimmed[end..];
        }
        rebuilt.push_str(rest);
        lines[row.line - 1] = rebuilt;
    }
    lines.join("\n") + "\n"
}

use crate::record::proc_interrupts::Counts;

/// Reads the numbered rows of the expected LISA diff: line to total delta.
fn expected_lisa_deltas() -> BTreeMap<u32, u64> {
    let expected = read_data("proc-interrupts/lisa-exynos5-diff-expected.txt");
    let mut deltas = BTreeMap::new();
    for row in expected.lines().skip(1) {
        let row = row.trim_start();
        let row = row.strip_prefix('>').unwrap_or(row);
        let (label, cells) = row.split_once(':').unwrap();
        let Ok(irq) = label.trim().parse::<u32>() else {
            continue;
        };
        let total: u64 = cells
            .split_whitespace()
            .take(8)
            .map(|cell| cell.parse::<u64>().unwrap())
            .sum();
        deltas.insert(irq, total);
    }
    deltas
}

#[test]
fn lisa_rates_times_interval_equal_expected_deltas() {
    let expected = expected_lisa_deltas();
    assert_eq!(expected.len(), 90);
    for interval in [1.0, 2.5, 60.0] {
        let (_, scenario) = lisa(interval, None);
        let rates = line_rates(&scenario);
        for (irq, delta) in &expected {
            match rates.get(irq) {
                Some(rate) => assert_eq!(
                    (rate * interval).round() as u64,
                    *delta,
                    "line {irq}, interval {interval}"
                ),
                None => assert_eq!(*delta, 0, "line {irq} has no device"),
            }
        }
        for irq in rates.keys() {
            assert!(
                expected.contains_key(irq),
                "device on unrecorded line {irq}"
            );
        }
    }
}

#[test]
fn lisa_poisson_rates_are_exact() {
    let (_, scenario) = lisa(1.0, None);
    let device = devices_on(&scenario, 114)[0];
    assert_eq!(device.arrival, ArrivalSpec::Poisson { rate_hz: 1865.0 });
}

#[test]
fn lisa_handlers_triggers_and_cpus() {
    let (text, scenario) = lisa(1.0, None);
    assert_eq!(scenario.machine.cpus, 8);
    assert_eq!(scenario.machine.irqs, 656);
    assert_eq!(scenario.duration, Duration::from_secs(2));
    assert!(scenario.timers.is_empty());
    assert!(text.contains("no hwirq-trigger column"), "{text}");
    for device in &scenario.devices {
        assert_eq!(device.trigger, Trigger::Edge, "{}", device.name);
    }

    // By hand: `114: 28074 0 ... GIC mipi-dsi` after, 26209 before.
    let dsi = devices_on(&scenario, 114);
    assert_eq!(dsi.len(), 1);
    assert_eq!(dsi[0].name, "mipi-dsi");
    assert_eq!(handler(dsi[0]), "mipi-dsi");
    assert_eq!(dsi[0].cpu, 0);
    assert!(!dsi[0].shared);

    // mali.0 is on three lines, two of which counted.
    assert_eq!(devices_on(&scenario, 149)[0].name, "mali.0@149");
    assert_eq!(devices_on(&scenario, 251)[0].name, "mali.0@251");
}

#[test]
fn lisa_shared_line_splits_its_rate() {
    let (_, scenario) = lisa(1.0, None);
    let usb = devices_on(&scenario, 104);
    let handlers: Vec<&str> = usb.iter().map(|device| handler(device)).collect();
    assert_eq!(handlers, ["xhci_hcd:usb3", "exynos-ss-udc.0"]);
    for device in usb {
        assert!(device.shared);
        assert_eq!(device.arrival, ArrivalSpec::Poisson { rate_hz: 52.5 });
    }
}

#[test]
fn lisa_timer_lines_are_periodic_on_their_cpu() {
    let (_, scenario) = lisa(1.0, None);
    for (cpu, irq) in [(0, 152), (1, 153), (2, 154), (3, 155), (4, 160), (7, 163)] {
        let tick = devices_on(&scenario, irq)[0];
        assert_eq!(handler(tick), format!("mct_tick{cpu}"));
        assert_eq!(tick.cpu, cpu);
        assert!(
            matches!(tick.arrival, ArrivalSpec::Periodic { .. }),
            "{tick:?}"
        );
    }
}

#[test]
fn lisa_line_new_in_after_says_so() {
    let (text, scenario) = lisa(1.0, None);
    let tick4 = devices_on(&scenario, 160)[0];
    assert_eq!(
        tick4.arrival,
        ArrivalSpec::Periodic {
            // A rate's period rounds up to a whole nanosecond.
            period: Duration::from_nanos(124_410)
        }
    );
    let comment = text
        .lines()
        .skip_while(|line| !line.starts_with("# Line 160 "))
        .nth(1)
        .unwrap();
    assert!(comment.contains("Only in the later snapshot"), "{comment}");
}

#[test]
fn lisa_zero_and_named_rows_listed() {
    let (text, scenario) = lisa(1.0, None);
    assert!(devices_on(&scenario, 65).is_empty());
    assert!(text.contains("line 65 (dma-pl330.2)"), "{text}");
    assert!(
        text.contains("line 103 (ehci_hcd:usb1, ohci_hcd:usb2)"),
        "{text}"
    );
    assert!(
        text.contains("#   IPI1 (Rescheduling interrupts): 211 in 1 s = 211/s"),
        "{text}"
    );
    assert!(text.contains("IPI5 (CPU backtrace); Err\n"), "{text}");
}

#[test]
fn lisa_cpus_option_folds_affinity() {
    let (text, scenario) = lisa(1.0, Some(2));
    assert_eq!(scenario.machine.cpus, 2);
    assert_eq!(devices_on(&scenario, 161)[0].cpu, 1);
    assert_eq!(devices_on(&scenario, 160)[0].cpu, 0);
    assert!(
        text.contains("recorded CPU c runs on simulated CPU c mod 2"),
        "{text}"
    );
}

#[test]
fn x86_triggers_shared_lines_and_loc_timers() {
    let after = read_data("proc-interrupts/interrupts-8cpu-x86_64.txt");
    let before = map_counts(&after, |count| count - count / 3);
    let interval = 10.0;
    let (text, scenario) = convert(&before, &after, interval, None);
    let parsed_after = snapshot(&after);

    // Every numbered row with a delta is on its line at delta / interval.
    let rates = line_rates(&scenario);
    for row in &parsed_after.rows {
        let crate::record::proc_interrupts::Label::Irq(irq) = row.label else {
            continue;
        };
        let delta: u64 = match &row.counts {
            Counts::PerCpu(counts) => counts.iter().map(|count| count / 3).sum(),
            Counts::Total(total) => total / 3,
        };
        let rate = rates.get(&irq).copied().unwrap_or(0.0);
        assert_eq!((rate * interval).round() as u64, delta, "line {irq}");
    }

    // By hand: `  9: ... 9-fasteoi acpi` is level, `  0: ... 2-edge timer` edge.
    assert_eq!(devices_on(&scenario, 9)[0].trigger, Trigger::Level);
    assert_eq!(devices_on(&scenario, 0)[0].trigger, Trigger::Edge);
    let shared = devices_on(&scenario, 16);
    assert_eq!(shared.len(), 2);
    assert!(shared.iter().all(|device| device.shared));
    assert!(shared.iter().all(|device| device.trigger == Trigger::Level));

    // By hand: line 29 (enp0s25) counts most on CPU0: 3249898.
    assert_eq!(devices_on(&scenario, 29)[0].cpu, 0);
    // By hand: line 35 (snd_hda_intel) counts most on CPU2: 570.
    assert_eq!(devices_on(&scenario, 35)[0].cpu, 2);
    assert_eq!(devices_on(&scenario, 35)[0].name, "snd_hda_intel@35");

    // LOC: one timer per CPU on lines 36 to 43, at the CPU's rate.
    assert_eq!(scenario.timers.len(), 8);
    assert_eq!(scenario.machine.irqs, 44);
    let loc = [
        18017794u64,
        5791007,
        18785621,
        5656822,
        18296406,
        5364275,
        18002503,
        5946670,
    ];
    for (cpu, timer) in scenario.timers.iter().enumerate() {
        assert_eq!(timer.name, format!("LOC/cpu{cpu}"));
        assert_eq!(timer.cpu, cpu);
        assert_eq!(timer.irq, 36 + cpu as u32);
        let crate::scenario::TimerKind::Periodic { period, .. } = timer.kind else {
            panic!("{timer:?}");
        };
        let ticks = interval / period.as_secs_f64();
        let expected = (loc[cpu] / 3) as f64;
        assert!(
            (ticks - expected).abs() / expected < 1e-3,
            "{ticks} {expected}"
        );
    }

    // Named rows that counted are listed by kind, ERR and MIS as zero.
    assert!(text.contains("Inter-processor interrupts"), "{text}");
    assert!(text.contains("RES (Rescheduling interrupts): "), "{text}");
    assert!(text.contains("NMI (Non-maskable interrupts): "), "{text}");
    assert!(text.contains("MCP (Machine check polls): "), "{text}");
    assert!(text.contains(" ERR;"), "{text}");
    assert!(text.contains(" MIS; PIN (Posted"), "{text}");
}

#[test]
fn i686_single_cpu_shared_lines() {
    let after = read_data("proc-interrupts/interrupts-1cpu-i686.txt");
    let before = map_counts(&after, |count| count / 2);
    let (_, scenario) = convert(&before, &after, 1.0, None);
    assert_eq!(scenario.machine.cpus, 1);
    let shared: Vec<&str> = devices_on(&scenario, 11).into_iter().map(handler).collect();
    assert_eq!(shared, ["uhci_hcd:usb1", "ens3"]);
    // By hand: `  11: 307009 ... uhci_hcd:usb1, ens3`; the delta is 153505.
    assert_eq!(line_rates(&scenario)[&11], 153505.0);
    // By hand: `  24: 0 PCI-MSI 81920-edge ahci[0000:00:05.0]` never counted.
    assert!(devices_on(&scenario, 24).is_empty());
    assert_eq!(handler(devices_on(&scenario, 25)[0]), "snd_hda_intel:card0");
}

/// Converts a pair that has nothing to simulate and returns the error.
fn nothing(before: &str, after: &str) -> ConvertError {
    let (before, after) = (snapshot(before), snapshot(after));
    scenario_from_proc_interrupts(&ProcInterruptsInput {
        before: &before,
        after: &after,
        before_name: "before.txt",
        after_name: "after.txt",
        interval_secs: 1.0,
        duration: Duration::from_secs(2),
        cpus: None,
    })
    .expect_err("nothing to simulate")
}

#[test]
fn s390x_named_rows_only_give_nothing_to_simulate() {
    let after = read_data("proc-interrupts/interrupts-2cpu-s390x.txt");
    let before = map_counts(&after, |count| count / 2);
    let error = nothing(&before, &after);
    assert!(
        matches!(error, ConvertError::NothingToSimulate { .. }),
        "{error}"
    );
}

#[test]
fn same_snapshot_twice_gives_nothing_to_simulate() {
    let text = read_data("proc-interrupts/interrupts-8cpu-x86_64.txt");
    let error = nothing(&text, &text);
    assert!(
        matches!(error, ConvertError::NothingToSimulate { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("the same file twice"), "{error}");
}

const HEADER: &str = "           CPU0       CPU1\n";

fn pair(before_rows: &str, after_rows: &str) -> (String, String) {
    (
        format!("{HEADER}{before_rows}"),
        format!("{HEADER}{after_rows}"),
    )
}

#[test]
fn rate_above_limit_is_clamped_with_comment() {
    let (before, after) = pair(
        " 40:  0  0  GICv3  40 Edge  storm\n",
        " 40:  5000000  0  GICv3  40 Edge  storm\n",
    );
    let (text, scenario) = convert(&before, &after, 2.0, None);
    assert_eq!(
        scenario.devices[0].arrival,
        ArrivalSpec::Poisson {
            rate_hz: MAX_RATE_HZ
        }
    );
    assert!(
        text.contains("Recorded 2500000/s per device, above the 1000000/s"),
        "{text}"
    );
}

#[test]
fn before_only_line_left_out() {
    let (before, after) = pair(
        " 40:  1  0  GICv3  40 Edge  gone\n 41:  1  0  GICv3  41 Level  kept\n",
        " 41:  9  0  GICv3  41 Level  kept\n",
    );
    let (text, scenario) = convert(&before, &after, 1.0, None);
    assert_eq!(scenario.devices.len(), 1);
    assert_eq!(scenario.devices[0].trigger, Trigger::Level);
    assert!(
        text.contains("line 40 (gone): only in the earlier snapshot"),
        "{text}"
    );
    // The line numbers cover the line that went away, too.
    assert_eq!(scenario.machine.irqs, 42);
}

#[test]
fn per_cpu_timer_on_several_cpus_becomes_timers() {
    let (before, after) = pair(
        " 11:  100  200  GICv3  27 Level  arch_timer\n 50:  0  0  GICv3  50 Level  dev\n",
        " 11:  350  300  GICv3  27 Level  arch_timer\n 50:  0  4  GICv3  50 Level  dev\n",
    );
    let (text, scenario) = convert(&before, &after, 1.0, None);
    let names: Vec<&str> = scenario.timers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["arch_timer@11/cpu0", "arch_timer@11/cpu1"]);
    let lines: Vec<u32> = scenario.timers.iter().map(|t| t.irq).collect();
    assert_eq!(lines, [51, 52]);
    assert!(devices_on(&scenario, 11).is_empty());
    assert!(
        text.contains("line 11 (arch_timer, a per-CPU interrupt)"),
        "{text}"
    );
    let crate::scenario::TimerKind::Periodic { period, .. } = scenario.timers[0].kind else {
        panic!();
    };
    assert_eq!(period, Duration::from_millis(4));
}

#[test]
fn old_x86_chip_names_carry_the_trigger() {
    let (before, after) = pair(
        "  1:  0  0  IO-APIC-edge  i8042\n  9:  0  0  IO-APIC-fasteoi  acpi\n",
        "  1:  3  0  IO-APIC-edge  i8042\n  9:  0  7  IO-APIC-fasteoi  acpi\n",
    );
    let (text, scenario) = convert(&before, &after, 1.0, None);
    assert_eq!(devices_on(&scenario, 1)[0].trigger, Trigger::Edge);
    assert_eq!(devices_on(&scenario, 9)[0].trigger, Trigger::Level);
    assert_eq!(devices_on(&scenario, 9)[0].cpu, 1);
    assert!(!text.contains("edge assumed"), "{text}");
    assert!(!text.contains("no hwirq-trigger column"), "{text}");
}

#[test]
fn unknown_flow_is_edge_with_comment() {
    let (before, after) = pair(
        "  5:  0  0  IO-APIC   5-simple   odd\n  6:  0  0  IO-APIC   6-edge  plain\n",
        "  5:  2  0  IO-APIC   5-simple   odd\n  6:  1  0  IO-APIC   6-edge  plain\n",
    );
    let (text, scenario) = convert(&before, &after, 1.0, None);
    assert_eq!(devices_on(&scenario, 5)[0].trigger, Trigger::Edge);
    assert!(
        text.contains("Flow `simple` is neither edge nor level"),
        "{text}"
    );
}

#[test]
fn handler_names_needing_escapes_round_trip() {
    let name = r#"odd "quoted" \name"#;
    let (before, after) = pair(
        &format!("  5:  0  0  GIC  {name}\n"),
        &format!("  5:  4  0  GIC  {name}\n"),
    );
    let (_, scenario) = convert(&before, &after, 1.0, None);
    assert_eq!(handler(&scenario.devices[0]), name);
    assert_eq!(scenario.devices[0].name, name);
}

#[test]
fn handlerless_row_named_after_its_line() {
    let (before, after) = pair("  7:  0  0  XT-PIC\n", "  7:  0  3  XT-PIC\n");
    let (text, scenario) = convert(&before, &after, 1.0, None);
    assert_eq!(scenario.devices[0].name, "irq7");
    assert!(text.contains("No handler name recorded"), "{text}");
}

#[test]
fn invalid_interval_rejected() {
    let text = read_data("proc-interrupts/lisa-exynos5-before.txt");
    let parsed = snapshot(&text);
    for interval in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let error = scenario_from_proc_interrupts(&ProcInterruptsInput {
            before: &parsed,
            after: &parsed,
            before_name: "a",
            after_name: "b",
            interval_secs: interval,
            duration: Duration::from_secs(1),
            cpus: None,
        })
        .unwrap_err();
        assert!(matches!(error, ConvertError::InvalidInterval(_)), "{error}");
        assert_eq!(error.exit_code(), EXIT_INVALID_INPUT);
    }
}

#[test]
fn swapped_snapshots_rejected() {
    let before = snapshot(&read_data("proc-interrupts/lisa-exynos5-before.txt"));
    let after = snapshot(&read_data("proc-interrupts/lisa-exynos5-after.txt"));
    let error = scenario_from_proc_interrupts(&ProcInterruptsInput {
        before: &after,
        after: &before,
        before_name: "after.txt",
        after_name: "before.txt",
        interval_secs: 1.0,
        duration: Duration::from_secs(1),
        cpus: None,
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot diff after.txt and before.txt: row `92` (line 9) cpu0: counter went backwards \
         from 1294 to 1204, which no wrap of a 32-bit count explains; expected the earlier \
         snapshot first, both from one boot"
    );
}

#[test]
fn local_timer_names() {
    for name in [
        "arch_timer",
        "twd",
        "local_timer",
        "mct_tick0",
        "mct_tick12",
    ] {
        assert!(is_local_timer(name), "{name}");
    }
    for name in [
        "mct_tick",
        "mct_comp_irq",
        "timer",
        "arch_timer2",
        "mct_tickx",
    ] {
        assert!(!is_local_timer(name), "{name}");
    }
}

// ftrace.

/// Converts a trace text and parses the result with replay paths resolved
/// against `base`.
fn convert_trace(text: &str, replay_path: &str, base: &Path) -> (String, Scenario) {
    let trace = Trace::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let generated = scenario_from_ftrace(&FtraceInput {
        trace: &trace,
        trace_name: "trace.txt",
        replay_path,
        duration: None,
        cpus: None,
    })
    .unwrap();
    let scenario = Scenario::parse(&generated, "generated.toml", base)
        .unwrap_or_else(|e| panic!("{e}\n{generated}"));
    (generated, scenario)
}

/// Writes `text` to a file of its own in the target folder, beside the
/// test binary, so that `cargo clean` removes it.
fn temporary_trace(name: &str, text: &str) -> std::path::PathBuf {
    let binary = std::env::current_exe().unwrap();
    let folder = binary
        .parent()
        .unwrap()
        .join(format!("convert-tests-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn catapult_irq_line_replayed() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/real/ftrace");
    let text = read_data("ftrace/catapult-irq-lines.txt");
    let (generated, scenario) = convert_trace(&text, "catapult-irq-lines.txt", &data);
    assert_eq!(scenario.machine.cpus, 2);
    assert_eq!(scenario.machine.irqs, 28);
    // By hand: the trace runs from 14063.477231 to 14063.748384.
    assert_eq!(scenario.duration, Duration::from_millis(272));
    assert_eq!(scenario.devices.len(), 1);
    let timer = &scenario.devices[0];
    assert_eq!((timer.irq, timer.cpu), (27, 1));
    assert_eq!(handler(timer), "arch_timer");
    let ArrivalSpec::Replay { offsets, irq, .. } = &timer.arrival else {
        panic!("{timer:?}");
    };
    assert_eq!(*irq, 27);
    // By hand: 14063.748288 - 14063.477231.
    assert_eq!(offsets, &[Duration::from_micros(271_057)]);
    assert!(generated.contains("1 softirq_entry event: "), "{generated}");
}

#[test]
fn trace_cmd_report_converts_and_names_its_losses() {
    let text = "\
version = 6
cpus=4
          <idle>-0     [000]  5103.449510: irq_handler_entry:    irq=27 name=arch_timer
CPU:0 [204 EVENTS DROPPED]
          <idle>-0     [000]  5103.453510: irq_handler_entry:    irq=27 name=arch_timer
CPU:1 [EVENTS DROPPED]
          <idle>-0     [001]  5103.455510: irq_handler_entry:    irq=27 name=arch_timer
";
    let path = temporary_trace("trace-cmd.txt", text);
    let (generated, scenario) = convert_trace(text, "trace-cmd.txt", path.parent().unwrap());
    // The CPUs that recorded nothing are named, not simulated.
    assert_eq!(scenario.machine.cpus, 2);
    assert!(
        generated.contains("The trace's host had 4 CPUs; events were recorded on the first 2"),
        "{generated}"
    );
    let ArrivalSpec::Replay { offsets, .. } = &scenario.devices[0].arrival else {
        panic!("{generated}");
    };
    assert_eq!(offsets.len(), 3);
    assert!(
        generated.contains(
            "# The trace lost events (204 on CPU0, an unknown number on CPU1; first mark on \
             line 4): the interrupts among them are not replayed."
        ),
        "{generated}"
    );
}

const SHARED_WITH_WORK: &str = "\
 <idle>-0 [001] d.h1 100.000100: irq_handler_entry: irq=16 name=ehci_hcd:usb3
 <idle>-0 [001] d.h1 100.000102: workqueue_queue_work: work struct=ffff0001 function=usb_work workqueue=events req_cpu=8 cpu=1
 <idle>-0 [001] d.h1 100.000104: irq_handler_exit: irq=16 ret=handled
 <idle>-0 [001] d.h1 100.000105: irq_handler_entry: irq=16 name=mmc0
 <idle>-0 [001] d.h1 100.000106: irq_handler_exit: irq=16 ret=unhandled
 kworker/1:1-50 [001] .... 100.000200: workqueue_execute_start: work struct ffff0001: function usb_work
 kworker/1:1-50 [001] .... 100.000230: workqueue_execute_end: work struct ffff0001: function usb_work
 <idle>-0 [001] d.h1 100.001100: irq_handler_entry: irq=16 name=ehci_hcd:usb3
 <idle>-0 [001] d.h1 100.001102: workqueue_queue_work: work struct=ffff0001 function=usb_work workqueue=events req_cpu=8 cpu=1
 <idle>-0 [001] d.h1 100.001104: irq_handler_exit: irq=16 ret=handled
 <idle>-0 [001] d.h1 100.001105: irq_handler_entry: irq=16 name=mmc0
 <idle>-0 [001] d.h1 100.001106: irq_handler_exit: irq=16 ret=unhandled
 kworker/1:1-50 [001] .... 100.001200: workqueue_execute_start: work struct ffff0001: function usb_work
 kworker/1:1-50 [001] .... 100.001250: workqueue_execute_end: work struct ffff0001: function usb_work
 <idle>-0 [000] d.h1 100.002000: irq_handler_entry: irq=16 name=ehci_hcd:usb3
 <idle>-0 [000] d.h1 100.002004: irq_handler_exit: irq=16 ret=handled
 <idle>-0 [000] d.h1 100.002005: irq_handler_entry: irq=16 name=mmc0
 <idle>-0 [000] d.h1 100.002006: irq_handler_exit: irq=16 ret=unhandled
 kworker/0:2-60 [000] .... 100.003000: workqueue_execute_start: work struct ffff0999: function vmstat_update
 kworker/0:2-60 [000] .... 100.003010: workqueue_execute_end: work struct ffff0999: function vmstat_update
";

/// On a shared line every handler records one entry per interrupt, so the
/// device takes the name of the handler that returned `handled`, not the
/// first one called.
#[test]
fn shared_line_named_after_handling_handler() {
    let text = "\
 <idle>-0 [000] d.h1 100.000100: irq_handler_entry: irq=16 name=ehci_hcd:usb3
 <idle>-0 [000] d.h1 100.000101: irq_handler_exit: irq=16 ret=unhandled
 <idle>-0 [000] d.h1 100.000102: irq_handler_entry: irq=16 name=mmc0
 <idle>-0 [000] d.h1 100.000105: irq_handler_exit: irq=16 ret=handled
 <idle>-0 [001] d.h1 100.001100: irq_handler_entry: irq=16 name=ehci_hcd:usb3
 <idle>-0 [001] d.h1 100.001101: irq_handler_exit: irq=16 ret=unhandled
 <idle>-0 [001] d.h1 100.001102: irq_handler_entry: irq=16 name=mmc0
 <idle>-0 [001] d.h1 100.001105: irq_handler_exit: irq=16 ret=handled
";
    let path = temporary_trace("shared-handled.txt", text);
    let (generated, scenario) = convert_trace(text, "shared-handled.txt", path.parent().unwrap());
    assert_eq!(scenario.devices.len(), 1, "{generated}");
    assert_eq!(handler(&scenario.devices[0]), "mmc0", "{generated}");
    assert!(
        generated.contains("Handlers recorded: ehci_hcd:usb3 (2), mmc0 (2)"),
        "{generated}"
    );
}

/// A trace whose every line is beyond irq-sim's lines gets an error that
/// names the limit, instead of one that asks for IRQ events it has.
#[test]
fn trace_with_lines_beyond_simulator_rejected() {
    let text = " <idle>-0 [000] d.h1 100.000100: irq_handler_entry: irq=99999 name=big\n";
    let trace = Trace::parse(text).unwrap();
    let error = scenario_from_ftrace(&FtraceInput {
        trace: &trace,
        trace_name: "big.txt",
        replay_path: "big.txt",
        duration: None,
        cpus: None,
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "big.txt: every recorded line is numbered 99999 or above, beyond the 65536 lines \
         irq-sim has, so none can be replayed"
    );
}

#[test]
fn shared_line_replays_one_handler_with_median_work() {
    let path = temporary_trace("shared.txt", SHARED_WITH_WORK);
    let folder = path.parent().unwrap();
    let (generated, scenario) = convert_trace(SHARED_WITH_WORK, "shared.txt", folder);
    assert_eq!(scenario.devices.len(), 1);
    let usb = &scenario.devices[0];
    assert_eq!(handler(usb), "ehci_hcd:usb3");
    assert_eq!(usb.cpu, 1);

    // Three interrupts, each calling both handlers: three offsets.
    let ArrivalSpec::Replay { offsets, .. } = &usb.arrival else {
        panic!("{usb:?}");
    };
    assert_eq!(
        offsets,
        &[
            Duration::ZERO,
            Duration::from_micros(1000),
            Duration::from_micros(1900)
        ]
    );
    assert!(
        generated.contains("handler = \"ehci_hcd:usb3\""),
        "{generated}"
    );

    // Two executions of usb_work, 30 us and 50 us: the median is 40 us.
    let DeviceKind::Generic { work, .. } = &usb.kind else {
        panic!();
    };
    assert_eq!(*work, Duration::from_micros(40));
    assert!(
        generated.contains("the median of 2 recorded executions of usb_work"),
        "{generated}"
    );
    assert!(
        generated.contains("vmstat_update: 1 completed, median 10us"),
        "{generated}"
    );
}

#[test]
fn replay_handler_not_recorded_rejected() {
    let path = temporary_trace("shared-bad.txt", SHARED_WITH_WORK);
    let folder = path.parent().unwrap();
    let text = "[[device]]\nname = \"x\"\nkind = \"generic\"\nirq = 16\n\
                arrival = { process = \"replay\", file = \"shared-bad.txt\", handler = \"nvme\" }\n";
    let error = Scenario::parse(text, "x.toml", folder).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("device[0].arrival.handler"), "{message}");
    assert!(
        message.contains(
            "no irq_handler_entry named \"nvme\" on line 16; it records: ehci_hcd:usb3, mmc0"
        ),
        "{message}"
    );
}

#[test]
fn description_counts_lines_left_out() {
    let text = "\
 <idle>-0 [000] d.h1 100.000100: irq_handler_entry: irq=16 name=mmc0
 <idle>-0 [000] d.h1 100.000104: irq_handler_exit: irq=16 ret=handled
 <idle>-0 [000] d.h1 100.000200: irq_handler_entry: irq=70000 name=gpio-msi
 <idle>-0 [000] d.h1 100.000204: irq_handler_exit: irq=70000 ret=handled
";
    let path = temporary_trace("left-out.txt", text);
    let (generated, scenario) = convert_trace(text, "left-out.txt", path.parent().unwrap());
    assert_eq!(scenario.devices.len(), 1);
    assert_eq!(
        scenario.description,
        "Replay of 1 of the 2 IRQ lines of an ftrace recording of a real machine."
    );
    assert!(generated.contains("on 2 IRQ lines"), "{generated}");
}

#[test]
fn trace_without_irq_entries_rejected() {
    for file in ["catapult-workqueue-lines.txt", "timerlat-trace-example.txt"] {
        let trace = Trace::parse(&read_data(&format!("ftrace/{file}"))).unwrap();
        let error = scenario_from_ftrace(&FtraceInput {
            trace: &trace,
            trace_name: file,
            replay_path: file,
            duration: None,
            cpus: None,
        })
        .unwrap_err();
        assert!(
            matches!(error, ConvertError::NoIrqEntries { .. }),
            "{error}"
        );
        assert_eq!(error.exit_code(), EXIT_INVALID_INPUT);
    }
}

#[test]
fn relative_path_climbs_to_common_folder() {
    assert_eq!(
        relative_path(Path::new("/a/data/t.txt"), Path::new("/a/scenarios")),
        Path::new("../data/t.txt")
    );
    assert_eq!(
        relative_path(Path::new("/a/t.txt"), Path::new("/a")),
        Path::new("t.txt")
    );
}

#[test]
fn option_parsers_reject_bad_values() {
    assert_eq!(parse_interval("0.5"), Ok(0.5));
    for bad in ["0", "-1", "inf", "NaN", "ten"] {
        assert!(parse_interval(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_cpus("64"), Ok(64));
    assert!(parse_cpus("0").is_err());
    assert!(parse_cpus("65").is_err());
    assert_eq!(parse_run_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_run_duration("0s").is_err());
    assert!(parse_run_duration("25h").is_err());
    assert!(parse_run_duration("90000s").is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One row of a generated snapshot pair.
    #[derive(Debug, Clone)]
    struct RowSpec {
        label: String,
        before: Vec<u64>,
        delta: Vec<u64>,
        text: String,
        only_after: bool,
    }

    fn row_spec(cpus: usize) -> impl Strategy<Value = RowSpec> {
        let label = prop_oneof![
            (0u32..70_000).prop_map(|irq| irq.to_string()),
            Just("LOC".to_owned()),
            Just("RES".to_owned()),
            Just("IPI3".to_owned()),
            "[A-Z]{3}",
        ];
        let count = prop_oneof![Just(0u64), 0u64..100, 0u64..10_000_000_000];
        let text = prop_oneof![
            Just(String::new()),
            Just("GIC  arch_timer".to_owned()),
            Just("GICv3  27 Level  mct_tick1".to_owned()),
            Just("IO-APIC   9-fasteoi   acpi".to_owned()),
            Just("IR-PCI-MSI 512000-edge      a, b, a".to_owned()),
            Just("PCI-MSI-edge  x\"y\\z".to_owned()),
            Just("XT-PIC".to_owned()),
            "[a-z]{1,6} [a-z_:. ]{1,12}",
        ];
        (
            label,
            proptest::collection::vec(count.clone(), cpus),
            proptest::collection::vec(count, cpus),
            text,
            any::<bool>(),
        )
            .prop_map(|(label, before, delta, text, only_after)| RowSpec {
                label,
                before,
                delta,
                text,
                only_after,
            })
    }

    fn snapshot_text(cpus: usize, rows: &[RowSpec], after: bool) -> String {
        let mut text: String = (0..cpus).map(|cpu| format!("  CPU{cpu}")).collect();
        text.push('\n');
        for row in rows {
            if row.only_after && !after {
                continue;
            }
            text.push_str(&format!("{}:", row.label));
            for (before, delta) in row.before.iter().zip(&row.delta) {
                let count = if after { before + delta } else { *before };
                text.push_str(&format!(" {count}"));
            }
            text.push_str(&format!("  {}\n", row.text));
        }
        text
    }

    /// Generates one trace event: CPU, gap from the CPU's previous event in
    /// microseconds, and the event's text.
    fn trace_event() -> impl Strategy<Value = (u32, u64, String)> {
        let irq = prop_oneof![0u32..64, 60_000u32..70_000];
        let name = prop_oneof![Just("arch_timer"), Just("eth0"), Just("x\"y"), Just("mmc0")];
        let address = 0u64..4;
        let event = prop_oneof![
            (irq.clone(), name)
                .prop_map(|(irq, name)| format!("irq_handler_entry: irq={irq} name={name}")),
            irq.prop_map(|irq| format!("irq_handler_exit: irq={irq} ret=handled")),
            address.clone().prop_map(|work| format!(
                "workqueue_queue_work: work struct={work:x} function=f{work} workqueue=events \
                 req_cpu=8 cpu=0"
            )),
            address.clone().prop_map(|work| format!(
                "workqueue_execute_start: work struct {work:x}: function f{work}"
            )),
            address.prop_map(|work| format!("workqueue_execute_end: work struct {work:x}")),
            Just("softirq_entry: vec=9 [action=RCU]".to_owned()),
        ];
        (prop_oneof![0u32..4, 0u32..200], 0u64..5_000, event)
    }

    proptest! {
        #[test]
        fn any_trace_converts_to_a_valid_scenario(
            events in proptest::collection::vec(trace_event(), 1..40),
            simulated in proptest::option::of(1usize..=64),
        ) {
            let mut clock_us: BTreeMap<u32, u64> = BTreeMap::new();
            let mut text = String::new();
            for (cpu, gap_us, event) in &events {
                let at = clock_us.entry(*cpu).or_insert(1_000_000);
                *at += gap_us;
                text.push_str(&format!(
                    " task-1 [{cpu:03}] .... {}.{:06}: {event}\n",
                    *at / 1_000_000,
                    *at % 1_000_000
                ));
            }
            let trace = Trace::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let path = temporary_trace("property.txt", &text);
            let result = scenario_from_ftrace(&FtraceInput {
                trace: &trace,
                trace_name: "property.txt",
                replay_path: "property.txt",
                duration: None,
                cpus: simulated,
            });
            let generated = match result {
                Ok(generated) => generated,
                Err(ConvertError::NoIrqEntries { .. } | ConvertError::LinesBeyondSimulator { .. }) => {
                    return Ok(());
                }
                Err(error) => panic!("{error}"),
            };
            if let Err(error) = Scenario::parse(&generated, "generated.toml", path.parent().unwrap()) {
                panic!("{error}\n{generated}\n{text}");
            }
        }

        #[test]
        fn any_snapshot_pair_converts_to_a_valid_scenario(
            (cpus, rows) in (1usize..80).prop_flat_map(|cpus| {
                (Just(cpus), proptest::collection::vec(row_spec(cpus), 0..12))
            }),
            interval in prop_oneof![Just(1.0), 1e-6f64..1e4],
            simulated in proptest::option::of(1usize..=64),
        ) {
            let mut unique: Vec<RowSpec> = Vec::new();
            for row in rows {
                if !unique.iter().any(|other| other.label == row.label) {
                    unique.push(row);
                }
            }
            let rows = unique;
            let before = snapshot_text(cpus, &rows, false);
            let after = snapshot_text(cpus, &rows, true);
            let (Ok(before), Ok(after)) = (Snapshot::parse(&before), Snapshot::parse(&after))
            else {
                // Random text columns can look like counts; the parser's own
                // tests cover rejection.
                return Ok(());
            };
            let text = scenario_from_proc_interrupts(&ProcInterruptsInput {
                before: &before,
                after: &after,
                before_name: "before.txt",
                after_name: "after.txt",
                interval_secs: interval,
                duration: Duration::from_secs(1),
                cpus: simulated,
            });
            let text = match text {
                Ok(text) => text,
                // Rows that counted nothing between the reads.
                Err(ConvertError::NothingToSimulate { .. }) => return Ok(()),
                Err(error) => panic!("{error}"),
            };
            if let Err(error) = Scenario::parse(&text, "generated.toml", Path::new(".")) {
                panic!("{error}\n{text}");
            }
        }
    }
}

/// A reporter that prints an error and then its sources names each reason
/// once: a message that contains the wrapped error's does not return that
/// error as its source, and one that leaves it out does.
#[test]
fn error_sources_not_repeated() {
    let missing = ConvertError::Read {
        path: "before.txt".to_owned(),
        error: std::io::Error::from(std::io::ErrorKind::NotFound),
    };
    assert!(missing.to_string().contains("not found"), "{missing}");
    assert!(std::error::Error::source(&missing).is_none());

    let binary = ConvertError::Read {
        path: "trace.dat".to_owned(),
        error: std::io::Error::from(std::io::ErrorKind::InvalidData),
    };
    let source = std::error::Error::source(&binary).map(ToString::to_string);
    assert!(!binary.to_string().contains("invalid data"), "{binary}");
    assert_eq!(source.as_deref(), Some("invalid data"));
}

/// A failed write to standard output names the operating system's reason
/// in its message, so a printed chain must not repeat it as a source.
#[test]
fn stdout_error_source_not_repeated() {
    let error = ConvertError::Stdout(StdoutError(std::io::Error::from(
        std::io::ErrorKind::BrokenPipe,
    )));
    assert!(error.to_string().contains("broken pipe"), "{error}");
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(source, None);
}
