//! The node's durable storage: blocks, certificates, the state tree, the ledger-wide Merkle
//! tree and the indexes, in one redb file.
//!
//! ledger-core executes a block into an [`ExecutedBlock`] without writing anything; the node
//! commits it here with its [`CommitCertificate`] in one redb write transaction with
//! [`Durability::Immediate`] (fsync, two-phase; see [`TWO_PHASE_COMMIT`]) before it reports the
//! block committed. A crash at any point leaves the store at the previous head or the new one,
//! never in between, and an acknowledged block survives `kill -9`.
//!
//! # Layout
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `format_version`, `genesis`, `genesis_hash`, `head_height`, `pruned_through`, `merged_through` | u32 BE, genesis, digest, u64 BE, u64 BE, u64 BE |
//! | `blocks` | height | canonical [`Block`] |
//! | `headers` | height | header with its hash at commit |
//! | `certificates` | height | canonical [`CommitCertificate`] |
//! | `validator_changes` | height announcing a new set | () |
//! | `state_nodes` | (version, borsh nibble path) | borsh jmt `Node` |
//! | `state_values` | (key hash, version) | value, or `None` for a deletion |
//! | `state_stale_nodes` | (stale since version, node version, nibble path) | () |
//! | `ledger_nodes` | (level, index) | canonical digest of the completed subtree |
//! | `tx_index` | canonical tx id | (height, index in block, ledger index) |
//! | `assets_by_owner` | (canonical owner id, canonical asset id) | () |
//! | `staged_values` | (version, key hash) | value, or `None` for a deletion |
//! | `staged_tx_index` | (height, index in block) | (canonical tx id, ledger index) |
//!
//! A block's commit writes its state values and tx-index rows to the two staging tables, keyed
//! by height, rather than to `state_values` and `tx_index`, keyed by hash: the module `staging`
//! says why. Behind the commits, [`Store::merge_step`] moves them into the hash-keyed tables a
//! batch of [`MERGE_BATCH_HEIGHTS`] heights at a time and advances `merged_through`; the staging
//! tables hold exactly the heights after it. Reads find a staged row first, so a value or a
//! transaction reads the same whether its height is staged, merged, or both (a batch merged in
//! part, after a crash between two steps).
//!
//! Behind the commits, [`Store::prune_step`] deletes the state-tree nodes that went stale in the
//! next batch of [`STATE_PRUNE_BATCH_VERSIONS`] versions ending at least [`STATE_VERSIONS_KEPT`]
//! before the head, each with its `state_stale_nodes` entry, at most [`PRUNE_STEP_NODES_MAX`]
//! in each durable write transaction of its own, the batch's first in `state_nodes`' key order
//! (so a step deletes one key range of the table); the step that empties the batch also advances
//! `pruned_through`. So `state_nodes` holds the recent versions' trees rather than the whole
//! history (values are all kept), and a block's commit waits for at most one step. The node
//! runs it on its own thread (`crate::pruner`); a crash between steps leaves a store that is
//! merely less pruned, with the batch after `pruned_through` pruned in part, which the next
//! step resumes and `verify-store` accepts.
//!
//! # Trust on open
//!
//! [`Store::open`] runs redb's integrity check (every page checksum, the allocator rebuilt), then
//! checks the head: the head block and header decode and hash as stored, the certificate
//! certifies it under the validator set the state at that version schedules, the state and
//! ledger-tree roots at the head are the header's, and pruning's marker is within what the head
//! allows. [`Store::verify_chain`] re-executes the whole
//! chain for `ipledger-node verify-store`.

mod error;
mod head;
mod index;
mod key_filter;
mod sizes;
mod snapshot;
mod staging;
mod tables;
mod verify;
pub mod wal;

pub use error::{is_no_space, mentions_no_space, StoreError};
pub use sizes::{StoreSizes, TableSize};
pub use snapshot::Snapshot;
pub use tables::name as table_names;
pub use tables::{
    prunable_through, TxLocation, ASSETS_PAGE_MAX, MERGE_BATCH_HEIGHTS, MERGE_STEP_ROWS_MAX,
    PRUNE_STEP_NODES_MAX, STAGED_HEIGHTS_MAX, STATE_PRUNE_BATCH_VERSIONS, STATE_VERSIONS_KEPT,
    STORE_FORMAT_VERSION, TWO_PHASE_COMMIT,
};
pub use verify::VerifyReport;

use error::{corrupt, DbContext};
use index::owner_changes;
use ipledger_genesis::StoreConfig;
use jmt::storage::Node;
use ledger_core::block::{Block, CommitCertificate};
use ledger_core::encoding;
use ledger_core::execute::{execute_genesis, ExecutedBlock};
use ledger_core::genesis::Genesis;
use ledger_core::receipt::Receipt;
use ledger_core::state_tree::{StateTree, StateTreeUpdate, EMPTY_STATE_ROOT};
use ledger_core::tx::TxId;
use ledger_core::types::{AssetId, PartyId};
use redb::{
    Builder, Database, Durability, ReadableDatabase, ReadableTable, TableHandle, WriteTransaction,
};
use staging::{in_key_range, key_range, ranges_for, MergeProgress, StagedHeight, StagedHeights};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tables::{
    meta_u64, name, node_key_path, read_meta_format, read_meta_u64, StoredHeader, ASSETS_BY_OWNER,
    BLOCKS, CERTIFICATES, HEADERS, LEDGER_NODES, META, META_FORMAT, META_GENESIS,
    META_GENESIS_HASH, META_HEAD, META_MERGED_THROUGH, META_PRUNED_THROUGH, STAGED_TX_INDEX,
    STAGED_VALUES, STATE_NODES, STATE_STALE, STATE_VALUES, STORE_FORMATS_UPGRADABLE, TX_INDEX,
    VALIDATOR_CHANGES,
};

