//! Tests on ftrace output recorded on real machines. Values marked "by hand"
//! were read off the data files.

use super::*;
use proptest::prelude::*;

fn read_data(name: &str) -> String {
    let path = format!("{}/data/real/ftrace/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn parse_data(name: &str) -> Trace {
    Trace::parse(&read_data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn other_name(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::Other { name, .. } => Some(name),
        _ => None,
    }
}

const OLD_FORMAT_LINE: &str = " kworker/0:3-6880  [000]  2784.771958: workqueue_execute_start: work struct ffff8800a5083a20: function f";

#[test]
fn catapult_irq_lines_sorted_by_time() {
    let trace = parse_data("catapult-irq-lines.txt");
    assert_eq!(trace.events.len(), 4);

    // By hand: the softirq pair (lines 3-4, 14063.477...) comes before the
    // irq pair (lines 1-2, 14063.748...) in time.
    let lines: Vec<usize> = trace.events.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 1, 2]);
    assert_eq!(trace.start_ns(), Some(14_063_477_231_000));
}

#[test]
fn catapult_irq_lines_columns() {
    let trace = parse_data("catapult-irq-lines.txt");

    // By hand: ` kworker/u4:2-31908 (31908) [000] ..s3 14063.477231: softirq_entry: vec=9 [action=RCU]`.
    let first = &trace.events[0];
    assert_eq!(first.task, "kworker/u4:2");
    assert_eq!(first.pid, 31908);
    assert_eq!(first.tgid, Some(31908));
    assert_eq!(first.cpu, 0);
    assert_eq!(first.flags.as_deref(), Some("..s3"));
    assert_eq!(
        first.kind,
        EventKind::SoftirqEntry {
            vec: 9,
            action: Some("RCU".to_owned())
        }
    );
    assert_eq!(
        trace.events[1].kind,
        EventKind::SoftirqExit {
            vec: 9,
            action: Some("RCU".to_owned())
        }
    );

    // By hand: line 2 is `irq_handler_exit: irq=27 ret=handled` with flags `dNh3`.
    let exit = &trace.events[3];
    assert_eq!(
        exit.kind,
        EventKind::IrqHandlerExit {
            irq: 27,
            ret: IrqReturn::Handled
        }
    );
    assert_eq!(exit.flags.as_deref(), Some("dNh3"));
    assert_eq!(exit.timestamp_ns, 14_063_748_384_000);
}

#[test]
fn catapult_irq_entries_per_line() {
    let trace = parse_data("catapult-irq-lines.txt");
    let lines = trace.irq_entries();
    assert_eq!(lines.len(), 1);

    // By hand: irq 27 (arch_timer) entered on CPU1 at 14063.748288, which is
    // 0.271057 s after the first event at 14063.477231.
    let entries = &lines[&27];
    assert_eq!(
        entries,
        &[IrqEntry {
            name: "arch_timer".to_owned(),
            cpu: 1,
            since_start: Duration::from_micros(271_057),
        }]
    );
}

#[test]
fn catapult_workqueue_durations() {
    let trace = parse_data("catapult-workqueue-lines.txt");
    assert_eq!(trace.events.len(), 4);
    assert!(
        trace
            .events
            .iter()
            .all(|e| e.flags.is_none() && e.tgid.is_none())
    );

    // By hand: 2784.771958 -> 2784.771966 (8 us) on CPU0, and
    // 2784.805966 -> 2784.805975 (9 us) on CPU1, 34008 us after the first.
    let executions = trace.work_executions();
    assert_eq!(
        executions,
        [
            WorkExecution {
                work: 0xffff_8800_a508_3a20,
                function: "intel_unpin_work_fn".to_owned(),
                cpu: 0,
                since_start: Duration::ZERO,
                duration: Some(Duration::from_micros(8)),
            },
            WorkExecution {
                work: 0xffff_8801_4fb0_f158,
                function: "do_dbs_timer".to_owned(),
                cpu: 1,
                since_start: Duration::from_micros(34_008),
                duration: Some(Duration::from_micros(9)),
            },
        ]
    );
    assert_eq!(
        trace.events[1].kind,
        EventKind::WorkqueueExecuteEnd {
            work: 0xffff_8800_a508_3a20,
            function: None
        }
    );
}

