//! A damaged store is refused with a clear error, never served and never a panic.
//!
//! Two layers are exercised. Raw damage to the file (flipped bits, truncation) is what redb's
//! integrity check on open is for; the tests report which layer caught each case. Logical damage
//! with valid checksums (a record rewritten through redb itself, as a bug or a hand edit would)
//! is invisible to redb and must be caught by the store's head check on open or, for history
//! below the head, by `verify_chain`.

mod store_common;
use ipledger_node::store::{
    prunable_through, table_names, Store, StoreError, STATE_PRUNE_BATCH_VERSIONS,
};
use ledger_core::crypto::Digest;
use ledger_core::encoding;
use ledger_core::receipt::verify_receipt;
use ledger_core::state::{LedgerHead, StateKey};
use ledger_core::testkit::TestChain;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;
use store_common::*;
use tempfile::TempDir;

/// How many evenly spread offsets of the file get a flipped bit, besides the header's.
const SPREAD_FLIPS: u64 = 96;

/// A store holding `busy_chain` and then some, closed; the file is the pristine copy.
fn pristine() -> (TempDir, PathBuf, TestChain) {
    let (mut chain, _) = busy_chain();
    for round in 0..6u8 {
        let txs = (0..5u8)
            .map(|n| attest(&mut chain, &[9, round, n]))
            .collect();
        assert!(chain.commit(txs).iter().all(Result::is_ok));
    }
    let (dir, path, store) = new_store(&chain);
    commit_all(&store, &chain);
    assert_eq!(store.merged_through().unwrap(), 0, "every row is staged");
    drop(store);
    (dir, path, chain)
}

/// Which layer stopped a damaged store, or what it served.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// `Store::open` failed inside redb (integrity check or file format).
    Redb,
    /// `Store::open` refused an existing empty file (redb would start a new store in it).
    EmptyFileGuard,
    /// `Store::open` failed in the store's own head check.
    HeadCheck,
    /// Opened, but `verify_chain` failed.
    VerifyChain,
    /// Opened and verified, and serves exactly the pristine data: the damage hit bytes no
    /// committed data uses (free pages, slack).
    Harmless,
    /// Served data that differs from the pristine store. Never acceptable.
    ServedWrongData,
    /// Panicked. Never acceptable.
    Panicked,
}

fn classify(path: &Path, chain: &TestChain) -> (Outcome, String) {
    let result = catch_unwind(AssertUnwindSafe(|| match Store::open(path) {
        Err(error @ (StoreError::Integrity { .. } | StoreError::Open { .. })) => {
            (Outcome::Redb, error.to_string())
        }
        Err(error @ StoreError::EmptyFile { .. }) => (Outcome::EmptyFileGuard, error.to_string()),
        Err(error) => (Outcome::HeadCheck, error.to_string()),
        Ok(store) => match store.verify_chain() {
            Err(error) => (Outcome::VerifyChain, error.to_string()),
            Ok(_) if serves_pristine_data(&store, chain) => (Outcome::Harmless, String::new()),
            Ok(_) => (Outcome::ServedWrongData, String::new()),
        },
    }));
    result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        (Outcome::Panicked, message)
    })
}

fn serves_pristine_data(store: &Store, chain: &TestChain) -> bool {
    if store.head_height().ok() != Some(chain.height()) {
        return false;
    }
    let blocks_equal = chain.blocks.iter().enumerate().all(|(index, block)| {
        let height = index as u64 + 1;
        store.block(height).ok().flatten().as_ref() == Some(block)
            && store.certificate(height).ok().flatten().as_ref() == Some(&chain.certificates[index])
    });
    let receipts_equal = (0..chain.leaf_count).all(|index| {
        let id = chain.leaf(index).tx.id();
        store.receipt(&id).ok().flatten() == Some(chain.receipt(index))
    });
    blocks_equal && receipts_equal
}