/// How long one block's commit took, in two parts. Under load the durable part is mostly
/// waiting on the disk (the pages the block dirtied, written out and fsynced), so a node whose
/// durable part dominates is bound by its disk, not its cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitTimes {
    /// Everything before redb's commit: waiting for redb's one writer (a pruning step may hold
    /// it), the checks, and the inserts into redb's pages.
    pub writing: Duration,
    /// redb's durable commit: the dirty pages written out and the two-phase commit's fsyncs.
    pub durable: Duration,
}

impl CommitTimes {
    /// The whole commit.
    pub fn total(&self) -> Duration {
        self.writing + self.durable
    }
}

/// The node's store: one redb database file.
///
/// Reads go through [`Snapshot`]s; writes are [`Store::init_genesis`] and
/// [`Store::commit_block`], each one durable transaction. redb admits one write transaction at a
/// time, so concurrent commits are serialised, and each re-checks the head it builds on.
pub struct Store {
    db: Database,
    path: PathBuf,
    /// The heights committed but not yet merged, as the newest snapshots read them (see the
    /// `staging` module).
    staged: Mutex<Arc<StagedHeights>>,
    /// The batch being merged, if a merge step left one unfinished.
    merge_progress: Mutex<MergeProgress>,
}

impl Store {
    /// Opens or creates the store at `path` (a file). On an existing store: runs redb's integrity
    /// check, which reads every page to verify its checksum, so that a damaged file is an error
    /// rather than a panic (it takes time in proportion to the file, minutes for a ledger of 10
    /// million transactions whose file the system has not cached: docs/RELIABILITY.md), then
    /// verifies the head: the head block decodes, its hash matches the stored hash, its
    /// certificate is stored and certifies it (under the validator set the state at the
    /// head schedules for it), the state tree's root at the head version equals
    /// `header.state_root`, and the ledger-tree frontier in state has `header.ledger_root` and
    /// `header.ledger_size` (and agrees with the stored ledger nodes), and `pruned_through` is a
    /// whole batch within what the head allows. Any failure is an error naming the table and
    /// key, and the store is not returned. A file of the previous format is upgraded in place
    /// first (see [`STORE_FORMAT_VERSION`]). The page cache is the default of a node's
    /// `[store] cache_mib`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, StoreConfig::default().cache_bytes())
    }

    /// [`Store::open`] with a page cache of `cache_bytes`: the cache fills as the store is read
    /// and written and then stays at that size.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        assert!(cache_bytes > 0, "a store needs a page cache");
        // redb initialises an empty file as a new database; an existing empty store file is a
        // truncated one, and must not silently become a new chain at height 0.
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.len() == 0 => {
                return Err(StoreError::EmptyFile {
                    path: path.to_owned(),
                })
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    context: format!("reading the metadata of {}", path.display()),
                    source,
                })
            }
        }
        let db = Builder::new()
            .set_cache_size(cache_bytes)
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|source| match source {
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => {
                    StoreError::Integrity {
                        path: path.to_owned(),
                        source,
                    }
                }
                source => StoreError::Open {
                    path: path.to_owned(),
                    source,
                },
            })?;
        let store = Store {
            db,
            path: path.to_owned(),
            staged: Mutex::new(Arc::default()),
            merge_progress: Mutex::new(MergeProgress::default()),
        };
        store.prepare()?;
        store.load_staged()?;
        head::check_head(&store.snapshot()?)?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file, reporting the errors that dropping the store would ignore. Every
    /// committed block is already durable; this only ends the process's hold on the file.
    pub fn close(self) -> Result<(), StoreError> {
        self.db.close().db("closing the store")
    }

    /// Creates the tables of a new file, or checks the format version of an existing one
    /// (upgrading a file of one of [`STORE_FORMATS_UPGRADABLE`] in place).
    fn prepare(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read().db("beginning a read transaction")?;
        match txn.open_table(META) {
            Ok(meta) => {
                let read = |key: &'static str| -> Result<Option<Vec<u8>>, StoreError> {
                    let value = meta.get(key).db("reading table meta")?;
                    Ok(value.map(|guard| guard.value().to_vec()))
                };
                let format = match read(META_FORMAT)? {
                    Some(bytes) => read_meta_format(&bytes)?,
                    None => return Err(corrupt(name::META, META_FORMAT, "missing")),
                };
                if format == STORE_FORMAT_VERSION {
                    return Ok(());
                }
                if !STORE_FORMATS_UPGRADABLE.contains(&format) {
                    return Err(StoreError::Format {
                        found: format,
                        expected: STORE_FORMAT_VERSION,
                    });
                }
                let head = match read(META_HEAD)? {
                    Some(bytes) => read_meta_u64(&bytes, META_HEAD)?,
                    None => 0,
                };
                // Format 4 pruned inside every commit, through exactly what its head allowed;
                // format 5 records how far it pruned.
                let pruned_through = match read(META_PRUNED_THROUGH)? {
                    Some(bytes) => read_meta_u64(&bytes, META_PRUNED_THROUGH)?,
                    None if format == 4 => prunable_through(head),
                    None => return Err(corrupt(name::META, META_PRUNED_THROUGH, "missing")),
                };
                drop(meta);
                drop(txn);
                // Neither older format staged anything: every row is in the merged tables.
                let txn = self.begin_durable_write()?;
                tables::create_staging(&txn)?;
                write_meta_format(&txn, pruned_through, head)?;
                txn.commit()
                    .db("committing the upgrade to the new store format")
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {
                let others: Vec<String> = txn
                    .list_tables()
                    .db("listing tables")?
                    .map(|table| table.name().to_owned())
                    .collect();
                if !others.is_empty() {
                    return Err(corrupt(
                        name::META,
                        "-",
                        format!(
                            "missing, but the file holds other tables {others:?}: not an \
                             ipledger store"
                        ),
                    ));
                }
                drop(txn);
                let txn = self.begin_durable_write()?;
                tables::create_all(&txn)?;
                write_meta_format(&txn, 0, 0)?;
                txn.commit().db("committing the new store's tables")
            }
            Err(error) => Err(error).db("opening table meta"),
        }
    }

    /// Reads the staged heights back from the staging tables, on open: the head pointer must
    /// name the last block, every staged row must belong to a height after `merged_through` and
    /// at most the head, and every such height has a block, so each of them is staged even if it
    /// wrote nothing.
    fn load_staged(&self) -> Result<(), StoreError> {
        let view = Snapshot::with_staged(&self.db, Arc::default())?;
        let (merged_through, head) = (view.merged_through, view.head);
        // A head pointer that disagrees with the blocks is named as such, before the staged
        // rows it would misplace.
        head::check_head_pointer(&view, head)?;
        let mut heights: BTreeMap<u64, StagedHeight> = (merged_through + 1..=head)
            .map(|height| (height, StagedHeight::default()))
            .collect();
        let outside = |table: &'static str, height: u64| {
            corrupt(
                table,
                format!("height {height}"),
                format!("staged, but merged through {merged_through} with head {head}"),
            )
        };
        for entry in view
            .staged_values
            .iter()
            .db("reading table staged_values")?
        {
            let (key, _) = entry.db("reading table staged_values")?;
            let (version, key_hash) = key.value();
            let staged = heights
                .get_mut(&version)
                .ok_or_else(|| outside(name::STAGED_VALUES, version))?;
            staged.values.insert(key_hash);
        }
        for entry in view
            .staged_tx_index
            .iter()
            .db("reading table staged_tx_index")?
        {
            let (key, value) = entry.db("reading table staged_tx_index")?;
            let (id, location) = tables::decode_staged_tx(key.value(), value.value())?;
            let staged = heights
                .get_mut(&location.height)
                .ok_or_else(|| outside(name::STAGED_TX_INDEX, location.height))?;
            staged.txs.insert(id, location);
        }
        drop(view);
        let set = heights
            .into_iter()
            .fold(StagedHeights::default(), |set, (height, staged)| {
                set.with(height, staged)
            });
        *self.staged.lock().expect("staged heights lock") = Arc::new(set);
        Ok(())
    }

    /// A write transaction that is on disk when `commit` returns.
    fn begin_durable_write(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().db("beginning a write transaction")?;
        txn.set_durability(Durability::Immediate)
            .db("setting durability")?;
        txn.set_two_phase_commit(TWO_PHASE_COMMIT);
        Ok(txn)
    }

    /// A consistent read-only view at the current head.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Snapshot::new(&self.db, &self.staged)
    }

    /// Writes the genesis state (version 0) and the genesis document. Idempotent for the same
    /// genesis (compared by hash); a different genesis is refused, whatever the head.
    pub fn init_genesis(&self, genesis: &Genesis) -> Result<(), StoreError> {
        let given = genesis.hash();
        let txn = self.begin_durable_write()?;
        let before = self.snapshot()?;
        if before.has_genesis()? {
            let stored = before.genesis_hash()?;
            if stored != given {
                return Err(StoreError::GenesisMismatch { stored, given });
            }
            return Ok(());
        }
        let (_, update) = execute_genesis(&StateTree::new(&before, None), genesis)
            .map_err(StoreError::InvalidGenesis)?;
        write_state_tree(&txn, &update)?;
        write_merged_values(&txn, &update)?;
        {
            let mut meta = txn.open_table(META).db("opening table meta")?;
            let genesis_bytes = encoding::encode(genesis);
            let hash_bytes = encoding::encode(&given);
            meta.insert(META_GENESIS, genesis_bytes.as_slice())
                .db("writing table meta")?;
            meta.insert(META_GENESIS_HASH, hash_bytes.as_slice())
                .db("writing table meta")?;
            meta.insert(META_HEAD, meta_u64(0).as_slice())
                .db("writing table meta")?;
        }
        drop(before);
        txn.commit().db("committing the genesis")
    }

    /// The genesis document.
    pub fn genesis(&self) -> Result<Genesis, StoreError> {
        self.snapshot()?.genesis()
    }

    /// The committed height; 0 when only the genesis is stored.
    pub fn head_height(&self) -> Result<u64, StoreError> {
        self.snapshot()?.head_height()
    }

    /// Commits a decided block in one durable transaction: the block, its header and
    /// certificate, the state-tree update (nodes, values with deletion markers, stale index),
    /// the ledger-tree nodes, the tx index, the assets-by-owner index (derived from the block's
    /// leaves and the asset records it writes; see the `index` module) and the head pointer.
    ///
    /// Before writing it checks that the block is the head's successor (height and
    /// `prev_block_hash`), that the certificate certifies it under the validator set the head
    /// state schedules, and that the executed block is self-consistent: its update writes
    /// exactly its height and reaches `header.state_root`, and its leaves and ledger nodes
    /// extend the stored ledger frontier to `header.ledger_root`. A refused block writes
    /// nothing. An error from the commit itself is fatal to the node.
    ///
    /// Returns how long the commit took, in its two parts (see [`CommitTimes`]).
    pub fn commit_block(
        &self,
        executed: &ExecutedBlock,
        certificate: &CommitCertificate,
    ) -> Result<CommitTimes, StoreError> {
        let started = Instant::now();
        let header = &executed.block.header;
        let height = header.height;
        self.merge_if_staged_full()?;
        let txn = self.begin_durable_write()?;
        // Taken while holding the write lock, so it sees exactly the head this commit follows.
        let before = self.snapshot()?;
        let head = before.head_height()?;
        if height != head + 1 {
            return Err(StoreError::NotNext { head, got: height });
        }
        let parent = before.block_hash(head)?;
        if header.prev_block_hash != parent {
            return Err(StoreError::WrongParent {
                height,
                expected: parent,
                got: header.prev_block_hash,
            });
        }
        let hash = header.hash();
        let genesis = before.genesis()?;
        let validators = before.validators_at(head, height)?;
        certificate
            .verify(&genesis.chain_id, height, &hash, &validators)
            .map_err(|error| StoreError::BadCertificate { height, error })?;
        check_executed(&before, head, executed)?;
        let changes = owner_changes(&before, executed).map_err(|error| StoreError::State {
            version: head,
            error,
        })?;
        let first_leaf = header.ledger_size - executed.leaves.len() as u64;

        let mut staged = StagedHeight::default();
        write_state_tree(&txn, &executed.state_update)?;
        {
            let mut staged_values = txn
                .open_table(STAGED_VALUES)
                .db("opening table staged_values")?;
            for ((version, key_hash), value) in executed.state_update.values() {
                staged_values
                    .insert((*version, key_hash.0), value.as_deref())
                    .db("writing table staged_values")?;
                staged.values.insert(key_hash.0);
            }
        }
        {
            let stored = StoredHeader {
                hash,
                header: header.clone(),
            };
            let mut blocks = txn.open_table(BLOCKS).db("opening table blocks")?;
            blocks
                .insert(height, executed.block.encode().as_slice())
                .db("writing table blocks")?;
            let mut headers = txn.open_table(HEADERS).db("opening table headers")?;
            headers
                .insert(height, encoding::encode(&stored).as_slice())
                .db("writing table headers")?;
            let mut certificates = txn
                .open_table(CERTIFICATES)
                .db("opening table certificates")?;
            certificates
                .insert(height, encoding::encode(certificate).as_slice())
                .db("writing table certificates")?;
            if header.next_validator_set_hash != header.validator_set_hash {
                txn.open_table(VALIDATOR_CHANGES)
                    .db("opening table validator_changes")?
                    .insert(height, ())
                    .db("writing table validator_changes")?;
            }
            let mut ledger = txn
                .open_table(LEDGER_NODES)
                .db("opening table ledger_nodes")?;
            for node in &executed.ledger_nodes {
                ledger
                    .insert(
                        (node.level, node.index),
                        encoding::encode(&node.hash).as_slice(),
                    )
                    .db("writing table ledger_nodes")?;
            }
            let mut staged_tx_index = txn
                .open_table(STAGED_TX_INDEX)
                .db("opening table staged_tx_index")?;
            for (index, id) in executed.tx_ids.iter().enumerate() {
                if let Some(previous) = before.tx_location(id)? {
                    return Err(StoreError::Inconsistent {
                        height,
                        problem: format!(
                            "transaction {id} is already committed at height {}",
                            previous.height
                        ),
                    });
                }
                let location = TxLocation {
                    height,
                    index_in_block: u32::try_from(index).expect("a block's index fits a u32"),
                    ledger_index: first_leaf + index as u64,
                };
                staged_tx_index
                    .insert(
                        (height, location.index_in_block),
                        (encoding::encode(id).as_slice(), location.ledger_index),
                    )
                    .db("writing table staged_tx_index")?;
                if staged.txs.insert(*id, location).is_some() {
                    return Err(StoreError::Inconsistent {
                        height,
                        problem: format!("transaction {id} is twice in the block"),
                    });
                }
            }
            let mut assets = txn
                .open_table(ASSETS_BY_OWNER)
                .db("opening table assets_by_owner")?;
            for change in &changes {
                let asset = encoding::encode(&change.asset);
                if let Some(from) = &change.from {
                    let from = encoding::encode(from);
                    assets
                        .remove((from.as_slice(), asset.as_slice()))
                        .db("writing table assets_by_owner")?;
                }
                let to = encoding::encode(&change.to);
                assets
                    .insert((to.as_slice(), asset.as_slice()), ())
                    .db("writing table assets_by_owner")?;
            }
            txn.open_table(META)
                .db("opening table meta")?
                .insert(META_HEAD, meta_u64(height).as_slice())
                .db("writing table meta")?;
        }
        drop(before);
        // Staged before the redb commit, so that a snapshot whose view has this head finds the
        // height in the set (see `Snapshot::new`); a snapshot of the previous head ignores it,
        // and so does everything if the commit fails (the next commit of this height replaces
        // it).
        {
            let mut set = self.staged.lock().expect("staged heights lock");
            *set = Arc::new(set.with(height, staged));
        }
        let writing = started.elapsed();
        txn.commit()
            .db(&format!("committing block {height} durably"))?;
        Ok(CommitTimes {
            writing,
            durable: started.elapsed() - writing,
        })
    }

    /// The committed block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.snapshot()?.block(height)
    }

    /// The commit certificate of the block at `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StoreError> {
        self.snapshot()?.certificate(height)
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        self.snapshot()?.tx_location(id)
    }

    /// A receipt for a committed transaction against the head header, which a court checks
    /// with `ledger_core::receipt::verify_receipt` and the genesis alone; `None` for an id
    /// that was never committed.
    pub fn receipt(&self, id: &TxId) -> Result<Option<Receipt>, StoreError> {
        self.snapshot()?.receipt(id)
    }

    /// The assets `owner` holds at the head, paged (see [`Snapshot::assets_of`]).
    pub fn assets_of(
        &self,
        owner: &PartyId,
        after: Option<&AssetId>,
        limit: usize,
    ) -> Result<Vec<AssetId>, StoreError> {
        self.snapshot()?.assets_of(owner, after, limit)
    }

    /// The newest state version whose replaced nodes are deleted (see [`Snapshot::pruned_through`]).
    pub fn pruned_through(&self) -> Result<u64, StoreError> {
        self.snapshot()?.pruned_through()
    }

    /// The newest height whose staged rows are merged into the hash-keyed indexes (see
    /// [`Store::merge_step`]).
    pub fn merged_through(&self) -> Result<u64, StoreError> {
        Ok(self.snapshot()?.merged_through)
    }

    /// Deletes up to `nodes_max` of the state-tree nodes replaced in the oldest batch of
    /// [`STATE_PRUNE_BATCH_VERSIONS`] versions not yet pruned, if the head `lag` heights back
    /// allows that batch ([`prunable_through`]), with their stale-index entries, in one durable
    /// write transaction of its own; the step that empties the batch also advances
    /// `pruned_through` to its last version. Returns what the step did, or `None` when no batch
    /// is due.
    ///
    /// Block commits wait for it (redb has one writer), so the node runs it behind them, one
    /// step at a time ([`PRUNE_STEP_NODES_MAX`]), each validator with its own lag
    /// (`crate::pruner::pruning_phase`): a commit waits for one step, not a whole batch. A
    /// batch pruned in part is consistent at every step (each node goes with its entry), and
    /// the next step resumes it.
    pub fn prune_step(&self, lag: u64, nodes_max: u64) -> Result<Option<PruneStep>, StoreError> {
        assert!(nodes_max > 0, "a pruning step deletes something");
        // Most calls find nothing due: they learn it from a snapshot, without the write lock.
        if next_prune_batch(&self.snapshot()?, lag)?.is_none() {
            return Ok(None);
        }
        let txn = self.begin_durable_write()?;
        // Taken while holding the write lock, so it sees exactly the head this prune follows.
        let before = self.snapshot()?;
        let Some(first) = next_prune_batch(&before, lag)? else {
            drop(before);
            txn.abort()
                .db("ending a write transaction that pruned nothing")?;
            return Ok(None);
        };
        drop(before);
        let last = first + STATE_PRUNE_BATCH_VERSIONS - 1;
        let (nodes, batch_done) = prune_state_nodes(&txn, first, last, nodes_max)?;
        if batch_done {
            txn.open_table(META)
                .db("opening table meta")?
                .insert(META_PRUNED_THROUGH, meta_u64(last).as_slice())
                .db("writing table meta")?;
        }
        txn.commit().db(&format!(
            "committing the pruning of versions {first} to {last}"
        ))?;
        Ok(Some(PruneStep {
            batch_through: last,
            nodes,
            batch_done,
        }))
    }

    /// Merges the next key range of the oldest batch of [`MERGE_BATCH_HEIGHTS`] staged heights
    /// into `state_values` and `tx_index`, if the head `lag` heights back has passed the batch's
    /// last height, in one durable write transaction of its own. The batch is merged in as many
    /// ranges of key hash as keep a step to about `rows_max` rows, so each page of
    /// the merged tables is rewritten by one step only; the step that merges the last range
    /// also deletes the batch's staged rows and advances `merged_through`. Returns what the step
    /// did, or `None` when no batch is due.
    ///
    /// Like [`Store::prune_step`], block commits wait for a step, so the node runs it behind
    /// them on the pruning thread, each validator with its own lag. Between steps a batch's
    /// rows are both staged and merged, with the same values and locations, and reads find the
    /// staged ones first.
    pub fn merge_step(&self, lag: u64, rows_max: u64) -> Result<Option<MergeStep>, StoreError> {
        assert!(rows_max > 0, "a merge step inserts something");
        // Most calls find nothing due: they learn it from a snapshot, without the write lock.
        if next_merge_batch(&self.snapshot()?, lag).is_none() {
            return Ok(None);
        }
        let txn = self.begin_durable_write()?;
        // Taken while holding the write lock, so it sees exactly the head this merge follows.
        let before = self.snapshot()?;
        let Some(first) = next_merge_batch(&before, lag) else {
            drop(before);
            txn.abort()
                .db("ending a write transaction that merged nothing")?;
            return Ok(None);
        };
        let last = first + MERGE_BATCH_HEIGHTS - 1;
        let mut progress = self.merge_progress.lock().expect("merge progress lock");
        if progress.first != first {
            *progress = MergeProgress {
                first,
                ranges: ranges_for(before.staged_rows(first, last), rows_max),
                next: 0,
            };
        }
        drop(before);
        let rows = merge_key_range(&txn, first, last, key_range(progress.next, progress.ranges))?;
        let batch_done = progress.next + 1 == progress.ranges;
        if batch_done {
            txn.open_table(STAGED_VALUES)
                .db("opening table staged_values")?
                .retain_in((first, [0; 32])..=(last, [0xff; 32]), |_, _| false)
                .db("deleting merged rows of table staged_values")?;
            txn.open_table(STAGED_TX_INDEX)
                .db("opening table staged_tx_index")?
                .retain_in((first, 0)..=(last, u32::MAX), |_, _| false)
                .db("deleting merged rows of table staged_tx_index")?;
            txn.open_table(META)
                .db("opening table meta")?
                .insert(META_MERGED_THROUGH, meta_u64(last).as_slice())
                .db("writing table meta")?;
        }
        txn.commit().db(&format!(
            "committing the merge of heights {first} to {last}"
        ))?;
        if batch_done {
            // Only after the commit: a snapshot taken before it still reads these heights as
            // staged (see `Snapshot::new`).
            let mut set = self.staged.lock().expect("staged heights lock");
            *set = Arc::new(set.merged(last));
            *progress = MergeProgress::default();
        } else {
            progress.next += 1;
        }
        Ok(Some(MergeStep {
            batch_through: last,
            rows,
            batch_done,
        }))
    }

    /// Merges whole batches while [`STAGED_HEIGHTS_MAX`] heights are staged, before a commit
    /// adds another: merging behind the commits should never leave that many, but memory must
    /// stay bounded if it does.
    fn merge_if_staged_full(&self) -> Result<(), StoreError> {
        while self.staged.lock().expect("staged heights lock").len() >= STAGED_HEIGHTS_MAX {
            if self.merge_step(0, MERGE_STEP_ROWS_MAX)?.is_none() {
                // Heights staged by failed commits above the head are counted but never due;
                // they are replaced by the next commits.
                break;
            }
        }
        Ok(())
    }

    /// Re-executes every block from genesis into a fresh in-memory state and checks every hash
    /// link, certificate, transaction, header field and stored record against it; for
    /// `ipledger-node verify-store`. Returns the first failure with its height.
    pub fn verify_chain(&self) -> Result<VerifyReport, StoreError> {
        verify::verify_chain(&self.snapshot()?)
    }
}

