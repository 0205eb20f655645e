//! Hard inputs for the recording converters and the UART scenario keys,
//! run through the `irqlab` binary on files each test writes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `irqlab` with `args` in `folder`.
fn irqlab(folder: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_irqlab"))
        .args(args)
        .current_dir(folder)
        .output()
        .expect("the irqlab binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Converts `before.txt` and `after.txt` in `folder`, `interval` seconds
/// apart.
fn convert_pair(folder: &Path, interval: &str) -> Output {
    irqlab(
        folder,
        &[
            "scenario",
            "from-proc-interrupts",
            "before.txt",
            "after.txt",
            "--interval",
            interval,
        ],
    )
}

/// Creates an empty folder for one test's files.
fn scratch(test: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// A two-CPU `/proc/interrupts` header.
const HEADER: &str = "           CPU0       CPU1\n";

/// Returns an earlier snapshot, `start` and then `lines` rows, and a later
/// one, the header and the same rows, each four counts higher on CPU0.
fn counting_rows(start: &str, lines: u32) -> (String, String) {
    let (mut before, mut after) = (start.to_owned(), HEADER.to_owned());
    for irq in 0..lines {
        writeln!(before, " {irq}:  1  0  IO-APIC   {irq}-edge  dev{irq}").unwrap();
        writeln!(after, " {irq}:  5  0  IO-APIC   {irq}-edge  dev{irq}").unwrap();
    }
    (before, after)
}

/// A trace whose 5,000 lines each record one interrupt: more lines than a
/// scenario takes devices. The converter should say so as an input limit,
/// not report its own output as "a bug in irqlab".
#[test]
fn ftrace_more_lines_than_devices_named() {
    let folder = scratch("ftrace_more_lines_than_devices_named");
    let mut trace = String::new();
    for irq in 0..5_000u32 {
        let at = 10.0 + f64::from(irq) * 1e-5;
        writeln!(
            trace,
            "          <idle>-0     [000] d.h1 {at:.6}: irq_handler_entry: irq={irq} name=dev{irq}"
        )
        .unwrap();
    }
    std::fs::write(folder.join("trace.txt"), trace).unwrap();

    let output = irqlab(&folder, &["scenario", "from-ftrace", "trace.txt"]);
    let message = stderr(&output);
    assert!(!message.contains("a bug in irqlab"), "{message}");
}

/// The same for two snapshots with 5,000 counting lines.
#[test]
fn proc_more_rows_than_devices_named() {
    let folder = scratch("proc_more_rows_than_devices_named");
    let (before, after) = counting_rows(HEADER, 5_000);
    std::fs::write(folder.join("before.txt"), before).unwrap();
    std::fs::write(folder.join("after.txt"), after).unwrap();

    let output = convert_pair(&folder, "1");
    let message = stderr(&output);
    assert!(!message.contains("a bug in irqlab"), "{message}");
}

/// A warning found before the conversion fails is still printed, since it
/// may explain the failure: here a row of the earlier snapshot that the
/// later one lacks, and then too many counting lines.
#[test]
fn proc_warning_kept_when_conversion_fails() {
    let folder = scratch("proc_warning_kept_when_conversion_fails");
    let (before, after) = counting_rows(
        &format!("{HEADER}LOC:  7  7  Local timer interrupts\n"),
        5_000,
    );
    std::fs::write(folder.join("before.txt"), before).unwrap();
    std::fs::write(folder.join("after.txt"), after).unwrap();

    let output = convert_pair(&folder, "1");
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    assert!(message.contains("irqlab: warning:"), "{message}");
    assert!(message.contains("LOC"), "{message}");
    assert!(message.contains("5000"), "{message}");
}

/// A handler name with an escape sequence, on a line found only in the
/// earlier snapshot, lands in a TOML comment of the scenario. The comment
/// must stay valid and the terminal must get the escape as text.
#[test]
fn proc_control_chars_in_left_out_row() {
    let folder = scratch("proc_control_chars_in_left_out_row");
    std::fs::write(
        folder.join("before.txt"),
        format!(
            "{HEADER}  1:  1  0  IO-APIC   1-edge  i8042\n  2:  1  0  IO-APIC   2-edge  gone\u{1b}]0;title\u{7}\nERR:  0\n"
        ),
    )
    .unwrap();
    std::fs::write(
        folder.join("after.txt"),
        format!("{HEADER}  1:  9  0  IO-APIC   1-edge  i8042\nERR:  0\n"),
    )
    .unwrap();

    let output = convert_pair(&folder, "1");
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(
        !message.contains('\u{1b}'),
        "raw escape on stderr: {message:?}"
    );
}

/// A later snapshot cut short is named as such, not as another machine
/// (its rows are few) nor as the same file twice (its rows did not count).
#[test]
fn proc_later_cut_short_named() {
    let rows = [
        "  1:  10  11  IO-APIC   1-edge  i8042",
        "  9:  322  79  IO-APIC   9-fasteoi  acpi",
        " 29:  4000  727145  PCI-MSI 409600-edge  enp0s25",
        " 30:  249  54  PCI-MSI 524288-edge  nvkm",
    ];
    for (case, before) in [("four_rows", &rows[..]), ("two_rows", &rows[..2])] {
        let folder = scratch(&format!("proc_later_cut_short_named_{case}"));
        std::fs::write(
            folder.join("before.txt"),
            format!("{HEADER}{}\n", before.join("\n")),
        )
        .unwrap();
        std::fs::write(folder.join("after.txt"), format!("{HEADER}{}\n", rows[0])).unwrap();

        let output = convert_pair(&folder, "1");
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{case}: {message}");
        assert!(message.contains("cut short"), "{case}: {message}");
    }
}

/// A counter above 32 bits that fell by far more than 2^31 is not "by less
/// than a 32-bit wrap".
#[test]
fn proc_wide_counter_fall_message() {
    let folder = scratch("proc_wide_counter_fall_message");
    std::fs::write(
        folder.join("before.txt"),
        format!("{HEADER}  1:  10000000000  0  IO-APIC   1-edge  i8042\n"),
    )
    .unwrap();
    std::fs::write(
        folder.join("after.txt"),
        format!("{HEADER}  1:  5  0  IO-APIC   1-edge  i8042\n"),
    )
    .unwrap();

    let output = convert_pair(&folder, "1");
    let message = stderr(&output);
    assert!(!output.status.success());
    assert!(
        !message.contains("by less than a 32-bit wrap"),
        "a fall of 10^10 called less than a wrap: {message}"
    );
}

/// Counts near `u64::MAX`, which the parser accepts, that fall: the diff
/// must report an error, not overflow.
#[test]
fn proc_near_max_counter_fall() {
    let folder = scratch("proc_near_max_counter_fall");
    std::fs::write(
        folder.join("before.txt"),
        format!("{HEADER}  1:  18446744073709551615  0  IO-APIC   1-edge  i8042\n"),
    )
    .unwrap();
    std::fs::write(
        folder.join("after.txt"),
        format!("{HEADER}  1:  18446744073709551614  0  IO-APIC   1-edge  i8042\n"),
    )
    .unwrap();

    let output = convert_pair(&folder, "1");
    let message = stderr(&output);
    assert!(!message.contains("panicked"), "{message}");
    assert!(message.contains("went backwards"), "{message}");
}

/// A trace that ends between the two handlers of a shared line's last
/// interrupt records one more entry for the first handler. The handler
/// that returned `handled` every time should still name the device.
#[test]
fn ftrace_shared_line_cut_mid_interrupt() {
    let folder = scratch("ftrace_shared_line_cut_mid_interrupt");
    let mut trace = String::new();
    for interrupt in 0..20 {
        let at = 100.0 + f64::from(interrupt) * 1e-3;
        for (offset, event) in [
            (0.0, "irq_handler_entry: irq=16 name=aaa"),
            (2e-6, "irq_handler_exit: irq=16 ret=unhandled"),
            (3e-6, "irq_handler_entry: irq=16 name=bbb"),
            (5e-6, "irq_handler_exit: irq=16 ret=handled"),
        ] {
            // The last interrupt is cut after its first handler.
            if interrupt == 19 && offset > 2.5e-6 {
                continue;
            }
            let time = at + offset;
            writeln!(
                trace,
                "          <idle>-0     [000] d.h1 {time:.6}: {event}"
            )
            .unwrap();
        }
    }
    std::fs::write(folder.join("trace.txt"), trace).unwrap();

    let output = irqlab(&folder, &["scenario", "from-ftrace", "trace.txt"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let scenario = String::from_utf8_lossy(&output.stdout);
    assert!(
        scenario.contains("name = \"bbb\""),
        "the handler that never handled names the device:\n{scenario}"
    );
}

/// A UART without `baud`, as in files written before the key existed,
/// keeps any rate: a level-1 UART at 20,000 bytes a second still runs.
#[test]
fn uart_without_baud_keeps_any_rate() {
    let folder = scratch("uart_without_baud_keeps_any_rate");
    std::fs::write(
        folder.join("uart.toml"),
        r#"name = "uart-level1-fast"
duration = "100ms"
[machine]
cpus = 1
[[device]]
name = "ttyS0"
kind = "uart"
irq = 4
arrival = { process = "periodic", rate = 20000 }
"#,
    )
    .unwrap();

    let output = irqlab(&folder, &["run", "--scenario", "uart.toml"]);
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(!message.contains("do not fit"), "{message}");
}
