//! Transactions: a body that says what should happen, plus the signatures of every party that
//! bears responsibility for it.
//!
//! A transaction's id is the SHA-256 of its body alone, so a pledge draft can collect signatures
//! on three machines without its id changing. Each signer signs `TX_DOMAIN ‖ id`.

use crate::crypto::{CryptoError, Digest, PublicKey, Signature, SignedMessage, SigningKey};
use crate::encoding::{self, DecodeError};
use crate::genesis::Validator;
use crate::types::{AssetId, EvidenceKind, Money, PartyId, RightKind, Role, WorkKind};
use crate::vote::SignedVote;
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// The 14-byte domain separator that starts every transaction signature's signed bytes.
pub const TX_DOMAIN: [u8; 14] = *b"ipledger/tx/v1";
/// The largest encoded signed transaction, in bytes.
pub const TX_BYTES_MAX: usize = 64 * 1024;
/// The most signatures one transaction may carry (a governance action signed by every
/// validator organisation is the largest case).
pub const TX_SIGNATURES_MAX: usize = 128;
/// The most assets one pledge may cover.
pub const PLEDGE_ASSETS_MAX: usize = 16;
/// The most valuations one pledge may carry.
pub const PLEDGE_VALUATIONS_MAX: usize = 8;
/// The most authors one work registration may name.
pub const WORK_AUTHORS_MAX: usize = 32;

/// A transaction id: the SHA-256 of the canonical encoding of its [`TxBody`].
pub type TxId = Digest;

/// What a transaction asks for, and the replay protection around it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TxBody {
    /// The chain this transaction is for; any other chain refuses it.
    pub chain_id: String,
    /// Random bytes chosen by the author, so that two identical intents get distinct ids.
    pub salt: [u8; 16],
    /// The last height at which the transaction may be committed, so that a signed transaction
    /// nobody submitted cannot be used long after its signers meant it. At most the current
    /// height plus the genesis' `tx_lifetime_max`. An id commits at most once, ever.
    pub valid_until: u64,
    /// The action.
    pub action: Action,
}

/// One signature on a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TxSignature {
    /// The signer's current key.
    pub signer: PublicKey,
    /// Signature over `TX_DOMAIN ‖ id`.
    pub signature: Signature,
}

/// A transaction body with its signatures, sorted by signer key, one per required signer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SignedTx {
    /// What is asked.
    pub body: TxBody,
    /// Who agreed, sorted by key with no duplicates.
    pub signatures: Vec<TxSignature>,
}

impl TxBody {
    /// The transaction id.
    pub fn id(&self) -> TxId {
        Digest::sha256(&encoding::encode(self))
    }
}

/// The bytes every signer of transaction `id` signs.
pub fn tx_sign_bytes(id: &TxId) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(TX_DOMAIN.len() + 36);
    bytes.extend_from_slice(&TX_DOMAIN);
    bytes.extend_from_slice(&encoding::encode(id));
    bytes
}

impl SignedTx {
    /// A body with no signatures yet (a draft).
    pub fn unsigned(body: TxBody) -> SignedTx {
        SignedTx {
            body,
            signatures: Vec::new(),
        }
    }

    /// The transaction id (of the body; signatures do not change it).
    pub fn id(&self) -> TxId {
        self.body.id()
    }

    /// Adds (or replaces) `key`'s signature, keeping signatures sorted by key.
    pub fn sign(&mut self, key: &SigningKey) {
        let signer = key.public_key();
        let signature = key.sign(&tx_sign_bytes(&self.id()));
        match self.signatures.binary_search_by(|s| s.signer.cmp(&signer)) {
            Ok(at) => self.signatures[at].signature = signature,
            Err(at) => self
                .signatures
                .insert(at, TxSignature { signer, signature }),
        }
    }

    /// Canonical bytes, as stored in blocks and hashed into the ledger tree.
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Strictly decodes a signed transaction, refusing anything above [`TX_BYTES_MAX`].
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, DecodeError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(DecodeError::TooLong {
                len: bytes.len(),
                max: TX_BYTES_MAX,
            });
        }
        encoding::decode(bytes, "signed transaction")
    }

    /// Checks every signature cryptographically (ZIP-215), in one batch. Who must sign is a
    /// question of state, answered by the rules when the transaction is applied.
    pub fn verify_signatures(&self) -> Result<(), CryptoError> {
        let message = tx_sign_bytes(&self.id());
        let items: Vec<SignedMessage<'_>> = self
            .signatures
            .iter()
            .map(|s| SignedMessage {
                signer: s.signer,
                message: &message,
                signature: s.signature,
            })
            .collect();
        crate::crypto::verify_batch(&items)
    }
}

