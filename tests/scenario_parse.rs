//! Scenario files: the built-in demo and the example files parse, and bad
//! files get errors that name the file, the line and the key.

use std::path::Path;
use std::time::Duration;

use irqlab::scenario::{
    ArrivalSpec, DeviceKind, Overrides, Scenario, ScenarioError, TimerKind, parse_duration,
};

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, "test.toml", Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// Returns the error's (line, key, message), failing if `text` parses.
fn rejected(text: &str) -> (usize, String, String) {
    match parse(text) {
        Ok(scenario) => panic!("accepted: {scenario:?}"),
        Err(ScenarioError::Invalid {
            line, key, message, ..
        }) => (line, key, message),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// Checks that `text` is rejected at `want_line` and `want_key`, with a
/// message that contains `want_message`.
fn assert_rejected(text: &str, want_line: usize, want_key: &str, want_message: &str) {
    let (line, key, message) = rejected(text);
    assert_eq!(line, want_line, "{text}");
    assert_eq!(key, want_key, "{text}");
    assert!(message.contains(want_message), "{message}");
}

const NIC: &str = r#"
[[device]]
name = "eth0"
kind = "nic"
irq = 40
arrival = { process = "poisson", rate = 1000 }
"#;

#[test]
fn demo_parses_with_every_kind() {
    let demo = Scenario::demo();
    assert_eq!(demo.name, "demo");
    assert_eq!(demo.machine.cpus, 2);
    let kinds: Vec<&str> = demo
        .devices
        .iter()
        .map(|device| device.kind.as_str())
        .collect();
    assert_eq!(kinds, ["nic", "uart", "block", "gpio"]);
    assert!(
        matches!(demo.timers[0].kind, TimerKind::Periodic { period, .. } if period == Duration::from_millis(4))
    );
    assert_eq!(demo.lines[0].budget, Duration::from_micros(50));
}

#[test]
fn every_example_file_parses() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "toml")
        {
            Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
            count += 1;
        }
    }
    assert!(count >= 1);
}

/// The UART scenarios send one text line per burst, so that each burst
/// ends with a line's newline and the character timeout takes that
/// line's tail. A burst gets `on` / period events rounded up, so an `on`
/// a little over a whole number of periods adds a byte to every burst.
#[test]
fn uart_bursts_are_whole_lines() {
    for file in ["shared-uart.toml", "uart-fifo.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(file);
        let scenario = Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
        for device in &scenario.devices {
            let (DeviceKind::Uart { line_length, .. }, ArrivalSpec::Bursts { period, on, .. }) =
                (&device.kind, &device.arrival)
            else {
                continue;
            };
            let per_burst = on.as_nanos().div_ceil(period.as_nanos());
            assert_eq!(per_burst, *line_length as u128, "{file}: {}", device.name);
        }
    }
}

#[test]
fn defaults_fill_what_is_left_out() {
    let scenario = parse(NIC).unwrap();
    assert_eq!(scenario.duration, Duration::from_secs(5));
    assert_eq!(scenario.devices[0].workqueue, "system_wq");
    assert_eq!(
        scenario.devices[0].kind,
        DeviceKind::Nic {
            ring: 256,
            napi_budget: 64
        }
    );
    assert_eq!(
        scenario.devices[0].arrival,
        ArrivalSpec::Poisson { rate_hz: 1000.0 }
    );
}

#[test]
fn durations_need_a_unit() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("20us"), Ok(Duration::from_micros(20)));
    assert_eq!(parse_duration("500ns"), Ok(Duration::from_nanos(500)));
    assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h 30min"), Ok(Duration::from_secs(5400)));
    assert!(parse_duration("").is_err());
    assert!(parse_duration("ms").is_err());
    assert!(parse_duration("1s5").is_err());
    assert!(parse_duration("250").unwrap_err().problem.contains("unit"));
    assert!(parse_duration("fast").is_err());
    assert_eq!(
        parse_duration("1,5s").unwrap_err().problem,
        "not a duration; write decimals with a dot, as in \"1.5s\""
    );
    let negative = parse_duration("-1s").unwrap_err();
    assert_eq!(negative.value, "-1s");
    assert_eq!(negative.to_string(), "\"-1s\" is a negative duration");
}

