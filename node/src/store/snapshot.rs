//! A consistent read-only view of the store: one redb read transaction, so every read in it sees
//! the same committed head, however many blocks are committed meanwhile.

use super::error::{corrupt, DbContext, StoreError};
use super::staging::StagedHeights;
use super::tables::{
    decode, decode_node, name, node_key_path, read_meta_u64, StoredHeader, TxLocation,
    ASSETS_BY_OWNER, ASSETS_PAGE_MAX, BLOCKS, CERTIFICATES, HEADERS, LEDGER_NODES, META,
    META_GENESIS, META_GENESIS_HASH, META_HEAD, META_MERGED_THROUGH, META_PRUNED_THROUGH,
    STAGED_TX_INDEX, STAGED_VALUES, STATE_NODES, STATE_STALE, STATE_VALUES, TX_INDEX,
    VALIDATOR_CHANGES,
};
use jmt::storage::{LeafNode, Node, NodeKey};
use jmt::KeyHash;
use ledger_core::block::{Block, BlockHeader, CommitCertificate, LedgerLeaf};
use ledger_core::crypto::Digest;
use ledger_core::encoding;
use ledger_core::genesis::{validator_set_hash, Genesis, Validator};
use ledger_core::merkle::{inclusion_proof, MerkleNodeReader};
use ledger_core::receipt::{
    CertifiedHeader, Receipt, ValidatorChange, RECEIPT_FORMAT_VERSION,
    RECEIPT_VALIDATOR_CHANGES_MAX,
};
use ledger_core::state::{LedgerHead, Overlay, StateKey, TxIndexRead, ValidatorSchedule};
use ledger_core::state_tree::{StateTree, TreeReader};
use ledger_core::storage::StorageError;
use ledger_core::tx::TxId;
use ledger_core::types::{AssetId, PartyId};
use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};
use std::sync::{Arc, Mutex};

type Bytes = &'static [u8];

/// A consistent read-only view of the store at the head committed when it was taken.
///
/// It holds a redb read transaction: redb keeps the pages it sees until it is dropped, so hold
/// one per request, not for the life of the node.
pub struct Snapshot {
    pub(crate) meta: ReadOnlyTable<&'static str, Bytes>,
    pub(crate) blocks: ReadOnlyTable<u64, Bytes>,
    pub(crate) headers: ReadOnlyTable<u64, Bytes>,
    pub(crate) certificates: ReadOnlyTable<u64, Bytes>,
    pub(crate) validator_changes: ReadOnlyTable<u64, ()>,
    pub(crate) nodes: ReadOnlyTable<(u64, Bytes), Bytes>,
    pub(crate) values: ReadOnlyTable<([u8; 32], u64), Option<Bytes>>,
    pub(crate) stale: ReadOnlyTable<(u64, u64, Bytes), ()>,
    pub(crate) ledger: ReadOnlyTable<(u8, u64), Bytes>,
    pub(crate) tx_index: ReadOnlyTable<Bytes, (u64, u32, u64)>,
    pub(crate) assets: ReadOnlyTable<(Bytes, Bytes), ()>,
    pub(crate) staged_values: ReadOnlyTable<(u64, [u8; 32]), Option<Bytes>>,
    pub(crate) staged_tx_index: ReadOnlyTable<(u64, u32), (Bytes, u64)>,
    /// The staged heights this view reads before the merged tables: exactly
    /// `merged_through + 1 ..= head` of them count.
    staged: Arc<StagedHeights>,
    /// The view's head (0 before the genesis).
    pub(crate) head: u64,
    /// The view's `merged_through`.
    pub(crate) merged_through: u64,
    pub(super) txn: ReadTransaction,
}

/// How often [`Snapshot::new`] takes its view again when a commit or a merge landed between
/// reading the staged heights and beginning the read transaction. Each retry means another
/// commit landed in that gap of microseconds, so a few suffice; running out means the staged
/// heights in memory do not match the file, which is a bug.
const SNAPSHOT_ATTEMPTS_MAX: u32 = 64;

fn open_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: redb::TableDefinition<'static, K, V>,
    name: &'static str,
) -> Result<ReadOnlyTable<K, V>, StoreError> {
    match txn.open_table(table) {
        Ok(table) => Ok(table),
        Err(redb::TableError::TableDoesNotExist(_)) => Err(corrupt(
            name,
            "-",
            "the table is missing from the store file",
        )),
        Err(error) => Err(error).db(&format!("opening table {name}")),
    }
}

