//! Consortium governance (admit or remove organisations, change validators, rotate keys) and
//! misbehaviour evidence against validators.

use super::parties::{check_new_key, check_new_party, write_party};
use super::{
    active_party, check_title, party_with_role, BlockContext, Required, Signers, VerifiedTx,
};
use crate::crypto::PublicKey;
use crate::genesis::validate_validator_set;
use crate::rejection::{Rejection, TxError};
use crate::state::{
    chain_record, MisbehaviourRecord, Overlay, PartyRecord, StateKey, ValidatorSchedule,
    ValidatorSetEntry, VALIDATOR_SET_HISTORY_MAX,
};
use crate::tx::{Action, GovernanceAction};
use crate::types::{PartyId, Role};
use std::collections::BTreeMap;

/// Applies a governance action; it needs signatures of more than two thirds of the distinct
/// organisations running the validators of this height.
pub(super) fn apply(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    action: &GovernanceAction,
) -> Result<Signers, TxError> {
    let mut schedule = load_schedule(state)?;
    let eligible = validator_organisation_keys(state, &schedule, ctx.height)?;
    match action {
        GovernanceAction::AdmitOrganisation {
            party,
            name,
            role,
            key,
        } => {
            if *role == Role::RightsHolder {
                return Err(Rejection::WrongRole {
                    party: party.clone(),
                    role: *role,
                    needed: "organisation role",
                }
                .into());
            }
            check_new_party(state, party, key)?;
            check_title("name", name)?;
            let record = PartyRecord {
                party: party.clone(),
                name: name.clone(),
                role: *role,
                key: *key,
                id_document_hash: None,
                active: true,
                pledges_taken: 0,
            };
            write_party(state, &record);
        }
        GovernanceAction::RemoveOrganisation { party } => {
            let mut record = active_party(state, party)?;
            refuse_if_runs_validator(&schedule, party)?;
            record.active = false;
            state.put(&StateKey::Party(party.clone()), &record);
        }
        GovernanceAction::ChangeValidators {
            validators,
            effective_height,
        } => {
            schedule_change(state, ctx, &mut schedule, validators, *effective_height)?;
            state.put(&StateKey::ValidatorSchedule, &schedule);
        }
        GovernanceAction::RotateKey { party, new_key } => {
            let mut record = active_party(state, party)?;
            check_new_key(state, new_key)?;
            state.delete(&StateKey::PartyByKey(record.key));
            record.key = *new_key;
            write_party(state, &record);
        }
    }
    Ok(Signers::Quorum(eligible))
}

fn schedule_change(
    state: &Overlay<'_>,
    ctx: BlockContext,
    schedule: &mut ValidatorSchedule,
    validators: &[crate::genesis::Validator],
    effective_height: u64,
) -> Result<(), TxError> {
    if effective_height <= ctx.height {
        return Err(Rejection::BadValidatorChange(format!(
            "effective height {effective_height} must be after the height {} that commits it",
            ctx.height
        ))
        .into());
    }
    if schedule.has_pending_after(ctx.height) {
        return Err(
            Rejection::BadValidatorChange("another change is already scheduled".into()).into(),
        );
    }
    let mut operators = BTreeMap::new();
    for validator in validators {
        let record: Option<PartyRecord> =
            state.get(&StateKey::Party(validator.organisation.clone()))?;
        let may_run = record
            .is_some_and(|r| r.active && !matches!(r.role, Role::Regulator | Role::RightsHolder));
        operators.insert(validator.organisation.clone(), may_run);
    }
    validate_validator_set(validators, |party| {
        operators.get(party).copied().unwrap_or(false)
    })
    .map_err(|error| Rejection::BadValidatorChange(error.to_string()))?;
    schedule.entries.push(ValidatorSetEntry {
        from_height: effective_height,
        validators: validators.to_vec(),
    });
    if schedule.entries.len() > VALIDATOR_SET_HISTORY_MAX {
        schedule.entries.remove(0);
    }
    Ok(())
}

