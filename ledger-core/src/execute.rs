//! Executing blocks on a throw-away view of the state.
//!
//! The proposer builds a block with [`BlockBuilder`], leaving out transactions the rules refuse;
//! every other validator runs [`execute_block`], which refuses the whole block if any
//! transaction fails or any header field differs from what execution produced. Either way the
//! result is an [`ExecutedBlock`]: the block plus the writes the node commits in one database
//! transaction. Nothing is written before that, so a refused block leaves no trace.

use crate::block::{Block, BlockHeader, CertificateError, CommitCertificate, LedgerLeaf};
use crate::crypto::{Digest, PublicKey};
use crate::genesis::{validator_set_hash, Genesis};
use crate::merkle::{leaf_hash, CompletedNode, LedgerFrontier};
use crate::rejection::{Rejection, TxError};
use crate::rules::{apply_tx, BlockContext, VerifiedTx};
use crate::state::{
    chain_record, ledger_head, ChainRecord, LedgerHead, Overlay, PartyRecord, StateKey, StateRead,
    TxIndexRead, ValidatorSchedule, ValidatorSetEntry, WriteSet,
};
use crate::state_tree::{MemoryStateStore, StateTree, StateTreeUpdate, TreeReader};
use crate::storage::StorageError;
use crate::tx::{SignedTx, TxId};
use jmt::storage::{LeafNode, Node, NodeKey};
use jmt::KeyHash;
use std::cell::OnceCell;
use std::collections::HashSet;

/// Why a block cannot be built or is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block does not follow the last committed one.
    #[error("block height {got} does not follow committed height {committed}")]
    WrongHeight {
        /// The committed height.
        committed: u64,
        /// The block's height.
        got: u64,
    },
    /// Block time does not move forward.
    #[error("block time {got} ms is not after the previous block's {previous} ms")]
    TimeNotIncreasing {
        /// The previous block's time.
        previous: u64,
        /// This block's time.
        got: u64,
    },
    /// A transaction in a proposed block is refused.
    #[error("transaction {index} ({id}) is invalid: {error}")]
    InvalidTransaction {
        /// Its position in the block.
        index: usize,
        /// Its id.
        id: Digest,
        /// The refusal (boxed: rejections carry asset ids and names, and blocks are refused
        /// rarely, so the common `Ok` path stays small).
        error: Box<Rejection>,
    },
    /// A block limit is exceeded.
    #[error("block exceeds its limit of {max} {what}")]
    TooLarge {
        /// Which limit.
        what: &'static str,
        /// The limit.
        max: u64,
    },
    /// A header field differs from what executing the block produced.
    #[error("header field {field} does not match execution")]
    HeaderMismatch {
        /// The field.
        field: &'static str,
    },
    /// The previous block's certificate is missing, superfluous or invalid.
    #[error("last commit: {0}")]
    LastCommit(String),
    /// The carried certificate is invalid.
    #[error("last commit certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// Storage failed; the node must stop, not decide.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The committed block before the one being executed, as the executor needs it.
#[derive(Clone, Debug)]
pub struct Parent {
    /// The previous block's hash (the genesis hash before height 1).
    pub hash: Digest,
    /// The previous block's certificate, to carry in this block (`None` before height 1).
    pub certificate: Option<CommitCertificate>,
}

/// A block together with everything its commit writes.
#[derive(Debug)]
pub struct ExecutedBlock {
    /// The block.
    pub block: Block,
    /// The state tree's new nodes and values.
    pub state_update: StateTreeUpdate,
    /// Ledger-tree subtrees completed by this block, for serving inclusion proofs.
    pub ledger_nodes: Vec<CompletedNode>,
    /// The ledger leaves appended, in order; the first has index `header.ledger_size - len`.
    pub leaves: Vec<LedgerLeaf>,
    /// The ids of `block.txs`, in order, as their signature checks computed them, so that the
    /// commit, the transaction index and the mempool need not hash the bodies again.
    pub tx_ids: Vec<TxId>,
}

