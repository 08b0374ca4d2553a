//! The mempool: transactions whose signatures are checked and whose rules passed against the
//! head state, waiting for a block. Bounded; first in, first proposed.
//!
//! It is also the node's record of which signatures it has checked: a proposed block's
//! transaction that waits here with the same full signed bytes (compared by their SHA-256, never
//! by id alone, since one id may carry different signatures) needs no second check.

use ledger_core::crypto::Digest;
use ledger_core::rules::VerifiedTx;
use ledger_core::tx::{SignedTx, TxId};
use std::collections::{HashMap, HashSet, VecDeque};

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

struct Entry {
    vtx: VerifiedTx,
    /// SHA-256 of the transaction's canonical encoding, signatures included.
    signed_hash: Digest,
}

/// The SHA-256 of a transaction's canonical encoding, signatures included: what a signature
/// check is remembered by.
pub fn signed_hash(tx: &SignedTx) -> Digest {
    Digest::sha256(&tx.encode())
}

/// Pending transactions in arrival order.
#[derive(Default)]
pub struct Mempool {
    order: VecDeque<TxId>,
    entries: HashMap<TxId, Entry>,
}

impl Mempool {
    /// Adds a checked transaction.
    pub fn insert(&mut self, vtx: VerifiedTx) -> Result<(), MempoolError> {
        let signed_hash = signed_hash(vtx.tx());
        self.insert_hashed(vtx, signed_hash)
    }

    /// [`Mempool::insert`] for a caller that has already computed `signed_hash` of the
    /// transaction (admission does, to find repeats within a batch).
    pub fn insert_hashed(
        &mut self,
        vtx: VerifiedTx,
        signed_hash: Digest,
    ) -> Result<(), MempoolError> {
        debug_assert_eq!(signed_hash, self::signed_hash(vtx.tx()));
        let id = vtx.id();
        if self.entries.contains_key(&id) {
            return Err(MempoolError::Duplicate(id));
        }
        if self.order.len() >= MEMPOOL_TXS_MAX {
            return Err(MempoolError::Full);
        }
        self.entries.insert(id, Entry { vtx, signed_hash });
        self.order.push_back(id);
        debug_assert_eq!(self.entries.len(), self.order.len());
        Ok(())
    }

    /// The waiting transactions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &VerifiedTx> {
        self.order.iter().map(|id| {
            &self
                .entries
                .get(id)
                .expect("every queued id has its entry")
                .vtx
        })
    }

    /// The checked copy of `tx` if exactly these signed bytes (`signed_hash` of them) wait here.
    pub fn verified(&self, id: &TxId, signed_hash: &Digest) -> Option<&VerifiedTx> {
        self.entries
            .get(id)
            .filter(|entry| entry.signed_hash == *signed_hash)
            .map(|entry| &entry.vtx)
    }

    /// Forgets transactions that a block committed or that became invalid.
    pub fn remove(&mut self, ids: &HashSet<TxId>) {
        let before = self.entries.len();
        self.entries.retain(|id, _| !ids.contains(id));
        if self.entries.len() != before {
            self.order.retain(|id| !ids.contains(id));
        }
        assert_eq!(
            self.entries.len(),
            self.order.len(),
            "mempool index and queue agree"
        );
    }

    /// Whether transaction `id` is waiting.
    pub fn contains(&self, id: &TxId) -> bool {
        self.entries.contains_key(id)
    }

    /// Forgets transactions that can no longer be committed at `next_height` because their
    /// `valid_until` has passed; every node does this after each commit, proposer or not.
    pub fn remove_expired(&mut self, next_height: u64) {
        let expired: HashSet<TxId> = self
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
        self.order.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
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

    #[test]
    fn a_signature_check_is_reused_only_for_the_same_signed_bytes() {
        let mut chain = TestChain::new(1);
        let tx = chain.tx(
            Action::ReleasePledge {
                pledge: ledger_core::crypto::Digest::sha256(b"p"),
            },
            &[],
        );
        let mut mempool = Mempool::default();
        mempool
            .insert(VerifiedTx::verify(tx.clone()).expect("no signatures to check"))
            .expect("room");
        assert!(mempool.verified(&tx.id(), &signed_hash(&tx)).is_some());
        // Same id (the body), different signed bytes: not reused.
        let mut resigned = tx.clone();
        resigned.sign(&ledger_core::testkit::test_key("someone else"));
        assert_eq!(resigned.id(), tx.id());
        assert!(mempool
            .verified(&tx.id(), &signed_hash(&resigned))
            .is_none());
    }
}