/// What one [`Store::prune_step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneStep {
    /// The last version of the batch it pruned in: `pruned_through` once the batch is done.
    pub batch_through: u64,
    /// How many nodes it deleted.
    pub nodes: u64,
    /// Whether it finished the batch (and so advanced `pruned_through`).
    pub batch_done: bool,
}

/// What one [`Store::merge_step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeStep {
    /// The last height of the batch it merged in: `merged_through` once the batch is done.
    pub batch_through: u64,
    /// How many staged rows it inserted into the merged tables.
    pub rows: u64,
    /// Whether it finished the batch (and so advanced `merged_through`).
    pub batch_done: bool,
}

/// Inserts the staged rows of heights `first ..= last` whose key hash falls in `range` into
/// `state_values` and `tx_index`, in key order. Returns how many it inserted. A row already
/// merged (by a step of this batch before a restart) is rewritten with the same value; a tx-index
/// row that disagrees with the staged one is refused.
fn merge_key_range(
    txn: &WriteTransaction,
    first: u64,
    last: u64,
    range: (u64, Option<u64>),
) -> Result<u64, StoreError> {
    // Key order: the order of the merged tables.
    let mut values = BTreeMap::new();
    {
        let staged = txn
            .open_table(STAGED_VALUES)
            .db("opening table staged_values")?;
        for entry in staged
            .range((first, [0; 32])..=(last, [0xff; 32]))
            .db("reading table staged_values")?
        {
            let (key, value) = entry.db("reading table staged_values")?;
            let (version, key_hash) = key.value();
            if in_key_range(&key_hash, range) {
                values.insert((key_hash, version), value.value().map(<[u8]>::to_vec));
            }
        }
    }
    let mut txs = BTreeMap::new();
    {
        let staged = txn
            .open_table(STAGED_TX_INDEX)
            .db("opening table staged_tx_index")?;
        for entry in staged
            .range((first, 0)..=(last, u32::MAX))
            .db("reading table staged_tx_index")?
        {
            let (key, value) = entry.db("reading table staged_tx_index")?;
            let (id, location) = tables::decode_staged_tx(key.value(), value.value())?;
            if in_key_range(id.as_bytes(), range) {
                txs.insert(id, location);
            }
        }
    }
    let mut merged = txn
        .open_table(STATE_VALUES)
        .db("opening table state_values")?;
    for (key, value) in &values {
        merged
            .insert(*key, value.as_deref())
            .db("merging into table state_values")?;
    }
    let mut tx_index = txn.open_table(TX_INDEX).db("opening table tx_index")?;
    for (id, location) in &txs {
        let row = (
            location.height,
            location.index_in_block,
            location.ledger_index,
        );
        let previous = tx_index
            .insert(encoding::encode(id).as_slice(), row)
            .db("merging into table tx_index")?;
        if let Some(previous) = previous {
            let previous = previous.value();
            if previous != row {
                return Err(corrupt(
                    name::TX_INDEX,
                    format!("tx {id}"),
                    format!("indexed at {previous:?}, staged at {row:?}"),
                ));
            }
        }
    }
    Ok((values.len() + txs.len()) as u64)
}

