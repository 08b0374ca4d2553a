//! The store commits real blocks, serves what the in-memory test chain serves (headers, state,
//! proofs, receipts), survives reopening, and refuses what does not follow its head.

mod store_common;
use ipledger_node::pruner::StatePruner;
use ipledger_node::store::{
    prunable_through, table_names, Store, StoreError, TxLocation, MERGE_BATCH_HEIGHTS,
    MERGE_STEP_ROWS_MAX, PRUNE_STEP_NODES_MAX, STAGED_HEIGHTS_MAX, STATE_PRUNE_BATCH_VERSIONS,
    STATE_VERSIONS_KEPT, STORE_FORMAT_VERSION,
};
use ipledger_node::supervision::Supervisor;
use jmt::storage::{NibblePath, NodeKey, TreeReader};
use ledger_core::block::CommitCertificate;
use ledger_core::crypto::Digest;
use ledger_core::execute::execute_block;
use ledger_core::merkle::{inclusion_proof, MerkleNodeReader};
use ledger_core::receipt::verify_receipt;
use ledger_core::rules::VerifiedTx;
use ledger_core::state::{AssetRecord, Overlay, StateKey, TxIndexRead};
use ledger_core::state_tree::StateTree;
use ledger_core::testkit::{test_genesis, test_key, TestChain};
use ledger_core::tx::{Action, GovernanceAction};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::time::Instant;
use store_common::*;

#[test]
fn committed_blocks_match_the_test_chain_and_receipts_verify_across_a_validator_change() {
    let (chain, change_height) = busy_chain();
    let (_dir, _path, store) = new_store(&chain);
    let started = Instant::now();
    // Each version's tree is read while it is the head, as the node reads it.
    for height in 1..=chain.height() {
        commit_height(&store, &chain, height);
        let root = store.snapshot().unwrap().state(height).root().unwrap();
        assert_eq!(
            root,
            chain.blocks[height as usize - 1].header.state_root,
            "state root at {height}"
        );
    }
    eprintln!(
        "committed {} blocks in {:?} ({:?} per block)",
        chain.height(),
        started.elapsed(),
        started.elapsed() / chain.height() as u32
    );
    assert_eq!(store.head_height().unwrap(), chain.height());
    let snapshot = store.snapshot().unwrap();
    for (index, block) in chain.blocks.iter().enumerate() {
        let height = index as u64 + 1;
        assert_eq!(store.block(height).unwrap().as_ref(), Some(block));
        assert_eq!(
            snapshot.header(height).unwrap().as_ref(),
            Some(&block.header)
        );
        assert_eq!(
            store.certificate(height).unwrap().as_ref(),
            Some(&chain.certificates[index])
        );
    }
    assert_eq!(
        chain.validator_changes().len(),
        1,
        "the chain changed validators once"
    );
    let mut ledger_index = 0u64;
    for block in &chain.blocks {
        for (index_in_block, tx) in block.txs.iter().enumerate() {
            let id = tx.id();
            assert_eq!(
                store.tx_location(&id).unwrap(),
                Some(TxLocation {
                    height: block.header.height,
                    index_in_block: index_in_block as u32,
                    ledger_index,
                })
            );
            let receipt = store.receipt(&id).unwrap().expect("receipt");
            assert_eq!(
                receipt,
                chain.receipt(ledger_index),
                "the store's receipt is the test chain's"
            );
            assert_eq!(receipt.validator_changes.len(), 1);
            assert_eq!(
                receipt.validator_changes[0].certified.header.height,
                change_height
            );
            let verified = verify_receipt(&receipt, &chain.genesis).expect("receipt verifies");
            assert_eq!(verified.tx_id, id);
            assert_eq!(verified.height, block.header.height);
            assert_eq!(verified.certified_height, chain.height());
            ledger_index += 1;
        }
    }
    assert_eq!(ledger_index, chain.leaf_count);
}

#[test]
fn receipts_before_any_validator_change_carry_none() {
    let mut chain = TestChain::new(1);
    let tx = attest(&mut chain, b"solo");
    let id = tx.id();
    chain.apply(tx).unwrap();
    chain.commit(Vec::new());
    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let receipt = store.receipt(&id).unwrap().unwrap();
    assert!(receipt.validator_changes.is_empty());
    assert_eq!(receipt.certified.header.height, 2);
    verify_receipt(&receipt, &chain.genesis).expect("receipt verifies");
}

#[test]
fn state_reads_and_proofs_equal_the_test_chain_at_every_version() {
    let (chain, _) = busy_chain();
    let (_dir, _path, store) = new_store(&chain);
    let keys = [
        StateKey::Chain,
        StateKey::LedgerHead,
        StateKey::ValidatorSchedule,
        StateKey::Party("alice".into()),
        StateKey::Party("bank-c".into()),
        StateKey::Asset(work("song")),
        StateKey::Asset(work("never")),
    ];
    // Each version is read while it is the head, as the node reads it.
    for version in 0..=chain.height() {
        if version > 0 {
            commit_height(&store, &chain, version);
        }
        let snapshot = store.snapshot().unwrap();
        let ours = snapshot.state(version);
        let theirs = StateTree::new(&chain.state_store, Some(version));
        assert_eq!(ours.root().unwrap(), theirs.root().unwrap());
        for key in &keys {
            let key = key.encode();
            assert_eq!(ours.get(&key).unwrap(), theirs.get(&key).unwrap());
            assert_eq!(ours.prove(&key).unwrap(), theirs.prove(&key).unwrap());
        }
    }
    let snapshot = store.snapshot().unwrap();
    let size = chain.leaf_count;
    for level in 0..4u8 {
        for index in 0..(size >> level) {
            assert_eq!(
                MerkleNodeReader::node(&snapshot, level, index).unwrap(),
                chain.merkle_store.node(level, index).unwrap()
            );
        }
    }
    for leaf in 0..size {
        assert_eq!(
            inclusion_proof(&snapshot, leaf, size).unwrap(),
            inclusion_proof(&chain.merkle_store, leaf, size).unwrap()
        );
    }
}

