//! The ipledger node: consensus, storage and API around ledger-core.

pub mod admission;
pub mod api;
pub mod consensus;
pub mod fuzz_checks;
pub mod gossip;
pub mod mempool;
mod p2p_socket;
pub mod pruner;
pub mod runner;
pub mod service;
pub mod store;
pub mod supervision;
