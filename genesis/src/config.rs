//! A node's `config.toml`.
//!
//! ```toml
//! home = "/var/lib/ipledger"       # optional; default: the directory holding config.toml
//! moniker = "bank-a"               # the node's name in logs
//! organisation = "bank-a"          # optional; the organisation running the node
//! validator = true                 # sign votes with the node key (default false)
//! log_level = "info"               # error|warn|info|debug|trace|off, or "info,ipledger_node=debug"
//!
//! [chain]                          # relative paths are resolved against `home`
//! genesis = "genesis.json"
//! node_key = "node.key"
//! data_dir = "data"
//!
//! [p2p]
//! listen = "/ip4/127.0.0.1/tcp/26656"
//!
//! [[p2p.peers]]                    # the other validators: persistent peers
//! address = "/ip4/127.0.0.1/tcp/26658"
//! public_key = "ed25519:…"         # its node key, as in the genesis validator set
//! organisation = "bank-b"          # optional, informational
//!
//! [http]
//! listen = "127.0.0.1:26657"
//!
//! [consensus]                      # copied from the genesis; the node checks they agree
//! block_interval_ms = 1000
//! propose_timeout_ms = 2000
//! vote_timeout_ms = 1000
//! clock_skew_max_ms = 5000
//!
//! [byzantine]                      # optional, for fault tests only: see ByzantineConfig
//! equivocate_votes = { mode = "always" }
//! ```
//!
//! Every field has a default, so a minimal file works; unknown fields are refused (a misspelt
//! setting must not be silently ignored).

use crate::address::P2pAddress;
use crate::fsutil::{self, Existing};
use crate::genesis_file::{read_genesis, GenesisFileError};
use crate::keyfile::{KeyFile, KeyFileError};
use crate::params::ConsensusTimeouts;
use crate::spec::ConsortiumSpec;
use ledger_core::crypto::PublicKey;
use ledger_core::genesis::Genesis;
use ledger_core::types::PartyId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The file name of a node's configuration inside its home.
pub const CONFIG_FILE_NAME: &str = "config.toml";
/// Default p2p port.
pub const DEFAULT_P2P_PORT: u16 = 26656;
/// Default HTTP port.
pub const DEFAULT_HTTP_PORT: u16 = 26657;
/// Default store cache (`[store] cache_mib`): a small share of a validator's memory, but large
/// enough to hold a block's writes and the pages its checks read. At 64 MiB, four validators on
/// one machine spent about 1.3 times the CPU per transaction, re-reading pages through system
/// calls and writing out a block's pages before its commit (docs/PERFORMANCE.md, "The store's page cache").
pub const DEFAULT_STORE_CACHE_MIB: u32 = 512;
/// The largest store cache a config may ask for (64 GiB): a larger number is a typo.
pub const STORE_CACHE_MIB_MAX: u32 = 65_536;
/// The log levels `log_level` may name (alone or in `target=level` directives).
pub const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// One node's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's home directory. [`NodeConfig::load`] makes it absolute: empty means the
    /// directory holding the config file, and a relative path is relative to that directory.
    #[serde(skip_serializing_if = "path_is_empty")]
    pub home: PathBuf,
    /// The node's name in logs.
    pub moniker: String,
    /// The organisation running the node, if stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<PartyId>,
    /// Whether the node takes part in consensus (its node key must be in the validator set).
    pub validator: bool,
    /// Log filter: a level or comma-separated `target=level` directives.
    pub log_level: String,
    /// Where the chain's files are.
    pub chain: ChainPaths,
    /// The store's tuning.
    pub store: StoreConfig,
    /// Peer-to-peer networking.
    pub p2p: P2pConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Consensus timing, copied from the genesis.
    pub consensus: ConsensusTimeouts,
    /// How the node lies, for fault tests. Only a node built with the `byzantine` feature
    /// accepts it; any other node refuses to start with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<ByzantineConfig>,
}

/// The `[chain]` table: paths, relative ones resolved against `home`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainPaths {
    /// The genesis document.
    pub genesis: PathBuf,
    /// The node's key file (mode 0600).
    pub node_key: PathBuf,
    /// The node's database directory.
    pub data_dir: PathBuf,
}

