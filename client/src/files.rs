//! The files the client reads and writes: works and evidence (hashed locally, streamed, never
//! sent anywhere), key files, the genesis, receipts and drafts.

use crate::error::{ClientError, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ipledger_genesis::{read_genesis, KeyFile};
use ledger_core::crypto::{Digest, SigningKey};
use ledger_core::genesis::Genesis;
use ledger_core::receipt::Receipt;
use ledger_core::tx::SignedTx;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::Path;

/// Files at least this large get a progress bar while they are hashed, in bytes.
pub const PROGRESS_BAR_BYTES_MIN: u64 = 16 * 1024 * 1024;
/// The read buffer for hashing, in bytes.
pub const HASH_CHUNK_BYTES: usize = 1024 * 1024;
/// The largest receipt or draft file read, in bytes (a receipt with the most validator changes
/// a receipt may carry stays below this).
pub const JSON_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The draft file format this client writes and reads.
pub const DRAFT_FORMAT: &str = "ipledger-draft/1";

/// SHA-256 of a file, read in chunks (never whole into memory), with a progress bar on the
/// terminal for large files.
pub fn hash_file(path: &Path) -> Result<Digest> {
    let bad =
        |error: std::io::Error| ClientError::bad_file(path, format!("cannot read it: {error}"));
    let mut file = std::fs::File::open(path).map_err(bad)?;
    let size = file.metadata().map_err(bad)?.len();
    let bar = if size >= PROGRESS_BAR_BYTES_MIN {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("hashing {bar:40} {bytes}/{total_bytes} ({eta})")
                .expect("the template is valid"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_CHUNK_BYTES];
    loop {
        let n = file.read(&mut buffer).map_err(bad)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(Digest::Sha256(hasher.finalize().into()))
}

/// Reads a signing key from a key file (mode 0600 required).
pub fn read_key(path: &Path) -> Result<SigningKey> {
    KeyFile::read(path)
        .map(KeyFile::into_signing_key)
        .map_err(|error| ClientError::bad_file(path, error.to_string()))
}

/// Reads and validates a genesis file.
pub fn read_genesis_file(path: &Path) -> Result<Genesis> {
    read_genesis(path).map_err(|error| {
        ClientError::bad_file(
            path,
            format!(
                "{error}; pass the consortium's genesis.json with --genesis (or IPLEDGER_GENESIS)"
            ),
        )
    })
}

fn read_json_text(path: &Path, what: &str) -> Result<String> {
    let bad = |error: std::io::Error| {
        ClientError::bad_file(path, format!("cannot read the {what}: {error}"))
    };
    let file = std::fs::File::open(path).map_err(bad)?;
    let size = file.metadata().map_err(bad)?.len();
    if size > JSON_FILE_BYTES_MAX {
        return Err(ClientError::bad_file(
            path,
            format!("{size} bytes is larger than any {what} ({JSON_FILE_BYTES_MAX} bytes at most)"),
        ));
    }
    let mut text = String::new();
    file.take(JSON_FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(bad)?;
    Ok(text)
}

/// Writes `text` to `path` (replacing it), through a temporary file and a rename, so a reader
/// never sees half a file.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let write_error = |source| ClientError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| ClientError::usage(format!("{} is not a file name", path.display())))?;
    let temporary = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&temporary, text).map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(write_error)
}

/// Reads a receipt file (the JSON form of `ledger_core::receipt::Receipt`; see
/// docs/PROTOCOL.md, "Receipt files").
pub fn read_receipt(path: &Path) -> Result<Receipt> {
    let text = read_json_text(path, "receipt")?;
    serde_json::from_str(&text).map_err(|error| {
        ClientError::bad_file(
            path,
            format!(
                "not a receipt file ({error}); a receipt is the JSON a submitting command saved"
            ),
        )
    })
}

/// Writes a receipt file.
pub fn write_receipt(path: &Path, receipt: &Receipt) -> Result<()> {
    let mut text = serde_json::to_string_pretty(receipt).expect("a receipt always serialises");
    text.push('\n');
    write_text(path, &text)
}

/// A transaction being passed between machines to collect signatures (a pledge, a governance
/// decision, or any other action written with `--draft`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// [`DRAFT_FORMAT`].
    pub format: String,
    /// The transaction id (the hash of the body; signatures do not change it), for people to
    /// compare; recomputed and checked on reading.
    pub tx_id: Digest,
    /// The transaction with the signatures collected so far.
    pub tx: SignedTx,
}

impl Draft {
    /// A draft of `tx`.
    pub fn new(tx: SignedTx) -> Draft {
        Draft {
            format: DRAFT_FORMAT.into(),
            tx_id: tx.id(),
            tx,
        }
    }

    /// Reads a draft and checks it: its format, its id, and every signature it carries.
    pub fn read(path: &Path) -> Result<Draft> {
        let text = read_json_text(path, "draft")?;
        let draft: Draft = serde_json::from_str(&text).map_err(|error| {
            ClientError::bad_file(path, format!("not a draft file ({error}); drafts are written by `pledge draft`, `gov draft` or --draft"))
        })?;
        if draft.format != DRAFT_FORMAT {
            return Err(ClientError::bad_file(
                path,
                format!("draft format {:?} is not {DRAFT_FORMAT:?}", draft.format),
            ));
        }
        if draft.tx.id() != draft.tx_id {
            return Err(ClientError::bad_file(
                path,
                format!(
                    "the transaction's body hashes to {}, not the draft's tx_id {}: the draft was edited; start again from the original",
                    draft.tx.id(),
                    draft.tx_id
                ),
            ));
        }
        if let Err(error) = draft.tx.verify_signatures() {
            return Err(ClientError::bad_file(
                path,
                format!("a signature in the draft does not verify ({error}): the draft was changed after it was signed"),
            ));
        }
        Ok(draft)
    }

    /// Writes the draft, replacing `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("a draft always serialises");
        text.push('\n');
        write_text(path, &text)
    }
}
