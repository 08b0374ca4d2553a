//! State records with proofs against the head's certified state root.
//!
//! A client checks an answer with ledger-core alone:
//! `verify_certified_header(genesis, validator_changes, certified_header)`, then
//! `proof.verify(header.state_root, hex::decode(key), value_hex.map(hex::decode))`. The decoded
//! `value` is for reading; only `value_hex` is proven.

use super::chain::certified_header;
use super::error::{ApiError, PathParam};
use super::transactions::parse_digest;
use super::{blocking, ApiState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_core::crypto::Digest;
use ledger_core::encoding;
use ledger_core::receipt::{CertifiedHeader, ValidatorChange};
use ledger_core::state::{
    AssetRecord, ChainRecord, EvidenceRecord, HistoryEntry, LedgerHead, MisbehaviourRecord,
    PartyRecord, PledgeRecord, StateKey, ValidatorSchedule,
};
use ledger_core::state_tree::StateProof;
use ledger_core::tx::TxId;
use ledger_core::types::{AssetId, PartyId};
use serde::{Deserialize, Serialize};

/// A state record with its proof: what every state route answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAnswer {
    /// The height whose state was read: the head, whose header `certified_header` carries.
    pub height: u64,
    /// Hex of the canonical encoding of the state key (the bytes the proof is for).
    pub key: String,
    /// The state key in JSON form.
    pub state_key: StateKey,
    /// The record decoded to JSON, or `null` if the key holds nothing.
    pub value: Option<serde_json::Value>,
    /// Hex of the record's canonical encoding (the bytes the proof is for), or `null`.
    pub value_hex: Option<String>,
    /// Proof of `value_hex` (or of absence) under `certified_header.header.state_root`.
    pub proof: StateProof,
    /// The head's header with its commit certificate.
    pub certified_header: CertifiedHeader,
    /// Every validator-set change from genesis below the head, to check the certificate with
    /// `ledger_core::receipt::verify_certified_header`.
    pub validator_changes: Vec<ValidatorChange>,
}

/// `GET /v1/state/{key}`: any state key, as hex of its canonical encoding.
pub(super) async fn state_by_key(
    State(state): State<ApiState>,
    PathParam(key): PathParam,
) -> Result<Response, ApiError> {
    let bytes = hex::decode(&key).map_err(|_| {
        ApiError::invalid_parameter("the state key must be hex of an encoded StateKey")
    })?;
    let key: StateKey = encoding::decode(&bytes, "state key")
        .map_err(|error| ApiError::invalid_parameter(format!("not a state key: {error}")))?;
    prove(state, key).await
}

/// `GET /v1/works/{content_hash}`: the asset record of a copyright work.
pub(super) async fn work(
    State(state): State<ApiState>,
    PathParam(content_hash): PathParam,
) -> Result<Response, ApiError> {
    let content_hash = parse_digest(&content_hash, "a content hash")?;
    prove(state, StateKey::Asset(AssetId::Work { content_hash })).await
}

/// `GET /v1/assets/{asset}`: an asset record by the asset's text form.
pub(super) async fn asset(
    State(state): State<ApiState>,
    PathParam(asset): PathParam,
) -> Result<Response, ApiError> {
    let asset = asset
        .parse::<ledger_core::types::AssetId>()
        .map_err(|error| ApiError::invalid_parameter(error.to_string()))?;
    prove(state, StateKey::Asset(asset)).await
}

/// `GET /v1/pledges/{id}`: a pledge record by its registration transaction id.
pub(super) async fn pledge(
    State(state): State<ApiState>,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let id: TxId = parse_digest(&id, "a pledge id")?;
    prove(state, StateKey::Pledge(id)).await
}

/// `GET /v1/evidence/{hash}`: an evidence record by the evidence's hash.
pub(super) async fn evidence(
    State(state): State<ApiState>,
    PathParam(hash): PathParam,
) -> Result<Response, ApiError> {
    let hash: Digest = parse_digest(&hash, "an evidence hash")?;
    prove(state, StateKey::Evidence(hash)).await
}

/// `GET /v1/parties/{id}`: a party record.
pub(super) async fn party(
    State(state): State<ApiState>,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let party = PartyId(id);
    if !party.is_well_formed() {
        return Err(ApiError::invalid_parameter(format!(
            "party id {party} is not 1 to 64 lowercase letters, digits, '-', '_' or '.'"
        )));
    }
    prove(state, StateKey::Party(party)).await
}

/// Reads `key` at the head with its proof, and checks the proof before answering.
async fn prove(state: ApiState, key: StateKey) -> Result<Response, ApiError> {
    blocking(move || {
        let snapshot = state.store().snapshot()?;
        let head = snapshot.head_height()?;
        let Some(certified) = certified_header(&snapshot, head)? else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_certified_state",
                "no block is committed yet, so no state root is certified; retry after block 1",
            ));
        };
        let key_bytes = key.encode();
        let (value, proof) = snapshot
            .state(head)
            .prove(&key_bytes)
            .map_err(ApiError::storage)?;
        // What is served must verify: a failure here is the store's, never the client's.
        proof
            .verify(&certified.header.state_root, &key_bytes, value.as_deref())
            .map_err(|error| {
                ApiError::storage(format!("state proof for {key:?} at {head} fails: {error}"))
            })?;
        let decoded = value
            .as_deref()
            .map(|bytes| record_json(&key, bytes))
            .transpose()
            .map_err(|error| ApiError::storage(format!("record under {key:?}: {error}")))?;
        let validator_changes = snapshot.validator_changes_below(head)?;
        Ok(Json(StateAnswer {
            height: head,
            key: hex::encode(&key_bytes),
            state_key: key,
            value: decoded,
            value_hex: value.map(hex::encode),
            proof,
            certified_header: certified,
            validator_changes,
        })
        .into_response())
    })
    .await
}

/// Decodes the record stored under `key` into JSON, by the type each key kind holds.
fn record_json(key: &StateKey, bytes: &[u8]) -> Result<serde_json::Value, String> {
    macro_rules! json {
        ($record:ty) => {
            encoding::decode::<$record>(bytes, "state record")
                .map_err(|error| error.to_string())
                .and_then(|record| serde_json::to_value(record).map_err(|error| error.to_string()))
        };
    }
    match key {
        StateKey::Chain => json!(ChainRecord),
        StateKey::LedgerHead => json!(LedgerHead),
        StateKey::ValidatorSchedule => json!(ValidatorSchedule),
        StateKey::Party(_) => json!(PartyRecord),
        StateKey::PartyByKey(_) => json!(PartyId),
        StateKey::Asset(_) => json!(AssetRecord),
        StateKey::AssetHistory(..) => json!(HistoryEntry),
        StateKey::Pledge(_) => json!(PledgeRecord),
        StateKey::PledgeByBank(..) => json!(TxId),
        StateKey::Evidence(_) => json!(EvidenceRecord),
        StateKey::Misbehaviour { .. } => json!(MisbehaviourRecord),
    }
}
