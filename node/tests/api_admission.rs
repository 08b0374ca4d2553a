//! Admission (`ipledger_node::admission::admit`) against a real store: exactly what the next
//! block would accept enters the mempool, everything else is refused with its code, and nothing
//! admission does changes the state.

mod api_common;
mod store_common;
use api_common::*;
use ipledger_node::admission::{admit, decode_canonical, decode_json, AdmitError};
use ipledger_node::mempool::{Mempool, MEMPOOL_TXS_MAX};
use ledger_core::crypto::Digest;
use ledger_core::rejection::Rejection;
use ledger_core::rules::VerifiedTx;
use ledger_core::testkit::{test_key, TestChain, TEST_GENESIS_TIME_MS};
use ledger_core::tx::{Action, SignedTx, TxBody, TX_BYTES_MAX};
use std::sync::Mutex;

fn admit_in(harness: &Harness, tx: SignedTx) -> Result<Digest, AdmitError> {
    admit(
        &harness.store,
        &harness.chain.genesis,
        &harness.mempool,
        tx,
        NOW_MS,
    )
}

fn rejection_code(outcome: Result<Digest, AdmitError>) -> &'static str {
    match outcome {
        Err(AdmitError::Rejected(rejection)) => rejection.code(),
        other => panic!("expected a rule rejection, got {other:?}"),
    }
}

#[test]
fn a_valid_transaction_enters_the_mempool_and_changes_no_state() {
    let mut harness = Harness::busy();
    let root_before = harness.store.snapshot().unwrap().state(3).root().unwrap();
    let tx = register_work(&mut harness.chain, "new-song", "bob");
    let id = admit_in(&harness, tx.clone()).expect("admitted");
    assert_eq!(id, tx.id());
    assert!(harness.pooled(&id));
    let snapshot = harness.store.snapshot().unwrap();
    assert_eq!(snapshot.head_height().unwrap(), 3);
    assert_eq!(snapshot.state(3).root().unwrap(), root_before);
    assert!(matches!(
        admit_in(&harness, tx),
        Err(AdmitError::Duplicate(dup)) if dup == id
    ));
    assert_eq!(harness.mempool.lock().unwrap().len(), 1);
}

#[test]
fn refusals_carry_the_rule_code() {
    let mut harness = Harness::busy();
    // Replay of a committed transaction.
    let committed = harness.chain.blocks[1].txs[0].clone();
    assert_eq!(
        rejection_code(admit_in(&harness, committed)),
        "already_committed"
    );
    // A changed signature.
    let mut forged = register_work(&mut harness.chain, "forged", "bob");
    let ledger_core::crypto::Signature::Ed25519(bytes) = &mut forged.signatures[0].signature;
    bytes[0] ^= 1;
    assert_eq!(rejection_code(admit_in(&harness, forged)), "bad_signature");
    // First to file wins, against the head state.
    let again = register_work(&mut harness.chain, "song", "bob");
    assert_eq!(
        rejection_code(admit_in(&harness, again)),
        "work_already_registered"
    );
    // The owner did not sign.
    let action = Action::TransferAsset {
        asset: work("novel"),
        to: "bob".into(),
    };
    let unsigned_by_owner = harness.chain.tx(action, &["bob"]);
    let code = rejection_code(admit_in(&harness, unsigned_by_owner));
    assert!(
        ["missing_signature", "unexpected_signature"].contains(&code),
        "{code}"
    );
    // Another chain.
    let mut elsewhere = register_work(&mut harness.chain, "elsewhere", "bob");
    elsewhere.body.chain_id = "another-chain".into();
    let mut resigned = SignedTx::unsigned(elsewhere.body);
    resigned.sign(&test_key("bob"));
    assert_eq!(rejection_code(admit_in(&harness, resigned)), "wrong_chain");
    // valid_until beyond the allowed lifetime.
    let mut far = register_work(&mut harness.chain, "far", "bob");
    far.body.valid_until = 10_000;
    let mut resigned = SignedTx::unsigned(far.body);
    resigned.sign(&test_key("bob"));
    assert_eq!(
        rejection_code(admit_in(&harness, resigned)),
        "lifetime_too_long"
    );
    assert!(
        harness.mempool.lock().unwrap().is_empty(),
        "nothing refused was pooled"
    );
}

