//! Checking what a node says against the genesis, trusting nothing else.
//!
//! A state answer is accepted only if its header's commit certificate verifies against the
//! validator set that the genesis and the certified validator-set changes lead to, the header is
//! no older than the freshness bound, the answer is for exactly the key asked for, and the state
//! proof leads from the value (or its absence) to the header's state root. Lists are proven
//! complete: a proven count, then one proven entry per index.

use crate::error::{ClientError, Result};
use crate::node::NodeClient;
use bincode::Decode;
use ledger_core::encoding;
use ledger_core::genesis::Genesis;
use ledger_core::receipt::{
    verify_certified_header, verify_receipt, CertifiedHeader, Receipt, ValidatorChange,
    VerifiedReceipt,
};
use ledger_core::state::{AssetRecord, HistoryEntry, PartyRecord, StateKey};
use ledger_core::state_tree::StateProof;
use ledger_core::tx::TxId;
use ledger_core::types::{AssetId, PartyId};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// The default freshness bound: a header older than this is refused, in seconds.
pub const MAX_AGE_DEFAULT_S: u64 = 120;
/// The most entries a proven list may hold (each costs one request and one proof check).
pub const LIST_ENTRIES_MAX: u64 = 10_000;

/// The current time, Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// A value proven against a certified header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven<T> {
    /// The value, or `None` if the key is proven to hold nothing.
    pub value: Option<T>,
    /// The height of the certified header it was proven against.
    pub height: u64,
    /// That header's time, Unix milliseconds.
    pub time_ms: u64,
}

/// A list proven complete: a count proven at `height`, and every entry proven (at `height` or
/// later; entries of these lists never change once written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenList<T> {
    /// The entries, by index from 0.
    pub entries: Vec<T>,
    /// The height the count was proven at.
    pub height: u64,
}

/// The genesis and the freshness bound every answer is checked against.
pub struct Trust {
    /// The genesis.
    pub genesis: Genesis,
    /// The oldest acceptable header, as an age in milliseconds.
    pub max_age_ms: u64,
}

impl Trust {
    /// Checks a state answer for `key`; returns the proven value bytes.
    pub fn check_state_answer(&self, answer: &Value, key: &StateKey) -> Result<Proven<Vec<u8>>> {
        let bad = |what: &str| ClientError::verification(format!("the node's state answer {what}"));
        let field = |name: &str| {
            answer
                .get(name)
                .cloned()
                .ok_or_else(|| bad(&format!("has no {name}")))
        };
        let certified: CertifiedHeader = serde_json::from_value(field("certified_header")?)
            .map_err(|e| bad(&format!("has a malformed certified_header: {e}")))?;
        let changes: Vec<ValidatorChange> = serde_json::from_value(field("validator_changes")?)
            .map_err(|e| bad(&format!("has malformed validator_changes: {e}")))?;
        let header =
            verify_certified_header(&self.genesis, &changes, &certified).map_err(|error| {
                ClientError::verification(format!(
                    "the node's header does not verify against the genesis: {error}"
                ))
            })?;
        self.check_fresh(header.height, header.time_ms)?;
        let expected_key = key.encode();
        let key_hex = answer["key"].as_str().ok_or_else(|| bad("has no key"))?;
        if hex::decode(key_hex).ok().as_deref() != Some(expected_key.as_slice()) {
            return Err(bad(&format!(
                "is for another key than the one asked for ({key:?})"
            )));
        }
        let proof: StateProof = serde_json::from_value(field("proof")?)
            .map_err(|e| bad(&format!("has a malformed proof: {e}")))?;
        let value = match &answer["value_hex"] {
            Value::Null => None,
            Value::String(text) => {
                Some(hex::decode(text).map_err(|_| bad("has value_hex that is not hex"))?)
            }
            _ => return Err(bad("has a value_hex that is not a string")),
        };
        proof
            .verify(&header.state_root, &expected_key, value.as_deref())
            .map_err(|error| {
                ClientError::verification(format!(
                    "the state proof for {key:?} does not lead to the certified state root at height {}: {error}",
                    header.height
                ))
            })?;
        Ok(Proven {
            value,
            height: header.height,
            time_ms: header.time_ms,
        })
    }

    /// Refuses a header older than the freshness bound.
    pub fn check_fresh(&self, height: u64, time_ms: u64) -> Result<()> {
        let now = now_ms();
        let age_ms = now.saturating_sub(time_ms);
        if age_ms > self.max_age_ms {
            return Err(ClientError::verification(format!(
                "the node's newest certified header (height {height}) is {} s old, older than the freshness bound of {} s: the node may be cut off or stalled; ask another node (--node) or allow older answers with --max-age",
                age_ms / 1000,
                self.max_age_ms / 1000
            )));
        }
        Ok(())
    }

