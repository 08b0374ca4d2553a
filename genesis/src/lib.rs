//! ipledger-genesis: sets up a consortium.
//!
//! The library behind the `ipledger-genesis` tool, also used by the node (to read its
//! configuration, its key and the genesis) and by the client (to read an organisation's key):
//!
//! - [`KeyFile`]: an Ed25519 key in a small JSON file written with mode 0600 and refused when
//!   group or others may read it.
//! - [`ConsortiumSpec`]: the public description of a consortium (chain id, genesis time,
//!   organisations with roles and keys, validators with node keys, powers and p2p addresses),
//!   from which [`ConsortiumSpec::to_genesis`] builds the [`ledger_core::genesis::Genesis`].
//! - [`NodeConfig`]: one node's `config.toml` (paths, listen addresses, peers, timeouts).
//! - [`local::create_local`]: a complete local test network in one directory, on ports from
//!   [`ports::free_ports`].
//! - [`read_genesis`] / [`write_genesis`]: `genesis.json`, validated on reading.
//!
//! In a real consortium each organisation creates its keys on its own host and hands over only
//! public keys; see `genesis/README.md` for the operator's walkthrough.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod config;
mod fsutil;
pub mod genesis_file;
pub mod keyfile;
pub mod local;
pub mod params;
pub mod ports;
pub mod spec;

pub use address::P2pAddress;
pub use config::{ByzantineConfig, ConfigError, NodeConfig, PeerConfig, StoreConfig, Trigger};
pub use genesis_file::{read_genesis, write_genesis, GenesisFileError};
pub use keyfile::{KeyFile, KeyFileError};
pub use local::{create_local, LocalError, LocalNetwork, LocalOptions};
pub use params::{ChainParamsSpec, ConsensusTimeouts};
pub use spec::{ConsortiumSpec, OrganisationSpec, SpecError, ValidatorSpec};