fn damaged_copy(pristine: &Path, dir: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(pristine).unwrap();
    damage(&mut bytes);
    let path = dir.join("damaged.redb");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn report(kind: &str, results: &[(String, Outcome, String)]) {
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for (_, outcome, _) in results {
        *counts.entry(outcome.clone()).or_default() += 1;
    }
    eprintln!("{kind}: {} cases: {counts:?}", results.len());
    for (case, outcome, message) in results {
        eprintln!("  {case}: {outcome:?} {message}");
    }
    let bad: Vec<_> = results
        .iter()
        .filter(|(_, outcome, _)| matches!(outcome, Outcome::Panicked | Outcome::ServedWrongData))
        .collect();
    assert!(bad.is_empty(), "{kind}: unacceptable outcomes {bad:?}");
}

#[test]
fn flipped_bits_anywhere_in_the_file_are_refused_or_harmless() {
    let (dir, path, chain) = pristine();
    flip_bits_across(&dir, &path, &chain, "bit flips");
}

/// The same on a compacted file, where few pages are free, so most flips hit live data.
#[test]
fn flipped_bits_in_a_compacted_file_are_refused_or_harmless() {
    let (dir, path, chain) = pristine();
    let mut db = Database::create(&path).unwrap();
    while db.compact().unwrap() {}
    drop(db);
    Store::open(&path).unwrap().verify_chain().unwrap();
    flip_bits_across(&dir, &path, &chain, "bit flips, compacted file");

    // Flips inside bytes known to be live data (transaction signatures, stored once, in their
    // block) are never harmless.
    let bytes = std::fs::read(&path).unwrap();
    let mut results = Vec::new();
    for block in chain.blocks.iter().step_by(3) {
        for tx in block.txs.iter().take(1) {
            let ledger_core::crypto::Signature::Ed25519(signature) = tx.signatures[0].signature;
            let found: Vec<usize> = bytes
                .windows(signature.len())
                .enumerate()
                .filter(|(_, window)| *window == signature)
                .map(|(at, _)| at)
                .collect();
            assert!(
                !found.is_empty(),
                "signature of {} not in the file",
                tx.id()
            );
            for at in found {
                let damaged = damaged_copy(&path, dir.path(), |bytes| bytes[at + 17] ^= 0x04);
                let (outcome, message) = classify(&damaged, &chain);
                assert!(
                    outcome != Outcome::Harmless,
                    "a flip in live data at {at} went unnoticed"
                );
                results.push((format!("signature at {at}"), outcome, message));
            }
        }
    }
    report("flips in live data, compacted file", &results);
}

fn flip_bits_across(dir: &TempDir, path: &Path, chain: &TestChain, kind: &str) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut offsets: Vec<u64> = (0..64).map(|n| n * 7).collect();
    offsets.extend((0..SPREAD_FLIPS).map(|n| 512 + n * (len - 513) / SPREAD_FLIPS + n % 13));
    let started = Instant::now();
    let mut results = Vec::new();
    for (n, offset) in offsets.iter().enumerate() {
        let mask = 1u8 << (n % 8);
        let damaged = damaged_copy(path, dir.path(), |bytes| {
            bytes[*offset as usize] ^= mask;
        });
        let (outcome, message) = classify(&damaged, chain);
        results.push((format!("offset {offset} ^ {mask:#04x}"), outcome, message));
    }
    eprintln!(
        "file of {len} bytes, {} flips in {:?}",
        offsets.len(),
        started.elapsed()
    );
    report(kind, &results);
}

#[test]
fn truncated_files_are_refused() {
    let (dir, path, chain) = pristine();
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    let mut results = Vec::new();
    for keep in [
        0,
        1,
        64,
        511,
        512,
        4096,
        len / 3,
        len / 2,
        len - 4096,
        len - 1,
    ] {
        let damaged = damaged_copy(&path, dir.path(), |bytes| bytes.truncate(keep));
        let (outcome, message) = classify(&damaged, &chain);
        assert!(
            !matches!(outcome, Outcome::Harmless),
            "a store truncated to {keep} of {len} bytes was served: {message}"
        );
        results.push((format!("truncated to {keep} of {len}"), outcome, message));
    }
    report("truncation", &results);
    let empty = damaged_copy(&path, dir.path(), Vec::clear);
    assert!(matches!(
        Store::open(&empty),
        Err(StoreError::EmptyFile { .. })
    ));
}

// Logical damage: records rewritten through redb, so every checksum is valid.

const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new(table_names::HEADERS);
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new(table_names::BLOCKS);
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new(table_names::CERTIFICATES);
const META: TableDefinition<&str, &[u8]> = TableDefinition::new(table_names::META);
const STATE_NODES: TableDefinition<(u64, &[u8]), &[u8]> =
    TableDefinition::new(table_names::STATE_NODES);
