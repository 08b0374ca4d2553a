//! Enrolment of rights holders by the trading center.

use super::{check_title, party_in_role, Required, Signers};
use crate::crypto::PublicKey;
use crate::rejection::{Rejection, TxError};
use crate::state::{Overlay, PartyRecord, StateKey};
use crate::tx::Action;
use crate::types::{PartyId, Role};

/// Enrols a rights holder: the trading center vouches for the identity, the holder proves it
/// holds the key by co-signing.
pub(super) fn enroll_rights_holder(
    state: &mut Overlay<'_>,
    action: &Action,
) -> Result<Signers, TxError> {
    let Action::EnrollRightsHolder {
        registrar,
        party,
        name,
        key,
        id_document_hash,
    } = action
    else {
        unreachable!("dispatched on EnrollRightsHolder")
    };
    let registrar = party_in_role(state, registrar, Role::TradingCenter)?;
    check_new_party(state, party, key)?;
    check_title("name", name)?;
    let record = PartyRecord {
        party: party.clone(),
        name: name.clone(),
        role: Role::RightsHolder,
        key: *key,
        id_document_hash: Some(*id_document_hash),
        active: true,
        pledges_taken: 0,
    };
    write_party(state, &record);
    Ok(Signers::Exactly(vec![
        Required::of(&registrar, "the trading center enrols rights holders"),
        Required {
            key: *key,
            party: party.clone(),
            why: "the new holder proves it holds its key",
        },
    ]))
}

/// Checks that a new party's identifier is well formed and free and its key strong and unused.
pub(super) fn check_new_party(
    state: &Overlay<'_>,
    party: &PartyId,
    key: &PublicKey,
) -> Result<(), TxError> {
    if !party.is_well_formed() {
        return Err(Rejection::Malformed {
            field: "party",
            problem: format!("{party:?} must be 1 to 64 of a-z, 0-9, '-', '_', '.'"),
        }
        .into());
    }
    if state
        .get::<PartyRecord>(&StateKey::Party(party.clone()))?
        .is_some()
    {
        return Err(Rejection::PartyExists {
            party: party.clone(),
        }
        .into());
    }
    check_new_key(state, key)
}

/// Checks that a key is strong and not any party's key.
pub(super) fn check_new_key(state: &Overlay<'_>, key: &PublicKey) -> Result<(), TxError> {
    key.check_strong()
        .map_err(|_| Rejection::WeakKey { key: *key })?;
    if let Some(holder) = state.get::<PartyId>(&StateKey::PartyByKey(*key))? {
        return Err(Rejection::KeyInUse {
            key: *key,
            party: holder,
        }
        .into());
    }
    Ok(())
}

/// Writes a party record and its key index.
pub(crate) fn write_party(state: &mut Overlay<'_>, record: &PartyRecord) {
    state.put(&StateKey::Party(record.party.clone()), record);
    state.put(&StateKey::PartyByKey(record.key), &record.party);
}
