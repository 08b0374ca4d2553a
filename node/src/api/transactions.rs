//! Submitting transactions (one at a time or in batches), waiting for their commit, and finding
//! them afterwards.

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
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::Cell;
use std::collections::HashMap;
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

/// What `POST /v1/transactions` answers for one transaction: a status with a [`TxStatus`], or an
/// error. `POST /v1/transactions/batch` gives each of its transactions this same answer.
#[derive(Debug)]
enum TxAnswer {
    Status(StatusCode, TxStatus),
    Error(ApiError),
}

impl TxAnswer {
    fn committed(id: TxId, location: TxLocation) -> TxAnswer {
        TxAnswer::Status(StatusCode::OK, TxStatus::committed(id, location))
    }

    /// The HTTP status and JSON body (an error is `{"error": {"code", "message"}}`, the shape
    /// [`ApiError`] answers with).
    fn into_parts(self) -> (StatusCode, Value) {
        match self {
            TxAnswer::Status(status, tx_status) => (
                status,
                serde_json::to_value(tx_status).expect("a TxStatus is JSON"),
            ),
            TxAnswer::Error(error) => (
                error.status,
                serde_json::json!({"error": {"code": error.code, "message": error.message}}),
            ),
        }
    }
}

impl IntoResponse for TxAnswer {
    fn into_response(self) -> Response {
        match self {
            TxAnswer::Status(status, tx_status) => (status, Json(tx_status)).into_response(),
            TxAnswer::Error(error) => error.into_response(),
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

/// The request's body, or the refusal of one that could not be read (too large, too slow),
/// counted like every refusal.
fn read_body(state: &ApiState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| counted_refusal(state, body_error(rejection)))
}

/// `error`, counted in the refusal metrics by its code.
fn counted_refusal(state: &ApiState, error: ApiError) -> ApiError {
    state.inner.metrics.refused(error.code);
    error
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
    let wait = wait_timeout(query)?;
    let bytes = read_body(&state, body)?;
    let tx = admission::decode_json(&bytes).map_err(|error| state.rejected(error))?;
    // The body is not needed past decoding; a waiting submission should not hold it.
    drop(bytes);
    // Claimed before admission, so a busy node refuses before the transaction is pooled rather
    // than after (when the client could not tell whether it was).
    let waiter = claim_waiter(&state, wait)?;
    // Subscribed before admission, so a commit right after admission cannot be missed.
    let commits = wait.map(|_| state.inner.committed.subscribe());
    // Kept to explain a drop with the rule that refuses it (a waiting client only).
    let kept = wait.map(|_| Arc::new(tx.clone()));
    let id = {
        let state = state.clone();
        blocking(move || {
            let now = state.now_ms();
            let inner = &state.inner;
            let gossip = inner.network.as_ref().map(|_| tx.clone());
            let admitted = admission::admit(&inner.store, &inner.genesis, &inner.mempool, tx, now);
            state.admitted(admitted, gossip)
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

/// The wait a submission asks for: `None` without `wait=true`.
fn wait_timeout(
    query: Result<Query<SubmitQuery>, QueryRejection>,
) -> Result<Option<Duration>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid_parameter(rejection.body_text()))?;
    match (query.wait, query.timeout_ms) {
        (false, _) => Ok(None),
        (true, None) => Ok(Some(WAIT_TIMEOUT_DEFAULT)),
        (true, Some(ms)) if ms <= WAIT_TIMEOUT_MAX.as_millis() as u64 => {
            Ok(Some(Duration::from_millis(ms)))
        }
        (true, Some(ms)) => Err(ApiError::invalid_parameter(format!(
            "timeout_ms {ms} exceeds the maximum of {}",
            WAIT_TIMEOUT_MAX.as_millis()
        ))),
    }
}

/// One of the [`super::WAITERS_MAX`] permits a waiting submission holds (a batch holds one).
fn claim_waiter(
    state: &ApiState,
    wait: Option<Duration>,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
    wait.map(|_| {
        state
            .inner
            .waiters
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::busy(TOO_MANY_WAITERS))
    })
    .transpose()
}

impl ApiState {
    /// Counts a refused admission and turns it into its answer.
    fn rejected(&self, error: AdmitError) -> ApiError {
        self.inner.metrics.refused(error.code());
        ApiError::from(error)
    }

    /// Counts an admission's outcome, gossips an admitted transaction (`gossip`: its copy, when
    /// the node has a network) and turns the outcome into the transaction's id, or its refusal.
    /// A transaction already pending is not an error: it is answered as the first submission.
    fn admitted(
        &self,
        admitted: Result<TxId, AdmitError>,
        gossip: Option<SignedTx>,
    ) -> Result<TxId, ApiError> {
        let inner = &self.inner;
        match admitted {
            Ok(id) => {
                inner.metrics.admitted();
                if let (Some(network), Some(tx)) = (&inner.network, gossip) {
                    network.gossip.publish(tx);
                }
                Ok(id)
            }
            Err(AdmitError::Duplicate(id)) => {
                inner.metrics.refused("duplicate");
                Ok(id)
            }
            Err(error) => Err(self.rejected(error)),
        }
    }
}

/// The most transactions one `POST /v1/transactions/batch` carries. 256 is the chunk the batch
/// verifier works in (`ledger_core::crypto::VERIFY_BATCH_SIZE_MAX`), so larger batches would
/// verify no faster; and it keeps what one request makes the node do (decode, verify, check,
/// answer) to a few milliseconds. The body limit ([`super::BODY_BYTES_MAX`]) applies as well:
/// 256 transactions of issue 6's mix take about 150 KB of JSON.
pub const BATCH_TXS_MAX: usize = 256;

/// `POST /v1/transactions/batch`: a JSON array of at most [`BATCH_TXS_MAX`] signed
/// transactions, each admitted (or refused) exactly as `POST /v1/transactions` would, with its
/// signatures checked together with the others' in one batch and the rules run against one
/// snapshot of the head. Answers 200 with `{"results": [...]}`, one result per transaction in
/// the order sent: `{"http_status": <what the single route answers>, "answer": <its body>}`.
/// A transaction that is not a transaction (malformed JSON for one element) is refused on its
/// own; a body that is not a JSON array, an empty array or one longer than [`BATCH_TXS_MAX`]
/// refuses the whole batch.
///
/// With `?wait=true` the answer comes when every admitted transaction of the batch is
/// committed or dropped, or the wait times out (those still pending answer 504 pending); the
/// batch holds one of the [`super::WAITERS_MAX`] waiting permits. What it holds while waiting is
/// bounded by its body, like any request in flight.
pub(super) async fn submit_batch(
    State(state): State<ApiState>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let wait = wait_timeout(query)?;
    let bytes = read_body(&state, body)?;
    let decoded = decode_batch(&bytes).map_err(|error| counted_refusal(&state, error))?;
    drop(bytes);
    let waiter = claim_waiter(&state, wait)?;
    // Subscribed before admission, so a commit right after admission cannot be missed.
    let commits = wait.map(|_| state.inner.committed.subscribe());
    let keep = wait.is_some();
    let (mut answers, waiting) = {
        let state = state.clone();
        blocking(move || Ok(admit_batch(&state, decoded, keep))).await?
    };
    if let (Some(timeout), Some(commits)) = (wait, commits) {
        for (index, answer) in wait_for_commits(&state, waiting, timeout, commits).await? {
            answers[index] = Some(answer);
        }
    }
    drop(waiter);
    let results: Vec<Value> = answers
        .into_iter()
        .map(|answer| {
            let (status, answer) = answer.expect("every transaction is answered").into_parts();
            serde_json::json!({"http_status": status.as_u16(), "answer": answer})
        })
        .collect();
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"results": results})),
    )
        .into_response())
}

