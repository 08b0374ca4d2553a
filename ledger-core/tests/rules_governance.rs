//! Governance quorum, validator changes, key rotation, misbehaviour evidence, evidence
//! attestation, and replay protection.

mod common;
use common::*;
use ledger_core::crypto::Digest;
use ledger_core::rejection::Rejection;
use ledger_core::state::{EvidenceRecord, MisbehaviourRecord, PartyRecord, StateKey, StateRead};
use ledger_core::state_tree::StateTree;
use ledger_core::testkit::{test_key, TestChain};
use ledger_core::tx::{Action, GovernanceAction, SignedTx};
use ledger_core::types::{EvidenceKind, Role};
use ledger_core::vote::{Vote, VoteType};

fn admit(name: &str) -> Action {
    Action::Governance(GovernanceAction::AdmitOrganisation {
        party: name.into(),
        name: format!("{name} bank"),
        role: Role::Bank,
        key: test_key(name).public_key(),
    })
}

#[test]
fn governance_needs_more_than_two_thirds_of_validator_organisations() {
    let mut chain = TestChain::new(4);
    let two = chain.tx(admit("bank-c"), &["trading-center", "bank-a"]);
    match rejection(chain.apply(two)) {
        Rejection::QuorumNotReached { signed, eligible } => assert_eq!((signed, eligible), (2, 4)),
        other => panic!("expected quorum_not_reached, got {other}"),
    }
    let outsider = chain.tx(
        admit("bank-c"),
        &["trading-center", "bank-a", "bank-b", "appraiser"],
    );
    assert_eq!(
        rejection(chain.apply(outsider)).code(),
        "unexpected_signature"
    );
    let three = chain.tx(admit("bank-c"), &["trading-center", "bank-a", "bank-b"]);
    chain.apply(three).expect("three of four admit");
    let record: PartyRecord = chain.get(&StateKey::Party("bank-c".into())).unwrap();
    assert_eq!(record.role, Role::Bank);
}

#[test]
fn validator_change_takes_effect_at_the_stated_height_and_receipts_follow_it() {
    let mut chain = TestChain::new(4);
    let (validators, effective_height) = ledger_core::testkit::add_bank_c_validator(&mut chain);
    while chain.height() < effective_height + 1 {
        chain.commit(Vec::new());
    }
    let announcing = &chain.blocks[(effective_height - 2) as usize].header;
    assert_ne!(
        announcing.validator_set_hash,
        announcing.next_validator_set_hash
    );
    assert_eq!(chain.validators_at(effective_height), validators);
    let attest = chain.tx(
        Action::AttestEvidence {
            attestor: "court".into(),
            evidence_hash: Digest::sha256(b"after change"),
            kind: EvidenceKind::Document,
            case_ref: None,
            related_asset: None,
        },
        &["court"],
    );
    chain.apply(attest).unwrap();
    let receipt = chain.receipt(chain.leaf_count - 1);
    assert_eq!(receipt.validator_changes.len(), 1);
    ledger_core::receipt::verify_receipt(&receipt, &chain.genesis)
        .expect("receipt across a validator change");
    let mut without_change = receipt.clone();
    without_change.validator_changes.clear();
    let error = ledger_core::receipt::verify_receipt(&without_change, &chain.genesis).unwrap_err();
    assert!(error.to_string().contains("validator set"), "{error}");
}

#[test]
fn validator_change_must_be_scheduled_later_and_by_operating_organisations() {
    let mut chain = TestChain::new(4);
    let validators = chain.validators_at(1);
    let now = Action::Governance(GovernanceAction::ChangeValidators {
        validators: validators.clone(),
        effective_height: 1,
    });
    let tx = chain.tx(now, &["trading-center", "bank-a", "court"]);
    assert_eq!(rejection(chain.apply(tx)).code(), "bad_validator_change");
    let mut by_regulator = validators;
    by_regulator[0].organisation = "regulator".into();
    let tx = chain.tx(
        Action::Governance(GovernanceAction::ChangeValidators {
            validators: by_regulator,
            effective_height: 10,
        }),
        &["trading-center", "bank-a", "court"],
    );
    assert_eq!(rejection(chain.apply(tx)).code(), "bad_validator_change");
}

#[test]
fn removing_a_validator_operator_is_refused() {
    let mut chain = TestChain::new(4);
    let tx = chain.tx(
        Action::Governance(GovernanceAction::RemoveOrganisation {
            party: "bank-b".into(),
        }),
        &["trading-center", "bank-a", "court"],
    );
    assert_eq!(
        rejection(chain.apply(tx)).code(),
        "organisation_runs_validator"
    );
    let tx = chain.tx(
        Action::Governance(GovernanceAction::RemoveOrganisation {
            party: "appraiser".into(),
        }),
        &["trading-center", "bank-a", "court"],
    );
    chain
        .apply(tx)
        .expect("a non-validator organisation is removed");
    let record: PartyRecord = chain.get(&StateKey::Party("appraiser".into())).unwrap();
    assert!(!record.active);
}