#[test]
fn bad_duration_names_line_and_key() {
    let (line, key, message) = rejected("duration = \"ten seconds\"\n");
    assert_eq!((line, key.as_str()), (1, "duration"));
    assert!(
        message.contains("\"ten seconds\" is not a duration"),
        "{message}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_what_is_allowed() {
    let (line, key, message) = rejected(&format!("{NIC}colour = \"red\"\n"));
    assert_eq!((line, key.as_str()), (7, "device[0].colour"));
    assert!(message.starts_with("unknown key `colour` ("), "{message}");
    assert!(
        message.contains("every device takes name, kind, irq"),
        "{message}"
    );
    // A kind's own keys are listed under that kind.
    assert!(
        message.contains("uart: line_length, trigger_level, baud;"),
        "{message}"
    );
}

#[test]
fn misspelt_keys_get_the_closest_one() {
    let cases = [
        (
            NIC.replace("arrival =", "arival ="),
            6,
            "device[0].arival",
            "arrival",
        ),
        (
            NIC.replace("rate =", "rat ="),
            6,
            "device[0].arrival.rat",
            "rate",
        ),
        ("dration = \"1s\"\n".to_owned(), 1, "dration", "duration"),
        ("[machine]\ncpu = 2\n".to_owned(), 2, "machine.cpu", "cpus"),
        (
            NIC.replace(
                "arrival = { process = \"poisson\", rate = 1000 }",
                "[device.arrival]\nprocess = \"poisson\"\nrat = 1000",
            ),
            8,
            "device[0].arrival.rat",
            "rate",
        ),
    ];
    for (text, line, key, closest) in cases {
        assert_rejected(&text, line, key, &format!("; did you mean `{closest}`?"));
    }
    // A key far from every allowed one gets the list only.
    let (_, _, message) = rejected(&format!("{NIC}bogus = 1\n"));
    assert!(!message.contains("did you mean"), "{message}");
}

/// An unclosed table header still names its table.
#[test]
fn unclosed_header_names_its_table() {
    assert_rejected(
        "[[device]\nkind = \"nic\"\n",
        1,
        "device[0]",
        "unclosed array table",
    );
}

#[test]
fn misspelt_choices_get_the_closest_one() {
    assert_rejected(
        &NIC.replace("\"poisson\"", "\"poison\""),
        6,
        "device[0].arrival.process",
        "\"poison\" is not allowed (did you mean \"poisson\"?); use one of \"periodic\"",
    );
    assert_rejected(
        &NIC.replace("kind = \"nic\"", "kind = \"nik\""),
        4,
        "device[0].kind",
        "\"nik\" is not allowed (did you mean \"nic\"?); use one of",
    );
}

#[test]
fn type_errors_name_the_key() {
    let cases = [
        (
            "[machine]\ncpus = \"2\"\n".to_owned(),
            2,
            "machine.cpus",
            "expected an integer (1 to 64, written without quotes)",
        ),
        (
            "seed = 1.5\n".to_owned(),
            1,
            "seed",
            "floating point `1.5`, expected an integer (0 to 2^63-1)",
        ),
        (
            NIC.replace("rate = 1000", "rate = \"1000\""),
            6,
            "device[0].arrival.rate",
            "expected a number, written without quotes",
        ),
        (
            NIC.replace("{ process = \"poisson\", rate = 1000 }", "{ rate = 1000 }"),
            6,
            "device[0].arrival",
            "missing key `process`: one of \"periodic\", \"poisson\", \"bursts\", \"replay\"",
        ),
        (
            NIC.replace("irq = 40\n", ""),
            2,
            "device[0]",
            "missing key `irq`",
        ),
        (
            "[machine]\ncpus = 99999999999999999999\n".to_owned(),
            2,
            "machine.cpus",
            "99999999999999999999 is out of range; expected 1 to 64",
        ),
        (
            "[machine]\ncpus = -99999999999999999999\n".to_owned(),
            2,
            "machine.cpus",
            "-99999999999999999999 is out of range; expected 1 to 64",
        ),
        (
            "seed = 18446744073709551615\n".to_owned(),
            1,
            "seed",
            "18446744073709551615 is out of range; expected 0 to 2^63-1",
        ),
        (
            NIC.replace("irq = 40\n", "irq = 40\nring = 99999999999999999999\n"),
            6,
            "device[0].ring",
            "99999999999999999999 is out of range; integers here are at most 2^63-1",
        ),
        (
            NIC.replace("{ process = \"poisson\", rate = 1000 }", "\"poisson\""),
            6,
            "device[0].arrival",
            "invalid type: string \"poisson\", expected a table of keys: an inline table \
             such as { process = \"poisson\", rate = 100 }, with `process` one of \
             \"periodic\", \"poisson\", \"bursts\", \"replay\"",
        ),
        (
            "machine = 2\n".to_owned(),
            1,
            "machine",
            "invalid type: integer `2`, expected a table of keys",
        ),
    ];
    for (text, line, key, message) in cases {
        assert_rejected(&text, line, key, message);
    }
}

#[test]
fn key_of_other_kind_named() {
    let text = NIC.replace("irq = 40", "irq = 40\ndepth = 4");
    let (line, key, message) = rejected(&text);
    assert_eq!((line, key.as_str()), (6, "device[0].depth"));
    assert!(message.contains("block devices"), "{message}");
}

#[test]
fn zero_and_negative_rates_are_rejected() {
    for rate in ["0", "-5", "0.0"] {
        let (line, key, message) = rejected(&NIC.replace("rate = 1000", &format!("rate = {rate}")));
        assert_eq!((line, key.as_str()), (6, "device[0].arrival.rate"));
        assert!(message.contains("from one a day"), "{message}");
    }
}

#[test]
fn unshared_line_used_twice_rejected() {
    let text = format!("{NIC}{}", NIC.replace("eth0", "eth1"));
    let (line, key, message) = rejected(&text);
    assert_eq!((line, key.as_str()), (11, "device[1].irq"));
    assert!(
        message.contains("already used by device \"eth0\""),
        "{message}"
    );
}

#[test]
fn generic_devices_share_a_line() {
    let device = |name: &str| {
        format!(
            "[[device]]\nname = \"{name}\"\nkind = \"generic\"\nirq = 16\nshared = true\n\
             arrival = {{ process = \"periodic\", rate = 10 }}\n"
        )
    };
    let scenario = parse(&format!("{}{}", device("ehci"), device("mmc0"))).unwrap();
    assert!(
        scenario
            .devices
            .iter()
            .all(|device| device.shared && device.irq == 16)
    );
}

/// A UART shares a level line with a generic device; a NIC, whose driver
/// claims every interrupt, may not set `shared`.
#[test]
fn only_uart_and_generic_share() {
    let uart = "[[device]]\nname = \"ttyS0\"\nkind = \"uart\"\nirq = 11\nshared = true\n\
                arrival = { process = \"periodic\", rate = 10 }\n";
    let generic = "[[device]]\nname = \"usb1\"\nkind = \"generic\"\nirq = 11\n\
                   trigger = \"level\"\nshared = true\n\
                   arrival = { process = \"periodic\", rate = 10 }\n";
    let scenario = parse(&format!("{uart}{generic}")).unwrap();
    assert!(scenario.devices.iter().all(|device| device.shared));

    let (line, key, message) = rejected(&NIC.replace("irq = 40", "irq = 40\nshared = true"));
    assert_eq!((line, key.as_str()), (6, "device[0].shared"));
    assert!(
        message.contains("the nic driver does not share its line"),
        "{message}"
    );
    assert!(
        message.contains("only uart and generic devices"),
        "{message}"
    );
}

/// A trigger mismatch on a shared line points at the second device's
/// `trigger`, or at its `irq` when it left the trigger to its default.
#[test]
fn shared_line_trigger_mismatch_located() {
    let device = |name: &str, trigger: &str| {
        format!(
            "[[device]]\nname = \"{name}\"\nkind = \"generic\"\nirq = 16\nshared = true\n\
             {trigger}arrival = {{ process = \"periodic\", rate = 10 }}\n"
        )
    };
    let text = format!(
        "{}{}",
        device("ehci", ""),
        device("mmc0", "trigger = \"level\"\n")
    );
    let (line, key, message) = rejected(&text);
    assert_eq!(key, "device[1].trigger");
    assert_eq!(line, 12);
    assert!(
        message.contains("line 16 is edge for device \"ehci\" and level here"),
        "{message}"
    );

    let text = format!(
        "{}{}",
        device("ehci", "trigger = \"level\"\n"),
        device("mmc0", "")
    );
    let (line, key, message) = rejected(&text);
    assert_eq!(key, "device[1].irq");
    assert_eq!(line, 11);
    assert!(message.contains("and edge (the default) here"), "{message}");

    // A UART cannot choose its trigger, so level is no default there.
    let uart = "[[device]]\nname = \"ttyS0\"\nkind = \"uart\"\nirq = 16\nshared = true\n\
                arrival = { process = \"periodic\", rate = 10 }\n";
    let text = format!("{}{uart}", device("ehci", ""));
    let (line, key, message) = rejected(&text);
    assert_eq!(key, "device[1].irq");
    assert_eq!(line, 10);
    assert!(
        message
            .contains("line 16 is edge for device \"ehci\" and level (a uart's only trigger) here"),
        "{message}"
    );
}

/// A level line takes as many devices as its wired OR has inputs; edge
/// lines hold nothing, so they take any number.
#[test]
fn level_line_takes_at_most_six_devices() {
    let devices = |count: usize, trigger: &str| -> String {
        (0..count)
            .map(|index| {
                format!(
                    "[[device]]\nname = \"dev{index}\"\nkind = \"generic\"\nirq = 16\n\
                     shared = true\ntrigger = \"{trigger}\"\n\
                     arrival = {{ process = \"periodic\", rate = 10 }}\n"
                )
            })
            .collect()
    };
    assert_eq!(parse(&devices(6, "level")).unwrap().devices.len(), 6);
    assert_eq!(parse(&devices(7, "edge")).unwrap().devices.len(), 7);
    let (line, key, message) = rejected(&devices(7, "level"));
    assert_eq!((line, key.as_str()), (46, "device[6].irq"));
    assert!(
        message.contains("line 16 already has 6 level-triggered devices"),
        "{message}"
    );
}

/// A rate becomes a period rounded up to a whole nanosecond, so that a
/// run never gets more events than the rate requests.
#[test]
fn rate_rounds_period_up() {
    let scenario = parse(&NIC.replace(
        "{ process = \"poisson\", rate = 1000 }",
        "{ process = \"periodic\", rate = 3 }",
    ))
    .unwrap();
    let ArrivalSpec::Periodic { period } = scenario.devices[0].arrival else {
        panic!("{:?}", scenario.devices[0].arrival);
    };
    assert_eq!(period, Duration::from_nanos(333_333_334));
}

/// Devices sharing a line share the CPU it is routed to.
#[test]
fn shared_line_cpu_mismatch_located() {
    let device = |name: &str, cpu: &str| {
        format!(
            "[[device]]\nname = \"{name}\"\nkind = \"generic\"\nirq = 16\nshared = true\n\
             {cpu}arrival = {{ process = \"periodic\", rate = 10 }}\n"
        )
    };
    let machine = "[machine]\ncpus = 2\n";
    let text = format!(
        "{machine}{}{}",
        device("ehci", "cpu = 1\n"),
        device("mmc0", "")
    );
    let (_, key, message) = rejected(&text);
    assert_eq!(key, "device[1].irq");
    assert!(
        message
            .contains("line 16 goes to CPU 1 for device \"ehci\" and to CPU 0 (the default) here"),
        "{message}"
    );

    let text = format!(
        "{machine}{}{}",
        device("ehci", ""),
        device("mmc0", "cpu = 1\n")
    );
    let (_, key, _) = rejected(&text);
    assert_eq!(key, "device[1].cpu");
}

#[test]
fn references_are_checked() {
    let (_, key, message) = rejected(&NIC.replace("irq = 40", "irq = 40\nworkqueue = \"fast\""));
    assert_eq!(key, "device[0].workqueue");
    assert!(
        message.contains("no workqueue is named \"fast\""),
        "{message}"
    );

    let (_, key, message) = rejected(&NIC.replace("irq = 40", "irq = 4000"));
    assert_eq!(key, "device[0].irq");
    assert!(message.contains("lines 0 to 1023"), "{message}");

    let (_, key, _) = rejected(&format!("{NIC}[[line]]\nirq = 41\nbudget = \"10us\"\n"));
    assert_eq!(key, "line[0].irq");
}

#[test]
fn syntax_errors_point_at_the_line() {
    let error = parse("name = \"x\"\n[machine\ncpus = 2\n").unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("test.toml:2:"), "{text}");
}

