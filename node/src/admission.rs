//! Admission: whether a submitted transaction may wait in the mempool for a block.
//!
//! A transaction is admitted only if the next block would accept it as things stand: its encoded
//! size is within [`TX_BYTES_MAX`], every signature verifies (ZIP-215, through
//! [`VerifiedTx::verify`]), and the rules accept it against the head state at the next height and
//! a block time no earlier than the proposer could choose. The rules run on a scratch overlay
//! that is dropped, so admission never changes state. Every refusal is an [`AdmitError`] with a
//! stable [`code`](AdmitError::code); a rule refusal carries the rule's own code.
//!
//! Admission is a filter, not a promise: the head may move before the next block is built, and
//! the proposer re-applies the rules then (a transaction they refuse is dropped from the pool).

use crate::mempool::{Mempool, MempoolError, MEMPOOL_TXS_MAX};
use crate::store::{Store, StoreError};
use ledger_core::genesis::Genesis;
use ledger_core::rejection::{Rejection, TxError};
use ledger_core::rules::{apply_tx, prune_expired_ids, BlockContext, VerifiedTx};
use ledger_core::state::{ledger_head, Overlay};
use ledger_core::tx::{SignedTx, TxId, TX_BYTES_MAX};
use std::sync::Mutex;

/// Why a transaction was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// A rule refused it; the code is the rule's ([`Rejection::code`]).
    #[error("rejected ({code}): {0}", code = .0.code())]
    Rejected(Rejection),
    /// The submission is not a transaction at all (undecodable JSON or bytes).
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// Its canonical encoding is larger than [`TX_BYTES_MAX`].
    #[error("transaction encodes to {len} bytes; the limit is {max}")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// [`TX_BYTES_MAX`].
        max: usize,
    },
    /// The mempool is full; retry later.
    #[error("the mempool is full; retry later")]
    MempoolFull,
    /// The same transaction id is already waiting in the mempool.
    #[error("transaction {0} is already in the mempool")]
    Duplicate(TxId),
    /// The node's storage failed; nothing was decided.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl AdmitError {
    /// The stable machine-readable code: the rule's code for [`AdmitError::Rejected`].
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Rejected(rejection) => rejection.code(),
            AdmitError::Malformed(_) => "malformed_request",
            AdmitError::TooLarge { .. } => "too_large",
            AdmitError::MempoolFull => "mempool_full",
            AdmitError::Duplicate(_) => "duplicate",
            AdmitError::Storage(_) => "storage_error",
        }
    }
}

impl From<Rejection> for AdmitError {
    fn from(rejection: Rejection) -> Self {
        AdmitError::Rejected(rejection)
    }
}

/// Checks `tx` as the next block would and, if it passes, adds it to the mempool. Returns its
/// id. `now_ms` is the node's clock; the block time used is never before the head's time plus
/// one millisecond, as a proposer would choose it.
///
/// Blocking: verifies signatures and reads the store. Call it off the async executor.
pub fn admit(
    store: &Store,
    genesis: &Genesis,
    mempool: &Mutex<Mempool>,
    tx: SignedTx,
    now_ms: u64,
) -> Result<TxId, AdmitError> {
    admit_many(store, genesis, mempool, vec![tx], now_ms)
        .pop()
        .expect("one answer per transaction")
}

/// [`admit`] for many transactions at once (a gossip batch): signatures are checked in one
/// batch and the rules read one snapshot of the head state. Each transaction is judged on its
/// own, against the head, as if it were the only one; the answers are in input order.
pub fn admit_many(
    store: &Store,
    genesis: &Genesis,
    mempool: &Mutex<Mempool>,
    txs: Vec<SignedTx>,
    now_ms: u64,
) -> Vec<Result<TxId, AdmitError>> {
    let count = txs.len();
    // Cheap refusals first, so that spam costs no signature checks or state reads.
    let mut answers: Vec<Option<Result<TxId, AdmitError>>> = Vec::with_capacity(count);
    let mut to_verify = Vec::new();
    {
        let pool = lock(mempool);
        for tx in txs {
            match cheap_checks(&pool, genesis, &tx) {
                Ok(()) => {
                    answers.push(None);
                    to_verify.push(tx);
                }
                Err(error) => answers.push(Some(Err(error))),
            }
        }
    }
    let mut verified = VerifiedTx::verify_many(to_verify).into_iter();
    let head = HeadCheck::open(store, now_ms);
    let answers: Vec<Result<TxId, AdmitError>> = answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                let vtx = verified
                    .next()
                    .expect("one verdict per verified transaction")?;
                match &head {
                    Ok(head) => head.check(&vtx)?,
                    // Opening again yields this transaction its own copy of the storage error.
                    Err(_) => check_against_head(store, &vtx, now_ms)?,
                }
                let id = vtx.id();
                lock(mempool).insert(vtx).map_err(|error| match error {
                    MempoolError::Full => AdmitError::MempoolFull,
                    MempoolError::Duplicate(id) => AdmitError::Duplicate(id),
                })?;
                Ok(id)
            })
        })
        .collect();
    assert_eq!(answers.len(), count, "one answer per transaction");
    answers
}

