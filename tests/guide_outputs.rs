//! Every `text` block of the guide is either the output of an example,
//! checked here against a fresh run, or a figure.
//!
//! A block of output is marked by an HTML comment on the line before its
//! fence, `<!-- output of NAME -->`, where NAME is an example that
//! `cargo run --example NAME` runs. A figure is marked `<!-- figure -->`.
//! Durations vary from run to run, so a number followed by `us`, `ms` or
//! `ns`, or in a field whose name ends in `_ns`, matches any number.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{guide_dir, run_example};

/// A `text` block of the guide, with the example its marker names.
#[derive(Debug)]
struct TextBlock {
    file: PathBuf,
    line: usize,
    /// The example whose output it is; `None` for a figure.
    example: Option<String>,
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
        let example = if marker == "<!-- figure -->" {
            None
        } else if let Some(name) = marker
            .strip_prefix("<!-- output of ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        {
            Some(name.to_owned())
        } else {
            panic!(
                "{}:{}: a text block needs `<!-- output of NAME -->` or `<!-- figure -->` \
                 on the line before it",
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
            example,
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

#[test]
fn outputs_match_examples() {
    let blocks: Vec<TextBlock> = markdown_files(&guide_dir())
        .iter()
        .flat_map(|file| text_blocks(file))
        .collect();
    assert!(
        blocks.iter().any(|block| block.example.is_some()),
        "the guide shows no output"
    );

    // Run each example once, however many blocks show its output.
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    for block in &blocks {
        let Some(example) = &block.example else {
            continue;
        };
        let actual = outputs
            .entry(example.clone())
            .or_insert_with(|| String::from_utf8_lossy(&run_example(example).stdout).into_owned());
        assert!(
            same_output(&block.text, actual),
            "{}:{}: the output of {example} differs.\nguide:\n{}\nactual:\n{actual}",
            block.file.display(),
            block.line,
            block.text
        );
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