#[test]
fn limits_catch_unit_slips() {
    let generic = |extra: &str| {
        format!(
            "[[device]]\nname = \"a\"\nkind = \"generic\"\nirq = 4\n{extra}\n\
             arrival = {{ process = \"periodic\", rate = 5 }}\n"
        )
    };
    let (_, key, message) = rejected(&generic("work = \"10s\""));
    assert_eq!(key, "device[0].work");
    assert!(message.contains("at most 1s"), "{message}");

    let (_, key, _) = rejected(&NIC.replace("rate = 1000", "rate = 1e-300"));
    assert_eq!(key, "device[0].arrival.rate");

    let tick = "[[timer]]\nname = \"t\"\nirq = 16\nperiod = \"4ms\"\nhousekeeping = \"1ns\"\n";
    let (_, key, message) = rejected(tick);
    assert_eq!(key, "timer[0].housekeeping");
    assert!(message.contains("out of range"), "{message}");
}

#[test]
fn empty_scenario_rejected() {
    let (line, _, message) = rejected("name = \"empty\"\n");
    assert_eq!(line, 1);
    assert!(
        message.contains("no [[timer]] and no [[device]]"),
        "{message}"
    );
}

#[test]
fn kernel_names_of_system_queues_are_taken() {
    let text = format!("[[workqueue]]\nname = \"events\"\n{NIC}");
    let (_, key, message) = rejected(&text);
    assert_eq!(key, "workqueue[0].name");
    assert!(message.contains("system queue"), "{message}");
}

