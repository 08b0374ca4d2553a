//! The load generator and the fault harness, given bad arguments, say what is wrong and exit 1,
//! without a backtrace even where `RUST_BACKTRACE` asks for one (this machine sets it).

use std::process::Command;

/// Runs `binary` with `args` and `RUST_BACKTRACE=1`, checks that it exits 1 with an error and
/// no backtrace on stderr, and returns that stderr.
fn refused_without_backtrace(binary: &str, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap_or_else(|error| panic!("starting {binary}: {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert!(!stderr.contains("backtrace"), "stderr: {stderr}");
    stderr
}

#[test]
fn the_load_generator_names_a_bad_argument_without_a_backtrace() {
    let stderr = refused_without_backtrace(
        env!("CARGO_BIN_EXE_ipledger-load"),
        &["some-dir", "--no-such-flag"],
    );
    assert!(
        stderr.starts_with("error: usage: ipledger-load DIR"),
        "stderr: {stderr}"
    );
}

#[test]
fn the_load_generator_names_a_missing_network_with_its_cause() {
    let missing = std::env::temp_dir().join(format!("ipledger-no-net-{}", std::process::id()));
    let stderr = refused_without_backtrace(
        env!("CARGO_BIN_EXE_ipledger-load"),
        &[
            missing.to_str().expect("a UTF-8 temporary path"),
            "--txs",
            "1",
        ],
    );
    assert!(stderr.contains("caused by: "), "stderr: {stderr}");
}

#[test]
fn the_fault_harness_names_a_bad_argument_without_a_backtrace() {
    let stderr = refused_without_backtrace(
        env!("CARGO_BIN_EXE_ipledger-faults"),
        &["--no-such-flag", "1"],
    );
    assert!(
        stderr.starts_with("error: unknown flag --no-such-flag"),
        "stderr: {stderr}"
    );
}