const LEDGER_NODES: TableDefinition<(u8, u64), &[u8]> =
    TableDefinition::new(table_names::LEDGER_NODES);
const STAGED_VALUES: TableDefinition<(u64, [u8; 32]), Option<&[u8]>> =
    TableDefinition::new(table_names::STAGED_VALUES);
const STAGED_TX_INDEX: TableDefinition<(u64, u32), (&[u8], u64)> =
    TableDefinition::new(table_names::STAGED_TX_INDEX);

/// Rewrites a copy of the store through redb and returns its path.
fn rewritten(pristine: &Path, dir: &Path, edit: impl FnOnce(&redb::WriteTransaction)) -> PathBuf {
    let path = copy_store(pristine, dir, "edited.redb");
    let db = Database::create(&path).unwrap();
    let txn = db.begin_write().unwrap();
    edit(&txn);
    txn.commit().unwrap();
    path
}

fn read_bytes(path: &Path, table: TableDefinition<u64, &[u8]>, height: u64) -> Vec<u8> {
    let db = Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(table).unwrap();
    let value = table.get(height).unwrap().unwrap().value().to_vec();
    value
}

fn open_error(path: &Path) -> StoreError {
    match Store::open(path) {
        Ok(_) => panic!("a damaged store opened"),
        Err(error) => error,
    }
}

fn corrupt_table(error: &StoreError) -> &'static str {
    match error {
        StoreError::Corrupt { table, .. } => table,
        other => panic!("expected a Corrupt error, got {other}"),
    }
}