#[test]
fn deletions_are_stored_as_markers_and_read_as_absent() {
    // A key rotation deletes the old key's entry in the key index.
    let mut chain = TestChain::new(1);
    let old_key = StateKey::PartyByKey(test_key("appraiser").public_key()).encode();
    let rotate = Action::Governance(GovernanceAction::RotateKey {
        party: "appraiser".into(),
        new_key: test_key("appraiser-2").public_key(),
    });
    chain.commit(Vec::new());
    let tx = chain.tx(rotate, &["trading-center"]);
    chain.apply(tx).expect("the key is rotated");
    chain.commit(Vec::new());
    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let snapshot = store.snapshot().unwrap();
    assert!(snapshot.state(1).get(&old_key).unwrap().is_some());
    for version in [2, 3] {
        assert_eq!(snapshot.state(version).get(&old_key).unwrap(), None);
        let theirs = StateTree::new(&chain.state_store, Some(version));
        assert_eq!(
            snapshot.state(version).prove(&old_key).unwrap(),
            theirs.prove(&old_key).unwrap()
        );
    }
    store.verify_chain().expect("the chain verifies");
}

#[test]
fn reopening_after_drop_keeps_everything_and_checks_the_head() {
    let (chain, _) = busy_chain();
    let (_dir, path, store) = new_store(&chain);
    let half = chain.height() / 2;
    for height in 1..=half {
        commit_height(&store, &chain, height);
    }
    drop(store);
    let started = Instant::now();
    let store = Store::open(&path).expect("reopens");
    eprintln!("reopened at height {half} in {:?}", started.elapsed());
    assert_eq!(store.head_height().unwrap(), half);
    assert_eq!(store.genesis().unwrap(), chain.genesis);
    store
        .init_genesis(&chain.genesis)
        .expect("same genesis again");
    commit_all(&store, &chain);
    store.close().expect("closes cleanly");
    let store = Store::open(&path).expect("reopens");
    assert_eq!(store.head_height().unwrap(), chain.height());
    for (index, block) in chain.blocks.iter().enumerate() {
        assert_eq!(store.block(index as u64 + 1).unwrap().as_ref(), Some(block));
    }
    let last = chain.blocks.last().unwrap().txs.last().unwrap().id();
    let receipt = store.receipt(&last).unwrap().unwrap();
    verify_receipt(&receipt, &chain.genesis).expect("receipt verifies after reopening");
    let started = Instant::now();
    let report = store.verify_chain().expect("the chain verifies");
    eprintln!("verify_chain: {report:?} in {:?}", started.elapsed());
    assert_eq!(report.heights_checked, chain.height());
    assert_eq!(report.transactions, chain.leaf_count);
    assert_eq!(report.ledger_size, chain.leaf_count);
    assert_eq!(report.head_hash, chain.blocks.last().unwrap().header.hash());
    assert_eq!(
        report.state_root,
        chain.blocks.last().unwrap().header.state_root
    );
}

#[test]
fn a_store_with_only_genesis_reopens_and_verifies() {
    let chain = TestChain::new(4);
    let (_dir, path, store) = new_store(&chain);
    assert_eq!(store.head_height().unwrap(), 0);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.head_height().unwrap(), 0);
    let report = store.verify_chain().unwrap();
    assert_eq!((report.heights_checked, report.transactions), (0, 0));
    assert_eq!(report.head_hash, chain.genesis.hash());
}

#[test]
fn init_genesis_is_idempotent_and_refuses_another_genesis() {
    let chain = TestChain::new(4);
    let (_dir, path, store) = new_store(&chain);
    store.init_genesis(&chain.genesis).expect("idempotent");
    let other = test_genesis(3);
    match store.init_genesis(&other) {
        Err(StoreError::GenesisMismatch { stored, given }) => {
            assert_eq!((stored, given), (chain.genesis.hash(), other.hash()));
        }
        other => panic!("expected GenesisMismatch, got {other:?}"),
    }
    drop(store);
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.init_genesis(&other),
        Err(StoreError::GenesisMismatch { .. })
    ));
    assert_eq!(store.genesis().unwrap(), chain.genesis);

    let dir = tempfile::tempdir().unwrap();
    let fresh = Store::open(&dir.path().join("fresh.redb")).unwrap();
    assert!(matches!(fresh.head_height(), Err(StoreError::NoGenesis)));
    let mut invalid = test_genesis(1);
    invalid.chain_id = String::new();
    assert!(matches!(
        fresh.init_genesis(&invalid),
        Err(StoreError::InvalidGenesis(_))
    ));
    assert!(matches!(fresh.genesis(), Err(StoreError::NoGenesis)));
}

#[test]
fn lookups_answer_none_for_what_was_never_committed() {
    let (chain, _) = busy_chain();
    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let head = chain.height();
    assert!(store.block(head + 1).unwrap().is_none());
    assert!(store.block(0).unwrap().is_none());
    assert!(store.certificate(head + 1).unwrap().is_none());
    let unknown = Digest::sha256(b"never committed");
    assert_eq!(store.tx_location(&unknown).unwrap(), None);
    assert_eq!(store.receipt(&unknown).unwrap(), None);
}

