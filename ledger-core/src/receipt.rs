//! Receipts: everything a court needs to check, offline and trusting no node, that a
//! transaction was committed, when, and by whom it was signed.
//!
//! A receipt carries the ledger leaf (transaction, height, time), its RFC 9162 inclusion proof in
//! the ledger-wide tree, a header whose `ledger_root` the proof reaches, that header's commit
//! certificate, and every validator-set change since genesis, each certified by the outgoing
//! set. [`verify_receipt`] checks all of it against the genesis alone.

use crate::block::{BlockHeader, CertificateError, CommitCertificate, LedgerLeaf};
use crate::crypto::{CryptoError, Digest, PublicKey};
use crate::genesis::{
    validate_validator_set, validator_set_hash, Genesis, GenesisError, Validator,
};
use crate::merkle::{InclusionProof, MerkleError};
use crate::tx::TxId;
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// The most validator-set changes one receipt may carry. Each change of a 100-validator set takes
/// about 23 KB (new set and certificate), so a receipt at this limit still decodes within
/// `DECODE_BYTES_MAX`; consortia change validators a few times a year.
pub const RECEIPT_VALIDATOR_CHANGES_MAX: usize = 1_000;
/// The receipt format version this crate writes and reads.
pub const RECEIPT_FORMAT_VERSION: u32 = 1;

/// A header with the certificate that commits it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CertifiedHeader {
    /// The header.
    pub header: BlockHeader,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
}

/// A validator-set change: the header that announces it (its `next_validator_set_hash`
/// differs from its `validator_set_hash`), certified by the outgoing set, and the new set.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ValidatorChange {
    /// The announcing header, certified by the outgoing set.
    pub certified: CertifiedHeader,
    /// The incoming set; its hash is the header's `next_validator_set_hash`.
    pub next_validators: Vec<Validator>,
}

/// Proof that a transaction was committed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The committed transaction with its block's height and time.
    pub leaf: LedgerLeaf,
    /// Inclusion of the leaf in the ledger-wide tree of `certified.header`.
    pub inclusion: InclusionProof,
    /// A header at or after the leaf's height, with its certificate.
    pub certified: CertifiedHeader,
    /// Every validator-set change from genesis up to `certified.header`, oldest first.
    pub validator_changes: Vec<ValidatorChange>,
}

/// What a verified receipt proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedReceipt {
    /// SHA-256 of the genesis the receipt was checked against.
    pub genesis_hash: Digest,
    /// The transaction id.
    pub tx_id: TxId,
    /// Height of the block that committed it.
    pub height: u64,
    /// Time of that block, Unix milliseconds.
    pub time_ms: u64,
    /// The keys that signed the transaction.
    pub signers: Vec<PublicKey>,
    /// The height of the certified header the proof reaches.
    pub certified_height: u64,
}

/// Why a receipt does not verify. Each variant names the part that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The genesis itself is inconsistent.
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
    /// Unknown format version.
    #[error("receipt format version {0} is not supported (expected {RECEIPT_FORMAT_VERSION})")]
    FormatVersion(u32),
    /// A header names another chain.
    #[error("header at height {height} is for chain {got:?}, the genesis is for {expected:?}")]
    WrongChain {
        /// Height of the header.
        height: u64,
        /// The genesis chain.
        expected: String,
        /// The header's chain.
        got: String,
    },
    /// Too many validator changes.
    #[error("receipt carries {0} validator changes; at most {RECEIPT_VALIDATOR_CHANGES_MAX}")]
    TooManyChanges(usize),
    /// A header's validator set is not the one the chain of changes leads to.
    #[error("header at height {height} names validator set {got}, but the certified changes lead to {expected}")]
    ValidatorSetMismatch {
        /// Height of the header.
        height: u64,
        /// The set hash the changes lead to.
        expected: Digest,
        /// The header's set hash.
        got: Digest,
    },
    /// A change is out of order, not a change, or its new set is invalid.
    #[error("validator change at height {height}: {problem}")]
    BadChange {
        /// Height of the announcing header.
        height: u64,
        /// What is wrong.
        problem: String,
    },
    /// A certificate does not commit its header.
    #[error("certificate for height {height}: {error}")]
    Certificate {
        /// Height of the header.
        height: u64,
        /// The failure.
        error: CertificateError,
    },
    /// The leaf is not in the certified ledger tree.
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] MerkleError),
    /// The proof's tree size or position does not match the header or leaf.
    #[error("inclusion proof is for tree size {proof_size}, the certified header's ledger holds {header_size}")]
    SizeMismatch {
        /// Size in the proof.
        proof_size: u64,
        /// Size in the header.
        header_size: u64,
    },
    /// The leaf claims a height after the certified header.
    #[error(
        "leaf claims height {leaf_height}, after the certified header's height {header_height}"
    )]
    LeafAfterHeader {
        /// The leaf's height.
        leaf_height: u64,
        /// The header's height.
        header_height: u64,
    },
    /// A transaction signature in the leaf does not verify.
    #[error("transaction signature: {0}")]
    TxSignature(#[from] CryptoError),
}