impl MemoryStateStore {
    /// Commits an executed block's state: its tree update and the transaction ids it commits,
    /// as the node's store does in the block's one database transaction. Kept here, beside the
    /// block type, so that the state tree's module needs no knowledge of blocks.
    pub fn commit(&mut self, executed: &ExecutedBlock) {
        self.write(&executed.state_update);
        self.index_txs(
            executed.block.header.height,
            executed.tx_ids.iter().copied(),
        );
    }
}

/// The state after an executed block that is not stored yet, read as a [`TreeReader`] and
/// transaction index: the block's new tree nodes and values and its transactions' ids, over a
/// reader of the state before it.
///
/// A proposer builds the next block on it while its node commits this one, so building and
/// the durable commit overlap. It answers exactly what the store answers once the block is
/// committed (a property test checks this), so a block built on it is the block that would be
/// built after the commit.
pub struct PendingHead<'a, R> {
    /// The state before the block (its parent's version and below).
    before: &'a R,
    /// The block, not yet stored.
    executed: &'a ExecutedBlock,
    /// The ids of the block's transactions, gathered on first use (a reader that never asks
    /// does not pay for the set).
    ids: OnceCell<HashSet<TxId>>,
}

impl<'a, R> PendingHead<'a, R> {
    /// The state after `executed`, whose parent's state `before` holds.
    pub fn new(before: &'a R, executed: &'a ExecutedBlock) -> PendingHead<'a, R> {
        PendingHead {
            before,
            executed,
            ids: OnceCell::new(),
        }
    }

    /// The ids of the block's transactions: committed as far as this state knows. A proposer
    /// building over it passes them over in its mempool, where they wait until the commit ends.
    pub fn tx_ids(&self) -> &HashSet<TxId> {
        self.ids
            .get_or_init(|| self.executed.tx_ids.iter().copied().collect())
    }
}

impl<R: TreeReader> TreeReader for PendingHead<'_, R> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self.executed.state_update.nodes().get(node_key) {
            Some(node) => Ok(Some(node.clone())),
            None => self.before.get_node_option(node_key),
        }
    }

    fn get_value_option(
        &self,
        max_version: u64,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let version = self.executed.block.header.height;
        if max_version >= version {
            if let Some(written) = self
                .executed
                .state_update
                .values()
                .get(&(version, key_hash))
            {
                return Ok(written.clone());
            }
        }
        self.before.get_value_option(max_version, key_hash)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("get_rightmost_leaf serves only jmt's restore, which ledger-core never uses")
    }
}

impl<R: TxIndexRead> TxIndexRead for PendingHead<'_, R> {
    fn tx_height(&self, id: &TxId) -> Result<Option<u64>, StorageError> {
        if self.tx_ids().contains(id) {
            return Ok(Some(self.executed.block.header.height));
        }
        self.before.tx_height(id)
    }
}

/// Builds a block transaction by transaction on top of committed state.
pub struct BlockBuilder<'a> {
    overlay: Overlay<'a>,
    ctx: BlockContext,
    chain: ChainRecord,
    frontier: LedgerFrontier,
    ledger_nodes: Vec<CompletedNode>,
    tx_frontier: LedgerFrontier,
    leaves: Vec<LedgerLeaf>,
    tx_ids: Vec<TxId>,
    bytes: u64,
}

