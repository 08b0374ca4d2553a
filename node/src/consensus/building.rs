//! Building this node's proposals from its mempool.
//!
//! A proposer builds at the engine's request (`GetValue`), on the committed state. But when
//! more transactions wait than a block holds, the chain is behind its load and every height
//! runs build, check and commit one after another. Then the proposer of the next height does
//! not wait for the request: as soon as a height is decided it starts building the next block,
//! over the decided block that is still being committed (ledger-core's `PendingHead`: the
//! block's update over the state before it), so that the durable commit and the build overlap.
//! Nothing is lost by not waiting: the block would be full either way.
//!
//! Either way a block holds only transactions that were in the mempool when its time was read,
//! so a block's time never precedes the admission of a transaction it holds: an evidence
//! attestation is never dated before it was submitted.

use super::context::{Address, Height, IpledgerContext, ValidatorSet};
use crate::mempool::Mempool;
use crate::store::Snapshot;
use anyhow::{Context as _, Result};
use ledger_core::block::CommitCertificate;
use ledger_core::execute::{BlockBuilder, ExecutedBlock, Parent, PendingHead};
use ledger_core::rejection::TxError;
use ledger_core::rules::{BlockContext, VerifiedTx};
use ledger_core::state::{Overlay, StateKey, TxIndexRead, ValidatorSchedule};
use ledger_core::state_tree::{StateTree, TreeReader};
use ledger_core::tx::TxId;
use malachitebft_core_types::{Context as _, Round};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::JoinHandle;

/// A block built from the mempool, and the transactions the rules refused while building it
/// (they leave the mempool).
pub struct BuiltBlock {
    /// The block and its writes.
    pub executed: ExecutedBlock,
    /// The refused transactions.
    pub refused: HashSet<TxId>,
}

/// What a proposer's block is built from, besides the state and the mempool.
pub struct Proposing<'a> {
    /// The block's height.
    pub height: u64,
    /// Its parent's hash and certificate.
    pub parent: Parent,
    /// Its parent's time: the block's must be later.
    pub parent_time_ms: u64,
    /// This node's validator address.
    pub proposer: Address,
    /// The local clock, in Unix milliseconds.
    pub clock_ms: &'a (dyn Fn() -> u64 + Send + Sync),
    /// When building stops taking transactions.
    pub deadline: Instant,
}

/// Builds the block `proposing` names on `state` (the state after its parent) from the
/// mempool's transactions, in mempool order, stopping at the block limits or at the deadline.
/// Transactions in `parent_txs` (the parent's, when it is still being committed and so still
/// in the mempool) are passed over.
///
/// The block time is read and the transactions are copied out under the mempool's lock, as many
/// as the block can hold; so every transaction the block holds was admitted before its time was
/// read, and admission goes on while the block is built. A transaction admitted after the copy
/// waits for the next block.
pub fn build<R: TreeReader + TxIndexRead>(
    state: &StateTree<'_, R>,
    mempool: &Mutex<Mempool>,
    parent_txs: &HashSet<TxId>,
    proposing: Proposing<'_>,
) -> Result<BuiltBlock> {
    let (mut builder, candidates) = {
        let mempool = mempool.lock().expect("mempool lock");
        let ctx = BlockContext {
            height: proposing.height,
            time_ms: (proposing.clock_ms)().max(proposing.parent_time_ms + 1),
        };
        let builder = BlockBuilder::new(state, ctx)?;
        let candidates: Vec<VerifiedTx> = mempool
            .iter()
            .filter(|vtx| !parent_txs.contains(&vtx.id()))
            .take(builder.room())
            .cloned()
            .collect();
        (builder, candidates)
    };
    let mut refused = HashSet::new();
    for vtx in &candidates {
        if Instant::now() > proposing.deadline {
            break;
        }
        match builder.push(vtx) {
            Ok(true) => {}
            Ok(false) => break,
            Err(TxError::Rejected(_)) => {
                refused.insert(vtx.id());
            }
            Err(TxError::Storage(error)) => return Err(error.into()),
        }
    }
    let executed = builder.finish(state, proposing.proposer.public_key(), proposing.parent)?;
    Ok(BuiltBlock { executed, refused })
}

/// What an early build needs besides the block being committed.
pub struct EarlyInputs {
    /// The committed state before the decided block (taken before its commit starts).
    pub before: Snapshot,
    /// The decided block's certificate, which the next block carries.
    pub certificate: CommitCertificate,
    /// The mempool to build from.
    pub mempool: Arc<Mutex<Mempool>>,
    /// This node's validator address.
    pub proposer: Address,
    /// The consensus context, which names each round's proposer.
    pub ctx: IpledgerContext,
    /// The local clock, in Unix milliseconds.
    pub clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// When building stops taking transactions.
    pub deadline: Instant,
}

/// The next height's block, being built over the decided block while that block commits.
pub struct EarlyProposal {
    /// The height of the block being built.
    pub height: u64,
    task: JoinHandle<Result<Option<BuiltBlock>>>,
}

impl EarlyProposal {
    /// Starts building the block after `decided` on a blocking thread, if this node proposes
    /// its first round.
    pub fn start(decided: Arc<ExecutedBlock>, inputs: EarlyInputs) -> EarlyProposal {
        let height = decided.block.header.height + 1;
        let task = tokio::task::spawn_blocking(move || build_early(&decided, inputs));
        EarlyProposal { height, task }
    }

    /// The built block; `None` if this node does not propose the height's first round.
    pub async fn finish(self) -> Result<Option<BuiltBlock>> {
        self.task
            .await
            .context("the early build of a proposal panicked")?
    }
}

fn build_early(decided: &ExecutedBlock, inputs: EarlyInputs) -> Result<Option<BuiltBlock>> {
    let decided_height = decided.block.header.height;
    let height = decided_height + 1;
    let pending = PendingHead::new(&inputs.before, decided);
    let state = StateTree::new(&pending, Some(decided_height));
    let schedule: ValidatorSchedule = Overlay::new(&state)
        .get(&StateKey::ValidatorSchedule)?
        .context("validator schedule missing from state")?;
    let validators = schedule
        .set_at(height)
        .with_context(|| format!("no validator set for height {height}"))?;
    let set = ValidatorSet::from_ledger(validators);
    let first = inputs
        .ctx
        .select_proposer(&set, Height(height), Round::new(0));
    if first.address != inputs.proposer {
        return Ok(None);
    }
    let proposing = Proposing {
        height,
        parent: Parent {
            hash: decided.block.header.hash(),
            certificate: Some(inputs.certificate),
        },
        parent_time_ms: decided.block.header.time_ms,
        proposer: inputs.proposer,
        clock_ms: &*inputs.clock_ms,
        deadline: inputs.deadline,
    };
    build(&state, &inputs.mempool, pending.tx_ids(), proposing).map(Some)
}
