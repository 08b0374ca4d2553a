//! The store's one error type: every failure names what failed, where, and with which values.

use ledger_core::block::CertificateError;
use ledger_core::crypto::Digest;
use ledger_core::execute::GenesisBuildError;
use ledger_core::storage::StorageError;
use std::path::PathBuf;

/// Why the store could not open, read, write or verify.
///
/// A write that fails (a [`StoreError::Database`] from `commit_block` or `init_genesis`) is fatal
/// for the node: it must stop rather than report the block committed. Corruption found on disk is
/// always an error, never a panic, and never served.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created as a redb database (missing directory, no
    /// permission, already open in another process, not a redb file, ...).
    #[error("opening store {path}: {source}")]
    Open {
        /// The store file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::DatabaseError,
    },
    /// redb's integrity check on open found pages whose checksums do not match, or a file that
    /// does not match its own layout (truncated, overwritten), and could not repair it.
    #[error("store {path} failed redb's integrity check: {source}")]
    Integrity {
        /// The store file.
        path: PathBuf,
        /// redb's report.
        #[source]
        source: redb::DatabaseError,
    },
    /// The store file exists but is empty: a truncated store, which is never re-initialised.
    #[error(
        "store file {path} exists but is empty (truncated?); refusing to start a new store in it"
    )]
    EmptyFile {
        /// The store file.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A redb operation failed while reading or writing.
    #[error("database: {context}: {source}")]
    Database {
        /// What was being done, with the table.
        context: String,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// Stored data is missing, undecodable, or contradicts other stored data.
    #[error("table {table}, {key}: {problem}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The key, e.g. `height 17`.
        key: String,
        /// What is wrong, with the stored and expected values.
        problem: String,
    },
    /// The file was written by a store of another format version.
    #[error("store format version {found} is not supported; this build reads version {expected}")]
    Format {
        /// The version in the file.
        found: u32,
        /// [`super::STORE_FORMAT_VERSION`].
        expected: u32,
    },
    /// The store has no genesis yet; `init_genesis` must run first.
    #[error("the store has no genesis; initialise it with the chain's genesis first")]
    NoGenesis,
    /// The genesis document is inconsistent.
    #[error("genesis is invalid: {0}")]
    InvalidGenesis(#[source] GenesisBuildError),
    /// The store already holds another chain's genesis.
    #[error("the store holds genesis {stored}, refusing genesis {given}")]
    GenesisMismatch {
        /// Hash of the stored genesis.
        stored: Digest,
        /// Hash of the genesis given.
        given: Digest,
    },
    /// A block that does not follow the stored head.
    #[error("block height {got} does not follow the stored head {head}")]
    NotNext {
        /// The stored head height.
        head: u64,
        /// The block's height.
        got: u64,
    },
    /// A block whose `prev_block_hash` is not the stored head's hash.
    #[error("block {height} names parent {got}, but the stored parent hashes to {expected}")]
    WrongParent {
        /// The block's height.
        height: u64,
        /// The stored parent's hash (the genesis hash for height 1).
        expected: Digest,
        /// The block's `prev_block_hash`.
        got: Digest,
    },
    /// The certificate given with a block does not commit it.
    #[error("certificate for block {height}: {error}")]
    BadCertificate {
        /// The block's height.
        height: u64,
        /// Why.
        #[source]
        error: CertificateError,
    },
    /// The executed block's parts disagree with each other or with the stored state; the caller
    /// has a bug, and nothing was written.
    #[error("executed block {height} is inconsistent: {problem}")]
    Inconsistent {
        /// The block's height.
        height: u64,
        /// What disagrees.
        problem: String,
    },
    /// Reading the state tree through ledger-core failed (the message carries the underlying
    /// store error).
    #[error("state at version {version}: {error}")]
    State {
        /// The state version read.
        version: u64,
        /// ledger-core's report.
        #[source]
        error: StorageError,
    },
    /// A receipt would carry more validator changes than a receipt may.
    #[error("receipt would carry {count} validator changes; a receipt carries at most {max}")]
    TooManyValidatorChanges {
        /// Changes below the head.
        count: usize,
        /// `RECEIPT_VALIDATOR_CHANGES_MAX`.
        max: usize,
    },
    /// The consensus engine's write-ahead log is damaged in a way that could make the engine
    /// forget an entry the node may have sent (see [`super::wal`]).
    #[error(
        "consensus write-ahead log {path} is damaged: {problem}. The node refuses to start: \
         replaying this log could make it sign a vote that conflicts with one it already sent. \
         Move the file aside only once the other validators have committed height {height}"
    )]
    Wal {
        /// The log file.
        path: PathBuf,
        /// The height whose entries may be lost: the log's, or the one after the store's head.
        height: u64,
        /// What is wrong, with the entry and byte offset.
        problem: String,
    },
    /// Re-executing the stored chain from genesis found a block, certificate or stored record
    /// that is not what execution produces.
    #[error("chain verification failed at height {height}: {problem}")]
    ChainInvalid {
        /// The first height that failed (0 for the genesis state).
        height: u64,
        /// What failed.
        problem: String,
    },
}

/// Attaches context to redb's errors, so a failure names the operation and table.
pub(crate) trait DbContext<T> {
    /// Maps a redb error into [`StoreError::Database`] with `context`.
    fn db(self, context: &str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbContext<T> for Result<T, E> {
    fn db(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|error| StoreError::Database {
            context: context.to_owned(),
            source: error.into(),
        })
    }
}

/// A [`StoreError::Corrupt`] for `table` at `key`.
pub(crate) fn corrupt(
    table: &'static str,
    key: impl std::fmt::Display,
    problem: impl Into<String>,
) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// `ENOSPC`: the OS error number of a full file system (Linux, the BSDs and macOS alike).
const ENOSPC: i32 = 28;

/// Whether any error in `chain` (an error and its sources, e.g. `anyhow::Error::chain`) is a full
/// file system or an exhausted quota. redb does not expose its I/O error as a source, and the
/// engine reports its write failures as text, so an error's message counts too when it carries
/// the OS's words for `ENOSPC`.
pub fn is_no_space<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> bool {
    chain.into_iter().any(|error| {
        let io_full = error.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        });
        io_full || mentions_no_space(&error.to_string())
    })
}

/// Whether `message` carries the OS's description of `ENOSPC` ("No space left on device (os error
/// 28)" on Linux).
pub fn mentions_no_space(message: &str) -> bool {
    message.contains(&std::io::Error::from_raw_os_error(ENOSPC).to_string())
}