impl<'a> BlockBuilder<'a> {
    /// Starts block `ctx.height` on `state`, which must be the state after height `ctx.height-1`.
    pub fn new(
        state: &'a dyn StateRead,
        ctx: BlockContext,
    ) -> Result<BlockBuilder<'a>, BlockError> {
        let overlay = Overlay::caching_reads(state);
        let chain = chain_record(&overlay)?;
        let head = ledger_head(&overlay)?;
        if ctx.height != head.height + 1 {
            return Err(BlockError::WrongHeight {
                committed: head.height,
                got: ctx.height,
            });
        }
        if ctx.time_ms <= head.time_ms {
            return Err(BlockError::TimeNotIncreasing {
                previous: head.time_ms,
                got: ctx.time_ms,
            });
        }
        Ok(BlockBuilder {
            overlay,
            ctx,
            chain,
            frontier: head.frontier,
            ledger_nodes: Vec::new(),
            tx_frontier: LedgerFrontier::empty(),
            leaves: Vec::new(),
            tx_ids: Vec::new(),
            bytes: 0,
        })
    }

    /// Applies one transaction. A refused transaction leaves the block as it was; a full block
    /// answers `Ok(false)` and the transaction waits for the next one.
    pub fn push(&mut self, vtx: &VerifiedTx) -> Result<bool, TxError> {
        let encoded = vtx.tx().encode();
        let params = &self.chain.params;
        let over_count = self.leaves.len() as u64 >= u64::from(params.block_txs_max);
        let over_bytes = self.bytes + encoded.len() as u64 > u64::from(params.block_bytes_max);
        if over_count || over_bytes {
            return Ok(false);
        }
        apply_tx(&mut self.overlay, self.ctx, vtx)?;
        let leaf = LedgerLeaf {
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
            tx: vtx.tx().clone(),
        };
        self.ledger_nodes
            .extend(self.frontier.append(leaf.leaf_hash()));
        self.tx_frontier.append(leaf_hash(&encoded));
        self.leaves.push(leaf);
        self.tx_ids.push(vtx.id());
        self.bytes += encoded.len() as u64;
        Ok(true)
    }

    /// How many transactions the block holds so far.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// How many more transactions the block may hold by count; its byte limit may end it
    /// sooner. A proposer takes at most this many from its mempool.
    pub fn room(&self) -> usize {
        let max = usize::try_from(self.chain.params.block_txs_max).expect("a u32 fits a usize");
        max.saturating_sub(self.leaves.len())
    }

    /// Whether the block holds no transactions yet.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// Finishes the block: writes the new ledger head, computes the state root and the header.
    pub fn finish<R: TreeReader>(
        mut self,
        state: &StateTree<'_, R>,
        proposer: PublicKey,
        parent: Parent,
    ) -> Result<ExecutedBlock, BlockError> {
        let schedule: ValidatorSchedule = self
            .overlay
            .get(&StateKey::ValidatorSchedule)?
            .ok_or_else(|| StorageError("validator schedule missing from state".into()))?;
        let head = LedgerHead {
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
            frontier: self.frontier.clone(),
        };
        self.overlay.put(&StateKey::LedgerHead, &head);
        let (state_root, state_update) = state.apply(self.overlay.writes(), self.ctx.height)?;
        let header = BlockHeader {
            chain_id: self.chain.chain_id.clone(),
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
            prev_block_hash: parent.hash,
            tx_count: u32::try_from(self.leaves.len()).expect("block_txs_max is a u32"),
            tx_root: self.tx_frontier.root(),
            ledger_root: self.frontier.root(),
            ledger_size: self.frontier.size(),
            state_root,
            validator_set_hash: set_hash_at(&schedule, self.ctx.height)?,
            next_validator_set_hash: set_hash_at(&schedule, self.ctx.height + 1)?,
            proposer,
            last_commit_hash: parent.certificate.as_ref().map(CommitCertificate::hash),
        };
        let txs = self.leaves.iter().map(|leaf| leaf.tx.clone()).collect();
        let block = Block {
            header,
            last_commit: parent.certificate,
            txs,
        };
        debug_assert!(
            block
                .txs
                .iter()
                .map(SignedTx::id)
                .eq(self.tx_ids.iter().copied()),
            "the ids kept are the block's transactions' ids"
        );
        Ok(ExecutedBlock {
            block,
            state_update,
            ledger_nodes: self.ledger_nodes,
            leaves: self.leaves,
            tx_ids: self.tx_ids,
        })
    }
}

fn set_hash_at(schedule: &ValidatorSchedule, height: u64) -> Result<Digest, StorageError> {
    schedule
        .set_at(height)
        .map(validator_set_hash)
        .ok_or_else(|| StorageError(format!("validator schedule has no set for height {height}")))
}