/// Everything a transaction can ask the ledger to do.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The trading center enrols a rights holder; the holder co-signs to prove key possession.
    EnrollRightsHolder {
        /// The trading center enrolling the holder, which signs.
        registrar: PartyId,
        /// The new party's identifier.
        party: PartyId,
        /// Display name.
        name: String,
        /// The holder's signing key.
        key: PublicKey,
        /// SHA-256 of the identity document the trading center checked; never the document.
        id_document_hash: Digest,
    },
    /// A rights holder registers a copyright work by its content hash. First to file wins.
    RegisterWork {
        /// SHA-256 of the work's bytes.
        content_hash: Digest,
        /// Title.
        title: String,
        /// Kind of work.
        kind: WorkKind,
        /// Authors' names.
        authors: Vec<String>,
        /// The owner, who signs.
        owner: PartyId,
    },
    /// The trading center records a patent or trademark by its official number; the owner
    /// co-signs.
    RecordRight {
        /// The trading center recording the right, which signs.
        registrar: PartyId,
        /// Issuing office, e.g. `CNIPA`: uppercase ASCII letters and digits.
        office: String,
        /// Patent, utility model, design patent or trademark.
        kind: RightKind,
        /// Official number.
        number: String,
        /// Title of the patent or the mark.
        title: String,
        /// The owner, who signs.
        owner: PartyId,
    },
    /// The owner transfers an asset; every active pledgee must co-sign.
    TransferAsset {
        /// The asset.
        asset: AssetId,
        /// The new owner.
        to: PartyId,
    },
    /// The owner grants a licence; every active pledgee must co-sign.
    GrantLicence {
        /// The asset.
        asset: AssetId,
        /// Who may use it.
        licensee: PartyId,
        /// Whether no other licence may overlap its term.
        exclusive: bool,
        /// Start of the term, Unix milliseconds, inclusive.
        start_ms: u64,
        /// End of the term, Unix milliseconds, exclusive.
        end_ms: u64,
    },
    /// A bank registers a pledge; pledgor, pledgee, trading center and every appraiser sign.
    RegisterPledge(PledgeTerms),
    /// The trading center records the authority's official pledge registration.
    RecordPledgeRegistration {
        /// The trading center recording it, which signs.
        registrar: PartyId,
        /// The pledge (the id of its registration transaction).
        pledge: TxId,
        /// The registering authority.
        authority: String,
        /// The official registration number.
        registration_number: String,
        /// Date of registration, `YYYY-MM-DD`.
        date: String,
    },
    /// The pledgee releases its pledge.
    ReleasePledge {
        /// The pledge.
        pledge: TxId,
    },
    /// The pledgee enforces its pledge after maturity, or at any time on a court order (then the
    /// court co-signs); ownership of every pledged asset moves to the transferee.
    EnforcePledge {
        /// The pledge.
        pledge: TxId,
        /// Who receives the assets.
        transferee: PartyId,
        /// The court order authorising enforcement, if any; the court co-signs.
        court_order: Option<CourtOrder>,
    },
    /// A court freezes an asset in a dispute.
    FreezeAsset {
        /// The asset.
        asset: AssetId,
        /// The court, which signs.
        court: PartyId,
        /// The court's case reference.
        case_ref: String,
    },
    /// The freezing court lifts its freeze.
    UnfreezeAsset {
        /// The asset.
        asset: AssetId,
        /// The court, which signs.
        court: PartyId,
        /// The case reference the freeze was made under.
        case_ref: String,
    },
    /// A court orders an asset transferred; allowed even while frozen or pledged (pledges stay
    /// attached to the asset).
    CourtOrderTransfer {
        /// The asset.
        asset: AssetId,
        /// The court, which signs.
        court: PartyId,
        /// The new owner.
        to: PartyId,
        /// The court's case reference.
        case_ref: String,
    },
    /// Any enrolled party attests a piece of electronic evidence by its hash.
    AttestEvidence {
        /// The attesting party, which signs.
        attestor: PartyId,
        /// SHA-256 of the evidence file.
        evidence_hash: Digest,
        /// Kind of evidence.
        kind: EvidenceKind,
        /// The court case it belongs to, if known.
        case_ref: Option<String>,
        /// The asset it concerns, if any.
        related_asset: Option<AssetId>,
    },
    /// A consortium decision, signed by more than two thirds of the validator organisations.
    Governance(GovernanceAction),
    /// Two conflicting votes signed by one validator, reported by any enrolled organisation.
    ReportMisbehaviour {
        /// The reporting organisation, which signs.
        reporter: PartyId,
        /// One vote.
        first: SignedVote,
        /// A vote of the same type, height and round for a different value.
        second: SignedVote,
    },
}

