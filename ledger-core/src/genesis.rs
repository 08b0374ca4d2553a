//! The genesis: the consortium's founding document. Every node starts from it, and a court
//! verifies receipts against it alone.

use crate::crypto::{Digest, PublicKey};
use crate::encoding;
use crate::types::{PartyId, Role};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// The most validators one set may hold.
pub const VALIDATORS_MAX: usize = 100;
/// The largest voting power of one validator; keeps every sum of powers far from overflow.
pub const VOTING_POWER_MAX: u64 = 1_000_000;
/// The most organisations a genesis may name.
pub const GENESIS_ORGANISATIONS_MAX: usize = 1_000;
/// The largest `block_txs_max` a genesis may set: a block of this many transactions must still
/// decode within the canonical decoder's limit on every node.
pub const BLOCK_TXS_LIMIT: u32 = 50_000;
/// The largest `block_bytes_max` a genesis may set, in bytes.
pub const BLOCK_BYTES_LIMIT: u32 = 16 * 1024 * 1024;
/// The longest chain id, in bytes.
pub const CHAIN_ID_BYTES_MAX: usize = 64;

/// A founding or admitted organisation.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Organisation {
    /// Its identifier.
    pub party: PartyId,
    /// Display name.
    pub name: String,
    /// What it may do; never `RightsHolder`.
    pub role: Role,
    /// Its signing key (distinct from any validator key it runs).
    pub key: PublicKey,
}

/// A consensus participant: a node key run by an organisation, with voting power.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct Validator {
    /// The organisation running the node.
    pub organisation: PartyId,
    /// The node's consensus key, which signs votes.
    pub key: PublicKey,
    /// Voting power, 1 to [`VOTING_POWER_MAX`].
    pub power: u64,
}

/// Limits that every node must apply identically.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ChainParams {
    /// How many heights past the current one a transaction's `valid_until` may reach.
    pub tx_lifetime_max: u64,
    /// The most transactions one block may carry.
    pub block_txs_max: u32,
    /// The largest total encoded size of one block's transactions, in bytes.
    pub block_bytes_max: u32,
}

/// Timing of the consensus engine; not part of any ledger rule, but every validator must agree.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ConsensusParams {
    /// Target interval between blocks, in milliseconds.
    pub block_interval_ms: u64,
    /// How long to wait for a proposal before prevoting nil, in milliseconds.
    pub propose_timeout_ms: u64,
    /// How long to wait for more votes once a quorum is seen, in milliseconds.
    pub vote_timeout_ms: u64,
    /// The largest difference accepted between a fresh proposal's time and the local clock.
    pub clock_skew_max_ms: u64,
}

/// The founding document.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Genesis {
    /// The chain's name; every transaction and vote carries it.
    pub chain_id: String,
    /// Time of the genesis state, Unix milliseconds; block 1 must come later.
    pub genesis_time_ms: u64,
    /// Founding organisations.
    pub organisations: Vec<Organisation>,
    /// The first validator set.
    pub validators: Vec<Validator>,
    /// Ledger limits.
    pub params: ChainParams,
    /// Consensus timing.
    pub consensus: ConsensusParams,
}

/// Why a genesis (or a proposed validator set) is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Chain id empty, too long or not printable ASCII.
    #[error("chain id {0:?} must be 1 to 64 printable ASCII characters")]
    BadChainId(String),
    /// A problem with the organisations list.
    #[error("organisation {party}: {problem}")]
    BadOrganisation {
        /// The organisation.
        party: PartyId,
        /// What is wrong.
        problem: String,
    },
    /// A problem with the validator set.
    #[error("validator set: {0}")]
    BadValidatorSet(String),
    /// A problem with the parameters.
    #[error("parameters: {0}")]
    BadParams(String),
}

impl Genesis {
    /// The genesis hash: SHA-256 of its canonical encoding. Block 1's `prev_block_hash`, and the
    /// fingerprint a court compares with the one the consortium publishes.
    pub fn hash(&self) -> Digest {
        Digest::sha256(&encoding::encode(self))
    }