/// Re-executes a proposed or synced block on `state` and checks that it is exactly the block
/// execution produces: every transaction valid, every header field equal, and the carried
/// certificate proving the parent under the parent's validator set. `txs` are the block's
/// transactions with their signatures already checked (batched, or reused from the mempool).
pub fn execute_block<R: TreeReader + TxIndexRead>(
    state: &StateTree<'_, R>,
    block: &Block,
    txs: &[VerifiedTx],
    parent_hash: Digest,
) -> Result<ExecutedBlock, BlockError> {
    assert_eq!(
        txs.len(),
        block.txs.len(),
        "every transaction of the block is verified"
    );
    let mut execution = BlockExecution::start(
        state,
        block.header.clone(),
        block.last_commit.clone(),
        parent_hash,
    )?;
    for (index, (vtx, tx)) in txs.iter().zip(&block.txs).enumerate() {
        assert_eq!(
            vtx.tx(),
            tx,
            "verified transaction {index} is the block's transaction"
        );
        execution.push(vtx)?;
    }
    execution.finish(state)
}

/// [`execute_block`] one transaction at a time, so that a node can execute a proposed block
/// while its parts still stream in: start with the header and the carried certificate, push
/// each transaction as it is decoded, finish when the last has arrived. The result is exactly
/// [`execute_block`]'s (which is built on it); the block it returns holds the pushed
/// transactions, so a caller that decoded them from bytes compares those bytes with
/// `ExecutedBlock::block`'s encoding.
pub struct BlockExecution<'a> {
    header: BlockHeader,
    parent: Parent,
    builder: BlockBuilder<'a>,
}

impl<'a> BlockExecution<'a> {
    /// Checks the parent link and the carried certificate, and starts the block on `state`
    /// (the state after the parent).
    pub fn start<R: TreeReader + TxIndexRead>(
        state: &'a StateTree<'_, R>,
        header: BlockHeader,
        last_commit: Option<CommitCertificate>,
        parent_hash: Digest,
    ) -> Result<BlockExecution<'a>, BlockError> {
        check_last_commit(state, &header, last_commit.as_ref(), parent_hash)?;
        let ctx = BlockContext {
            height: header.height,
            time_ms: header.time_ms,
        };
        let builder = BlockBuilder::new(state, ctx)?;
        Ok(BlockExecution {
            header,
            parent: Parent {
                hash: parent_hash,
                certificate: last_commit,
            },
            builder,
        })
    }

    /// Applies the block's next transaction; any refusal makes the whole block invalid.
    pub fn push(&mut self, vtx: &VerifiedTx) -> Result<(), BlockError> {
        let index = self.builder.len();
        match self.builder.push(vtx) {
            Ok(true) => Ok(()),
            Ok(false) => Err(block_limit(&self.builder.chain)),
            Err(TxError::Rejected(rejection)) => Err(BlockError::InvalidTransaction {
                index,
                id: vtx.id(),
                error: Box::new(rejection),
            }),
            Err(TxError::Storage(error)) => Err(error.into()),
        }
    }

    /// How many transactions were pushed.
    pub fn len(&self) -> usize {
        self.builder.len()
    }

    /// Whether none were pushed.
    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    /// Computes the state root and the header, and checks every header field against the
    /// proposed header.
    pub fn finish<R: TreeReader>(
        self,
        state: &StateTree<'_, R>,
    ) -> Result<ExecutedBlock, BlockError> {
        let executed = self
            .builder
            .finish(state, self.header.proposer, self.parent)?;
        compare_headers(&self.header, &executed.block.header)?;
        Ok(executed)
    }
}

fn block_limit(chain: &ChainRecord) -> BlockError {
    BlockError::TooLarge {
        what: "transactions or bytes",
        max: u64::from(chain.params.block_txs_max),
    }
}

fn check_last_commit<R: TreeReader + TxIndexRead>(
    state: &StateTree<'_, R>,
    header: &BlockHeader,
    last_commit: Option<&CommitCertificate>,
    parent_hash: Digest,
) -> Result<(), BlockError> {
    if header.prev_block_hash != parent_hash {
        return Err(BlockError::HeaderMismatch {
            field: "prev_block_hash",
        });
    }
    let Some(certificate) = last_commit else {
        return match header.height {
            1 => Ok(()),
            _ => Err(BlockError::LastCommit(
                "missing for a block above height 1".into(),
            )),
        };
    };
    if header.height == 1 {
        return Err(BlockError::LastCommit(
            "block 1 has no previous block to certify".into(),
        ));
    }
    let overlay = Overlay::new(state);
    let chain = chain_record(&overlay)?;
    let schedule: ValidatorSchedule = overlay
        .get(&StateKey::ValidatorSchedule)?
        .ok_or_else(|| StorageError("validator schedule missing from state".into()))?;
    let previous = header.height - 1;
    let validators = schedule
        .set_at(previous)
        .ok_or_else(|| StorageError(format!("no validator set for height {previous}")))?;
    certificate.verify(&chain.chain_id, previous, &parent_hash, validators)?;
    Ok(())
}