#[test]
fn rotated_key_replaces_the_old_one() {
    let mut chain = chain_with_holders();
    let rotate = Action::Governance(GovernanceAction::RotateKey {
        party: "alice".into(),
        new_key: test_key("alice-2").public_key(),
    });
    let tx = chain.tx(rotate, &["trading-center", "bank-a", "court"]);
    chain.apply(tx).expect("key rotated");
    let old = register_work(&mut chain, "after-rotation", "alice");
    assert_eq!(rejection(chain.apply(old)).code(), "missing_signature");
    let mut new = register_work(&mut chain, "after-rotation", "alice");
    new.signatures.clear();
    new.sign(&test_key("alice-2"));
    chain.apply(new).expect("the new key signs");
}

fn vote(vote_type: VoteType, height: u64, block: Option<&[u8]>) -> Vote {
    Vote {
        vote_type,
        chain_id: ledger_core::testkit::TEST_CHAIN_ID.into(),
        height,
        round: 0,
        block_hash: block.map(Digest::sha256),
    }
}

fn report(chain: &mut TestChain, first: Vote, second: Vote) -> SignedTx {
    let key = test_key("bank-b/node");
    let action = Action::ReportMisbehaviour {
        reporter: "bank-a".into(),
        first: first.sign(&key),
        second: second.sign(&key),
    };
    chain.tx(action, &["bank-a"])
}

#[test]
fn double_precommit_is_recorded_once_against_its_validator() {
    let mut chain = TestChain::new(4);
    chain.commit(Vec::new());
    let tx = report(
        &mut chain,
        vote(VoteType::Precommit, 1, Some(b"x")),
        vote(VoteType::Precommit, 1, None),
    );
    chain
        .apply(tx)
        .expect("block vs nil precommit is a double vote");
    let key = StateKey::Misbehaviour {
        validator: test_key("bank-b/node").public_key(),
        height: 1,
        round: 0,
        vote_type: VoteType::Precommit,
    };
    let record: MisbehaviourRecord = chain.get(&key).expect("recorded");
    assert_eq!(record.organisation, "bank-b".into());
    let again = report(
        &mut chain,
        vote(VoteType::Precommit, 1, Some(b"x")),
        vote(VoteType::Precommit, 1, Some(b"y")),
    );
    assert_eq!(
        rejection(chain.apply(again)).code(),
        "misbehaviour_already_recorded"
    );
}

#[test]
fn prevote_for_a_block_then_nil_precommit_is_not_misbehaviour() {
    let mut chain = TestChain::new(4);
    chain.commit(Vec::new());
    let tx = report(
        &mut chain,
        vote(VoteType::Prevote, 1, Some(b"x")),
        vote(VoteType::Precommit, 1, None),
    );
    assert_eq!(
        rejection(chain.apply(tx)).code(),
        "bad_misbehaviour_evidence"
    );
    let same = report(
        &mut chain,
        vote(VoteType::Prevote, 1, Some(b"x")),
        vote(VoteType::Prevote, 1, Some(b"x")),
    );
    assert_eq!(
        rejection(chain.apply(same)).code(),
        "bad_misbehaviour_evidence"
    );
}

#[test]
fn forged_vote_is_not_evidence() {
    let mut chain = TestChain::new(4);
    chain.commit(Vec::new());
    let key = test_key("bank-b/node");
    let mut forged = vote(VoteType::Precommit, 1, Some(b"y")).sign(&test_key("someone-else"));
    forged.validator = key.public_key();
    let action = Action::ReportMisbehaviour {
        reporter: "bank-a".into(),
        first: vote(VoteType::Precommit, 1, Some(b"x")).sign(&key),
        second: forged,
    };
    let tx = chain.tx(action, &["bank-a"]);
    assert_eq!(
        rejection(chain.apply(tx)).code(),
        "bad_misbehaviour_evidence"
    );
}

fn attest(chain: &mut TestChain, who: &str, evidence: &[u8]) -> SignedTx {
    let action = Action::AttestEvidence {
        attestor: who.into(),
        evidence_hash: Digest::sha256(evidence),
        kind: EvidenceKind::WebPage,
        case_ref: Some("(2026)川0191民初7号".into()),
        related_asset: None,
    };
    chain.tx(action, &[who])
}

#[test]
fn evidence_keeps_the_first_attestation_and_counts_later_ones() {
    let mut chain = chain_with_holders();
    let first = attest(&mut chain, "alice", b"screenshot");
    chain.apply(first).unwrap();
    let first_height = chain.height();
    let second = attest(&mut chain, "court", b"screenshot");
    chain.apply(second).unwrap();
    let record: EvidenceRecord = chain
        .get(&StateKey::Evidence(Digest::sha256(b"screenshot")))
        .unwrap();
    assert_eq!(record.first_attestor, "alice".into());
    assert_eq!(record.first_recorded.height, first_height);
    assert_eq!(record.attestation_count, 2);
}

#[test]
fn regulator_signs_nothing() {
    let mut chain = TestChain::new(4);
    let tx = attest(&mut chain, "regulator", b"anything");
    assert_eq!(rejection(chain.apply(tx)).code(), "wrong_role");
}