#[test]
fn timerlat_both_flag_widths() {
    let text = read_data("timerlat-trace-example.txt");
    let trace = Trace::parse(&text).unwrap();

    // By hand: 8 event lines in block 1 (4-character flags), 5 in block 2
    // and 6 in block 3 (7-character flags), plus one `<stack trace>` line.
    assert_eq!(trace.events.len(), 19);
    let flag_widths = |width| {
        trace
            .events
            .iter()
            .filter(|e| e.flags.as_ref().is_some_and(|f| f.len() == width))
            .count()
    };
    assert_eq!(flag_widths(4), 8);
    assert_eq!(flag_widths(7), 11);
}

#[test]
fn timerlat_events_kept_as_other() {
    let trace = parse_data("timerlat-trace-example.txt");
    let count = |name| {
        trace
            .events
            .iter()
            .filter(|e| other_name(e) == Some(name))
            .count()
    };
    assert_eq!(count(TIMERLAT_EVENT), 12);
    assert_eq!(count("irq_noise"), 5);
    assert_eq!(count("thread_noise"), 2);

    // By hand, line 12: `<...>-867 [000] .... 54.029339: #1 context thread timer_latency 11700 ns`.
    let thread = trace.events.iter().find(|e| e.line == 12).unwrap();
    assert_eq!(thread.task, "<...>");
    assert_eq!(thread.pid, 867);
    assert_eq!(thread.timestamp_ns, 54_029_339_000);
    assert_eq!(
        thread.kind,
        EventKind::Other {
            name: TIMERLAT_EVENT.to_owned(),
            fields: "#1     context thread timer_latency     11700 ns".to_owned(),
        }
    );

    // By hand, line 22: `irq_noise: qxl:21 start 548.771085017 duration 7139 ns`.
    let noise = trace.events.iter().find(|e| e.line == 22).unwrap();
    assert_eq!(noise.task, "cc1");
    assert_eq!(noise.flags.as_deref(), Some("dNLh2.."));
    assert_eq!(
        noise.kind,
        EventKind::Other {
            name: "irq_noise".to_owned(),
            fields: "qxl:21 start 548.771085017 duration 7139 ns".to_owned(),
        }
    );
}

#[test]
fn timerlat_stack_trace_skipped() {
    let trace = parse_data("timerlat-trace-example.txt");

    // By hand: line 31 is the last event, line 32 is `<stack trace>` and
    // lines 33-46 are `=>` frames.
    assert!(trace.events.iter().all(|e| e.line <= 31));
    let last_line = trace.events.iter().map(|e| e.line).max();
    assert_eq!(last_line, Some(31));
}

#[test]
fn timerlat_blocks_sorted_by_time() {
    let trace = parse_data("timerlat-trace-example.txt");
    let stamps: Vec<u64> = trace.events.iter().map(|e| e.timestamp_ns).collect();
    assert!(stamps.is_sorted());

    // By hand: block 3 (200.2 s, lines 26-31) sorts before block 2 (548.7 s).
    assert_eq!(trace.events[8].line, 26);
    assert_eq!(trace.events[18].line, 24);
    assert_eq!(trace.start_ns(), Some(54_029_328_000));
}

#[test]
fn queue_and_activate_work_fields() {
    let text = "\
 kworker/1:0-12 [001] d..2 10.000001: workqueue_queue_work: work struct=ffff9a01 function=vmstat_update workqueue=mm_percpu_wq req_cpu=1 cpu=1
 kworker/1:0-12 [001] d..2 10.000002: workqueue_activate_work: work struct ffff9a01
 kworker/1:0-12 [001] .... 10.000003: workqueue_execute_start: work struct 0xffff9a01: function vmstat_update
 kworker/1:0-12 [001] .... 10.000010: workqueue_execute_end: work struct ffff9a01: function vmstat_update
";
    let trace = Trace::parse(text).unwrap();
    assert_eq!(
        trace.events[0].kind,
        EventKind::WorkqueueQueueWork {
            work: 0xffff9a01,
            function: "vmstat_update".to_owned(),
            workqueue: Some("mm_percpu_wq".to_owned()),
            req_cpu: Some(1),
            cpu: Some(1),
        }
    );
    assert_eq!(
        trace.events[1].kind,
        EventKind::WorkqueueActivateWork { work: 0xffff9a01 }
    );
    assert_eq!(
        trace.events[3].kind,
        EventKind::WorkqueueExecuteEnd {
            work: 0xffff9a01,
            function: Some("vmstat_update".to_owned())
        }
    );
    let executions = trace.work_executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].duration, Some(Duration::from_micros(7)));
}