/// A batch's transactions that wait for their commit, with their positions in the batch.
type Waiting = Vec<(usize, Arc<SignedTx>)>;

/// Admits a decoded batch (blocking): every answer, in input order (`None` for one that waits
/// for its commit), and, when `keep`, the admitted (or already pending) transactions to wait
/// for.
fn admit_batch(
    state: &ApiState,
    decoded: Vec<Result<SignedTx, AdmitError>>,
    keep: bool,
) -> (Vec<Option<TxAnswer>>, Waiting) {
    let inner = &state.inner;
    let mut answers: Vec<Option<TxAnswer>> = Vec::with_capacity(decoded.len());
    let mut positions = Vec::new();
    let mut txs = Vec::new();
    for (index, tx) in decoded.into_iter().enumerate() {
        match tx {
            Ok(tx) => {
                answers.push(None);
                positions.push(index);
                txs.push(tx);
            }
            Err(error) => answers.push(Some(TxAnswer::Error(state.rejected(error)))),
        }
    }
    // The copies to gossip (when the node has a network) and to wait on.
    let copies: Vec<Option<SignedTx>> = if keep || inner.network.is_some() {
        txs.iter().cloned().map(Some).collect()
    } else {
        vec![None; txs.len()]
    };
    let admitted = admission::admit_many(
        &inner.store,
        &inner.genesis,
        &inner.mempool,
        txs,
        state.now_ms(),
    );
    let mut waiting = Vec::new();
    for ((index, admitted), copy) in positions.into_iter().zip(admitted).zip(copies) {
        let (gossip, kept) = match (inner.network.is_some(), keep) {
            (true, true) => (copy.clone(), copy),
            (true, false) => (copy, None),
            (false, _) => (None, copy),
        };
        answers[index] = match state.admitted(admitted, gossip) {
            Ok(_) if keep => {
                waiting.push((index, Arc::new(kept.expect("kept while waiting"))));
                continue;
            }
            Ok(id) => Some(TxAnswer::Status(
                StatusCode::ACCEPTED,
                TxStatus::pending(id),
            )),
            Err(error) => Some(TxAnswer::Error(error)),
        };
    }
    (answers, waiting)
}