/// The refusals that need neither signatures nor state: size, a pending duplicate, a full
/// pool, another chain.
fn cheap_checks(pool: &Mempool, genesis: &Genesis, tx: &SignedTx) -> Result<(), AdmitError> {
    let len = tx.encode().len();
    if len > TX_BYTES_MAX {
        return Err(AdmitError::TooLarge {
            len,
            max: TX_BYTES_MAX,
        });
    }
    let id = tx.id();
    if pool.contains(&id) {
        return Err(AdmitError::Duplicate(id));
    }
    if pool.len() >= MEMPOOL_TXS_MAX {
        return Err(AdmitError::MempoolFull);
    }
    if tx.body.chain_id != genesis.chain_id {
        return Err(Rejection::WrongChain {
            expected: genesis.chain_id.clone(),
            got: tx.body.chain_id.clone(),
        }
        .into());
    }
    Ok(())
}

/// Applies the rules to `vtx` against the head state, at the next height and the block time a
/// proposer would choose at `now_ms`, on a scratch overlay that is dropped. This is what the
/// next block would do: expired ids are pruned first, exactly as `BlockBuilder` does.
pub fn check_against_head(store: &Store, vtx: &VerifiedTx, now_ms: u64) -> Result<(), AdmitError> {
    HeadCheck::open(store, now_ms)?.check(vtx)
}

/// One snapshot of the head state, against which transactions are checked one by one.
struct HeadCheck {
    snapshot: crate::store::Snapshot,
    head: u64,
    now_ms: u64,
}

impl HeadCheck {
    fn open(store: &Store, now_ms: u64) -> Result<HeadCheck, StoreError> {
        let snapshot = store.snapshot()?;
        let head = snapshot.head_height()?;
        Ok(HeadCheck {
            snapshot,
            head,
            now_ms,
        })
    }

    fn check(&self, vtx: &VerifiedTx) -> Result<(), AdmitError> {
        let head = self.head;
        let state = self.snapshot.state(head);
        let storage = |error| StoreError::State {
            version: head,
            error,
        };
        let mut overlay = Overlay::new(&state);
        let head_time = ledger_head(&overlay).map_err(storage)?.time_ms;
        let ctx = BlockContext {
            height: head + 1,
            time_ms: self.now_ms.max(head_time + 1),
        };
        let outcome = prune_expired_ids(&mut overlay, ctx.height)
            .and_then(|()| apply_tx(&mut overlay, ctx, vtx));
        match outcome {
            Ok(()) => Ok(()),
            Err(TxError::Rejected(rejection)) => Err(AdmitError::Rejected(rejection)),
            Err(TxError::Storage(error)) => Err(storage(error).into()),
        }
    }
}

/// Parses a transaction from its JSON form (the serde form of [`SignedTx`]).
pub fn decode_json(bytes: &[u8]) -> Result<SignedTx, AdmitError> {
    serde_json::from_slice(bytes).map_err(|error| AdmitError::Malformed(error.to_string()))
}

/// Parses a transaction from its canonical encoding (refusing more than [`TX_BYTES_MAX`]).
pub fn decode_canonical(bytes: &[u8]) -> Result<SignedTx, AdmitError> {
    if bytes.len() > TX_BYTES_MAX {
        return Err(AdmitError::TooLarge {
            len: bytes.len(),
            max: TX_BYTES_MAX,
        });
    }
    SignedTx::decode(bytes).map_err(|error| AdmitError::Malformed(error.to_string()))
}

/// The mempool, even if a thread panicked while holding it: the pool's own operations keep it
/// consistent (they assert so), and refusing every later submission would help nobody.
fn lock(mempool: &Mutex<Mempool>) -> std::sync::MutexGuard<'_, Mempool> {
    mempool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
