//! Pledges: ranking, consent, release, enforcement, and the freeze that stops them.

mod common;
use common::*;
use ledger_core::crypto::Digest;
use ledger_core::rejection::Rejection;
use ledger_core::state::{PledgeRecord, PledgeStatus, StateKey};
use ledger_core::testkit::{TestChain, TEST_GENESIS_TIME_MS};
use ledger_core::tx::{Action, CourtOrder, TxId, Valuation};
use ledger_core::types::Money;

/// A chain where alice owns work "w" and patent "P1".
fn chain_with_assets() -> TestChain {
    let mut chain = chain_with_holders();
    let txs = vec![
        register_work(&mut chain, "w", "alice"),
        record_patent(&mut chain, "P1", "alice"),
    ];
    assert!(chain.commit(txs).iter().all(Result::is_ok));
    chain
}

fn pledge(
    chain: &mut TestChain,
    bank: &str,
    first_rank: bool,
) -> (TxId, Result<(), ledger_core::rejection::TxError>) {
    let tx = register_pledge(
        chain,
        pledge_terms(vec![work("w"), patent("P1")], "alice", bank, first_rank),
    );
    (tx.id(), chain.apply(tx))
}

fn pledge_record(chain: &TestChain, id: TxId) -> PledgeRecord {
    chain.get(&StateKey::Pledge(id)).expect("pledge exists")
}

#[test]
fn pledge_second_rank_after_first_and_first_rank_demand_refused() {
    let mut chain = chain_with_assets();
    let (first, outcome) = pledge(&mut chain, "bank-a", true);
    outcome.expect("first-rank pledge on unencumbered assets");
    let (second, outcome) = pledge(&mut chain, "bank-b", false);
    outcome.expect("junior pledge");
    assert_eq!(
        pledge_record(&chain, first).ranks_at_registration,
        vec![1, 1]
    );
    assert_eq!(
        pledge_record(&chain, second).ranks_at_registration,
        vec![2, 2]
    );
    assert_eq!(
        asset(&chain, &work("w")).active_pledges,
        vec![first, second]
    );
    let (_, outcome) = pledge(&mut chain, "bank-b", true);
    match rejection(outcome) {
        Rejection::FirstRankUnavailable { existing, .. } => assert_eq!(existing, first),
        other => panic!("expected first_rank_unavailable, got {other}"),
    }
    let indexed: TxId = chain
        .get(&StateKey::PledgeByBank(party("bank-b"), 0))
        .expect("bank index");
    assert_eq!(indexed, second);
}

#[test]
fn pledge_needs_pledgor_bank_trading_center_and_appraiser() {
    let mut chain = chain_with_assets();
    let mut terms = pledge_terms(vec![work("w")], "alice", "bank-a", false);
    terms.valuations.push(Valuation {
        appraiser: "appraiser".into(),
        amount: Money {
            minor_units: 500_000_000,
            currency: "CNY".into(),
        },
        report_hash: Digest::sha256(b"report"),
    });
    let without_appraiser = chain.tx(
        Action::RegisterPledge(terms.clone()),
        &["alice", "bank-a", "trading-center"],
    );
    match rejection(chain.apply(without_appraiser)) {
        Rejection::MissingSignature { party: who, .. } => assert_eq!(who, party("appraiser")),
        other => panic!("expected missing appraiser signature, got {other}"),
    }
    let without_center = chain.tx(
        Action::RegisterPledge(terms.clone()),
        &["alice", "bank-a", "appraiser"],
    );
    assert_eq!(
        rejection(chain.apply(without_center)).code(),
        "missing_signature"
    );
    let complete = register_pledge(&mut chain, terms);
    chain.apply(complete).expect("pledge with every signature");
}

#[test]
fn pledgee_must_be_a_bank_and_pledgor_the_owner() {
    let mut chain = chain_with_assets();
    let to_court = register_pledge(
        &mut chain,
        pledge_terms(vec![work("w")], "alice", "court", false),
    );
    assert_eq!(rejection(chain.apply(to_court)).code(), "wrong_role");
    let by_bob = register_pledge(
        &mut chain,
        pledge_terms(vec![work("w")], "bob", "bank-a", false),
    );
    assert_eq!(rejection(chain.apply(by_bob)).code(), "not_owner");
}

