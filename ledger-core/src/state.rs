//! The ledger state: typed keys, the records stored under them, and a read-through overlay that
//! collects one block's writes.
//!
//! Keys are the canonical encoding of [`StateKey`]; values the canonical encoding of the record
//! type each key names. The state tree (`state_tree`) authenticates the whole map, so a client
//! can check any record against a certified header.

use crate::crypto::{Digest, PublicKey};
use crate::encoding;
use crate::genesis::{ChainParams, Validator};
use crate::merkle::LedgerFrontier;
use crate::storage::StorageError;
use crate::tx::TxId;
use crate::types::{AssetId, EvidenceKind, Money, PartyId, RightKind, Role, WorkKind};
use crate::vote::{SignedVote, VoteType};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The most active pledges one asset may carry at once.
pub const ACTIVE_PLEDGES_PER_ASSET_MAX: usize = 16;
/// The most licences one asset may carry (expired ones included; they are history).
pub const LICENCES_PER_ASSET_MAX: usize = 256;
/// How many past validator sets the state keeps, to check misbehaviour evidence.
pub const VALIDATOR_SET_HISTORY_MAX: usize = 64;

/// Every key of the state map. The variant tag comes first in the encoding, so key kinds never
/// collide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKey {
    /// The chain's identity and limits → [`ChainRecord`].
    Chain,
    /// The last block's height, time and ledger-tree frontier → [`LedgerHead`].
    LedgerHead,
    /// Validator sets in force and scheduled → [`ValidatorSchedule`].
    ValidatorSchedule,
    /// A party → [`PartyRecord`].
    Party(PartyId),
    /// A signing key → the [`PartyId`] that holds it.
    PartyByKey(PublicKey),
    /// An asset → [`AssetRecord`].
    Asset(AssetId),
    /// The n-th event (from 0) in an asset's history → [`HistoryEntry`].
    AssetHistory(AssetId, u64),
    /// A pledge, by its registration transaction id → [`PledgeRecord`].
    Pledge(TxId),
    /// The n-th pledge (from 0) a bank took → its [`TxId`].
    PledgeByBank(PartyId, u64),
    /// Evidence by its hash → [`EvidenceRecord`].
    Evidence(Digest),
    /// A recorded double vote → [`MisbehaviourRecord`].
    Misbehaviour {
        /// The validator's key.
        validator: PublicKey,
        /// Height of the conflicting votes.
        height: u64,
        /// Round of the conflicting votes.
        round: u32,
        /// Type of the conflicting votes.
        vote_type: VoteType,
    },
}

impl StateKey {
    /// The key's bytes in the state map.
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }
}

/// The chain's identity and limits, written once from the genesis.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ChainRecord {
    /// The chain id every transaction and vote must carry.
    pub chain_id: String,
    /// The genesis hash.
    pub genesis_hash: Digest,
    /// Ledger limits.
    pub params: ChainParams,
}

/// The last committed block as the state sees it, plus the ledger-wide tree's frontier, so that
/// executing a block needs nothing but state.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LedgerHead {
    /// Height of the last block (0 for genesis).
    pub height: u64,
    /// Its time, Unix milliseconds.
    pub time_ms: u64,
    /// The ledger-wide tree over every committed transaction.
    pub frontier: LedgerFrontier,
}

/// One entry of the validator schedule.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ValidatorSetEntry {
    /// The first height this set decides.
    pub from_height: u64,
    /// The set, sorted by key.
    pub validators: Vec<Validator>,
}

/// The validator sets: past ones (bounded), the current one, and at most one scheduled change.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ValidatorSchedule {
    /// Sets in order of `from_height`; the last one whose `from_height` is at most a height is
    /// the set for that height. At most one entry lies in the future.
    pub entries: Vec<ValidatorSetEntry>,
}

impl ValidatorSchedule {
    /// The set that decides `height`, if the schedule still remembers it.
    pub fn set_at(&self, height: u64) -> Option<&[Validator]> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.from_height <= height)
            .map(|e| e.validators.as_slice())
    }

    /// Whether a change is already scheduled after `height`.
    pub fn has_pending_after(&self, height: u64) -> bool {
        self.entries.last().is_some_and(|e| e.from_height > height)
    }
}