#[test]
fn the_head_check_catches_head_records_that_redb_cannot_tell_are_wrong() {
    let (dir, path, chain) = pristine();
    let head = chain.height();

    // A byte inside the head header (past the stored hash) changed: the hash no longer matches.
    let header = read_bytes(&path, HEADERS, head);
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut bytes = header.clone();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        txn.open_table(HEADERS)
            .unwrap()
            .insert(head, bytes.as_slice())
            .unwrap();
    });
    let error = open_error(&edited);
    eprintln!("head header edited: {error}");
    assert_eq!(corrupt_table(&error), table_names::HEADERS);
    assert!(
        error.to_string().contains(&format!("height {head}")),
        "{error}"
    );

    // The head certificate lost signatures: no quorum.
    let mut certificate = chain.certificates[(head - 1) as usize].clone();
    certificate.signatures.truncate(2);
    let edited = rewritten(&path, dir.path(), |txn| {
        txn.open_table(CERTIFICATES)
            .unwrap()
            .insert(head, encoding::encode(&certificate).as_slice())
            .unwrap();
    });
    let error = open_error(&edited);
    eprintln!("head certificate edited: {error}");
    assert_eq!(corrupt_table(&error), table_names::CERTIFICATES);

    // The head certificate is missing.
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut certificates = txn.open_table(CERTIFICATES).unwrap();
        assert!(certificates.remove(head).unwrap().is_some());
    });
    assert_eq!(
        corrupt_table(&open_error(&edited)),
        table_names::CERTIFICATES
    );

    // The head block's body differs from its header.
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut block = chain.blocks[(head - 1) as usize].clone();
        block.txs.pop();
        txn.open_table(BLOCKS)
            .unwrap()
            .insert(head, block.encode().as_slice())
            .unwrap();
    });
    assert_eq!(corrupt_table(&open_error(&edited)), table_names::BLOCKS);

    // The head pointer names a block below the last one stored.
    let edited = rewritten(&path, dir.path(), |txn| {
        txn.open_table(META)
            .unwrap()
            .insert("head_height", (head - 1).to_be_bytes().as_slice())
            .unwrap();
    });
    let error = open_error(&edited);
    eprintln!("head pointer edited: {error}");
    assert_eq!(corrupt_table(&error), table_names::BLOCKS);

    // The pruning marker claims more than the head allows, or a part of a batch: verify-store
    // would then accept the recent versions' nodes missing.
    for claimed in [
        prunable_through(head) + STATE_PRUNE_BATCH_VERSIONS,
        prunable_through(head) + 1,
    ] {
        let edited = rewritten(&path, dir.path(), |txn| {
            txn.open_table(META)
                .unwrap()
                .insert("pruned_through", claimed.to_be_bytes().as_slice())
                .unwrap();
        });
        let error = open_error(&edited);
        eprintln!("pruning marker edited: {error}");
        assert_eq!(corrupt_table(&error), table_names::META);
        assert!(error.to_string().contains("pruned_through"), "{error}");
    }

    // The ledger head in state claims another time (the state root, from nodes, still matches).
    // The head's values are staged (the pristine store merged nothing).
    let key_hash = *Digest::sha256(&StateKey::LedgerHead.encode()).as_bytes();
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut values = txn.open_table(STAGED_VALUES).unwrap();
        let stored = values.get((head, key_hash)).unwrap().unwrap();
        let bytes = stored.value().unwrap().to_vec();
        drop(stored);
        let mut ledger_head: LedgerHead = encoding::decode(&bytes, "ledger head").unwrap();
        ledger_head.time_ms += 1;
        values
            .insert(
                (head, key_hash),
                Some(encoding::encode(&ledger_head).as_slice()),
            )
            .unwrap();
    });
    let error = open_error(&edited);
    eprintln!("ledger head edited: {error}");
    assert_eq!(corrupt_table(&error), table_names::STATE_VALUES);

    // A value staged for a height the head does not reach: merging would write it.
    let edited = rewritten(&path, dir.path(), |txn| {
        txn.open_table(STAGED_VALUES)
            .unwrap()
            .insert((head + 1, key_hash), None)
            .unwrap();
    });
    let error = open_error(&edited);
    eprintln!("value staged past the head: {error}");
    assert_eq!(corrupt_table(&error), table_names::STAGED_VALUES);

    // A ledger-tree node on the frontier changed.
    let edited = rewritten(&path, dir.path(), |txn| {
        let size = chain.leaf_count;
        let level = size.trailing_zeros() as u8;
        let index = (size >> level) - 1;
        txn.open_table(LEDGER_NODES)
            .unwrap()
            .insert(
                (level, index),
                encoding::encode(&Digest::sha256(b"forged")).as_slice(),
            )
            .unwrap();
    });
    let error = open_error(&edited);
    eprintln!("frontier node edited: {error}");
    assert_eq!(corrupt_table(&error), table_names::LEDGER_NODES);

    // The state tree's root node at the head is gone.
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut nodes = txn.open_table(STATE_NODES).unwrap();
        let root_key: Vec<u8> = {
            let mut range = nodes.range((head, &[][..])..(head + 1, &[][..])).unwrap();
            let (key, _) = range.next().unwrap().unwrap();
            key.value().1.to_vec()
        };
        nodes.remove((head, root_key.as_slice())).unwrap();
    });
    let error = open_error(&edited);
    eprintln!("state root node removed: {error}");
    assert!(matches!(error, StoreError::State { .. }), "{error}");
}

