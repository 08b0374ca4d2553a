//! Key files: one Ed25519 signing key per file, readable by its owner only.
//!
//! # Format
//!
//! A key file is a JSON object with exactly three members, written with mode 0600:
//!
//! ```json
//! {
//!   "algorithm": "ed25519",
//!   "secret_seed_hex": "<64 lowercase hex digits: the 32-byte RFC 8032 secret seed>",
//!   "public_key": "ed25519:<64 hex digits>"
//! }
//! ```
//!
//! `public_key` is redundant (it follows from the seed); reading checks that it matches, which
//! catches a corrupted or hand-edited file and lets an operator see whose key a file holds
//! without any tool. Unknown members are refused.
//!
//! # Rules
//!
//! - [`KeyFile::read`] refuses a file whose mode grants anything to group or others (like
//!   `ssh` does), naming the path, the mode and the `chmod 600` fix, and refuses anything that
//!   is not a regular file of at most [`KEY_FILE_BYTES_MAX`] bytes.
//! - [`KeyFile::write`] writes atomically (temporary file with mode 0600, fsync, rename, fsync of
//!   the directory) and never replaces an existing key file.
//! - The secret is never printed: [`KeyFile`]'s `Debug` shows the public key only, no error
//!   message quotes the file's contents, and buffers holding the secret are zeroed after use.

use crate::fsutil::{self, Existing};
use ledger_core::crypto::{Digest, PublicKey, SigningKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The only algorithm a key file may name today.
pub const KEY_FILE_ALGORITHM: &str = "ed25519";
/// The largest key file read, in bytes (a real one is about 180).
pub const KEY_FILE_BYTES_MAX: u64 = 4096;
/// The mode key files are written with.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Domain separation for [`KeyFile::from_test_seed`].
pub const TEST_SEED_DOMAIN: &[u8] = b"ipledger/genesis/test-seed/v1";

/// One Ed25519 signing key, as read from or written to a key file.
pub struct KeyFile {
    key: SigningKey,
}

/// Why a key file could not be read, written or generated.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be opened or read.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Group or others have some access to the file.
    #[error(
        "key file {} has mode {mode:04o}, which lets group or others access it; a key file must be \
         readable by its owner only: run `chmod 600 {}` (and treat the key as exposed if anyone \
         else could have read it)",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory, device or other non-regular file.
    #[error("key file {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Larger than any key file.
    #[error(
        "key file {} is {size} bytes, larger than any key file ({KEY_FILE_BYTES_MAX} bytes at most)",
        path.display()
    )]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The contents are not a key file. The message never quotes the secret.
    #[error("key file {} is malformed: {problem}", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file already exists where a key was to be written.
    #[error(
        "key file {} already exists; refusing to overwrite a key (move it away first if you really mean to replace it)",
        path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file could not be written.
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(String),
}

/// The file's JSON shape. The secret is wiped when this is dropped.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    algorithm: String,
    secret_seed_hex: String,
    public_key: String,
}

impl Drop for RawKeyFile {
    fn drop(&mut self) {
        self.secret_seed_hex.zeroize();
    }
}

