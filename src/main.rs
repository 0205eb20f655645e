//! The irqlab command: runs a scenario and prints its report, or one of the
//! subcommands.
//!
//! Exit status: 0 after a run (warnings included), 2 for bad input (an
//! option, a scenario file), 1 when the run cannot be set up, its output
//! cannot be written, or a line with the `fail` overrun policy overran.

#[path = "../examples/stat_queue.rs"]
mod stat_queue;

#[path = "../examples/dynam_queue.rs"]
mod dynam_queue;

#[path = "../examples/dynam_queue_2.rs"]
mod dynam_queue_2;

mod cli;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use cli::{Cli, Command, RunArgs};
use irqlab::output::{self, PendingFile, StdoutError};
use irqlab::run::{Progress, RunOptions};
use irqlab::scenario::{ArrivalSpec, Overrides, Scenario};
use irqlab::timeline::{self, Timeline};

/// Exit status for bad input.
const EXIT_BAD_INPUT: u8 = 2;

/// Exit status for a run that could not be set up or written.
const EXIT_FAILURE: u8 = 1;

/// The progress bar, while one is drawn: log lines suspend it.
static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// Writes log lines to standard error around the progress bar.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return match scenario_without_option(&error) {
                Some(message) => fail(EXIT_BAD_INPUT, message),
                None => clap_exit(&error),
            };
        }
    };
    if matches!(cli.command, Some(Command::Classic)) {
        // The classic modules print through printk with a subscriber of
        // their own, as their examples do.
        return match classic() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(EXIT_FAILURE, error),
        };
    }
    let run_args = match &cli.command {
        Some(Command::Run(args)) => Some(args),
        None => Some(&cli.run),
        _ => None,
    };
    let tracing = run_args.is_some_and(|args| args.trace.is_some());
    let quiet = run_args.is_some_and(|args| args.quiet);
    let timeline = tracing.then(|| Timeline::new(timeline::DEFAULT_CAPACITY));
    // `latency` drives the simulator with its own top half and bottom
    // halves, which overrun budgets and hold workers on purpose under load
    // or with --work-time. The simulator's warnings would advise the user
    // to fix code that is not theirs; the report counts what matters.
    let default_filter = if quiet {
        "error"
    } else if matches!(cli.command, Some(Command::Latency(_))) {
        "warn,irq=error,irq::clock=warn,workqueue=error"
    } else {
        "warn"
    };
    // The filter sits on the log layer alone: the timeline's layer has its
    // own, so RUST_LOG neither hides its TRACE events nor prints them.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                // Its own report of a failed write would panic on the same
                // closed standard error.
                .log_internal_errors(false)
                .with_writer(|| LogWriter)
                .with_filter(filter),
        )
        .with(timeline.as_ref().map(Timeline::layer))
        .init();

    match cli.command {
        Some(Command::Classic) => unreachable!("handled before the subscriber is installed"),
        Some(Command::Run(args)) => run(&args, timeline.as_ref()),
        Some(Command::Latency(args)) if args.json.as_deref() == Some(Path::new("-")) => fail(
            EXIT_BAD_INPUT,
            "latency --json -: the latency report is printed as text; give --json a file name",
        ),
        Some(Command::Latency(args)) => latency(&args),
        Some(Command::Scenario { command }) => match irqlab::scenario::convert::run(&command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(
                u8::try_from(error.exit_code()).unwrap_or(EXIT_FAILURE),
                error,
            ),
        },
        None => run(&cli.run, timeline.as_ref()),
    }
}

/// Runs `irqlab latency`. A latency run has no partial report, so Ctrl-C
/// stops it at once.
fn latency(args: &irqlab::latency::LatencyArgs) -> ExitCode {
    on_ctrl_c(|| {
        output::stderr_line(format_args!(
            "irqlab: interrupted; a stopped latency run reports nothing"
        ));
        output::remove_partial_files();
        std::process::exit(130);
    });
    match irqlab::latency::run(args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) if error.is_bad_input() => fail(EXIT_BAD_INPUT, error),
        Err(error) => fail(EXIT_FAILURE, error),
    }
}