/// A party: an organisation or an enrolled rights holder.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PartyRecord {
    /// Its identifier.
    pub party: PartyId,
    /// Display name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Its current signing key.
    pub key: PublicKey,
    /// For rights holders: SHA-256 of the identity document checked at enrolment.
    pub id_document_hash: Option<Digest>,
    /// False once removed by governance; a removed party signs nothing.
    pub active: bool,
    /// How many pledges it took as pledgee (the length of its `PledgeByBank` list).
    pub pledges_taken: u64,
}

/// Where and when something was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Recorded {
    /// Block height.
    pub height: u64,
    /// Block time, Unix milliseconds.
    pub time_ms: u64,
    /// The transaction that recorded it.
    pub tx: TxId,
}

/// What kind of asset, with its descriptive fields.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetDetails {
    /// A copyright work.
    Work {
        /// Title.
        title: String,
        /// Kind of work.
        kind: WorkKind,
        /// Authors.
        authors: Vec<String>,
    },
    /// A patent or trademark.
    Right {
        /// Patent, utility model, design patent or trademark.
        kind: RightKind,
        /// Title of the patent or the mark.
        title: String,
    },
}

/// A licence on an asset.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Licence {
    /// Who may use the asset.
    pub licensee: PartyId,
    /// Whether no other licence may overlap its term.
    pub exclusive: bool,
    /// Start of the term, Unix milliseconds, inclusive.
    pub start_ms: u64,
    /// End of the term, Unix milliseconds, exclusive.
    pub end_ms: u64,
    /// The granting transaction.
    pub tx: TxId,
}

impl Licence {
    /// Whether two licence terms share any instant and at least one is exclusive.
    pub fn conflicts_with(&self, exclusive: bool, start_ms: u64, end_ms: u64) -> bool {
        let overlap = self.start_ms < end_ms && start_ms < self.end_ms;
        overlap && (self.exclusive || exclusive)
    }
}

/// A court's freeze on an asset.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Freeze {
    /// The freezing court.
    pub court: PartyId,
    /// Its case reference.
    pub case_ref: String,
    /// When it was recorded.
    pub recorded: Recorded,
}

/// An IP asset and everything that encumbers it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AssetRecord {
    /// The asset.
    pub asset: AssetId,
    /// Its owner; exactly one at any time.
    pub owner: PartyId,
    /// Who registered it first (first to file wins).
    pub registrant: PartyId,
    /// Descriptive fields.
    pub details: AssetDetails,
    /// When it was registered or recorded, and by whom (the first filer).
    pub registered: Recorded,
    /// Active pledges in rank order (rank 1 first).
    pub active_pledges: Vec<TxId>,
    /// Licences granted.
    pub licences: Vec<Licence>,
    /// The freeze in force, if any.
    pub freeze: Option<Freeze>,
    /// How many history entries the asset has (`AssetHistory(asset, 0..history_len)`).
    pub history_len: u64,
}

/// One event in an asset's history.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When and by which transaction.
    pub recorded: Recorded,
    /// What happened.
    pub event: AssetEvent,
}

/// Things that happen to an asset.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetEvent {
    /// Registered (work) or recorded (patent, trademark) with its first owner.
    Registered {
        /// The first owner.
        owner: PartyId,
    },
    /// Ownership changed by the owner's transfer.
    Transferred {
        /// Previous owner.
        from: PartyId,
        /// New owner.
        to: PartyId,
    },
    /// A licence was granted.
    Licensed {
        /// The licensee.
        licensee: PartyId,
        /// Whether exclusive.
        exclusive: bool,
    },
    /// A pledge was registered on the asset at this rank.
    Pledged {
        /// The pledge.
        pledge: TxId,
        /// Its rank on this asset when registered (1 = first).
        rank: u32,
    },
    /// A pledge was released.
    PledgeReleased {
        /// The pledge.
        pledge: TxId,
    },
    /// A pledge was enforced; ownership moved.
    PledgeEnforced {
        /// The pledge.
        pledge: TxId,
        /// Previous owner.
        from: PartyId,
        /// New owner.
        to: PartyId,
    },
    /// A court froze the asset.
    Frozen {
        /// The court.
        court: PartyId,
        /// Case reference.
        case_ref: String,
    },
    /// A court lifted its freeze.
    Unfrozen {
        /// The court.
        court: PartyId,
        /// Case reference.
        case_ref: String,
    },
    /// A court ordered the asset transferred.
    CourtTransferred {
        /// The court.
        court: PartyId,
        /// Case reference.
        case_ref: String,
        /// Previous owner.
        from: PartyId,
        /// New owner.
        to: PartyId,
    },
    /// Evidence concerning the asset was attested (first attestation only).
    EvidenceAttested {
        /// The evidence hash.
        evidence_hash: Digest,
    },
}