#[test]
fn work_execution_without_end() {
    let text = "\
 w-1 [000] .... 1.000000: workqueue_execute_end: work struct aa
 w-1 [000] .... 1.000001: workqueue_execute_start: work struct aa: function f
 w-1 [000] .... 1.000002: workqueue_execute_start: work struct aa: function f
 w-1 [000] .... 1.000005: workqueue_execute_end: work struct aa
";
    let executions = Trace::parse(text).unwrap().work_executions();
    let durations: Vec<_> = executions.iter().map(|e| e.duration).collect();
    assert_eq!(durations, [None, Some(Duration::from_micros(3))]);
}

#[test]
fn irq_name_with_spaces_and_unknown_tgid() {
    let text = "   <idle>-0  (-------) [002] d.h. 5.5: irq_handler_entry: irq=512 name=gpio-keys: KEY_POWER\n";
    let event = &Trace::parse(text).unwrap().events[0];
    assert_eq!(event.tgid, None);
    assert_eq!(event.timestamp_ns, 5_500_000_000);
    assert_eq!(
        event.kind,
        EventKind::IrqHandlerEntry {
            irq: 512,
            name: "gpio-keys: KEY_POWER".to_owned()
        }
    );
}

#[test]
fn unknown_event_kept_as_other() {
    let text =
        " bash-77 [003] .... 9.000001: sched_wakeup: comm=foo pid=9 prio=120 target_cpu=003\n";
    let trace = Trace::parse(text).unwrap();
    assert_eq!(
        trace.events[0].kind,
        EventKind::Other {
            name: "sched_wakeup".to_owned(),
            fields: "comm=foo pid=9 prio=120 target_cpu=003".to_owned(),
        }
    );
}

#[test]
fn parse_skips_comments_and_blank_lines() {
    let text = "# tracer: nop\n#\n\n   \n  => frame\n";
    assert_eq!(Trace::parse(text).unwrap().events, []);
    assert_eq!(Trace::parse("").unwrap().start_ns(), None);
}

/// The layout of `trace-cmd report`: a preamble, no flags column, and the
/// marks of lost events.
const TRACE_CMD_REPORT: &str = "\
version = 6
CPU 2 is empty
cpus=4
          <idle>-0     [000]  5103.449510: irq_handler_entry:    irq=27 name=arch_timer
          <idle>-0     [000]  5103.449520: irq_handler_exit:     irq=27 ret=handled
CPU:0 [204 EVENTS DROPPED]
          <idle>-0     [000]  5103.453510: irq_handler_entry:    irq=27 name=arch_timer
          <idle>-0     [001]  5103.455510: irq_handler_entry:    irq=27 name=arch_timer
CPU:1 [EVENTS DROPPED]
          <idle>-0     [001]  5103.457510: irq_handler_entry:    irq=27 name=arch_timer
CPU:3 [LOST 12 EVENTS]
";

#[test]
fn parse_reads_trace_cmd_report() {
    let trace = Trace::parse(TRACE_CMD_REPORT).unwrap();
    assert_eq!(trace.cpus, Some(4));
    let lines: Vec<usize> = trace.events.iter().map(|event| event.line).collect();
    assert_eq!(lines, [4, 5, 7, 8, 10]);
    assert_eq!(trace.events[0].flags, None);
    assert_eq!(trace.irq_entries()[&27].len(), 4);
    assert_eq!(
        trace.lost,
        [
            LostEvents {
                line: 6,
                cpu: 0,
                count: Some(204)
            },
            LostEvents {
                line: 9,
                cpu: 1,
                count: None
            },
            LostEvents {
                line: 11,
                cpu: 3,
                count: Some(12)
            },
        ]
    );
}

