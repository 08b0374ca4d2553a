//! Helpers shared by the rule tests: a test chain with enrolled rights holders and common
//! transactions.

#![allow(dead_code)] // Each test file uses a different subset.

use ledger_core::rejection::{Rejection, TxError};
use ledger_core::state::{AssetRecord, StateKey};
#[allow(unused_imports)] // Re-exported for whichever test file needs them.
pub use ledger_core::testkit::txs::{enroll, patent, record_patent, register_work, work};
use ledger_core::testkit::TestChain;
use ledger_core::tx::{Action, PledgeTerms, SignedTx, Valuation};
use ledger_core::types::{AssetId, Money, PartyId};

/// A four-validator chain with rights holders `alice` and `bob` enrolled.
pub fn chain_with_holders() -> TestChain {
    let mut chain = TestChain::new(4);
    for name in ["alice", "bob"] {
        let tx = enroll(&mut chain, name);
        chain.apply(tx).expect("enrolment succeeds");
    }
    chain
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
