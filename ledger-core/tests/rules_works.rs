//! Works, patents and trademarks: first to file, transfers, licences, freezes.

mod common;
use common::*;
use ledger_core::crypto::Digest;
use ledger_core::state::{AssetEvent, HistoryEntry, StateKey};
use ledger_core::tx::Action;

#[test]
fn work_first_to_file_wins_and_names_the_earlier_filing() {
    let mut chain = chain_with_holders();
    let first = register_work(&mut chain, "song", "alice");
    chain.apply(first).expect("first filing succeeds");
    let earlier_height = chain.height();
    let second = register_work(&mut chain, "song", "bob");
    match rejection(chain.apply(second)) {
        ledger_core::rejection::Rejection::WorkAlreadyRegistered {
            owner,
            height,
            content_hash,
            ..
        } => {
            assert_eq!(owner, party("alice"));
            assert_eq!(height, earlier_height);
            assert_eq!(content_hash, Digest::sha256(b"song"));
        }
        other => panic!("expected work_already_registered, got {other}"),
    }
    assert_eq!(asset(&chain, &work("song")).owner, party("alice"));
}

#[test]
fn work_registration_needs_the_owner_signature() {
    let mut chain = chain_with_holders();
    let mut tx = register_work(&mut chain, "novel", "alice");
    tx.signatures.clear();
    tx.sign(&ledger_core::testkit::test_key("bob"));
    let refused = rejection(chain.apply(tx));
    assert_eq!(refused.code(), "missing_signature", "{refused}");
}

#[test]
fn transfer_moves_ownership_and_records_history() {
    let mut chain = chain_with_holders();
    let tx = register_work(&mut chain, "film", "alice");
    chain.apply(tx).unwrap();
    let transfer = chain.tx(
        Action::TransferAsset {
            asset: work("film"),
            to: party("bob"),
        },
        &["alice"],
    );
    chain.apply(transfer).expect("transfer succeeds");
    let record = asset(&chain, &work("film"));
    assert_eq!(record.owner, party("bob"));
    assert_eq!(record.registrant, party("alice"));
    assert_eq!(record.history_len, 2);
    let entry: HistoryEntry = chain.get(&StateKey::AssetHistory(work("film"), 1)).unwrap();
    assert_eq!(
        entry.event,
        AssetEvent::Transferred {
            from: party("alice"),
            to: party("bob")
        }
    );
}

#[test]
fn transfer_by_non_owner_is_refused_as_missing_owner_signature() {
    let mut chain = chain_with_holders();
    let tx = register_work(&mut chain, "film", "alice");
    chain.apply(tx).unwrap();
    let theft = chain.tx(
        Action::TransferAsset {
            asset: work("film"),
            to: party("bob"),
        },
        &["bob"],
    );
    let refused = rejection(chain.apply(theft));
    assert_eq!(refused.code(), "missing_signature");
    assert_eq!(asset(&chain, &work("film")).owner, party("alice"));
}

#[test]
fn licence_overlapping_an_exclusive_one_is_refused() {
    let mut chain = chain_with_holders();
    let tx = register_work(&mut chain, "app", "alice");
    chain.apply(tx).unwrap();
    let licence = |exclusive, start_ms, end_ms| Action::GrantLicence {
        asset: work("app"),
        licensee: party("bob"),
        exclusive,
        start_ms,
        end_ms,
    };
    let exclusive = chain.tx(licence(true, 1_000, 2_000), &["alice"]);
    chain.apply(exclusive).expect("exclusive licence granted");
    let overlapping = chain.tx(licence(false, 1_500, 3_000), &["alice"]);
    assert_eq!(
        rejection(chain.apply(overlapping)).code(),
        "licence_conflict"
    );
    let after = chain.tx(licence(false, 2_000, 3_000), &["alice"]);
    chain
        .apply(after)
        .expect("a licence starting when the exclusive one ends is fine");
    let exclusive_over_plain = chain.tx(licence(true, 2_500, 2_600), &["alice"]);
    assert_eq!(
        rejection(chain.apply(exclusive_over_plain)).code(),
        "licence_conflict"
    );
}