/// The terms of a pledge contract.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PledgeTerms {
    /// The pledged assets, all owned by the pledgor, no duplicates.
    pub assets: Vec<AssetId>,
    /// The owner pledging them.
    pub pledgor: PartyId,
    /// The lending bank.
    pub pledgee: PartyId,
    /// The trading center registering the pledge, which co-signs.
    pub registrar: PartyId,
    /// The secured amount.
    pub secured_amount: Money,
    /// Maturity, Unix milliseconds; enforcement without a court order waits until then.
    pub maturity_ms: u64,
    /// The bank demands first rank: refused if any active pledge exists on any asset.
    pub first_rank: bool,
    /// Valuations backing the loan, each signed by its appraiser.
    pub valuations: Vec<Valuation>,
}

/// A court's order, by court and case.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CourtOrder {
    /// The court, which signs.
    pub court: PartyId,
    /// Its case reference.
    pub case_ref: String,
}

/// An appraiser's valuation attached to a pledge.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Valuation {
    /// The appraisal firm, which signs the pledge transaction.
    pub appraiser: PartyId,
    /// The appraised value.
    pub amount: Money,
    /// SHA-256 of the valuation report; never the report.
    pub report_hash: Digest,
}

/// Consortium decisions.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GovernanceAction {
    /// Admit an organisation (trading center, bank, court, appraiser or regulator).
    AdmitOrganisation {
        /// Its identifier.
        party: PartyId,
        /// Display name.
        name: String,
        /// Its role; not `RightsHolder` (those are enrolled by the trading center).
        role: Role,
        /// Its signing key.
        key: PublicKey,
    },
    /// Remove an organisation; it can no longer sign. Refused while it runs a validator.
    RemoveOrganisation {
        /// The organisation.
        party: PartyId,
    },
    /// Replace the validator set from `effective_height` on.
    ChangeValidators {
        /// The new set.
        validators: Vec<Validator>,
        /// First height decided by the new set; later than the height this commits at.
        effective_height: u64,
    },
    /// Replace a party's signing key (lost or compromised key).
    RotateKey {
        /// The party.
        party: PartyId,
        /// Its new key.
        new_key: PublicKey,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> TxBody {
        TxBody {
            chain_id: "test".into(),
            salt: [7; 16],
            valid_until: 10,
            action: Action::ReleasePledge {
                pledge: Digest::sha256(b"p"),
            },
        }
    }

    #[test]
    fn id_ignores_signatures_and_signatures_stay_sorted() {
        let mut tx = SignedTx::unsigned(body());
        let id = tx.id();
        let keys: Vec<SigningKey> = [9u8, 3, 5]
            .iter()
            .map(|n| SigningKey::from_seed([*n; 32]))
            .collect();
        for key in &keys {
            tx.sign(key);
        }
        assert_eq!(tx.id(), id);
        assert!(tx.signatures.windows(2).all(|w| w[0].signer < w[1].signer));
        assert_eq!(tx.verify_signatures(), Ok(()));
        tx.sign(&keys[0]);
        assert_eq!(
            tx.signatures.len(),
            3,
            "re-signing replaces, never duplicates"
        );
    }

    #[test]
    fn changed_body_breaks_signatures() {
        let mut tx = SignedTx::unsigned(body());
        tx.sign(&SigningKey::from_seed([1; 32]));
        tx.body.valid_until += 1;
        assert!(tx.verify_signatures().is_err());
    }

    #[test]
    fn oversize_transaction_is_refused_before_decoding() {
        let bytes = vec![0u8; TX_BYTES_MAX + 1];
        assert!(matches!(
            SignedTx::decode(&bytes),
            Err(DecodeError::TooLong { .. })
        ));
    }
}