#[test]
fn assets_by_owner_follow_registrations_and_transfers() {
    let (chain, _) = busy_chain();
    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let alice = store.assets_of(&"alice".into(), None, 100).unwrap();
    let bob = store.assets_of(&"bob".into(), None, 100).unwrap();
    assert_eq!(alice, vec![work("novel")]);
    let mut expected_bob = vec![work("film"), work("song")];
    expected_bob.sort_by_key(ledger_core::encoding::encode);
    assert_eq!(bob, expected_bob);
    let first = store.assets_of(&"bob".into(), None, 1).unwrap();
    let rest = store.assets_of(&"bob".into(), first.first(), 100).unwrap();
    assert_eq!([first, rest].concat(), expected_bob);
    assert!(store
        .assets_of(&"court".into(), None, 100)
        .unwrap()
        .is_empty());
    // The index agrees with the authenticated records.
    let snapshot = store.snapshot().unwrap();
    let state = snapshot.state(chain.height());
    for asset in bob {
        let record: AssetRecord = Overlay::new(&state)
            .get(&StateKey::Asset(asset))
            .unwrap()
            .unwrap();
        assert_eq!(record.owner, "bob".into());
    }
}

/// Executes block `height` of `chain` on the store's state, without committing it.
fn execute(store: &Store, chain: &TestChain, height: u64) -> ledger_core::execute::ExecutedBlock {
    let block = &chain.blocks[(height - 1) as usize];
    let snapshot = store.snapshot().unwrap();
    let parent = match height {
        1 => chain.genesis.hash(),
        _ => snapshot.header(height - 1).unwrap().unwrap().hash(),
    };
    let verified: Vec<VerifiedTx> = VerifiedTx::verify_many(block.txs.clone())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    execute_block(&snapshot.state(height - 1), block, &verified, parent).unwrap()
}

#[test]
fn commit_refuses_what_does_not_follow_the_head_and_writes_nothing() {
    let (chain, _) = busy_chain();
    let dir = tempfile::tempdir().unwrap();
    let uninitialised = Store::open(&dir.path().join("empty.redb")).unwrap();
    let (_dir, _path, store) = new_store(&chain);
    let first = execute(&store, &chain, 1);
    assert!(matches!(
        uninitialised.commit_block(&first, &chain.certificates[0]),
        Err(StoreError::NoGenesis)
    ));

    // A certificate for another block, and one without a quorum.
    let wrong = &chain.certificates[1];
    assert!(matches!(
        store.commit_block(&first, wrong),
        Err(StoreError::BadCertificate { height: 1, .. })
    ));
    let mut short: CommitCertificate = chain.certificates[0].clone();
    short.signatures.truncate(2);
    assert!(matches!(
        store.commit_block(&first, &short),
        Err(StoreError::BadCertificate { height: 1, .. })
    ));
    // An executed block whose parts disagree.
    let mut tampered = execute(&store, &chain, 1);
    tampered.leaves.pop();
    assert!(matches!(
        store.commit_block(&tampered, &chain.certificates[0]),
        Err(StoreError::Inconsistent { height: 1, .. })
    ));
    assert_eq!(store.head_height().unwrap(), 0);
    assert!(store.block(1).unwrap().is_none());

    store.commit_block(&first, &chain.certificates[0]).unwrap();
    // The same block again, and a block from further ahead.
    assert!(matches!(
        store.commit_block(&first, &chain.certificates[0]),
        Err(StoreError::NotNext { head: 1, got: 1 })
    ));
    commit_height(&store, &chain, 2);
    let mut third = execute(&store, &chain, 3);
    commit_height(&store, &chain, 3);
    third.block.header.height = 5;
    assert!(matches!(
        store.commit_block(&third, &chain.certificates[2]),
        Err(StoreError::NotNext { head: 3, got: 5 })
    ));
    // A block whose parent is not the head: block 4 of another chain.
    let mut fork = execute(&store, &chain, 4);
    fork.block.header.prev_block_hash = Digest::sha256(b"elsewhere");
    assert!(matches!(
        store.commit_block(&fork, &chain.certificates[3]),
        Err(StoreError::WrongParent { height: 4, .. })
    ));
    assert_eq!(store.head_height().unwrap(), 3);
    commit_all(&store, &chain);
    store.verify_chain().expect("refusals left no trace");
}

#[test]
fn snapshots_are_consistent_while_blocks_commit() {
    let (chain, _) = busy_chain();
    let (_dir, _path, store) = new_store(&chain);
    commit_height(&store, &chain, 1);
    let old = store.snapshot().unwrap();
    commit_all(&store, &chain);
    assert_eq!(old.head_height().unwrap(), 1);
    assert!(old.block(2).unwrap().is_none());
    assert_eq!(
        old.state(1).root().unwrap(),
        chain.blocks[0].header.state_root
    );
    assert_eq!(store.head_height().unwrap(), chain.height());
}

