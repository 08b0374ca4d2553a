//! Submitting transactions, waiting for their commit, and finding them afterwards.

use super::error::{ApiError, PathParam};
use super::{blocking, ApiState, WAIT_TIMEOUT_DEFAULT, WAIT_TIMEOUT_MAX};
use crate::admission::{self, check_against_head, AdmitError};
use crate::consensus::app::Committed;
use crate::store::TxLocation;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_core::crypto::Digest;
use ledger_core::rules::VerifiedTx;
use ledger_core::tx::{SignedTx, TxId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// Where a transaction stands, as `POST /v1/transactions` and `GET /v1/transactions/{id}`
/// answer it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatus {
    /// The transaction id, `sha256:<hex>`.
    pub id: TxId,
    /// `pending` (in this node's mempool) or `committed`.
    pub status: TxState,
    /// Height of the committing block, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Position in that block, from 0, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_in_block: Option<u32>,
    /// Leaf index in the ledger-wide tree, from 0, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_index: Option<u64>,
}

/// A transaction's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// Waiting in the mempool.
    Pending,
    /// In a committed block.
    Committed,
}

impl TxStatus {
    fn pending(id: TxId) -> TxStatus {
        TxStatus {
            id,
            status: TxState::Pending,
            height: None,
            index_in_block: None,
            ledger_index: None,
        }
    }

    fn committed(id: TxId, location: TxLocation) -> TxStatus {
        TxStatus {
            id,
            status: TxState::Committed,
            height: Some(location.height),
            index_in_block: Some(location.index_in_block),
            ledger_index: Some(location.ledger_index),
        }
    }
}

const TOO_MANY_WAITERS: &str =
    "too many clients are waiting for commits; retry shortly, or submit without wait and poll";

/// The query of `POST /v1/transactions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubmitQuery {
    /// Wait for the commit before answering.
    #[serde(default)]
    wait: bool,
    /// How long to wait, in milliseconds (default 30 000, at most 60 000).
    timeout_ms: Option<u64>,
}

/// `POST /v1/transactions`: admits a signed transaction into the mempool (202 pending), or with
/// `?wait=true` waits for its commit (200 committed; 504 pending on timeout).
///
/// Submitting a transaction that is already pending is not an error: the answer is the same as
/// for the first submission, so a client may retry after a lost connection.
pub(super) async fn submit(
    State(state): State<ApiState>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid_parameter(rejection.body_text()))?;
    let wait = match (query.wait, query.timeout_ms) {
        (false, _) => None,
        (true, None) => Some(WAIT_TIMEOUT_DEFAULT),
        (true, Some(ms)) if ms <= WAIT_TIMEOUT_MAX.as_millis() as u64 => {
            Some(Duration::from_millis(ms))
        }
        (true, Some(ms)) => {
            return Err(ApiError::invalid_parameter(format!(
                "timeout_ms {ms} exceeds the maximum of {}",
                WAIT_TIMEOUT_MAX.as_millis()
            )))
        }
    };
    let bytes = body.map_err(|rejection| {
        let error = body_error(rejection);
        state.inner.metrics.refused(error.code);
        error
    })?;
    let tx = admission::decode_json(&bytes).map_err(|error| state.rejected(error))?;
    // The body is not needed past decoding; a waiting submission should not hold it.
    drop(bytes);
    // Claimed before admission, so a busy node refuses before the transaction is pooled rather
    // than after (when the client could not tell whether it was).
    let waiter = match wait {
        Some(_) => Some(
            state
                .inner
                .waiters
                .clone()
                .try_acquire_owned()
                .map_err(|_| ApiError::busy(TOO_MANY_WAITERS))?,
        ),
        None => None,
    };
    // Subscribed before admission, so a commit right after admission cannot be missed.
    let commits = wait.map(|_| state.inner.committed.subscribe());
    // Kept to explain a drop with the rule that refuses it (a waiting client only).
    let kept = wait.map(|_| Arc::new(tx.clone()));
    let id = {
        let state = state.clone();
        blocking(move || {
            let now = state.now_ms();
            let inner = &state.inner;
            let gossip = inner.network.as_ref().map(|network| (network, tx.clone()));
            match admission::admit(&inner.store, &inner.genesis, &inner.mempool, tx, now) {
                Ok(id) => {
                    inner.metrics.admitted();
                    if let Some((network, tx)) = gossip {
                        network.gossip.publish(tx);
                    }
                    Ok(id)
                }
                Err(AdmitError::Duplicate(id)) => {
                    inner.metrics.refused("duplicate");
                    Ok(id)
                }
                Err(error) => Err(state.rejected(error)),
            }
        })
        .await?
    };
    let (Some(timeout), Some(commits), Some(tx)) = (wait, commits, kept) else {
        return Ok((StatusCode::ACCEPTED, Json(TxStatus::pending(id))).into_response());
    };
    let answer = wait_for_commit(&state, tx, timeout, commits).await;
    drop(waiter);
    answer
}

impl ApiState {
    /// Counts a refused admission and turns it into its answer.
    fn rejected(&self, error: AdmitError) -> ApiError {
        self.inner.metrics.refused(error.code());
        ApiError::from(error)
    }
}

/// The answer for a body that could not be read: 413 past the limit, 400 otherwise.
fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            "too_large",
            format!("the request body exceeds {} bytes", super::BODY_BYTES_MAX),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_request",
        rejection.body_text(),
    )
}

