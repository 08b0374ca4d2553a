//! Blocks, certified headers and the node's status.

use super::error::{ApiError, PathParam};
use super::{blocking, ApiState};
use crate::mempool::MEMPOOL_TXS_MAX;
use crate::runner::NetworkView;
use crate::store::Snapshot;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_core::block::{Block, CommitCertificate};
use ledger_core::crypto::Digest;
use ledger_core::genesis::{validator_set_hash, Validator};
use ledger_core::receipt::CertifiedHeader;
use ledger_core::state::Overlay;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// `GET /v1/blocks/{height}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAnswer {
    /// The block's height.
    pub height: u64,
    /// Its hash (of its header).
    pub hash: Digest,
    /// The block: header, the previous block's certificate, transactions.
    pub block: Block,
    /// The certificate that commits this block (the next block carries it too).
    pub certificate: CommitCertificate,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// The chain id.
    pub chain_id: String,
    /// SHA-256 of the genesis document.
    pub genesis_hash: Digest,
    /// The committed height (0: only the genesis).
    pub height: u64,
    /// The head block's hash (the genesis hash at height 0).
    pub head_hash: Digest,
    /// The head block's time (the genesis time at height 0), Unix milliseconds.
    pub head_time_ms: u64,
    /// The head's state root.
    pub state_root: Digest,
    /// Transactions committed since genesis (the ledger-wide tree's size).
    pub ledger_size: u64,
    /// The validator set deciding the next height.
    pub validators: Vec<Validator>,
    /// Its hash, as headers name it.
    pub validator_set_hash: Digest,
    /// Transactions waiting in this node's mempool.
    pub mempool_size: usize,
    /// The most the mempool holds.
    pub mempool_max: usize,
    /// Peers and sync; `null` for an API over a bare store.
    pub network: Option<NetworkStatus>,
}

/// The `network` part of [`StatusAnswer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Consensus peers the engine is connected to; `null` if its network did not answer.
    pub peers: Option<Vec<PeerStatus>>,
    /// Peer ids connected for transaction gossip.
    pub gossip_peers: Vec<String>,
    /// Admitted transactions not gossiped because the queue was full (they wait here).
    pub gossip_outbound_dropped: u64,
    /// Gossiped batches dropped because admission was behind.
    pub gossip_inbound_dropped: u64,
    /// True while blocks arrive by sync: this node is catching up with its peers.
    pub syncing: bool,
    /// The last height committed from sync since the node started.
    pub last_synced_height: Option<u64>,
    /// Other validators' proposals executed while their parts streamed in, since start.
    pub proposals_executed_streaming: u64,
    /// Other validators' proposals executed once complete, since start.
    pub proposals_executed_complete: u64,
    /// This node's proposals built while it committed the block before them, since start (a
    /// height that overran its target interval).
    pub proposals_built_early: u64,
    /// The most transactions this node's next first-round proposal may hold (see
    /// `ProposalBudget`): below the chain's limit when its checks of other validators'
    /// proposals say a full block would not be checked in time, or after its proposals failed
    /// to be decided.
    pub proposal_budget_txs: u64,
    /// Time this node's block commits spent before the durable commit (waiting for the store's
    /// one writer, checking, inserting rows), since start, in milliseconds.
    pub commit_writing_ms: u64,
    /// Time this node's block commits spent in the store's durable commit (the dirty pages
    /// written out, fsync), since start, in milliseconds: a load run reads how much of its time
    /// each node waited on its disk.
    pub commit_durable_ms: u64,
}

/// One consensus peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its libp2p peer id (from its node key).
    pub peer_id: String,
    /// Its name, as it announces it.
    pub moniker: String,
    /// Its address.
    pub address: String,
    /// Whether it proved a validator key of the current set.
    pub validator: bool,
}

/// `GET /v1/blocks/{height}`: the block with its hash and certificate.
pub(super) async fn block(
    State(state): State<ApiState>,
    PathParam(height): PathParam,
) -> Result<Response, ApiError> {
    let height = parse_height(&height)?;
    blocking(move || {
        let snapshot = state.store().snapshot()?;
        let block = snapshot
            .block(height)?
            .ok_or_else(|| not_committed(height))?;
        let certificate = snapshot
            .certificate(height)?
            .ok_or_else(|| ApiError::storage(format!("block {height} has no certificate")))?;
        let hash = block.header.hash();
        Ok(Json(BlockAnswer {
            height,
            hash,
            block,
            certificate,
        })
        .into_response())
    })
    .await
}