fn refuse_if_runs_validator(
    schedule: &ValidatorSchedule,
    party: &PartyId,
) -> Result<(), Rejection> {
    // The current set and a scheduled one both count: removing an organisation must never leave
    // a validator whose operator cannot sign governance.
    let current_and_pending = schedule.entries.iter().rev().take(2);
    for entry in current_and_pending {
        if let Some(validator) = entry.validators.iter().find(|v| &v.organisation == party) {
            return Err(Rejection::OrganisationRunsValidator {
                party: party.clone(),
                key: validator.key,
            });
        }
    }
    Ok(())
}

/// Loads the validator schedule, which genesis always writes.
pub(crate) fn load_schedule(state: &Overlay<'_>) -> Result<ValidatorSchedule, TxError> {
    Ok(state.get(&StateKey::ValidatorSchedule)?.ok_or_else(|| {
        crate::storage::StorageError("validator schedule missing from state".into())
    })?)
}

/// The signing keys of the organisations running the validators of `height`.
fn validator_organisation_keys(
    state: &Overlay<'_>,
    schedule: &ValidatorSchedule,
    height: u64,
) -> Result<BTreeMap<PublicKey, PartyId>, TxError> {
    let set = schedule.set_at(height).ok_or_else(|| {
        crate::storage::StorageError(format!("no validator set for height {height}"))
    })?;
    let mut keys = BTreeMap::new();
    for validator in set {
        let record = active_party(state, &validator.organisation)?;
        keys.insert(record.key, record.party);
    }
    Ok(keys)
}

/// Records two conflicting signed votes of one validator (same type, height and round, different
/// values; nil counts as a value). A prevote for a block followed by a nil precommit differs in
/// type and is not misbehaviour.
pub(super) fn report_misbehaviour(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<Signers, TxError> {
    let Action::ReportMisbehaviour {
        reporter,
        first,
        second,
    } = &vtx.tx().body.action
    else {
        unreachable!("dispatched on ReportMisbehaviour")
    };
    let reporter_record = party_with_role(
        state,
        reporter,
        |r| !matches!(r, Role::RightsHolder | Role::Regulator),
        "organisation",
    )?;
    let bad = |text: String| -> TxError { Rejection::BadMisbehaviourEvidence(text).into() };
    let (a, b) = (&first.vote, &second.vote);
    if first.validator != second.validator {
        return Err(bad("the votes are from different validators".into()));
    }
    if (a.vote_type, a.height, a.round) != (b.vote_type, b.height, b.round) {
        return Err(bad("the votes differ in type, height or round".into()));
    }
    if a.block_hash == b.block_hash {
        return Err(bad("the votes are for the same value".into()));
    }
    let chain_id = chain_record(state)?.chain_id;
    if a.chain_id != chain_id || b.chain_id != chain_id {
        return Err(bad(format!("the votes are not for chain {chain_id:?}")));
    }
    if a.height > ctx.height {
        return Err(bad(format!("height {} is in the future", a.height)));
    }
    first
        .verify()
        .map_err(|e| bad(format!("first vote: {e}")))?;
    second
        .verify()
        .map_err(|e| bad(format!("second vote: {e}")))?;
    let schedule = load_schedule(state)?;
    let set = schedule.set_at(a.height).ok_or_else(|| {
        bad(format!(
            "height {} is older than the kept validator history",
            a.height
        ))
    })?;
    let validator = set
        .iter()
        .find(|v| v.key == first.validator)
        .ok_or_else(|| {
            bad(format!(
                "{} was not a validator at height {}",
                first.validator, a.height
            ))
        })?;
    let key = StateKey::Misbehaviour {
        validator: first.validator,
        height: a.height,
        round: a.round,
        vote_type: a.vote_type,
    };
    if state.get::<MisbehaviourRecord>(&key)?.is_some() {
        return Err(Rejection::MisbehaviourAlreadyRecorded {
            validator: first.validator,
            height: a.height,
            round: a.round,
        }
        .into());
    }
    let record = MisbehaviourRecord {
        organisation: validator.organisation.clone(),
        first: first.clone(),
        second: second.clone(),
        reporter: reporter.clone(),
        recorded: super::assets::recorded(ctx, vtx),
    };
    state.put(&key, &record);
    Ok(Signers::Exactly(vec![Required::of(
        &reporter_record,
        "the reporter vouches for the report",
    )]))
}
