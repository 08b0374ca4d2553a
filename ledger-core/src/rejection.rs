//! Every reason the ledger refuses a transaction, one variant per rule, each with a stable code.

use crate::crypto::{Digest, PublicKey};
use crate::storage::StorageError;
use crate::tx::TxId;
use crate::types::{AssetId, PartyId, Role};

/// A transaction was refused by a rule. Refused transactions change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The transaction names another chain.
    #[error("transaction is for chain {got:?}, this is chain {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The chain named.
        got: String,
    },
    /// `valid_until` has passed.
    #[error("transaction expired at height {valid_until}; the ledger is at height {height}")]
    Expired {
        /// The transaction's last valid height.
        valid_until: u64,
        /// The height it was offered at.
        height: u64,
    },
    /// `valid_until` is further ahead than the genesis allows.
    #[error(
        "valid_until {valid_until} is beyond the allowed maximum {max} (height + tx_lifetime_max)"
    )]
    LifetimeTooLong {
        /// The transaction's last valid height.
        valid_until: u64,
        /// The furthest allowed.
        max: u64,
    },
    /// The same transaction id was already committed (a replay).
    #[error("transaction {id} was already committed")]
    AlreadyCommitted {
        /// The id.
        id: TxId,
    },
    /// A field breaks a format rule.
    #[error("field {field}: {problem}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A signature does not verify.
    #[error("signature by {signer} does not verify")]
    BadSignature {
        /// The claimed signer.
        signer: PublicKey,
    },
    /// Signatures are not sorted by key, or a key signed twice.
    #[error("signatures must be sorted by signer key with each key once")]
    UnsortedSignatures,
    /// A signature from a key that belongs to no active party.
    #[error("signer {key} is not an enrolled party's current key")]
    UnknownSigner {
        /// The key.
        key: PublicKey,
    },
    /// A required party did not sign.
    #[error("missing signature of {party} ({why})")]
    MissingSignature {
        /// The party whose signature is needed.
        party: PartyId,
        /// Why it is needed.
        why: &'static str,
    },
    /// A party signed that has no part in this transaction.
    #[error("unexpected signature of {party}; only the parties the rule names may sign")]
    UnexpectedSignature {
        /// The party.
        party: PartyId,
    },
    /// A governance action lacks signatures of enough validator organisations.
    #[error("governance needs more than two thirds of {eligible} validator organisations; {signed} signed")]
    QuorumNotReached {
        /// Organisations that signed.
        signed: usize,
        /// Organisations eligible.
        eligible: usize,
    },
    /// A named party does not exist.
    #[error("party {party} is not enrolled")]
    UnknownParty {
        /// The party.
        party: PartyId,
    },
    /// A named party was removed by governance.
    #[error("party {party} was removed and may take no part")]
    InactiveParty {
        /// The party.
        party: PartyId,
    },
    /// A party has the wrong role for what it is asked to do.
    #[error("party {party} is a {role:?}; this needs a {needed}")]
    WrongRole {
        /// The party.
        party: PartyId,
        /// Its role.
        role: Role,
        /// The role needed.
        needed: &'static str,
    },
    /// A party identifier is taken.
    #[error("party {party} already exists")]
    PartyExists {
        /// The party.
        party: PartyId,
    },
    /// A key is already some party's key.
    #[error("key {key} already belongs to {party}")]
    KeyInUse {
        /// The key.
        key: PublicKey,
        /// Its holder.
        party: PartyId,
    },
    /// A key is malformed or of small order.
    #[error("key {key} is malformed or of small order")]
    WeakKey {
        /// The key.
        key: PublicKey,
    },
    /// First to file wins: the work is registered already.
    #[error("work {content_hash} was registered first by {owner} at height {height} (time {time_ms} ms)")]
    WorkAlreadyRegistered {
        /// The content hash.
        content_hash: Digest,
        /// The earlier registrant.
        owner: PartyId,
        /// Height of the earlier registration.
        height: u64,
        /// Time of the earlier registration.
        time_ms: u64,
    },
    /// The patent or trademark is recorded already.
    #[error("{asset} was recorded already at height {height} for {owner}")]
    RightAlreadyRecorded {
        /// The right.
        asset: AssetId,
        /// Its recorded owner.
        owner: PartyId,
        /// Height of the earlier record.
        height: u64,
    },
    /// The asset is not on the ledger.
    #[error("asset {asset} is not registered")]
    UnknownAsset {
        /// The asset.
        asset: AssetId,
    },
    /// The party acting as owner does not own the asset.
    #[error("{party} does not own {asset}; its owner is {owner}")]
    NotOwner {
        /// The asset.
        asset: AssetId,
        /// Its owner.
        owner: PartyId,
        /// Who claimed to own it.
        party: PartyId,
    },
    /// The asset is frozen by a court.
    #[error("{asset} is frozen by {court} in case {case_ref}")]
    AssetFrozen {
        /// The asset.
        asset: AssetId,
        /// The court.
        court: PartyId,
        /// Its case.
        case_ref: String,
    },
    /// The asset is already frozen (a second freeze would hide the first).
    #[error("{asset} is already frozen by {court} in case {case_ref}")]
    AlreadyFrozen {
        /// The asset.
        asset: AssetId,
        /// The court.
        court: PartyId,
        /// Its case.
        case_ref: String,
    },
    /// Unfreeze of an asset that is not frozen.
    #[error("{asset} is not frozen")]
    NotFrozen {
        /// The asset.
        asset: AssetId,
    },
    /// Unfreeze by another court or under another case than the freeze.
    #[error("{asset} was frozen by {court} in case {case_ref}; only that court may lift it under that case")]
    FreezeMismatch {
        /// The asset.
        asset: AssetId,
        /// The freezing court.
        court: PartyId,
        /// Its case.
        case_ref: String,
    },
    /// A licence would overlap an exclusive one (or an exclusive one would overlap any).
    #[error("licence on {asset} overlaps licence {existing} and one of them is exclusive")]
    LicenceConflict {
        /// The asset.
        asset: AssetId,
        /// The conflicting licence's transaction.
        existing: TxId,
    },
    /// A per-asset list is full.
    #[error("{asset} already carries the maximum of {max} {what}")]
    AssetListFull {
        /// The asset.
        asset: AssetId,
        /// What list.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// First rank demanded but an active pledge exists.
    #[error("first rank demanded but {asset} already carries active pledge {existing}")]
    FirstRankUnavailable {
        /// The asset.
        asset: AssetId,
        /// The senior pledge.
        existing: TxId,
    },
    /// The pledge does not exist.
    #[error("pledge {pledge} is not registered")]
    UnknownPledge {
        /// The pledge.
        pledge: TxId,
    },
    /// The pledge was released or enforced already.
    #[error("pledge {pledge} is no longer active")]
    PledgeNotActive {
        /// The pledge.
        pledge: TxId,
    },
    /// The pledge's official registration is recorded already.
    #[error("pledge {pledge} already has its official registration recorded")]
    OfficialRegistrationExists {
        /// The pledge.
        pledge: TxId,
    },
    /// Enforcement before maturity without a court order.
    #[error("pledge matures at {maturity_ms} ms; block time is {time_ms} ms and no court order is given")]
    NotMatured {
        /// Maturity.
        maturity_ms: u64,
        /// Block time.
        time_ms: u64,
    },
    /// Enforcement of a junior pledge without a court order.
    #[error("pledge ranks behind {senior} on {asset}; only the first-ranked pledge may be enforced without a court order")]
    NotFirstRank {
        /// The asset.
        asset: AssetId,
        /// The senior pledge.
        senior: TxId,
    },
    /// A scheduled validator-set change is invalid.
    #[error("validator change: {0}")]
    BadValidatorChange(String),
    /// An organisation still runs a validator and cannot be removed.
    #[error("{party} runs validator {key}; change the validator set first")]
    OrganisationRunsValidator {
        /// The organisation.
        party: PartyId,
        /// Its validator key.
        key: PublicKey,
    },
    /// Misbehaviour evidence does not show a double vote.
    #[error("misbehaviour evidence rejected: {0}")]
    BadMisbehaviourEvidence(String),
    /// The double vote is recorded already.
    #[error("misbehaviour of {validator} at height {height} round {round} is already recorded")]
    MisbehaviourAlreadyRecorded {
        /// The validator.
        validator: PublicKey,
        /// Height.
        height: u64,
        /// Round.
        round: u32,
    },
}