/// The `[store]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// redb's page cache in MiB. It fills as the node reads and writes the store and then stays
    /// at this size, so it is most of a long-running node's memory; a larger cache keeps more of
    /// a large ledger's state tree in memory.
    pub cache_mib: u32,
}

/// The `[p2p]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// The multiaddr to listen on.
    pub listen: P2pAddress,
    /// Persistent peers: the other validators.
    pub peers: Vec<PeerConfig>,
}

/// A `[[p2p.peers]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Where to dial it.
    pub address: P2pAddress,
    /// Its node key (as in the genesis validator set).
    pub public_key: PublicKey,
    /// The organisation running it, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<PartyId>,
}

/// The `[http]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The socket address to serve the API on.
    pub listen: SocketAddr,
}

fn path_is_empty(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            home: PathBuf::new(),
            moniker: "node".into(),
            organisation: None,
            validator: false,
            log_level: "info".into(),
            chain: ChainPaths::default(),
            store: StoreConfig::default(),
            p2p: P2pConfig::default(),
            http: HttpConfig::default(),
            consensus: ConsensusTimeouts::default(),
            byzantine: None,
        }
    }
}

impl Default for ChainPaths {
    fn default() -> Self {
        ChainPaths {
            genesis: "genesis.json".into(),
            node_key: "node.key".into(),
            data_dir: "data".into(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_mib: DEFAULT_STORE_CACHE_MIB,
        }
    }
}

impl StoreConfig {
    /// The cache size in bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache_mib as usize * 1024 * 1024
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: P2pAddress::tcp(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_P2P_PORT),
            peers: Vec::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_HTTP_PORT),
        }
    }
}

