//! Pledge contracts: registration with rank, official registration, release and enforcement.

use super::assets::{
    load_asset, push_history, recorded, recorded_at, refuse_if_frozen, write_asset,
};
use super::{
    active_party, check_text, may_act, party_in_role, party_with_role, BlockContext, Required,
    Signers, VerifiedTx,
};
use crate::rejection::{Rejection, TxError};
use crate::state::{
    AssetEvent, AssetRecord, OfficialRegistration, Overlay, PartyRecord, PledgeRecord,
    PledgeStatus, Recorded, StateKey, ACTIVE_PLEDGES_PER_ASSET_MAX,
};
use crate::tx::{Action, CourtOrder, PledgeTerms, TxId, PLEDGE_ASSETS_MAX, PLEDGE_VALUATIONS_MAX};
use crate::types::{is_iso_date, Money, PartyId, Role, REFERENCE_BYTES_MAX, TEXT_BYTES_MAX};

/// Registers a pledge. It ranks behind every active pledge on each asset; with `first_rank` it
/// is refused if any exists. Pledgor, pledgee, trading center and every appraiser sign.
pub(super) fn register(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    pledge_id: TxId,
    terms: &PledgeTerms,
) -> Result<Signers, TxError> {
    check_terms_format(ctx, terms)?;
    let pledgor = party_with_role(state, &terms.pledgor, may_act, "party that may own assets")?;
    let pledgee = party_in_role(state, &terms.pledgee, Role::Bank)?;
    let registrar = party_in_role(state, &terms.registrar, Role::TradingCenter)?;
    let mut signers = vec![
        Required::of(&pledgor, "the pledgor pledges its assets"),
        Required::of(&pledgee, "the pledgee accepts the pledge"),
        Required::of(&registrar, "the trading center registers pledges"),
    ];
    for valuation in &terms.valuations {
        let appraiser = party_in_role(state, &valuation.appraiser, Role::Appraiser)?;
        signers.push(Required::of(
            &appraiser,
            "the appraiser signs its valuation",
        ));
    }
    let recorded = recorded_at(ctx, pledge_id);
    let mut ranks = Vec::with_capacity(terms.assets.len());
    for asset in &terms.assets {
        let mut record = load_asset(state, asset)?;
        check_pledgeable(&record, terms)?;
        record.active_pledges.push(pledge_id);
        let rank = record.active_pledges.len() as u32;
        ranks.push(rank);
        push_history(
            state,
            &mut record,
            recorded.clone(),
            AssetEvent::Pledged {
                pledge: pledge_id,
                rank,
            },
        );
        write_asset(state, &record);
    }
    let pledge = PledgeRecord {
        pledge: pledge_id,
        assets: terms.assets.clone(),
        pledgor: terms.pledgor.clone(),
        pledgee: terms.pledgee.clone(),
        secured_amount: terms.secured_amount.clone(),
        maturity_ms: terms.maturity_ms,
        valuations: terms.valuations.clone(),
        ranks_at_registration: ranks,
        registered: recorded,
        official_registration: None,
        status: PledgeStatus::Active,
    };
    state.put(&StateKey::Pledge(pledge_id), &pledge);
    index_by_bank(state, pledgee, pledge_id);
    Ok(Signers::Exactly(signers))
}

fn check_pledgeable(record: &AssetRecord, terms: &PledgeTerms) -> Result<(), Rejection> {
    if record.owner != terms.pledgor {
        return Err(Rejection::NotOwner {
            asset: record.asset.clone(),
            owner: record.owner.clone(),
            party: terms.pledgor.clone(),
        });
    }
    refuse_if_frozen(record)?;
    if let (true, Some(existing)) = (terms.first_rank, record.active_pledges.first()) {
        return Err(Rejection::FirstRankUnavailable {
            asset: record.asset.clone(),
            existing: *existing,
        });
    }
    if record.active_pledges.len() >= ACTIVE_PLEDGES_PER_ASSET_MAX {
        return Err(Rejection::AssetListFull {
            asset: record.asset.clone(),
            what: "active pledges",
            max: ACTIVE_PLEDGES_PER_ASSET_MAX,
        });
    }
    Ok(())
}

