//! The irqlab command end to end: runs of every scenario in scenarios/,
//! the JSON report's keys and its accounting, bad input, and Ctrl-C.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};

use serde_json::Value;

fn irqlab() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_irqlab"));
    command.env_remove("RUST_LOG");
    command
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("irqlab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(args: &[&str]) -> Output {
    irqlab().args(args).output().expect("irqlab runs")
}

fn scenario_files() -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "toml")
        })
        .collect();
    files.sort();
    files
}

fn number(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {value}"))
}

/// Checks the keys the CLI issue promises and the accounting of a clean
/// run.
fn check_report(json: &Value, what: &str) {
    for irq in json["irqs"].as_array().expect("irqs is an array") {
        for key in ["irq", "raised", "handled", "unhandled", "coalesced"] {
            number(irq, key);
        }
        assert!(irq["name"].is_string(), "{what}: {irq}");
        assert!(irq["per_cpu"].is_array(), "{what}: {irq}");
        // Each claimed delivery was claimed by one handler at least.
        let claimed_by = irq["claimed_by"]
            .as_array()
            .expect("claimed_by is an array");
        assert!(!claimed_by.is_empty(), "{what}: {irq}");
        let claims: u64 = claimed_by.iter().map(|row| number(row, "claimed")).sum();
        assert!(claims >= number(irq, "handled"), "{what}: {irq}");
    }
    let queues = json["workqueues"]
        .as_array()
        .expect("workqueues is an array");
    assert!(!queues.is_empty(), "{what}");
    for queue in queues {
        assert!(queue["name"].is_string(), "{what}: {queue}");
        let (queued, executed, cancelled) = (
            number(queue, "queued"),
            number(queue, "executed"),
            number(queue, "cancelled"),
        );
        number(queue, "coalesced");
        assert_eq!(number(queue, "pending_at_exit"), 0, "{what}: {queue}");
        assert_eq!(queued, executed + cancelled, "{what}: {queue}");
    }
    let devices = json["devices"].as_array().expect("devices is an array");
    assert!(!devices.is_empty(), "{what}");
    for device in devices {
        assert!(device["name"].is_string(), "{what}: {device}");
        let (arrived, processed, dropped) = (
            number(device, "arrived"),
            number(device, "processed"),
            number(device, "dropped"),
        );
        assert_eq!(arrived, processed + dropped, "{what}: {device}");
        assert_eq!(
            dropped == 0,
            device["dropped_as"] == "",
            "a cause exactly where something was dropped; {what}: {device}"
        );
        let counters = device["counters"]
            .as_object()
            .expect("counters is an object");
        for key in counters.keys() {
            assert!(
                key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{what}: counter key {key:?} is not in snake case"
            );
        }
    }
    let latency = json["latency"].as_object().expect("latency is an object");
    for measure in [
        "raise_to_top_half",
        "top_half_duration",
        "queue_to_start",
        "work_duration",
        "raise_to_bottom_half",
    ] {
        let row = &latency[measure];
        for key in [
            "count", "min_ns", "avg_ns", "p50_ns", "p99_ns", "p999_ns", "max_ns",
        ] {
            number(row, key);
        }
        assert!(
            number(row, "min_ns") <= number(row, "avg_ns")
                && number(row, "avg_ns") <= number(row, "max_ns"),
            "{what}: {measure} {row}"
        );
        assert!(
            number(row, "min_ns") <= number(row, "p50_ns"),
            "{what}: {measure} {row}"
        );
        assert!(
            number(row, "p50_ns") <= number(row, "p99_ns"),
            "{what}: {measure} {row}"
        );
        assert!(
            number(row, "p99_ns") <= number(row, "max_ns"),
            "{what}: {measure} {row}"
        );
    }
    assert!(number(&latency["raise_to_top_half"], "count") > 0, "{what}");
    check_device_latency(json, what);
}

