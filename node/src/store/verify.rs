//! The full check behind `ipledger-node verify-store`: re-execute the chain from genesis in
//! memory and compare every stored record with what execution wrote.

use super::error::{corrupt, DbContext, StoreError};
use super::head::{check_block_body, check_genesis, check_head_pointer};
use super::index::owner_changes;
use super::snapshot::{key_height, Snapshot};
use super::tables::{
    decode_node, name, node_key_path, prunable_through, META_GENESIS, STATE_PRUNE_BATCH_VERSIONS,
};
use ledger_core::block::Block;
use ledger_core::crypto::Digest;
use ledger_core::encoding;
use ledger_core::execute::{execute_block, execute_genesis};
use ledger_core::genesis::Genesis;
use ledger_core::merkle::{empty_root, LedgerFrontier, MemoryMerkleStore};
use ledger_core::rules::VerifiedTx;
use ledger_core::state::{Overlay, StateKey, ValidatorSchedule};
use ledger_core::state_tree::{MemoryStateStore, StateTree, StateTreeUpdate};
use ledger_core::types::{AssetId, PartyId};
use redb::{ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What [`super::Store::verify_chain`] checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Blocks re-executed (heights 1 to the head).
    pub heights_checked: u64,
    /// Transactions re-executed.
    pub transactions: u64,
    /// The head's block hash (the genesis hash at height 0).
    pub head_hash: Digest,
    /// The state root at the head.
    pub state_root: Digest,
    /// Leaves of the ledger-wide tree at the head.
    pub ledger_size: u64,
    /// State-tree nodes compared with re-execution's.
    pub state_nodes: u64,
    /// State values (and deletion markers) compared with re-execution's.
    pub state_values: u64,
    /// Ledger-tree nodes compared with re-execution's.
    pub ledger_nodes: u64,
}

/// What re-execution wrote, to compare with what the tables hold.
#[derive(Default)]
struct Expected {
    /// Stale entries since this version or older, and their nodes, were pruned (the store's
    /// `pruned_through`, which the open's head check bounds by the head).
    pruned_through: u64,
    /// The last version of the batch after `pruned_through` if the head allows it, which may
    /// be pruned in part (a crash between two steps): its entries may be gone, each with its
    /// node. `pruned_through` otherwise.
    partly_pruned_through: u64,
    /// Re-executed nodes not in `state_nodes`: each must turn out pruned (go stale at or
    /// before `pruned_through`) by the end of the chain. Keyed by (version, nibble path).
    absent_nodes: BTreeSet<(u64, Vec<u8>)>,
    nodes: u64,
    values: u64,
    stale: u64,
    ledger_nodes: u64,
    transactions: u64,
    validator_changes: u64,
    owners: BTreeMap<AssetId, PartyId>,
}

