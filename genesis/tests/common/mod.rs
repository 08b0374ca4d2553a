//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ipledger_genesis::KeyFile;
use std::fmt::Write;
use std::process::{Command, Output};

/// The built binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipledger-genesis"))
}

/// Runs the binary with `args`, returning (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = bin().args(args).output().expect("the binary runs");
    (
        status.success(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// A public key for `name` (deterministic).
pub fn public(name: &str) -> String {
    KeyFile::from_test_seed("tests", name)
        .public_key()
        .to_string()
}

/// A spec's text: organisations (id, role, key) and validators (organisation, key, p2p).
pub fn spec_toml(orgs: &[(&str, &str, String)], validators: &[(&str, String, String)]) -> String {
    let mut text =
        String::from("chain_id = \"ipledger-spec-test\"\ngenesis_time = 2026-03-01T00:00:00Z\n");
    for (id, role, key) in orgs {
        write!(
            text,
            "\n[[organisation]]\nid = \"{id}\"\nrole = \"{role}\"\nkey = \"{key}\"\n"
        )
        .unwrap();
    }
    for (org, key, p2p) in validators {
        write!(
            text,
            "\n[[validator]]\norganisation = \"{org}\"\nkey = \"{key}\"\np2p = \"{p2p}\"\n"
        )
        .unwrap();
    }
    text
}

/// The organisations of a typical consortium, keys from [`public`].
pub fn typical_orgs() -> Vec<(&'static str, &'static str, String)> {
    [
        ("trading-center", "trading_center"),
        ("bank-a", "bank"),
        ("court", "court"),
        ("regulator", "regulator"),
    ]
    .into_iter()
    .map(|(id, role)| (id, role, public(id)))
    .collect()
}

/// One validator each for the trading center, the bank and the court.
pub fn typical_validators() -> Vec<(&'static str, String, String)> {
    ["trading-center", "bank-a", "court"]
        .into_iter()
        .enumerate()
        .map(|(i, org)| {
            (
                org,
                public(&format!("{org}/node")),
                format!("10.0.0.{}:26656", i + 1),
            )
        })
        .collect()
}