#[test]
fn parse_rejects_malformed_status_lines() {
    for line in [
        "cpus=four",
        "version = six",
        "CPU x is empty",
        "CPU:1 [LOST many EVENTS]",
        "CPU:one [EVENTS DROPPED]",
        "CPU:1 [12 EVENTS]",
    ] {
        let error = Trace::parse(&format!("{line}\n")).unwrap_err();
        assert!(
            matches!(&error, FtraceError::MissingCpu { line: 1, text } if text == line),
            "{line}: {error:?}"
        );
    }
}

/// Control characters of the input, such as the NULs of a binary file,
/// reach the message escaped.
#[test]
fn parse_error_escapes_control_characters() {
    let error = Trace::parse("\u{0}\u{0}\u{1b}[2J\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 1: missing cpu column in `\\u{0}\\u{0}\\u{1b}[2J`, expected `TASK-PID [CPU] ...`"
    );
}

#[test]
fn parse_rejects_bad_timestamp() {
    for stamp in [
        "2784.77x958:",
        "2784:",
        "2784.771958",
        "1.1234567890:",
        "99999999999999999999.0:",
    ] {
        let text = format!(" w-1  [000]  {stamp} workqueue_execute_end: work struct aa\n");
        let error = Trace::parse(&text).unwrap_err();
        assert!(
            matches!(&error, FtraceError::InvalidTimestamp { line: 1, text } if text == stamp),
            "{stamp}: {error:?}"
        );
    }
    let error =
        Trace::parse(&format!("#\n{}", OLD_FORMAT_LINE.replace("2784.", "2784,"))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 2: invalid timestamp `2784,771958:`, expected `SECONDS.FRACTION:`"
    );
}

#[test]
fn parse_rejects_timestamp_going_backwards_on_one_cpu() {
    let text = " w-1 [001] .... 5.000002: irq_handler_entry: irq=27 name=t\n\
                w-1 [000] .... 5.000001: irq_handler_entry: irq=27 name=t\n\
                w-1 [001] .... 5.000001: irq_handler_exit: irq=27 ret=handled\n";
    let error = Trace::parse(text).unwrap_err();
    assert_eq!(
        error,
        FtraceError::TimestampWentBackwards {
            line: 3,
            cpu: 1,
            previous_line: 1,
        }
    );
    assert_eq!(
        error.to_string(),
        "line 3: timestamp earlier than cpu 1's event on line 1, expected each cpu's events in \
         time order"
    );
}

#[test]
fn five_character_flags_of_current_kernels() {
    // The flags of current mainline `cat trace`: irqs-off, need-resched,
    // hardirq/softirq, preempt-depth and migrate-disable.
    let text = "          <idle>-0       [002] d.h1.  5123.000100: irq_handler_entry: irq=35 name=nvme0q3\n\
                          <idle>-0       [002] d.h1.  5123.000104: irq_handler_exit: irq=35 ret=handled\n";
    let trace = Trace::parse(text).unwrap();
    assert_eq!(trace.events[0].flags.as_deref(), Some("d.h1."));
    assert_eq!(trace.irq_entries()[&35][0].name, "nvme0q3");
}

#[test]
fn parse_accepts_equal_timestamps_on_one_cpu() {
    let text = " w-1 [000] .... 5.000001: irq_handler_entry: irq=27 name=t\n\
                w-1 [000] .... 5.000001: irq_handler_exit: irq=27 ret=handled\n";
    assert_eq!(Trace::parse(text).unwrap().events.len(), 2);
}

