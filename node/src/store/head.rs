//! The head check run on every open: O(log n) reads and one certificate check, enough to refuse
//! a store whose newest records do not hang together, without re-executing anything.

use super::error::{corrupt, StoreError};
use super::snapshot::{key_height, Snapshot};
use super::tables::{
    name, prunable_through, META_GENESIS, META_GENESIS_HASH, META_HEAD, META_PRUNED_THROUGH,
    STATE_PRUNE_BATCH_VERSIONS,
};
use ledger_core::block::{Block, BlockHeader, CommitCertificate};
use ledger_core::crypto::Digest;
use ledger_core::execute::execute_genesis;
use ledger_core::genesis::{validator_set_hash, Genesis};
use ledger_core::merkle::{empty_root, leaf_hash, LedgerFrontier};
use ledger_core::state::LedgerHead;
use ledger_core::state_tree::{MemoryStateStore, StateTree};

/// The head check of [`super::Store::open`]: O(log n) reads plus one certificate check.
pub(crate) fn check_head(snapshot: &Snapshot) -> Result<(), StoreError> {
    if !snapshot.has_genesis()? {
        let last = snapshot.last_block_height()?;
        let head = snapshot.head_height();
        if last.is_some() || head.is_ok() {
            return Err(corrupt(
                name::META,
                META_GENESIS,
                "missing, but the store holds a head or blocks",
            ));
        }
        return Ok(());
    }
    let genesis = check_genesis(snapshot)?;
    let head = snapshot.head_height()?;
    check_head_pointer(snapshot, head)?;
    check_pruned_through(snapshot, head)?;
    let (state_root, ledger_root, ledger_size, time_ms) = if head == 0 {
        let memory = MemoryStateStore::new();
        let (root, _) =
            execute_genesis(&StateTree::new(&memory, None), &genesis).map_err(|error| {
                corrupt(
                    name::META,
                    META_GENESIS,
                    format!("the stored genesis: {error}"),
                )
            })?;
        (root, empty_root(), 0, genesis.genesis_time_ms)
    } else {
        let stored = snapshot.required_header(head)?;
        let header = &stored.header;
        let block = snapshot
            .block(head)?
            .ok_or_else(|| corrupt(name::BLOCKS, key_height(head), "missing"))?;
        check_block_body(head, &block, header)?;
        if header.chain_id != genesis.chain_id {
            return Err(corrupt(
                name::HEADERS,
                key_height(head),
                format!(
                    "chain id {:?} is not the genesis's {:?}",
                    header.chain_id, genesis.chain_id
                ),
            ));
        }
        let parent = snapshot.block_hash(head - 1)?;
        if header.prev_block_hash != parent {
            return Err(corrupt(
                name::HEADERS,
                key_height(head),
                format!(
                    "prev_block_hash {} != stored hash {parent} of height {}",
                    header.prev_block_hash,
                    head - 1
                ),
            ));
        }
        let validators = snapshot.validators_at(head, head)?;
        let set_hash = validator_set_hash(&validators);
        if set_hash != header.validator_set_hash {
            return Err(corrupt(
                name::HEADERS,
                key_height(head),
                format!(
                    "validator_set_hash {} != hash {set_hash} of the set in state",
                    header.validator_set_hash
                ),
            ));
        }
        let certificate = snapshot.required_certificate(head)?;
        certificate
            .verify(&genesis.chain_id, head, &stored.hash, &validators)
            .map_err(|error| {
                corrupt(
                    name::CERTIFICATES,
                    key_height(head),
                    format!("does not certify block {}: {error}", stored.hash),
                )
            })?;
        (
            header.state_root,
            header.ledger_root,
            header.ledger_size,
            header.time_ms,
        )
    };
    let stored_root = snapshot
        .state(head)
        .root()
        .map_err(|error| StoreError::State {
            version: head,
            error,
        })?;
    if stored_root != state_root {
        return Err(corrupt(
            name::STATE_NODES,
            format!("root at version {head}"),
            format!("stored root {stored_root} != header state_root {state_root}"),
        ));
    }
    let ledger_head = snapshot.ledger_head(head)?;
    check_ledger_head(
        snapshot,
        head,
        &ledger_head,
        time_ms,
        ledger_root,
        ledger_size,
    )
}