/// What state a pledge is in.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PledgeStatus {
    /// In force.
    Active,
    /// Released by the pledgee.
    Released {
        /// When.
        recorded: Recorded,
    },
    /// Enforced; the assets went to the transferee.
    Enforced {
        /// When.
        recorded: Recorded,
        /// Who received the assets.
        transferee: PartyId,
        /// The court order, if enforced on one.
        court_order: Option<crate::tx::CourtOrder>,
    },
}

/// The authority's official registration of a pledge, which gives it legal effect.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct OfficialRegistration {
    /// The registering authority.
    pub authority: String,
    /// The official registration number.
    pub registration_number: String,
    /// Date of registration, `YYYY-MM-DD`.
    pub date: String,
    /// When the trading center recorded it on the ledger.
    pub recorded: Recorded,
}

/// A pledge contract.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PledgeRecord {
    /// Its id: the registration transaction's id.
    pub pledge: TxId,
    /// The pledged assets.
    pub assets: Vec<AssetId>,
    /// The owner who pledged them.
    pub pledgor: PartyId,
    /// The bank.
    pub pledgee: PartyId,
    /// The secured amount.
    pub secured_amount: Money,
    /// Maturity, Unix milliseconds.
    pub maturity_ms: u64,
    /// Valuations, as registered.
    pub valuations: Vec<crate::tx::Valuation>,
    /// Rank on each asset when registered, in the order of `assets` (1 = first).
    pub ranks_at_registration: Vec<u32>,
    /// When it was registered.
    pub registered: Recorded,
    /// The official registration, once recorded.
    pub official_registration: Option<OfficialRegistration>,
    /// Active, released or enforced.
    pub status: PledgeStatus,
}

/// A piece of evidence: first attestation kept, later ones counted.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// SHA-256 of the evidence file.
    pub evidence_hash: Digest,
    /// Kind, as first attested.
    pub kind: EvidenceKind,
    /// Case reference, as first attested.
    pub case_ref: Option<String>,
    /// Related asset, as first attested.
    pub related_asset: Option<AssetId>,
    /// The first attestor.
    pub first_attestor: PartyId,
    /// The first attestation.
    pub first_recorded: Recorded,
    /// How many times it has been attested (1 after the first).
    pub attestation_count: u64,
}

/// A validator's recorded double vote.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct MisbehaviourRecord {
    /// The organisation running the validator.
    pub organisation: PartyId,
    /// One vote.
    pub first: SignedVote,
    /// The conflicting vote.
    pub second: SignedVote,
    /// Who reported it.
    pub reporter: PartyId,
    /// When it was recorded.
    pub recorded: Recorded,
}

/// Read access to committed state: the state map by raw key, and which transactions are
/// committed. The node implements it on its database; tests on memory. ledger-core never writes
/// through it.
pub trait StateRead {
    /// The value stored under `key`, or `None`.
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// The height of the block that committed transaction `id`, if a block at or below this
    /// state's height did: what refuses a replay.
    fn committed_height(&self, id: &TxId) -> Result<Option<u64>, StorageError>;
}

/// Where each committed transaction is, by id: the node's transaction index. It is not part of
/// the state tree: an id must be remembered as long as the transaction could still be included
/// (`tx_lifetime_max` heights, a day by default), and at the rates a consortium runs, a day of
/// ids would be most of the tree and most of each block's tree work. Every node derives the same
/// index from the same blocks, so replay refusals stay deterministic; a client that must know
/// whether a transaction committed gets its receipt, which proves it.
pub trait TxIndexRead {
    /// The height of the block that committed transaction `id`, at any height stored.
    fn tx_height(&self, id: &TxId) -> Result<Option<u64>, StorageError>;
}

