//! `irqlab latency` options: defaults, parsing, and the errors (message
//! and exit code) for bad values.

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use irqlab::latency::{CpuModeArg, LatencyArgs, LatencyCommand, LatencyError, Mechanism, Unit};

#[derive(Parser, Debug)]
struct Wrapper {
    #[command(flatten)]
    args: LatencyArgs,
}

fn parse(arguments: &[&str]) -> Result<LatencyArgs, clap::Error> {
    Wrapper::try_parse_from(std::iter::once("latency").chain(arguments.iter().copied()))
        .map(|wrapper| wrapper.args)
}

/// Runs the built binary with `arguments` after `latency`.
fn irqlab(arguments: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_irqlab"))
        .arg("latency")
        .args(arguments)
        .output()
        .expect("the irqlab binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn defaults_documented() {
    let args = parse(&[]).unwrap();
    assert_eq!(args.rate, 1000);
    assert_eq!(args.duration, Duration::from_secs(10));
    assert_eq!(args.rounds, 5);
    assert_eq!(args.cpu_mode, CpuModeArg::Blocking);
    assert_eq!(args.load, 0);
    assert_eq!(args.unit, Unit::Us);
    assert_eq!(args.bucket_size, 1);
    assert_eq!(args.entries, 256);
    assert_eq!(args.work_time, Duration::ZERO);
    assert_eq!(args.json, None);
    assert_eq!(args.command, None);
    assert_eq!(
        args.mechanisms(),
        [
            Mechanism::SystemWq,
            Mechanism::HighpriWq,
            Mechanism::OrderedWq,
            Mechanism::ThreadedIrq,
            Mechanism::TokioSpawn
        ]
    );
    assert!(args.validate().is_ok());
}

#[test]
fn options_parse() {
    let args = parse(&[
        "--rate",
        "10000",
        "-d",
        "1m30s",
        "-m",
        "ordered-wq,threaded-irq,ordered-wq",
        "--cpu-mode",
        "busy-poll",
        "--load",
        "5000",
        "--unit",
        "ns",
        "-b",
        "100",
        "-E",
        "1000",
        "--json",
        "out.json",
    ])
    .unwrap();
    assert_eq!(args.rate, 10_000);
    assert_eq!(args.duration, Duration::from_secs(90));
    assert_eq!(
        args.mechanisms(),
        [Mechanism::OrderedWq, Mechanism::ThreadedIrq]
    );
    assert_eq!(args.cpu_mode, CpuModeArg::BusyPoll);
    assert_eq!(args.load, 5000);
    assert_eq!(args.unit, Unit::Ns);
    assert_eq!(args.bucket_size, 100);
    assert_eq!(args.entries, 1000);
    assert_eq!(args.json.as_deref(), Some(std::path::Path::new("out.json")));
}

#[test]
fn plot_subcommand_parses() {
    let args = parse(&["plot", "result.json", "--out", "plot.svg"]).unwrap();
    assert_eq!(
        args.command,
        Some(LatencyCommand::Plot {
            result: "result.json".into(),
            out: "plot.svg".into()
        })
    );
}

#[test]
fn bad_values_rejected() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--rate", "0"],
            "invalid value '0' for '--rate <HZ>': expected a whole number of hertz",
        ),
        (&["--rate", "-5"], "invalid value '-5' for '--rate <HZ>'"),
        (&["--rate", "1.5"], "invalid value '1.5' for '--rate <HZ>'"),
        (&["--rate", "2000000"], "from 1 to 1000000"),
        (&["--load", "-1"], "invalid value '-1' for '--load <HZ>'"),
        (
            &["-d", "soon"],
            "invalid value 'soon' for '--duration <DURATION>': not a duration",
        ),
        (
            &["-d", "10"],
            "invalid value '10' for '--duration <DURATION>': not a duration",
        ),
        (&["-d", "0s"], "out of range"),
        (&["-d", "72h"], "out of range"),
        (
            &["-d", "3days"],
            "invalid value '3days' for '--duration <DURATION>'",
        ),
        (&["-b", "0"], "invalid value '0' for '--bucket-size <N>'"),
        (
            &["--work-time", "busy"],
            "invalid value 'busy' for '--work-time <DURATION>'",
        ),
        (
            &["--work-time", "2s"],
            "'--work-time <DURATION>': out of range; expected a duration from 0s to 1s",
        ),
        (
            &["--work-time", "25h"],
            "out of range; expected a duration from 0s to 1s",
        ),
        (
            &["-d", "25h"],
            "out of range; expected a duration from 1ms to 24h",
        ),
        (&["-E", "0"], "invalid value '0' for '--entries <N>'"),
        (
            &["--rounds", "0"],
            "invalid value '0' for '--rounds <N>': expected a whole number from 1 to 1000",
        ),
        (&["--slots", "0"], "invalid value '0' for '--slots <N>'"),
        (&["--slots", "-3"], "invalid value '-3' for '--slots <N>'"),
        (&["--slots", "65537"], "from 1 to 65536"),
        (&["-m", "softirq"], "invalid value 'softirq'"),
    ];
    for (arguments, expected) in cases {
        let error = parse(arguments).expect_err(&format!("{arguments:?} must be rejected"));
        let message = error.to_string();
        assert!(
            message.contains(expected),
            "{arguments:?}: {message:?} lacks {expected:?}"
        );
    }
}