#[test]
fn type_errors_speak_toml() {
    let (_, _, message) = rejected(&NIC.replace("irq = 40", "irq = \"40\""));
    assert!(message.contains("expected an integer"), "{message}");
    let (_, _, message) = rejected("[device]\nname = \"a\"\n");
    assert!(message.contains("[[device]]"), "{message}");
}

#[test]
fn cpus_override_out_of_range_is_an_error() {
    for cpus in [0, 65] {
        let error = Scenario::parse_with(
            NIC,
            "test.toml",
            Path::new(env!("CARGO_MANIFEST_DIR")),
            Overrides { cpus: Some(cpus) },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("--cpus {cpus}: out of range; expected 1 to 64")
        );
    }
}

#[test]
fn misspelt_queue_and_slipped_budget_are_named() {
    let text = format!(
        "[[workqueue]]\nname = \"net_rx\"\n{}",
        NIC.replace("irq = 40", "irq = 40\nworkqueue = \"net-rx\"")
    );
    let (_, key, message) = rejected(&text);
    assert_eq!(key, "device[0].workqueue");
    assert!(message.contains("(did you mean \"net_rx\"?)"), "{message}");
    assert!(message.contains("net_rx, or declare it"), "{message}");

    let (_, key, message) = rejected(&format!("{NIC}[[line]]\nirq = 40\nbudget = \"2s\"\n"));
    assert_eq!(key, "line[0].budget");
    assert!(message.contains("did you mean us or ms?"), "{message}");
    assert!(message.contains("at most 100ms"), "{message}");

    for zero in ["0us", "0s"] {
        let (_, key, message) =
            rejected(&format!("{NIC}[[line]]\nirq = 40\nbudget = \"{zero}\"\n"));
        assert_eq!(key, "line[0].budget");
        assert_eq!(
            message,
            format!(
                "\"{zero}\" is out of range; a top half's budget is longer than 0s and at \
                 most 100ms"
            )
        );
    }
}