    /// Checks the document is internally consistent.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let id_ok = !self.chain_id.is_empty()
            && self.chain_id.len() <= CHAIN_ID_BYTES_MAX
            && self.chain_id.bytes().all(|b| b.is_ascii_graphic());
        if !id_ok {
            return Err(GenesisError::BadChainId(self.chain_id.clone()));
        }
        if self.organisations.len() > GENESIS_ORGANISATIONS_MAX {
            return Err(GenesisError::BadParams(format!(
                "{} organisations exceed the limit of {GENESIS_ORGANISATIONS_MAX}",
                self.organisations.len()
            )));
        }
        self.validate_organisations()?;
        validate_validator_set(&self.validators, |party| {
            self.organisations
                .iter()
                .any(|o| &o.party == party && o.role != Role::Regulator)
        })?;
        if let Some(validator) = self
            .validators
            .iter()
            .find(|v| self.organisations.iter().any(|o| o.key == v.key))
        {
            return Err(GenesisError::BadValidatorSet(format!(
                "validator key {} is also an organisation's signing key; node keys and organisation keys must differ",
                validator.key
            )));
        }
        let consensus = &self.consensus;
        let timings = [
            consensus.block_interval_ms,
            consensus.propose_timeout_ms,
            consensus.vote_timeout_ms,
        ];
        if timings.contains(&0) || consensus.clock_skew_max_ms == 0 {
            return Err(GenesisError::BadParams(
                "consensus timings and the clock skew bound must be positive".into(),
            ));
        }
        let params = &self.params;
        if params.tx_lifetime_max == 0 || params.block_txs_max == 0 || params.block_bytes_max == 0 {
            return Err(GenesisError::BadParams("limits must be positive".into()));
        }
        if params.block_txs_max > BLOCK_TXS_LIMIT || params.block_bytes_max > BLOCK_BYTES_LIMIT {
            return Err(GenesisError::BadParams(format!(
                "block limits {} transactions / {} bytes exceed the decodable maximum {BLOCK_TXS_LIMIT} / {BLOCK_BYTES_LIMIT}",
                params.block_txs_max, params.block_bytes_max
            )));
        }
        Ok(())
    }

    fn validate_organisations(&self) -> Result<(), GenesisError> {
        let mut seen_parties = std::collections::BTreeSet::new();
        let mut seen_keys = std::collections::BTreeSet::new();
        for org in &self.organisations {
            let problem = |text: &str| GenesisError::BadOrganisation {
                party: org.party.clone(),
                problem: text.into(),
            };
            if !org.party.is_well_formed() {
                return Err(problem("identifier is not well formed"));
            }
            if org.name.is_empty()
                || org.name.len() > crate::types::TEXT_BYTES_MAX
                || org.name.chars().any(char::is_control)
            {
                return Err(problem(
                    "name must be 1 to 256 bytes without control characters",
                ));
            }
            if org.role == Role::RightsHolder {
                return Err(problem(
                    "rights holders are enrolled by the trading center, not founded",
                ));
            }
            if org.key.check_strong().is_err() {
                return Err(problem("key is malformed or of small order"));
            }
            if !seen_parties.insert(&org.party) || !seen_keys.insert(org.key) {
                return Err(problem("identifier or key appears twice"));
            }
        }
        if !self
            .organisations
            .iter()
            .any(|o| o.role == Role::TradingCenter)
        {
            return Err(GenesisError::BadParams(
                "a genesis needs a trading center".into(),
            ));
        }
        Ok(())
    }
}

/// Checks a validator set: 1 to [`VALIDATORS_MAX`] validators, sorted by key without
/// duplicates, strong keys, power 1 to [`VOTING_POWER_MAX`], each run by an organisation for
/// which `is_operator` answers true.
pub fn validate_validator_set(
    validators: &[Validator],
    is_operator: impl Fn(&PartyId) -> bool,
) -> Result<(), GenesisError> {
    let bad = |text: String| Err(GenesisError::BadValidatorSet(text));
    if validators.is_empty() || validators.len() > VALIDATORS_MAX {
        return bad(format!(
            "{} validators; a set holds 1 to {VALIDATORS_MAX}",
            validators.len()
        ));
    }
    if !validators.windows(2).all(|pair| pair[0].key < pair[1].key) {
        return bad("validators must be sorted by key, each key once".into());
    }
    for validator in validators {
        if validator.power == 0 || validator.power > VOTING_POWER_MAX {
            return bad(format!(
                "validator {} has power {}; allowed 1 to {VOTING_POWER_MAX}",
                validator.key, validator.power
            ));
        }
        if validator.key.check_strong().is_err() {
            return bad(format!(
                "validator key {} is malformed or of small order",
                validator.key
            ));
        }
        if !is_operator(&validator.organisation) {
            return bad(format!(
                "validator {} is run by {}, which may not run validators",
                validator.key, validator.organisation
            ));
        }
    }
    Ok(())
}

/// The hash of a validator set, as carried in block headers: SHA-256 of the canonical encoding
/// of the (sorted) list.
pub fn validator_set_hash(validators: &[Validator]) -> Digest {
    Digest::sha256(&encoding::encode(&validators.to_vec()))
}

/// Total voting power of a set.
pub fn total_power(validators: &[Validator]) -> u64 {
    validators.iter().map(|v| v.power).sum()
}

/// Whether `power` is more than two thirds of `total`.
pub fn is_quorum(power: u64, total: u64) -> bool {
    // Both are bounded by VALIDATORS_MAX × VOTING_POWER_MAX, so the products cannot overflow.
    power * 3 > total * 2
}

#[cfg(test)]
mod tests {
    use crate::testkit::{test_genesis, test_key};

    #[test]
    fn genesis_refuses_shared_keys_zero_timings_and_bad_names() {
        assert_eq!(test_genesis(4).validate(), Ok(()));
        let mut shared = test_genesis(4);
        shared.organisations[0].key = shared.validators[0].key;
        assert!(
            shared.validate().is_err(),
            "an organisation key reused as a node key"
        );
        let mut zero = test_genesis(4);
        zero.consensus.propose_timeout_ms = 0;
        assert!(zero.validate().is_err());
        let mut long_name = test_genesis(4);
        long_name.organisations[1].name = "x".repeat(257);
        assert!(long_name.validate().is_err());
        let mut reused_elsewhere = test_genesis(4);
        reused_elsewhere.organisations[5].key = test_key("trading-center").public_key();
        assert!(
            reused_elsewhere.validate().is_err(),
            "two organisations with one key"
        );
    }
}