/// Runs the three classic modules in turn.
fn classic() -> Result<(), StdoutError> {
    output::stdout("irqlab: the three classic workqueue modules, loaded and unloaded in turn\n\n")?;
    output::stdout("-- stat_queue: a static work item (DECLARE_WORK)\n")?;
    stat_queue::main();
    output::stdout("\n-- dynam_queue: an allocated work item (INIT_WORK)\n")?;
    dynam_queue::main();
    output::stdout("\n-- dynam_queue_2: a work item that carries data (container_of)\n")?;
    dynam_queue_2::main();
    Ok(())
}

/// Returns the message for a scenario file given without `--scenario`,
/// the likely slip behind `irqlab my.toml` and `irqlab run my.toml`.
fn scenario_without_option(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let (context, what) = match error.kind() {
        ErrorKind::InvalidSubcommand => (ContextKind::InvalidSubcommand, "is not a command"),
        ErrorKind::UnknownArgument => (ContextKind::InvalidArg, "is not an argument of run"),
        _ => return None,
    };
    // Only the default command and `run` take a scenario.
    let usage = match error.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(usage)) => usage.to_string(),
        _ => return None,
    };
    if !(usage.contains("irqlab [OPTIONS]") || usage.contains("irqlab run ")) {
        return None;
    }
    match error.get(context) {
        Some(ContextValue::String(file)) if file.ends_with(".toml") && !file.starts_with('-') => {
            Some(format!(
                "{file} {what}; run a scenario file with --scenario {file}"
            ))
        }
        _ => None,
    }
}

/// Prints what clap returned instead of a command line (help, the version
/// or a usage error) and returns its exit status. Help or a version that
/// standard output does not take is a failure, as any other output is.
fn clap_exit(error: &clap::Error) -> ExitCode {
    let code = u8::try_from(error.exit_code()).unwrap_or(EXIT_BAD_INPUT);
    let printed = error.print().and_then(|()| std::io::stdout().flush());
    match printed {
        Err(source) if !error.use_stderr() => fail(EXIT_FAILURE, StdoutError(source)),
        // A usage error that standard error does not take keeps its status.
        _ => ExitCode::from(code),
    }
}

/// Prints an error and returns the exit status for it.
fn fail(status: u8, message: impl std::fmt::Display) -> ExitCode {
    output::stderr_line(format_args!("irqlab: error: {message}"));
    ExitCode::from(status)
}

/// Reads the scenario and applies the command line's overrides.
fn scenario(args: &RunArgs) -> Result<Scenario, String> {
    let overrides = Overrides { cpus: args.cpus };
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::load_with(path, overrides),
        None => Scenario::demo_with(overrides),
    }
    .map_err(|error| error.to_string())?;
    if let Some(duration) = args.duration {
        scenario.duration = duration;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    Ok(scenario)
}