/// A table written with the wrong brackets, or a top-level key below a
/// table, gets the fix in the file's own syntax.
#[test]
fn bracket_and_placement_slips_get_the_fix() {
    let (_, key, message) = rejected(&format!("[[machine]]\ncpus = 2\n{NIC}"));
    assert_eq!(key, "machine[0]");
    assert!(
        message.contains("write [machine] with single brackets"),
        "{message}"
    );

    let (line, key, message) = rejected(&format!("{NIC}\n[device]\nname = \"b\"\n"));
    assert_eq!((line, key.as_str()), (8, "device"));
    assert!(
        message.contains("[device] and [[device]] mixed: write [[device]] with double brackets"),
        "{message}"
    );
    let (_, key, message) = rejected(&format!("[device]\nname = \"b\"\n{NIC}"));
    assert_eq!(key, "device[0]");
    assert!(
        message.contains("[device] and [[device]] mixed"),
        "{message}"
    );
    let (_, _, message) = rejected(&format!(
        "[machine]\ncpus = 1\n[[machine]]\ncpus = 2\n{NIC}"
    ));
    assert_eq!(
        message,
        "the file has two machine tables; keep one [machine]"
    );
    let (_, key, message) = rejected(&format!("[[workqueue]]\nmax_active = 1\n{NIC}"));
    assert_eq!(key, "workqueue[0]");
    assert!(message.ends_with("such as \"nic_rx\""), "{message}");

    let (_, key, message) = rejected(&format!("{NIC}duration = \"1s\"\n"));
    assert_eq!(key, "device[0].duration");
    assert!(
        message.contains("`duration` is a top-level key: put it above the first [table]"),
        "{message}"
    );

    let (_, key, message) = rejected(
        "[[device]]\nname = \"a\"\nkind = \"nic\"\narrival = { process = \"poisson\", rate = 10 }\n",
    );
    assert_eq!(key, "device[0]");
    assert!(
        message.contains("missing key `irq`: the line number, from 0 to one below `machine.irqs`"),
        "{message}"
    );
    let (_, _, message) = rejected(
        "[[device]]\nname = \"a\"\nirq = 4\narrival = { process = \"poisson\", rate = 10 }\n",
    );
    assert!(
        message.contains(
            "missing key `kind`: one of \"nic\", \"uart\", \"block\", \"gpio\", \"generic\""
        ),
        "{message}"
    );
}

