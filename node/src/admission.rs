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
use ledger_core::crypto::Digest;
use ledger_core::genesis::Genesis;
use ledger_core::rejection::{Rejection, TxError};
use ledger_core::rules::{apply_tx, BlockContext, VerifiedTx};
use ledger_core::state::{ledger_head, Overlay};
use ledger_core::state_tree::StateTree;
use ledger_core::tx::{SignedTx, TxId, TX_BYTES_MAX};
use std::collections::hash_map::{Entry, HashMap};
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

/// [`admit`] for many transactions at once (a batch submission or a gossip batch): signatures
/// are checked in one batch ([`VerifiedTx::verify_many`], the same ZIP-215 rule as a single
/// check) and the rules read one snapshot of the head state. Each
/// transaction is judged on its own, against the head, as if it were the only one; the answers
/// are in input order.
///
/// A transaction repeated in `txs` with exactly the same signed bytes is checked once: a repeat
/// of an admitted one answers [`AdmitError::Duplicate`] (as a second submission would), a repeat
/// of a refused one gets the same refusal. The same id with other signatures is checked on its
/// own.
pub fn admit_many(
    store: &Store,
    genesis: &Genesis,
    mempool: &Mutex<Mempool>,
    txs: Vec<SignedTx>,
    now_ms: u64,
) -> Vec<Result<TxId, AdmitError>> {
    let count = txs.len();
    // What becomes of each input: answered by a cheap check, checked in full (index into
    // `to_verify`), or a repeat of an earlier input.
    enum Plan {
        Answered(Result<TxId, AdmitError>),
        Check(usize),
        RepeatOf(usize),
    }
    // Cheap refusals first, so that spam costs no signature checks or state reads.
    let mut plans: Vec<Plan> = Vec::with_capacity(count);
    let mut to_verify = Vec::new();
    let mut hashes: Vec<Digest> = Vec::new();
    let mut first_of: HashMap<Digest, usize> = HashMap::new();
    {
        let pool = lock(mempool);
        for (index, tx) in txs.into_iter().enumerate() {
            match cheap_checks(&pool, genesis, &tx) {
                Ok(hash) => match first_of.entry(hash) {
                    Entry::Occupied(first) => plans.push(Plan::RepeatOf(*first.get())),
                    Entry::Vacant(vacant) => {
                        vacant.insert(index);
                        plans.push(Plan::Check(to_verify.len()));
                        to_verify.push(tx);
                        hashes.push(hash);
                    }
                },
                Err(error) => plans.push(Plan::Answered(Err(error))),
            }
        }
    }
    let verified = VerifiedTx::verify_many(to_verify);
    let checked = check_and_pool(store, mempool, verified, hashes, now_ms);
    let mut checked: Vec<Option<Result<TxId, AdmitError>>> =
        checked.into_iter().map(Some).collect();
    let mut answers: Vec<Result<TxId, AdmitError>> = Vec::with_capacity(count);
    for plan in plans {
        let answer = match plan {
            Plan::Answered(answer) => answer,
            Plan::Check(k) => checked[k].take().expect("each check answers one input"),
            Plan::RepeatOf(first) => repeat(&answers[first]),
        };
        answers.push(answer);
    }
    assert_eq!(answers.len(), count, "one answer per transaction");
    answers
}

/// The answer for a repeat, in the same batch, of a transaction answered `first`.
fn repeat(first: &Result<TxId, AdmitError>) -> Result<TxId, AdmitError> {
    Err(match first {
        Ok(id) | Err(AdmitError::Duplicate(id)) => AdmitError::Duplicate(*id),
        Err(AdmitError::Rejected(rejection)) => AdmitError::Rejected(rejection.clone()),
        Err(AdmitError::Malformed(message)) => AdmitError::Malformed(message.clone()),
        Err(AdmitError::TooLarge { len, max }) => AdmitError::TooLarge {
            len: *len,
            max: *max,
        },
        Err(AdmitError::MempoolFull) => AdmitError::MempoolFull,
        // The store's error is not cloneable; the copy carries its message.
        Err(AdmitError::Storage(error)) => AdmitError::Storage(StoreError::Io {
            context: "checking the first copy of this transaction in its batch".into(),
            source: std::io::Error::other(error.to_string()),
        }),
    })
}