impl<R: crate::state_tree::TreeReader + TxIndexRead> StateRead
    for crate::state_tree::StateTree<'_, R>
{
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(key)
    }

    /// The index may hold later blocks than this view's version; those are not committed yet
    /// as far as this state knows.
    fn committed_height(&self, id: &TxId) -> Result<Option<u64>, StorageError> {
        let Some(version) = self.version() else {
            return Ok(None);
        };
        Ok(self
            .reader()
            .tx_height(id)?
            .filter(|height| *height <= version))
    }
}

/// Pending writes: `Some(bytes)` sets a key, `None` deletes it.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What an overlay holds on top of its base: state writes, and the transactions committed by
/// them with their height.
#[derive(Debug, Default)]
pub struct Pending {
    /// The state writes.
    pub writes: WriteSet,
    /// The transactions committed, by id.
    pub committed: BTreeMap<TxId, u64>,
}

/// The most bytes (keys, values and a fixed cost per entry) an overlay's read cache holds
/// ([`Overlay::caching_reads`]); keys read once it is full go to the base every time. A
/// transaction reads a handful of keys, so a block of 10,000 transactions of issue 6's mix stays
/// far below it; it is there for blocks that read many large asset records.
pub const READ_CACHE_BYTES_MAX: usize = 32 << 20;

/// What a read cache counts for an entry beyond its key and value: the map's own bookkeeping.
const READ_CACHE_ENTRY_OVERHEAD: usize = 64;

/// What an overlay has read from its base, by key, within [`READ_CACHE_BYTES_MAX`].
#[derive(Default)]
struct ReadCache {
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
}

impl ReadCache {
    fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.entries.get(key)
    }

    /// Remembers `value` under `key` unless that would pass the limit.
    fn remember(&mut self, key: &[u8], value: &Option<Vec<u8>>) {
        let cost = key.len() + value.as_ref().map_or(0, Vec::len) + READ_CACHE_ENTRY_OVERHEAD;
        if self.bytes + cost > READ_CACHE_BYTES_MAX {
            return;
        }
        let earlier = self.entries.insert(key.to_vec(), value.clone());
        assert!(
            earlier.is_none(),
            "a cached key is read from the base again"
        );
        self.bytes += cost;
        assert!(self.bytes <= READ_CACHE_BYTES_MAX);
    }
}

/// Committed state plus pending writes, read through: what a block sees while it executes.
pub struct Overlay<'a> {
    base: &'a dyn StateRead,
    pending: Pending,
    /// What was read from `base`, by key, when this overlay caches its reads. The base never
    /// changes under an overlay (it is borrowed), so an answer read once stays true; pending
    /// writes are looked up first, so a cached answer never hides one.
    base_reads: Option<RefCell<ReadCache>>,
}