#[test]
fn verify_chain_catches_damage_below_the_head_that_open_does_not_look_at() {
    let (dir, path, chain) = pristine();

    // An old block's transactions replaced by another block's: the header no longer matches.
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut block = chain.blocks[2].clone();
        block.txs = chain.blocks[1].txs.clone();
        txn.open_table(BLOCKS)
            .unwrap()
            .insert(3, block.encode().as_slice())
            .unwrap();
    });
    let store = Store::open(&edited).expect("the head is intact, so the store opens");
    let error = store.verify_chain().unwrap_err();
    eprintln!("old block edited: {error}");
    assert!(
        matches!(error, StoreError::ChainInvalid { height: 3, .. }),
        "{error}"
    );
    drop(store);

    // An old certificate without a quorum.
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut certificate = chain.certificates[4].clone();
        certificate.signatures.truncate(1);
        txn.open_table(CERTIFICATES)
            .unwrap()
            .insert(5, encoding::encode(&certificate).as_slice())
            .unwrap();
    });
    let error = Store::open(&edited).unwrap().verify_chain().unwrap_err();
    eprintln!("old certificate edited: {error}");
    assert!(
        matches!(error, StoreError::ChainInvalid { height: 5, .. }),
        "{error}"
    );

    // A tx index entry pointing elsewhere (staged, as every row of the pristine store is: its
    // row moved over the next transaction's), and one removed.
    let id = chain.blocks[1].txs[0].id();
    let key = encoding::encode(&id);
    let edited = rewritten(&path, dir.path(), |txn| {
        let mut staged = txn.open_table(STAGED_TX_INDEX).unwrap();
        staged.remove((2, 0)).unwrap().unwrap();
        staged.insert((2, 1), (key.as_slice(), 3)).unwrap();
    });
    let store = Store::open(&edited).unwrap();
    assert!(
        store.receipt(&id).is_err(),
        "a receipt is not served from a wrong index entry"
    );
    let error = store.verify_chain().unwrap_err();
    eprintln!("tx index edited: {error}");
    assert!(
        matches!(error, StoreError::ChainInvalid { height: 2, .. }),
        "{error}"
    );
    drop(store);
    let edited = rewritten(&path, dir.path(), |txn| {
        txn.open_table(STAGED_TX_INDEX)
            .unwrap()
            .remove((2, 0))
            .unwrap()
            .unwrap();
    });
    let error = Store::open(&edited).unwrap().verify_chain().unwrap_err();
    assert!(
        matches!(error, StoreError::ChainInvalid { height: 2, .. }),
        "{error}"
    );

    // An extra state node nobody wrote.
    let edited = rewritten(&path, dir.path(), |txn| {
        txn.open_table(STATE_NODES)
            .unwrap()
            .insert((1, &[9u8, 9][..]), &[0u8][..])
            .unwrap();
    });
    let error = Store::open(&edited).unwrap().verify_chain().unwrap_err();
    eprintln!("extra state node: {error}");
    assert!(
        error.to_string().contains(table_names::STATE_NODES),
        "{error}"
    );

    // The pristine store verifies, and its receipts still do.
    let store = Store::open(&path).unwrap();
    store.verify_chain().unwrap();
    let receipt = store.receipt(&id).unwrap().unwrap();
    verify_receipt(&receipt, &chain.genesis).unwrap();
}

/// Every single-bit change to the head's state root node, written through redb (valid
/// checksums), is refused without a panic in jmt or the store: by the head check when it changes
/// the root hash, and by `verify_chain` when it changes only a child's version (jmt does not hash
/// child versions, so the root still matches the header).
#[test]
fn every_change_to_the_head_state_root_node_is_refused_without_a_panic() {
    let (dir, path, chain) = pristine();
    let head = chain.height();
    let (root_path, root_bytes) = {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let nodes = txn.open_table(STATE_NODES).unwrap();
        let mut range = nodes.range((head, &[][..])..(head + 1, &[][..])).unwrap();
        let (key, value) = range.next().unwrap().unwrap();
        (key.value().1.to_vec(), value.value().to_vec())
    };
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for byte in 0..root_bytes.len() {
        let bit = byte % 8;
        let mut forged = root_bytes.clone();
        forged[byte] ^= 1 << bit;
        let edited = rewritten(&path, dir.path(), |txn| {
            txn.open_table(STATE_NODES)
                .unwrap()
                .insert((head, root_path.as_slice()), forged.as_slice())
                .unwrap();
        });
        let result = catch_unwind(AssertUnwindSafe(|| match Store::open(&edited) {
            Err(StoreError::Corrupt { table, problem, .. }) => {
                let what = problem.split(':').next().unwrap_or("").to_owned();
                format!("open: Corrupt({table}: {what})")
            }
            Err(StoreError::State { .. }) => "open: State".to_owned(),
            Err(other) => format!("open: {other}"),
            Ok(store) => match store.verify_chain() {
                Err(StoreError::ChainInvalid { height, .. }) => {
                    format!("verify_chain: ChainInvalid at {height}")
                }
                Err(other) => format!("verify_chain: {other}"),
                Ok(_) => {
                    panic!("flipping bit {bit} of byte {byte} of the root node went unnoticed")
                }
            },
        }));
        let kind = result.unwrap_or_else(|_| {
            panic!("flipping bit {bit} of byte {byte} of the root node panicked")
        });
        *outcomes.entry(kind).or_default() += 1;
    }
    eprintln!(
        "{} single-bit changes of the head state root node: {outcomes:#?}",
        root_bytes.len()
    );
}

// The node binary on damaged files: the store, and the consensus engine's write-ahead log.

