//! Consensus votes as ledger-core defines them: the bytes a validator signs, and signed votes
//! as they appear in commit certificates and in misbehaviour evidence.
//!
//! The consensus engine adapter in `node` signs and checks exactly these bytes, so a court can
//! check a commit certificate with nothing but this crate's rules.

use crate::crypto::{CryptoError, Digest, PublicKey, Signature, SigningKey};
use crate::encoding;
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// The 16-byte domain separator that starts every vote's signed bytes.
pub const VOTE_DOMAIN: [u8; 16] = *b"ipledger/vote/v1";

/// Tendermint's two voting steps.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum VoteType {
    /// First-round vote for a proposal.
    Prevote,
    /// Second-round vote; more than two thirds of them commit a block.
    Precommit,
}

/// What a validator votes on. `block_hash: None` is a nil vote.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// The chain the vote belongs to; a vote for another chain never counts here.
    pub chain_id: String,
    /// Block height.
    pub height: u64,
    /// Consensus round within the height.
    pub round: u32,
    /// The block voted for, or `None` for nil.
    pub block_hash: Option<Digest>,
}

/// The exact layout of a vote's signed bytes; `VOTE_DOMAIN ‖ vote type ‖ chain id ‖ height ‖
/// round ‖ block hash` in the canonical encoding.
#[derive(Encode)]
struct VoteSignBytes<'a> {
    domain: [u8; 16],
    vote: &'a Vote,
}

impl Vote {
    /// The bytes a validator signs for this vote.
    pub fn sign_bytes(&self) -> Vec<u8> {
        encoding::encode(&VoteSignBytes {
            domain: VOTE_DOMAIN,
            vote: self,
        })
    }

    /// Signs the vote with a validator's key.
    pub fn sign(self, key: &SigningKey) -> SignedVote {
        let signature = key.sign(&self.sign_bytes());
        SignedVote {
            vote: self,
            validator: key.public_key(),
            signature,
        }
    }
}

/// A vote with the validator's key and signature.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SignedVote {
    /// The vote.
    pub vote: Vote,
    /// The validator's consensus key.
    pub validator: PublicKey,
    /// Signature over [`Vote::sign_bytes`].
    pub signature: Signature,
}

impl SignedVote {
    /// Checks the signature (ZIP-215).
    pub fn verify(&self) -> Result<(), CryptoError> {
        self.validator
            .verify(&self.vote.sign_bytes(), &self.signature)
    }
}
