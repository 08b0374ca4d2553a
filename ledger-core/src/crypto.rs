//! Hashes, keys and signatures, each carrying an algorithm tag.
//!
//! Every value that names an algorithm is an enum, so that China's SM2/SM3 can be added as new
//! variants later without changing the encoding of existing data. Every Ed25519 check, single or
//! batched, follows ZIP-215 through `ed25519-consensus`, so a batch and a single check can never
//! disagree about a block. `ed25519-dalek` is used only to sign and to reject weak keys.

use bincode::{Decode, Encode};
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// The length in bytes of a SHA-256 digest.
pub const SHA256_BYTES: usize = 32;

/// A cryptographic digest, tagged with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum Digest {
    /// SHA-256 (FIPS 180-4). Encoded as tag `0u32` then 32 bytes.
    Sha256([u8; SHA256_BYTES]),
}

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest::Sha256(Sha256::digest(bytes).into())
    }

    /// SHA-256 of the concatenation of `parts`, without copying them into one buffer.
    pub fn sha256_parts(parts: &[&[u8]]) -> Digest {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Digest::Sha256(hasher.finalize().into())
    }

    /// The raw digest bytes, without the algorithm tag.
    pub fn as_bytes(&self) -> &[u8; SHA256_BYTES] {
        match self {
            Digest::Sha256(bytes) => bytes,
        }
    }
}

/// An Ed25519 (or, later, another algorithm's) public key identifying a signer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum PublicKey {
    /// Ed25519 (RFC 8032) compressed point. Encoded as tag `0u32` then 32 bytes.
    Ed25519([u8; 32]),
}

/// A signature, tagged with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Signature {
    /// Ed25519 signature `R ‖ s`. Encoded as tag `0u32` then 64 bytes.
    Ed25519([u8; 64]),
}

/// Why a signature or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The signature does not verify under ZIP-215 for this key and message.
    #[error("signature by {signer} does not verify")]
    BadSignature {
        /// The key the signature claims to be from.
        signer: PublicKey,
    },
    /// The key is not a valid point, or is of small order (it would let anyone forge).
    #[error("public key {key} is malformed or of small order")]
    WeakKey {
        /// The refused key.
        key: PublicKey,
    },
}

impl PublicKey {
    /// Refuses keys that could not have come from honest key generation: bytes that are not a
    /// point, a non-canonical encoding (one point would then have several "different" keys,
    /// slipping past the one-key-one-party check), or a point outside the prime-order subgroup
    /// (small-order keys accept signatures nobody made; keys with a torsion component never
    /// come from a real secret). Every key the ledger enrols passes through here.
    pub fn check_strong(&self) -> Result<(), CryptoError> {
        let PublicKey::Ed25519(bytes) = self;
        let weak = || CryptoError::WeakKey { key: *self };
        let point = curve25519_dalek::edwards::CompressedEdwardsY(*bytes)
            .decompress()
            .ok_or_else(weak)?;
        let canonical = point.compress().to_bytes() == *bytes;
        if !canonical || point.is_small_order() || !point.is_torsion_free() {
            return Err(weak());
        }
        Ok(())
    }

    /// Verifies one signature under ZIP-215.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let (PublicKey::Ed25519(key_bytes), Signature::Ed25519(sig_bytes)) = (self, signature);
        let bad = || CryptoError::BadSignature { signer: *self };
        let key = ed25519_consensus::VerificationKey::try_from(*key_bytes).map_err(|_| bad())?;
        key.verify(&ed25519_consensus::Signature::from(*sig_bytes), message)
            .map_err(|_| bad())
    }
}

/// A private signing key. Never encoded, printed or logged by ledger-core.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Builds a key from its 32-byte secret seed (RFC 8032). Callers obtain the seed from a key
    /// file or an OS random source; ledger-core never generates randomness itself.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The 32-byte secret seed, for writing a key file.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::Ed25519(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature::Ed25519(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key())
    }
}

/// One item of a batch verification: who signed, what, and the signature.
#[derive(Clone, Copy, Debug)]
pub struct SignedMessage<'a> {
    /// The claimed signer.
    pub signer: PublicKey,
    /// The exact signed bytes.
    pub message: &'a [u8],
    /// The signature.
    pub signature: Signature,
}

/// The largest batch handed to one multiscalar multiplication; larger inputs are split.
pub const VERIFY_BATCH_SIZE_MAX: usize = 256;