/// Why a node configuration could not be loaded, saved or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read node config {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown field, or a value of the wrong form.
    #[error("node config {} is malformed: {message}", path.display())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with the line and the offending text.
        message: String,
    },
    /// Well formed but unusable.
    #[error("node config {}: {problem}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file could not be written.
    #[error("cannot write node config {}: {source}", path.display())]
    Write {
        /// The config file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The configuration disagrees with the genesis or the node key.
    #[error("node config does not fit the genesis: {0}")]
    Mismatch(String),
    /// The genesis named by the configuration could not be read.
    #[error(transparent)]
    Genesis(#[from] GenesisFileError),
    /// The key file named by the configuration could not be read.
    #[error(transparent)]
    Key(#[from] KeyFileError),
}

impl NodeConfig {
    /// Reads, resolves (`home` made absolute) and checks a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<NodeConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = NodeConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let base = fsutil::parent_dir(path).join(&config.home);
        config.home = std::path::absolute(&base).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        config.validate().map_err(|problem| ConfigError::Invalid {
            path: path.to_owned(),
            problem,
        })?;
        Ok(config)
    }

    /// Parses TOML text as is (no resolution, no checks); the error is the parser's message.
    pub fn from_toml(text: &str) -> Result<NodeConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a node config always serialises")
    }

    /// Writes the configuration atomically (mode 0644), replacing an existing file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        let text = format!(
            "# ipledger node configuration; see genesis/README.md.\n{}",
            self.to_toml()
        );
        fsutil::write_atomic(path, text.as_bytes(), 0o644, Existing::Replace).map_err(|source| {
            ConfigError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// Checks values that the parser cannot: the log filter, positive timeouts, distinct peers.
    pub fn validate(&self) -> Result<(), String> {
        if self.moniker.trim().is_empty() {
            return Err("moniker must not be empty".into());
        }
        check_log_level(&self.log_level)?;
        if !(1..=STORE_CACHE_MIB_MAX).contains(&self.store.cache_mib) {
            return Err(format!(
                "store.cache_mib is {}; it must lie within 1 to {STORE_CACHE_MIB_MAX}",
                self.store.cache_mib
            ));
        }
        if let Some(field) = self.consensus.zero_field() {
            return Err(format!("consensus.{field} must be positive"));
        }
        for (name, path) in [
            ("chain.genesis", &self.chain.genesis),
            ("chain.node_key", &self.chain.node_key),
            ("chain.data_dir", &self.chain.data_dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err(format!("{name} must not be empty"));
            }
        }
        if let Some(byzantine) = &self.byzantine {
            if !self.validator {
                return Err("[byzantine] needs validator = true: only a validator can lie".into());
            }
            byzantine.validate()?;
        }
        let mut keys = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for peer in &self.p2p.peers {
            if !keys.insert(peer.public_key) {
                return Err(format!(
                    "peer key {} is listed twice in [[p2p.peers]]",
                    peer.public_key
                ));
            }
            if !addresses.insert(&peer.address) {
                return Err(format!(
                    "peer address {} is listed twice in [[p2p.peers]]",
                    peer.address
                ));
            }
        }
        Ok(())
    }

    /// The genesis file's path.
    pub fn genesis_path(&self) -> PathBuf {
        self.home.join(&self.chain.genesis)
    }

    /// The node key file's path.
    pub fn node_key_path(&self) -> PathBuf {
        self.home.join(&self.chain.node_key)
    }

    /// The data directory's path.
    pub fn data_dir(&self) -> PathBuf {
        self.home.join(&self.chain.data_dir)
    }

    /// Reads the genesis (validated) and checks this configuration against it.
    pub fn load_genesis(&self) -> Result<Genesis, ConfigError> {
        let genesis = read_genesis(self.genesis_path())?;
        self.check_consensus(&genesis)?;
        Ok(genesis)
    }

    /// Reads the node key (refused if group or others may read it).
    pub fn load_node_key(&self) -> Result<KeyFile, ConfigError> {
        Ok(KeyFile::read(self.node_key_path())?)
    }

    /// Checks that `[consensus]` equals the genesis's consensus parameters.
    pub fn check_consensus(&self, genesis: &Genesis) -> Result<(), ConfigError> {
        let expected = ConsensusTimeouts::from(&genesis.consensus);
        if self.consensus != expected {
            return Err(ConfigError::Mismatch(format!(
                "[consensus] is {:?} but the genesis has {:?}; copy the genesis's values",
                self.consensus, expected
            )));
        }
        Ok(())
    }

    /// Checks the configuration against the genesis and the node's own key: consensus timing
    /// equal, a validator's key in the validator set, and the node not among its own peers.
    pub fn check_genesis(
        &self,
        genesis: &Genesis,
        node_key: &PublicKey,
    ) -> Result<(), ConfigError> {
        self.check_consensus(genesis)?;
        if self.validator && !genesis.validators.iter().any(|v| &v.key == node_key) {
            return Err(ConfigError::Mismatch(format!(
                "validator = true but the node key {node_key} is not in the genesis validator set"
            )));
        }
        if self.p2p.peers.iter().any(|p| &p.public_key == node_key) {
            return Err(ConfigError::Mismatch(format!(
                "the node's own key {node_key} is listed among its peers"
            )));
        }
        Ok(())
    }

    /// The configuration of the node with key `node_key` in the consortium `spec` (whose
    /// genesis is `genesis`): a validator if the spec lists the key, listening on its spec
    /// address (all interfaces for a DNS name), with every other validator as a peer and the
    /// genesis's consensus timing. Other fields keep their defaults; `home` is as given.
    pub fn from_spec(
        spec: &ConsortiumSpec,
        genesis: &Genesis,
        node_key: &PublicKey,
        home: PathBuf,
    ) -> NodeConfig {
        let mut config = NodeConfig {
            home,
            consensus: ConsensusTimeouts::from(&genesis.consensus),
            ..NodeConfig::default()
        };
        if let Some(own) = spec.validator(node_key) {
            config.validator = genesis.validators.iter().any(|v| &v.key == node_key);
            config.organisation = Some(own.organisation.clone());
            config.moniker = own.organisation.0.clone();
            config.p2p.listen = own.p2p.listen_address();
        }
        config.p2p.peers = spec
            .validators
            .iter()
            .filter(|v| &v.key != node_key)
            .map(|v| PeerConfig {
                address: v.p2p.clone(),
                public_key: v.key,
                organisation: Some(v.organisation.clone()),
            })
            .collect();
        config
    }
}

/// The `[byzantine]` table: how a validator built with the node's `byzantine` feature lies, so
/// that tests can show the honest validators stay safe and live. The first seven faults are
/// Malachite's (its `ByzantineConfig`, field for field); the `propose_*` ones are ipledger's own
/// bad proposals. Each fault has a [`Trigger`]; unset faults never fire.
///
/// ```toml
/// [byzantine]
/// seed = 7                                          # makes `random` triggers reproducible
/// equivocate_votes = { mode = "always" }            # a second, conflicting vote for each vote
/// equivocate_proposals = { mode = "random", probability = 0.5 }
/// propose_bad_signature = { mode = "at_heights", heights = [6, 10] }
/// propose_future_time = { mode = "height_range", from = 20, to = 30 }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ByzantineConfig {
    /// Seed of the random triggers; `None` draws one from the OS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Send each vote, then a conflicting one of the same type, height and round (double vote).
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub equivocate_votes: Trigger,
    /// Send each proposal, then a conflicting one: another, valid block of the same height.
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub equivocate_proposals: Trigger,
    /// Send no votes.
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub drop_votes: Trigger,
    /// Send no proposals.
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub drop_proposals: Trigger,
    /// Prevote for the round's proposal even when locked on another value (amnesia).
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub ignore_locks: Trigger,
    /// Precommit nil instead of a value.
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub force_precommit_nil: Trigger,
    /// Ignore the proposals other validators send.
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub drop_inbound_proposals: Trigger,
    /// Propose a block carrying a transaction whose signature does not verify.
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub propose_bad_signature: Trigger,
    /// Propose a block carrying a well-signed transaction the rules refuse (the node key signs
    /// for its organisation, which only the organisation's key may do).
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub propose_rule_violation: Trigger,
    /// Propose a block whose time is far ahead of the clock (ten times the allowed skew).
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub propose_future_time: Trigger,
    /// Propose a block whose time is before its parent's.
    #[serde(skip_serializing_if = "Trigger::is_never")]
    pub propose_time_before_parent: Trigger,
}

