//! The tables of the store file, their key and value encodings, and the store's limits.
//!
//! Values that ledger-core defines (blocks, headers, certificates, the genesis, digests) are
//! stored in ledger-core's canonical encoding and decoded strictly, so a flipped byte that redb's
//! checksums somehow let through still fails to decode or to hash to what other records say.
//! State-tree nodes are jmt's own types and are stored in borsh (see [`encode_node`]).

use super::error::{corrupt, StoreError};
use bincode::{Decode, Encode};
use jmt::storage::{Node, NodeKey};
use ledger_core::block::BlockHeader;
use ledger_core::crypto::Digest;
use ledger_core::encoding;
use ledger_core::tx::TxId;
use redb::{TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};

/// The layout version this build writes and reads; stored under `META_FORMAT`. Version 2:
/// replaced state-tree nodes are pruned ([`STATE_VERSIONS_KEPT`]); a version-1 file holds them
/// all, and its first commit would prune its whole history at once, so it is refused. Version 3:
/// committed transaction ids are no longer state keys (replays are refused through the
/// transaction index), so a version-2 state tree holds keys that this build's re-execution
/// never writes, and its state roots differ. Version 4: replaced nodes are pruned in batches
/// ([`STATE_PRUNE_BATCH_VERSIONS`]), so a version-3 file lacks nodes that `verify-store` now
/// expects kept. Version 5: pruning runs behind the commits in its own transactions and records
/// how far it got (`META_PRUNED_THROUGH`); a version-4 file pruned inside each commit, so it is
/// pruned through [`prunable_through`] of its head, and [`super::Store::open`] upgrades it by
/// writing that marker (an older build would never prune what a version-5 file left behind).
/// Version 6: a block's state values and tx-index rows are staged in tables keyed by height and
/// merged into `state_values` and `tx_index` behind the commits (`META_MERGED_THROUGH`); a
/// version-5 file has nothing staged, so it is upgraded by creating the staging tables and
/// marking it merged through its head (an older build would not read what a version-6 file
/// left staged).
pub const STORE_FORMAT_VERSION: u32 = 6;

/// The formats before [`STORE_FORMAT_VERSION`] that [`super::Store::open`] upgrades in place.
pub(crate) const STORE_FORMATS_UPGRADABLE: [u32; 2] = [4, 5];

/// Staged heights are merged into `state_values` and `tx_index` in batches of this many. A
/// block's rows staged by height land on a few new pages, where the same rows keyed by hash
/// dirtied a page each in tables larger than a block; a batch merged at once rewrites each page
/// of those tables at most once for all its heights (docs/PERFORMANCE.md, "Staged indexes").
pub const MERGE_BATCH_HEIGHTS: u64 = 16;

/// The most staged rows one merge step inserts, in one write transaction. A batch is merged in
/// steps by ranges of key hash, so each page of the merged tables is still rewritten by one
/// step only, and a block's commit waits for one step, not a whole batch (as with
/// [`PRUNE_STEP_NODES_MAX`]).
pub const MERGE_STEP_ROWS_MAX: u64 = 16_384;

/// The most heights left staged: a commit that finds this many merges the oldest batch itself
/// before writing, so memory (the staged key hashes and tx locations the store keeps) stays
/// bounded even if merging behind the commits falls behind.
pub const STAGED_HEIGHTS_MAX: u64 = 4 * MERGE_BATCH_HEIGHTS;

/// State-tree versions before the head whose nodes are always kept: after block `h` commits,
/// the tree can be read at least at versions `h - STATE_VERSIONS_KEPT ..= h` (at least
/// [`prunable_through`]`(h) ..= h`; pruning may lag behind). Everything the node reads is at the head (execution,
/// admission, state proofs), and a snapshot is a redb read transaction that keeps its own view
/// while later commits prune, so a small margin suffices; the rest of the history is in the
/// blocks, from which `verify-store` re-executes it.
pub const STATE_VERSIONS_KEPT: u64 = 8;

/// Replaced state-tree nodes are deleted in batches of this many versions (each in steps of at
/// most [`PRUNE_STEP_NODES_MAX`] nodes), once [`prunable_through`] the head reaches the batch's
/// last version. A node sits in a page with nodes written in the same block, which go stale at
/// scattered later heights; deleting one version's worth per commit rewrote a page for nearly
/// every node deleted, and a step of a batch rewrites each page it touches once. On a ledger of
/// 10 million transactions pruning per version was about a third of the bytes written per
/// transaction (docs/PERFORMANCE.md).
pub const STATE_PRUNE_BATCH_VERSIONS: u64 = 16;