/// Verifies many signatures at once under ZIP-215 and returns the first bad one, if any.
///
/// The batch equation needs random 128-bit coefficients. ledger-core reads no randomness, so the
/// coefficients come from ChaCha20 seeded with SHA-256 over every item: the result depends only on
/// the input, and a forger cannot choose signatures after seeing the coefficients. A failed batch
/// is re-checked one signature at a time to name the culprit, which also means the answer is
/// always exactly that of single ZIP-215 checks.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Result<(), CryptoError> {
    for chunk in items.chunks(VERIFY_BATCH_SIZE_MAX) {
        if verify_chunk(chunk).is_err() {
            for item in chunk {
                item.signer.verify(item.message, &item.signature)?;
            }
            // ZIP-215 promises that a batch rejects only when some single check rejects.
            unreachable!("batch verification failed but every single check passed");
        }
    }
    Ok(())
}

fn verify_chunk(chunk: &[SignedMessage<'_>]) -> Result<(), ()> {
    let mut seed_hasher = Sha256::new();
    seed_hasher.update(b"ipledger/batch-verify/v1");
    let mut verifier = ed25519_consensus::batch::Verifier::new();
    for item in chunk {
        let (PublicKey::Ed25519(key), Signature::Ed25519(sig)) = (item.signer, item.signature);
        seed_hasher.update(key);
        seed_hasher.update(sig);
        seed_hasher.update((item.message.len() as u64).to_le_bytes());
        seed_hasher.update(item.message);
        let key_bytes = ed25519_consensus::VerificationKeyBytes::from(key);
        verifier.queue((
            key_bytes,
            ed25519_consensus::Signature::from(sig),
            item.message,
        ));
    }
    let rng = rand_chacha::ChaCha20Rng::from_seed(seed_hasher.finalize().into());
    verifier.verify(rng).map_err(|_| ())
}

// Text forms: `sha256:<hex>`, `ed25519:<hex>`. Used in JSON (genesis, receipts, API) and the CLI.

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.as_bytes()))
    }
}
impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PublicKey::Ed25519(bytes) = self;
        write!(f, "ed25519:{}", hex::encode(bytes))
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Signature::Ed25519(bytes) = self;
        write!(f, "ed25519:{}", hex::encode(bytes))
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a tagged text form (`sha256:…`, `ed25519:…`) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `{expected_prefix}` followed by {expected_bytes} bytes in hex, got {got:?}")]
pub struct ParseTaggedError {
    expected_prefix: &'static str,
    expected_bytes: usize,
    got: String,
}

fn parse_tagged<const N: usize>(
    text: &str,
    prefix: &'static str,
) -> Result<[u8; N], ParseTaggedError> {
    let error = || ParseTaggedError {
        expected_prefix: prefix,
        expected_bytes: N,
        got: text.chars().take(80).collect(),
    };
    let hex_part = text.strip_prefix(prefix).ok_or_else(error)?;
    let mut bytes = [0u8; N];
    hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| error())?;
    Ok(bytes)
}

impl std::str::FromStr for Digest {
    type Err = ParseTaggedError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_tagged::<32>(text, "sha256:").map(Digest::Sha256)
    }
}
impl std::str::FromStr for PublicKey {
    type Err = ParseTaggedError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_tagged::<32>(text, "ed25519:").map(PublicKey::Ed25519)
    }
}
impl std::str::FromStr for Signature {
    type Err = ParseTaggedError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_tagged::<64>(text, "ed25519:").map(Signature::Ed25519)
    }
}

macro_rules! serde_as_text {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_as_text!(Digest, PublicKey, Signature);

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32])
    }

    #[test]
    fn signature_verifies_and_fails_on_changed_message() {
        let signer = key(1);
        let signature = signer.sign(b"pledge");
        assert_eq!(signer.public_key().verify(b"pledge", &signature), Ok(()));
        assert!(signer.public_key().verify(b"pledgf", &signature).is_err());
        assert!(key(2).public_key().verify(b"pledge", &signature).is_err());
    }

    #[test]
    fn batch_names_the_bad_signature() {
        let keys: Vec<SigningKey> = (1..=5).map(key).collect();
        let messages: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10]).collect();
        let mut items: Vec<SignedMessage> = keys
            .iter()
            .zip(&messages)
            .map(|(k, m)| SignedMessage {
                signer: k.public_key(),
                message: m,
                signature: k.sign(m),
            })
            .collect();
        assert_eq!(verify_batch(&items), Ok(()));
        items[3].signature = keys[3].sign(b"other");
        assert_eq!(
            verify_batch(&items),
            Err(CryptoError::BadSignature {
                signer: keys[3].public_key()
            })
        );
    }

    #[test]
    fn small_order_key_is_refused() {
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::Ed25519(identity).check_strong().is_err());
        assert_eq!(key(7).public_key().check_strong(), Ok(()));
    }

    #[test]
    fn text_forms_round_trip_and_reject_garbage() {
        let digest = Digest::sha256(b"abc");
        assert_eq!(
            digest.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest.to_string().parse::<Digest>(), Ok(digest));
        assert!("sha256:zz".parse::<Digest>().is_err());
        assert!("md5:00".parse::<Digest>().is_err());
    }
}
