//! Blocks, headers, commit certificates and ledger leaves: the structures validators vote on and
//! courts verify. Executing blocks lives in `execute`.

use crate::crypto::{verify_batch, Digest, PublicKey, Signature, SignedMessage};
use crate::encoding::{self, DecodeError};
use crate::genesis::{is_quorum, total_power, Validator};
use crate::merkle::leaf_hash;
use crate::tx::SignedTx;
use crate::vote::{Vote, VoteType};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// A block header. Its hash (SHA-256 of its canonical encoding) is what validators vote on.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: String,
    /// Height, from 1.
    pub height: u64,
    /// The proposer's time, Unix milliseconds; strictly later than the previous block's.
    pub time_ms: u64,
    /// The previous block's hash; for height 1, the genesis hash.
    pub prev_block_hash: Digest,
    /// How many transactions the block carries.
    pub tx_count: u32,
    /// RFC 9162 root over this block's transactions (leaf data: each encoded signed transaction).
    pub tx_root: Digest,
    /// RFC 9162 root of the ledger-wide tree over every committed [`LedgerLeaf`] so far.
    pub ledger_root: Digest,
    /// How many leaves that tree holds.
    pub ledger_size: u64,
    /// Root of the state map after this block.
    pub state_root: Digest,
    /// Hash of the validator set that decides this block.
    pub validator_set_hash: Digest,
    /// Hash of the validator set that decides the next block.
    pub next_validator_set_hash: Digest,
    /// The proposer's consensus key.
    pub proposer: PublicKey,
    /// Hash of the commit certificate for the previous block that this block carries; `None` at
    /// height 1.
    pub last_commit_hash: Option<Digest>,
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> Digest {
        Digest::sha256(&encoding::encode(self))
    }
}

/// One validator's precommit signature in a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CommitSignature {
    /// The validator's consensus key.
    pub validator: PublicKey,
    /// Its signature over the precommit's [`Vote::sign_bytes`].
    pub signature: Signature,
}

/// The precommits that decided a block: valid with more than two thirds of the voting power of
/// that height's validator set.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// Height of the decided block.
    pub height: u64,
    /// Round in which it was decided.
    pub round: u32,
    /// The decided block's hash.
    pub block_hash: Digest,
    /// Precommit signatures, sorted by validator key, each validator once.
    pub signatures: Vec<CommitSignature>,
}

/// Why a commit certificate does not prove a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// It certifies another height or block.
    #[error("certificate is for height {got_height} block {got_hash}, expected height {height} block {hash}")]
    WrongBlock {
        /// Expected height.
        height: u64,
        /// Expected block hash.
        hash: Digest,
        /// Certified height.
        got_height: u64,
        /// Certified hash.
        got_hash: Digest,
    },
    /// Signatures unsorted or repeated.
    #[error("certificate signatures must be sorted by validator key, each validator once")]
    UnsortedSignatures,
    /// A signer is not in the validator set.
    #[error("certificate signer {0} is not in the validator set")]
    UnknownValidator(PublicKey),
    /// A signature does not verify.
    #[error("certificate signature by {0} does not verify")]
    BadSignature(PublicKey),
    /// Not enough voting power signed.
    #[error(
        "certificate carries {signed} of {total} voting power; more than two thirds is needed"
    )]
    NoQuorum {
        /// Power that signed.
        signed: u64,
        /// Total power.
        total: u64,
    },
}

impl CommitCertificate {
    /// Checks that the certificate proves block `hash` at `height` under `validators`.
    pub fn verify(
        &self,
        chain_id: &str,
        height: u64,
        hash: &Digest,
        validators: &[Validator],
    ) -> Result<(), CertificateError> {
        if self.height != height || &self.block_hash != hash {
            return Err(CertificateError::WrongBlock {
                height,
                hash: *hash,
                got_height: self.height,
                got_hash: self.block_hash,
            });
        }
        if !self
            .signatures
            .windows(2)
            .all(|pair| pair[0].validator < pair[1].validator)
        {
            return Err(CertificateError::UnsortedSignatures);
        }
        let message = self.precommit_for(chain_id).sign_bytes();
        let mut signed_power = 0u64;
        let mut items = Vec::with_capacity(self.signatures.len());
        for entry in &self.signatures {
            let validator = validators
                .iter()
                .find(|v| v.key == entry.validator)
                .ok_or(CertificateError::UnknownValidator(entry.validator))?;
            signed_power += validator.power;
            items.push(SignedMessage {
                signer: entry.validator,
                message: &message,
                signature: entry.signature,
            });
        }
        let total = total_power(validators);
        if !is_quorum(signed_power, total) {
            return Err(CertificateError::NoQuorum {
                signed: signed_power,
                total,
            });
        }
        verify_batch(&items).map_err(|error| match error {
            crate::crypto::CryptoError::BadSignature { signer }
            | crate::crypto::CryptoError::WeakKey { key: signer } => {
                CertificateError::BadSignature(signer)
            }
        })?;
        Ok(())
    }

    /// The precommit every signature in this certificate signs.
    pub fn precommit_for(&self, chain_id: &str) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            chain_id: chain_id.to_owned(),
            height: self.height,
            round: self.round,
            block_hash: Some(self.block_hash),
        }
    }

    /// The certificate's hash, as carried in the next header's `last_commit_hash`.
    pub fn hash(&self) -> Digest {
        Digest::sha256(&encoding::encode(self))
    }
}

/// A block: header, the certificate of the previous block, and the transactions.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The previous block's commit certificate (`None` at height 1).
    pub last_commit: Option<CommitCertificate>,
    /// The transactions, in execution order.
    pub txs: Vec<SignedTx>,
}