#[test]
fn assets_by_owner_follow_pledge_enforcement_and_court_orders() {
    use ledger_core::tx::{Action, CourtOrder, PledgeTerms};
    use ledger_core::types::Money;
    let mut chain = TestChain::new(4);
    let txs = vec![enroll(&mut chain, "alice"), enroll(&mut chain, "bob")];
    assert!(chain.commit(txs).iter().all(Result::is_ok));
    let txs = vec![
        register_work(&mut chain, "w1", "alice"),
        register_work(&mut chain, "w2", "alice"),
    ];
    assert!(chain.commit(txs).iter().all(Result::is_ok));
    // Registered and enforced on a court order in one block: the pledge's assets are found
    // through the pledge record the same block wrote.
    let terms = PledgeTerms {
        assets: vec![work("w1"), work("w2")],
        pledgor: "alice".into(),
        pledgee: "bank-a".into(),
        registrar: "trading-center".into(),
        secured_amount: Money {
            minor_units: 1_000_000,
            currency: "CNY".into(),
        },
        maturity_ms: ledger_core::testkit::TEST_GENESIS_TIME_MS + 3_600_000,
        first_rank: true,
        valuations: Vec::new(),
    };
    let register = chain.tx(
        Action::RegisterPledge(terms),
        &["alice", "bank-a", "trading-center"],
    );
    let enforce = chain.tx(
        Action::EnforcePledge {
            pledge: register.id(),
            transferee: "bank-b".into(),
            court_order: Some(CourtOrder {
                court: "court".into(),
                case_ref: "(2026)川01民初2号".into(),
            }),
        },
        &["bank-a", "court"],
    );
    let outcomes = chain.commit(vec![register, enforce]);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let order = chain.tx(
        Action::CourtOrderTransfer {
            asset: work("w1"),
            court: "court".into(),
            to: "bob".into(),
            case_ref: "(2026)川01民初3号".into(),
        },
        &["court"],
    );
    chain.apply(order).expect("court-ordered transfer");

    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let of = |owner: &str| store.assets_of(&owner.into(), None, 100).unwrap();
    assert!(of("alice").is_empty());
    assert!(of("bank-a").is_empty());
    assert_eq!(of("bank-b"), vec![work("w2")]);
    assert_eq!(of("bob"), vec![work("w1")]);
    store
        .verify_chain()
        .expect("the index agrees with re-execution");
}

/// The node shares one store between its consensus, API and sync tasks, and moves snapshots
/// into blocking tasks.
#[test]
fn store_and_snapshots_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    send_sync::<ipledger_node::store::Snapshot>();
    send_sync::<StoreError>();
}

/// `busy_chain` followed by enough one-attestation blocks that two batches of its oldest state
/// versions can be pruned (every block replaces the tree's root, so every version leaves stale
/// nodes), ending a few blocks past a batch, so that versions older than the last
/// `STATE_VERSIONS_KEPT` but not yet in a batch are still whole.
fn long_chain() -> TestChain {
    let (mut chain, _) = busy_chain();
    while chain.height() < STATE_VERSIONS_KEPT + 2 * STATE_PRUNE_BATCH_VERSIONS + 3 {
        let content = chain.height().to_be_bytes();
        let tx = attest(&mut chain, &content);
        assert!(chain.commit(vec![tx]).iter().all(Result::is_ok));
    }
    chain
}

/// `long_chain` committed to a closed store file, pruned as far as its head allows.
fn pruned_long_store() -> (TestChain, tempfile::TempDir, std::path::PathBuf) {
    let chain = long_chain();
    let (dir, path, store) = new_store(&chain);
    commit_all(&store, &chain);
    while store.prune_step(0, PRUNE_STEP_NODES_MAX).unwrap().is_some() {}
    drop(store);
    (chain, dir, path)
}

#[test]
fn replaced_state_nodes_are_pruned_and_what_the_node_reads_stays_whole() {
    let chain = long_chain();
    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let head = chain.height();
    // Commits prune nothing themselves: every version is whole, and verify-store agrees.
    assert_eq!(store.pruned_through().unwrap(), 0);
    for version in 1..=head {
        assert_eq!(
            store.snapshot().unwrap().state(version).root().unwrap(),
            StateTree::new(&chain.state_store, Some(version))
                .root()
                .unwrap(),
            "version {version} before pruning"
        );
    }
    assert_eq!(store.verify_chain().unwrap().heights_checked, head);
    // Pruning catches up one batch per call, and stops where the head allows.
    let mut pruned = 0;
    while let Some(step) = store.prune_step(0, PRUNE_STEP_NODES_MAX).unwrap() {
        assert!(step.batch_done, "the test chain's batches fit one step");
        assert_eq!(step.batch_through, pruned + STATE_PRUNE_BATCH_VERSIONS);
        assert_eq!(store.pruned_through().unwrap(), step.batch_through);
        assert!(step.nodes > 0, "a batch of a growing tree deletes nodes");
        pruned = step.batch_through;
    }
    let oldest_kept = prunable_through(head);
    assert_eq!(pruned, oldest_kept);
    assert!(
        oldest_kept > 0 && oldest_kept + STATE_VERSIONS_KEPT < head,
        "the chain ends past a batch, with versions older than the last {STATE_VERSIONS_KEPT} kept"
    );
    let snapshot = store.snapshot().unwrap();
    let ledger_head = StateKey::LedgerHead.encode();
    // The kept versions read and prove as the test chain's, which prunes nothing.
    for version in oldest_kept..=head {
        let ours = snapshot.state(version);
        let theirs = StateTree::new(&chain.state_store, Some(version));
        assert_eq!(
            ours.root().unwrap(),
            theirs.root().unwrap(),
            "version {version}"
        );
        assert_eq!(
            ours.prove(&ledger_head).unwrap(),
            theirs.prove(&ledger_head).unwrap()
        );
    }
    for version in 1..oldest_kept {
        // The older trees are gone (every block replaced the root)...
        assert!(
            snapshot.state(version).root().is_err(),
            "version {version} was pruned"
        );
        // ...but values are kept: old records still read, as receipts need them.
        assert_eq!(
            snapshot.state(version).get(&ledger_head).unwrap(),
            StateTree::new(&chain.state_store, Some(version))
                .get(&ledger_head)
                .unwrap()
        );
    }
    // Every receipt, the first block's included, still carries the validator change and
    // verifies.
    let mut ledger_index = 0u64;
    for block in &chain.blocks {
        for tx in &block.txs {
            let receipt = store.receipt(&tx.id()).unwrap().expect("receipt");
            assert_eq!(receipt, chain.receipt(ledger_index));
            assert_eq!(receipt.validator_changes.len(), 1);
            verify_receipt(&receipt, &chain.genesis).expect("receipt verifies");
            ledger_index += 1;
        }
    }
    // verify-store re-executes the chain and finds exactly the pruned nodes missing.
    let report = store.verify_chain().unwrap();
    assert_eq!(report.heights_checked, head);
    drop(snapshot);
    drop(store);
    let store = Store::open(&_path).expect("a pruned store reopens");
    assert_eq!(store.head_height().unwrap(), head);
    assert_eq!(store.pruned_through().unwrap(), oldest_kept);
    assert_eq!(store.prune_step(0, PRUNE_STEP_NODES_MAX).unwrap(), None);
}

