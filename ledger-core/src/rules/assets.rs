//! Works, patents and trademarks: registration, transfer, licences and court actions.

use super::{
    active_party, check_text, check_title, may_act, party_in_role, party_with_role, BlockContext,
    Required, Signers, VerifiedTx,
};
use crate::rejection::{Rejection, TxError};
use crate::state::{
    AssetDetails, AssetEvent, AssetRecord, Freeze, HistoryEntry, Licence, Overlay, PledgeRecord,
    Recorded, StateKey, LICENCES_PER_ASSET_MAX,
};
use crate::tx::{Action, WORK_AUTHORS_MAX};
use crate::types::{AssetId, Role, REFERENCE_BYTES_MAX, TEXT_BYTES_MAX};

/// Registers a work (first to file wins) or records a patent or trademark.
pub(super) fn register(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<Signers, TxError> {
    let (asset, owner, details, mut signers) = match &vtx.tx().body.action {
        Action::RegisterWork {
            content_hash,
            title,
            kind,
            authors,
            owner,
        } => {
            check_title("title", title)?;
            check_authors(authors)?;
            let asset = AssetId::Work {
                content_hash: *content_hash,
            };
            let details = AssetDetails::Work {
                title: title.clone(),
                kind: *kind,
                authors: authors.clone(),
            };
            (asset, owner, details, Vec::new())
        }
        Action::RecordRight {
            registrar,
            office,
            kind,
            number,
            title,
            owner,
        } => {
            let registrar = party_in_role(state, registrar, Role::TradingCenter)?;
            check_office(office)?;
            check_text("number", number, REFERENCE_BYTES_MAX)?;
            check_title("title", title)?;
            let asset = AssetId::Right {
                office: office.clone(),
                kind: *kind,
                number: number.clone(),
            };
            let details = AssetDetails::Right {
                kind: *kind,
                title: title.clone(),
            };
            (
                asset,
                owner,
                details,
                vec![Required::of(
                    &registrar,
                    "the trading center records patents and trademarks",
                )],
            )
        }
        _ => unreachable!("dispatched on RegisterWork or RecordRight"),
    };
    let owner_record = party_with_role(state, owner, may_act, "party that may own assets")?;
    if let Some(earlier) = state.get::<AssetRecord>(&StateKey::Asset(asset.clone()))? {
        return Err(already_registered(earlier).into());
    }
    let recorded = recorded(ctx, vtx);
    let mut record = AssetRecord {
        asset: asset.clone(),
        owner: owner.clone(),
        registrant: owner.clone(),
        details,
        registered: recorded.clone(),
        active_pledges: Vec::new(),
        licences: Vec::new(),
        freeze: None,
        history_len: 0,
    };
    push_history(
        state,
        &mut record,
        recorded,
        AssetEvent::Registered {
            owner: owner.clone(),
        },
    );
    write_asset(state, &record);
    signers.push(Required::of(
        &owner_record,
        "the owner registers its own asset",
    ));
    Ok(Signers::Exactly(signers))
}

fn already_registered(earlier: AssetRecord) -> Rejection {
    match earlier.asset {
        AssetId::Work { content_hash } => Rejection::WorkAlreadyRegistered {
            content_hash,
            owner: earlier.registrant,
            height: earlier.registered.height,
            time_ms: earlier.registered.time_ms,
        },
        asset @ AssetId::Right { .. } => Rejection::RightAlreadyRecorded {
            asset,
            owner: earlier.registrant,
            height: earlier.registered.height,
        },
    }
}

fn check_authors(authors: &[String]) -> Result<(), Rejection> {
    if authors.is_empty() || authors.len() > WORK_AUTHORS_MAX {
        return Err(Rejection::Malformed {
            field: "authors",
            problem: format!(
                "must name 1 to {WORK_AUTHORS_MAX} authors, names {}",
                authors.len()
            ),
        });
    }
    authors
        .iter()
        .try_for_each(|author| check_text("authors", author, TEXT_BYTES_MAX))
}

fn check_office(office: &str) -> Result<(), Rejection> {
    let well_formed = !office.is_empty()
        && office.len() <= 16
        && office
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !well_formed {
        return Err(Rejection::Malformed {
            field: "office",
            problem: format!(
                "{office:?} must be 1 to 16 uppercase ASCII letters or digits, e.g. CNIPA"
            ),
        });
    }
    Ok(())
}

/// Transfers an asset or grants a licence: the owner signs, and so does every active pledgee,
/// since a pledged right may not be transferred or licensed without the pledgee's consent.
pub(super) fn owner_action(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<Signers, TxError> {
    let action = &vtx.tx().body.action;
    let (Action::TransferAsset { asset, .. } | Action::GrantLicence { asset, .. }) = action else {
        unreachable!("dispatched on TransferAsset or GrantLicence")
    };
    let mut record = load_asset(state, asset)?;
    refuse_if_frozen(&record)?;
    let owner = active_party(state, &record.owner)?;
    let mut signers = vec![Required::of(&owner, "the owner acts")];
    signers.extend(pledgee_consents(state, &record)?);
    let recorded = recorded(ctx, vtx);
    let event = match action {
        Action::TransferAsset { to, .. } => {
            party_with_role(state, to, may_act, "party that may own assets")?;
            let event = AssetEvent::Transferred {
                from: record.owner.clone(),
                to: to.clone(),
            };
            record.owner = to.clone();
            event
        }
        Action::GrantLicence {
            licensee,
            exclusive,
            start_ms,
            end_ms,
            ..
        } => {
            party_with_role(state, licensee, may_act, "party that may hold a licence")?;
            let licence = Licence {
                licensee: licensee.clone(),
                exclusive: *exclusive,
                start_ms: *start_ms,
                end_ms: *end_ms,
                tx: vtx.id(),
            };
            add_licence(&mut record, licence)?;
            AssetEvent::Licensed {
                licensee: licensee.clone(),
                exclusive: *exclusive,
            }
        }
        _ => unreachable!("matched above"),
    };
    push_history(state, &mut record, recorded, event);
    write_asset(state, &record);
    Ok(Signers::Exactly(signers))
}

fn add_licence(record: &mut AssetRecord, licence: Licence) -> Result<(), Rejection> {
    if licence.start_ms >= licence.end_ms {
        return Err(Rejection::Malformed {
            field: "end_ms",
            problem: format!(
                "term must end after it starts ({} >= {})",
                licence.start_ms, licence.end_ms
            ),
        });
    }
    if let Some(existing) = record
        .licences
        .iter()
        .find(|l| l.conflicts_with(licence.exclusive, licence.start_ms, licence.end_ms))
    {
        return Err(Rejection::LicenceConflict {
            asset: record.asset.clone(),
            existing: existing.tx,
        });
    }
    if record.licences.len() >= LICENCES_PER_ASSET_MAX {
        return Err(Rejection::AssetListFull {
            asset: record.asset.clone(),
            what: "licences",
            max: LICENCES_PER_ASSET_MAX,
        });
    }
    record.licences.push(licence);
    Ok(())
}

/// Freezes, unfreezes, or transfers an asset by court order.
pub(super) fn court_action(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<Signers, TxError> {
    let action = &vtx.tx().body.action;
    let (Action::FreezeAsset {
        asset,
        court,
        case_ref,
    }
    | Action::UnfreezeAsset {
        asset,
        court,
        case_ref,
    }
    | Action::CourtOrderTransfer {
        asset,
        court,
        case_ref,
        ..
    }) = action
    else {
        unreachable!("dispatched on a court action")
    };
    let court_record = party_in_role(state, court, Role::Court)?;
    check_text("case_ref", case_ref, REFERENCE_BYTES_MAX)?;
    let mut record = load_asset(state, asset)?;
    let recorded = recorded(ctx, vtx);
    let event = match action {
        Action::FreezeAsset { .. } => {
            if let Some(freeze) = &record.freeze {
                return Err(Rejection::AlreadyFrozen {
                    asset: asset.clone(),
                    court: freeze.court.clone(),
                    case_ref: freeze.case_ref.clone(),
                }
                .into());
            }
            record.freeze = Some(Freeze {
                court: court.clone(),
                case_ref: case_ref.clone(),
                recorded: recorded.clone(),
            });
            AssetEvent::Frozen {
                court: court.clone(),
                case_ref: case_ref.clone(),
            }
        }
        Action::UnfreezeAsset { .. } => {
            let freeze = record.freeze.take().ok_or_else(|| Rejection::NotFrozen {
                asset: asset.clone(),
            })?;
            if &freeze.court != court || &freeze.case_ref != case_ref {
                return Err(Rejection::FreezeMismatch {
                    asset: asset.clone(),
                    court: freeze.court,
                    case_ref: freeze.case_ref,
                }
                .into());
            }
            AssetEvent::Unfrozen {
                court: court.clone(),
                case_ref: case_ref.clone(),
            }
        }
        Action::CourtOrderTransfer { to, .. } => {
            party_with_role(state, to, may_act, "party that may own assets")?;
            let from = std::mem::replace(&mut record.owner, to.clone());
            AssetEvent::CourtTransferred {
                court: court.clone(),
                case_ref: case_ref.clone(),
                from,
                to: to.clone(),
            }
        }
        _ => unreachable!("matched above"),
    };
    push_history(state, &mut record, recorded, event);
    write_asset(state, &record);
    Ok(Signers::Exactly(vec![Required::of(
        &court_record,
        "the court orders it",
    )]))
}

/// The signatures of every active pledgee of an asset.
pub(super) fn pledgee_consents(
    state: &Overlay<'_>,
    record: &AssetRecord,
) -> Result<Vec<Required>, TxError> {
    let mut consents = Vec::with_capacity(record.active_pledges.len());
    for pledge_id in &record.active_pledges {
        let pledge: PledgeRecord = state.get(&StateKey::Pledge(*pledge_id))?.ok_or_else(|| {
            crate::storage::StorageError(format!("active pledge {pledge_id} has no record"))
        })?;
        let pledgee = active_party(state, &pledge.pledgee)?;
        if !consents.iter().any(|r: &Required| r.key == pledgee.key) {
            consents.push(Required::of(&pledgee, "consent of an active pledgee"));
        }
    }
    Ok(consents)
}

/// Loads an asset or refuses with `UnknownAsset`.
pub(super) fn load_asset(state: &Overlay<'_>, asset: &AssetId) -> Result<AssetRecord, TxError> {
    Ok(state
        .get(&StateKey::Asset(asset.clone()))?
        .ok_or_else(|| Rejection::UnknownAsset {
            asset: asset.clone(),
        })?)
}

/// Refuses with `AssetFrozen` if a court froze the asset.
pub(super) fn refuse_if_frozen(record: &AssetRecord) -> Result<(), Rejection> {
    match &record.freeze {
        Some(freeze) => Err(Rejection::AssetFrozen {
            asset: record.asset.clone(),
            court: freeze.court.clone(),
            case_ref: freeze.case_ref.clone(),
        }),
        None => Ok(()),
    }
}

/// Appends an event to an asset's history (written under its own key, counted in the record).
pub(super) fn push_history(
    state: &mut Overlay<'_>,
    record: &mut AssetRecord,
    recorded: Recorded,
    event: AssetEvent,
) {
    let key = StateKey::AssetHistory(record.asset.clone(), record.history_len);
    state.put(&key, &HistoryEntry { recorded, event });
    record.history_len += 1;
}

/// Writes an asset record.
pub(super) fn write_asset(state: &mut Overlay<'_>, record: &AssetRecord) {
    assert!(record.active_pledges.len() <= crate::state::ACTIVE_PLEDGES_PER_ASSET_MAX);
    state.put(&StateKey::Asset(record.asset.clone()), record);
}

/// Where and when this transaction is recorded.
pub(super) fn recorded(ctx: BlockContext, vtx: &VerifiedTx) -> Recorded {
    recorded_at(ctx, vtx.id())
}

/// Where and when the transaction `tx` is recorded.
pub(super) fn recorded_at(ctx: BlockContext, tx: crate::tx::TxId) -> Recorded {
    Recorded {
        height: ctx.height,
        time_ms: ctx.time_ms,
        tx,
    }
}