impl KeyFile {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<KeyFile, KeyFileError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(seed.as_mut())
            .map_err(|e| KeyFileError::Rng(e.to_string()))?;
        Ok(KeyFile::from_seed(*seed))
    }

    /// **Test networks only.** A key derived from a public `seed` and a `name`: the secret seed
    /// is `SHA-256(TEST_SEED_DOMAIN ‖ u64_le(len(seed)) ‖ seed ‖ name)`. Anyone who knows the
    /// seed string (it is typed on a command line) knows every key, so a chain whose keys come
    /// from here protects nothing; it exists so that tests get the same genesis twice.
    pub fn from_test_seed(seed: &str, name: &str) -> KeyFile {
        let digest = Digest::sha256_parts(&[
            TEST_SEED_DOMAIN,
            &(seed.len() as u64).to_le_bytes(),
            seed.as_bytes(),
            name.as_bytes(),
        ]);
        KeyFile::from_seed(*digest.as_bytes())
    }

    /// A key from its 32-byte RFC 8032 secret seed.
    pub fn from_seed(seed: [u8; 32]) -> KeyFile {
        KeyFile {
            key: SigningKey::from_seed(seed),
        }
    }

    /// Wraps an existing signing key.
    pub fn from_signing_key(key: SigningKey) -> KeyFile {
        KeyFile { key }
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The signing key, to sign with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The signing key, by value.
    pub fn into_signing_key(self) -> SigningKey {
        self.key
    }

    /// Reads and checks a key file (see the module documentation for every refusal).
    pub fn read(path: impl AsRef<Path>) -> Result<KeyFile, KeyFileError> {
        let path = path.as_ref();
        let read_error = |source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        // The checks use the opened file's metadata, so they are about the bytes read below.
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            return Err(KeyFileError::NotAFile {
                path: path.to_owned(),
            });
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        if metadata.len() > KEY_FILE_BYTES_MAX {
            return Err(KeyFileError::TooLarge {
                path: path.to_owned(),
                size: metadata.len(),
            });
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.len() as usize));
        (&mut file)
            .take(KEY_FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        KeyFile::parse(&bytes).map_err(|problem| KeyFileError::Malformed {
            path: path.to_owned(),
            problem,
        })
    }

    /// Parses a key file's contents; the error never quotes the secret.
    pub fn parse(bytes: &[u8]) -> Result<KeyFile, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err("the file is empty".into());
        }
        let raw: RawKeyFile = serde_json::from_slice(bytes).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Eof => "it is truncated",
                serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                    "it is not JSON"
                }
                serde_json::error::Category::Data => "it does not have the key file's members",
            };
            format!(
                "{what} ({e}); expected {{\"algorithm\": \"ed25519\", \"secret_seed_hex\": \"<64 hex digits>\", \"public_key\": \"ed25519:<64 hex digits>\"}}"
            )
        })?;
        if raw.algorithm != KEY_FILE_ALGORITHM {
            return Err(format!(
                "algorithm {:?} is not supported; expected {KEY_FILE_ALGORITHM:?}",
                raw.algorithm.chars().take(32).collect::<String>()
            ));
        }
        let hex_text = raw.secret_seed_hex.as_bytes();
        if hex_text.len() != 64 {
            return Err(format!(
                "secret_seed_hex must be 64 hex digits (32 bytes); it has {} characters",
                raw.secret_seed_hex.chars().count()
            ));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_text, seed.as_mut())
            .map_err(|_| "secret_seed_hex holds a character that is not a hex digit".to_owned())?;
        let key = KeyFile::from_seed(*seed);
        let stated: PublicKey = raw
            .public_key
            .parse()
            .map_err(|e| format!("public_key: {e}"))?;
        if stated != key.public_key() {
            return Err(format!(
                "public_key {stated} does not match the secret seed (which gives {}); the file is corrupt or was edited",
                key.public_key()
            ));
        }
        Ok(key)
    }

    /// The file's contents (JSON and a final newline). Holds the secret: zeroed on drop.
    pub fn to_json(&self) -> Zeroizing<String> {
        let mut seed = Zeroizing::new(self.key.seed());
        let raw = RawKeyFile {
            algorithm: KEY_FILE_ALGORITHM.into(),
            secret_seed_hex: hex::encode(seed.as_ref()),
            public_key: self.public_key().to_string(),
        };
        seed.zeroize();
        let mut text = Zeroizing::new(
            serde_json::to_string_pretty(&raw).expect("a key file always serialises"),
        );
        text.push('\n');
        text
    }

    /// Writes the key to `path` with mode 0600, atomically; refuses to replace an existing
    /// file. The directory must exist.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), KeyFileError> {
        let path = path.as_ref();
        let json = self.to_json();
        fsutil::write_atomic(path, json.as_bytes(), KEY_FILE_MODE, Existing::Refuse).map_err(
            |source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyFileError::Exists {
                        path: path.to_owned(),
                    }
                } else {
                    KeyFileError::Write {
                        path: path.to_owned(),
                        source,
                    }
                }
            },
        )
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFile({})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips() {
        let key = KeyFile::from_test_seed("s", "bank-a");
        let json = key.to_json();
        let back = KeyFile::parse(json.as_bytes()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.signing_key().seed(), key.signing_key().seed());
    }

    #[test]
    fn test_seed_depends_on_seed_and_name() {
        let a = KeyFile::from_test_seed("s", "bank-a").public_key();
        assert_eq!(a, KeyFile::from_test_seed("s", "bank-a").public_key());
        assert_ne!(a, KeyFile::from_test_seed("s", "bank-b").public_key());
        assert_ne!(a, KeyFile::from_test_seed("t", "bank-a").public_key());
        // The length prefix keeps (seed, name) pairs apart.
        assert_ne!(
            KeyFile::from_test_seed("ab", "c").public_key(),
            KeyFile::from_test_seed("a", "bc").public_key()
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = KeyFile::generate().unwrap().public_key();
        let b = KeyFile::generate().unwrap().public_key();
        assert_ne!(a, b);
    }

    #[test]
    fn errors_never_quote_the_secret() {
        let key = KeyFile::from_test_seed("s", "x");
        let json = key.to_json();
        let secret = hex::encode(key.signing_key().seed());
        let other = KeyFile::from_test_seed("s", "y").public_key().to_string();
        let edited = json.replace(&key.public_key().to_string(), &other);
        let message = KeyFile::parse(edited.as_bytes()).unwrap_err();
        assert!(message.contains("does not match"), "{message}");
        assert!(!message.contains(&secret));
        let truncated = &json[..json.len() / 2];
        let message = KeyFile::parse(truncated.as_bytes()).unwrap_err();
        assert!(message.contains("truncated"), "{message}");
        assert!(!message.contains(&secret[..16]));
        assert!(format!("{key:?}").contains(&key.public_key().to_string()));
        assert!(!format!("{key:?}").contains(&secret));
    }
}