const META: TableDefinition<&str, &[u8]> = TableDefinition::new(table_names::META);

const STATE_VALUES: TableDefinition<([u8; 32], u64), Option<&[u8]>> =
    TableDefinition::new(table_names::STATE_VALUES);
const TX_INDEX: TableDefinition<&[u8], (u64, u32, u64)> =
    TableDefinition::new(table_names::TX_INDEX);
const STAGED_VALUES: TableDefinition<(u64, [u8; 32]), Option<&[u8]>> =
    TableDefinition::new(table_names::STAGED_VALUES);
const STAGED_TX_INDEX: TableDefinition<(u64, u32), (&[u8], u64)> =
    TableDefinition::new(table_names::STAGED_TX_INDEX);

/// Rewrites a store file as a format before 6 wrote it: every staged row in the hash-keyed
/// tables, no staging tables, no merge marker; then `format` as its version, and for format 4
/// no pruning marker either.
fn rewrite_as_format(path: &std::path::Path, format: u32) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let staged = txn.open_table(STAGED_VALUES).unwrap();
        let mut values = txn.open_table(STATE_VALUES).unwrap();
        for entry in staged.iter().unwrap() {
            let (key, value) = entry.unwrap();
            let (version, key_hash) = key.value();
            values.insert((key_hash, version), value.value()).unwrap();
        }
        let staged = txn.open_table(STAGED_TX_INDEX).unwrap();
        let mut tx_index = txn.open_table(TX_INDEX).unwrap();
        for entry in staged.iter().unwrap() {
            let (key, value) = entry.unwrap();
            let (height, index_in_block) = key.value();
            let (id, ledger_index) = value.value();
            tx_index
                .insert(id, (height, index_in_block, ledger_index))
                .unwrap();
        }
    }
    assert!(txn.delete_table(STAGED_VALUES).unwrap());
    assert!(txn.delete_table(STAGED_TX_INDEX).unwrap());
    {
        let mut meta = txn.open_table(META).unwrap();
        assert!(meta.remove("merged_through").unwrap().is_some());
        if format == 4 {
            assert!(meta.remove("pruned_through").unwrap().is_some());
        }
        meta.insert("format_version", format.to_be_bytes().as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
}

/// Files of the previous formats: format 4 pruned inside every commit, so it holds no marker
/// and is pruned exactly through what its head allows; neither 4 nor 5 staged rows, so both are
/// merged through their head. Opening one records that, and the format, and it reads and
/// verifies as before.
#[test]
fn a_store_of_a_previous_format_is_upgraded_on_open() {
    for format in [4, 5] {
        let (chain, _dir, path) = pruned_long_store();
        rewrite_as_format(&path, format);
        let store = Store::open(&path).expect("a store of a previous format opens");
        assert_eq!(
            store.pruned_through().unwrap(),
            prunable_through(chain.height()),
            "format {format}"
        );
        assert_eq!(store.merged_through().unwrap(), chain.height());
        assert_eq!(store.prune_step(0, PRUNE_STEP_NODES_MAX).unwrap(), None);
        assert_eq!(store.merge_step(0, MERGE_STEP_ROWS_MAX).unwrap(), None);
        assert_reads_as_chain(&store, &chain);
        assert_eq!(
            store.verify_chain().unwrap().heights_checked,
            chain.height()
        );
        drop(store);
        check_format_is_current(&path);
    }
}

/// The store file records this build's format version.
fn check_format_is_current(path: &std::path::Path) {
    let db = Database::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let format = txn
        .open_table(META)
        .unwrap()
        .get("format_version")
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    assert_eq!(format, STORE_FORMAT_VERSION.to_be_bytes());
}

/// Every state value the chain wrote reads back at every version, and every transaction is
/// located, refused as a replay and proved as the chain's receipt, whether its rows are staged,
/// merged, or both.
fn assert_reads_as_chain(store: &Store, chain: &TestChain) {
    let snapshot = store.snapshot().unwrap();
    let ledger_head = StateKey::LedgerHead.encode();
    for version in 1..=chain.height() {
        assert_eq!(
            snapshot.state(version).get(&ledger_head).unwrap(),
            StateTree::new(&chain.state_store, Some(version))
                .get(&ledger_head)
                .unwrap(),
            "version {version}"
        );
    }
    let mut ledger_index = 0u64;
    for (height, block) in (1u64..).zip(&chain.blocks) {
        for tx in &block.txs {
            let id = tx.id();
            assert_eq!(snapshot.tx_height(&id).unwrap(), Some(height));
            let receipt = store.receipt(&id).unwrap().expect("receipt");
            assert_eq!(receipt, chain.receipt(ledger_index));
            ledger_index += 1;
        }
    }
}

/// Rows a commit stages are merged in batches, in steps by key range; at every step (a crash
/// there leaves a batch merged in part, its rows both staged and merged) every read is the
/// chain's, verify-store passes, and a snapshot taken before the merge still reads what it read.
#[test]
fn staged_rows_merge_in_steps_and_every_read_stays_the_chains() {
    let chain = long_chain();
    let head = chain.height();
    let (_dir, path, mut store) = new_store(&chain);
    commit_all(&store, &chain);
    assert_eq!(store.merged_through().unwrap(), 0, "commits only stage");
    assert_reads_as_chain(&store, &chain);
    // A snapshot taken before a batch is merged reads the same once it is.
    let before = store.snapshot().unwrap();
    while !store
        .merge_step(0, 12)
        .unwrap()
        .expect("a batch is due")
        .batch_done
    {}
    assert_eq!(store.merged_through().unwrap(), MERGE_BATCH_HEIGHTS);
    for block in &chain.blocks {
        for tx in &block.txs {
            assert!(before.tx_location(&tx.id()).unwrap().is_some());
        }
    }
    assert_eq!(
        before.state(head).root().unwrap(),
        StateTree::new(&chain.state_store, Some(head))
            .root()
            .unwrap()
    );
    drop(before);
    let mut steps = 0;
    let mut steps_in_part = 0;
    while let Some(step) = store.merge_step(0, 12).unwrap() {
        steps += 1;
        let merged = store.merged_through().unwrap();
        if step.batch_done {
            assert_eq!(merged, step.batch_through);
        } else {
            assert_eq!(merged, step.batch_through - MERGE_BATCH_HEIGHTS);
            steps_in_part += 1;
        }
        assert_reads_as_chain(&store, &chain);
        if steps % 4 == 2 {
            drop(store);
            store = Store::open(&path).expect("a store merged in part reopens");
            assert_eq!(store.verify_chain().unwrap().heights_checked, head);
        }
    }
    assert!(
        steps_in_part > 2,
        "the batches took more than one step each"
    );
    assert_eq!(
        store.merged_through().unwrap(),
        head - head % MERGE_BATCH_HEIGHTS
    );
    assert_reads_as_chain(&store, &chain);
    assert_eq!(store.verify_chain().unwrap().heights_checked, head);
}

/// Snapshots taken while another thread commits and merges see exactly the transactions and
/// values of their own head, however the commits and merges fall between reading the staged
/// heights and beginning the read transaction.
#[test]
fn snapshots_taken_during_commits_and_merges_see_exactly_their_head() {
    let chain = long_chain();
    let (_dir, _path, store) = new_store(&chain);
    let ledger_head = StateKey::LedgerHead.encode();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for height in 1..=chain.height() {
                commit_height(&store, &chain, height);
                while store.merge_step(0, 12).unwrap().is_some() {}
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut checked = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || checked == 0 {
            let snapshot = store.snapshot().unwrap();
            let head = snapshot.head_height().unwrap();
            for (height, block) in (1u64..).zip(&chain.blocks) {
                for tx in &block.txs {
                    let found = snapshot.tx_height(&tx.id()).unwrap();
                    assert_eq!(found, (height <= head).then_some(height), "head {head}");
                }
            }
            if head > 0 {
                assert_eq!(
                    snapshot.state(head).get(&ledger_head).unwrap(),
                    StateTree::new(&chain.state_store, Some(head))
                        .get(&ledger_head)
                        .unwrap(),
                    "head {head}"
                );
            }
            checked += 1;
        }
    });
    assert!(store.merged_through().unwrap() > 0);
}

