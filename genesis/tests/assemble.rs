//! `assemble`: a genesis from a spec of public keys.

mod common;

use common::{public, run, spec_toml, typical_orgs, typical_validators};
use ipledger_genesis::{read_genesis, ConsortiumSpec, SpecError};
use ledger_core::types::Role;

fn spec(text: &str) -> ConsortiumSpec {
    ConsortiumSpec::from_toml(text).unwrap()
}

fn refusal(text: &str) -> String {
    match ConsortiumSpec::from_toml(text) {
        Err(message) => message,
        Ok(spec) => spec.to_genesis().unwrap_err().to_string(),
    }
}

#[test]
fn a_typical_spec_makes_a_valid_genesis() {
    let genesis = spec(&spec_toml(&typical_orgs(), &typical_validators()))
        .to_genesis()
        .unwrap();
    genesis.validate().unwrap();
    assert_eq!(genesis.chain_id, "ipledger-spec-test");
    assert_eq!(genesis.genesis_time_ms, 1_772_323_200_000);
    assert_eq!(genesis.organisations.len(), 4);
    assert_eq!(genesis.organisations[0].role, Role::TradingCenter);
    assert_eq!(genesis.organisations[0].name, "trading-center");
    assert_eq!(genesis.validators.len(), 3);
    assert!(genesis.validators.windows(2).all(|w| w[0].key < w[1].key));
    assert!(genesis.validators.iter().all(|v| v.power == 1));
    assert_eq!(
        genesis.params.tx_lifetime_max,
        ipledger_genesis::params::DEFAULT_TX_LIFETIME_MAX
    );
    assert_eq!(genesis.consensus.propose_timeout_ms, 2_000);
}

#[test]
fn optional_tables_override_the_defaults() {
    let mut text = spec_toml(&typical_orgs(), &typical_validators());
    text = text.replace(
        "genesis_time = 2026-03-01T00:00:00Z",
        "genesis_time_ms = 1772323200000\n[params]\nblock_txs_max = 500\n[consensus]\npropose_timeout_ms = 3000\n",
    );
    let genesis = spec(&text).to_genesis().unwrap();
    assert_eq!(genesis.genesis_time_ms, 1_772_323_200_000);
    assert_eq!(genesis.params.block_txs_max, 500);
    assert_eq!(
        genesis.params.tx_lifetime_max,
        ipledger_genesis::params::DEFAULT_TX_LIFETIME_MAX
    );
    assert_eq!(genesis.consensus.propose_timeout_ms, 3_000);
    assert_eq!(genesis.consensus.vote_timeout_ms, 1_000);
}

