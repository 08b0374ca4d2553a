//! The assets-by-owner index, derived per block from its ledger leaves and its state writes.
//!
//! The state tree is keyed by hashes of state keys, so a block's state-tree update does not say
//! which assets it wrote. The leaves do: each action names the assets it can touch (directly, or
//! through a pledge record). For each such asset the new owner is read from the state after the
//! block ([`PendingHead`]: the block's update over the state before it), and the old owner from
//! the state before the block. Only the owners come from state, so the index agrees with the authenticated records
//! even if a rule moves ownership in a way the action's fields do not show, as long as the action
//! names the asset, which the exhaustive match below forces whoever adds an action to decide.

use ledger_core::execute::{ExecutedBlock, PendingHead};
use ledger_core::state::{AssetRecord, Overlay, PledgeRecord, StateKey, TxIndexRead};
use ledger_core::state_tree::{StateTree, TreeReader};
use ledger_core::storage::StorageError;
use ledger_core::tx::{Action, TxId};
use ledger_core::types::{AssetId, PartyId};
use std::collections::BTreeSet;

/// One asset whose owner differs between the state before a block and after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnerChange {
    /// The asset.
    pub asset: AssetId,
    /// Its owner before the block; `None` if the block registered it.
    pub from: Option<PartyId>,
    /// Its owner after the block.
    pub to: PartyId,
}

/// The owner changes a block makes, in asset order. `before` holds the state before the block
/// (its parent's version); the state after it is read through the block's own update.
pub(crate) fn owner_changes<R: TreeReader + TxIndexRead>(
    before: &R,
    executed: &ExecutedBlock,
) -> Result<Vec<OwnerChange>, StorageError> {
    let height = executed.block.header.height;
    let pending = PendingHead::new(before, executed);
    let after = StateTree::new(&pending, Some(height));
    let after = Overlay::new(&after);
    let before = StateTree::new(before, Some(height - 1));
    let before = Overlay::new(&before);
    let mut candidates = BTreeSet::new();
    for leaf in &executed.leaves {
        named_assets(&leaf.tx.body.action, &after, &mut candidates)?;
    }
    let mut changes = Vec::new();
    for asset in candidates {
        let key = StateKey::Asset(asset.clone());
        let Some(new) = after.get::<AssetRecord>(&key)? else {
            continue;
        };
        let old = before.get::<AssetRecord>(&key)?.map(|record| record.owner);
        if old.as_ref() != Some(&new.owner) {
            changes.push(OwnerChange {
                asset,
                from: old,
                to: new.owner,
            });
        }
    }
    Ok(changes)
}

/// Adds the assets `action` can touch. Pledge actions name their pledge; its record (after the
/// block, so a pledge registered in the same block is found) lists the assets.
fn named_assets(
    action: &Action,
    after: &Overlay<'_>,
    assets: &mut BTreeSet<AssetId>,
) -> Result<(), StorageError> {
    let mut pledge_assets = |pledge: &TxId| -> Result<(), StorageError> {
        if let Some(record) = after.get::<PledgeRecord>(&StateKey::Pledge(*pledge))? {
            assets.extend(record.assets);
        }
        Ok(())
    };
    match action {
        Action::RegisterWork { content_hash, .. } => {
            assets.insert(AssetId::Work {
                content_hash: *content_hash,
            });
        }
        Action::RecordRight {
            office,
            kind,
            number,
            ..
        } => {
            assets.insert(AssetId::Right {
                office: office.clone(),
                kind: *kind,
                number: number.clone(),
            });
        }
        Action::TransferAsset { asset, .. }
        | Action::GrantLicence { asset, .. }
        | Action::FreezeAsset { asset, .. }
        | Action::UnfreezeAsset { asset, .. }
        | Action::CourtOrderTransfer { asset, .. } => {
            assets.insert(asset.clone());
        }
        Action::RegisterPledge(terms) => assets.extend(terms.assets.iter().cloned()),
        Action::RecordPledgeRegistration { pledge, .. }
        | Action::ReleasePledge { pledge }
        | Action::EnforcePledge { pledge, .. } => pledge_assets(pledge)?,
        Action::AttestEvidence { related_asset, .. } => assets.extend(related_asset.clone()),
        Action::EnrollRightsHolder { .. }
        | Action::Governance(_)
        | Action::ReportMisbehaviour { .. } => {}
    }
    Ok(())
}