/// The first height of the batch due for merging at `snapshot`'s head `lag` heights back, if
/// one is.
fn next_merge_batch(snapshot: &Snapshot, lag: u64) -> Option<u64> {
    let due = snapshot.head.saturating_sub(lag);
    (snapshot.merged_through + MERGE_BATCH_HEIGHTS <= due).then_some(snapshot.merged_through + 1)
}

/// Writes one version of the state tree's nodes and stale index; its values go to the staging
/// table or, for the genesis, straight to `state_values` ([`write_merged_values`]).
fn write_state_tree(txn: &WriteTransaction, update: &StateTreeUpdate) -> Result<(), StoreError> {
    let mut nodes = txn
        .open_table(STATE_NODES)
        .db("opening table state_nodes")?;
    for (node_key, node) in update.nodes() {
        let path = node_key_path(node_key);
        nodes
            .insert(
                (node_key.version(), path.as_slice()),
                tables::encode_node(node).as_slice(),
            )
            .db("writing table state_nodes")?;
    }
    let mut stale = txn
        .open_table(STATE_STALE)
        .db("opening table state_stale_nodes")?;
    for entry in update.stale_nodes() {
        let path = node_key_path(&entry.node_key);
        stale
            .insert(
                (
                    entry.stale_since_version,
                    entry.node_key.version(),
                    path.as_slice(),
                ),
                (),
            )
            .db("writing table state_stale_nodes")?;
    }
    Ok(())
}

