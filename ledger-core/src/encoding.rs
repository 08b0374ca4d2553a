//! The canonical binary encoding: bincode 2 with fixed-width little-endian integers.
//!
//! Every signed or hashed structure is encoded this way, and decoding is strict: trailing bytes,
//! lengths past the limit and unknown enum variants are errors. `docs/PROTOCOL.md` gives the
//! byte layout; `tests/golden_vectors.rs` pins it.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

/// The bound on decoding. bincode counts it over the bytes read *plus* each vector's element
/// count times the element's in-memory size, so it must exceed the largest encoded structure by
/// a margin: 64 MiB covers any block the genesis may allow (at most `BLOCK_TXS_LIMIT`
/// transactions and `BLOCK_BYTES_LIMIT` bytes; see `genesis.rs` and the test
/// `largest_allowed_block_decodes`), and a forged length prefix still cannot make the decoder
/// reserve more memory than this.
pub const DECODE_BYTES_MAX: usize = 64 * 1024 * 1024;

type Canonical = Configuration<LittleEndian, Fixint, Limit<DECODE_BYTES_MAX>>;

const CANONICAL: Canonical = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<DECODE_BYTES_MAX>();

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than any structure ledger-core accepts.
    #[error("input of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Length of the input.
        len: usize,
        /// The limit, [`DECODE_BYTES_MAX`].
        max: usize,
    },
    /// bincode refused the bytes (truncated input, unknown variant, invalid UTF-8, oversize
    /// length prefix, ...).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The structure being decoded.
        what: &'static str,
        /// bincode's description of the failure.
        reason: String,
    },
    /// The structure decoded but bytes were left over; canonical encodings have none.
    #[error("malformed {what}: {trailing} trailing bytes after the encoded value")]
    TrailingBytes {
        /// The structure being decoded.
        what: &'static str,
        /// How many bytes were left.
        trailing: usize,
    },
}

/// Encodes a value canonically.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // bincode applies its limit only when decoding, and writing into a Vec cannot fail; an error
    // here would mean a broken Encode implementation, an invariant violation.
    bincode::encode_to_vec(value, CANONICAL).expect("encoding into memory cannot fail")
}

/// Decodes a value strictly: the whole input must be exactly one canonical encoding.
pub fn decode<T: Decode<()>>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    if bytes.len() > DECODE_BYTES_MAX {
        return Err(DecodeError::TooLong {
            len: bytes.len(),
            max: DECODE_BYTES_MAX,
        });
    }
    let (value, consumed) =
        bincode::decode_from_slice(bytes, CANONICAL).map_err(|error| DecodeError::Malformed {
            what,
            reason: error.to_string(),
        })?;
    if consumed != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            what,
            trailing: bytes.len() - consumed,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of `bytes`, which may hold more after it: the value and the
/// bytes it took, or `None` if `bytes` ends before the value does (more input is needed).
pub fn decode_prefix<T: Decode<()>>(
    bytes: &[u8],
    what: &'static str,
) -> Result<Option<(T, usize)>, DecodeError> {
    match bincode::decode_from_slice(bytes, CANONICAL) {
        Ok((value, consumed)) => Ok(Some((value, consumed))),
        Err(bincode::error::DecodeError::UnexpectedEnd { .. }) => Ok(None),
        Err(error) => Err(DecodeError::Malformed {
            what,
            reason: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_decodes_once_complete() {
        let bytes = encode(&(7u64, String::from("ipledger")));
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_prefix::<(u64, String)>(&bytes[..cut], "pair"),
                Ok(None),
                "cut at {cut}"
            );
        }
        let mut more = bytes.clone();
        more.push(9);
        assert_eq!(
            decode_prefix::<(u64, String)>(&more, "pair"),
            Ok(Some(((7, "ipledger".into()), bytes.len())))
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&7u64);
        assert_eq!(decode::<u64>(&bytes, "u64"), Ok(7));
        bytes.push(0);
        assert_eq!(
            decode::<u64>(&bytes, "u64"),
            Err(DecodeError::TrailingBytes {
                what: "u64",
                trailing: 1
            })
        );
    }

    #[test]
    fn truncated_and_oversize_lengths_are_refused() {
        let bytes = encode(&String::from("copyright"));
        assert!(decode::<String>(&bytes[..bytes.len() - 1], "string").is_err());
        // A length prefix claiming 2^40 bytes must fail without allocating them.
        let mut forged = (1u64 << 40).to_le_bytes().to_vec();
        forged.extend_from_slice(b"abc");
        assert!(matches!(
            decode::<Vec<u8>>(&forged, "bytes"),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn unknown_variant_is_refused() {
        let mut bytes = encode(&crate::crypto::Digest::sha256(b"x"));
        bytes[0] = 9;
        assert!(matches!(
            decode::<crate::crypto::Digest>(&bytes, "digest"),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