/// What [`BlockDecoder`] decoded from the bytes fed so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockPiece {
    /// The header and the carried certificate: everything before the transactions.
    Head {
        /// The header.
        header: BlockHeader,
        /// The previous block's certificate.
        last_commit: Option<CommitCertificate>,
    },
    /// The next transaction.
    Tx(SignedTx),
}

/// Decodes a block's canonical bytes as they arrive in order, so that its transactions can be
/// checked and executed before the last byte is there. It decodes exactly what
/// [`Block::decode`] would, piece by piece; [`BlockDecoder::is_complete`] says when the whole
/// block was read, and then no byte may follow.
#[derive(Debug, Default)]
pub struct BlockDecoder {
    pending: Vec<u8>,
    stage: DecoderStage,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum DecoderStage {
    #[default]
    Head,
    Count,
    Txs {
        remaining: u64,
    },
    Complete,
}

impl BlockDecoder {
    /// Adds the next bytes and returns the pieces they complete, in block order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<BlockPiece>, DecodeError> {
        self.pending.extend_from_slice(bytes);
        let mut pieces = Vec::new();
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            match self.stage {
                DecoderStage::Head => {
                    let Some(((header, last_commit), used)) =
                        encoding::decode_prefix::<(BlockHeader, Option<CommitCertificate>)>(
                            rest,
                            "block head",
                        )?
                    else {
                        break;
                    };
                    pieces.push(BlockPiece::Head {
                        header,
                        last_commit,
                    });
                    at += used;
                    self.stage = DecoderStage::Count;
                }
                DecoderStage::Count => {
                    let Some((count, used)) = encoding::decode_prefix::<u64>(rest, "block")? else {
                        break;
                    };
                    if count > u64::from(crate::genesis::BLOCK_TXS_LIMIT) {
                        return Err(DecodeError::Malformed {
                            what: "block",
                            reason: format!("{count} transactions exceed any block limit"),
                        });
                    }
                    at += used;
                    self.stage = match count {
                        0 => DecoderStage::Complete,
                        remaining => DecoderStage::Txs { remaining },
                    };
                }
                DecoderStage::Txs { remaining } => {
                    let Some((tx, used)) =
                        encoding::decode_prefix::<SignedTx>(rest, "block transaction")?
                    else {
                        if rest.len() > crate::tx::TX_BYTES_MAX {
                            return Err(DecodeError::Malformed {
                                what: "block transaction",
                                reason: format!(
                                    "more than {} bytes without a complete transaction",
                                    crate::tx::TX_BYTES_MAX
                                ),
                            });
                        }
                        break;
                    };
                    pieces.push(BlockPiece::Tx(tx));
                    at += used;
                    self.stage = match remaining - 1 {
                        0 => DecoderStage::Complete,
                        remaining => DecoderStage::Txs { remaining },
                    };
                }
                DecoderStage::Complete => {
                    if !rest.is_empty() {
                        return Err(DecodeError::TrailingBytes {
                            what: "block",
                            trailing: rest.len(),
                        });
                    }
                    break;
                }
            }
        }
        self.pending.drain(..at);
        Ok(pieces)
    }

    /// Whether the whole block has been decoded.
    pub fn is_complete(&self) -> bool {
        self.stage == DecoderStage::Complete
    }
}

impl Block {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
        encoding::decode(bytes, "block")
    }
}

/// A leaf of the ledger-wide tree: a committed transaction with the height and time of the
/// block that committed it, so that a receipt proves when it happened.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LedgerLeaf {
    /// Height of the committing block.
    pub height: u64,
    /// Time of the committing block, Unix milliseconds.
    pub time_ms: u64,
    /// The transaction.
    pub tx: SignedTx,
}

impl LedgerLeaf {
    /// The RFC 9162 leaf hash of this leaf's canonical encoding.
    pub fn leaf_hash(&self) -> Digest {
        leaf_hash(&encoding::encode(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{BLOCK_BYTES_LIMIT, BLOCK_TXS_LIMIT};
    use crate::tx::{Action, TxBody};

    /// Many small transactions claim the most decoder budget per encoded byte (bincode charges
    /// each element's in-memory size); the largest block a genesis allows must still decode.
    #[test]
    fn largest_allowed_block_decodes() {
        let tx = SignedTx::unsigned(TxBody {
            chain_id: String::new(),
            salt: [0; 16],
            valid_until: 0,
            action: Action::ReleasePledge {
                pledge: Digest::sha256(b"p"),
            },
        });
        let header = BlockHeader {
            chain_id: "c".into(),
            height: 1,
            time_ms: 1,
            prev_block_hash: Digest::sha256(b""),
            tx_count: BLOCK_TXS_LIMIT,
            tx_root: Digest::sha256(b""),
            ledger_root: Digest::sha256(b""),
            ledger_size: 0,
            state_root: Digest::sha256(b""),
            validator_set_hash: Digest::sha256(b""),
            next_validator_set_hash: Digest::sha256(b""),
            proposer: PublicKey::Ed25519([0; 32]),
            last_commit_hash: None,
        };
        let block = Block {
            header,
            last_commit: None,
            txs: vec![tx; BLOCK_TXS_LIMIT as usize],
        };
        let bytes = block.encode();
        assert!(bytes.len() <= BLOCK_BYTES_LIMIT as usize);
        assert_eq!(
            Block::decode(&bytes).expect("the largest allowed block decodes"),
            block
        );
    }
}