/// Re-executes the chain from genesis; see [`super::Store::verify_chain`].
pub(crate) fn verify_chain(snapshot: &Snapshot) -> Result<VerifyReport, StoreError> {
    let at_genesis = |error: StoreError| StoreError::ChainInvalid {
        height: 0,
        problem: error.to_string(),
    };
    let genesis = check_genesis(snapshot).map_err(at_genesis)?;
    let head = snapshot.head_height()?;
    check_head_pointer(snapshot, head).map_err(at_genesis)?;
    let mut memory = MemoryStateStore::new();
    let mut merkle = MemoryMerkleStore::default();
    let pruned_through = snapshot.pruned_through()?;
    let next_batch_through = pruned_through + STATE_PRUNE_BATCH_VERSIONS;
    let mut expected = Expected {
        pruned_through,
        partly_pruned_through: if next_batch_through <= prunable_through(head) {
            next_batch_through
        } else {
            pruned_through
        },
        ..Expected::default()
    };
    let (_, update) = execute_genesis(&StateTree::new(&memory, None), &genesis)
        .map_err(|error| at_genesis(corrupt(name::META, META_GENESIS, error.to_string())))?;
    compare_update(snapshot, &update, &mut expected).map_err(at_genesis)?;
    memory.write(&update);
    let mut parent_hash = genesis.hash();
    for height in 1..=head {
        let at_height = |error: StoreError| match error {
            StoreError::ChainInvalid { .. } => error,
            error => StoreError::ChainInvalid {
                height,
                problem: error.to_string(),
            },
        };
        parent_hash = verify_height(
            snapshot,
            &genesis,
            height,
            parent_hash,
            &mut memory,
            &mut merkle,
            &mut expected,
        )
        .map_err(at_height)?;
    }
    let at_head = |error: StoreError| StoreError::ChainInvalid {
        height: head,
        problem: error.to_string(),
    };
    if let Some((version, path)) = expected.absent_nodes.first() {
        return Err(at_head(corrupt(
            name::STATE_NODES,
            format!("version {version}, path {}", hex::encode(path)),
            "missing, though still part of the tree after the pruned versions",
        )));
    }
    check_counts(snapshot, head, &expected).map_err(at_head)?;
    check_owner_index(snapshot, &expected.owners).map_err(at_head)?;
    let state_root = StateTree::new(&memory, Some(head))
        .root()
        .map_err(|error| {
            at_head(StoreError::State {
                version: head,
                error,
            })
        })?;
    let ledger_size = expected.transactions;
    let frontier = LedgerFrontier::from_nodes(&merkle, ledger_size)
        .map_err(|error| at_head(corrupt(name::LEDGER_NODES, "-", error.to_string())))?;
    let head_root = match head {
        0 => empty_root(),
        _ => {
            snapshot
                .required_header(head)
                .map_err(at_head)?
                .header
                .ledger_root
        }
    };
    if frontier.root() != head_root {
        return Err(at_head(corrupt(
            name::LEDGER_NODES,
            "-",
            format!(
                "re-executed ledger root {} != head ledger_root {head_root}",
                frontier.root()
            ),
        )));
    }
    Ok(VerifyReport {
        heights_checked: head,
        transactions: expected.transactions,
        head_hash: parent_hash,
        state_root,
        ledger_size,
        state_nodes: expected.nodes,
        state_values: expected.values,
        ledger_nodes: expected.ledger_nodes,
    })
}