#[test]
fn short_round_rejected() {
    let args = parse(&["--rate", "10", "-d", "1s", "--rounds", "5"]).unwrap();
    let error = args.validate().unwrap_err();
    assert!(
        matches!(error, LatencyError::RoundTooShort { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("fewer than ten timer periods"));
}

/// A round too short names only the remedies the settings leave room
/// for: no fewer --rounds with one round, no higher --rate at the maximum.
#[test]
fn short_round_advice_fits_settings() {
    let one_round = parse(&["--rate", "3", "-d", "1s", "--rounds", "1"])
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(!one_round.contains("--rounds"), "{one_round}");
    assert!(one_round.contains("--rate"), "{one_round}");

    let top_rate = parse(&["--rate", "1000000", "-d", "1ms", "--rounds", "1000"])
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(!top_rate.contains("--rate"), "{top_rate}");
    assert!(top_rate.contains("fewer --rounds"), "{top_rate}");
    assert!(top_rate.contains("--duration"), "{top_rate}");
}

#[test]
fn built_args_validated() {
    let mut args = parse(&[]).unwrap();
    args.rate = 0;
    assert!(matches!(
        args.validate(),
        Err(LatencyError::InvalidRate {
            option: "--rate",
            ..
        })
    ));
    let mut args = parse(&[]).unwrap();
    args.bucket_size = 0;
    assert!(matches!(
        args.validate(),
        Err(LatencyError::InvalidCount {
            option: "--bucket-size",
            ..
        })
    ));
}

#[test]
fn binary_bad_rate_exits_2() {
    let (code, stdout, stderr) = irqlab(&["--rate", "0"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(
            "invalid value '0' for '--rate <HZ>': expected a whole number of hertz from 1 to 1000000"
        ),
        "{stderr}"
    );
}

#[test]
fn binary_bad_duration_exits_2() {
    let (code, _, stderr) = irqlab(&["--duration", "fast"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("invalid value 'fast' for '--duration <DURATION>': not a duration"),
        "{stderr}"
    );

    // A negative duration is out of range, and the message gives the range.
    let (code, _, stderr) = irqlab(&["--duration", "-5s"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("'-5s' for '--duration <DURATION>': a negative duration; expected a duration from 1ms to 24h"),
        "{stderr}"
    );
}

#[test]
fn binary_short_round_exits_2() {
    let (code, _, stderr) = irqlab(&["--rate", "1", "-d", "2s", "--noise-probe", "0s"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("irqlab: error: a round of 400ms"),
        "{stderr}"
    );
}

/// A rejected run leaves the result file it would have written as it was,
/// and names a missing folder.
#[test]
fn rejected_run_keeps_json_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("latency_rejected_keeps");
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("result.json");
    std::fs::write(&json, "an earlier result\n").unwrap();

    let (code, _, stderr) = irqlab(&["--rate", "1", "-d", "2s", "--json", json.to_str().unwrap()]);

    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        "an earlier result\n"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a partial file stayed"
    );

    let missing = dir.join("missing");
    let (code, _, stderr) = irqlab(&["--json", missing.join("r.json").to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.ends_with(&format!(
            "cannot write it: its folder {} does not exist\n",
            missing.display()
        )),
        "{stderr}"
    );
}

#[test]
fn binary_plot_missing_file_exits_2() {
    let (code, _, stderr) = irqlab(&["plot", "/nonexistent/result.json", "--out", "x.svg"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("cannot read /nonexistent/result.json"),
        "{stderr}"
    );
}

#[test]
fn help_names_units_and_defaults() {
    let (code, stdout, _) = irqlab(&["--help"]);
    assert_eq!(code, Some(0));
    for expected in [
        "in hertz",
        "[default: 1000]",
        "[default: 10s]",
        "in --unit",
        "[default: 256]",
        "system-wq",
        "tokio-spawn",
        "--json <FILE>",
    ] {
        assert!(
            stdout.contains(expected),
            "help lacks {expected:?}:\n{stdout}"
        );
    }
}

#[test]
fn binary_ctrl_c_stops_at_once() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_irqlab"))
        .args([
            "latency",
            "--duration",
            "60s",
            "--rounds",
            "1",
            "-m",
            "system-wq",
        ])
        .args(["--noise-probe", "0s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the irqlab binary runs");
    // The first round's line, on standard error, shows that the
    // measurement is running.
    let mut progress = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("round ") {
        line.clear();
        assert!(
            progress.read_line(&mut line).unwrap() > 0,
            "irqlab ended early"
        );
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory effects; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut progress, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(rest.contains("interrupted"), "{rest}");
}

#[test]
fn binary_json_to_stdout_is_refused() {
    let (code, _, stderr) = irqlab(&["--json", "-"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("give --json a file name"), "{stderr}");
}

/// Options of a run short enough for a test: one mechanism, one round.
const SHORT_RUN: [&str; 8] = [
    "-d",
    "300ms",
    "--rounds",
    "1",
    "--noise-probe",
    "0s",
    "-m",
    "system-wq",
];

/// Measures a short run and returns its JSON result, parsed.
fn short_result(dir: &std::path::Path) -> serde_json::Value {
    let path = dir.join("result.json");
    let mut arguments = SHORT_RUN.to_vec();
    arguments.extend(["--json", path.to_str().unwrap()]);
    let (code, _, stderr) = irqlab(&arguments);
    assert_eq!(code, Some(0), "{stderr}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The JSON result records how many activations could wait at once, so a
/// reader can tell a loss from a small `--slots`.
#[test]
fn binary_json_records_slots() {
    let dir = std::env::temp_dir().join(format!("irqlab-slots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("result.json");
    let mut arguments = SHORT_RUN.to_vec();
    arguments.extend(["--slots", "8", "--json", path.to_str().unwrap()]);
    let (code, stdout, stderr) = irqlab(&arguments);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(", 8 slots,"), "{stdout}");

    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(result["settings"]["slots"], 8);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_plot_rejects_what_it_cannot_draw() {
    let dir = std::env::temp_dir().join(format!("irqlab-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let result = short_result(&dir);
    let svg = dir.join("plot.svg");
    let plot = |name: &str, json: &serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(&path, json.to_string()).unwrap();
        irqlab(&[
            "plot",
            path.to_str().unwrap(),
            "--out",
            svg.to_str().unwrap(),
        ])
    };

    let (code, _, stderr) = plot("good.json", &result);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("irqlab: wrote the plot to"), "{stderr}");

    // A run report, the likely mix-up, is named as one.
    let (code, _, stderr) = plot(
        "run.json",
        &serde_json::json!({"scenario": "demo", "irqs": [], "latency": {}}),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("it is a run report of `irqlab --json`"),
        "{stderr}"
    );

    // JSON of another shape is named by its kind, not serde's struct.
    let (code, _, stderr) = plot("array.json", &serde_json::json!([]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "array.json: it holds an array, not the object that `irqlab latency --json FILE` \
             writes"
        ),
        "{stderr}"
    );

    let mut empty = result.clone();
    empty["column_sets"] = serde_json::json!([]);
    let (code, _, stderr) = plot("empty.json", &empty);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"column_sets\" is empty"), "{stderr}");

    // Another format is named as such, not by the first field it lacks.
    let (code, _, stderr) = plot("other.json", &serde_json::json!({"format": "other/2"}));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("\"format\" is \"other/2\"; this irqlab reads"),
        "{stderr}"
    );

    // Hand-edited fields that the plot computes with.
    let edits: [(&str, &str, serde_json::Value, &str); 5] = [
        (
            "/settings",
            "bucket_ns",
            serde_json::json!(0),
            "settings: bucket_ns 0 and entries 256",
        ),
        (
            "/settings",
            "entries",
            serde_json::json!(1u64 << 62),
            "with a product below 2^64",
        ),
        (
            "/settings",
            "unit",
            serde_json::json!("ms"),
            "\"settings.unit\" is \"ms\"",
        ),
        (
            "/column_sets/0/irq/histogram",
            "nonzero",
            serde_json::json!([[5, 1], [3, 2]]),
            "bucket 3 is out of order",
        ),
        (
            "/column_sets/0/thr/histogram",
            "nonzero",
            serde_json::json!([]),
            "samples in the buckets",
        ),
    ];
    for (object, key, value, expected) in edits {
        let mut edited = result.clone();
        edited.pointer_mut(object).unwrap()[key] = value;
        let (code, _, stderr) = plot("edited.json", &edited);
        assert_eq!(code, Some(2), "{key}: {stderr}");
        assert!(stderr.contains(expected), "{key}: {stderr}");
    }

    // The plot is SVG, and it never overwrites the result it reads.
    let good = dir.join("good.json");
    let png = dir.join("plot.png");
    for (out, expected) in [
        (&good, "it is the result being plotted"),
        (&png, "give a file name ending in .svg"),
    ] {
        let (code, _, stderr) = irqlab(&[
            "plot",
            good.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let unchanged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    assert_eq!(unchanged, result);
    assert!(!png.exists());
    // A folder that does not exist is named as such, before any drawing,
    // as for any output that cannot be written.
    let nowhere = dir.join("missing").join("plot.svg");
    let (code, _, stderr) = irqlab(&[
        "plot",
        good.to_str().unwrap(),
        "--out",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.ends_with(&format!(
            "plot.svg: cannot write it: its folder {} does not exist\n",
            dir.join("missing").display()
        )),
        "{stderr}"
    );
    let svg_named = dir.join("result.svg");
    std::fs::copy(&good, &svg_named).unwrap();
    let (code, _, stderr) = irqlab(&[
        "plot",
        svg_named.to_str().unwrap(),
        "--out",
        svg_named.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("it is the result being plotted"),
        "{stderr}"
    );
    let unchanged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&svg_named).unwrap()).unwrap();
    assert_eq!(unchanged, result);

    // `-` writes the SVG to standard output, and prints nothing else.
    let (code, stdout, stderr) = irqlab(&["plot", good.to_str().unwrap(), "--out", "-"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("<svg"),
        "{}",
        &stdout[..stdout.len().min(80)]
    );
    assert!(stdout.trim_end().ends_with("</svg>"));
    assert!(stderr.is_empty(), "{stderr}");
    assert!(!dir.join("-").exists());

    let mut future = result;
    future["format"] = serde_json::json!("irqlab-latency/9");
    let (code, _, stderr) = plot("future.json", &future);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("\"format\" is \"irqlab-latency/9\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_full_stdout_fails_cleanly() {
    let output = Command::new(env!("CARGO_BIN_EXE_irqlab"))
        .arg("latency")
        .args(SHORT_RUN)
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .expect("the irqlab binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write <standard output>"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