/// The most replaced state-tree nodes one pruning step deletes, in one write transaction. A
/// block's commit waits for a step in progress (redb has one writer); on a ledger of 10 million
/// transactions a whole batch of 140,000-430,000 nodes took 7-18 s, at 30-48 µs a node, and
/// was the longest wait a commit had. Steps of this many kept every commit there under 4 s
/// (steps of 65,536 did not), at the price of more bytes written: each step is a durable
/// commit of its own (docs/PERFORMANCE.md, "A ledger of 10 million transactions").
pub const PRUNE_STEP_NODES_MAX: u64 = 16_384;

/// The newest version whose replaced nodes may be pruned once block `height` is the head: nodes
/// stale since a version at or below it may be deleted (0: none yet). A multiple of
/// [`STATE_PRUNE_BATCH_VERSIONS`], at most `height - STATE_VERSIONS_KEPT`. The store records how
/// far it actually pruned (`META_PRUNED_THROUGH`, at most this); that version is the oldest whose
/// tree is whole, since every node of the tree at version `v` goes stale after `v`.
pub fn prunable_through(height: u64) -> u64 {
    let due = height.saturating_sub(STATE_VERSIONS_KEPT);
    due - due % STATE_PRUNE_BATCH_VERSIONS
}

/// Whether block commits use redb's two-phase commit (fsync the data and the new commit slot,
/// then flip and fsync the slot selector). With it, redb refuses a file whose newest commit does
/// not verify ("Primary is corrupted despite 2-phase commit"); with one-phase commit, recovery
/// would instead fall back to the previous commit slot, silently losing the last acknowledged
/// block, which the head check cannot notice because that older store is self-consistent. It
/// costs about 3 ms per block here (10 ms against 7 ms per commit), against a block interval of a
/// second or more.
pub const TWO_PHASE_COMMIT: bool = true;

/// The most assets [`super::Snapshot::assets_of`] returns in one page.
pub const ASSETS_PAGE_MAX: usize = 1_000;

/// Table names, for error messages (redb hands a definition's name out only borrowed).
pub mod name {
    /// Table `meta`.
    pub const META: &str = "meta";
    /// Table `blocks`.
    pub const BLOCKS: &str = "blocks";
    /// Table `headers`.
    pub const HEADERS: &str = "headers";
    /// Table `certificates`.
    pub const CERTIFICATES: &str = "certificates";
    /// Table `validator_changes`.
    pub const VALIDATOR_CHANGES: &str = "validator_changes";
    /// Table `state_nodes`.
    pub const STATE_NODES: &str = "state_nodes";
    /// Table `state_values`.
    pub const STATE_VALUES: &str = "state_values";
    /// Table `state_stale_nodes`.
    pub const STATE_STALE: &str = "state_stale_nodes";
    /// Table `ledger_nodes`.
    pub const LEDGER_NODES: &str = "ledger_nodes";
    /// Table `tx_index`.
    pub const TX_INDEX: &str = "tx_index";
    /// Table `assets_by_owner`.
    pub const ASSETS_BY_OWNER: &str = "assets_by_owner";
    /// Table `staged_values`.
    pub const STAGED_VALUES: &str = "staged_values";
    /// Table `staged_tx_index`.
    pub const STAGED_TX_INDEX: &str = "staged_tx_index";
}

/// Store-wide records by name: format version, genesis, genesis hash, head height, pruned-through
/// version, merged-through height.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new(name::META);
/// [`STORE_FORMAT_VERSION`] as 4 big-endian bytes.
pub(crate) const META_FORMAT: &str = "format_version";
/// The genesis document, canonical encoding.
pub(crate) const META_GENESIS: &str = "genesis";
/// The genesis hash, canonical encoding of the digest.
pub(crate) const META_GENESIS_HASH: &str = "genesis_hash";
/// The height of the last committed block (0: genesis only), 8 big-endian bytes.
pub(crate) const META_HEAD: &str = "head_height";
/// The newest state version whose replaced nodes are deleted, 8 big-endian bytes: a multiple of
/// [`STATE_PRUNE_BATCH_VERSIONS`], at most [`prunable_through`] the head.
pub(crate) const META_PRUNED_THROUGH: &str = "pruned_through";
/// The newest height whose staged rows are merged into `state_values` and `tx_index`, 8
/// big-endian bytes, at most the head; it moves by [`MERGE_BATCH_HEIGHTS`] (from the head a file
/// of an older format had when it was upgraded). The staging tables hold exactly the heights
/// after it.
pub(crate) const META_MERGED_THROUGH: &str = "merged_through";

