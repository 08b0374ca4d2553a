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
//! | `meta` | `format_version`, `genesis`, `genesis_hash`, `head_height`, `pruned_through` | u32 BE, genesis, digest, u64 BE, u64 BE |
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
//!
//! Behind the commits, [`Store::prune_step`] deletes the state-tree nodes that went stale in the
//! next batch of [`STATE_PRUNE_BATCH_VERSIONS`] versions ending at least [`STATE_VERSIONS_KEPT`]
//! before the head, each with its `state_stale_nodes` entry, at most [`PRUNE_STEP_NODES_MAX`]
//! in each durable write transaction of its own; the step that empties the batch also advances
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
mod sizes;
mod snapshot;
mod tables;
mod verify;
pub mod wal;

pub use error::{is_no_space, mentions_no_space, StoreError};
pub use sizes::{StoreSizes, TableSize};
pub use snapshot::Snapshot;
pub use tables::name as table_names;
pub use tables::{
    prunable_through, TxLocation, ASSETS_PAGE_MAX, PRUNE_STEP_NODES_MAX,
    STATE_PRUNE_BATCH_VERSIONS, STATE_VERSIONS_KEPT, STORE_FORMAT_VERSION, TWO_PHASE_COMMIT,
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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tables::{
    meta_u64, name, node_key_path, StoredHeader, ASSETS_BY_OWNER, BLOCKS, CERTIFICATES, HEADERS,
    LEDGER_NODES, META, META_FORMAT, META_GENESIS, META_GENESIS_HASH, META_HEAD,
    META_PRUNED_THROUGH, STATE_NODES, STATE_STALE, STATE_VALUES, STORE_FORMAT_UPGRADABLE, TX_INDEX,
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
}

impl Store {
    /// Opens or creates the store at `path` (a file). On an existing store: runs redb's integrity
    /// check, then verifies the head: the head block decodes, its hash matches the stored hash,
    /// its certificate is stored and certifies it (under the validator set the state at the
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
        };
        store.prepare()?;
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
    /// (upgrading a [`STORE_FORMAT_UPGRADABLE`] file in place).
    fn prepare(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read().db("beginning a read transaction")?;
        match txn.open_table(META) {
            Ok(_) => {
                drop(txn);
                let snapshot = self.snapshot()?;
                match snapshot.format_version()? {
                    Some(STORE_FORMAT_VERSION) => Ok(()),
                    Some(STORE_FORMAT_UPGRADABLE) => {
                        // That format pruned inside every commit, through exactly what its head
                        // allowed.
                        let head = if snapshot.has_genesis()? {
                            snapshot.head_height()?
                        } else {
                            0
                        };
                        drop(snapshot);
                        let txn = self.begin_durable_write()?;
                        write_meta_format(&txn, prunable_through(head))?;
                        txn.commit()
                            .db("committing the upgrade to the new store format")
                    }
                    Some(found) => Err(StoreError::Format {
                        found,
                        expected: STORE_FORMAT_VERSION,
                    }),
                    None => Err(corrupt(name::META, META_FORMAT, "missing")),
                }
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
                write_meta_format(&txn, 0)?;
                txn.commit().db("committing the new store's tables")
            }
            Err(error) => Err(error).db("opening table meta"),
        }
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
        Snapshot::new(&self.db)
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
        write_state_update(&txn, &update)?;
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

        write_state_update(&txn, &executed.state_update)?;
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
            let mut tx_index = txn.open_table(TX_INDEX).db("opening table tx_index")?;
            for (index, id) in executed.tx_ids.iter().enumerate() {
                let location = (height, index as u32, first_leaf + index as u64);
                let previous = tx_index
                    .insert(encoding::encode(id).as_slice(), location)
                    .db("writing table tx_index")?;
                if let Some(previous) = previous {
                    let (at, _, _) = previous.value();
                    return Err(StoreError::Inconsistent {
                        height,
                        problem: format!("transaction {id} is already committed at height {at}"),
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

/// Writes one version of the state tree: nodes, values (deletions as `None`), stale index.
fn write_state_update(txn: &WriteTransaction, update: &StateTreeUpdate) -> Result<(), StoreError> {
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
    let mut values = txn
        .open_table(STATE_VALUES)
        .db("opening table state_values")?;
    for ((version, key_hash), value) in update.values() {
        values
            .insert((key_hash.0, *version), value.as_deref())
            .db("writing table state_values")?;
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

/// Marks the file as this build's format, pruned through version `pruned_through`.
fn write_meta_format(txn: &WriteTransaction, pruned_through: u64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).db("opening table meta")?;
    meta.insert(META_FORMAT, STORE_FORMAT_VERSION.to_be_bytes().as_slice())
        .db("writing table meta")?;
    meta.insert(META_PRUNED_THROUGH, meta_u64(pruned_through).as_slice())
        .db("writing table meta")?;
    Ok(())
}

/// Deletes up to `nodes_max` of the state-tree nodes stale since the versions `first ..= last`,
/// in the stale index's order, and their stale-index entries. The entries are read and the
/// nodes deleted as one stream, so memory stays flat whatever the step holds. Returns how many
/// nodes it deleted and whether none is left.
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
    let mut deleted = 0;
    // The first stale entry this step leaves, when it stops before the batch's end: the
    // entries before it go with their nodes. Copied once per step, not once per node.
    let mut left_from: Option<(u64, u64, Vec<u8>)> = None;
    for entry in stale
        .range((first, 0u64, empty)..(last + 1, 0u64, empty))
        .db("reading table state_stale_nodes")?
    {
        let (key, _) = entry.db("reading table state_stale_nodes")?;
        let (stale_since, node_version, path) = key.value();
        if deleted == nodes_max {
            left_from = Some((stale_since, node_version, path.to_vec()));
            break;
        }
        let removed = nodes
            .remove((node_version, path))
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
        deleted += 1;
    }
    let end = match &left_from {
        Some((stale_since, node_version, path)) => (*stale_since, *node_version, path.as_slice()),
        None => (last + 1, 0u64, empty),
    };
    stale
        .retain_in((first, 0u64, empty)..end, |_, ()| false)
        .db("pruning table state_stale_nodes")?;
    Ok((deleted, left_from.is_none()))
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
