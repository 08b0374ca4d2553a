//! `ipledger evidence verify` needs no node: a receipt built on the in-memory test chain (with a
//! certified validator-set change on the way) verifies against the genesis file, and every
//! single-field change in the receipt, every single-byte change in the evidence file, and a
//! certificate without enough signatures make it fail with a reason.

use ipledger_client::{verify_evidence, ClientError};
use ledger_core::crypto::Digest;
use ledger_core::testkit::{add_bank_c_validator, TestChain};
use ledger_core::tx::Action;
use ledger_core::types::EvidenceKind;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const EVIDENCE: &[u8] = b"<html>a page copying Jinli Street, captured 2026-01-01</html>";

struct Case {
    _dir: tempfile::TempDir,
    genesis: PathBuf,
    evidence: PathBuf,
    receipt: PathBuf,
    receipt_json: Value,
}

/// A chain that changed its validators, then committed an attestation of [`EVIDENCE`] by the
/// court; the genesis, the file and the receipt written to a temporary directory.
fn case() -> Case {
    let mut chain = TestChain::new(4);
    let (_, effective_height) = add_bank_c_validator(&mut chain);
    while chain.height() < effective_height {
        chain.commit(Vec::new());
    }
    let attest = Action::AttestEvidence {
        attestor: "court".into(),
        evidence_hash: Digest::sha256(EVIDENCE),
        kind: EvidenceKind::WebPage,
        case_ref: Some("(2026)川01知民初100号".into()),
        related_asset: None,
    };
    let tx = chain.tx(attest, &["court"]);
    chain.apply(tx).expect("the court attests");
    chain.commit(Vec::new());
    let receipt = chain.receipt(chain.leaf_count - 1);
    assert_eq!(
        receipt.validator_changes.len(),
        1,
        "the receipt carries the change"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let genesis = dir.path().join("genesis.json");
    ipledger_genesis::write_genesis(&genesis, &chain.genesis).expect("genesis written");
    let evidence = dir.path().join("page.html");
    std::fs::write(&evidence, EVIDENCE).expect("evidence written");
    let receipt_path = dir.path().join("page.html.receipt.json");
    let receipt_json = serde_json::to_value(&receipt).expect("receipt as JSON");
    std::fs::write(&receipt_path, receipt_json.to_string()).expect("receipt written");
    Case {
        _dir: dir,
        genesis,
        evidence,
        receipt: receipt_path,
        receipt_json,
    }
}

fn verify(case: &Case, evidence: &Path, receipt: &Path) -> Result<Value, ClientError> {
    verify_evidence(&case.genesis, evidence, receipt, None).map(|output| output.json)
}

#[test]
fn a_valid_receipt_verifies_with_time_attestor_and_fingerprint() {
    let case = case();
    let json = verify(&case, &case.evidence, &case.receipt).expect("verifies");
    assert_eq!(json["attestor"], "court");
    assert_eq!(json["evidence_hash"], Digest::sha256(EVIDENCE).to_string());
    let genesis = ipledger_genesis::read_genesis(&case.genesis).expect("genesis");
    assert_eq!(json["genesis_fingerprint"], genesis.hash().to_string());
    // The binary, with no node anywhere: exit 0 and the fingerprint printed.
    let out = Command::new(env!("CARGO_BIN_EXE_ipledger"))
        .args(["--node", "http://127.0.0.1:9", "--genesis"])
        .arg(&case.genesis)
        .args(["evidence", "verify"])
        .arg(&case.evidence)
        .arg("--receipt")
        .arg(&case.receipt)
        .args(["--expect-fingerprint", &genesis.hash().to_string()])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&genesis.hash().to_string()), "{stdout}");
}

#[test]
fn every_single_byte_change_in_the_file_fails() {
    let case = case();
    let changed = case.evidence.with_extension("changed");
    for at in 0..EVIDENCE.len() {
        let mut bytes = EVIDENCE.to_vec();
        bytes[at] ^= 0x01;
        std::fs::write(&changed, &bytes).expect("write");
        match verify(&case, &changed, &case.receipt) {
            Err(ClientError::Verification(reason)) => {
                assert!(reason.contains("not the attested file"), "{reason}")
            }
            other => panic!("byte {at} changed: {other:?}"),
        }
    }
    std::fs::write(&changed, &EVIDENCE[..EVIDENCE.len() - 1]).expect("write");
    assert!(
        verify(&case, &changed, &case.receipt).is_err(),
        "a truncated file verified"
    );
}

