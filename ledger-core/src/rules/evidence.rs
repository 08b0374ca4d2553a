//! Evidence attestation: the first attestation's time and attestor are kept; later ones are
//! counted, so a court sees both when the evidence first existed and how often it was re-filed.

use super::assets::{load_asset, push_history, recorded, write_asset};
use super::{check_text, may_act, party_with_role, BlockContext, Required, Signers, VerifiedTx};
use crate::rejection::TxError;
use crate::state::{AssetEvent, EvidenceRecord, Overlay, StateKey};
use crate::tx::Action;
use crate::types::REFERENCE_BYTES_MAX;

/// Attests evidence by its hash.
pub(super) fn attest(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<Signers, TxError> {
    let Action::AttestEvidence {
        attestor,
        evidence_hash,
        kind,
        case_ref,
        related_asset,
    } = &vtx.tx().body.action
    else {
        unreachable!("dispatched on AttestEvidence")
    };
    let attestor_record = party_with_role(state, attestor, may_act, "party that may attest")?;
    if let Some(case_ref) = case_ref {
        check_text("case_ref", case_ref, REFERENCE_BYTES_MAX)?;
    }
    let mut asset_record = related_asset
        .as_ref()
        .map(|asset| load_asset(state, asset))
        .transpose()?;
    let key = StateKey::Evidence(*evidence_hash);
    let record = match state.get::<EvidenceRecord>(&key)? {
        Some(mut earlier) => {
            earlier.attestation_count += 1;
            earlier
        }
        None => {
            if let Some(asset) = asset_record.as_mut() {
                let event = AssetEvent::EvidenceAttested {
                    evidence_hash: *evidence_hash,
                };
                push_history(state, asset, recorded(ctx, vtx), event);
                write_asset(state, asset);
            }
            EvidenceRecord {
                evidence_hash: *evidence_hash,
                kind: *kind,
                case_ref: case_ref.clone(),
                related_asset: related_asset.clone(),
                first_attestor: attestor.clone(),
                first_recorded: recorded(ctx, vtx),
                attestation_count: 1,
            }
        }
    };
    state.put(&key, &record);
    Ok(Signers::Exactly(vec![Required::of(
        &attestor_record,
        "the attestor vouches for the evidence",
    )]))
}
