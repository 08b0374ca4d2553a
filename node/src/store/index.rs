//! The assets-by-owner index, derived per block from its ledger leaves and its state writes.
//!
//! The state tree is keyed by hashes of state keys, so a block's [`StateTreeUpdate`] does not say
//! which assets it wrote. The leaves do: each action names the assets it can touch (directly, or
//! through a pledge record). For each such asset the new owner is read from the asset record the
//! block wrote (found in the update by its key hash), and the old owner from the state before the
//! block. Only the owners come from state, so the index agrees with the authenticated records
//! even if a rule moves ownership in a way the action's fields do not show, as long as the action
//! names the asset, which the exhaustive match below forces whoever adds an action to decide.

use jmt::KeyHash;
use ledger_core::block::LedgerLeaf;
use ledger_core::crypto::Digest;
use ledger_core::state::{AssetRecord, Overlay, PledgeRecord, StateKey, StateRead};
use ledger_core::state_tree::StateTreeUpdate;
use ledger_core::storage::StorageError;
use ledger_core::tx::{Action, TxId};
use ledger_core::types::{AssetId, PartyId};
use std::cell::OnceCell;
use std::collections::{BTreeSet, HashSet};

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

/// The state after a block, read through the block's update: the value the block wrote at
/// `version` if it wrote the key, else the value before the block.
pub(crate) struct AfterBlock<'a> {
    /// The state before the block.
    before: &'a dyn StateRead,
    /// The block's state-tree update.
    update: &'a StateTreeUpdate,
    /// The block's height, the update's version.
    version: u64,
    /// The block's transactions.
    leaves: &'a [LedgerLeaf],
    /// The ids of `leaves`, hashed on the first [`StateRead::committed_height`] call (the owner
    /// index itself never asks, so a block's commit does not pay for it).
    ids: OnceCell<HashSet<TxId>>,
}

impl<'a> AfterBlock<'a> {
    /// The state after the block at `version` whose update and transactions are given.
    pub(crate) fn new(
        before: &'a dyn StateRead,
        update: &'a StateTreeUpdate,
        version: u64,
        leaves: &'a [LedgerLeaf],
    ) -> AfterBlock<'a> {
        AfterBlock {
            before,
            update,
            version,
            leaves,
            ids: OnceCell::new(),
        }
    }
}

impl StateRead for AfterBlock<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let key_hash = KeyHash(*Digest::sha256(key).as_bytes());
        match self.update.values().get(&(self.version, key_hash)) {
            Some(written) => Ok(written.clone()),
            None => self.before.get_raw(key),
        }
    }

    fn committed_height(&self, id: &TxId) -> Result<Option<u64>, StorageError> {
        let ids = self
            .ids
            .get_or_init(|| self.leaves.iter().map(|leaf| leaf.tx.id()).collect());
        if ids.contains(id) {
            return Ok(Some(self.version));
        }
        self.before.committed_height(id)
    }
}

/// The owner changes a block makes, in asset order.
pub(crate) fn owner_changes(
    before: &dyn StateRead,
    update: &StateTreeUpdate,
    version: u64,
    leaves: &[LedgerLeaf],
) -> Result<Vec<OwnerChange>, StorageError> {
    let after = AfterBlock::new(before, update, version, leaves);
    let after = Overlay::new(&after);
    let before = Overlay::new(before);
    let mut candidates = BTreeSet::new();
    for leaf in leaves {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::{txs, TestChain};

    /// A transaction of the block is committed at the block's height; any other is answered by
    /// the state before the block.
    #[test]
    fn after_a_block_its_transactions_are_committed_at_its_height() {
        let mut chain = TestChain::new(1);
        let earlier = txs::enroll(&mut chain, "holder-a");
        assert_eq!(chain.commit(vec![earlier.clone()]), vec![Ok(())]);
        let before_height = chain.height();
        let tx = txs::register_work(&mut chain, "in the block", "holder-a");
        let never = txs::register_work(&mut chain, "never committed", "holder-a");
        let leaf = LedgerLeaf {
            height: before_height + 1,
            time_ms: 0,
            tx: tx.clone(),
        };
        let before = chain.state();
        let update = StateTreeUpdate::default();
        let after = AfterBlock::new(
            &before,
            &update,
            before_height + 1,
            std::slice::from_ref(&leaf),
        );
        assert_eq!(
            after.committed_height(&tx.id()),
            Ok(Some(before_height + 1))
        );
        assert_eq!(
            after.committed_height(&earlier.id()),
            Ok(Some(before_height))
        );
        assert_eq!(after.committed_height(&never.id()), Ok(None));
    }
}
