//! ipledger's `Context` for the Malachite engine: the concrete types consensus runs on.
//!
//! The value decided is a block hash; the block itself travels as streamed proposal parts.
//! Votes are signed over exactly the bytes `ledger_core::vote::Vote::sign_bytes` defines, so a
//! decided certificate converts into a ledger-core `CommitCertificate` that a court can check
//! with ledger-core alone.

use borsh::{BorshDeserialize, BorshSerialize};
use ledger_core::crypto::{Digest, PublicKey};
use malachitebft_core_types as mc;
use mc::{NilOrVal, Round, VoteType};
use std::fmt;

/// A block height, as the engine counts it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.checked_add(n).expect("height overflows u64"))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its Ed25519 consensus key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 32]);

impl Address {
    /// The ledger-core key this address stands for.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::Ed25519(self.0)
    }
}

impl From<PublicKey> for Address {
    fn from(key: PublicKey) -> Address {
        let PublicKey::Ed25519(bytes) = key;
        Address(bytes)
    }
}

/// `Display` as the first 12 hex digits (for logs), `Debug` as `Name(<all 64 hex digits>)`, for
/// a 32-byte newtype.
macro_rules! hex_formats {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", &hex::encode(self.0)[..12])
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }
    };
}

hex_formats!(Address);

impl mc::Address for Address {}

/// The decided value: the hash of a block. The block's bytes arrive as proposal parts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// The ledger-core digest.
    pub fn digest(&self) -> Digest {
        Digest::Sha256(self.0)
    }
}

impl From<Digest> for BlockHash {
    fn from(digest: Digest) -> BlockHash {
        BlockHash(*digest.as_bytes())
    }
}

hex_formats!(BlockHash);

impl mc::Value for BlockHash {
    type Id = BlockHash;

    fn id(&self) -> BlockHash {
        *self
    }
}

/// A consensus vote. Its signature covers ledger-core's vote bytes ([`Vote::to_ledger`]).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: Height,
    /// Round; always defined for a vote.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockHash>,
    /// The voter.
    pub validator: Address,
}

impl Vote {
    /// The ledger-core vote this is: what the validator signs, and what a certificate proves.
    pub fn to_ledger(&self, chain_id: &str) -> ledger_core::vote::Vote {
        ledger_core::vote::Vote {
            vote_type: match self.vote_type {
                VoteType::Prevote => ledger_core::vote::VoteType::Prevote,
                VoteType::Precommit => ledger_core::vote::VoteType::Precommit,
            },
            chain_id: chain_id.to_owned(),
            height: self.height.0,
            round: defined_round(self.round),
            block_hash: match &self.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(hash) => Some(hash.digest()),
            },
        }
    }
}

/// A vote or proposal round as ledger-core counts it. The engine never signs or sends a vote or
/// proposal for the nil round, so a nil round here is an engine invariant broken.
pub fn defined_round(round: Round) -> u32 {
    round
        .as_u32()
        .expect("votes and proposals carry a defined round")
}

impl mc::Vote<IpledgerContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockHash> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockHash> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    // ipledger uses no vote extensions: the policy is Disabled, so none is ever attached.
    fn extension(&self) -> Option<&mc::SignedExtension<IpledgerContext>> {
        None
    }
    fn take_extension(&mut self) -> Option<mc::SignedExtension<IpledgerContext>> {
        None
    }
    fn extend(self, _extension: mc::SignedExtension<IpledgerContext>) -> Self {
        self
    }
}

/// A proposal: the block hash a proposer offers for a height and round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The proposed block's hash.
    pub value: BlockHash,
    /// The round of the proof of lock, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

/// The 20-byte domain separator of a proposal's signed bytes.
pub const PROPOSAL_DOMAIN: [u8; 20] = *b"ipledger/proposal/v1";

impl Proposal {
    /// The bytes a proposer signs: `PROPOSAL_DOMAIN ‖ chain id ‖ height ‖ round ‖ block hash ‖
    /// pol round (-1 for nil)`, in the canonical encoding.
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        let fields = (
            PROPOSAL_DOMAIN,
            chain_id,
            self.height.0,
            defined_round(self.round),
            self.value.digest(),
            self.pol_round.as_i64(),
        );
        ledger_core::encoding::encode(&fields)
    }
}

impl mc::Proposal<IpledgerContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockHash {
        &self.value
    }
    fn take_value(self) -> BlockHash {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// One streamed piece of a proposed block: a header naming the proposal, chunks of the encoded
/// block, and the proposer's signature over all of it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalPart {
    /// Opens the stream.
    Init {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Proof-of-lock round, or nil.
        pol_round: Round,
        /// The proposer.
        proposer: Address,
        /// Total length of the encoded block, so a receiver can refuse oversize streams early.
        block_len: u64,
    },
    /// A chunk of the encoded block, at most [`PART_BYTES_MAX`] bytes.
    Data(Vec<u8>),
    /// Closes the stream with the proposer's signature over [`parts_sign_bytes`].
    Fin(ConsensusSignature),
}

/// The largest data chunk in one proposal part, in bytes.
pub const PART_BYTES_MAX: usize = 256 * 1024;
/// The 17-byte domain separator of the signature that closes a proposal stream.
pub const PARTS_DOMAIN: [u8; 17] = *b"ipledger/parts/v1";