/// Reads a batch body: a JSON array of 1 to [`BATCH_TXS_MAX`] elements, each decoded as a
/// signed transaction on its own (one malformed element is refused alone).
fn decode_batch(bytes: &[u8]) -> Result<Vec<Result<SignedTx, AdmitError>>, ApiError> {
    let too_many = Cell::new(false);
    // A well-formed batch decodes in one pass; anything else is decoded again element by
    // element, to say which elements are malformed.
    let decoded = match bounded_array::<SignedTx>(bytes, &too_many) {
        Ok(txs) => txs.into_iter().map(Ok).collect(),
        Err(_) if too_many.get() => return Err(too_many_error()),
        Err(_) => {
            let items = bounded_array::<Value>(bytes, &too_many).map_err(|error| {
                if too_many.get() {
                    too_many_error()
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_request",
                        format!("the body must be a JSON array of signed transactions: {error}"),
                    )
                }
            })?;
            items
                .iter()
                .map(|item| {
                    <SignedTx as serde::Deserialize>::deserialize(item)
                        .map_err(|error| AdmitError::Malformed(error.to_string()))
                })
                .collect::<Vec<_>>()
        }
    };
    if decoded.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("the batch is empty; send between 1 and {BATCH_TXS_MAX} transactions"),
        ));
    }
    Ok(decoded)
}

fn too_many_error() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the batch holds more than {BATCH_TXS_MAX} transactions; split it"),
    )
}