/// Runs a scenario and prints or writes its report and its timeline.
fn run(args: &RunArgs, timeline: Option<&Timeline>) -> ExitCode {
    let scenario = match scenario(args) {
        Ok(scenario) => scenario,
        Err(message) => return fail(EXIT_BAD_INPUT, message),
    };
    if args.trace.as_deref() == Some(Path::new("-")) {
        return fail(
            EXIT_BAD_INPUT,
            "--trace -: a timeline is a file for a viewer; give a file name",
        );
    }
    if let (Some(json), Some(trace)) = (&args.json, &args.trace)
        && output::same_file(json, trace)
    {
        return fail(
            EXIT_BAD_INPUT,
            "--json and --trace name the same file; give each its own",
        );
    }
    if let Some(message) = output_over_input(args, &scenario) {
        return fail(EXIT_BAD_INPUT, message);
    }
    // Reject unwritable outputs before the run, not after it. An existing
    // file stays as it is until the run's output replaces it whole.
    let mut outputs = [("--json", &args.json), ("--trace", &args.trace)].map(|(option, path)| {
        let path = path.as_deref().filter(|path| *path != Path::new("-"))?;
        Some(PendingFile::create(path).map_err(|error| cannot_write(option, path, &error)))
    });
    for output in &mut outputs {
        if let Some(Err(message)) = output {
            return fail(EXIT_FAILURE, std::mem::take(message));
        }
    }
    let [json_out, trace_out] = outputs.map(|output| output.and_then(Result::ok));

    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone(), args.quiet);
    let mut show = progress_display(args.quiet, &scenario);
    let result = irqlab::run::run(
        &scenario,
        RunOptions {
            stop,
            progress: show.as_mut().map(|show| show as &mut dyn FnMut(Progress)),
        },
    );
    if let Some(bar) = BAR.get() {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(report) => report,
        Err(error) => return fail(EXIT_FAILURE, error),
    };

    // JSON on standard output replaces the text report there.
    let json_to_stdout = args.json.as_deref() == Some(Path::new("-"));
    // A failed text report is reported last, so that the JSON file and the
    // timeline of the run are still written.
    let printed = if args.quiet || json_to_stdout {
        Ok(())
    } else {
        output::stdout(&report.render())
    };
    if let Some(path) = &args.json {
        let json = match serde_json::to_string_pretty(&report) {
            Ok(json) => json,
            Err(error) => return fail(EXIT_FAILURE, format!("cannot encode the report: {error}")),
        };
        let written = match json_out {
            None => output::stdout(&(json + "\n")).map_err(|error| error.to_string()),
            Some(out) => out
                .write_all_and_commit((json + "\n").as_bytes())
                .map(|()| {
                    if !args.quiet {
                        output::stderr_line(format_args!(
                            "irqlab: wrote the JSON report to {}",
                            path.display()
                        ));
                    }
                })
                .map_err(|error| cannot_write("--json", path, &error)),
        };
        if let Err(message) = written {
            return fail(EXIT_FAILURE, message);
        }
    }
    if let (Some(path), Some(out), Some(timeline)) = (&args.trace, trace_out, timeline)
        && let Err(message) = write_trace(path, out, timeline, args.quiet, json_to_stdout)
    {
        return fail(EXIT_FAILURE, message);
    }
    match printed {
        Err(error) => fail(EXIT_FAILURE, error),
        Ok(()) if report.failed_budgets > 0 => fail(
            EXIT_FAILURE,
            format_args!(
                "{} on a line whose `overrun` policy is \"fail\"; the report's warnings name \
                 them",
                irqlab::report::counted(report.failed_budgets, "budget overrun")
            ),
        ),
        Ok(()) => ExitCode::SUCCESS,
    }
}

/// Returns the error for a `--json` or `--trace` file that is one of the
/// run's inputs: the scenario file or a recording that it replays, which
/// the output would replace.
fn output_over_input(args: &RunArgs, scenario: &Scenario) -> Option<String> {
    let scenario_file = args
        .scenario
        .as_deref()
        .map(|path| (path, "the scenario file being run".to_owned()));
    let recordings = scenario
        .devices
        .iter()
        .filter_map(|device| match &device.arrival {
            ArrivalSpec::Replay { file, .. } => Some((
                file.as_path(),
                format!("the recording that device \"{}\" replays", device.name),
            )),
            _ => None,
        });
    let inputs: Vec<(&Path, String)> = scenario_file.into_iter().chain(recordings).collect();
    [("--json", &args.json), ("--trace", &args.trace)]
        .into_iter()
        .filter_map(|(option, path)| Some((option, path.as_deref()?)))
        .filter(|(_, path)| *path != Path::new("-"))
        .find_map(|(option, path)| {
            let (_, what) = inputs
                .iter()
                .find(|(input, _)| output::same_file(path, input))?;
            Some(format!(
                "{option} {}: it is {what}, which the output would replace; give another file",
                path.display()
            ))
        })
}

/// Writes the timeline to `path` and prints a summary of it, on standard
/// error when standard output carries the JSON report. Returns the message
/// of a failed write.
fn write_trace(
    path: &Path,
    mut out: PendingFile,
    timeline: &Timeline,
    quiet: bool,
    json_to_stdout: bool,
) -> Result<(), String> {
    let mut write = || -> std::io::Result<timeline::TraceSummary> {
        let mut buffered = std::io::BufWriter::new(out.file());
        let summary = timeline.write_chrome_trace(&mut buffered)?;
        buffered.flush()?;
        Ok(summary)
    };
    let summary = write().map_err(|error| cannot_write("--trace", path, &error))?;
    out.commit()
        .map_err(|error| cannot_write("--trace", path, &error))?;
    if !quiet {
        let counts = format!(
            "{} top-half calls, {} work runs and {} queue_work arrows written to {}; open it in the \
             Performance panel of Chromium's or Chrome's DevTools (docs/timeline.md)",
            summary.top_halves,
            summary.executions,
            summary.flows,
            path.display()
        );
        if json_to_stdout {
            output::stderr_line(format_args!("irqlab: timeline: {counts}"));
        } else {
            output::stdout(&format!("\nTimeline: {counts}\n"))
                .map_err(|error| error.to_string())?;
        }
    }
    if summary.dropped > 0 {
        output::stderr_line(format_args!(
            "irqlab: warning: the timeline's buffer filled up; the last {} events of the run \
             are missing from {}",
            summary.dropped,
            path.display()
        ));
    }
    Ok(())
}