#[test]
fn binary_prints_the_fingerprint_of_the_file_it_writes() {
    let temp = tempfile::tempdir().unwrap();
    let spec_path = temp.path().join("consortium.toml");
    let out = temp.path().join("genesis.json");
    std::fs::write(
        &spec_path,
        spec_toml(&typical_orgs(), &typical_validators()),
    )
    .unwrap();
    let (ok, stdout, stderr) = run(&[
        "assemble",
        "--spec",
        spec_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let genesis = read_genesis(&out).unwrap();
    assert_eq!(stdout.trim(), genesis.hash().to_string());
    // The file is the pretty JSON of the Genesis type.
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, serde_json::to_string_pretty(&genesis).unwrap() + "\n");
    // `fingerprint` agrees.
    let (ok, again, _) = run(&["fingerprint", out.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(again, stdout);
}

#[test]
fn binary_refuses_a_bad_spec_naming_the_problem() {
    let temp = tempfile::tempdir().unwrap();
    let spec_path = temp.path().join("consortium.toml");
    let out = temp.path().join("genesis.json");
    let mut orgs = typical_orgs();
    orgs[1].1 = "lender";
    std::fs::write(&spec_path, spec_toml(&orgs, &typical_validators())).unwrap();
    let (ok, stdout, stderr) = run(&[
        "assemble",
        "--spec",
        spec_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(stderr.contains("lender"), "{stderr}");
    assert!(stderr.contains("consortium.toml"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_duplicate_key_is_refused_naming_both_holders() {
    // A validator node reusing its organisation's key.
    let mut validators = typical_validators();
    validators[1].1 = public("bank-a");
    let message = refusal(&spec_toml(&typical_orgs(), &validators));
    assert!(message.contains(&public("bank-a")), "{message}");
    assert!(message.contains("listed twice"), "{message}");
    assert!(message.contains("organisation `bank-a`"), "{message}");
    assert!(message.contains("validator node of `bank-a`"), "{message}");

    // Two organisations with one key.
    let mut orgs = typical_orgs();
    orgs[2].2 = public("bank-a");
    let message = refusal(&spec_toml(&orgs, &typical_validators()));
    assert!(message.contains("organisation `court`"), "{message}");

    // Two validators with one key.
    let mut validators = typical_validators();
    validators[2].1 = validators[0].1.clone();
    let message = refusal(&spec_toml(&typical_orgs(), &validators));
    assert!(message.contains("listed twice"), "{message}");
}

#[test]
fn a_validator_of_an_unknown_organisation_is_refused() {
    let mut validators = typical_validators();
    validators[1].0 = "bank-c";
    let message = refusal(&spec_toml(&typical_orgs(), &validators));
    assert!(message.contains("`bank-c`"), "{message}");
    assert!(message.contains("not listed"), "{message}");
}

#[test]
fn bad_roles_are_refused() {
    let mut orgs = typical_orgs();
    orgs[1].1 = "lender";
    let message = refusal(&spec_toml(&orgs, &typical_validators()));
    assert!(message.contains("lender"), "{message}");
    assert!(message.contains("trading_center"), "{message}");

    let mut orgs = typical_orgs();
    orgs[1].1 = "rights_holder";
    let message = refusal(&spec_toml(&orgs, &typical_validators()));
    assert!(message.contains("`bank-a`"), "{message}");
    assert!(message.contains("rights_holder"), "{message}");

    // A regulator may not run a validator.
    let mut validators = typical_validators();
    validators[0].0 = "regulator";
    let message = refusal(&spec_toml(&typical_orgs(), &validators));
    assert!(message.contains("`regulator`"), "{message}");

    // A genesis needs a trading center.
    let mut orgs = typical_orgs();
    orgs[0].1 = "bank";
    let message = refusal(&spec_toml(&orgs, &typical_validators()));
    assert!(message.contains("trading_center"), "{message}");
}

#[test]
fn other_mistakes_are_named() {
    let orgs = typical_orgs();
    let validators = typical_validators();
    let base = spec_toml(&orgs, &validators);

    let message = refusal(&base.replace("bank-a", "Bank A"));
    assert!(message.contains("\"Bank A\""), "{message}");

    let message = refusal(&base.replace("10.0.0.2:26656", "10.0.0.2"));
    assert!(message.contains("10.0.0.2"), "{message}");

    let message = refusal(&base.replace("10.0.0.2:26656", "10.0.0.1:26656"));
    assert!(message.contains("same p2p address"), "{message}");

    let message = refusal(&base.replace(&public("court"), "ed25519:00"));
    assert!(message.contains("ed25519:00"), "{message}");

    let message = refusal(&base.replace(
        "chain_id = \"ipledger-spec-test\"",
        "chain_id = \"has space\"",
    ));
    assert!(message.contains("has space"), "{message}");

    let message = refusal(&base.replace("genesis_time = 2026-03-01T00:00:00Z", ""));
    assert!(message.contains("genesis_time"), "{message}");

    let message = refusal(&base.replace("2026-03-01T00:00:00Z", "2026-03-01T00:00:00"));
    assert!(message.contains("offset"), "{message}");

    let message = refusal(&format!("{base}\nvalidator_count = 3\n"));
    assert!(message.contains("validator_count"), "{message}");

    let message = refusal(&format!("{base}power = 0\n"));
    assert!(message.contains("power 0"), "{message}");

    // The identity point (small order) as an organisation key.
    let weak = format!("ed25519:01{}", "00".repeat(31));
    let message = refusal(&base.replace(&public("court"), &weak));
    assert!(message.contains("organisation `court`"), "{message}");
    assert!(message.contains("small order"), "{message}");
}

#[test]
fn a_spec_round_trips_through_toml() {
    let original = spec(&spec_toml(&typical_orgs(), &typical_validators()));
    let again = spec(&original.to_toml());
    assert_eq!(again, original);
    assert_eq!(again.to_genesis().unwrap(), original.to_genesis().unwrap());
}

#[test]
fn check_matches_tells_a_foreign_genesis() {
    let spec_a = spec(&spec_toml(&typical_orgs(), &typical_validators()));
    let mut validators = typical_validators();
    validators.pop();
    let spec_b = spec(&spec_toml(&typical_orgs(), &validators));
    spec_a.check_matches(&spec_a.to_genesis().unwrap()).unwrap();
    let error = spec_a
        .check_matches(&spec_b.to_genesis().unwrap())
        .unwrap_err();
    assert!(matches!(error, SpecError::Invalid(_)), "{error}");
}
