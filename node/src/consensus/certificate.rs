//! Conversions between the engine's commit certificates and ledger-core's, which are what blocks
//! carry, the store keeps, and courts verify.

use super::context::{
    defined_round, Address, BlockHash, ConsensusSignature, Height, IpledgerContext,
};
use ledger_core::block::{CommitCertificate, CommitSignature};
use ledger_core::crypto::Signature;
use malachitebft_core_types as mc;

/// The ledger-core certificate for an engine certificate: same height, round, block and
/// precommit signatures, sorted by validator key as ledger-core requires.
pub fn to_ledger(certificate: &mc::CommitCertificate<IpledgerContext>) -> CommitCertificate {
    let mut signatures: Vec<CommitSignature> = certificate
        .commit_signatures
        .iter()
        .map(|s| CommitSignature {
            validator: s.address.public_key(),
            signature: Signature::Ed25519(s.signature.0),
        })
        .collect();
    signatures.sort_by_key(|s| s.validator);
    signatures.dedup_by_key(|s| s.validator);
    CommitCertificate {
        height: certificate.height.0,
        round: defined_round(certificate.round),
        block_hash: certificate.value_id.digest(),
        signatures,
    }
}

/// The engine certificate for a stored ledger-core certificate (for serving sync requests).
pub fn to_engine(
    certificate: &CommitCertificate,
) -> mc::ExtendedCommitCertificate<IpledgerContext> {
    let signatures = certificate
        .signatures
        .iter()
        .map(|s| {
            let Signature::Ed25519(bytes) = s.signature;
            mc::ExtendedCommitSignature::new(
                Address::from(s.validator),
                ConsensusSignature(bytes),
                None,
            )
        })
        .collect();
    mc::ExtendedCommitCertificate {
        height: Height(certificate.height),
        round: mc::Round::new(certificate.round),
        value_id: BlockHash::from(certificate.block_hash),
        commit_signatures: signatures,
    }
}