impl<'a> Overlay<'a> {
    /// An overlay with no pending writes, reading every key from `base` each time: what a
    /// transaction's scratch overlay is, since its reads are cached by the block's overlay below.
    pub fn new(base: &'a dyn StateRead) -> Overlay<'a> {
        Overlay {
            base,
            pending: Pending::default(),
            base_reads: None,
        }
    }

    /// An overlay with no pending writes that remembers what it reads from `base` (up to
    /// [`READ_CACHE_BYTES_MAX`]): what a block's overlay is, since every transaction in the
    /// block reads the chain record and many read the same parties, and a read from the node's
    /// store is a B-tree seek. It answers every read exactly as [`Overlay::new`] would.
    pub fn caching_reads(base: &'a dyn StateRead) -> Overlay<'a> {
        Overlay {
            base,
            pending: Pending::default(),
            base_reads: Some(RefCell::new(ReadCache::default())),
        }
    }

    /// Reads `key` from the base, through the read cache if this overlay has one.
    fn read_base(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(cache) = &self.base_reads else {
            return self.base.get_raw(key);
        };
        if let Some(value) = cache.borrow().get(key) {
            return Ok(value.clone());
        }
        let value = self.base.get_raw(key)?;
        cache.borrow_mut().remember(key, &value);
        Ok(value)
    }

    /// Reads and decodes the record under `key`. A record that does not decode is corruption of
    /// storage, never a rule rejection.
    pub fn get<V: Decode<()>>(&self, key: &StateKey) -> Result<Option<V>, StorageError> {
        let bytes = self.get_raw(&key.encode())?;
        bytes
            .map(|bytes| {
                encoding::decode(&bytes, "state record").map_err(|error| {
                    StorageError(format!("record under {key:?} is corrupt: {error}"))
                })
            })
            .transpose()
    }

    /// Sets `key` to `value`.
    pub fn put<V: Encode>(&mut self, key: &StateKey, value: &V) {
        self.pending
            .writes
            .insert(key.encode(), Some(encoding::encode(value)));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: &StateKey) {
        self.pending.writes.insert(key.encode(), None);
    }

    /// Records transaction `id` as committed at `height`; it must not be committed already.
    pub fn record_committed(&mut self, id: TxId, height: u64) {
        let earlier = self.pending.committed.insert(id, height);
        assert!(earlier.is_none(), "transaction {id} committed twice");
    }

    /// The pending writes.
    pub fn writes(&self) -> &WriteSet {
        &self.pending.writes
    }

    /// Takes what is pending, leaving nothing.
    pub fn take_pending(&mut self) -> Pending {
        std::mem::take(&mut self.pending)
    }

    /// Adds pending writes and commitments on top of this overlay's (a later write to a key
    /// wins).
    pub fn extend(&mut self, pending: Pending) {
        self.pending.writes.extend(pending.writes);
        for (id, height) in pending.committed {
            self.record_committed(id, height);
        }
    }
}

impl StateRead for Overlay<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.pending.writes.get(key) {
            Some(pending) => Ok(pending.clone()),
            None => self.read_base(key),
        }
    }

    fn committed_height(&self, id: &TxId) -> Result<Option<u64>, StorageError> {
        match self.pending.committed.get(id) {
            Some(height) => Ok(Some(*height)),
            None => self.base.committed_height(id),
        }
    }
}

/// Reads the chain record, which genesis always writes.
pub fn chain_record(state: &Overlay<'_>) -> Result<ChainRecord, StorageError> {
    state
        .get(&StateKey::Chain)?
        .ok_or_else(|| StorageError("chain record missing from state".into()))
}