#[test]
fn patent_is_an_asset_like_a_work() {
    let mut chain = chain_with_holders();
    let tx = record_patent(&mut chain, "ZL202110000001.X", "alice");
    chain.apply(tx).expect("patent recorded");
    let again = record_patent(&mut chain, "ZL202110000001.X", "bob");
    assert_eq!(
        rejection(chain.apply(again)).code(),
        "right_already_recorded"
    );
    let transfer = chain.tx(
        Action::TransferAsset {
            asset: patent("ZL202110000001.X"),
            to: party("bob"),
        },
        &["alice"],
    );
    chain.apply(transfer).expect("patent transfers");
    assert_eq!(
        asset(&chain, &patent("ZL202110000001.X")).owner,
        party("bob")
    );
}

#[test]
fn patent_needs_the_trading_center() {
    let mut chain = chain_with_holders();
    let action = Action::RecordRight {
        registrar: "bank-a".into(),
        office: "CNIPA".into(),
        kind: ledger_core::types::RightKind::Trademark,
        number: "12345678".into(),
        title: "Mark".into(),
        owner: "alice".into(),
    };
    let tx = chain.tx(action, &["bank-a", "alice"]);
    assert_eq!(rejection(chain.apply(tx)).code(), "wrong_role");
}

#[test]
fn frozen_asset_refuses_transfer_and_licence_until_the_same_court_unfreezes() {
    let mut chain = chain_with_holders();
    let tx = register_work(&mut chain, "art", "alice");
    chain.apply(tx).unwrap();
    let freeze = chain.tx(
        Action::FreezeAsset {
            asset: work("art"),
            court: "court".into(),
            case_ref: "(2026)川01民初1号".into(),
        },
        &["court"],
    );
    chain.apply(freeze).expect("court freezes");
    let transfer = chain.tx(
        Action::TransferAsset {
            asset: work("art"),
            to: party("bob"),
        },
        &["alice"],
    );
    assert_eq!(rejection(chain.apply(transfer)).code(), "asset_frozen");
    let other_court = chain.tx(
        Action::UnfreezeAsset {
            asset: work("art"),
            court: "court-2".into(),
            case_ref: "(2026)川01民初1号".into(),
        },
        &["court-2"],
    );
    assert_eq!(
        rejection(chain.apply(other_court)).code(),
        "freeze_mismatch"
    );
    let unfreeze = chain.tx(
        Action::UnfreezeAsset {
            asset: work("art"),
            court: "court".into(),
            case_ref: "(2026)川01民初1号".into(),
        },
        &["court"],
    );
    chain.apply(unfreeze).expect("court unfreezes");
    let transfer = chain.tx(
        Action::TransferAsset {
            asset: work("art"),
            to: party("bob"),
        },
        &["alice"],
    );
    chain.apply(transfer).expect("transfer after unfreeze");
}

#[test]
fn court_order_transfer_works_even_while_frozen() {
    let mut chain = chain_with_holders();
    let tx = register_work(&mut chain, "art", "alice");
    chain.apply(tx).unwrap();
    let freeze = chain.tx(
        Action::FreezeAsset {
            asset: work("art"),
            court: "court".into(),
            case_ref: "c1".into(),
        },
        &["court"],
    );
    chain.apply(freeze).unwrap();
    let order = chain.tx(
        Action::CourtOrderTransfer {
            asset: work("art"),
            court: "court".into(),
            case_ref: "c1".into(),
            to: party("bob"),
        },
        &["court"],
    );
    chain
        .apply(order)
        .expect("court order transfers a frozen asset");
    assert_eq!(asset(&chain, &work("art")).owner, party("bob"));
}

#[test]
fn non_court_cannot_freeze() {
    let mut chain = chain_with_holders();
    let tx = register_work(&mut chain, "art", "alice");
    chain.apply(tx).unwrap();
    let freeze = chain.tx(
        Action::FreezeAsset {
            asset: work("art"),
            court: "bank-a".into(),
            case_ref: "c1".into(),
        },
        &["bank-a"],
    );
    assert_eq!(rejection(chain.apply(freeze)).code(), "wrong_role");
}
