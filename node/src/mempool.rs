//! The mempool: transactions whose signatures are checked and whose rules passed against the
//! head state, waiting for a block. Bounded; first in, first proposed.

use ledger_core::rules::VerifiedTx;
use ledger_core::tx::TxId;
use std::collections::{HashSet, VecDeque};

/// The most transactions the mempool holds; further submissions are refused as full.
pub const MEMPOOL_TXS_MAX: usize = 50_000;

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// It holds [`MEMPOOL_TXS_MAX`] transactions already.
    #[error("mempool is full ({MEMPOOL_TXS_MAX} transactions); retry later")]
    Full,
    /// The same transaction id is already waiting.
    #[error("transaction {0} is already in the mempool")]
    Duplicate(TxId),
}

/// Pending transactions in arrival order.
#[derive(Default)]
pub struct Mempool {
    queue: VecDeque<VerifiedTx>,
    ids: HashSet<TxId>,
}

impl Mempool {
    /// Adds a checked transaction.
    pub fn insert(&mut self, vtx: VerifiedTx) -> Result<(), MempoolError> {
        if self.ids.contains(&vtx.id()) {
            return Err(MempoolError::Duplicate(vtx.id()));
        }
        if self.queue.len() >= MEMPOOL_TXS_MAX {
            return Err(MempoolError::Full);
        }
        self.ids.insert(vtx.id());
        self.queue.push_back(vtx);
        debug_assert_eq!(self.ids.len(), self.queue.len());
        Ok(())
    }

    /// The waiting transactions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &VerifiedTx> {
        self.queue.iter()
    }

    /// Forgets transactions that a block committed or that became invalid.
    pub fn remove(&mut self, ids: &HashSet<TxId>) {
        self.queue.retain(|vtx| !ids.contains(&vtx.id()));
        self.ids.retain(|id| !ids.contains(id));
        assert_eq!(
            self.ids.len(),
            self.queue.len(),
            "mempool index and queue agree"
        );
    }

    /// Whether transaction `id` is waiting.
    pub fn contains(&self, id: &TxId) -> bool {
        self.ids.contains(id)
    }

    /// Forgets transactions that can no longer be committed at `next_height` because their
    /// `valid_until` has passed; every node does this after each commit, proposer or not.
    pub fn remove_expired(&mut self, next_height: u64) {
        let expired: HashSet<TxId> = self
            .queue
            .iter()
            .filter(|vtx| vtx.tx().body.valid_until < next_height)
            .map(VerifiedTx::id)
            .collect();
        if !expired.is_empty() {
            self.remove(&expired);
        }
    }

    /// How many transactions wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::testkit::TestChain;
    use ledger_core::tx::Action;

    #[test]
    fn expired_transactions_leave_and_live_ones_stay() {
        let mut chain = TestChain::new(1);
        let mut mempool = Mempool::default();
        for valid_until in [3u64, 4, 10] {
            let mut tx = chain.tx(
                Action::ReleasePledge {
                    pledge: ledger_core::crypto::Digest::sha256(b"p"),
                },
                &[],
            );
            tx.body.valid_until = valid_until;
            mempool
                .insert(VerifiedTx::verify(tx).expect("no signatures to check"))
                .expect("room");
        }
        mempool.remove_expired(5);
        let left: Vec<u64> = mempool
            .iter()
            .map(|vtx| vtx.tx().body.valid_until)
            .collect();
        assert_eq!(left, vec![10]);
    }
}
