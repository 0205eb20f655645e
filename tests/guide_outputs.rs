//! Every `text` block of the guide is the output of a program, checked
//! here against a fresh run, or a figure.
//!
//! An HTML comment on the line before the block's fence tells which:
//!
//! - `<!-- output of NAME -->`: the whole output of the example that
//!   `cargo run --example NAME` runs. Durations vary from run to run, so a
//!   number followed by `us`, `ms` or `ns`, or in a field whose name ends
//!   in `_ns`, matches any number.
//! - `<!-- excerpt of irqlab ARGS -->`: lines of the report that
//!   `irqlab ARGS` prints, run from the repository's root, in order but
//!   not necessarily adjacent. Every number of a report varies, so lines
//!   are compared by shape: any number, with or without a unit of time,
//!   matches any number, and runs of spaces and histogram bars count as
//!   one space.
//! - `<!-- figure -->`: a diagram or a sample that no program prints.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{guide_dir, run_example};

/// The program output, or figure, that a `text` block's marker names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Shown {
    /// The whole output of an example.
    Output { example: String },
    /// Lines of the output of `irqlab` with these arguments.
    Excerpt { args: Vec<String> },
    /// A diagram, not checked.
    Figure,
}

/// A `text` block of the guide, with the output its marker names.
#[derive(Debug)]
struct TextBlock {
    file: PathBuf,
    line: usize,
    shown: Shown,
    text: String,
}

/// Returns every Markdown file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the guide directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(markdown_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Extracts the `text` blocks of one file; panics on a block with no
/// marker.
fn text_blocks(file: &Path) -> Vec<TextBlock> {
    let source = std::fs::read_to_string(file).expect("a guide file is readable");
    let lines: Vec<&str> = source.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index].trim_start() != "```text" {
            index += 1;
            continue;
        }

        let marker = lines[..index]
            .iter()
            .rev()
            .find(|line| !line.trim().is_empty())
            .map(|line| line.trim())
            .unwrap_or("");
        let shown = if marker == "<!-- figure -->" {
            Shown::Figure
        } else if let Some(name) = marker
            .strip_prefix("<!-- output of ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        {
            Shown::Output {
                example: name.to_owned(),
            }
        } else if let Some(args) = marker
            .strip_prefix("<!-- excerpt of irqlab ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        {
            Shown::Excerpt {
                args: args.split_whitespace().map(str::to_owned).collect(),
            }
        } else {
            panic!(
                "{}:{}: a text block needs `<!-- output of NAME -->`, \
                 `<!-- excerpt of irqlab ARGS -->` or `<!-- figure -->` on the line before it",
                file.display(),
                index + 1
            );
        };

        let end = (index + 1..lines.len())
            .find(|&end| lines[end].trim_start() == "```")
            .unwrap_or_else(|| panic!("{}:{}: unclosed block", file.display(), index + 1));
        let mut text = lines[index + 1..end].join("\n");
        text.push('\n');
        blocks.push(TextBlock {
            file: file.to_owned(),
            line: index + 1,
            shown,
            text,
        });
        index = end + 1;
    }
    blocks
}

/// Splits `text` into runs of digits and runs of other characters.
fn tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for index in 1..=bytes.len() {
        let boundary = index == bytes.len()
            || bytes[index].is_ascii_digit() != bytes[index - 1].is_ascii_digit();
        if boundary {
            tokens.push(&text[start..index]);
            start = index;
        }
    }
    tokens
}

/// Returns true when the number at `tokens[index]` is a duration.
fn is_duration(tokens: &[&str], index: usize) -> bool {
    let after = tokens.get(index + 1).copied().unwrap_or("");
    let before = if index == 0 { "" } else { tokens[index - 1] };
    ["us", "ms", "ns", " us", " ms", " ns"]
        .iter()
        .any(|unit| after.starts_with(unit))
        || before.ends_with("_ns=")
}

/// Compares an expected output with an actual one, durations aside.
fn same_output(expected: &str, actual: &str) -> bool {
    let expected = tokens(expected);
    let actual = tokens(actual);
    expected.len() == actual.len()
        && expected
            .iter()
            .zip(&actual)
            .enumerate()
            .all(|(index, (want, got))| {
                want == got
                    || (want.as_bytes()[0].is_ascii_digit()
                        && got.as_bytes()[0].is_ascii_digit()
                        && is_duration(&expected, index))
            })
}

/// Units that may follow a number in a report, longest first.
const UNITS: [&str; 8] = [" ns", " us", " ms", " s", "ns", "us", "ms", "s"];