/// Verifies a receipt against a genesis, with no node and no storage.
pub fn verify_receipt(
    receipt: &Receipt,
    genesis: &Genesis,
) -> Result<VerifiedReceipt, ReceiptError> {
    if receipt.format_version != RECEIPT_FORMAT_VERSION {
        return Err(ReceiptError::FormatVersion(receipt.format_version));
    }
    let header = verify_certified_header(genesis, &receipt.validator_changes, &receipt.certified)?;
    let leaf = &receipt.leaf;
    if leaf.height > header.height {
        return Err(ReceiptError::LeafAfterHeader {
            leaf_height: leaf.height,
            header_height: header.height,
        });
    }
    if receipt.inclusion.tree_size != header.ledger_size {
        return Err(ReceiptError::SizeMismatch {
            proof_size: receipt.inclusion.tree_size,
            header_size: header.ledger_size,
        });
    }
    receipt
        .inclusion
        .verify(&leaf.leaf_hash(), &header.ledger_root)?;
    leaf.tx.verify_signatures()?;
    Ok(VerifiedReceipt {
        genesis_hash: genesis.hash(),
        tx_id: leaf.tx.id(),
        height: leaf.height,
        time_ms: leaf.time_ms,
        signers: leaf.tx.signatures.iter().map(|s| s.signer).collect(),
        certified_height: header.height,
    })
}

/// Verifies that `certified` is committed by the validator set the genesis and the certified
/// `changes` lead to, and returns its header. Clients use it for state proofs too.
pub fn verify_certified_header<'a>(
    genesis: &Genesis,
    changes: &[ValidatorChange],
    certified: &'a CertifiedHeader,
) -> Result<&'a BlockHeader, ReceiptError> {
    genesis.validate()?;
    if changes.len() > RECEIPT_VALIDATOR_CHANGES_MAX {
        return Err(ReceiptError::TooManyChanges(changes.len()));
    }
    let mut validators: &[Validator] = &genesis.validators;
    let mut last_change_height = 0u64;
    for change in changes {
        let header = &change.certified.header;
        check_certified(genesis, validators, &change.certified)?;
        let bad = |problem: &str| ReceiptError::BadChange {
            height: header.height,
            problem: problem.into(),
        };
        if header.height <= last_change_height {
            return Err(bad("changes must be in increasing height order"));
        }
        if header.next_validator_set_hash == header.validator_set_hash {
            return Err(bad("the header announces no change"));
        }
        if validator_set_hash(&change.next_validators) != header.next_validator_set_hash {
            return Err(bad(
                "the new set does not hash to the header's next_validator_set_hash",
            ));
        }
        validate_validator_set(&change.next_validators, |_| true)
            .map_err(|e| bad(&e.to_string()))?;
        validators = &change.next_validators;
        last_change_height = header.height;
    }
    let header = &certified.header;
    if header.height <= last_change_height {
        return Err(ReceiptError::BadChange {
            height: last_change_height,
            problem: format!(
                "change is not before the certified header at height {}",
                header.height
            ),
        });
    }
    check_certified(genesis, validators, certified)?;
    Ok(header)
}

fn check_certified(
    genesis: &Genesis,
    validators: &[Validator],
    certified: &CertifiedHeader,
) -> Result<(), ReceiptError> {
    let header = &certified.header;
    if header.chain_id != genesis.chain_id {
        return Err(ReceiptError::WrongChain {
            height: header.height,
            expected: genesis.chain_id.clone(),
            got: header.chain_id.clone(),
        });
    }
    let expected = validator_set_hash(validators);
    if header.validator_set_hash != expected {
        return Err(ReceiptError::ValidatorSetMismatch {
            height: header.height,
            expected,
            got: header.validator_set_hash,
        });
    }
    certified
        .certificate
        .verify(&genesis.chain_id, header.height, &header.hash(), validators)
        .map_err(|error| ReceiptError::Certificate {
            height: header.height,
            error,
        })
}