/// When a fault fires, at a height and round. The TOML forms are Malachite's:
/// `{ mode = "never" }`, `{ mode = "always" }`, `{ mode = "random", probability = 0.2 }`,
/// `{ mode = "at_heights", heights = [10, 20] }`, `{ mode = "at_rounds", rounds = [0, 2] }`,
/// `{ mode = "height_range", from = 5, to = 9 }` (inclusive), and
/// `{ mode = "at_heights_and_rounds", heights = [3], rounds = [0] }` (both must match).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", try_from = "TriggerTable")]
pub enum Trigger {
    /// Never (the default).
    #[default]
    Never,
    /// At every height and round.
    Always,
    /// Each time with this probability, from 0 to 1.
    Random {
        /// The probability.
        probability: f64,
    },
    /// At these heights (every round).
    AtHeights {
        /// The heights, each at least 1.
        heights: Vec<u64>,
    },
    /// At these rounds (every height).
    AtRounds {
        /// The rounds.
        rounds: Vec<u32>,
    },
    /// At the heights from `from` to `to`, both included.
    HeightRange {
        /// The first height, at least 1.
        from: u64,
        /// The last height.
        to: u64,
    },
    /// At these heights, in these rounds.
    AtHeightsAndRounds {
        /// The heights, each at least 1.
        heights: Vec<u64>,
        /// The rounds.
        rounds: Vec<u32>,
    },
}

/// A trigger as written, before its mode is known. serde's internally tagged enums ignore
/// stray fields in unit variants (`{ mode = "always", heights = [1] }`), so triggers are read
/// through this table and every field the mode does not use is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerTable {
    mode: String,
    probability: Option<f64>,
    heights: Option<Vec<u64>>,
    rounds: Option<Vec<u32>>,
    from: Option<u64>,
    to: Option<u64>,
}

impl TryFrom<TriggerTable> for Trigger {
    type Error = String;