/// Height → the block, canonical encoding.
pub(crate) const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new(name::BLOCKS);
/// Height → [`StoredHeader`]: the header with its hash, so receipts and the head check read
/// headers without decoding whole blocks.
pub(crate) const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new(name::HEADERS);
/// Height → the commit certificate of that block, canonical encoding.
pub(crate) const CERTIFICATES: TableDefinition<u64, &[u8]> =
    TableDefinition::new(name::CERTIFICATES);
/// Heights whose header announces a validator-set change (`next_validator_set_hash !=
/// validator_set_hash`), so a receipt lists them without scanning every header.
pub(crate) const VALIDATOR_CHANGES: TableDefinition<u64, ()> =
    TableDefinition::new(name::VALIDATOR_CHANGES);
/// State-tree nodes: (version, borsh nibble path) → borsh [`Node`]. Version-major keys make "all
/// nodes written at version v" one range, which pruning will want.
pub(crate) const STATE_NODES: TableDefinition<(u64, &[u8]), &[u8]> =
    TableDefinition::new(name::STATE_NODES);
/// State values: (key hash, version) → value, `None` for a deletion. redb orders the tuple by
/// key hash, then by version numerically, so "newest at or below v" is the last entry of the
/// range (h, 0)..=(h, v).
pub(crate) const STATE_VALUES: TableDefinition<([u8; 32], u64), Option<&[u8]>> =
    TableDefinition::new(name::STATE_VALUES);
/// Nodes made stale: (stale_since_version, node version, borsh nibble path) → (). Pruning
/// deletes the nodes of entries whose stale_since_version is old enough, and the entries.
pub(crate) const STATE_STALE: TableDefinition<(u64, u64, &[u8]), ()> =
    TableDefinition::new(name::STATE_STALE);
/// Ledger-wide RFC 9162 tree: (level, index) → the completed subtree's hash, canonical digest.
pub(crate) const LEDGER_NODES: TableDefinition<(u8, u64), &[u8]> =
    TableDefinition::new(name::LEDGER_NODES);
/// Transaction id (canonical digest) → (height, index in block, ledger index).
pub(crate) const TX_INDEX: TableDefinition<&[u8], (u64, u32, u64)> =
    TableDefinition::new(name::TX_INDEX);
/// State values of the heights after `META_MERGED_THROUGH`: (version, key hash) → value, `None`
/// for a deletion. Version-major, so a block's values are appended together.
pub(crate) const STAGED_VALUES: TableDefinition<(u64, [u8; 32]), Option<&[u8]>> =
    TableDefinition::new(name::STAGED_VALUES);
/// Tx-index rows of the heights after `META_MERGED_THROUGH`: (height, index in block) →
/// (transaction id, canonical digest; ledger index). Height-major, so appended together.
pub(crate) const STAGED_TX_INDEX: TableDefinition<(u64, u32), (&[u8], u64)> =
    TableDefinition::new(name::STAGED_TX_INDEX);
/// (owner party id, asset id), both canonical encodings → (). The party id's encoding starts
/// with its length, so one owner's entries are one contiguous range.
pub(crate) const ASSETS_BY_OWNER: TableDefinition<(&[u8], &[u8]), ()> =
    TableDefinition::new(name::ASSETS_BY_OWNER);

/// Creates a table if the file lacks it.
fn create<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    use super::error::DbContext;
    txn.open_table(table)
        .map(drop)
        .db(&format!("creating table {}", table.name()))
}

/// Creates every table of a new store.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    create(txn, META)?;
    create(txn, BLOCKS)?;
    create(txn, HEADERS)?;
    create(txn, CERTIFICATES)?;
    create(txn, VALIDATOR_CHANGES)?;
    create(txn, STATE_NODES)?;
    create(txn, STATE_VALUES)?;
    create(txn, STATE_STALE)?;
    create(txn, LEDGER_NODES)?;
    create(txn, TX_INDEX)?;
    create(txn, ASSETS_BY_OWNER)?;
    create_staging(txn)
}

/// Creates the staging tables (new in format 6, so also when upgrading an older file).
pub(crate) fn create_staging(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    create(txn, STAGED_VALUES)?;
    create(txn, STAGED_TX_INDEX)
}

/// Where a committed transaction is: its block, its position there, and its leaf in the
/// ledger-wide tree (what an inclusion proof needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    /// Height of the block that committed it.
    pub height: u64,
    /// Its position in that block, from 0.
    pub index_in_block: u32,
    /// Its leaf index in the ledger-wide tree, from 0.
    pub ledger_index: u64,
}