mod binary {
    use super::store_common::process::*;
    use ipledger_genesis::NodeConfig;
    use ipledger_node::runner::{check_engine_wal, engine_wal_path};
    use ipledger_node::store::wal::{WalReport, WAL_ENTRY_HEADER_BYTES, WAL_HEADER_BYTES};
    use ipledger_node::store::{Store, StoreError};
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    /// How many times the seed run is repeated to catch the log with entries in it.
    const SEED_ATTEMPTS: usize = 10;

    /// A one-validator network's node, run until it has committed a few blocks and its
    /// write-ahead log holds entries of the height in progress, then killed with SIGKILL: its
    /// data directory is the pristine copy the damage is done to.
    pub struct Seeded {
        pub dir: tempfile::TempDir,
        pub config_path: PathBuf,
        pub config: NodeConfig,
        pub pristine: PathBuf,
        pub head: u64,
        pub wal: WalReport,
    }

    pub fn seeded() -> Seeded {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (local, mut configs) = local_network(dir.path(), 1);
        let config_path = local.nodes[0].config_path.clone();
        let config = configs.remove(0);
        let data = config.data_dir();
        let wal_path = engine_wal_path(&data);
        let logs = dir.path().join("logs");
        for attempt in 0..SEED_ATTEMPTS {
            let mut node =
                NodeProcess::start(&config_path, &config, &logs, &format!("seed-{attempt}"));
            let height = node.wait_for_height(3 + attempt as u64);
            // The log is reset at each height, then receives its proposal and votes.
            let started = Instant::now();
            while std::fs::metadata(&wal_path).map_or(0, |m| m.len())
                < WAL_HEADER_BYTES + WAL_ENTRY_HEADER_BYTES
            {
                assert!(started.elapsed() < PROCESS_DEADLINE, "the log stays empty");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            node.kill();
            let pristine = dir.path().join(format!("pristine-{attempt}"));
            copy_dir(&data, &pristine);
            let head = {
                let probe = dir.path().join("probe");
                copy_dir(&pristine, &probe);
                let store = Store::open(&probe.join("ledger.redb")).expect("the store opens");
                let head = store.head_height().unwrap();
                drop(store);
                std::fs::remove_dir_all(&probe).unwrap();
                head
            };
            assert!(
                head >= height,
                "SIGKILL lost blocks: head {head}, reported {height}"
            );
            let wal = check_engine_wal(&engine_wal_path(&pristine), head)
                .expect("the log a SIGKILL leaves is accepted");
            eprintln!("seed run {attempt}: head {head}, log {wal:?}");
            if wal.entries > 0 && wal.torn_tail_bytes == 0 {
                return Seeded {
                    dir,
                    config_path,
                    config,
                    pristine,
                    head,
                    wal,
                };
            }
        }
        panic!("in {SEED_ATTEMPTS} runs the log never held whole entries when killed");
    }

    pub fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// The (offset, data length) of each whole entry of a log.
    pub fn entries(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let mut at = WAL_HEADER_BYTES as usize;
        while let Some(length) = bytes.get(at + 1..at + 9) {
            let length = u64::from_be_bytes(length.try_into().unwrap()) as usize;
            if at + WAL_ENTRY_HEADER_BYTES as usize + length > bytes.len() {
                break;
            }
            found.push((at, length));
            at += WAL_ENTRY_HEADER_BYTES as usize + length;
        }
        found
    }

    /// A change to a file's bytes.
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;

    /// One damage to a copy of the pristine data directory.
    struct Case {
        name: &'static str,
        file: &'static str,
        damage: Damage,
        /// Words the error must contain besides the file's path.
        expect: &'static str,
    }

    fn cases(seeded: &Seeded) -> Vec<Case> {
        let redb = std::fs::read(seeded.pristine.join("ledger.redb")).unwrap();
        let wal = std::fs::read(engine_wal_path(&seeded.pristine)).unwrap();
        let entries = entries(&wal);
        let (first, _) = entries[0];
        let (last, last_length) = *entries.last().unwrap();
        // The head header's hash, stored with the header: live data the head check reads.
        let head_hash = {
            let probe = seeded.dir.path().join("probe-hash");
            copy_dir(&seeded.pristine, &probe);
            let store = Store::open(&probe.join("ledger.redb")).unwrap();
            let hash = store.block(seeded.head).unwrap().unwrap().header.hash();
            *hash.as_bytes()
        };
        // Every copy: some may sit in pages redb has freed, where a flip is harmless.
        let head_hash_at: Vec<usize> = redb
            .windows(32)
            .enumerate()
            .filter(|(_, w)| *w == head_hash)
            .map(|(at, _)| at)
            .collect();
        assert!(!head_hash_at.is_empty(), "the head hash is in the file");
        let len = redb.len();
        // One byte of the length changed so that it claims 256 bytes more than there are.
        assert!(last_length < 256, "entries of this node are short");
        vec![
            Case {
                name: "store truncated to half",
                file: "ledger.redb",
                damage: Box::new(move |b| b.truncate(len / 2)),
                expect: "ledger.redb",
            },
            Case {
                name: "store without its last byte",
                file: "ledger.redb",
                damage: Box::new(move |b| b.truncate(len - 1)),
                expect: "ledger.redb",
            },
            Case {
                name: "store truncated to nothing",
                file: "ledger.redb",
                damage: Box::new(Vec::clear),
                expect: "exists but is empty",
            },
            Case {
                name: "store header byte flipped",
                file: "ledger.redb",
                damage: Box::new(|b| b[3] ^= 0x10),
                expect: "ledger.redb",
            },
            Case {
                name: "store: a byte of the head block's hash flipped",
                file: "ledger.redb",
                damage: Box::new(move |b| head_hash_at.iter().for_each(|at| b[at + 5] ^= 0x01)),
                expect: "ledger.redb",
            },
            Case {
                name: "log truncated to nothing",
                file: "wal",
                damage: Box::new(Vec::clear),
                expect: "the file is empty",
            },
            Case {
                name: "log truncated inside its header",
                file: "wal",
                damage: Box::new(|b| b.truncate(7)),
                expect: "shorter than the 12-byte header",
            },
            Case {
                name: "log version flipped",
                file: "wal",
                damage: Box::new(|b| b[3] ^= 0x02),
                expect: "format version 3",
            },
            Case {
                name: "log height flipped",
                file: "wal",
                damage: Box::new(|b| b[11] ^= 0x01),
                expect: "height",
            },
            Case {
                name: "log: first entry's data flipped",
                file: "wal",
                damage: Box::new(move |b| b[first + 20] ^= 0x40),
                expect: "checksum",
            },
            Case {
                name: "log: first entry's compression flag set",
                file: "wal",
                damage: Box::new(move |b| b[first] = 1),
                expect: "compression flag",
            },
            Case {
                name: "log: last entry's length runs past the end",
                file: "wal",
                damage: Box::new(move |b| b[last + 7] ^= 0x01),
                expect: "a damaged length field",
            },
        ]
    }

    /// A copy of the pristine directory with `case`'s damage; the config points at it.
    fn damaged_dir(
        seeded: &mut Seeded,
        name: &str,
        file: &str,
        damage: &dyn Fn(&mut Vec<u8>),
    ) -> PathBuf {
        let data = seeded.dir.path().join(name.replace([' ', ':', '\''], "-"));
        copy_dir(&seeded.pristine, &data);
        let path = match file {
            "wal" => engine_wal_path(&data),
            other => data.join(other),
        };
        let mut bytes = std::fs::read(&path).unwrap();
        damage(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
        set_data_dir(&seeded.config_path.clone(), &mut seeded.config, &data);
        path
    }

    #[test]
    fn the_node_refuses_to_start_on_a_damaged_store_or_write_ahead_log() {
        let mut seeded = seeded();
        let logs = seeded.dir.path().join("logs");
        for case in cases(&seeded) {
            let path = damaged_dir(&mut seeded, case.name, case.file, &case.damage);
            let mut node =
                NodeProcess::start(&seeded.config_path, &seeded.config, &logs, case.name);
            let status = node.wait_for_exit_without_serving();
            let stderr = node.stderr();
            eprintln!("{}: {status}\n{stderr}", case.name);
            assert_eq!(status.code(), Some(1), "{}: {stderr}", case.name);
            assert!(
                stderr.contains(&path.display().to_string()),
                "{}: names the file: {stderr}",
                case.name
            );
            assert!(
                stderr.contains(case.expect),
                "{}: says {:?}: {stderr}",
                case.name,
                case.expect
            );
            assert!(!stderr.contains("panicked"), "{}: {stderr}", case.name);
        }

        // A torn tail (the last entry cut short, as a crash mid-append leaves it) is discarded,
        // as the engine does, and the node goes on.
        let cut = |b: &mut Vec<u8>| {
            let keep = b.len() - 5;
            b.truncate(keep)
        };
        damaged_dir(&mut seeded, "log with a torn tail", "wal", &cut);
        let mut node = NodeProcess::start(&seeded.config_path, &seeded.config, &logs, "torn tail");
        node.wait_for_height(seeded.head + 2);
        assert!(node.terminate().success(), "{}", node.stderr());
    }

    /// Every single-byte change and every truncation of a real log, checked as the node checks
    /// it at start: refused, or accepted with nothing lost that the engine would have replayed.
    #[test]
    fn every_change_to_the_write_ahead_log_is_refused_or_loses_no_whole_entry() {
        let seeded = seeded();
        let path = engine_wal_path(&seeded.pristine);
        let pristine = std::fs::read(&path).unwrap();
        let whole = entries(&pristine);
        let scratch = seeded.dir.path().join("scratch.wal");
        let check = |bytes: &[u8]| {
            std::fs::write(&scratch, bytes).unwrap();
            check_engine_wal(&scratch, seeded.head)
        };
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut count = |outcome: String| *outcomes.entry(outcome).or_default() += 1;
        for at in 0..pristine.len() {
            for mask in [0x01u8, 0x02, 0x10, 0x80, 0xFF] {
                let mut bytes = pristine.clone();
                bytes[at] ^= mask;
                match check(&bytes) {
                    Err(StoreError::Wal { problem, .. }) => {
                        count(format!("refused: {}", problem_kind(&problem)))
                    }
                    Err(other) => panic!("byte {at} ^ {mask:#04x}: unexpected error {other}"),
                    Ok(report) => {
                        let nothing_lost = report.entries == seeded.wal.entries
                            && (report.entries == 0 || report.height == seeded.wal.height);
                        assert!(
                            nothing_lost,
                            "byte {at} ^ {mask:#04x} accepted as {report:?}; pristine {:?}",
                            seeded.wal
                        );
                        count("accepted, every entry kept".into());
                    }
                }
            }
        }
        let mut cut_at_a_boundary = 0;
        for keep in 0..pristine.len() {
            match check(&pristine[..keep]) {
                Err(StoreError::Wal { problem, .. }) => {
                    count(format!("truncated, refused: {}", problem_kind(&problem)))
                }
                Err(other) => panic!("truncated to {keep}: unexpected error {other}"),
                Ok(report) => {
                    let boundary = whole
                        .iter()
                        .map(|(at, len)| at + WAL_ENTRY_HEADER_BYTES as usize + len)
                        .chain([WAL_HEADER_BYTES as usize])
                        .filter(|end| *end <= keep)
                        .max()
                        .expect("past the header");
                    let kept = whole
                        .iter()
                        .filter(|(at, len)| at + WAL_ENTRY_HEADER_BYTES as usize + len <= keep)
                        .count();
                    assert_eq!(
                        (report.entries, report.torn_tail_bytes),
                        (kept, (keep - boundary) as u64)
                    );
                    if report.torn_tail_bytes == 0 {
                        cut_at_a_boundary += 1;
                        count(
                            "truncated at an entry boundary: accepted, later entries lost".into(),
                        );
                    } else {
                        count("truncated inside an entry: accepted as a torn tail".into());
                    }
                }
            }
        }
        eprintln!(
            "log of {} bytes, {} entries at height {:?} (store head {}): {outcomes:#?}",
            pristine.len(),
            whole.len(),
            seeded.wal.height,
            seeded.head
        );
        assert_eq!(
            cut_at_a_boundary,
            whole.len(),
            "one silent cut per entry boundary"
        );
    }

    /// The kind of a refusal, without the entry, offsets and values, for counting.
    fn problem_kind(problem: &str) -> String {
        // "entry N at byte N[:] what"
        let problem = match problem.split_once(" at byte ") {
            Some((_, rest)) => rest.trim_start_matches(|c: char| c.is_ascii_digit()),
            None => problem,
        };
        problem
            .split(|c: char| c.is_ascii_digit())
            .next()
            .unwrap_or(problem)
            .trim_start_matches(':')
            .trim()
            .to_owned()
    }
}