/// Returns the message for an output file that cannot be written.
fn cannot_write(option: &str, path: &Path, error: &std::io::Error) -> String {
    format!("{option} {}: cannot write it: {error}", path.display())
}

/// Returns the progress callback: a bar on a terminal, a plain line a
/// second otherwise, nothing when quiet.
fn progress_display(quiet: bool, scenario: &Scenario) -> Option<Box<dyn FnMut(Progress)>> {
    if quiet {
        return None;
    }
    let total = scenario.duration.as_millis().max(1) as u64;
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {msg}")
                .expect("the template is a valid constant"),
        );
        let bar = BAR.get_or_init(|| bar).clone();
        return Some(Box::new(move |progress: Progress| {
            bar.set_position(progress.elapsed.as_millis() as u64);
            bar.set_message(format!(
                "{:.1} s / {:.1} s, {} events",
                progress.elapsed.as_secs_f64(),
                progress.duration.as_secs_f64(),
                progress.events
            ));
        }));
    }
    let mut next = Duration::from_secs(1);
    Some(Box::new(move |progress: Progress| {
        if progress.elapsed >= next {
            output::stderr_line(format_args!(
                "irqlab: {:.1} s / {:.1} s, {} events",
                progress.elapsed.as_secs_f64(),
                progress.duration.as_secs_f64(),
                progress.events
            ));
            next += Duration::from_secs(1);
        }
    }))
}

/// Returns true when SIGINT was ignored when irqlab started.
fn interrupt_ignored() -> bool {
    // SAFETY: `current` is a valid, writable `sigaction`, and a null new
    // action makes the call only read the current one.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// Calls `first` on the first Ctrl-C; a second one exits at once with the
/// shell's status for it, 130.
///
/// The handler is installed before this returns. Installed by the listener
/// thread instead, it could come too late for a Ctrl-C right after the
/// start, which the default action then turned into a kill.
fn on_ctrl_c(first: impl FnOnce() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};

    // A shell starts the background commands of a script with SIGINT
    // ignored, so that a Ctrl-C meant for the foreground leaves them
    // running. Keep it that way, as other Unix tools do.
    if interrupt_ignored() {
        return;
    }

    let listener = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .and_then(|runtime| {
            let interrupts = {
                let _context = runtime.enter();
                signal(SignalKind::interrupt())?
            };
            Ok((runtime, interrupts))
        });
    let (runtime, mut interrupts) = match listener {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!("Ctrl-C will not stop the run early: {error}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("ctrl-c".to_owned())
        .spawn(move || {
            runtime.block_on(async {
                if interrupts.recv().await.is_none() {
                    return;
                }
                first();
                if interrupts.recv().await.is_some() {
                    output::remove_partial_files();
                    output::stderr_line(format_args!(
                        "irqlab: quitting at once; an output not yet written keeps what it held"
                    ));
                    std::process::exit(130);
                }
            });
        });
    if let Err(error) = spawned {
        tracing::warn!("Ctrl-C will not stop the run early: {error}");
    }
}

/// Sets `stop` on the first Ctrl-C, so that the run ends early and still
/// reports, unless `quiet` asked for no report.
fn watch_ctrl_c(stop: Arc<AtomicBool>, quiet: bool) {
    on_ctrl_c(move || {
        stop.store(true, Ordering::Relaxed);
        let message = if quiet {
            "irqlab: stopping early (Ctrl-C again to quit at once)"
        } else {
            "irqlab: stopping; the report follows (Ctrl-C again to quit at once)"
        };
        match BAR.get() {
            Some(bar) => bar.println(message),
            None => output::stderr_line(format_args!("{message}")),
        }
    });
}