/// Writes one version's state values (deletions as `None`) to `state_values`: the genesis's,
/// which is merged from the start.
fn write_merged_values(txn: &WriteTransaction, update: &StateTreeUpdate) -> Result<(), StoreError> {
    let mut values = txn
        .open_table(STATE_VALUES)
        .db("opening table state_values")?;
    for ((version, key_hash), value) in update.values() {
        values
            .insert((key_hash.0, *version), value.as_deref())
            .db("writing table state_values")?;
    }
    Ok(())
}

/// The first version of the batch due for pruning at `snapshot`'s head `lag` heights back, if
/// one is.
fn next_prune_batch(snapshot: &Snapshot, lag: u64) -> Result<Option<u64>, StoreError> {
    let head = snapshot.head_height()?;
    let pruned = snapshot.pruned_through()?;
    assert!(
        pruned <= prunable_through(head),
        "pruned through {pruned}, past what head {head} allows"
    );
    let due = prunable_through(head.saturating_sub(lag));
    Ok((pruned < due).then_some(pruned + 1))
}

/// Marks the file as this build's format, pruned through version `pruned_through` and merged
/// through height `merged_through`.
fn write_meta_format(
    txn: &WriteTransaction,
    pruned_through: u64,
    merged_through: u64,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).db("opening table meta")?;
    meta.insert(META_FORMAT, STORE_FORMAT_VERSION.to_be_bytes().as_slice())
        .db("writing table meta")?;
    meta.insert(META_PRUNED_THROUGH, meta_u64(pruned_through).as_slice())
        .db("writing table meta")?;
    meta.insert(META_MERGED_THROUGH, meta_u64(merged_through).as_slice())
        .db("writing table meta")?;
    Ok(())
}