/// Every leaf of a JSON value, by path.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(key, child)| {
            path.push(key.clone());
            leaves(child, path, out);
            path.pop();
        }),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, child)| {
            path.push(i.to_string());
            leaves(child, path, out);
            path.pop();
        }),
        Value::Null => {}
        _ => out.push(path.clone()),
    }
}

fn leaf_mut<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |value, step| match value {
        Value::Array(items) => &mut items[step.parse::<usize>().expect("index")],
        other => &mut other[step.as_str()],
    })
}

/// The same leaf with a different value of the same shape.
fn changed(value: &Value) -> Value {
    match value {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => {
            let n = n.as_u64().expect("receipts hold unsigned numbers");
            Value::from(if n == 255 || n == u64::MAX {
                n - 1
            } else {
                n + 1
            })
        }
        Value::String(text) if text.starts_with("sha256:") || text.starts_with("ed25519:") => {
            let mut chars: Vec<char> = text.chars().collect();
            let last = chars.last_mut().expect("not empty");
            *last = if *last == '0' { '1' } else { '0' };
            Value::String(chars.into_iter().collect())
        }
        Value::String(text) => Value::String(format!("{text}x")),
        other => panic!("not a leaf: {other}"),
    }
}

#[test]
fn every_single_field_change_in_the_receipt_fails() {
    let case = case();
    let mut paths = Vec::new();
    leaves(&case.receipt_json, &mut Vec::new(), &mut paths);
    assert!(paths.len() > 50, "only {} fields", paths.len());
    let tampered = case.receipt.with_extension("tampered");
    for path in &paths {
        let mut json = case.receipt_json.clone();
        let leaf = leaf_mut(&mut json, path);
        *leaf = changed(leaf);
        std::fs::write(&tampered, json.to_string()).expect("write");
        match verify(&case, &case.evidence, &tampered) {
            Err(ClientError::Verification(_)) | Err(ClientError::BadFile { .. }) => {}
            other => panic!(
                "receipt field {} changed and still {other:?}",
                path.join(".")
            ),
        }
    }
}

#[test]
fn a_certificate_without_enough_signatures_fails_with_a_reason() {
    let case = case();
    let mut json = case.receipt_json.clone();
    let signatures = json["certified"]["certificate"]["signatures"]
        .as_array_mut()
        .expect("signatures");
    // Five validators of power 1 after the change: a quorum needs four; keep three.
    signatures.truncate(3);
    let under_signed = case.receipt.with_extension("under-signed");
    std::fs::write(&under_signed, json.to_string()).expect("write");
    match verify(&case, &case.evidence, &under_signed) {
        Err(ClientError::Verification(reason)) => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("an under-signed certificate: {other:?}"),
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ipledger"))
        .arg("--genesis")
        .arg(&case.genesis)
        .args(["evidence", "verify"])
        .arg(&case.evidence)
        .arg("--receipt")
        .arg(&under_signed)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(4),
        "exit code for failed verification"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"));
}

#[test]
fn a_receipt_checked_against_another_genesis_fails() {
    let case = case();
    let other = TestChain::new(3).genesis;
    ipledger_genesis::write_genesis(&case.genesis, &other).expect("genesis replaced");
    assert!(matches!(
        verify(&case, &case.evidence, &case.receipt),
        Err(ClientError::Verification(_))
    ));
}

#[test]
fn a_wrong_fingerprint_fails_and_a_file_that_is_no_receipt_is_bad_input() {
    let case = case();
    let run = |receipt: &Path, fingerprint: &str| {
        Command::new(env!("CARGO_BIN_EXE_ipledger"))
            .arg("--genesis")
            .arg(&case.genesis)
            .args(["evidence", "verify"])
            .arg(&case.evidence)
            .arg("--receipt")
            .arg(receipt)
            .args(["--expect-fingerprint", fingerprint])
            .output()
            .expect("runs")
    };
    let other = Digest::sha256(b"another genesis").to_string();
    let out = run(&case.receipt, &other);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fingerprint"));
    let genesis = ipledger_genesis::read_genesis(&case.genesis).expect("genesis");
    let not_a_receipt = case.receipt.with_extension("txt");
    std::fs::write(&not_a_receipt, "{\"hello\": 1}").expect("write");
    let out = run(&not_a_receipt, &genesis.hash().to_string());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a receipt file"));
}
