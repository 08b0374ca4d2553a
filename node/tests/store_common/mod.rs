//! Helpers shared by the store tests: chains with real activity from ledger-core's test chain,
//! and committing its blocks to a store the way the node does (re-executing each block on the
//! store's own snapshot).

#![allow(dead_code)] // Each test file uses a different subset.

pub mod process;

use ipledger_node::store::Store;
use ledger_core::crypto::Digest;
use ledger_core::execute::execute_block;
use ledger_core::rules::VerifiedTx;
#[allow(unused_imports)] // Re-exported for whichever test file needs them.
pub use ledger_core::testkit::txs::{enroll, register_work, work};
use ledger_core::testkit::TestChain;
use ledger_core::tx::{Action, SignedTx};
use ledger_core::types::{AssetId, EvidenceKind};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A fresh store in a temporary directory, initialised with `chain`'s genesis.
pub fn new_store(chain: &TestChain) -> (TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("store.redb");
    let store = Store::open(&path).expect("a new store opens");
    store
        .init_genesis(&chain.genesis)
        .expect("genesis is written");
    (dir, path, store)
}

/// Executes block `height` of `chain` on the store's snapshot, as a validator does, and commits
/// it with the chain's certificate.
pub fn commit_height(store: &Store, chain: &TestChain, height: u64) {
    let block = &chain.blocks[(height - 1) as usize];
    let certificate = &chain.certificates[(height - 1) as usize];
    let snapshot = store.snapshot().expect("snapshot");
    assert_eq!(snapshot.head_height().unwrap(), height - 1);
    let parent = match height {
        1 => chain.genesis.hash(),
        _ => snapshot.header(height - 1).unwrap().unwrap().hash(),
    };
    let verified: Vec<VerifiedTx> = VerifiedTx::verify_many(block.txs.clone())
        .into_iter()
        .map(|result| result.expect("block transactions verify"))
        .collect();
    let executed = execute_block(&snapshot.state(height - 1), block, &verified, parent)
        .expect("the store's state re-executes the chain's block");
    drop(snapshot);
    store
        .commit_block(&executed, certificate)
        .expect("block commits");
}

/// Commits every block of `chain` the store does not have yet.
pub fn commit_all(store: &Store, chain: &TestChain) {
    let head = store.head_height().unwrap();
    for height in head + 1..=chain.height() {
        commit_height(store, chain, height);
    }
}

/// A transfer of `asset` by its owner `from` to `to`.
pub fn transfer(chain: &mut TestChain, asset: AssetId, from: &str, to: &str) -> SignedTx {
    chain.tx(
        Action::TransferAsset {
            asset,
            to: to.into(),
        },
        &[from],
    )
}

/// An evidence attestation by the court.
pub fn attest(chain: &mut TestChain, content: &[u8]) -> SignedTx {
    let action = Action::AttestEvidence {
        attestor: "court".into(),
        evidence_hash: Digest::sha256(content),
        kind: EvidenceKind::Document,
        case_ref: Some("(2026)川01民初1号".into()),
        related_asset: None,
    };
    chain.tx(action, &["court"])
}

/// A four-validator chain with holders, works, a transfer, attestations in multi-transaction
/// blocks, and a validator-set change (bank-c joins) that has taken effect, followed by more
/// transactions. Returns the chain and the height whose header announced the change.
pub fn busy_chain() -> (TestChain, u64) {
    let mut chain = TestChain::new(4);
    let txs = vec![enroll(&mut chain, "alice"), enroll(&mut chain, "bob")];
    assert!(chain.commit(txs).iter().all(Result::is_ok));
    let txs = vec![
        register_work(&mut chain, "song", "alice"),
        register_work(&mut chain, "novel", "alice"),
        register_work(&mut chain, "film", "bob"),
        attest(&mut chain, b"first"),
    ];
    assert!(chain.commit(txs).iter().all(Result::is_ok));
    let tx = transfer(&mut chain, work("song"), "alice", "bob");
    chain.apply(tx).expect("transfer");
    let (_, effective_height) = ledger_core::testkit::add_bank_c_validator(&mut chain);
    while chain.height() < effective_height + 1 {
        chain.commit(Vec::new());
    }
    for round in 0..3u8 {
        let txs = vec![
            attest(&mut chain, &[round, 1]),
            attest(&mut chain, &[round, 2]),
        ];
        assert!(chain.commit(txs).iter().all(Result::is_ok));
    }
    (chain, effective_height - 1)
}

/// A copy of a store file, for corrupting without touching the original.
pub fn copy_store(from: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).expect("copy store file");
    to
}
