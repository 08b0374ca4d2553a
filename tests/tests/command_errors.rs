//! The load generator and the fault harness, given bad arguments, say what is wrong and exit 1,
//! without a backtrace even where `RUST_BACKTRACE` asks for one (this machine sets it).

use std::process::Command;

/// Runs `binary` with `args` and `RUST_BACKTRACE=1`, returning its exit code and stderr.
fn run_with_backtrace_asked(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(binary)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap_or_else(|error| panic!("starting {binary}: {error}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_load_generator_names_a_bad_argument_without_a_backtrace() {
    let (code, stderr) = run_with_backtrace_asked(
        env!("CARGO_BIN_EXE_ipledger-load"),
        &["some-dir", "--no-such-flag"],
    );
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with("error: usage: ipledger-load DIR"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("backtrace"), "stderr: {stderr}");
}

#[test]
fn the_load_generator_names_a_missing_network_with_its_cause() {
    let missing = std::env::temp_dir().join(format!("ipledger-no-net-{}", std::process::id()));
    let (code, stderr) = run_with_backtrace_asked(
        env!("CARGO_BIN_EXE_ipledger-load"),
        &[
            missing.to_str().expect("a UTF-8 temporary path"),
            "--txs",
            "1",
        ],
    );
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert!(stderr.contains("caused by: "), "stderr: {stderr}");
    assert!(!stderr.contains("backtrace"), "stderr: {stderr}");
}

#[test]
fn the_fault_harness_names_a_bad_argument_without_a_backtrace() {
    let (code, stderr) = run_with_backtrace_asked(
        env!("CARGO_BIN_EXE_ipledger-faults"),
        &["--no-such-flag", "1"],
    );
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with("error: unknown flag --no-such-flag"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("backtrace"), "stderr: {stderr}");
}
