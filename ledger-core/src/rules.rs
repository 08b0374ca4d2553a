//! The rules: applying one verified transaction to the state, or refusing it with the rule that
//! failed. Nothing here reads a clock or does I/O; the block time comes in [`BlockContext`].

use crate::crypto::{CryptoError, PublicKey, SignedMessage};
use crate::rejection::{Rejection, TxError};
use crate::state::{chain_record, Overlay, PartyRecord, StateKey, StateRead};
use crate::tx::{tx_sign_bytes, Action, SignedTx, TxId, TX_SIGNATURES_MAX};
use crate::types::{PartyId, Role, TEXT_BYTES_MAX};
use std::collections::BTreeMap;

mod assets;
mod evidence;
mod governance;
mod parties;
mod pledges;

pub(crate) use parties::write_party;

/// What the block being built tells the rules about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockContext {
    /// The block's height.
    pub height: u64,
    /// The block's time, Unix milliseconds, chosen by the proposer and agreed by consensus.
    pub time_ms: u64,
}

/// A transaction whose signatures have been checked cryptographically (ZIP-215) and whose
/// signature list is sorted without duplicates. Only [`VerifiedTx::verify`] and
/// [`VerifiedTx::verify_many`] make one, so the rules never see an unchecked signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    tx: SignedTx,
    id: TxId,
}

impl VerifiedTx {
    /// Checks one transaction's signatures.
    pub fn verify(tx: SignedTx) -> Result<VerifiedTx, Rejection> {
        check_signature_list(&tx)?;
        tx.verify_signatures().map_err(crypto_rejection)?;
        let id = tx.id();
        Ok(VerifiedTx { tx, id })
    }

    /// Checks many transactions' signatures in batches, with the same answer per transaction as
    /// [`VerifiedTx::verify`]: one bad signature only costs its own transaction.
    pub fn verify_many(txs: Vec<SignedTx>) -> Vec<Result<VerifiedTx, Rejection>> {
        let ids: Vec<TxId> = txs.iter().map(SignedTx::id).collect();
        let messages: Vec<Vec<u8>> = ids.iter().map(tx_sign_bytes).collect();
        let mut items = Vec::new();
        for (tx, message) in txs.iter().zip(&messages) {
            if check_signature_list(tx).is_ok() {
                items.extend(tx.signatures.iter().map(|s| SignedMessage {
                    signer: s.signer,
                    message,
                    signature: s.signature,
                }));
            }
        }
        let all_good = crate::crypto::verify_batch(&items).is_ok();
        txs.into_iter()
            .zip(ids)
            .map(|(tx, id)| {
                check_signature_list(&tx)?;
                if !all_good {
                    tx.verify_signatures().map_err(crypto_rejection)?;
                }
                Ok(VerifiedTx { tx, id })
            })
            .collect()
    }

    /// The transaction.
    pub fn tx(&self) -> &SignedTx {
        &self.tx
    }

    /// Its id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Gives the transaction back.
    pub fn into_tx(self) -> SignedTx {
        self.tx
    }
}

fn check_signature_list(tx: &SignedTx) -> Result<(), Rejection> {
    if tx.signatures.len() > TX_SIGNATURES_MAX {
        return Err(Rejection::Malformed {
            field: "signatures",
            problem: format!(
                "{} signatures exceed the limit of {TX_SIGNATURES_MAX}",
                tx.signatures.len()
            ),
        });
    }
    if !tx
        .signatures
        .windows(2)
        .all(|pair| pair[0].signer < pair[1].signer)
    {
        return Err(Rejection::UnsortedSignatures);
    }
    Ok(())
}

fn crypto_rejection(error: CryptoError) -> Rejection {
    match error {
        CryptoError::BadSignature { signer } => Rejection::BadSignature { signer },
        CryptoError::WeakKey { key } => Rejection::WeakKey { key },
    }
}