/// Each device runs an arrival thread, so a scenario takes at most
/// `MAX_DEVICES` of them; the first device over the limit is named.
#[test]
fn too_many_devices_rejected() {
    let device = |index: usize| {
        format!(
            "[[device]]\nname = \"d{index}\"\nkind = \"generic\"\nirq = {}\n\
             arrival = {{ process = \"periodic\", rate = 10 }}\n",
            index % 1000
        )
    };
    let limit = irqlab::scenario::MAX_DEVICES;
    let text: String = (0..=limit).map(device).collect();
    let (line, key, message) = rejected(&format!("[machine]\nirqs = 1024\n{text}"));

    assert_eq!(key, format!("device[{limit}]"));
    assert_eq!(line, 3 + 5 * limit);
    assert!(message.contains("4097 devices"), "{message}");
    assert!(message.contains("at most 4096"), "{message}");
}

/// A UART cannot receive faster than its line carries: baud / 10 bytes a
/// second at 10 bits a byte.
#[test]
fn uart_rate_over_wire_speed_rejected() {
    let uart = |extra: &str, arrival: &str| {
        format!(
            "[[device]]\nname = \"ttyS0\"\nkind = \"uart\"\nirq = 4\n{extra}arrival = {arrival}\n"
        )
    };
    assert_rejected(
        &uart("baud = 9600\n", "{ process = \"periodic\", rate = 11520 }"),
        5,
        "device[0].baud",
        "11520 bytes a second do not fit a 9600-baud line, which carries 960",
    );
    assert_rejected(
        &uart("baud = 115200\n", "{ process = \"poisson\", rate = 20000 }"),
        5,
        "device[0].baud",
        "do not fit a 115200-baud line",
    );
    // Without `baud`, as files written before it, any rate is taken.
    parse(&uart("", "{ process = \"poisson\", rate = 20000 }")).unwrap();
    // Exactly the line's speed fits.
    parse(&uart(
        "baud = 9600\n",
        "{ process = \"bursts\", rate = 960, on = \"1s\", off = \"1s\" }",
    ))
    .unwrap();
}