/// Merging behind the commits should keep up, but if it does not, a commit that finds
/// `STAGED_HEIGHTS_MAX` heights staged merges the oldest batch itself.
#[test]
fn commits_merge_themselves_when_too_many_heights_are_staged() {
    let mut chain = TestChain::new(4);
    while chain.height() < STAGED_HEIGHTS_MAX + 2 {
        let content = chain.height().to_be_bytes();
        let tx = attest(&mut chain, &content);
        assert!(chain.commit(vec![tx]).iter().all(Result::is_ok));
    }
    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let merged = store.merged_through().unwrap();
    assert!(merged > 0, "no batch was merged");
    assert!(chain.height() - merged < STAGED_HEIGHTS_MAX);
    assert_reads_as_chain(&store, &chain);
    assert_eq!(
        store.verify_chain().unwrap().heights_checked,
        chain.height()
    );
}

const STATE_NODES: TableDefinition<(u64, &[u8]), &[u8]> =
    TableDefinition::new(table_names::STATE_NODES);

/// The `state_nodes` table open for writing.
type StateNodes<'txn> = redb::Table<'txn, (u64, &'static [u8]), &'static [u8]>;

/// The redb key of the root node of `version` (the empty nibble path, in borsh).
fn root_key(version: u64) -> (u64, Vec<u8>) {
    let key = NodeKey::new(version, std::iter::empty().collect::<NibblePath>());
    (version, borsh::to_vec(key.nibble_path()).unwrap())
}

#[test]
fn verify_store_refuses_a_pruned_node_left_behind_and_a_kept_node_missing() {
    let (chain, _dir, path) = pruned_long_store();
    let oldest_kept = prunable_through(chain.height());
    let edit = |edit: &dyn Fn(&mut StateNodes)| {
        let copy = path.with_extension("edited");
        std::fs::copy(&path, &copy).unwrap();
        let db = Database::create(&copy).unwrap();
        let txn = db.begin_write().unwrap();
        edit(&mut txn.open_table(STATE_NODES).unwrap());
        txn.commit().unwrap();
        drop(db);
        let store = Store::open(&copy).expect("the head is intact, so the store opens");
        let error = store.verify_chain().unwrap_err();
        std::fs::remove_file(&copy).unwrap();
        error.to_string()
    };

    // Version 1's root, which block 2 replaced, put back after it was pruned.
    let (version, pruned_path) = root_key(1);
    let node = chain
        .state_store
        .get_node(&NodeKey::new(
            version,
            std::iter::empty().collect::<NibblePath>(),
        ))
        .unwrap();
    let bytes = borsh::to_vec(&node).unwrap();
    let error = edit(&|nodes| {
        nodes
            .insert((version, pruned_path.as_slice()), bytes.as_slice())
            .unwrap();
    });
    assert!(error.contains("still stored"), "{error}");

    // The oldest kept version's root deleted, though a reader may still ask for it.
    let (version, kept_path) = root_key(oldest_kept);
    let error = edit(&|nodes| {
        assert!(nodes
            .remove((version, kept_path.as_slice()))
            .unwrap()
            .is_some());
    });
    assert!(
        error.contains("missing, though still part of the tree"),
        "{error}"
    );
}

/// Pruning in steps of a few nodes: each step deletes at most its limit, `pruned_through` moves
/// only when a batch is empty, the store reopens and `verify-store` accepts it between any two
/// steps (a crash there leaves a batch pruned in part), and the end is the store that pruning
/// whole batches leaves.
#[test]
fn pruning_in_steps_is_whole_at_every_step_and_ends_where_whole_batches_do() {
    let chain = long_chain();
    let head = chain.height();
    let (_dir, path, mut store) = new_store(&chain);
    commit_all(&store, &chain);
    let mut steps = 0;
    let mut steps_in_part = 0;
    while let Some(step) = store.prune_step(0, 5).unwrap() {
        assert!(step.nodes <= 5, "a step of 5 deleted {}", step.nodes);
        let pruned = store.pruned_through().unwrap();
        if step.batch_done {
            assert_eq!(pruned, step.batch_through);
        } else {
            assert_eq!(
                step.nodes, 5,
                "a step that leaves nodes behind used its whole limit"
            );
            assert_eq!(pruned, step.batch_through - STATE_PRUNE_BATCH_VERSIONS);
            steps_in_part += 1;
        }
        steps += 1;
        if steps % 5 == 1 {
            drop(store);
            store = Store::open(&path).expect("a store pruned in part reopens");
            assert_eq!(store.verify_chain().unwrap().heights_checked, head);
        }
    }
    assert!(
        steps_in_part > 2,
        "the batches took more than one step each"
    );
    assert_eq!(store.pruned_through().unwrap(), prunable_through(head));
    let (_whole_dir, whole_path) = {
        let (_, dir, path) = pruned_long_store();
        (dir, path)
    };
    let whole = Store::open(&whole_path).unwrap();
    assert_eq!(
        store.verify_chain().unwrap(),
        whole.verify_chain().unwrap(),
        "the same nodes, values and entries are left"
    );
}

type StaleIndex<'txn> = redb::Table<'txn, (u64, u64, &'static [u8]), ()>;
const STATE_STALE: TableDefinition<(u64, u64, &[u8]), ()> =
    TableDefinition::new(table_names::STATE_STALE);

/// The stale-index entries of versions `first ..= last` in the nodes' key order: (node
/// version, path, stale since). Read with the store closed (redb opens a file once per
/// process).
fn stale_entries_in_node_order(
    path: &std::path::Path,
    first: u64,
    last: u64,
) -> Vec<(u64, Vec<u8>, u64)> {
    let db = Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let stale = txn.open_table(STATE_STALE).unwrap();
    let empty: &[u8] = &[];
    let mut entries: Vec<(u64, Vec<u8>, u64)> = stale
        .range((first, 0u64, empty)..(last + 1, 0u64, empty))
        .unwrap()
        .map(|entry| {
            let (key, _) = entry.unwrap();
            let (stale_since, node_version, path) = key.value();
            (node_version, path.to_vec(), stale_since)
        })
        .collect();
    entries.sort();
    entries
}

/// A step deletes the batch's first nodes in `state_nodes`' key order, across all of the
/// batch's stale versions: after every step, each node still waiting in the batch sorts after
/// every node deleted from it. (So each step deletes one key range of `state_nodes`, and a page
/// is rewritten by one step, not by each step that deletes one of its nodes.)
#[test]
fn pruning_steps_delete_the_batch_in_the_nodes_key_order() {
    let chain = long_chain();
    let (_dir, path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let (first, last) = (1, STATE_PRUNE_BATCH_VERSIONS);
    assert!(prunable_through(chain.height()) >= last);
    drop(store);
    let batch = stale_entries_in_node_order(&path, first, last);
    let mut stale_versions: Vec<u64> = batch.iter().map(|entry| entry.2).collect();
    stale_versions.sort_unstable();
    stale_versions.dedup();
    assert!(
        stale_versions.len() > 2,
        "the batch has nodes gone stale at several versions"
    );
    let step_nodes = 7;
    let mut deleted_so_far = 0;
    loop {
        let store = Store::open(&path).unwrap();
        let step = store
            .prune_step(0, step_nodes)
            .unwrap()
            .expect("a batch is due");
        assert_eq!(step.batch_through, last);
        drop(store);
        let left = stale_entries_in_node_order(&path, first, last);
        deleted_so_far += step.nodes as usize;
        assert_eq!(left.len(), batch.len() - deleted_so_far);
        // The batch's entries in the nodes' key order: what is gone is a prefix.
        assert_eq!(
            left.as_slice(),
            &batch[deleted_so_far..],
            "after {deleted_so_far} of {} nodes, the ones left are the batch's last in key order",
            batch.len()
        );
        if step.batch_done {
            break;
        }
    }
    assert_eq!(deleted_so_far, batch.len());
    let store = Store::open(&path).unwrap();
    assert_eq!(store.pruned_through().unwrap(), last);
    assert_eq!(
        store.verify_chain().unwrap().heights_checked,
        chain.height()
    );
}

/// In the batch after `pruned_through` (which a crash may leave pruned in part) a stale entry
/// may be gone with its node, and only so; in later batches, neither may be.
#[test]
fn verify_store_accepts_a_batch_pruned_in_part_only_node_with_entry() {
    let chain = long_chain();
    let (_dir, path, store) = new_store(&chain);
    commit_all(&store, &chain);
    drop(store);
    let verify_edited = |edit: &dyn Fn(&mut StateNodes, &mut StaleIndex)| {
        let copy = path.with_extension("edited");
        std::fs::copy(&path, &copy).unwrap();
        let db = Database::create(&copy).unwrap();
        let txn = db.begin_write().unwrap();
        edit(
            &mut txn.open_table(STATE_NODES).unwrap(),
            &mut txn.open_table(STATE_STALE).unwrap(),
        );
        txn.commit().unwrap();
        drop(db);
        let store = Store::open(&copy).expect("the head is intact, so the store opens");
        assert_eq!(store.pruned_through().unwrap(), 0);
        let verified = store.verify_chain().map_err(|error| error.to_string());
        drop(store);
        std::fs::remove_file(&copy).unwrap();
        verified
    };
    // The root of `version`, replaced by the next block: stale since `version + 1`.
    let remove = |version: u64, node: bool| {
        move |nodes: &mut StateNodes, stale: &mut StaleIndex| {
            let (_, root_path) = root_key(version);
            assert!(stale
                .remove((version + 1, version, root_path.as_slice()))
                .unwrap()
                .is_some());
            if node {
                assert!(nodes
                    .remove((version, root_path.as_slice()))
                    .unwrap()
                    .is_some());
            }
        }
    };
    assert!(prunable_through(chain.height()) >= 2 * STATE_PRUNE_BATCH_VERSIONS);
    // Version 1's root goes stale at 2, in the first batch, which the head allows.
    verify_edited(&remove(1, true)).expect("pruned in part, node with entry");
    let error = verify_edited(&remove(1, false)).unwrap_err();
    assert!(error.contains("still stored"), "{error}");
    // Version 17's root goes stale at 18, in the second batch: not begun while the first is not
    // done.
    let error = verify_edited(&remove(STATE_PRUNE_BATCH_VERSIONS + 1, true)).unwrap_err();
    assert!(error.contains("missing"), "{error}");
}

/// The node's pruning thread catches up what is due when it starts, prunes behind later commits
/// when told of them, and releases the store when dropped.
#[test]
fn the_pruning_thread_follows_the_commits_and_lets_go_of_the_store() {
    let mut chain = long_chain();
    let (_dir, _path, store) = new_store(&chain);
    commit_all(&store, &chain);
    let store = std::sync::Arc::new(store);
    let supervisor = Supervisor::new(|| ());
    let wait_for = |store: &Store, through: u64| {
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        while store.pruned_through().unwrap() != through {
            if let Some(failure) = supervisor.failures().borrow().as_ref() {
                panic!("the pruning thread failed: {failure:#}");
            }
            assert!(
                Instant::now() < deadline,
                "pruned through {}, expected {through}",
                store.pruned_through().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let pruner = StatePruner::start(store.clone(), 0, supervisor.clone()).unwrap();
    let caught_up = prunable_through(chain.height());
    assert!(caught_up > 0);
    wait_for(&store, caught_up);

    let trigger = pruner.trigger();
    let target = chain.height() + STATE_PRUNE_BATCH_VERSIONS;
    while chain.height() < target {
        let content = chain.height().to_be_bytes();
        let tx = attest(&mut chain, &content);
        assert!(chain.commit(vec![tx]).iter().all(Result::is_ok));
        commit_height(&store, &chain, chain.height());
        trigger.committed();
    }
    let later = prunable_through(chain.height());
    assert_eq!(later, caught_up + STATE_PRUNE_BATCH_VERSIONS);
    wait_for(&store, later);

    drop(pruner);
    let store = std::sync::Arc::try_unwrap(store)
        .unwrap_or_else(|_| panic!("the stopped pruner still holds the store"));
    assert_eq!(
        store.verify_chain().unwrap().heights_checked,
        chain.height()
    );
}

/// A node lagging the head by its phase prunes a batch only once the head is that many heights
/// past where the batch became prunable.
#[test]
fn a_pruning_phase_delays_each_batch_by_that_many_heights() {
    let chain = long_chain();
    let (_dir, _path, store) = new_store(&chain);
    let phase = 5;
    for height in 1..=chain.height() {
        commit_height(&store, &chain, height);
        let before = store.pruned_through().unwrap();
        while store
            .prune_step(phase, PRUNE_STEP_NODES_MAX)
            .unwrap()
            .is_some()
        {}
        let after = store.pruned_through().unwrap();
        assert_eq!(after, prunable_through(height.saturating_sub(phase)));
        if after > before {
            assert_eq!(
                height,
                after + STATE_VERSIONS_KEPT + phase,
                "batch through {after} pruned at height {height}"
            );
        }
    }
    assert!(store.pruned_through().unwrap() > 0);
}