#[test]
fn the_block_time_is_the_proposers_so_maturity_counts_from_the_clock() {
    // A pledge matures an hour after genesis; the admission clock decides whether enforcing it
    // without a court order is allowed, exactly as the next block's time would.
    let mut harness = Harness::busy();
    let pledge = harness.chain.blocks[2].txs[0].id();
    let action = Action::EnforcePledge {
        pledge,
        transferee: "bank-a".into(),
        court_order: None,
    };
    let enforce = harness.chain.tx(action, &["bank-a"]);
    let early = admit(
        &harness.store,
        &harness.chain.genesis,
        &harness.mempool,
        enforce.clone(),
        TEST_GENESIS_TIME_MS + 10_000,
    );
    assert_eq!(rejection_code(early), "not_matured");
    let late = admit(
        &harness.store,
        &harness.chain.genesis,
        &harness.mempool,
        enforce,
        TEST_GENESIS_TIME_MS + 3_600_000,
    );
    assert!(late.is_ok(), "{late:?}");
}

#[test]
fn oversize_transactions_are_refused_before_any_check() {
    let mut harness = Harness::busy();
    let mut tx = register_work(&mut harness.chain, "huge", "bob");
    let Action::RegisterWork { title, .. } = &mut tx.body.action else {
        unreachable!()
    };
    *title = "x".repeat(TX_BYTES_MAX);
    assert!(matches!(
        admit_in(&harness, tx.clone()),
        Err(AdmitError::TooLarge {
            max: TX_BYTES_MAX,
            ..
        })
    ));
    assert!(matches!(
        decode_canonical(&tx.encode()),
        Err(AdmitError::TooLarge { .. })
    ));
    assert_eq!(AdmitError::TooLarge { len: 1, max: 0 }.code(), "too_large");
}

#[test]
fn a_full_mempool_refuses_and_decoding_errors_are_malformed() {
    let mut harness = Harness::busy();
    {
        let mut pool = harness.mempool.lock().unwrap();
        *pool = Mempool::default();
        for n in 0..MEMPOOL_TXS_MAX as u64 {
            let mut salt = [0u8; 16];
            salt[..8].copy_from_slice(&n.to_le_bytes());
            let tx = SignedTx::unsigned(TxBody {
                chain_id: "filler".into(),
                salt,
                valid_until: 0,
                action: Action::ReleasePledge {
                    pledge: Digest::sha256(b"filler"),
                },
            });
            pool.insert(VerifiedTx::verify(tx).unwrap()).unwrap();
        }
    }
    let tx = register_work(&mut harness.chain, "late", "bob");
    let refused = admit_in(&harness, tx);
    assert!(
        matches!(refused, Err(AdmitError::MempoolFull)),
        "{refused:?}"
    );
    assert_eq!(refused.unwrap_err().code(), "mempool_full");

    let error = decode_json(b"{\"body\": 1}").unwrap_err();
    assert!(matches!(error, AdmitError::Malformed(_)));
    assert_eq!(error.code(), "malformed_request");
    assert!(matches!(
        decode_canonical(&[1, 2, 3]),
        Err(AdmitError::Malformed(_))
    ));
}

#[test]
fn admission_at_genesis_uses_height_one() {
    // A store holding only the genesis: the next block is 1, its time after the genesis time.
    let mut chain = TestChain::new(1);
    let tx = enroll(&mut chain, "carol");
    let harness = Harness::new(chain);
    let mempool = Mutex::new(Mempool::default());
    let id = admit(&harness.store, &harness.chain.genesis, &mempool, tx, 0).expect("admitted");
    assert!(mempool.lock().unwrap().contains(&id));
    let rejection = Rejection::Expired {
        valid_until: 0,
        height: 1,
    };
    assert_eq!(AdmitError::Rejected(rejection).code(), "expired");
}