fn check_terms_format(ctx: BlockContext, terms: &PledgeTerms) -> Result<(), Rejection> {
    let malformed = |field, problem: String| Err(Rejection::Malformed { field, problem });
    if terms.assets.is_empty() || terms.assets.len() > PLEDGE_ASSETS_MAX {
        return malformed(
            "assets",
            format!(
                "a pledge covers 1 to {PLEDGE_ASSETS_MAX} assets, not {}",
                terms.assets.len()
            ),
        );
    }
    let distinct: std::collections::BTreeSet<_> = terms.assets.iter().collect();
    if distinct.len() != terms.assets.len() {
        return malformed("assets", "an asset is listed twice".into());
    }
    check_money("secured_amount", &terms.secured_amount)?;
    if terms.maturity_ms <= ctx.time_ms {
        return malformed(
            "maturity_ms",
            format!(
                "maturity {} is not after block time {}",
                terms.maturity_ms, ctx.time_ms
            ),
        );
    }
    if terms.valuations.len() > PLEDGE_VALUATIONS_MAX {
        return malformed(
            "valuations",
            format!("at most {PLEDGE_VALUATIONS_MAX} valuations"),
        );
    }
    let appraisers: std::collections::BTreeSet<_> =
        terms.valuations.iter().map(|v| &v.appraiser).collect();
    if appraisers.len() != terms.valuations.len() {
        return malformed("valuations", "an appraiser appears twice".into());
    }
    terms
        .valuations
        .iter()
        .try_for_each(|v| check_money("valuations.amount", &v.amount))
}

fn check_money(field: &'static str, money: &Money) -> Result<(), Rejection> {
    if money.minor_units == 0 || !money.has_valid_currency() {
        return Err(Rejection::Malformed {
            field,
            problem: format!(
                "needs a positive amount and an ISO 4217 currency, got {} {:?}",
                money.minor_units, money.currency
            ),
        });
    }
    Ok(())
}

fn index_by_bank(state: &mut Overlay<'_>, mut pledgee: PartyRecord, pledge_id: TxId) {
    state.put(
        &StateKey::PledgeByBank(pledgee.party.clone(), pledgee.pledges_taken),
        &pledge_id,
    );
    pledgee.pledges_taken += 1;
    state.put(&StateKey::Party(pledgee.party.clone()), &pledgee);
}