/// Reads the ledger head, which genesis and every block write, and checks its frontier: a
/// frontier whose peaks do not match its size is corrupt storage, and appending to it would
/// break the ledger tree.
pub fn ledger_head(state: &Overlay<'_>) -> Result<LedgerHead, StorageError> {
    let head: LedgerHead = state
        .get(&StateKey::LedgerHead)?
        .ok_or_else(|| StorageError("ledger head missing from state".into()))?;
    head.frontier
        .validate()
        .map_err(|error| StorageError(format!("ledger head frontier is corrupt: {error}")))?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;

    /// A base state in memory that counts the reads that reach it.
    struct CountingBase {
        values: BTreeMap<Vec<u8>, Vec<u8>>,
        reads: Cell<usize>,
    }

    impl CountingBase {
        fn new(values: BTreeMap<Vec<u8>, Vec<u8>>) -> CountingBase {
            CountingBase {
                values,
                reads: Cell::new(0),
            }
        }
    }

    impl StateRead for CountingBase {
        fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.reads.set(self.reads.get() + 1);
            Ok(self.values.get(key).cloned())
        }

        fn committed_height(&self, _: &TxId) -> Result<Option<u64>, StorageError> {
            Ok(None)
        }
    }

    /// One step of a block: a transaction's writes, kept (as an accepted transaction's are) or
    /// dropped (a refused one's), and the reads made meanwhile.
    #[derive(Clone, Debug)]
    enum Step {
        Read(u8),
        Transaction {
            writes: Vec<(u8, Option<u8>)>,
            reads: Vec<u8>,
            kept: bool,
        },
    }

    fn key(k: u8) -> Vec<u8> {
        vec![k % 24]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            any::<u8>().prop_map(Step::Read),
            (
                prop::collection::vec((any::<u8>(), prop::option::of(any::<u8>())), 0..4),
                prop::collection::vec(any::<u8>(), 0..4),
                any::<bool>(),
            )
                .prop_map(|(writes, reads, kept)| Step::Transaction {
                    writes,
                    reads,
                    kept
                }),
        ]
    }

    /// Runs `steps` on `block`, returning every read's answer in order.
    fn run(block: &mut Overlay<'_>, steps: &[Step]) -> Vec<Option<Vec<u8>>> {
        let mut answers = Vec::new();
        for step in steps {
            match step {
                Step::Read(k) => answers.push(block.get_raw(&key(*k)).unwrap()),
                Step::Transaction {
                    writes,
                    reads,
                    kept,
                } => {
                    let pending = {
                        let mut scratch = Overlay::new(block);
                        for (k, value) in writes {
                            scratch
                                .pending
                                .writes
                                .insert(key(*k), value.map(|v| vec![v]));
                        }
                        for k in reads {
                            answers.push(scratch.get_raw(&key(*k)).unwrap());
                        }
                        scratch.take_pending()
                    };
                    if *kept {
                        block.extend(pending);
                    }
                }
            }
        }
        answers
    }

    proptest! {
        /// A block overlay that caches its reads answers every read, in every interleaving of
        /// writes, deletions and refused transactions, as one that reads through each time.
        #[test]
        fn a_caching_overlay_reads_what_a_plain_one_reads(
            base in prop::collection::btree_map(any::<u8>().prop_map(key), any::<u8>().prop_map(|v| vec![v]), 0..24),
            steps in prop::collection::vec(step(), 0..40),
        ) {
            let base = CountingBase::new(base);
            let mut plain = Overlay::new(&base);
            let mut caching = Overlay::caching_reads(&base);
            let plain_answers = run(&mut plain, &steps);
            let caching_answers = run(&mut caching, &steps);
            prop_assert_eq!(plain_answers, caching_answers);
            prop_assert_eq!(plain.writes(), caching.writes());
        }
    }

    #[test]
    fn a_caching_overlay_reads_each_key_from_its_base_once() {
        let base = CountingBase::new(BTreeMap::from([(vec![1], vec![10])]));
        let caching = Overlay::caching_reads(&base);
        for _ in 0..3 {
            assert_eq!(caching.get_raw(&[1]).unwrap(), Some(vec![10]));
            assert_eq!(caching.get_raw(&[2]).unwrap(), None);
        }
        assert_eq!(
            base.reads.get(),
            2,
            "one read per key, absent keys included"
        );
        let plain = Overlay::new(&base);
        for _ in 0..3 {
            plain.get_raw(&[1]).unwrap();
        }
        assert_eq!(
            base.reads.get(),
            5,
            "a plain overlay reads through every time"
        );
    }

    #[test]
    fn the_read_cache_stops_growing_at_its_limit() {
        let value = vec![7u8; 4096];
        let cost = 4 + value.len() + READ_CACHE_ENTRY_OVERHEAD;
        let fit = READ_CACHE_BYTES_MAX / cost;
        let keys = fit + 10;
        let base = CountingBase::new(
            (0..keys as u32)
                .map(|k| (k.to_be_bytes().to_vec(), value.clone()))
                .collect(),
        );
        let caching = Overlay::caching_reads(&base);
        for k in 0..keys as u32 {
            caching.get_raw(&k.to_be_bytes()).unwrap();
        }
        {
            let cache = caching.base_reads.as_ref().unwrap().borrow();
            assert_eq!(cache.entries.len(), fit);
            assert_eq!(cache.bytes, fit * cost);
        }
        let first = 0u32.to_be_bytes();
        let past_limit = (keys as u32 - 1).to_be_bytes();
        assert_eq!(caching.get_raw(&first).unwrap(), Some(value.clone()));
        assert_eq!(base.reads.get(), keys, "a cached key is not read again");
        assert_eq!(caching.get_raw(&past_limit).unwrap(), Some(value));
        assert_eq!(
            base.reads.get(),
            keys + 1,
            "a key past the limit is read through"
        );
    }
}