impl Snapshot {
    /// A view of the committed head with the staged heights that go with it. The staged set is
    /// read before the read transaction begins: a commit adds its height to the set before its
    /// redb commit, and a merge drops heights only after its own, so the set read first holds
    /// every staged height of the view unless a commit landed in between, which
    /// [`StagedHeights::covers`] notices; then the view is taken again.
    pub(crate) fn new(
        db: &Database,
        staged: &Mutex<Arc<StagedHeights>>,
    ) -> Result<Snapshot, StoreError> {
        for _ in 0..SNAPSHOT_ATTEMPTS_MAX {
            let set = Arc::clone(&staged.lock().expect("staged heights lock"));
            let snapshot = Snapshot::with_staged(db, set)?;
            if snapshot
                .staged
                .covers(snapshot.merged_through, snapshot.head)
            {
                return Ok(snapshot);
            }
        }
        Err(corrupt(
            name::META,
            META_MERGED_THROUGH,
            "the staged heights held in memory do not cover the heights the file has staged",
        ))
    }

    /// A view read with the staged heights `staged`, whether or not they are the view's.
    pub(crate) fn with_staged(
        db: &Database,
        staged: Arc<StagedHeights>,
    ) -> Result<Snapshot, StoreError> {
        let txn = db.begin_read().db("beginning a read transaction")?;
        let meta = open_table(&txn, META, name::META)?;
        let head = match meta.get(META_HEAD).db("reading table meta")? {
            Some(bytes) => read_meta_u64(bytes.value(), META_HEAD)?,
            None => 0,
        };
        let merged_through = match meta.get(META_MERGED_THROUGH).db("reading table meta")? {
            Some(bytes) => read_meta_u64(bytes.value(), META_MERGED_THROUGH)?,
            None => return Err(corrupt(name::META, META_MERGED_THROUGH, "missing")),
        };
        if merged_through > head {
            return Err(corrupt(
                name::META,
                META_MERGED_THROUGH,
                format!("{merged_through}, past the head {head}"),
            ));
        }
        Ok(Snapshot {
            staged_values: open_table(&txn, STAGED_VALUES, name::STAGED_VALUES)?,
            staged_tx_index: open_table(&txn, STAGED_TX_INDEX, name::STAGED_TX_INDEX)?,
            staged,
            head,
            merged_through,
            meta,
            blocks: open_table(&txn, BLOCKS, name::BLOCKS)?,
            headers: open_table(&txn, HEADERS, name::HEADERS)?,
            certificates: open_table(&txn, CERTIFICATES, name::CERTIFICATES)?,
            validator_changes: open_table(&txn, VALIDATOR_CHANGES, name::VALIDATOR_CHANGES)?,
            nodes: open_table(&txn, STATE_NODES, name::STATE_NODES)?,
            values: open_table(&txn, STATE_VALUES, name::STATE_VALUES)?,
            stale: open_table(&txn, STATE_STALE, name::STATE_STALE)?,
            ledger: open_table(&txn, LEDGER_NODES, name::LEDGER_NODES)?,
            tx_index: open_table(&txn, TX_INDEX, name::TX_INDEX)?,
            assets: open_table(&txn, ASSETS_BY_OWNER, name::ASSETS_BY_OWNER)?,
            txn,
        })
    }

    fn meta(&self, key: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.meta.get(key).db("reading table meta")?;
        Ok(value.map(|guard| guard.value().to_vec()))
    }

    /// Whether `init_genesis` has run.
    pub fn has_genesis(&self) -> Result<bool, StoreError> {
        Ok(self.meta(META_GENESIS)?.is_some())
    }

    /// The genesis document the store was initialised with.
    pub fn genesis(&self) -> Result<Genesis, StoreError> {
        let bytes = self.meta(META_GENESIS)?.ok_or(StoreError::NoGenesis)?;
        decode(&bytes, name::META, META_GENESIS, "genesis")
    }

    /// The stored genesis hash (checked against the document on open).
    pub fn genesis_hash(&self) -> Result<Digest, StoreError> {
        let bytes = self.meta(META_GENESIS_HASH)?.ok_or(StoreError::NoGenesis)?;
        decode(&bytes, name::META, META_GENESIS_HASH, "digest")
    }