/// Returns the shape of a report line: every number, with its unit if it
/// has one, becomes `0`, and every run of spaces and histogram bars
/// becomes one space. So a latency of `30.4 us` has the shape of one of
/// `1.2 ms`, and a bucket row the shape of any other bucket row.
fn shape(line: &str) -> String {
    let mut shaped = String::new();
    let mut rest = line.trim();
    while let Some(first) = rest.chars().next() {
        if first.is_ascii_digit() {
            let end = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(rest.len());
            rest = &rest[end..];
            let unit = UNITS.iter().find(|unit| {
                rest.strip_prefix(*unit)
                    .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric()))
            });
            if let Some(unit) = unit {
                rest = &rest[unit.len()..];
            }
            shaped.push('0');
        } else if first.is_whitespace() || first == '#' {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '#');
            if !shaped.ends_with(' ') {
                shaped.push(' ');
            }
        } else {
            shaped.push(first);
            rest = &rest[first.len_utf8()..];
        }
    }
    shaped.trim_end().to_owned()
}

/// Returns the first line of `excerpt` with no line of the same shape in
/// `actual` after the previous line's match. Returns `None` when every
/// line matches, in order.
fn missing_line<'a>(excerpt: &'a str, actual: &str) -> Option<&'a str> {
    let mut actual = actual.lines().map(shape);
    excerpt
        .lines()
        .find(|wanted| !actual.any(|line| line == shape(wanted)))
}

/// Runs the `irqlab` command from the repository's root and returns its
/// standard output.
fn run_irqlab(args: &[String]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_irqlab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the irqlab binary runs");
    assert!(
        output.status.success(),
        "irqlab {} exited with {}: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn outputs_match_programs() {
    let blocks: Vec<TextBlock> = markdown_files(&guide_dir())
        .iter()
        .flat_map(|file| text_blocks(file))
        .collect();
    assert!(
        blocks.iter().any(|block| block.shown != Shown::Figure),
        "the guide shows no output"
    );

    // Run each program once, however many blocks show its output.
    let mut outputs: BTreeMap<Shown, String> = BTreeMap::new();
    for block in &blocks {
        let actual = match &block.shown {
            Shown::Figure => continue,
            Shown::Output { example } => outputs
                .entry(block.shown.clone())
                .or_insert_with(|| String::from_utf8_lossy(&run_example(example).stdout).into()),
            Shown::Excerpt { args } => outputs
                .entry(block.shown.clone())
                .or_insert_with(|| run_irqlab(args)),
        };

        match &block.shown {
            Shown::Output { example } => assert!(
                same_output(&block.text, actual),
                "{}:{}: the output of {example} differs.\nguide:\n{}\nactual:\n{actual}",
                block.file.display(),
                block.line,
                block.text
            ),
            Shown::Excerpt { args } => {
                if let Some(line) = missing_line(&block.text, actual) {
                    panic!(
                        "{}:{}: `irqlab {}` printed no line shaped like {line:?}, in order.\n\
                         actual:\n{actual}",
                        block.file.display(),
                        block.line,
                        args.join(" ")
                    );
                }
            }
            Shown::Figure => {}
        }
    }
}

/// Every page but the mdBook summary is a doc test of the root library, so
/// that `cargo test` compiles and runs its Rust blocks.
#[test]
fn pages_are_doc_tests() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"))
        .expect("src/lib.rs is readable");
    let guide = guide_dir();
    for file in markdown_files(&guide) {
        let relative = file
            .strip_prefix(&guide)
            .expect("a page lies under the guide directory");
        if relative == Path::new("SUMMARY.md") {
            continue;
        }
        let include = format!("include_str!(\"../docs/guide/{}\")", relative.display());
        assert!(
            lib.contains(&include),
            "{} is not a doc test: add `#[doc = {include}]` to src/lib.rs",
            file.display()
        );
    }
}

#[test]
fn durations_match_any_number() {
    assert!(same_output(
        "took 4662 us (CPU time 4658 us) wall_ns=4662677 irq=40\n",
        "took 12 us (CPU time 9 us) wall_ns=12000 irq=40\n"
    ));
    assert!(!same_output("irq=40\n", "irq=41\n"));
    assert!(!same_output("3 samples\n", "2 samples\n"));
    assert!(!same_output("a\n", "a\nb\n"));
}

#[test]
fn excerpt_lines_match_by_shape() {
    let report = "  IRQ  CPU0  type\n  40:   493  edge\n  p50 1.2 ms\n  \
                  131.1us - 262.1us   0     4 ####\n  1 simulated CPU\nNo warnings.\n";
    assert_eq!(missing_line("IRQ CPU0 type\n40: 7 edge\n", report), None);
    assert_eq!(missing_line("p50 30.4 us\n", report), None);
    assert_eq!(missing_line("16.4us - 32.8us 352 ### 12 #\n", report), None);
    assert_eq!(missing_line("2 simulated CPU\n", report), None);
    assert_eq!(missing_line("40: 7 level\n", report), Some("40: 7 level"));
    // In order: a line before the previous match does not count.
    assert_eq!(
        missing_line("No warnings.\nIRQ CPU0 type\n", report),
        Some("IRQ CPU0 type")
    );
}