/// Re-executes block `height` on `memory` and compares everything stored for it. Returns the
/// block's hash.
fn verify_height(
    snapshot: &Snapshot,
    genesis: &Genesis,
    height: u64,
    parent_hash: Digest,
    memory: &mut MemoryStateStore,
    merkle: &mut MemoryMerkleStore,
    expected: &mut Expected,
) -> Result<Digest, StoreError> {
    let invalid = |problem: String| StoreError::ChainInvalid { height, problem };
    let stored = snapshot.required_header(height)?;
    let block: Block = snapshot
        .block(height)?
        .ok_or_else(|| corrupt(name::BLOCKS, key_height(height), "missing"))?;
    check_block_body(height, &block, &stored.header)?;
    if block.header.prev_block_hash != parent_hash {
        return Err(invalid(format!(
            "prev_block_hash {} != hash {parent_hash} of height {}",
            block.header.prev_block_hash,
            height - 1
        )));
    }
    let mut verified = Vec::with_capacity(block.txs.len());
    for (index, result) in VerifiedTx::verify_many(block.txs.clone())
        .into_iter()
        .enumerate()
    {
        let vtx = result.map_err(|rejection| {
            invalid(format!(
                "transaction {index} ({}): {rejection}",
                block.txs[index].id()
            ))
        })?;
        verified.push(vtx);
    }
    let before = StateTree::new(&*memory, Some(height - 1));
    let executed = execute_block(&before, &block, &verified, parent_hash)
        .map_err(|error| invalid(format!("re-execution refuses the block: {error}")))?;
    if executed.block != block {
        return Err(invalid("re-execution produced a different block".into()));
    }
    let schedule: ValidatorSchedule = Overlay::new(&before)
        .get(&StateKey::ValidatorSchedule)
        .ok()
        .flatten()
        .ok_or_else(|| invalid("no validator schedule in the re-executed state".into()))?;
    let validators = schedule
        .set_at(height)
        .ok_or_else(|| invalid(format!("no validator set for height {height}")))?;
    let certificate = snapshot.required_certificate(height)?;
    certificate
        .verify(&genesis.chain_id, height, &stored.hash, validators)
        .map_err(|error| {
            corrupt(
                name::CERTIFICATES,
                key_height(height),
                format!("does not certify block {}: {error}", stored.hash),
            )
        })?;
    compare_update(snapshot, &executed.state_update, expected)?;
    for node in &executed.ledger_nodes {
        let key = format!("level {}, index {}", node.level, node.index);
        match snapshot.ledger_node(node.level, node.index)? {
            Some(hash) if hash == node.hash => {}
            other => {
                return Err(corrupt(
                    name::LEDGER_NODES,
                    key,
                    format!("stored {other:?} != re-executed {}", node.hash),
                ))
            }
        }
    }
    expected.ledger_nodes += executed.ledger_nodes.len() as u64;
    let first_leaf = block.header.ledger_size - executed.leaves.len() as u64;
    for (index, leaf) in executed.leaves.iter().enumerate() {
        let id = leaf.tx.id();
        let location = snapshot.tx_location(&id)?;
        let want = (height, index as u32, first_leaf + index as u64);
        if location.map(|l| (l.height, l.index_in_block, l.ledger_index)) != Some(want) {
            return Err(corrupt(
                name::TX_INDEX,
                format!("tx {id}"),
                format!("stored {location:?} != re-executed {want:?}"),
            ));
        }
    }
    expected.transactions += executed.leaves.len() as u64;
    let announces = block.header.next_validator_set_hash != block.header.validator_set_hash;
    expected.validator_changes += u64::from(announces);
    for change in owner_changes(&*memory, &executed).map_err(|error| StoreError::State {
        version: height - 1,
        error,
    })? {
        expected.owners.insert(change.asset, change.to);
    }
    memory.commit(&executed);
    merkle.insert(&executed.ledger_nodes);
    Ok(stored.hash)
}

/// Every node, value and stale entry of one re-executed version is stored exactly, except the
/// nodes and stale entries pruned since: a node absent now must go stale at or before
/// `expected.pruned_through`, or in the batch after it with its stale entry gone too (checked
/// when its stale entry comes, and at the end of the chain).
fn compare_update(
    snapshot: &Snapshot,
    update: &StateTreeUpdate,
    expected: &mut Expected,
) -> Result<(), StoreError> {
    for (node_key, node) in update.nodes() {
        let path = node_key_path(node_key);
        let stored = snapshot
            .nodes
            .get((node_key.version(), path.as_slice()))
            .db("reading table state_nodes")?;
        let stored = stored
            .map(|guard| decode_node(guard.value(), node_key))
            .transpose()?;
        match stored {
            Some(stored) if stored == *node => expected.nodes += 1,
            Some(_) => {
                return Err(corrupt(
                    name::STATE_NODES,
                    format!("node {node_key:?}"),
                    "stored node differs from re-execution's",
                ))
            }
            None => {
                expected.absent_nodes.insert((node_key.version(), path));
            }
        }
    }
    for ((version, key_hash), value) in update.values() {
        let stored = snapshot.value_written_at(*version, key_hash.0)?;
        if stored.as_ref() != Some(value) {
            return Err(corrupt(
                name::STATE_VALUES,
                format!("key hash {}, version {version}", hex::encode(key_hash.0)),
                "stored value differs from re-execution's",
            ));
        }
    }
    for entry in update.stale_nodes() {
        let key = || {
            format!(
                "stale since {}, node {:?}",
                entry.stale_since_version, entry.node_key
            )
        };
        let stored = snapshot.has_stale(entry.stale_since_version, &entry.node_key)?;
        if stored {
            if entry.stale_since_version <= expected.pruned_through {
                return Err(corrupt(name::STATE_STALE, key(), "not pruned"));
            }
            expected.stale += 1;
            continue;
        }
        if entry.stale_since_version > expected.partly_pruned_through {
            return Err(corrupt(name::STATE_STALE, key(), "missing"));
        }
        let node = (entry.node_key.version(), node_key_path(&entry.node_key));
        if !expected.absent_nodes.remove(&node) {
            return Err(corrupt(
                name::STATE_NODES,
                format!("node {:?}", entry.node_key),
                format!(
                    "still stored, though stale since version {} and pruned through {}",
                    entry.stale_since_version, expected.pruned_through
                ),
            ));
        }
    }
    expected.values += update.values().len() as u64;
    Ok(())
}