/// Records the official registration, releases, or enforces a pledge.
pub(super) fn lifecycle(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<Signers, TxError> {
    let action = &vtx.tx().body.action;
    let (Action::RecordPledgeRegistration { pledge, .. }
    | Action::ReleasePledge { pledge }
    | Action::EnforcePledge { pledge, .. }) = action
    else {
        unreachable!("dispatched on a pledge lifecycle action")
    };
    let mut record: PledgeRecord = state
        .get(&StateKey::Pledge(*pledge))?
        .ok_or(Rejection::UnknownPledge { pledge: *pledge })?;
    if record.status != PledgeStatus::Active {
        return Err(Rejection::PledgeNotActive { pledge: *pledge }.into());
    }
    let pledgee = active_party(state, &record.pledgee)?;
    let signers = match action {
        Action::RecordPledgeRegistration {
            registrar,
            authority,
            registration_number,
            date,
            ..
        } => {
            let registrar = party_in_role(state, registrar, Role::TradingCenter)?;
            if record.official_registration.is_some() {
                return Err(Rejection::OfficialRegistrationExists { pledge: *pledge }.into());
            }
            check_text("authority", authority, TEXT_BYTES_MAX)?;
            check_text(
                "registration_number",
                registration_number,
                REFERENCE_BYTES_MAX,
            )?;
            if !is_iso_date(date) {
                return Err(Rejection::Malformed {
                    field: "date",
                    problem: format!("{date:?} is not YYYY-MM-DD"),
                }
                .into());
            }
            record.official_registration = Some(OfficialRegistration {
                authority: authority.clone(),
                registration_number: registration_number.clone(),
                date: date.clone(),
                recorded: recorded(ctx, vtx),
            });
            vec![Required::of(
                &registrar,
                "the trading center records official registrations",
            )]
        }
        Action::ReleasePledge { .. } => {
            close_on_assets(state, recorded(ctx, vtx), &record, Closing::Release)?;
            record.status = PledgeStatus::Released {
                recorded: recorded(ctx, vtx),
            };
            vec![Required::of(&pledgee, "the pledgee releases its pledge")]
        }
        Action::EnforcePledge {
            transferee,
            court_order,
            ..
        } => {
            let signers = enforce(
                state,
                ctx,
                vtx,
                &record,
                transferee,
                court_order.as_ref(),
                pledgee,
            )?;
            record.status = PledgeStatus::Enforced {
                recorded: recorded(ctx, vtx),
                transferee: transferee.clone(),
                court_order: court_order.clone(),
            };
            signers
        }
        _ => unreachable!("matched above"),
    };
    state.put(&StateKey::Pledge(*pledge), &record);
    Ok(Signers::Exactly(signers))
}

/// Enforcement: after maturity and only by the first-ranked pledgee, or at any time on a court
/// order. A frozen asset is enforced only on a court order. Junior pledges stay attached.
fn enforce(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
    pledge: &PledgeRecord,
    transferee: &PartyId,
    court_order: Option<&CourtOrder>,
    pledgee: PartyRecord,
) -> Result<Vec<Required>, TxError> {
    party_with_role(state, transferee, may_act, "party that may own assets")?;
    let mut signers = vec![Required::of(&pledgee, "the pledgee enforces its pledge")];
    match court_order {
        Some(order) => {
            let court = party_in_role(state, &order.court, Role::Court)?;
            check_text("court_order.case_ref", &order.case_ref, REFERENCE_BYTES_MAX)?;
            signers.push(Required::of(&court, "the court orders enforcement"));
        }
        None => {
            // A freeze is checked before anything else: a court's freeze is the reason a frozen
            // asset cannot be enforced, whatever else may also be missing.
            let records: Vec<AssetRecord> = pledge
                .assets
                .iter()
                .map(|asset| load_asset(state, asset))
                .collect::<Result<_, _>>()?;
            records.iter().try_for_each(refuse_if_frozen)?;
            if ctx.time_ms < pledge.maturity_ms {
                let (maturity_ms, time_ms) = (pledge.maturity_ms, ctx.time_ms);
                return Err(Rejection::NotMatured {
                    maturity_ms,
                    time_ms,
                }
                .into());
            }
            for record in &records {
                let senior = record.active_pledges.first().copied();
                if let Some(senior) = senior.filter(|s| *s != pledge.pledge) {
                    return Err(Rejection::NotFirstRank {
                        asset: record.asset.clone(),
                        senior,
                    }
                    .into());
                }
            }
        }
    }
    close_on_assets(
        state,
        recorded(ctx, vtx),
        pledge,
        Closing::Enforce { to: transferee },
    )?;
    Ok(signers)
}

/// How a pledge closes.
enum Closing<'a> {
    /// Released by the pledgee; ownership stays.
    Release,
    /// Enforced; ownership of every pledged asset moves to the transferee.
    Enforce {
        /// The transferee.
        to: &'a PartyId,
    },
}

/// Removes the pledge from each asset's active list (and, on enforcement, moves ownership),
/// writing one history event per asset.
fn close_on_assets(
    state: &mut Overlay<'_>,
    recorded: Recorded,
    pledge: &PledgeRecord,
    closing: Closing<'_>,
) -> Result<(), TxError> {
    for asset in &pledge.assets {
        let mut record = load_asset(state, asset)?;
        let before = record.active_pledges.len();
        record.active_pledges.retain(|p| *p != pledge.pledge);
        assert_eq!(
            record.active_pledges.len() + 1,
            before,
            "an active pledge is listed on each of its assets once"
        );
        let event = match closing {
            Closing::Release => AssetEvent::PledgeReleased {
                pledge: pledge.pledge,
            },
            Closing::Enforce { to } => {
                let from = std::mem::replace(&mut record.owner, to.clone());
                AssetEvent::PledgeEnforced {
                    pledge: pledge.pledge,
                    from,
                    to: to.clone(),
                }
            }
        };
        push_history(state, &mut record, recorded.clone(), event);
        write_asset(state, &record);
    }
    Ok(())
}