#[test]
fn pledged_asset_transfer_needs_every_pledgee_consent() {
    let mut chain = chain_with_assets();
    pledge(&mut chain, "bank-a", false).1.unwrap();
    pledge(&mut chain, "bank-b", false).1.unwrap();
    let transfer = Action::TransferAsset {
        asset: work("w"),
        to: party("bob"),
    };
    let alone = chain.tx(transfer.clone(), &["alice"]);
    match rejection(chain.apply(alone)) {
        Rejection::MissingSignature { party: who, .. } => assert_eq!(who, party("bank-a")),
        other => panic!("expected the bank's consent to be missing, got {other}"),
    }
    let one_bank = chain.tx(transfer.clone(), &["alice", "bank-a"]);
    assert_eq!(rejection(chain.apply(one_bank)).code(), "missing_signature");
    let licence = chain.tx(
        Action::GrantLicence {
            asset: work("w"),
            licensee: party("bob"),
            exclusive: false,
            start_ms: 0,
            end_ms: 10,
        },
        &["alice"],
    );
    assert_eq!(rejection(chain.apply(licence)).code(), "missing_signature");
    let consented = chain.tx(transfer, &["alice", "bank-a", "bank-b"]);
    chain
        .apply(consented)
        .expect("transfer with both banks' consent");
    let record = asset(&chain, &work("w"));
    assert_eq!(record.owner, party("bob"));
    assert_eq!(record.active_pledges.len(), 2, "pledges follow the asset");
}

#[test]
fn frozen_asset_cannot_be_pledged() {
    let mut chain = chain_with_assets();
    let freeze = chain.tx(
        Action::FreezeAsset {
            asset: patent("P1"),
            court: "court".into(),
            case_ref: "c".into(),
        },
        &["court"],
    );
    chain.apply(freeze).unwrap();
    let (_, outcome) = pledge(&mut chain, "bank-a", false);
    assert_eq!(rejection(outcome).code(), "asset_frozen");
    assert!(
        asset(&chain, &work("w")).active_pledges.is_empty(),
        "a refused multi-asset pledge touches no asset"
    );
}

#[test]
fn release_by_pledgee_only_and_only_once() {
    let mut chain = chain_with_assets();
    let (id, outcome) = pledge(&mut chain, "bank-a", false);
    outcome.unwrap();
    let by_owner = chain.tx(Action::ReleasePledge { pledge: id }, &["alice"]);
    assert_eq!(rejection(chain.apply(by_owner)).code(), "missing_signature");
    let release = chain.tx(Action::ReleasePledge { pledge: id }, &["bank-a"]);
    chain.apply(release).expect("pledgee releases");
    assert!(matches!(
        pledge_record(&chain, id).status,
        PledgeStatus::Released { .. }
    ));
    assert!(asset(&chain, &work("w")).active_pledges.is_empty());
    let again = chain.tx(Action::ReleasePledge { pledge: id }, &["bank-a"]);
    assert_eq!(rejection(chain.apply(again)).code(), "pledge_not_active");
    let transfer = chain.tx(
        Action::TransferAsset {
            asset: work("w"),
            to: party("bob"),
        },
        &["alice"],
    );
    chain
        .apply(transfer)
        .expect("a released asset transfers without the bank");
}

/// A pledge on work "w" by alice to `bank`, maturing shortly after genesis (block 3's time).
fn short_pledge(chain: &mut TestChain, bank: &str) -> TxId {
    let mut terms = pledge_terms(vec![work("w")], "alice", bank, false);
    terms.maturity_ms = TEST_GENESIS_TIME_MS + 10_000;
    let tx = register_pledge(chain, terms);
    let id = tx.id();
    chain.apply(tx).expect("pledge registers");
    id
}

fn wait_until_height(chain: &mut TestChain, height: u64) {
    while chain.height() < height {
        chain.commit(Vec::new());
    }
}

