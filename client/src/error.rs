//! The client's errors, one variant per kind of failure, each mapped to the exit code the user
//! (or a script) acts on.

use std::path::PathBuf;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the ledger refused the transaction (the rule code is printed).
pub const EXIT_REJECTED: u8 = 1;
/// Exit code: bad usage or a bad input file.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: the node could not be reached, or did not answer usefully.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: a proof, certificate, receipt or file failed verification.
pub const EXIT_VERIFICATION_FAILED: u8 = 4;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The ledger refused the transaction by one of its rules.
    #[error("refused by the ledger with rule {code}: {message}")]
    Rejected {
        /// The rule's stable code (`asset_frozen`, `missing_signature`, ...).
        code: String,
        /// The node's explanation.
        message: String,
    },
    /// A command-line value is wrong (beyond what clap checks).
    #[error("{0}")]
    Usage(String),
    /// An input file cannot be read or is not what it should be.
    #[error("{}: {problem}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The node does not answer, or answers something that is not its API.
    #[error("node {url}: {problem}")]
    Unreachable {
        /// The node's base URL.
        url: String,
        /// What happened, and what to do.
        problem: String,
    },
    /// Something the node sent, or a receipt or file, does not verify.
    #[error("verification failed: {0}")]
    Verification(String),
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Rejected { .. } => EXIT_REJECTED,
            ClientError::Usage(_) | ClientError::BadFile { .. } | ClientError::Write { .. } => {
                EXIT_BAD_INPUT
            }
            ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
            ClientError::Verification(_) => EXIT_VERIFICATION_FAILED,
        }
    }

    /// A short name of the kind of failure, for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Rejected { .. } => "rejected",
            ClientError::Usage(_) => "usage",
            ClientError::BadFile { .. } | ClientError::Write { .. } => "bad_file",
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Verification(_) => "verification_failed",
        }
    }

    /// The rule code of a refusal, if this is one.
    pub fn rule_code(&self) -> Option<&str> {
        match self {
            ClientError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A bad input file.
    pub fn bad_file(path: impl Into<PathBuf>, problem: impl Into<String>) -> ClientError {
        ClientError::BadFile {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// A verification failure.
    pub fn verification(problem: impl Into<String>) -> ClientError {
        ClientError::Verification(problem.into())
    }

    /// A usage error.
    pub fn usage(problem: impl Into<String>) -> ClientError {
        ClientError::Usage(problem.into())
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
