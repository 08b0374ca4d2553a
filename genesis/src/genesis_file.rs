//! `genesis.json`: the [`Genesis`] serialised with serde_json (pretty, final newline).
//!
//! Its fingerprint is [`Genesis::hash`] (`sha256:<hex>`), the SHA-256 of the canonical
//! encoding, not of the JSON text: reformatting the file does not change it, changing any value
//! does. Operators compare fingerprints out of band before starting their nodes.

use crate::fsutil::{self, Existing};
use ledger_core::genesis::{Genesis, GenesisError};
use std::path::{Path, PathBuf};

/// The largest genesis file read, in bytes.
pub const GENESIS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Why a genesis file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GenesisFileError {
    /// The file could not be read.
    #[error("cannot read genesis {}: {source}", path.display())]
    Read {
        /// The genesis file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not a genesis document.
    #[error("genesis {} is malformed: {message}", path.display())]
    Parse {
        /// The genesis file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A genesis document that [`Genesis::validate`] refuses.
    #[error("genesis {} is invalid: {source}", path.display())]
    Invalid {
        /// The genesis file.
        path: PathBuf,
        /// What is wrong.
        source: GenesisError,
    },
    /// The file could not be written.
    #[error("cannot write genesis {}: {source}", path.display())]
    Write {
        /// The genesis file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Reads `genesis.json` and checks it with [`Genesis::validate`].
pub fn read_genesis(path: impl AsRef<Path>) -> Result<Genesis, GenesisFileError> {
    let path = path.as_ref();
    let read_error = |source| GenesisFileError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > GENESIS_FILE_BYTES_MAX {
        return Err(GenesisFileError::Parse {
            path: path.to_owned(),
            message: format!(
                "{size} bytes is larger than any genesis ({GENESIS_FILE_BYTES_MAX} at most)"
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    let genesis: Genesis = serde_json::from_slice(&bytes).map_err(|e| GenesisFileError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    genesis
        .validate()
        .map_err(|source| GenesisFileError::Invalid {
            path: path.to_owned(),
            source,
        })?;
    Ok(genesis)
}

/// The text of `genesis.json`.
pub fn genesis_json(genesis: &Genesis) -> String {
    let mut text = serde_json::to_string_pretty(genesis).expect("a genesis always serialises");
    text.push('\n');
    text
}

/// Writes `genesis.json` atomically with mode 0644, replacing an existing file.
pub fn write_genesis(path: impl AsRef<Path>, genesis: &Genesis) -> Result<(), GenesisFileError> {
    let path = path.as_ref();
    fsutil::write_atomic(
        path,
        genesis_json(genesis).as_bytes(),
        0o644,
        Existing::Replace,
    )
    .map_err(|source| GenesisFileError::Write {
        path: path.to_owned(),
        source,
    })
}