/// A header as stored, with the hash it had when committed: the head check recomputes the hash
/// and compares, so a header altered on disk is named, not trusted.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub(crate) struct StoredHeader {
    /// `header.hash()` at commit.
    pub hash: Digest,
    /// The header.
    pub header: BlockHeader,
}

/// Decodes a canonical ledger-core value read from `table` at `key`.
pub(crate) fn decode<T: Decode<()>>(
    bytes: &[u8],
    table: &'static str,
    key: impl std::fmt::Display,
    what: &'static str,
) -> Result<T, StoreError> {
    encoding::decode(bytes, what).map_err(|error| corrupt(table, key, error.to_string()))
}

/// The redb key of a state-tree node: its version, and its nibble path in borsh.
pub(crate) fn node_key_path(node_key: &NodeKey) -> Vec<u8> {
    borsh::to_vec(node_key.nibble_path()).expect("borsh encodes into memory")
}

/// Encodes a state-tree node.
///
/// borsh, not bincode-with-serde: jmt derives borsh for `Node` and `NodeKey` unconditionally
/// and its users persist nodes that way, borsh has exactly one encoding per value and refuses
/// trailing bytes (`borsh::from_slice`), and the project's bincode is built without serde, which
/// the node would otherwise turn on for the whole workspace.
pub(crate) fn encode_node(node: &Node) -> Vec<u8> {
    borsh::to_vec(node).expect("borsh encodes into memory")
}

/// Decodes a stored state-tree node, refusing any byte that is not part of one.
pub(crate) fn decode_node(bytes: &[u8], node_key: &NodeKey) -> Result<Node, StoreError> {
    borsh::from_slice(bytes).map_err(|error| {
        corrupt(
            name::STATE_NODES,
            format!("node {node_key:?}"),
            format!("undecodable node: {error}"),
        )
    })
}

/// Big-endian bytes of a meta number, so the file is readable with any redb tool.
pub(crate) fn meta_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

/// A `staged_tx_index` row as the transaction it indexes and where that is.
pub(crate) fn decode_staged_tx(
    (height, index_in_block): (u64, u32),
    (id, ledger_index): (&[u8], u64),
) -> Result<(TxId, TxLocation), StoreError> {
    let id = decode(
        id,
        name::STAGED_TX_INDEX,
        format!("height {height}, index {index_in_block}"),
        "tx id",
    )?;
    let location = TxLocation {
        height,
        index_in_block,
        ledger_index,
    };
    Ok((id, location))
}

/// Reads the stored format version (4 big-endian bytes).
pub(crate) fn read_meta_format(bytes: &[u8]) -> Result<u32, StoreError> {
    let array: [u8; 4] = bytes.try_into().map_err(|_| {
        corrupt(
            name::META,
            META_FORMAT,
            format!("{} bytes, expected 4", bytes.len()),
        )
    })?;
    Ok(u32::from_be_bytes(array))
}

/// Reads a big-endian meta number.
pub(crate) fn read_meta_u64(bytes: &[u8], key: &'static str) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        corrupt(
            name::META,
            key,
            format!("{} bytes, expected 8", bytes.len()),
        )
    })?;
    Ok(u64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pruning keeps at least the last `STATE_VERSIONS_KEPT` versions, moves only in whole
    /// batches, and never lags a full batch behind.
    #[test]
    fn pruning_moves_in_whole_batches_and_keeps_the_recent_versions() {
        let mut previous = 0;
        for height in 0..10 * STATE_PRUNE_BATCH_VERSIONS {
            let through = prunable_through(height);
            assert_eq!(through % STATE_PRUNE_BATCH_VERSIONS, 0, "height {height}");
            assert!(through + STATE_VERSIONS_KEPT <= height.max(STATE_VERSIONS_KEPT));
            assert!(
                through + STATE_VERSIONS_KEPT + STATE_PRUNE_BATCH_VERSIONS > height,
                "height {height}: pruned through {through} lags a batch"
            );
            assert!(
                through == previous || through == previous + STATE_PRUNE_BATCH_VERSIONS,
                "height {height}: one batch at a time"
            );
            previous = through;
        }
        assert_eq!(
            prunable_through(STATE_VERSIONS_KEPT + STATE_PRUNE_BATCH_VERSIONS - 1),
            0
        );
        assert_eq!(
            prunable_through(STATE_VERSIONS_KEPT + STATE_PRUNE_BATCH_VERSIONS),
            STATE_PRUNE_BATCH_VERSIONS
        );
    }
}
