//! `ipledger evidence`: attesting a file by its hash, and the court's offline verification.

use super::{sign_and_submit, Context, Signers};
use crate::cli::{EvidenceCommand, EvidenceKindArg};
use crate::error::{ClientError, Result};
use crate::files::{hash_file, read_genesis_file, read_receipt};
use crate::text::{parse_asset, utc};
use crate::trust::Trust;
use crate::Output;
use ledger_core::crypto::Digest;
use ledger_core::tx::Action;
use ledger_core::types::EvidenceKind;
use serde_json::json;
use std::path::Path;

pub(crate) fn run(context: &Context, command: EvidenceCommand) -> Result<Output> {
    match command {
        EvidenceCommand::Attest {
            file,
            kind,
            case_ref,
            asset,
            signing,
            submission,
        } => {
            let trust = context.trust()?;
            let node = context.node();
            let evidence_hash = hash_file(&file)?;
            let related_asset = asset.as_deref().map(parse_asset).transpose()?;
            let signers = Signers::read(&signing)?;
            let attestor = signers.actor(&trust, &node)?;
            let action = Action::AttestEvidence {
                attestor: attestor.clone(),
                evidence_hash,
                kind: evidence_kind(kind),
                case_ref,
                related_asset,
            };
            let what = format!(
                "{attestor} attests {} as evidence {evidence_hash} (only the hash left this machine)",
                file.display()
            );
            let default_receipt = Some(super::work::receipt_beside(&file));
            let mut output = sign_and_submit(
                &trust,
                &node,
                action,
                &signers,
                &submission,
                default_receipt,
                &what,
            )?;
            output.json["evidence_hash"] = json!(evidence_hash);
            Ok(output)
        }
        EvidenceCommand::Verify {
            file,
            receipt,
            expect_fingerprint,
        } => verify(
            context.genesis_path(),
            &file,
            &receipt,
            expect_fingerprint.as_deref(),
        ),
    }
}

fn evidence_kind(kind: EvidenceKindArg) -> EvidenceKind {
    match kind {
        EvidenceKindArg::Document => EvidenceKind::Document,
        EvidenceKindArg::Image => EvidenceKind::Image,
        EvidenceKindArg::Audio => EvidenceKind::Audio,
        EvidenceKindArg::Video => EvidenceKind::Video,
        EvidenceKindArg::WebPage => EvidenceKind::WebPage,
        EvidenceKindArg::Message => EvidenceKind::Message,
        EvidenceKindArg::Other => EvidenceKind::Other,
    }
}

/// The court's offline check: no node, no network.
pub fn verify(
    genesis_path: &Path,
    file: &Path,
    receipt_path: &Path,
    expect_fingerprint: Option<&str>,
) -> Result<Output> {
    let genesis = read_genesis_file(genesis_path)?;
    let fingerprint = genesis.hash();
    if let Some(expected) = expect_fingerprint {
        let expected: Digest = expected.parse().map_err(|_| {
            ClientError::usage(format!(
                "--expect-fingerprint {expected:?} is not sha256:<64 hex digits>"
            ))
        })?;
        if expected != fingerprint {
            return Err(ClientError::verification(format!(
                "{} has fingerprint {fingerprint}, not the expected {expected}: it is not the consortium's genesis",
                genesis_path.display()
            )));
        }
    }
    let receipt = read_receipt(receipt_path)?;
    let file_hash = hash_file(file)?;
    let trust = Trust {
        genesis,
        max_age_ms: u64::MAX,
    };
    let verified = trust.verify_receipt(&receipt, None)?;
    let Action::AttestEvidence { evidence_hash, .. } = &receipt.leaf.tx.body.action else {
        return Err(ClientError::verification(format!(
            "the receipt verifies, but its transaction {} is not an evidence attestation",
            verified.tx_id
        )));
    };
    if *evidence_hash != file_hash {
        return Err(ClientError::verification(format!(
            "{} hashes to {file_hash}, but the receipt attests {evidence_hash}: this is not the attested file (it was changed, or it is another file)",
            file.display()
        )));
    }
    Ok(verified_output(file, &trust.genesis, &receipt, &verified))
}

/// What `evidence verify` prints once everything checked out.
fn verified_output(
    file: &Path,
    genesis: &ledger_core::genesis::Genesis,
    receipt: &ledger_core::receipt::Receipt,
    verified: &ledger_core::receipt::VerifiedReceipt,
) -> Output {
    let Action::AttestEvidence {
        attestor,
        evidence_hash,
        kind,
        case_ref,
        related_asset,
    } = &receipt.leaf.tx.body.action
    else {
        unreachable!("verify checked that the receipt attests evidence");
    };
    let fingerprint = verified.genesis_hash;
    let signers: Vec<String> = verified
        .signers
        .iter()
        .map(
            |key| match genesis.organisations.iter().find(|org| org.key == *key) {
                Some(org) => format!("{key} ({}, a founding organisation)", org.party),
                None => key.to_string(),
            },
        )
        .collect();
    let lines = vec![
        format!("VERIFIED: {} is the evidence attested as {evidence_hash}", file.display()),
        format!("  attested at    height {}, {} ({} ms)", verified.height, utc(verified.time_ms), verified.time_ms),
        format!("  attested by    {attestor}, signed with {}", signers.join(", ")),
        format!("  kind           {kind:?}{}", case_ref.as_ref().map(|c| format!(", case {c}")).unwrap_or_default()),
        format!("  transaction    {}", verified.tx_id),
        format!(
            "  proof          inclusion in the ledger at height {}, commit certificate checked against the genesis validators and {} certified validator-set change(s)",
            verified.certified_height,
            receipt.validator_changes.len()
        ),
        format!("  genesis        {fingerprint} (chain {}): compare it with the fingerprint the consortium publishes", genesis.chain_id),
    ];
    Output::new(
        lines,
        json!({
            "ok": true,
            "verified": true,
            "file": file,
            "evidence_hash": evidence_hash,
            "attestor": attestor,
            "signers": verified.signers,
            "kind": kind,
            "case_ref": case_ref,
            "related_asset": related_asset.as_ref().map(|a| a.to_string()),
            "tx_id": verified.tx_id,
            "height": verified.height,
            "time_ms": verified.time_ms,
            "time_utc": utc(verified.time_ms),
            "certified_height": verified.certified_height,
            "genesis_fingerprint": fingerprint,
            "chain_id": genesis.chain_id,
        }),
    )
}