/// No table holds entries that re-execution did not write.
fn check_counts(snapshot: &Snapshot, head: u64, expected: &Expected) -> Result<(), StoreError> {
    fn count<K: redb::Key + 'static, V: redb::Value + 'static>(
        table: &redb::ReadOnlyTable<K, V>,
        name: &'static str,
    ) -> Result<u64, StoreError> {
        table.len().db(&format!("counting table {name}"))
    }
    // Rows of a batch merged in part (a crash between its steps) are in both tables, alike.
    let (values_in_both, txs_in_both) = snapshot.staged_rows_also_merged()?;
    let counts = [
        (
            name::STATE_NODES,
            count(&snapshot.nodes, name::STATE_NODES)?,
            expected.nodes,
        ),
        (
            name::STATE_VALUES,
            count(&snapshot.values, name::STATE_VALUES)?
                + count(&snapshot.staged_values, name::STAGED_VALUES)?
                - values_in_both,
            expected.values,
        ),
        (
            name::STATE_STALE,
            count(&snapshot.stale, name::STATE_STALE)?,
            expected.stale,
        ),
        (
            name::LEDGER_NODES,
            count(&snapshot.ledger, name::LEDGER_NODES)?,
            expected.ledger_nodes,
        ),
        (
            name::TX_INDEX,
            count(&snapshot.tx_index, name::TX_INDEX)?
                + count(&snapshot.staged_tx_index, name::STAGED_TX_INDEX)?
                - txs_in_both,
            expected.transactions,
        ),
        (name::BLOCKS, count(&snapshot.blocks, name::BLOCKS)?, head),
        (
            name::HEADERS,
            count(&snapshot.headers, name::HEADERS)?,
            head,
        ),
        (
            name::CERTIFICATES,
            count(&snapshot.certificates, name::CERTIFICATES)?,
            head,
        ),
        (
            name::VALIDATOR_CHANGES,
            count(&snapshot.validator_changes, name::VALIDATOR_CHANGES)?,
            expected.validator_changes,
        ),
    ];
    for (table, stored, wanted) in counts {
        if stored != wanted {
            return Err(corrupt(
                table,
                "-",
                format!("holds {stored} entries, re-execution wrote {wanted}"),
            ));
        }
    }
    Ok(())
}

/// The assets-by-owner table is exactly the owners re-execution derived.
fn check_owner_index(
    snapshot: &Snapshot,
    owners: &BTreeMap<AssetId, PartyId>,
) -> Result<(), StoreError> {
    let wanted: BTreeSet<(Vec<u8>, Vec<u8>)> = owners
        .iter()
        .map(|(asset, owner)| (encoding::encode(owner), encoding::encode(asset)))
        .collect();
    let mut stored = BTreeSet::new();
    for entry in snapshot.assets.iter().db("reading table assets_by_owner")? {
        let (key, _) = entry.db("reading table assets_by_owner")?;
        let (owner, asset) = key.value();
        stored.insert((owner.to_vec(), asset.to_vec()));
    }
    if let Some((owner, asset)) = stored.symmetric_difference(&wanted).next() {
        let side = if stored.contains(&(owner.clone(), asset.clone())) {
            "stored but not derived by re-execution"
        } else {
            "derived by re-execution but not stored"
        };
        return Err(corrupt(
            name::ASSETS_BY_OWNER,
            format!("owner {}, asset {}", hex::encode(owner), hex::encode(asset)),
            side,
        ));
    }
    Ok(())
}