impl Rejection {
    /// The stable machine-readable code of the rule that failed, used by the API and the CLI.
    pub fn code(&self) -> &'static str {
        use Rejection::*;
        match self {
            WrongChain { .. } => "wrong_chain",
            Expired { .. } => "expired",
            LifetimeTooLong { .. } => "lifetime_too_long",
            AlreadyCommitted { .. } => "already_committed",
            Malformed { .. } => "malformed",
            BadSignature { .. } => "bad_signature",
            UnsortedSignatures => "unsorted_signatures",
            UnknownSigner { .. } => "unknown_signer",
            MissingSignature { .. } => "missing_signature",
            UnexpectedSignature { .. } => "unexpected_signature",
            QuorumNotReached { .. } => "quorum_not_reached",
            UnknownParty { .. } => "unknown_party",
            InactiveParty { .. } => "inactive_party",
            WrongRole { .. } => "wrong_role",
            PartyExists { .. } => "party_exists",
            KeyInUse { .. } => "key_in_use",
            WeakKey { .. } => "weak_key",
            WorkAlreadyRegistered { .. } => "work_already_registered",
            RightAlreadyRecorded { .. } => "right_already_recorded",
            UnknownAsset { .. } => "unknown_asset",
            NotOwner { .. } => "not_owner",
            AssetFrozen { .. } => "asset_frozen",
            AlreadyFrozen { .. } => "already_frozen",
            NotFrozen { .. } => "not_frozen",
            FreezeMismatch { .. } => "freeze_mismatch",
            LicenceConflict { .. } => "licence_conflict",
            AssetListFull { .. } => "asset_list_full",
            FirstRankUnavailable { .. } => "first_rank_unavailable",
            UnknownPledge { .. } => "unknown_pledge",
            PledgeNotActive { .. } => "pledge_not_active",
            OfficialRegistrationExists { .. } => "official_registration_exists",
            NotMatured { .. } => "not_matured",
            NotFirstRank { .. } => "not_first_rank",
            BadValidatorChange(_) => "bad_validator_change",
            OrganisationRunsValidator { .. } => "organisation_runs_validator",
            BadMisbehaviourEvidence(_) => "bad_misbehaviour_evidence",
            MisbehaviourAlreadyRecorded { .. } => "misbehaviour_already_recorded",
        }
    }
}

/// Why applying a transaction failed: a rule refused it, or storage could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// A rule refused the transaction; nothing changed.
    #[error("rejected ({code}): {0}", code = .0.code())]
    Rejected(#[from] Rejection),
    /// Storage failed; the node must stop, not decide.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