/// Checks that the devices' latency splits the report's. Their end-to-end
/// samples add up to the report's. Their lines' top-half samples, each
/// line counted once however many devices share it, add up to the
/// report's, which the CPUs recorded.
fn check_device_latency(json: &Value, what: &str) {
    let devices = json["devices"].as_array().expect("devices is an array");
    let mut end_to_end = 0;
    let mut lines = std::collections::BTreeMap::new();
    for device in devices {
        let latency = device["latency"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: no latency in {device}"));
        end_to_end += number(&latency["raise_to_bottom_half"], "count");
        for measure in ["raise_to_top_half", "top_half_duration"] {
            let count = number(&latency[measure], "count");
            let irq = number(device, "irq");
            let previous = lines.insert((irq, measure), count);
            assert!(
                previous.is_none_or(|previous| previous == count),
                "{what}: devices of line {irq} disagree on {measure}"
            );
        }
    }
    let total = |measure: &str| number(&json["latency"][measure], "count");
    assert_eq!(end_to_end, total("raise_to_bottom_half"), "{what}");
    for measure in ["raise_to_top_half", "top_half_duration"] {
        let by_line: u64 = lines
            .iter()
            .filter(|((_, name), _)| *name == measure)
            .map(|(_, count)| count)
            .sum();
        assert_eq!(by_line, total(measure), "{what}: {measure}");
    }
}

#[test]
fn every_scenario_runs_and_accounts_for_every_event() {
    for file in scenario_files() {
        let json_path = scratch(&format!(
            "{}.json",
            file.file_stem().unwrap().to_string_lossy()
        ));
        let output = run(&[
            "--scenario",
            file.to_str().unwrap(),
            "--duration",
            "300ms",
            "--json",
            json_path.to_str().unwrap(),
        ]);
        let what = file.display().to_string();
        assert!(output.status.success(), "{what}: {}", text(&output.stderr));
        let stdout = text(&output.stdout);
        for section in [
            "Interrupts",
            "Latency",
            "Latency histogram",
            "Workqueues",
            "Devices",
            "Latency by device",
        ] {
            assert!(
                stdout.contains(section),
                "{what}: no {section} in\n{stdout}"
            );
        }
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        check_report(&json, &what);
    }
}

#[test]
fn demo_runs_with_json_to_stdout() {
    let output = run(&["--duration", "300ms", "--quiet", "--json", "-"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).expect("stdout is only the JSON");
    assert_eq!(json["scenario"], "demo");
    check_report(&json, "demo");
    let kinds: Vec<&str> = json["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["timer", "nic", "uart", "block", "gpio"]);
}

#[test]
fn options_override_the_scenario() {
    let output = run(&[
        "--duration",
        "200ms",
        "--seed",
        "7",
        "--cpus",
        "3",
        "--quiet",
        "--json",
        "-",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["seed"], 7);
    assert_eq!(json["cpus"], 3);
    assert_eq!(json["duration_s"], 0.2);
    for irq in json["irqs"].as_array().unwrap() {
        assert_eq!(irq["per_cpu"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn bad_scenario_rejected_before_run() {
    let path = scratch("bad-rate.toml");
    std::fs::write(
        &path,
        "[[device]]\nname = \"eth0\"\nkind = \"nic\"\nirq = 40\n\
         arrival = { process = \"poisson\", rate = -3 }\n",
    )
    .unwrap();
    let output = run(&["--scenario", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:5:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("device[0].arrival.rate"), "{stderr}");
    assert!(stderr.contains("from one a day"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "a partial run printed: {}",
        text(&output.stdout)
    );
}

#[test]
fn bad_options_name_value_and_range() {
    let cases: [(&[&str], &str); 12] = [
        (
            &["my.toml"],
            "my.toml is not a command; run a scenario file with --scenario my.toml",
        ),
        (
            &["run", "my.toml"],
            "my.toml is not an argument of run; run a scenario file with --scenario my.toml",
        ),
        (
            &["--trace", "-"],
            "--trace -: a timeline is a file for a viewer",
        ),
        (
            &["--json", "x.json", "--trace", "x.json"],
            "--json and --trace name the same file",
        ),
        (
            &["--duration", "5"],
            "invalid value '5' for '--duration <DURATION>': not a duration",
        ),
        (
            &["--duration", "0s"],
            "invalid value '0s' for '--duration <DURATION>': out of range; expected a duration longer than 0s and at most 24h",
        ),
        (
            &["--cpus", "0"],
            "invalid value '0' for '--cpus <N>': expected a whole number from 1 to 64",
        ),
        (
            &["--cpus", "1"],
            "device[0].cpu: CPU 1 does not exist; --cpus 1 gives the machine CPU 0 only",
        ),
        (
            &["--duration", "-1s"],
            "invalid value '-1s' for '--duration <DURATION>': a negative duration; expected a duration longer than 0s and at most 24h",
        ),
        (
            &["--seed", "-1"],
            "invalid value '-1' for '--seed <N>': expected a whole number from 0 to 2^63-1",
        ),
        (
            &["--seed", "abc"],
            "invalid value 'abc' for '--seed <N>': expected a whole number from 0 to 2^63-1",
        ),
        (
            &["--cpus", "abc"],
            "invalid value 'abc' for '--cpus <N>': expected a whole number from 1 to 64",
        ),
    ];
    for (args, expected) in cases {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Other commands take no scenario, so the hint would mislead there.
    let output = run(&["latency", "my.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!text(&output.stderr).contains("--scenario"));
    let output = run(&["--scenario", "/nonexistent/x.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read scenario /nonexistent/x.toml"));
}

/// `--json /dev/stdout` with standard output appended to a file adds the
/// JSON to that file, keeping what it held, instead of replacing it.
#[test]
fn json_to_dev_stdout_appends_to_redirected_file() {
    let path = scratch("appended.log");
    std::fs::write(&path, "earlier line\n").unwrap();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();

    let status = irqlab()
        .args(["--duration", "100ms", "-q", "--json", "/dev/stdout"])
        .stdout(log)
        .status()
        .expect("irqlab runs");

    assert!(status.success());
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with("earlier line\n{"), "{written}");
    let json: serde_json::Value = serde_json::from_str(&written["earlier line\n".len()..]).unwrap();
    assert_eq!(json["scenario"], "demo");
}

/// Two spellings of one file, or a link to it, are rejected as the same
/// output before the run.
#[test]
fn same_output_spelt_differently_rejected() {
    let json = scratch("same-output.json");
    let link = scratch("same-output-link.json");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&json, &link).unwrap();
    let dotted = json.parent().unwrap().join(".").join("same-output.json");
    for trace in [&dotted, &link] {
        let output = run(&[
            "--json",
            json.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(2), "{trace:?}");
        assert!(
            text(&output.stderr).contains("--json and --trace name the same file"),
            "{trace:?}"
        );
    }
}

/// An output file that is the scenario file, or a recording that the
/// scenario replays, is rejected before the run and left as it was.
#[test]
fn output_over_an_input_rejected() {
    let folder = scratch("inputs");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let recording = folder.join("irq.trace");
    std::fs::copy("data/real/ftrace/catapult-irq-lines.txt", &recording).unwrap();
    let scenario = folder.join("replay.toml");
    std::fs::write(
        &scenario,
        "duration = \"100ms\"\n\n[[device]]\nkind = \"nic\"\nname = \"eth0\"\nirq = 27\n\
         arrival = { process = \"replay\", file = \"irq.trace\", irq = 27 }\n",
    )
    .unwrap();
    let spelt_otherwise = folder.join(".").join("irq.trace");
    let cases = [
        ("--json", &scenario, "it is the scenario file being run"),
        (
            "--trace",
            &spelt_otherwise,
            "it is the recording that device \"eth0\" replays",
        ),
    ];
    for (option, out, expected) in cases {
        let original = std::fs::read(out).unwrap();
        let output = run(&[
            "--scenario",
            scenario.to_str().unwrap(),
            option,
            out.to_str().unwrap(),
        ]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(std::fs::read(out).unwrap(), original, "{option}");
    }
}

/// One-shot expiries past the run's end never fire, and the report's
/// warnings count them instead of passing over them.
#[test]
fn late_one_shot_expiries_are_warned_about() {
    let scenario = scratch("late-expiries.toml");
    std::fs::write(
        &scenario,
        "duration = \"200ms\"\n\n[[timer]]\nname = \"watchdog\"\nirq = 17\n\
         at = [\"50ms\", \"5s\", \"6s\"]\n",
    )
    .unwrap();
    let output = run(&["--scenario", scenario.to_str().unwrap(), "--json", "-"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let warnings: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        warnings,
        [
            "timer watchdog: 2 of its 3 one-shot expiries came after the run's end at 200ms \
             (the first at 5s) and never fired; raise --duration to see them"
        ]
    );
}

/// A debounce still pending when the run ends is reported as pending, not
/// as toggles that debouncing merged.
#[test]
fn pending_debounce_named_at_exit() {
    let scenario = scratch("pending-debounce.toml");
    std::fs::write(
        &scenario,
        "duration = \"200ms\"\n\n[[device]]\nname = \"btn\"\nkind = \"gpio\"\nirq = 70\n\
         debounce = \"60s\"\narrival = { process = \"periodic\", rate = 20 }\n",
    )
    .unwrap();

    let json_file = scratch("pending-debounce.json");
    let output = run(&[
        "--scenario",
        scenario.to_str().unwrap(),
        "--json",
        json_file.to_str().unwrap(),
    ]);
    let report = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));

    // The queue never ran the debounce: no p99s to give.
    let queue_row = report
        .lines()
        .find(|line| line.trim_start().starts_with("events "))
        .unwrap_or_else(|| panic!("no events row in\n{report}"));
    let cells: Vec<&str> = queue_row.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2..], ["-", "-"], "{queue_row}");

    let json: Value = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    let button = &json["devices"][0];
    assert_eq!(number(button, "arrived"), 4, "{button}");
    assert_eq!(number(button, "dropped"), 4, "{button}");
    assert_eq!(
        button["dropped_as"],
        "toggles merged by debouncing, or left undebounced at exit"
    );
    assert_eq!(number(&button["counters"], "debounce_pending_at_exit"), 1);
}

/// Bytes below a UART's trigger level reach the driver by the character
/// timeout: each lone byte of a slow line is one timeout interrupt.
#[test]
fn uart_char_timeout_delivers_lone_bytes() {
    let scenario = scratch("uart-timeout.toml");
    std::fs::write(
        &scenario,
        "duration = \"300ms\"\n\n[[device]]\nname = \"ttyS1\"\nkind = \"uart\"\nirq = 3\n\
         trigger_level = 14\nbaud = 9600\nline_length = 3\n\
         arrival = { process = \"periodic\", rate = 10 }\n",
    )
    .unwrap();

    let json_file = scratch("uart-timeout.json");
    let output = run(&[
        "--scenario",
        scenario.to_str().unwrap(),
        "--json",
        json_file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let json: Value = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    let uart = &json["devices"][0];
    assert_eq!(number(uart, "arrived"), 3, "{uart}");
    assert_eq!(number(uart, "processed"), 3, "{uart}");
    let counters = &uart["counters"];
    assert_eq!(number(counters, "char_timeouts"), 3, "{uart}");
    assert_eq!(number(counters, "interrupts"), 3, "{uart}");
    assert_eq!(number(counters, "lines"), 1, "{uart}");
}

/// A UART's trigger level and baud rate are checked against the 16550's
/// FIFO and the speeds a serial line runs at.
#[test]
fn uart_parameters_out_of_range_rejected() {
    let cases = [
        ("trigger_level = 17", "device[0].trigger_level", "1 to 16"),
        ("trigger_level = 0", "device[0].trigger_level", "1 to 16"),
        ("baud = 49", "device[0].baud", "50 to 12000000"),
    ];
    for (line, key, allowed) in cases {
        let scenario = scratch("uart-bad.toml");
        std::fs::write(
            &scenario,
            format!(
                "[[device]]\nname = \"ttyS0\"\nkind = \"uart\"\nirq = 4\n{line}\n\
                 arrival = {{ process = \"periodic\", rate = 10 }}\n"
            ),
        )
        .unwrap();
        let output = run(&["--scenario", scenario.to_str().unwrap()]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{line}: {stderr}");
        assert!(stderr.contains(key), "{line}: {stderr}");
        assert!(stderr.contains(allowed), "{line}: {stderr}");
    }
}

/// A line whose overrun policy is `fail` fails the run that overran it,
/// after the report.
#[test]
fn fail_policy_fails_the_run() {
    let scenario = scratch("fail-policy.toml");
    std::fs::write(
        &scenario,
        "duration = \"300ms\"\n\n[[device]]\nname = \"sensor\"\nkind = \"generic\"\n\
         irq = 40\narrival = { process = \"periodic\", rate = 2000 }\n\n\
         [[line]]\nirq = 40\nbudget = \"1ns\"\noverrun = \"fail\"\n",
    )
    .unwrap();
    let output = run(&["--scenario", scenario.to_str().unwrap(), "--json", "-"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("on a line whose `overrun` policy is \"fail\""),
        "{stderr}"
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("the report is written");
    assert!(
        json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|warning| warning.as_str().unwrap().starts_with("contract violation")),
        "{json}"
    );
}

#[test]
fn unwritable_output_fails_before_run() {
    let output = run(&["--json", "/nonexistent/dir/report.json"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--json /nonexistent/dir/report.json: cannot write it"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn cpus_option_applies_before_the_file_is_checked() {
    let path = scratch("cpu3.toml");
    std::fs::write(
        &path,
        "[machine]\ncpus = 1\n[[device]]\nname = \"x\"\nkind = \"generic\"\nirq = 3\ncpu = 3\n\
         arrival = { process = \"periodic\", rate = 100 }\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let output = run(&[
        "--scenario",
        path,
        "--cpus",
        "4",
        "--duration",
        "50ms",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let output = run(&["--scenario", path, "--cpus", "2", "--duration", "50ms"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "cpu3.toml:7:7: device[0].cpu: CPU 3 does not exist; --cpus 2 gives the machine CPUs 0 to 1"
        ),
        "{stderr}"
    );
    let output = run(&["--scenario", path, "--duration", "50ms"]);
    assert!(
        text(&output.stderr).contains("CPU 3 does not exist; the machine has CPU 0 only"),
        "{}",
        text(&output.stderr)
    );
}

/// Waits for the first progress line of `child`, which shows that arrivals
/// are running, then sends it SIGINT. Returns the rest of its standard
/// error, still to be read.
fn interrupt_once_running(child: &mut Child) -> BufReader<ChildStderr> {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("events") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "irqlab ended early"
        );
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory effects; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    stderr
}

#[test]
fn ctrl_c_stops_early_and_still_reports() {
    let mut child = irqlab()
        .args(["--duration", "60s", "--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stderr = interrupt_once_running(&mut child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let json: Value = serde_json::from_slice(&output.stdout).expect("stdout is only the JSON");
    assert_eq!(json["stopped_early"], true);
    assert!(json["elapsed_s"].as_f64().unwrap() < 60.0);
    check_report(&json, "stopped demo");
}

/// A run started with SIGINT ignored, as a shell starts the background
/// commands of a script, keeps ignoring it.
#[test]
fn ignored_ctrl_c_stays_ignored() {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "trap '' INT; exec \"$0\" --duration 1500ms --json -",
            env!("CARGO_BIN_EXE_irqlab"),
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = interrupt_once_running(&mut child);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(!rest.contains("stopping"), "{rest}");
    let json: Value = serde_json::from_slice(&output.stdout).expect("stdout is only the JSON");
    assert_eq!(json["stopped_early"], false);
}

#[test]
fn help_explains_each_option_with_its_default() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for needle in [
        "--scenario",
        "--duration",
        "--seed",
        "--cpus",
        "--json",
        "--trace",
        "--quiet",
        "Default:",
    ] {
        assert!(help.contains(needle), "no {needle} in\n{help}");
    }
}

#[test]
fn trace_links_queue_work_to_run() {
    let path = scratch("trace.json");
    let output = run(&[
        "--duration",
        "300ms",
        "--quiet",
        "--trace",
        path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = trace["traceEvents"]
        .as_array()
        .expect("a traceEvents array");
    // Top halves and work runs; the zero-length `queue_work` marks that
    // anchor the arrows are not slices of either.
    let slices: Vec<&Value> = events
        .iter()
        .filter(|event| event["ph"] == "X")
        .filter(|event| !event["name"].as_str().unwrap().starts_with("queue_work"))
        .collect();
    let tracks: Vec<&str> = events
        .iter()
        .filter(|event| event["name"] == "thread_name")
        .filter_map(|event| event["args"]["name"].as_str())
        .collect();
    assert!(
        tracks.contains(&"CPU 0") && tracks.contains(&"CPU 1"),
        "{tracks:?}"
    );

    let inside = |flow: &Value| {
        let at = flow["ts"].as_f64().unwrap();
        slices.iter().any(|slice| {
            let start = slice["ts"].as_f64().unwrap();
            let end = start + slice["dur"].as_f64().unwrap();
            slice["tid"] == flow["tid"] && start <= at && at <= end
        })
    };
    let starts: Vec<&Value> = events.iter().filter(|event| event["ph"] == "s").collect();
    let ends: Vec<&Value> = events.iter().filter(|event| event["ph"] == "f").collect();
    assert!(!starts.is_empty());
    assert_eq!(starts.len(), ends.len());
    let main_track = events
        .iter()
        .find(|event| event["name"] == "thread_name" && event["args"]["name"] == "main")
        .map(|event| event["tid"].clone());
    let mut from_probes = 0;
    for start in &starts {
        // A queue_work in a top half or in a work run; or in a driver's
        // probe, which runs on the main thread before arrivals start.
        if !inside(start) {
            assert_eq!(
                Some(&start["tid"]),
                main_track.as_ref(),
                "flow starts outside any slice: {start}"
            );
            from_probes += 1;
        }
    }
    assert!(from_probes <= 5, "{from_probes} flows from the main thread");
    for end in &ends {
        let at = end["ts"].as_f64().unwrap();
        let run_starts_here = slices.iter().any(|slice| {
            slice["tid"] == end["tid"]
                && slice["cat"] == "workqueue"
                && (slice["ts"].as_f64().unwrap() - at).abs() < 1e-9
        });
        assert!(run_starts_here, "flow ends where no work run starts: {end}");
    }
}

#[test]
fn replay_shows_recorded_and_simulated() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/arm-timer-replay.toml");
    let json_path = scratch("replay.json");
    let output = run(&[
        "--scenario",
        scenario.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("Replayed recordings (recorded beside simulated)"),
        "{stdout}"
    );

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let replay = json["replay"].as_array().expect("a replay array");
    assert_eq!(replay.len(), 1, "{json}");
    let row = &replay[0];
    assert_eq!(row["recorded_irq"], 27);
    assert!(number(row, "recorded") > 0, "{row}");

    assert_eq!(
        number(row, "recorded"),
        number(row, "simulated_arrived"),
        "{row}"
    );
    assert_eq!(
        number(row, "simulated_arrived"),
        number(row, "simulated_handled"),
        "{row}"
    );
}

#[test]
fn closed_stdout_fails_cleanly() {
    // A pipe whose reader has gone, as in `irqlab | head -1`.
    let mut child = irqlab()
        .args(["--duration", "200ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("irqlab runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("irqlab exits");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write <standard output>"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A full device, for the report, the classic modules, help and the
    // version.
    for args in [
        &["--duration", "200ms"][..],
        &["classic"],
        &["--help"],
        &["latency", "--help"],
        &["--version"],
    ] {
        let output = irqlab()
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .expect("irqlab runs");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write <standard output>"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // The JSON file is written even though the text report failed.
    let json = scratch("full-stdout.json");
    let output = irqlab()
        .args(["--duration", "200ms", "--json", json.to_str().unwrap()])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .expect("irqlab runs");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    check_report(
        &report,
        "the JSON report of a run with a full standard output",
    );
}
