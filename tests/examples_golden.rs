//! Each classic example prints the same messages, in the same order, as its
//! kernel original; its output is compared with a golden file.

use std::path::PathBuf;
use std::process::Command;

/// Returns the path of a built example: `cargo test` builds the examples
/// into `examples/` beside the directory of this test binary.
fn example_path(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in <target>/<profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn check_example(name: &str) {
    let path = example_path(name);
    let output = Command::new(&path)
        .env("RUST_LOG", "info")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {}: {error}; run the whole `cargo test`, which builds the examples, \
                 or `cargo build --examples` first",
                path.display()
            )
        });
    let golden_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    let golden = std::fs::read_to_string(&golden_path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", golden_path.display()));

    assert!(
        output.status.success(),
        "{name} exited with {}",
        output.status
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        golden,
        "{name}: output differs from {}",
        golden_path.display()
    );
}

#[test]
fn stat_queue_output() {
    check_example("stat_queue");
}

#[test]
fn dynam_queue_output() {
    check_example("dynam_queue");
}

#[test]
fn dynam_queue_2_output() {
    check_example("dynam_queue_2");
}