/// `GET /v1/headers/{height}`: the header with its commit certificate.
pub(super) async fn header(
    State(state): State<ApiState>,
    PathParam(height): PathParam,
) -> Result<Response, ApiError> {
    let height = parse_height(&height)?;
    blocking(move || {
        let snapshot = state.store().snapshot()?;
        let certified =
            certified_header(&snapshot, height)?.ok_or_else(|| not_committed(height))?;
        Ok(Json(certified).into_response())
    })
    .await
}

/// `GET /v1/headers/latest`: the head's header with its commit certificate.
pub(super) async fn latest_header(State(state): State<ApiState>) -> Result<Response, ApiError> {
    blocking(move || {
        let snapshot = state.store().snapshot()?;
        let head = snapshot.head_height()?;
        let certified = certified_header(&snapshot, head)?
            .ok_or_else(|| ApiError::not_found("no block is committed yet"))?;
        Ok(Json(certified).into_response())
    })
    .await
}

/// The certified header at `height`: `None` if no block is committed there; an error if the
/// block is there without its certificate.
pub(super) fn certified_header(
    snapshot: &Snapshot,
    height: u64,
) -> Result<Option<CertifiedHeader>, ApiError> {
    if height == 0 {
        return Ok(None);
    }
    let Some(header) = snapshot.header(height)? else {
        return Ok(None);
    };
    let certificate = snapshot
        .certificate(height)?
        .ok_or_else(|| ApiError::storage(format!("header {height} has no certificate")))?;
    Ok(Some(CertifiedHeader {
        header,
        certificate,
    }))
}

/// `GET /v1/status`.
pub(super) async fn status(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let network = match &state.inner.network {
        Some(view) => Some(network_status(view).await),
        None => None,
    };
    blocking(move || {
        let snapshot = state.store().snapshot()?;
        let head = snapshot.head_height()?;
        let genesis = &state.inner.genesis;
        let genesis_hash = snapshot.genesis_hash()?;
        let state_tree = snapshot.state(head);
        let state_root = state_tree.root().map_err(ApiError::storage)?;
        let overlay = Overlay::new(&state_tree);
        let ledger = ledger_core::state::ledger_head(&overlay).map_err(ApiError::storage)?;
        let validators = snapshot.validators_at(head, head + 1)?;
        let head_hash = match snapshot.header(head)? {
            Some(header) => header.hash(),
            None if head == 0 => genesis_hash,
            None => return Err(ApiError::storage(format!("head header {head} is missing"))),
        };
        let mempool_size = state
            .inner
            .mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        Ok(Json(StatusAnswer {
            chain_id: genesis.chain_id.clone(),
            genesis_hash,
            height: head,
            head_hash,
            head_time_ms: ledger.time_ms,
            state_root,
            ledger_size: ledger.frontier.size(),
            validator_set_hash: validator_set_hash(&validators),
            validators,
            mempool_size,
            mempool_max: MEMPOOL_TXS_MAX,
            network,
        })
        .into_response())
    })
    .await
}

async fn network_status(view: &NetworkView) -> NetworkStatus {
    let peers = view.engine_peers().await.map(|dump| {
        let mut peers: Vec<PeerStatus> = dump
            .peers
            .iter()
            .map(|(peer_id, info)| PeerStatus {
                peer_id: peer_id.to_string(),
                moniker: info.moniker.clone(),
                address: info.address.to_string(),
                validator: info.consensus_address.is_some(),
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        peers
    });
    let gossip = view.gossip_status.borrow().clone();
    let sync = *view.sync.borrow();
    NetworkStatus {
        peers,
        gossip_peers: gossip.connected.iter().map(ToString::to_string).collect(),
        gossip_outbound_dropped: view.gossip.dropped(),
        gossip_inbound_dropped: gossip.inbound_dropped,
        syncing: sync.syncing,
        last_synced_height: sync.last_synced_height,
        proposals_executed_streaming: view.proposal_checks.streamed.load(Ordering::Relaxed),
        proposals_executed_complete: view.proposal_checks.complete.load(Ordering::Relaxed),
        proposals_built_early: view.proposal_checks.built_early.load(Ordering::Relaxed),
        proposal_budget_txs: view.proposal_checks.budget_txs.load(Ordering::Relaxed),
        commit_writing_ms: view
            .proposal_checks
            .commit_writing_us
            .load(Ordering::Relaxed)
            / 1_000,
        commit_durable_ms: view
            .proposal_checks
            .commit_durable_us
            .load(Ordering::Relaxed)
            / 1_000,
    }
}

fn parse_height(text: &str) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(height) if height >= 1 => Ok(height),
        _ => Err(ApiError::invalid_parameter(format!(
            "height must be a whole number from 1, got {:?}",
            text.chars().take(40).collect::<String>()
        ))),
    }
}

fn not_committed(height: u64) -> ApiError {
    ApiError::not_found(format!("no block is committed at height {height}"))
}