    /// The height of the last committed block; 0 when only the genesis is stored.
    pub fn head_height(&self) -> Result<u64, StoreError> {
        let bytes = self.meta(META_HEAD)?.ok_or(StoreError::NoGenesis)?;
        read_meta_u64(&bytes, META_HEAD)
    }

    /// The newest state version whose replaced nodes are deleted (0: none yet): the tree reads
    /// whole at this version and every later one. Pruning runs behind the commits, so it may
    /// lag [`super::prunable_through`] the head (checked on open never to pass it).
    pub fn pruned_through(&self) -> Result<u64, StoreError> {
        let bytes = self
            .meta(META_PRUNED_THROUGH)?
            .ok_or_else(|| corrupt(name::META, META_PRUNED_THROUGH, "missing"))?;
        read_meta_u64(&bytes, META_PRUNED_THROUGH)
    }

    /// The committed block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let value = self.blocks.get(height).db("reading table blocks")?;
        value
            .map(|guard| decode(guard.value(), name::BLOCKS, key_height(height), "block"))
            .transpose()
    }

    /// The header at `height` with the hash stored beside it. The hash is not recomputed here;
    /// [`Snapshot::header`] does.
    pub(crate) fn stored_header(&self, height: u64) -> Result<Option<StoredHeader>, StoreError> {
        let value = self.headers.get(height).db("reading table headers")?;
        value
            .map(|guard| decode(guard.value(), name::HEADERS, key_height(height), "header"))
            .transpose()
    }

    /// The header at `height`, checked against its stored hash.
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        let Some(stored) = self.stored_header(height)? else {
            return Ok(None);
        };
        check_header_hash(height, &stored)?;
        Ok(Some(stored.header))
    }

    /// The header at `height`, which must exist.
    pub(crate) fn required_header(&self, height: u64) -> Result<StoredHeader, StoreError> {
        let stored = self
            .stored_header(height)?
            .ok_or_else(|| corrupt(name::HEADERS, key_height(height), "missing"))?;
        check_header_hash(height, &stored)?;
        Ok(stored)
    }

    /// The hash of the block at `height`, or the genesis hash for 0.
    pub(crate) fn block_hash(&self, height: u64) -> Result<Digest, StoreError> {
        if height == 0 {
            return self.genesis_hash();
        }
        Ok(self.required_header(height)?.hash)
    }

    /// The commit certificate of the block at `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StoreError> {
        let value = self
            .certificates
            .get(height)
            .db("reading table certificates")?;
        value
            .map(|guard| {
                decode(
                    guard.value(),
                    name::CERTIFICATES,
                    key_height(height),
                    "certificate",
                )
            })
            .transpose()
    }

    /// The certificate at `height`, which must exist.
    pub(crate) fn required_certificate(
        &self,
        height: u64,
    ) -> Result<CommitCertificate, StoreError> {
        self.certificate(height)?
            .ok_or_else(|| corrupt(name::CERTIFICATES, key_height(height), "missing"))
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        if let Some(location) = self.staged.tx_location(self.merged_through, self.head, id) {
            return Ok(Some(location));
        }
        let key = encoding::encode(id);
        let value = self
            .tx_index
            .get(key.as_slice())
            .db("reading table tx_index")?;
        Ok(value.map(|guard| {
            let (height, index_in_block, ledger_index) = guard.value();
            TxLocation {
                height,
                index_in_block,
                ledger_index,
            }
        }))
    }

    /// A view of the state after block `version` (0: the genesis state). `version` must be at
    /// most this snapshot's head: jmt answers reads past the newest version with the newest
    /// values, so a caller asking for a future version would get the head's state.
    pub fn state(&self, version: u64) -> StateTree<'_, Snapshot> {
        StateTree::new(self, Some(version))
    }

    /// Reads a typed state record at `version`.
    pub(crate) fn state_record<V: bincode::Decode<()>>(
        &self,
        version: u64,
        key: &StateKey,
    ) -> Result<Option<V>, StoreError> {
        let state = self.state(version);
        Overlay::new(&state)
            .get(key)
            .map_err(|error| StoreError::State { version, error })
    }

    /// The ledger head record (height, time, ledger-tree frontier) at `version`.
    pub(crate) fn ledger_head(&self, version: u64) -> Result<LedgerHead, StoreError> {
        self.state_record(version, &StateKey::LedgerHead)?
            .ok_or_else(|| StoreError::State {
                version,
                error: StorageError("the ledger head record is missing".into()),
            })
    }

    /// The validator schedule in the state at `version`.
    pub fn validator_schedule(&self, version: u64) -> Result<ValidatorSchedule, StoreError> {
        self.state_record(version, &StateKey::ValidatorSchedule)?
            .ok_or_else(|| StoreError::State {
                version,
                error: StorageError("the validator schedule is missing".into()),
            })
    }

    /// The validator set deciding `height`, as the state at `version` schedules it.
    pub(crate) fn validators_at(
        &self,
        version: u64,
        height: u64,
    ) -> Result<Vec<Validator>, StoreError> {
        let schedule = self.validator_schedule(version)?;
        let set = schedule.set_at(height).ok_or_else(|| StoreError::State {
            version,
            error: StorageError(format!(
                "the validator schedule has no set for height {height}"
            )),
        })?;
        Ok(set.to_vec())
    }

    /// A receipt for a committed transaction, against the head header: the leaf, its inclusion
    /// proof at the head's ledger size, the head's certificate, and every validator-set change
    /// announced strictly below the head (the head itself is certified by its own set).
    ///
    /// Reads O(log n) ledger nodes, the block holding the transaction, and one header,
    /// certificate and state record per validator change.
    pub fn receipt(&self, id: &TxId) -> Result<Option<Receipt>, StoreError> {
        let Some(location) = self.tx_location(id)? else {
            return Ok(None);
        };
        let leaf = self.leaf_at(id, &location)?;
        let head = self.head_height()?;
        let certified = CertifiedHeader {
            header: self.required_header(head)?.header,
            certificate: self.required_certificate(head)?,
        };
        let inclusion = inclusion_proof(self, location.ledger_index, certified.header.ledger_size)
            .map_err(|error| {
                corrupt(
                    name::LEDGER_NODES,
                    format!(
                        "leaf {} of {}",
                        location.ledger_index, certified.header.ledger_size
                    ),
                    error.to_string(),
                )
            })?;
        Ok(Some(Receipt {
            format_version: RECEIPT_FORMAT_VERSION,
            leaf,
            inclusion,
            certified,
            validator_changes: self.validator_changes_below(head)?,
        }))
    }

    /// The ledger leaf of a located transaction, read from its block.
    fn leaf_at(&self, id: &TxId, location: &TxLocation) -> Result<LedgerLeaf, StoreError> {
        let key = || format!("tx {id}");
        let block = self.block(location.height)?.ok_or_else(|| {
            corrupt(
                name::TX_INDEX,
                key(),
                format!("points to height {}, which has no block", location.height),
            )
        })?;
        let tx = block
            .txs
            .get(location.index_in_block as usize)
            .ok_or_else(|| {
                corrupt(
                    name::TX_INDEX,
                    key(),
                    format!(
                        "points to transaction {} of block {}, which has {}",
                        location.index_in_block,
                        location.height,
                        block.txs.len()
                    ),
                )
            })?;
        if tx.id() != *id {
            return Err(corrupt(
                name::TX_INDEX,
                key(),
                format!(
                    "points to transaction {} of block {}, whose id is {}",
                    location.index_in_block,
                    location.height,
                    tx.id()
                ),
            ));
        }
        Ok(LedgerLeaf {
            height: location.height,
            time_ms: block.header.time_ms,
            tx: tx.clone(),
        })
    }

    /// Every certified validator-set change announced below `head`, oldest first.
    pub(crate) fn validator_changes_below(
        &self,
        head: u64,
    ) -> Result<Vec<ValidatorChange>, StoreError> {
        let range = self
            .validator_changes
            .range(..head)
            .db("reading table validator_changes")?;
        let mut changes = Vec::new();
        for entry in range {
            let (height, _) = entry.db("reading table validator_changes")?;
            let height = height.value();
            if changes.len() == RECEIPT_VALIDATOR_CHANGES_MAX {
                let count = self
                    .validator_changes
                    .range(..head)
                    .db("reading table validator_changes")?
                    .count();
                return Err(StoreError::TooManyValidatorChanges {
                    count,
                    max: RECEIPT_VALIDATOR_CHANGES_MAX,
                });
            }
            let header = self.required_header(height)?.header;
            if header.next_validator_set_hash == header.validator_set_hash {
                return Err(corrupt(
                    name::VALIDATOR_CHANGES,
                    key_height(height),
                    "listed as a validator change, but its header announces none",
                ));
            }
            let next_validators = self.validators_at(height, height + 1)?;
            let next_hash = validator_set_hash(&next_validators);
            if next_hash != header.next_validator_set_hash {
                return Err(corrupt(
                    name::HEADERS,
                    key_height(height),
                    format!(
                        "next_validator_set_hash {} != hash {next_hash} of the set the state at \
                         version {height} schedules for height {}",
                        header.next_validator_set_hash,
                        height + 1
                    ),
                ));
            }
            changes.push(ValidatorChange {
                certified: CertifiedHeader {
                    header,
                    certificate: self.required_certificate(height)?,
                },
                next_validators,
            });
        }
        Ok(changes)
    }

    /// The assets `owner` holds at the head, in the order of their encoded ids, starting after
    /// `after` (for paging), at most `limit` (clamped to [`ASSETS_PAGE_MAX`]).
    pub fn assets_of(
        &self,
        owner: &PartyId,
        after: Option<&AssetId>,
        limit: usize,
    ) -> Result<Vec<AssetId>, StoreError> {
        let owner_key = encoding::encode(owner);
        let start = after.map(encoding::encode).unwrap_or_default();
        let range = self
            .assets
            .range((owner_key.as_slice(), start.as_slice())..)
            .db("reading table assets_by_owner")?;
        let mut assets = Vec::new();
        for entry in range {
            if assets.len() >= limit.min(ASSETS_PAGE_MAX) {
                break;
            }
            let (key, _) = entry.db("reading table assets_by_owner")?;
            let (entry_owner, asset) = key.value();
            if entry_owner != owner_key.as_slice() {
                break;
            }
            if after.is_some() && asset == start.as_slice() {
                continue;
            }
            assets.push(decode(
                asset,
                name::ASSETS_BY_OWNER,
                format!("owner {owner}"),
                "asset id",
            )?);
        }
        Ok(assets)
    }

    /// Reads a state-tree node.
    pub(crate) fn state_node(&self, node_key: &NodeKey) -> Result<Option<Node>, StoreError> {
        let path = node_key_path(node_key);
        let value = self
            .nodes
            .get((node_key.version(), path.as_slice()))
            .db("reading table state_nodes")?;
        value
            .map(|guard| decode_node(guard.value(), node_key))
            .transpose()
    }

    /// The newest value of `key_hash` at a version at most `max_version`; the outer `None` if it
    /// was never written, the inner one for a deletion.
    pub(crate) fn value(
        &self,
        max_version: u64,
        key_hash: [u8; 32],
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let top = max_version.min(self.head);
        if let Some(version) = self
            .staged
            .newest_value_height(self.merged_through, top, &key_hash)
        {
            return self.staged_value(version, key_hash).map(Some);
        }
        let mut range = self
            .values
            .range((key_hash, 0)..=(key_hash, max_version))
            .db("reading table state_values")?;
        match range.next_back() {
            None => Ok(None),
            Some(entry) => {
                let (_, value) = entry.db("reading table state_values")?;
                Ok(Some(value.value().map(<[u8]>::to_vec)))
            }
        }
    }

    /// How many staged value rows and tx-index rows are also in the merged tables: none, unless
    /// a batch was merged in part before a restart. For `verify-store`'s row counts.
    pub(crate) fn staged_rows_also_merged(&self) -> Result<(u64, u64), StoreError> {
        let mut values = 0;
        for entry in self
            .staged_values
            .iter()
            .db("reading table staged_values")?
        {
            let (key, _) = entry.db("reading table staged_values")?;
            let (version, key_hash) = key.value();
            let merged = self
                .values
                .get((key_hash, version))
                .db("reading table state_values")?;
            values += u64::from(merged.is_some());
        }
        let mut txs = 0;
        for entry in self
            .staged_tx_index
            .iter()
            .db("reading table staged_tx_index")?
        {
            let (_, value) = entry.db("reading table staged_tx_index")?;
            let (id, _) = value.value();
            let merged = self.tx_index.get(id).db("reading table tx_index")?;
            txs += u64::from(merged.is_some());
        }
        Ok((values, txs))
    }

    /// Rows the staged heights `first ..= last` add to the merged tables.
    pub(crate) fn staged_rows(&self, first: u64, last: u64) -> u64 {
        self.staged.rows(first, last)
    }

    /// The value staged for `key_hash` at `version`, which the staged heights say was written.
    fn staged_value(
        &self,
        version: u64,
        key_hash: [u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self
            .staged_values
            .get((version, key_hash))
            .db("reading table staged_values")?
            .ok_or_else(|| {
                corrupt(
                    name::STAGED_VALUES,
                    format!("version {version}, key hash {}", hex::encode(key_hash)),
                    "missing, though its height staged it",
                )
            })?;
        Ok(value.value().map(<[u8]>::to_vec))
    }

    /// The value written for `key_hash` at exactly `version`, staged or merged; the outer
    /// `None` if none was. For `verify-store`, which compares every write.
    pub(crate) fn value_written_at(
        &self,
        version: u64,
        key_hash: [u8; 32],
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        if version > self.merged_through {
            let value = self
                .staged_values
                .get((version, key_hash))
                .db("reading table staged_values")?;
            return Ok(value.map(|guard| guard.value().map(<[u8]>::to_vec)));
        }
        let value = self
            .values
            .get((key_hash, version))
            .db("reading table state_values")?;
        Ok(value.map(|guard| guard.value().map(<[u8]>::to_vec)))
    }

    /// The stored hash of ledger-tree node (level, index).
    pub(crate) fn ledger_node(&self, level: u8, index: u64) -> Result<Option<Digest>, StoreError> {
        let value = self
            .ledger
            .get((level, index))
            .db("reading table ledger_nodes")?;
        value
            .map(|guard| {
                decode(
                    guard.value(),
                    name::LEDGER_NODES,
                    format!("level {level}, index {index}"),
                    "digest",
                )
            })
            .transpose()
    }

    /// Whether the stale-node index holds an entry.
    pub(crate) fn has_stale(
        &self,
        stale_since: u64,
        node_key: &NodeKey,
    ) -> Result<bool, StoreError> {
        let path = node_key_path(node_key);
        let value = self
            .stale
            .get((stale_since, node_key.version(), path.as_slice()))
            .db("reading table state_stale_nodes")?;
        Ok(value.is_some())
    }

    /// The last height in the blocks table, to check the head pointer against.
    pub(crate) fn last_block_height(&self) -> Result<Option<u64>, StoreError> {
        let last = self.blocks.last().db("reading table blocks")?;
        Ok(last.map(|(key, _)| key.value()))
    }
}