/// Deletes up to `nodes_max` of the state-tree nodes stale since the versions `first ..= last`,
/// the first in `state_nodes`' key order (the version that wrote the node, then its path), and
/// their stale-index entries. Returns how many nodes it deleted and whether none is left.
///
/// Why the nodes' key order: it makes each step delete one key range of `state_nodes`, so a
/// page is rewritten by one step of the batch. The stale index's own order (by the version
/// that replaced a node) spreads one page's deletions over every step of the batch; on a
/// ledger of 10 million transactions that wrote 28 % more bytes and took 1.5 times as long per
/// node (docs/PERFORMANCE.md). Within one stale version the index is in the nodes' key order, so
/// what a step takes of each version is a prefix of its entries, and a batch pruned in part
/// still holds every node with its entry. Holds at most `2 * nodes_max` entries in memory.
fn prune_state_nodes(
    txn: &WriteTransaction,
    first: u64,
    last: u64,
    nodes_max: u64,
) -> Result<(u64, bool), StoreError> {
    assert!(first <= last, "prune versions {first}..={last}");
    let mut stale = txn
        .open_table(STATE_STALE)
        .db("opening table state_stale_nodes")?;
    let mut nodes = txn
        .open_table(STATE_NODES)
        .db("opening table state_nodes")?;
    let empty: &[u8] = &[];
    let take = usize::try_from(nodes_max).expect("a step's size fits a usize");
    // (node version, path, stale since), the `take` smallest read so far. Each stale version's
    // first `take` entries hold all of its entries that can be among the batch's first `take`.
    let mut taken: Vec<(u64, Vec<u8>, u64)> = Vec::with_capacity(2 * take);
    let mut left_over = false;
    for stale_since in first..=last {
        for (read, entry) in stale
            .range((stale_since, 0u64, empty)..(stale_since + 1, 0u64, empty))
            .db("reading table state_stale_nodes")?
            .enumerate()
        {
            let (key, _) = entry.db("reading table state_stale_nodes")?;
            if read == take {
                left_over = true;
                break;
            }
            let (_, node_version, path) = key.value();
            taken.push((node_version, path.to_vec(), stale_since));
        }
        if taken.len() > take {
            taken.select_nth_unstable(take);
            taken.truncate(take);
            left_over = true;
        }
        assert!(taken.len() <= take, "a step holds at most its limit");
    }
    taken.sort_unstable();
    // The last entry taken of each stale version: its entries up to there go.
    let mut taken_through: BTreeMap<u64, (u64, &[u8])> = BTreeMap::new();
    for (node_version, path, stale_since) in &taken {
        let removed = nodes
            .remove((*node_version, path.as_slice()))
            .db("pruning table state_nodes")?;
        if removed.is_none() {
            return Err(corrupt(
                name::STATE_STALE,
                format!(
                    "stale since {stale_since}, node version {node_version}, path {}",
                    hex::encode(path)
                ),
                "names a node that is not stored",
            ));
        }
        // `taken` is in ascending order, so the last one seen of each version is its greatest.
        taken_through.insert(*stale_since, (*node_version, path.as_slice()));
    }
    for (stale_since, (node_version, path)) in taken_through {
        stale
            .retain_in(
                (stale_since, 0u64, empty)..=(stale_since, node_version, path),
                |_, ()| false,
            )
            .db("pruning table state_stale_nodes")?;
    }
    let deleted = u64::try_from(taken.len()).expect("a step's count fits a u64");
    Ok((deleted, !left_over))
}