/// Decodes `bytes` as a JSON array of `T`, stopping (and setting `too_many`) at the
/// [`BATCH_TXS_MAX`] + 1st element, so a long array of tiny elements costs no more memory than
/// the limit allows.
fn bounded_array<T: for<'de> serde::Deserialize<'de>>(
    bytes: &[u8],
    too_many: &Cell<bool>,
) -> Result<Vec<T>, serde_json::Error> {
    struct Bounded<'a, T> {
        too_many: &'a Cell<bool>,
        items: std::marker::PhantomData<T>,
    }
    impl<'de, T: serde::Deserialize<'de>> DeserializeSeed<'de> for Bounded<'_, T> {
        type Value = Vec<T>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for Bounded<'_, T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(
                f,
                "a JSON array of at most {BATCH_TXS_MAX} signed transactions"
            )
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(BATCH_TXS_MAX));
            while let Some(item) = seq.next_element()? {
                if items.len() == BATCH_TXS_MAX {
                    self.too_many.set(true);
                    return Err(serde::de::Error::custom("too many transactions"));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let items = Bounded {
        too_many,
        items: std::marker::PhantomData,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(items)
}

/// Waits until each of `waiting` (a batch's admitted transactions, with their positions) is
/// committed or dropped, the wait times out, or the server shuts down; answers each as
/// [`wait_for_commit`] would.
async fn wait_for_commits(
    state: &ApiState,
    waiting: Waiting,
    timeout: Duration,
    mut commits: broadcast::Receiver<Committed>,
) -> Result<Vec<(usize, TxAnswer)>, ApiError> {
    let deadline = Instant::now() + timeout;
    let mut shutdown = state.inner.shutdown.subscribe();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopping);
    let mut remaining: HashMap<TxId, (usize, Arc<SignedTx>)> = waiting
        .into_iter()
        .map(|(index, tx)| (tx.id(), (index, tx)))
        .collect();
    let mut answers = Vec::with_capacity(remaining.len());
    // Resubmitted transactions may have been committed before this request subscribed.
    settle_many(state, &mut remaining, &mut answers).await?;
    while !remaining.is_empty() {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                for (id, (index, _)) in remaining.drain() {
                    answers.push((index, TxAnswer::Status(StatusCode::GATEWAY_TIMEOUT, TxStatus::pending(id))));
                }
            }
            () = &mut stopping => {
                for (id, (index, _)) in remaining.drain() {
                    answers.push((index, TxAnswer::Error(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "shutting_down",
                        format!("the node is shutting down; transaction {id} is still pending"),
                    ))));
                }
            }
            commit = commits.recv() => match commit {
                // A block committed (ours, or others while ours may have been dropped), or
                // announcements missed: see where each one stands.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    settle_many(state, &mut remaining, &mut answers).await?;
                }
                Err(RecvError::Closed) => {
                    settle_many(state, &mut remaining, &mut answers).await?;
                    for (id, (index, _)) in remaining.drain() {
                        answers.push((index, TxAnswer::Error(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not_committing",
                            format!("the node stopped committing blocks; transaction {id} is still pending"),
                        ))));
                    }
                }
            }
        }
    }
    Ok(answers)
}

/// Answers (moving them from `remaining` to `answers`) the transactions that are committed or
/// no longer pending, as [`settled`] does for one. A block is committed durably before its
/// transactions leave the mempool, so one that is not in the mempool is committed (found in
/// the store) or was dropped; the mempool is read once for the whole batch.
async fn settle_many(
    state: &ApiState,
    remaining: &mut HashMap<TxId, (usize, Arc<SignedTx>)>,
    answers: &mut Vec<(usize, TxAnswer)>,
) -> Result<(), ApiError> {
    let gone: Vec<(TxId, Arc<SignedTx>)> = {
        let pool = state
            .inner
            .mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        remaining
            .iter()
            .filter(|(id, _)| !pool.contains(id))
            .map(|(id, (_, tx))| (*id, tx.clone()))
            .collect()
    };
    if gone.is_empty() {
        return Ok(());
    }
    let settled = {
        let state = state.clone();
        blocking(move || {
            let snapshot = state.store().snapshot()?;
            gone.into_iter()
                .map(|(id, tx)| {
                    let answer = match snapshot.tx_location(&id)? {
                        Some(location) => TxAnswer::committed(id, location),
                        None => dropped_answer(&state, &tx)?,
                    };
                    Ok((id, answer))
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?
    };
    for (id, answer) in settled {
        let (index, _) = remaining.remove(&id).expect("settled from the remaining");
        answers.push((index, answer));
    }
    Ok(())
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
        Ok(Some(dropped_answer(&state, &tx)?.into_response()))
    })
    .await
}

/// The answer for a transaction that left the mempool without being committed: 422 with the
/// rule that refuses it now, or 409 `dropped` if none does. Blocking.
fn dropped_answer(state: &ApiState, tx: &SignedTx) -> Result<TxAnswer, ApiError> {
    let id = tx.id();
    let dropped = format!(
        "transaction {id} left the mempool without being committed: a block's proposer refused it"
    );
    let vtx = VerifiedTx::verify(tx.clone()).map_err(AdmitError::Rejected);
    let refusal = vtx.and_then(|vtx| check_against_head(state.store(), &vtx, state.now_ms()));
    Ok(TxAnswer::Error(match refusal {
        Err(AdmitError::Rejected(rejection)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            rejection.code(),
            format!("{dropped}; now: {rejection}"),
        ),
        Err(AdmitError::Storage(error)) => return Err(ApiError::storage(error)),
        _ => ApiError::new(
            StatusCode::CONFLICT,
            "dropped",
            format!("{dropped}; resubmit it"),
        ),
    }))
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
