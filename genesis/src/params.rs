//! Default chain and consensus parameters, and their TOML forms (every field optional).

use ledger_core::genesis::{ChainParams, ConsensusParams, BLOCK_BYTES_LIMIT, BLOCK_TXS_LIMIT};
use serde::{Deserialize, Serialize};

/// Default: how many heights past the current one a transaction's `valid_until` may reach: a
/// day at the default one-second interval, because a pledge is drafted on one machine and
/// co-signed on others (owner, bank, trading center, appraiser), which takes hours, not
/// minutes. Replays are refused through the transaction index at any age, so a longer lifetime
/// costs no state; it only lets a signed transaction wait longer before it is submitted.
pub const DEFAULT_TX_LIFETIME_MAX: u64 = 86_400;
/// Default: the most transactions one block may carry.
pub const DEFAULT_BLOCK_TXS_MAX: u32 = 10_000;
/// Default: the largest total encoded size of one block's transactions (8 MiB).
pub const DEFAULT_BLOCK_BYTES_MAX: u32 = 8 * 1024 * 1024;
/// Default target interval between blocks.
pub const DEFAULT_BLOCK_INTERVAL_MS: u64 = 1_000;
/// Default wait for a proposal before prevoting nil.
pub const DEFAULT_PROPOSE_TIMEOUT_MS: u64 = 2_000;
/// Default wait for more votes once a quorum is seen.
pub const DEFAULT_VOTE_TIMEOUT_MS: u64 = 1_000;
/// Default largest accepted difference between a proposal's time and the local clock.
pub const DEFAULT_CLOCK_SKEW_MAX_MS: u64 = 5_000;

const _: () = assert!(DEFAULT_BLOCK_TXS_MAX <= BLOCK_TXS_LIMIT);
const _: () = assert!(DEFAULT_BLOCK_BYTES_MAX <= BLOCK_BYTES_LIMIT);

/// The `[params]` table of a consortium spec: the genesis's [`ChainParams`], each field
/// defaulting to the constants above.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainParamsSpec {
    /// See [`ChainParams::tx_lifetime_max`].
    pub tx_lifetime_max: u64,
    /// See [`ChainParams::block_txs_max`].
    pub block_txs_max: u32,
    /// See [`ChainParams::block_bytes_max`].
    pub block_bytes_max: u32,
}

impl Default for ChainParamsSpec {
    fn default() -> Self {
        ChainParamsSpec {
            tx_lifetime_max: DEFAULT_TX_LIFETIME_MAX,
            block_txs_max: DEFAULT_BLOCK_TXS_MAX,
            block_bytes_max: DEFAULT_BLOCK_BYTES_MAX,
        }
    }
}

impl From<&ChainParamsSpec> for ChainParams {
    fn from(spec: &ChainParamsSpec) -> ChainParams {
        ChainParams {
            tx_lifetime_max: spec.tx_lifetime_max,
            block_txs_max: spec.block_txs_max,
            block_bytes_max: spec.block_bytes_max,
        }
    }
}

/// The `[consensus]` table of a consortium spec and of a node's `config.toml`: the genesis's
/// [`ConsensusParams`], each field defaulting to the constants above.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusTimeouts {
    /// See [`ConsensusParams::block_interval_ms`].
    pub block_interval_ms: u64,
    /// See [`ConsensusParams::propose_timeout_ms`].
    pub propose_timeout_ms: u64,
    /// See [`ConsensusParams::vote_timeout_ms`].
    pub vote_timeout_ms: u64,
    /// See [`ConsensusParams::clock_skew_max_ms`].
    pub clock_skew_max_ms: u64,
}

impl Default for ConsensusTimeouts {
    fn default() -> Self {
        ConsensusTimeouts {
            block_interval_ms: DEFAULT_BLOCK_INTERVAL_MS,
            propose_timeout_ms: DEFAULT_PROPOSE_TIMEOUT_MS,
            vote_timeout_ms: DEFAULT_VOTE_TIMEOUT_MS,
            clock_skew_max_ms: DEFAULT_CLOCK_SKEW_MAX_MS,
        }
    }
}

impl ConsensusTimeouts {
    /// The name of the first zero timeout, if any (every timeout must be positive).
    pub fn zero_field(&self) -> Option<&'static str> {
        [
            ("block_interval_ms", self.block_interval_ms),
            ("propose_timeout_ms", self.propose_timeout_ms),
            ("vote_timeout_ms", self.vote_timeout_ms),
            ("clock_skew_max_ms", self.clock_skew_max_ms),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0)
        .map(|(name, _)| name)
    }
}

impl From<&ConsensusTimeouts> for ConsensusParams {
    fn from(t: &ConsensusTimeouts) -> ConsensusParams {
        ConsensusParams {
            block_interval_ms: t.block_interval_ms,
            propose_timeout_ms: t.propose_timeout_ms,
            vote_timeout_ms: t.vote_timeout_ms,
            clock_skew_max_ms: t.clock_skew_max_ms,
        }
    }
}

impl From<&ConsensusParams> for ConsensusTimeouts {
    fn from(p: &ConsensusParams) -> ConsensusTimeouts {
        ConsensusTimeouts {
            block_interval_ms: p.block_interval_ms,
            propose_timeout_ms: p.propose_timeout_ms,
            vote_timeout_ms: p.vote_timeout_ms,
            clock_skew_max_ms: p.clock_skew_max_ms,
        }
    }
}