fn compare_headers(proposed: &BlockHeader, executed: &BlockHeader) -> Result<(), BlockError> {
    let fields: [(&'static str, bool); 13] = [
        ("chain_id", proposed.chain_id == executed.chain_id),
        ("height", proposed.height == executed.height),
        ("time_ms", proposed.time_ms == executed.time_ms),
        (
            "prev_block_hash",
            proposed.prev_block_hash == executed.prev_block_hash,
        ),
        ("tx_count", proposed.tx_count == executed.tx_count),
        ("tx_root", proposed.tx_root == executed.tx_root),
        ("ledger_root", proposed.ledger_root == executed.ledger_root),
        ("ledger_size", proposed.ledger_size == executed.ledger_size),
        ("state_root", proposed.state_root == executed.state_root),
        (
            "validator_set_hash",
            proposed.validator_set_hash == executed.validator_set_hash,
        ),
        (
            "next_validator_set_hash",
            proposed.next_validator_set_hash == executed.next_validator_set_hash,
        ),
        ("proposer", proposed.proposer == executed.proposer),
        (
            "last_commit_hash",
            proposed.last_commit_hash == executed.last_commit_hash,
        ),
    ];
    match fields.iter().find(|(_, equal)| !equal) {
        Some((field, _)) => Err(BlockError::HeaderMismatch { field }),
        None => {
            assert_eq!(proposed, executed, "headers equal field by field are equal");
            Ok(())
        }
    }
}

/// The genesis state's writes: chain record, founding organisations, the first validator set,
/// and an empty ledger head at height 0 and the genesis time.
pub fn genesis_writes(genesis: &Genesis) -> WriteSet {
    let mut overlay = Overlay::new(&EMPTY_STATE);
    let chain = ChainRecord {
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
        params: genesis.params.clone(),
    };
    overlay.put(&StateKey::Chain, &chain);
    let head = LedgerHead {
        height: 0,
        time_ms: genesis.genesis_time_ms,
        frontier: LedgerFrontier::empty(),
    };
    overlay.put(&StateKey::LedgerHead, &head);
    let schedule = ValidatorSchedule {
        entries: vec![ValidatorSetEntry {
            from_height: 1,
            validators: genesis.validators.clone(),
        }],
    };
    overlay.put(&StateKey::ValidatorSchedule, &schedule);
    for org in &genesis.organisations {
        let record = PartyRecord {
            party: org.party.clone(),
            name: org.name.clone(),
            role: org.role,
            key: org.key,
            id_document_hash: None,
            active: true,
            pledges_taken: 0,
        };
        crate::rules::write_party(&mut overlay, &record);
    }
    let pending = overlay.take_pending();
    assert!(
        pending.committed.is_empty(),
        "genesis commits no transaction"
    );
    pending.writes
}

/// Builds the genesis state (version 0) after checking the genesis document.
pub fn execute_genesis<R: TreeReader>(
    empty: &StateTree<'_, R>,
    genesis: &Genesis,
) -> Result<(Digest, StateTreeUpdate), GenesisBuildError> {
    genesis.validate()?;
    Ok(empty.apply(&genesis_writes(genesis), 0)?)
}

/// Why the genesis state could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisBuildError {
    /// The document is inconsistent.
    #[error(transparent)]
    Invalid(#[from] crate::genesis::GenesisError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

struct EmptyState;
static EMPTY_STATE: EmptyState = EmptyState;
impl crate::state::StateRead for EmptyState {
    fn get_raw(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }

    fn committed_height(&self, _id: &crate::tx::TxId) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}