    /// Reads `key` from the node and checks the answer; decodes the proven record.
    pub fn read<T: Decode<()>>(&self, node: &NodeClient, key: &StateKey) -> Result<Proven<T>> {
        let path = format!("/v1/state/{}", hex::encode(key.encode()));
        let answer = node.get_ok(&path)?;
        let proven = self.check_state_answer(&answer, key)?;
        let value = proven
            .value
            .map(|bytes| {
                encoding::decode::<T>(&bytes, "state record").map_err(|error| {
                    ClientError::verification(format!(
                        "the proven record under {key:?} does not decode: {error}"
                    ))
                })
            })
            .transpose()?;
        Ok(Proven {
            value,
            height: proven.height,
            time_ms: proven.time_ms,
        })
    }

    /// Reads `key`, requiring that it holds a record; `missing` explains its absence.
    pub fn read_present<T: Decode<()>>(
        &self,
        node: &NodeClient,
        key: &StateKey,
        missing: impl FnOnce(u64) -> ClientError,
    ) -> Result<(T, u64)> {
        let proven = self.read::<T>(node, key)?;
        match proven.value {
            Some(value) => Ok((value, proven.height)),
            None => Err(missing(proven.height)),
        }
    }

    /// The party holding `key`, proven.
    pub fn party_of_key(
        &self,
        node: &NodeClient,
        key: &ledger_core::crypto::PublicKey,
    ) -> Result<PartyId> {
        let (party, _) = self.read_present::<PartyId>(node, &StateKey::PartyByKey(*key), |height| {
            ClientError::usage(format!(
                "no party holds key {key} (proven at height {height}); has it been enrolled? Name the party with --as if the ledger knows it under another key"
            ))
        })?;
        Ok(party)
    }

    /// An asset's history, proven complete: the record's `history_len`, then each entry.
    pub fn asset_history(
        &self,
        node: &NodeClient,
        asset: &AssetId,
    ) -> Result<(AssetRecord, ProvenList<HistoryEntry>)> {
        let (record, height) =
            self.read_present::<AssetRecord>(node, &StateKey::Asset(asset.clone()), |height| {
                ClientError::usage(format!(
                    "asset {asset} is not on the ledger (proven absent at height {height})"
                ))
            })?;
        let n = bounded_len(record.history_len, "history entries")?;
        let mut entries = Vec::with_capacity(n as usize);
        for index in 0..n {
            let key = StateKey::AssetHistory(asset.clone(), index);
            let (entry, _) = self.read_present::<HistoryEntry>(node, &key, |height| {
                ClientError::verification(format!(
                    "the asset record counts {n} history entries, but entry {index} is proven absent at height {height}"
                ))
            })?;
            entries.push(entry);
        }
        Ok((record, ProvenList { entries, height }))
    }

    /// The pledges a bank took, proven complete: the party's `pledges_taken`, then each id.
    pub fn bank_pledges(&self, node: &NodeClient, bank: &PartyId) -> Result<ProvenList<TxId>> {
        let (record, height) =
            self.read_present::<PartyRecord>(node, &StateKey::Party(bank.clone()), |height| {
                ClientError::usage(format!(
                    "party {bank} is not on the ledger (proven absent at height {height})"
                ))
            })?;
        let n = bounded_len(record.pledges_taken, "pledges")?;
        let mut entries = Vec::with_capacity(n as usize);
        for index in 0..n {
            let key = StateKey::PledgeByBank(bank.clone(), index);
            let (id, _) = self.read_present::<TxId>(node, &key, |height| {
                ClientError::verification(format!(
                    "{bank}'s record counts {n} pledges, but entry {index} is proven absent at height {height}"
                ))
            })?;
            entries.push(id);
        }
        Ok(ProvenList { entries, height })
    }

    /// Verifies a receipt offline against the genesis, and that it is for `tx_id` if given.
    pub fn verify_receipt(
        &self,
        receipt: &Receipt,
        tx_id: Option<&TxId>,
    ) -> Result<VerifiedReceipt> {
        let verified = verify_receipt(receipt, &self.genesis).map_err(|error| {
            ClientError::verification(format!("the receipt does not verify: {error}"))
        })?;
        if let Some(expected) = tx_id {
            if verified.tx_id != *expected {
                return Err(ClientError::verification(format!(
                    "the receipt is for transaction {}, not {expected}",
                    verified.tx_id
                )));
            }
        }
        Ok(verified)
    }
}

fn bounded_len(n: u64, what: &str) -> Result<u64> {
    if n > LIST_ENTRIES_MAX {
        return Err(ClientError::usage(format!(
            "the list holds {n} {what}, more than this client reads ({LIST_ENTRIES_MAX})"
        )));
    }
    Ok(n)
}