/// Waits until `id` is committed, dropped from the mempool, the wait times out, or the server
/// shuts down.
async fn wait_for_commit(
    state: &ApiState,
    tx: Arc<SignedTx>,
    timeout: Duration,
    mut commits: broadcast::Receiver<Committed>,
) -> Result<Response, ApiError> {
    let id = tx.id();
    let deadline = Instant::now() + timeout;
    let mut shutdown = state.inner.shutdown.subscribe();
    // The borrow `wait_for` returns is not `Send`; drop it inside the future.
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopping);
    // A resubmitted transaction may have been committed before this request subscribed.
    if let Some(answer) = settled(state, &tx).await? {
        return Ok(answer);
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                return Ok((StatusCode::GATEWAY_TIMEOUT, Json(TxStatus::pending(id))).into_response());
            }
            () = &mut stopping => {
                return Ok(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    format!("the node is shutting down; transaction {id} is still pending"),
                ).into_response());
            }
            commit = commits.recv() => match commit {
                Ok(commit) if commit.tx_ids.contains(&id) => {
                    return committed_answer(state, id, commit.height).await;
                }
                // Another block: ours may have been dropped by the proposer meanwhile.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    if let Some(answer) = settled(state, &tx).await? {
                        return Ok(answer);
                    }
                }
                Err(RecvError::Closed) => {
                    if let Some(answer) = settled(state, &tx).await? {
                        return Ok(answer);
                    }
                    return Ok(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not_committing",
                        format!("the node stopped committing blocks; transaction {id} is still pending"),
                    ).into_response());
                }
            }
        }
    }
}

/// `Some(answer)` if `tx` is committed (200) or no longer pending (dropped: 422 with the rule
/// that refuses it now, or 409 `dropped` if none does); `None` while it waits in the mempool.
async fn settled(state: &ApiState, tx: &Arc<SignedTx>) -> Result<Option<Response>, ApiError> {
    let state = state.clone();
    let tx = tx.clone();
    blocking(move || {
        let id = tx.id();
        let store = state.store();
        if let Some(location) = store.tx_location(&id)? {
            return Ok(Some(committed_response(id, location)));
        }
        if state.inner.mempool_contains(&id) {
            return Ok(None);
        }
        // A block is committed durably before its transactions leave the mempool, so one that
        // is in neither was dropped; unless it was committed between the two reads.
        if let Some(location) = store.tx_location(&id)? {
            return Ok(Some(committed_response(id, location)));
        }
        let dropped = format!(
            "transaction {id} left the mempool without being committed: a block's proposer refused it"
        );
        let vtx = VerifiedTx::verify((*tx).clone()).map_err(AdmitError::Rejected);
        let refusal = vtx.and_then(|vtx| check_against_head(store, &vtx, state.now_ms()));
        Ok(Some(match refusal {
            Err(AdmitError::Rejected(rejection)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                rejection.code(),
                format!("{dropped}; now: {rejection}"),
            )
            .into_response(),
            Err(AdmitError::Storage(error)) => return Err(ApiError::storage(error)),
            _ => ApiError::new(StatusCode::CONFLICT, "dropped", format!("{dropped}; resubmit it"))
                .into_response(),
        }))
    })
    .await
}

async fn committed_answer(state: &ApiState, id: TxId, height: u64) -> Result<Response, ApiError> {
    let state = state.clone();
    blocking(move || match state.store().tx_location(&id)? {
        Some(location) => Ok(committed_response(id, location)),
        None => Err(ApiError::internal(format!(
            "block {height} was announced with transaction {id}, which the store does not locate"
        ))),
    })
    .await
}

fn committed_response(id: TxId, location: TxLocation) -> Response {
    (StatusCode::OK, Json(TxStatus::committed(id, location))).into_response()
}

impl super::Inner {
    fn mempool_contains(&self, id: &TxId) -> bool {
        self.mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }
}

/// `GET /v1/transactions/{id}`: committed (with its location) or pending; 404 if neither.
pub(super) async fn transaction(
    State(state): State<ApiState>,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let id = parse_tx_id(&id)?;
    blocking(move || {
        if let Some(location) = state.store().tx_location(&id)? {
            return Ok(committed_response(id, location));
        }
        if state.inner.mempool_contains(&id) {
            return Ok(Json(TxStatus::pending(id)).into_response());
        }
        Err(ApiError::not_found(format!(
            "transaction {id} is neither committed nor pending on this node"
        )))
    })
    .await
}

/// `GET /v1/transactions/{id}/receipt`: the receipt of a committed transaction, against the
/// head's certified header; a court checks it with `ledger_core::receipt::verify_receipt` and
/// the genesis alone.
pub(super) async fn receipt(
    State(state): State<ApiState>,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let id = parse_tx_id(&id)?;
    blocking(move || match state.store().receipt(&id)? {
        Some(receipt) => Ok(Json(receipt).into_response()),
        None => Err(ApiError::not_found(format!(
            "transaction {id} is not committed"
        ))),
    })
    .await
}

/// A digest from `sha256:<hex>` or 64 bare hex digits.
pub(super) fn parse_digest(text: &str, what: &str) -> Result<Digest, ApiError> {
    if let Ok(digest) = text.parse::<Digest>() {
        return Ok(digest);
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| {
        ApiError::invalid_parameter(format!(
            "{what} must be sha256:<64 hex digits>, got {:?}",
            text.chars().take(100).collect::<String>()
        ))
    })?;
    Ok(Digest::Sha256(bytes))
}

fn parse_tx_id(text: &str) -> Result<TxId, ApiError> {
    parse_digest(text, "a transaction id")
}
