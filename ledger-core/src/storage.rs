//! The one error kind for failures of the node's storage, kept apart from rule rejections.

/// A read from the node's storage failed. It is never a reason to reject a transaction: the node
/// must stop and report it, since the ledger cannot decide anything on state it cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct StorageError(pub String);