/// The bytes a proposer signs to close a stream: the domain, chain id, height, round and the
/// SHA-256 of the encoded block, so a relaying peer cannot splice another block into it.
pub fn parts_sign_bytes(
    chain_id: &str,
    height: Height,
    round: Round,
    block_bytes_hash: &Digest,
) -> Vec<u8> {
    ledger_core::encoding::encode(&(
        PARTS_DOMAIN,
        chain_id,
        height.0,
        defined_round(round),
        *block_bytes_hash,
    ))
}

impl mc::ProposalPart<IpledgerContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// A consensus participant as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    /// Its address (consensus key).
    pub address: Address,
    /// The same key, in the signing scheme's type.
    pub public_key: ConsensusPublicKey,
    /// Voting power.
    pub voting_power: u64,
}

impl mc::Validator<IpledgerContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &ConsensusPublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.voting_power
    }
}

/// The validators of a height, sorted by address.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    /// Sorted by address, each once.
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// The engine's view of a ledger-core validator set (already sorted by key).
    pub fn from_ledger(validators: &[ledger_core::genesis::Validator]) -> ValidatorSet {
        let validators: Vec<Validator> = validators
            .iter()
            .map(|v| Validator {
                address: Address::from(v.key),
                public_key: ConsensusPublicKey(Address::from(v.key).0),
                voting_power: v.power,
            })
            .collect();
        assert!(
            validators.windows(2).all(|w| w[0].address < w[1].address),
            "ledger-core sets are sorted by key"
        );
        ValidatorSet { validators }
    }
}

impl mc::ValidatorSet<IpledgerContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.validators.iter().map(|v| v.voting_power).sum()
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(address))
            .ok()
            .map(|i| &self.validators[i])
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// An Ed25519 public key in the engine's signing scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ConsensusPublicKey(pub [u8; 32]);

/// An Ed25519 signature in the engine's signing scheme (ordered, as the engine requires).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct ConsensusSignature(pub [u8; 64]);

impl fmt::Debug for ConsensusSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConsensusSignature({}..)", &hex::encode(self.0)[..16])
    }
}

/// Ed25519 under the ZIP-215 rule of `ledger_core::crypto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Scheme;

/// Why signature or key bytes from the engine could not be read.
#[derive(Debug, thiserror::Error)]
#[error("expected {expected} bytes, got {got}")]
pub struct SchemeDecodeError {
    expected: usize,
    got: usize,
}

impl mc::SigningScheme for Ed25519Scheme {
    type DecodingError = SchemeDecodeError;
    type Signature = ConsensusSignature;
    type PublicKey = ConsensusPublicKey;
    type PrivateKey = std::sync::Arc<ledger_core::crypto::SigningKey>;

    fn decode_signature(bytes: &[u8]) -> Result<ConsensusSignature, SchemeDecodeError> {
        let array = bytes.try_into().map_err(|_| SchemeDecodeError {
            expected: 64,
            got: bytes.len(),
        })?;
        Ok(ConsensusSignature(array))
    }
    fn encode_signature(signature: &ConsensusSignature) -> Vec<u8> {
        signature.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<ConsensusPublicKey, SchemeDecodeError> {
        let array = bytes.try_into().map_err(|_| SchemeDecodeError {
            expected: 32,
            got: bytes.len(),
        })?;
        Ok(ConsensusPublicKey(array))
    }
    fn encode_public_key(public_key: &ConsensusPublicKey) -> Vec<u8> {
        public_key.0.to_vec()
    }
}

/// ipledger's consensus context. It carries the chain id, which every signed vote and proposal
/// binds.
#[derive(Clone, Debug)]
pub struct IpledgerContext {
    /// The chain id from the genesis.
    pub chain_id: std::sync::Arc<str>,
    /// How a lying validator bends its own votes (feature `byzantine`; `None` when honest).
    #[cfg(feature = "byzantine")]
    pub vote_faults: Option<std::sync::Arc<super::byzantine::VoteFaults>>,
}

impl IpledgerContext {
    /// The context of chain `chain_id`.
    pub fn new(chain_id: std::sync::Arc<str>) -> IpledgerContext {
        IpledgerContext {
            chain_id,
            #[cfg(feature = "byzantine")]
            vote_faults: None,
        }
    }
}

impl mc::Context for IpledgerContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = mc::LinearTimeouts;
    type Value = BlockHash;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519Scheme;

    /// Round-robin over the validators sorted by address, offset by height and round: every
    /// validator computes the same proposer, and a dead proposer costs one round, not a height.
    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let count = validator_set.validators.len();
        assert!(count > 0, "a validator set is never empty");
        let offset = height.0.wrapping_add(u64::from(defined_round(round)));
        &validator_set.validators[(offset % count as u64) as usize]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockHash,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        #[cfg(feature = "byzantine")]
        let value_id = match &self.vote_faults {
            Some(faults) => faults.prevote(height, round, value_id, address),
            None => value_id,
        };
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        #[cfg(feature = "byzantine")]
        let value_id = match &self.vote_faults {
            Some(faults) => faults.precommit(height, round, value_id, address),
            None => value_id,
        };
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }
}