#[test]
fn enforcement_waits_for_maturity_and_first_rank_then_moves_ownership() {
    let mut chain = chain_with_assets();
    let senior = short_pledge(&mut chain, "bank-a");
    let junior = short_pledge(&mut chain, "bank-b");
    let enforce = |bank: &str, id| {
        (
            Action::EnforcePledge {
                pledge: id,
                transferee: party(bank),
                court_order: None,
            },
            bank.to_owned(),
        )
    };
    let (action, bank) = enforce("bank-a", senior);
    let early = chain.tx(action, &[&bank]);
    assert_eq!(rejection(chain.apply(early)).code(), "not_matured");
    wait_until_height(&mut chain, 11);
    let (action, bank) = enforce("bank-b", junior);
    let junior_first = chain.tx(action, &[&bank]);
    match rejection(chain.apply(junior_first)) {
        Rejection::NotFirstRank {
            senior: blocking, ..
        } => assert_eq!(blocking, senior),
        other => panic!("expected not_first_rank, got {other}"),
    }
    let (action, bank) = enforce("bank-a", senior);
    let matured = chain.tx(action, &[&bank]);
    chain
        .apply(matured)
        .expect("matured first-rank pledge enforces");
    let record = asset(&chain, &work("w"));
    assert_eq!(record.owner, party("bank-a"));
    assert_eq!(
        record.active_pledges,
        vec![junior],
        "the junior pledge stays attached"
    );
    assert!(matches!(
        pledge_record(&chain, senior).status,
        PledgeStatus::Enforced { .. }
    ));
}

#[test]
fn frozen_asset_refuses_enforcement_except_by_court_order() {
    let mut chain = chain_with_assets();
    let id = short_pledge(&mut chain, "bank-a");
    wait_until_height(&mut chain, 11);
    let freeze = chain.tx(
        Action::FreezeAsset {
            asset: work("w"),
            court: "court".into(),
            case_ref: "c9".into(),
        },
        &["court"],
    );
    chain.apply(freeze).unwrap();
    let plain = chain.tx(
        Action::EnforcePledge {
            pledge: id,
            transferee: party("bank-a"),
            court_order: None,
        },
        &["bank-a"],
    );
    assert_eq!(rejection(chain.apply(plain)).code(), "asset_frozen");
    let order = CourtOrder {
        court: "court".into(),
        case_ref: "c9".into(),
    };
    let unsigned_order = chain.tx(
        Action::EnforcePledge {
            pledge: id,
            transferee: party("bank-a"),
            court_order: Some(order.clone()),
        },
        &["bank-a"],
    );
    assert_eq!(
        rejection(chain.apply(unsigned_order)).code(),
        "missing_signature"
    );
    let ordered = chain.tx(
        Action::EnforcePledge {
            pledge: id,
            transferee: party("bank-a"),
            court_order: Some(order),
        },
        &["bank-a", "court"],
    );
    chain
        .apply(ordered)
        .expect("court-ordered enforcement of a frozen asset");
    assert_eq!(asset(&chain, &work("w")).owner, party("bank-a"));
}

#[test]
fn official_registration_is_recorded_once_by_the_trading_center() {
    let mut chain = chain_with_assets();
    let (id, outcome) = pledge(&mut chain, "bank-a", false);
    outcome.unwrap();
    let action = |date: &str| Action::RecordPledgeRegistration {
        registrar: "trading-center".into(),
        pledge: id,
        authority: "Sichuan Copyright Office".into(),
        registration_number: "川作质2026-001".into(),
        date: date.into(),
    };
    let bad_date = chain.tx(action("26/11/2026"), &["trading-center"]);
    assert_eq!(rejection(chain.apply(bad_date)).code(), "malformed");
    let tx = chain.tx(action("2026-11-26"), &["trading-center"]);
    chain.apply(tx).expect("official registration recorded");
    assert!(pledge_record(&chain, id).official_registration.is_some());
    let again = chain.tx(action("2026-11-27"), &["trading-center"]);
    assert_eq!(
        rejection(chain.apply(again)).code(),
        "official_registration_exists"
    );
}

#[test]
fn frozen_asset_is_refused_as_frozen_even_before_maturity() {
    let mut chain = chain_with_assets();
    let (id, outcome) = pledge(&mut chain, "bank-a", true);
    outcome.unwrap();
    let freeze = chain.tx(
        Action::FreezeAsset {
            asset: work("w"),
            court: "court".into(),
            case_ref: "c".into(),
        },
        &["court"],
    );
    chain.apply(freeze).unwrap();
    let enforce = chain.tx(
        Action::EnforcePledge {
            pledge: id,
            transferee: party("bank-a"),
            court_order: None,
        },
        &["bank-a"],
    );
    assert_eq!(
        rejection(chain.apply(enforce)).code(),
        "asset_frozen",
        "the freeze is the reason, not maturity"
    );
}
