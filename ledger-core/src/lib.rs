//! ledger-core: every rule that decides ipledger's ledger state, as pure functions.
//!
//! It reads state through [`state::StateRead`], takes the block time from its caller, draws no
//! randomness and does no I/O: executing a block returns the writes for the node to persist.
//! See `ARCHITECTURE.md` for the map and `docs/PROTOCOL.md` for the byte formats.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
pub mod crypto;
pub mod encoding;
pub mod execute;
pub mod genesis;
pub mod merkle;
pub mod receipt;
pub mod rejection;
pub mod rules;
pub mod state;
pub mod state_tree;
pub mod storage;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tx;
pub mod types;
pub mod vote;
