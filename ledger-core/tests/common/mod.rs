//! Helpers shared by the rule tests: a test chain with enrolled rights holders and common
//! transactions.

#![allow(dead_code)] // Each test file uses a different subset.

use ledger_core::crypto::Digest;
use ledger_core::rejection::{Rejection, TxError};
use ledger_core::state::{AssetRecord, StateKey};
use ledger_core::testkit::{test_key, TestChain};
use ledger_core::tx::{Action, PledgeTerms, SignedTx, Valuation};
use ledger_core::types::{AssetId, Money, PartyId, RightKind, WorkKind};

/// A four-validator chain with rights holders `alice` and `bob` enrolled.
pub fn chain_with_holders() -> TestChain {
    let mut chain = TestChain::new(4);
    for name in ["alice", "bob"] {
        let tx = enroll(&mut chain, name);
        chain.apply(tx).expect("enrolment succeeds");
    }
    chain
}

/// Enrolment of rights holder `name` by the trading center.
pub fn enroll(chain: &mut TestChain, name: &str) -> SignedTx {
    let action = Action::EnrollRightsHolder {
        registrar: "trading-center".into(),
        party: name.into(),
        name: format!("{name} (holder)"),
        key: test_key(name).public_key(),
        id_document_hash: Digest::sha256(name.as_bytes()),
    };
    chain.tx(action, &["trading-center", name])
}

/// The asset id of the work with content `content`.
pub fn work(content: &str) -> AssetId {
    AssetId::Work {
        content_hash: Digest::sha256(content.as_bytes()),
    }
}

/// A patent asset id.
pub fn patent(number: &str) -> AssetId {
    AssetId::Right {
        office: "CNIPA".into(),
        kind: RightKind::Patent,
        number: number.into(),
    }
}

/// Registration of the work with content `content` by `owner`.
pub fn register_work(chain: &mut TestChain, content: &str, owner: &str) -> SignedTx {
    let action = Action::RegisterWork {
        content_hash: Digest::sha256(content.as_bytes()),
        title: format!("Work {content}"),
        kind: WorkKind::Software,
        authors: vec![owner.to_owned()],
        owner: owner.into(),
    };
    chain.tx(action, &[owner])
}

/// Recording of a patent for `owner`.
pub fn record_patent(chain: &mut TestChain, number: &str, owner: &str) -> SignedTx {
    let action = Action::RecordRight {
        registrar: "trading-center".into(),
        office: "CNIPA".into(),
        kind: RightKind::Patent,
        number: number.into(),
        title: "A method".into(),
        owner: owner.into(),
    };
    chain.tx(action, &["trading-center", owner])
}

/// Terms of a pledge of `assets` by `pledgor` to `bank`, maturing one hour after genesis.
pub fn pledge_terms(
    assets: Vec<AssetId>,
    pledgor: &str,
    bank: &str,
    first_rank: bool,
) -> PledgeTerms {
    PledgeTerms {
        assets,
        pledgor: pledgor.into(),
        pledgee: bank.into(),
        registrar: "trading-center".into(),
        secured_amount: Money {
            minor_units: 100_000_000,
            currency: "CNY".into(),
        },
        maturity_ms: ledger_core::testkit::TEST_GENESIS_TIME_MS + 3_600_000,
        first_rank,
        valuations: Vec::new(),
    }
}

/// A pledge registration signed by pledgor, bank and trading center.
pub fn register_pledge(chain: &mut TestChain, terms: PledgeTerms) -> SignedTx {
    let mut signers: Vec<String> = vec![
        terms.pledgor.0.clone(),
        terms.pledgee.0.clone(),
        "trading-center".into(),
    ];
    signers.extend(
        terms
            .valuations
            .iter()
            .map(|v: &Valuation| v.appraiser.0.clone()),
    );
    let signers: Vec<&str> = signers.iter().map(String::as_str).collect();
    chain.tx(Action::RegisterPledge(terms), &signers)
}

/// The committed record of an asset.
pub fn asset(chain: &TestChain, asset: &AssetId) -> AssetRecord {
    chain
        .get(&StateKey::Asset(asset.clone()))
        .expect("asset exists")
}

/// The rejection inside a transaction outcome.
pub fn rejection(outcome: Result<(), TxError>) -> Rejection {
    match outcome {
        Err(TxError::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Shorthand for a party id.
pub fn party(name: &str) -> PartyId {
    name.into()
}