    fn try_from(table: TriggerTable) -> Result<Trigger, String> {
        let TriggerTable {
            mode,
            mut probability,
            mut heights,
            mut rounds,
            mut from,
            mut to,
        } = table;
        let missing = |field: &str| format!("mode {mode:?} needs `{field}`");
        let trigger = match mode.as_str() {
            "never" => Trigger::Never,
            "always" => Trigger::Always,
            "random" => Trigger::Random {
                probability: probability.take().ok_or_else(|| missing("probability"))?,
            },
            "at_heights" => Trigger::AtHeights {
                heights: heights.take().ok_or_else(|| missing("heights"))?,
            },
            "at_rounds" => Trigger::AtRounds {
                rounds: rounds.take().ok_or_else(|| missing("rounds"))?,
            },
            "height_range" => Trigger::HeightRange {
                from: from.take().ok_or_else(|| missing("from"))?,
                to: to.take().ok_or_else(|| missing("to"))?,
            },
            "at_heights_and_rounds" => Trigger::AtHeightsAndRounds {
                heights: heights.take().ok_or_else(|| missing("heights"))?,
                rounds: rounds.take().ok_or_else(|| missing("rounds"))?,
            },
            other => {
                return Err(format!(
                    "unknown trigger mode {other:?} (never, always, random, at_heights, \
                     at_rounds, height_range, at_heights_and_rounds)"
                ))
            }
        };
        let stray = [
            ("probability", probability.is_some()),
            ("heights", heights.is_some()),
            ("rounds", rounds.is_some()),
            ("from", from.is_some()),
            ("to", to.is_some()),
        ];
        match stray.iter().find(|(_, present)| *present) {
            Some((field, _)) => Err(format!("mode {mode:?} takes no `{field}`")),
            None => Ok(trigger),
        }
    }
}

impl Trigger {
    /// Whether this is [`Trigger::Never`].
    pub fn is_never(&self) -> bool {
        *self == Trigger::Never
    }

    /// Checks the parameters: a probability in [0, 1], lists not empty, heights from 1, ranges
    /// in order.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        let heights_ok = |heights: &[u64]| !heights.is_empty() && !heights.contains(&0);
        let problem = match self {
            Trigger::Random { probability } if !(0.0..=1.0).contains(probability) => {
                format!("probability {probability} is not between 0 and 1")
            }
            Trigger::AtHeights { heights } if !heights_ok(heights) => {
                "heights must be a non-empty list of heights from 1".into()
            }
            Trigger::AtRounds { rounds } if rounds.is_empty() => {
                "rounds must be a non-empty list".into()
            }
            Trigger::HeightRange { from, to } if *from == 0 || from > to => {
                format!("height range {from}..={to} must start at 1 or later and not run backwards")
            }
            Trigger::AtHeightsAndRounds { heights, rounds }
                if !heights_ok(heights) || rounds.is_empty() =>
            {
                "heights (from 1) and rounds must be non-empty lists".into()
            }
            _ => return Ok(()),
        };
        Err(format!("byzantine.{field}: {problem}"))
    }
}