/// Checks verified transactions against one snapshot of the head and pools those that
/// pass, under one mempool lock. `hashes[k]` is the signed hash of the `k`th.
fn check_and_pool(
    store: &Store,
    mempool: &Mutex<Mempool>,
    verified: Vec<Result<VerifiedTx, Rejection>>,
    hashes: Vec<Digest>,
    now_ms: u64,
) -> Vec<Result<TxId, AdmitError>> {
    let mut passed: Vec<Result<(VerifiedTx, Digest), AdmitError>> =
        Vec::with_capacity(verified.len());
    let check_all = |checker: Option<&NextBlockChecker<'_>>| {
        for (vtx, hash) in verified.into_iter().zip(hashes) {
            passed.push(vtx.map_err(AdmitError::Rejected).and_then(|vtx| {
                match checker {
                    Some(checker) => checker.check(&vtx),
                    // The head could not be read: checking again yields each transaction its
                    // own copy of the storage error.
                    None => check_against_head(store, &vtx, now_ms),
                }
                .map(|()| (vtx, hash))
            }));
        }
    };
    match HeadCheck::open(store, now_ms) {
        Ok(head) => match head.next_block() {
            Ok(next) => check_all(Some(&next.checker())),
            Err(_) => check_all(None),
        },
        Err(_) => check_all(None),
    }
    let mut pool = lock(mempool);
    passed
        .into_iter()
        .map(|passed| {
            let (vtx, hash) = passed?;
            let id = vtx.id();
            pool.insert_hashed(vtx, hash).map_err(|error| match error {
                MempoolError::Full => AdmitError::MempoolFull,
                MempoolError::Duplicate(id) => AdmitError::Duplicate(id),
            })?;
            Ok(id)
        })
        .collect()
}

/// The refusals that need neither signatures nor state: size, a pending duplicate, a full
/// pool, another chain. Returns the transaction's signed hash ([`crate::mempool::signed_hash`]).
fn cheap_checks(pool: &Mempool, genesis: &Genesis, tx: &SignedTx) -> Result<Digest, AdmitError> {
    let encoded = tx.encode();
    let len = encoded.len();
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
    Ok(Digest::sha256(&encoded))
}

/// Applies the rules to `vtx` against the head state, at the next height and the block time a
/// proposer would choose at `now_ms`, on a scratch overlay that is dropped: what the next block
/// would do.
pub fn check_against_head(store: &Store, vtx: &VerifiedTx, now_ms: u64) -> Result<(), AdmitError> {
    HeadCheck::open(store, now_ms)?.check(vtx)
}

/// One snapshot of the head state, against which transactions are checked one by one.
struct HeadCheck {
    snapshot: crate::store::Snapshot,
    head: u64,
    now_ms: u64,
}

/// The head state and the next block's context, which [`NextBlock::checker`] checks
/// transactions against.
struct NextBlock<'a> {
    state: StateTree<'a, crate::store::Snapshot>,
    ctx: BlockContext,
    head: u64,
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

    /// The head state at the next height and the block time a proposer would choose at
    /// `now_ms` (never before the head's time plus one millisecond).
    fn next_block(&self) -> Result<NextBlock<'_>, AdmitError> {
        let head = self.head;
        let state = self.snapshot.state(head);
        let head_record =
            ledger_head(&Overlay::new(&state)).map_err(|error| StoreError::State {
                version: head,
                error,
            })?;
        let ctx = BlockContext {
            height: head + 1,
            time_ms: self.now_ms.max(head_record.time_ms + 1),
        };
        Ok(NextBlock { state, ctx, head })
    }

    fn check(&self, vtx: &VerifiedTx) -> Result<(), AdmitError> {
        self.next_block()?.checker().check(vtx)
    }
}

impl NextBlock<'_> {
    /// What checks transactions against this block's state, one by one. It remembers what it
    /// reads of the head, so the checks of a batch share the chain record and the parties that
    /// several transactions name.
    fn checker(&self) -> NextBlockChecker<'_> {
        NextBlockChecker {
            next: self,
            head_reads: Overlay::caching_reads(&self.state),
        }
    }
}

/// A [`NextBlock`] with a read cache over its state ([`NextBlock::checker`]).
struct NextBlockChecker<'a> {
    next: &'a NextBlock<'a>,
    /// Never written: each check writes on a scratch overlay of its own over it.
    head_reads: Overlay<'a>,
}

impl NextBlockChecker<'_> {
    /// Applies the rules to `vtx` on a scratch overlay that is dropped.
    fn check(&self, vtx: &VerifiedTx) -> Result<(), AdmitError> {
        let mut scratch = Overlay::new(&self.head_reads);
        match apply_tx(&mut scratch, self.next.ctx, vtx) {
            Ok(()) => Ok(()),
            Err(TxError::Rejected(rejection)) => Err(AdmitError::Rejected(rejection)),
            Err(TxError::Storage(error)) => Err(StoreError::State {
                version: self.next.head,
                error,
            }
            .into()),
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