/// Checks that an executed block's parts agree with each other and extend the stored head.
fn check_executed(
    before: &Snapshot,
    head: u64,
    executed: &ExecutedBlock,
) -> Result<(), StoreError> {
    let block = &executed.block;
    let header = &block.header;
    let height = header.height;
    let bad = |problem: String| StoreError::Inconsistent { height, problem };
    if block.txs.len() != header.tx_count as usize || executed.leaves.len() != block.txs.len() {
        return Err(bad(format!(
            "tx_count {}, {} transactions, {} leaves",
            header.tx_count,
            block.txs.len(),
            executed.leaves.len()
        )));
    }
    for (index, (leaf, tx)) in executed.leaves.iter().zip(&block.txs).enumerate() {
        if leaf.tx != *tx || leaf.height != height || leaf.time_ms != header.time_ms {
            return Err(bad(format!(
                "leaf {index} is not transaction {index} of the block"
            )));
        }
    }
    let update = &executed.state_update;
    if let Some(key) = update.nodes().keys().find(|key| key.version() != height) {
        return Err(bad(format!(
            "state update writes node {key:?} at another version"
        )));
    }
    if let Some((version, _)) = update
        .values()
        .keys()
        .find(|(version, _)| *version != height)
    {
        return Err(bad(format!(
            "state update writes a value at version {version}"
        )));
    }
    let root_node = update
        .nodes()
        .iter()
        .find(|(key, _)| key.nibble_path().is_empty())
        .map(|(_, node)| node);
    let root = match root_node {
        Some(Node::Internal(node)) => node.hash::<sha2::Sha256>(),
        Some(Node::Leaf(leaf)) => leaf.hash::<sha2::Sha256>(),
        Some(Node::Null) => *EMPTY_STATE_ROOT.as_bytes(),
        None => return Err(bad("state update writes no root node".into())),
    };
    if root != *header.state_root.as_bytes() {
        return Err(bad(format!(
            "state update root {} != header state_root {}",
            hex::encode(root),
            header.state_root
        )));
    }
    let mut frontier = before.ledger_head(head)?.frontier;
    frontier.validate().map_err(|error| StoreError::State {
        version: head,
        error: ledger_core::storage::StorageError(format!("ledger head frontier: {error}")),
    })?;
    let mut completed = Vec::with_capacity(executed.ledger_nodes.len());
    for leaf in &executed.leaves {
        completed.extend(frontier.append(leaf.leaf_hash()));
    }
    if completed != executed.ledger_nodes {
        return Err(bad(
            "ledger nodes are not those the leaves complete on the stored frontier".into(),
        ));
    }
    if frontier.size() != header.ledger_size || frontier.root() != header.ledger_root {
        return Err(bad(format!(
            "leaves extend the stored ledger to size {} root {}, header says size {} root {}",
            frontier.size(),
            frontier.root(),
            header.ledger_size,
            header.ledger_root
        )));
    }
    Ok(())
}