/// The stored block is the one its stored header commits to: the same header, and a body
/// whose transaction count, transaction root and carried certificate hash are the header's.
pub(crate) fn check_block_body(
    height: u64,
    block: &Block,
    header: &BlockHeader,
) -> Result<(), StoreError> {
    let bad = |problem: String| Err(corrupt(name::BLOCKS, key_height(height), problem));
    if block.header != *header {
        return bad(format!(
            "the block's header hashes to {}, the one in table {} to {}",
            block.header.hash(),
            name::HEADERS,
            header.hash()
        ));
    }
    if block.txs.len() != header.tx_count as usize {
        return bad(format!(
            "{} transactions, the header says tx_count {}",
            block.txs.len(),
            header.tx_count
        ));
    }
    let mut tx_tree = LedgerFrontier::empty();
    for tx in &block.txs {
        tx_tree.append(leaf_hash(&tx.encode()));
    }
    if tx_tree.root() != header.tx_root {
        return bad(format!(
            "transactions have root {}, the header says tx_root {}",
            tx_tree.root(),
            header.tx_root
        ));
    }
    let carried = block.last_commit.as_ref().map(CommitCertificate::hash);
    if carried != header.last_commit_hash {
        return bad(format!(
            "carried certificate hash {carried:?} != header last_commit_hash {:?}",
            header.last_commit_hash
        ));
    }
    Ok(())
}

/// The genesis decodes and hashes to the stored genesis hash.
pub(crate) fn check_genesis(snapshot: &Snapshot) -> Result<Genesis, StoreError> {
    let genesis = snapshot.genesis()?;
    let stored = snapshot.genesis_hash()?;
    let computed = genesis.hash();
    if computed != stored {
        return Err(corrupt(
            name::META,
            META_GENESIS_HASH,
            format!("stored hash {stored} != computed {computed}"),
        ));
    }
    Ok(genesis)
}

/// The last stored block is the head the meta table names.
pub(crate) fn check_head_pointer(snapshot: &Snapshot, head: u64) -> Result<(), StoreError> {
    let last = snapshot.last_block_height()?;
    if last != (head > 0).then_some(head) {
        return Err(corrupt(
            name::BLOCKS,
            match last {
                Some(last) => format!("last height {last}"),
                None => "no block".into(),
            },
            format!("but {META_HEAD} in table {} is {head}", name::META),
        ));
    }
    Ok(())
}

/// Pruning moved in whole batches and never past what the head allows: a marker beyond it would
/// make `verify-store` accept missing nodes that readers of the recent versions need.
fn check_pruned_through(snapshot: &Snapshot, head: u64) -> Result<(), StoreError> {
    let pruned = snapshot.pruned_through()?;
    let allowed = prunable_through(head);
    if pruned % STATE_PRUNE_BATCH_VERSIONS != 0 || pruned > allowed {
        return Err(corrupt(
            name::META,
            META_PRUNED_THROUGH,
            format!(
                "{pruned}, but pruning moves in batches of {STATE_PRUNE_BATCH_VERSIONS} \
                 versions and reaches at most version {allowed} at head {head}"
            ),
        ));
    }
    Ok(())
}

/// The ledger head in state matches the header, and its frontier the stored ledger nodes.
fn check_ledger_head(
    snapshot: &Snapshot,
    head: u64,
    ledger_head: &LedgerHead,
    time_ms: u64,
    root: Digest,
    size: u64,
) -> Result<(), StoreError> {
    let key = format!("ledger head at version {head}");
    let frontier = &ledger_head.frontier;
    let problem = if ledger_head.height != head || ledger_head.time_ms != time_ms {
        Some(format!(
            "height {} time {} != header height {head} time {time_ms}",
            ledger_head.height, ledger_head.time_ms
        ))
    } else if let Err(error) = frontier.validate() {
        Some(error.to_string())
    } else if frontier.size() != size || frontier.root() != root {
        Some(format!(
            "frontier size {} root {} != header ledger_size {size} ledger_root {root}",
            frontier.size(),
            frontier.root()
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(corrupt(name::STATE_VALUES, key, problem));
    }
    let rebuilt = LedgerFrontier::from_nodes(snapshot, size).map_err(|error| {
        corrupt(
            name::LEDGER_NODES,
            format!("frontier of size {size}"),
            error.to_string(),
        )
    })?;
    if rebuilt != *frontier {
        return Err(corrupt(
            name::LEDGER_NODES,
            format!("frontier of size {size}"),
            format!(
                "stored nodes give root {}, the state's frontier {}",
                rebuilt.root(),
                frontier.root()
            ),
        ));
    }
    Ok(())
}
