//! Signing and verification for the engine: every signature is Ed25519 over bytes that
//! ledger-core (votes) or this adapter (proposals, proposal streams) defines, and every check
//! goes through `ledger_core::crypto`'s ZIP-215 rule.

use super::context::{
    Address, ConsensusPublicKey, ConsensusSignature, IpledgerContext, Proposal, Vote,
};
use async_trait::async_trait;
use ledger_core::crypto::{PublicKey, Signature, SigningKey};
use malachitebft_core_types::{SignedMessage, ValidatorProof, VoteExtensionScope};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};
use std::sync::Arc;

/// Signs votes, proposals and validator proofs with a validator's consensus key.
pub struct ConsensusSigner {
    key: Arc<SigningKey>,
    chain_id: Arc<str>,
}

impl ConsensusSigner {
    /// A signer for `key` on chain `chain_id`.
    pub fn new(key: Arc<SigningKey>, chain_id: Arc<str>) -> ConsensusSigner {
        ConsensusSigner { key, chain_id }
    }

    /// The validator address this signer signs for.
    pub fn address(&self) -> Address {
        Address::from(self.key.public_key())
    }

    /// Signs arbitrary adapter-defined bytes (used for proposal streams).
    pub fn sign_bytes(&self, bytes: &[u8]) -> ConsensusSignature {
        to_consensus(self.key.sign(bytes))
    }
}

fn to_consensus(signature: Signature) -> ConsensusSignature {
    let Signature::Ed25519(bytes) = signature;
    ConsensusSignature(bytes)
}

/// Checks an adapter signature under ZIP-215.
pub fn verify_bytes(
    key: &ConsensusPublicKey,
    bytes: &[u8],
    signature: &ConsensusSignature,
) -> bool {
    PublicKey::Ed25519(key.0)
        .verify(bytes, &Signature::Ed25519(signature.0))
        .is_ok()
}

#[async_trait]
impl Signer<IpledgerContext> for ConsensusSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<IpledgerContext, Vote>, Error> {
        let signature = self.sign_bytes(&vote.to_ledger(&self.chain_id).sign_bytes());
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<IpledgerContext, Proposal>, Error> {
        let signature = self.sign_bytes(&proposal.sign_bytes(&self.chain_id));
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        _scope: VoteExtensionScope<IpledgerContext>,
        _extension: (),
    ) -> Result<SignedMessage<IpledgerContext, ()>, Error> {
        // Vote extensions are disabled in every height's parameters; the engine never asks.
        Err(Error::from_source(
            "ipledger does not use vote extensions".to_string(),
        ))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<IpledgerContext>, Error> {
        let bytes = ValidatorProof::<IpledgerContext>::signing_bytes(&public_key, &peer_id);
        let signature = self.sign_bytes(&bytes);
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}

/// Verifies engine signatures.
pub struct ConsensusVerifier {
    chain_id: Arc<str>,
}

impl ConsensusVerifier {
    /// A verifier for chain `chain_id`.
    pub fn new(chain_id: Arc<str>) -> ConsensusVerifier {
        ConsensusVerifier { chain_id }
    }
}

#[async_trait]
impl Verifier<IpledgerContext> for ConsensusVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &ConsensusSignature,
        public_key: &ConsensusPublicKey,
    ) -> Result<VerificationResult, Error> {
        let bytes = vote.to_ledger(&self.chain_id).sign_bytes();
        Ok(VerificationResult::from_bool(verify_bytes(
            public_key, &bytes, signature,
        )))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &ConsensusSignature,
        public_key: &ConsensusPublicKey,
    ) -> Result<VerificationResult, Error> {
        let bytes = proposal.sign_bytes(&self.chain_id);
        Ok(VerificationResult::from_bool(verify_bytes(
            public_key, &bytes, signature,
        )))
    }

    async fn verify_signed_vote_extension(
        &self,
        _scope: &VoteExtensionScope<IpledgerContext>,
        _extension: &(),
        _signature: &ConsensusSignature,
        _public_key: &ConsensusPublicKey,
    ) -> Result<VerificationResult, Error> {
        // No extension is ever valid: they are disabled.
        Ok(VerificationResult::Invalid)
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<IpledgerContext>,
    ) -> Result<VerificationResult, Error> {
        let Ok(key) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        let bytes =
            ValidatorProof::<IpledgerContext>::signing_bytes(&proof.public_key, &proof.peer_id);
        Ok(VerificationResult::from_bool(verify_bytes(
            &ConsensusPublicKey(key),
            &bytes,
            &proof.signature,
        )))
    }
}