/// How error messages name a height key.
pub(crate) fn key_height(height: u64) -> String {
    format!("height {height}")
}

fn check_header_hash(height: u64, stored: &StoredHeader) -> Result<(), StoreError> {
    let computed = stored.header.hash();
    if computed != stored.hash {
        return Err(corrupt(
            name::HEADERS,
            key_height(height),
            format!("stored hash {} != computed {computed}", stored.hash),
        ));
    }
    if stored.header.height != height {
        return Err(corrupt(
            name::HEADERS,
            key_height(height),
            format!("the header says height {}", stored.header.height),
        ));
    }
    Ok(())
}

/// Replays are refused through this (see [`TxIndexRead`]).
impl TxIndexRead for Snapshot {
    fn tx_height(&self, id: &TxId) -> Result<Option<u64>, StorageError> {
        self.tx_location(id)
            .map(|location| location.map(|location| location.height))
            .map_err(|error| StorageError(error.to_string()))
    }
}

/// jmt reads the state tree through this; errors carry the store's message.
impl TreeReader for Snapshot {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.state_node(node_key)?)
    }

    fn get_value_option(
        &self,
        max_version: u64,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.value(max_version, key_hash.0)?.flatten())
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("get_rightmost_leaf serves only jmt's restore, which the node never runs")
    }
}

/// Inclusion and consistency proofs read the ledger tree's completed nodes through this.
impl MerkleNodeReader for Snapshot {
    fn node(&self, level: u8, index: u64) -> Result<Option<Digest>, StorageError> {
        self.ledger_node(level, index)
            .map_err(|error| StorageError(error.to_string()))
    }
}