impl ByzantineConfig {
    /// Every fault by its TOML name, Malachite's first.
    pub fn faults(&self) -> [(&'static str, &Trigger); 11] {
        [
            ("equivocate_votes", &self.equivocate_votes),
            ("equivocate_proposals", &self.equivocate_proposals),
            ("drop_votes", &self.drop_votes),
            ("drop_proposals", &self.drop_proposals),
            ("ignore_locks", &self.ignore_locks),
            ("force_precommit_nil", &self.force_precommit_nil),
            ("drop_inbound_proposals", &self.drop_inbound_proposals),
            ("propose_bad_signature", &self.propose_bad_signature),
            ("propose_rule_violation", &self.propose_rule_violation),
            ("propose_future_time", &self.propose_future_time),
            (
                "propose_time_before_parent",
                &self.propose_time_before_parent,
            ),
        ]
    }

    /// Checks every trigger, and refuses the combinations Malachite refuses: a fault both
    /// dropping and equivocating the same messages, and equivocating votes while forcing nil
    /// precommits.
    pub fn validate(&self) -> Result<(), String> {
        for (field, trigger) in self.faults() {
            trigger.validate(field)?;
        }
        let both = |a: &Trigger, b: &Trigger| !a.is_never() && !b.is_never();
        let conflicts = [
            (
                &self.drop_votes,
                &self.equivocate_votes,
                "drop_votes and equivocate_votes",
            ),
            (
                &self.drop_proposals,
                &self.equivocate_proposals,
                "drop_proposals and equivocate_proposals",
            ),
            (
                &self.force_precommit_nil,
                &self.equivocate_votes,
                "force_precommit_nil and equivocate_votes",
            ),
        ];
        match conflicts.iter().find(|(a, b, _)| both(a, b)) {
            Some((_, _, names)) => Err(format!("byzantine: {names} cannot both be set")),
            None => Ok(()),
        }
    }
}

fn check_log_level(filter: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "log_level {filter:?} is not a level ({}) or comma-separated target=level directives",
            LOG_LEVELS.join(", ")
        ))
    };
    if filter.trim().is_empty() {
        return bad();
    }
    for directive in filter.split(',') {
        let level = match directive.split_once('=') {
            Some((target, level)) => {
                let target_ok = !target.is_empty()
                    && target
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b));
                if !target_ok {
                    return bad();
                }
                level
            }
            None => directive,
        };
        if !LOG_LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return bad();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default() {
        assert_eq!(NodeConfig::from_toml("").unwrap(), NodeConfig::default());
    }

    #[test]
    fn default_round_trips() {
        let config = NodeConfig::default();
        assert_eq!(NodeConfig::from_toml(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn log_levels() {
        assert!(check_log_level("info").is_ok());
        assert!(check_log_level("WARN").is_ok());
        assert!(check_log_level("info,ipledger_node=debug,libp2p_swarm=warn").is_ok());
        assert!(check_log_level("loud").is_err());
        assert!(check_log_level("").is_err());
        assert!(check_log_level("=debug").is_err());
    }

    #[test]
    fn a_byzantine_section_parses_checks_and_round_trips() {
        let text = r#"
            validator = true
            [byzantine]
            seed = 7
            equivocate_votes = { mode = "always" }
            equivocate_proposals = { mode = "random", probability = 0.5 }
            propose_bad_signature = { mode = "at_heights", heights = [6, 10] }
            propose_future_time = { mode = "height_range", from = 20, to = 30 }
            ignore_locks = { mode = "at_heights_and_rounds", heights = [3], rounds = [0, 1] }
        "#;
        let config = NodeConfig::from_toml(text).unwrap();
        let byzantine = config.byzantine.as_ref().unwrap();
        assert_eq!(byzantine.seed, Some(7));
        assert_eq!(byzantine.equivocate_votes, Trigger::Always);
        assert_eq!(byzantine.drop_votes, Trigger::Never);
        assert_eq!(
            byzantine.propose_bad_signature,
            Trigger::AtHeights {
                heights: vec![6, 10]
            }
        );
        assert!(config.validate().is_ok());
        assert_eq!(NodeConfig::from_toml(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn a_bad_byzantine_section_is_refused() {
        let misspelt =
            NodeConfig::from_toml("[byzantine]\nequivocate_vote = { mode = \"always\" }");
        assert!(misspelt.unwrap_err().contains("equivocate_vote"));
        let unknown_mode = NodeConfig::from_toml("[byzantine]\ndrop_votes = { mode = \"often\" }");
        assert!(unknown_mode.is_err());
        let stray_field =
            NodeConfig::from_toml("[byzantine]\ndrop_votes = { mode = \"always\", heights = [1] }");
        assert!(stray_field.is_err(), "{stray_field:?}");
        for (text, expected) in [
            (
                "drop_votes = { mode = \"random\", probability = 1.5 }",
                "probability",
            ),
            (
                "drop_votes = { mode = \"at_heights\", heights = [0] }",
                "heights",
            ),
            (
                "drop_votes = { mode = \"height_range\", from = 9, to = 5 }",
                "height range",
            ),
            (
                "drop_votes = { mode = \"always\" }\nequivocate_votes = { mode = \"always\" }",
                "cannot both be set",
            ),
        ] {
            let config =
                NodeConfig::from_toml(&format!("validator = true\n[byzantine]\n{text}")).unwrap();
            let problem = config.validate().unwrap_err();
            assert!(problem.contains(expected), "{text}: {problem}");
        }
        let full_node = NodeConfig::from_toml("[byzantine]\ndrop_votes = { mode = \"always\" }");
        assert!(full_node
            .unwrap()
            .validate()
            .unwrap_err()
            .contains("validator"));
    }

    #[test]
    fn the_store_cache_is_set_in_mib_within_bounds() {
        let config = NodeConfig::from_toml("[store]\ncache_mib = 16").unwrap();
        assert_eq!(config.store.cache_bytes(), 16 * 1024 * 1024);
        assert!(config.validate().is_ok());
        for bad in [0, STORE_CACHE_MIB_MAX + 1] {
            let config = NodeConfig::from_toml(&format!("[store]\ncache_mib = {bad}")).unwrap();
            let problem = config.validate().unwrap_err();
            assert!(problem.contains("store.cache_mib"), "{problem}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let message = NodeConfig::from_toml("validater = true").unwrap_err();
        assert!(message.contains("validater"), "{message}");
    }
}