/// A bursts process without `off` names `off`, not `on`.
#[test]
fn burst_without_off_names_off() {
    let text = NIC.replace(
        "{ process = \"poisson\", rate = 1000 }",
        "{ process = \"bursts\", rate = 1000, on = \"5ms\" }",
    );
    assert_rejected(&text, 6, "device[0].arrival.off", "is missing");
}

/// A file with mistakes in several sections gets them all, in file order,
/// though the timers are checked before the devices.
#[test]
fn several_errors_reported_in_file_order() {
    let text = r#"
duration = "5q"

[[device]]
name = "eth0"
kind = "nic"
irq = 4000
arrival = { process = "poisson", rate = 1000 }

[[timer]]
name = "tick"
irq = 16
period = "0s"

[[device]]
name = "ttyS0"
kind = "uart"
irq = 4
trigger_level = 17
arrival = { process = "periodic", rate = 100 }
"#;
    let errors = match parse(text) {
        Err(ScenarioError::Several(errors)) => errors,
        other => panic!("expected several errors, got {other:?}"),
    };
    let found: Vec<(usize, &str)> = errors
        .iter()
        .map(|error| match error {
            ScenarioError::Invalid { line, key, .. } => (*line, key.as_str()),
            other => panic!("unexpected error: {other}"),
        })
        .collect();
    assert_eq!(
        found,
        [
            (2, "duration"),
            (7, "device[0].irq"),
            (13, "timer[0].period"),
            (19, "device[1].trigger_level"),
        ]
    );
    let message = ScenarioError::Several(errors).to_string();
    assert!(message.ends_with("4 errors in test.toml"), "{message}");
}

/// Names and lines are checked across devices, so a device that failed its
/// own checks stops the file there: no error about a line it would use.
#[test]
fn failed_device_skips_line_checks() {
    let text = format!(
        r#"{NIC}
[[device]]
name = "eth1"
kind = "nic"
irq = 40
arrival = {{ process = "poisson", rate = -1 }}
"#
    );
    let (line, key, _) = rejected(&text);
    assert_eq!(line, 12, "{text}");
    assert_eq!(key, "device[1].arrival.rate");
}

/// Every bad `[[workqueue]]` and every bad `[[line]]` is reported, not only
/// the first of each.
#[test]
fn bad_queues_and_lines_all_reported() {
    let queues = r#"
[[workqueue]]
name = "events"

[[workqueue]]
name = "rx"
ordered = true
max_active = 2
"#;
    let keys = |text: &str| -> Vec<String> {
        match parse(text) {
            Err(ScenarioError::Several(errors)) => errors
                .iter()
                .map(|error| match error {
                    ScenarioError::Invalid { key, .. } => key.clone(),
                    other => panic!("unexpected error: {other}"),
                })
                .collect(),
            other => panic!("expected several errors, got {other:?}"),
        }
    };
    assert_eq!(
        keys(&format!("{queues}{NIC}")),
        ["workqueue[0].name", "workqueue[1].max_active"]
    );

    let lines = format!(
        r#"{NIC}
[[line]]
irq = 41

[[line]]
irq = 40
budget = "5s"
"#
    );
    assert_eq!(keys(&lines), ["line[0].irq", "line[1].budget"]);
}