#[test]
fn parse_rejects_missing_event_colon() {
    let text = " w-1 [000] .... 1.000001: irq_handler_entry irq=1 name=x\n";
    let error = Trace::parse(text).unwrap_err();
    assert!(
        matches!(error, FtraceError::MissingEventColon { line: 1, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("line 1: missing colon after the event name")
    );

    let error = Trace::parse(" w-1 [000] .... 1.000001:\n").unwrap_err();
    assert!(matches!(
        error,
        FtraceError::MissingEventColon { line: 1, .. }
    ));
}

#[test]
fn parse_rejects_bad_irq_number() {
    for fields in [
        "irq=x1 name=timer",
        "irq= name=timer",
        "irq=4294967296 name=timer",
        "name=timer",
    ] {
        let text = format!(
            "ok-1 [000] .... 1.0: sched: a\n w-1 [000] .... 1.000001: irq_handler_entry: {fields}\n"
        );
        let error = Trace::parse(&text).unwrap_err();
        assert!(
            matches!(&error, FtraceError::InvalidField { line: 2, event, .. } if event == "irq_handler_entry"),
            "{fields}: {error:?}"
        );
    }
    let error =
        Trace::parse(" w-1 [000] .... 1.0: irq_handler_exit: irq=3 ret=maybe\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 1: invalid irq_handler_exit fields `irq=3 ret=maybe`, expected `irq=N ret=handled` or `ret=unhandled`"
    );
}

#[test]
fn parse_rejects_bad_known_event_fields() {
    for fields in [
        "softirq_entry: vec=RCU",
        "softirq_exit: vec=1 action=RCU",
        "workqueue_execute_start: work struct zz: function f",
        "workqueue_execute_start: work struct aa function f",
        "workqueue_execute_end: struct aa",
        "workqueue_activate_work: work struct ",
        "workqueue_queue_work: work struct=aa workqueue=x",
        "workqueue_queue_work: work struct=aa function=f cpu=-1",
    ] {
        let text = format!(" w-1 [000] .... 1.0: {fields}\n");
        let error = Trace::parse(&text).unwrap_err();
        assert!(
            matches!(error, FtraceError::InvalidField { line: 1, .. }),
            "{fields}: {error:?}"
        );
    }
}

#[test]
fn parse_rejects_bad_columns() {
    type Check = fn(&FtraceError) -> bool;
    let cases: [(&str, Check); 6] = [
        ("no cpu column 1.0: e: f", |e| {
            matches!(e, FtraceError::MissingCpu { line: 1, .. })
        }),
        (" w-x [000] .... 1.0: e: f", |e| {
            matches!(e, FtraceError::InvalidTaskPid { line: 1, .. })
        }),
        (" w-1 (1a) [000] .... 1.0: e: f", |e| {
            matches!(e, FtraceError::InvalidTaskPid { line: 1, .. })
        }),
        (" w [000] .... 1.0: e: f", |e| {
            matches!(e, FtraceError::InvalidTaskPid { line: 1, .. })
        }),
        (" w-1 [000] d.h1.... 1.0: e: f", |e| {
            matches!(e, FtraceError::InvalidFlags { line: 1, .. })
        }),
        (" w-1 [000] d.h 1.0: e: f", |e| {
            matches!(e, FtraceError::InvalidFlags { line: 1, .. })
        }),
    ];
    for (text, is_expected) in cases {
        let error = Trace::parse(text).unwrap_err();
        assert!(is_expected(&error), "{text}: {error:?}");
    }
}

proptest! {
    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        let _ = Trace::parse(&text).map(|trace| (trace.irq_entries(), trace.work_executions()));
    }

    #[test]
    fn parse_never_panics_on_line_like_text(
        cells in proptest::collection::vec(
            prop_oneof![
                Just("w-1".to_owned()), Just("(12)".to_owned()), Just("(---)".to_owned()),
                Just("[000]".to_owned()), Just("[".to_owned()), Just("]".to_owned()),
                Just("d.h1".to_owned()), Just("dNLh1..".to_owned()), Just("1.000001:".to_owned()),
                Just("99999999999999999999.9:".to_owned()), Just("irq_handler_entry:".to_owned()),
                Just("irq=".to_owned()), Just("name=x".to_owned()), Just("\u{e9}".to_owned()),
                Just("workqueue_execute_end:".to_owned()), Just("work struct".to_owned()),
                Just("=>".to_owned()), Just("#".to_owned()), Just("\n".to_owned()), any::<String>(),
            ],
            0..12,
        ),
    ) {
        let _ = Trace::parse(&cells.join(" ")).map(|trace| trace.work_executions());
    }
}
