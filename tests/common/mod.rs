#![allow(dead_code, reason = "each test binary uses a subset of the helpers")]

//! Helpers shared by the tests that run the built examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Returns the path of a built example: `cargo test` builds the examples
/// into `examples/` beside the directory of this test binary.
pub fn example_path(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs the built example `name` with the console at INFO, as a user's
/// `cargo run --example` prints it.
pub fn run_example(name: &str) -> Output {
    let path = example_path(name);
    Command::new(&path)
        .env("RUST_LOG", "info")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {}: {error}; run the whole `cargo test`, which builds the examples, \
                 or `cargo build --examples` first",
                path.display()
            )
        })
}

/// Returns the directory of the guide's Markdown files.
pub fn guide_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/guide")
}