/// A chain with holders where alice's attestation of `evidence` is committed: the chain, the
/// transaction and the height of its block.
fn alice_attested(evidence: &[u8]) -> (TestChain, SignedTx, u64) {
    let mut chain = chain_with_holders();
    let tx = attest(&mut chain, "alice", evidence);
    chain.apply(tx.clone()).unwrap();
    let committed_at = chain.height();
    (chain, tx, committed_at)
}

#[test]
fn replay_is_refused_while_unexpired_and_expiry_is_enforced() {
    let (mut chain, tx, committed_at) = alice_attested(b"doc");
    assert_eq!(
        rejection(chain.apply(tx.clone())).code(),
        "already_committed"
    );
    let mut expired = chain.tx(
        Action::AttestEvidence {
            attestor: "alice".into(),
            evidence_hash: Digest::sha256(b"late"),
            kind: EvidenceKind::Other,
            case_ref: None,
            related_asset: None,
        },
        &[],
    );
    expired.body.valid_until = chain.height();
    expired.sign(&test_key("alice"));
    assert_eq!(rejection(chain.apply(expired)).code(), "expired");
    let mut far = attest(&mut chain, "alice", b"far");
    far.body.valid_until = chain.height() + 1_000;
    far.signatures.clear();
    far.sign(&test_key("alice"));
    assert_eq!(rejection(chain.apply(far)).code(), "lifetime_too_long");
    while chain.height() <= tx.body.valid_until {
        chain.commit(Vec::new());
    }
    assert_eq!(
        rejection(chain.apply(tx.clone())).code(),
        "expired",
        "after expiry the id may be forgotten: expiry refuses it"
    );
    assert_eq!(
        chain.state().committed_height(&tx.id()),
        Ok(Some(committed_at)),
        "the transaction index keeps every id; expiry is what refuses an old one"
    );
}

#[test]
fn a_view_of_an_earlier_height_does_not_know_later_commits() {
    // The transaction index holds every block stored; a state view answers only for blocks at or
    // below its own height, as the state map does.
    let (mut chain, tx, committed_at) = alice_attested(b"later");
    chain.commit(Vec::new());
    let at = |version| StateTree::new(&chain.state_store, Some(version)).committed_height(&tx.id());
    assert_eq!(at(committed_at - 1), Ok(None));
    assert_eq!(at(committed_at), Ok(Some(committed_at)));
    assert_eq!(at(committed_at + 1), Ok(Some(committed_at)));
    assert_eq!(
        StateTree::new(&chain.state_store, None).committed_height(&tx.id()),
        Ok(None),
        "before genesis nothing is committed"
    );
}

#[test]
fn wrong_chain_and_bad_signatures_are_refused() {
    let mut chain = chain_with_holders();
    let mut other_chain = attest(&mut chain, "alice", b"x");
    other_chain.body.chain_id = "other".into();
    other_chain.signatures.clear();
    other_chain.sign(&test_key("alice"));
    assert_eq!(rejection(chain.apply(other_chain)).code(), "wrong_chain");
    let mut tampered = attest(&mut chain, "alice", b"y");
    tampered.body.salt[0] ^= 1;
    assert_eq!(rejection(chain.apply(tampered)).code(), "bad_signature");
    let mut unsorted = attest(&mut chain, "alice", b"z");
    unsorted.sign(&test_key("bob"));
    unsorted.signatures.reverse();
    assert_eq!(
        rejection(chain.apply(unsorted)).code(),
        "unsorted_signatures"
    );
    let mut extra = attest(&mut chain, "alice", b"w");
    extra.sign(&test_key("bob"));
    assert_eq!(rejection(chain.apply(extra)).code(), "unexpected_signature");
    let mut stranger = attest(&mut chain, "alice", b"v");
    stranger.sign(&test_key("nobody"));
    assert_eq!(rejection(chain.apply(stranger)).code(), "unknown_signer");
}

#[test]
fn enrolment_refuses_taken_ids_reused_keys_and_weak_keys() {
    let mut chain = chain_with_holders();
    let again = enroll(&mut chain, "alice");
    assert_eq!(rejection(chain.apply(again)).code(), "party_exists");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = Action::EnrollRightsHolder {
        registrar: "trading-center".into(),
        party: "weak".into(),
        name: "Weak".into(),
        key: ledger_core::crypto::PublicKey::Ed25519(identity),
        id_document_hash: Digest::sha256(b"id"),
    };
    let tx = chain.tx(weak, &["trading-center"]);
    assert_eq!(rejection(chain.apply(tx)).code(), "weak_key");
    let reused = Action::EnrollRightsHolder {
        registrar: "trading-center".into(),
        party: "alice-twin".into(),
        name: "Twin".into(),
        key: test_key("alice").public_key(),
        id_document_hash: Digest::sha256(b"id"),
    };
    let tx = chain.tx(reused, &["trading-center", "alice"]);
    assert_eq!(rejection(chain.apply(tx)).code(), "key_in_use");
}