/// Applies a verified transaction on top of `state`. On success its writes are added to the
/// overlay; on refusal the overlay is left exactly as it was.
///
/// `ctx.height` must be the height after `state`'s head. The callers make it so
/// ([`crate::execute::BlockBuilder::new`] refuses any other; admission takes the head plus one),
/// so the rules do not read the ledger head again for each transaction.
pub fn apply_tx(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<(), TxError> {
    let pending = {
        let mut scratch = Overlay::new(state);
        apply_in_scratch(&mut scratch, ctx, vtx)?;
        scratch.take_pending()
    };
    state.extend(pending);
    Ok(())
}

fn apply_in_scratch(
    state: &mut Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<(), TxError> {
    let body = &vtx.tx.body;
    check_replay_protection(state, ctx, vtx)?;
    let signers = match &body.action {
        Action::EnrollRightsHolder { .. } => parties::enroll_rights_holder(state, &body.action)?,
        Action::RegisterWork { .. } | Action::RecordRight { .. } => {
            assets::register(state, ctx, vtx)?
        }
        Action::TransferAsset { .. } | Action::GrantLicence { .. } => {
            assets::owner_action(state, ctx, vtx)?
        }
        Action::FreezeAsset { .. }
        | Action::UnfreezeAsset { .. }
        | Action::CourtOrderTransfer { .. } => assets::court_action(state, ctx, vtx)?,
        Action::RegisterPledge(terms) => pledges::register(state, ctx, vtx.id, terms)?,
        Action::RecordPledgeRegistration { .. }
        | Action::ReleasePledge { .. }
        | Action::EnforcePledge { .. } => pledges::lifecycle(state, ctx, vtx)?,
        Action::AttestEvidence { .. } => evidence::attest(state, ctx, vtx)?,
        Action::Governance(action) => governance::apply(state, ctx, action)?,
        Action::ReportMisbehaviour { .. } => governance::report_misbehaviour(state, ctx, vtx)?,
    };
    check_signers(state, &signers, &vtx.tx)?;
    state.record_committed(vtx.id, ctx.height);
    Ok(())
}

fn check_replay_protection(
    state: &Overlay<'_>,
    ctx: BlockContext,
    vtx: &VerifiedTx,
) -> Result<(), TxError> {
    let body = &vtx.tx.body;
    let chain = chain_record(state)?;
    if body.chain_id != chain.chain_id {
        return Err(Rejection::WrongChain {
            expected: chain.chain_id,
            got: body.chain_id.clone(),
        }
        .into());
    }
    if body.valid_until < ctx.height {
        return Err(Rejection::Expired {
            valid_until: body.valid_until,
            height: ctx.height,
        }
        .into());
    }
    let max = ctx.height.saturating_add(chain.params.tx_lifetime_max);
    if body.valid_until > max {
        return Err(Rejection::LifetimeTooLong {
            valid_until: body.valid_until,
            max,
        }
        .into());
    }
    if state.committed_height(&vtx.id)?.is_some() {
        return Err(Rejection::AlreadyCommitted { id: vtx.id }.into());
    }
    Ok(())
}

/// Who must sign a transaction, as the rules decide from the action and the state.
pub(crate) enum Signers {
    /// Exactly these parties, each once.
    Exactly(Vec<Required>),
    /// Any set of the eligible validator organisations larger than two thirds of them.
    Quorum(BTreeMap<PublicKey, PartyId>),
}

/// A party that must sign, and why (the reason goes into the refusal).
pub(crate) struct Required {
    pub key: PublicKey,
    pub party: PartyId,
    pub why: &'static str,
}

impl Required {
    pub(crate) fn of(record: &PartyRecord, why: &'static str) -> Required {
        Required {
            key: record.key,
            party: record.party.clone(),
            why,
        }
    }
}

fn check_signers(state: &Overlay<'_>, signers: &Signers, tx: &SignedTx) -> Result<(), TxError> {
    let signed: Vec<PublicKey> = tx.signatures.iter().map(|s| s.signer).collect();
    match signers {
        Signers::Exactly(required) => {
            for needed in required {
                if signed.binary_search(&needed.key).is_err() {
                    let missing = Rejection::MissingSignature {
                        party: needed.party.clone(),
                        why: needed.why,
                    };
                    return Err(missing.into());
                }
            }
            for key in &signed {
                if !required.iter().any(|r| &r.key == key) {
                    return Err(unexpected_signer(state, key)?.into());
                }
            }
        }
        Signers::Quorum(eligible) => {
            for key in &signed {
                if !eligible.contains_key(key) {
                    return Err(unexpected_signer(state, key)?.into());
                }
            }
            let orgs: std::collections::BTreeSet<&PartyId> =
                signed.iter().filter_map(|k| eligible.get(k)).collect();
            let eligible_orgs: std::collections::BTreeSet<&PartyId> = eligible.values().collect();
            if orgs.len() * 3 <= eligible_orgs.len() * 2 {
                return Err(Rejection::QuorumNotReached {
                    signed: orgs.len(),
                    eligible: eligible_orgs.len(),
                }
                .into());
            }
        }
    }
    Ok(())
}

fn unexpected_signer(state: &Overlay<'_>, key: &PublicKey) -> Result<Rejection, TxError> {
    Ok(match state.get::<PartyId>(&StateKey::PartyByKey(*key))? {
        Some(party) => Rejection::UnexpectedSignature { party },
        None => Rejection::UnknownSigner { key: *key },
    })
}

/// Loads an active party.
pub(crate) fn active_party(state: &Overlay<'_>, party: &PartyId) -> Result<PartyRecord, TxError> {
    let record: PartyRecord =
        state
            .get(&StateKey::Party(party.clone()))?
            .ok_or_else(|| Rejection::UnknownParty {
                party: party.clone(),
            })?;
    if !record.active {
        return Err(Rejection::InactiveParty {
            party: party.clone(),
        }
        .into());
    }
    Ok(record)
}

/// Loads an active party and checks its role.
pub(crate) fn party_with_role(
    state: &Overlay<'_>,
    party: &PartyId,
    allowed: impl Fn(Role) -> bool,
    needed: &'static str,
) -> Result<PartyRecord, TxError> {
    let record = active_party(state, party)?;
    if !allowed(record.role) {
        return Err(Rejection::WrongRole {
            party: party.clone(),
            role: record.role,
            needed,
        }
        .into());
    }
    Ok(record)
}

/// Loads an active party that must hold exactly `role`.
pub(crate) fn party_in_role(
    state: &Overlay<'_>,
    party: &PartyId,
    role: Role,
) -> Result<PartyRecord, TxError> {
    party_with_role(state, party, |r| r == role, role.label())
}

/// Any role that may own assets and attest: everyone but the read-only regulator.
pub(crate) fn may_act(role: Role) -> bool {
    role != Role::Regulator
}

/// Checks a free-text field: 1 to `max` bytes, no control characters.
pub(crate) fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.is_empty() || text.len() > max {
        return Err(Rejection::Malformed {
            field,
            problem: format!("must be 1 to {max} bytes, is {}", text.len()),
        });
    }
    if text.chars().any(char::is_control) {
        return Err(Rejection::Malformed {
            field,
            problem: "must not contain control characters".into(),
        });
    }
    Ok(())
}

/// Checks a display name or title.
pub(crate) fn check_title(field: &'static str, text: &str) -> Result<(), Rejection> {
    check_text(field, text, TEXT_BYTES_MAX)
}
